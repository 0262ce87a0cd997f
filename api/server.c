/* The network server (server.h): a libuv TCP listener, connections that
 * carry multiplexed request streams, per-stream deadlines, server streaming
 * of paged methods, and back-pressure on clients that do not read.
 *
 * Ownership (STYLE.md 2.5). Every object is freed only once nothing can
 * reach it any more:
 * - a write request owns its encoded frame and frees both in its callback;
 * - a connection is freed when its two handles (socket, timer) have closed;
 *   it always finishes its open streams before closing them;
 * - a stream is linked to its connection only while it is open (it may
 *   still answer). It is freed once it is finished, its service call has
 *   called back and its deadline timer has closed, in whatever order these
 *   happen; a finished stream never touches its connection again, so a
 *   service callback that arrives after the connection is gone is safe;
 * - the server is freed when it is closing and its listener, its idle
 *   handle, every connection, every refused socket and every stream timer
 *   have closed. Streams whose cancelled call has not called back yet do
 *   not hold the server: the service calls them back later, and they then
 *   only free themselves. */
#include "server.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "mp.h"
#include "queue.h"
#include "service.h"
#include "status.h"
#include "wire.h"

/* One read buffer per server: reads are consumed (copied into the
 * connection's frame reader) before the next read starts. */
#define READ_CHUNK 65536
/* How long a connection that was sent a GOAWAY may take to close its end
 * before the server closes the socket anyway. */
#define LINGER_MS 1000
#define LISTEN_BACKLOG 1024
/* Longest caller identity accepted in the "user" metadata. */
#define USER_MAX 255
/* Refusals over the connection limit are logged at most this often. */
#define REFUSE_LOG_MS 1000

struct server
{
    uv_loop_t *loop;
    struct service *svc;           /* borrowed */
    struct server_options o;       /* o.host is not kept */
    uv_tcp_t listener;             /* closed first by server_close */
    uv_idle_t kick;                /* issues the next page of server streams
                                      outside the service callback */
    struct cairn_queue kick_queue; /* streams waiting for their next page */
    /* Responses are gathered per connection and written once per loop
     * turn, after the poll phase (flush), so that the answers a barrier or
     * a batch of frames completes together leave in one write. flush_idle
     * only keeps the poll from blocking while output waits. */
    uv_check_t flush;
    uv_idle_t flush_idle;
    struct cairn_queue flush_queue; /* connections with output to write */
    struct cairn_queue conns;       /* every connection not yet freed */
    unsigned n_conns;               /* counted against max_connections */
    unsigned n_pending; /* handles besides connections not yet closed:
                           listener, kick, flush, flush_idle, refused
                           sockets, stream timers */
    unsigned refused;   /* refusals not yet logged */
    uint64_t refused_logged_at;
    int port;
    bool closing;
    server_close_cb close_cb;
    void *close_data;
    char rbuf[READ_CHUNK];
};

/* A client connection. It reads frames while the bytes it has queued for
 * writing stay under max_unsent (then it is paused until they drop to half)
 * and until it is closing. Closing is one way: streams are finished, then
 * either the handles are closed straight away, or a GOAWAY is written, the
 * write side shut down, and the socket is closed when the peer closes its
 * side or LINGER_MS has passed. */
struct conn
{
    struct server *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;       /* idle timeout; the linger once closing */
    uv_shutdown_t shutdown; /* after a GOAWAY */
    struct wire_reader rd;
    struct cairn_queue link;    /* srv->conns */
    struct cairn_queue streams; /* open streams */
    unsigned n_streams;
    size_t unsent;                 /* bytes given to uv_write, not completed */
    struct buf out;                /* frames not yet given to uv_write */
    struct cairn_queue flush_link; /* srv->flush_queue while queued */
    bool flush_queued;
    uint64_t last_active; /* uv_now of the last frame in or out */
    unsigned handles;     /* handles not yet closed */
    bool reading;         /* uv_read_start is in effect */
    bool paused;          /* unsent went over max_unsent */
    bool closing;         /* no more frames, no more responses */
    bool handles_closing; /* uv_close was called */
    char peer[64];        /* for log lines */
};

