/* cairn-bench: a load tool for a running Cairn server or cluster. N
 * concurrent clients spread over M connections (N/M requests in flight on
 * each connection, multiplexed as streams), the connections spread
 * round-robin over the endpoints, run one operation for a fixed time; it
 * prints QPS and p50/p99/p99.9/max latency.
 *
 *   cairn-bench [--endpoint HOST:PORT[,HOST:PORT...]] [--clients N]
 *               [--connections M] [--seconds S]
 *               [--op get|by-path|put|mix|all] [--keys K] [--value-size B]
 *               [--path-size R] [--stale] [--no-load] [--load-only N]
 *               [--interval S] [--type String|SecureString]
 *               [--with-decryption] [--prefix PATH]
 *
 * get:     GetParameter of a random one of K parameters
 * by-path: GetParametersByPath of a random leaf path, which holds R
 *          parameters (R results); beyond 10 (MaxResults' limit) the
 *          request asks for a server stream of pages (metadata stream:
 *          true, docs/protocol.md section 8) and the latency runs to the
 *          last page. The results are counted: a short path is an error.
 * put:     PutParameter (Overwrite) of a random parameter, B-byte value
 * mix:     90% get, 10% put, drawn per request (row "mix")
 *
 * --type (default String) is the Type of every PutParameter, the load's
 * and put's: SecureString has the server seal each value (a root key is
 * needed, docs/encryption.md). --with-decryption adds WithDecryption: true
 * to get and by-path, which has the server open SecureString values;
 * without it they come back sealed. A parameter's type cannot change
 * between String and SecureString (HierarchyTypeMismatchException), so
 * keep each type under its own --prefix (default /bench).
 *
 * The endpoints default to $CAIRN_ENDPOINT, else 127.0.0.1:7400; with
 * several (one per node of a cluster), connection i goes to endpoint
 * i mod count, so that the load reaches every node.
 *
 * First it creates the K parameters (PREFIX/appNNNN/keyD with NNNN = i / R
 * and D = i % R, R the --path-size, default 10; B-byte values)
 * with max(N, 64) writes in flight over the M connections, unless
 * --no-load. --load-only N creates N parameters that way, reports the rate
 * on stderr and exits: load once, then run with --keys N --no-load. Beyond
 * 10,000 parameters set the default parameter tier to Intelligent-Tiering
 * (or Advanced) first: the store has AWS's limits.
 *
 * Output on stdout, whitespace-separated, latencies in ms: a header, then
 * one row per operation
 *   op clients conns QPS p50 p99 p99.9 max errors
 * and, with --interval S, one row every S seconds while an operation runs
 *   interval T EPOCH op QPS max errors
 * T: seconds since the operation started, at the end of the interval;
 * EPOCH: the same instant as Unix time, to line it up with server logs;
 * max: the longest latency of a request answered in the interval, or the
 * age at its end of the oldest request still unanswered if that is longer,
 * so that a stall shows in every interval it spans. A row of either kind
 * is told apart by its first word. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"
#include "wire.h"

#define MAX_ENDPOINTS 32
#define LOAD_INFLIGHT 64 /* least number of writes in flight when loading */
#define MAX_PREFIX 200   /* --prefix length: names stay well inside 1011 */

struct endpoint
{
    char host[256];
    char port[16];
};

struct config
{
    struct endpoint ep[MAX_ENDPOINTS];
    unsigned n_ep;
    unsigned clients;
    unsigned connections;
    double seconds;
    const char *op;
    unsigned keys;
    size_t value_size;
    bool stale;
    double interval;      /* seconds between interval rows; 0: none */
    const char *type;     /* Type of every PutParameter */
    bool with_decryption; /* WithDecryption: true on get and by-path */
    const char *prefix;   /* parameters are PREFIX/appNNNN/keyD */
    unsigned path_size;   /* parameters per path PREFIX/appNNNN */
};

/* One run of one operation over every connection. */
struct run_state
{
    const struct config *cfg;
    const char *op;       /* get, by-path, put, mix or load */
    double t0;            /* monotonic seconds at the start */
    double end;           /* no request is sent after it */
    atomic_uint next_key; /* load: the next parameter to create */
};

/* Requests of one worker answered in one --interval slot. */
struct slot
{
    uint64_t n;
    uint64_t errors;
    double max_ms;
};

