/* Unit tests for common/mp.c (packing, the bounds checker, typed access)
 * and common/mpjson.c (JSON <-> msgpack). */
#include "test.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "mpjson.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

struct fixture
{
    struct buf b;
    msgpack_packer pk;
    struct mp_doc doc;
    bool doc_open;
    struct cairn_error err;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    buf_init(&f->b);
    mp_packer_init(&f->pk, &f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->doc_open) {
        mp_doc_close(&f->doc);
    }
    buf_close(&f->b);
    free(f);
    return 0;
}

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

/* Parse what the fixture packed; the teardown closes the document. */
static const msgpack_object *parse(struct fixture *f)
{
    assert_false(f->b.oom);
    if (mp_doc_parse(&f->doc, f->b.data, f->b.len, &f->err) != 0) {
        fail_msg("mp_doc_parse: %s", f->err.msg);
    }
    f->doc_open = true;
    return &f->doc.root;
}

/* A document with one of every msgpack type, inside a map. */
static void pack_everything(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 21);
    mp_pack_kv_cstr(pk, "str", "hello");
    mp_pack_cstr(pk, "bin");
    mp_pack_bin(pk, "\x00\x01\x02", 3);
    mp_pack_kv_u64(pk, "fixint", 7);
    mp_pack_kv_u64(pk, "u8", 200);
    mp_pack_kv_u64(pk, "u16", 60000);
    mp_pack_kv_u64(pk, "u32", 4000000000u);
    mp_pack_kv_u64(pk, "u64", UINT64_MAX);
    mp_pack_kv_i64(pk, "negfix", -5);
    mp_pack_kv_i64(pk, "i8", -100);
    mp_pack_kv_i64(pk, "i16", -30000);
    mp_pack_kv_i64(pk, "i32", -2000000000);
    mp_pack_kv_i64(pk, "i64", INT64_MIN);
    mp_pack_cstr(pk, "f32");
    msgpack_pack_float(pk, 1.5f);
    mp_pack_cstr(pk, "f64");
    msgpack_pack_double(pk, 2.25);
    mp_pack_cstr(pk, "nil");
    msgpack_pack_nil(pk);
    mp_pack_kv_bool(pk, "t", true);
    mp_pack_kv_bool(pk, "f", false);
    mp_pack_cstr(pk, "arr");
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    mp_pack_cstr(pk, "two");
    mp_pack_cstr(pk, "map");
    msgpack_pack_map(pk, 1);
    mp_pack_kv_cstr(pk, "k", "v");
    mp_pack_cstr(pk, "ext");
    msgpack_pack_ext(pk, 4, 1);
    msgpack_pack_ext_body(pk, "abcd", 4);
    mp_pack_kv_str(pk, "long", "0123456789012345678901234567890123456789", 40);
}

/* @p depth nested one-element arrays around the integer 1. */
static void pack_nested(struct buf *b, int depth)
{
    for (int i = 0; i < depth; i++) {
        buf_append_u8(b, 0x91);
    }
    buf_append_u8(b, 0x01);
}

/******************************************************************************
 *
 * Assertions
 *
 *****************************************************************************/

static void assert_serialization(const struct cairn_error *err,
                                 int rv,
                                 const char *msg)
{
    assert_int_equal(rv, CAIRN_INVALID_ARGUMENT);
    assert_int_equal(err->code, CAIRN_INVALID_ARGUMENT);
    assert_string_equal(err->type, "SerializationException");
    if (msg != NULL) {
        assert_string_equal(err->msg, msg);
    }
}

static void check_fails(const void *data, size_t len, const char *msg)
{
    struct cairn_error err;
    struct mp_doc doc;

    assert_serialization(&err, mp_check(data, len, &err), msg);
    /* mp_doc_parse refuses the same input before msgpack-c sees it, and
     * leaves nothing to close. */
    assert_serialization(&err, mp_doc_parse(&doc, data, len, &err), msg);
}

static void json_round_trip(const char *in, const char *want)
{
    struct buf b;
    struct cairn_error err;
    char *out = NULL;

    buf_init(&b);
    if (mpjson_from_json(in, &b, &err) != 0) {
        fail_msg("mpjson_from_json(%s): %s", in, err.msg);
    }
    assert_int_equal(mp_check(b.data, b.len, &err), 0);
    if (mpjson_to_json(b.data, b.len, &out, 0, &err) != 0) {
        fail_msg("mpjson_to_json(%s): %s", in, err.msg);
    }
    assert_string_equal(out, want);
    free(out);
    buf_close(&b);
}

