/* The LMDB environment behind the Parameter Store: open, close, snapshots.
 * Storage knows nothing of Raft, libuv or sockets. */
#ifndef CAIRN_STORAGE_STORE_H
#define CAIRN_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "status.h"

/* Limits applied by the state machine. Every replica must use the same
 * values: they decide deterministic outcomes. Defaults follow AWS. */
struct store_limits
{
    uint64_t standard_params;    /* 10,000 */
    uint64_t advanced_params;    /* 100,000 */
    uint32_t standard_value;     /* 4096 characters */
    uint32_t advanced_value;     /* 8192 characters */
    uint32_t versions;           /* 100 versions kept per parameter */
    uint32_t labels_per_version; /* 10 */
    uint32_t tags;               /* 50 tags per resource */
    uint64_t feed_retain;        /* change-feed rows kept: 1,000,000 */
    uint64_t session_ttl_ms;     /* a client session unused this long (by
                                    command time) is forgotten: 24 h */
    uint32_t scan_budget;        /* keys examined per page before a short
                                    page is returned: 2,000 */
};

struct store_options
{
    size_t map_size;      /* LMDB map size in bytes (address space): 8 GiB */
    bool no_sync;         /* MDB_NOSYNC: the Raft log is the durable record */
    unsigned max_readers; /* LMDB reader slots: 256 */
    struct store_limits limits;
    struct names_arn arn; /* namespace of ARNs in and out */
};

struct store;

/** Fill @p opts with the defaults above. */
void store_options_default(struct store_options *opts);

/**
 * Open (creating if needed) the store in directory @p dir, which must
 * exist. @p opts may be NULL for defaults; its strings are copied.
 * On success the caller closes with store_close. Errors: NOT_FOUND (no such
 * directory), FAILED_PRECONDITION (already open in this process),
 * DATA_LOSS (corrupt file), RESOURCE_EXHAUSTED, INTERNAL.
 */
int store_open(const char *dir,
               const struct store_options *opts,
               struct store **out,
               struct cairn_error *err);

/** Close the store (an open batch is aborted). NULL is allowed. */
void store_close(struct store *s);

/** The options the store runs with (borrowed, valid until close). */
const struct store_options *store_get_options(const struct store *s);

/** The highest Raft index applied (0 for a new store). */
int store_applied_index(struct store *s,
                        uint64_t *index,
                        struct cairn_error *err);

/**
 * Make every committed transaction durable, even with no_sync (LMDB's
 * forced flush). Safe from another thread than the one applying: commits
 * made meanwhile may or may not be included. Errors: INTERNAL (I/O).
 */
int store_sync(struct store *s, struct cairn_error *err);

/** The newest change-feed revision (0 when nothing has changed). */
int store_revision(struct store *s, uint64_t *rev, struct cairn_error *err);

/**
 * Write a consistent, compacted copy of the whole store to @p fd (LMDB's
 * own file format, readable by store_restore). The copy reflects the last
 * committed state; an open batch is not included. Runs in the calling
 * thread, which may be another thread than the one applying: a restore
 * waits for the copy to finish. Errors: INTERNAL (I/O).
 */
int store_snapshot_write(struct store *s, int fd, struct cairn_error *err);

/**
 * Replace the whole contents of the store with a snapshot read from @p fd.
 * The snapshot is written to a temporary file and checked (it must open as
 * a Cairn store) before it atomically replaces the current file, so a bad
 * snapshot leaves the store as it was. If @p skip_if_older and the store's
 * applied index is already at or past the snapshot's, nothing changes and
 * *restored is false. Errors: INVALID_ARGUMENT (not a Cairn store),
 * FAILED_PRECONDITION (batch open), INTERNAL (I/O).
 */
int store_restore(struct store *s,
                  int fd,
                  bool skip_if_older,
                  bool *restored,
                  uint64_t *snapshot_index,
                  struct cairn_error *err);

/**
 * SHA-256 over the whole logical contents (every database, every key and
 * value, in key order) with the applied index they reflect: two replicas
 * at the same applied index must have the same digest. Reads a consistent
 * snapshot; cost is linear in the store's size.
 */
int store_digest(struct store *s,
                 uint8_t digest[32],
                 uint64_t *applied,
                 struct cairn_error *err);

/** Bytes used by the store's data file (last page used x page size). */
int store_size(struct store *s, uint64_t *bytes, struct cairn_error *err);

#endif