/* One request, and for a server stream every page of it. */
struct stream
{
    struct service_call call; /* call.data points back here */
    struct server *srv;       /* for the timer's close callback */
    struct conn *conn;        /* only while open */
    uint64_t id;
    uv_timer_t deadline;
    struct cairn_queue link;      /* conn->streams while open */
    struct cairn_queue kick_link; /* srv->kick_queue while queued */
    struct buf req;               /* request body, for the next page */
    struct service_meta meta;
    char cid[129];
    char user[USER_MAX + 1];
    char method[64];
    size_t method_len;
    bool open;         /* linked to the connection and may still answer */
    bool in_call;      /* the service has not called back yet */
    bool timer_closed; /* the deadline handle has closed */
    bool paged;        /* stream every page */
    bool queued;       /* in srv->kick_queue */
    bool blocked;      /* the next page waits for the connection to drain */
};

/* A write request and the frame it writes. */
struct wreq
{
    uv_write_t req;
    struct conn *conn;
    uint8_t *data;
    size_t len;
};

static void conn_close_now(struct conn *c);
static void conn_goaway(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_process(struct conn *c);
static void conn_update_reading(struct conn *c);
static void stream_issue(struct stream *st);
static void kick_push(struct stream *st);
static void on_service_done(struct service_call *call,
                            int status,
                            const void *body,
                            size_t len);
static void on_kick(uv_idle_t *h);

void server_options_default(struct server_options *o)
{
    o->host = "127.0.0.1";
    o->port = 7400;
    o->max_frame = WIRE_DEFAULT_MAX_FRAME;
    o->max_connections = 10000;
    o->max_streams = 128;
    o->max_unsent = 8u << 20;
    o->idle_timeout_ms = 300000;
    o->default_timeout_ms = 30000;
}

/* ---- server lifetime ------------------------------------------------- */

static void server_maybe_done(struct server *s)
{
    server_close_cb cb;
    void *data;

    if (!s->closing || s->n_pending > 0 || !cairn_queue_empty(&s->conns)) {
        return;
    }
    cb = s->close_cb;
    data = s->close_data;
    free(s);
    if (cb != NULL) {
        cb(data);
    }
}

static void on_server_handle_close(uv_handle_t *h)
{
    struct server *s = h->data;
    s->n_pending--;
    server_maybe_done(s);
}

/* ---- streams --------------------------------------------------------- */

static void stream_maybe_free(struct stream *st)
{
    if (st->open || st->in_call || !st->timer_closed || st->queued) {
        return;
    }
    buf_close(&st->req);
    free(st);
}

static void on_deadline_close(uv_handle_t *h)
{
    struct stream *st = h->data;
    struct server *s = st->srv;

    st->timer_closed = true;
    s->n_pending--;
    stream_maybe_free(st);
    server_maybe_done(s);
}

/* Unlink a stream from its connection: it will not answer again. A call in
 * progress is cancelled; its callback will only free the stream. */
static void stream_finish(struct stream *st)
{
    struct conn *c = st->conn;

    if (!st->open) {
        return;
    }
    st->open = false;
    st->conn = NULL;
    cairn_queue_remove(&st->link);
    c->n_streams--;
    if (st->queued) {
        cairn_queue_remove(&st->kick_link);
        st->queued = false;
    }
    st->blocked = false;
    uv_close((uv_handle_t *)&st->deadline, on_deadline_close);
    if (st->in_call) {
        service_cancel(&st->call);
    }
}

/* ---- writing --------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct conn *c = w->conn;
    struct server *s = c->srv;

    c->unsent -= w->len;
    free(w->data);
    free(w);
    if (status < 0) {
        /* UV_ECANCELED: the socket is being closed already. */
        if (status != UV_ECANCELED) {
            log_debug("server: write to %s: %s", c->peer, uv_strerror(status));
            conn_close_now(c);
        }
        return;
    }
    c->last_active = uv_now(s->loop);
    if (c->paused && !c->closing &&
        c->unsent + c->out.len <= s->o.max_unsent / 2) {
        struct cairn_queue *q;

        c->paused = false;
        /* Streams whose next page waited for the drain go first, then the
         * frames already buffered, then the socket. */
        for (q = c->streams.next; q != &c->streams; q = q->next) {
            struct stream *st = cairn_queue_data(q, struct stream, link);
            if (st->blocked) {
                st->blocked = false;
                kick_push(st);
            }
        }
        conn_process(c);
        conn_update_reading(c);
    }
}

/* Hand the connection's gathered frames to uv_write. On failure the
 * connection is closed. */