/******************************************************************************
 *
 * mp_check
 *
 *****************************************************************************/

/* A document holding every type passes the checker and decodes. */
static void check_every_type(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;

    pack_everything(&f->pk);
    assert_int_equal(mp_check(f->b.data, f->b.len, &f->err), 0);
    root = parse(f);
    assert_int_equal(root->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(root->via.map.size, 21);
    assert_int_equal(mp_map_get(root, "ext")->type, MSGPACK_OBJECT_EXT);
    assert_int_equal(mp_map_get(root, "f32")->type, MSGPACK_OBJECT_FLOAT32);
}

/* Every strict prefix of a valid document is reported as truncated. */
static void check_truncated(void **state)
{
    struct fixture *f = *state;

    pack_everything(&f->pk);
    for (size_t len = 1; len < f->b.len; len++) {
        /* A copy of exactly len bytes lets ASan catch any read past it. */
        uint8_t *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, f->b.data, len);
        check_fails(copy, len, "truncated msgpack document");
        free(copy);
    }
}

/* NULL and zero-length input are an empty document. */
static void check_empty(void **state)
{
    struct fixture *f = *state;

    check_fails(NULL, 0, "empty msgpack document");
    check_fails("", 0, "empty msgpack document");
    assert_serialization(&f->err, mp_check(NULL, 5, &f->err),
                         "empty msgpack document");
}

/* Bytes after the first object are refused, with their count. */
static void check_trailing(void **state)
{
    struct fixture *f = *state;

    mp_pack_cstr(&f->pk, "a");
    msgpack_pack_nil(&f->pk);
    check_fails(f->b.data, f->b.len, "1 bytes trail the msgpack document");
    mp_pack_cstr(&f->pk, "again");
    check_fails(f->b.data, f->b.len, "7 bytes trail the msgpack document");
}

/* Lengths and counts larger than the buffer are refused before anything
 * is allocated for them. */
static void check_huge_lengths(void **state)
{
    static const struct
    {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\xdb\xff\xff\xff\xff"
         "a",
         6}, /* str 32 of 4 GiB */
        {"\xda\xff\xff"
         "ab",
         5}, /* str 16 */
        {"\xd9\x05"
         "abc",
         5}, /* str 8 */
        {"\xa5"
         "abc",
         4},                                 /* fixstr */
        {"\xc6\xff\xff\xff\xff\x00", 6},     /* bin 32 */
        {"\xc4\x02\x00", 3},                 /* bin 8 */
        {"\xdd\xff\xff\xff\xff\x01", 6},     /* array 32 of 4 G elements */
        {"\xdc\xff\xff\x01", 4},             /* array 16 */
        {"\xdf\xff\xff\xff\xff\x01\x01", 7}, /* map 32 */
        {"\xde\x00\x02\x01\x01\x01", 6},     /* map 16 missing a value */
        {"\x82\x01\x01\x01", 4},             /* fixmap missing a value */
        {"\xc9\xff\xff\xff\xff\x01", 6},     /* ext 32 */
        {"\xc7\x01\x01", 3},                 /* ext 8 missing its data */
        {"\xd8\x01"
         "abc",
         5},                 /* fixext 16 */
        {"\xcf\x00\x00", 3}, /* uint 64 */
        {"\xcb\x00", 2},     /* float 64 */
        {"\xdb\xff\xff", 3}, /* the length itself cut short */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_fails(cases[i].bytes, cases[i].len, "truncated msgpack document");
    }
}

/* Objects up to MP_MAX_DEPTH levels below the root pass; one level more
 * fails, and very deep input fails without exhausting the stack. */
static void check_depth(void **state)
{
    struct fixture *f = *state;
    char msg[64];

    snprintf(msg, sizeof(msg), "msgpack document nested deeper than %d",
             MP_MAX_DEPTH);
    pack_nested(&f->b, MP_MAX_DEPTH);
    assert_int_equal(mp_check(f->b.data, f->b.len, &f->err), 0);
    parse(f);

    buf_reset(&f->b);
    pack_nested(&f->b, MP_MAX_DEPTH + 1);
    check_fails(f->b.data, f->b.len, msg);

    /* An empty container adds no level below itself. */
    buf_reset(&f->b);
    for (int i = 0; i < MP_MAX_DEPTH; i++) {
        buf_append_u8(&f->b, 0x91);
    }
    buf_append_u8(&f->b, 0x90);
    assert_int_equal(mp_check(f->b.data, f->b.len, &f->err), 0);

    buf_reset(&f->b);
    pack_nested(&f->b, 100000);
    check_fails(f->b.data, f->b.len, msg);
}

