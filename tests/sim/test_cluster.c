/* Deterministic simulation of Cairn clusters: libraft's fixture (in-memory
 * network, disk and clock, driven one event at a time) with a real storage
 * state machine per node (raft/fsm.c over storage/sm.c, one LMDB store per
 * node in its own temporary directory).
 *
 * Random schedules, one seeded PRNG per run, interleave client writes with
 * partitions, message loss, latency, kills, leadership changes and disk
 * faults; then everything is healed and the replicas must converge. Checked:
 * every acknowledged write is on every replica, in an order that respects
 * real time; all replicas have the same store digest at the same applied
 * index; never two leaders in one term (Debian's libraft is built with
 * NDEBUG, so the fixture's own invariant asserts are compiled out).
 *
 * SIM_SEED=n reruns one seed, SIM_SEEDS=n sets how many seeds each random
 * case runs (default 40), SIM_VERBOSE=1 prints one line per seed. */
#include "test.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "mp.h"
#include "query.h"
#include "sm.h"
#include "store.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

#define MAX_NODES 5
/* Enough keys that none reaches the 100 versions a parameter keeps (older
 * ones are dropped, which would look like lost writes). */
#define N_KEYS 64
#define N_CLIENTS 16
#define MAX_BATCH 4
#define MAX_WRITES 8192
#define DEFAULT_SEEDS 40
#define ACTIONS 300
#define CONVERGE_MS 120000
#define FIXTURE_NET_LATENCY 15
#define FIXTURE_DISK_LATENCY 10

/* One simulated node: its store and the FSM libraft drives. The raft_fsm is
 * read by raft_init (inside raft_fixture_grow), so it is filled first and
 * must stay at this address for the life of the fixture. */
struct sim;

struct sim_node
{
    char *dir;
    struct sim *sim; /* for the outcome observer */
    unsigned id;
    struct store *store;
    struct fsm fsm;
    struct raft_fsm rfsm;
};

/* One PutParameter a client proposed. */
struct sim_write
{
    unsigned key;
    unsigned client;
    uint64_t proposed_at; /* logical clock when proposed */
    uint64_t acked_at;    /* logical clock when acknowledged; 0 if not */
    uint64_t version;     /* scratch: version found on the replica checked */
    uint64_t index;       /* Raft index of its entry when proposed */
    uint64_t term;        /* term of the leader it was proposed to */
    unsigned node;        /* the leader it was proposed to */
    int status;           /* raft_apply callback status; -1 while pending */
};

/* A client has at most one write in flight, like a real SDK client: its
 * sequence numbers then reach the log in order, so an acknowledged write is
 * never refused by the session table as a stale retry. */
struct sim_client
{
    bool busy;
    uint64_t seq;
};

struct sim
{
    struct raft_fixture f; /* first: the hook gets back here from f */
    unsigned n;
    unsigned seed;
    uint64_t rng;
    struct sim_node nodes[MAX_NODES];
    struct sim_client clients[N_CLIENTS];
    struct sim_write *writes;
    unsigned n_writes;
    unsigned n_acked;
    unsigned pending;     /* proposals whose callback has not fired */
    uint64_t clock;       /* logical time for real-time order checks */
    raft_id *term_leader; /* leader seen in each term, 0 if none */
    size_t n_terms;
    char failure[512]; /* first invariant broken inside a callback */
    struct buf cmd;
    bool io_faults; /* SIM_IO_FAULTS=1: see io_fault in random_action */
    /* Outcome ledger: the hash of the first outcome seen at each composite
     * store index, on whichever replica applied it first; every other
     * replica must produce the same (open addressing, index 0 = empty). */
    uint64_t *ledger_index;
    uint64_t *ledger_hash;
    unsigned long compared; /* outcomes checked against the ledger */
    unsigned stats[16];     /* actions taken, for SIM_VERBOSE */
};

#define LEDGER_SLOTS (1u << 16)

/* An observed outcome, tagged with the sim and the node that applied it. */
struct sim_observer
{
    struct sim *s;
    unsigned node;
};

/* A proposal in flight: one log entry of one to MAX_BATCH writes. */
struct sim_proposal
{
    struct raft_apply req;
    struct sim *s;
    struct fsm_results results;
    unsigned n;
    unsigned writes[MAX_BATCH];
};

/******************************************************************************
 * Helper macros
 *****************************************************************************/

#define SIM_FAIL(s, ...)                                        \
    do {                                                        \
        fprintf(stderr,                                         \
                "# sim: FAILED seed %u (%u nodes): rerun with " \
                "SIM_SEED=%u\n",                                \
                (s)->seed, (s)->n, (s)->seed);                  \
        fail_msg(__VA_ARGS__);                                  \
    } while (0)

/* Record the first broken invariant seen inside a libraft callback (a
 * longjmp out of libraft would leave it inconsistent); checked after every
 * step. */
#define SIM_NOTE(s, ...)                                               \
    do {                                                               \
        if ((s)->failure[0] == '\0') {                                 \
            snprintf((s)->failure, sizeof((s)->failure), __VA_ARGS__); \
        }                                                              \
    } while (0)

