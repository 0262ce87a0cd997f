/* Unit tests for api/wire.c: frame encoding and decoding, the validation of
 * every field, and stream reassembly in wire_reader. */
#include "test.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "wire.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

struct fixture
{
    struct buf out; /* encoded frames */
    struct buf raw; /* hand-packed payloads for the decode error cases */
    msgpack_packer pk;
    struct wire_msg msg;
    struct mp_doc doc;
    bool doc_open;
    struct cairn_error err;
    struct wire_reader r;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    buf_init(&f->out);
    buf_init(&f->raw);
    mp_packer_init(&f->pk, &f->raw);
    wire_reader_init(&f->r, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->doc_open) {
        mp_doc_close(&f->doc);
    }
    wire_reader_close(&f->r);
    buf_close(&f->raw);
    buf_close(&f->out);
    free(f);
    return 0;
}

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Decode the only frame in f->out, checking its length prefix first. */
static const struct wire_msg *decode_out(struct fixture *f)
{
    assert_true(f->out.len > 4);
    assert_int_equal(be32(f->out.data), f->out.len - 4);
    if (wire_decode(f->out.data + 4, f->out.len - 4, &f->msg, &f->doc,
                    &f->err) != 0) {
        fail_msg("wire_decode: %s", f->err.msg);
    }
    f->doc_open = true;
    return &f->msg;
}

/* Decode the hand-packed payload in f->raw; return the status. */
static int decode_raw(struct fixture *f)
{
    int rv;

    assert_false(f->raw.oom);
    cairn_error_clear(&f->err);
    rv = wire_decode(f->raw.data, f->raw.len, &f->msg, &f->doc, &f->err);
    if (rv == 0) {
        f->doc_open = true;
    }
    return rv;
}

/* Start a new hand-packed payload. */
static void raw_reset(struct fixture *f)
{
    if (f->doc_open) {
        mp_doc_close(&f->doc);
        f->doc_open = false;
    }
    buf_reset(&f->raw);
}

static bool str_is(struct mp_str s, const char *want)
{
    return s.p != NULL && s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

#define ASSERT_STR(S, WANT)                                     \
    do {                                                        \
        if (!str_is((S), (WANT))) {                             \
            fail_msg("got \"%.*s\", want \"%s\"", (int)(S).n,   \
                     (S).p != NULL ? (S).p : "(null)", (WANT)); \
        }                                                       \
    } while (0)

/* Fail unless the hand-packed payload is refused with INVALID_ARGUMENT and
 * a message containing @p words. */
#define ASSERT_REFUSED(F, WORDS)                                          \
    do {                                                                  \
        assert_int_equal(decode_raw(F), CAIRN_INVALID_ARGUMENT);          \
        assert_int_equal((F)->err.code, CAIRN_INVALID_ARGUMENT);          \
        if (strstr((F)->err.msg, (WORDS)) == NULL) {                      \
            fail_msg("message \"%s\" lacks \"%s\"", (F)->err.msg, WORDS); \
        }                                                                 \
    } while (0)

/* Pack a well-formed request payload into f->raw, with element @p skip
 * replaced by a string (a wrong type for every request element but the
 * method) when skip is in 0..5. */
static void pack_request_with(struct fixture *f, int wrong)
{
    msgpack_packer *pk = &f->pk;

    raw_reset(f);
    msgpack_pack_array(pk, 6);
    wrong == 0 ? mp_pack_cstr(pk, "x") : msgpack_pack_uint8(pk, WIRE_REQUEST);
    wrong == 1 ? mp_pack_cstr(pk, "x") : msgpack_pack_uint64(pk, 9);
    wrong == 2 ? msgpack_pack_uint8(pk, 1) : mp_pack_cstr(pk, "GetParameter");
    wrong == 3 ? mp_pack_cstr(pk, "x") : msgpack_pack_uint32(pk, 100);
    wrong == 4 ? mp_pack_cstr(pk, "x") : msgpack_pack_map(pk, 0);
    wrong == 5 ? mp_pack_cstr(pk, "x") : mp_pack_bin(pk, "\x80", 1);
}

static void pack_response_with(struct fixture *f, int wrong)
{
    msgpack_packer *pk = &f->pk;

    raw_reset(f);
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, WIRE_RESPONSE);
    wrong == 1 ? msgpack_pack_int(pk, -1) : msgpack_pack_uint64(pk, 9);
    wrong == 2 ? mp_pack_cstr(pk, "OK") : msgpack_pack_int(pk, 0);
    wrong == 3 ? msgpack_pack_nil(pk) : mp_pack_cstr(pk, "");
    wrong == 4 ? msgpack_pack_uint8(pk, 1) : mp_pack_cstr(pk, "");
    wrong == 5 ? mp_pack_cstr(pk, "{}") : mp_pack_bin(pk, "\x80", 1);
    wrong == 6 ? msgpack_pack_uint8(pk, 0) : msgpack_pack_false(pk);
}

