/* Linearizability of a three-node cluster while its leader is killed and
 * restarted again and again: clients record every call and answer, and
 * each parameter's history is checked against a versioned register with
 * tests/lib/linz.h. That the checker rejects a stale read is shown by its
 * own unit test (tests/unit/lib/test_linz.c, stale_read_rejected), so it
 * is not repeated here. */
#include "test.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "linz.h"
#include "mpjson.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

#define N_NAMES 3
#define N_WORKERS 4
#define RUN_MS 12000         /* how long the nemesis runs */
#define NEMESIS_DOWN_MS 1000 /* a killed leader stays down this long */
#define NEMESIS_UP_MS 1000   /* then runs this long before the next kill */
#define VERSION_LIMIT 100    /* versions a parameter keeps */
#define CHECK_BUDGET 2000000

enum op_kind { OP_PUT, OP_GET, OP_HISTORY, OP_SELECTOR };

/* One call as a client saw it. */
struct rec
{
    struct linz_op op; /* PUT, or GET for GetParameter and the newest entry
                          of GetParameterHistory */
    enum op_kind kind;
    unsigned name;
    unsigned worker;
};

/* One version as a read reported it: a history entry, or a read by
 * version selector (found or not). */
struct obs
{
    unsigned name;
    uint64_t version;
    uint64_t value;
    bool found;
    bool selector;
    int64_t call;
    int64_t ret;
};

struct lin;

struct lworker
{
    struct lin *lin;
    unsigned idx;
    pthread_t thread;
    struct cairn_client *cl;
    uint64_t rng;
    uint64_t known[N_NAMES]; /* a version this worker saw exist */
    struct rec *recs;
    size_t n_recs, cap_recs;
    struct obs *obs;
    size_t n_obs, cap_obs;
    unsigned unexpected; /* errors other than UNAVAILABLE/DEADLINE */
    char first_unexpected[CAIRN_ERROR_MSG_MAX + 256];
};

struct lin
{
    struct cluster *c;
    int64_t t0;
    atomic_bool stop;
    struct lworker w[N_WORKERS];
    unsigned n_started; /* worker threads running */
    pthread_t nemesis;
    bool nemesis_running;
    unsigned kills;
    unsigned no_leader; /* nemesis rounds that found no leader */
};

static const char *const names[N_NAMES] = {"/lin/a", "/lin/b", "/lin/c"};

static void stop_all(struct lin *l);

static int setup(void **state)
{
    struct lin *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    *state = l;
    return 0;
}

/* After a failure too: threads first, then every node by its PID. */
static int teardown(void **state)
{
    struct lin *l = *state;
    stop_all(l);
    cluster_destroy(l->c);
    for (unsigned i = 0; i < N_WORKERS; i++) {
        free(l->w[i].recs);
        free(l->w[i].obs);
    }
    free(l);
    return 0;
}

/******************************************************************************
 * Helper macros and recording
 *****************************************************************************/

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: reproducible per worker from its seed. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return p;
    }
    *cap = *cap ? *cap * 2 : 256;
    p = realloc(p, *cap * size);
    if (p == NULL) {
        abort(); /* a test thread out of memory: nothing to report to */
    }
    return p;
}

static void add_rec(struct lworker *w,
                    enum op_kind kind,
                    unsigned name,
                    const struct linz_op *op)
{
    w->recs = grow(w->recs, &w->cap_recs, w->n_recs, sizeof(*w->recs));
    w->recs[w->n_recs].op = *op;
    w->recs[w->n_recs].kind = kind;
    w->recs[w->n_recs].name = name;
    w->recs[w->n_recs].worker = w->idx;
    w->n_recs++;
}

static void add_obs(struct lworker *w, const struct obs *o)
{
    w->obs = grow(w->obs, &w->cap_obs, w->n_obs, sizeof(*w->obs));
    w->obs[w->n_obs++] = *o;
}

static void unexpected(struct lworker *w,
                       const char *what,
                       const struct cairn_error *err)
{
    if (w->unexpected++ == 0) {
        snprintf(w->first_unexpected, sizeof(w->first_unexpected),
                 "%s: %s %s: %s", what, cairn_status_name(err->code), err->type,
                 err->msg);
    }
}

static bool indeterminate(int rv)
{
    return rv == CAIRN_UNAVAILABLE || rv == CAIRN_DEADLINE_EXCEEDED;
}

static void saw(struct lworker *w, unsigned name, uint64_t version)
{
    if (version > w->known[name]) {
        w->known[name] = version;
    }
}

/******************************************************************************
 * Operations
 *****************************************************************************/