/* Maps count as a level like arrays do. */
static void check_depth_maps(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; i < MP_MAX_DEPTH + 1; i++) {
        buf_append_u8(&f->b, 0x81); /* fixmap of one pair */
        buf_append_u8(&f->b, 0xa1); /* key "k" */
        buf_append_u8(&f->b, 'k');
    }
    buf_append_u8(&f->b, 0xc0);
    check_fails(f->b.data, f->b.len, NULL);
}

/* The never-used type byte 0xc1 is refused. */
static void check_invalid_byte(void **state)
{
    (void)state;
    check_fails("\xc1", 1, "invalid msgpack type byte");
    check_fails("\x92\x01\xc1", 3, "invalid msgpack type byte");
}

/******************************************************************************
 *
 * mp_doc_parse and mp_map_get
 *
 *****************************************************************************/

/* A parsed document's strings point into the input buffer. */
static void doc_borrows_input(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;
    const msgpack_object *v;

    msgpack_pack_map(&f->pk, 1);
    mp_pack_kv_cstr(&f->pk, "name", "/a/b");
    root = parse(f);
    v = mp_map_get(root, "name");
    assert_non_null(v);
    assert_true((const uint8_t *)v->via.str.ptr >= f->b.data &&
                (const uint8_t *)v->via.str.ptr < f->b.data + f->b.len);
}

/* mp_map_get finds string keys by exact match only, and returns NULL for
 * a missing key or a non-map. */
static void map_get(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;

    msgpack_pack_map(&f->pk, 3);
    msgpack_pack_int(&f->pk, 1);
    mp_pack_cstr(&f->pk, "int key");
    mp_pack_kv_cstr(&f->pk, "ab", "x");
    mp_pack_str(&f->pk, "a\0b", 3);
    mp_pack_cstr(&f->pk, "nul");
    root = parse(f);
    assert_null(mp_map_get(root, "a"));
    assert_null(mp_map_get(root, "abc"));
    assert_null(mp_map_get(root, "int key"));
    assert_non_null(mp_map_get(root, "ab"));
    assert_true(mp_str_eq(mp_map_get(root, "ab"), "x"));
    assert_null(mp_map_get(NULL, "ab"));
    assert_null(mp_map_get(mp_map_get(root, "ab"), "x"));
}

/******************************************************************************
 *
 * Typed getters
 *
 *****************************************************************************/

/* Each getter returns 1 for the right type, 0 for absent or nil, and -1
 * with a SerializationException for another type. */
static void getters_wrong_types(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;
    struct mp_str s;
    bool b;
    bool is_bin;
    uint64_t u;
    int64_t i;
    const msgpack_object_array *arr;
    const msgpack_object_map *map;

    msgpack_pack_map(&f->pk, 4);
    mp_pack_kv_u64(&f->pk, "num", 5);
    mp_pack_kv_cstr(&f->pk, "str", "x");
    mp_pack_cstr(&f->pk, "nil");
    msgpack_pack_nil(&f->pk);
    mp_pack_kv_bool(&f->pk, "bool", true);
    root = parse(f);

    assert_int_equal(mp_get_str(root, "num", &s, &f->err), -1);
    assert_serialization(&f->err, f->err.code, "field num must be a string");
    assert_null(s.p);
    assert_int_equal(mp_get_bytes(root, "num", &s, &is_bin, &f->err), -1);
    assert_serialization(&f->err, f->err.code,
                         "field num must be a string or binary");
    assert_int_equal(mp_get_bool(root, "str", &b, &f->err), -1);
    assert_serialization(&f->err, f->err.code, "field str must be a boolean");
    assert_int_equal(mp_get_u64(root, "str", &u, &f->err), -1);
    assert_serialization(&f->err, f->err.code,
                         "field str must be a non-negative integer");
    assert_int_equal(mp_get_i64(root, "bool", &i, &f->err), -1);
    assert_serialization(&f->err, f->err.code, "field bool must be an integer");
    assert_int_equal(mp_get_array(root, "num", &arr, &f->err), -1);
    assert_serialization(&f->err, f->err.code, "field num must be an array");
    assert_int_equal(mp_get_map(root, "str", &map, &f->err), -1);
    assert_serialization(&f->err, f->err.code, "field str must be a map");

    /* Absent and nil fields read as absent. */
    assert_int_equal(mp_get_str(root, "missing", &s, &f->err), 0);
    assert_null(s.p);
    assert_int_equal(mp_get_str(root, "nil", &s, &f->err), 0);
    assert_int_equal(mp_get_bytes(root, "nil", &s, &is_bin, &f->err), 0);
    assert_int_equal(mp_get_bool(root, "nil", &b, &f->err), 0);
    assert_int_equal(mp_get_u64(root, "nil", &u, &f->err), 0);
    assert_int_equal(mp_get_i64(root, "nil", &i, &f->err), 0);
    assert_int_equal(mp_get_array(root, "nil", &arr, &f->err), 0);
    assert_int_equal(mp_get_map(root, "missing", &map, &f->err), 0);
}

