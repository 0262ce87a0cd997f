/* The node: libraft 0.22 with its libuv I/O, group commit of proposals,
 * shared read barriers, the Init command of a new leader, and shutdown.
 * See node.h for the contract and fsm.h for the entry format. */
#include "node.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsm.h"
#include "log.h"
#include "mp.h"
#include "token.h"

/* Largest max_batch_bytes accepted: the entry header keeps a 32-bit
 * payload length, and libraft holds whole entries in memory. */
#define NODE_MAX_BATCH_BYTES ((size_t)1 << 30)

/*
 * One log entry of proposals. It waits in node->waiting while max_inflight
 * entries are in flight, collecting the commands that arrive meanwhile,
 * then moves to node->inflight when raft_apply takes its buffer, until
 * libraft calls on_applied. The node owns it; the requests are the
 * callers'.
 */
struct node_batch
{
    struct raft_apply req;      /* req.data points back here */
    struct node *node;          /* owner */
    struct cairn_queue link;    /* in node->waiting or node->inflight */
    struct cairn_queue reqs;    /* node_propose_req, in command order */
    unsigned n;                 /* commands */
    struct fsm_entry entry;     /* the entry being built */
    struct fsm_results results; /* outcomes, filled by apply */
};

/* A snapshot sent to a follower that has not acknowledged it yet. */
#define NODE_MAX_INSTALLS 8
struct node_install
{
    uint64_t id;    /* follower, 0 if the slot is free */
    uint64_t index; /* the snapshot's last index */
    uint64_t sent;  /* uv_now when sent */
};

/*
 * Invariants: every batch is in exactly one of waiting and inflight, and
 * n_inflight counts inflight. A barrier request is in riders until a
 * barrier is proposed for it, then in boarded until that barrier's
 * callback; at most one barrier is in flight (barrier_busy).
 */
struct node
{
    uv_loop_t *loop;
    struct node_options opts; /* strings point at address and dir */
    char *address;            /* copied */
    char *dir;                /* copied */
    char *initial_cluster;    /* copied, or NULL */
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm raft_fsm;
    struct fsm fsm;
    uv_check_t watch;            /* notices leadership changes */
    uv_idle_t kick;              /* active while proposals wait to go */
    struct cairn_queue waiting;  /* node_batch, not yet proposed */
    struct cairn_queue inflight; /* node_batch, proposed */
    unsigned n_inflight;
    struct cairn_queue riders;  /* node_barrier_req, for the next barrier */
    struct cairn_queue boarded; /* node_barrier_req, on the barrier */
    struct raft_barrier barrier;
    bool barrier_busy;
    bool leading;                /* leader as last seen by watch */
    uint64_t leader_term;        /* term of that leadership */
    uint64_t leader_first_index; /* last index when it began */
    struct node_propose_req init_req;
    bool init_busy;             /* init_req is pending */
    uint64_t init_term;         /* leader_term when init_req was proposed */
    struct cairn_queue waiters; /* node_wait_req, by arrival */
    struct node_snapshot_job *snapshot_job; /* deferred copy in flight */
    struct node_get_job *get_job;           /* copy for a snapshot being sent */
    int (*uv_snapshot_put)(struct raft_io *io,
                           unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb);
    void (*uv_close)(struct raft_io *io, raft_io_close_cb cb);
    int (*uv_start)(struct raft_io *io,
                    unsigned msecs,
                    raft_io_tick_cb tick,
                    raft_io_recv_cb recv);
    raft_io_recv_cb raft_recv; /* libraft's receive callback */
    int (*uv_snapshot_get)(struct raft_io *io,
                           struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb);
    struct raft_io_snapshot_get get_inner;  /* ours, given to raft_uv */
    struct raft_io_snapshot_get *get_req;   /* libraft's load in flight */
    struct raft_io_snapshot_get **get_dups; /* loads asked meanwhile */
    uint64_t get_started;                   /* uv_now of that load */
    int (*uv_send)(struct raft_io *io,
                   struct raft_io_send *req,
                   const struct raft_message *m,
                   raft_io_send_cb cb);
    struct node_install installs[NODE_MAX_INSTALLS]; /* snapshots sent */
    unsigned n_get_dups;
    /* The TCP transport, wrapped to set TCP_NODELAY (see nodelay). */
    int (*tcp_listen)(struct raft_uv_transport *t, raft_uv_accept_cb cb);
    int (*tcp_connect)(struct raft_uv_transport *t,
                       struct raft_uv_connect *req,
                       raft_id id,
                       const char *address,
                       raft_uv_connect_cb cb);
    raft_uv_accept_cb uv_accept_cb;
    raft_io_close_cb io_close_cb; /* io close waiting for the copy */
    bool changing; /* a membership change or transfer of ours is pending */
    bool started;
    bool closing;
    unsigned closes_pending; /* raft, watch and kick */
    node_close_cb close_cb;
    void *close_data;
};

void node_options_default(struct node_options *o)
{
    memset(o, 0, sizeof(*o));
    o->id = 1;
    o->raft_address = "127.0.0.1:7401";
    o->election_timeout_ms = 1000;
    o->heartbeat_timeout_ms = 100;
    o->snapshot_threshold = 65536;
    o->snapshot_trailing = 2048;
    o->snapshot_log_bytes = 64u << 20;
    o->snapshot_trailing_bytes = 8u << 20;
    o->max_inflight = 2;
    o->max_batch_bytes = (size_t)1 << 20;
    o->install_snapshot_timeout_ms = 10000;
    o->initial_cluster = NULL;
    o->join = false;
    o->sync_snapshots = false;
}

int node_status_from_raft(int rv)
{
    switch (rv) {
        case 0:
            return CAIRN_OK;
        case RAFT_NOMEM:
        case RAFT_NOSPACE:
        case RAFT_TOOMANY:
            return CAIRN_RESOURCE_EXHAUSTED;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
        case RAFT_SHUTDOWN:
        case RAFT_BUSY:
        case RAFT_CANTCHANGE:
        case RAFT_NOCONNECTION:
        case RAFT_CANCELED:
            return CAIRN_UNAVAILABLE;
        case RAFT_BADID:
        case RAFT_BADROLE:
        case RAFT_MALFORMED:
        case RAFT_NAMETOOLONG:
        case RAFT_TOOBIG:
        case RAFT_INVALID:
            return CAIRN_INVALID_ARGUMENT;
        case RAFT_DUPLICATEID:
        case RAFT_DUPLICATEADDRESS:
            return CAIRN_ALREADY_EXISTS;
        case RAFT_NOTFOUND:
            return CAIRN_NOT_FOUND;
        case RAFT_CANTBOOTSTRAP:
            return CAIRN_FAILED_PRECONDITION;
        case RAFT_UNAUTHORIZED:
            return CAIRN_PERMISSION_DENIED;
        case RAFT_CORRUPT:
            return CAIRN_DATA_LOSS;
        default: /* RAFT_IOERR and anything new */
            return CAIRN_INTERNAL;
    }
}

/* libraft's read accessors take a non-const pointer but only read. */
static struct raft *raft_of(const struct node *n)
{
    return (struct raft *)&n->raft;
}

static bool is_leader(const struct node *n)
{
    return !n->closing && raft_state(raft_of(n)) == RAFT_LEADER;
}

/* ---- failing and completing requests ---------------------------------- */

/* Each request leaves its queue before its callback runs: the callback may
 * reuse the request, propose again or close the node. */
