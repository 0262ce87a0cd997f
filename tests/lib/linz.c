#include "linz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The register's state. */
struct reg
{
    bool exists;
    uint64_t version;
    uint64_t value;
};

/* Visited (linearized set, state) pairs: a configuration seen once cannot
 * lead anywhere new the second time. */
struct memo
{
    size_t words; /* 64-bit words per set */
    size_t cap;   /* slots, a power of two */
    size_t used;
    uint64_t *keys; /* cap * (words + 3) */
    bool *full;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static uint64_t hash_of(const uint64_t *set, size_t words, const struct reg *r)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < words; i++) {
        h = mix(h, set[i]);
    }
    h = mix(h, r->exists);
    h = mix(h, r->version);
    return mix(h, r->value);
}

static int memo_grow(struct memo *m);

/* True if (set, r) was already there; otherwise add it. -1 on OOM. */
static int memo_seen(struct memo *m, const uint64_t *set, const struct reg *r)
{
    size_t stride = m->words + 3;
    size_t i;

    if ((m->used + 1) * 2 > m->cap && memo_grow(m) != 0) {
        return -1;
    }
    i = hash_of(set, m->words, r) & (m->cap - 1);
    for (;;) {
        uint64_t *k = m->keys + i * stride;
        if (!m->full[i]) {
            memcpy(k, set, m->words * sizeof(*set));
            k[m->words] = r->exists;
            k[m->words + 1] = r->version;
            k[m->words + 2] = r->value;
            m->full[i] = true;
            m->used++;
            return 0;
        }
        if (memcmp(k, set, m->words * sizeof(*set)) == 0 &&
            k[m->words] == r->exists && k[m->words + 1] == r->version &&
            k[m->words + 2] == r->value) {
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

static int memo_grow(struct memo *m)
{
    struct memo n = *m;
    size_t stride = m->words + 3;

    n.cap = m->cap ? m->cap * 2 : 1024;
    n.used = 0;
    n.keys = malloc(n.cap * stride * sizeof(uint64_t));
    n.full = calloc(n.cap, sizeof(bool));
    if (n.keys == NULL || n.full == NULL) {
        free(n.keys);
        free(n.full);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->full[i]) {
            const uint64_t *k = m->keys + i * stride;
            struct reg r = {k[m->words] != 0, k[m->words + 1], k[m->words + 2]};
            if (memo_seen(&n, k, &r) < 0) {
                free(n.keys);
                free(n.full);
                return -1;
            }
        }
    }
    free(m->keys);
    free(m->full);
    *m = n;
    return 0;
}

/* Apply @p op to @p r: false if the answer it got is impossible here. */
static bool step(const struct linz_op *op, struct reg *r)
{
    if (op->kind == LINZ_PUT) {
        if (op->ret != LINZ_NEVER && op->version != r->version + 1) {
            return false;
        }
        r->exists = true;
        r->version++;
        r->value = op->value;
        return true;
    }
    if (op->ret == LINZ_NEVER) {
        return true; /* an unanswered read constrains nothing */
    }
    if (!op->found) {
        return !r->exists;
    }
    return r->exists && r->version == op->version && r->value == op->value;
}

struct search
{
    const struct linz_op *ops;
    size_t n;
    size_t words;
    uint64_t *set; /* linearized operations */
    struct memo memo;
    uint64_t budget;
    uint64_t states;
    size_t best; /* most answered operations linearized on one path */
    size_t answered;
};

static bool in_set(const uint64_t *set, size_t i)
{
    return (set[i / 64] >> (i % 64)) & 1;
}

/* 1: a linearization exists; 0: none from here; -1: budget or memory. */
static int dfs(struct search *s, struct reg r, size_t done_answered)
{
    int64_t min_ret = LINZ_NEVER;
    int seen;

    if (done_answered == s->answered) {
        return 1; /* unanswered operations may all be dropped */
    }
    if (done_answered > s->best) {
        s->best = done_answered;
    }
    if (++s->states > s->budget) {
        return -1;
    }
    seen = memo_seen(&s->memo, s->set, &r);
    if (seen != 0) {
        return seen < 0 ? -1 : 0;
    }
    /* An operation can go next only if it was called before every
     * operation still pending returned. */
    for (size_t i = 0; i < s->n; i++) {
        if (!in_set(s->set, i) && s->ops[i].ret < min_ret) {
            min_ret = s->ops[i].ret;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct linz_op *op = &s->ops[i];
        struct reg next = r;
        int rv;
        if (in_set(s->set, i) || op->call > min_ret || !step(op, &next)) {
            continue;
        }
        s->set[i / 64] |= 1ULL << (i % 64);
        rv = dfs(s, next, done_answered + (op->ret != LINZ_NEVER));
        s->set[i / 64] &= ~(1ULL << (i % 64));
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int linz_check(const struct linz_op *ops,
               size_t n,
               uint64_t budget,
               char *why,
               size_t cap)
{
    struct search s;
    struct reg r = {false, 0, 0};
    int rv;

    memset(&s, 0, sizeof(s));
    s.ops = ops;
    s.n = n;
    s.words = (n + 63) / 64 + 1;
    s.budget = budget;
    s.memo.words = s.words;
    s.set = calloc(s.words, sizeof(uint64_t));
    if (s.set == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        s.answered += ops[i].ret != LINZ_NEVER;
    }
    rv = dfs(&s, r, 0);
    if (rv == 0 && why != NULL) {
        snprintf(why, cap,
                 "no linearization: at most %zu of %zu answered operations "
                 "fit one order (%llu states explored)",
                 s.best, s.answered, (unsigned long long)s.states);
    }
    free(s.set);
    free(s.memo.keys);
    free(s.memo.full);
    return rv < 0 ? -1 : rv;
}
