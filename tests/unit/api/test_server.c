/* Unit tests for api/server.c: the server runs on a libuv loop in its own
 * thread, against a test double of the service layer defined here, and the
 * test thread drives it with blocking sockets. */
#include "test.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "mp.h"
#include "server.h"
#include "service.h"
#include "wire.h"

/******************************************************************************
 *
 * Service double
 *
 *****************************************************************************/

/* The double runs on the loop thread. Methods:
 *   Echo        answers the request body at once;
 *   Delay       answers the body after {"ms": N} milliseconds;
 *   Slow        never answers unless cancelled;
 *   Fail        fails at once with NOT_FOUND / ParameterNotFound;
 *   Big         answers {"Blob": <N bytes>} for {"n": N};
 *   Paged       three pages, at once: {"Page", "Keys", "Path", NextToken};
 *   PagedAsync  the same pages, each after 1 ms.
 * Keys is the number of keys in the request map, to check that the server
 * replaces NextToken instead of adding a second one. */

static uv_loop_t *double_loop;
static atomic_int echo_calls;
static atomic_int all_calls;
static atomic_int cancels;
static atomic_int outstanding; /* asynchronous calls not yet answered */
static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static struct
{
    char cid[129];
    uint64_t seq;
    bool stale;
    char user[256];
    bool has_cid, has_user;
} last_meta;
/* The stale flag of each Paged call, in order (under meta_lock). */
static bool paged_stale[16];
static unsigned n_paged;

struct pending
{
    uv_timer_t timer;
    struct service_call *call;
    int status;
    struct buf body;
    bool fired;
};

static void pending_free(uv_handle_t *h)
{
    struct pending *p = h->data;
    buf_close(&p->body);
    free(p);
}

static void pending_fire(uv_timer_t *t)
{
    struct pending *p = t->data;
    struct service_call *call = p->call;

    p->fired = true;
    call->pending = NULL;
    uv_close((uv_handle_t *)&p->timer, pending_free);
    atomic_fetch_sub(&outstanding, 1);
    call->cb(call, p->status, p->body.data, p->body.len);
}

/* Answer later: after @p ms, or never when @p ms is negative (until
 * cancelled). */
static void answer_later(struct service_call *call,
                         int status,
                         const void *body,
                         size_t len,
                         int ms)
{
    struct pending *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->call = call;
    p->status = status;
    buf_init(&p->body);
    if (len > 0) {
        assert_int_equal(buf_append(&p->body, body, len), 0);
    }
    uv_timer_init(double_loop, &p->timer);
    p->timer.data = p;
    call->pending = p;
    atomic_fetch_add(&outstanding, 1);
    if (ms >= 0) {
        uv_timer_start(&p->timer, pending_fire, (uint64_t)ms, 0);
    }
}

static void record_meta(const struct service_meta *meta)
{
    pthread_mutex_lock(&meta_lock);
    memset(&last_meta, 0, sizeof(last_meta));
    if (meta->cid != NULL) {
        snprintf(last_meta.cid, sizeof(last_meta.cid), "%s", meta->cid);
        last_meta.has_cid = true;
    }
    if (meta->user != NULL) {
        snprintf(last_meta.user, sizeof(last_meta.user), "%s", meta->user);
        last_meta.has_user = true;
    }
    last_meta.seq = meta->seq;
    last_meta.stale = meta->stale;
    pthread_mutex_unlock(&meta_lock);
}

/* The page after the request's NextToken (none: 1, "p2": 2, "p3": 3). */
static void page_body(const void *body, size_t len, struct buf *out)
{
    struct mp_doc doc;
    struct mp_str token = {NULL, 0};
    struct mp_str path = {"", 0};
    msgpack_packer pk;
    int page = 1;
    uint32_t keys = 0;
    bool parsed = mp_doc_parse(&doc, body, len, NULL) == 0;

    if (parsed) {
        if (doc.root.type == MSGPACK_OBJECT_MAP) {
            keys = doc.root.via.map.size;
        }
        if (mp_get_str(&doc.root, "NextToken", &token, NULL) == 1) {
            page = token.n == 2 && token.p[0] == 'p' ? token.p[1] - '0' : 99;
        }
        mp_get_str(&doc.root, "Path", &path, NULL);
    }
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, page < 3 ? 4 : 3);
    mp_pack_kv_u64(&pk, "Page", (uint64_t)page);
    mp_pack_kv_u64(&pk, "Keys", keys);
    mp_pack_kv_str(&pk, "Path", path.p, path.n);
    if (page < 3) {
        char next[3] = {'p', (char)('0' + page + 1), '\0'};
        mp_pack_kv_cstr(&pk, "NextToken", next);
    }
    if (parsed) {
        mp_doc_close(&doc);
    }
}

static uint64_t body_uint(const void *body, size_t len, const char *key)
{
    struct mp_doc doc;
    uint64_t v = 0;

    if (mp_doc_parse(&doc, body, len, NULL) == 0) {
        mp_get_u64(&doc.root, key, &v, NULL);
        mp_doc_close(&doc);
    }
    return v;
}

static bool is(const char *method, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(method, name, len) == 0;
}

