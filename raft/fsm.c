/* The FSM adapter: the log entry format, apply through one storage batch per
 * entry, outcomes kept for the leader, and snapshots of the whole store.
 * See fsm.h for the formats. */
#include "fsm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "mp.h"

/* "CRN" and format version 1. */
static const uint8_t entry_magic[4] = {'C', 'R', 'N', 1};

/* One command's outcome, copied out of the store's reused outcome buffer.
 * Strings and the body live in the results' arena, by offset, so that the
 * arena may grow. */
struct fsm_record
{
    int code;          /* OK or the business status */
    bool skipped;      /* the store had applied this index already */
    bool has_body;     /* the outcome had a body (success) */
    uint64_t revision; /* change-feed revision after apply */
    size_t type_off;   /* AWS error name */
    size_t type_len;
    size_t msg_off; /* message */
    size_t msg_len;
    size_t body_off; /* msgpack response body */
    size_t body_len;
};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* ---- building an entry ------------------------------------------------ */

void fsm_entry_init(struct fsm_entry *e)
{
    memset(e, 0, sizeof(*e));
}

void fsm_entry_close(struct fsm_entry *e)
{
    raft_free(e->base);
    fsm_entry_init(e);
}

/* Make room for @p need bytes plus the padding fsm_entry_finish may add, so
 * that finishing never allocates. */
