#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

void store_options_default(struct store_options *o)
{
    memset(o, 0, sizeof(*o));
    o->map_size = (size_t)8 << 30;
    o->no_sync = false;
    o->max_readers = 256;
    o->limits.standard_params = 10000;
    o->limits.advanced_params = 100000;
    o->limits.standard_value = 4096;
    o->limits.advanced_value = 8192;
    o->limits.versions = 100;
    o->limits.labels_per_version = 10;
    o->limits.tags = 50;
    o->limits.feed_retain = 1000000;
    o->limits.session_ttl_ms = 24ULL * 3600 * 1000;
    o->limits.scan_budget = 2000;
    o->arn.partition = "aws";
    o->arn.region = "local";
    o->arn.account = "000000000000";
}

const struct store_options *store_get_options(const struct store *s)
{
    return &s->opts;
}

int store_status_from_mdb(int rc, struct cairn_error *err, const char *what)
{
    int code;
    switch (rc) {
        case 0:
            return 0;
        case MDB_NOTFOUND:
            code = CAIRN_NOT_FOUND;
            break;
        case MDB_KEYEXIST:
            code = CAIRN_ALREADY_EXISTS;
            break;
        case MDB_BAD_VALSIZE:
            code = CAIRN_INVALID_ARGUMENT;
            break;
        case MDB_MAP_FULL:
        case MDB_TXN_FULL:
        case MDB_READERS_FULL:
        case MDB_DBS_FULL:
        case ENOMEM:
        case ENOSPC:
            code = CAIRN_RESOURCE_EXHAUSTED;
            break;
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
        case MDB_PANIC:
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
            code = CAIRN_DATA_LOSS;
            break;
        default:
            code = CAIRN_INTERNAL;
            break;
    }
    return cairn_error_set(err, code, "InternalServerError", "%s: lmdb: %s",
                           what, mdb_strerror(rc));
}

int store_meta_get_u64(MDB_txn *txn,
                       MDB_dbi dbi,
                       const char *key,
                       uint64_t def,
                       uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key};
    MDB_val d;
    int rc = mdb_get(txn, dbi, &k, &d);
    if (rc == MDB_NOTFOUND) {
        *v = def;
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (d.mv_size != 8) {
        return MDB_CORRUPTED;
    }
    *v = be64_get(d.mv_data);
    return 0;
}

int store_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
    uint8_t b[8];
    MDB_val k = {strlen(key), (void *)key};
    MDB_val d = {8, b};
    be64_put(b, v);
    return mdb_put(txn, dbi, &k, &d, 0);
}

static int open_dbis(struct store *s, MDB_txn *txn, unsigned flags)
{
    static const char *const names[] = {"params",       "versions", "labels",
                                        "feed",         "meta",     "sessions",
                                        "session_times"};
    MDB_dbi *slots[] = {&s->params, &s->versions, &s->labels,       &s->feed,
                        &s->meta,   &s->sessions, &s->session_times};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int rc = mdb_dbi_open(txn, names[i], flags, slots[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Open the LMDB environment of s->dir and make sure the format is ours. */
static int env_open(struct store *s, struct cairn_error *err)
{
    MDB_txn *txn = NULL;
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    uint64_t format;
    int rc;

    /* Without a sync per commit, write through the map: no pwrite copy of
     * every dirty page (docs/storage.md); store_reserve guards the disk. */
    s->writemap = s->opts.no_sync;
    s->reserved = 0;
    if (s->opts.no_sync) {
        flags |= MDB_NOSYNC | MDB_WRITEMAP;
    }
    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        return store_status_from_mdb(rc, err, "mdb_env_create");
    }
    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, s->opts.max_readers);
    rc = mdb_env_set_mapsize(s->env, s->opts.map_size);
    if (rc == 0) {
        rc = mdb_env_open(s->env, s->dir, flags, 0600);
    }
    if (rc != 0) {
        store_status_from_mdb(rc, err, "open store");
        goto err_after_env;
    }
    {
        MDB_stat st;
        s->psize = mdb_env_stat(s->env, &st) == 0 ? st.ms_psize : 4096;
    }
    if (store_reserve(s, err) != 0) {
        goto err_after_env;
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        store_status_from_mdb(rc, err, "begin");
        goto err_after_env;
    }
    rc = open_dbis(s, txn, MDB_CREATE);
    if (rc == 0) {
        rc = store_meta_get_u64(txn, s->meta, META_FORMAT, 0, &format);
    }
    if (rc == 0 && format == 0) {
        format = STORE_FORMAT;
        rc = store_meta_put_u64(txn, s->meta, META_FORMAT, format);
    }
    if (rc != 0) {
        store_status_from_mdb(rc, err, "initialise store");
        goto err_after_txn;
    }
    if (format != STORE_FORMAT) {
        cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                        "store format %llu is not supported (want %d)",
                        (unsigned long long)format, STORE_FORMAT);
        goto err_after_txn;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        store_status_from_mdb(rc, err, "commit");
        goto err_after_env;
    }
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
err_after_env:
    mdb_env_close(s->env);
    s->env = NULL;
    return err != NULL && err->code != 0 ? err->code : CAIRN_INTERNAL;
}

