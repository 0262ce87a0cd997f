#include "mpjson.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

/* jansson has no limit macro for json_int_t, which is long long or long. */
#if JSON_INTEGER_IS_LONG_LONG
#define MPJSON_INT_MAX LLONG_MAX
#else
#define MPJSON_INT_MAX LONG_MAX
#endif

static int pack_json(msgpack_packer *pk, json_t *j, int depth)
{
    const char *key;
    json_t *val;
    size_t i;

    if (depth > MP_MAX_DEPTH) {
        return -1;
    }
    switch (json_typeof(j)) {
        case JSON_OBJECT:
            if (msgpack_pack_map(pk, json_object_size(j)) != 0) {
                return -1;
            }
            json_object_foreach(j, key, val)
            {
                if (mp_pack_cstr(pk, key) != 0 ||
                    pack_json(pk, val, depth + 1) != 0) {
                    return -1;
                }
            }
            return 0;
        case JSON_ARRAY:
            if (msgpack_pack_array(pk, json_array_size(j)) != 0) {
                return -1;
            }
            json_array_foreach(j, i, val)
            {
                if (pack_json(pk, val, depth + 1) != 0) {
                    return -1;
                }
            }
            return 0;
        case JSON_STRING:
            return mp_pack_str(pk, json_string_value(j), json_string_length(j));
        case JSON_INTEGER:
            return msgpack_pack_int64(pk, json_integer_value(j));
        case JSON_REAL:
            return msgpack_pack_double(pk, json_real_value(j));
        case JSON_TRUE:
            return msgpack_pack_true(pk);
        case JSON_FALSE:
            return msgpack_pack_false(pk);
        case JSON_NULL:
            return msgpack_pack_nil(pk);
    }
    return -1;
}

int mpjson_from_json(const char *json, struct buf *out, struct cairn_error *err)
{
    json_error_t jerr;
    msgpack_packer pk;
    json_t *root;
    int rv;

    root = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "invalid JSON at line %d column %d: %s",
                               jerr.line, jerr.column, jerr.text);
    }
    mp_packer_init(&pk, out);
    rv = pack_json(&pk, root, 0);
    json_decref(root);
    if (out->oom) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    if (rv != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "JSON nested too deeply");
    }
    return 0;
}

char *mpjson_base64(const void *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *s;

    if (n > (SIZE_MAX / 4) * 3 - 3 || n > INT32_MAX) {
        return NULL;
    }
    s = malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    return s;
}

static json_t *to_json(const msgpack_object *o)
{
    json_t *j = NULL;
    char *tmp;

    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean(o->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (o->via.u64 > (uint64_t)MPJSON_INT_MAX) {
                return json_real((double)o->via.u64);
            }
            return json_integer((json_int_t)o->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return json_integer((json_int_t)o->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            return json_real(o->via.f64);
        case MSGPACK_OBJECT_STR:
            /* Checked: a string that is not UTF-8 has no JSON form, and
             * json_dumps() would otherwise fail later as if out of memory. */
            return json_stringn(o->via.str.ptr != NULL ? o->via.str.ptr : "",
                                o->via.str.size);
        case MSGPACK_OBJECT_BIN:
            tmp = mpjson_base64(o->via.bin.ptr, o->via.bin.size);
            if (tmp == NULL) {
                return NULL;
            }
            j = json_string(tmp);
            free(tmp);
            return j;
        case MSGPACK_OBJECT_ARRAY:
            j = json_array();
            if (j == NULL) {
                return NULL;
            }
            for (uint32_t i = 0; i < o->via.array.size; i++) {
                json_t *v = to_json(&o->via.array.ptr[i]);
                if (v == NULL || json_array_append_new(j, v) != 0) {
                    json_decref(j);
                    return NULL;
                }
            }
            return j;
        case MSGPACK_OBJECT_MAP:
            j = json_object();
            if (j == NULL) {
                return NULL;
            }
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object_kv *kv = &o->via.map.ptr[i];
                char *key;
                json_t *v;
                if (kv->key.type != MSGPACK_OBJECT_STR) {
                    json_decref(j);
                    return NULL;
                }
                key = strndup(
                    kv->key.via.str.ptr != NULL ? kv->key.via.str.ptr : "",
                    kv->key.via.str.size);
                v = key != NULL ? to_json(&kv->val) : NULL;
                if (v == NULL || json_object_set_new(j, key, v) != 0) {
                    free(key);
                    json_decref(j);
                    return NULL;
                }
                free(key);
            }
            return j;
        default:
            return NULL;
    }
}

int mpjson_to_json(const void *mp,
                   size_t len,
                   char **json,
                   int indent,
                   struct cairn_error *err)
{
    struct mp_doc doc;
    json_t *root;
    int rv;
    size_t flags = JSON_SORT_KEYS | JSON_ENCODE_ANY;

    *json = NULL;
    rv = mp_doc_parse(&doc, mp, len, err);
    if (rv != 0) {
        return rv;
    }
    root = to_json(&doc.root);
    mp_doc_close(&doc);
    if (root == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "msgpack document has no JSON form");
    }
    flags |= indent > 0 ? JSON_INDENT(indent) : JSON_COMPACT;
    *json = json_dumps(root, flags);
    json_decref(root);
    if (*json == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    return 0;
}