static int entry_reserve(struct fsm_entry *e, size_t need)
{
    size_t cap = e->cap != 0 ? e->cap : 256;
    uint8_t *p;

    need += 7;
    if (need <= e->cap) {
        return 0;
    }
    while (cap < need) {
        cap *= 2;
    }
    p = raft_realloc(e->base, cap);
    if (p == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    e->base = p;
    e->cap = cap;
    return 0;
}

int fsm_entry_add(struct fsm_entry *e, const void *cmd, size_t len)
{
    uint8_t hdr[5];
    size_t hdr_len;
    size_t start =
        e->base != NULL ? e->len : FSM_ENTRY_HEADER + FSM_ARRAY_HEADER;
    int rv;

    /* The payload length is a 32-bit field; stay well below it. */
    if (e->n >= FSM_MAX_COMMANDS || len > UINT32_MAX / 2 ||
        start + 5 + len > UINT32_MAX / 2) {
        return CAIRN_INVALID_ARGUMENT;
    }
    if (len <= UINT8_MAX) {
        hdr[0] = 0xc4;
        hdr[1] = (uint8_t)len;
        hdr_len = 2;
    } else if (len <= UINT16_MAX) {
        hdr[0] = 0xc5;
        hdr[1] = (uint8_t)(len >> 8);
        hdr[2] = (uint8_t)len;
        hdr_len = 3;
    } else {
        hdr[0] = 0xc6;
        put_be32(hdr + 1, (uint32_t)len);
        hdr_len = 5;
    }
    rv = entry_reserve(e, start + hdr_len + len);
    if (rv != 0) {
        return rv;
    }
    memcpy(e->base + start, hdr, hdr_len);
    if (len > 0) {
        memcpy(e->base + start + hdr_len, cmd, len);
    }
    e->len = start + hdr_len + len;
    e->n++;
    e->cmd_bytes += len;
    return 0;
}

int fsm_entry_finish(struct fsm_entry *e, struct raft_buffer *out)
{
    size_t total = (e->len + 7) & ~(size_t)7;

    if (e->base == NULL || e->n == 0) {
        return CAIRN_INTERNAL;
    }
    /* entry_reserve kept room for the padding. */
    memcpy(e->base, entry_magic, sizeof(entry_magic));
    put_be32(e->base + 4, (uint32_t)(e->len - FSM_ENTRY_HEADER));
    e->base[8] = 0xdc; /* array16, whatever the count: the header has a
                          fixed size and 65535 is exactly the limit */
    e->base[9] = (uint8_t)(e->n >> 8);
    e->base[10] = (uint8_t)e->n;
    memset(e->base + e->len, 0, total - e->len);
    out->base = e->base;
    out->len = total;
    fsm_entry_init(e);
    return 0;
}

/* Check an entry and find its commands. Returns 0 with the reader at the
 * first command, or -1 if the entry is not one this version can read. */
static int entry_open(const struct raft_buffer *buf,
                      struct mp_rd *rd,
                      uint32_t *n)
{
    const uint8_t *p = buf->base;
    struct mp_rd scan;
    uint32_t plen;

    if (buf->len < FSM_ENTRY_HEADER + FSM_ARRAY_HEADER ||
        memcmp(p, entry_magic, sizeof(entry_magic)) != 0) {
        return -1;
    }
    plen = get_be32(p + 4);
    if (plen > buf->len - FSM_ENTRY_HEADER ||
        buf->len - FSM_ENTRY_HEADER - plen >= 8) {
        return -1;
    }
    mp_rd_init(rd, p + FSM_ENTRY_HEADER, plen);
    if (mp_rd_array(rd, n) != 0 || *n == 0 || *n > FSM_MAX_COMMANDS) {
        return -1;
    }
    /* Walk the commands once first, so that a malformed entry is refused
     * before anything of it is applied. */
    scan = *rd;
    for (uint32_t i = 0; i < *n; i++) {
        struct mp_str cmd;
        bool is_bin;
        if (mp_rd_bytes(&scan, &cmd, &is_bin) != 0 || !is_bin) {
            return -1;
        }
    }
    return scan.left == 0 ? 0 : -1;
}

/* ---- outcomes for the leader ------------------------------------------ */

void fsm_results_init(struct fsm_results *r)
{
    memset(r, 0, sizeof(*r));
    cairn_queue_init(&r->link);
    buf_init(&r->arena);
}

static void results_reset(struct fsm_results *r)
{
    free(r->records);
    r->records = NULL;
    buf_close(&r->arena);
    r->applied = false;
    r->lost = false;
}

void fsm_expect(struct fsm *f,
                struct fsm_results *r,
                uint64_t index,
                unsigned n)
{
    results_reset(r);
    r->index = index;
    r->n = n;
    r->mismatch = false;
    cairn_queue_push(&f->expected, &r->link);
}

void fsm_forget(struct fsm_results *r)
{
    cairn_queue_remove(&r->link);
    results_reset(r);
}

static struct fsm_results *find_expected(struct fsm *f, uint64_t index)
{
    /* At most max_inflight entries are registered: a scan is enough. */
    for (struct cairn_queue *q = f->expected.next; q != &f->expected;
         q = q->next) {
        struct fsm_results *r = cairn_queue_data(q, struct fsm_results, link);
        if (r->index == index) {
            return r;
        }
    }
    return NULL;
}

static size_t bounded_len(const char *s, size_t max)
{
    const char *end = memchr(s, '\0', max);
    return end != NULL ? (size_t)(end - s) : max;
}

static int record(struct fsm_results *r, unsigned i, const struct sm_outcome *o)
{
    struct fsm_record *rec = &r->records[i];
    struct buf *a = &r->arena;

    memset(rec, 0, sizeof(*rec));
    rec->code = o->err.code;
    rec->skipped = o->skipped;
    rec->revision = o->revision;
    rec->type_len = bounded_len(o->err.type, sizeof(o->err.type) - 1);
    rec->msg_len = bounded_len(o->err.msg, sizeof(o->err.msg) - 1);
    rec->type_off = a->len;
    buf_append(a, o->err.type, rec->type_len);
    rec->msg_off = a->len;
    buf_append(a, o->err.msg, rec->msg_len);
    if (o->body != NULL) {
        rec->has_body = true;
        rec->body_off = a->len;
        rec->body_len = o->body_len;
        buf_append(a, o->body, o->body_len);
    }
    return a->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

int fsm_results_get(const struct fsm_results *r,
                    unsigned i,
                    struct sm_outcome *out)
{
    const struct fsm_record *rec;

    memset(out, 0, sizeof(*out));
    if (r->lost) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (!r->applied || i >= r->n) {
        return CAIRN_INTERNAL;
    }
    rec = &r->records[i];
    out->err.code = rec->code;
    if (rec->type_len > 0) {
        memcpy(out->err.type, r->arena.data + rec->type_off, rec->type_len);
    }
    if (rec->msg_len > 0) {
        memcpy(out->err.msg, r->arena.data + rec->msg_off, rec->msg_len);
    }
    if (rec->has_body) {
        /* A zero-length body still gets a non-NULL pointer: NULL means
         * "error" to the caller. */
        out->body = rec->body_len > 0 ? r->arena.data + rec->body_off
                                      : (const uint8_t *)"";
        out->body_len = rec->body_len;
    }
    out->skipped = rec->skipped;
    out->revision = rec->revision;
    return 0;
}

/* ---- the FSM ---------------------------------------------------------- */

/* A local fault leaves the entry unapplied: libraft retries it at the next
 * commit. Say why, because nothing else will. */
static int local_fault(struct fsm *f, uint64_t index, int raft_rv)
{
    log_error("raft: cannot apply entry %llu: %s (%s); will retry",
              (unsigned long long)index, f->fault.msg,
              cairn_status_name(f->fault.code));
    return raft_rv;
}

/*
 * Apply one entry: every command in one storage batch, each at its own
 * composite index. libraft 0.22.1 (src/legacy.c, legacyApply) applies the
 * entry at index last_applied + 1 and sets last_applied only after apply
 * returns 0; barrier and configuration entries advance it too. So the
 * entry's own index is raft_last_applied() + 1 here.
 */
static int fsm_apply(struct raft_fsm *rf,
                     const struct raft_buffer *buf,
                     void **result)
{
    struct fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    struct fsm_results *r;
    struct mp_rd rd;
    uint32_t n;
    int rv;

    *result = NULL;
    if (entry_open(buf, &rd, &n) != 0) {
        /* Only Cairn writes entries, behind libraft's checksums: this is a
         * newer format or a bug. Stopping here is safe; skipping it would
         * let this replica diverge. */
        cairn_error_set(&f->fault, CAIRN_INTERNAL, NULL,
                        "entry is not in Cairn's format version 1");
        return local_fault(f, index, RAFT_MALFORMED);
    }

    r = find_expected(f, index);
    if (r != NULL) {
        results_reset(r);
        if (r->n != n) {
            /* Another leader's entry took the index of ours. */
            r->mismatch = true;
            r = NULL;
        } else {
            r->records = calloc(n, sizeof(*r->records));
            if (r->records == NULL) {
                r->lost = true;
            }
        }
    }

    rv = sm_batch_begin(f->store, &f->fault);
    if (rv != 0) {
        return local_fault(f, index, RAFT_IOERR);
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct sm_outcome *o;
        struct mp_str cmd;
        bool is_bin;

        mp_rd_bytes(&rd, &cmd, &is_bin); /* checked by entry_open */
        rv = sm_apply(f->store, fsm_store_index(index, i), cmd.p, cmd.n, &o);
        if (rv != 0) {
            /* sm_apply aborted the whole batch. */
            f->fault = o->err;
            if (r != NULL) {
                results_reset(r);
            }
            return local_fault(
                f, index,
                rv == CAIRN_RESOURCE_EXHAUSTED ? RAFT_NOSPACE : RAFT_IOERR);
        }
        if (f->observe != NULL && !o->skipped) {
            f->observe(f->observe_data, fsm_store_index(index, i), o);
        }
        /* Bookkeeping for the leader's callers must not change what is
         * applied (followers keep none): a lost outcome is reported to its
         * caller, the command stays applied. */
        if (r != NULL && !r->lost && record(r, i, o) != 0) {
            r->lost = true;
        }
    }
    rv = sm_batch_commit(f->store, &f->fault);
    if (rv != 0) {
        if (r != NULL) {
            results_reset(r);
        }
        return local_fault(f, index, RAFT_IOERR);
    }
    if (r != NULL) {
        r->applied = !r->lost;
        *result = r;
    }
    f->log_entries++;
    f->log_bytes += buf->len;
    if (f->log_bytes_max > 0 && f->log_bytes >= f->log_bytes_max &&
        f->threshold > 0) {
        /* libraft takes a snapshot after this apply when last_applied minus
         * its snapshot's index reaches the threshold; that gap is at least
         * the entries counted here. */
        raft_set_snapshot_threshold(f->raft, f->log_entries < f->threshold
                                                 ? (unsigned)f->log_entries
                                                 : f->threshold);
    }
    return 0;
}

/* A snapshot starts: the next one is counted from here, and the entries it
 * keeps are chosen by size (fsm_snapshot_limits). */
static void snapshot_taken(struct fsm *f)
{
    if (f->threshold == 0) {
        return; /* no limits set */
    }
    if (f->trailing_bytes > 0 && f->log_entries > 0 && f->log_bytes > 0) {
        uint64_t mean = f->log_bytes / f->log_entries;
        uint64_t keep = f->trailing_bytes / (mean > 0 ? mean : 1);
        uint64_t least = f->trailing < 64 ? f->trailing : 64;

        keep = keep < least ? least : keep;
        keep = keep > f->trailing ? f->trailing : keep;
        raft_set_snapshot_trailing(f->raft, (unsigned)keep);
    }
    raft_set_snapshot_threshold(f->raft, f->threshold);
    f->log_entries = 0;
    f->log_bytes = 0;
}

void fsm_snapshot_limits(struct fsm *f,
                         unsigned threshold,
                         unsigned trailing,
                         uint64_t log_bytes,
                         uint64_t trailing_bytes)
{
    f->threshold = threshold;
    f->trailing = trailing;
    f->log_bytes_max = log_bytes;
    f->trailing_bytes = trailing_bytes;
}

static int write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t len)
{
    uint8_t *b = p;
    off_t off = 0;
    while (len > 0) {
        ssize_t r = pread(fd, b, len, off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        b += r;
        off += r;
        len -= (size_t)r;
    }
    return 0;
}

/*
 * Snapshot: LMDB's compacting copy of the store, read whole into one
 * raft_malloc'd buffer (libraft keeps snapshots whole in memory). The copy
 * runs in the calling thread and reads through its own LMDB read txn, so
 * it may run beside apply; it then holds the state at some index at or
 * after the moment it started, and carries that applied index itself.
 */
int fsm_snapshot_copy(struct fsm *f,
                      struct raft_buffer *out,
                      struct cairn_error *err)
{
    void *base = NULL;
    off_t size;
    int fd;
    int rv;

    fd = memfd_create("cairn-snapshot", MFD_CLOEXEC);
    if (fd < 0) {
        return cairn_error_set(err, CAIRN_INTERNAL, NULL, "memfd_create: %s",
                               strerror(errno));
    }
    rv = store_snapshot_write(f->store, fd, err);
    if (rv != 0) {
        goto out;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || lseek(fd, 0, SEEK_SET) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "snapshot size: %s",
                             size < 0 ? strerror(errno) : "empty");
        goto out;
    }
    base = raft_malloc((size_t)size);
    if (base == NULL) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory for a %lld-byte snapshot",
                             (long long)size);
        goto out;
    }
    if (read_all(fd, base, (size_t)size) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "read snapshot: %s",
                             strerror(errno));
        raft_free(base);
        goto out;
    }
    out->base = base;
    out->len = (size_t)size;