static int conn_flush(struct conn *c)
{
    struct wreq *w;
    uv_buf_t ub;
    int rv;

    if (c->out.len == 0 || c->handles_closing) {
        return 0;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        log_warn("server: out of memory writing to %s", c->peer);
        conn_close_now(c);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    w->conn = c;
    w->data = buf_steal(&c->out, &w->len);
    w->req.data = w;
    ub = uv_buf_init((char *)w->data, (unsigned)w->len);
    rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
    if (rv != 0) {
        free(w->data);
        free(w);
        log_debug("server: write to %s: %s", c->peer, uv_strerror(rv));
        conn_close_now(c);
        return CAIRN_UNAVAILABLE;
    }
    c->unsent += w->len;
    return 0;
}

static void on_flush(uv_check_t *h)
{
    struct server *s = h->data;

    while (!cairn_queue_empty(&s->flush_queue)) {
        struct cairn_queue *q = cairn_queue_head(&s->flush_queue);
        struct conn *c = cairn_queue_data(q, struct conn, flush_link);

        cairn_queue_remove(q);
        c->flush_queued = false;
        conn_flush(c);
    }
    uv_check_stop(&s->flush);
    uv_idle_stop(&s->flush_idle);
}

static void on_flush_idle(uv_idle_t *h)
{
    (void)h;
}

/* Frames were added to c->out: write them at the end of this loop turn,
 * and stop reading while too much waits. On failure (out of memory) the
 * connection is closed. */
static int conn_queued(struct conn *c)
{
    struct server *s = c->srv;

    if (c->out.oom) {
        log_warn("server: out of memory encoding a frame for %s", c->peer);
        conn_close_now(c);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (s->closing) {
        /* The flush handles are closing: write now. */
        return conn_flush(c);
    }
    if (!c->flush_queued) {
        c->flush_queued = true;
        cairn_queue_push(&s->flush_queue, &c->flush_link);
        if (!uv_is_active((uv_handle_t *)&s->flush)) {
            uv_check_start(&s->flush, on_flush);
            uv_idle_start(&s->flush_idle, on_flush_idle);
        }
    }
    c->last_active = uv_now(s->loop);
    if (c->unsent + c->out.len > s->o.max_unsent && !c->paused) {
        c->paused = true;
        conn_update_reading(c);
    }
    return 0;
}

/* Queue the frame(s) in @p b, taking its memory. On failure the connection
 * is closed. */
static int conn_send(struct conn *c, struct buf *b)
{
    if (b->oom) {
        buf_close(b);
        log_warn("server: out of memory encoding a frame for %s", c->peer);
        conn_close_now(c);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (c->out.len == 0) {
        buf_close(&c->out);
        c->out = *b; /* take it whole: no copy */
        buf_init(b);
    } else {
        buf_append(&c->out, b->data, b->len);
        buf_close(b);
    }
    return conn_queued(c);
}

/* Send a response on stream @p id; nothing once the connection closes. */
static void conn_respond(struct conn *c,
                         uint64_t id,
                         int status,
                         const char *type,
                         const char *msg,
                         const void *body,
                         size_t len,
                         bool more)
{
    size_t mark = c->out.len;
    int rv;

    if (c->closing) {
        return;
    }
    /* Encoded straight into the connection's output. */
    rv = wire_encode_response(&c->out, id, status, type, msg, body, len, more);
    if (rv == 0 && c->out.len - mark - 4 > c->srv->o.max_frame) {
        /* The client would drop the connection on this frame: answer with
         * an error the stream can carry instead. */
        size_t n = c->out.len - mark - 4;
        c->out.len = mark;
        rv = wire_encode_response(
            &c->out, id, CAIRN_RESOURCE_EXHAUSTED, "ValidationException",
            "the response does not fit in a frame", NULL, 0, false);
        log_warn(
            "server: response of %zu bytes to %s exceeds the maximum "
            "frame of %zu",
            n, c->peer, c->srv->o.max_frame);
    }
    if (rv != 0) {
        c->out.oom = 1; /* conn_queued reports it and closes */
    }
    conn_queued(c);
}

static void stream_fail(struct conn *c,
                        uint64_t id,
                        int status,
                        const char *type,
                        const char *msg)
{
    conn_respond(c, id, status, type, msg, NULL, 0, false);
}

/* ---- connection lifetime --------------------------------------------- */

static void on_conn_handle_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct server *s = c->srv;

    if (--c->handles > 0) {
        return;
    }
    cairn_queue_remove(&c->link);
    s->n_conns--;
    wire_reader_close(&c->rd);
    buf_close(&c->out);
    log_debug("server: connection from %s closed", c->peer);
    free(c);
    server_maybe_done(s);
}

static void conn_finish_streams(struct conn *c)
{
    while (!cairn_queue_empty(&c->streams)) {
        struct cairn_queue *q = cairn_queue_head(&c->streams);
        stream_finish(cairn_queue_data(q, struct stream, link));
    }
}

/* Close the socket now; pending writes are cancelled. */
static void conn_close_now(struct conn *c)
{
    if (c->handles_closing) {
        return;
    }
    c->closing = true;
    c->handles_closing = true;
    c->reading = false;
    if (c->flush_queued) {
        cairn_queue_remove(&c->flush_link);
        c->flush_queued = false;
    }
    conn_finish_streams(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_close);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_close);
}

static void on_linger(uv_timer_t *t)
{
    conn_close_now(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;

    /* On success the GOAWAY is out; wait for the peer to close its side so
     * that unread bytes do not turn the close into a reset. */
    if (status < 0) {
        conn_close_now(c);
    }
}

/* Tell the peer why, then close: GOAWAY, shut down the write side, and
 * discard what the peer still sends until it closes or the linger ends. */
static void conn_goaway(struct conn *c, int status, const char *fmt, ...)
{
    char msg[512];
    struct buf b;
    va_list ap;
    int rv;

    if (c->closing) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_info("server: goaway to %s: %s: %s", c->peer, cairn_status_name(status),
             msg);
    c->closing = true;
    conn_finish_streams(c);
    buf_init(&b);
    if (wire_encode_goaway(&b, status, msg) != 0) {
        b.oom = 1;
    }
    /* Written now: the shutdown below follows the writes queued before it. */
    if (conn_send(c, &b) != 0 || conn_flush(c) != 0) {
        return; /* closed */
    }
    c->shutdown.data = c;
    rv = uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
    if (rv != 0) {
        conn_close_now(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger, LINGER_MS, 0);
    conn_update_reading(c);
}

/* ---- reading --------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    *b = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = h->data;

    if (nread < 0) {
        if (nread != UV_EOF) {
            log_debug("server: read from %s: %s", c->peer,
                      uv_strerror((int)nread));
        }
        c->reading = false;
        conn_close_now(c);
        return;
    }
    if (nread == 0 || c->closing) {
        return; /* a closing connection discards what it reads */
    }
    if (wire_reader_feed(&c->rd, b->base, (size_t)nread) != 0) {
        log_warn("server: out of memory reading from %s", c->peer);
        conn_close_now(c);
        return;
    }
    c->last_active = uv_now(c->srv->loop);
    conn_process(c);
}

/* Start or stop reading to match the connection's state. */
static void conn_update_reading(struct conn *c)
{
    bool want = !c->handles_closing && (c->closing || !c->paused);
    int rv;

    if (want == c->reading) {
        return;
    }
    if (want) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rv != 0) {
            log_debug("server: read from %s: %s", c->peer, uv_strerror(rv));
            conn_close_now(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = want;
}

static struct stream *conn_find_stream(struct conn *c, uint64_t id)
{
    struct cairn_queue *q;

    for (q = c->streams.next; q != &c->streams; q = q->next) {
        struct stream *st = cairn_queue_data(q, struct stream, link);
        if (st->id == id) {
            return st;
        }
    }
    return NULL;
}

/* Copy string metadata @p key into @p dst as a C string: 0 (absent), 1,
 * or -1 when it is too long or holds a NUL byte. */
static int meta_cstr(const msgpack_object *md,
                     const char *key,
                     char *dst,
                     size_t cap)
{
    struct mp_str s;
    int rv = mp_get_str(md, key, &s, NULL);

    if (rv <= 0) {
        return rv;
    }
    if (s.n >= cap || memchr(s.p, '\0', s.n) != NULL) {
        return -1;
    }
    memcpy(dst, s.p, s.n);
    dst[s.n] = '\0';
    return 1;
}

/* Copy the metadata the service understands. 0, or INVALID_ARGUMENT with
 * the reason in @p err. The wire codec has checked the types of cid, seq,
 * consistency and stream already; unknown keys are ignored. */
static int read_meta(struct stream *st,
                     const msgpack_object *md,
                     struct cairn_error *err)
{
    struct mp_str s;
    int rv;

    if (md == NULL) {
        return 0;
    }
    rv = meta_cstr(md, "cid", st->cid, sizeof(st->cid));
    if (rv < 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "request metadata \"cid\" must be a string "
                               "of at most %zu bytes without NUL",
                               sizeof(st->cid) - 1);
    }
    st->meta.cid = rv == 1 ? st->cid : NULL;
    rv = meta_cstr(md, "user", st->user, sizeof(st->user));
    if (rv < 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "request metadata \"user\" must be a string "
                               "of at most %d bytes without NUL",
                               USER_MAX);
    }
    st->meta.user = rv == 1 ? st->user : NULL;
    mp_get_u64(md, "seq", &st->meta.seq, NULL);
    if (mp_get_str(md, "consistency", &s, NULL) == 1) {
        st->meta.stale = mp_str_eqn(s, "stale");
    }
    mp_get_bool(md, "stream", &st->paged, NULL);
    return 0;
}