void service_call(struct service *svc,
                  struct service_call *call,
                  const char *method,
                  size_t method_len,
                  const void *body,
                  size_t body_len,
                  const struct service_meta *meta,
                  service_cb cb)
{
    struct buf out;

    call->svc = svc;
    call->cb = cb;
    call->cancelled = false;
    cairn_error_clear(&call->err);
    call->pending = NULL;
    atomic_fetch_add(&all_calls, 1);
    record_meta(meta);
    buf_init(&out);
    if (is(method, method_len, "Echo")) {
        atomic_fetch_add(&echo_calls, 1);
        cb(call, 0, body, body_len);
    } else if (is(method, method_len, "Delay")) {
        answer_later(call, 0, body, body_len,
                     (int)body_uint(body, body_len, "ms"));
    } else if (is(method, method_len, "Slow")) {
        answer_later(call, 0, NULL, 0, -1);
    } else if (is(method, method_len, "Fail")) {
        cairn_error_set(&call->err, CAIRN_NOT_FOUND, "ParameterNotFound",
                        "Parameter /x not found.");
        cb(call, CAIRN_NOT_FOUND, NULL, 0);
    } else if (is(method, method_len, "Big")) {
        msgpack_packer pk;
        size_t n = body_uint(body, body_len, "n");
        char *blob = calloc(1, n + 1);
        assert_non_null(blob);
        mp_packer_init(&pk, &out);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "Blob", blob, n);
        free(blob);
        cb(call, 0, out.data, out.len);
    } else if (is(method, method_len, "Paged")) {
        pthread_mutex_lock(&meta_lock);
        if (n_paged < 16) {
            paged_stale[n_paged++] = meta->stale;
        }
        pthread_mutex_unlock(&meta_lock);
        page_body(body, body_len, &out);
        cb(call, 0, out.data, out.len);
    } else if (is(method, method_len, "PagedAsync")) {
        page_body(body, body_len, &out);
        answer_later(call, 0, out.data, out.len, 1);
    } else {
        cairn_error_set(&call->err, CAIRN_UNIMPLEMENTED,
                        "UnknownOperationException", "unknown method");
        cb(call, CAIRN_UNIMPLEMENTED, NULL, 0);
    }
    buf_close(&out);
}

void service_cancel(struct service_call *call)
{
    struct pending *p = call->pending;

    atomic_fetch_add(&cancels, 1);
    call->cancelled = true;
    /* The callback still runs once, later (service.h). */
    if (p != NULL && !p->fired) {
        p->status = CAIRN_CANCELLED;
        cairn_error_set(&call->err, CAIRN_CANCELLED, NULL, "cancelled");
        uv_timer_start(&p->timer, pending_fire, 0, 0);
    }
}

bool service_is_paged(const char *method, size_t len)
{
    return is(method, len, "Paged") || is(method, len, "PagedAsync");
}

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

/* The loop runs in its own thread; the test thread only touches the server
 * through sockets and through `stop`, which closes it on the loop. */
struct fixture
{
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct server *srv;
    struct server_options o;
    int port;
    bool stop_sent;
    atomic_bool closed;
};

static void on_server_closed(void *data)
{
    struct fixture *f = data;
    atomic_store(&f->closed, true);
}

static void on_stop(uv_async_t *a)
{
    struct fixture *f = a->data;
    server_close(f->srv, on_server_closed, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    struct fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int start(void **state, void (*tune)(struct server_options *))
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cairn_error err;

    if (f == NULL || uv_loop_init(&f->loop) != 0) {
        return -1;
    }
    double_loop = &f->loop;
    atomic_store(&echo_calls, 0);
    atomic_store(&all_calls, 0);
    atomic_store(&cancels, 0);
    atomic_store(&outstanding, 0);
    server_options_default(&f->o);
    f->o.port = 0;
    f->o.max_frame = 1u << 20;
    f->o.max_streams = 64;
    if (tune != NULL) {
        tune(&f->o);
    }
    if (server_start(&f->loop, NULL, &f->o, &f->srv, &err) != 0) {
        fprintf(stderr, "server_start: %s\n", err.msg);
        return -1;
    }
    f->port = server_port(f->srv);
    uv_async_init(&f->loop, &f->stop, on_stop);
    f->stop.data = f;
    if (pthread_create(&f->thread, NULL, loop_main, f) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static void stop_server(struct fixture *f)
{
    if (!f->stop_sent) {
        f->stop_sent = true;
        uv_async_send(&f->stop);
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rv;

    stop_server(f);
    pthread_join(f->thread, NULL);
    assert_true(atomic_load(&f->closed));
    /* Every handle is closed and every call answered: nothing leaked. */
    rv = uv_loop_close(&f->loop);
    assert_int_equal(rv, 0);
    assert_int_equal(atomic_load(&outstanding), 0);
    free(f);
    return 0;
}

static int setup(void **state)
{
    return start(state, NULL);
}

static void tune_small_unsent(struct server_options *o)
{
    o->max_unsent = 64 * 1024;
}

static int setup_small_unsent(void **state)
{
    return start(state, tune_small_unsent);
}

static void tune_idle(struct server_options *o)
{
    o->idle_timeout_ms = 200;
    o->default_timeout_ms = 300;
}

static int setup_idle(void **state)
{
    return start(state, tune_idle);
}

static void tune_max_conns(struct server_options *o)
{
    o->max_connections = 3;
}

static int setup_max_conns(void **state)
{
    return start(state, tune_max_conns);
}

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll @p cond every 5 ms for up to @p ms; true once it holds. */
#define WAIT_UNTIL(cond, ms)                   \
    ({                                         \
        uint64_t until_ = now_ms() + (ms);     \
        while (!(cond) && now_ms() < until_) { \
            usleep(5000);                      \
        }                                      \
        (bool)(cond);                          \
    })

static int cl_connect_opts(int port, int rcvbuf)
{
    struct sockaddr_in a;
    struct timeval tv = {5, 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fail_msg("connect: %s", strerror(errno));
    }
    return fd;
}

static int cl_connect(int port)
{
    return cl_connect_opts(port, 0);
}

static void cl_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            fail_msg("send: %s", strerror(errno));
        }
        b += k;
        n -= (size_t)k;
    }
}

/* Append a request frame with JSON metadata and body (either NULL). */
static void add_request(struct buf *out,
                        uint64_t id,
                        const char *method,
                        uint32_t timeout_ms,
                        const char *meta_json,
                        const char *body_json)
{
    struct buf meta, body;

    buf_init(&meta);
    buf_init(&body);
    if (meta_json != NULL) {
        test_json_to_mp(meta_json, &meta);
    }
    test_json_to_mp(body_json != NULL ? body_json : "{}", &body);
    assert_int_equal(wire_encode_request(out, id, method, timeout_ms, meta.data,
                                         meta.len, body.data, body.len),
                     0);
    buf_close(&meta);
    buf_close(&body);
}

static void cl_request(int fd,
                       uint64_t id,
                       const char *method,
                       uint32_t timeout_ms,
                       const char *meta_json,
                       const char *body_json)
{
    struct buf b;

    buf_init(&b);
    add_request(&b, id, method, timeout_ms, meta_json, body_json);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
}

/* Send JSON as one raw frame payload (for malformed frames). */
static void cl_send_json_frame(int fd, const char *json)
{
    struct buf p;
    uint8_t h[4];

    buf_init(&p);
    test_json_to_mp(json, &p);
    h[0] = (uint8_t)(p.len >> 24);
    h[1] = (uint8_t)(p.len >> 16);
    h[2] = (uint8_t)(p.len >> 8);
    h[3] = (uint8_t)p.len;
    cl_send(fd, h, 4);
    cl_send(fd, p.data, p.len);
    buf_close(&p);
}

/* A received frame, decoded. */
struct rx
{
    struct buf raw;
    struct mp_doc doc;
    struct wire_msg m;
    bool open;
};

static int recv_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;

    while (n > 0) {
        ssize_t k = recv(fd, b, n, 0);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return -1; /* timed out */
        }
        if (k <= 0) {
            return 0; /* EOF or reset */
        }
        b += k;
        n -= (size_t)k;
    }
    return 1;
}

