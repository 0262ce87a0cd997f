/* Conversion between JSON text and msgpack, for tests, tools and the CLI. */
#ifndef CAIRN_COMMON_MPJSON_H
#define CAIRN_COMMON_MPJSON_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

/**
 * Append the msgpack form of the JSON text @p json to @p out. Objects become
 * maps, integers ints, reals float64, strings str. Errors:
 * INVALID_ARGUMENT (bad JSON), RESOURCE_EXHAUSTED.
 */
int mpjson_from_json(const char *json,
                     struct buf *out,
                     struct cairn_error *err);

/**
 * Render one msgpack document as compact JSON with sorted keys (so tests can
 * compare strings). bin values become base64 strings. On success *json is a
 * NUL-terminated string the caller frees with free(). Errors:
 * INVALID_ARGUMENT (malformed msgpack, non-string map key, ext type),
 * RESOURCE_EXHAUSTED.
 */
int mpjson_to_json(const void *mp,
                   size_t len,
                   char **json,
                   int indent,
                   struct cairn_error *err);

/** Standard base64 of @p n bytes into a new NUL-terminated string (free()),
 * or NULL when out of memory. */
char *mpjson_base64(const void *p, size_t n);

#endif