/* xorshift64*: small, and the same sequence on every platform. */
static uint64_t rnd(struct sim *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ull;
}

static unsigned rnd_below(struct sim *s, unsigned n)
{
    return (unsigned)((rnd(s) >> 32) % n);
}

static unsigned env_unsigned(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static struct raft *node_raft(struct sim *s, unsigned i)
{
    return raft_fixture_get(&s->f, i);
}

/******************************************************************************
 * Invariants checked after every event
 *****************************************************************************/

/* Election safety: at most one leader per term over the whole run. A killed
 * leader keeps its state, which is fine: it is still the same one. */
static void hook(struct raft_fixture *f, struct raft_fixture_event *event)
{
    struct sim *s = (struct sim *)f;
    (void)event;

    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = node_raft(s, i);
        raft_term t;

        if (raft_state(r) != RAFT_LEADER) {
            continue;
        }
        t = raft_current_term(r);
        if (t >= s->n_terms) {
            size_t n = (size_t)t * 2 + 16;
            raft_id *p = realloc(s->term_leader, n * sizeof(*p));
            if (p == NULL) {
                SIM_NOTE(s, "out of memory");
                return;
            }
            memset(p + s->n_terms, 0, (n - s->n_terms) * sizeof(*p));
            s->term_leader = p;
            s->n_terms = n;
        }
        if (s->term_leader[t] == 0) {
            s->term_leader[t] = r->id;
        } else if (s->term_leader[t] != r->id) {
            SIM_NOTE(s,
                     "election safety: servers %llu and %llu both led "
                     "term %llu",
                     (unsigned long long)s->term_leader[t],
                     (unsigned long long)r->id, (unsigned long long)t);
        }
    }
}

static void check_noted(struct sim *s)
{
    if (s->failure[0] != '\0') {
        SIM_FAIL(s, "%s", s->failure);
    }
}

static void step(struct sim *s)
{
    raft_fixture_step(&s->f);
    check_noted(s);
}

/******************************************************************************
 * Setup and teardown
 *****************************************************************************/

/* FNV-1a over an outcome: status, error name, message and body. */
static uint64_t outcome_hash(const struct sm_outcome *o)
{
    uint64_t h = 1469598103934665603ull;
    const uint8_t *parts[3] = {(const uint8_t *)o->err.type,
                               (const uint8_t *)o->err.msg, o->body};
    size_t lens[3] = {strlen(o->err.type), strlen(o->err.msg),
                      o->body != NULL ? o->body_len : 0};

    h = (h ^ (uint64_t)(unsigned)o->err.code) * 1099511628211ull;
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; i < lens[p]; i++) {
            h = (h ^ parts[p][i]) * 1099511628211ull;
        }
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

/* Every replica must produce the same outcome for the command at an index:
 * a state machine that read the clock, a random source or local state
 * would differ here before its digest did. */
static void observe(void *data, uint64_t index, const struct sm_outcome *o)
{
    struct sim_node *nd = data;
    struct sim *s = nd->sim;
    uint64_t h = outcome_hash(o);
    size_t slot =
        (size_t)(index * 0x9E3779B97F4A7C15ull >> 48) & (LEDGER_SLOTS - 1);

    for (unsigned probe = 0; probe < LEDGER_SLOTS; probe++) {
        size_t k = (slot + probe) & (LEDGER_SLOTS - 1);
        if (s->ledger_index[k] == index) {
            s->compared++;
            if (s->ledger_hash[k] != h) {
                SIM_NOTE(s,
                         "node %u: command at store index %llu (raft %llu) "
                         "has another outcome than on an earlier replica "
                         "(%d %s: %.200s)",
                         nd->id, (unsigned long long)index,
                         (unsigned long long)fsm_raft_index(index), o->err.code,
                         o->err.type, o->err.msg);
            }
            return;
        }
        if (s->ledger_index[k] == 0) {
            s->ledger_index[k] = index;
            s->ledger_hash[k] = h;
            return;
        }
    }
    SIM_NOTE(s, "outcome ledger full");
}

static void sim_start(struct sim *s, unsigned n, unsigned seed)
{
    struct raft_configuration conf;
    struct store_options opts;
    struct cairn_error err;

    memset(s, 0, sizeof(*s));
    s->n = n;
    s->seed = seed;
    s->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0xD1B54A32D192ED03ull);
    if (s->rng == 0) {
        s->rng = 1;
    }
    s->writes = calloc(MAX_WRITES, sizeof(*s->writes));
    assert_non_null(s->writes);
    buf_init(&s->cmd);
    s->io_faults = env_unsigned("SIM_IO_FAULTS", 0) != 0;

    store_options_default(&opts);
    opts.no_sync = true;
    opts.map_size = (size_t)64 << 20;

    s->ledger_index = calloc(LEDGER_SLOTS, sizeof(*s->ledger_index));
    s->ledger_hash = calloc(LEDGER_SLOTS, sizeof(*s->ledger_hash));
    assert_non_null(s->ledger_index);
    assert_non_null(s->ledger_hash);
    assert_int_equal(raft_fixture_initialize(&s->f), 0);
    for (unsigned i = 0; i < n; i++) {
        struct sim_node *nd = &s->nodes[i];
        nd->dir = test_mkdtemp();
        if (store_open(nd->dir, &opts, &nd->store, &err) != 0) {
            fail_msg("store_open %s: %s", nd->dir, err.msg);
        }
        fsm_init(&nd->fsm, &nd->rfsm, nd->store, NULL);
        nd->sim = s;
        nd->id = i;
        nd->fsm.observe = observe;
        nd->fsm.observe_data = nd;
        assert_int_equal(raft_fixture_grow(&s->f, &nd->rfsm), 0);
        nd->fsm.raft = node_raft(s, i);
        /* The fixture's tracer prints every diagnostic to stderr, which
         * costs more than the simulation itself: on with SIM_TRACE=1. */
        if (env_unsigned("SIM_TRACE", 0) == 0) {
            node_raft(s, i)->tracer = NULL;
        }
    }
    raft_fixture_hook(&s->f, hook);

    assert_int_equal(raft_fixture_configuration(&s->f, n, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&s->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&s->f), 0);
}