static void on_deadline(uv_timer_t *t)
{
    struct stream *st = t->data;

    if (!st->open) {
        return;
    }
    stream_fail(st->conn, st->id, CAIRN_DEADLINE_EXCEEDED, "RequestTimeout",
                "deadline exceeded; the operation may still complete");
    stream_finish(st);
}

static void handle_request(struct conn *c, const struct wire_msg *m)
{
    struct server *s = c->srv;
    struct cairn_error err;
    struct stream *st;
    uint64_t timeout;

    if (conn_find_stream(c, m->stream) != NULL) {
        stream_fail(c, m->stream, CAIRN_INVALID_ARGUMENT, "ValidationException",
                    "stream id is already open on this connection");
        return;
    }
    if (c->n_streams >= s->o.max_streams) {
        char msg[96];
        snprintf(msg, sizeof(msg),
                 "too many open streams on this connection (max %u)",
                 s->o.max_streams);
        stream_fail(c, m->stream, CAIRN_RESOURCE_EXHAUSTED,
                    "ThrottlingException", msg);
        return;
    }
    if (m->method.n >= sizeof(st->method)) {
        stream_fail(c, m->stream, CAIRN_UNIMPLEMENTED,
                    "UnknownOperationException", "unknown method");
        return;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        stream_fail(c, m->stream, CAIRN_RESOURCE_EXHAUSTED, "InternalFailure",
                    "out of memory");
        return;
    }
    cairn_error_clear(&err);
    if (read_meta(st, m->metadata, &err) != 0) {
        free(st);
        stream_fail(c, m->stream, err.code, err.type, err.msg);
        return;
    }
    st->paged = st->paged && service_is_paged(m->method.p, m->method.n);
    buf_init(&st->req);
    if (st->paged && buf_append(&st->req, m->body.p, m->body.n) != 0) {
        buf_close(&st->req);
        free(st);
        stream_fail(c, m->stream, CAIRN_RESOURCE_EXHAUSTED, "InternalFailure",
                    "out of memory");
        return;
    }
    memcpy(st->method, m->method.p, m->method.n);
    st->method_len = m->method.n;
    st->srv = s;
    st->conn = c;
    st->id = m->stream;
    st->open = true;
    uv_timer_init(s->loop, &st->deadline);
    st->deadline.data = st;
    s->n_pending++;
    cairn_queue_push(&c->streams, &st->link);
    cairn_queue_init(&st->kick_link);
    c->n_streams++;
    timeout = m->timeout_ms != 0 ? m->timeout_ms : s->o.default_timeout_ms;
    if (timeout > 0) {
        uv_timer_start(&st->deadline, on_deadline, timeout, 0);
    }
    if (st->paged) {
        stream_issue(st);
    } else {
        /* The service copies the body: no need to keep it. */
        st->in_call = true;
        st->call.data = st;
        service_call(s->svc, &st->call, st->method, st->method_len, m->body.p,
                     m->body.n, &st->meta, on_service_done);
    }
}

