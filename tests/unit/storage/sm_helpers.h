/* Helpers for state-machine and query tests: a store in a temporary
 * directory, commands and requests written as JSON. */
#ifndef CAIRN_TESTS_SM_HELPERS_H
#define CAIRN_TESTS_SM_HELPERS_H

#include <jansson.h>
#include <stdbool.h>

#include "test.h"

#include "query.h"
#include "sm.h"
#include "store.h"

struct h
{
    char *dir;
    struct store *s;
    struct store_options opts;
    uint64_t index; /* last Raft index used */
    int64_t ts;     /* command time, advanced by 1 s per command */
    struct buf cmd;
    struct buf out;
};

/** Open a fresh store with @p opts (NULL: defaults). */
void h_open(struct h *h, const struct store_options *opts);
/** Close the store and remove its directory. */
void h_close(struct h *h);
/** Close and reopen the same directory (same options). */
void h_reopen(struct h *h);

/** Apply op with the request given as printf-formatted JSON. */
const struct sm_outcome *h_apply(struct h *h,
                                 const char *op,
                                 const char *fmt,
                                 ...) __attribute__((format(printf, 3, 4)));
/** Apply an already-encoded command at the next index. */
const struct sm_outcome *h_apply_raw(struct h *h, const void *cmd, size_t len);

/** Apply, expect success, return the response as parsed JSON (decref). */
json_t *h_ok(struct h *h, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Apply, expect failure with @p code and AWS name @p type; returns the
 * message (valid until the next apply). */
const char *h_fail(struct h *h,
                   int code,
                   const char *type,
                   const char *op,
                   const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/** Query, expect success, return the response as JSON (decref). */
json_t *h_q(struct h *h, const char *method, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Query, expect failure; returns the message (static buffer). */
const char *h_qfail(struct h *h,
                    int code,
                    const char *type,
                    const char *method,
                    const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

/** PutParameter String with overwrite, expect success; returns Version. */
uint64_t h_put(struct h *h, const char *name, const char *value);
/** PutParameter SecureString with a sealed (binary) value. */
const struct sm_outcome *h_put_secure(struct h *h,
                                      const char *name,
                                      const void *blob,
                                      size_t n,
                                      uint64_t plain_len,
                                      const char *key_id,
                                      bool overwrite);

/* The root key fingerprint of h_material, as RootKey. */
#define H_ROOT_KEY "0011223344556677"
#define H_MATERIAL_LEN 73

/** Wrapped material as the keyring stores it: "CRNW", format 1, the
 * fingerprint @p root_key (16 hex digits), then 64 bytes of @p fill. */
void h_material(uint8_t out[H_MATERIAL_LEN], const char *root_key, int fill);

/** Apply @p op with the request map @p req (msgpack, @p len bytes). */
const struct sm_outcome *h_apply_req(struct h *h,
                                     const char *op,
                                     const void *req,
                                     size_t len);

/** CreateKey @p key_id with material from h_material (fill 1), the alias
 * @p alias (NULL: none) and Default @p is_default. */
const struct sm_outcome *h_create_key(struct h *h,
                                      const char *key_id,
                                      const char *alias,
                                      bool is_default);

/** Make the key that a SecureString put names exist and be enabled:
 * NULL or an "alias/aws/" name creates the default key; another alias or
 * a key id gets a new key with that alias or id, unless it resolves. */
void h_ensure_key(struct h *h, const char *key_ref);

/** The string at @p key of object @p o, or NULL. */
const char *js(json_t *o, const char *key);
/** The integer at @p key of object @p o, or -1. */
long long ji(json_t *o, const char *key);

/** A name of exactly @p len characters: @p prefix then 'x' padding. Free. */
char *h_long_name(const char *prefix, size_t len);

#endif