static void env_close(struct store *s)
{
    if (s->batch != NULL) {
        mdb_txn_abort(s->batch);
        s->batch = NULL;
    }
    if (s->rtxn != NULL) {
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
    }
    if (s->env != NULL) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
}

static int check_limits(const struct store_limits *l, struct cairn_error *err)
{
    if (l->tags == 0 || l->tags > STORE_MAX_TAGS ||
        l->labels_per_version == 0 ||
        l->labels_per_version > STORE_MAX_LABELS || l->versions == 0 ||
        l->standard_value == 0 || l->advanced_value < l->standard_value ||
        l->scan_budget == 0 || l->feed_retain == 0 || l->session_ttl_ms == 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "store limits out of range (tags 1..%d, labels "
                               "1..%d, versions >= 1, budgets >= 1)",
                               STORE_MAX_TAGS, STORE_MAX_LABELS);
    }
    return 0;
}

int store_open(const char *dir,
               const struct store_options *opts,
               struct store **out,
               struct cairn_error *err)
{
    struct store *s;
    char *lock_path = NULL;
    struct stat st;
    int rv;

    *out = NULL;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return cairn_error_set(err, CAIRN_NOT_FOUND, NULL,
                               "store directory %s does not exist", dir);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    s->lock_fd = -1;
    pthread_mutex_init(&s->copy_lock, NULL);
    buf_init(&s->out);
    buf_init(&s->scratch);
    if (opts != NULL) {
        s->opts = *opts;
    } else {
        store_options_default(&s->opts);
    }
    rv = check_limits(&s->opts.limits, err);
    if (rv != 0) {
        goto err_after_alloc;
    }
    s->dir = strdup(dir);
    s->arn_partition =
        strdup(s->opts.arn.partition ? s->opts.arn.partition : "aws");
    s->arn_region = strdup(s->opts.arn.region ? s->opts.arn.region : "local");
    s->arn_account =
        strdup(s->opts.arn.account ? s->opts.arn.account : "000000000000");
    if (s->dir == NULL || s->arn_partition == NULL || s->arn_region == NULL ||
        s->arn_account == NULL ||
        asprintf(&lock_path, "%s/cairn.lock", dir) < 0) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
        lock_path = NULL;
        goto err_after_alloc;
    }
    s->opts.arn.partition = s->arn_partition;
    s->opts.arn.region = s->arn_region;
    s->opts.arn.account = s->arn_account;
    if (asprintf(&s->arn_prefix, "arn:%s:ssm:%s:%s:parameter/",
                 s->arn_partition, s->arn_region, s->arn_account) < 0) {
        s->arn_prefix = NULL;
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
        goto err_after_alloc;
    }
    s->arn_prefix_len = strlen(s->arn_prefix);

    /* flock locks belong to the open file description, so this refuses a
     * second opener in another process and in this one alike (LMDB must not
     * be opened twice in one process). */
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rv = cairn_error_set(err, cairn_status_from_errno(errno), NULL,
                             "open %s: %s", lock_path, strerror(errno));
        goto err_after_alloc;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rv = cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                             "store directory %s is in use by another "
                             "server (%s is locked)",
                             dir, lock_path);
        goto err_after_alloc;
    }
    rv = env_open(s, err);
    if (rv != 0) {
        goto err_after_alloc;
    }
    free(lock_path);
    *out = s;
    return 0;