static void handle_cancel(struct conn *c, uint64_t id)
{
    struct stream *st = conn_find_stream(c, id);

    /* The stream may have answered already: nothing to do then. */
    if (st == NULL) {
        return;
    }
    stream_fail(c, id, CAIRN_CANCELLED, "RequestCanceled",
                "cancelled by the client");
    stream_finish(st);
}

static void handle_frame(struct conn *c, const uint8_t *p, size_t n)
{
    struct cairn_error err;
    struct wire_msg m;
    struct mp_doc doc;
    struct buf b;

    cairn_error_clear(&err);
    if (wire_decode(p, n, &m, &doc, &err) != 0) {
        conn_goaway(c, err.code != 0 ? err.code : CAIRN_INVALID_ARGUMENT, "%s",
                    err.msg);
        return;
    }
    switch (m.type) {
        case WIRE_REQUEST:
            handle_request(c, &m);
            break;
        case WIRE_CANCEL:
            handle_cancel(c, m.stream);
            break;
        case WIRE_PING:
            buf_init(&b);
            if (wire_encode_ping(&b, WIRE_PONG, m.stream) != 0) {
                b.oom = 1;
            }
            conn_send(c, &b);
            break;
        case WIRE_PONG:
            break; /* the server sends no pings; a pong is harmless */
        case WIRE_GOAWAY:
            /* The client is leaving: nothing it waits for can be sent. */
            conn_close_now(c);
            break;
        case WIRE_RESPONSE:
            conn_goaway(c, CAIRN_INVALID_ARGUMENT,
                        "a client may not send response frames");
            break;
    }
    mp_doc_close(&doc);
}