/* Small snapshot thresholds make followers that fell behind catch up by
 * InstallSnapshot (fsm snapshot and restore) instead of log entries. */
static void sim_small_snapshots(struct sim *s, unsigned threshold)
{
    for (unsigned i = 0; i < s->n; i++) {
        raft_set_snapshot_threshold(node_raft(s, i), threshold);
        raft_set_snapshot_trailing(node_raft(s, i), threshold / 2);
    }
}

static void sim_stop(struct sim *s)
{
    /* Closing the fixture flushes pending I/O (which may apply entries) and
     * fails pending requests: the stores must still be open. */
    raft_fixture_close(&s->f);
    for (unsigned i = 0; i < s->n; i++) {
        fsm_close(&s->nodes[i].fsm);
        store_close(s->nodes[i].store);
        test_rmdir(s->nodes[i].dir); /* frees the path */
    }
    assert_int_equal(s->pending, 0);
    free(s->writes);
    free(s->term_leader);
    free(s->ledger_index);
    free(s->ledger_hash);
    buf_close(&s->cmd);
}

/******************************************************************************
 * The workload
 *****************************************************************************/

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct sim_proposal *p = req->data;
    struct sim *s = p->s;

    s->clock++;
    for (unsigned i = 0; i < p->n; i++) {
        struct sim_write *w = &s->writes[p->writes[i]];
        s->clients[w->client].busy = false;
        w->status = status;
        if (status != 0) {
            continue;
        }
        w->acked_at = s->clock;
        s->n_acked++;
        /* The outcome must be a success: a refused write (a stale sequence
         * number, say) would be acknowledged yet absent. */
        if (result != &p->results) {
            SIM_NOTE(s, "write %u acknowledged without its outcomes",
                     p->writes[i]);
        } else {
            struct sm_outcome o;
            int rv = fsm_results_get(&p->results, i, &o);
            if (rv != 0 || o.err.code != 0 || o.skipped) {
                SIM_NOTE(s, "write %u acknowledged with outcome %d/%d (%.200s)",
                         p->writes[i], rv, o.err.code, o.err.msg);
            }
        }
    }
    fsm_forget(&p->results);
    free(p);
    s->pending--;
}

/* The leader to propose to: any live node in leader state, so that writes
 * also go to stale leaders cut off from the majority (they must not be
 * acknowledged unless they commit). */
static unsigned pick_leader(struct sim *s)
{
    unsigned cand[MAX_NODES];
    unsigned k = 0;

    for (unsigned i = 0; i < s->n; i++) {
        if (raft_fixture_alive(&s->f, i) &&
            raft_state(node_raft(s, i)) == RAFT_LEADER) {
            cand[k++] = i;
        }
    }
    return k == 0 ? s->n : cand[rnd_below(s, k)];
}

static void add_write(struct sim *s,
                      struct fsm_entry *e,
                      struct sim_proposal *p,
                      unsigned client)
{
    struct sim_write *w = &s->writes[s->n_writes];
    char json[512];

    w->key = rnd_below(s, N_KEYS);
    w->client = client;
    w->proposed_at = ++s->clock;
    s->clients[client].busy = true;
    s->clients[client].seq++;
    snprintf(json, sizeof(json),
             "{\"op\":\"PutParameter\",\"ts\":%llu,\"user\":\"u\","
             "\"cid\":\"client-%u\",\"seq\":%llu,\"req\":{\"Name\":\"/k/%u\","
             "\"Value\":\"v-%u\",\"Type\":\"String\",\"Overwrite\":true}}",
             1700000000000ull + (unsigned long long)raft_fixture_time(&s->f),
             client, (unsigned long long)s->clients[client].seq, w->key,
             s->n_writes);
    test_json_to_mp(json, &s->cmd);
    assert_int_equal(fsm_entry_add(e, s->cmd.data, s->cmd.len), 0);
    p->writes[p->n++] = s->n_writes++;
}

/* Propose one entry of up to MAX_BATCH writes from idle clients to
 * @p leader. Returns false when nothing was proposed. */