static void fail_proposals(struct cairn_queue *reqs, int status)
{
    while (!cairn_queue_empty(reqs)) {
        struct cairn_queue *q = cairn_queue_head(reqs);
        struct node_propose_req *req =
            cairn_queue_data(q, struct node_propose_req, link);
        cairn_queue_remove(q);
        req->cb(req, status, NULL);
    }
}

static void complete_barriers(struct cairn_queue *reqs, int status)
{
    while (!cairn_queue_empty(reqs)) {
        struct cairn_queue *q = cairn_queue_head(reqs);
        struct node_barrier_req *req =
            cairn_queue_data(q, struct node_barrier_req, link);
        cairn_queue_remove(q);
        req->cb(req, status);
    }
}

static struct node_batch *batch_create(struct node *n)
{
    struct node_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->node = n;
    b->req.data = b;
    cairn_queue_init(&b->link);
    cairn_queue_init(&b->reqs);
    fsm_entry_init(&b->entry);
    fsm_results_init(&b->results);
    return b;
}

/* Free a batch that is in no queue and whose requests are done. */
static void batch_destroy(struct node_batch *b)
{
    fsm_entry_close(&b->entry);
    fsm_forget(&b->results);
    free(b);
}

static void batch_fail(struct node_batch *b, int status)
{
    fail_proposals(&b->reqs, status);
    batch_destroy(b);
}

/* ---- group commit ----------------------------------------------------- */

static void on_kick(uv_idle_t *h);
static bool snapshot_echo(struct node *n, const struct raft_message *m);
static void complete_waiters(struct node *n, bool all, int status);

/* Run the flush at the start of the next loop iteration: every proposal
 * made until then shares the entry, and callers never reenter libraft. */
static void kick(struct node *n)
{
    if (!n->closing && !uv_is_active((uv_handle_t *)&n->kick)) {
        uv_idle_start(&n->kick, on_kick);
    }
}

static void deliver(struct node_batch *b, int status, void *result)
{
    struct sm_outcome o;
    unsigned i = 0;

    if (status == 0 && result != &b->results) {
        /* Applied, but apply did not find our entry at the index libraft
         * gave it: never expected, reported rather than guessed. */
        log_error("raft: entry %llu applied without its outcomes",
                  (unsigned long long)b->req.index);
        status = RAFT_IOERR;
    }
    if (status != 0) {
        fail_proposals(&b->reqs, node_status_from_raft(status));
        return;
    }
    while (!cairn_queue_empty(&b->reqs)) {
        struct cairn_queue *q = cairn_queue_head(&b->reqs);
        struct node_propose_req *req =
            cairn_queue_data(q, struct node_propose_req, link);
        int st = fsm_results_get(&b->results, i++, &o);
        cairn_queue_remove(q);
        req->cb(req, st, st == 0 ? &o : NULL);
    }
}

/* libraft 0.22 fires this from its uv prepare/check handles, some time
 * after apply (with the outcomes in b->results), or with
 * RAFT_LEADERSHIPLOST when leadership is lost or the node closes. */
static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct node_batch *b = req->data;
    struct node *n = b->node;

    cairn_queue_remove(&b->link);
    n->n_inflight--;
    deliver(b, status, result);
    batch_destroy(b);
    if (!cairn_queue_empty(&n->waiting)) {
        kick(n);
    }
}

static void flush_batches(struct node *n)
{
    while (!n->closing && !cairn_queue_empty(&n->waiting) &&
           n->n_inflight < n->opts.max_inflight) {
        struct node_batch *b = cairn_queue_data(cairn_queue_head(&n->waiting),
                                                struct node_batch, link);
        struct raft_buffer buf;
        int rv;

        cairn_queue_remove(&b->link);
        if (!is_leader(n)) {
            batch_fail(b, CAIRN_UNAVAILABLE);
            continue;
        }
        rv = fsm_entry_finish(&b->entry, &buf);
        if (rv != 0) {
            batch_fail(b, rv);
            continue;
        }
        rv = raft_apply(&n->raft, &b->req, &buf, 1, on_applied);
        if (rv != 0) {
            /* The buffer is still ours only when raft refused before taking
             * the entry (not the leader, no space). libraft 0.22.1 can also
             * free it and then fail on a disk append or truncate (found by
             * the simulation under ASan): freeing it again there would be a
             * double free, so on those rare errors it may leak instead. */
            if (rv == RAFT_NOTLEADER || rv == RAFT_NOSPACE) {
                raft_free(buf.base);
            }
            batch_fail(b, node_status_from_raft(rv));
            continue;
        }
        /* raft_apply only appends (the commit waits for the disk write's
         * callback), so registering now is in time for apply. */
        cairn_queue_push(&n->inflight, &b->link);
        n->n_inflight++;
        fsm_expect(&n->fsm, &b->results, b->req.index, b->n);
        for (struct cairn_queue *q = b->reqs.next; q != &b->reqs; q = q->next) {
            cairn_queue_data(q, struct node_propose_req, link)->batch =
                b->req.index;
        }
    }
}

int node_propose(struct node *n,
                 struct node_propose_req *req,
                 const void *cmd,
                 size_t len,
                 node_propose_cb cb)
{
    struct node_batch *b = NULL;
    bool fresh = false;
    int rv;

    if (!is_leader(n)) {
        return CAIRN_UNAVAILABLE;
    }
    if (len > n->opts.max_batch_bytes) {
        return CAIRN_INVALID_ARGUMENT;
    }
    if (!cairn_queue_empty(&n->waiting)) {
        b = cairn_queue_data(n->waiting.prev, struct node_batch, link);
        if (b->n >= FSM_MAX_COMMANDS ||
            b->entry.cmd_bytes + len > n->opts.max_batch_bytes) {
            b = NULL;
        }
    }
    if (b == NULL) {
        b = batch_create(n);
        if (b == NULL) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
        fresh = true;
    }
    rv = fsm_entry_add(&b->entry, cmd, len);
    if (rv != 0) {
        if (fresh) {
            batch_destroy(b);
        }
        return rv;
    }
    if (fresh) {
        cairn_queue_push(&n->waiting, &b->link);
    }
    req->cb = cb;
    req->batch = 0; /* the entry's Raft index once proposed */
    cairn_queue_push(&b->reqs, &req->link);
    b->n++;
    kick(n);
    return 0;
}

/* ---- barriers --------------------------------------------------------- */

static void on_barrier(struct raft_barrier *req, int status)
{
    struct node *n = req->data;

    n->barrier_busy = false;
    complete_barriers(&n->boarded, node_status_from_raft(status));
    if (!cairn_queue_empty(&n->riders)) {
        kick(n);
    }
}

/* Propose one barrier for every request that has arrived so far. */
static void flush_barrier(struct node *n)
{
    int rv;

    if (n->closing || n->barrier_busy || cairn_queue_empty(&n->riders)) {
        return;
    }
    if (!is_leader(n)) {
        complete_barriers(&n->riders, CAIRN_UNAVAILABLE);
        return;
    }
    while (!cairn_queue_empty(&n->riders)) {
        struct cairn_queue *q = cairn_queue_head(&n->riders);
        cairn_queue_remove(q);
        cairn_queue_push(&n->boarded, q);
    }
    n->barrier.data = n;
    rv = raft_barrier(&n->raft, &n->barrier, on_barrier);
    if (rv != 0) {
        complete_barriers(&n->boarded, node_status_from_raft(rv));
        return;
    }
    n->barrier_busy = true;
}

