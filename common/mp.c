#include "mp.h"

#include <string.h>

static int buf_write_cb(void *data, const char *p, size_t n)
{
    return buf_append(data, p, n) == 0 ? 0 : -1;
}

void mp_packer_init(msgpack_packer *pk, struct buf *b)
{
    msgpack_packer_init(pk, b, buf_write_cb);
}

/* ---- bounds checker ------------------------------------------------- */

struct scan
{
    const uint8_t *p;
    size_t left;
};

static int take(struct scan *s, size_t n)
{
    if (n > s->left) {
        return -1;
    }
    s->p += n;
    s->left -= n;
    return 0;
}

static int read_be(struct scan *s, unsigned width, uint64_t *v)
{
    if (width > s->left) {
        return -1;
    }
    *v = 0;
    for (unsigned i = 0; i < width; i++) {
        *v = (*v << 8) | s->p[i];
    }
    s->p += width;
    s->left -= width;
    return 0;
}

/* Walks one object. Containers are walked iteratively over their elements
 * with recursion per nesting level, bounded by MP_MAX_DEPTH. */
static int scan_obj(struct scan *s, int depth)
{
    uint8_t b;
    uint64_t n = 0;
    uint64_t items = 0; /* number of child objects for containers */

    if (depth > MP_MAX_DEPTH) {
        return -2;
    }
    if (s->left == 0) {
        return -1;
    }
    b = *s->p;
    s->p++;
    s->left--;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        return 0; /* fixint, negative fixint, nil, bool */
    }
    if ((b & 0xe0) == 0xa0) {
        return take(s, b & 0x1f); /* fixstr */
    }
    if ((b & 0xf0) == 0x90) {
        items = b & 0x0f; /* fixarray */
    } else if ((b & 0xf0) == 0x80) {
        items = (uint64_t)(b & 0x0f) * 2; /* fixmap */
    } else {
        switch (b) {
            case 0xc4: /* bin 8/16/32 */
            case 0xd9: /* str 8 */
                return read_be(s, 1, &n) ? -1 : take(s, n);
            case 0xc5:
            case 0xda:
                return read_be(s, 2, &n) ? -1 : take(s, n);
            case 0xc6:
            case 0xdb:
                return read_be(s, 4, &n) ? -1 : take(s, n);
            case 0xc7: /* ext 8/16/32: length, type byte, data */
                return read_be(s, 1, &n) ? -1 : take(s, n + 1);
            case 0xc8:
                return read_be(s, 2, &n) ? -1 : take(s, n + 1);
            case 0xc9:
                return read_be(s, 4, &n) ? -1 : take(s, n + 1);
            case 0xca: /* float 32 */
                return take(s, 4);
            case 0xcb:
                return take(s, 8);
            case 0xcc: /* uint/int 8..64 */
            case 0xd0:
                return take(s, 1);
            case 0xcd:
            case 0xd1:
                return take(s, 2);
            case 0xce:
            case 0xd2:
                return take(s, 4);
            case 0xcf:
            case 0xd3:
                return take(s, 8);
            case 0xd4: /* fixext 1..16 */
                return take(s, 2);
            case 0xd5:
                return take(s, 3);
            case 0xd6:
                return take(s, 5);
            case 0xd7:
                return take(s, 9);
            case 0xd8:
                return take(s, 17);
            case 0xdc:
                if (read_be(s, 2, &items)) {
                    return -1;
                }
                break;
            case 0xdd:
                if (read_be(s, 4, &items)) {
                    return -1;
                }
                break;
            case 0xde:
                if (read_be(s, 2, &n)) {
                    return -1;
                }
                items = n * 2;
                break;
            case 0xdf:
                if (read_be(s, 4, &n)) {
                    return -1;
                }
                items = n * 2;
                break;
            default: /* 0xc1 is never used */
                return -3;
        }
    }
    /* Every element takes at least one byte: reject impossible counts before
     * walking (or before msgpack-c allocates for them). */
    if (items > s->left) {
        return -1;
    }
    for (uint64_t i = 0; i < items; i++) {
        int rv = scan_obj(s, depth + 1);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

void mp_rd_init(struct mp_rd *r, const void *data, size_t len)
{
    r->p = data;
    r->left = len;
}

/* Read a container or string header: the byte and the length that
 * follows it. */
static int rd_len(struct mp_rd *r, unsigned width, uint64_t *n)
{
    struct scan s = {r->p, r->left};
    if (read_be(&s, width, n) != 0) {
        return -1;
    }
    r->p = s.p;
    r->left = s.left;
    return 0;
}

static int rd_byte(struct mp_rd *r, uint8_t *b)
{
    if (r->left == 0) {
        return -1;
    }
    *b = *r->p++;
    r->left--;
    return 0;
}

int mp_rd_map(struct mp_rd *r, uint32_t *n)
{
    uint8_t b;
    uint64_t v;
    if (rd_byte(r, &b) != 0) {
        return -1;
    }
    if ((b & 0xf0) == 0x80) {
        *n = b & 0x0f;
        return 0;
    }
    if ((b != 0xde && b != 0xdf) || rd_len(r, b == 0xde ? 2 : 4, &v) != 0) {
        return -1;
    }
    *n = (uint32_t)v;
    return 0;
}

int mp_rd_array(struct mp_rd *r, uint32_t *n)
{
    uint8_t b;
    uint64_t v;
    if (rd_byte(r, &b) != 0) {
        return -1;
    }
    if ((b & 0xf0) == 0x90) {
        *n = b & 0x0f;
        return 0;
    }
    if ((b != 0xdc && b != 0xdd) || rd_len(r, b == 0xdc ? 2 : 4, &v) != 0) {
        return -1;
    }
    *n = (uint32_t)v;
    return 0;
}

int mp_rd_bytes(struct mp_rd *r, struct mp_str *out, bool *is_bin)
{
    uint8_t b;
    uint64_t n;
    if (rd_byte(r, &b) != 0) {
        return -1;
    }
    *is_bin = false;
    if ((b & 0xe0) == 0xa0) {
        n = b & 0x1f;
    } else if (b == 0xd9 || b == 0xc4) {
        *is_bin = b == 0xc4;
        if (rd_len(r, 1, &n) != 0) {
            return -1;
        }
    } else if (b == 0xda || b == 0xc5) {
        *is_bin = b == 0xc5;
        if (rd_len(r, 2, &n) != 0) {
            return -1;
        }
    } else if (b == 0xdb || b == 0xc6) {
        *is_bin = b == 0xc6;
        if (rd_len(r, 4, &n) != 0) {
            return -1;
        }
    } else {
        return -1;
    }
    if (n > r->left) {
        return -1;
    }
    out->p = n > 0 ? (const char *)r->p : "";
    out->n = n;
    r->p += n;
    r->left -= n;
    return 0;
}

int mp_rd_str(struct mp_rd *r, struct mp_str *out)
{
    bool is_bin;
    return mp_rd_bytes(r, out, &is_bin) != 0 || is_bin ? -1 : 0;
}

int mp_rd_u64(struct mp_rd *r, uint64_t *v)
{
    uint8_t b;
    if (rd_byte(r, &b) != 0) {
        return -1;
    }
    if (b <= 0x7f) {
        *v = b;
        return 0;
    }
    switch (b) {
        case 0xcc:
            return rd_len(r, 1, v);
        case 0xcd:
            return rd_len(r, 2, v);
        case 0xce:
            return rd_len(r, 4, v);
        case 0xcf:
            return rd_len(r, 8, v);
        default:
            return -1;
    }
}

int mp_rd_i64(struct mp_rd *r, int64_t *v)
{
    uint8_t b;
    uint64_t u;
    if (r->left == 0) {
        return -1;
    }
    b = *r->p;
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) {
        if (mp_rd_u64(r, &u) != 0 || u > INT64_MAX) {
            return -1;
        }
        *v = (int64_t)u;
        return 0;
    }
    rd_byte(r, &b);
    if (b >= 0xe0) {
        *v = (int8_t)b;
        return 0;
    }
    switch (b) {
        case 0xd0:
            if (rd_len(r, 1, &u) != 0) {
                return -1;
            }
            *v = (int8_t)u;
            return 0;
        case 0xd1:
            if (rd_len(r, 2, &u) != 0) {
                return -1;
            }
            *v = (int16_t)u;
            return 0;
        case 0xd2:
            if (rd_len(r, 4, &u) != 0) {
                return -1;
            }
            *v = (int32_t)u;
            return 0;
        case 0xd3:
            if (rd_len(r, 8, &u) != 0) {
                return -1;
            }
            *v = (int64_t)u;
            return 0;
        default:
            return -1;
    }
}

