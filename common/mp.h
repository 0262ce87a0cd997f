/* msgpack helpers: packing into a struct buf, a bounds checker for untrusted
 * input, and typed access to the fields of a decoded map. */
#ifndef CAIRN_COMMON_MP_H
#define CAIRN_COMMON_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "status.h"

/* Deepest nesting accepted from outside. msgpack-c's own limit is 32. */
#define MP_MAX_DEPTH 24

/* A borrowed byte string: points into a decoded document or a buffer. */
struct mp_str
{
    const char *p;
    size_t n;
};

/** Bind @p pk to append to @p b. Check b->oom after packing. */
void mp_packer_init(msgpack_packer *pk, struct buf *b);
static inline int mp_pack_str(msgpack_packer *pk, const void *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0) {
        return -1;
    }
    return msgpack_pack_str_body(pk, s, n);
}

/* Inline so that strlen of a literal key folds to a constant. */
static inline int mp_pack_cstr(msgpack_packer *pk, const char *s)
{
    return mp_pack_str(pk, s, strlen(s));
}

static inline int mp_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    if (msgpack_pack_bin(pk, n) != 0) {
        return -1;
    }
    return msgpack_pack_bin_body(pk, p, n);
}

/** Pack "key" then the string value. */
static inline int mp_pack_kv_str(msgpack_packer *pk,
                                 const char *key,
                                 const void *s,
                                 size_t n)
{
    if (mp_pack_cstr(pk, key) != 0) {
        return -1;
    }
    return mp_pack_str(pk, s, n);
}

static inline int mp_pack_kv_cstr(msgpack_packer *pk,
                                  const char *key,
                                  const char *s)
{
    return mp_pack_kv_str(pk, key, s, strlen(s));
}

static inline int mp_pack_kv_u64(msgpack_packer *pk,
                                 const char *key,
                                 uint64_t v)
{
    if (mp_pack_cstr(pk, key) != 0) {
        return -1;
    }
    return msgpack_pack_uint64(pk, v);
}

static inline int mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t v)
{
    if (mp_pack_cstr(pk, key) != 0) {
        return -1;
    }
    return msgpack_pack_int64(pk, v);
}

static inline int mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool v)
{
    if (mp_pack_cstr(pk, key) != 0) {
        return -1;
    }
    return v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

/**
 * Check that @p data holds exactly one well-formed msgpack object: every
 * length fits in the buffer, nesting is at most MP_MAX_DEPTH, no bytes
 * trail. It allocates nothing, so it is safe on hostile input and keeps
 * msgpack-c from reserving memory for lengths the buffer cannot hold.
 * 0, or CAIRN_INVALID_ARGUMENT with a message in @p err.
 */
int mp_check(const void *data, size_t len, struct cairn_error *err);

/* A decoded document. Strings in it point into the input buffer, which must
 * outlive the document. */
struct mp_doc
{
    msgpack_zone zone;
    msgpack_object root;
};

/**
 * Check then decode @p data. On success the caller calls mp_doc_close.
 * On failure nothing needs closing. Errors: INVALID_ARGUMENT (malformed),
 * RESOURCE_EXHAUSTED (out of memory).
 */
int mp_doc_parse(struct mp_doc *doc,
                 const void *data,
                 size_t len,
                 struct cairn_error *err);
void mp_doc_close(struct mp_doc *doc);

/**
 * Decode @p data that this process wrote itself (records read back from the
 * store), skipping the bounds pre-check. Never use it on outside input.
 */
int mp_doc_parse_trusted(struct mp_doc *doc,
                         const void *data,
                         size_t len,
                         struct cairn_error *err);

/*
 * A zero-allocation pull reader for msgpack that this process wrote itself
 * (records read back from LMDB). msgpack-c's C API only decodes into an
 * object tree in a zone; on the read hot path that tree, its allocation and
 * the walk over it cost more than the LMDB lookups, so records are read in
 * place. Each call returns 0, or -1 if the next object is not of the asked
 * type or the buffer ends early (the reader is then unusable). Strings point
 * into the buffer.
 */
struct mp_rd
{
    const uint8_t *p;
    size_t left;
};

void mp_rd_init(struct mp_rd *r, const void *data, size_t len);
int mp_rd_map(struct mp_rd *r, uint32_t *n);
int mp_rd_array(struct mp_rd *r, uint32_t *n);
int mp_rd_str(struct mp_rd *r, struct mp_str *out);
/* A str or a bin; *is_bin says which. */
int mp_rd_bytes(struct mp_rd *r, struct mp_str *out, bool *is_bin);
int mp_rd_u64(struct mp_rd *r, uint64_t *v);
int mp_rd_i64(struct mp_rd *r, int64_t *v);
/* Skip one object of any type (bounded by MP_MAX_DEPTH). */
int mp_rd_skip(struct mp_rd *r);

/**
 * mp_doc_parse, then require a map: INVALID_ARGUMENT /
 * SerializationException "a request body must be a msgpack map" otherwise.
 */
int mp_doc_parse_map(struct mp_doc *doc,
                     const void *data,
                     size_t len,
                     struct cairn_error *err);

/**
 * Append to @p out a copy of map @p map with its field @p key set to the
 * string @p value (replacing it if present), or removed when value.p is
 * NULL: how paged requests move on to their NextToken.
 * 0 or RESOURCE_EXHAUSTED.
 */
int mp_pack_map_with(struct buf *out,
                     const msgpack_object *map,
                     const char *key,
                     struct mp_str value);

/** The value of string key @p key in map @p map, or NULL. */
const msgpack_object *mp_map_get(const msgpack_object *map, const char *key);

/*
 * Typed field readers. Each returns 1 when the field is present with the
 * right type, 0 when it is absent (or nil), and -1 with @p err set to
 * INVALID_ARGUMENT / SerializationException when it has another type.
 */
int mp_get_str(const msgpack_object *map,
               const char *key,
               struct mp_str *out,
               struct cairn_error *err);
/* A string or a bin (SecureString blobs travel as bin). */
int mp_get_bytes(const msgpack_object *map,
                 const char *key,
                 struct mp_str *out,
                 bool *is_bin,
                 struct cairn_error *err);
int mp_get_bool(const msgpack_object *map,
                const char *key,
                bool *out,
                struct cairn_error *err);
int mp_get_u64(const msgpack_object *map,
               const char *key,
               uint64_t *out,
               struct cairn_error *err);
int mp_get_i64(const msgpack_object *map,
               const char *key,
               int64_t *out,
               struct cairn_error *err);
int mp_get_array(const msgpack_object *map,
                 const char *key,
                 const msgpack_object_array **out,
                 struct cairn_error *err);
int mp_get_map(const msgpack_object *map,
               const char *key,
               const msgpack_object_map **out,
               struct cairn_error *err);

/** True when @p o is a string equal to the C string @p s. */
bool mp_str_eq(const msgpack_object *o, const char *s);
bool mp_str_eqn(struct mp_str a, const char *s);

#endif
