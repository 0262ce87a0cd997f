/* Node-to-node calls over the client protocol (docs/protocol.md): a
 * follower forwards writes and read-index requests to the leader's API
 * address, and a node asks its peers for their status. Asynchronous, on the
 * node's libuv loop: one multiplexed connection per peer address, opened on
 * first use and reopened after a failure. */
#ifndef CAIRN_API_PEER_H
#define CAIRN_API_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "queue.h"
#include "status.h"

struct peer_pool;

/** Create a pool on @p loop. 0, or RESOURCE_EXHAUSTED. Loop thread only. */
int peer_pool_create(uv_loop_t *loop,
                     struct peer_pool **out,
                     struct cairn_error *err);

typedef void (*peer_pool_close_cb)(void *data);

/** Fail every call in flight with UNAVAILABLE (their callbacks run before
 * this returns), close every connection, free the pool once every handle
 * is closed, then run @p cb (may be NULL). */
void peer_pool_close(struct peer_pool *p, peer_pool_close_cb cb, void *data);

struct peer_call;

/**
 * Completion of a call, on the loop thread, exactly once. @p status is the
 * peer's response status (0 = OK) with its AWS error name @p type and
 * @p message (NUL-terminated, "" when none), and the response @p body
 * (msgpack, valid only during the call, may be empty). Transport failures
 * (connect refused, connection lost, bad frame) are UNAVAILABLE with type
 * "ServiceUnavailable"; an expired timeout is DEADLINE_EXCEEDED
 * ("RequestTimeout"). A cancelled call still gets its callback, with
 * CANCELLED ("RequestCanceled").
 */
typedef void (*peer_cb)(struct peer_call *call,
                        int status,
                        const char *type,
                        const char *message,
                        const void *body,
                        size_t len);

/* Caller-owned; must stay valid until the callback has run. */
struct peer_call
{
    void *data; /* for the caller */
    /* private */
    peer_cb cb;
    struct peer_conn *conn;
    uint64_t stream;
    uint64_t deadline; /* uv_now() + timeout */
    struct cairn_queue link;
};

/**
 * Send @p method with the packed msgpack metadata map @p meta (NULL for
 * none) and @p body (a msgpack map) to the peer at @p address
 * ("host:port", numeric IPv4 or a name) with a deadline of @p timeout_ms
 * (also sent in the frame; 0 sends none and waits 30 s locally). Returns 0
 * and the callback will run, or an error without calling it:
 * INVALID_ARGUMENT (bad address, empty method, metadata not a map),
 * RESOURCE_EXHAUSTED (out of memory, or 8 MiB already queued to that
 * peer), UNAVAILABLE (the pool is closing). A server-streamed response
 * (more=true) is not supported: the first response is delivered and the
 * rest of the stream is cancelled.
 */
int peer_call_start(struct peer_pool *p,
                    struct peer_call *call,
                    const char *address,
                    const char *method,
                    const void *meta,
                    size_t meta_len,
                    const void *body,
                    size_t body_len,
                    unsigned timeout_ms,
                    peer_cb cb);

/** The caller no longer wants the result: the callback runs soon with
 * CANCELLED (a cancel frame is sent to the peer). */
void peer_call_cancel(struct peer_call *call);

#endif