/* Strings and byte strings read back, an empty string as a non-NULL "". */
static void getters_strings(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;
    struct mp_str s;
    bool is_bin = true;

    msgpack_pack_map(&f->pk, 3);
    mp_pack_kv_cstr(&f->pk, "s", "value");
    mp_pack_kv_cstr(&f->pk, "empty", "");
    mp_pack_cstr(&f->pk, "b");
    mp_pack_bin(&f->pk, "\x00\xff", 2);
    root = parse(f);

    assert_int_equal(mp_get_str(root, "s", &s, &f->err), 1);
    assert_int_equal(s.n, 5);
    assert_memory_equal(s.p, "value", 5);
    assert_true(mp_str_eqn(s, "value"));
    assert_false(mp_str_eqn(s, "valu"));
    assert_int_equal(mp_get_str(root, "empty", &s, &f->err), 1);
    assert_non_null(s.p);
    assert_int_equal(s.n, 0);
    assert_true(mp_str_eqn(s, ""));
    assert_int_equal(mp_get_str(root, "b", &s, &f->err), -1);

    assert_int_equal(mp_get_bytes(root, "s", &s, &is_bin, &f->err), 1);
    assert_false(is_bin);
    assert_int_equal(mp_get_bytes(root, "b", &s, &is_bin, &f->err), 1);
    assert_true(is_bin);
    assert_int_equal(s.n, 2);
    assert_memory_equal(s.p, "\x00\xff", 2);

    s.p = NULL;
    assert_false(mp_str_eqn(s, ""));
}

/* Integers: u64 refuses negatives, i64 refuses values above INT64_MAX,
 * and both read their extremes. */
static void getters_integers(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;
    uint64_t u = 0;
    int64_t i = 0;

    msgpack_pack_map(&f->pk, 5);
    mp_pack_kv_u64(&f->pk, "umax", UINT64_MAX);
    mp_pack_kv_u64(&f->pk, "imax", INT64_MAX);
    mp_pack_kv_i64(&f->pk, "imin", INT64_MIN);
    mp_pack_kv_i64(&f->pk, "neg", -1);
    mp_pack_cstr(&f->pk, "real");
    msgpack_pack_double(&f->pk, 1.0);
    root = parse(f);

    assert_int_equal(mp_get_u64(root, "umax", &u, &f->err), 1);
    assert_true(u == UINT64_MAX);
    assert_int_equal(mp_get_u64(root, "neg", &u, &f->err), -1);
    assert_int_equal(mp_get_u64(root, "real", &u, &f->err), -1);
    assert_int_equal(mp_get_i64(root, "imax", &i, &f->err), 1);
    assert_true(i == INT64_MAX);
    assert_int_equal(mp_get_i64(root, "imin", &i, &f->err), 1);
    assert_true(i == INT64_MIN);
    assert_int_equal(mp_get_i64(root, "neg", &i, &f->err), 1);
    assert_true(i == -1);
    assert_int_equal(mp_get_i64(root, "umax", &i, &f->err), -1);
    assert_serialization(&f->err, f->err.code, "field umax must be an integer");
    assert_int_equal(mp_get_i64(root, "real", &i, &f->err), -1);
}

