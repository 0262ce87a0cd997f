/* Node-to-node calls (peer.h): one multiplexed connection per peer
 * address, on the node's libuv loop.
 *
 * Objects and ownership (STYLE.md 2.5):
 * - a struct peer_conn exists per distinct address string and lives until
 *   the pool is freed. It holds the calls in flight to that address, the
 *   stream id counter, the frames waiting for a connection and the cause
 *   of the last failure;
 * - a struct peer_sock is one TCP connection (resolve, connect, read,
 *   write). It is attached to its conn while usable; a failure detaches it
 *   and closes its handle, and it frees itself once its handle has closed
 *   and its name lookup, if any, has called back. The next call on the
 *   conn opens a new one;
 * - a write request owns its encoded frames and frees both in its callback;
 * - the pool is freed, after peer_pool_close, once its timer, its idle
 *   handle and every sock are gone.
 *
 * A call is in one of three places: in conn->calls while its request is
 * written or queued and it waits for the answer; in pool->done once its
 * outcome is known but its callback must wait for the next loop turn
 * (cancelled, failed with its connection, refused during the reconnect
 * backoff); or nowhere, while and after its callback runs. Callbacks run
 * from libuv callbacks only, so never inside peer_call_start, and the call
 * is unlinked before its callback runs: the callback may free it, start or
 * cancel calls, or close the pool. Whoever iterates after a callback
 * starts over or re-checks what the callback may have changed. */
#include "peer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "wire.h"

/* Largest response frame accepted from a peer, as libcairn does: a bad
 * length prefix must not make us allocate without bound. */
#define PEER_MAX_FRAME (64u << 20)
/* Bytes a connection may hold in frames not yet written (queued while
 * connecting, or given to uv_write and not completed); new calls beyond it
 * are refused with RESOURCE_EXHAUSTED. */
#define PEER_MAX_UNSENT (8u << 20)
/* A connection that failed to connect is not retried before this: calls in
 * the meantime fail at once, so a dead peer costs no connect loop. */
#define PEER_RETRY_MS 50
/* The local deadline of a call sent with timeout_ms 0 (the peer's default,
 * 30 s unless its operator changed it). */
#define PEER_DEFAULT_TIMEOUT_MS 30000
/* Longest "host:port" accepted. */
#define PEER_ADDRESS_MAX 300
#define READ_CHUNK 65536

/* The deadline of a call whose outcome is known: its callback is queued in
 * pool->done. Real deadlines are uv_now() plus at most 2^32 ms. */
#define FINISHING UINT64_MAX

/* Why a finished call in pool->done failed; kept in call->stream, which is
 * not needed any more (the cancel frame, if any, has been sent). */
enum finish_reason {
    FIN_CANCELLED = 1, /* peer_call_cancel */
    FIN_LOST,          /* its connection failed: conn->err says why */
    FIN_BACKOFF,       /* refused while waiting to reconnect */
    FIN_CLOSING,       /* the pool is closing */
};

struct peer_pool
{
    uv_loop_t *loop;
    uv_timer_t timer;         /* fires at the earliest deadline */
    uv_idle_t idle;           /* runs the callbacks queued in done */
    uint64_t timer_due;       /* deadline the timer is set for; 0: none */
    struct cairn_queue conns; /* every struct peer_conn */
    struct cairn_queue done;  /* finished calls waiting for their callback */
    size_t n_done;            /* length of done */
    unsigned pending;         /* timer, idle and socks not yet freed */
    bool closing;
    peer_pool_close_cb close_cb;
    void *close_data;
    char rbuf[READ_CHUNK]; /* reads are consumed before the next one */
};

struct peer_conn
{
    struct peer_pool *pool;
    struct cairn_queue link;  /* pool->conns */
    struct cairn_queue calls; /* waiting for their answer */
    struct peer_sock *sock;   /* the current connection, or NULL */
    struct buf queued;        /* frames waiting for the connect */
    uint64_t next_stream;     /* never reused, across connections too */
    uint64_t retry_at;        /* no new connection before this uv_now() */
    bool numeric;             /* addr holds the address, no lookup needed */
    struct sockaddr_storage addr;
    char host[256];
    char port[6];
    char err[512];  /* the cause of the last failure */
    char address[]; /* as given to peer_call_start */
};

