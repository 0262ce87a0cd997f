/* Shared test helpers: cmocka with its prerequisites, temporary
 * directories, and JSON <-> msgpack shortcuts for requests and responses. */
#ifndef CAIRN_TESTS_TEST_H
#define CAIRN_TESTS_TEST_H

/* cmocka needs these first, in this order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "buf.h"
#include "status.h"

/** Create a fresh temporary directory; the caller frees the string and
 * removes the tree with test_rmdir. Fails the test on error. */
char *test_mkdtemp(void);
/** Remove a directory tree (best effort). NULL is allowed. */
void test_rmdir(char *path);

/** JSON text -> msgpack in @p out (reset first). Fails the test on error. */
void test_json_to_mp(const char *json, struct buf *out);
/** msgpack -> compact JSON with sorted keys; caller frees. Fails the test on
 * error. */
char *test_mp_to_json(const void *mp, size_t len);

#endif