/* Booleans, arrays and maps read back with their contents. */
static void getters_containers(void **state)
{
    struct fixture *f = *state;
    const msgpack_object *root;
    const msgpack_object_array *arr = NULL;
    const msgpack_object_map *map = NULL;
    bool b = false;

    msgpack_pack_map(&f->pk, 3);
    mp_pack_kv_bool(&f->pk, "flag", true);
    mp_pack_cstr(&f->pk, "list");
    msgpack_pack_array(&f->pk, 2);
    mp_pack_cstr(&f->pk, "a");
    mp_pack_cstr(&f->pk, "b");
    mp_pack_cstr(&f->pk, "obj");
    msgpack_pack_map(&f->pk, 1);
    mp_pack_kv_u64(&f->pk, "n", 1);
    root = parse(f);

    assert_int_equal(mp_get_bool(root, "flag", &b, &f->err), 1);
    assert_true(b);
    assert_int_equal(mp_get_array(root, "list", &arr, &f->err), 1);
    assert_int_equal(arr->size, 2);
    assert_true(mp_str_eq(&arr->ptr[1], "b"));
    assert_false(mp_str_eq(&arr->ptr[1], "a"));
    assert_int_equal(mp_get_map(root, "obj", &map, &f->err), 1);
    assert_int_equal(map->size, 1);
    assert_true(mp_str_eq(&map->ptr[0].key, "n"));
    assert_int_equal(mp_get_array(root, "obj", &arr, &f->err), -1);
}

/* The packer helpers produce the documents their names say. */
static void pack_helpers(void **state)
{
    struct fixture *f = *state;
    char *json;

    msgpack_pack_map(&f->pk, 5);
    mp_pack_kv_str(&f->pk, "s", "abc", 2);
    mp_pack_kv_cstr(&f->pk, "c", "x\"y");
    mp_pack_kv_u64(&f->pk, "u", 42);
    mp_pack_kv_i64(&f->pk, "i", -42);
    mp_pack_kv_bool(&f->pk, "b", false);
    assert_false(f->b.oom);
    json = test_mp_to_json(f->b.data, f->b.len);
    assert_string_equal(json,
                        "{\"b\":false,\"c\":\"x\\\"y\",\"i\":-42,\"s\":\"ab\","
                        "\"u\":42}");
    free(json);
}

/******************************************************************************
 *
 * mpjson
 *
 *****************************************************************************/

/* JSON survives a trip through msgpack, with keys sorted on the way
 * out. */
static void json_round_trips(void **state)
{
    (void)state;
    json_round_trip("{}", "{}");
    json_round_trip("[]", "[]");
    json_round_trip("{\"b\":1,\"a\":[true,false,null,-5,1.5,\"x\"],\"c\":{}}",
                    "{\"a\":[true,false,null,-5,1.5,\"x\"],\"b\":1,\"c\":{}}");
    json_round_trip("{\"z\":{\"y\":{\"x\":[[[]]]}}}",
                    "{\"z\":{\"y\":{\"x\":[[[]]]}}}");
    json_round_trip("[9223372036854775807,-9223372036854775808,0]",
                    "[9223372036854775807,-9223372036854775808,0]");
    json_round_trip("\"caf\xc3\xa9 \\u20ac\"", "\"caf\xc3\xa9 \xe2\x82\xac\"");
    json_round_trip("[\"a\\nb\\\"c\\\\\",\"\\u0000x\"]",
                    "[\"a\\nb\\\"c\\\\\",\"\\u0000x\"]");
    json_round_trip("42", "42");
    json_round_trip("null", "null");
}

/* Bad JSON and JSON nested deeper than MP_MAX_DEPTH are
 * SerializationExceptions; MP_MAX_DEPTH itself is fine. */
static void json_from_errors(void **state)
{
    struct fixture *f = *state;
    char deep[2 * (MP_MAX_DEPTH + 2) + 2];
    size_t n;

    assert_serialization(&f->err, mpjson_from_json("{", &f->b, &f->err), NULL);
    assert_serialization(&f->err,
                         mpjson_from_json("{\"a\":1,}", &f->b, &f->err), NULL);
    assert_serialization(&f->err, mpjson_from_json("[1] [2]", &f->b, &f->err),
                         NULL);
    assert_serialization(
        &f->err, mpjson_from_json("99999999999999999999", &f->b, &f->err),
        NULL);

    /* MP_MAX_DEPTH arrays around a scalar: the scalar sits at that depth. */
    n = 0;
    for (int i = 0; i < MP_MAX_DEPTH; i++) {
        deep[n++] = '[';
    }
    deep[n++] = '1';
    for (int i = 0; i < MP_MAX_DEPTH; i++) {
        deep[n++] = ']';
    }
    deep[n] = '\0';
    buf_reset(&f->b);
    assert_int_equal(mpjson_from_json(deep, &f->b, &f->err), 0);

    n = 0;
    for (int i = 0; i < MP_MAX_DEPTH + 1; i++) {
        deep[n++] = '[';
    }
    deep[n++] = '1';
    for (int i = 0; i < MP_MAX_DEPTH + 1; i++) {
        deep[n++] = ']';
    }
    deep[n] = '\0';
    buf_reset(&f->b);
    assert_serialization(&f->err, mpjson_from_json(deep, &f->b, &f->err),
                         "JSON nested too deeply");
}

