/* libcairn: a synchronous client over the binary protocol
 * (docs/protocol.md). One connection at a time, one call at a time: each
 * call sends a request frame on a new stream and reads frames until the
 * response for that stream arrives or the deadline passes.
 *
 * The socket is non-blocking and every wait is a poll() bounded by the
 * call's remaining time, so a silent or slow server can never hold a call
 * past its deadline (a blocking send or recv could). */
#include "cairn.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "mp.h"
#include "mpjson.h"
#include "wire.h"

#define CLIENT_DEFAULT_ENDPOINT "127.0.0.1:7400"
#define CLIENT_DEFAULT_PORT "7400"
#define CLIENT_DEFAULT_TIMEOUT_MS 10000
#define CLIENT_DEFAULT_ATTEMPTS 8
#define CLIENT_DEFAULT_BACKOFF_MS 20
#define CLIENT_MAX_BACKOFF_MS 1000
/* One unreachable host (packets dropped, no refusal) must not use up the
 * whole deadline before the other endpoints are tried. */
#define CLIENT_CONNECT_TIMEOUT_MS 2000
/* Responses are limited by the server's page sizes; this only guards the
 * client against a length prefix that is garbage. */
#define CLIENT_MAX_FRAME (64u << 20)
#define CLIENT_READ_CHUNK 65536

/* An internal outcome of one attempt: the connection failed or the server
 * went away, and the call may be retried elsewhere. Never returned to the
 * caller (it becomes UNAVAILABLE). */
#define CLIENT_CONN_FAILED (-1)

/* Methods that change state: they carry the client session so that a retry
 * is applied at most once (storage/sm.h lists the same ops). */
static const char *const write_methods[] = {
    "PutParameter",
    "DeleteParameter",
    "DeleteParameters",
    "LabelParameterVersion",
    "UnlabelParameterVersion",
    "AddTagsToResource",
    "RemoveTagsFromResource",
    "UpdateServiceSetting",
    "ResetServiceSetting",
    NULL,
};

struct endpoint
{
    char *host;
    char *port;
};

struct cairn_client
{
    struct cairn_client_options opts; /* with defaults filled in */
    char *endpoints;                  /* copy of the endpoint list */
    struct endpoint *eps;
    size_t n_eps;
    size_t cur; /* endpoint connected to, or the next to try */
    int fd;     /* -1 while disconnected */
    struct wire_reader rd;
    struct buf out;       /* the frame being sent */
    uint64_t next_stream; /* last stream id used on any connection */
    uint64_t seq;         /* last write sequence number used */
    char cid[33];         /* client session id: 32 hex characters */
};

/* ---- time -------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before @p deadline, never negative. */
static int64_t remaining(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left > 0 ? left : 0;
}

static int poll_ms(int64_t ms)
{
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- options and endpoints ------------------------------------------- */

void cairn_client_options_default(struct cairn_client_options *o)
{
    o->endpoints = NULL;
    o->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
    o->attempts = CLIENT_DEFAULT_ATTEMPTS;
    o->backoff_ms = CLIENT_DEFAULT_BACKOFF_MS;
    o->stale_reads = false;
}

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

/* Split one "host:port", "[v6]:port" or "host" entry in place. */
static int parse_endpoint(char *s, struct endpoint *ep, struct cairn_error *err)
{
    char entry[256];
    char *colon;

    /* Kept for the message: parsing cuts s into pieces. */
    snprintf(entry, sizeof(entry), "%s", s);
    while (*s == ' ') {
        s++;
    }
    for (size_t n = strlen(s); n > 0 && s[n - 1] == ' '; n--) {
        s[n - 1] = '\0';
    }
    ep->port = CLIENT_DEFAULT_PORT;
    if (s[0] == '[') {
        char *close = strchr(s, ']');
        if (close == NULL || close == s + 1 ||
            (close[1] != '\0' && close[1] != ':')) {
            goto bad;
        }
        *close = '\0';
        ep->host = s + 1;
        if (close[1] == ':') {
            ep->port = close + 2;
        }
    } else {
        colon = strrchr(s, ':');
        /* A bare IPv6 address has several colons and no port. */
        if (colon != NULL && strchr(s, ':') == colon) {
            *colon = '\0';
            ep->port = colon + 1;
        }
        ep->host = s;
    }
    if (ep->host[0] == '\0' || !is_port(ep->port)) {
        goto bad;
    }
    return 0;

bad:
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                           "bad endpoint \"%s\": want host:port", entry);
}

