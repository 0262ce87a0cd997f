/* Read-only queries over the Parameter Store. Each takes a msgpack request
 * body with AWS's field names and appends a msgpack response body with
 * AWS's output shape. Never writes. */
#ifndef CAIRN_STORAGE_QUERY_H
#define CAIRN_STORAGE_QUERY_H

#include <stddef.h>

#include "buf.h"
#include "store.h"

/**
 * Run the read method @p method ("GetParameter", "GetParameters",
 * "GetParametersByPath", "GetParameterHistory", "DescribeParameters",
 * "ListTagsForResource", "GetServiceSetting", and Cairn's "GetChanges",
 * which reads the change feed: {"FromRevision", "MaxResults"} ->
 * {"Changes": [{Revision, Operation, Name, Type, Version, Time}],
 * "Revision", "OldestRevision"}) with request @p req (msgpack
 * map, borrowed). On success the response body is appended to @p out.
 * On failure @p err has the status, AWS error name and message, and @p out
 * is unchanged. UNIMPLEMENTED for an unknown method.
 *
 * Secure values are returned as stored (the sealed blob, as bin): decrypting
 * them is the service layer's job.
 *
 * Call from one thread at a time per store (the store keeps one cached
 * read transaction).
 */
int query_run(struct store *s,
              const char *method,
              const void *req,
              size_t len,
              struct buf *out,
              struct cairn_error *err);

#endif