static bool propose_on(struct sim *s, unsigned leader, unsigned want)
{
    struct sim_proposal *p;
    struct fsm_entry e;
    struct raft_buffer b;
    unsigned start = rnd_below(s, N_CLIENTS);
    int rv;

    if (leader >= s->n || s->n_writes + MAX_BATCH > MAX_WRITES) {
        return false;
    }
    p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->s = s;
    p->req.data = p;
    fsm_results_init(&p->results);
    fsm_entry_init(&e);
    for (unsigned k = 0; k < N_CLIENTS && p->n < want; k++) {
        unsigned c = (start + k) % N_CLIENTS;
        if (!s->clients[c].busy) {
            add_write(s, &e, p, c);
        }
    }
    if (p->n == 0) {
        free(p);
        return false;
    }
    assert_int_equal(fsm_entry_finish(&e, &b), 0);
    rv = raft_apply(node_raft(s, leader), &p->req, &b, 1, on_applied);
    if (rv != 0) {
        /* Not appended: never applied. libraft 0.22.1 does not keep the
         * documented contract here: legacyHandleUpdateEntries copies the
         * entry and frees bufs[0].base before io->truncate and io->append,
         * so when those fail (an injected I/O fault) the buffer is already
         * gone. Only a refusal before that point (not the leader) leaves it
         * to us; the rare out-of-memory case is ambiguous and leaks. */
        if (rv == RAFT_NOTLEADER) {
            raft_free(b.base);
        }
        for (unsigned i = 0; i < p->n; i++) {
            s->clients[s->writes[p->writes[i]].client].busy = false;
        }
        free(p);
        return false;
    }
    fsm_expect(&s->nodes[leader].fsm, &p->results, p->req.index, p->n);
    for (unsigned i = 0; i < p->n; i++) {
        struct sim_write *w = &s->writes[p->writes[i]];
        w->index = p->req.index;
        w->term = raft_current_term(node_raft(s, leader));
        w->node = leader;
        w->status = -1;
    }
    s->pending++;
    return true;
}

static void propose(struct sim *s)
{
    propose_on(s, pick_leader(s), 1 + rnd_below(s, MAX_BATCH));
}

/******************************************************************************
 * Faults
 *****************************************************************************/

static void disconnect_pair(struct sim *s, unsigned i, unsigned j)
{
    raft_fixture_disconnect(&s->f, i, j);
    raft_fixture_disconnect(&s->f, j, i);
}

static void reconnect_pair(struct sim *s, unsigned i, unsigned j)
{
    raft_fixture_reconnect(&s->f, i, j);
    raft_fixture_reconnect(&s->f, j, i);
}

static void random_pair(struct sim *s, unsigned *i, unsigned *j)
{
    *i = rnd_below(s, s->n);
    *j = (*i + 1 + rnd_below(s, s->n - 1)) % s->n;
}

static unsigned n_dead(struct sim *s)
{
    unsigned k = 0;
    for (unsigned i = 0; i < s->n; i++) {
        k += !raft_fixture_alive(&s->f, i);
    }
    return k;
}

static bool all_followers_except(struct sim *s, unsigned except)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (i != except && raft_state(node_raft(s, i)) != RAFT_FOLLOWER) {
            return false;
        }
    }
    return true;
}

/* raft_fixture_elect and _depose poke follower-only fields of every other
 * server and only assert (compiled out) their preconditions: check them. */
static void try_depose(struct sim *s)
{
    unsigned l;

    if (s->f.leader_id == 0) {
        return;
    }
    l = (unsigned)s->f.leader_id - 1;
    if (!raft_fixture_alive(&s->f, l) ||
        raft_state(node_raft(s, l)) != RAFT_LEADER ||
        !all_followers_except(s, l)) {
        return;
    }
    raft_fixture_depose(&s->f);
    check_noted(s);
}

static void try_elect(struct sim *s)
{
    unsigned i = rnd_below(s, s->n);

    if (s->f.leader_id != 0 || !raft_fixture_alive(&s->f, i) ||
        !all_followers_except(s, s->n)) {
        return;
    }
    raft_fixture_elect(&s->f, i);
    check_noted(s);
}

enum {
    A_PROPOSE,
    A_DISCONNECT,
    A_RECONNECT,
    A_ISOLATE_LEADER,
    A_HEAL_NET,
    A_SATURATE,
    A_DESATURATE,
    A_NET_LATENCY,
    A_DISK_LATENCY,
    A_KILL,
    A_REVIVE,
    A_DEPOSE,
    A_ELECT,
    A_IO_FAULT,
    A_NONE,
};

/* Cumulative weights out of 100. */
static const struct
{
    int action;
    unsigned upto;
} action_table[] = {
    {A_PROPOSE, 45},        {A_DISCONNECT, 52},  {A_RECONNECT, 60},
    {A_ISOLATE_LEADER, 63}, {A_HEAL_NET, 67},    {A_SATURATE, 71},
    {A_DESATURATE, 75},     {A_NET_LATENCY, 78}, {A_DISK_LATENCY, 81},
    {A_KILL, 83},           {A_REVIVE, 87},      {A_DEPOSE, 89},
    {A_ELECT, 91},          {A_IO_FAULT, 93},    {A_NONE, 100},
};

