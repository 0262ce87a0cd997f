/* cairn-bench: a load tool for a running Cairn server. N concurrent clients
 * spread over M connections (clients/connections requests in flight on each
 * connection, multiplexed as streams) run one operation for a fixed time;
 * it prints QPS and p50/p99/p99.9 latency.
 *
 *   cairn-bench [--endpoint HOST:PORT] [--clients N] [--connections M]
 *               [--seconds S] [--op get|by-path|put|all] [--keys K]
 *               [--value-size B] [--stale]
 *
 * get:     GetParameter of a random one of K parameters
 * by-path: GetParametersByPath of a random leaf path (10 results)
 * put:     PutParameter (Overwrite) of a random parameter, B-byte value */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"
#include "wire.h"

struct config
{
    char host[256];
    char port[16];
    unsigned clients;
    unsigned connections;
    double seconds;
    const char *op;
    unsigned keys;
    size_t value_size;
    bool stale;
};

struct worker
{
    const struct config *cfg;
    const char *op;
    unsigned inflight; /* requests kept outstanding */
    unsigned seed;
    double *lat; /* latencies in ms */
    size_t n_lat, cap_lat;
    uint64_t errors;
    char first_error[256];
    int fd;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "cairn-bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int dial(const struct config *cfg)
{
    struct addrinfo hints, *res;
    int one = 1;
    int fd;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(cfg->host, cfg->port, &hints, &res) != 0) {
        fprintf(stderr, "cairn-bench: cannot resolve %s\n", cfg->host);
        exit(1);
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "cairn-bench: cannot connect to %s:%s: %s\n", cfg->host,
                cfg->port, strerror(errno));
        exit(1);
    }
    freeaddrinfo(res);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void key_name(char *out, size_t cap, unsigned i)
{
    snprintf(out, cap, "/bench/app%04u/key%u", i / 10, i % 10);
}

/* Encode one request of the worker's operation into @p out. */
static void encode(struct worker *w,
                   uint64_t stream,
                   struct buf *out,
                   struct buf *body,
                   struct buf *meta,
                   const char *value)
{
    msgpack_packer pk;
    char name[64];
    unsigned i = (unsigned)rand_r(&w->seed) % w->cfg->keys;
    const char *method;

    buf_reset(body);
    mp_packer_init(&pk, body);
    if (strcmp(w->op, "get") == 0) {
        method = "GetParameter";
        key_name(name, sizeof(name), i);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_cstr(&pk, "Name", name);
    } else if (strcmp(w->op, "by-path") == 0) {
        method = "GetParametersByPath";
        snprintf(name, sizeof(name), "/bench/app%04u", i / 10);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_cstr(&pk, "Path", name);
        mp_pack_kv_u64(&pk, "MaxResults", 10);
    } else {
        method = "PutParameter";
        key_name(name, sizeof(name), i);
        msgpack_pack_map(&pk, 4);
        mp_pack_kv_cstr(&pk, "Name", name);
        mp_pack_kv_cstr(&pk, "Value", value);
        mp_pack_kv_cstr(&pk, "Type", "String");
        mp_pack_kv_bool(&pk, "Overwrite", true);
    }
    if (wire_encode_request(out, stream, method, 30000,
                            meta->len > 0 ? meta->data : NULL, meta->len,
                            body->data, body->len) != 0) {
        fprintf(stderr, "cairn-bench: out of memory\n");
        exit(1);
    }
}

static void record(struct worker *w, double ms)
{
    if (w->n_lat == w->cap_lat) {
        size_t cap = w->cap_lat ? w->cap_lat * 2 : 65536;
        double *p = realloc(w->lat, cap * sizeof(*p));
        if (p == NULL) {
            fprintf(stderr, "cairn-bench: out of memory\n");
            exit(1);
        }
        w->lat = p;
        w->cap_lat = cap;
    }
    w->lat[w->n_lat++] = ms;
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

/* Run the worker's operation on its own connection until @p end, keeping
 * `inflight` requests outstanding: a closed loop per client. */
static void run(struct worker *w, double end)
{
    struct buf out, body, meta;
    struct wire_reader r;
    double *started = calloc(w->inflight + 1, sizeof(double));
    char *value = malloc(w->cfg->value_size + 1);
    uint64_t outstanding = 0;
    msgpack_packer pk;

    if (started == NULL || value == NULL) {
        fprintf(stderr, "cairn-bench: out of memory\n");
        exit(1);
    }
    memset(value, 'v', w->cfg->value_size);
    value[w->cfg->value_size] = '\0';
    buf_init(&out);
    buf_init(&body);
    buf_init(&meta);
    if (w->cfg->stale) {
        mp_packer_init(&pk, &meta);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_cstr(&pk, "consistency", "stale");
    }
    wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    /* Stream ids 1..inflight, each reused once its answer arrives. */
    buf_reset(&out);
    for (uint64_t s = 1; s <= w->inflight; s++) {
        encode(w, s, &out, &body, &meta, value);
        started[s] = now();
        outstanding++;
    }
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
        wire_reader_feed(&r, chunk, (size_t)n);
        t = now();
        buf_reset(&out);
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
                m.stream <= w->inflight) {
                record(w, (t - started[m.stream]) * 1000.0);
                if (m.status != 0) {
                    if (w->errors++ == 0) {
                        snprintf(w->first_error, sizeof(w->first_error),
                                 "%.*s: %.*s", (int)m.error_type.n,
                                 m.error_type.p ? m.error_type.p : "",
                                 (int)m.message.n,
                                 m.message.p ? m.message.p : "");
                    }
                }
                outstanding--;
                if (t < end) {
                    encode(w, m.stream, &out, &body, &meta, value);
                    started[m.stream] = now();
                    outstanding++;
                }
            }
            mp_doc_close(&doc);
        }
        if (out.len > 0) {
            send_all(w->fd, out.data, out.len);
        }
    }
    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&body);
    buf_close(&meta);
    free(started);
    free(value);
}

