/* The FSM adapter, internal to raft/: the log entry format, the libraft FSM
 * that applies entries to the storage state machine, snapshots, and the
 * outcomes a leader collects for the commands it proposed.
 *
 * Log entry format (version 1), written by fsm_entry_* and read by apply:
 *
 *   offset 0  4 bytes  magic "CRN" then the format version, 1
 *   offset 4  4 bytes  big-endian length P of the payload
 *   offset 8  P bytes  payload: a msgpack array16 (0xdc, 2-byte count) of N
 *                      bin objects, one sm command each, 1 <= N <= 65535
 *   then 0-7 zero bytes, so that the entry length is a multiple of 8
 *
 * The explicit length keeps the padding out of the msgpack decoder, and the
 * version byte lets a node refuse (and not misread) an entry written by a
 * newer format. libraft's disk format needs the multiple of 8 (short
 * entries were lost at restart in 0.15: shared/reference, section 0.1).
 *
 * Index mapping: command i (from 0) of the entry at Raft index R is applied
 * to the store at the composite index (R << 16) | (i + 1), so that the
 * store's per-index idempotence works per command, and a store's applied
 * index >> 16 is the Raft index of the last entry it applied. */
#ifndef CAIRN_RAFT_FSM_H
#define CAIRN_RAFT_FSM_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "queue.h"
#include "sm.h"
#include "status.h"
#include "store.h"

/* Commands per entry: the composite index keeps 16 bits for the position,
 * and position 0 is unused, so that (R << 16) is below every command of R. */
#define FSM_MAX_COMMANDS 65535u

/* Bytes of the entry header and of the msgpack array16 header after it. */
#define FSM_ENTRY_HEADER 8u
#define FSM_ARRAY_HEADER 3u

/** Composite store index of command @p pos (from 0) of entry @p raft_index. */
static inline uint64_t fsm_store_index(uint64_t raft_index, unsigned pos)
{
    return (raft_index << 16) | (uint64_t)(pos + 1);
}

/** Raft index of the entry a composite store index belongs to. */
static inline uint64_t fsm_raft_index(uint64_t store_index)
{
    return store_index >> 16;
}

/* ---- building an entry ------------------------------------------------ */

/* A log entry being filled with commands. The buffer comes from
 * raft_malloc, because raft_apply takes it over (STYLE 2.5 rule 5). */
struct fsm_entry
{
    uint8_t *base;    /* raft_malloc'd; NULL until the first command */
    size_t len;       /* bytes written, headers included */
    size_t cap;       /* bytes allocated */
    unsigned n;       /* commands packed */
    size_t cmd_bytes; /* sum of the commands' lengths */
};

void fsm_entry_init(struct fsm_entry *e);
/** Append a copy of @p cmd. 0, RESOURCE_EXHAUSTED (out of memory) or
 * INVALID_ARGUMENT (already FSM_MAX_COMMANDS commands, or too large). */
int fsm_entry_add(struct fsm_entry *e, const void *cmd, size_t len);
/**
 * Write the headers and the padding and move the buffer to @p out: the
 * caller passes it to raft_apply, or frees it with raft_free. The entry is
 * empty afterwards. 0 or RESOURCE_EXHAUSTED. The entry must hold at least
 * one command.
 */
int fsm_entry_finish(struct fsm_entry *e, struct raft_buffer *out);
/** Free the buffer of an entry that was not finished. */
void fsm_entry_close(struct fsm_entry *e);

/* ---- outcomes for the leader ------------------------------------------ */

struct fsm_record;

/*
 * The outcomes of the commands of one entry this node proposed as leader.
 * The node registers it with fsm_expect once raft_apply has given the entry
 * its index; apply finds it by that index and copies each command's outcome
 * into it, because the store's outcome buffer is reused by the next command
 * and libraft 0.22 fires raft_apply callbacks later (from its uv check and
 * prepare handles), after it may have applied more entries. Followers
 * register nothing and keep nothing. The memory belongs to whoever embeds
 * the struct (the node's batch); fsm_forget releases what apply allocated.
 */
struct fsm_results
{
    struct cairn_queue link;    /* in fsm->expected while registered */
    uint64_t index;             /* Raft index of the entry */
    unsigned n;                 /* commands the entry carries */
    bool applied;               /* apply ran at index with n commands */
    bool mismatch;              /* the entry applied at index had another
                                   number of commands: not ours */
    bool lost;                  /* out of memory while recording */
    struct fsm_record *records; /* n records, after apply */
    struct buf arena;           /* error names, messages and bodies */
};

void fsm_results_init(struct fsm_results *r);

/**
 * Fill @p out with the outcome of command @p i (borrowed from @p r: body
 * valid until fsm_forget). 0, or RESOURCE_EXHAUSTED (outcome lost for lack
 * of memory: the command was applied), INTERNAL (no outcome recorded).
 */
int fsm_results_get(const struct fsm_results *r,
                    unsigned i,
                    struct sm_outcome *out);

/* ---- the FSM ---------------------------------------------------------- */