static void random_action(struct sim *s)
{
    unsigned r = rnd_below(s, 100);
    unsigned i;
    unsigned j;
    int a = A_NONE;

    for (size_t k = 0; k < sizeof(action_table) / sizeof(action_table[0]);
         k++) {
        if (r < action_table[k].upto) {
            a = action_table[k].action;
            break;
        }
    }
    s->stats[a]++;
    switch (a) {
        case A_PROPOSE:
            propose(s);
            break;
        case A_DISCONNECT:
            random_pair(s, &i, &j);
            disconnect_pair(s, i, j);
            break;
        case A_RECONNECT:
            random_pair(s, &i, &j);
            reconnect_pair(s, i, j);
            break;
        case A_ISOLATE_LEADER:
            i = pick_leader(s);
            for (j = 0; i < s->n && j < s->n; j++) {
                if (j != i) {
                    disconnect_pair(s, i, j);
                }
            }
            break;
        case A_HEAL_NET:
            for (i = 0; i < s->n; i++) {
                for (j = i + 1; j < s->n; j++) {
                    reconnect_pair(s, i, j);
                }
            }
            break;
        case A_SATURATE:
            random_pair(s, &i, &j);
            raft_fixture_saturate(&s->f, i, j);
            break;
        case A_DESATURATE:
            random_pair(s, &i, &j);
            if (raft_fixture_alive(&s->f, i) && raft_fixture_alive(&s->f, j)) {
                raft_fixture_desaturate(&s->f, i, j);
            }
            break;
        case A_NET_LATENCY:
            raft_fixture_set_network_latency(&s->f, rnd_below(s, s->n),
                                             1 + rnd_below(s, 120));
            break;
        case A_DISK_LATENCY:
            raft_fixture_set_disk_latency(&s->f, rnd_below(s, s->n),
                                          1 + rnd_below(s, 80));
            break;
        case A_KILL:
            i = rnd_below(s, s->n);
            /* Keep a majority alive, so that the run makes progress. */
            if (raft_fixture_alive(&s->f, i) && n_dead(s) < (s->n - 1) / 2) {
                raft_fixture_kill(&s->f, i);
            }
            break;
        case A_REVIVE:
            i = rnd_below(s, s->n);
            if (!raft_fixture_alive(&s->f, i)) {
                raft_fixture_revive(&s->f, i);
            }
            break;
        case A_DEPOSE:
            try_depose(s);
            break;
        case A_ELECT:
            try_elect(s);
            break;
        case A_IO_FAULT:
            if (!s->io_faults) {
                break;
            }
            /* Fail one of the next few I/O requests (append, send, term or
             * vote): a failed append is a write that is never acknowledged. */
            raft_fixture_io_fault(&s->f, rnd_below(s, s->n),
                                  (int)rnd_below(s, 8), 1);
            break;
        default:
            break;
    }
}

static void heal(struct sim *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (!raft_fixture_alive(&s->f, i)) {
            raft_fixture_revive(&s->f, i);
        }
    }
    for (unsigned i = 0; i < s->n; i++) {
        for (unsigned j = 0; j < s->n; j++) {
            if (i != j) {
                raft_fixture_reconnect(&s->f, i, j);
                raft_fixture_desaturate(&s->f, i, j);
            }
        }
        raft_fixture_set_network_latency(&s->f, i, FIXTURE_NET_LATENCY);
        raft_fixture_set_disk_latency(&s->f, i, FIXTURE_DISK_LATENCY);
        raft_fixture_io_fault(&s->f, i, -1, 0);
    }
}

/* A stable leader, every server having applied the leader's whole log, and
 * every proposal answered. */
static bool converged(struct raft_fixture *f, void *arg)
{
    struct sim *s = arg;
    struct raft *l;
    raft_index last;

    if (f->leader_id == 0 || s->pending != 0) {
        return false;
    }
    l = node_raft(s, (unsigned)f->leader_id - 1);
    if (raft_state(l) != RAFT_LEADER) {
        return false;
    }
    last = raft_last_index(l);
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = node_raft(s, i);
        /* A follower may still hold an uncommitted tail from an old term
         * beyond the leader's log: Raft truncates it only when the leader
         * sends a conflicting entry. Applied is what must match. */
        if (raft_last_applied(r) != last) {
            return false;
        }
    }
    return true;
}

static void converge(struct sim *s)
{
    if (!raft_fixture_step_until(&s->f, converged, s, CONVERGE_MS)) {
        char line[256];
        size_t off = 0;
        for (unsigned i = 0; i < s->n && off < sizeof(line); i++) {
            struct raft *r = node_raft(s, i);
            off += (size_t)snprintf(line + off, sizeof(line) - off,
                                    " [%u %s t%llu li%llu la%llu]", i,
                                    raft_state_name(raft_state(r)),
                                    (unsigned long long)raft_current_term(r),
                                    (unsigned long long)raft_last_index(r),
                                    (unsigned long long)raft_last_applied(r));
        }
        SIM_FAIL(s, "no convergence within %u ms after healing (pending %u):%s",
                 CONVERGE_MS, s->pending, line);
    }
    check_noted(s);
}

/******************************************************************************
 * Assertions
 *****************************************************************************/