/* Pack a request whose metadata map has one entry, key then value packed by
 * the caller afterwards: returns the packer positioned at the key. */
static msgpack_packer *pack_request_metadata(struct fixture *f)
{
    raw_reset(f);
    msgpack_pack_array(&f->pk, 6);
    msgpack_pack_uint8(&f->pk, WIRE_REQUEST);
    msgpack_pack_uint64(&f->pk, 1);
    mp_pack_cstr(&f->pk, "PutParameter");
    msgpack_pack_uint32(&f->pk, 0);
    msgpack_pack_map(&f->pk, 1);
    return &f->pk;
}

static void finish_request_metadata(struct fixture *f)
{
    mp_pack_bin(&f->pk, "\x80", 1);
}

/* Encode three frames of different types into f->out. */
static void encode_three(struct fixture *f)
{
    assert_int_equal(wire_encode_request(&f->out, 1, "GetParameter", 500, NULL,
                                         0, "\x81\xa4Name\xa2/a", 9),
                     0);
    assert_int_equal(wire_encode_ping(&f->out, WIRE_PING, 77), 0);
    assert_int_equal(
        wire_encode_response(&f->out, 1, CAIRN_NOT_FOUND, "ParameterNotFound",
                             "no /a", NULL, 0, false),
        0);
}

/* Check the three frames of encode_three, in order. */
static void check_three(const uint8_t *payload[3], const size_t len[3])
{
    struct wire_msg m;
    struct mp_doc d;
    struct cairn_error e;

    assert_int_equal(wire_decode(payload[0], len[0], &m, &d, &e), 0);
    assert_int_equal(m.type, WIRE_REQUEST);
    assert_int_equal(m.timeout_ms, 500);
    ASSERT_STR(m.method, "GetParameter");
    mp_doc_close(&d);
    assert_int_equal(wire_decode(payload[1], len[1], &m, &d, &e), 0);
    assert_int_equal(m.type, WIRE_PING);
    assert_int_equal(m.stream, 77);
    mp_doc_close(&d);
    assert_int_equal(wire_decode(payload[2], len[2], &m, &d, &e), 0);
    assert_int_equal(m.type, WIRE_RESPONSE);
    assert_int_equal(m.status, CAIRN_NOT_FOUND);
    ASSERT_STR(m.message, "no /a");
    mp_doc_close(&d);
}

/******************************************************************************
 *
 * Round trips
 *
 *****************************************************************************/

/* A request keeps its stream, method, timeout, metadata and body. */
static void request_round_trip(void **state)
{
    struct fixture *f = *state;
    struct buf md;
    msgpack_packer pk;
    const struct wire_msg *m;
    uint64_t seq = 0;
    struct mp_str cid;

    buf_init(&md);
    mp_packer_init(&pk, &md);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_cstr(&pk, "cid", "0123456789abcdef0123456789abcdef");
    mp_pack_kv_u64(&pk, "seq", 42);
    assert_int_equal(
        wire_encode_request(&f->out, UINT64_MAX, "PutParameter", UINT32_MAX,
                            md.data, md.len, "\x81\xa4Name\xa2/a", 9),
        0);
    buf_close(&md);

    m = decode_out(f);
    assert_int_equal(m->type, WIRE_REQUEST);
    assert_true(m->stream == UINT64_MAX);
    ASSERT_STR(m->method, "PutParameter");
    assert_int_equal(m->timeout_ms, UINT32_MAX);
    assert_non_null(m->metadata);
    assert_int_equal(mp_get_str(m->metadata, "cid", &cid, NULL), 1);
    ASSERT_STR(cid, "0123456789abcdef0123456789abcdef");
    assert_int_equal(mp_get_u64(m->metadata, "seq", &seq, NULL), 1);
    assert_int_equal(seq, 42);
    assert_int_equal(m->body.n, 9);
    assert_memory_equal(m->body.p, "\x81\xa4Name\xa2/a", 9);
}