static void do_put(struct lworker *w, unsigned name, uint64_t value)
{
    struct linz_op op = {LINZ_PUT, 0, 0, value, 0, false};
    struct cairn_error err;
    char text[32];
    int rv;

    snprintf(text, sizeof(text), "%" PRIu64, value);
    op.call = cluster_now_ns();
    rv = cairn_put_parameter(w->cl, names[name], text, "String", true,
                             &op.version, &err);
    op.ret = cluster_now_ns();
    if (rv == 0) {
        saw(w, name, op.version);
    } else if (indeterminate(rv)) {
        /* It may yet take effect: a leader may commit it later. */
        op.ret = LINZ_NEVER;
        op.version = 0;
    } else {
        unexpected(w, "PutParameter", &err);
        return;
    }
    add_rec(w, OP_PUT, name, &op);
}

static void do_get(struct lworker *w, unsigned name)
{
    struct linz_op op = {LINZ_GET, 0, 0, 0, 0, false};
    struct cairn_parameter p;
    struct cairn_error err;
    int rv;

    op.call = cluster_now_ns();
    rv = cairn_get_parameter(w->cl, names[name], false, &p, &err);
    op.ret = cluster_now_ns();
    if (rv == 0) {
        op.found = true;
        op.value = strtoull(p.value, NULL, 10);
        op.version = p.version;
        saw(w, name, p.version);
        cairn_parameter_free(&p);
    } else if (rv == CAIRN_NOT_FOUND) {
        op.found = false;
    } else if (indeterminate(rv)) {
        return; /* a read with no answer constrains nothing */
    } else {
        unexpected(w, "GetParameter", &err);
        return;
    }
    add_rec(w, OP_GET, name, &op);
}

/* The versions of one GetParameterHistory call, page after page. */
struct history
{
    struct lworker *w;
    unsigned name;
    struct obs entries[3 * VERSION_LIMIT];
    size_t n;
    bool bad;          /* a page that did not parse or made no sense */
    char problem[128]; /* what was wrong */
};

static int history_page(void *ctx, const void *resp, size_t len)
{
    struct history *h = ctx;
    struct cairn_error err;
    char *json = NULL;
    json_t *j, *arr, *v;
    size_t i;

    if (mpjson_to_json(resp, len, &json, 0, &err) != 0) {
        h->bad = true;
        snprintf(h->problem, sizeof(h->problem), "not msgpack");
        return 1;
    }
    j = json_loads(json, 0, NULL);
    free(json);
    arr = json_object_get(j, "Parameters");
    json_array_foreach(arr, i, v)
    {
        const char *value = json_string_value(json_object_get(v, "Value"));
        uint64_t version =
            (uint64_t)json_integer_value(json_object_get(v, "Version"));
        uint64_t prev = h->n > 0 ? h->entries[h->n - 1].version : 0;
        if (h->n == sizeof(h->entries) / sizeof(h->entries[0]) ||
            value == NULL) {
            h->bad = true;
            snprintf(h->problem, sizeof(h->problem), "too many or no value");
            break;
        }
        /* One page is read in one transaction: consecutive versions. From
         * one page to the next, versions only increase (the oldest may be
         * dropped in between, as puts go on). */
        if (h->n > 0 && (i > 0 ? version != prev + 1 : version <= prev)) {
            h->bad = true;
            snprintf(h->problem, sizeof(h->problem),
                     "version %" PRIu64 " after %" PRIu64 " (%s a page)",
                     version, prev, i > 0 ? "within" : "at the start of");
            break;
        }
        h->entries[h->n].name = h->name;
        h->entries[h->n].found = true;
        h->entries[h->n].version = version;
        h->entries[h->n].value = strtoull(value, NULL, 10);
        h->n++;
    }
    json_decref(j);
    return h->bad ? 1 : 0;
}

/* GetParameterHistory: its newest entry is a read of the register (the
 * last page is read last, so that entry is the state at some moment inside
 * the call); every entry is a version to cross-check. */