/* Fill writes[].version from node @p i's history of every key: 0 for a
 * write that is not there. */
static void read_versions(struct sim *s, unsigned i)
{
    struct buf req;
    struct buf out;

    buf_init(&req);
    buf_init(&out);
    for (unsigned w = 0; w < s->n_writes; w++) {
        s->writes[w].version = 0;
    }
    for (unsigned k = 0; k < N_KEYS; k++) {
        char name[32];
        char token[512] = "";

        snprintf(name, sizeof(name), "/k/%u", k);
        do {
            msgpack_packer pk;
            struct cairn_error err;
            struct mp_doc doc;
            const msgpack_object *params;
            struct mp_str next;

            buf_reset(&req);
            buf_reset(&out);
            mp_packer_init(&pk, &req);
            msgpack_pack_map(&pk, token[0] != '\0' ? 3 : 2);
            mp_pack_kv_cstr(&pk, "Name", name);
            mp_pack_kv_u64(&pk, "MaxResults", 50);
            if (token[0] != '\0') {
                mp_pack_kv_cstr(&pk, "NextToken", token);
            }
            assert_false(req.oom);
            if (query_run(s->nodes[i].store, "GetParameterHistory", req.data,
                          req.len, &out, &err) != 0) {
                if (err.code == CAIRN_NOT_FOUND) {
                    break; /* no acknowledged write of this key, maybe */
                }
                SIM_FAIL(s, "node %u history %s: %s", i, name, err.msg);
            }
            assert_int_equal(mp_doc_parse(&doc, out.data, out.len, &err), 0);
            params = mp_map_get(&doc.root, "Parameters");
            assert_non_null(params);
            assert_int_equal(params->type, MSGPACK_OBJECT_ARRAY);
            for (uint32_t p = 0; p < params->via.array.size; p++) {
                const msgpack_object *o = &params->via.array.ptr[p];
                struct mp_str v;
                uint64_t ver;
                unsigned long w;
                char vbuf[32];

                assert_int_equal(mp_get_str(o, "Value", &v, &err), 1);
                assert_int_equal(mp_get_u64(o, "Version", &ver, &err), 1);
                assert_true(v.n > 2 && v.n < sizeof(vbuf));
                memcpy(vbuf, v.p, v.n);
                vbuf[v.n] = '\0';
                w = strtoul(vbuf + 2, NULL, 10);
                if (w >= s->n_writes || s->writes[w].key != k) {
                    SIM_FAIL(s, "node %u: %s has unknown value %s", i, name,
                             vbuf);
                }
                if (s->writes[w].version != 0) {
                    SIM_FAIL(s, "node %u: value %s applied twice", i, vbuf);
                }
                s->writes[w].version = ver;
                if (ver >=
                    store_get_options(s->nodes[i].store)->limits.versions) {
                    SIM_FAIL(s,
                             "%s reached the version limit: use more "
                             "keys",
                             name);
                }
            }
            token[0] = '\0';
            if (mp_get_str(&doc.root, "NextToken", &next, &err) == 1) {
                assert_true(next.n > 0 && next.n < sizeof(token));
                memcpy(token, next.p, next.n);
                token[next.n] = '\0';
            }
            mp_doc_close(&doc);
        } while (token[0] != '\0');
    }
    buf_close(&req);
    buf_close(&out);
}

/* On failure: every write of key @p k, as the last replica read has it. */
static void dump_key(struct sim *s, unsigned k)
{
    for (unsigned w = 0; w < s->n_writes; w++) {
        const struct sim_write *x = &s->writes[w];
        if (x->key == k) {
            fprintf(stderr,
                    "# v-%u: proposed to node %u term %llu index %llu, "
                    "status %d, acked %s, version %llu\n",
                    w, x->node, (unsigned long long)x->term,
                    (unsigned long long)x->index, x->status,
                    x->acked_at != 0 ? "yes" : "no",
                    (unsigned long long)x->version);
        }
    }
}

/* Every acknowledged write is on node @p i, and two writes of one key are
 * in real-time order: one acknowledged before the other was proposed has
 * the lower version. */
static void check_acked(struct sim *s, unsigned i)
{
    read_versions(s, i);
    for (unsigned a = 0; a < s->n_writes; a++) {
        const struct sim_write *wa = &s->writes[a];
        if (wa->acked_at == 0) {
            continue;
        }
        if (wa->version == 0) {
            dump_key(s, wa->key);
            SIM_FAIL(s, "node %u lost acknowledged write v-%u of /k/%u", i, a,
                     wa->key);
        }
        for (unsigned b = 0; b < s->n_writes; b++) {
            const struct sim_write *wb = &s->writes[b];
            if (wb->key == wa->key && wb->version != 0 &&
                wb->proposed_at > wa->acked_at && wb->version <= wa->version) {
                SIM_FAIL(s,
                         "node %u: v-%u (version %llu) proposed after v-%u "
                         "(version %llu) was acknowledged",
                         i, b, (unsigned long long)wb->version, a,
                         (unsigned long long)wa->version);
            }
        }
    }
}

