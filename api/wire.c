/* The wire protocol's frames: codec and stream reassembly. The format is
 * specified in docs/protocol.md; wire.h lists the fields of each frame. */
#include "wire.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of the length prefix in front of every frame. */
#define WIRE_PREFIX 4

/* A reader whose buffer grew past this while holding one large frame gives
 * the memory back once it is empty, so that a server with thousands of idle
 * connections does not keep a frame-sized buffer for each of them. */
#define WIRE_READER_KEEP (64u * 1024u)

/* The elements each frame type must have at least. Receivers ignore
 * elements past these, so that a later version can append fields. */
static const uint32_t min_fields[] = {
    [WIRE_REQUEST] = 6, [WIRE_RESPONSE] = 7, [WIRE_CANCEL] = 2,
    [WIRE_PING] = 2,    [WIRE_PONG] = 2,     [WIRE_GOAWAY] = 3,
};

static const char *const type_names[] = {
    [WIRE_REQUEST] = "request", [WIRE_RESPONSE] = "response",
    [WIRE_CANCEL] = "cancel",   [WIRE_PING] = "ping",
    [WIRE_PONG] = "pong",       [WIRE_GOAWAY] = "goaway",
};

/* ---- encoding -------------------------------------------------------- */

/* Encoding appends a zero length prefix, packs the array after it, then
 * patches the prefix: the payload is packed once, straight into @p out. */
static size_t frame_begin(struct buf *out)
{
    static const uint8_t zero[WIRE_PREFIX] = {0};
    size_t start = out->len;
    buf_append(out, zero, sizeof(zero));
    return start;
}

/* Patch the prefix, or on failure drop whatever was appended, so that a
 * failed encode leaves @p out as it was. */
