/* Tests of the linearizability checker (tests/lib/linz.c): it must accept
 * what a linearizable register allows and reject stale or impossible
 * answers, or the cluster tests that rely on it prove nothing. */
#include "test.h"

#include <string.h>

#include "linz.h"

#define BUDGET 1000000

static struct linz_op put(int64_t call,
                          int64_t ret,
                          uint64_t value,
                          uint64_t version)
{
    struct linz_op op = {LINZ_PUT, call, ret, value, version, false};
    return op;
}

static struct linz_op get(int64_t call,
                          int64_t ret,
                          bool found,
                          uint64_t value,
                          uint64_t version)
{
    struct linz_op op = {LINZ_GET, call, ret, value, version, found};
    return op;
}

static int check(const struct linz_op *ops, size_t n)
{
    char why[256];
    return linz_check(ops, n, BUDGET, why, sizeof(why));
}

/* A sequential history that a register produces is accepted. */
static void sequential_ok(void **state)
{
    struct linz_op ops[] = {
        get(0, 1, false, 0, 0), put(2, 3, 10, 1),       get(4, 5, true, 10, 1),
        put(6, 7, 20, 2),       get(8, 9, true, 20, 2),
    };
    (void)state;
    assert_int_equal(check(ops, 5), 1);
}

/* A read concurrent with a write may see either side of it. */
static void concurrent_either_side(void **state)
{
    struct linz_op before[] = {put(0, 1, 10, 1), put(2, 6, 20, 2),
                               get(3, 4, true, 10, 1)};
    struct linz_op after[] = {put(0, 1, 10, 1), put(2, 6, 20, 2),
                              get(3, 4, true, 20, 2)};
    (void)state;
    assert_int_equal(check(before, 3), 1);
    assert_int_equal(check(after, 3), 1);
}

/* A read that returns an older value after a newer write completed is a
 * stale read: rejected. */
static void stale_read_rejected(void **state)
{
    struct linz_op ops[] = {put(0, 1, 10, 1), put(2, 3, 20, 2),
                            get(4, 5, true, 10, 1)};
    char why[256] = "";
    (void)state;
    assert_int_equal(linz_check(ops, 3, BUDGET, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "no linearization"));
}

/* Once a read has seen a new value, a later read cannot see the old one
 * (no flip-flopping), even while the write is still in flight. */
static void no_going_back(void **state)
{
    struct linz_op ops[] = {put(0, 1, 10, 1), put(2, 20, 20, 2),
                            get(3, 4, true, 20, 2), get(5, 6, true, 10, 1)};
    (void)state;
    assert_int_equal(check(ops, 4), 0);
}

/* A write with no answer may have happened or not. */
static void unanswered_write(void **state)
{
    struct linz_op seen[] = {put(0, LINZ_NEVER, 10, 0), get(5, 6, true, 10, 1)};
    struct linz_op unseen[] = {put(0, LINZ_NEVER, 10, 0),
                               get(5, 6, false, 0, 0)};
    struct linz_op both[] = {put(0, LINZ_NEVER, 10, 0), get(5, 6, true, 10, 1),
                             get(7, 8, false, 0, 0)};
    (void)state;
    assert_int_equal(check(seen, 2), 1);
    assert_int_equal(check(unseen, 2), 1);
    /* ... but not both: once seen, it happened. */
    assert_int_equal(check(both, 3), 0);
}

/* Versions must follow the writes: an acknowledged write that skipped a
 * version (a write applied twice) is rejected. */
static void duplicate_apply_rejected(void **state)
{
    struct linz_op ops[] = {put(0, 1, 10, 1), put(2, 3, 20, 3)};
    (void)state;
    assert_int_equal(check(ops, 2), 0);
}

/* A larger concurrent history (4 clients, 200 operations) from a real
 * sequential execution is accepted within the budget. */
static void larger_history(void **state)
{
    struct linz_op ops[200];
    uint64_t version = 0, value = 0;
    bool exists = false;
    (void)state;
    /* Each operation takes effect at time 10*i+5 inside an interval that
     * overlaps its neighbours. */
    for (int i = 0; i < 200; i++) {
        int64_t at = 10 * i + 5;
        if (i % 3 == 0) {
            version++;
            value = 1000 + (uint64_t)i;
            exists = true;
            ops[i] = put(at - 12, at + 12, value, version);
        } else {
            ops[i] = get(at - 12, at + 12, exists, exists ? value : 0,
                         exists ? version : 0);
        }
    }
    assert_int_equal(check(ops, 200), 1);
    /* Make one read stale: now impossible. */
    ops[100] = get(ops[100].call, ops[100].ret, true, 1000, 1);
    assert_int_equal(check(ops, 200), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sequential_ok),
        cmocka_unit_test(concurrent_either_side),
        cmocka_unit_test(stale_read_rejected),
        cmocka_unit_test(no_going_back),
        cmocka_unit_test(unanswered_write),
        cmocka_unit_test(duplicate_apply_rejected),
        cmocka_unit_test(larger_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
