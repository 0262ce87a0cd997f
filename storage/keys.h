/* LMDB key encodings. Parameter keys keep the byte order of canonical names
 * so that a path is a key range, even for names longer than LMDB's 511-byte
 * key limit. */
#ifndef CAIRN_STORAGE_KEYS_H
#define CAIRN_STORAGE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A canonical name of up to KEYS_INLINE bytes is its own key. A longer one
 * is keyed by its first KEYS_INLINE bytes, the marker byte KEYS_LONG_MARK
 * (0x7f sorts after every name character, so the long key sorts after the
 * short name that equals its prefix) and 16 bytes of SHA-256 of the whole
 * name; the record holds the full name. Keys therefore sort like names,
 * except that long names sharing their first KEYS_INLINE bytes sort among
 * themselves by hash: a stable total order, which is all paging needs, and
 * every name under a path still lies in the key range of the path's prefix
 * (truncated to KEYS_INLINE bytes). KEYS_INLINE leaves room for a label
 * after an 8-byte id within 511 bytes. */
#define KEYS_INLINE 380
#define KEYS_LONG_MARK 0x7f
#define KEYS_HASH 16
#define KEYS_PARAM_MAX (KEYS_INLINE + 1 + KEYS_HASH)

/** Write the key of canonical name @p name (length @p n) into @p out
 * (KEYS_PARAM_MAX bytes). Returns the key length. */
size_t keys_param(const char *name, size_t n, uint8_t *out);

/** True when @p key is the key of a long (hashed) name. */
bool keys_param_is_long(const uint8_t *key, size_t n);

/** Versions: parameter id (8 bytes BE) then version (8 bytes BE). */
#define KEYS_VERSION_LEN 16
void keys_version(uint64_t id, uint64_t version, uint8_t out[16]);

/** Labels: parameter id (8 bytes BE) then the label. @p out holds
 * 8 + label length bytes. Returns the key length. */
size_t keys_label(uint64_t id, const char *label, size_t n, uint8_t *out);

/** Successor prefix: the smallest key greater than every key that starts
 * with @p p[0..n). Names never contain 0xff, so incrementing the last byte
 * below 0xff is enough. Returns false if no such key exists. */
bool keys_prefix_end(uint8_t *p, size_t n);

#endif