struct worker
{
    struct run_state *rs;
    unsigned inflight; /* requests kept outstanding */
    unsigned seed;
    int fd;
    /* The thread's own until it is joined. */
    double *lat; /* latencies in ms */
    size_t n_lat, cap_lat;
    uint64_t errors;
    char first_error[256];
    /* Read by the interval reporter while the thread runs: under mu. */
    pthread_mutex_t mu;
    double *started; /* send time per stream 1..inflight, 0 when idle */
    unsigned *got;   /* by-path: results so far per stream */
    unsigned *want;  /* by-path: results expected per stream */
    struct slot *slots;
    size_t n_slots;
    bool done;
};

/* What a run measured: every latency, sorted. */
struct result
{
    double *lat;
    size_t n;
    double elapsed;
    uint64_t errors;
    char first_error[256];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep until monotonic time @p t. */
static void sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

static void die(const char *what)
{
    fprintf(stderr, "cairn-bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void oom(void)
{
    fprintf(stderr, "cairn-bench: out of memory\n");
    exit(1);
}

static int dial(const struct endpoint *ep)
{
    struct addrinfo hints, *res;
    int one = 1;
    int fd;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(ep->host, ep->port, &hints, &res) != 0) {
        fprintf(stderr, "cairn-bench: cannot resolve %s\n", ep->host);
        exit(1);
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "cairn-bench: cannot connect to %s:%s: %s\n", ep->host,
                ep->port, strerror(errno));
        exit(1);
    }
    freeaddrinfo(res);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void key_name(char *out,
                     size_t cap,
                     const struct config *cfg,
                     unsigned i)
{
    snprintf(out, cap, "%s/app%04u/key%u", cfg->prefix, i / cfg->path_size,
             i % cfg->path_size);
}

/* Results expected from the path holding parameter @p i: R, fewer on the
 * last path if K is not a multiple of R. */
static unsigned path_results(const struct config *cfg, unsigned i)
{
    unsigned first = i / cfg->path_size * cfg->path_size;
    unsigned left = cfg->keys - first;
    return left < cfg->path_size ? left : cfg->path_size;
}

/* The number of Parameters in a GetParametersByPath page; -1 if the body
 * is not such a page. */
static long page_results(struct mp_str body)
{
    struct mp_rd r;
    uint32_t n, count;

    mp_rd_init(&r, body.p, body.n);
    if (mp_rd_map(&r, &n) != 0) {
        return -1;
    }
    for (uint32_t k = 0; k < n; k++) {
        struct mp_str key;
        if (mp_rd_str(&r, &key) != 0) {
            return -1;
        }
        if (mp_str_eqn(key, "Parameters")) {
            return mp_rd_array(&r, &count) == 0 ? (long)count : -1;
        }
        if (mp_rd_skip(&r) != 0) {
            return -1;
        }
    }
    return -1;
}

static void pack_put(msgpack_packer *pk,
                     const struct config *cfg,
                     const char *name,
                     const char *value)
{
    msgpack_pack_map(pk, 4);
    mp_pack_kv_cstr(pk, "Name", name);
    mp_pack_kv_cstr(pk, "Value", value);
    mp_pack_kv_cstr(pk, "Type", cfg->type);
    mp_pack_kv_bool(pk, "Overwrite", true);
}

/* Append one request of the run's operation to @p out; false when a load
 * has nothing left to send. */
static bool encode(struct worker *w,
                   uint64_t stream,
                   struct buf *out,
                   struct buf *body,
                   struct buf *meta,
                   const char *value)
{
    const struct config *cfg = w->rs->cfg;
    const char *op = w->rs->op;
    msgpack_packer pk;
    char name[MAX_PREFIX + 64];
    unsigned i;
    const char *method;

    buf_reset(body);
    mp_packer_init(&pk, body);
    if (strcmp(op, "load") == 0) {
        i = atomic_fetch_add(&w->rs->next_key, 1);
        if (i >= cfg->keys) {
            return false;
        }
        method = "PutParameter";
        key_name(name, sizeof(name), cfg, i);
        pack_put(&pk, cfg, name, value);
    } else if (strcmp(op, "get") == 0 ||
               (strcmp(op, "mix") == 0 && rand_r(&w->seed) % 10 != 0)) {
        i = (unsigned)rand_r(&w->seed) % cfg->keys;
        method = "GetParameter";
        key_name(name, sizeof(name), cfg, i);
        msgpack_pack_map(&pk, cfg->with_decryption ? 2 : 1);
        mp_pack_kv_cstr(&pk, "Name", name);
        if (cfg->with_decryption) {
            mp_pack_kv_bool(&pk, "WithDecryption", true);
        }
    } else if (strcmp(op, "by-path") == 0) {
        i = (unsigned)rand_r(&w->seed) % cfg->keys;
        method = "GetParametersByPath";
        snprintf(name, sizeof(name), "%s/app%04u", cfg->prefix,
                 i / cfg->path_size);
        w->got[stream] = 0;
        w->want[stream] = path_results(cfg, i);
        msgpack_pack_map(&pk, cfg->with_decryption ? 3 : 2);
        mp_pack_kv_cstr(&pk, "Path", name);
        mp_pack_kv_u64(&pk, "MaxResults", 10);
        if (cfg->with_decryption) {
            mp_pack_kv_bool(&pk, "WithDecryption", true);
        }
    } else {
        i = (unsigned)rand_r(&w->seed) % cfg->keys;
        method = "PutParameter";
        key_name(name, sizeof(name), cfg, i);
        pack_put(&pk, cfg, name, value);
    }
    if (wire_encode_request(out, stream, method, 30000,
                            meta->len > 0 ? meta->data : NULL, meta->len,
                            body->data, body->len) != 0) {
        oom();
    }
    return true;
}

/* Count one answer at time @p t. Called under w->mu. */
static void record(struct worker *w, double t, double ms, bool failed)
{
    double iv = w->rs->cfg->interval;

    if (w->n_lat == w->cap_lat) {
        size_t cap = w->cap_lat ? w->cap_lat * 2 : 65536;
        double *p = realloc(w->lat, cap * sizeof(*p));
        if (p == NULL) {
            oom();
        }
        w->lat = p;
        w->cap_lat = cap;
    }
    w->lat[w->n_lat++] = ms;
    if (iv > 0) {
        size_t k = (size_t)((t - w->rs->t0) / iv);
        if (k >= w->n_slots) {
            size_t n = k + 16;
            struct slot *p = realloc(w->slots, n * sizeof(*p));
            if (p == NULL) {
                oom();
            }
            memset(p + w->n_slots, 0, (n - w->n_slots) * sizeof(*p));
            w->slots = p;
            w->n_slots = n;
        }
        w->slots[k].n++;
        w->slots[k].errors += failed ? 1 : 0;
        if (ms > w->slots[k].max_ms) {
            w->slots[k].max_ms = ms;
        }
    }
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("send");
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Run the operation on the worker's own connection until the run's end
 * (or, for a load, until every parameter is sent), keeping `inflight`
 * requests outstanding: a closed loop per client. */
static void *run(void *arg)
{
    struct worker *w = arg;
    const struct config *cfg = w->rs->cfg;
    struct buf out, body, meta;
    struct wire_reader r;
    char *value = malloc(cfg->value_size + 1);
    uint64_t outstanding = 0;
    msgpack_packer pk;
    bool streamed;

    if (value == NULL) {
        oom();
    }
    memset(value, 'v', cfg->value_size);
    value[cfg->value_size] = '\0';
    buf_init(&out);
    buf_init(&body);
    buf_init(&meta);
    /* Paths beyond one page of 10 are read as a server stream. */
    streamed = strcmp(w->rs->op, "by-path") == 0 && cfg->path_size > 10;
    if (cfg->stale || streamed) {
        mp_packer_init(&pk, &meta);
        msgpack_pack_map(&pk, (cfg->stale ? 1 : 0) + (streamed ? 1 : 0));
        if (cfg->stale) {
            mp_pack_kv_cstr(&pk, "consistency", "stale");
        }
        if (streamed) {
            mp_pack_kv_bool(&pk, "stream", true);
        }
    }
    wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    /* Stream ids 1..inflight, each reused once its answer arrives. */
    buf_reset(&out);
    pthread_mutex_lock(&w->mu);
    for (uint64_t s = 1; s <= w->inflight; s++) {
        if (!encode(w, s, &out, &body, &meta, value)) {
            break;
        }
        w->started[s] = now();
        outstanding++;
    }
    pthread_mutex_unlock(&w->mu);
    send_all(w->fd, out.data, out.len);
    while (outstanding > 0) {
        uint8_t chunk[65536];
        const uint8_t *payload;
        size_t len;
        ssize_t n = recv(w->fd, chunk, sizeof(chunk), 0);
        double t;

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            fprintf(stderr, "cairn-bench: server closed the connection\n");
            exit(1);
        }
        if (wire_reader_feed(&r, chunk, (size_t)n) != 0) {
            oom();
        }
        t = now();
        buf_reset(&out);
        pthread_mutex_lock(&w->mu);
        for (;;) {
            struct wire_msg m;
            struct mp_doc doc;
            struct cairn_error err;
            int rv = wire_reader_next(&r, &payload, &len);
            if (rv == 0) {
                break;
            }
            if (rv < 0 || wire_decode(payload, len, &m, &doc, &err) != 0) {
                fprintf(stderr, "cairn-bench: bad frame from the server\n");
                exit(1);
            }
            if (m.type == WIRE_RESPONSE && m.stream >= 1 &&
                m.stream <= w->inflight && w->started[m.stream] > 0) {
                bool failed = m.status != 0;
                char why[128] = "";

                if (!failed && strcmp(w->rs->op, "by-path") == 0) {
                    long got = page_results(m.body);
                    if (got < 0) {
                        failed = true;
                        snprintf(why, sizeof(why), "not a page of results");
                    } else {
                        w->got[m.stream] += (unsigned)got;
                    }
                    if (!failed && m.more) {
                        mp_doc_close(&doc);
                        continue; /* more pages to come on this stream */
                    }
                    if (!failed && w->got[m.stream] != w->want[m.stream]) {
                        failed = true;
                        snprintf(why, sizeof(why), "%u results, not %u",
                                 w->got[m.stream], w->want[m.stream]);
                    }
                }
                record(w, t, (t - w->started[m.stream]) * 1000.0, failed);
                if (failed && w->errors++ == 0) {
                    snprintf(w->first_error, sizeof(w->first_error),
                             "%.*s: %.*s%s", (int)m.error_type.n,
                             m.error_type.p ? m.error_type.p : "",
                             (int)m.message.n, m.message.p ? m.message.p : "",
                             why);
                }
                w->started[m.stream] = 0;
                outstanding--;
                if (t < w->rs->end &&
                    encode(w, m.stream, &out, &body, &meta, value)) {
                    w->started[m.stream] = now();
                    outstanding++;
                }
            }
            mp_doc_close(&doc);
        }
        pthread_mutex_unlock(&w->mu);
        if (out.len > 0) {
            send_all(w->fd, out.data, out.len);
        }
    }
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_mutex_unlock(&w->mu);
    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&body);
    buf_close(&meta);
    free(value);
    return NULL;
}

/* Print one row per --interval while the workers run, until all are done
 * and every answer has been shown. */
static void report_intervals(struct run_state *rs,
                             struct worker *ws,
                             unsigned m,
                             double epoch0)
{
    double iv = rs->cfg->interval;

    for (size_t k = 0;; k++) {
        double start = rs->t0 + (double)k * iv;
        double boundary = start + iv;
        double width = (boundary < rs->end ? boundary : rs->end) - start;
        uint64_t n = 0, errors = 0;
        double max_ms = 0;
        bool all_done = true, later = false;

        sleep_until(boundary);
        for (unsigned i = 0; i < m; i++) {
            struct worker *w = &ws[i];
            pthread_mutex_lock(&w->mu);
            if (k < w->n_slots) {
                n += w->slots[k].n;
                errors += w->slots[k].errors;
                if (w->slots[k].max_ms > max_ms) {
                    max_ms = w->slots[k].max_ms;
                }
                for (size_t j = k + 1; j < w->n_slots; j++) {
                    later = later || w->slots[j].n > 0;
                }
            }
            /* Requests sent before the boundary and still unanswered. */
            for (unsigned s = 1; s <= w->inflight; s++) {
                double st = w->started[s];
                if (st > 0 && st < boundary &&
                    (boundary - st) * 1000.0 > max_ms) {
                    max_ms = (boundary - st) * 1000.0;
                }
            }
            all_done = all_done && w->done;
            pthread_mutex_unlock(&w->mu);
        }
        if (width < iv / 100) {
            width = iv; /* an interval of the final answers only */
        }
        printf("interval %8.3f %.3f %-8s %10.0f %9.3f %8llu\n",
               boundary - rs->t0, epoch0 + (boundary - rs->t0), rs->op,
               (double)n / width, max_ms, (unsigned long long)errors);
        fflush(stdout);
        if (boundary >= rs->end && all_done && !later) {
            break;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    size_t i;
    if (n == 0) {
        return 0;
    }
    i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Run @p op with @p clients requests in flight over the connections, for
 * the configured time (a load: until its keys are written). */
static void drive(const struct config *cfg,
                  const char *op,
                  unsigned clients,
                  struct result *res)
{
    unsigned m = cfg->connections < clients ? cfg->connections : clients;
    struct worker *ws = calloc(m, sizeof(*ws));
    pthread_t *ts = calloc(m, sizeof(*ts));
    struct run_state rs;
    double epoch0;
    size_t k = 0;

    if (ws == NULL || ts == NULL) {
        oom();
    }
    memset(res, 0, sizeof(*res));
    memset(&rs, 0, sizeof(rs));
    rs.cfg = cfg;
    rs.op = op;
    atomic_init(&rs.next_key, 0);
    for (unsigned i = 0; i < m; i++) {
        ws[i].rs = &rs;
        ws[i].inflight = clients / m + (i < clients % m ? 1 : 0);
        ws[i].seed = 1234 + i;
        ws[i].started = calloc(ws[i].inflight + 1, sizeof(double));
        ws[i].got = calloc(ws[i].inflight + 1, sizeof(unsigned));
        ws[i].want = calloc(ws[i].inflight + 1, sizeof(unsigned));
        if (ws[i].started == NULL || ws[i].got == NULL || ws[i].want == NULL) {
            oom();
        }
        pthread_mutex_init(&ws[i].mu, NULL);
        ws[i].fd = dial(&cfg->ep[i % cfg->n_ep]);
    }
    rs.t0 = now();
    epoch0 = wall_now();
    rs.end = strcmp(op, "load") == 0 ? rs.t0 + 1e9 : rs.t0 + cfg->seconds;
    for (unsigned i = 0; i < m; i++) {
        if (pthread_create(&ts[i], NULL, run, &ws[i]) != 0) {
            die("pthread_create");
        }
    }
    if (cfg->interval > 0 && strcmp(op, "load") != 0) {
        report_intervals(&rs, ws, m, epoch0);
    }
    for (unsigned i = 0; i < m; i++) {
        pthread_join(ts[i], NULL);
        res->n += ws[i].n_lat;
        res->errors += ws[i].errors;
        if (res->first_error[0] == '\0' && ws[i].errors > 0) {
            memcpy(res->first_error, ws[i].first_error,
                   sizeof(res->first_error));
        }
    }
    res->elapsed = now() - rs.t0;
    res->lat = malloc((res->n + 1) * sizeof(*res->lat));
    if (res->lat == NULL) {
        oom();
    }
    for (unsigned i = 0; i < m; i++) {
        memcpy(res->lat + k, ws[i].lat, ws[i].n_lat * sizeof(*res->lat));
        k += ws[i].n_lat;
        free(ws[i].lat);
        free(ws[i].started);
        free(ws[i].got);
        free(ws[i].want);
        free(ws[i].slots);
        pthread_mutex_destroy(&ws[i].mu);
        close(ws[i].fd);
    }
    qsort(res->lat, res->n, sizeof(*res->lat), cmp_double);
    free(ws);
    free(ts);
}

static void bench(const struct config *cfg, const char *op)
{
    struct result res;
    unsigned m = cfg->connections;

    drive(cfg, op, cfg->clients, &res);
    printf("%-8s %7u %5u %10.0f %9.3f %9.3f %9.3f %9.3f %8llu\n", op,
           cfg->clients, m, (double)res.n / res.elapsed,
           pct(res.lat, res.n, 50), pct(res.lat, res.n, 99),
           pct(res.lat, res.n, 99.9), res.n > 0 ? res.lat[res.n - 1] : 0,
           (unsigned long long)res.errors);
    if (res.errors > 0) {
        printf("         first error: %s\n", res.first_error);
    }
    fflush(stdout);
    free(res.lat);
}

/* Create the K parameters the reads use, max(N, 64) writes in flight. */
static void load(const struct config *cfg)
{
    struct result res;
    unsigned inflight =
        cfg->clients > LOAD_INFLIGHT ? cfg->clients : LOAD_INFLIGHT;

    fprintf(stderr, "loading %u %s parameters of %zu bytes under %s...\n",
            cfg->keys, cfg->type, cfg->value_size, cfg->prefix);
    drive(cfg, "load", inflight, &res);
    if (res.errors > 0) {
        fprintf(stderr, "cairn-bench: load failed (%llu errors): %s\n",
                (unsigned long long)res.errors, res.first_error);
        exit(1);
    }
    fprintf(stderr,
            "loaded %u parameters in %.2f s: %.0f puts/s, %u in flight over "
            "%u connections, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
            cfg->keys, res.elapsed, (double)res.n / res.elapsed, inflight,
            cfg->connections < inflight ? cfg->connections : inflight,
            pct(res.lat, res.n, 50), pct(res.lat, res.n, 99),
            res.n > 0 ? res.lat[res.n - 1] : 0);
    free(res.lat);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench [options]\n"
            "  --endpoint HOST:PORT[,HOST:PORT...]\n"
            "                      servers; connection i goes to endpoint\n"
            "                      i mod count ($CAIRN_ENDPOINT, else "
            "127.0.0.1:7400)\n"
            "  --clients N         requests in flight in all (16)\n"
            "  --connections M     connections the clients share (4)\n"
            "  --seconds S         time per operation (5)\n"
            "  --op OP             get, by-path, put, mix (90%% get, 10%% "
            "put) or\n"
            "                      all: get, by-path, put (all)\n"
            "  --keys K            parameters the operations use (10000)\n"
            "  --value-size B      bytes per value, 1..4096 (1024)\n"
            "  --path-size R       parameters per path PREFIX/appNNNN, "
            "1..1000 (10);\n"
            "                      by-path reads R results, streamed "
            "beyond 10\n"
            "  --stale             stale reads (consistency: stale)\n"
            "  --no-load           do not create the K parameters first\n"
            "  --load-only N       create N parameters with max(--clients, "
            "64) writes\n"
            "                      in flight, print the rate on stderr, "
            "exit\n"
            "  --interval S        also print a row every S seconds: "
            "\"interval\",\n"
            "                      seconds since start, Unix time, op, QPS, "
            "max ms,\n"
            "                      errors in that interval\n"
            "  --type T            String or SecureString: the Type of the "
            "load's and\n"
            "                      put's values (String); SecureString is "
            "sealed by\n"
            "                      the server, which needs a root key\n"
            "  --with-decryption   get and by-path send WithDecryption: "
            "true (the\n"
            "                      server opens SecureString values; "
            "without it they\n"
            "                      come back sealed)\n"
            "  --prefix PATH       parameters are PATH/appNNNN/keyD "
            "(/bench); a type\n"
            "                      cannot change between String and "
            "SecureString,\n"
            "                      so keep each under its own prefix\n"
            "  --help              this text\n"
            "Rows: op clients conns QPS p50 p99 p99.9 max errors (ms).\n");
}

/* A whole non-negative number from @p v into @p out; -1 if it is not. */
static int parse_uint(const char *v, unsigned *out)
{
    char *end;
    unsigned long u;

    errno = 0;
    u = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 ||
        u > 0xffffffffUL) {
        return -1;
    }
    *out = (unsigned)u;
    return 0;
}

static int parse_seconds(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || *end != '\0' || !(d > 0) || d > 1e6) {
        return -1;
    }
    *out = d;
    return 0;
}

/* Split "h:p,h:p" into cfg->ep; -1 on a bad or empty entry. */
static int parse_endpoints(struct config *cfg, const char *spec)
{
    const char *p = spec;

    cfg->n_ep = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *colon = memrchr(p, ':', n);
        const char *host = p;
        size_t host_len = colon != NULL ? (size_t)(colon - p) : 0;
        struct endpoint *ep;

        if (cfg->n_ep == MAX_ENDPOINTS || colon == NULL || host_len == 0 ||
            (size_t)(p + n - colon - 1) == 0 ||
            (size_t)(p + n - colon - 1) >= sizeof(ep->port)) {
            return -1;
        }
        if (host[0] == '[' && host[host_len - 1] == ']') {
            host++; /* [::1]:7400 */
            host_len -= 2;
        }
        ep = &cfg->ep[cfg->n_ep++];
        if (host_len == 0 || host_len >= sizeof(ep->host)) {
            return -1;
        }
        memcpy(ep->host, host, host_len);
        ep->host[host_len] = '\0';
        memcpy(ep->port, colon + 1, (size_t)(p + n - colon - 1));
        ep->port[p + n - colon - 1] = '\0';
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}

int main(int argc, char **argv)
{
    struct config cfg;
    const char *endpoint = getenv("CAIRN_ENDPOINT");
    bool do_load = true;
    unsigned load_only = 0;

    memset(&cfg, 0, sizeof(cfg));
    cfg.clients = 16;
    cfg.connections = 4;
    cfg.seconds = 5;
    cfg.op = "all";
    cfg.keys = 10000;
    cfg.value_size = 1024;
    cfg.type = "String";
    cfg.prefix = "/bench";
    cfg.path_size = 10;
    if (endpoint == NULL || endpoint[0] == '\0') {
        endpoint = "127.0.0.1:7400";
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned u = 0;
        int bad = 0;

        if (strcmp(a, "--stale") == 0) {
            cfg.stale = true;
            continue;
        }
        if (strcmp(a, "--no-load") == 0) {
            do_load = false;
            continue;
        }
        if (strcmp(a, "--with-decryption") == 0) {
            cfg.with_decryption = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--endpoint") == 0) {
            endpoint = v;
        } else if (strcmp(a, "--clients") == 0) {
            bad = parse_uint(v, &cfg.clients);
        } else if (strcmp(a, "--connections") == 0) {
            bad = parse_uint(v, &cfg.connections);
        } else if (strcmp(a, "--seconds") == 0) {
            bad = parse_seconds(v, &cfg.seconds);
        } else if (strcmp(a, "--op") == 0) {
            cfg.op = v;
        } else if (strcmp(a, "--keys") == 0) {
            bad = parse_uint(v, &cfg.keys);
        } else if (strcmp(a, "--value-size") == 0) {
            bad = parse_uint(v, &u);
            cfg.value_size = u;
        } else if (strcmp(a, "--path-size") == 0) {
            bad = parse_uint(v, &cfg.path_size);
            bad =
                bad != 0 || cfg.path_size == 0 || cfg.path_size > 1000 ? -1 : 0;
        } else if (strcmp(a, "--load-only") == 0) {
            bad = parse_uint(v, &load_only);
            bad = bad != 0 || load_only == 0 ? -1 : 0;
        } else if (strcmp(a, "--interval") == 0) {
            bad = parse_seconds(v, &cfg.interval);
        } else if (strcmp(a, "--type") == 0) {
            cfg.type = v;
            if (strcmp(v, "String") != 0 && strcmp(v, "SecureString") != 0) {
                bad = -1;
            }
        } else if (strcmp(a, "--prefix") == 0) {
            size_t n = strlen(v);
            cfg.prefix = v;
            /* A path of one level or more, no trailing slash. */
            if (n < 2 || n > MAX_PREFIX || v[0] != '/' || v[n - 1] == '/') {
                bad = -1;
            }
        } else {
            usage(stderr);
            return 2;
        }
        if (bad != 0) {
            fprintf(stderr, "cairn-bench: bad value for %s: %s\n", a, v);
            return 2;
        }
    }
    if (parse_endpoints(&cfg, endpoint) != 0) {
        fprintf(stderr, "cairn-bench: bad endpoint list %s\n", endpoint);
        return 2;
    }
    if (load_only > 0) {
        cfg.keys = load_only;
    }
    if (cfg.clients == 0 || cfg.connections == 0 || cfg.keys < cfg.path_size ||
        cfg.value_size == 0 || cfg.value_size > 4096) {
        fprintf(stderr,
                "cairn-bench: clients, connections >= 1, keys >= path size, "
                "value size 1..4096\n");
        return 2;
    }
    if (strcmp(cfg.op, "all") != 0 && strcmp(cfg.op, "get") != 0 &&
        strcmp(cfg.op, "by-path") != 0 && strcmp(cfg.op, "put") != 0 &&
        strcmp(cfg.op, "mix") != 0) {
        usage(stderr);
        return 2;
    }
    if (cfg.connections > cfg.clients) {
        cfg.connections = cfg.clients;
    }
    if (load_only > 0) {
        load(&cfg);
        return 0;
    }
    if (do_load) {
        load(&cfg);
    }
    printf("%-8s %7s %5s %10s %9s %9s %9s %9s %8s\n", "op", "clients", "conns",
           "QPS", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors");
    if (strcmp(cfg.op, "all") == 0) {
        bench(&cfg, "get");
        bench(&cfg, "by-path");
        bench(&cfg, "put");
    } else {
        bench(&cfg, cfg.op);
    }
    return 0;
}