int node_barrier(struct node *n,
                 struct node_barrier_req *req,
                 node_barrier_cb cb)
{
    if (!is_leader(n)) {
        return CAIRN_UNAVAILABLE;
    }
    req->cb = cb;
    cairn_queue_push(&n->riders, &req->link);
    kick(n);
    return 0;
}

static void on_kick(uv_idle_t *h)
{
    struct node *n = h->data;

    uv_idle_stop(h);
    flush_batches(n);
    flush_barrier(n);
    if (!n->closing && !cairn_queue_empty(&n->waiters)) {
        complete_waiters(n, false, 0);
    }
}

/* ---- waiting for an applied index ------------------------------------- */

static void complete_waiters(struct node *n, bool all, int status)
{
    uint64_t applied = raft_last_applied(&n->raft);
    struct cairn_queue ready;

    cairn_queue_init(&ready);
    for (struct cairn_queue *q = n->waiters.next; q != &n->waiters;) {
        struct node_wait_req *w =
            cairn_queue_data(q, struct node_wait_req, link);
        q = q->next;
        if (all || w->index <= applied) {
            cairn_queue_remove(&w->link);
            cairn_queue_push(&ready, &w->link);
        }
    }
    /* Callbacks last: they may wait again or close the node. */
    while (!cairn_queue_empty(&ready)) {
        struct cairn_queue *q = cairn_queue_head(&ready);
        struct node_wait_req *w =
            cairn_queue_data(q, struct node_wait_req, link);
        cairn_queue_remove(q);
        w->cb(w, status);
    }
}

int node_wait_applied(struct node *n,
                      struct node_wait_req *req,
                      uint64_t index,
                      node_wait_cb cb)
{
    req->cb = cb;
    req->index = index;
    cairn_queue_push(&n->waiters, &req->link);
    if (n->closing) {
        kick(n); /* no-op while closing: node_close fails the waiters */
    } else if (index <= raft_last_applied(&n->raft)) {
        kick(n);
    }
    return 0;
}

uint64_t node_applied_index(const struct node *n)
{
    return raft_last_applied(raft_of(n));
}

/* ---- deferred snapshots ----------------------------------------------- */

/*
 * libraft 0.22.1 calls the FSM's snapshot callbacks on the loop, both of
 * them (its "async" one too), so copying a large store there would stall
 * every request. Instead the FSM hands libraft a placeholder, and this
 * wrapper around raft_uv's snapshot_put makes the real copy in libuv's
 * threadpool, swaps it in, then lets raft_uv write it. The copy starts after
 * the snapshot's index was fixed, so it holds at least that state (fsm.h).
 */
struct node_snapshot_job
{
    uv_work_t work;
    struct node *node;
    unsigned trailing;
    struct raft_io_snapshot_put *req;
    const struct raft_snapshot *snapshot;
    raft_io_snapshot_put_cb cb;
    struct raft_buffer copy;
    struct cairn_error err;
    int status;
    uint64_t started_ms;
    uint64_t ref_index; /* the store's applied index, read on the loop */
};

static struct node *node_of_io(struct raft_io *io)
{
    return (struct node *)((char *)io - offsetof(struct node, io));
}

static void snapshot_work(uv_work_t *w)
{
    struct node_snapshot_job *job = w->data;
    struct node *n = job->node;

    job->status =
        n->opts.full_snapshots
            ? fsm_snapshot_copy(&n->fsm, &job->copy, &job->err)
            : fsm_snapshot_ref(&n->fsm, job->ref_index, &job->copy, &job->err);
}

/* The io close waits for the copies in flight; the last one runs it. */
static void maybe_close_io(struct node *n)
{
    if (n->io_close_cb != NULL && n->snapshot_job == NULL &&
        n->get_job == NULL) {
        raft_io_close_cb close_cb = n->io_close_cb;
        n->io_close_cb = NULL;
        n->uv_close(&n->io, close_cb);
    }
}

static void snapshot_after_work(uv_work_t *w, int uv_status)
{
    struct node_snapshot_job *job = w->data;
    struct node *n = job->node;
    raft_io_snapshot_put_cb cb = job->cb;
    struct raft_io_snapshot_put *req = job->req;
    int rv = 0;

    n->snapshot_job = NULL;
    if (uv_status != 0 || job->status != 0 || n->io_close_cb != NULL) {
        if (job->status == 0 && job->copy.base != NULL) {
            raft_free(job->copy.base);
        }
        if (job->status != 0) {
            log_error("raft: snapshot copy failed: %s", job->err.msg);
        }
        rv = n->io_close_cb != NULL ? RAFT_CANCELED : RAFT_IOERR;
    } else {
        /* The array is the FSM's; libraft's finalize frees what is in it. */
        raft_free(job->snapshot->bufs[0].base);
        job->snapshot->bufs[0] = job->copy;
        if (fsm_snapshot_is_ref(&job->copy, 1)) {
            log_info("raft: snapshot at index %llu: store synced (%llu ms)",
                     (unsigned long long)job->snapshot->index,
                     (unsigned long long)(uv_now(n->loop) - job->started_ms));
        } else {
            log_info("raft: snapshot at index %llu copied (%zu bytes, %llu ms)",
                     (unsigned long long)job->snapshot->index, job->copy.len,
                     (unsigned long long)(uv_now(n->loop) - job->started_ms));
        }
        rv = n->uv_snapshot_put(&n->io, job->trailing, req, job->snapshot, cb);
    }
    free(job);
    if (rv != 0) {
        cb(req, rv);
    }
    maybe_close_io(n);
}

static int node_snapshot_put(struct raft_io *io,
                             unsigned trailing,
                             struct raft_io_snapshot_put *req,
                             const struct raft_snapshot *snapshot,
                             raft_io_snapshot_put_cb cb)
{
    struct node *n = node_of_io(io);
    struct node_snapshot_job *job;
    int rv;

    /* Snapshots installed from a leader come with their data. */
    if (!fsm_snapshot_is_placeholder(&n->fsm, snapshot->bufs,
                                     snapshot->n_bufs)) {
        return n->uv_snapshot_put(io, trailing, req, snapshot, cb);
    }
    if (n->snapshot_job != NULL) {
        return RAFT_BUSY;
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        return RAFT_NOMEM;
    }
    job->work.data = job;
    job->node = n;
    job->trailing = trailing;
    job->req = req;
    job->snapshot = snapshot;
    job->cb = cb;
    job->started_ms = uv_now(n->loop);
    if (!n->opts.full_snapshots &&
        store_applied_index(n->opts.store, &job->ref_index, &job->err) != 0) {
        log_error("raft: snapshot: %s", job->err.msg);
        free(job);
        return RAFT_IOERR;
    }
    rv = uv_queue_work(n->loop, &job->work, snapshot_work, snapshot_after_work);
    if (rv != 0) {
        free(job);
        return RAFT_IOERR;
    }
    n->snapshot_job = job;
    return 0;
}

/*
 * libraft 0.22.1 crashes when an InstallSnapshot arrives while this node
 * is taking a snapshot of its own: it parks the install and, when the take
 * completes, clears the parked request before reading it (src/legacy.c,
 * takeSnapshotCb) and dereferences NULL. Copying off the loop makes that
 * window longer. So such a message is dropped here, before libraft sees
 * it, as the network could have dropped it; the leader sends the snapshot
 * again after its install_snapshot_timeout.
 */
