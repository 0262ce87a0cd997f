/* Unit tests for api/peer.c: the pool and a fake peer server run on one
 * libuv loop in the test thread. The fake server reassembles and decodes
 * request frames with the wire codec and answers by method name. */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "mp.h"
#include "peer.h"
#include "queue.h"
#include "wire.h"

/******************************************************************************
 *
 * Fake peer server
 *
 *****************************************************************************/

/* Methods:
 *   Echo     answers the request body;
 *   Fail     answers NOT_FOUND / ParameterNotFound "Parameter /x not found.";
 *   Slow     never answers;
 *   Close    closes the connection;
 *   Stream   answers {"Page":1} and {"Page":2} with more=true, then
 *            {"Page":3} with more=false;
 *   Late     answers (OK, {}) only just before the next request's answer;
 *   Goaway   sends GOAWAY UNAVAILABLE "shutting down";
 *   Garbage  sends a frame that is not a msgpack array;
 *   Huge     sends a length prefix of 0xfffffff0;
 *   Ping     sends PING 77, then answers like Echo.
 * It records requests, stream ids, cancels and pongs. */

#define FAKE_MAX_REQUESTS 512

struct fake
{
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct cairn_queue conns;
    unsigned open; /* handles not yet closed */
    int port;
    int accepted;
    int requests;
    uint64_t streams[FAKE_MAX_REQUESTS]; /* request stream ids, in order */
    uint64_t slow_stream;                /* of the last Slow request */
    int cancels;
    uint64_t last_cancel;
    int pongs;
    uint64_t last_pong;
    char rbuf[65536];
};

struct fconn
{
    struct fake *f;
    uv_tcp_t tcp;
    struct wire_reader rd;
    struct cairn_queue link;
    bool closing;
    bool late;
    uint64_t late_stream;
};

struct fwrite
{
    uv_write_t req;
    uint8_t *data;
};

static void fake_on_handle_close(uv_handle_t *h)
{
    struct fake *f = h->data;
    f->open--;
}

static void fconn_on_close(uv_handle_t *h)
{
    struct fconn *c = h->data;

    c->f->open--;
    cairn_queue_remove(&c->link);
    wire_reader_close(&c->rd);
    free(c);
}

static void fconn_close(struct fconn *c)
{
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, fconn_on_close);
    }
}

static void fake_on_write(uv_write_t *req, int status)
{
    struct fwrite *w = req->data;

    free(w->data);
    free(w);
}

/* Write the bytes of @p b, taking its memory. */
static void fconn_send(struct fconn *c, struct buf *b)
{
    struct fwrite *w;
    uv_buf_t ub;
    size_t len;

    assert_false(b->oom);
    if (c->closing) {
        buf_close(b);
        return;
    }
    w = malloc(sizeof(*w));
    assert_non_null(w);
    w->data = buf_steal(b, &len);
    w->req.data = w;
    ub = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, fake_on_write) != 0) {
        free(w->data);
        free(w);
        fconn_close(c);
    }
}

static void fconn_respond(struct fconn *c,
                          uint64_t stream,
                          int status,
                          const char *type,
                          const char *msg,
                          const char *body_json,
                          bool more)
{
    struct buf body, b;

    buf_init(&body);
    buf_init(&b);
    if (body_json != NULL) {
        test_json_to_mp(body_json, &body);
    }
    assert_int_equal(wire_encode_response(&b, stream, status, type, msg,
                                          body.data, body.len, more),
                     0);
    buf_close(&body);
    fconn_send(c, &b);
}

static void fconn_echo(struct fconn *c, const struct wire_msg *m)
{
    struct buf b;

    buf_init(&b);
    assert_int_equal(wire_encode_response(&b, m->stream, 0, "", "", m->body.p,
                                          m->body.n, false),
                     0);
    fconn_send(c, &b);
}

static void fconn_send_raw(struct fconn *c, const void *p, size_t n)
{
    struct buf b;

    buf_init(&b);
    assert_int_equal(buf_append(&b, p, n), 0);
    fconn_send(c, &b);
}

static bool method_is(const struct wire_msg *m, const char *name)
{
    return mp_str_eqn(m->method, name);
}