err_after_alloc:
    free(lock_path);
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    free(s->dir);
    free(s->arn_partition);
    free(s->arn_region);
    free(s->arn_account);
    free(s->arn_prefix);
    free(s);
    return rv;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    env_close(s);
    if (s->lock_fd >= 0) {
        close(s->lock_fd); /* releases the flock */
    }
    buf_close(&s->out);
    buf_close(&s->scratch);
    pthread_mutex_destroy(&s->copy_lock);
    free(s->dir);
    free(s->arn_partition);
    free(s->arn_region);
    free(s->arn_account);
    free(s->arn_prefix);
    free(s);
}

int store_read_begin(struct store *s, MDB_txn **txn, struct cairn_error *err)
{
    int rc;
    if (s->rtxn != NULL) {
        rc = mdb_txn_renew(s->rtxn);
        if (rc != 0) {
            mdb_txn_abort(s->rtxn);
            s->rtxn = NULL;
        }
    }
    if (s->rtxn == NULL) {
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
        if (rc != 0) {
            s->rtxn = NULL;
            return store_status_from_mdb(rc, err, "begin read");
        }
    }
    *txn = s->rtxn;
    return 0;
}

void store_read_end(struct store *s)
{
    if (s->rtxn != NULL) {
        mdb_txn_reset(s->rtxn);
    }
}

int store_token_key(struct store *s,
                    MDB_txn *txn,
                    uint8_t key[TOKEN_KEY_LEN],
                    struct cairn_error *err)
{
    MDB_val k = {strlen(META_TOKEN_KEY), (void *)META_TOKEN_KEY};
    MDB_val d;
    if (mdb_get(txn, s->meta, &k, &d) == 0 && d.mv_size == TOKEN_KEY_LEN) {
        memcpy(key, d.mv_data, TOKEN_KEY_LEN);
        return 0;
    }
    /* Drawn on first use rather than at open: most stores get the
     * replicated key from Init and never need one of their own. */
    if (!s->local_token_key_set) {
        if (RAND_bytes(s->local_token_key, TOKEN_KEY_LEN) != 1) {
            return cairn_error_set(err, CAIRN_INTERNAL, "InternalServerError",
                                   "no random bytes for the token key");
        }
        s->local_token_key_set = true;
    }
    memcpy(key, s->local_token_key, TOKEN_KEY_LEN);
    return 0;
}

static int read_meta_u64(struct store *s,
                         const char *key,
                         uint64_t *v,
                         struct cairn_error *err)
{
    MDB_txn *txn;
    int rc;
    int rv = store_read_begin(s, &txn, err);
    if (rv != 0) {
        return rv;
    }
    rc = store_meta_get_u64(txn, s->meta, key, 0, v);
    store_read_end(s);
    return store_status_from_mdb(rc, err, key);
}

int store_applied_index(struct store *s,
                        uint64_t *index,
                        struct cairn_error *err)
{
    return read_meta_u64(s, META_APPLIED, index, err);
}

/* Bytes written back per step of store_sync: the Raft log's fsyncs queue
 * behind at most this much at a time. */
#define SYNC_CHUNK (2u << 20)
/* Pause between chunks: at most SYNC_CHUNK per pause, so that the disk
 * and the CPU (the kernel's writeback) are shared with the serving loop. */
#define SYNC_PAUSE_NS 5000000L

/* Bytes of data.mdb in use: up to LMDB's last page. */
static off_t used_bytes(const struct store *s, const MDB_envinfo *info)
{
    return (off_t)(info->me_last_pgno + 1) * (off_t)s->psize;
}