/* A request without metadata carries an empty map and may have no body. */
static void request_without_metadata(void **state)
{
    struct fixture *f = *state;
    const struct wire_msg *m;

    assert_int_equal(wire_encode_request(&f->out, 0, "GetServiceSetting", 0,
                                         NULL, 0, NULL, 0),
                     0);
    m = decode_out(f);
    assert_int_equal(m->type, WIRE_REQUEST);
    assert_int_equal(m->stream, 0);
    assert_int_equal(m->timeout_ms, 0);
    assert_non_null(m->metadata);
    assert_int_equal(m->metadata->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(m->metadata->via.map.size, 0);
    assert_non_null(m->body.p);
    assert_int_equal(m->body.n, 0);
}

/* The encoder refuses an empty method and metadata that is not one map,
 * leaving the output buffer as it was. */
static void request_encode_refusals(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(wire_encode_ping(&f->out, WIRE_PING, 1), 0);
    assert_int_equal(f->out.len, 7);
    assert_int_equal(wire_encode_request(&f->out, 1, "", 0, NULL, 0, NULL, 0),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(wire_encode_request(&f->out, 1, NULL, 0, NULL, 0, NULL, 0),
                     CAIRN_INVALID_ARGUMENT);
    /* An array, then a map with a byte missing, then a map and a spare. */
    assert_int_equal(
        wire_encode_request(&f->out, 1, "M", 0, "\x90", 1, NULL, 0),
        CAIRN_INVALID_ARGUMENT);
    assert_int_equal(
        wire_encode_request(&f->out, 1, "M", 0, "\x81\xa1k", 3, NULL, 0),
        CAIRN_INVALID_ARGUMENT);
    assert_int_equal(
        wire_encode_request(&f->out, 1, "M", 0, "\x80\xc0", 2, NULL, 0),
        CAIRN_INVALID_ARGUMENT);
    assert_int_equal(f->out.len, 7);
}

/* A response keeps its stream, status, error name, message, body and the
 * more flag; NULL strings become empty strings. */
static void response_round_trip(void **state)
{
    struct fixture *f = *state;
    const struct wire_msg *m;

    assert_int_equal(
        wire_encode_response(&f->out, 12345678901ull, CAIRN_NOT_FOUND,
                             "ParameterNotFound", "Parameter /a not found.",
                             "\x80", 1, true),
        0);
    m = decode_out(f);
    assert_int_equal(m->type, WIRE_RESPONSE);
    assert_true(m->stream == 12345678901ull);
    assert_int_equal(m->status, CAIRN_NOT_FOUND);
    ASSERT_STR(m->error_type, "ParameterNotFound");
    ASSERT_STR(m->message, "Parameter /a not found.");
    assert_int_equal(m->body.n, 1);
    assert_true(m->more);

    mp_doc_close(&f->doc);
    f->doc_open = false;
    buf_reset(&f->out);
    assert_int_equal(
        wire_encode_response(&f->out, 3, 0, NULL, NULL, NULL, 0, false), 0);
    m = decode_out(f);
    assert_int_equal(m->status, 0);
    ASSERT_STR(m->error_type, "");
    ASSERT_STR(m->message, "");
    assert_int_equal(m->body.n, 0);
    assert_false(m->more);
}

/* A negative status cannot be encoded. */
static void response_negative_status(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(
        wire_encode_response(&f->out, 1, -1, NULL, NULL, NULL, 0, false),
        CAIRN_INVALID_ARGUMENT);
    assert_int_equal(wire_encode_goaway(&f->out, -3, "x"),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(f->out.len, 0);
}

/* A cancel keeps its stream id. */
static void cancel_round_trip(void **state)
{
    struct fixture *f = *state;
    const struct wire_msg *m;

    assert_int_equal(wire_encode_cancel(&f->out, 99), 0);
    m = decode_out(f);
    assert_int_equal(m->type, WIRE_CANCEL);
    assert_int_equal(m->stream, 99);
}

/* Ping and pong keep their nonce; other types are refused by the ping
 * encoder. */
static void ping_pong_round_trip(void **state)
{
    struct fixture *f = *state;
    const struct wire_msg *m;

    assert_int_equal(wire_encode_ping(&f->out, WIRE_PING, 0xdeadbeefcafeull),
                     0);
    m = decode_out(f);
    assert_int_equal(m->type, WIRE_PING);
    assert_true(m->stream == 0xdeadbeefcafeull);

    mp_doc_close(&f->doc);
    f->doc_open = false;
    buf_reset(&f->out);
    assert_int_equal(wire_encode_ping(&f->out, WIRE_PONG, 5), 0);
    m = decode_out(f);
    assert_int_equal(m->type, WIRE_PONG);
    assert_int_equal(m->stream, 5);

    buf_reset(&f->out);
    assert_int_equal(wire_encode_ping(&f->out, WIRE_CANCEL, 5),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(wire_encode_ping(&f->out, (enum wire_type)9, 5),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(f->out.len, 0);
}

/* A goaway keeps its status and message. */
static void goaway_round_trip(void **state)
{
    struct fixture *f = *state;
    const struct wire_msg *m;

    assert_int_equal(
        wire_encode_goaway(&f->out, CAIRN_UNAVAILABLE, "shutting down"), 0);
    m = decode_out(f);
    assert_int_equal(m->type, WIRE_GOAWAY);
    assert_int_equal(m->status, CAIRN_UNAVAILABLE);
    ASSERT_STR(m->message, "shutting down");
}

/* Encoders append: several frames can be built in one buffer. */
static void encoders_append(void **state)
{
    struct fixture *f = *state;
    const uint8_t *payload[3];
    size_t len[3];
    size_t off = 0;

    encode_three(f);
    for (int i = 0; i < 3; i++) {
        assert_true(off + 4 <= f->out.len);
        len[i] = be32(f->out.data + off);
        payload[i] = f->out.data + off + 4;
        off += 4 + len[i];
    }
    assert_int_equal(off, f->out.len);
    check_three(payload, len);
}

/******************************************************************************
 *
 * Decode errors
 *
 *****************************************************************************/

/* Bytes that are not msgpack, and an empty payload, are refused. */
static void decode_not_msgpack(void **state)
{
    struct fixture *f = *state;

    raw_reset(f);
    buf_append(&f->raw, "\xc1", 1);
    ASSERT_REFUSED(f, "frame");
    raw_reset(f);
    assert_int_equal(decode_raw(f), CAIRN_INVALID_ARGUMENT);
}

/* Every strict prefix of a valid frame payload is refused as truncated. */
static void decode_truncated(void **state)
{
    struct fixture *f = *state;
    struct wire_msg m;
    struct mp_doc d;
    struct cairn_error e;

    assert_int_equal(wire_encode_response(&f->out, 1, 5, "ParameterNotFound",
                                          "gone", "\x81\xa1k\xa1v", 5, false),
                     0);
    for (size_t n = 1; n < f->out.len - 4; n++) {
        assert_int_equal(wire_decode(f->out.data + 4, n, &m, &d, &e),
                         CAIRN_INVALID_ARGUMENT);
        assert_non_null(strstr(e.msg, "truncated"));
    }
}

/* A payload with bytes after the array is refused. */
static void decode_trailing_bytes(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(wire_encode_cancel(&f->out, 7), 0);
    raw_reset(f);
    buf_append(&f->raw, f->out.data + 4, f->out.len - 4);
    buf_append(&f->raw, "\x00", 1);
    ASSERT_REFUSED(f, "trail");
}

/* A frame that is not an array, or an empty array, is refused. */
static void decode_not_array(void **state)
{
    struct fixture *f = *state;

    raw_reset(f);
    msgpack_pack_map(&f->pk, 0);
    ASSERT_REFUSED(f, "array");
    raw_reset(f);
    msgpack_pack_array(&f->pk, 0);
    ASSERT_REFUSED(f, "array");
    raw_reset(f);
    msgpack_pack_uint8(&f->pk, 3);
    ASSERT_REFUSED(f, "array");
}

/* A frame type outside 0..5, or not an unsigned integer, is refused. */
static void decode_unknown_type(void **state)
{
    struct fixture *f = *state;

    raw_reset(f);
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_uint8(&f->pk, 6);
    msgpack_pack_uint8(&f->pk, 1);
    ASSERT_REFUSED(f, "unknown frame type");
    raw_reset(f);
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_int(&f->pk, -1);
    msgpack_pack_uint8(&f->pk, 1);
    ASSERT_REFUSED(f, "unknown frame type");
    raw_reset(f);
    msgpack_pack_array(&f->pk, 2);
    mp_pack_cstr(&f->pk, "ping");
    msgpack_pack_uint8(&f->pk, 1);
    ASSERT_REFUSED(f, "unknown frame type");
}

/* Each frame type with one element too few is refused, naming the type. */
static void decode_missing_fields(void **state)
{
    struct fixture *f = *state;
    static const struct
    {
        enum wire_type type;
        unsigned n;
        const char *name;
    } cases[] = {
        {WIRE_REQUEST, 5, "request"}, {WIRE_RESPONSE, 6, "response"},
        {WIRE_CANCEL, 1, "cancel"},   {WIRE_PING, 1, "ping"},
        {WIRE_PONG, 1, "pong"},       {WIRE_GOAWAY, 2, "goaway"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raw_reset(f);
        msgpack_pack_array(&f->pk, cases[i].n);
        msgpack_pack_uint8(&f->pk, (uint8_t)cases[i].type);
        for (unsigned j = 1; j < cases[i].n; j++) {
            msgpack_pack_uint8(&f->pk, 0);
        }
        ASSERT_REFUSED(f, cases[i].name);
        assert_non_null(strstr(f->err.msg, "elements"));
    }
}

/* Elements after the ones a frame type defines are ignored, so that later
 * versions can append fields. */
static void decode_extra_elements_ignored(void **state)
{
    struct fixture *f = *state;

    raw_reset(f);
    msgpack_pack_array(&f->pk, 4);
    msgpack_pack_uint8(&f->pk, WIRE_CANCEL);
    msgpack_pack_uint8(&f->pk, 8);
    mp_pack_cstr(&f->pk, "future");
    msgpack_pack_map(&f->pk, 0);
    assert_int_equal(decode_raw(f), 0);
    assert_int_equal(f->msg.type, WIRE_CANCEL);
    assert_int_equal(f->msg.stream, 8);
}

/* Every request element with a wrong type is refused, naming the element. */
static void decode_request_wrong_types(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {
        "unknown frame type", "stream",   "method",
        "timeout_ms",         "metadata", "body"};

    pack_request_with(f, -1);
    assert_int_equal(decode_raw(f), 0);
    for (int i = 0; i < 6; i++) {
        pack_request_with(f, i);
        ASSERT_REFUSED(f, names[i]);
    }
}

/* An empty method, a timeout above 32 bits and a negative stream id are
 * refused; nil metadata is accepted as none. */
static void decode_request_ranges(void **state)
{
    struct fixture *f = *state;
    msgpack_packer *pk = &f->pk;

    raw_reset(f);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, WIRE_REQUEST);
    msgpack_pack_uint8(pk, 1);
    mp_pack_cstr(pk, "");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_map(pk, 0);
    mp_pack_bin(pk, NULL, 0);
    ASSERT_REFUSED(f, "method");

    raw_reset(f);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, WIRE_REQUEST);
    msgpack_pack_uint8(pk, 1);
    mp_pack_cstr(pk, "M");
    msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
    msgpack_pack_map(pk, 0);
    mp_pack_bin(pk, NULL, 0);
    ASSERT_REFUSED(f, "timeout_ms");

    raw_reset(f);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, WIRE_REQUEST);
    msgpack_pack_int(pk, -5);
    mp_pack_cstr(pk, "M");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_map(pk, 0);
    mp_pack_bin(pk, NULL, 0);
    ASSERT_REFUSED(f, "stream");

    raw_reset(f);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, WIRE_REQUEST);
    msgpack_pack_uint8(pk, 1);
    mp_pack_cstr(pk, "M");
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_nil(pk);
    mp_pack_bin(pk, NULL, 0);
    assert_int_equal(decode_raw(f), 0);
    assert_null(f->msg.metadata);
}

/* Metadata keys that are not strings, and the defined keys with values of
 * the wrong type, are refused; unknown keys pass. */
static void decode_metadata_types(void **state)
{
    struct fixture *f = *state;
    msgpack_packer *pk;

    pk = pack_request_metadata(f);
    msgpack_pack_uint8(pk, 1);
    mp_pack_cstr(pk, "v");
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "metadata keys");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "cid");
    msgpack_pack_uint8(pk, 7);
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "\"cid\"");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "cid");
    mp_pack_cstr(pk, "");
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "\"cid\"");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "seq");
    msgpack_pack_uint8(pk, 0);
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "\"seq\"");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "seq");
    msgpack_pack_int(pk, -2);
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "\"seq\"");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "consistency");
    mp_pack_cstr(pk, "eventual");
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "\"consistency\"");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "stream");
    mp_pack_cstr(pk, "yes");
    finish_request_metadata(f);
    ASSERT_REFUSED(f, "\"stream\"");

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "trace");
    msgpack_pack_array(pk, 0);
    finish_request_metadata(f);
    assert_int_equal(decode_raw(f), 0);

    pk = pack_request_metadata(f);
    mp_pack_cstr(pk, "consistency");
    mp_pack_cstr(pk, "stale");
    finish_request_metadata(f);
    assert_int_equal(decode_raw(f), 0);
}