static void fake_request(struct fconn *c, const struct wire_msg *m)
{
    struct fake *f = c->f;
    struct buf b;

    if (f->requests < FAKE_MAX_REQUESTS) {
        f->streams[f->requests] = m->stream;
    }
    f->requests++;
    if (c->late) {
        c->late = false;
        fconn_respond(c, c->late_stream, 0, "", "", "{\"late\":true}", false);
    }
    if (method_is(m, "Echo")) {
        fconn_echo(c, m);
    } else if (method_is(m, "Fail")) {
        fconn_respond(c, m->stream, CAIRN_NOT_FOUND, "ParameterNotFound",
                      "Parameter /x not found.", NULL, false);
    } else if (method_is(m, "Slow")) {
        f->slow_stream = m->stream;
    } else if (method_is(m, "Close")) {
        fconn_close(c);
    } else if (method_is(m, "Stream")) {
        fconn_respond(c, m->stream, 0, "", "", "{\"Page\":1}", true);
        fconn_respond(c, m->stream, 0, "", "", "{\"Page\":2}", true);
        fconn_respond(c, m->stream, 0, "", "", "{\"Page\":3}", false);
    } else if (method_is(m, "Late")) {
        c->late = true;
        c->late_stream = m->stream;
    } else if (method_is(m, "Goaway")) {
        buf_init(&b);
        assert_int_equal(
            wire_encode_goaway(&b, CAIRN_UNAVAILABLE, "shutting down"), 0);
        fconn_send(c, &b);
    } else if (method_is(m, "Garbage")) {
        /* A frame of one byte: the msgpack integer 1, not an array. */
        fconn_send_raw(c, "\x00\x00\x00\x01\x01", 5);
    } else if (method_is(m, "Huge")) {
        fconn_send_raw(c, "\xff\xff\xff\xf0", 4);
    } else if (method_is(m, "Ping")) {
        buf_init(&b);
        assert_int_equal(wire_encode_ping(&b, WIRE_PING, 77), 0);
        fconn_send(c, &b);
        fconn_echo(c, m);
    } else {
        fconn_respond(c, m->stream, CAIRN_UNIMPLEMENTED,
                      "UnknownOperationException", "unknown method", NULL,
                      false);
    }
}

static void fconn_frame(struct fconn *c, const uint8_t *p, size_t n)
{
    struct cairn_error err;
    struct wire_msg m;
    struct mp_doc doc;

    if (wire_decode(p, n, &m, &doc, &err) != 0) {
        fail_msg("the peer client sent a bad frame: %s", err.msg);
    }
    switch (m.type) {
        case WIRE_REQUEST:
            fake_request(c, &m);
            break;
        case WIRE_CANCEL:
            c->f->cancels++;
            c->f->last_cancel = m.stream;
            break;
        case WIRE_PONG:
            c->f->pongs++;
            c->f->last_pong = m.stream;
            break;
        default:
            fail_msg("the peer client sent a frame of type %d", (int)m.type);
    }
    mp_doc_close(&doc);
}

static void fconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct fconn *c = h->data;
    *b = uv_buf_init(c->f->rbuf, sizeof(c->f->rbuf));
}

static void fconn_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
    struct fconn *c = h->data;
    const uint8_t *p;
    size_t n;
    int rv;

    if (nread < 0) {
        fconn_close(c);
        return;
    }
    if (c->closing) {
        return;
    }
    assert_int_equal(wire_reader_feed(&c->rd, b->base, (size_t)nread), 0);
    while (!c->closing && (rv = wire_reader_next(&c->rd, &p, &n)) != 0) {
        assert_int_equal(rv, 1);
        fconn_frame(c, p, n);
    }
}

static void fake_on_connection(uv_stream_t *listener, int status)
{
    struct fake *f = listener->data;
    struct fconn *c;

    assert_int_equal(status, 0);
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->f = f;
    assert_int_equal(uv_tcp_init(f->loop, &c->tcp), 0);
    c->tcp.data = c;
    f->open++;
    wire_reader_init(&c->rd, 0);
    cairn_queue_push(&f->conns, &c->link);
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    f->accepted++;
    assert_int_equal(
        uv_read_start((uv_stream_t *)&c->tcp, fconn_alloc, fconn_read), 0);
}