/* Same digest and applied index on every replica. */
static void check_digests(struct sim *s)
{
    uint8_t d0[32];
    uint64_t a0 = 0;
    struct cairn_error err;

    for (unsigned i = 0; i < s->n; i++) {
        uint8_t d[32];
        uint64_t a;

        if (store_digest(s->nodes[i].store, d, &a, &err) != 0) {
            SIM_FAIL(s, "digest of node %u: %s", i, err.msg);
        }
        if (i == 0) {
            memcpy(d0, d, sizeof(d0));
            a0 = a;
        } else if (a != a0 || memcmp(d, d0, sizeof(d)) != 0) {
            SIM_FAIL(s,
                     "node %u diverged: applied %llu (raft %llu), node 0 "
                     "applied %llu (raft %llu), digests %s",
                     i, (unsigned long long)a,
                     (unsigned long long)raft_last_applied(node_raft(s, i)),
                     (unsigned long long)a0,
                     (unsigned long long)raft_last_applied(node_raft(s, 0)),
                     memcmp(d, d0, sizeof(d)) == 0 ? "equal" : "differ");
        }
        if (raft_last_applied(node_raft(s, i)) !=
            raft_last_applied(node_raft(s, 0))) {
            SIM_FAIL(s, "node %u applied raft index %llu, node 0 %llu", i,
                     (unsigned long long)raft_last_applied(node_raft(s, i)),
                     (unsigned long long)raft_last_applied(node_raft(s, 0)));
        }
    }
}

/* State machine safety during the run: replicas at the same store index
 * hold the same data. */
static void check_equal_prefixes(struct sim *s)
{
    uint8_t d[MAX_NODES][32];
    uint64_t a[MAX_NODES];
    struct cairn_error err;

    for (unsigned i = 0; i < s->n; i++) {
        if (store_digest(s->nodes[i].store, d[i], &a[i], &err) != 0) {
            SIM_FAIL(s, "digest of node %u: %s", i, err.msg);
        }
        for (unsigned j = 0; j < i; j++) {
            if (a[i] == a[j] && memcmp(d[i], d[j], 32) != 0) {
                SIM_FAIL(s, "nodes %u and %u differ at store index %llu", j, i,
                         (unsigned long long)a[i]);
            }
        }
    }
}

static void check_all(struct sim *s)
{
    check_digests(s);
    for (unsigned i = 0; i < s->n; i++) {
        check_acked(s, i);
    }
}

/******************************************************************************
 * Random schedules
 *****************************************************************************/

static unsigned max_term(struct sim *s)
{
    raft_term t = 0;
    for (unsigned i = 0; i < s->n; i++) {
        if (raft_current_term(node_raft(s, i)) > t) {
            t = raft_current_term(node_raft(s, i));
        }
    }
    return (unsigned)t;
}

static void run_seed(unsigned n, unsigned seed, bool verbose)
{
    struct sim *s = calloc(1, sizeof(*s));
    unsigned acked_before_heal;

    assert_non_null(s);
    sim_start(s, n, seed);
    /* SIM_SNAPSHOTS=1: a third of the seeds snapshot often, so that lagging
     * followers get InstallSnapshot. Off by default: libraft 0.22.1's
     * fixture ioMethodTruncate keeps index - 1 entries whatever its
     * start_index, so a truncation after an installed snapshot reads past
     * its entries array (ASan heap-buffer-overflow, e.g. seed 1002). */
    if (env_unsigned("SIM_SNAPSHOTS", 0) != 0 && seed % 3 == 0) {
        sim_small_snapshots(s, 16 + rnd_below(s, 48));
    }
    for (unsigned a = 0; a < ACTIONS; a++) {
        unsigned steps = 1 + rnd_below(s, 40);
        random_action(s);
        for (unsigned k = 0; k < steps; k++) {
            /* Clients keep writing between faults. */
            if (rnd_below(s, 4) == 0) {
                propose(s);
            }
            step(s);
        }
        if (a % 50 == 49) {
            check_equal_prefixes(s);
        }
    }
    acked_before_heal = s->n_acked;
    heal(s);
    converge(s);
    /* A few writes on the healed cluster, so that every run ends with
     * acknowledged writes, then converge again. */
    for (unsigned k = 0; k < 4; k++) {
        propose_on(s, (unsigned)s->f.leader_id - 1, MAX_BATCH);
    }
    converge(s);
    check_all(s);
    if (verbose) {
        fprintf(stderr,
                "# sim n=%u seed=%u: %u writes, %u acked (%u before heal), "
                "time %llu ms, last term %u, raft index %llu\n",
                n, seed, s->n_writes, s->n_acked, acked_before_heal,
                (unsigned long long)raft_fixture_time(&s->f), max_term(s),
                (unsigned long long)raft_last_applied(node_raft(s, 0)));
    }
    if (s->n_acked == 0) {
        SIM_FAIL(s, "no write was acknowledged");
    }
    /* Every command reached at least two replicas after healing. */
    if (s->compared == 0) {
        SIM_FAIL(s, "no outcome was compared between replicas");
    }
    sim_stop(s);
    free(s);
}