enum sock_state { SOCK_RESOLVING, SOCK_CONNECTING, SOCK_CONNECTED };

struct peer_sock
{
    struct peer_pool *pool;
    struct peer_conn *conn; /* NULL once detached: failed or closing */
    enum sock_state state;
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    uv_tcp_t tcp;
    struct wire_reader rd;
    size_t unsent; /* bytes given to uv_write, not completed */
    unsigned refs; /* the tcp handle, and the lookup while it runs */
};

/* A write request and the frames it writes. */
struct wreq
{
    uv_write_t req;
    struct peer_sock *sock;
    uint8_t *data;
    size_t len;
};

static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *h);

/* ---- pool lifetime --------------------------------------------------- */

static void pool_maybe_free(struct peer_pool *p)
{
    peer_pool_close_cb cb;
    void *data;

    if (!p->closing || p->pending > 0) {
        return;
    }
    while (!cairn_queue_empty(&p->conns)) {
        struct cairn_queue *q = cairn_queue_head(&p->conns);
        struct peer_conn *c = cairn_queue_data(q, struct peer_conn, link);

        cairn_queue_remove(q);
        buf_close(&c->queued);
        free(c);
    }
    cb = p->close_cb;
    data = p->close_data;
    free(p);
    if (cb != NULL) {
        cb(data);
    }
}

static void on_pool_handle_close(uv_handle_t *h)
{
    struct peer_pool *p = h->data;

    p->pending--;
    pool_maybe_free(p);
}

int peer_pool_create(uv_loop_t *loop,
                     struct peer_pool **out,
                     struct cairn_error *err)
{
    struct peer_pool *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "peer pool: out of memory");
    }
    p->loop = loop;
    cairn_queue_init(&p->conns);
    cairn_queue_init(&p->done);
    uv_timer_init(loop, &p->timer);
    uv_idle_init(loop, &p->idle);
    p->timer.data = p;
    p->idle.data = p;
    p->pending = 2;
    *out = p;
    return 0;
}

/* ---- finishing calls ------------------------------------------------- */

static void call_unlink(struct peer_call *call)
{
    cairn_queue_remove(&call->link);
}

/* Run the callback of a call that is linked nowhere. */
static void call_complete(struct peer_call *call,
                          int status,
                          const char *type,
                          const char *message,
                          const void *body,
                          size_t len)
{
    call->deadline = FINISHING;
    call->cb(call, status, type, message, body != NULL ? body : "", len);
}

/* Queue @p call (linked nowhere) for its callback on the next loop turn. */
static void call_defer(struct peer_call *call, enum finish_reason why)
{
    struct peer_pool *p = call->conn->pool;

    call->deadline = FINISHING;
    call->stream = why;
    cairn_queue_push(&p->done, &call->link);
    p->n_done++;
    if (!p->closing) {
        uv_idle_start(&p->idle, on_idle);
    }
}

static void call_deliver_deferred(struct peer_call *call)
{
    struct peer_conn *c = call->conn;
    char msg[1024];

    switch ((enum finish_reason)call->stream) {
        case FIN_CANCELLED:
            snprintf(msg, sizeof(msg), "peer %s: cancelled by the caller",
                     c->address);
            call_complete(call, CAIRN_CANCELLED, "RequestCanceled", msg, NULL,
                          0);
            return;
        case FIN_LOST:
            snprintf(msg, sizeof(msg), "peer %s: %s", c->address, c->err);
            break;
        case FIN_BACKOFF:
            snprintf(msg, sizeof(msg),
                     "peer %s: %s (no new connection within %d ms of a "
                     "failed one)",
                     c->address, c->err, PEER_RETRY_MS);
            break;
        case FIN_CLOSING:
        default:
            snprintf(msg, sizeof(msg), "peer %s: the peer pool is closing",
                     c->address);
            break;
    }
    call_complete(call, CAIRN_UNAVAILABLE, "ServiceUnavailable", msg, NULL, 0);
}

/* Take the first queued call off pool->done and run its callback. */
static void pool_deliver_one(struct peer_pool *p)
{
    struct cairn_queue *q = cairn_queue_head(&p->done);
    struct peer_call *call = cairn_queue_data(q, struct peer_call, link);

    cairn_queue_remove(q);
    p->n_done--;
    call_deliver_deferred(call);
}