/* Listen on 127.0.0.1:@p port (0: any free port). */
static void fake_start(struct fake *f, uv_loop_t *loop, int port)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);

    memset(f, 0, sizeof(*f));
    f->loop = loop;
    cairn_queue_init(&f->conns);
    assert_int_equal(uv_tcp_init(loop, &f->listener), 0);
    f->listener.data = f;
    f->open = 1;
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&ss),
                     0);
    assert_int_equal(uv_tcp_bind(&f->listener, (struct sockaddr *)&ss, 0), 0);
    assert_int_equal(
        uv_listen((uv_stream_t *)&f->listener, 128, fake_on_connection), 0);
    assert_int_equal(
        uv_tcp_getsockname(&f->listener, (struct sockaddr *)&ss, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void fake_stop(struct fake *f)
{
    struct cairn_queue *q;

    if (!uv_is_closing((uv_handle_t *)&f->listener)) {
        uv_close((uv_handle_t *)&f->listener, fake_on_handle_close);
    }
    for (q = f->conns.next; q != &f->conns; q = q->next) {
        fconn_close(cairn_queue_data(q, struct fconn, link));
    }
}

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

struct fixture
{
    uv_loop_t loop;
    uv_timer_t guard; /* bounds every wait */
    bool guard_fired;
    struct fake fake;
    struct fake other; /* a second server, when other_started */
    bool other_started;
    struct peer_pool *pool;
    bool close_called;
    int closed; /* runs of the pool's close callback */
    char addr[64];
};

static void on_pool_closed(void *data)
{
    struct fixture *f = data;
    f->closed++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cairn_error err;

    if (f == NULL || uv_loop_init(&f->loop) != 0) {
        return -1;
    }
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    fake_start(&f->fake, &f->loop, 0);
    if (peer_pool_create(&f->loop, &f->pool, &err) != 0) {
        return -1;
    }
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->fake.port);
    *state = f;
    return 0;
}

static void on_guard(uv_timer_t *t)
{
    struct fixture *f = t->data;
    f->guard_fired = true;
}

static void guard_start(struct fixture *f, uint64_t ms)
{
    f->guard_fired = false;
    uv_timer_start(&f->guard, on_guard, ms, 0);
}

static void close_pool(struct fixture *f)
{
    if (!f->close_called) {
        f->close_called = true;
        peer_pool_close(f->pool, on_pool_closed, f);
    }
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close_pool(f);
    fake_stop(&f->fake);
    if (f->other_started) {
        fake_stop(&f->other);
    }
    guard_start(f, 5000);
    while ((f->closed == 0 || f->fake.open > 0 ||
            (f->other_started && f->other.open > 0)) &&
           !f->guard_fired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->closed, 1);
    assert_int_equal(f->fake.open, 0);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Every handle of the pool is closed: nothing is left on the loop. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

/* Run the loop until @p cond holds or @p ms pass; evaluates to cond. */
#define RUN_UNTIL(f, cond, ms)                 \
    ({                                         \
        guard_start((f), (ms));                \
        while (!(cond) && !(f)->guard_fired) { \
            uv_run(&(f)->loop, UV_RUN_ONCE);   \
        }                                      \
        uv_timer_stop(&(f)->guard);            \
        (bool)(cond);                          \
    })

#define RUN_FOR(f, ms) RUN_UNTIL(f, false, ms)

/* True while peer_call_start runs: a callback must never see it. */
static bool in_start;

/* A call and what its callback saw. */
struct rec
{
    struct peer_call call;
    int n; /* callbacks run */
    int status;
    char type[CAIRN_ERROR_TYPE_MAX];
    char msg[1024];
    uint8_t body[512];
    size_t len;
    uint64_t at; /* uv_now when called back */
    uv_loop_t *loop;
};

static void rec_save(struct rec *r,
                     int status,
                     const char *type,
                     const char *message,
                     const void *body,
                     size_t len)
{
    assert_false(in_start);
    assert_non_null(type);
    assert_non_null(message);
    assert_true(len == 0 || body != NULL);
    r->n++;
    r->status = status;
    snprintf(r->type, sizeof(r->type), "%s", type);
    snprintf(r->msg, sizeof(r->msg), "%s", message);
    assert_true(len <= sizeof(r->body));
    if (len > 0) {
        memcpy(r->body, body, len);
    }
    r->len = len;
    r->at = r->loop != NULL ? uv_now(r->loop) : 0;
}

static void on_rec(struct peer_call *call,
                   int status,
                   const char *type,
                   const char *message,
                   const void *body,
                   size_t len)
{
    rec_save((struct rec *)call, status, type, message, body, len);
}

/* Start @p method on @p addr with a JSON body (NULL: {}). */
static int start_cb(struct fixture *f,
                    struct peer_call *call,
                    const char *addr,
                    const char *method,
                    const char *body_json,
                    unsigned timeout_ms,
                    peer_cb cb)
{
    struct buf body;
    int rv;

    buf_init(&body);
    test_json_to_mp(body_json != NULL ? body_json : "{}", &body);
    in_start = true;
    rv = peer_call_start(f->pool, call, addr, method, NULL, 0, body.data,
                         body.len, timeout_ms, cb);
    in_start = false;
    buf_close(&body);
    return rv;
}

static int start(struct fixture *f,
                 struct rec *r,
                 const char *addr,
                 const char *method,
                 const char *body_json,
                 unsigned timeout_ms)
{
    memset(r, 0, sizeof(*r));
    r->loop = &f->loop;
    return start_cb(f, &r->call, addr, method, body_json, timeout_ms, on_rec);
}

/* A port on 127.0.0.1 where nothing listens (bound, then released). */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/******************************************************************************
 *
 * Assertions
 *
 *****************************************************************************/

#define assert_body(r, json)                               \
    do {                                                   \
        char *got_ = test_mp_to_json((r)->body, (r)->len); \
        assert_string_equal(got_, json);                   \
        free(got_);                                        \
    } while (0)

#define assert_msg_has(r, text)                                      \
    do {                                                             \
        if (strstr((r)->msg, text) == NULL) {                        \
            fail_msg("message \"%s\" lacks \"%s\"", (r)->msg, text); \
        }                                                            \
    } while (0)

#define assert_unavailable(r, f)                              \
    do {                                                      \
        assert_int_equal((r)->n, 1);                          \
        assert_int_equal((r)->status, CAIRN_UNAVAILABLE);     \
        assert_string_equal((r)->type, "ServiceUnavailable"); \
    } while (0)

/* One Echo call on @p addr succeeds. */
static void assert_echo(struct fixture *f, const char *addr)
{
    struct rec r;

    assert_int_equal(start(f, &r, addr, "Echo", "{\"alive\":true}", 5000), 0);
    assert_true(RUN_UNTIL(f, r.n > 0, 5000));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status, 0);
    assert_body(&r, "{\"alive\":true}");
}

/******************************************************************************
 *
 * Requests and responses
 *
 *****************************************************************************/

/* The request body reaches the peer and its answer comes back as is, on
 * one connection reused by the next call. */
static void echo_round_trip(void **state)
{
    struct fixture *f = *state;
    struct rec r;

    assert_int_equal(start(f, &r, f->addr, "Echo",
                           "{\"Name\":\"/a\",\"Value\":\"v1\"}", 5000),
                     0);
    assert_int_equal(r.n, 0);
    assert_true(RUN_UNTIL(f, r.n > 0, 5000));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.type, "");
    assert_string_equal(r.msg, "");
    assert_body(&r, "{\"Name\":\"/a\",\"Value\":\"v1\"}");
    assert_echo(f, f->addr);
    assert_int_equal(f->fake.accepted, 1);
    assert_int_equal(f->fake.requests, 2);
    assert_true(f->fake.streams[1] > f->fake.streams[0]);
}

