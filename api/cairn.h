/* libcairn: the C client library for Cairn (installed as <cairn/cairn.h>).
 * Synchronous calls over the binary protocol, with deadlines, retries on
 * UNAVAILABLE with backoff across a list of endpoints, and exactly-once
 * write retries. One client per thread. */
#ifndef CAIRN_CLIENT_H
#define CAIRN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cairn_client_options
{
    const char *endpoints; /* "host:port[,host:port...]"; NULL: the
                              CAIRN_ENDPOINT variable, else
                              127.0.0.1:7400 */
    unsigned timeout_ms;   /* deadline of each call, retries included:
                              10,000 */
    unsigned attempts;     /* tries on UNAVAILABLE: 8 */
    unsigned backoff_ms;   /* first retry delay, doubled up to 1 s: 20 */
    bool stale_reads;      /* read any node's local store (no barrier) */
};

void cairn_client_options_default(struct cairn_client_options *o);

struct cairn_client;

/**
 * Create a client and connect to the first endpoint that answers.
 * @p o may be NULL for defaults; strings are copied. The caller closes
 * with cairn_client_close. Errors: UNAVAILABLE (no endpoint answered),
 * INVALID_ARGUMENT (bad endpoint list), RESOURCE_EXHAUSTED.
 */
int cairn_client_connect(const struct cairn_client_options *o,
                         struct cairn_client **out,
                         struct cairn_error *err);

/** Close the connection and free the client. NULL is allowed. */
void cairn_client_close(struct cairn_client *c);

/**
 * Call @p method with a msgpack request map (AWS field names). On success
 * *resp is a msgpack response map the caller frees with free(). Writes
 * carry the client's session id and a new sequence number, reused by every
 * retry, so a write retried after a lost connection or a leader change is
 * applied exactly once. Errors: the server's status with the AWS error name
 * and message in @p err; UNAVAILABLE when no node could be reached in time;
 * DEADLINE_EXCEEDED.
 */
int cairn_call(struct cairn_client *c,
               const char *method,
               const void *req,
               size_t req_len,
               void **resp,
               size_t *resp_len,
               struct cairn_error *err);

/** The same with JSON text in and out (*resp_json freed with free()). */
int cairn_call_json(struct cairn_client *c,
                    const char *method,
                    const char *req_json,
                    char **resp_json,
                    struct cairn_error *err);

/**
 * Call a paged method (GetParametersByPath, DescribeParameters,
 * GetParameterHistory) and follow NextToken to the end, calling @p page
 * with each response map (msgpack, valid during the call). A non-zero
 * return from @p page stops the iteration and is returned.
 */
typedef int (*cairn_page_cb)(void *ctx, const void *resp, size_t len);
int cairn_call_paged(struct cairn_client *c,
                     const char *method,
                     const void *req,
                     size_t req_len,
                     cairn_page_cb page,
                     void *ctx,
                     struct cairn_error *err);

/* ---- typed helpers --------------------------------------------------- */

struct cairn_parameter
{
    char *name;
    char *type;
    char *value; /* NUL-terminated; a SecureString without decryption is
                    its base64 envelope */
    uint64_t version;
    char *selector;       /* NULL unless the name carried one */
    double last_modified; /* epoch seconds */
    char *arn;
    char *data_type;
};

void cairn_parameter_free(struct cairn_parameter *p);

int cairn_get_parameter(struct cairn_client *c,
                        const char *name,
                        bool with_decryption,
                        struct cairn_parameter *out,
                        struct cairn_error *err);

/** Put a String, StringList or SecureString; *version gets the new
 * version (may be NULL). */
int cairn_put_parameter(struct cairn_client *c,
                        const char *name,
                        const char *value,
                        const char *type,
                        bool overwrite,
                        uint64_t *version,
                        struct cairn_error *err);

int cairn_delete_parameter(struct cairn_client *c,
                           const char *name,
                           struct cairn_error *err);

/** Every parameter under @p path, all pages, in order. */
typedef int (*cairn_parameter_cb)(void *ctx, const struct cairn_parameter *p);
int cairn_get_parameters_by_path(struct cairn_client *c,
                                 const char *path,
                                 bool recursive,
                                 bool with_decryption,
                                 cairn_parameter_cb cb,
                                 void *ctx,
                                 struct cairn_error *err);

#ifdef __cplusplus
}
#endif

#endif