static void on_idle(uv_idle_t *h)
{
    struct peer_pool *p = h->data;
    size_t n = p->n_done;

    /* Only the calls queued before this turn: those that callbacks queue
     * now wait for the next one, so a callback that retries a refused
     * call at once cannot keep the loop here. peer_pool_close, from a
     * callback, may empty the queue under us. */
    while (n-- > 0 && !cairn_queue_empty(&p->done)) {
        pool_deliver_one(p);
    }
    if (cairn_queue_empty(&p->done)) {
        uv_idle_stop(h);
    }
}

/* ---- deadlines ------------------------------------------------------- */

static void timer_arm(struct peer_pool *p, uint64_t deadline)
{
    uint64_t now = uv_now(p->loop);

    if (p->closing || (p->timer_due != 0 && p->timer_due <= deadline)) {
        return;
    }
    p->timer_due = deadline;
    uv_timer_start(&p->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

/* ---- writing --------------------------------------------------------- */

static void conn_fail(struct peer_conn *c,
                      bool connect_failed,
                      const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct peer_sock *s = w->sock;

    s->unsent -= w->len;
    free(w->data);
    free(w);
    /* UV_ECANCELED: the socket is being closed already. */
    if (status < 0 && status != UV_ECANCELED && s->conn != NULL) {
        conn_fail(s->conn, false, "write: %s", uv_strerror(status));
    }
}

/* A write request for the frames in @p b, taking its memory, or NULL (out
 * of memory; @p b is left as it was). */
static struct wreq *wreq_new(struct buf *b)
{
    struct wreq *w = malloc(sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    w->data = buf_steal(b, &w->len);
    w->req.data = w;
    return w;
}

/* Write @p w on the connected socket. On failure the connection fails. */
static void sock_submit(struct peer_sock *s, struct wreq *w)
{
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)w->len);
    int rv;

    w->sock = s;
    rv = uv_write(&w->req, (uv_stream_t *)&s->tcp, &ub, 1, on_write);
    if (rv != 0) {
        free(w->data);
        free(w);
        conn_fail(s->conn, false, "write: %s", uv_strerror(rv));
        return;
    }
    s->unsent += w->len;
}

/* Send the small frame in @p b (cancel, pong) on the conn's connection,
 * or queue it behind the requests waiting for the connect. Best effort:
 * out of memory, it is dropped. Takes the memory of @p b. */
static void conn_send_small(struct peer_conn *c, struct buf *b)
{
    struct wreq *w;

    if (b->oom || c->sock == NULL) {
        buf_close(b);
        return;
    }
    if (c->sock->state != SOCK_CONNECTED) {
        buf_append(&c->queued, b->data, b->len);
        c->queued.oom = 0; /* nothing was appended; the queue is intact */
        buf_close(b);
        return;
    }
    w = wreq_new(b);
    if (w == NULL) {
        buf_close(b);
        return;
    }
    sock_submit(c->sock, w);
}

static void conn_send_cancel(struct peer_conn *c, uint64_t stream)
{
    struct buf b;

    buf_init(&b);
    if (wire_encode_cancel(&b, stream) != 0) {
        b.oom = 1;
    }
    conn_send_small(c, &b);
}

/* ---- connection lifetime --------------------------------------------- */

static void sock_maybe_free(struct peer_sock *s)
{
    struct peer_pool *p = s->pool;

    if (s->refs > 0) {
        return;
    }
    wire_reader_close(&s->rd);
    free(s);
    p->pending--;
    pool_maybe_free(p);
}

static void on_sock_close(uv_handle_t *h)
{
    struct peer_sock *s = h->data;

    s->refs--;
    sock_maybe_free(s);
}

/* Detach @p s from its conn and close it; it frees itself later. */
static void sock_close(struct peer_sock *s)
{
    if (s->conn != NULL) {
        s->conn->sock = NULL;
        s->conn = NULL;
    }
    if (s->state == SOCK_RESOLVING) {
        /* Its callback runs either way, with UV_EAI_CANCELED if the
         * lookup had not started. */
        uv_cancel((uv_req_t *)&s->gai);
    }
    if (!uv_is_closing((uv_handle_t *)&s->tcp)) {
        uv_close((uv_handle_t *)&s->tcp, on_sock_close);
    }
}

/* The connection of @p c failed: close it, and fail every call waiting on
 * it with UNAVAILABLE on the next loop turn (this may run inside
 * peer_call_start). After a failed connect, new calls fail at once for
 * PEER_RETRY_MS. */
static void conn_fail(struct peer_conn *c,
                      bool connect_failed,
                      const char *fmt,
                      ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    log_debug("peer %s: %s", c->address, c->err);
    if (connect_failed) {
        c->retry_at = uv_now(c->pool->loop) + PEER_RETRY_MS;
    }
    if (c->sock != NULL) {
        sock_close(c->sock);
    }
    buf_close(&c->queued);
    while (!cairn_queue_empty(&c->calls)) {
        struct cairn_queue *q = cairn_queue_head(&c->calls);
        struct peer_call *call = cairn_queue_data(q, struct peer_call, link);

        call_unlink(call);
        call_defer(call, FIN_LOST);
    }
}

/* ---- reading --------------------------------------------------------- */

static struct peer_call *conn_find_call(struct peer_conn *c, uint64_t stream)
{
    struct cairn_queue *q;

    for (q = c->calls.next; q != &c->calls; q = q->next) {
        struct peer_call *call = cairn_queue_data(q, struct peer_call, link);
        if (call->stream == stream) {
            return call;
        }
    }
    return NULL;
}

static void handle_response(struct peer_conn *c, const struct wire_msg *m)
{
    char type[CAIRN_ERROR_TYPE_MAX];
    char msg[CAIRN_ERROR_MSG_MAX];
    struct peer_call *call = conn_find_call(c, m->stream);
    int status = m->status;

    /* Unknown: a call that expired or was cancelled, or a later page of a
     * server stream whose first page was delivered. */
    if (call == NULL) {
        return;
    }
    call_unlink(call);
    if (m->more) {
        /* Only the first page is wanted: stop the peer producing more. */
        conn_send_cancel(c, m->stream);
    }
    if (status > CAIRN_UNAUTHENTICATED) {
        status = CAIRN_UNKNOWN; /* protocol.md section 5 */
    }
    snprintf(type, sizeof(type), "%.*s", (int)m->error_type.n, m->error_type.p);
    snprintf(msg, sizeof(msg), "%.*s", (int)m->message.n, m->message.p);
    call_complete(call, status, type, msg, m->body.p, m->body.n);
}

static void handle_frame(struct peer_sock *s, const struct wire_msg *m)
{
    struct peer_conn *c = s->conn;
    struct buf b;

    switch (m->type) {
        case WIRE_RESPONSE:
            handle_response(c, m);
            break;
        case WIRE_PING:
            buf_init(&b);
            if (wire_encode_ping(&b, WIRE_PONG, m->stream) != 0) {
                b.oom = 1;
            }
            conn_send_small(c, &b);
            break;
        case WIRE_GOAWAY:
            conn_fail(c, false, "going away: %s: %.*s",
                      cairn_status_name(m->status), (int)m->message.n,
                      m->message.p);
            break;
        default:
            /* Pongs; requests and cancels are not for clients. */
            break;
    }
}

/* Handle the complete frames received, until none is left or the
 * connection is detached (by a failure, or by a callback). */
static void sock_process(struct peer_sock *s)
{
    while (s->conn != NULL) {
        struct cairn_error err;
        struct wire_msg m;
        struct mp_doc doc;
        const uint8_t *payload;
        size_t len;
        int rv = wire_reader_next(&s->rd, &payload, &len);

        if (rv == 0) {
            return;
        }
        if (rv < 0) {
            const uint8_t *h = s->rd.in.data + s->rd.consumed;
            uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
                         ((uint32_t)h[2] << 8) | (uint32_t)h[3];
            conn_fail(s->conn, false,
                      "bad frame: length %u is not within 1 to %u", n,
                      PEER_MAX_FRAME);
            return;
        }
        cairn_error_clear(&err);
        if (wire_decode(payload, len, &m, &doc, &err) != 0) {
            conn_fail(s->conn, false, "bad frame: %s", err.msg);
            return;
        }
        handle_frame(s, &m);
        mp_doc_close(&doc);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct peer_sock *s = h->data;

    *b = uv_buf_init(s->pool->rbuf, sizeof(s->pool->rbuf));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
    struct peer_sock *s = h->data;

    if (s->conn == NULL || nread == 0) {
        return;
    }
    if (nread == UV_EOF) {
        conn_fail(s->conn, false, "connection closed by the peer");
        return;
    }
    if (nread < 0) {
        conn_fail(s->conn, false, "read: %s", uv_strerror((int)nread));
        return;
    }
    if (wire_reader_feed(&s->rd, b->base, (size_t)nread) != 0) {
        conn_fail(s->conn, false, "out of memory reading a response");
        return;
    }
    sock_process(s);
}

/* ---- connecting ------------------------------------------------------ */

static void on_connect(uv_connect_t *req, int status)
{
    struct peer_sock *s = req->data;
    struct peer_conn *c = s->conn;
    struct wreq *w;
    int rv;

    if (c == NULL) {
        return; /* UV_ECANCELED: closed while connecting */
    }
    if (status < 0) {
        conn_fail(c, true, "connect: %s", uv_strerror(status));
        return;
    }
    s->state = SOCK_CONNECTED;
    /* Each call waits for its answer: Nagle's delay would cost a round
     * trip. */
    uv_tcp_nodelay(&s->tcp, 1);
    rv = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rv != 0) {
        conn_fail(c, false, "read: %s", uv_strerror(rv));
        return;
    }
    if (c->queued.len == 0) {
        buf_close(&c->queued);
        return;
    }
    w = wreq_new(&c->queued);
    if (w == NULL) {
        conn_fail(c, false, "out of memory writing the requests");
        return;
    }
    sock_submit(s, w);
}

static void sock_connect(struct peer_sock *s, const struct sockaddr *sa)
{
    int rv;

    s->state = SOCK_CONNECTING;
    s->connect.data = s;
    rv = uv_tcp_connect(&s->connect, &s->tcp, sa, on_connect);
    if (rv != 0) {
        conn_fail(s->conn, true, "connect: %s", uv_strerror(rv));
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct peer_sock *s = req->data;
    struct peer_conn *c = s->conn;
    struct addrinfo *ai;
    struct addrinfo *pick = NULL;

    s->refs--;
    if (c == NULL) {
        uv_freeaddrinfo(res);
        sock_maybe_free(s);
        return;
    }
    if (status < 0) {
        uv_freeaddrinfo(res);
        conn_fail(c, true, "resolve %s: %s", c->host, uv_strerror(status));
        return;
    }
    /* Nodes listen on one address, usually IPv4 (server.c): prefer an
     * IPv4 answer, as "localhost" often lists ::1 first. */
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && pick == NULL) {
            pick = ai;
        }
    }
    if (pick == NULL) {
        uv_freeaddrinfo(res);
        conn_fail(c, true, "resolve %s: no IPv4 or IPv6 address", c->host);
        return;
    }
    sock_connect(s, pick->ai_addr);
    uv_freeaddrinfo(res);
}