/* Parse c->endpoints (modified in place) into c->eps. */
static int parse_endpoints(struct cairn_client *c, struct cairn_error *err)
{
    size_t n = 1;
    char *save = NULL;
    char *tok;

    for (const char *p = c->endpoints; *p != '\0'; p++) {
        n += *p == ',';
    }
    c->eps = calloc(n, sizeof(*c->eps));
    if (c->eps == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    for (tok = strtok_r(c->endpoints, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        int rv = parse_endpoint(tok, &c->eps[c->n_eps], err);
        if (rv != 0) {
            return rv;
        }
        c->n_eps++;
    }
    if (c->n_eps == 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "no endpoint given");
    }
    return 0;
}

/* ---- connection ------------------------------------------------------ */

static void disconnect(struct cairn_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    /* Bytes of a half-received frame belong to the old connection. */
    wire_reader_close(&c->rd);
    wire_reader_init(&c->rd, CLIENT_MAX_FRAME);
}

/* Connect to one address, waiting at most @p ms. Returns the socket, or -1
 * with errno set. */
static int connect_addr(const struct addrinfo *ai, int64_t ms)
{
    struct pollfd pfd;
    int fd;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    int one = 1;
    int rc;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            goto err_after_socket;
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        do {
            rc = poll(&pfd, 1, poll_ms(ms));
        } while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            errno = ETIMEDOUT;
            goto err_after_socket;
        }
        if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
            goto err_after_socket;
        }
        if (soerr != 0) {
            errno = soerr;
            goto err_after_socket;
        }
    }
    /* Requests are small and each waits for its answer: Nagle's delay
     * would add a round trip to every call. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;

err_after_socket:
    rc = errno;
    close(fd);
    errno = rc;
    return -1;
}

static int connect_endpoint(const struct endpoint *ep,
                            int64_t deadline,
                            struct cairn_error *err)
{
    struct addrinfo hints;
    struct addrinfo *res;
    int fd = -1;
    int e = ECONNREFUSED;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(ep->host, ep->port, &hints, &res);
    if (rc != 0) {
        cairn_error_set(err, CAIRN_UNAVAILABLE, NULL, "resolve %s: %s",
                        ep->host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        int64_t ms = remaining(deadline);
        if (ms == 0) {
            e = ETIMEDOUT;
            break;
        }
        fd = connect_addr(ai, ms < CLIENT_CONNECT_TIMEOUT_MS
                                  ? ms
                                  : CLIENT_CONNECT_TIMEOUT_MS);
        if (fd < 0) {
            e = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        cairn_error_set(err, CAIRN_UNAVAILABLE, NULL, "connect %s:%s: %s",
                        ep->host, ep->port, strerror(e));
    }
    return fd;
}

/* Connect to the first endpoint that answers, starting with c->cur. */
static int reconnect(struct cairn_client *c,
                     int64_t deadline,
                     struct cairn_error *err)
{
    for (size_t i = 0; i < c->n_eps; i++) {
        size_t idx = (c->cur + i) % c->n_eps;
        int fd = connect_endpoint(&c->eps[idx], deadline, err);
        if (fd >= 0) {
            disconnect(c);
            c->fd = fd;
            c->cur = idx;
            return 0;
        }
        if (remaining(deadline) == 0) {
            break;
        }
    }
    return CLIENT_CONN_FAILED;
}

/* ---- frames ---------------------------------------------------------- */

static int send_all(struct cairn_client *c,
                    const uint8_t *p,
                    size_t n,
                    int64_t deadline,
                    struct cairn_error *err)
{
    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {c->fd, POLLOUT, 0};
            int64_t ms = remaining(deadline);
            int rc;
            if (ms == 0) {
                return CAIRN_DEADLINE_EXCEEDED;
            }
            rc = poll(&pfd, 1, poll_ms(ms));
            if (rc < 0 && errno != EINTR) {
                break;
            }
            continue;
        }
        break;
    }
    if (n == 0) {
        return 0;
    }
    cairn_error_set(err, CAIRN_UNAVAILABLE, NULL, "send to %s:%s: %s",
                    c->eps[c->cur].host, c->eps[c->cur].port, strerror(errno));
    return CLIENT_CONN_FAILED;
}

/* Read what the socket has, waiting until @p deadline for the first byte
 * (not at all when @p deadline is 0). 0, DEADLINE_EXCEEDED,
 * CLIENT_CONN_FAILED (closed, reset), or RESOURCE_EXHAUSTED (then the
 * client is disconnected). */
static int read_some(struct cairn_client *c,
                     int64_t deadline,
                     struct cairn_error *err)
{
    uint8_t chunk[CLIENT_READ_CHUNK];
    ssize_t k;