int store_reserve(struct store *s, struct cairn_error *err)
{
    MDB_envinfo info;
    off_t used, want;
    int fd, e;

    if (!s->writemap || mdb_env_info(s->env, &info) != 0 ||
        mdb_env_get_fd(s->env, &fd) != 0) {
        return 0;
    }
    used = used_bytes(s, &info);
    if (used + STORE_HEADROOM / 2 <= s->reserved) {
        return 0;
    }
    want = used + STORE_HEADROOM;
    if (want > (off_t)info.me_mapsize) {
        want = (off_t)info.me_mapsize; /* LMDB stops at the map: MAP_FULL */
    }
    if (want <= s->reserved) {
        return 0;
    }
    e = posix_fallocate(fd, s->reserved, want - s->reserved);
    if (e != 0) {
        return cairn_error_set(
            err, CAIRN_RESOURCE_EXHAUSTED, NULL,
            "no room for the store in %s: reserving %lld bytes past its "
            "%lld in use failed: %s",
            s->dir, (long long)(want - used), (long long)used, strerror(e));
    }
    s->reserved = want;
    return 0;
}

int store_sync(struct store *s, struct cairn_error *err)
{
    struct stat st;
    int fd = -1;
    int rc;

    /* With no_sync the store's dirty pages pile up (the kernel writes them
     * back only past gigabytes or after 30 s): one flush of all of them
     * would hold up every fsync of the Raft log behind it, stalling writes
     * for 100 ms and more. Write them back a chunk at a time first, each
     * waited for, so that the log's small writes slip in between; the
     * final flush then has little left. Like a copy, a sync may run on
     * another thread: a restore, which replaces the environment, waits for
     * it (copy_lock). */
    pthread_mutex_lock(&s->copy_lock);
    if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0) {
        MDB_envinfo info;
        off_t used = st.st_size;
        if (mdb_env_info(s->env, &info) == 0) {
            off_t end = used_bytes(s, &info);
            used = end < used ? end : used;
        }
        for (off_t off = 0; off < used; off += SYNC_CHUNK) {
            struct timespec pause = {0, SYNC_PAUSE_NS};
            if (sync_file_range(fd, off, SYNC_CHUNK,
                                SYNC_FILE_RANGE_WAIT_BEFORE |
                                    SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
                break; /* the flush below still does it all */
            }
            nanosleep(&pause, NULL);
        }
    }
    rc = mdb_env_sync(s->env, 1);
    pthread_mutex_unlock(&s->copy_lock);
    if (rc != 0) {
        return cairn_error_set(err, CAIRN_INTERNAL, NULL, "sync the store: %s",
                               mdb_strerror(rc));
    }
    return 0;
}

int store_revision(struct store *s, uint64_t *rev, struct cairn_error *err)
{
    return read_meta_u64(s, META_REVISION, rev, err);
}

int store_digest(struct store *s,
                 uint8_t digest[32],
                 uint64_t *applied,
                 struct cairn_error *err)
{
    MDB_dbi dbis[] = {s->params, s->versions, s->labels,       s->feed,
                      s->meta,   s->sessions, s->session_times};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    MDB_txn *txn;
    int rc = 0;
    int rv;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = store_read_begin(s, &txn, err);
    if (rv != 0) {
        EVP_MD_CTX_free(md);
        return rv;
    }
    rc = store_meta_get_u64(txn, s->meta, META_APPLIED, 0, applied);
    for (size_t i = 0; rc == 0 && i < sizeof(dbis) / sizeof(dbis[0]); i++) {
        MDB_cursor *cur;
        MDB_val k, v;
        uint8_t lens[16];
        rc = mdb_cursor_open(txn, dbis[i], &cur);
        if (rc != 0) {
            break;
        }
        /* Each record as key length, value length, key, value: no two
         * different contents hash the same bytes. */
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
            be64_put(lens, k.mv_size);
            be64_put(lens + 8, v.mv_size);
            EVP_DigestUpdate(md, lens, sizeof(lens));
            EVP_DigestUpdate(md, k.mv_data, k.mv_size);
            EVP_DigestUpdate(md, v.mv_data, v.mv_size);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
        }
        /* A separator between databases. */
        memset(lens, 0xff, sizeof(lens));
        EVP_DigestUpdate(md, lens, sizeof(lens));
    }
    store_read_end(s);
    if (rc != 0) {
        EVP_MD_CTX_free(md);
        return store_status_from_mdb(rc, err, "digest");
    }
    EVP_DigestFinal_ex(md, digest, NULL);
    EVP_MD_CTX_free(md);
    return 0;
}

