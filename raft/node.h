/* A Cairn node: libraft with its libuv I/O driving the storage state
 * machine. One code path for one voter or many. Knows nothing of the API:
 * it moves opaque commands and reports their outcomes. */
#ifndef CAIRN_RAFT_NODE_H
#define CAIRN_RAFT_NODE_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "queue.h"
#include "sm.h"
#include "status.h"
#include "store.h"

struct node_options
{
    uint64_t id;                  /* Raft server id (1 for a single node) */
    const char *raft_address;     /* "127.0.0.1:7401" */
    const char *dir;              /* directory for the Raft log and snapshots */
    struct store *store;          /* borrowed; outlives the node */
    unsigned election_timeout_ms; /* 1000 */
    unsigned heartbeat_timeout_ms; /* 100 */
    unsigned snapshot_threshold;   /* entries between snapshots:
                                      65,536 */
    unsigned snapshot_trailing;    /* entries kept after one: 2048 */
    /* A snapshot is also taken once the entries applied since the last one
     * hold this many bytes (64 MiB; 0: no limit): libraft keeps them all in
     * memory. Node i waits (1 + ((i - 1) mod 4) / 4) times as long, so the
     * members of a cluster rarely snapshot at the same moment. */
    uint64_t snapshot_log_bytes;
    /* The entries kept after a snapshot hold at most about this many bytes
     * (8 MiB; 0: no limit), judged by their mean size. */
    uint64_t snapshot_trailing_bytes;
    unsigned install_snapshot_timeout_ms; /* resend an unanswered
                                             InstallSnapshot after: 10,000 */
    unsigned max_inflight;  /* group commit: entries in flight: 2 */
    size_t max_batch_bytes; /* bytes of commands packed per entry: 1 MiB */
    /* The first members, "id=host:port,id=host:port", this node among them
     * with its raft_address; used only to bootstrap a fresh directory.
     * NULL: a one-voter cluster of this node. */
    const char *initial_cluster;
    bool join; /* fresh directory: bootstrap nothing, wait to be added */
    bool sync_snapshots; /* copy the store on the loop (tests only) */
    /* Snapshots copy the whole store, instead of syncing it and recording
     * a reference (fsm.h): a lost store can then be rebuilt from the local
     * snapshot and log, at the cost of copying and writing the store at
     * every snapshot. Off by default. */
    bool full_snapshots;
};

void node_options_default(struct node_options *o);

struct node;

/**
 * Create a node on @p loop. Nothing runs until node_start. Strings in @p o
 * are copied. Errors: RESOURCE_EXHAUSTED, INTERNAL (raft_uv init).
 * Call only on the loop's thread.
 */
int node_create(uv_loop_t *loop,
                const struct node_options *o,
                struct node **out,
                struct cairn_error *err);

/**
 * Start: on a fresh directory bootstrap the initial cluster (or a one-voter
 * configuration of this node; nothing with join), restore
 * the newest snapshot, replay the log (entries at or below the store's
 * applied index are skipped by the state machine) and begin elections.
 * On a fresh cluster the first leader proposes an Init command carrying a
 * random token key. Errors: INTERNAL, DATA_LOSS (corrupt log).
 */
int node_start(struct node *n, struct cairn_error *err);

typedef void (*node_close_cb)(struct node *n, void *data);

/** Stop the node: pending proposals and barriers complete with
 * UNAVAILABLE, raft and its I/O close, the node frees itself, then @p cb
 * (may be NULL) runs with the now-dangling pointer, for identity only.
 * The store is not closed (it is borrowed). */
void node_close(struct node *n, node_close_cb cb, void *data);

/* ---- writes ---------------------------------------------------------- */

struct node_propose_req;

/**
 * Called on the loop thread once the command is applied (status 0,
 * @p outcome valid only during the call: copy what you need) or failed
 * (status UNAVAILABLE when this node is not the leader or lost
 * leadership, in which case the outcome is unknown; RESOURCE_EXHAUSTED;
 * INTERNAL; outcome NULL).
 */
typedef void (*node_propose_cb)(struct node_propose_req *req,
                                int status,
                                const struct sm_outcome *outcome);

/* Caller-owned request; must stay valid until the callback. */
struct node_propose_req
{
    void *data; /* for the caller */
    /* private */
    node_propose_cb cb;
    struct cairn_queue link;
    uint64_t batch; /* entry it rides in */
};

/**
 * Propose @p cmd (an sm command, copied) for replication. Commands that
 * arrive while max_inflight entries are in flight are packed into the next
 * entry (group commit). Returns 0 (the callback will run) or a status
 * without calling it: UNAVAILABLE (not the leader; see node_leader),
 * INVALID_ARGUMENT (command larger than max_batch_bytes).
 */
int node_propose(struct node *n,
                 struct node_propose_req *req,
                 const void *cmd,
                 size_t len,
                 node_propose_cb cb);