static int frame_end(struct buf *out, size_t start, int packed)
{
    size_t n;

    if (out->oom) {
        /* Drop the partial frame; the bytes before start are intact. */
        out->len = start;
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (packed != 0) {
        out->len = start;
        return CAIRN_INVALID_ARGUMENT;
    }
    n = out->len - start - WIRE_PREFIX;
    if (n > UINT32_MAX) {
        out->len = start;
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    out->data[start] = (uint8_t)(n >> 24);
    out->data[start + 1] = (uint8_t)(n >> 16);
    out->data[start + 2] = (uint8_t)(n >> 8);
    out->data[start + 3] = (uint8_t)n;
    return 0;
}

static int pack_cstr_or_empty(msgpack_packer *pk, const char *s)
{
    return mp_pack_cstr(pk, s != NULL ? s : "");
}

/* True when @p p starts with a msgpack map header. */
static bool is_map_header(const uint8_t *p, size_t n)
{
    return n > 0 && ((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf);
}

int wire_encode_request(struct buf *out,
                        uint64_t stream,
                        const char *method,
                        uint32_t timeout_ms,
                        const void *metadata,
                        size_t metadata_len,
                        const void *body,
                        size_t body_len)
{
    static const uint8_t empty_map = 0x80;
    msgpack_packer pk;
    size_t start;
    int rv = 0;

    if (method == NULL || method[0] == '\0') {
        return CAIRN_INVALID_ARGUMENT;
    }
    /* The metadata is copied in as bytes: a caller's mistake here would
     * produce a frame every peer rejects, so check it is one map. */
    if (metadata == NULL || metadata_len == 0) {
        metadata = &empty_map;
        metadata_len = 1;
    } else if (!is_map_header(metadata, metadata_len) ||
               mp_check(metadata, metadata_len, NULL) != 0) {
        return CAIRN_INVALID_ARGUMENT;
    }
    start = frame_begin(out);
    mp_packer_init(&pk, out);
    rv |= msgpack_pack_array(&pk, 6);
    rv |= msgpack_pack_uint8(&pk, WIRE_REQUEST);
    rv |= msgpack_pack_uint64(&pk, stream);
    rv |= mp_pack_cstr(&pk, method);
    rv |= msgpack_pack_uint32(&pk, timeout_ms);
    rv |= buf_append(out, metadata, metadata_len) != 0 ? -1 : 0;
    rv |= mp_pack_bin(&pk, body, body_len);
    return frame_end(out, start, rv);
}

int wire_encode_response(struct buf *out,
                         uint64_t stream,
                         int status,
                         const char *error_type,
                         const char *message,
                         const void *body,
                         size_t body_len,
                         bool more)
{
    msgpack_packer pk;
    size_t start;
    int rv = 0;

    if (status < 0) {
        return CAIRN_INVALID_ARGUMENT;
    }
    start = frame_begin(out);
    mp_packer_init(&pk, out);
    rv |= msgpack_pack_array(&pk, 7);
    rv |= msgpack_pack_uint8(&pk, WIRE_RESPONSE);
    rv |= msgpack_pack_uint64(&pk, stream);
    rv |= msgpack_pack_int(&pk, status);
    rv |= pack_cstr_or_empty(&pk, error_type);
    rv |= pack_cstr_or_empty(&pk, message);
    rv |= mp_pack_bin(&pk, body, body_len);
    rv |= more ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    return frame_end(out, start, rv);
}

int wire_encode_cancel(struct buf *out, uint64_t stream)
{
    msgpack_packer pk;
    size_t start = frame_begin(out);
    int rv = 0;

    mp_packer_init(&pk, out);
    rv |= msgpack_pack_array(&pk, 2);
    rv |= msgpack_pack_uint8(&pk, WIRE_CANCEL);
    rv |= msgpack_pack_uint64(&pk, stream);
    return frame_end(out, start, rv);
}

int wire_encode_ping(struct buf *out, enum wire_type type, uint64_t nonce)
{
    msgpack_packer pk;
    size_t start;
    int rv = 0;

    if (type != WIRE_PING && type != WIRE_PONG) {
        return CAIRN_INVALID_ARGUMENT;
    }
    start = frame_begin(out);
    mp_packer_init(&pk, out);
    rv |= msgpack_pack_array(&pk, 2);
    rv |= msgpack_pack_uint8(&pk, (uint8_t)type);
    rv |= msgpack_pack_uint64(&pk, nonce);
    return frame_end(out, start, rv);
}

int wire_encode_goaway(struct buf *out, int status, const char *message)
{
    msgpack_packer pk;
    size_t start;
    int rv = 0;

    if (status < 0) {
        return CAIRN_INVALID_ARGUMENT;
    }
    start = frame_begin(out);
    mp_packer_init(&pk, out);
    rv |= msgpack_pack_array(&pk, 3);
    rv |= msgpack_pack_uint8(&pk, WIRE_GOAWAY);
    rv |= msgpack_pack_int(&pk, status);
    rv |= pack_cstr_or_empty(&pk, message);
    return frame_end(out, start, rv);
}

/* ---- decoding -------------------------------------------------------- */

static int bad_frame(struct cairn_error *err,
                     enum wire_type type,
                     unsigned index,
                     const char *field,
                     const char *want)
{
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                           "SerializationException",
                           "%s frame: element %u (%s) must be %s",
                           type_names[type], index, field, want);
}

static int get_uint(const msgpack_object *o, uint64_t max, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        return -1;
    }
    *v = o->via.u64;
    return 0;
}

static int get_str(const msgpack_object *o, struct mp_str *s)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return -1;
    }
    s->p = o->via.str.size > 0 ? o->via.str.ptr : "";
    s->n = o->via.str.size;
    return 0;
}

/* Check the metadata keys this protocol defines; other keys pass through
 * untouched, for extensions. */
static int check_metadata(const msgpack_object *md, struct cairn_error *err)
{
    for (uint32_t i = 0; i < md->via.map.size; i++) {
        const msgpack_object *k = &md->via.map.ptr[i].key;
        const msgpack_object *v = &md->via.map.ptr[i].val;
        const char *want = NULL;

        if (k->type != MSGPACK_OBJECT_STR) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "request frame: metadata keys must be "
                                   "strings");
        }
        if (mp_str_eq(k, "cid")) {
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
                v->via.str.size > 128) {
                want = "a string of 1 to 128 bytes";
            }
        } else if (mp_str_eq(k, "seq")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0) {
                want = "a positive integer";
            }
        } else if (mp_str_eq(k, "consistency")) {
            if (!mp_str_eq(v, "stale") && !mp_str_eq(v, "linearizable")) {
                want = "\"stale\" or \"linearizable\"";
            }
        } else if (mp_str_eq(k, "stream")) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN) {
                want = "a boolean";
            }
        }
        if (want != NULL) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "request frame: metadata \"%.*s\" must be "
                                   "%s",
                                   (int)k->via.str.size, k->via.str.ptr, want);
        }
    }
    return 0;
}