static void node_recv(struct raft_io *io, struct raft_message *m)
{
    struct node *n = node_of_io(io);

    if (m->type == RAFT_INSTALL_SNAPSHOT &&
        (n->raft.legacy.snapshot_taking || n->snapshot_job != NULL)) {
        log_info(
            "raft: snapshot at index %llu from node %llu dropped while "
            "taking one; the leader will send it again",
            (unsigned long long)m->install_snapshot.last_index,
            (unsigned long long)m->server_id);
        raft_configuration_close(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
        return;
    }
    if (is_leader(n) && snapshot_echo(n, m)) {
        log_debug(
            "raft: rejection of index %llu from node %llu dropped: a "
            "snapshot is on its way to it",
            (unsigned long long)m->append_entries_result.rejected,
            (unsigned long long)m->server_id);
        return;
    }
    n->raft_recv(io, m);
}

static int node_io_start(struct raft_io *io,
                         unsigned msecs,
                         raft_io_tick_cb tick,
                         raft_io_recv_cb recv)
{
    struct node *n = node_of_io(io);
    n->raft_recv = recv;
    return n->uv_start(io, msecs, tick, node_recv);
}

/*
 * Sending a snapshot. libraft 0.22.1's leader, with a follower's progress
 * in snapshot mode, keeps sending heartbeats anchored at the snapshot's
 * index; the follower, which has not installed it yet, rejects them, and
 * each rejection aborts the snapshot mode and sends the whole snapshot
 * again (src/progress.c, progressMaybeDecrement). With a large store that
 * meant a new load of the snapshot file every heartbeat: a 300 MB snapshot
 * was read ten times at once, filling libuv's thread pool so that the
 * leader's own log writes waited (a 1.4 s stall seen by clients), and sent
 * again and again. Two guards, both only dropping messages (which Raft
 * tolerates):
 *
 * - while a snapshot is being loaded, and after it was sent to a follower
 *   until that follower acknowledges its index (or install_snapshot_timeout
 *   passes), rejections of the snapshot's index from that follower are
 *   dropped (node_recv);
 * - loads run one at a time (libraft cannot be told that a load failed:
 *   its abort path frees fields it never set), so a repeated request waits
 *   for the previous load instead of reading the file beside it.
 */
static void node_snapshot_got(struct raft_io_snapshot_get *inner,
                              struct raft_snapshot *snapshot,
                              int status);

static int start_get(struct node *n, struct raft_io_snapshot_get *req)
{
    int rv;
    n->get_inner.data = n;
    n->get_req = req;
    n->get_started = uv_now(n->loop);
    rv = n->uv_snapshot_get(&n->io, &n->get_inner, node_snapshot_got);
    if (rv != 0) {
        n->get_req = NULL;
    }
    return rv;
}

/* A reference snapshot loaded to be sent is replaced by a full copy of the
 * store, made in the thread pool: it holds the snapshot's index or more. */
struct node_get_job
{
    uv_work_t work;
    struct node *node;
    struct raft_snapshot *snapshot;
    struct raft_buffer copy;
    struct cairn_error err;
    int status;
    uint64_t started_ms;
};

static void deliver_got(struct node *n,
                        struct raft_snapshot *snapshot,
                        int status);

static void get_work(uv_work_t *w)
{
    struct node_get_job *job = w->data;
    job->status = fsm_snapshot_copy(&job->node->fsm, &job->copy, &job->err);
}

static void get_after_work(uv_work_t *w, int uv_status)
{
    struct node_get_job *job = w->data;
    struct node *n = job->node;
    struct raft_snapshot *snapshot = job->snapshot;

    n->get_job = NULL;
    if (uv_status == 0 && job->status == 0) {
        raft_free(snapshot->bufs[0].base);
        snapshot->bufs[0] = job->copy;
        log_info(
            "raft: snapshot at index %llu copied to be sent (%zu bytes, "
            "%llu ms)",
            (unsigned long long)snapshot->index, job->copy.len,
            (unsigned long long)(uv_now(n->loop) - job->started_ms));
    } else {
        /* Sent as it is, the follower refuses it and the leader tries
         * again later; libraft cannot be told that a load failed. */
        if (job->status == 0 && job->copy.base != NULL) {
            raft_free(job->copy.base);
        }
        log_error("raft: copying the store to send a snapshot failed: %s",
                  job->status != 0 ? job->err.msg : "cancelled");
    }
    free(job);
    deliver_got(n, snapshot, 0);
    maybe_close_io(n);
}

static bool install_in_flight(struct node *n, uint64_t id, uint64_t index);

static void node_snapshot_got(struct raft_io_snapshot_get *inner,
                              struct raft_snapshot *snapshot,
                              int status)
{
    struct node *n = inner->data;
    struct node_get_job *job;

    /* libraft asks for the snapshot again and again while a large one is
     * being copied and sent (its timeouts run meanwhile): a copy of
     * hundreds of MB each time, and as many messages of that size queued
     * to the follower. While an install is on its way, the reference is
     * handed over as it is, and node_send drops it. */
    if (status == 0 && snapshot != NULL && !n->closing &&
        n->io_close_cb == NULL &&
        fsm_snapshot_is_ref(snapshot->bufs, snapshot->n_bufs) &&
        !install_in_flight(n, 0, snapshot->index)) {
        job = calloc(1, sizeof(*job));
        if (job != NULL) {
            job->work.data = job;
            job->node = n;
            job->snapshot = snapshot;
            job->started_ms = uv_now(n->loop);
            if (uv_queue_work(n->loop, &job->work, get_work, get_after_work) ==
                0) {
                n->get_job = job;
                return;
            }
            free(job);
        }
        log_error("raft: cannot copy the store to send a snapshot");
    }
    deliver_got(n, snapshot, status);
}

static void deliver_got(struct node *n,
                        struct raft_snapshot *snapshot,
                        int status)
{
    struct raft_io_snapshot_get *req = n->get_req;

    n->get_req = NULL;
    req->cb(req, snapshot, status);
    /* The next waiting load; a failure to start is reported the way
     * raft_uv reports a failed load. */
    while (n->get_req == NULL && n->n_get_dups > 0) {
        struct raft_io_snapshot_get *next = n->get_dups[0];
        memmove(n->get_dups, n->get_dups + 1,
                (n->n_get_dups - 1) * sizeof(*n->get_dups));
        n->n_get_dups--;
        if (n->closing || start_get(n, next) != 0) {
            next->cb(next, NULL, RAFT_CANCELED);
        }
    }
}

static int node_snapshot_get(struct raft_io *io,
                             struct raft_io_snapshot_get *req,
                             raft_io_snapshot_get_cb cb)
{
    struct node *n = node_of_io(io);

    req->cb = cb;
    if (n->get_req != NULL) {
        struct raft_io_snapshot_get **dups =
            realloc(n->get_dups, (n->n_get_dups + 1) * sizeof(*dups));
        if (dups == NULL) {
            return RAFT_NOMEM;
        }
        n->get_dups = dups;
        n->get_dups[n->n_get_dups++] = req;
        return 0;
    }
    return start_get(n, req);
}

static struct node_install *find_install(struct node *n, uint64_t id)
{
    for (unsigned i = 0; i < NODE_MAX_INSTALLS; i++) {
        if (n->installs[i].id == id) {
            return &n->installs[i];
        }
    }
    return NULL;
}

/* Whether a snapshot at @p index or later was sent to follower @p id (any
 * follower if 0) less than install_snapshot_timeout ago and not yet
 * acknowledged. */
static bool install_in_flight(struct node *n, uint64_t id, uint64_t index)
{
    uint64_t now = uv_now(n->loop);

    for (unsigned i = 0; i < NODE_MAX_INSTALLS; i++) {
        const struct node_install *in = &n->installs[i];
        if (in->id != 0 && (id == 0 || in->id == id) && in->index >= index &&
            now - in->sent < n->opts.install_snapshot_timeout_ms) {
            return true;
        }
    }
    return false;
}

static int node_send(struct raft_io *io,
                     struct raft_io_send *req,
                     const struct raft_message *m,
                     raft_io_send_cb cb)
{
    struct node *n = node_of_io(io);

    if (m->type == RAFT_INSTALL_SNAPSHOT) {
        bool ref = fsm_snapshot_is_ref(&m->install_snapshot.data, 1);
        struct node_install *in;

        /* A reference means nothing to a follower (node_snapshot_got), and
         * a second copy to a follower already receiving one is only
         * memory: dropped, as the network could. libraft sends again after
         * install_snapshot_timeout if no answer came. An error from here
         * makes libraft free the message (its load callback). */
        if (ref || install_in_flight(n, m->server_id,
                                     m->install_snapshot.last_index)) {
            log_info(
                "raft: snapshot at index %llu to node %llu not sent: "
                "one is on its way to %s",
                (unsigned long long)m->install_snapshot.last_index,
                (unsigned long long)m->server_id, ref ? "a follower" : "it");
            return RAFT_CANCELED;
        }
        in = find_install(n, m->server_id);
        if (in == NULL) {
            in = find_install(n, 0);
        }
        if (in == NULL) {
            in = &n->installs[0]; /* more followers than slots: reuse */
        }
        in->id = m->server_id;
        in->index = m->install_snapshot.last_index;
        in->sent = uv_now(n->loop);
    }
    return n->uv_send(io, req, m, cb);
}

/* True if @p m is a rejection that would make the leader send a snapshot
 * again while one is on its way (see above). */
static bool snapshot_echo(struct node *n, const struct raft_message *m)
{
    const struct raft_append_entries_result *r = &m->append_entries_result;
    struct node_install *in;
    uint64_t now = uv_now(n->loop);

    if (m->type != RAFT_APPEND_ENTRIES_RESULT) {
        return false;
    }
    in = find_install(n, m->server_id);
    if (in != NULL && now - in->sent >= n->opts.install_snapshot_timeout_ms) {
        in->id = 0;
        in = NULL;
    }
    if (in != NULL && r->rejected == 0 && r->last_log_index >= in->index) {
        in->id = 0; /* installed */
        return false;
    }
    if (r->rejected == 0) {
        return false;
    }
    if (in != NULL && r->rejected == in->index) {
        return true;
    }
    /* A load in flight is for a follower whose rejection started it. */
    return n->get_req != NULL &&
           now - n->get_started < n->opts.install_snapshot_timeout_ms;
}

/* raft_close closes the io: with a copy in flight, close after it. */
static void node_io_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct node *n = node_of_io(io);
    /* raft_uv cancels its own load; then the waiting ones fail (closing). */
    if (n->snapshot_job != NULL || n->get_job != NULL) {
        n->io_close_cb = cb;
        return;
    }
    n->uv_close(io, cb);
}