static void do_history(struct lworker *w, unsigned name)
{
    struct linz_op op = {LINZ_GET, 0, 0, 0, 0, false};
    struct history *h = calloc(1, sizeof(*h));
    struct cairn_error err;
    char req[96];
    struct buf b;
    int rv;

    if (h == NULL) {
        abort();
    }
    h->w = w;
    h->name = name;
    snprintf(req, sizeof(req), "{\"Name\":\"%s\",\"MaxResults\":50}",
             names[name]);
    buf_init(&b);
    if (mpjson_from_json(req, &b, &err) != 0) {
        abort();
    }
    op.call = cluster_now_ns();
    rv = cairn_call_paged(w->cl, "GetParameterHistory", b.data, b.len,
                          history_page, h, &err);
    op.ret = cluster_now_ns();
    buf_close(&b);
    if (rv == 0 && !h->bad && h->n == 0) {
        h->bad = true;
        snprintf(h->problem, sizeof(h->problem), "no versions");
    }
    if (rv == 0 && !h->bad) {
        const struct obs *last = &h->entries[h->n - 1];
        op.found = true;
        op.version = last->version;
        op.value = last->value;
        saw(w, name, last->version);
        for (size_t i = 0; i < h->n; i++) {
            h->entries[i].call = op.call;
            h->entries[i].ret = op.ret;
            add_obs(w, &h->entries[i]);
        }
    } else if (h->bad) {
        struct cairn_error e = {CAIRN_INTERNAL, "", ""};
        snprintf(e.msg, sizeof(e.msg), "%s", h->problem);
        unexpected(w, "GetParameterHistory", &e);
        free(h);
        return;
    } else if (rv == CAIRN_NOT_FOUND) {
        op.found = false;
    } else {
        if (!indeterminate(rv)) {
            unexpected(w, "GetParameterHistory", &err);
        }
        free(h);
        return;
    }
    free(h);
    add_rec(w, OP_HISTORY, name, &op);
}

/* GetParameter "name:version" of a version this worker saw exist. */
static void do_selector(struct lworker *w, unsigned name)
{
    struct obs o = {name, 0, 0, false, true, 0, 0};
    struct cairn_parameter p;
    struct cairn_error err;
    char sel[64];
    uint64_t back = next_rand(&w->rng) % 5;
    int rv;

    o.version = w->known[name] > back ? w->known[name] - back : 1;
    snprintf(sel, sizeof(sel), "%s:%" PRIu64, names[name], o.version);
    o.call = cluster_now_ns();
    rv = cairn_get_parameter(w->cl, sel, false, &p, &err);
    o.ret = cluster_now_ns();
    if (rv == 0) {
        o.found = true;
        o.value = strtoull(p.value, NULL, 10);
        if (p.version != o.version) {
            struct cairn_error e = {CAIRN_INTERNAL, "", ""};
            snprintf(e.msg, sizeof(e.msg), "%s gave version %" PRIu64, sel,
                     p.version);
            unexpected(w, "GetParameter by version", &e);
        }
        cairn_parameter_free(&p);
    } else if (rv != CAIRN_NOT_FOUND) {
        if (!indeterminate(rv)) {
            unexpected(w, "GetParameter by version", &err);
        }
        return;
    }
    add_obs(w, &o);
}

static void *worker_main(void *arg)
{
    struct lworker *w = arg;
    uint64_t seq = 0;

    while (!atomic_load(&w->lin->stop)) {
        unsigned name = (unsigned)(next_rand(&w->rng) % N_NAMES);
        unsigned r = (unsigned)(next_rand(&w->rng) % 100);
        if (r < 45) {
            /* Distinct values: the worker in the high bits. */
            do_put(w, name, ((uint64_t)(w->idx + 1) << 32) | ++seq);
        } else if (r < 80 || (r >= 90 && w->known[name] == 0)) {
            do_get(w, name);
        } else if (r < 90) {
            do_history(w, name);
        } else {
            do_selector(w, name);
        }
    }
    return NULL;
}

/* Sleep @p ms, or less if the run is stopped (a failed test). */
static void nap(struct lin *l, int ms)
{
    for (; ms > 0 && !atomic_load(&l->stop); ms -= 10) {
        usleep(10 * 1000);
    }
}

/* Kill the leader, leave it down, restart it, let it run; again. The
 * timing only shapes the fault schedule: nothing relies on it. */
static void *nemesis_main(void *arg)
{
    struct lin *l = arg;
    long long end = proc_now_ms() + RUN_MS;

    while (proc_now_ms() < end && !atomic_load(&l->stop)) {
        uint64_t leader = cluster_find_leader(l->c, 5000);
        if (leader == 0) {
            l->no_leader++;
            continue;
        }
        cluster_kill9(l->c, leader);
        l->kills++;
        nap(l, NEMESIS_DOWN_MS);
        cluster_spawn(l->c, leader);
        nap(l, NEMESIS_UP_MS);
    }
    atomic_store(&l->stop, true);
    return NULL;
}

