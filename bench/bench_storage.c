/* bench-storage: throughput and size figures for the storage layer, on one
 * core in one process. It prints figures next to their targets; it is not
 * a pass/fail test (a slow machine is not a bug).
 *
 * (a) sm_apply of PutParameter commands with 1 KB values, pre-encoded:
 *     one command per LMDB transaction and 64 per batch, with no_sync (the
 *     Raft log is the durable record) and, on fewer commands, with sync;
 * (b) GetParameter over a store of --params parameters named
 *     /bench/app{0..999}/env{0..9}/key{0..9}, random names;
 * (c) GetParametersByPath, MaxResults 10, over random leaf paths (10
 *     parameters each) of that store;
 * (d) the store's size per 100,000 parameters: pages in use, the data.mdb
 *     file, and a compacted snapshot written with store_snapshot_write.
 *
 * Options: --params N (100000), --apply N (50000), --sync-apply N (2000),
 * --seconds S (5: length of each query run, cap of each sync run),
 * --value-size B (1024), --dir DIR (where temporary stores go: $TMPDIR or
 * /var/tmp; use a disk, not tmpfs, for meaningful sync figures). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "mp.h"
#include "query.h"
#include "sm.h"
#include "status.h"
#include "store.h"

#define TMPFS_MAGIC_NUMBER 0x01021994
#define N_REQUESTS 65536 /* pre-encoded query requests, cycled */
#define BATCH 64
#define POPULATE_BATCH 1024
#define USER "arn:aws:iam::123456789012:user/bench"

#define TARGET_APPLY 50000.0
#define TARGET_GET 500000.0
#define TARGET_BY_PATH 100000.0

struct config
{
    uint64_t params;
    uint64_t apply;
    uint64_t sync_apply;
    double seconds;
    size_t value_size;
    const char *dir;
};

/* A run of pre-encoded msgpack messages, back to back in one buffer. */
struct msgs
{
    struct buf data;
    size_t *off; /* n + 1 offsets */
    size_t n;
};

static uint64_t rng = 0x5eed;

static uint64_t rng_next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rv, const struct cairn_error *err)
{
    fprintf(stderr, "bench-storage: %s: %s %s %s\n", what,
            cairn_status_name(rv), err != NULL ? err->type : "",
            err != NULL ? err->msg : "");
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    if (p == NULL) {
        fprintf(stderr, "bench-storage: out of memory\n");
        exit(1);
    }
    return p;
}

/* "12,345,678" */
static const char *fmt_count(char *out, size_t cap, double v)
{
    char digits[32];
    size_t n, j = 0;

    snprintf(digits, sizeof digits, "%.0f", v);
    n = strlen(digits);
    for (size_t i = 0; i < n && j + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) {
            out[j++] = ',';
        }
        out[j++] = digits[i];
    }
    out[j] = '\0';
    return out;
}

static void msgs_init(struct msgs *m, size_t n)
{
    buf_init(&m->data);
    m->off = xcalloc(n + 1, sizeof *m->off);
    m->n = 0;
}

/* Close the message just packed at the end of m->data. */
static void msgs_end(struct msgs *m)
{
    if (m->data.oom) {
        fprintf(stderr, "bench-storage: out of memory encoding\n");
        exit(1);
    }
    m->off[++m->n] = m->data.len;
}

static void msgs_close(struct msgs *m)
{
    buf_close(&m->data);
    free(m->off);
}

static const void *msgs_get(const struct msgs *m, size_t i, size_t *len)
{
    *len = m->off[i + 1] - m->off[i];
    return m->data.data + m->off[i];
}

static void pack_put(msgpack_packer *pk,
                     const char *name,
                     const char *value,
                     size_t value_len,
                     int64_t ts)
{
    msgpack_pack_map(pk, 4);
    mp_pack_kv_cstr(pk, "op", "PutParameter");
    mp_pack_kv_i64(pk, "ts", ts);
    mp_pack_kv_cstr(pk, "user", USER);
    mp_pack_cstr(pk, "req");
    msgpack_pack_map(pk, 3);
    mp_pack_kv_cstr(pk, "Name", name);
    mp_pack_kv_str(pk, "Value", value, value_len);
    mp_pack_kv_cstr(pk, "Type", "String");
}

