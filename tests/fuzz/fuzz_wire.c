/* Fuzz target: the wire protocol's stream reassembly and frame decoder on
 * untrusted bytes, as the server reads them. Nothing may crash or leak;
 * memory stays bounded by the maximum frame size; and every frame that
 * decodes re-encodes to a frame that decodes to the same fields. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mp.h"
#include "status.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "fuzz_wire: check failed at %s:%d: %s\n", \
                    __FILE__, __LINE__, #cond);                       \
            abort();                                                  \
        }                                                             \
    } while (0)

#define MAX_FRAME 65536

static bool same(struct mp_str a, struct mp_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Re-encode a decoded request or response and check the copy. */
static void round_trip(const struct wire_msg *m)
{
    struct buf out;
    struct buf meta;
    struct wire_reader r;
    struct wire_msg m2;
    struct mp_doc doc;
    struct cairn_error err;
    const uint8_t *payload;
    size_t len;
    char method[256];
    char type[256], message[256];
    msgpack_packer pk;
    int rv;

    buf_init(&out);
    buf_init(&meta);
    if (m->type == WIRE_REQUEST) {
        if (m->method.n >= sizeof(method) ||
            memchr(m->method.p, '\0', m->method.n) != NULL) {
            return;
        }
        memcpy(method, m->method.p, m->method.n);
        method[m->method.n] = '\0';
        if (m->metadata != NULL) {
            mp_packer_init(&pk, &meta);
            msgpack_pack_object(&pk, *m->metadata);
        }
        rv = wire_encode_request(&out, m->stream, method, m->timeout_ms,
                                 meta.len > 0 ? meta.data : NULL, meta.len,
                                 m->body.p, m->body.n);
    } else if (m->type == WIRE_RESPONSE) {
        if (m->error_type.n >= sizeof(type) ||
            m->message.n >= sizeof(message) ||
            memchr(m->error_type.p, '\0', m->error_type.n) != NULL ||
            memchr(m->message.p, '\0', m->message.n) != NULL) {
            return;
        }
        memcpy(type, m->error_type.p, m->error_type.n);
        type[m->error_type.n] = '\0';
        memcpy(message, m->message.p, m->message.n);
        message[m->message.n] = '\0';
        rv = wire_encode_response(&out, m->stream, m->status, type, message,
                                  m->body.p, m->body.n, m->more);
    } else {
        return;
    }
    CHECK(rv == 0);
    wire_reader_init(&r, (size_t)1 << 30);
    CHECK(wire_reader_feed(&r, out.data, out.len) == 0);
    CHECK(wire_reader_next(&r, &payload, &len) == 1);
    CHECK(wire_decode(payload, len, &m2, &doc, &err) == 0);
    CHECK(m2.type == m->type && m2.stream == m->stream);
    CHECK(same(m2.body, m->body));
    if (m->type == WIRE_REQUEST) {
        CHECK(same(m2.method, m->method) && m2.timeout_ms == m->timeout_ms);
    } else {
        CHECK(m2.status == m->status && m2.more == m->more);
        CHECK(same(m2.error_type, m->error_type));
        CHECK(same(m2.message, m->message));
    }
    mp_doc_close(&doc);
    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_reader r;
    /* The first byte picks the chunk size, so the same frames arrive split
     * in different places. */
    size_t chunk = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
    size_t off = 0;

    wire_reader_init(&r, MAX_FRAME);
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        const uint8_t *payload;
        size_t len;
        int rv;

        CHECK(wire_reader_feed(&r, data + off, n) == 0);
        off += n;
        while ((rv = wire_reader_next(&r, &payload, &len)) == 1) {
            struct wire_msg m;
            struct mp_doc doc;
            struct cairn_error err;
            CHECK(len <= MAX_FRAME);
            if (wire_decode(payload, len, &m, &doc, &err) == 0) {
                round_trip(&m);
                mp_doc_close(&doc);
            } else {
                CHECK(err.code == CAIRN_INVALID_ARGUMENT);
                CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
            }
        }
        if (rv < 0) {
            break; /* the server disconnects here */
        }
        /* Buffered bytes never exceed one frame plus what one feed adds. */
        CHECK(r.in.len - r.consumed <= MAX_FRAME + 4 + chunk);
    }
    wire_reader_close(&r);
    return 0;
}