/* Open a connection for @p c: look its name up or connect straight away.
 * 0, or RESOURCE_EXHAUSTED with nothing started. A failure to start the
 * lookup or the connect fails the conn (its calls fail later). */
static int conn_open(struct peer_conn *c)
{
    struct peer_pool *p = c->pool;
    struct addrinfo hints;
    struct peer_sock *s = calloc(1, sizeof(*s));
    int rv;

    if (s == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (uv_tcp_init(p->loop, &s->tcp) != 0) {
        free(s);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    s->pool = p;
    s->conn = c;
    s->tcp.data = s;
    s->refs = 1;
    wire_reader_init(&s->rd, PEER_MAX_FRAME);
    p->pending++;
    c->sock = s;
    if (c->numeric) {
        sock_connect(s, (const struct sockaddr *)&c->addr);
        return 0;
    }
    s->state = SOCK_RESOLVING;
    s->gai.data = s;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    rv =
        uv_getaddrinfo(p->loop, &s->gai, on_resolved, c->host, c->port, &hints);
    if (rv != 0) {
        s->state = SOCK_CONNECTING; /* no lookup to cancel */
        conn_fail(c, true, "resolve %s: %s", c->host, uv_strerror(rv));
        return 0;
    }
    s->refs++;
    return 0;
}

/* ---- addresses ------------------------------------------------------- */

static bool is_port(const char *s)
{
    unsigned long v;
    char *end;

    if (s[0] < '0' || s[0] > '9') {
        return false;
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    return errno == 0 && *end == '\0' && v >= 1 && v <= 65535;
}

/* Split "host:port" or "[v6]:port" into c->host and c->port and note
 * whether the host is a numeric address. 0 or INVALID_ARGUMENT. */
static int parse_address(struct peer_conn *c, const char *address)
{
    const char *host = address;
    const char *port;
    size_t host_len;

    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':') {
            return CAIRN_INVALID_ARGUMENT;
        }
        host = address + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(address, ':');
        /* A bare IPv6 address would have several colons. */
        if (colon == NULL || strchr(address, ':') != colon) {
            return CAIRN_INVALID_ARGUMENT;
        }
        host_len = (size_t)(colon - address);
        port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(c->host) || !is_port(port) ||
        strlen(port) >= sizeof(c->port)) {
        return CAIRN_INVALID_ARGUMENT;
    }
    memcpy(c->host, host, host_len);
    c->host[host_len] = '\0';
    strcpy(c->port, port);
    if (uv_ip4_addr(c->host, atoi(c->port), (struct sockaddr_in *)&c->addr) ==
            0 ||
        uv_ip6_addr(c->host, atoi(c->port), (struct sockaddr_in6 *)&c->addr) ==
            0) {
        c->numeric = true;
    }
    return 0;
}

/* The conn for @p address, created if needed. 0, INVALID_ARGUMENT or
 * RESOURCE_EXHAUSTED. */
static int pool_get_conn(struct peer_pool *p,
                         const char *address,
                         struct peer_conn **out)
{
    struct cairn_queue *q;
    struct peer_conn *c;
    size_t n;
    int rv;

    for (q = p->conns.next; q != &p->conns; q = q->next) {
        c = cairn_queue_data(q, struct peer_conn, link);
        if (strcmp(c->address, address) == 0) {
            *out = c;
            return 0;
        }
    }
    n = strlen(address);
    if (n == 0 || n > PEER_ADDRESS_MAX) {
        return CAIRN_INVALID_ARGUMENT;
    }
    c = calloc(1, sizeof(*c) + n + 1);
    if (c == NULL) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    rv = parse_address(c, address);
    if (rv != 0) {
        free(c);
        return rv;
    }
    memcpy(c->address, address, n + 1);
    c->pool = p;
    c->next_stream = 1;
    cairn_queue_init(&c->calls);
    buf_init(&c->queued);
    cairn_queue_push(&p->conns, &c->link);
    *out = c;
    return 0;
}

/* ---- calls ----------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct peer_pool *p = t->data;
    uint64_t now = uv_now(p->loop);
    uint64_t next = 0;
    struct cairn_queue *q;
    struct cairn_queue *r;

    p->timer_due = 0;
again:
    for (q = p->conns.next; q != &p->conns; q = q->next) {
        struct peer_conn *c = cairn_queue_data(q, struct peer_conn, link);

        for (r = c->calls.next; r != &c->calls; r = r->next) {
            struct peer_call *call =
                cairn_queue_data(r, struct peer_call, link);
            char msg[512];

            if (call->deadline > now) {
                continue;
            }
            call_unlink(call);
            /* So that the peer stops working on it; its answer, if it
             * crosses the cancel, is skipped as an unknown stream. */
            conn_send_cancel(c, call->stream);
            snprintf(msg, sizeof(msg), "peer %s: no answer before the deadline",
                     c->address);
            call_complete(call, CAIRN_DEADLINE_EXCEEDED, "RequestTimeout", msg,
                          NULL, 0);
            /* The callback may have changed any list: start over. */
            goto again;
        }
    }
    for (q = p->conns.next; q != &p->conns; q = q->next) {
        struct peer_conn *c = cairn_queue_data(q, struct peer_conn, link);

        for (r = c->calls.next; r != &c->calls; r = r->next) {
            struct peer_call *call =
                cairn_queue_data(r, struct peer_call, link);
            if (next == 0 || call->deadline < next) {
                next = call->deadline;
            }
        }
    }
    if (next != 0) {
        timer_arm(p, next);
    }
}

