/* A cluster of cairnd processes for integration tests: each node on free
 * loopback ports with its own temporary directory and log, started with
 * --initial-cluster (or --join), killed, stopped and restarted by its stored
 * PID, and inspected through Cairn.NodeStatus and Cairn.Members. */
#ifndef CAIRN_TESTS_CLUSTER_H
#define CAIRN_TESTS_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn.h"
#include "proc.h"

/* Nodes a cluster can hold, the first ones and those that join later. */
#define CLUSTER_MAX 8

struct cluster_options
{
    unsigned n;                   /* first members, started together: 3 */
    unsigned election_timeout_ms; /* --election-timeout: 300 */
    unsigned snapshot_threshold;  /* --snapshot-threshold; 0: cairnd's */
    unsigned snapshot_trailing;   /* --snapshot-trailing (with threshold) */
    const char *root_key_file;    /* --root-key-file for every node (those that
                                     join too), copied; NULL: none */
    const char *previous_root_key_file; /* --previous-root-key-file; NULL */
};

struct cluster_node
{
    uint64_t id;      /* 1-based; nodes[id] */
    bool created;     /* has ports and a directory */
    struct proc proc; /* pid 0 when not running */
    char *dir;        /* temporary directory with data/ and cairnd.log */
    char data[4096];
    char log[4096];
    char api[64];                 /* 127.0.0.1:port, the client endpoint */
    char raft[64];                /* 127.0.0.1:port */
    char join[64];                /* API address it joined through, or "" */
    char root_key[4096];          /* --root-key-file, or "" */
    char previous_root_key[4096]; /* --previous-root-key-file, or "" */
};

struct cluster
{
    struct cluster_options opts;
    unsigned n;                                 /* nodes created: 1..n */
    struct cluster_node nodes[CLUSTER_MAX + 1]; /* by id; [0] unused */
    char initial[1024];                         /* --initial-cluster */
    char endpoints[1024];     /* every created node's API, comma-separated */
    char root_key_file[4096]; /* opts.root_key_file points here */
    char previous_root_key_file[4096]; /* and opts.previous_... here */
};

/* One node's answer to Cairn.NodeStatus. */
struct cluster_status
{
    uint64_t id;
    char state[16]; /* leader, follower, candidate, unavailable */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t leader_id; /* 0 when it knows none */
    uint64_t store_index;
    char digest[65]; /* "" unless asked for */
};

/** Options with the defaults above. */
void cluster_options_default(struct cluster_options *o);

/**
 * Pick ports and directories for @p o->n nodes; start nothing yet. The
 * caller keeps the cluster where its teardown finds it and destroys it
 * with cluster_destroy, even after a failure. Fails the test on error.
 */
struct cluster *cluster_create(const struct cluster_options *o);

/**
 * Start the first @p o->n nodes, then wait (up to 60 s each) until one
 * leader is elected that every node names and every node lists every
 * member's API address (so that it can forward). Fails the test on error.
 */
void cluster_start(struct cluster *c);

/** Stop every running node by its PID (SIGTERM, then SIGKILL after 10 s)
 * and remove the directories (kept, and named on stderr, when
 * CAIRN_TEST_KEEP is set). NULL is allowed. Main thread only. */
void cluster_destroy(struct cluster *c);

/** Whether node @p id has a running process. */
bool cluster_running(const struct cluster *c, uint64_t id);

/**
 * Ask node @p id for Cairn.NodeStatus (with the store digest if @p digest)
 * with one attempt and a deadline of @p timeout_ms. Returns 0, or the
 * client's status when the node does not answer. Safe from any thread.
 */
int cluster_node_status(struct cluster *c,
                        uint64_t id,
                        bool digest,
                        int timeout_ms,
                        struct cluster_status *st);

/**
 * The node that every running node names as leader, once that node also
 * says it is the leader, polling for up to @p timeout_ms. Returns 0 when
 * there is none by then. Safe from any thread.
 */