static void rx_close(struct rx *r)
{
    if (r->open) {
        mp_doc_close(&r->doc);
        r->open = false;
    }
    buf_close(&r->raw);
}

/* 1 with a frame in @p r (closed by the next rx_read or rx_close), 0 on
 * EOF or reset, -1 on timeout. */
static int rx_read(int fd, struct rx *r)
{
    struct cairn_error err;
    uint8_t h[4];
    uint32_t n;
    int rv;

    rx_close(r);
    buf_init(&r->raw);
    rv = recv_all(fd, h, 4);
    if (rv != 1) {
        return rv;
    }
    n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
        ((uint32_t)h[2] << 8) | h[3];
    assert_int_equal(buf_reserve(&r->raw, n), 0);
    rv = recv_all(fd, r->raw.data, n);
    if (rv != 1) {
        return rv;
    }
    r->raw.len = n;
    if (wire_decode(r->raw.data, n, &r->m, &r->doc, &err) != 0) {
        fail_msg("the server sent a bad frame: %s", err.msg);
    }
    r->open = true;
    return 1;
}

static void rx_expect(int fd, struct rx *r, enum wire_type type)
{
    int rv = rx_read(fd, r);
    if (rv != 1) {
        fail_msg("expected a frame, got %s", rv == 0 ? "EOF" : "a timeout");
    }
    assert_int_equal(r->m.type, type);
}

static char *rx_body_json(struct rx *r)
{
    return test_mp_to_json(r->m.body.p, r->m.body.n);
}

#define assert_body(r, json)             \
    do {                                 \
        char *got_ = rx_body_json(r);    \
        assert_string_equal(got_, json); \
        free(got_);                      \
    } while (0)

#define assert_msg(r, text)                                         \
    do {                                                            \
        char got_[512];                                             \
        snprintf(got_, sizeof(got_), "%.*s", (int)(r)->m.message.n, \
                 (r)->m.message.p);                                 \
        assert_string_equal(got_, text);                            \
    } while (0)

#define assert_msg_has(r, text)                                     \
    do {                                                            \
        char got_[512];                                             \
        snprintf(got_, sizeof(got_), "%.*s", (int)(r)->m.message.n, \
                 (r)->m.message.p);                                 \
        if (strstr(got_, text) == NULL) {                           \
            fail_msg("message \"%s\" lacks \"%s\"", got_, text);    \
        }                                                           \
    } while (0)

/* The connection ends (after a GOAWAY with @p status, unless -1). */
static void expect_goaway_then_eof(int fd, int status)
{
    struct rx r = {0};

    rx_expect(fd, &r, WIRE_GOAWAY);
    if (status >= 0) {
        assert_int_equal(r.m.status, status);
    }
    assert_int_equal(rx_read(fd, &r), 0);
    rx_close(&r);
}