/* ---- linearizable reads ---------------------------------------------- */

struct node_barrier_req;
typedef void (*node_barrier_cb)(struct node_barrier_req *req, int status);

struct node_barrier_req
{
    void *data;
    /* private */
    node_barrier_cb cb;
    struct cairn_queue link;
};

/**
 * Call @p cb once every command committed before this call is applied to
 * the store on this node, which must be the leader. The barrier is a log
 * entry proposed after the call; many waiting reads share one. Status 0,
 * or UNAVAILABLE (not the leader / leadership lost). Returns 0 or
 * UNAVAILABLE without calling @p cb.
 */
int node_barrier(struct node *n,
                 struct node_barrier_req *req,
                 node_barrier_cb cb);

/* ---- state ----------------------------------------------------------- */

bool node_is_leader(const struct node *n);

/** This node's current Raft term (0 while closing). */
uint64_t node_term(const struct node *n);
/** Id and address of the leader this node knows, or 0 and NULL. */
void node_leader(const struct node *n, uint64_t *id, const char **address);

struct node_status
{
    uint64_t id;
    const char *role; /* "leader", "follower", "candidate", "unavailable" */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index; /* Raft index applied to the store */
    uint64_t leader_id;
};

void node_get_status(const struct node *n, struct node_status *st);

/** Raft index applied on this node (entries, barriers, configurations). */
uint64_t node_applied_index(const struct node *n);

/**
 * On a leader that has applied an entry of its own term: its applied index,
 * which covers every write acknowledged so far (a read index, once a later
 * barrier confirms the leadership). 0 otherwise: a new leader may not have
 * applied what its predecessor acknowledged yet, so use the index applied
 * after the barrier instead.
 */
uint64_t node_read_index(const struct node *n);

/* ---- waiting for an index (reads on followers) ------------------------ */

struct node_wait_req;
typedef void (*node_wait_cb)(struct node_wait_req *req, int status);

struct node_wait_req
{
    void *data;
    /* private */
    node_wait_cb cb;
    uint64_t index;
    struct cairn_queue link;
};

/**
 * Call @p cb (status 0) once this node has applied Raft index @p index, at
 * once (from the next loop iteration) if it has already; UNAVAILABLE when
 * the node closes first. A follower serves a linearizable read by waiting
 * for the read index the leader gave it. Always returns 0.
 */
int node_wait_applied(struct node *n,
                      struct node_wait_req *req,
                      uint64_t index,
                      node_wait_cb cb);

/* ---- membership ------------------------------------------------------- */

struct node_member
{
    uint64_t id;
    const char *raft_address; /* valid until the configuration changes:
                                 copy before returning to the loop */
    const char *role;         /* "voter", "standby" or "spare" */
};

/** Fill up to @p cap members of the configuration this node knows (the
 * latest, possibly uncommitted); returns how many there are. */
unsigned node_members(const struct node *n,
                      struct node_member *out,
                      unsigned cap);

struct node_change_req;
/** @p status 0 or a CAIRN_* code with @p message saying why. */
typedef void (*node_change_cb)(struct node_change_req *req,
                               int status,
                               const char *message);

/* Caller-owned; valid until the callback. */
struct node_change_req
{
    void *data;
    /* private */
    node_change_cb cb;
    struct node *node;
    uint64_t id;
    uint64_t leader; /* transfer: the leader afterwards */
    union {
        struct raft_change change;
        struct raft_transfer transfer;
    } raft;
    struct cairn_queue link;
};

/**
 * Make server @p id at @p raft_address a voter (this node must be the
 * leader): add it as a spare if it is not in the configuration, then
 * promote it, which first catches it up (by snapshot if its log was
 * compacted). Returns 0 and the callback runs, 1 when it is a voter at
 * that address already (no callback), or without the callback:
 * UNAVAILABLE (not the leader, or another change is in progress: retry),
 * ALREADY_EXISTS (the id is a member at another address, or the address
 * belongs to another id), INVALID_ARGUMENT.
 */
int node_add_member(struct node *n,
                    struct node_change_req *req,
                    uint64_t id,
                    const char *raft_address,
                    node_change_cb cb);

/** Remove server @p id from the configuration (leader only; removing the
 * leader itself makes it step down once committed). 0 (callback later),
 * NOT_FOUND, UNAVAILABLE. */
int node_remove_member(struct node *n,
                       struct node_change_req *req,
                       uint64_t id,
                       node_change_cb cb);

/** Hand leadership to voter @p id (0: the most up-to-date voter). The
 * callback reports 0 with req->leader set to the leader afterwards, or
 * UNAVAILABLE if leadership did not move. Errors without the callback:
 * UNAVAILABLE (not the leader), INVALID_ARGUMENT (not a voter, or this
 * node), NOT_FOUND (no other voter). */
int node_transfer_leadership(struct node *n,
                             struct node_change_req *req,
                             uint64_t id,
                             node_change_cb cb);

#endif