uint64_t cluster_find_leader(struct cluster *c, int timeout_ms);

/** cluster_find_leader, failing the test (with every node's log tail) if
 * no leader appears within @p timeout_ms. */
uint64_t cluster_wait_leader(struct cluster *c, int timeout_ms);

/** A running node other than @p not (0 for any) that is not the leader
 * @p leader; fails the test if there is none. */
uint64_t cluster_follower(struct cluster *c, uint64_t leader, uint64_t not );

/** Fail the test (with every node's log tail) if a node that should be
 * running has exited: a crash or a sanitizer report. Main thread. */
void cluster_check_alive(struct cluster *c);

/** SIGKILL node @p id and reap it. Safe from any thread. */
void cluster_kill9(struct cluster *c, uint64_t id);

/** SIGTERM node @p id and wait up to 30 s; fails the test unless it exits
 * with status 0 (so a sanitizer report at exit fails it too). */
void cluster_stop(struct cluster *c, uint64_t id);

/** Start node @p id again on its directory and ports, without waiting.
 * Safe from any thread (it fails the test only if fork fails). */
void cluster_spawn(struct cluster *c, uint64_t id);

/** cluster_spawn, then wait up to @p timeout_ms until the node answers
 * Cairn.NodeStatus and names a leader. */
void cluster_restart(struct cluster *c, uint64_t id, int timeout_ms);

/**
 * The root key files node @p id's next start passes (--root-key-file and
 * --previous-root-key-file); NULL or "" for none. The strings are copied.
 * Set before cluster_spawn or cluster_restart, e.g. to roll out a new root
 * key one node at a time.
 */
void cluster_set_root_keys(struct cluster *c,
                           uint64_t id,
                           const char *root,
                           const char *previous);

/**
 * Wait up to @p timeout_ms for node @p id, started to fail, to exit on its
 * own. Returns true and its wait status in *status if it did; false if it
 * is still running then (it keeps running: the caller stops it). Main
 * thread.
 */
bool cluster_wait_exit(struct cluster *c,
                       uint64_t id,
                       int timeout_ms,
                       int *status);

/**
 * Create node n+1 and start it with --join @p via (a member's id; its API
 * address). Does not wait: the caller polls Cairn.Members. Returns the new
 * node's id.
 */
uint64_t cluster_join(struct cluster *c, uint64_t via);

/**
 * Wait up to @p timeout_ms until every running node has applied the same
 * Raft index and holds a store at the same applied index, then check
 * that their digests are equal. Fails the test on a digest mismatch or a
 * timeout. The caller stops writing first. If @p digest is not NULL it
 * gets the common digest.
 */
void cluster_wait_converged(struct cluster *c, int timeout_ms, char *digest);

/**
 * A client of the whole cluster: every created node's endpoint, beginning
 * with node @p first (0: node 1) so that clients can start on different
 * nodes, with @p attempts tries on UNAVAILABLE and a deadline of
 * @p timeout_ms per call. The caller closes it. Fails the test on error
 * (main thread).
 */
struct cairn_client *cluster_client(struct cluster *c,
                                    uint64_t first,
                                    unsigned attempts,
                                    unsigned timeout_ms);

/** A client of node @p id only (its retries go to that node too), with
 * linearizable or stale reads. The caller closes it. Fails the test on
 * error. */
struct cairn_client *cluster_node_client(struct cluster *c,
                                         uint64_t id,
                                         bool stale);

/**
 * Call @p method with the JSON request @p req on @p cl and return the JSON
 * answer (the caller frees it), failing the test with the error otherwise.
 */
char *cluster_call_json(struct cairn_client *cl,
                        const char *method,
                        const char *req);

/** Node @p id's log so far (the caller frees). */
char *cluster_log(struct cluster *c, uint64_t id);

/** Print the last lines of every node's log to stderr (for a failure). */
void cluster_dump_logs(struct cluster *c);

/** Nanoseconds on CLOCK_MONOTONIC. */
int64_t cluster_now_ns(void);

#endif