/* A peer's error status, error name and message are passed through. */
static void error_passed_through(void **state)
{
    struct fixture *f = *state;
    struct rec r;

    assert_int_equal(start(f, &r, f->addr, "Fail", NULL, 5000), 0);
    assert_true(RUN_UNTIL(f, r.n > 0, 5000));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status, CAIRN_NOT_FOUND);
    assert_string_equal(r.type, "ParameterNotFound");
    assert_string_equal(r.msg, "Parameter /x not found.");
    assert_int_equal(r.len, 0);
}

static int all_done(const struct rec *r, int n)
{
    for (int i = 0; i < n; i++) {
        if (r[i].n == 0) {
            return 0;
        }
    }
    return 1;
}

/* 100 calls made while the connection opens, then 100 more on the open
 * connection, all share one TCP connection with increasing stream ids and
 * each gets its own answer. */
static void concurrent_calls(void **state)
{
    struct fixture *f = *state;
    struct rec *r = calloc(200, sizeof(*r));
    char body[64];

    assert_non_null(r);
    for (int batch = 0; batch < 2; batch++) {
        for (int i = batch * 100; i < batch * 100 + 100; i++) {
            snprintf(body, sizeof(body), "{\"i\":%d}", i);
            assert_int_equal(start(f, &r[i], f->addr, "Echo", body, 5000), 0);
        }
        assert_true(RUN_UNTIL(f, all_done(r + batch * 100, 100), 10000));
    }
    for (int i = 0; i < 200; i++) {
        assert_int_equal(r[i].n, 1);
        assert_int_equal(r[i].status, 0);
        snprintf(body, sizeof(body), "{\"i\":%d}", i);
        assert_body(&r[i], body);
    }
    assert_int_equal(f->fake.accepted, 1);
    assert_int_equal(f->fake.requests, 200);
    for (int i = 1; i < 200; i++) {
        assert_true(f->fake.streams[i] > f->fake.streams[i - 1]);
    }
    free(r);
}