int peer_call_start(struct peer_pool *p,
                    struct peer_call *call,
                    const char *address,
                    const char *method,
                    const void *meta,
                    size_t meta_len,
                    const void *body,
                    size_t body_len,
                    unsigned timeout_ms,
                    peer_cb cb)
{
    struct peer_conn *c;
    struct wreq *w = NULL;
    size_t queued_len;
    uint64_t stream;
    int rv;

    if (p == NULL || call == NULL || cb == NULL || address == NULL ||
        method == NULL || method[0] == '\0') {
        return CAIRN_INVALID_ARGUMENT;
    }
    if (p->closing) {
        return CAIRN_UNAVAILABLE;
    }
    rv = pool_get_conn(p, address, &c);
    if (rv != 0) {
        return rv;
    }
    call->cb = cb;
    call->conn = c;
    cairn_queue_init(&call->link);
    if (c->sock == NULL && c->retry_at != 0 && uv_now(p->loop) < c->retry_at) {
        call_defer(call, FIN_BACKOFF);
        return 0;
    }
    stream = c->next_stream;
    if (c->sock != NULL && c->sock->state == SOCK_CONNECTED) {
        struct buf b;

        if (c->sock->unsent > PEER_MAX_UNSENT) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
        buf_init(&b);
        rv = wire_encode_request(&b, stream, method, timeout_ms, meta, meta_len,
                                 body, body_len);
        if (rv == 0 && (w = wreq_new(&b)) == NULL) {
            rv = CAIRN_RESOURCE_EXHAUSTED;
        }
        buf_close(&b);
        if (rv != 0) {
            return rv;
        }
    } else {
        /* Connecting, or not yet: the frame waits in c->queued. */
        if (c->queued.len > PEER_MAX_UNSENT) {
            return CAIRN_RESOURCE_EXHAUSTED;
        }
        queued_len = c->queued.len;
        rv = wire_encode_request(&c->queued, stream, method, timeout_ms, meta,
                                 meta_len, body, body_len);
        c->queued.oom = 0; /* a failed encode leaves the queue as it was */
        if (rv != 0) {
            return rv;
        }
        if (c->sock == NULL) {
            rv = conn_open(c);
            if (rv != 0) {
                c->queued.len = queued_len;
                return rv;
            }
        }
    }
    c->next_stream++;
    call->stream = stream;
    if (c->sock == NULL) {
        /* conn_open could not start the lookup or the connect: the
         * connection has failed already, and so has the call. */
        call_defer(call, FIN_LOST);
        return 0;
    }
    call->deadline = uv_now(p->loop) +
                     (timeout_ms > 0 ? timeout_ms : PEER_DEFAULT_TIMEOUT_MS);
    cairn_queue_push(&c->calls, &call->link);
    timer_arm(p, call->deadline);
    if (w != NULL) {
        sock_submit(c->sock, w);
    }
    return 0;
}