int mp_rd_skip(struct mp_rd *r)
{
    struct scan s = {r->p, r->left};
    if (scan_obj(&s, 0) != 0) {
        return -1;
    }
    r->p = s.p;
    r->left = s.left;
    return 0;
}

int mp_check(const void *data, size_t len, struct cairn_error *err)
{
    struct scan s = {data, len};
    int rv;

    if (data == NULL || len == 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "empty msgpack document");
    }
    rv = scan_obj(&s, 0);
    switch (rv) {
        case 0:
            break;
        case -2:
            return cairn_error_set(
                err, CAIRN_INVALID_ARGUMENT, "SerializationException",
                "msgpack document nested deeper than %d", MP_MAX_DEPTH);
        case -3:
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "invalid msgpack type byte");
        default:
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "truncated msgpack document");
    }
    if (s.left != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "%zu bytes trail the msgpack document", s.left);
    }
    return 0;
}

int mp_doc_parse(struct mp_doc *doc,
                 const void *data,
                 size_t len,
                 struct cairn_error *err)
{
    int rv = mp_check(data, len, err);
    if (rv != 0) {
        return rv;
    }
    return mp_doc_parse_trusted(doc, data, len, err);
}

int mp_doc_parse_trusted(struct mp_doc *doc,
                         const void *data,
                         size_t len,
                         struct cairn_error *err)
{
    size_t off = 0;
    msgpack_unpack_return ret;