/* ---- leadership ------------------------------------------------------- */

static void propose_init(struct node *n);

static void on_init(struct node_propose_req *req,
                    int status,
                    const struct sm_outcome *outcome)
{
    struct node *n = req->data;

    n->init_busy = false;
    if (status == 0 && outcome->err.code != CAIRN_OK) {
        log_warn("raft: Init refused: %s", outcome->err.msg);
    }
    /* A failure in an earlier term may be reported after this node won a
     * newer one, which skipped Init while this one was pending: propose for
     * the newer term now. A failure in the current term waits for the next
     * leadership, so that a persistent fault does not loop. */
    if (status != 0 && n->leading && n->leader_term != n->init_term) {
        propose_init(n);
    }
}

/* A new leader proposes Init with a fresh token key. The state machine
 * keeps the first Init, so proposing at every leadership is harmless, and a
 * cluster whose first leader died before committing still gets one. */
static void propose_init(struct node *n)
{
    uint8_t key[TOKEN_KEY_LEN];
    struct timespec now;
    msgpack_packer pk;
    struct buf cmd;
    int rv;

    if (n->init_busy) {
        return;
    }
    if (RAND_bytes(key, sizeof(key)) != 1) {
        log_warn("raft: no random bytes for the token key");
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    buf_init(&cmd);
    mp_packer_init(&pk, &cmd);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_cstr(&pk, "op", "Init");
    mp_pack_kv_i64(&pk, "ts",
                   (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    mp_pack_cstr(&pk, "req");
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "TokenKey");
    mp_pack_bin(&pk, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    if (cmd.oom) {
        buf_close(&cmd);
        return;
    }
    n->init_req.data = n;
    n->init_term = n->leader_term;
    rv = node_propose(n, &n->init_req, cmd.data, cmd.len, on_init);
    if (cmd.data != NULL) {
        OPENSSL_cleanse(cmd.data, cmd.len);
    }
    buf_close(&cmd);
    if (rv == 0) {
        n->init_busy = true;
    }
}

/* libraft 0.22 has no public state callback: look once per loop
 * iteration, which costs two field reads. */
static void watch(struct node *n)
{
    bool leader = is_leader(n);
    uint64_t term = raft_current_term(&n->raft);

    if (leader && (!n->leading || term != n->leader_term)) {
        n->leading = true;
        n->leader_term = term;
        /* libraft appended its no-op for the new term already: once that
         * is applied, everything committed in earlier terms is too. */
        n->leader_first_index = raft_last_index(&n->raft);
        propose_init(n);
    } else if (!leader && n->leading) {
        n->leading = false;
        /* Fail what waits now rather than at the next completion. */
        if (!cairn_queue_empty(&n->waiting) || !cairn_queue_empty(&n->riders)) {
            kick(n);
        }
    }
}

static void on_watch(uv_check_t *h)
{
    struct node *n = h->data;
    watch(n);
    /* Apply runs from libraft's I/O callbacks earlier in this iteration. */
    if (!n->closing && !cairn_queue_empty(&n->waiters)) {
        complete_waiters(n, false, 0);
    }
}

/* ---- the Raft transport ------------------------------------------------ */

/*
 * libraft 0.22.1's TCP transport leaves Nagle's algorithm on, so a small
 * AppendEntries or its reply can wait for the previous segment's ACK
 * (delayed up to 40 ms): the 3-node put p99 sat at ~48 ms, 9 ms with
 * TCP_NODELAY. The node wraps the transport's listen and connect to set it
 * on every stream libraft gets.
 */
static struct node *node_of_transport(struct raft_uv_transport *t)
{
    return (struct node *)((char *)t - offsetof(struct node, transport));
}

static void nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP) {
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    }
}

static void node_accept(struct raft_uv_transport *t,
                        raft_id id,
                        const char *address,
                        struct uv_stream_s *stream)
{
    nodelay(stream);
    node_of_transport(t)->uv_accept_cb(t, id, address, stream);
}

static int node_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct node *n = node_of_transport(t);
    n->uv_accept_cb = cb;
    return n->tcp_listen(t, node_accept);
}

/* A connect request of ours around raft_uv's, which gets its callback
 * from us the way the transport would call it. */
struct node_connect
{
    struct raft_uv_connect inner;
    struct raft_uv_connect *outer;
};

static void node_connected(struct raft_uv_connect *req,
                           struct uv_stream_s *stream,
                           int status)
{
    struct node_connect *c = req->data;
    struct raft_uv_connect *outer = c->outer;

    free(c);
    if (status == 0) {
        nodelay(stream);
    }
    outer->cb(outer, stream, status);
}

