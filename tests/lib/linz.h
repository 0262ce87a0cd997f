/* A linearizability checker for histories of one parameter (a versioned
 * register), in the style of Wing and Gong's search with memoisation (as in
 * Knossos and Porcupine). The cluster tests record what clients saw and
 * check it per name. */
#ifndef CAIRN_TESTS_LINZ_H
#define CAIRN_TESTS_LINZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINZ_NEVER INT64_MAX /* return time of an operation with no answer */

enum linz_kind {
    LINZ_PUT, /* PutParameter with Overwrite: value -> new version */
    LINZ_GET, /* GetParameter: found?, version, value */
};

struct linz_op
{
    enum linz_kind kind;
    int64_t call;     /* when the client sent it */
    int64_t ret;      /* when the answer arrived; LINZ_NEVER if none came (a
                         timeout or a lost connection: it may or may not have
                         taken effect) */
    uint64_t value;   /* PUT: the value written (unique per put);
                         GET: the value read */
    uint64_t version; /* PUT answered: the version it created;
                         GET: the version read */
    bool found;       /* GET: the parameter existed */
};

/**
 * Whether the @p n operations on one parameter, which starts absent, are
 * linearizable: some order of them, consistent with real time (an
 * operation that returned before another was called comes first), in which
 * every answered operation got the answer the sequential register gives.
 * Operations with no answer may be placed anywhere after their call, or
 * dropped. Returns 1 if linearizable, 0 if not (with a reason in @p why),
 * -1 if the search gave up (more than @p budget states).
 */
int linz_check(const struct linz_op *ops,
               size_t n,
               uint64_t budget,
               char *why,
               size_t cap);

#endif