    for (;;) {
        k = recv(c->fd, chunk, sizeof(chunk), 0);
        if (k > 0) {
            if (wire_reader_feed(&c->rd, chunk, (size_t)k) != 0) {
                /* The bytes are lost and the framing with them. */
                disconnect(c);
                return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                       "out of memory reading a response");
            }
            return 0;
        }
        if (k == 0) {
            cairn_error_set(err, CAIRN_UNAVAILABLE, NULL,
                            "%s:%s closed the connection", c->eps[c->cur].host,
                            c->eps[c->cur].port);
            return CLIENT_CONN_FAILED;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd pfd = {c->fd, POLLIN, 0};
            int64_t ms = deadline != 0 ? remaining(deadline) : 0;
            int rc;
            if (ms == 0) {
                return CAIRN_DEADLINE_EXCEEDED;
            }
            rc = poll(&pfd, 1, poll_ms(ms));
            if (rc == 0) {
                return CAIRN_DEADLINE_EXCEEDED;
            }
            if (rc < 0 && errno != EINTR) {
                break;
            }
            continue;
        }
        break;
    }
    cairn_error_set(err, CAIRN_UNAVAILABLE, NULL, "receive from %s:%s: %s",
                    c->eps[c->cur].host, c->eps[c->cur].port, strerror(errno));
    return CLIENT_CONN_FAILED;
}

/* What a wait for a response ended with. */
struct reply
{
    uint64_t stream; /* the stream waited for; 0 for none */
    bool done;
    void *body; /* malloc'd copy of the response body */
    size_t len;
};

/* Handle the complete frames buffered so far. A response for another stream
 * (one this client gave up on) is skipped, and so are pongs. 0, a server
 * status for the awaited stream (with @p err filled), or
 * CLIENT_CONN_FAILED. */
static int take_frames(struct cairn_client *c,
                       struct reply *rep,
                       struct cairn_error *err)
{
    const uint8_t *payload;
    size_t len;
    int rv;