static int node_connect(struct raft_uv_transport *t,
                        struct raft_uv_connect *req,
                        raft_id id,
                        const char *address,
                        raft_uv_connect_cb cb)
{
    struct node *n = node_of_transport(t);
    struct node_connect *c = calloc(1, sizeof(*c));
    int rv;

    if (c == NULL) {
        return RAFT_NOMEM;
    }
    c->inner.data = c;
    c->outer = req;
    req->cb = cb;
    rv = n->tcp_connect(t, &c->inner, id, address, node_connected);
    if (rv != 0) {
        free(c);
    }
    return rv;
}

/* ---- lifecycle -------------------------------------------------------- */

/* mkdir -p, mode 0700: the directory holds the cluster's log. */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    int e = 0;

    if (p == NULL) {
        return ENOMEM;
    }
    for (char *s = p + 1; *s != '\0' && e == 0; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                e = errno;
            }
            *s = '/';
        }
    }
    if (e == 0 && mkdir(p, 0700) != 0 && errno != EEXIST) {
        e = errno;
    }
    free(p);
    return e;
}

int node_create(uv_loop_t *loop,
                const struct node_options *o,
                struct node **out,
                struct cairn_error *err)
{
    struct node *n;
    int rv;

    *out = NULL;
    if (o == NULL || o->store == NULL || o->dir == NULL ||
        o->raft_address == NULL || o->id == 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "node options need id, address, dir, store");
    }
    if (o->heartbeat_timeout_ms == 0 ||
        o->heartbeat_timeout_ms >= o->election_timeout_ms ||
        o->snapshot_threshold == 0 || o->max_inflight == 0 ||
        o->install_snapshot_timeout_ms == 0 || o->max_batch_bytes == 0 ||
        o->max_batch_bytes > NODE_MAX_BATCH_BYTES) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "bad node options (heartbeat below election "
                               "timeout, non-zero threshold, inflight and "
                               "batch size up to %zu)",
                               NODE_MAX_BATCH_BYTES);
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    n->loop = loop;
    n->opts = *o;
    n->address = strdup(o->raft_address);
    n->dir = strdup(o->dir);
    if (n->address == NULL || n->dir == NULL) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
        goto err_after_alloc;
    }
    n->opts.raft_address = n->address;
    n->opts.dir = n->dir;
    if (o->initial_cluster != NULL) {
        n->initial_cluster = strdup(o->initial_cluster);
        if (n->initial_cluster == NULL) {
            rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                 "out of memory");
            goto err_after_alloc;
        }
    }
    n->opts.initial_cluster = n->initial_cluster;
    rv = make_dirs(n->dir);
    if (rv != 0) {
        rv = cairn_error_set(err, cairn_status_from_errno(rv), NULL,
                             "create %s: %s", n->dir, strerror(rv));
        goto err_after_alloc;
    }

    n->transport.version = 1;
    n->transport.data = NULL;
    rv = raft_uv_tcp_init(&n->transport, loop);
    if (rv != 0) {
        rv = cairn_error_set(err, node_status_from_raft(rv), NULL,
                             "raft transport: %s", n->transport.errmsg);
        goto err_after_alloc;
    }
    n->tcp_listen = n->transport.listen;
    n->tcp_connect = n->transport.connect;
    n->transport.listen = node_listen;
    n->transport.connect = node_connect;
    rv = raft_uv_init(&n->io, loop, n->dir, &n->transport);
    if (rv != 0) {
        rv = cairn_error_set(err, node_status_from_raft(rv), NULL,
                             "raft io: %s", n->io.errmsg);
        goto err_after_transport;
    }
    /* Wrap raft_uv's snapshot writes to copy the store off the loop. */
    n->uv_snapshot_put = n->io.snapshot_put;
    n->uv_close = n->io.close;
    n->uv_start = n->io.start;
    n->uv_snapshot_get = n->io.snapshot_get;
    n->io.snapshot_get = node_snapshot_get;
    n->uv_send = n->io.send;
    n->io.send = node_send;
    n->io.snapshot_put = node_snapshot_put;
    n->io.close = node_io_close;
    n->io.start = node_io_start;
    fsm_init(&n->fsm, &n->raft_fsm, o->store, &n->raft);
    fsm_defer_snapshots(&n->fsm, !o->sync_snapshots);
    rv = raft_init(&n->raft, &n->io, &n->raft_fsm, o->id, n->address);
    if (rv != 0) {
        rv = cairn_error_set(err, node_status_from_raft(rv), NULL,
                             "raft init: %s", raft_errmsg(&n->raft));
        goto err_after_io;
    }
    n->raft.data = n;
    raft_set_election_timeout(&n->raft, o->election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, o->heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&n->raft, o->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, o->snapshot_trailing);
    fsm_snapshot_limits(
        &n->fsm, o->snapshot_threshold, o->snapshot_trailing,
        o->snapshot_log_bytes + o->snapshot_log_bytes * ((o->id - 1) % 4) / 4,
        o->snapshot_trailing_bytes);
    /* A snapshot dropped by node_recv is sent again after this. */
    raft_set_install_snapshot_timeout(&n->raft, o->install_snapshot_timeout_ms);

    /* Handles last: once initialised they can only go through uv_close. */
    uv_check_init(loop, &n->watch);
    n->watch.data = n;
    uv_idle_init(loop, &n->kick);
    n->kick.data = n;
    cairn_queue_init(&n->waiting);
    cairn_queue_init(&n->inflight);
    cairn_queue_init(&n->riders);
    cairn_queue_init(&n->boarded);
    cairn_queue_init(&n->waiters);
    *out = n;
    return 0;

err_after_io:
    raft_uv_close(&n->io);
err_after_transport:
    raft_uv_tcp_close(&n->transport);
err_after_alloc:
    free(n->address);
    free(n->dir);
    free(n->initial_cluster);
    free(n);
    return rv;
}

/*
 * Check that the Raft address can be bound, the way libraft's TCP transport
 * binds it: host up to the first ':', port after it (8080 if none), IPv4,
 * SO_REUSEADDR as libuv sets it. libraft 0.22.1 cannot fail this itself:
 * when bind or listen fails, uvTcpListenOnMultipleIP (src/uv_tcp_listen.c)
 * frees the listener handles right after uv_close, before their close
 * callbacks, and libuv then writes into freed memory. A probe turns the
 * usual case (port taken, no permission) into a clean error; a race with
 * another process binding in between remains libraft's.
 */
static int check_listen(const char *address, struct cairn_error *err)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    const char *colon = strchr(address, ':');
    const char *port = colon != NULL && colon[1] != '\0' ? colon + 1 : "8080";
    char *host = strndup(
        address, colon != NULL ? (size_t)(colon - address) : strlen(address));
    int rv = 0;

    if (host == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
    free(host);
    if (rv != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "raft address %s: %s", address,
                               gai_strerror(rv));
    }
    for (struct addrinfo *ai = res; ai != NULL && rv == 0; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                                 "raft address %s: %s", address,
                                 strerror(errno));
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    freeaddrinfo(res);
    return rv;
}

/* The configuration to bootstrap: the initial cluster, which must list
 * this node with its address, or this node alone. */
static int initial_configuration(struct node *n,
                                 struct raft_configuration *conf,
                                 struct cairn_error *err)
{
    const char *p = n->opts.initial_cluster;
    bool self = false;
    int rv;

