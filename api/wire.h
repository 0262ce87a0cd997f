/* The wire protocol's frames: codec and stream reassembly (docs/protocol.md).
 * No sockets here: the server and the client library both use it. */
#ifndef CAIRN_API_WIRE_H
#define CAIRN_API_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"
#include "status.h"

/* A frame is a 4-byte big-endian length then one msgpack array:
 *   request  [0, stream, method, timeout_ms, metadata, body]
 *   response [1, stream, status, error_type, message, body, more]
 *   cancel   [2, stream]
 *   ping     [3, nonce]      pong [4, nonce]
 *   goaway   [5, status, message]   (server closes after sending it)
 * stream: a client-chosen id, unique among the connection's open streams.
 * timeout_ms: the deadline relative to receipt, 0 for none.
 * metadata: a map of strings (client session "cid"/"seq", "consistency",
 * "stream": true to stream every page of a paged method).
 * body: a bin holding the msgpack request or response map (AWS field
 * names), so that it passes through without re-encoding.
 * more: true on every response of a server stream but the last. */

#define WIRE_DEFAULT_MAX_FRAME (4u << 20)

enum wire_type {
    WIRE_REQUEST = 0,
    WIRE_RESPONSE = 1,
    WIRE_CANCEL = 2,
    WIRE_PING = 3,
    WIRE_PONG = 4,
    WIRE_GOAWAY = 5,
};

/* A decoded frame. Strings and body point into the frame bytes (and the
 * metadata into the document); valid while both live. */
struct wire_msg
{
    enum wire_type type;
    uint64_t stream; /* request, response, cancel; nonce for ping/pong */
    /* request */
    struct mp_str method;
    uint32_t timeout_ms;
    const msgpack_object *metadata; /* a map, or NULL */
    /* response and goaway */
    int status;
    struct mp_str error_type;
    struct mp_str message;
    bool more;
    /* request and response */
    struct mp_str body;
};

/** Append one complete frame (length prefix included) to @p out. */
int wire_encode_request(struct buf *out,
                        uint64_t stream,
                        const char *method,
                        uint32_t timeout_ms,
                        const void *metadata,
                        size_t metadata_len,
                        const void *body,
                        size_t body_len);
/* metadata: a packed msgpack map (or NULL for an empty map). */
int wire_encode_response(struct buf *out,
                         uint64_t stream,
                         int status,
                         const char *error_type,
                         const char *message,
                         const void *body,
                         size_t body_len,
                         bool more);
int wire_encode_cancel(struct buf *out, uint64_t stream);
int wire_encode_ping(struct buf *out, enum wire_type type, uint64_t nonce);
int wire_encode_goaway(struct buf *out, int status, const char *message);

/**
 * Decode one frame payload (without its length prefix). On success the
 * caller closes @p doc. Errors: INVALID_ARGUMENT with a message saying what
 * is wrong (not msgpack, not an array, unknown type, wrong field types).
 */
int wire_decode(const void *payload,
                size_t len,
                struct wire_msg *msg,
                struct mp_doc *doc,
                struct cairn_error *err);

/* Reassembles frames from a byte stream. */
struct wire_reader
{
    struct buf in;    /* bytes received and not yet consumed */
    size_t consumed;  /* offset of the next frame in in */
    size_t max_frame; /* largest payload accepted */
};

void wire_reader_init(struct wire_reader *r, size_t max_frame);
void wire_reader_close(struct wire_reader *r);
/** Append received bytes. 0 or RESOURCE_EXHAUSTED. */
int wire_reader_feed(struct wire_reader *r, const void *p, size_t n);
/**
 * Take the next complete frame payload: 1 and *payload, *len (valid until
 * the next feed), 0 when more bytes are needed, or RESOURCE_EXHAUSTED
 * (negative: -1) when the announced length exceeds max_frame: the peer
 * must be disconnected.
 */
int wire_reader_next(struct wire_reader *r,
                     const uint8_t **payload,
                     size_t *len);

#endif