/* Only the first response of a server stream is delivered; the later
 * pages are skipped, the peer is told to stop, and the connection keeps
 * serving. */
static void stream_first_page_only(void **state)
{
    struct fixture *f = *state;
    struct rec r;

    assert_int_equal(start(f, &r, f->addr, "Stream", NULL, 5000), 0);
    assert_true(RUN_UNTIL(f, r.n > 0, 5000));
    assert_int_equal(r.status, 0);
    assert_body(&r, "{\"Page\":1}");
    assert_true(RUN_UNTIL(f, f->fake.cancels == 1, 5000));
    assert_int_equal(f->fake.last_cancel, f->fake.streams[0]);
    RUN_FOR(f, 20);
    assert_int_equal(r.n, 1);
    assert_echo(f, f->addr);
    assert_int_equal(f->fake.accepted, 1);
}

/* A ping from the peer is answered with a pong carrying its nonce. */
static void answers_ping(void **state)
{
    struct fixture *f = *state;
    struct rec r;

    assert_int_equal(start(f, &r, f->addr, "Ping", "{\"x\":1}", 5000), 0);
    assert_true(RUN_UNTIL(f, r.n > 0 && f->fake.pongs > 0, 5000));
    assert_int_equal(r.status, 0);
    assert_body(&r, "{\"x\":1}");
    assert_int_equal(f->fake.pongs, 1);
    assert_int_equal(f->fake.last_pong, 77);
}

/* A host name is resolved. */
static void host_name(void **state)
{
    struct fixture *f = *state;
    char addr[64];

    snprintf(addr, sizeof(addr), "localhost:%d", f->fake.port);
    assert_echo(f, addr);
    assert_int_equal(f->fake.accepted, 1);
}

/* Bad addresses, methods and metadata are refused at once, without a
 * callback. */
static void bad_arguments(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "",    "nocolon", "host:", "host:0",   "host:70000",
        ":80", "[::1]80", "a:b:c", "host:12x",
    };
    static const uint8_t not_a_map[] = {0x01};
    struct rec r;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(start(f, &r, bad[i], "Echo", NULL, 1000),
                         CAIRN_INVALID_ARGUMENT);
    }
    assert_int_equal(start(f, &r, f->addr, "", NULL, 1000),
                     CAIRN_INVALID_ARGUMENT);
    memset(&r, 0, sizeof(r));
    assert_int_equal(
        peer_call_start(f->pool, &r.call, f->addr, "Echo", not_a_map,
                        sizeof(not_a_map), "\x80", 1, 1000, on_rec),
        CAIRN_INVALID_ARGUMENT);
    RUN_FOR(f, 20);
    assert_int_equal(r.n, 0);
    assert_int_equal(f->fake.requests, 0);
}

/******************************************************************************
 *
 * Deadlines and cancellation
 *
 *****************************************************************************/

/* An unanswered call fails with DEADLINE_EXCEEDED at its deadline, and the
 * peer gets a cancel frame for its stream. */
static void deadline_exceeded(void **state)
{
    struct fixture *f = *state;
    uint64_t t0 = uv_now(&f->loop);
    struct rec r;

    assert_int_equal(start(f, &r, f->addr, "Slow", NULL, 50), 0);
    assert_true(RUN_UNTIL(f, r.n > 0, 5000));
    assert_int_equal(r.status, CAIRN_DEADLINE_EXCEEDED);
    assert_string_equal(r.type, "RequestTimeout");
    assert_msg_has(&r, f->addr);
    assert_true(r.at - t0 >= 50);
    assert_true(RUN_UNTIL(f, f->fake.cancels == 1, 5000));
    assert_int_equal(f->fake.last_cancel, f->fake.slow_stream);
    RUN_FOR(f, 20);
    assert_int_equal(r.n, 1);
}

/* An answer that comes after the deadline is skipped (its stream is
 * unknown), and the connection still serves. */