    if (p == NULL || *p == '\0') {
        rv = raft_configuration_add(conf, n->opts.id, n->address, RAFT_VOTER);
        return rv == 0 ? 0
                       : cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                         "out of memory");
    }
    while (*p != '\0') {
        char addr[256];
        char *end;
        unsigned long long id;
        size_t len;
        const char *comma = strchr(p, ',');
        const char *eq;

        len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        eq = memchr(p, '=', len);
        errno = 0;
        id = strtoull(p, &end, 10);
        if (eq == NULL || end != eq || p == eq || errno != 0 || id == 0 ||
            (size_t)(p + len - eq - 1) == 0 ||
            (size_t)(p + len - eq - 1) >= sizeof(addr)) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                                   "initial cluster: \"%.*s\" is not "
                                   "id=host:port (ids from 1)",
                                   (int)(len > 300 ? 300 : len), p);
        }
        memcpy(addr, eq + 1, (size_t)(p + len - eq - 1));
        addr[p + len - eq - 1] = '\0';
        if (strchr(addr, ':') == NULL) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                                   "initial cluster: address %s of node %llu "
                                   "has no port",
                                   addr, id);
        }
        if (id == n->opts.id) {
            if (strcmp(addr, n->address) != 0) {
                return cairn_error_set(
                    err, CAIRN_INVALID_ARGUMENT, NULL,
                    "initial cluster: node %llu is listed at %s but its Raft "
                    "address is %s",
                    id, addr, n->address);
            }
            self = true;
        }
        rv = raft_configuration_add(conf, id, addr, RAFT_VOTER);
        if (rv == RAFT_DUPLICATEID || rv == RAFT_DUPLICATEADDRESS) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                                   "initial cluster: node %llu or address %s "
                                   "is listed twice",
                                   id, addr);
        }
        if (rv != 0) {
            return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                   "out of memory");
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    if (!self) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "initial cluster: this node (%llu) is not "
                               "listed",
                               (unsigned long long)n->opts.id);
    }
    return 0;
}

int node_start(struct node *n, struct cairn_error *err)
{
    bool bootstrapped = false;
    struct raft_configuration conf;
    uint64_t applied = 0;
    int rv;

    if (n->started || n->closing) {
        return cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                               "node already started or closing");
    }
    rv = check_listen(n->address, err);
    if (rv != 0) {
        return rv;
    }
    raft_configuration_init(&conf);
    rv = initial_configuration(n, &conf, err);
    if (rv != 0) {
        raft_configuration_close(&conf);
        return rv;
    }
    /* A joining node bootstraps nothing: the leader adds it. */
    if (!n->opts.join) {
        rv = raft_bootstrap(&n->raft, &conf);
        bootstrapped = rv == 0;
    }
    raft_configuration_close(&conf);
    /* CANTBOOTSTRAP: the directory has state already, the usual restart. */
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        return cairn_error_set(err, CAIRN_INTERNAL, NULL, "raft bootstrap: %s",
                               raft_strerror(rv));
    }
    cairn_error_clear(&n->fsm.fault);
    rv = raft_start(&n->raft);
    if (rv != 0) {
        /* A failed restore leaves libraft's message empty: say the FSM's. */
        const char *why = raft_errmsg(&n->raft);
        return cairn_error_set(
            err, rv == RAFT_CORRUPT ? CAIRN_DATA_LOSS : CAIRN_INTERNAL, NULL,
            "raft start: %s%s%s", why,
            why[0] != '\0' && n->fsm.fault.msg[0] != '\0' ? ": " : "",
            n->fsm.fault.msg);
    }
    n->started = true;
    uv_check_start(&n->watch, on_watch);
    uv_unref((uv_handle_t *)&n->watch);

    /* A store ahead of the log would skip every new command as already
     * applied: its Raft directory was lost or belongs to another store. */
    rv = store_applied_index(n->opts.store, &applied, err);
    if (rv != 0) {
        return rv;
    }
    /* A store that has applied commands next to a log that has just been
     * created: the Raft directory was lost or belongs to another store,
     * and every new command would be skipped as already applied. */
    if (applied != 0 &&
        (bootstrapped || (n->opts.join && raft_last_index(&n->raft) == 0))) {
        return cairn_error_set(
            err, CAIRN_FAILED_PRECONDITION, NULL,
            "the store has applied Raft index %llu but the log in %s is new: "
            "the Raft directory does not belong to this store",
            (unsigned long long)fsm_raft_index(applied), n->dir);
    }
    /* A store a little ahead of its own log is expected: a snapshot's copy
     * may hold a few entries past its index, and a follower applies
     * committed entries before its own disk write of them completes. Both
     * hold only committed commands, which the leader sends again and the
     * store skips. */
    if (fsm_raft_index(applied) > raft_last_index(&n->raft)) {
        log_info(
            "raft: the store is at index %llu, the log ends at %llu; "
            "the entries in between will be skipped when they arrive",
            (unsigned long long)fsm_raft_index(applied),
            (unsigned long long)raft_last_index(&n->raft));
    }
    /* A single voter is leader already: propose Init before anything the
     * caller proposes next. */
    watch(n);
    return 0;
}

static void finish_close(struct node *n)
{
    node_close_cb cb;
    void *data;
    /* The contract hands the freed pointer back as a value, for identity;
     * volatile keeps gcc 12's use-after-free analysis from following it. */
    volatile uintptr_t identity = (uintptr_t)n;

    if (--n->closes_pending > 0) {
        return;
    }
    /* raft_close failed every pending request; these are for safety. */
    while (!cairn_queue_empty(&n->inflight)) {
        struct node_batch *b = cairn_queue_data(cairn_queue_head(&n->inflight),
                                                struct node_batch, link);
        cairn_queue_remove(&b->link);
        batch_fail(b, CAIRN_UNAVAILABLE);
    }
    complete_barriers(&n->boarded, CAIRN_UNAVAILABLE);
    fsm_close(&n->fsm);
    cb = n->close_cb;
    data = n->close_data;
    free(n->address);
    free(n->dir);
    free(n->initial_cluster);
    free(n->get_dups);
    free(n);
    if (cb != NULL) {
        cb((struct node *)identity, data);
    }
}

static void on_raft_closed(struct raft *r)
{
    struct node *n = r->data;

    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    finish_close(n);
}

static void on_handle_closed(uv_handle_t *h)
{
    finish_close(h->data);
}

void node_close(struct node *n, node_close_cb cb, void *data)
{
    if (n == NULL) {
        if (cb != NULL) {
            cb(NULL, data);
        }
        return;
    }
    if (n->closing) {
        return;
    }
    n->closing = true;
    n->close_cb = cb;
    n->close_data = data;
    n->closes_pending = 3;

    while (!cairn_queue_empty(&n->waiting)) {
        struct node_batch *b = cairn_queue_data(cairn_queue_head(&n->waiting),
                                                struct node_batch, link);
        cairn_queue_remove(&b->link);
        batch_fail(b, CAIRN_UNAVAILABLE);
    }
    complete_barriers(&n->riders, CAIRN_UNAVAILABLE);
    complete_waiters(n, true, CAIRN_UNAVAILABLE);
    /* Fails what is in flight, synchronously, with RAFT_LEADERSHIPLOST;
     * entries applied but not yet reported get their outcomes. */
    raft_close(&n->raft, on_raft_closed);
    uv_close((uv_handle_t *)&n->watch, on_handle_closed);
    uv_close((uv_handle_t *)&n->kick, on_handle_closed);
}

/* ---- state ------------------------------------------------------------ */

bool node_is_leader(const struct node *n)
{
    return is_leader(n);
}

uint64_t node_term(const struct node *n)
{
    return n->closing ? 0 : raft_current_term(raft_of(n));
}