/* Every response element with a wrong type is refused, naming the
 * element. */
static void decode_response_wrong_types(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {
        NULL, "stream", "status", "error_type", "message", "body", "more"};

    pack_response_with(f, -1);
    assert_int_equal(decode_raw(f), 0);
    for (int i = 1; i < 7; i++) {
        pack_response_with(f, i);
        ASSERT_REFUSED(f, names[i]);
    }
}

/* A status above INT_MAX is refused in responses and goaways. */
static void decode_status_range(void **state)
{
    struct fixture *f = *state;
    msgpack_packer *pk = &f->pk;

    raw_reset(f);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, WIRE_GOAWAY);
    msgpack_pack_uint64(pk, (uint64_t)INT_MAX + 1);
    mp_pack_cstr(pk, "bye");
    ASSERT_REFUSED(f, "status");

    raw_reset(f);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, WIRE_GOAWAY);
    msgpack_pack_uint8(pk, 14);
    msgpack_pack_uint8(pk, 0);
    ASSERT_REFUSED(f, "message");
}

/* Cancel, ping and pong need an unsigned integer id. */
static void decode_id_types(void **state)
{
    struct fixture *f = *state;

    for (int t = WIRE_CANCEL; t <= WIRE_PONG; t++) {
        raw_reset(f);
        msgpack_pack_array(&f->pk, 2);
        msgpack_pack_uint8(&f->pk, (uint8_t)t);
        msgpack_pack_double(&f->pk, 1.5);
        ASSERT_REFUSED(f, t == WIRE_CANCEL ? "stream" : "nonce");
    }
}