static void late_answer_skipped(void **state)
{
    struct fixture *f = *state;
    struct rec late;

    assert_int_equal(start(f, &late, f->addr, "Late", NULL, 30), 0);
    assert_true(RUN_UNTIL(f, late.n > 0, 5000));
    assert_int_equal(late.status, CAIRN_DEADLINE_EXCEEDED);
    /* The fake answers Late first, then this Echo. */
    assert_echo(f, f->addr);
    assert_int_equal(late.n, 1);
    assert_int_equal(late.status, CAIRN_DEADLINE_EXCEEDED);
    assert_int_equal(f->fake.accepted, 1);
}

/* A cancelled call gets CANCELLED on a later loop turn, once, and the peer
 * a cancel frame: both for a call still waiting for the connection and
 * for one already sent. */
static void cancel(void **state)
{
    struct fixture *f = *state;
    struct rec queued, sent;

    /* Not connected yet: the request and the cancel wait together. */
    assert_int_equal(start(f, &queued, f->addr, "Slow", NULL, 5000), 0);
    peer_call_cancel(&queued.call);
    peer_call_cancel(&queued.call); /* twice is harmless */
    assert_int_equal(queued.n, 0);
    assert_true(RUN_UNTIL(f, queued.n > 0, 5000));
    assert_int_equal(queued.status, CAIRN_CANCELLED);
    assert_string_equal(queued.type, "RequestCanceled");
    assert_true(RUN_UNTIL(f, f->fake.cancels == 1, 5000));
    assert_int_equal(f->fake.last_cancel, f->fake.streams[0]);

    assert_int_equal(start(f, &sent, f->addr, "Slow", NULL, 5000), 0);
    assert_true(RUN_UNTIL(f, f->fake.requests == 2, 5000));
    peer_call_cancel(&sent.call);
    assert_int_equal(sent.n, 0);
    assert_true(RUN_UNTIL(f, sent.n > 0 && f->fake.cancels == 2, 5000));
    assert_int_equal(sent.status, CAIRN_CANCELLED);
    assert_int_equal(f->fake.last_cancel, f->fake.streams[1]);
    RUN_FOR(f, 20);
    assert_int_equal(queued.n, 1);
    assert_int_equal(sent.n, 1);
    assert_int_equal(f->fake.accepted, 1);
}

/******************************************************************************
 *
 * Connection failures
 *
 *****************************************************************************/

/* A refused connection fails the call with UNAVAILABLE naming the address;
 * calls right after it fail at once without a new attempt, and once the
 * backoff has passed a new connection is made. */
static void connection_refused(void **state)
{
    struct fixture *f = *state;
    struct fake *other = &f->other;
    struct rec r1, r2;
    char addr[64];
    int port = free_port();

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(start(f, &r1, addr, "Echo", NULL, 5000), 0);
    assert_true(RUN_UNTIL(f, r1.n > 0, 5000));
    assert_unavailable(&r1, f);
    assert_msg_has(&r1, addr);
    assert_msg_has(&r1, "connect");

    /* Within the backoff: failed without connecting, on a later turn. */
    fake_start(other, &f->loop, port);
    f->other_started = true;
    uv_update_time(&f->loop);
    assert_int_equal(start(f, &r2, addr, "Echo", NULL, 5000), 0);
    assert_int_equal(r2.n, 0);
    assert_true(RUN_UNTIL(f, r2.n > 0, 5000));
    assert_unavailable(&r2, f);
    assert_msg_has(&r2, addr);
    if (r2.at - r1.at < 40) {
        assert_msg_has(&r2, "no new connection");
        assert_int_equal(other->accepted, 0);
    }

    RUN_FOR(f, 60);
    assert_echo(f, addr);
    assert_int_equal(other->accepted, 1);
}

/* When the peer closes the connection every call on it fails with
 * UNAVAILABLE, and the next call opens a new connection. */
static void peer_closes(void **state)
{
    struct fixture *f = *state;
    struct rec slow[3], close_r;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(start(f, &slow[i], f->addr, "Slow", NULL, 5000), 0);
    }
    assert_true(RUN_UNTIL(f, f->fake.requests == 3, 5000));
    assert_int_equal(start(f, &close_r, f->addr, "Close", NULL, 5000), 0);
    assert_true(RUN_UNTIL(
        f, close_r.n > 0 && slow[0].n > 0 && slow[1].n > 0 && slow[2].n > 0,
        5000));
    assert_unavailable(&close_r, f);
    assert_msg_has(&close_r, f->addr);
    for (int i = 0; i < 3; i++) {
        assert_unavailable(&slow[i], f);
        assert_msg_has(&slow[i], f->addr);
    }
    assert_echo(f, f->addr);
    assert_int_equal(f->fake.accepted, 2);
}