void peer_call_cancel(struct peer_call *call)
{
    struct peer_conn *c = call->conn;

    /* Finished already: its callback is queued or running. */
    if (call->deadline == FINISHING) {
        return;
    }
    call_unlink(call);
    conn_send_cancel(c, call->stream);
    call_defer(call, FIN_CANCELLED);
}

void peer_pool_close(struct peer_pool *p, peer_pool_close_cb cb, void *data)
{
    struct cairn_queue *q;

    if (p == NULL) {
        if (cb != NULL) {
            cb(data);
        }
        return;
    }
    if (p->closing) {
        return;
    }
    p->closing = true;
    p->close_cb = cb;
    p->close_data = data;
    for (q = p->conns.next; q != &p->conns; q = q->next) {
        struct peer_conn *c = cairn_queue_data(q, struct peer_conn, link);

        if (c->sock != NULL) {
            sock_close(c->sock);
        }
        buf_close(&c->queued);
        while (!cairn_queue_empty(&c->calls)) {
            struct peer_call *call = cairn_queue_data(
                cairn_queue_head(&c->calls), struct peer_call, link);
            call_unlink(call);
            call_defer(call, FIN_CLOSING);
        }
    }
    uv_close((uv_handle_t *)&p->timer, on_pool_handle_close);
    uv_close((uv_handle_t *)&p->idle, on_pool_handle_close);
    /* Every callback now: a callback may start calls (refused: the pool is
     * closing) or cancel them (nothing to do), so the queue only drains. */
    while (!cairn_queue_empty(&p->done)) {
        pool_deliver_one(p);
    }
}