struct fsm
{
    struct store *store;         /* borrowed */
    struct raft *raft;           /* borrowed: for raft_last_applied */
    struct cairn_queue expected; /* fsm_results awaiting their entry */
    struct cairn_error fault;    /* the last local fault, for diagnosis */
    bool deferred;               /* snapshots copied later (fsm_snapshot) */
    /* Called with every command's outcome as it is applied (not when
     * skipped), on every replica: the simulation compares them. May be
     * called again for an index whose batch failed to commit. */
    void (*observe)(void *data,
                    uint64_t store_index,
                    const struct sm_outcome *o);
    void *observe_data;
    void *placeholder; /* the last deferred snapshot's stand-in */
    /* Snapshot policy by size (fsm_snapshot_limits). */
    unsigned threshold, trailing; /* libraft's, in entries */
    uint64_t log_bytes_max, trailing_bytes;
    uint64_t log_entries, log_bytes; /* applied since the last snapshot */
};

/**
 * Set up @p f and fill the libraft FSM @p rf (version 3) to apply entries
 * to @p store. @p raft is the instance @p rf is given to; it is only read
 * (raft_last_applied) from inside the callbacks.
 */
void fsm_init(struct fsm *f,
              struct raft_fsm *rf,
              struct store *store,
              struct raft *raft);
/** Forget every registered results struct. */
void fsm_close(struct fsm *f);

/**
 * Snapshot by size as well as by count: once the entries applied since the
 * last snapshot hold @p log_bytes (0: never), lower libraft's threshold so
 * that it takes one now; each snapshot then keeps as trailing entries
 * about @p trailing_bytes' worth at their mean size, at most @p trailing
 * (and at least 64, or @p trailing if smaller). @p threshold and
 * @p trailing are what the node set in libraft.
 */
void fsm_snapshot_limits(struct fsm *f,
                         unsigned threshold,
                         unsigned trailing,
                         uint64_t log_bytes,
                         uint64_t trailing_bytes);

/* ---- snapshots -------------------------------------------------------- */

/**
 * Copy the whole store into a raft_malloc'd buffer @p out (LMDB's
 * compacting copy). Safe on a worker thread beside apply: the copy holds the
 * state at an index at or after its start, and its own applied index.
 * Errors: INTERNAL, RESOURCE_EXHAUSTED.
 */
int fsm_snapshot_copy(struct fsm *f,
                      struct raft_buffer *out,
                      struct cairn_error *err);

/**
 * Deferred snapshots: libraft's snapshot callback then returns an 8-byte
 * placeholder at once and the owner of the raft_io fills it with
 * fsm_snapshot_copy off the loop before the snapshot is written (the node
 * wraps raft_uv's snapshot_put). Off by default (the fixture writes what
 * it is given, so the copy must be made at once there).
 */
static inline void fsm_defer_snapshots(struct fsm *f, bool on)
{
    f->deferred = on;
}

/*
 * Reference snapshots. The store is itself durable once synced, so a
 * snapshot taken to compact the log need not copy it: it can be a 16-byte
 * reference, "CRNREF01" and the store's applied index (composite,
 * big-endian) read before a forced sync of the store. Restoring one checks
 * that the store still holds at least that index, and fails otherwise (the
 * store was lost: the node must be re-joined). A leader sending such a
 * snapshot to a follower replaces it with a full copy at that moment (the
 * node wraps raft_uv's snapshot_get), which holds that index or more.
 */
#define FSM_REF_LEN 16

/**
 * Sync the store and fill @p out (raft_malloc'd) with a reference to it at
 * @p index, the store's applied index read on the loop thread before (the
 * store's read helpers share one cached transaction with the loop's
 * queries, so they are not for worker threads). The sync itself is safe
 * on a worker thread beside apply. Errors: INTERNAL, RESOURCE_EXHAUSTED.
 */
int fsm_snapshot_ref(struct fsm *f,
                     uint64_t index,
                     struct raft_buffer *out,
                     struct cairn_error *err);

/** True if @p bufs is a reference snapshot (fsm_snapshot_ref). */
bool fsm_snapshot_is_ref(const struct raft_buffer *bufs, unsigned n);

/** True if @p bufs is the placeholder the last deferred snapshot made. */
bool fsm_snapshot_is_placeholder(const struct fsm *f,
                                 const struct raft_buffer *bufs,
                                 unsigned n);

/** Register @p r to collect the outcomes of the entry at @p index with
 * @p n commands. */
void fsm_expect(struct fsm *f,
                struct fsm_results *r,
                uint64_t index,
                unsigned n);
/** Unregister @p r (if registered) and free what apply recorded. */
void fsm_forget(struct fsm_results *r);

/* ---- status mapping (defined in node.c) ------------------------------- */

/**
 * Translate a libraft error code to a CAIRN_* status at once: raft codes
 * overlap gRPC's (RAFT_NOMEM is 1, gRPC CANCELLED) and must never leak.
 */
int node_status_from_raft(int rv);

#endif