    while (!rep->done && (rv = wire_reader_next(&c->rd, &payload, &len)) != 0) {
        struct wire_msg m;
        struct mp_doc doc;
        struct cairn_error derr;

        if (rv < 0) {
            cairn_error_set(err, CAIRN_UNAVAILABLE, NULL,
                            "%s:%s sent a frame above %u bytes",
                            c->eps[c->cur].host, c->eps[c->cur].port,
                            CLIENT_MAX_FRAME);
            return CLIENT_CONN_FAILED;
        }
        if (wire_decode(payload, len, &m, &doc, &derr) != 0) {
            cairn_error_set(err, CAIRN_UNAVAILABLE, NULL,
                            "bad frame from %s:%s: %s", c->eps[c->cur].host,
                            c->eps[c->cur].port, derr.msg);
            return CLIENT_CONN_FAILED;
        }
        rv = 0;
        switch (m.type) {
            case WIRE_RESPONSE:
                if (rep->stream == 0 || m.stream != rep->stream) {
                    break;
                }
                rep->done = true;
                if (m.status != CAIRN_OK) {
                    cairn_error_set(
                        err,
                        m.status > CAIRN_UNAUTHENTICATED ? CAIRN_UNKNOWN
                                                         : m.status,
                        NULL, "%.*s", (int)m.message.n, m.message.p);
                    snprintf(err->type, sizeof(err->type), "%.*s",
                             (int)m.error_type.n, m.error_type.p);
                    rv = err->code;
                    break;
                }
                /* An empty body stands for an empty output, {}. */
                rep->len = m.body.n > 0 ? m.body.n : 1;
                rep->body = malloc(rep->len);
                if (rep->body == NULL) {
                    rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                         "out of memory");
                    break;
                }
                memcpy(rep->body, m.body.n > 0 ? m.body.p : "\x80", rep->len);
                break;
            case WIRE_PING:
                /* Either side may probe the connection; answer in kind. */
                buf_reset(&c->out);
                if (wire_encode_ping(&c->out, WIRE_PONG, m.stream) == 0 &&
                    send_all(c, c->out.data, c->out.len, now_ms() + 1000,
                             err) == CLIENT_CONN_FAILED) {
                    rv = CLIENT_CONN_FAILED;
                }
                break;
            case WIRE_GOAWAY:
                cairn_error_set(err, CAIRN_UNAVAILABLE, NULL,
                                "%s:%s is going away: %s: %.*s",
                                c->eps[c->cur].host, c->eps[c->cur].port,
                                cairn_status_name(m.status), (int)m.message.n,
                                m.message.p);
                rv = CLIENT_CONN_FAILED;
                break;
            default:
                /* Pongs; requests and cancels are not for clients. */
                break;
        }
        mp_doc_close(&doc);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Before a call, handle what arrived while the client was idle: a goaway,
 * or the close of a connection the server timed out. Finding out now costs
 * nothing, and saves an attempt and a backoff. */
static void check_idle(struct cairn_client *c)
{
    struct reply none = {0};
    struct cairn_error ignored;
    int rv;

    while (c->fd >= 0) {
        rv = read_some(c, 0, &ignored);
        if (rv == 0) {
            rv = take_frames(c, &none, &ignored);
        } else if (rv == CAIRN_DEADLINE_EXCEEDED) {
            return; /* nothing more to read */
        }
        if (rv != 0) {
            disconnect(c);
        }
    }
}

/* ---- calls ----------------------------------------------------------- */

static bool is_write(const char *method)
{
    for (size_t i = 0; write_methods[i] != NULL; i++) {
        if (strcmp(method, write_methods[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* One attempt on the current connection (made if needed). 0 with
 * rep->body, a server status, DEADLINE_EXCEEDED, or CLIENT_CONN_FAILED. */
static int attempt(struct cairn_client *c,
                   const char *method,
                   const struct buf *md,
                   const void *req,
                   size_t req_len,
                   int64_t deadline,
                   struct reply *rep,
                   struct cairn_error *err)
{
    int64_t ms;
    int rv;

    check_idle(c);
    if (c->fd < 0) {
        rv = reconnect(c, deadline, err);
        if (rv != 0) {
            return rv;
        }
    }
    ms = remaining(deadline);
    if (ms == 0) {
        return CAIRN_DEADLINE_EXCEEDED;
    }
    rep->stream = ++c->next_stream;
    buf_reset(&c->out);
    rv = wire_encode_request(&c->out, rep->stream, method,
                             ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms,
                             md->data, md->len, req, req_len);
    if (rv != 0) {
        return cairn_error_set(err, rv, NULL, "cannot encode the request");
    }
    rv = send_all(c, c->out.data, c->out.len, deadline, err);
    if (rv == CAIRN_DEADLINE_EXCEEDED) {
        /* Part of the frame may be out: the connection's framing is lost,
         * so it cannot carry a cancel or another request. */
        disconnect(c);
        return cairn_error_set(err, CAIRN_DEADLINE_EXCEEDED, NULL,
                               "%s: request not sent within %u ms", method,
                               c->opts.timeout_ms);
    }
    while (rv == 0 && !rep->done) {
        rv = take_frames(c, rep, err);
        if (rv == 0 && !rep->done) {
            rv = read_some(c, deadline, err);
        }
    }
    if (rv == CAIRN_DEADLINE_EXCEEDED) {
        /* Tell the server to stop working on it; best effort, since the
         * reply, if it comes, is skipped anyway. */
        buf_reset(&c->out);
        if (wire_encode_cancel(&c->out, rep->stream) != 0 ||
            send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT) !=
                (ssize_t)c->out.len) {
            /* Half a frame would corrupt the connection: drop it. */
            disconnect(c);
        }
        cairn_error_set(err, CAIRN_DEADLINE_EXCEEDED, NULL,
                        "%s: no answer within %u ms", method,
                        c->opts.timeout_ms);
    }
    if (rv == CLIENT_CONN_FAILED) {
        disconnect(c);
    }
    return rv;
}

/* Pack the request metadata of @p method into @p md (left empty when there
 * is none). */
static int build_metadata(struct cairn_client *c,
                          const char *method,
                          struct buf *md)
{
    msgpack_packer pk;

    mp_packer_init(&pk, md);
    if (is_write(method)) {
        /* A new number per call; every retry of the call reuses it. */
        c->seq++;
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_cstr(&pk, "cid", c->cid);
        mp_pack_kv_u64(&pk, "seq", c->seq);
    } else if (c->opts.stale_reads) {
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_cstr(&pk, "consistency", "stale");
    }
    return md->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

static bool is_map(const void *p, size_t n)
{
    const uint8_t *b = p;
    return n > 0 && ((b[0] & 0xf0) == 0x80 || b[0] == 0xde || b[0] == 0xdf) &&
           mp_check(p, n, NULL) == 0;
}

int cairn_call(struct cairn_client *c,
               const char *method,
               const void *req,
               size_t req_len,
               void **resp,
               size_t *resp_len,
               struct cairn_error *err)
{
    struct cairn_error local;
    struct reply rep;
    struct buf md;
    int64_t deadline;
    unsigned backoff;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    cairn_error_clear(err);
    *resp = NULL;
    *resp_len = 0;
    if (c == NULL || method == NULL || method[0] == '\0') {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "no client or no method");
    }
    if (req == NULL || req_len == 0) {
        req = "\x80";
        req_len = 1;
    } else if (!is_map(req, req_len)) {
        return cairn_error_set(
            err, CAIRN_INVALID_ARGUMENT, "SerializationException",
            "%s: the request is not one msgpack map", method);
    }
    buf_init(&md);
    rv = build_metadata(c, method, &md);
    if (rv != 0) {
        cairn_error_set(err, rv, NULL, "out of memory");
        goto out;
    }
    deadline = now_ms() + c->opts.timeout_ms;
    backoff = c->opts.backoff_ms;
    for (unsigned n = 1;; n++) {
        memset(&rep, 0, sizeof(rep));
        rv = attempt(c, method, &md, req, req_len, deadline, &rep, err);
        if (rv == 0) {
            *resp = rep.body;
            *resp_len = rep.len;
            cairn_error_clear(err);
            break;
        }
        if (rv != CLIENT_CONN_FAILED && rv != CAIRN_UNAVAILABLE) {
            break;
        }
        /* This node cannot serve the call: the next attempt goes to the
         * next endpoint. */
        disconnect(c);
        c->cur = (c->cur + 1) % c->n_eps;
        rv = CAIRN_UNAVAILABLE;
        err->code = CAIRN_UNAVAILABLE;
        if (n >= c->opts.attempts || remaining(deadline) <= backoff) {
            break;
        }
        sleep_ms(backoff);
        backoff = backoff * 2 > CLIENT_MAX_BACKOFF_MS ? CLIENT_MAX_BACKOFF_MS
                                                      : backoff * 2;
    }

out:
    buf_close(&md);
    return rv;
}

int cairn_call_json(struct cairn_client *c,
                    const char *method,
                    const char *req_json,
                    char **resp_json,
                    struct cairn_error *err)
{
    struct cairn_error local;
    struct buf req;
    void *resp = NULL;
    size_t len = 0;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    *resp_json = NULL;
    buf_init(&req);
    rv = mpjson_from_json(req_json != NULL ? req_json : "{}", &req, err);
    if (rv != 0) {
        goto err_after_req;
    }
    rv = cairn_call(c, method, req.data, req.len, &resp, &len, err);
    if (rv != 0) {
        goto err_after_req;
    }
    rv = mpjson_to_json(resp, len, resp_json, 0, err);
    if (rv == CAIRN_INVALID_ARGUMENT) {
        /* The caller's input was fine: the server's answer was not. */
        err->code = rv = CAIRN_INTERNAL;
        cairn_error_prefix(err, "%s response: ", method);
    }
    free(resp);

err_after_req:
    buf_close(&req);
    return rv;
}

/* Pack @p req (a map) with its NextToken replaced by @p token (or removed
 * when token is NULL). */
static int pack_with_token(struct buf *out,
                           const msgpack_object *req,
                           const char *token)
{
    struct mp_str t = {token, token != NULL ? strlen(token) : 0};
    buf_reset(out);
    return mp_pack_map_with(out, req, "NextToken", t);
}

/* The NextToken of a response as a new string in *token (NULL when the
 * listing is complete). */
static int next_token(const void *resp,
                      size_t len,
                      char **token,
                      struct cairn_error *err)
{
    struct mp_doc doc;
    struct mp_str t;
    int r;
    int rv;

    *token = NULL;
    rv = mp_doc_parse(&doc, resp, len, err);
    if (rv != 0) {
        return rv == CAIRN_INVALID_ARGUMENT ? (err->code = CAIRN_INTERNAL) : rv;
    }
    r = mp_get_str(&doc.root, "NextToken", &t, err);
    if (r < 0 || doc.root.type != MSGPACK_OBJECT_MAP) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                             "response is not a map with a string NextToken");
    } else if (r == 1 && t.n > 0) {
        *token = strndup(t.p, t.n);
        if (*token == NULL) {
            rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                 "out of memory");
        }
    }
    mp_doc_close(&doc);
    return rv;
}

int cairn_call_paged(struct cairn_client *c,
                     const char *method,
                     const void *req,
                     size_t req_len,
                     cairn_page_cb page,
                     void *ctx,
                     struct cairn_error *err)
{
    struct cairn_error local;
    struct mp_doc doc;
    struct buf b;
    struct mp_str first;
    char *token = NULL;
    int r;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    cairn_error_clear(err);
    if (c == NULL || method == NULL || page == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "no client, method or page callback");
    }
    if (req == NULL || req_len == 0) {
        req = "\x80";
        req_len = 1;
    }
    rv = mp_doc_parse(&doc, req, req_len, err);
    if (rv != 0) {
        return rv;
    }
    if (doc.root.type != MSGPACK_OBJECT_MAP) {
        rv = cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                             "SerializationException",
                             "%s: the request is not a msgpack map", method);
        goto err_after_doc;
    }
    /* A caller may resume a listing from a token of its own. */
    r = mp_get_str(&doc.root, "NextToken", &first, err);
    if (r < 0) {
        rv = err->code;
        goto err_after_doc;
    }
    if (r == 1 && first.n > 0) {
        token = strndup(first.p, first.n);
        if (token == NULL) {
            rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                 "out of memory");
            goto err_after_doc;
        }
    }
    cairn_error_clear(err);
    buf_init(&b);
    for (;;) {
        void *resp = NULL;
        size_t len = 0;

        rv = pack_with_token(&b, &doc.root, token);
        if (rv != 0) {
            cairn_error_set(err, rv, NULL, "out of memory");
            break;
        }
        free(token);
        token = NULL;
        rv = cairn_call(c, method, b.data, b.len, &resp, &len, err);
        if (rv != 0) {
            break;
        }
        rv = next_token(resp, len, &token, err);
        if (rv == 0) {
            rv = page(ctx, resp, len);
            if (rv != 0 && err->code != rv) {
                cairn_error_set(err, rv, NULL,
                                "%s: the page callback stopped the listing",
                                method);
            }
        }
        free(resp);
        if (rv != 0 || token == NULL) {
            break;
        }
    }
    free(token);
    buf_close(&b);