static int decode_request(const msgpack_object *e,
                          struct wire_msg *msg,
                          struct cairn_error *err)
{
    uint64_t v;

    if (get_uint(&e[1], UINT64_MAX, &msg->stream) != 0) {
        return bad_frame(err, WIRE_REQUEST, 1, "stream", "an unsigned integer");
    }
    if (get_str(&e[2], &msg->method) != 0 || msg->method.n == 0) {
        return bad_frame(err, WIRE_REQUEST, 2, "method", "a non-empty string");
    }
    if (get_uint(&e[3], UINT32_MAX, &v) != 0) {
        return bad_frame(err, WIRE_REQUEST, 3, "timeout_ms",
                         "an unsigned 32-bit integer");
    }
    msg->timeout_ms = (uint32_t)v;
    if (e[4].type == MSGPACK_OBJECT_MAP) {
        msg->metadata = &e[4];
        if (check_metadata(&e[4], err) != 0) {
            return err != NULL ? err->code : CAIRN_INVALID_ARGUMENT;
        }
    } else if (e[4].type != MSGPACK_OBJECT_NIL) {
        return bad_frame(err, WIRE_REQUEST, 4, "metadata", "a map");
    }
    if (e[5].type != MSGPACK_OBJECT_BIN) {
        return bad_frame(err, WIRE_REQUEST, 5, "body", "a bin");
    }
    msg->body.p = e[5].via.bin.size > 0 ? e[5].via.bin.ptr : "";
    msg->body.n = e[5].via.bin.size;
    return 0;
}

static int decode_response(const msgpack_object *e,
                           struct wire_msg *msg,
                           struct cairn_error *err)
{
    uint64_t v;

    if (get_uint(&e[1], UINT64_MAX, &msg->stream) != 0) {
        return bad_frame(err, WIRE_RESPONSE, 1, "stream",
                         "an unsigned integer");
    }
    if (get_uint(&e[2], INT_MAX, &v) != 0) {
        return bad_frame(err, WIRE_RESPONSE, 2, "status",
                         "a non-negative integer");
    }
    msg->status = (int)v;
    if (get_str(&e[3], &msg->error_type) != 0) {
        return bad_frame(err, WIRE_RESPONSE, 3, "error_type", "a string");
    }
    if (get_str(&e[4], &msg->message) != 0) {
        return bad_frame(err, WIRE_RESPONSE, 4, "message", "a string");
    }
    if (e[5].type != MSGPACK_OBJECT_BIN) {
        return bad_frame(err, WIRE_RESPONSE, 5, "body", "a bin");
    }
    msg->body.p = e[5].via.bin.size > 0 ? e[5].via.bin.ptr : "";
    msg->body.n = e[5].via.bin.size;
    if (e[6].type != MSGPACK_OBJECT_BOOLEAN) {
        return bad_frame(err, WIRE_RESPONSE, 6, "more", "a boolean");
    }
    msg->more = e[6].via.boolean;
    return 0;
}

static int decode_goaway(const msgpack_object *e,
                         struct wire_msg *msg,
                         struct cairn_error *err)
{
    uint64_t v;

    if (get_uint(&e[1], INT_MAX, &v) != 0) {
        return bad_frame(err, WIRE_GOAWAY, 1, "status",
                         "a non-negative integer");
    }
    msg->status = (int)v;
    if (get_str(&e[2], &msg->message) != 0) {
        return bad_frame(err, WIRE_GOAWAY, 2, "message", "a string");
    }
    return 0;
}

int wire_decode(const void *payload,
                size_t len,
                struct wire_msg *msg,
                struct mp_doc *doc,
                struct cairn_error *err)
{
    const msgpack_object_array *a;
    enum wire_type type;
    uint64_t t;
    int rv;