/* Handle the complete frames buffered, until the connection closes or is
 * paused by back-pressure (the rest waits in the reader). */
static void conn_process(struct conn *c)
{
    while (!c->closing && !c->paused) {
        const uint8_t *p;
        size_t n;
        int rv = wire_reader_next(&c->rd, &p, &n);

        if (rv == 0) {
            return;
        }
        if (rv < 0) {
            const uint8_t *h = c->rd.in.data + c->rd.consumed;
            uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
                           ((uint32_t)h[2] << 8) | (uint32_t)h[3];
            if (len == 0) {
                conn_goaway(c, CAIRN_INVALID_ARGUMENT, "empty frame");
            } else {
                conn_goaway(c, CAIRN_RESOURCE_EXHAUSTED,
                            "frame of %u bytes exceeds the maximum of %zu", len,
                            c->srv->o.max_frame);
            }
            return;
        }
        handle_frame(c, p, n);
    }
}

/* ---- service calls and server streaming ------------------------------- */

/* Build the request for the page after @p token into st->req: the same map
 * with NextToken replaced. 0, or a status with @p err set. */
static int next_request(struct stream *st,
                        struct mp_str token,
                        struct cairn_error *err)
{
    struct mp_doc doc;
    struct buf out;
    int rv = mp_doc_parse_map(&doc, st->req.data, st->req.len, err);

    if (rv != 0) {
        return rv;
    }
    buf_init(&out);
    rv = mp_pack_map_with(&out, &doc.root, "NextToken", token);
    mp_doc_close(&doc);
    if (rv != 0) {
        buf_close(&out);
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, "InternalFailure",
                               "out of memory");
    }
    buf_close(&st->req);
    st->req = out;
    return 0;
}

/* The NextToken of a page, if it has a non-empty one: 1, else 0. The token
 * is copied into st->req before the page's body goes away. */
static int prepare_next_page(struct stream *st,
                             const void *body,
                             size_t len,
                             struct cairn_error *err)
{
    struct mp_doc doc;
    struct mp_str token;
    int rv;

    if (mp_doc_parse(&doc, body, len, NULL) != 0) {
        return 0; /* not a map: the service's answer is passed on as is */
    }
    rv = mp_get_str(&doc.root, "NextToken", &token, NULL);
    if (rv == 1 && token.n > 0) {
        rv = next_request(st, token, err) == 0 ? 1 : -1;
    } else {
        rv = 0;
    }
    mp_doc_close(&doc);
    return rv;
}

static void on_service_done(struct service_call *call,
                            int status,
                            const void *body,
                            size_t len)
{
    struct stream *st = call->data;
    struct cairn_error err;
    struct conn *c;
    int next = 0;

    st->in_call = false;
    if (!st->open) {
        stream_maybe_free(st);
        return;
    }
    c = st->conn;
    if (status != 0) {
        stream_fail(c, st->id, status, call->err.type, call->err.msg);
        stream_finish(st);
        return;
    }
    if (st->paged) {
        cairn_error_clear(&err);
        next = prepare_next_page(st, body, len, &err);
        if (next < 0) {
            stream_fail(c, st->id, err.code, err.type, err.msg);
            stream_finish(st);
            return;
        }
    }
    conn_respond(c, st->id, 0, "", "", body, len, next == 1);
    if (next == 0 || !st->open || c->closing) {
        stream_finish(st);
        return;
    }
    /* The first page was read at a linearizable point (unless stale was
     * asked for); this node's store only moves forward from there, so the
     * later pages read it directly, without another barrier or read
     * index: each still reflects every write acknowledged before the
     * request. */
    st->meta.stale = true;
    /* The next call is made from the loop, not from inside this callback:
     * the service may still use the call after the callback returns, and a
     * service that answers synchronously would otherwise recurse once per
     * page. */
    kick_push(st);
}