err_after_doc:
    mp_doc_close(&doc);
    return rv;
}

/* ---- typed helpers --------------------------------------------------- */

void cairn_parameter_free(struct cairn_parameter *p)
{
    if (p == NULL) {
        return;
    }
    free(p->name);
    free(p->type);
    free(p->value);
    free(p->selector);
    free(p->arn);
    free(p->data_type);
    memset(p, 0, sizeof(*p));
}

static int bad_response(struct cairn_error *err, const char *what)
{
    char msg[CAIRN_ERROR_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", err->msg);
    return cairn_error_set(err, CAIRN_INTERNAL, NULL, "bad %s in response: %s",
                           what, msg);
}

/* Copy the optional string field @p key into *out (left NULL if absent). */
static int dup_field(const msgpack_object *map,
                     const char *key,
                     char **out,
                     struct cairn_error *err)
{
    struct mp_str s;
    int r = mp_get_str(map, key, &s, err);

    if (r < 0) {
        return bad_response(err, key);
    }
    if (r == 1) {
        *out = strndup(s.p, s.n);
        if (*out == NULL) {
            return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                   "out of memory");
        }
    }
    return 0;
}

/* Fill @p out from one Parameter map of a response. */
static int parse_parameter(const msgpack_object *p,
                           struct cairn_parameter *out,
                           struct cairn_error *err)
{
    const msgpack_object *date;
    struct mp_str value;
    bool is_bin = false;
    int r;
    int rv;