/* One echo round trip on a fresh connection: the server still serves. */
static void assert_serving(int port)
{
    struct rx r = {0};
    int fd = cl_connect(port);

    cl_request(fd, 77, "Echo", 0, NULL, "{\"alive\":true}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 77);
    assert_int_equal(r.m.status, 0);
    assert_body(&r, "{\"alive\":true}");
    rx_close(&r);
    close(fd);
}

/******************************************************************************
 *
 * Requests and responses
 *
 *****************************************************************************/

/* A request is answered on its stream with the service's body. */
static void echo_round_trip(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int fd = cl_connect(f->port);

    cl_request(fd, 1, "Echo", 0, NULL, "{\"Name\":\"/a\",\"Value\":\"v\"}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 1);
    assert_int_equal(r.m.status, 0);
    assert_false(r.m.more);
    assert_int_equal(r.m.error_type.n, 0);
    assert_body(&r, "{\"Name\":\"/a\",\"Value\":\"v\"}");
    rx_close(&r);
    close(fd);
}

/* A service error reaches the client with its status, name and message. */
static void service_error(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int fd = cl_connect(f->port);

    cl_request(fd, 3, "Fail", 0, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 3);
    assert_int_equal(r.m.status, CAIRN_NOT_FOUND);
    assert_true(mp_str_eqn(r.m.error_type, "ParameterNotFound"));
    assert_msg(&r, "Parameter /x not found.");
    assert_int_equal(r.m.body.n, 0);
    rx_close(&r);
    close(fd);
}

/* Metadata reaches the service: cid, seq, stale consistency and user. */
static void metadata_passed(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int fd = cl_connect(f->port);

    cl_request(fd, 1, "Echo", 0,
               "{\"cid\":\"c-1\",\"seq\":7,\"consistency\":\"stale\","
               "\"user\":\"arn:aws:iam::1:user/u\",\"x-ext\":1}",
               NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.status, 0);
    pthread_mutex_lock(&meta_lock);
    assert_true(last_meta.has_cid);
    assert_string_equal(last_meta.cid, "c-1");
    assert_int_equal(last_meta.seq, 7);
    assert_true(last_meta.stale);
    assert_string_equal(last_meta.user, "arn:aws:iam::1:user/u");
    pthread_mutex_unlock(&meta_lock);

    cl_request(fd, 2, "Echo", 0, "{\"consistency\":\"linearizable\"}", NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    pthread_mutex_lock(&meta_lock);
    assert_false(last_meta.has_cid);
    assert_false(last_meta.has_user);
    assert_false(last_meta.stale);
    pthread_mutex_unlock(&meta_lock);
    rx_close(&r);
    close(fd);
}

/* Many streams on one connection are answered as they complete, out of
 * order, each on its own stream id. */
static void concurrent_streams_out_of_order(void **state)
{
    struct fixture *f = *state;
    enum { N = 50 };
    struct rx r = {0};
    bool seen[N] = {false};
    uint64_t order[N];
    struct buf b;
    char body[64];
    int fd = cl_connect(f->port);

    /* One send, so the server reads every request before any completes;
     * later requests finish first. */
    buf_init(&b);
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof(body), "{\"ms\":%d,\"i\":%d}", (N - i) * 10, i);
        add_request(&b, (uint64_t)i, "Delay", 0, NULL, body);
    }
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    for (int k = 0; k < N; k++) {
        char want[64];
        char *got;

        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_int_equal(r.m.status, 0);
        assert_true(r.m.stream < N);
        assert_false(seen[r.m.stream]);
        seen[r.m.stream] = true;
        order[k] = r.m.stream;
        snprintf(want, sizeof(want), "{\"i\":%d,\"ms\":%d}", (int)r.m.stream,
                 (N - (int)r.m.stream) * 10);
        got = rx_body_json(&r);
        assert_string_equal(got, want);
        free(got);
    }
    assert_int_equal(order[0], N - 1);
    assert_int_equal(order[N - 1], 0);
    rx_close(&r);
    close(fd);
}

/* A request past its deadline gets DEADLINE_EXCEEDED and the call is
 * cancelled; its late callback only frees the stream. */
static void deadline_exceeded(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    uint64_t t0 = now_ms();
    int fd = cl_connect(f->port);

    cl_request(fd, 9, "Slow", 100, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 9);
    assert_int_equal(r.m.status, CAIRN_DEADLINE_EXCEEDED);
    assert_msg(&r, "deadline exceeded; the operation may still complete");
    assert_true(now_ms() - t0 >= 90);
    assert_true(WAIT_UNTIL(atomic_load(&cancels) == 1, 2000));
    assert_true(WAIT_UNTIL(atomic_load(&outstanding) == 0, 2000));
    /* The stream id is free again. */
    cl_request(fd, 9, "Echo", 0, NULL, "{\"again\":1}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.status, 0);
    assert_body(&r, "{\"again\":1}");
    rx_close(&r);
    close(fd);
}

/* A request without a timeout gets the server's default deadline. */
static void default_deadline(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int fd = cl_connect(f->port);

    (void)f;
    cl_request(fd, 4, "Slow", 0, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 4);
    assert_int_equal(r.m.status, CAIRN_DEADLINE_EXCEEDED);
    rx_close(&r);
    close(fd);
}

/* CANCEL answers CANCELLED and cancels the service call; a cancel for an
 * unknown stream is ignored. */
static void cancel(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect(f->port);

    cl_request(fd, 5, "Slow", 0, NULL, NULL);
    buf_init(&b);
    assert_int_equal(wire_encode_cancel(&b, 1234), 0);
    assert_int_equal(wire_encode_cancel(&b, 5), 0);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 5);
    assert_int_equal(r.m.status, CAIRN_CANCELLED);
    assert_true(WAIT_UNTIL(atomic_load(&cancels) == 1, 2000));
    assert_true(WAIT_UNTIL(atomic_load(&outstanding) == 0, 2000));
    /* Nothing else arrives for stream 5 or 1234. */
    cl_request(fd, 6, "Echo", 0, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 6);
    rx_close(&r);
    close(fd);
}

/* PING is answered with a PONG carrying the same nonce. */
static void ping_pong(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect(f->port);

    buf_init(&b);
    assert_int_equal(wire_encode_ping(&b, WIRE_PING, 0xfeedfacecafeULL), 0);
    assert_int_equal(wire_encode_ping(&b, WIRE_PONG, 1), 0); /* ignored */
    assert_int_equal(wire_encode_ping(&b, WIRE_PING, 2), 0);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    rx_expect(fd, &r, WIRE_PONG);
    assert_int_equal(r.m.stream, 0xfeedfacecafeULL);
    rx_expect(fd, &r, WIRE_PONG);
    assert_int_equal(r.m.stream, 2);
    rx_close(&r);
    close(fd);
}

/* A linearizable stream proves its consistency once: the service is asked
 * for the first page as the client asked (not stale), for the later ones
 * with stale set; a stale stream is stale throughout. */
static void server_stream_later_pages_stale(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int fd = cl_connect(f->port);
    static const char *const metas[] = {
        "{\"stream\":true}", "{\"stream\":true,\"consistency\":\"stale\"}"};

    for (int m = 0; m < 2; m++) {
        pthread_mutex_lock(&meta_lock);
        n_paged = 0;
        pthread_mutex_unlock(&meta_lock);
        cl_request(fd, 21, "Paged", 0, metas[m], "{\"Path\":\"/s\"}");
        for (int page = 0; page < 3; page++) {
            rx_expect(fd, &r, WIRE_RESPONSE);
            assert_int_equal(r.m.status, 0);
        }
        assert_false(r.m.more);
        pthread_mutex_lock(&meta_lock);
        assert_int_equal(n_paged, 3);
        assert_true(paged_stale[0] == (m == 1));
        assert_true(paged_stale[1]);
        assert_true(paged_stale[2]);
        pthread_mutex_unlock(&meta_lock);
    }
    rx_close(&r);
    close(fd);
}

/* A paged method with "stream": true sends every page, more=true on all
 * but the last; NextToken is replaced in the request, not added. */
static void server_streaming(void **state)
{
    struct fixture *f = *state;
    static const char *const methods[] = {"Paged", "PagedAsync"};
    struct rx r = {0};
    int fd = cl_connect(f->port);

    for (int m = 0; m < 2; m++) {
        cl_request(fd, 11, methods[m], 0, "{\"stream\":true}",
                   "{\"Path\":\"/a\"}");
        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_int_equal(r.m.stream, 11);
        assert_int_equal(r.m.status, 0);
        assert_true(r.m.more);
        assert_body(&r,
                    "{\"Keys\":1,\"NextToken\":\"p2\",\"Page\":1,"
                    "\"Path\":\"/a\"}");
        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_true(r.m.more);
        assert_body(&r,
                    "{\"Keys\":2,\"NextToken\":\"p3\",\"Page\":2,"
                    "\"Path\":\"/a\"}");
        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_int_equal(r.m.stream, 11);
        assert_false(r.m.more);
        assert_body(&r, "{\"Keys\":2,\"Page\":3,\"Path\":\"/a\"}");
    }

    /* Resuming from a token the client already has. */
    cl_request(fd, 12, "Paged", 0, "{\"stream\":true}",
               "{\"NextToken\":\"p2\",\"Path\":\"/b\"}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_true(r.m.more);
    assert_body(&r,
                "{\"Keys\":2,\"NextToken\":\"p3\",\"Page\":2,"
                "\"Path\":\"/b\"}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_false(r.m.more);
    assert_body(&r, "{\"Keys\":2,\"Page\":3,\"Path\":\"/b\"}");

    /* Without "stream", one page with its token. */
    cl_request(fd, 13, "Paged", 0, NULL, "{\"Path\":\"/c\"}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_false(r.m.more);
    assert_body(&r,
                "{\"Keys\":1,\"NextToken\":\"p2\",\"Page\":1,"
                "\"Path\":\"/c\"}");

    /* A token on a request that is not a map cannot be replaced. */
    cl_request(fd, 15, "Paged", 0, "{\"stream\":true}", "[1]");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 15);
    assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
    assert_false(r.m.more);

    /* "stream" on a method that is not paged is a plain call. */
    cl_request(fd, 14, "Echo", 0, "{\"stream\":true}",
               "{\"NextToken\":\"zz\"}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_false(r.m.more);
    assert_body(&r, "{\"NextToken\":\"zz\"}");
    rx_close(&r);
    close(fd);
}

/* A stream cancelled between pages stops; the connection goes on. */
static void streaming_cancelled(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect(f->port);

    cl_request(fd, 1, "PagedAsync", 0, "{\"stream\":true}", "{}");
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_true(r.m.more);
    buf_init(&b);
    assert_int_equal(wire_encode_cancel(&b, 1), 0);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    /* Page 2 may have been sent before the cancel arrived. */
    do {
        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_int_equal(r.m.stream, 1);
    } while (r.m.status == 0 && r.m.more);
    assert_true(r.m.status == CAIRN_CANCELLED || !r.m.more);
    rx_close(&r);
    assert_serving(f->port);
    close(fd);
}

/* A response larger than the frame limit becomes an error on its stream. */
static void response_too_large(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    char body[64];
    int fd = cl_connect(f->port);

    snprintf(body, sizeof(body), "{\"n\":%zu}", f->o.max_frame + 1);
    cl_request(fd, 2, "Big", 0, NULL, body);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 2);
    assert_int_equal(r.m.status, CAIRN_RESOURCE_EXHAUSTED);
    snprintf(body, sizeof(body), "{\"n\":%zu}", f->o.max_frame - 100);
    cl_request(fd, 3, "Big", 0, NULL, body);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.status, 0);
    rx_close(&r);
    close(fd);
}

/******************************************************************************
 *
 * Stream limits
 *
 *****************************************************************************/

/* A request on a stream id already open is refused on that id; the open
 * stream is unaffected. */
static void duplicate_stream_id(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect(f->port);

    cl_request(fd, 5, "Slow", 0, NULL, NULL);
    cl_request(fd, 5, "Echo", 0, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 5);
    assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
    assert_msg_has(&r, "already open");
    buf_init(&b);
    assert_int_equal(wire_encode_cancel(&b, 5), 0);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 5);
    assert_int_equal(r.m.status, CAIRN_CANCELLED);
    rx_close(&r);
    close(fd);
}

/* Past max_streams open streams, a request gets RESOURCE_EXHAUSTED. */
static void max_streams(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect(f->port);

    buf_init(&b);
    for (unsigned i = 0; i < f->o.max_streams; i++) {
        add_request(&b, i, "Slow", 0, NULL, NULL);
    }
    add_request(&b, 1000, "Echo", 0, NULL, NULL);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 1000);
    assert_int_equal(r.m.status, CAIRN_RESOURCE_EXHAUSTED);
    assert_true(mp_str_eqn(r.m.error_type, "ThrottlingException"));
    rx_close(&r);
    /* Closing the connection cancels every open stream. */
    close(fd);
    assert_true(
        WAIT_UNTIL(atomic_load(&cancels) == (int)f->o.max_streams, 3000));
    assert_true(WAIT_UNTIL(atomic_load(&outstanding) == 0, 3000));
}