static void stream_issue(struct stream *st)
{
    st->in_call = true;
    st->call.data = st;
    service_call(st->srv->svc, &st->call, st->method, st->method_len,
                 st->req.data, st->req.len, &st->meta, on_service_done);
}

/* Queue @p st for its next page, issued by on_kick on the next loop turn. */
static void kick_push(struct stream *st)
{
    struct server *s = st->srv;

    if (st->queued) {
        return;
    }
    st->queued = true;
    cairn_queue_push(&s->kick_queue, &st->kick_link);
    if (!uv_is_active((uv_handle_t *)&s->kick)) {
        uv_idle_start(&s->kick, on_kick);
    }
}

static void on_kick(uv_idle_t *h)
{
    struct server *s = h->data;
    struct cairn_queue batch;

    /* Take the streams queued so far: those that queue their next page
     * during this turn wait for the next one, so other work interleaves. */
    cairn_queue_init(&batch);
    if (!cairn_queue_empty(&s->kick_queue)) {
        batch.next = s->kick_queue.next;
        batch.prev = s->kick_queue.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        cairn_queue_init(&s->kick_queue);
    }
    while (!cairn_queue_empty(&batch)) {
        struct cairn_queue *q = cairn_queue_head(&batch);
        struct stream *st = cairn_queue_data(q, struct stream, kick_link);

        cairn_queue_remove(q);
        st->queued = false;
        if (st->conn->paused) {
            st->blocked = true; /* resumed when the connection drains */
            continue;
        }
        stream_issue(st);
    }
    if (cairn_queue_empty(&s->kick_queue)) {
        uv_idle_stop(&s->kick);
    }
}

/* ---- accepting ------------------------------------------------------- */

static void on_idle_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct server *s = c->srv;
    uint64_t now = uv_now(s->loop);
    uint64_t idle = s->o.idle_timeout_ms;

    /* Open streams keep a connection alive: they have deadlines of their
     * own. Frames sent and writes completed count as activity, so the idle
     * time starts after the last answer, and a client that reads slowly
     * but steadily is not idle either. */
    if (c->n_streams > 0) {
        c->last_active = now;
    }
    if (now - c->last_active < idle) {
        uv_timer_start(t, on_idle_timer, idle - (now - c->last_active), 0);
        return;
    }
    conn_goaway(c, CAIRN_UNAVAILABLE, "idle for %u ms", s->o.idle_timeout_ms);
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t n)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        }
    }
    snprintf(out, n, "%s:%d", ip, port);
}

static void on_refused_close(uv_handle_t *h)
{
    struct server *s = h->data;
    free(h);
    s->n_pending--;
    server_maybe_done(s);
}

/* Over the limit: accept and close at once, so that the backlog does not
 * fill with connections nobody will serve. */