/* Name of parameter @p i of the query store. */
static void query_name(char *out, size_t cap, uint64_t i)
{
    snprintf(out, cap, "/bench/app%" PRIu64 "/env%" PRIu64 "/key%" PRIu64,
             i / 100, (i / 10) % 10, i % 10);
}

static int rm_one(const char *p,
                  const struct stat *st,
                  int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static char *make_dir(const struct config *cfg, const char *tag)
{
    char *path;
    if (asprintf(&path, "%s/cairn-bench-%s-XXXXXX", cfg->dir, tag) < 0 ||
        mkdtemp(path) == NULL) {
        fprintf(stderr, "bench-storage: cannot create a directory in %s: %s\n",
                cfg->dir, strerror(errno));
        exit(1);
    }
    return path;
}

static struct store *open_store(const char *dir, bool no_sync)
{
    struct store_options opts;
    struct cairn_error err;
    struct store *s;
    int rv;

    store_options_default(&opts);
    opts.no_sync = no_sync;
    /* The bench measures the engine, not AWS's per-account quotas. */
    opts.limits.standard_params = UINT64_MAX / 2;
    opts.limits.advanced_params = UINT64_MAX / 2;
    rv = store_open(dir, &opts, &s, &err);
    if (rv != 0) {
        die("store_open", rv, &err);
    }
    return s;
}

static void remove_store(struct store *s, char *dir)
{
    store_close(s);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static void apply_one(struct store *s,
                      uint64_t index,
                      const void *c,
                      size_t len)
{
    const struct sm_outcome *o = NULL;
    int rv = sm_apply(s, index, c, len, &o);
    if (rv != 0) {
        die("sm_apply (local fault)", rv, NULL);
    }
    if (o->err.code != CAIRN_OK) {
        die("sm_apply", o->err.code, &o->err);
    }
}

/* Apply up to @p n of the commands in @p cmds to a fresh store, @p batch
 * per transaction, stopping early after @p max_seconds (0: no cap).
 * Returns commands per second; *done gets how many ran. */
static double run_apply(const struct config *cfg,
                        const struct msgs *cmds,
                        size_t n,
                        unsigned batch,
                        bool no_sync,
                        double max_seconds,
                        size_t *done)
{
    char *dir = make_dir(cfg, "apply");
    struct store *s = open_store(dir, no_sync);
    struct cairn_error err;
    double t0, t1;
    size_t i = 0;
    int rv;

    t0 = now();
    while (i < n) {
        size_t end = i + batch < n ? i + batch : n;
        if (batch > 1 && (rv = sm_batch_begin(s, &err)) != 0) {
            die("sm_batch_begin", rv, &err);
        }
        for (; i < end; i++) {
            size_t len;
            const void *c = msgs_get(cmds, i, &len);
            apply_one(s, i + 1, c, len);
        }
        if (batch > 1 && (rv = sm_batch_commit(s, &err)) != 0) {
            die("sm_batch_commit", rv, &err);
        }
        if (max_seconds > 0 && now() - t0 >= max_seconds) {
            break;
        }
    }
    t1 = now();
    remove_store(s, dir);
    *done = i;
    return (double)i / (t1 - t0);
}

static void populate(struct store *s, uint64_t params, double *rate)
{
    static const char *const hosts[] = {"db", "cache", "queue", "search"};
    struct cairn_error err;
    msgpack_packer pk;
    struct buf c;
    char name[96], value[128];
    double t0 = now();
    int rv;

    buf_init(&c);
    for (uint64_t i = 0; i < params; i++) {
        int n;
        if (i % POPULATE_BATCH == 0 && (rv = sm_batch_begin(s, &err)) != 0) {
            die("sm_batch_begin", rv, &err);
        }
        query_name(name, sizeof name, i);
        /* A typical configuration value, 50-60 bytes. */
        n = snprintf(value, sizeof value,
                     "%s://%s-%" PRIu64 ".internal:5432/app?sslmode=require",
                     hosts[i % 4], hosts[i % 4], i);
        buf_reset(&c);
        mp_packer_init(&pk, &c);
        pack_put(&pk, name, value, (size_t)n, 1700000000000);
        if (c.oom) {
            fprintf(stderr, "bench-storage: out of memory\n");
            exit(1);
        }
        apply_one(s, i + 1, c.data, c.len);
        if ((i % POPULATE_BATCH == POPULATE_BATCH - 1 || i + 1 == params) &&
            (rv = sm_batch_commit(s, &err)) != 0) {
            die("sm_batch_commit", rv, &err);
        }
    }
    buf_close(&c);
    *rate = (double)params / (now() - t0);
}

/* Count the Parameters of a response body, or -1 if it has none. */
static long count_parameters(const struct buf *resp)
{
    const msgpack_object_array *arr = NULL;
    struct cairn_error err;
    struct mp_doc doc;
    long n = -1;

    if (mp_doc_parse(&doc, resp->data, resp->len, &err) != 0) {
        return -1;
    }
    if (mp_get_array(&doc.root, "Parameters", &arr, &err) == 1) {
        n = (long)arr->size;
    } else if (mp_map_get(&doc.root, "Parameter") != NULL) {
        n = 1;
    }
    mp_doc_close(&doc);
    return n;
}

/* Run @p method over the requests in @p reqs, cycling, for @p seconds.
 * The first response must hold @p expect parameters. Returns queries/s. */
static double run_queries(struct store *s,
                          const char *method,
                          const struct msgs *reqs,
                          double seconds,
                          long expect)
{
    struct cairn_error err;
    struct buf out;
    uint64_t n = 0;
    double t0, t;
    int rv;

    buf_init(&out);
    t0 = now();
    do {
        for (int k = 0; k < 1024; k++, n++) {
            size_t len;
            const void *r = msgs_get(reqs, n % reqs->n, &len);
            buf_reset(&out);
            rv = query_run(s, method, r, len, &out, &err);
            if (rv != 0) {
                die(method, rv, &err);
            }
            if (n == 0 && count_parameters(&out) != expect) {
                fprintf(stderr,
                        "bench-storage: %s returned %ld parameters, "
                        "expected %ld\n",
                        method, count_parameters(&out), expect);
                exit(1);
            }
        }
        t = now();
    } while (t - t0 < seconds);
    buf_close(&out);
    return (double)n / (t - t0);
}

static void row(const char *what, double rate, double target, const char *note)
{
    char a[32], b[32];
    char target_text[40] = "-";
    const char *verdict = "";

    if (target > 0) {
        snprintf(target_text, sizeof target_text, ">= %s/s",
                 fmt_count(b, sizeof b, target));
        verdict = rate >= target ? "ok" : "BELOW TARGET";
    }
    printf("%-52s %12s/s  %-14s %s%s\n", what, fmt_count(a, sizeof a, rate),
           target_text, verdict, note);
}

static void size_row(const char *what, double bytes, uint64_t params)
{
    double per = bytes * 100000.0 / (double)params;
    printf("%-52s %10.1f MB  (%.0f bytes/param)\n", what, per / 1e6,
           per / 100000.0);
}

static uint64_t parse_u64(const char *flag, const char *v)
{
    char *end;
    unsigned long long x;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] == '-') {
        fprintf(stderr, "bench-storage: bad value for %s: %s\n", flag, v);
        exit(2);
    }
    return x;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench-storage [--params N] [--apply N] [--sync-apply N]\n"
            "                     [--seconds S] [--value-size B] "
            "[--dir DIR]\n");
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    const char *tmp = getenv("TMPDIR");

    cfg->params = 100000;
    cfg->apply = 50000;
    cfg->sync_apply = 2000;
    cfg->seconds = 5;
    cfg->value_size = 1024;
    cfg->dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/var/tmp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            usage(stderr);
            exit(2);
        }
        i++;
        if (strcmp(a, "--params") == 0) {
            cfg->params = parse_u64(a, v);
        } else if (strcmp(a, "--apply") == 0) {
            cfg->apply = parse_u64(a, v);
        } else if (strcmp(a, "--sync-apply") == 0) {
            cfg->sync_apply = parse_u64(a, v);
        } else if (strcmp(a, "--value-size") == 0) {
            cfg->value_size = (size_t)parse_u64(a, v);
        } else if (strcmp(a, "--seconds") == 0) {
            char *end;
            cfg->seconds = strtod(v, &end);
            if (*end != '\0' || !(cfg->seconds > 0)) {
                fprintf(stderr, "bench-storage: bad --seconds %s\n", v);
                exit(2);
            }
        } else if (strcmp(a, "--dir") == 0) {
            cfg->dir = v;
        } else {
            usage(stderr);
            exit(2);
        }
    }
    if (cfg->params < 10 || cfg->apply == 0) {
        fprintf(stderr,
                "bench-storage: --params must be >= 10 and --apply "
                ">= 1\n");
        exit(2);
    }
    if (cfg->value_size < 1 || cfg->value_size > 4096) {
        /* Standard-tier parameters hold 1..4096 characters. */
        fprintf(stderr, "bench-storage: --value-size must be 1..4096\n");
        exit(2);
    }
    if (cfg->sync_apply > cfg->apply) {
        cfg->sync_apply = cfg->apply;
    }
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct msgs cmds, gets, paths;
    struct cairn_error err;
    struct statfs fs;
    msgpack_packer pk;
    struct store *s;
    struct stat st;
    char *dir, *value, *snap_path, *mdb_path;
    char label[96], n1[32], n2[32];
    double rate, populate_rate;
    uint64_t used, leaves;
    size_t done;
    int fd, cpu, rv;

    parse_args(argc, argv, &cfg);

    /* One core: stay on the CPU we started on. */
    cpu = sched_getcpu();
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void)sched_setaffinity(0, sizeof set, &set);
    }

    printf("Cairn storage benchmark: one process, one core (cpu %d)\n", cpu);
    printf("  stores in %s%s\n", cfg.dir,
           statfs(cfg.dir, &fs) == 0 && fs.f_type == TMPFS_MAGIC_NUMBER
               ? " (tmpfs: sync figures are not disk figures)"
               : "");
    printf(
        "  %s parameters in the query store, %s apply commands "
        "(%s with sync), %zu-byte values, %.1f s per query run\n\n",
        fmt_count(n1, sizeof n1, (double)cfg.params),
        fmt_count(n2, sizeof n2, (double)cfg.apply),
        fmt_count(label, sizeof label, (double)cfg.sync_apply), cfg.value_size,
        cfg.seconds);

    /* (a) apply: pre-encode the commands, then time sm_apply alone. */
    value = xcalloc(cfg.value_size + 1, 1);
    msgs_init(&cmds, cfg.apply);
    for (uint64_t i = 0; i < cfg.apply; i++) {
        char name[64];
        for (size_t k = 0; k < cfg.value_size; k++) {
            value[k] = (char)('a' + (i + k * 7) % 26);
        }
        snprintf(name, sizeof name, "/bench/apply/app%" PRIu64 "/key%" PRIu64,
                 i % 1000, i);
        mp_packer_init(&pk, &cmds.data);
        pack_put(&pk, name, value, cfg.value_size, 1700000000000 + (int64_t)i);
        msgs_end(&cmds);
    }
    free(value);

    printf("%-52s %14s  %-14s\n", "measure", "result", "target");
    snprintf(label, sizeof label,
             "apply PutParameter %zu B, 1 per txn, no_sync", cfg.value_size);
    rate = run_apply(&cfg, &cmds, cfg.apply, 1, true, 0, &done);
    row(label, rate, TARGET_APPLY, "");
    snprintf(label, sizeof label,
             "apply PutParameter %zu B, %d per batch, no_sync", cfg.value_size,
             BATCH);
    rate = run_apply(&cfg, &cmds, cfg.apply, BATCH, true, 0, &done);
    row(label, rate, TARGET_APPLY, "");
    if (cfg.sync_apply > 0) {
        char note[64];
        snprintf(label, sizeof label,
                 "apply PutParameter %zu B, 1 per txn, sync", cfg.value_size);
        rate = run_apply(&cfg, &cmds, cfg.sync_apply, 1, false, cfg.seconds,
                         &done);
        snprintf(note, sizeof note, "(%s commands)",
                 fmt_count(n1, sizeof n1, (double)done));
        row(label, rate, 0, note);
        snprintf(label, sizeof label,
                 "apply PutParameter %zu B, %d per batch, sync", cfg.value_size,
                 BATCH);
        rate = run_apply(&cfg, &cmds, cfg.sync_apply, BATCH, false, cfg.seconds,
                         &done);
        snprintf(note, sizeof note, "(%s commands)",
                 fmt_count(n1, sizeof n1, (double)done));
        row(label, rate, 0, note);
    }
    msgs_close(&cmds);

    /* (b), (c): the query store. */
    dir = make_dir(&cfg, "query");
    s = open_store(dir, true);
    populate(s, cfg.params, &populate_rate);
    snprintf(label, sizeof label, "populate %s params, %d per batch",
             fmt_count(n1, sizeof n1, (double)cfg.params), POPULATE_BATCH);
    row(label, populate_rate, 0, "");

    msgs_init(&gets, N_REQUESTS);
    for (size_t i = 0; i < N_REQUESTS; i++) {
        char name[96];
        query_name(name, sizeof name, rng_next() % cfg.params);
        mp_packer_init(&pk, &gets.data);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_cstr(&pk, "Name", name);
        msgs_end(&gets);
    }
    rate = run_queries(s, "GetParameter", &gets, cfg.seconds, 1);
    row("GetParameter, random names", rate, TARGET_GET, "");
    msgs_close(&gets);

    /* Only whole leaves: paths holding 10 parameters. */
    leaves = cfg.params / 10;
    msgs_init(&paths, N_REQUESTS);
    for (size_t i = 0; i < N_REQUESTS; i++) {
        uint64_t leaf = rng_next() % leaves;
        char path[96];
        snprintf(path, sizeof path, "/bench/app%" PRIu64 "/env%" PRIu64 "/",
                 leaf / 10, leaf % 10);
        mp_packer_init(&pk, &paths.data);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_cstr(&pk, "Path", path);
        mp_pack_kv_u64(&pk, "MaxResults", 10);
        msgs_end(&paths);
    }
    rate = run_queries(s, "GetParametersByPath", &paths, cfg.seconds, 10);
    row("GetParametersByPath, MaxResults 10, 10 results", rate, TARGET_BY_PATH,
        "");
    msgs_close(&paths);

    /* (d) size. */
    printf("\n");
    rv = store_size(s, &used, &err);
    if (rv != 0) {
        die("store_size", rv, &err);
    }
    size_row("store size per 100,000 params (pages in use)", (double)used,
             cfg.params);
    if (asprintf(&mdb_path, "%s/data.mdb", dir) < 0) {
        exit(1);
    }
    if (stat(mdb_path, &st) == 0) {
        size_row("data.mdb per 100,000 params (file size)", (double)st.st_size,
                 cfg.params);
        size_row("data.mdb per 100,000 params (disk blocks)",
                 (double)st.st_blocks * 512.0, cfg.params);
    }
    free(mdb_path);
    if (asprintf(&snap_path, "%s/cairn-bench-snapshot-XXXXXX", cfg.dir) < 0 ||
        (fd = mkstemp(snap_path)) < 0) {
        fprintf(stderr, "bench-storage: cannot create a snapshot file: %s\n",
                strerror(errno));
        exit(1);
    }
    rv = store_snapshot_write(s, fd, &err);
    if (rv != 0) {
        die("store_snapshot_write", rv, &err);
    }
    if (fstat(fd, &st) == 0) {
        size_row("compacted snapshot per 100,000 params", (double)st.st_size,
                 cfg.params);
    }
    close(fd);
    unlink(snap_path);
    free(snap_path);
    remove_store(s, dir);
    return 0;
}