    if (!msgpack_zone_init(&doc->zone, 2048)) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory decoding msgpack");
    }
    ret = msgpack_unpack(data, len, &off, &doc->zone, &doc->root);
    if (ret != MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&doc->zone);
        if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
            return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                   "out of memory decoding msgpack");
        }
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "malformed msgpack document");
    }
    return 0;
}

int mp_doc_parse_map(struct mp_doc *doc,
                     const void *data,
                     size_t len,
                     struct cairn_error *err)
{
    int rv = mp_doc_parse(doc, data, len, err);
    if (rv != 0) {
        return rv;
    }
    if (doc->root.type != MSGPACK_OBJECT_MAP) {
        mp_doc_close(doc);
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "SerializationException",
                               "a request body must be a msgpack map");
    }
    return 0;
}

int mp_pack_map_with(struct buf *out,
                     const msgpack_object *map,
                     const char *key,
                     struct mp_str value)
{
    msgpack_packer pk;
    uint32_t n = value.p != NULL ? 1 : 0;

    for (uint32_t i = 0; i < map->via.map.size; i++) {
        n += !mp_str_eq(&map->via.map.ptr[i].key, key);
    }
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, n);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (!mp_str_eq(&kv->key, key)) {
            msgpack_pack_object(&pk, kv->key);
            msgpack_pack_object(&pk, kv->val);
        }
    }
    if (value.p != NULL) {
        mp_pack_kv_str(&pk, key, value.p, value.n);
    }
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

void mp_doc_close(struct mp_doc *doc)
{
    if (doc != NULL) {
        msgpack_zone_destroy(&doc->zone);
    }
}

bool mp_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

bool mp_str_eqn(struct mp_str a, const char *s)
{
    size_t n = strlen(s);
    return a.p != NULL && a.n == n && memcmp(a.p, s, n) == 0;
}

const msgpack_object *mp_map_get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (mp_str_eq(&kv->key, key)) {
            return &kv->val;
        }
    }
    return NULL;
}

static int wrong_type(struct cairn_error *err,
                      const char *key,
                      const char *want)
{
    cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "SerializationException",
                    "field %s must be %s", key, want);
    return -1;
}

static const msgpack_object *field(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = mp_map_get(map, key);
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
        return NULL;
    }
    return o;
}

int mp_get_str(const msgpack_object *map,
               const char *key,
               struct mp_str *out,
               struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    out->p = NULL;
    out->n = 0;
    if (o == NULL) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR) {
        return wrong_type(err, key, "a string");
    }
    out->p = o->via.str.size > 0 ? o->via.str.ptr : "";
    out->n = o->via.str.size;
    return 1;
}

int mp_get_bytes(const msgpack_object *map,
                 const char *key,
                 struct mp_str *out,
                 bool *is_bin,
                 struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    out->p = NULL;
    out->n = 0;
    if (o == NULL) {
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        out->p = o->via.str.size > 0 ? o->via.str.ptr : "";
        out->n = o->via.str.size;
        *is_bin = false;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        out->p = o->via.bin.size > 0 ? o->via.bin.ptr : "";
        out->n = o->via.bin.size;
        *is_bin = true;
        return 1;
    }
    return wrong_type(err, key, "a string or binary");
}

int mp_get_bool(const msgpack_object *map,
                const char *key,
                bool *out,
                struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    if (o == NULL) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        return wrong_type(err, key, "a boolean");
    }
    *out = o->via.boolean;
    return 1;
}

int mp_get_u64(const msgpack_object *map,
               const char *key,
               uint64_t *out,
               struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    if (o == NULL) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return wrong_type(err, key, "a non-negative integer");
    }
    *out = o->via.u64;
    return 1;
}

int mp_get_i64(const msgpack_object *map,
               const char *key,
               int64_t *out,
               struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    if (o == NULL) {
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return 1;
    }
    return wrong_type(err, key, "an integer");
}

int mp_get_array(const msgpack_object *map,
                 const char *key,
                 const msgpack_object_array **out,
                 struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    if (o == NULL) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return wrong_type(err, key, "an array");
    }
    *out = &o->via.array;
    return 1;
}

int mp_get_map(const msgpack_object *map,
               const char *key,
               const msgpack_object_map **out,
               struct cairn_error *err)
{
    const msgpack_object *o = field(map, key);
    if (o == NULL) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_MAP) {
        return wrong_type(err, key, "a map");
    }
    *out = &o->via.map;
    return 1;
}