static void refuse(struct server *s)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    uint64_t now = uv_now(s->loop);

    if (t == NULL || uv_tcp_init(s->loop, t) != 0) {
        free(t);
        return;
    }
    t->data = s;
    s->n_pending++;
    uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_close);
    s->refused++;
    if (s->refused_logged_at == 0 ||
        now - s->refused_logged_at >= REFUSE_LOG_MS) {
        log_warn("server: refused %u connection(s): %u open, the maximum",
                 s->refused, s->n_conns);
        s->refused = 0;
        s->refused_logged_at = now;
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    struct conn *c;

    if (status < 0) {
        log_warn("server: accept: %s", uv_strerror(status));
        return;
    }
    if (s->closing) {
        return;
    }
    if (s->n_conns >= s->o.max_connections) {
        refuse(s);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        log_warn("server: out of memory accepting a connection");
        return;
    }
    c->srv = s;
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    buf_init(&c->out);
    cairn_queue_init(&c->flush_link);
    uv_timer_init(s->loop, &c->timer);
    wire_reader_init(&c->rd, s->o.max_frame);
    cairn_queue_init(&c->streams);
    cairn_queue_push(&s->conns, &c->link);
    s->n_conns++;
    c->last_active = uv_now(s->loop);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_now(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(&c->tcp, c->peer, sizeof(c->peer));
    log_debug("server: connection from %s", c->peer);
    if (s->o.idle_timeout_ms > 0) {
        uv_timer_start(&c->timer, on_idle_timer, s->o.idle_timeout_ms, 0);
    }
    conn_update_reading(c);
}

/* ---- public API ------------------------------------------------------ */

static int status_from_uv(int rv)
{
    switch (rv) {
        case UV_EADDRINUSE:
        case UV_EACCES:
            return CAIRN_UNAVAILABLE;
        case UV_EADDRNOTAVAIL:
        case UV_EINVAL:
        case UV_EAFNOSUPPORT:
            return CAIRN_INVALID_ARGUMENT;
        case UV_ENOMEM:
        case UV_ENOBUFS:
        case UV_EMFILE:
        case UV_ENFILE:
            return CAIRN_RESOURCE_EXHAUSTED;
        default:
            return CAIRN_INTERNAL;
    }
}

int server_start(uv_loop_t *loop,
                 struct service *svc,
                 const struct server_options *o,
                 struct server **out,
                 struct cairn_error *err)
{
    struct sockaddr_storage addr;
    struct server *s;
    struct server_options d;
    int len = (int)sizeof(addr);
    const char *host;
    int rv;

    server_options_default(&d);
    if (o == NULL) {
        o = &d;
    }
    host = o->host != NULL ? o->host : d.host;
    if (o->port < 0 || o->port > 65535) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "port %d is out of range", o->port);
    }
    memset(&addr, 0, sizeof(addr));
    if (uv_ip4_addr(host, o->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, o->port, (struct sockaddr_in6 *)&addr) != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "listen address \"%s\" is not an IP address",
                               host);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    s->loop = loop;
    s->svc = svc;
    s->o = *o;
    s->o.host = NULL;
    /* Zero limits mean the defaults; zero timeouts mean none. */
    if (s->o.max_frame == 0) {
        s->o.max_frame = d.max_frame;
    }
    if (s->o.max_connections == 0) {
        s->o.max_connections = d.max_connections;
    }
    if (s->o.max_streams == 0) {
        s->o.max_streams = d.max_streams;
    }
    if (s->o.max_unsent == 0) {
        s->o.max_unsent = d.max_unsent;
    }
    cairn_queue_init(&s->kick_queue);
    cairn_queue_init(&s->flush_queue);
    cairn_queue_init(&s->conns);
    uv_tcp_init(loop, &s->listener);
    uv_idle_init(loop, &s->kick);
    uv_check_init(loop, &s->flush);
    uv_idle_init(loop, &s->flush_idle);
    s->listener.data = s;
    s->kick.data = s;
    s->flush.data = s;
    s->flush_idle.data = s;
    s->n_pending = 4;
    rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG,
                       on_connection);
    }
    if (rv == 0) {
        rv = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len);
    }
    if (rv != 0) {
        cairn_error_set(err, status_from_uv(rv), NULL, "listen on %s:%d: %s",
                        host, o->port, uv_strerror(rv));
        /* The handles are freed by the loop; nobody is told. */
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_server_handle_close);
        uv_close((uv_handle_t *)&s->kick, on_server_handle_close);
        uv_close((uv_handle_t *)&s->flush, on_server_handle_close);
        uv_close((uv_handle_t *)&s->flush_idle, on_server_handle_close);
        return err != NULL ? err->code : status_from_uv(rv);
    }
    s->port = ntohs(addr.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&addr)->sin6_port
                        : ((struct sockaddr_in *)&addr)->sin_port);
    log_info("server: listening on %s:%d", host, s->port);
    *out = s;
    return 0;
}

int server_port(const struct server *s)
{
    return s->port;
}

void server_close(struct server *s, server_close_cb cb, void *data)
{
    struct cairn_queue *q;

    if (s == NULL) {
        if (cb != NULL) {
            cb(data);
        }
        return;
    }
    if (s->closing) {
        return;
    }
    log_info("server: closing (%u connections)", s->n_conns);
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_close);
    uv_close((uv_handle_t *)&s->kick, on_server_handle_close);
    /* Streams queued for a next page are finished with their connection;
     * each GOAWAY writes the connection's gathered output first. */
    for (q = s->conns.next; q != &s->conns; q = q->next) {
        conn_goaway(cairn_queue_data(q, struct conn, link), CAIRN_UNAVAILABLE,
                    "server shutting down");
    }
    on_flush(&s->flush); /* what is still gathered, then stop */
    uv_close((uv_handle_t *)&s->flush, on_server_handle_close);
    uv_close((uv_handle_t *)&s->flush_idle, on_server_handle_close);
}