int store_size(struct store *s, uint64_t *bytes, struct cairn_error *err)
{
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc != 0) {
        return store_status_from_mdb(rc, err, "env info");
    }
    *bytes = (uint64_t)used_bytes(s, &info);
    return 0;
}

int store_snapshot_write(struct store *s, int fd, struct cairn_error *err)
{
    int rc;
    /* LMDB's copy reads through its own read txn (MDB_NOTLS), so it may run
     * on another thread beside apply; only a restore must wait for it. */
    pthread_mutex_lock(&s->copy_lock);
    rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    pthread_mutex_unlock(&s->copy_lock);
    if (rc != 0) {
        return store_status_from_mdb(rc, err, "snapshot copy");
    }
    return 0;
}

/* Copy everything readable from @p fd into a new file at @p path. */
static int copy_fd_to_file(int fd, const char *path, struct cairn_error *err)
{
    char chunk[65536];
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        return cairn_error_set(err, cairn_status_from_errno(errno), NULL,
                               "create %s: %s", path, strerror(errno));
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            cairn_error_set(err, CAIRN_INTERNAL, NULL, "read snapshot: %s",
                            strerror(errno));
            goto fail;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                cairn_error_set(err, cairn_status_from_errno(errno), NULL,
                                "write %s: %s", path, strerror(errno));
                goto fail;
            }
            off += w;
        }
    }
    if (fsync(out) != 0) {
        cairn_error_set(err, CAIRN_INTERNAL, NULL, "fsync %s: %s", path,
                        strerror(errno));
        goto fail;
    }
    close(out);
    return 0;
fail:
    close(out);
    unlink(path);
    return err != NULL ? err->code : CAIRN_INTERNAL;
}

/* Open the snapshot file read-only and read its applied index, proving it
 * is a Cairn store of our format. */
static int probe_snapshot(const char *path,
                          uint64_t *index,
                          struct cairn_error *err)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    uint64_t format = 0;
    int rc;

    rc = mdb_env_create(&env);
    if (rc == 0) {
        mdb_env_set_maxdbs(env, 8);
        rc = mdb_env_open(env, path,
                          MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS,
                          0600);
    }
    if (rc == 0) {
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "meta", 0, &meta);
    }
    if (rc == 0) {
        rc = store_meta_get_u64(txn, meta, META_FORMAT, 0, &format);
    }
    if (rc == 0) {
        rc = store_meta_get_u64(txn, meta, META_APPLIED, 0, index);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (env != NULL) {
        mdb_env_close(env);
    }
    if (rc != 0 || format != STORE_FORMAT) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "snapshot is not a Cairn store (%s)",
                               rc != 0 ? mdb_strerror(rc) : "wrong format");
    }
    return 0;
}

static int restore_locked(struct store *s,
                          int fd,
                          bool skip_if_older,
                          bool *restored,
                          uint64_t *snapshot_index,
                          struct cairn_error *err)
{
    char *tmp = NULL;
    char *data = NULL;
    uint64_t snap = 0;
    uint64_t cur = 0;
    int rv;

    *restored = false;
    if (s->batch != NULL) {
        return cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                               "restore with a batch open");
    }
    if (asprintf(&tmp, "%s/restore.mdb", s->dir) < 0) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    if (asprintf(&data, "%s/data.mdb", s->dir) < 0) {
        free(tmp);
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = copy_fd_to_file(fd, tmp, err);
    if (rv != 0) {
        goto out;
    }
    rv = probe_snapshot(tmp, &snap, err);
    if (rv == 0) {
        rv = store_applied_index(s, &cur, err);
    }
    if (rv != 0) {
        unlink(tmp);
        goto out;
    }
    if (snapshot_index != NULL) {
        *snapshot_index = snap;
    }
    if (skip_if_older && snap <= cur) {
        unlink(tmp);
        goto out;
    }
    /* Swap files with the environment closed; rename is atomic, so a crash
     * leaves either the old store or the new one. */
    env_close(s);
    if (rename(tmp, data) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "rename %s: %s", tmp,
                             strerror(errno));
        unlink(tmp);
        /* Reopen what was there. */
        env_open(s, NULL);
        goto out;
    }
    rv = env_open(s, err);
    if (rv == 0) {
        *restored = true;
    }
out:
    free(tmp);
    free(data);
    return rv;
}