/******************************************************************************
 *
 * Stream reassembly
 *
 *****************************************************************************/

/* Take every frame the reader has; returns how many were stored. */
static int drain(struct wire_reader *r,
                 const uint8_t **payload,
                 size_t *len,
                 int have,
                 int max)
{
    const uint8_t *p;
    size_t n;
    int rv;

    while ((rv = wire_reader_next(r, &p, &n)) == 1) {
        assert_true(have < max);
        payload[have] = p;
        len[have] = n;
        have++;
    }
    assert_int_equal(rv, 0);
    return have;
}

/* Three frames split in two at every byte boundary come out whole and in
 * order. */
static void reader_split_everywhere(void **state)
{
    struct fixture *f = *state;

    encode_three(f);
    for (size_t cut = 0; cut <= f->out.len; cut++) {
        struct wire_reader r;
        const uint8_t *payload[3];
        size_t len[3];
        /* Copies: a payload is valid only until the next feed. */
        uint8_t copy[3][256];
        const uint8_t *cp[3];
        int n;

        wire_reader_init(&r, 1024);
        assert_int_equal(wire_reader_feed(&r, f->out.data, cut), 0);
        n = drain(&r, payload, len, 0, 3);
        for (int i = 0; i < n; i++) {
            assert_true(len[i] <= sizeof(copy[i]));
            memcpy(copy[i], payload[i], len[i]);
            cp[i] = copy[i];
        }
        assert_int_equal(
            wire_reader_feed(&r, f->out.data + cut, f->out.len - cut), 0);
        {
            int m = drain(&r, payload, len, n, 3);
            assert_int_equal(m, 3);
            for (int i = n; i < 3; i++) {
                cp[i] = payload[i];
            }
        }
        check_three(cp, len);
        wire_reader_close(&r);
    }
}