struct thread_arg
{
    struct worker *w;
    double end;
};

static void *thread_main(void *arg)
{
    struct thread_arg *a = arg;
    run(a->w, a->end);
    return NULL;
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

static void bench(const struct config *cfg, const char *op)
{
    unsigned m = cfg->connections;
    struct worker *ws = calloc(m, sizeof(*ws));
    struct thread_arg *args = calloc(m, sizeof(*args));
    pthread_t *ts = calloc(m, sizeof(*ts));
    double t0, elapsed, *all;
    size_t total = 0, k = 0;
    uint64_t errors = 0;
    const char *first_error = NULL;

    if (ws == NULL || args == NULL || ts == NULL) {
        fprintf(stderr, "cairn-bench: out of memory\n");
        exit(1);
    }
    for (unsigned i = 0; i < m; i++) {
        ws[i].cfg = cfg;
        ws[i].op = op;
        ws[i].inflight = cfg->clients / m + (i < cfg->clients % m ? 1 : 0);
        ws[i].seed = 1234 + i;
        ws[i].fd = dial(cfg);
    }
    t0 = now();
    for (unsigned i = 0; i < m; i++) {
        args[i].w = &ws[i];
        args[i].end = t0 + cfg->seconds;
        if (ws[i].inflight > 0 &&
            pthread_create(&ts[i], NULL, thread_main, &args[i]) != 0) {
            die("pthread_create");
        }
    }
    for (unsigned i = 0; i < m; i++) {
        if (ws[i].inflight > 0) {
            pthread_join(ts[i], NULL);
        }
        total += ws[i].n_lat;
        errors += ws[i].errors;
        if (first_error == NULL && ws[i].errors > 0) {
            first_error = ws[i].first_error;
        }
    }
    elapsed = now() - t0;
    all = malloc((total + 1) * sizeof(*all));
    if (all == NULL) {
        fprintf(stderr, "cairn-bench: out of memory\n");
        exit(1);
    }
    for (unsigned i = 0; i < m; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n_lat * sizeof(*all));
        k += ws[i].n_lat;
        free(ws[i].lat);
        close(ws[i].fd);
    }
    qsort(all, total, sizeof(*all), cmp_double);
    printf("%-8s %7u %5u %10.0f %9.3f %9.3f %9.3f %8llu\n", op, cfg->clients, m,
           (double)total / elapsed, pct(all, total, 50), pct(all, total, 99),
           pct(all, total, 99.9), (unsigned long long)errors);
    if (first_error != NULL) {
        printf("         first error: %s\n", first_error);
    }
    fflush(stdout);
    free(all);
    free(ws);
    free(args);
    free(ts);
}