static void stop_all(struct lin *l)
{
    atomic_store(&l->stop, true);
    if (l->nemesis_running) {
        pthread_join(l->nemesis, NULL);
        l->nemesis_running = false;
    }
    for (unsigned i = 0; i < l->n_started; i++) {
        pthread_join(l->w[i].thread, NULL);
    }
    l->n_started = 0;
    for (unsigned i = 0; i < N_WORKERS; i++) {
        cairn_client_close(l->w[i].cl);
        l->w[i].cl = NULL;
    }
}

/******************************************************************************
 * Assertions
 *****************************************************************************/

static int by_call(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    return x->op.call < y->op.call ? -1 : x->op.call > y->op.call;
}

static const char *kind_name(enum op_kind k)
{
    switch (k) {
        case OP_PUT:
            return "put";
        case OP_GET:
            return "get";
        case OP_HISTORY:
            return "history";
        default:
            return "selector";
    }
}

static void print_history(const struct lin *l,
                          unsigned name,
                          const struct rec *recs,
                          size_t n)
{
    fprintf(stderr, "# history of %s (%zu operations, ms since start):\n",
            names[name], n);
    for (size_t i = 0; i < n; i++) {
        const struct rec *r = &recs[i];
        double call = (double)(r->op.call - l->t0) / 1e6;
        fprintf(stderr, "#  w%u %-8s [%9.3f, ", r->worker, kind_name(r->kind),
                call);
        if (r->op.ret == LINZ_NEVER) {
            fprintf(stderr, "    never]");
        } else {
            fprintf(stderr, "%9.3f]", (double)(r->op.ret - l->t0) / 1e6);
        }
        if (r->kind == OP_PUT) {
            fprintf(stderr, " value %" PRIx64 " -> v%" PRIu64 "\n", r->op.value,
                    r->op.version);
        } else if (!r->op.found) {
            fprintf(stderr, " not found\n");
        } else {
            fprintf(stderr, " v%" PRIu64 " = %" PRIx64 "\n", r->op.version,
                    r->op.value);
        }
    }
}

/* What the puts of one name say about a version: the value of the
 * answered put that created it, or whether some unanswered put wrote that
 * value. */
static bool version_value_possible(const struct rec *recs,
                                   size_t n,
                                   uint64_t version,
                                   uint64_t value)
{
    bool answered = false;
    for (size_t i = 0; i < n; i++) {
        const struct linz_op *op = &recs[i].op;
        if (recs[i].kind != OP_PUT) {
            continue;
        }
        if (op->ret != LINZ_NEVER && op->version == version) {
            if (op->value != value) {
                return false;
            }
            answered = true;
        }
    }
    if (answered) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        const struct linz_op *op = &recs[i].op;
        if (recs[i].kind == OP_PUT && op->ret == LINZ_NEVER &&
            op->value == value) {
            return true;
        }
    }
    return false;
}

/* Whether version @p v may have been dropped (only the newest 100 are kept)
 * by the time @p o returned: some put called before then made, or may have
 * made, version v + 100. */
static bool may_be_dropped(const struct rec *recs,
                           size_t n,
                           const struct obs *o)
{
    for (size_t i = 0; i < n; i++) {
        const struct linz_op *op = &recs[i].op;
        if (recs[i].kind == OP_PUT && op->call < o->ret &&
            (op->ret == LINZ_NEVER || op->version >= o->version + 100)) {
            return true;
        }
    }
    return false;
}