/* Frames fed one byte at a time come out whole. */
static void reader_byte_at_a_time(void **state)
{
    struct fixture *f = *state;
    uint8_t copy[3][256];
    const uint8_t *cp[3];
    size_t len[3];
    int got = 0;

    encode_three(f);
    for (size_t i = 0; i < f->out.len; i++) {
        const uint8_t *p;
        size_t n;
        int rv;

        assert_int_equal(wire_reader_feed(&f->r, f->out.data + i, 1), 0);
        while ((rv = wire_reader_next(&f->r, &p, &n)) == 1) {
            assert_true(got < 3 && n <= sizeof(copy[got]));
            memcpy(copy[got], p, n);
            cp[got] = copy[got];
            len[got] = n;
            got++;
        }
        assert_int_equal(rv, 0);
    }
    assert_int_equal(got, 3);
    check_three(cp, len);
}

/* Several frames in one feed all come out of it. */
static void reader_several_in_one_feed(void **state)
{
    struct fixture *f = *state;
    const uint8_t *payload[3];
    size_t len[3];

    encode_three(f);
    assert_int_equal(wire_reader_feed(&f->r, f->out.data, f->out.len), 0);
    assert_int_equal(drain(&f->r, payload, len, 0, 3), 3);
    check_three(payload, len);
}