static void run_seeds(unsigned n, unsigned base)
{
    const char *one = getenv("SIM_SEED");
    bool verbose = env_unsigned("SIM_VERBOSE", 0) != 0;
    unsigned count = env_unsigned("SIM_SEEDS", DEFAULT_SEEDS);

    if (one != NULL && *one != '\0') {
        run_seed(n, (unsigned)strtoul(one, NULL, 10), true);
        return;
    }
    for (unsigned k = 0; k < count; k++) {
        run_seed(n, base + k, verbose);
    }
}

/* Three replicas under random faults converge and keep every acknowledged
 * write. */
static void random_3(void **state)
{
    (void)state;
    run_seeds(3, 1000);
}

/* Five replicas under random faults converge and keep every acknowledged
 * write. */
static void random_5(void **state)
{
    (void)state;
    run_seeds(5, 5000);
}

/******************************************************************************
 * Fixed scenarios
 *****************************************************************************/

/* The fixture's own leader detection ignores a leader that a disconnected
 * server does not acknowledge: look at the states. */
static bool leader_among_others(struct raft_fixture *f, void *arg)
{
    unsigned old = *(unsigned *)arg;
    for (unsigned i = 0; i < f->n; i++) {
        if (i != old && raft_state(raft_fixture_get(f, i)) == RAFT_LEADER) {
            return true;
        }
    }
    return false;
}

static unsigned leader_other_than(struct sim *s, unsigned old)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (i != old && raft_state(node_raft(s, i)) == RAFT_LEADER) {
            return i;
        }
    }
    fail_msg("no leader");
    return s->n;
}

/* A leader cut off after proposing cannot commit; the majority elects a new
 * leader, the old leader's entries are discarded when it rejoins (never
 * acknowledged, absent everywhere), and every replica converges. */
static void isolated_leader_discarded(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    unsigned old = 0;
    unsigned first_lost;
    unsigned first_new;
    unsigned leader;

    (void)state;
    assert_non_null(s);
    sim_start(s, 3, 1);
    raft_fixture_elect(&s->f, old);
    assert_int_equal(s->f.leader_id, old + 1);

    /* Committed writes first. */
    assert_true(propose_on(s, old, MAX_BATCH));
    assert_true(raft_fixture_step_until(&s->f, converged, s, 5000));
    assert_int_equal(s->n_acked, MAX_BATCH);

    /* Cut the leader off, then propose to it. */
    for (unsigned j = 1; j < s->n; j++) {
        disconnect_pair(s, old, j);
    }
    first_lost = s->n_writes;
    assert_true(propose_on(s, old, MAX_BATCH));
    assert_true(propose_on(s, old, MAX_BATCH));

    /* The others elect a leader and take new writes. */
    assert_true(
        raft_fixture_step_until(&s->f, leader_among_others, &old, 10000));
    check_noted(s);
    first_new = s->n_writes;
    leader = leader_other_than(s, old);
    assert_true(propose_on(s, leader, MAX_BATCH));
    assert_true(raft_fixture_step_until_applied(
        &s->f, leader, raft_last_index(node_raft(s, leader)), 5000));

    /* Rejoin: the old leader steps down and its uncommitted entries are
     * replaced by the new leader's. */
    for (unsigned j = 1; j < s->n; j++) {
        reconnect_pair(s, old, j);
    }
    converge(s);
    assert_int_not_equal(raft_state(node_raft(s, old)), RAFT_LEADER);
    for (unsigned w = first_lost; w < first_new; w++) {
        assert_int_equal(s->writes[w].acked_at, 0);
    }
    for (unsigned w = first_new; w < s->n_writes; w++) {
        assert_int_not_equal(s->writes[w].acked_at, 0);
    }
    check_all(s);
    for (unsigned i = 0; i < s->n; i++) {
        read_versions(s, i);
        for (unsigned w = first_lost; w < first_new; w++) {
            if (s->writes[w].version != 0) {
                SIM_FAIL(s, "node %u applied the deposed leader's v-%u", i, w);
            }
        }
    }
    sim_stop(s);
    free(s);
}

/* The same seed gives the same run: the final digests of two runs match. */
static void same_seed_same_run(void **state)
{
    uint8_t d[2][32];
    uint64_t a[2];
    raft_time t[2];

    (void)state;
    for (unsigned r = 0; r < 2; r++) {
        struct sim *s = calloc(1, sizeof(*s));
        struct cairn_error err;

        assert_non_null(s);
        sim_start(s, 3, 77);
        for (unsigned k = 0; k < ACTIONS / 2; k++) {
            unsigned steps = 1 + rnd_below(s, 40);
            random_action(s);
            for (unsigned m = 0; m < steps; m++) {
                step(s);
            }
        }
        heal(s);
        converge(s);
        assert_int_equal(store_digest(s->nodes[0].store, d[r], &a[r], &err), 0);
        t[r] = raft_fixture_time(&s->f);
        sim_stop(s);
        free(s);
    }
    assert_int_equal(a[0], a[1]);
    assert_int_equal(t[0], t[1]);
    assert_memory_equal(d[0], d[1], 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(isolated_leader_discarded),
        cmocka_unit_test(same_seed_same_run),
        cmocka_unit_test(random_3),
        cmocka_unit_test(random_5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