    memset(out, 0, sizeof(*out));
    if (p == NULL || p->type != MSGPACK_OBJECT_MAP) {
        return cairn_error_set(err, CAIRN_INTERNAL, NULL,
                               "response has no Parameter map");
    }
    if ((rv = dup_field(p, "Name", &out->name, err)) != 0 ||
        (rv = dup_field(p, "Type", &out->type, err)) != 0 ||
        (rv = dup_field(p, "Selector", &out->selector, err)) != 0 ||
        (rv = dup_field(p, "ARN", &out->arn, err)) != 0 ||
        (rv = dup_field(p, "DataType", &out->data_type, err)) != 0) {
        goto err_after_fields;
    }
    if (out->name == NULL) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                             "response Parameter has no Name");
        goto err_after_fields;
    }
    r = mp_get_bytes(p, "Value", &value, &is_bin, err);
    if (r < 0) {
        rv = bad_response(err, "Value");
        goto err_after_fields;
    }
    /* A SecureString read without decryption is its sealed envelope, which
     * travels as bin: give it to C callers as text, in base64. */
    if (r == 0) {
        out->value = strdup("");
    } else if (is_bin) {
        out->value = mpjson_base64(value.p, value.n);
    } else {
        out->value = strndup(value.p, value.n);
    }
    if (out->value == NULL) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
        goto err_after_fields;
    }
    if (mp_get_u64(p, "Version", &out->version, err) < 0) {
        rv = bad_response(err, "Version");
        goto err_after_fields;
    }
    date = mp_map_get(p, "LastModifiedDate");
    if (date != NULL) {
        switch (date->type) {
            case MSGPACK_OBJECT_FLOAT32:
            case MSGPACK_OBJECT_FLOAT64:
                out->last_modified = date->via.f64;
                break;
            case MSGPACK_OBJECT_POSITIVE_INTEGER:
                out->last_modified = (double)date->via.u64;
                break;
            case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                out->last_modified = (double)date->via.i64;
                break;
            case MSGPACK_OBJECT_NIL:
                break;
            default:
                rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                                     "bad LastModifiedDate in response");
                goto err_after_fields;
        }
    }
    return 0;