/* A length above max_frame is refused as soon as the prefix is complete;
 * a length equal to it is accepted. */
static void reader_oversized(void **state)
{
    struct wire_reader r;
    const uint8_t *p;
    size_t n;
    uint8_t frame[4 + 100];

    (void)state;
    memset(frame, 0, sizeof(frame));
    wire_reader_init(&r, 100);
    assert_int_equal(wire_reader_feed(&r, "\x00\x00\x00", 3), 0);
    assert_int_equal(wire_reader_next(&r, &p, &n), 0);
    assert_int_equal(wire_reader_feed(&r, "\x65", 1), 0); /* 101 */
    assert_int_equal(wire_reader_next(&r, &p, &n), -1);
    wire_reader_close(&r);

    wire_reader_init(&r, 100);
    frame[3] = 100;
    assert_int_equal(wire_reader_feed(&r, frame, sizeof(frame)), 0);
    assert_int_equal(wire_reader_next(&r, &p, &n), 1);
    assert_int_equal(n, 100);
    wire_reader_close(&r);

    wire_reader_init(&r, 100);
    assert_int_equal(wire_reader_feed(&r, "\xff\xff\xff\xff", 4), 0);
    assert_int_equal(wire_reader_next(&r, &p, &n), -1);
    wire_reader_close(&r);
}

/* A zero length is refused. */
static void reader_zero_length(void **state)
{
    struct fixture *f = *state;
    const uint8_t *p;
    size_t n;

    assert_int_equal(wire_reader_feed(&f->r, "\x00\x00\x00\x00\x93", 5), 0);
    assert_int_equal(wire_reader_next(&f->r, &p, &n), -1);
}

/* A max_frame of 0 selects the default limit. */
static void reader_default_limit(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(f->r.max_frame, WIRE_DEFAULT_MAX_FRAME);
}