/* Create the K parameters the reads use, 64 writes in flight. */
static void load(const struct config *cfg)
{
    struct config c = *cfg;
    struct worker w;
    struct buf out, body, meta;
    char *value = malloc(cfg->value_size + 1);
    struct wire_reader r;
    unsigned next = 0, done = 0, inflight = 0;

    if (value == NULL) {
        exit(1);
    }
    memset(value, 'v', cfg->value_size);
    value[cfg->value_size] = '\0';
    memset(&w, 0, sizeof(w));
    w.cfg = &c;
    w.fd = dial(cfg);
    buf_init(&out);
    buf_init(&body);
    buf_init(&meta);
    wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    while (done < cfg->keys) {
        buf_reset(&out);
        while (inflight < 64 && next < cfg->keys) {
            msgpack_packer pk;
            char name[64];
            key_name(name, sizeof(name), next);
            buf_reset(&body);
            mp_packer_init(&pk, &body);
            msgpack_pack_map(&pk, 4);
            mp_pack_kv_cstr(&pk, "Name", name);
            mp_pack_kv_cstr(&pk, "Value", value);
            mp_pack_kv_cstr(&pk, "Type", "String");
            mp_pack_kv_bool(&pk, "Overwrite", true);
            wire_encode_request(&out, ++next, "PutParameter", 30000, NULL, 0,
                                body.data, body.len);
            inflight++;
        }
        send_all(w.fd, out.data, out.len);
        while (inflight > 0) {
            uint8_t chunk[65536];
            const uint8_t *payload;
            size_t len;
            ssize_t n = recv(w.fd, chunk, sizeof(chunk), 0);
            if (n <= 0) {
                fprintf(stderr, "cairn-bench: connection lost while loading\n");
                exit(1);
            }
            wire_reader_feed(&r, chunk, (size_t)n);
            while (wire_reader_next(&r, &payload, &len) == 1) {
                struct wire_msg m;
                struct mp_doc doc;
                struct cairn_error err;
                if (wire_decode(payload, len, &m, &doc, &err) == 0) {
                    if (m.type == WIRE_RESPONSE) {
                        if (m.status != 0) {
                            fprintf(stderr, "cairn-bench: load failed: %.*s\n",
                                    (int)m.message.n,
                                    m.message.p ? m.message.p : "");
                            exit(1);
                        }
                        inflight--;
                        done++;
                    }
                    mp_doc_close(&doc);
                }
            }
            if (inflight < 32) {
                break;
            }
        }
    }
    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&body);
    buf_close(&meta);
    close(w.fd);
    free(value);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench [--endpoint HOST:PORT] [--clients N] "
            "[--connections M]\n"
            "                   [--seconds S] [--op get|by-path|put|all] "
            "[--keys K]\n"
            "                   [--value-size B] [--stale] [--no-load]\n");
}

int main(int argc, char **argv)
{
    struct config cfg;
    const char *endpoint = getenv("CAIRN_ENDPOINT");
    bool do_load = true;

    memset(&cfg, 0, sizeof(cfg));
    cfg.clients = 16;
    cfg.connections = 4;
    cfg.seconds = 5;
    cfg.op = "all";
    cfg.keys = 10000;
    cfg.value_size = 1024;
    if (endpoint == NULL) {
        endpoint = "127.0.0.1:7400";
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--stale") == 0) {
            cfg.stale = true;
            continue;
        }
        if (strcmp(a, "--no-load") == 0) {
            do_load = false;
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
            cfg.clients = (unsigned)atoi(v);
        } else if (strcmp(a, "--connections") == 0) {
            cfg.connections = (unsigned)atoi(v);
        } else if (strcmp(a, "--seconds") == 0) {
            cfg.seconds = atof(v);
        } else if (strcmp(a, "--op") == 0) {
            cfg.op = v;
        } else if (strcmp(a, "--keys") == 0) {
            cfg.keys = (unsigned)atoi(v);
        } else if (strcmp(a, "--value-size") == 0) {
            cfg.value_size = (size_t)atol(v);
        } else {
            usage(stderr);
            return 2;
        }
    }
    {
        const char *colon = strrchr(endpoint, ':');
        if (colon == NULL || (size_t)(colon - endpoint) >= sizeof(cfg.host)) {
            fprintf(stderr, "cairn-bench: bad endpoint %s\n", endpoint);
            return 2;
        }
        memcpy(cfg.host, endpoint, (size_t)(colon - endpoint));
        snprintf(cfg.port, sizeof(cfg.port), "%s", colon + 1);
    }
    if (cfg.clients == 0 || cfg.connections == 0 || cfg.keys < 10 ||
        cfg.seconds <= 0 || cfg.value_size == 0 || cfg.value_size > 4096) {
        fprintf(stderr,
                "cairn-bench: clients, connections >= 1, keys >= 10, "
                "value size 1..4096\n");
        return 2;
    }
    if (cfg.connections > cfg.clients) {
        cfg.connections = cfg.clients;
    }
    if (do_load) {
        fprintf(stderr, "loading %u parameters of %zu bytes...\n", cfg.keys,
                cfg.value_size);
        load(&cfg);
    }
    printf("%-8s %7s %5s %10s %9s %9s %9s %8s\n", "op", "clients", "conns",
           "QPS", "p50 ms", "p99 ms", "p99.9 ms", "errors");
    if (strcmp(cfg.op, "all") == 0) {
        bench(&cfg, "get");
        bench(&cfg, "by-path");
        bench(&cfg, "put");
    } else if (strcmp(cfg.op, "get") == 0 || strcmp(cfg.op, "by-path") == 0 ||
               strcmp(cfg.op, "put") == 0) {
        bench(&cfg, cfg.op);
    } else {
        usage(stderr);
        return 2;
    }
    return 0;
}