    memset(msg, 0, sizeof(*msg));
    rv = mp_doc_parse(doc, payload, len, err);
    if (rv != 0) {
        if (err != NULL && rv == CAIRN_INVALID_ARGUMENT) {
            cairn_error_prefix(err, "frame: ");
        }
        return rv;
    }
    if (doc->root.type != MSGPACK_OBJECT_ARRAY ||
        doc->root.via.array.size == 0) {
        rv = cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                             "SerializationException",
                             "frame: not a non-empty msgpack array");
        goto err_after_doc;
    }
    a = &doc->root.via.array;
    if (get_uint(&a->ptr[0], WIRE_GOAWAY, &t) != 0) {
        rv = cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                             "SerializationException",
                             "frame: unknown frame type (element 0 must be "
                             "an integer from 0 to %d)",
                             WIRE_GOAWAY);
        goto err_after_doc;
    }
    type = (enum wire_type)t;
    if (a->size < min_fields[type]) {
        rv = cairn_error_set(
            err, CAIRN_INVALID_ARGUMENT, "SerializationException",
            "%s frame: %u elements, at least %u needed", type_names[type],
            (unsigned)a->size, (unsigned)min_fields[type]);
        goto err_after_doc;
    }
    msg->type = type;
    switch (type) {
        case WIRE_REQUEST:
            rv = decode_request(a->ptr, msg, err);
            break;
        case WIRE_RESPONSE:
            rv = decode_response(a->ptr, msg, err);
            break;
        case WIRE_CANCEL:
        case WIRE_PING:
        case WIRE_PONG:
            if (get_uint(&a->ptr[1], UINT64_MAX, &msg->stream) != 0) {
                rv = bad_frame(err, type, 1,
                               type == WIRE_CANCEL ? "stream" : "nonce",
                               "an unsigned integer");
            }
            break;
        case WIRE_GOAWAY:
            rv = decode_goaway(a->ptr, msg, err);
            break;
    }
    if (rv != 0) {
        goto err_after_doc;
    }
    return 0;

err_after_doc:
    mp_doc_close(doc);
    memset(msg, 0, sizeof(*msg));
    return rv;
}

/* ---- stream reassembly ----------------------------------------------- */

void wire_reader_init(struct wire_reader *r, size_t max_frame)
{
    buf_init(&r->in);
    r->consumed = 0;
    r->max_frame = max_frame != 0 ? max_frame : WIRE_DEFAULT_MAX_FRAME;
}

void wire_reader_close(struct wire_reader *r)
{
    if (r == NULL) {
        return;
    }
    buf_close(&r->in);
    r->consumed = 0;
}

/* Drop the frames already handed out. Only feed calls this: payloads
 * returned by next stay valid until the next feed, as wire.h promises. */
static void compact(struct wire_reader *r)
{
    size_t left = r->in.len - r->consumed;

    if (r->consumed == 0) {
        return;
    }
    if (left == 0) {
        if (r->in.cap > WIRE_READER_KEEP) {
            buf_close(&r->in);
        } else {
            buf_reset(&r->in);
        }
    } else {
        /* The bytes left are at most one partial frame plus what the last
         * feed brought, so this copy is small next to the reads. */
        memmove(r->in.data, r->in.data + r->consumed, left);
        r->in.len = left;
    }
    r->consumed = 0;
}

int wire_reader_feed(struct wire_reader *r, const void *p, size_t n)
{
    compact(r);
    if (n == 0) {
        return 0;
    }
    /* buf keeps its oom flag; a reader whose buffer failed once would
     * refuse every later byte, so clear it: nothing was appended. */
    if (buf_append(&r->in, p, n) != 0) {
        r->in.oom = 0;
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    return 0;
}

int wire_reader_next(struct wire_reader *r,
                     const uint8_t **payload,
                     size_t *len)
{
    size_t avail = r->in.len - r->consumed;
    const uint8_t *p;
    uint32_t n;

    if (avail < WIRE_PREFIX) {
        return 0;
    }
    p = r->in.data + r->consumed;
    n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
        ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    /* An empty payload cannot hold the msgpack array every frame is; a
     * length above the limit is refused as soon as the prefix is here,
     * without waiting for (and buffering) the payload. */
    if (n == 0 || n > r->max_frame) {
        return -1;
    }
    if (avail - WIRE_PREFIX < n) {
        return 0;
    }
    *payload = p + WIRE_PREFIX;
    *len = n;
    r->consumed += WIRE_PREFIX + (size_t)n;
    return 1;
}