err_after_fields:
    cairn_parameter_free(out);
    return rv;
}

/* Pack a request map from alternating keys and values: 's' string,
 * 'b' bool; NULL strings are left out. */
struct field
{
    const char *key;
    char kind;
    const char *s;
    bool b;
};

static int pack_fields(struct buf *out, const struct field *f, size_t n)
{
    msgpack_packer pk;
    uint32_t count = 0;

    for (size_t i = 0; i < n; i++) {
        count += f[i].kind != 's' || f[i].s != NULL;
    }
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < n; i++) {
        if (f[i].kind == 's' && f[i].s != NULL) {
            mp_pack_kv_cstr(&pk, f[i].key, f[i].s);
        } else if (f[i].kind == 'b') {
            mp_pack_kv_bool(&pk, f[i].key, f[i].b);
        }
    }
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

/* Call @p method with the request built from @p f; on success *doc holds
 * the parsed response (the caller closes it and frees *raw). */
static int call_fields(struct cairn_client *c,
                       const char *method,
                       const struct field *f,
                       size_t n,
                       struct mp_doc *doc,
                       void **raw,
                       struct cairn_error *err)
{
    struct buf req;
    size_t len = 0;
    int rv;

    *raw = NULL;
    buf_init(&req);
    rv = pack_fields(&req, f, n);
    if (rv != 0) {
        cairn_error_set(err, rv, NULL, "out of memory");
        goto out;
    }
    rv = cairn_call(c, method, req.data, req.len, raw, &len, err);
    if (rv != 0) {
        goto out;
    }
    rv = mp_doc_parse(doc, *raw, len, err);
    if (rv != 0) {
        if (rv == CAIRN_INVALID_ARGUMENT) {
            rv = bad_response(err, "msgpack");
        }
        free(*raw);
        *raw = NULL;
    }

out:
    buf_close(&req);
    return rv;
}

int cairn_get_parameter(struct cairn_client *c,
                        const char *name,
                        bool with_decryption,
                        struct cairn_parameter *out,
                        struct cairn_error *err)
{
    struct cairn_error local;
    const struct field f[] = {
        {"Name", 's', name, false},
        {"WithDecryption", 'b', NULL, with_decryption},
    };
    struct mp_doc doc;
    void *raw;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    memset(out, 0, sizeof(*out));
    if (name == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException", "no parameter name");
    }
    rv = call_fields(c, "GetParameter", f, 2, &doc, &raw, err);
    if (rv != 0) {
        return rv;
    }
    rv = parse_parameter(mp_map_get(&doc.root, "Parameter"), out, err);
    mp_doc_close(&doc);
    free(raw);
    return rv;
}

int cairn_put_parameter(struct cairn_client *c,
                        const char *name,
                        const char *value,
                        const char *type,
                        bool overwrite,
                        uint64_t *version,
                        struct cairn_error *err)
{
    struct cairn_error local;
    const struct field f[] = {
        {"Name", 's', name, false},
        {"Value", 's', value, false},
        {"Type", 's', type, false},
        {"Overwrite", 'b', NULL, overwrite},
    };
    struct mp_doc doc;
    uint64_t v = 0;
    void *raw;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    if (name == NULL || value == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "a parameter needs a name and a value");
    }
    rv = call_fields(c, "PutParameter", f, 4, &doc, &raw, err);
    if (rv != 0) {
        return rv;
    }
    if (mp_get_u64(&doc.root, "Version", &v, err) < 0) {
        rv = bad_response(err, "Version");
    } else if (version != NULL) {
        *version = v;
    }
    mp_doc_close(&doc);
    free(raw);
    return rv;
}

int cairn_delete_parameter(struct cairn_client *c,
                           const char *name,
                           struct cairn_error *err)
{
    struct cairn_error local;
    const struct field f[] = {{"Name", 's', name, false}};
    struct mp_doc doc;
    void *raw;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    if (name == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException", "no parameter name");
    }
    rv = call_fields(c, "DeleteParameter", f, 1, &doc, &raw, err);
    if (rv == 0) {
        mp_doc_close(&doc);
        free(raw);
    }
    return rv;
}