/* ---- records -------------------------------------------------------- */

static unsigned opt_count(struct mp_str v)
{
    return v.p != NULL ? 1 : 0;
}

static void pack_opt(msgpack_packer *pk, const char *key, struct mp_str v)
{
    if (v.p != NULL) {
        mp_pack_kv_str(pk, key, v.p, v.n);
    }
}

/*
 * Field order matters: the fields the hot reads need come first, so that
 * rec_decode can stop early (REC_PARAM_HEAD, REC_VERSION_HEAD).
 *   params:   Name, Id, Version | Type ... Tags
 *   versions: Version, LastModifiedDate, Type, Value, DataType | ... Labels
 */
int rec_encode(const struct rec *r, int kind, struct buf *out)
{
    msgpack_packer pk;
    unsigned n = 3 + opt_count(r->type) + opt_count(r->key_id) +
                 opt_count(r->description) + opt_count(r->allowed_pattern) +
                 opt_count(r->data_type) + opt_count(r->tier) +
                 opt_count(r->user);

    n += kind == REC_PARAM ? 3 : 2; /* Name, Id, Tags | Value, Labels */
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, n);
    if (kind == REC_PARAM) {
        mp_pack_kv_str(&pk, "Name", r->name.p, r->name.n);
        mp_pack_kv_u64(&pk, "Id", r->id);
        mp_pack_kv_u64(&pk, "Version", r->version);
        mp_pack_kv_i64(&pk, "LastModifiedDate", r->ts);
        pack_opt(&pk, "Type", r->type);
        pack_opt(&pk, "DataType", r->data_type);
    } else {
        mp_pack_kv_u64(&pk, "Version", r->version);
        mp_pack_kv_i64(&pk, "LastModifiedDate", r->ts);
        pack_opt(&pk, "Type", r->type);
        mp_pack_cstr(&pk, "Value");
        if (r->value_bin) {
            mp_pack_bin(&pk, r->value.p, r->value.n);
        } else {
            mp_pack_str(&pk, r->value.p, r->value.n);
        }
        pack_opt(&pk, "DataType", r->data_type);
        mp_pack_cstr(&pk, "Labels");
        msgpack_pack_array(&pk, r->n_labels);
        for (unsigned i = 0; i < r->n_labels; i++) {
            mp_pack_str(&pk, r->labels[i].p, r->labels[i].n);
        }
    }
    pack_opt(&pk, "KeyId", r->key_id);
    pack_opt(&pk, "Description", r->description);
    pack_opt(&pk, "AllowedPattern", r->allowed_pattern);
    pack_opt(&pk, "Tier", r->tier);
    pack_opt(&pk, "LastModifiedUser", r->user);
    mp_pack_cstr(&pk, "Policies");
    msgpack_pack_array(&pk, r->n_policies);
    for (unsigned i = 0; i < r->n_policies; i++) {
        msgpack_pack_array(&pk, 2);
        mp_pack_str(&pk, r->policies[i].text.p, r->policies[i].text.n);
        mp_pack_str(&pk, r->policies[i].type.p, r->policies[i].type.n);
    }
    if (kind == REC_PARAM) {
        mp_pack_cstr(&pk, "Tags");
        msgpack_pack_array(&pk, r->n_tags);
        for (unsigned i = 0; i < r->n_tags; i++) {
            msgpack_pack_array(&pk, 2);
            mp_pack_str(&pk, r->tags[i].key.p, r->tags[i].key.n);
            mp_pack_str(&pk, r->tags[i].value.p, r->tags[i].value.n);
        }
    }
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

/* Compare a map key with a string literal; the length is known at compile
 * time, which keeps record decoding off strlen. */
#define key_is(k, lit) \
    ((k).n == sizeof(lit) - 1 && memcmp((k).p, (lit), sizeof(lit) - 1) == 0)

static int rd_str_array(struct mp_rd *rd,
                        struct mp_str *out,
                        unsigned max,
                        unsigned *count)
{
    uint32_t n;
    if (mp_rd_array(rd, &n) != 0 || n > max) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (mp_rd_str(rd, &out[i]) != 0) {
            return -1;
        }
    }
    *count = n;
    return 0;
}