/* Check one name: its register history, then every version observed. */
static bool check_name(const struct lin *l,
                       unsigned name,
                       size_t *n_ops,
                       size_t *n_answered,
                       char *failure,
                       size_t cap_failure)
{
    struct rec *recs = NULL;
    struct linz_op *ops;
    size_t n = 0, cap = 0, bad = 0;
    char why[256] = "";
    int rv;

    for (unsigned i = 0; i < N_WORKERS; i++) {
        const struct lworker *w = &l->w[i];
        for (size_t k = 0; k < w->n_recs; k++) {
            if (w->recs[k].name == name) {
                recs = grow(recs, &cap, n, sizeof(*recs));
                recs[n++] = w->recs[k];
            }
        }
    }
    if (n == 0) {
        snprintf(failure, cap_failure, "%s: no operation was recorded",
                 names[name]);
        return false;
    }
    qsort(recs, n, sizeof(*recs), by_call);
    ops = calloc(n + 1, sizeof(*ops));
    assert_non_null(ops);
    for (size_t i = 0; i < n; i++) {
        ops[i] = recs[i].op;
        *n_answered += ops[i].ret != LINZ_NEVER;
    }
    *n_ops += n;

    rv = linz_check(ops, n, CHECK_BUDGET, why, sizeof(why));
    free(ops);
    if (rv != 1) {
        print_history(l, name, recs, n);
        free(recs);
        snprintf(failure, cap_failure, "%s: history of %zu operations %s: %s",
                 names[name], n,
                 rv == 0 ? "is not linearizable" : "was not decided",
                 rv == 0 ? why : "search budget exhausted");
        return false;
    }

    /* Versions read back (history entries, version selectors) agree with
     * the puts that made them. */
    for (unsigned i = 0; i < N_WORKERS; i++) {
        const struct lworker *w = &l->w[i];
        for (size_t k = 0; k < w->n_obs; k++) {
            const struct obs *o = &w->obs[k];
            bool ok;
            if (o->name != name) {
                continue;
            }
            ok = o->found
                     ? version_value_possible(recs, n, o->version, o->value)
                     : may_be_dropped(recs, n, o);
            if (!ok && bad++ < 5) {
                fprintf(stderr,
                        "# %s: %s of version %" PRIu64 " read %s %" PRIx64
                        " at [%.3f, %.3f] ms\n",
                        names[name], o->selector ? "selector" : "history",
                        o->version, o->found ? "value" : "nothing", o->value,
                        (double)(o->call - l->t0) / 1e6,
                        (double)(o->ret - l->t0) / 1e6);
            }
        }
    }
    if (bad > 0) {
        print_history(l, name, recs, n);
        snprintf(failure, cap_failure,
                 "%s: %zu versions read back do not match their puts",
                 names[name], bad);
    }
    free(recs);
    return bad == 0;
}

/******************************************************************************
 * Cases
 *****************************************************************************/

/* Four clients put, get, read histories and read by version on three
 * names while the leader is killed with SIGKILL and restarted every ~2 s:
 * every name's history (calls that never got an answer may or may not
 * have happened) is linearizable, versions read back match the puts that
 * made them, and the nodes converge to one store afterwards. */
static void linearizable_under_leader_kills(void **state)
{
    struct lin *l = *state;
    struct cluster_options o;
    size_t n_ops = 0, n_answered = 0;
    unsigned unexpected_total = 0;

    cluster_options_default(&o);
    /* Frequent snapshots, so that restarted leaders catch up by
     * InstallSnapshot while the clients run. */
    o.snapshot_threshold = 64;
    o.snapshot_trailing = 16;
    l->c = cluster_create(&o);
    cluster_start(l->c);
    atomic_init(&l->stop, false);
    l->t0 = cluster_now_ns();
    for (unsigned i = 0; i < N_WORKERS; i++) {
        l->w[i].lin = l;
        l->w[i].idx = i;
        l->w[i].rng = 0x9e3779b97f4a7c15ULL * (i + 1);
        l->w[i].cl = cluster_client(l->c, i + 1, 8, 10000);
    }
    for (unsigned i = 0; i < N_WORKERS; i++) {
        if (pthread_create(&l->w[i].thread, NULL, worker_main, &l->w[i]) != 0) {
            fail_msg("pthread_create failed");
        }
        l->n_started = i + 1;
    }
    if (pthread_create(&l->nemesis, NULL, nemesis_main, l) != 0) {
        fail_msg("pthread_create failed");
    }
    l->nemesis_running = true;
    /* The nemesis ends the run: it sets stop when its time is up. */
    pthread_join(l->nemesis, NULL);
    l->nemesis_running = false;
    stop_all(l);

    /* Every node back, one leader, one store. */
    for (unsigned id = 1; id <= l->c->n; id++) {
        if (!cluster_running(l->c, id)) {
            cluster_spawn(l->c, id);
        }
    }
    cluster_wait_leader(l->c, 60000);
    cluster_wait_converged(l->c, 60000, NULL);

    for (unsigned i = 0; i < N_WORKERS; i++) {
        if (l->w[i].unexpected > 0) {
            fprintf(stderr, "# worker %u: %u unexpected errors, first: %s\n", i,
                    l->w[i].unexpected, l->w[i].first_unexpected);
        }
        unexpected_total += l->w[i].unexpected;
    }
    assert_int_equal(unexpected_total, 0);
    for (unsigned name = 0; name < N_NAMES; name++) {
        char failure[512];
        if (!check_name(l, name, &n_ops, &n_answered, failure,
                        sizeof(failure))) {
            fail_msg("%s", failure);
        }
    }
    fprintf(stderr,
            "# %u leader kills (%u rounds without a leader), %zu operations "
            "checked, %zu answered\n",
            l->kills, l->no_leader, n_ops, n_answered);
    /* The run exercised something: failovers and a real history. */
    assert_true(l->kills >= 3);
    assert_true(n_answered >= 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(linearizable_under_leader_kills, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