/* A "user" metadata value of the wrong type, or a method name too long,
 * fails its stream only. */
static void bad_request_fields(void **state)
{
    struct fixture *f = *state;
    char meta[400];
    struct rx r = {0};
    int fd = cl_connect(f->port);

    cl_request(fd, 1, "Echo", 0, "{\"user\":42}", NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 1);
    assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
    snprintf(meta, sizeof(meta), "{\"user\":\"%0300d\"}", 0);
    cl_request(fd, 4, "Echo", 0, meta, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 4);
    assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
    assert_msg_has(&r, "user");
    cl_request(fd, 2, "Echo", 0, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.status, 0);
    assert_int_equal(atomic_load(&all_calls), 1);
    /* A method name too long to be one is unknown. */
    cl_request(
        fd, 3,
        "AVeryLongMethodNameThatNoServiceCouldPossiblyHaveBecauseItIsLong", 0,
        NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.stream, 3);
    assert_int_equal(r.m.status, CAIRN_UNIMPLEMENTED);
    assert_int_equal(atomic_load(&all_calls), 1);
    rx_close(&r);
    close(fd);
}

/******************************************************************************
 *
 * Bad input
 *
 *****************************************************************************/

/* A client that sends half a frame and hangs up leaves the server
 * serving. */
static void truncated_frame(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    int fd = cl_connect(f->port);

    buf_init(&b);
    add_request(&b, 1, "Echo", 0, NULL, "{\"Name\":\"/truncated\"}");
    cl_send(fd, b.data, b.len - 5);
    buf_close(&b);
    usleep(20000);
    close(fd);
    assert_serving(f->port);
}