/* After 100,000 frames fed in odd-sized chunks the buffer is still small:
 * consumed frames are compacted away. */
static void reader_memory_bounded(void **state)
{
    struct fixture *f = *state;
    size_t chunk = 777;
    size_t frames = 0;
    size_t max_cap = 0;

    for (uint64_t i = 0; i < 100000; i++) {
        assert_int_equal(wire_encode_ping(&f->out, WIRE_PING, i), 0);
    }
    for (size_t off = 0; off < f->out.len; off += chunk) {
        size_t n = f->out.len - off < chunk ? f->out.len - off : chunk;
        const uint8_t *p;
        size_t len;
        int rv;

        assert_int_equal(wire_reader_feed(&f->r, f->out.data + off, n), 0);
        while ((rv = wire_reader_next(&f->r, &p, &len)) == 1) {
            struct wire_msg m;
            struct mp_doc d;
            assert_int_equal(wire_decode(p, len, &m, &d, &f->err), 0);
            assert_int_equal(m.stream, frames);
            mp_doc_close(&d);
            frames++;
        }
        assert_int_equal(rv, 0);
        if (f->r.in.cap > max_cap) {
            max_cap = f->r.in.cap;
        }
    }
    assert_int_equal(frames, 100000);
    assert_true(max_cap <= 4096);
}

/* A large frame's memory is given back once it has been consumed. */
static void reader_releases_large_buffer(void **state)
{
    struct fixture *f = *state;
    size_t big = 1u << 20;
    uint8_t *body = calloc(1, big);
    const uint8_t *p;
    size_t n;

    assert_non_null(body);
    assert_int_equal(
        wire_encode_response(&f->out, 1, 0, NULL, NULL, body, big, false), 0);
    free(body);
    assert_int_equal(wire_reader_feed(&f->r, f->out.data, f->out.len), 0);
    assert_int_equal(wire_reader_next(&f->r, &p, &n), 1);
    assert_true(f->r.in.cap > big);
    buf_reset(&f->out);
    assert_int_equal(wire_encode_ping(&f->out, WIRE_PONG, 1), 0);
    assert_int_equal(wire_reader_feed(&f->r, f->out.data, f->out.len), 0);
    assert_true(f->r.in.cap < big);
    assert_int_equal(wire_reader_next(&f->r, &p, &n), 1);
    assert_int_equal(n, f->out.len - 4);
    assert_int_equal(wire_reader_next(&f->r, &p, &n), 0);
}

/* Feeding nothing changes nothing, and close accepts NULL. */
static void reader_empty_feed(void **state)
{
    struct fixture *f = *state;
    const uint8_t *p;
    size_t n;

    assert_int_equal(wire_reader_feed(&f->r, NULL, 0), 0);
    assert_int_equal(wire_reader_next(&f->r, &p, &n), 0);
    wire_reader_close(NULL);
}

/******************************************************************************
 *
 * Runner
 *
 *****************************************************************************/

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(request_round_trip),
        CASE(request_without_metadata),
        CASE(request_encode_refusals),
        CASE(response_round_trip),
        CASE(response_negative_status),
        CASE(cancel_round_trip),
        CASE(ping_pong_round_trip),
        CASE(goaway_round_trip),
        CASE(encoders_append),
        CASE(decode_not_msgpack),
        CASE(decode_truncated),
        CASE(decode_trailing_bytes),
        CASE(decode_not_array),
        CASE(decode_unknown_type),
        CASE(decode_missing_fields),
        CASE(decode_extra_elements_ignored),
        CASE(decode_request_wrong_types),
        CASE(decode_request_ranges),
        CASE(decode_metadata_types),
        CASE(decode_response_wrong_types),
        CASE(decode_status_range),
        CASE(decode_id_types),
        CASE(reader_split_everywhere),
        CASE(reader_byte_at_a_time),
        CASE(reader_several_in_one_feed),
        CASE(reader_oversized),
        CASE(reader_zero_length),
        CASE(reader_default_limit),
        CASE(reader_memory_bounded),
        CASE(reader_releases_large_buffer),
        CASE(reader_empty_feed),
    };
    return cmocka_run_group_tests_name("api-wire", tests, NULL, NULL);
}