/* A GOAWAY, a frame that does not decode and an oversized frame each fail
 * the connection's calls with UNAVAILABLE saying why; the next call
 * reconnects. */
static void bad_peer_frames(void **state)
{
    struct fixture *f = *state;
    static const struct
    {
        const char *method;
        const char *cause;
    } cases[] = {
        {"Goaway", "going away: UNAVAILABLE: shutting down"},
        {"Garbage", "bad frame"},
        {"Huge", "bad frame: length 4294967280"},
    };
    struct rec slow, r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(start(f, &slow, f->addr, "Slow", NULL, 5000), 0);
        assert_int_equal(start(f, &r, f->addr, cases[i].method, NULL, 5000), 0);
        assert_true(RUN_UNTIL(f, r.n > 0 && slow.n > 0, 5000));
        assert_unavailable(&r, f);
        assert_unavailable(&slow, f);
        assert_msg_has(&r, f->addr);
        assert_msg_has(&r, cases[i].cause);
        /* The failed connection is not reused. */
        assert_echo(f, f->addr);
        assert_int_equal(f->fake.accepted, (int)i + 2);
    }
}

/******************************************************************************
 *
 * Callbacks and closing
 *
 *****************************************************************************/

/* Closing the pool fails the calls in flight with UNAVAILABLE (a call
 * already cancelled keeps CANCELLED), on connected, connecting and
 * resolving connections, refuses new calls, and frees everything before
 * its callback. */
static void close_with_calls_in_flight(void **state)
{
    struct fixture *f = *state;
    struct rec slow[5], connecting, resolving, cancelled, after;
    char name[64];

    for (int i = 0; i < 5; i++) {
        assert_int_equal(start(f, &slow[i], f->addr, "Slow", NULL, 5000), 0);
    }
    assert_true(RUN_UNTIL(f, f->fake.requests == 5, 5000));
    assert_int_equal(start(f, &cancelled, f->addr, "Slow", NULL, 5000), 0);
    peer_call_cancel(&cancelled.call);
    snprintf(name, sizeof(name), "localhost:%d", f->fake.port);
    assert_int_equal(start(f, &resolving, name, "Slow", NULL, 5000), 0);
    snprintf(name, sizeof(name), "127.0.0.1:%d", free_port());
    assert_int_equal(start(f, &connecting, name, "Slow", NULL, 5000), 0);

    close_pool(f);
    assert_int_equal(start(f, &after, f->addr, "Echo", NULL, 5000),
                     CAIRN_UNAVAILABLE);
    assert_true(RUN_UNTIL(f, f->closed > 0, 5000));
    for (int i = 0; i < 5; i++) {
        assert_unavailable(&slow[i], f);
        assert_msg_has(&slow[i], "closing");
    }
    assert_unavailable(&resolving, f);
    assert_unavailable(&connecting, f);
    assert_int_equal(cancelled.n, 1);
    assert_int_equal(cancelled.status, CAIRN_CANCELLED);
    assert_int_equal(after.n, 0);
    assert_int_equal(f->closed, 1);
}

/* A callback may start a new call, also one that fails at once. */
struct chain
{
    struct rec first;
    struct rec second;
    struct fixture *f;
    const char *addr;
    int rv;
};

static void on_first_start_second(struct peer_call *call,
                                  int status,
                                  const char *type,
                                  const char *message,
                                  const void *body,
                                  size_t len)
{
    struct chain *c = (struct chain *)call;

    rec_save(&c->first, status, type, message, body, len);
    c->rv = start(c->f, &c->second, c->addr, "Echo", "{\"n\":2}", 5000);
    /* Not called back from inside peer_call_start, even on failure. */
    assert_int_equal(c->second.n, 0);
}