struct by_path
{
    cairn_parameter_cb cb;
    void *ctx;
    struct cairn_error *err;
};

static int by_path_page(void *ctx, const void *resp, size_t len)
{
    struct by_path *bp = ctx;
    const msgpack_object_array *params = NULL;
    struct mp_doc doc;
    int rv = mp_doc_parse(&doc, resp, len, bp->err);

    if (rv != 0) {
        return rv == CAIRN_INVALID_ARGUMENT ? bad_response(bp->err, "msgpack")
                                            : rv;
    }
    if (mp_get_array(&doc.root, "Parameters", &params, bp->err) < 0) {
        rv = bad_response(bp->err, "Parameters");
    }
    for (uint32_t i = 0; rv == 0 && params != NULL && i < params->size; i++) {
        struct cairn_parameter p;
        rv = parse_parameter(&params->ptr[i], &p, bp->err);
        if (rv == 0) {
            rv = bp->cb(bp->ctx, &p);
            cairn_parameter_free(&p);
        }
    }
    mp_doc_close(&doc);
    return rv;
}

int cairn_get_parameters_by_path(struct cairn_client *c,
                                 const char *path,
                                 bool recursive,
                                 bool with_decryption,
                                 cairn_parameter_cb cb,
                                 void *ctx,
                                 struct cairn_error *err)
{
    struct cairn_error local;
    const struct field f[] = {
        {"Path", 's', path, false},
        {"Recursive", 'b', NULL, recursive},
        {"WithDecryption", 'b', NULL, with_decryption},
    };
    struct by_path bp = {cb, ctx, NULL};
    struct buf req;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    bp.err = err;
    if (path == NULL || cb == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "a path and a callback are needed");
    }
    buf_init(&req);
    rv = pack_fields(&req, f, 3);
    if (rv != 0) {
        cairn_error_set(err, rv, NULL, "out of memory");
    } else {
        rv = cairn_call_paged(c, "GetParametersByPath", req.data, req.len,
                              by_path_page, &bp, err);
    }
    buf_close(&req);
    return rv;
}

/* ---- lifecycle ------------------------------------------------------- */

/* A random session id: exactly-once depends on it never colliding with
 * another client's, so it comes from the OS's CSPRNG via OpenSSL. */
static int make_cid(char cid[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return CAIRN_INTERNAL;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        cid[2 * i] = hex[raw[i] >> 4];
        cid[2 * i + 1] = hex[raw[i] & 0xf];
    }
    cid[32] = '\0';
    return 0;
}

int cairn_client_connect(const struct cairn_client_options *o,
                         struct cairn_client **out,
                         struct cairn_error *err)
{
    struct cairn_error local;
    struct cairn_client *c;
    const char *list;
    int rv;

    if (err == NULL) {
        err = &local;
    }
    cairn_error_clear(err);
    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    c->fd = -1;
    wire_reader_init(&c->rd, CLIENT_MAX_FRAME);
    buf_init(&c->out);
    cairn_client_options_default(&c->opts);
    /* Zero fields take the defaults, so a caller may zero the struct and
     * set only what it cares about. */
    if (o != NULL) {
        c->opts.timeout_ms =
            o->timeout_ms != 0 ? o->timeout_ms : c->opts.timeout_ms;
        c->opts.attempts = o->attempts != 0 ? o->attempts : c->opts.attempts;
        c->opts.backoff_ms =
            o->backoff_ms != 0 ? o->backoff_ms : c->opts.backoff_ms;
        c->opts.stale_reads = o->stale_reads;
    }
    list = o != NULL ? o->endpoints : NULL;
    if (list == NULL) {
        list = getenv("CAIRN_ENDPOINT");
    }
    if (list == NULL || list[0] == '\0') {
        list = CLIENT_DEFAULT_ENDPOINT;
    }
    c->endpoints = strdup(list);
    if (c->endpoints == NULL) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
        goto err_after_client;
    }
    rv = parse_endpoints(c, err);
    if (rv != 0) {
        goto err_after_client;
    }
    if (make_cid(c->cid) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                             "no random bytes for the session id");
        goto err_after_client;
    }
    rv = reconnect(c, now_ms() + c->opts.timeout_ms, err);
    if (rv != 0) {
        rv = err->code = CAIRN_UNAVAILABLE;
        cairn_error_prefix(err, "no endpoint answered: ");
        goto err_after_client;
    }
    *out = c;
    return 0;

err_after_client:
    cairn_client_close(c);
    return rv;
}

void cairn_client_close(struct cairn_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    wire_reader_close(&c->rd);
    buf_close(&c->out);
    free(c->eps);
    free(c->endpoints);
    free(c);
}
