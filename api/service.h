/* The service layer: what a request means. It validates, builds state
 * machine commands and proposes them, and picks the read path (after a
 * barrier, or stale from the local store). The only part of api/ that sees
 * raft/ and storage/; the server and the handlers see only this header. */
#ifndef CAIRN_API_SERVICE_H
#define CAIRN_API_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "queue.h"
#include "status.h"

struct node;
struct store;
struct env_root_key;
struct service;

struct service_options
{
    uint64_t id;                 /* this node's Raft id */
    const char *raft_address;    /* this node's Raft address */
    const char *api_address;     /* where clients and peers reach this node;
                                    registered in the member table so that
                                    followers can forward to it. NULL: not
                                    registered (a node nobody forwards to) */
    unsigned forward_timeout_ms; /* deadline of a forwarded call: 10,000 */
    /* Root keys for SecureString (docs/encryption.md); NULL: SecureString
     * is refused. The previous one during a root key rotation. Copied. */
    const struct env_root_key *root_key;
    const struct env_root_key *previous_root_key;
};

void service_options_default(struct service_options *o);

/**
 * Create the service over @p node and @p store (both borrowed; they outlive
 * the service) on @p loop, the node's. Call only on the loop thread.
 */
int service_create(uv_loop_t *loop,
                   struct node *node,
                   struct store *store,
                   const struct service_options *o,
                   struct service **out,
                   struct cairn_error *err);

/** Stop timers and close connections to peers: calls forwarded to them
 * fail with UNAVAILABLE. @p cb runs once everything is closed; then
 * service_destroy may free the service. */
void service_close(struct service *svc, void (*cb)(void *data), void *data);
void service_destroy(struct service *svc);

struct service_call;

/**
 * Completion of a call, on the loop thread. @p status is 0 with the
 * response @p body (msgpack map, AWS output shape; valid only during the
 * call), or an error with call->err filled (status, AWS error name,
 * message).
 */
typedef void (*service_cb)(struct service_call *call,
                           int status,
                           const void *body,
                           size_t len);

/* Request metadata the service understands. */
struct service_meta
{
    const char *cid;  /* client session id for exactly-once writes, or NULL */
    uint64_t seq;     /* sequence number in that session (from 1) */
    bool stale;       /* read the local store without a barrier */
    const char *user; /* caller identity (an ARN), or NULL */
};

/* Caller-owned; valid until the callback has run. */
struct service_call
{
    void *data; /* for the caller */
    struct cairn_error err;
    /* private */
    struct service *svc;
    service_cb cb;
    char method[64];
    const char *op;  /* the query or state machine op it runs */
    bool wipe;       /* the response holds plaintext: cleanse it */
    bool retried;    /* a key lookup waited for a read index already */
    struct buf req;  /* copy of the request body */
    struct buf resp; /* response body being built */
    struct service_meta meta;
    char cid[129];
    char user[256];
    bool cancelled;
    void *pending; /* the node request in flight, owned by the service */
};

/**
 * Run @p method with request body @p body (a msgpack map; copied). The
 * callback may run before service_call returns (validation errors, stale
 * reads) or later (writes, linearizable reads). Errors are always reported
 * through the callback: UNIMPLEMENTED / UnknownOperationException for an
 * unknown method, INVALID_ARGUMENT for a malformed body, UNAVAILABLE when
 * this node cannot serve (not the leader, shutting down), plus every
 * business error of the operation.
 */
void service_call(struct service *svc,
                  struct service_call *call,
                  const char *method,
                  size_t method_len,
                  const void *body,
                  size_t body_len,
                  const struct service_meta *meta,
                  service_cb cb);

/**
 * The caller no longer wants the result (client cancelled, deadline
 * passed, connection closed). The callback still runs exactly once, later,
 * and must then only release the call. A write already proposed may still
 * be applied.
 */
void service_cancel(struct service_call *call);

/** True for methods whose results are paged (NextToken), which the server
 * can stream page after page. */
bool service_is_paged(const char *method, size_t len);

#endif