/* Arrays of [a, b] string pairs (policies, tags). */
static int rd_pairs(struct mp_rd *rd,
                    struct mp_str *a,
                    struct mp_str *b,
                    size_t stride,
                    unsigned max,
                    unsigned *count)
{
    uint32_t n, two;
    if (mp_rd_array(rd, &n) != 0 || n > max) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct mp_str *pa = (struct mp_str *)((char *)a + i * stride);
        struct mp_str *pb = (struct mp_str *)((char *)b + i * stride);
        if (mp_rd_array(rd, &two) != 0 || two != 2 || mp_rd_str(rd, pa) != 0 ||
            mp_rd_str(rd, pb) != 0) {
            return -1;
        }
    }
    *count = n;
    return 0;
}

int rec_decode(const void *p,
               size_t n,
               struct rec *r,
               unsigned max_fields,
               struct cairn_error *err)
{
    struct mp_rd rd;
    uint32_t fields;
    int bad = 0;

    memset(r, 0, offsetof(struct rec, labels));
    r->n_labels = 0;
    r->n_tags = 0;
    mp_rd_init(&rd, p, n);
    if (mp_rd_map(&rd, &fields) != 0) {
        bad = 1;
    }
    bool head = max_fields != 0 && max_fields < fields;
    if (head) {
        fields = max_fields; /* the caller needs only the head */
    }
    for (uint32_t i = 0; i < fields && !bad; i++) {
        struct mp_str k;
        if (mp_rd_str(&rd, &k) != 0) {
            bad = 1;
        } else if (key_is(k, "Name")) {
            bad = mp_rd_str(&rd, &r->name);
        } else if (key_is(k, "Id")) {
            bad = mp_rd_u64(&rd, &r->id);
        } else if (key_is(k, "Version")) {
            bad = mp_rd_u64(&rd, &r->version);
        } else if (key_is(k, "LastModifiedDate")) {
            bad = mp_rd_i64(&rd, &r->ts);
        } else if (key_is(k, "Value")) {
            bad = mp_rd_bytes(&rd, &r->value, &r->value_bin);
        } else if (key_is(k, "Type")) {
            bad = mp_rd_str(&rd, &r->type);
        } else if (key_is(k, "KeyId")) {
            bad = mp_rd_str(&rd, &r->key_id);
        } else if (key_is(k, "Description")) {
            bad = mp_rd_str(&rd, &r->description);
        } else if (key_is(k, "AllowedPattern")) {
            bad = mp_rd_str(&rd, &r->allowed_pattern);
        } else if (key_is(k, "DataType")) {
            bad = mp_rd_str(&rd, &r->data_type);
        } else if (key_is(k, "Tier")) {
            bad = mp_rd_str(&rd, &r->tier);
        } else if (key_is(k, "LastModifiedUser")) {
            bad = mp_rd_str(&rd, &r->user);
        } else if (key_is(k, "Policies")) {
            bad = rd_pairs(&rd, &r->policies[0].text, &r->policies[0].type,
                           sizeof(r->policies[0]), 10, &r->n_policies);
        } else if (key_is(k, "Labels")) {
            bad = rd_str_array(&rd, r->labels, STORE_MAX_LABELS, &r->n_labels);
        } else if (key_is(k, "Tags")) {
            bad = rd_pairs(&rd, &r->tags[0].key, &r->tags[0].value,
                           sizeof(r->tags[0]), STORE_MAX_TAGS, &r->n_tags);
        } else {
            bad = mp_rd_skip(&rd); /* a field from a newer format */
        }
    }
    if (bad || (!head && rd.left != 0)) {
        return cairn_error_set(err, CAIRN_DATA_LOSS, "InternalServerError",
                               "stored record is malformed");
    }
    return 0;
}

int store_restore(struct store *s,
                  int fd,
                  bool skip_if_older,
                  bool *restored,
                  uint64_t *snapshot_index,
                  struct cairn_error *err)
{
    int rv;
    /* The environment is replaced: wait for a copy running elsewhere. */
    pthread_mutex_lock(&s->copy_lock);
    rv = restore_locked(s, fd, skip_if_older, restored, snapshot_index, err);
    pthread_mutex_unlock(&s->copy_lock);
    return rv;
}