static void callback_starts_call(void **state)
{
    struct fixture *f = *state;
    struct chain c;
    char refused[64];

    memset(&c, 0, sizeof(c));
    c.f = f;
    c.addr = f->addr;
    c.first.loop = &f->loop;
    assert_int_equal(start_cb(f, &c.first.call, f->addr, "Echo", "{\"n\":1}",
                              5000, on_first_start_second),
                     0);
    assert_true(RUN_UNTIL(f, c.second.n > 0, 5000));
    assert_int_equal(c.rv, 0);
    assert_int_equal(c.first.status, 0);
    assert_int_equal(c.second.status, 0);
    assert_body(&c.second, "{\"n\":2}");

    /* The second call fails fast: the first one was refused. */
    snprintf(refused, sizeof(refused), "127.0.0.1:%d", free_port());
    memset(&c, 0, sizeof(c));
    c.f = f;
    c.addr = refused;
    c.first.loop = &f->loop;
    assert_int_equal(start_cb(f, &c.first.call, refused, "Echo", NULL, 5000,
                              on_first_start_second),
                     0);
    assert_true(RUN_UNTIL(f, c.second.n > 0, 5000));
    assert_int_equal(c.rv, 0);
    assert_int_equal(c.first.status, CAIRN_UNAVAILABLE);
    assert_int_equal(c.second.status, CAIRN_UNAVAILABLE);
    assert_int_equal(c.second.n, 1);
}

/* A callback may free its call, whatever the outcome. */
static int freed[5];

static void on_free(struct peer_call *call,
                    int status,
                    const char *type,
                    const char *message,
                    const void *body,
                    size_t len)
{
    int *slot = call->data;

    assert_false(in_start);
    *slot = status == 0 ? 100 : status;
    free(call);
}

static struct peer_call *heap_call(int *slot)
{
    struct peer_call *call = calloc(1, sizeof(*call));

    assert_non_null(call);
    *slot = -1;
    call->data = slot;
    return call;
}

static void callback_frees_call(void **state)
{
    struct fixture *f = *state;
    struct peer_call *c;

    c = heap_call(&freed[0]);
    assert_int_equal(start_cb(f, c, f->addr, "Echo", NULL, 5000, on_free), 0);
    c = heap_call(&freed[1]);
    assert_int_equal(start_cb(f, c, f->addr, "Fail", NULL, 5000, on_free), 0);
    c = heap_call(&freed[2]);
    assert_int_equal(start_cb(f, c, f->addr, "Slow", NULL, 30, on_free), 0);
    c = heap_call(&freed[3]);
    assert_int_equal(start_cb(f, c, f->addr, "Slow", NULL, 5000, on_free), 0);
    peer_call_cancel(c);
    assert_true(RUN_UNTIL(
        f, freed[0] >= 0 && freed[1] >= 0 && freed[2] >= 0 && freed[3] >= 0,
        5000));
    c = heap_call(&freed[4]);
    assert_int_equal(start_cb(f, c, f->addr, "Close", NULL, 5000, on_free), 0);
    assert_true(RUN_UNTIL(f, freed[4] >= 0, 5000));
    assert_int_equal(freed[0], 100);
    assert_int_equal(freed[1], CAIRN_NOT_FOUND);
    assert_int_equal(freed[2], CAIRN_DEADLINE_EXCEEDED);
    assert_int_equal(freed[3], CAIRN_CANCELLED);
    assert_int_equal(freed[4], CAIRN_UNAVAILABLE);
}

/* A callback may close the pool: the other calls, whose answers may be in
 * the same read, get UNAVAILABLE once each. */
static struct fixture *closing_fixture;

static void on_rec_close_pool(struct peer_call *call,
                              int status,
                              const char *type,
                              const char *message,
                              const void *body,
                              size_t len)
{
    rec_save((struct rec *)call, status, type, message, body, len);
    close_pool(closing_fixture);
}

static void callback_closes_pool(void **state)
{
    struct fixture *f = *state;
    struct rec r[10];
    int ok = 0;

    closing_fixture = f;
    for (int i = 0; i < 10; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].loop = &f->loop;
        assert_int_equal(start_cb(f, &r[i].call, f->addr, "Echo", NULL, 5000,
                                  on_rec_close_pool),
                         0);
    }
    assert_true(RUN_UNTIL(f, f->closed > 0, 5000));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r[i].n, 1);
        if (r[i].status == 0) {
            ok++;
        } else {
            assert_int_equal(r[i].status, CAIRN_UNAVAILABLE);
        }
    }
    assert_int_equal(ok, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(echo_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(error_passed_through, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_first_page_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(answers_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(late_answer_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_peer_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(close_with_calls_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(callback_starts_call, setup, teardown),
        cmocka_unit_test_setup_teardown(callback_frees_call, setup, teardown),
        cmocka_unit_test_setup_teardown(callback_closes_pool, setup, teardown),
    };

    /* libuv writes without MSG_NOSIGNAL: a peer that resets must not kill
     * the process. */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
