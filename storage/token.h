/* NextToken: an opaque, authenticated resume position for paged reads. */
#ifndef CAIRN_STORAGE_TOKEN_H
#define CAIRN_STORAGE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

#define TOKEN_KEY_LEN 32
#define TOKEN_POS_MAX 512

/* A token carries the kind of listing, a hash of the query it belongs to and
 * the last key examined, sealed with HMAC-SHA256 under the store's token
 * key. A token that was altered, forged, or taken from another query is
 * refused with InvalidNextToken. Resuming strictly after the last examined
 * key means that a parameter present for the whole listing is returned
 * exactly once, whatever is added or removed between pages. */

/** Append the base64url token to @p out (no NUL counted). */
int token_encode(const uint8_t key[TOKEN_KEY_LEN],
                 uint8_t kind,
                 uint64_t query_hash,
                 const void *pos,
                 size_t pos_len,
                 struct buf *out);

/**
 * Check and open token @p tok. On success @p pos (TOKEN_POS_MAX bytes)
 * holds the position. Errors: InvalidNextToken (INVALID_ARGUMENT).
 */
int token_decode(const uint8_t key[TOKEN_KEY_LEN],
                 uint8_t kind,
                 uint64_t query_hash,
                 const char *tok,
                 size_t n,
                 uint8_t *pos,
                 size_t *pos_len,
                 struct cairn_error *err);

/** A 64-bit hash of @p n bytes (SHA-256 prefix), for query fingerprints. */
uint64_t token_hash(const void *p, size_t n);

#endif
