/* A Cairn node: libraft with its libuv I/O driving the storage state
 * machine. One code path for one voter or many. Knows nothing of the API:
 * it moves opaque commands and reports their outcomes. */
#ifndef CAIRN_RAFT_NODE_H
#define CAIRN_RAFT_NODE_H

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
    unsigned snapshot_threshold;   /* entries between snapshots: 8192 */
    unsigned snapshot_trailing;    /* entries kept after one: 2048 */
    unsigned max_inflight;         /* group commit: entries in flight: 2 */
    size_t max_batch_bytes; /* bytes of commands packed per entry: 1 MiB */
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
 * Start: bootstrap a one-voter configuration on a fresh directory, restore
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

#endif