/* bin values become base64 strings. */
static void json_bin_as_base64(void **state)
{
    struct fixture *f = *state;
    char *json;

    msgpack_pack_map(&f->pk, 1);
    mp_pack_cstr(&f->pk, "blob");
    mp_pack_bin(&f->pk, "foobar", 6);
    json = test_mp_to_json(f->b.data, f->b.len);
    assert_string_equal(json, "{\"blob\":\"Zm9vYmFy\"}");
    free(json);
}

/* Unsigned integers above the JSON integer range become reals. */
static void json_big_unsigned(void **state)
{
    struct fixture *f = *state;
    char *json;

    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_uint64(&f->pk, UINT64_MAX);
    msgpack_pack_uint64(&f->pk, INT64_MAX);
    json = test_mp_to_json(f->b.data, f->b.len);
    assert_string_equal(json, "[1.8446744073709552e19,9223372036854775807]");
    free(json);
}

/* Documents with no JSON form (ext values, non-string keys, strings that
 * are not UTF-8) and malformed msgpack are SerializationExceptions and
 * return no text. */
static void json_to_errors(void **state)
{
    struct fixture *f = *state;
    char *json = (char *)"untouched";

    msgpack_pack_ext(&f->pk, 1, 3);
    msgpack_pack_ext_body(&f->pk, "x", 1);
    assert_serialization(&f->err,
                         mpjson_to_json(f->b.data, f->b.len, &json, 0, &f->err),
                         "msgpack document has no JSON form");
    assert_null(json);

    buf_reset(&f->b);
    msgpack_pack_map(&f->pk, 1);
    msgpack_pack_int(&f->pk, 1);
    msgpack_pack_int(&f->pk, 2);
    assert_serialization(&f->err,
                         mpjson_to_json(f->b.data, f->b.len, &json, 0, &f->err),
                         "msgpack document has no JSON form");

    buf_reset(&f->b);
    msgpack_pack_array(&f->pk, 1);
    mp_pack_str(&f->pk, "\xff\xfe", 2);
    assert_serialization(&f->err,
                         mpjson_to_json(f->b.data, f->b.len, &json, 0, &f->err),
                         "msgpack document has no JSON form");

    assert_serialization(&f->err,
                         mpjson_to_json("\x92\x01", 2, &json, 0, &f->err),
                         "truncated msgpack document");
    assert_null(json);
}

/* A positive indent gives multi-line output with the same content. */
static void json_indent(void **state)
{
    struct fixture *f = *state;
    char *json = NULL;

    test_json_to_mp("{\"b\":[1],\"a\":2}", &f->b);
    assert_int_equal(mpjson_to_json(f->b.data, f->b.len, &json, 2, &f->err), 0);
    assert_string_equal(json, "{\n  \"a\": 2,\n  \"b\": [\n    1\n  ]\n}");
    free(json);
}

/* Base64 matches the RFC 4648 test vectors. */
static void json_base64_vectors(void **state)
{
    static const char *const want[] = {
        "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *s = mpjson_base64("foobar", i);
        assert_non_null(s);
        assert_string_equal(s, want[i]);
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(check_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(check_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(check_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(check_trailing, setup, teardown),
        cmocka_unit_test_setup_teardown(check_huge_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(check_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(check_depth_maps, setup, teardown),
        cmocka_unit_test_setup_teardown(check_invalid_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(doc_borrows_input, setup, teardown),
        cmocka_unit_test_setup_teardown(map_get, setup, teardown),
        cmocka_unit_test_setup_teardown(getters_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(getters_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(getters_integers, setup, teardown),
        cmocka_unit_test_setup_teardown(getters_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(pack_helpers, setup, teardown),
        cmocka_unit_test_setup_teardown(json_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(json_from_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(json_bin_as_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(json_big_unsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(json_to_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(json_indent, setup, teardown),
        cmocka_unit_test_setup_teardown(json_base64_vectors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