/* A length prefix above max_frame gets GOAWAY RESOURCE_EXHAUSTED and the
 * connection is closed without waiting for the payload. */
static void oversized_frame(void **state)
{
    struct fixture *f = *state;
    static const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
    struct rx r = {0};
    char want[128];
    int fd = cl_connect(f->port);

    cl_send(fd, huge, sizeof(huge));
    rx_expect(fd, &r, WIRE_GOAWAY);
    assert_int_equal(r.m.status, CAIRN_RESOURCE_EXHAUSTED);
    snprintf(want, sizeof(want),
             "frame of 2147483647 bytes exceeds the maximum of %zu",
             f->o.max_frame);
    assert_msg(&r, want);
    assert_int_equal(rx_read(fd, &r), 0);
    rx_close(&r);
    close(fd);
    assert_serving(f->port);
}

/* Random bytes end the connection (GOAWAY or close); the server lives. */
static void random_bytes(void **state)
{
    struct fixture *f = *state;
    unsigned seed = 1234;

    for (int round = 0; round < 40; round++) {
        uint8_t junk[97];
        struct rx r = {0};
        int fd = cl_connect(f->port);
        int rv;

        for (size_t i = 0; i < sizeof(junk); i++) {
            junk[i] = (uint8_t)rand_r(&seed);
        }
        /* Half the rounds announce a plausible length. */
        if (round % 2 == 0) {
            junk[0] = 0;
            junk[1] = 0;
            junk[2] = 0;
            junk[3] = (uint8_t)(1 + round);
        }
        cl_send(fd, junk, sizeof(junk));
        shutdown(fd, SHUT_WR);
        while ((rv = rx_read(fd, &r)) == 1) {
            /* Only a GOAWAY, or a pong if the junk held a ping. */
            assert_true(r.m.type == WIRE_GOAWAY || r.m.type == WIRE_PONG ||
                        r.m.type == WIRE_RESPONSE);
        }
        if (rv != 0) {
            fail_msg("round %d (seed 1234): the connection stayed open", round);
        }
        rx_close(&r);
        close(fd);
    }
    assert_serving(f->port);
}

/* An unknown frame type gets GOAWAY INVALID_ARGUMENT, then the close. */
static void unknown_frame_type(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int fd = cl_connect(f->port);

    cl_send_json_frame(fd, "[9,1]");
    rx_expect(fd, &r, WIRE_GOAWAY);
    assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
    assert_msg_has(&r, "unknown frame type");
    assert_int_equal(rx_read(fd, &r), 0);
    rx_close(&r);
    close(fd);

    /* A type past the known ones in a longer frame, the same. */
    fd = cl_connect(f->port);
    cl_send_json_frame(fd, "[6,1,2,3]");
    expect_goaway_then_eof(fd, CAIRN_INVALID_ARGUMENT);
    close(fd);
}

/* Fields of the wrong type, bad metadata and frames only a server sends
 * get GOAWAY INVALID_ARGUMENT. */
static void wrong_field_types(void **state)
{
    struct fixture *f = *state;
    static const char *const frames[] = {
        "[0,\"x\",\"Echo\",0,{},\"body\"]", /* stream id is a string */
        "[0,1,\"Echo\",0,{},\"body\"]",     /* body is a str, not a bin */
        "[0,1,\"Echo\",-5,{},\"body\"]",    /* negative timeout */
        "[2,\"x\"]",                        /* cancel of a string */
        "[3]",                              /* ping without a nonce */
        "{\"type\":0}",                     /* not an array */
    };
    struct rx r = {0};

    for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        int fd = cl_connect(f->port);
        cl_send_json_frame(fd, frames[i]);
        rx_expect(fd, &r, WIRE_GOAWAY);
        assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
        assert_int_equal(rx_read(fd, &r), 0);
        close(fd);
    }
    {
        /* A well-formed response frame: only a server sends those. */
        struct buf b;
        int fd = cl_connect(f->port);
        buf_init(&b);
        assert_int_equal(
            wire_encode_response(&b, 1, 0, "", "", "\x80", 1, false), 0);
        cl_send(fd, b.data, b.len);
        buf_close(&b);
        rx_expect(fd, &r, WIRE_GOAWAY);
        assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
        assert_msg_has(&r, "response");
        close(fd);
    }
    {
        /* Metadata the codec checks: cid must be a string. */
        int fd = cl_connect(f->port);
        cl_request(fd, 1, "Echo", 0, "{\"cid\":5}", NULL);
        rx_expect(fd, &r, WIRE_GOAWAY);
        assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
        assert_msg_has(&r, "cid");
        close(fd);
    }
    rx_close(&r);
    assert_int_equal(atomic_load(&all_calls), 0);
    assert_serving(f->port);
}

/* An empty frame gets GOAWAY INVALID_ARGUMENT. */
static void empty_frame(void **state)
{
    struct fixture *f = *state;
    static const uint8_t zero[4] = {0, 0, 0, 0};
    struct rx r = {0};
    int fd = cl_connect(f->port);

    cl_send(fd, zero, sizeof(zero));
    rx_expect(fd, &r, WIRE_GOAWAY);
    assert_int_equal(r.m.status, CAIRN_INVALID_ARGUMENT);
    assert_msg(&r, "empty frame");
    assert_int_equal(rx_read(fd, &r), 0);
    rx_close(&r);
    close(fd);
}

/* A GOAWAY from the client closes the connection and cancels its calls. */
static void client_goaway(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect(f->port);

    buf_init(&b);
    add_request(&b, 1, "Slow", 0, NULL, NULL);
    assert_int_equal(wire_encode_goaway(&b, CAIRN_OK, "bye"), 0);
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    assert_int_equal(rx_read(fd, &r), 0);
    assert_true(WAIT_UNTIL(atomic_load(&cancels) == 1, 2000));
    rx_close(&r);
    close(fd);
}

/* A client that ignores a GOAWAY and keeps sending is closed after the
 * linger; what it sends meanwhile is discarded. */