out:
    close(fd);
    return rv;
}

/*
 * libraft's snapshot callback. Synchronous mode (the simulation's fixture):
 * the copy is made here, on the loop, with last_applied == commit_index.
 * Deferred mode (the node's raft_uv): a placeholder is returned at once and
 * the node's snapshot_put wrapper makes the copy in a worker thread before
 * libraft's own put runs (node.c), so taking a snapshot of a large store
 * does not stall the loop.
 */
static int fsm_snapshot(struct raft_fsm *rf,
                        struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct fsm *f = rf->data;
    struct raft_buffer *array = raft_malloc(sizeof(*array));
    int rv;

    if (array == NULL) {
        return RAFT_NOMEM;
    }
    snapshot_taken(f);
    if (f->deferred) {
        array[0].base = raft_malloc(8);
        array[0].len = 8;
        if (array[0].base == NULL) {
            raft_free(array);
            return RAFT_NOMEM;
        }
        memset(array[0].base, 0, 8);
        f->placeholder = array[0].base;
    } else {
        rv = fsm_snapshot_copy(f, &array[0], &f->fault);
        if (rv != 0) {
            raft_free(array);
            log_error("raft: snapshot failed: %s", f->fault.msg);
            return rv == CAIRN_RESOURCE_EXHAUSTED ? RAFT_NOMEM : RAFT_IOERR;
        }
    }
    *bufs = array;
    *n_bufs = 1;
    return 0;
}