void node_leader(const struct node *n, uint64_t *id, const char **address)
{
    raft_id leader = 0;
    const char *addr = NULL;

    if (!n->closing) {
        raft_leader(raft_of(n), &leader, &addr);
    }
    *id = leader;
    *address = leader != 0 ? addr : NULL;
}

void node_get_status(const struct node *n, struct node_status *st)
{
    struct raft *r = raft_of(n);
    raft_id leader = 0;
    const char *addr = NULL;

    memset(st, 0, sizeof(*st));
    st->id = n->opts.id;
    switch (raft_state(r)) {
        case RAFT_LEADER:
            st->role = "leader";
            break;
        case RAFT_FOLLOWER:
            st->role = "follower";
            break;
        case RAFT_CANDIDATE:
            st->role = "candidate";
            break;
        default:
            st->role = "unavailable";
            break;
    }
    st->term = raft_current_term(r);
    st->commit_index = raft_commit_index(r);
    /* Raft's applied index: entries, barriers and configuration changes
     * applied here, which is what a read after a barrier waits for. */
    st->applied_index = raft_last_applied(r);
    raft_leader(r, &leader, &addr);
    st->leader_id = leader;
}

/* ---- membership ------------------------------------------------------- */

static const char *role_name(int role)
{
    switch (role) {
        case RAFT_VOTER:
            return "voter";
        case RAFT_STANDBY:
            return "standby";
        default:
            return "spare";
    }
}

unsigned node_members(const struct node *n,
                      struct node_member *out,
                      unsigned cap)
{
    const struct raft_configuration *c = &raft_of(n)->configuration;
    for (unsigned i = 0; i < c->n && i < cap; i++) {
        out[i].id = c->servers[i].id;
        out[i].raft_address = c->servers[i].address;
        out[i].role = role_name(c->servers[i].role);
    }
    return c->n;
}

static const struct raft_server *find_server(const struct node *n, uint64_t id)
{
    const struct raft_configuration *c = &raft_of(n)->configuration;
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id == id) {
            return &c->servers[i];
        }
    }
    return NULL;
}

static const char *change_message(int rv)
{
    switch (rv) {
        case RAFT_CANTCHANGE:
            return "another membership change is in progress; retry";
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return "leadership changed during the change; retry";
        case RAFT_NOCONNECTION:
            return "the new member could not be reached or did not catch up";
        default:
            return raft_strerror(rv);
    }
}

/* libraft 0.22.1 builds the new configuration before it checks whether a
 * change may start, and leaks it when refusing: check first. */
static bool change_busy(struct node *n)
{
    return n->changing || n->raft.configuration_uncommitted_index != 0 ||
           n->raft.leader_state.promotee_id != 0 ||
           raft_transferee(&n->raft) != 0;
}

static void change_done(struct node_change_req *req, int rv)
{
    req->node->changing = false;
    req->cb(req, node_status_from_raft(rv), rv == 0 ? "" : change_message(rv));
}

static void on_assigned(struct raft_change *change, int status)
{
    change_done(change->data, status);
}

static void on_added(struct raft_change *change, int status)
{
    struct node_change_req *req = change->data;
    struct node *n = req->node;
    int rv;

    if (status != 0 || n->closing) {
        change_done(req, status != 0 ? status : RAFT_SHUTDOWN);
        return;
    }
    /* Promotion catches the spare up first (by snapshot if needed). */
    req->raft.change.data = req;
    rv = raft_assign(&n->raft, &req->raft.change, req->id, RAFT_VOTER,
                     on_assigned);
    if (rv != 0) {
        change_done(req, rv);
    }
}

int node_add_member(struct node *n,
                    struct node_change_req *req,
                    uint64_t id,
                    const char *raft_address,
                    node_change_cb cb)
{
    const struct raft_configuration *c = &n->raft.configuration;
    const struct raft_server *srv;
    int rv;

    if (id == 0 || raft_address == NULL || strchr(raft_address, ':') == NULL) {
        return CAIRN_INVALID_ARGUMENT;
    }
    if (!is_leader(n)) {
        return CAIRN_UNAVAILABLE;
    }
    srv = find_server(n, id);
    if (srv != NULL && strcmp(srv->address, raft_address) != 0) {
        return CAIRN_ALREADY_EXISTS;
    }
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id != id &&
            strcmp(c->servers[i].address, raft_address) == 0) {
            return CAIRN_ALREADY_EXISTS;
        }
    }
    if (srv != NULL && srv->role == RAFT_VOTER) {
        return 1;
    }
    if (change_busy(n)) {
        return CAIRN_UNAVAILABLE;
    }
    req->cb = cb;
    req->node = n;
    req->id = id;
    req->raft.change.data = req;
    if (srv == NULL) {
        rv = raft_add(&n->raft, &req->raft.change, id, raft_address, on_added);
    } else {
        rv = raft_assign(&n->raft, &req->raft.change, id, RAFT_VOTER,
                         on_assigned);
    }
    n->changing = rv == 0;
    return rv == 0 ? 0 : node_status_from_raft(rv);
}

int node_remove_member(struct node *n,
                       struct node_change_req *req,
                       uint64_t id,
                       node_change_cb cb)
{
    int rv;

    if (!is_leader(n)) {
        return CAIRN_UNAVAILABLE;
    }
    if (find_server(n, id) == NULL) {
        return CAIRN_NOT_FOUND;
    }
    if (change_busy(n)) {
        return CAIRN_UNAVAILABLE;
    }
    req->cb = cb;
    req->node = n;
    req->id = id;
    req->raft.change.data = req;
    rv = raft_remove(&n->raft, &req->raft.change, id, on_assigned);
    n->changing = rv == 0;
    return rv == 0 ? 0 : node_status_from_raft(rv);
}

static void on_transferred(struct raft_transfer *t)
{
    struct node_change_req *req = t->data;
    struct node *n = req->node;
    raft_id leader = 0;
    const char *addr = NULL;

    n->changing = false;
    if (!n->closing) {
        raft_leader(&n->raft, &leader, &addr);
    }
    req->leader = leader;
    if (leader != 0 && leader != n->opts.id &&
        (req->id == 0 || leader == req->id)) {
        req->cb(req, 0, "");
    } else {
        req->cb(req, CAIRN_UNAVAILABLE,
                "leadership did not move within an election timeout; retry");
    }
}

int node_transfer_leadership(struct node *n,
                             struct node_change_req *req,
                             uint64_t id,
                             node_change_cb cb)
{
    const struct raft_server *srv;
    int rv;

    if (!is_leader(n)) {
        return CAIRN_UNAVAILABLE;
    }
    if (id != 0) {
        srv = find_server(n, id);
        if (srv == NULL || srv->role != RAFT_VOTER || id == n->opts.id) {
            return CAIRN_INVALID_ARGUMENT;
        }
    }
    req->cb = cb;
    req->node = n;
    req->id = id;
    req->leader = 0;
    if (change_busy(n)) {
        return CAIRN_UNAVAILABLE;
    }
    req->raft.transfer.data = req;
    rv = raft_transfer(&n->raft, &req->raft.transfer, id, on_transferred);
    n->changing = rv == 0;
    return rv == 0 ? 0 : node_status_from_raft(rv);
}

uint64_t node_read_index(const struct node *n)
{
    struct raft *r = raft_of(n);

    if (!is_leader(n) || !n->leading ||
        n->leader_term != raft_current_term(r) ||
        raft_last_applied(r) < n->leader_first_index) {
        return 0;
    }
    return raft_last_applied(r);
}