static void goaway_linger(void **state)
{
    struct fixture *f = *state;
    static const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
    struct rx r = {0};
    struct buf b;
    uint64_t t0;
    bool reset = false;
    int fd = cl_connect(f->port);

    cl_send(fd, huge, sizeof(huge));
    rx_expect(fd, &r, WIRE_GOAWAY);
    assert_int_equal(rx_read(fd, &r), 0); /* the server's write side */
    rx_close(&r);
    buf_init(&b);
    add_request(&b, 1, "Echo", 0, NULL, NULL);
    t0 = now_ms();
    while (!reset && now_ms() - t0 < 5000) {
        reset = send(fd, b.data, b.len, MSG_NOSIGNAL) < 0;
        usleep(20000);
    }
    buf_close(&b);
    assert_true(reset);
    assert_true(now_ms() - t0 >= 500);
    assert_int_equal(atomic_load(&all_calls), 0);
    close(fd);
}

/******************************************************************************
 *
 * Connections
 *
 *****************************************************************************/

/* 2,000 connections opened and dropped in bursts, some mid-frame or with
 * a reset, leave the server serving. */
static void many_connections(void **state)
{
    struct fixture *f = *state;
    enum { TOTAL = 2000, BURST = 250 };
    int fds[BURST];
    struct buf b;

    buf_init(&b);
    add_request(&b, 1, "Slow", 0, NULL, NULL);
    for (int done = 0; done < TOTAL; done += BURST) {
        for (int i = 0; i < BURST; i++) {
            fds[i] = cl_connect(f->port);
            if (i % 3 == 1) {
                cl_send(fds[i], b.data, b.len); /* an open stream */
            } else if (i % 3 == 2) {
                cl_send(fds[i], b.data, 7); /* half a frame */
            }
        }
        for (int i = 0; i < BURST; i++) {
            if (i % 5 == 0) {
                struct linger l = {1, 0}; /* close with a reset */
                setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            }
            close(fds[i]);
        }
    }
    buf_close(&b);
    assert_serving(f->port);
    /* Every stream left open by a dropped client is cancelled. */
    assert_true(WAIT_UNTIL(atomic_load(&outstanding) == 0, 5000));
}

/* server_start refuses a port in use (UNAVAILABLE) and a host that is not
 * an address (INVALID_ARGUMENT); port 0 binds a free port. */