static const char ref_magic[8] = {'C', 'R', 'N', 'R', 'E', 'F', '0', '1'};

int fsm_snapshot_ref(struct fsm *f,
                     uint64_t index,
                     struct raft_buffer *out,
                     struct cairn_error *err)
{
    uint8_t *p;
    int rv;

    /* The index was read first: everything committed by then is covered
     * by the sync. */
    rv = store_sync(f->store, err);
    if (rv != 0) {
        return rv;
    }
    p = raft_malloc(FSM_REF_LEN);
    if (p == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    memcpy(p, ref_magic, sizeof(ref_magic));
    be64_put(p + 8, index);
    out->base = p;
    out->len = FSM_REF_LEN;
    return 0;
}

bool fsm_snapshot_is_ref(const struct raft_buffer *bufs, unsigned n)
{
    return n == 1 && bufs != NULL && bufs[0].base != NULL &&
           bufs[0].len == FSM_REF_LEN &&
           memcmp(bufs[0].base, ref_magic, sizeof(ref_magic)) == 0;
}

bool fsm_snapshot_is_placeholder(const struct fsm *f,
                                 const struct raft_buffer *bufs,
                                 unsigned n)
{
    return f->deferred && n == 1 && bufs != NULL && bufs[0].base != NULL &&
           bufs[0].base == f->placeholder;
}

/* With snapshot_finalize set, libraft never frees what snapshot gave it. */
static int fsm_snapshot_finalize(struct raft_fsm *rf,
                                 struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    (void)rf;
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            raft_free((*bufs)[i].base);
        }
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/*
 * Restore: libraft calls this at start with its newest snapshot, and when a
 * leader installs one. The store is replaced only when the snapshot is newer
 * than what it holds (composite indexes compare like Raft indexes). On
 * success the buffer is ours to free; on failure libraft keeps it.
 */
/* A restore succeeded: the buffer is ours to free, and the log restarts
 * after the snapshot's index. */
static void restore_done(struct fsm *f, struct raft_buffer *buf)
{
    raft_free(buf->base);
    buf->base = NULL;
    buf->len = 0;
    f->log_entries = 0;
    f->log_bytes = 0;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct fsm *f = rf->data;
    bool restored = false;
    uint64_t snap = 0;
    int fd;
    int rv;

    if (fsm_snapshot_is_ref(buf, 1)) {
        uint64_t want = be64_get((const uint8_t *)buf->base + 8), have = 0;

        if (store_applied_index(f->store, &have, &f->fault) != 0) {
            goto err;
        }
        if (have < want) {
            cairn_error_set(
                &f->fault, CAIRN_INTERNAL, NULL,
                "the snapshot at raft index %llu stands for this node's "
                "store, which holds only index %llu: the store was lost or "
                "replaced; remove the node's data directory and join it to "
                "the cluster again",
                (unsigned long long)fsm_raft_index(want),
                (unsigned long long)fsm_raft_index(have));
            goto err;
        }
        restore_done(f, buf);
        return 0;
    }
    fd = memfd_create("cairn-restore", MFD_CLOEXEC);
    if (fd < 0) {
        cairn_error_set(&f->fault, CAIRN_INTERNAL, NULL, "memfd_create: %s",
                        strerror(errno));
        goto err;
    }
    if (write_all(fd, buf->base, buf->len) != 0 ||
        lseek(fd, 0, SEEK_SET) != 0) {
        cairn_error_set(&f->fault, CAIRN_INTERNAL, NULL, "stage snapshot: %s",
                        strerror(errno));
        goto err_after_fd;
    }
    rv = store_restore(f->store, fd, true, &restored, &snap, &f->fault);
    if (rv != 0) {
        goto err_after_fd;
    }
    if (restored) {
        log_info(
            "raft: store restored from a snapshot at raft index %llu "
            "(%zu bytes)",
            (unsigned long long)fsm_raft_index(snap), buf->len);
    }
    close(fd);
    restore_done(f, buf);
    return 0;

err_after_fd:
    close(fd);
err:
    log_error("raft: restore failed: %s", f->fault.msg);
    return RAFT_IOERR;
}

void fsm_init(struct fsm *f,
              struct raft_fsm *rf,
              struct store *store,
              struct raft *raft)
{
    memset(f, 0, sizeof(*f));
    f->store = store;
    f->raft = raft;
    cairn_queue_init(&f->expected);
    memset(rf, 0, sizeof(*rf));
    rf->version = 3;
    rf->data = f;
    rf->apply = fsm_apply;
    rf->snapshot = fsm_snapshot;
    rf->restore = fsm_restore;
    rf->snapshot_finalize = fsm_snapshot_finalize;
    rf->snapshot_async = NULL;
}

void fsm_close(struct fsm *f)
{
    while (!cairn_queue_empty(&f->expected)) {
        struct cairn_queue *q = cairn_queue_head(&f->expected);
        fsm_forget(cairn_queue_data(q, struct fsm_results, link));
    }
}