static void start_errors(void **state)
{
    struct fixture *f = *state;
    struct server_options o;
    struct cairn_error err;
    struct server *s = NULL;
    uv_loop_t loop;

    assert_true(f->port > 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    server_options_default(&o);
    o.port = f->port;
    assert_int_equal(server_start(&loop, NULL, &o, &s, &err),
                     CAIRN_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "address already in use"));
    o.host = "not-an-address";
    assert_int_equal(server_start(&loop, NULL, &o, &s, &err),
                     CAIRN_INVALID_ARGUMENT);
    o.host = "::1";
    o.port = 0;
    if (server_start(&loop, NULL, &o, &s, &err) == 0) {
        /* IPv6 may be missing here; when it works it must close. */
        assert_true(server_port(s) > 0);
        server_close(s, NULL, NULL);
    }
    server_close(NULL, NULL, NULL);
    /* The failed starts left only closing handles behind. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Past max_connections a connection is accepted then closed at once; a
 * slot freed by a client is reused. */
static void max_connections(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf ping;
    int fds[3];
    int extra;
    int rv;

    buf_init(&ping);
    assert_int_equal(wire_encode_ping(&ping, WIRE_PING, 1), 0);
    for (int i = 0; i < 3; i++) {
        fds[i] = cl_connect(f->port);
        cl_send(fds[i], ping.data, ping.len);
        rx_expect(fds[i], &r, WIRE_PONG);
    }
    extra = cl_connect(f->port);
    send(extra, ping.data, ping.len, MSG_NOSIGNAL);
    rv = rx_read(extra, &r);
    assert_int_equal(rv, 0); /* closed, no pong */
    close(extra);

    close(fds[0]);
    /* The slot frees once the server has seen the close. */
    for (uint64_t until = now_ms() + 3000;;) {
        extra = cl_connect(f->port);
        send(extra, ping.data, ping.len, MSG_NOSIGNAL);
        rv = rx_read(extra, &r);
        close(extra);
        if (rv == 1 || now_ms() > until) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(rv, 1);
    assert_int_equal(r.m.type, WIRE_PONG);
    /* The other two were served all along. */
    for (int i = 1; i < 3; i++) {
        cl_send(fds[i], ping.data, ping.len);
        rx_expect(fds[i], &r, WIRE_PONG);
        close(fds[i]);
    }
    rx_close(&r);
    buf_close(&ping);
}

/* A silent connection gets GOAWAY UNAVAILABLE after idle_timeout_ms; open
 * streams keep a connection from counting as idle. */
static void idle_timeout(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    uint64_t t0;
    int fd;

    fd = cl_connect(f->port);
    t0 = now_ms();
    rx_expect(fd, &r, WIRE_GOAWAY);
    assert_int_equal(r.m.status, CAIRN_UNAVAILABLE);
    assert_msg(&r, "idle for 200 ms");
    assert_true(now_ms() - t0 >= 150);
    assert_int_equal(rx_read(fd, &r), 0);
    close(fd);

    fd = cl_connect(f->port);
    t0 = now_ms();
    cl_request(fd, 1, "Slow", 600, NULL, NULL);
    rx_expect(fd, &r, WIRE_RESPONSE);
    assert_int_equal(r.m.status, CAIRN_DEADLINE_EXCEEDED);
    assert_true(now_ms() - t0 >= 550);
    rx_expect(fd, &r, WIRE_GOAWAY);
    assert_true(now_ms() - t0 >= 750);
    rx_close(&r);
    close(fd);
}

/* server_close sends GOAWAY UNAVAILABLE to every connection, cancels its
 * calls and closes. */
static void close_with_clients(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    int a = cl_connect(f->port);
    int b = cl_connect(f->port);

    cl_request(a, 1, "Slow", 0, NULL, NULL);
    cl_request(b, 1, "Echo", 0, NULL, NULL);
    rx_expect(b, &r, WIRE_RESPONSE);
    stop_server(f);
    for (int i = 0; i < 2; i++) {
        int fd = i == 0 ? a : b;
        rx_expect(fd, &r, WIRE_GOAWAY);
        assert_int_equal(r.m.status, CAIRN_UNAVAILABLE);
        assert_msg(&r, "server shutting down");
        assert_int_equal(rx_read(fd, &r), 0);
        close(fd);
    }
    rx_close(&r);
    assert_true(WAIT_UNTIL(atomic_load(&f->closed), 3000));
    assert_int_equal(atomic_load(&cancels), 1);
}

/******************************************************************************
 *
 * Back-pressure
 *
 *****************************************************************************/

enum { FLOOD_N = 4000, FLOOD_BODY = 4000 };

static void *flood_main(void *arg)
{
    int fd = *(int *)arg;
    char *body = malloc(FLOOD_BODY + 32);
    struct buf b;

    memset(body, 0, FLOOD_BODY + 32);
    strcpy(body, "{\"pad\":\"");
    memset(body + 8, 'x', FLOOD_BODY);
    strcpy(body + 8 + FLOOD_BODY, "\"}");
    buf_init(&b);
    for (int i = 0; i < FLOOD_N; i++) {
        buf_reset(&b);
        add_request(&b, (uint64_t)i, "Echo", 0, NULL, body);
        cl_send(fd, b.data, b.len);
    }
    buf_close(&b);
    free(body);
    return NULL;
}

/* A client that sends many requests and never reads is paused: the server
 * stops reading from it, so the responses it holds stay bounded, other
 * clients are served promptly, and it resumes once the client reads. */
static void slow_reader_paused(void **state)
{
    struct fixture *f = *state;
    struct timeval tv = {30, 0};
    struct rx r = {0};
    static bool seen[FLOOD_N];
    pthread_t sender;
    int calls, prev;
    uint64_t t0;
    int fd = cl_connect_opts(f->port, 16 * 1024);

    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(seen, 0, sizeof(seen));
    assert_int_equal(pthread_create(&sender, NULL, flood_main, &fd), 0);

    /* Wait for the echo count to settle. */
    prev = -1;
    for (uint64_t until = now_ms() + 10000; now_ms() < until;) {
        usleep(300000);
        calls = atomic_load(&echo_calls);
        if (calls == prev) {
            break;
        }
        prev = calls;
    }
    calls = atomic_load(&echo_calls);
    /* Responses held: max_unsent plus what the kernel buffers on both
     * sides (the server's send buffer autotunes up to 4 MiB). */
    assert_true(calls < FLOOD_N);
    assert_true((size_t)calls * FLOOD_BODY < f->o.max_unsent + (6u << 20));

    /* Another client is served promptly meanwhile. */
    t0 = now_ms();
    assert_serving(f->port);
    assert_true(now_ms() - t0 < 1000);
    usleep(100000);
    assert_int_equal(atomic_load(&echo_calls), calls + 1);

    /* Reading resumes the flood; every request is answered once. */
    for (int k = 0; k < FLOOD_N; k++) {
        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_int_equal(r.m.status, 0);
        assert_true(r.m.stream < FLOOD_N);
        assert_false(seen[r.m.stream]);
        seen[r.m.stream] = true;
        assert_true(r.m.body.n > FLOOD_BODY);
    }
    pthread_join(sender, NULL);
    rx_close(&r);
    close(fd);
}

/* Pages of a server stream wait while the connection is paused. */
static void streaming_paused_then_resumed(void **state)
{
    struct fixture *f = *state;
    struct rx r = {0};
    struct buf b;
    int fd = cl_connect_opts(f->port, 16 * 1024);
    int pages = 0;
    char body[64];

    /* Start a stream, then fill the connection with big responses before
     * its second page is due. */
    buf_init(&b);
    add_request(&b, 100, "Paged", 0, "{\"stream\":true}", "{}");
    snprintf(body, sizeof(body), "{\"n\":%d}", 200 * 1000);
    for (int i = 0; i < 60; i++) {
        add_request(&b, (uint64_t)i, "Big", 0, NULL, body);
    }
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    usleep(200000);
    for (;;) {
        rx_expect(fd, &r, WIRE_RESPONSE);
        assert_int_equal(r.m.status, 0);
        if (r.m.stream == 100) {
            pages++;
            if (!r.m.more) {
                break;
            }
        }
    }
    assert_int_equal(pages, 3);
    rx_close(&r);
    close(fd);
}

/* A connection closed while a stream's next page waits for it to drain
 * frees that stream. */
static void streaming_blocked_then_dropped(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    int fd = cl_connect_opts(f->port, 16 * 1024);
    char body[64];

    buf_init(&b);
    add_request(&b, 100, "Paged", 0, "{\"stream\":true}", "{}");
    add_request(&b, 101, "PagedAsync", 0, "{\"stream\":true}", "{}");
    snprintf(body, sizeof(body), "{\"n\":%d}", 200 * 1000);
    for (int i = 0; i < 30; i++) {
        add_request(&b, (uint64_t)i, "Big", 0, NULL, body);
    }
    cl_send(fd, b.data, b.len);
    buf_close(&b);
    usleep(200000);
    close(fd);
    assert_serving(f->port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(echo_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(service_error, setup, teardown),
        cmocka_unit_test_setup_teardown(metadata_passed, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_streams_out_of_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(deadline_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(default_deadline, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(server_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(server_stream_later_pages_stale, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(streaming_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(response_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_stream_id, setup, teardown),
        cmocka_unit_test_setup_teardown(max_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_request_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_frame_type, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_field_types, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(client_goaway, setup, teardown),
        cmocka_unit_test_setup_teardown(goaway_linger, setup, teardown),
        cmocka_unit_test_setup_teardown(start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(many_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(max_connections, setup_max_conns,
                                        teardown),
        cmocka_unit_test_setup_teardown(idle_timeout, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(close_with_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_reader_paused, setup_small_unsent,
                                        teardown),
        cmocka_unit_test_setup_teardown(streaming_paused_then_resumed,
                                        setup_small_unsent, teardown),
        cmocka_unit_test_setup_teardown(streaming_blocked_then_dropped,
                                        setup_small_unsent, teardown),
    };

    /* libuv writes without MSG_NOSIGNAL: a peer that resets must not kill
     * the process (cairnd does the same). */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
