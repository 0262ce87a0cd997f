/* Unit tests for api/client.c (libcairn) against a small fake server that
 * runs in a thread of the test on a 127.0.0.1 port, speaking the wire
 * protocol through api/wire.c. */
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "mp.h"
#include "mpjson.h"
#include "wire.h"

/******************************************************************************
 *
 * Fake server
 *
 *****************************************************************************/

#define FAKE_MAX_REQUESTS 16

/* cmocka's assertions jump back into the test runner, which is only safe on
 * the main thread: the fake server's thread aborts instead. */
#define FAKE_CHECK(cond)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "%s:%d: fake server: check failed: %s\n", \
                    __FILE__, __LINE__, #cond);                       \
            abort();                                                  \
        }                                                             \
    } while (0)

struct fake;

/* What a handler wants done after its frames in @p out are sent. */
enum fake_action {
    FAKE_KEEP,  /* keep the connection */
    FAKE_CLOSE, /* close the connection */
};

/* Answer request number @p n (from 1) by appending frames to @p out. */
typedef enum fake_action (*fake_handler)(struct fake *fk,
                                         int n,
                                         const struct wire_msg *m,
                                         struct buf *out);

/* A server that accepts one connection at a time and records what it
 * receives; the test reads the records under the mutex. */
struct fake
{
    int lfd;
    int port;
    int stop[2]; /* a byte on stop[1] ends the thread */
    pthread_t thread;
    fake_handler handler;
    pthread_mutex_t mu;
    int accepts;
    int requests;
    int cancels;
    int pongs;
    char method[FAKE_MAX_REQUESTS][64];
    char *metadata[FAKE_MAX_REQUESTS]; /* JSON */
    char *body[FAKE_MAX_REQUESTS];     /* JSON */
    uint32_t timeout_ms[FAKE_MAX_REQUESTS];
    uint64_t stream[FAKE_MAX_REQUESTS];
};

static char *object_json(const msgpack_object *o)
{
    struct buf b;
    msgpack_packer pk;
    char *json;

    buf_init(&b);
    mp_packer_init(&pk, &b);
    if (o != NULL) {
        msgpack_pack_object(&pk, *o);
    } else {
        msgpack_pack_nil(&pk);
    }
    json = test_mp_to_json(b.data, b.len);
    buf_close(&b);
    return json;
}

static void fake_record(struct fake *fk, const struct wire_msg *m, int *n)
{
    pthread_mutex_lock(&fk->mu);
    *n = ++fk->requests;
    if (*n <= FAKE_MAX_REQUESTS) {
        int i = *n - 1;
        snprintf(fk->method[i], sizeof(fk->method[i]), "%.*s", (int)m->method.n,
                 m->method.p);
        fk->metadata[i] = object_json(m->metadata);
        fk->body[i] = test_mp_to_json(m->body.p, m->body.n);
        fk->timeout_ms[i] = m->timeout_ms;
        fk->stream[i] = m->stream;
    }
    pthread_mutex_unlock(&fk->mu);
}

static void send_buf(int fd, const struct buf *b)
{
    size_t off = 0;

    while (off < b->len) {
        ssize_t k = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (k <= 0) {
            return; /* the client went away; it may retry */
        }
        off += (size_t)k;
    }
}

/* Handle the frames of one connection until it closes or the test ends.
 * Returns false when the test asked the thread to stop. */
static bool fake_serve(struct fake *fk, int fd)
{
    struct wire_reader r;
    struct buf out;
    bool keep = true;
    bool running = true;

    wire_reader_init(&r, 0);
    buf_init(&out);
    while (keep) {
        struct pollfd pfd[2] = {{fd, POLLIN, 0}, {fk->stop[0], POLLIN, 0}};
        uint8_t chunk[4096];
        const uint8_t *p;
        size_t len;
        ssize_t k;
        int rv;

        if (poll(pfd, 2, -1) < 0) {
            continue;
        }
        if (pfd[1].revents != 0) {
            running = false;
            break;
        }
        k = recv(fd, chunk, sizeof(chunk), 0);
        if (k <= 0) {
            break;
        }
        FAKE_CHECK((wire_reader_feed(&r, chunk, (size_t)k)) == 0);
        while (keep && (rv = wire_reader_next(&r, &p, &len)) == 1) {
            struct wire_msg m;
            struct mp_doc doc;
            struct cairn_error err;
            int n;

            if (wire_decode(p, len, &m, &doc, &err) != 0) {
                fprintf(stderr, "fake server: bad frame: %s\n", err.msg);
                abort();
            }
            buf_reset(&out);
            if (m.type == WIRE_REQUEST) {
                fake_record(fk, &m, &n);
                keep = fk->handler(fk, n, &m, &out) == FAKE_KEEP;
            } else if (m.type == WIRE_CANCEL || m.type == WIRE_PONG) {
                pthread_mutex_lock(&fk->mu);
                m.type == WIRE_CANCEL ? fk->cancels++ : fk->pongs++;
                pthread_mutex_unlock(&fk->mu);
            } else if (m.type == WIRE_PING) {
                wire_encode_ping(&out, WIRE_PONG, m.stream);
            }
            mp_doc_close(&doc);
            send_buf(fd, &out);
        }
    }
    buf_close(&out);
    wire_reader_close(&r);
    close(fd);
    return running;
}

static void *fake_main(void *arg)
{
    struct fake *fk = arg;

    for (;;) {
        struct pollfd pfd[2] = {{fk->lfd, POLLIN, 0}, {fk->stop[0], POLLIN, 0}};
        int fd;

        if (poll(pfd, 2, -1) < 0) {
            continue;
        }
        if (pfd[1].revents != 0) {
            break;
        }
        fd = accept(fk->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        pthread_mutex_lock(&fk->mu);
        fk->accepts++;
        pthread_mutex_unlock(&fk->mu);
        if (!fake_serve(fk, fd)) {
            break;
        }
    }
    return NULL;
}

/* A listening socket on an ephemeral 127.0.0.1 port. */
static int listen_any(int *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FAKE_CHECK((bind(fd, (struct sockaddr *)&a, sizeof(a))) == 0);
    FAKE_CHECK((listen(fd, 16)) == 0);
    FAKE_CHECK((getsockname(fd, (struct sockaddr *)&a, &al)) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port on which nothing listens: connections to it are refused. */
static int dead_port(void)
{
    int port;
    int fd = listen_any(&port);
    close(fd);
    return port;
}

static struct fake *fake_start(fake_handler h)
{
    struct fake *fk = calloc(1, sizeof(*fk));

    assert_non_null(fk);
    fk->handler = h;
    fk->lfd = listen_any(&fk->port);
    FAKE_CHECK((pipe(fk->stop)) == 0);
    FAKE_CHECK((pthread_mutex_init(&fk->mu, NULL)) == 0);
    FAKE_CHECK((pthread_create(&fk->thread, NULL, fake_main, fk)) == 0);
    return fk;
}

static void fake_stop(struct fake *fk)
{
    if (fk == NULL) {
        return;
    }
    FAKE_CHECK((write(fk->stop[1], "x", 1)) == 1);
    pthread_join(fk->thread, NULL);
    for (int i = 0; i < FAKE_MAX_REQUESTS; i++) {
        free(fk->metadata[i]);
        free(fk->body[i]);
    }
    pthread_mutex_destroy(&fk->mu);
    close(fk->stop[0]);
    close(fk->stop[1]);
    close(fk->lfd);
    free(fk);
}

/* Read a counter of the fake under its mutex. */
static int fake_count(struct fake *fk, const int *field)
{
    int v;
    pthread_mutex_lock(&fk->mu);
    v = *field;
    pthread_mutex_unlock(&fk->mu);
    return v;
}

/* Wait up to a second for a counter to reach @p want. */
static void fake_wait(struct fake *fk, const int *field, int want)
{
    for (int i = 0; i < 200 && fake_count(fk, field) < want; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    FAKE_CHECK((fake_count(fk, field)) == want);
}

/******************************************************************************
 *
 * Handlers
 *
 *****************************************************************************/

/* Pack an OK response whose body is the JSON @p json. */
static void reply_json(const struct wire_msg *m,
                       struct buf *out,
                       const char *json)
{
    struct buf body;

    buf_init(&body);
    test_json_to_mp(json, &body);
    FAKE_CHECK((wire_encode_response(&out[0], m->stream, 0, NULL, NULL,
                                     body.data, body.len, false)) == 0);
    buf_close(&body);
}

/* {"Method": <method>, "Request": <the request body>}. */
static enum fake_action h_echo(struct fake *fk,
                               int n,
                               const struct wire_msg *m,
                               struct buf *out)
{
    struct buf body;
    msgpack_packer pk;

    buf_init(&body);
    mp_packer_init(&pk, &body);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_str(&pk, "Method", m->method.p, m->method.n);
    mp_pack_cstr(&pk, "Request");
    buf_append(&body, m->body.p, m->body.n);
    FAKE_CHECK((wire_encode_response(out, m->stream, 0, NULL, NULL, body.data,
                                     body.len, false)) == 0);
    buf_close(&body);
    return FAKE_KEEP;
}

static enum fake_action reply_unavailable(const struct wire_msg *m,
                                          struct buf *out)
{
    FAKE_CHECK((wire_encode_response(out, m->stream, CAIRN_UNAVAILABLE,
                                     "ServiceUnavailable", "not the leader",
                                     NULL, 0, false)) == 0);
    return FAKE_KEEP;
}

static enum fake_action h_unavailable_once(struct fake *fk,
                                           int n,
                                           const struct wire_msg *m,
                                           struct buf *out)
{
    return n == 1 ? reply_unavailable(m, out) : h_echo(fk, n, m, out);
}

static enum fake_action h_unavailable(struct fake *fk,
                                      int n,
                                      const struct wire_msg *m,
                                      struct buf *out)
{
    return reply_unavailable(m, out);
}

static enum fake_action h_silent(struct fake *fk,
                                 int n,
                                 const struct wire_msg *m,
                                 struct buf *out)
{
    return FAKE_KEEP;
}

static enum fake_action h_not_found(struct fake *fk,
                                    int n,
                                    const struct wire_msg *m,
                                    struct buf *out)
{
    FAKE_CHECK((wire_encode_response(
                   out, m->stream, CAIRN_NOT_FOUND, "ParameterNotFound",
                   "Parameter /nope not found.", NULL, 0, false)) == 0);
    return FAKE_KEEP;
}

/* Frames the client must skip, then the answer. */
static enum fake_action h_noise(struct fake *fk,
                                int n,
                                const struct wire_msg *m,
                                struct buf *out)
{
    FAKE_CHECK((wire_encode_ping(out, WIRE_PONG, 5)) == 0);
    FAKE_CHECK((wire_encode_response(out, m->stream + 1000, 0, NULL, NULL,
                                     "\x80", 1, false)) == 0);
    FAKE_CHECK((wire_encode_ping(out, WIRE_PING, 6)) == 0);
    return h_echo(fk, n, m, out);
}

static enum fake_action h_goaway_once(struct fake *fk,
                                      int n,
                                      const struct wire_msg *m,
                                      struct buf *out)
{
    if (n == 1) {
        FAKE_CHECK(
            (wire_encode_goaway(out, CAIRN_UNAVAILABLE, "shutting down")) == 0);
        return FAKE_CLOSE;
    }
    return h_echo(fk, n, m, out);
}

/* Answer, then close: the next call finds the connection gone. */
static enum fake_action h_echo_close(struct fake *fk,
                                     int n,
                                     const struct wire_msg *m,
                                     struct buf *out)
{
    h_echo(fk, n, m, out);
    return FAKE_CLOSE;
}

/* Three pages chained by the tokens t1 and t2; the third parameter's value
 * is a sealed blob (bin). */
static enum fake_action h_paged(struct fake *fk,
                                int n,
                                const struct wire_msg *m,
                                struct buf *out)
{
    struct mp_doc doc;
    struct mp_str tok = {NULL, 0};
    struct cairn_error err;

    FAKE_CHECK((mp_doc_parse(&doc, m->body.p, m->body.n, &err)) == 0);
    mp_get_str(&doc.root, "NextToken", &tok, NULL);
    if (tok.p == NULL) {
        reply_json(m, out,
                   "{\"Parameters\": [{\"Name\": \"/app/a\", \"Type\": "
                   "\"String\", \"Value\": \"1\", \"Version\": 1}], "
                   "\"NextToken\": \"t1\"}");
    } else if (mp_str_eqn(tok, "t1")) {
        /* An empty page that still has a token, as AWS allows. */
        reply_json(m, out, "{\"Parameters\": [], \"NextToken\": \"t2\"}");
    } else {
        struct buf body;
        msgpack_packer pk;

        FAKE_CHECK(mp_str_eqn(tok, "t2"));
        buf_init(&body);
        mp_packer_init(&pk, &body);
        msgpack_pack_map(&pk, 1);
        mp_pack_cstr(&pk, "Parameters");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_cstr(&pk, "Name", "/app/b");
        mp_pack_kv_cstr(&pk, "Value", "2");
        mp_pack_kv_u64(&pk, "Version", 4);
        msgpack_pack_map(&pk, 3);
        mp_pack_kv_cstr(&pk, "Name", "/app/c/secret");
        mp_pack_kv_cstr(&pk, "Type", "SecureString");
        mp_pack_cstr(&pk, "Value");
        mp_pack_bin(&pk, "\x01\x02\x03\xff", 4);
        FAKE_CHECK((wire_encode_response(out, m->stream, 0, NULL, NULL,
                                         body.data, body.len, false)) == 0);
        buf_close(&body);
    }
    mp_doc_close(&doc);
    return FAKE_KEEP;
}

/* A GetParameter answer with every field, the value sealed (bin). */
static enum fake_action h_get_parameter(struct fake *fk,
                                        int n,
                                        const struct wire_msg *m,
                                        struct buf *out)
{
    struct buf body;
    msgpack_packer pk;

    buf_init(&body);
    mp_packer_init(&pk, &body);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "Parameter");
    msgpack_pack_map(&pk, 8);
    mp_pack_kv_cstr(&pk, "Name", "/app/db");
    mp_pack_kv_cstr(&pk, "Type", "SecureString");
    mp_pack_cstr(&pk, "Value");
    mp_pack_bin(&pk, "hi!", 3);
    mp_pack_kv_u64(&pk, "Version", 7);
    mp_pack_kv_cstr(&pk, "Selector", ":7");
    mp_pack_cstr(&pk, "LastModifiedDate");
    msgpack_pack_double(&pk, 1700000000.5);
    mp_pack_kv_cstr(&pk, "ARN",
                    "arn:aws:ssm:us-east-1:123456789012:"
                    "parameter/app/db");
    mp_pack_kv_cstr(&pk, "DataType", "text");
    FAKE_CHECK((wire_encode_response(out, m->stream, 0, NULL, NULL, body.data,
                                     body.len, false)) == 0);
    buf_close(&body);
    return FAKE_KEEP;
}

static enum fake_action h_put(struct fake *fk,
                              int n,
                              const struct wire_msg *m,
                              struct buf *out)
{
    if (mp_str_eqn(m->method, "PutParameter")) {
        reply_json(m, out, "{\"Version\": 3, \"Tier\": \"Standard\"}");
    } else {
        reply_json(m, out, "{}");
    }
    return FAKE_KEEP;
}

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

struct fixture
{
    struct fake *a;
    struct fake *b;
    struct cairn_client *c;
    struct cairn_client_options o;
    struct cairn_error err;
    char endpoints[128];
    struct buf req;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    cairn_client_options_default(&f->o);
    f->o.backoff_ms = 5;
    buf_init(&f->req);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    /* The client first, so that the fake sees the connection close. */
    cairn_client_close(f->c);
    fake_stop(f->a);
    fake_stop(f->b);
    buf_close(&f->req);
    free(f);
    return 0;
}

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

/* Start fake a with @p h and connect a client to it. */
static void start_one(struct fixture *f, fake_handler h)
{
    f->a = fake_start(h);
    snprintf(f->endpoints, sizeof(f->endpoints), "127.0.0.1:%d", f->a->port);
    f->o.endpoints = f->endpoints;
    if (cairn_client_connect(&f->o, &f->c, &f->err) != 0) {
        fail_msg("connect: %s", f->err.msg);
    }
}

/* Call @p method with the JSON request @p json; returns the status and
 * leaves the response (if any) as JSON in *out, which the caller frees. */
static int call(struct fixture *f,
                const char *method,
                const char *json,
                char **out)
{
    void *resp = NULL;
    size_t len = 0;
    int rv;

    test_json_to_mp(json, &f->req);
    rv =
        cairn_call(f->c, method, f->req.data, f->req.len, &resp, &len, &f->err);
    if (out != NULL) {
        *out = rv == 0 ? test_mp_to_json(resp, len) : NULL;
    }
    free(resp);
    return rv;
}

#define ASSERT_CALL_OK(F, METHOD, JSON)                                 \
    do {                                                                \
        int rv_ = call((F), (METHOD), (JSON), NULL);                    \
        if (rv_ != 0) {                                                 \
            fail_msg("%s: %s %s: %s", (METHOD), cairn_status_name(rv_), \
                     (F)->err.type, (F)->err.msg);                      \
        }                                                               \
    } while (0)

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of "cid" in a metadata JSON object, checked to be 32 lower-case
 * hex characters. */
static void assert_cid(const char *metadata_json)
{
    const char *p = strstr(metadata_json, "\"cid\":\"");

    assert_non_null(p);
    p += strlen("\"cid\":\"");
    for (int i = 0; i < 32; i++) {
        assert_non_null(strchr("0123456789abcdef", p[i]));
    }
    assert_int_equal(p[32], '"');
}

/******************************************************************************
 *
 * Calls
 *
 *****************************************************************************/

/* A call sends the method and body and returns the matching response; a
 * read carries no session and the remaining deadline as its timeout. */
static void call_and_response(void **state)
{
    struct fixture *f = *state;
    char *json;

    start_one(f, h_echo);
    assert_int_equal(call(f, "GetParameter", "{\"Name\": \"/a\"}", &json), 0);
    assert_string_equal(
        json, "{\"Method\":\"GetParameter\",\"Request\":{\"Name\":\"/a\"}}");
    free(json);
    assert_int_equal(f->err.code, 0);
    assert_int_equal(f->a->requests, 1);
    assert_string_equal(f->a->method[0], "GetParameter");
    assert_string_equal(f->a->metadata[0], "{}");
    assert_string_equal(f->a->body[0], "{\"Name\":\"/a\"}");
    assert_true(f->a->timeout_ms[0] > 9000 && f->a->timeout_ms[0] <= 10000);
}

/* Each call gets a new stream id on the connection. */
static void call_new_stream_ids(void **state)
{
    struct fixture *f = *state;

    start_one(f, h_echo);
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/b\"}");
    assert_true(f->a->stream[1] != f->a->stream[0]);
    assert_int_equal(f->a->accepts, 1);
}

/* A request that is not one msgpack map is refused before anything is
 * sent. */
static void call_refuses_non_map(void **state)
{
    struct fixture *f = *state;
    void *resp = (void *)1;
    size_t len = 1;

    start_one(f, h_echo);
    assert_int_equal(
        cairn_call(f->c, "GetParameter", "\x91\x01", 2, &resp, &len, &f->err),
        CAIRN_INVALID_ARGUMENT);
    assert_null(resp);
    assert_int_equal(len, 0);
    assert_int_equal(
        cairn_call(f->c, "GetParameter", "\x81\xa1k", 3, &resp, &len, &f->err),
        CAIRN_INVALID_ARGUMENT);
    assert_int_equal(cairn_call(f->c, "", "\x80", 1, &resp, &len, &f->err),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(f->a->requests, 0);
}

/* Writes carry the session id and a sequence number that grows by one per
 * call; reads carry neither. */
static void write_metadata(void **state)
{
    struct fixture *f = *state;

    start_one(f, h_echo);
    ASSERT_CALL_OK(f, "PutParameter", "{\"Name\": \"/a\", \"Value\": \"1\"}");
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    ASSERT_CALL_OK(f, "DeleteParameter", "{\"Name\": \"/a\"}");
    assert_cid(f->a->metadata[0]);
    assert_non_null(strstr(f->a->metadata[0], "\"seq\":1}"));
    assert_string_equal(f->a->metadata[1], "{}");
    assert_non_null(strstr(f->a->metadata[2], "\"seq\":2}"));
    /* Same session: the cid part is identical. */
    assert_memory_equal(f->a->metadata[0], f->a->metadata[2], 40);
}

/* Every write method of the protocol is treated as a write. */
static void write_methods_listed(void **state)
{
    struct fixture *f = *state;
    static const char *const writes[] = {
        "PutParameter",
        "DeleteParameter",
        "DeleteParameters",
        "LabelParameterVersion",
        "UnlabelParameterVersion",
        "AddTagsToResource",
        "RemoveTagsFromResource",
        "UpdateServiceSetting",
        "ResetServiceSetting",
    };

    start_one(f, h_echo);
    for (int i = 0; i < 9; i++) {
        char want[32];
        ASSERT_CALL_OK(f, writes[i], "{}");
        snprintf(want, sizeof(want), "\"seq\":%d}", i + 1);
        assert_non_null(strstr(f->a->metadata[i], want));
    }
    ASSERT_CALL_OK(f, "ListTagsForResource", "{}");
    assert_string_equal(f->a->metadata[9], "{}");
}

/* With stale_reads, reads ask for stale consistency and writes do not. */
static void stale_reads_metadata(void **state)
{
    struct fixture *f = *state;

    f->o.stale_reads = true;
    start_one(f, h_echo);
    ASSERT_CALL_OK(f, "GetParametersByPath", "{\"Path\": \"/\"}");
    ASSERT_CALL_OK(f, "PutParameter", "{\"Name\": \"/a\", \"Value\": \"1\"}");
    assert_string_equal(f->a->metadata[0], "{\"consistency\":\"stale\"}");
    assert_null(strstr(f->a->metadata[1], "consistency"));
    assert_cid(f->a->metadata[1]);
}

/* A server error comes back with its status, AWS error name and
 * message. */
static void server_error(void **state)
{
    struct fixture *f = *state;
    char *json = (char *)"unchanged";

    start_one(f, h_not_found);
    assert_int_equal(call(f, "GetParameter", "{\"Name\": \"/nope\"}", &json),
                     CAIRN_NOT_FOUND);
    assert_null(json);
    assert_int_equal(f->err.code, CAIRN_NOT_FOUND);
    assert_string_equal(f->err.type, "ParameterNotFound");
    assert_string_equal(f->err.msg, "Parameter /nope not found.");
    /* Not retried: only UNAVAILABLE is. */
    assert_int_equal(f->a->requests, 1);
}

/* Pongs, pings and responses for other streams are skipped, and a ping
 * is answered with a pong. */
static void unrelated_frames_skipped(void **state)
{
    struct fixture *f = *state;
    char *json;

    start_one(f, h_noise);
    assert_int_equal(call(f, "GetParameter", "{\"Name\": \"/a\"}", &json), 0);
    assert_non_null(strstr(json, "\"Method\":\"GetParameter\""));
    free(json);
    fake_wait(f->a, &f->a->pongs, 1);
}

/******************************************************************************
 *
 * Retries, deadlines and failover
 *
 *****************************************************************************/

/* A write answered UNAVAILABLE is retried with the same session id and
 * sequence number, so the server can apply it exactly once. */
static void retry_unavailable_same_session(void **state)
{
    struct fixture *f = *state;

    start_one(f, h_unavailable_once);
    ASSERT_CALL_OK(f, "PutParameter", "{\"Name\": \"/a\", \"Value\": \"1\"}");
    assert_int_equal(f->a->requests, 2);
    assert_string_equal(f->a->method[1], "PutParameter");
    assert_string_equal(f->a->metadata[0], f->a->metadata[1]);
    assert_string_equal(f->a->body[0], f->a->body[1]);
    assert_cid(f->a->metadata[0]);
    assert_non_null(strstr(f->a->metadata[0], "\"seq\":1}"));
    /* The next call is a new sequence number in the same session. */
    ASSERT_CALL_OK(f, "PutParameter", "{\"Name\": \"/a\", \"Value\": \"2\"}");
    assert_non_null(strstr(f->a->metadata[2], "\"seq\":2}"));
    assert_memory_equal(f->a->metadata[0], f->a->metadata[2], 40);
}

/* UNAVAILABLE every time uses up the attempts and returns the server's
 * error. */
static void retry_gives_up(void **state)
{
    struct fixture *f = *state;

    f->o.attempts = 3;
    start_one(f, h_unavailable);
    assert_int_equal(call(f, "GetParameter", "{\"Name\": \"/a\"}", NULL),
                     CAIRN_UNAVAILABLE);
    assert_int_equal(f->err.code, CAIRN_UNAVAILABLE);
    assert_string_equal(f->err.type, "ServiceUnavailable");
    assert_string_equal(f->err.msg, "not the leader");
    assert_int_equal(f->a->requests, 3);
}

/* A call that gets no answer fails with DEADLINE_EXCEEDED at its deadline,
 * having told the server its timeout, and cancels the stream. */
static void deadline_exceeded(void **state)
{
    struct fixture *f = *state;
    int64_t t0;
    int64_t took;

    f->o.timeout_ms = 300;
    start_one(f, h_silent);
    t0 = mono_ms();
    assert_int_equal(call(f, "GetParameter", "{\"Name\": \"/a\"}", NULL),
                     CAIRN_DEADLINE_EXCEEDED);
    took = mono_ms() - t0;
    assert_int_equal(f->err.code, CAIRN_DEADLINE_EXCEEDED);
    assert_true(took >= 290);
    assert_true(took < 300 + 200);
    /* No response orders the fake's records before this read: the mutex
     * taken by fake_wait does. */
    fake_wait(f->a, &f->a->cancels, 1);
    assert_int_equal(fake_count(f->a, &f->a->requests), 1);
    assert_true(f->a->timeout_ms[0] > 0 && f->a->timeout_ms[0] <= 300);
}

/* The deadline covers the retries: with endless UNAVAILABLE answers and
 * many attempts, the call ends near its deadline. */
static void deadline_bounds_retries(void **state)
{
    struct fixture *f = *state;
    int64_t t0;
    int64_t took;

    f->o.timeout_ms = 300;
    f->o.attempts = 1000;
    f->o.backoff_ms = 20;
    start_one(f, h_unavailable);
    t0 = mono_ms();
    assert_int_equal(call(f, "GetParameter", "{\"Name\": \"/a\"}", NULL),
                     CAIRN_UNAVAILABLE);
    took = mono_ms() - t0;
    assert_true(took < 300 + 200);
    /* Backoff 20, 40, 80, 160 ms: a handful of tries, not a thousand. */
    assert_true(f->a->requests >= 2 && f->a->requests <= 6);
}

/* When the first endpoint refuses connections the client connects to the
 * second. */
static void failover_on_connect(void **state)
{
    struct fixture *f = *state;

    f->a = fake_start(h_echo);
    snprintf(f->endpoints, sizeof(f->endpoints), "127.0.0.1:%d, 127.0.0.1:%d",
             dead_port(), f->a->port);
    f->o.endpoints = f->endpoints;
    assert_int_equal(cairn_client_connect(&f->o, &f->c, &f->err), 0);
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    assert_int_equal(f->a->requests, 1);
}

/* A write answered UNAVAILABLE by one node is retried on the next
 * endpoint with the same session id and sequence number. */
static void failover_on_unavailable(void **state)
{
    struct fixture *f = *state;

    f->a = fake_start(h_unavailable);
    f->b = fake_start(h_echo);
    snprintf(f->endpoints, sizeof(f->endpoints), "127.0.0.1:%d,127.0.0.1:%d",
             f->a->port, f->b->port);
    f->o.endpoints = f->endpoints;
    assert_int_equal(cairn_client_connect(&f->o, &f->c, &f->err), 0);
    ASSERT_CALL_OK(f, "PutParameter", "{\"Name\": \"/a\", \"Value\": \"1\"}");
    assert_int_equal(f->a->requests, 1);
    assert_int_equal(f->b->requests, 1);
    assert_string_equal(f->a->metadata[0], f->b->metadata[0]);
}

/* A node that refuses mid-session is skipped: the call connects to the
 * next endpoint. */
static void failover_after_node_dies(void **state)
{
    struct fixture *f = *state;

    f->a = fake_start(h_echo);
    f->b = fake_start(h_echo);
    snprintf(f->endpoints, sizeof(f->endpoints), "127.0.0.1:%d,127.0.0.1:%d",
             f->a->port, f->b->port);
    f->o.endpoints = f->endpoints;
    assert_int_equal(cairn_client_connect(&f->o, &f->c, &f->err), 0);
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    fake_stop(f->a);
    f->a = NULL;
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    assert_int_equal(f->b->requests, 1);
}

/* A goaway makes the client reconnect and retry the call. */
static void goaway_reconnects(void **state)
{
    struct fixture *f = *state;

    start_one(f, h_goaway_once);
    ASSERT_CALL_OK(f, "PutParameter", "{\"Name\": \"/a\", \"Value\": \"1\"}");
    assert_int_equal(f->a->requests, 2);
    assert_int_equal(f->a->accepts, 2);
    assert_string_equal(f->a->metadata[0], f->a->metadata[1]);
}

/* A connection the server closed while the client was idle is replaced
 * without using up an attempt. */
static void idle_close_reconnects(void **state)
{
    struct fixture *f = *state;
    struct timespec ts = {0, 50 * 1000 * 1000};

    f->o.attempts = 1;
    start_one(f, h_echo_close);
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    nanosleep(&ts, NULL);
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    assert_int_equal(f->a->accepts, 2);
}

/* With no endpoint answering, connect fails with UNAVAILABLE. */
static void connect_unavailable(void **state)
{
    struct fixture *f = *state;

    snprintf(f->endpoints, sizeof(f->endpoints), "127.0.0.1:%d,127.0.0.1:%d",
             dead_port(), dead_port());
    f->o.endpoints = f->endpoints;
    assert_int_equal(cairn_client_connect(&f->o, &f->c, &f->err),
                     CAIRN_UNAVAILABLE);
    assert_null(f->c);
    assert_non_null(strstr(f->err.msg, "refused"));
}

/* Malformed endpoint lists are refused with INVALID_ARGUMENT. */
static void connect_bad_endpoints(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "127.0.0.1:http", ":7400",  "127.0.0.1:0", "127.0.0.1:65536", "[::1",
        "[]:80",          "[::1]x", ",",           "host:",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->o.endpoints = bad[i];
        if (cairn_client_connect(&f->o, &f->c, &f->err) !=
            CAIRN_INVALID_ARGUMENT) {
            fail_msg("endpoint list \"%s\" was accepted", bad[i]);
        }
        assert_null(f->c);
    }
}

/* Without an endpoint list the client uses CAIRN_ENDPOINT. */
static void connect_from_environment(void **state)
{
    struct fixture *f = *state;
    char ep[64];

    f->a = fake_start(h_echo);
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", f->a->port);
    assert_int_equal(setenv("CAIRN_ENDPOINT", ep, 1), 0);
    assert_int_equal(cairn_client_connect(NULL, &f->c, &f->err), 0);
    unsetenv("CAIRN_ENDPOINT");
    ASSERT_CALL_OK(f, "GetParameter", "{\"Name\": \"/a\"}");
    assert_int_equal(f->a->requests, 1);
}

/******************************************************************************
 *
 * Paging, JSON and typed helpers
 *
 *****************************************************************************/

struct pages
{
    int n;
    char *json[4];
    int stop_at; /* return 99 from this page (from 1), 0: never */
};

static int collect_page(void *ctx, const void *resp, size_t len)
{
    struct pages *p = ctx;

    assert_true(p->n < 4);
    p->json[p->n++] = test_mp_to_json(resp, len);
    return p->n == p->stop_at ? 99 : 0;
}

static void pages_free(struct pages *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->json[i]);
    }
}

/* Paged calls follow NextToken until a response has none, keeping the
 * other request fields. */
static void paged_follows_next_token(void **state)
{
    struct fixture *f = *state;
    struct pages p = {0};

    start_one(f, h_paged);
    test_json_to_mp("{\"Path\": \"/app\", \"Recursive\": true}", &f->req);
    assert_int_equal(cairn_call_paged(f->c, "GetParametersByPath", f->req.data,
                                      f->req.len, collect_page, &p, &f->err),
                     0);
    assert_int_equal(p.n, 3);
    assert_non_null(strstr(p.json[0], "/app/a"));
    assert_non_null(strstr(p.json[1], "\"Parameters\":[]"));
    assert_non_null(strstr(p.json[2], "/app/c/secret"));
    pages_free(&p);
    assert_int_equal(f->a->requests, 3);
    assert_string_equal(f->a->body[0],
                        "{\"Path\":\"/app\",\"Recursive\":true}");
    assert_string_equal(
        f->a->body[1],
        "{\"NextToken\":\"t1\",\"Path\":\"/app\",\"Recursive\":true}");
    assert_string_equal(
        f->a->body[2],
        "{\"NextToken\":\"t2\",\"Path\":\"/app\",\"Recursive\":true}");
}

/* A caller's own NextToken starts the listing there. */
static void paged_resumes_from_token(void **state)
{
    struct fixture *f = *state;
    struct pages p = {0};

    start_one(f, h_paged);
    test_json_to_mp("{\"NextToken\": \"t2\", \"Path\": \"/app\"}", &f->req);
    assert_int_equal(cairn_call_paged(f->c, "GetParametersByPath", f->req.data,
                                      f->req.len, collect_page, &p, &f->err),
                     0);
    assert_int_equal(p.n, 1);
    pages_free(&p);
    assert_string_equal(f->a->body[0],
                        "{\"NextToken\":\"t2\",\"Path\":\"/app\"}");
}

/* A page callback's non-zero return stops the listing and is returned. */
static void paged_callback_stops(void **state)
{
    struct fixture *f = *state;
    struct pages p = {.stop_at = 2};

    start_one(f, h_paged);
    test_json_to_mp("{\"Path\": \"/app\"}", &f->req);
    assert_int_equal(cairn_call_paged(f->c, "GetParametersByPath", f->req.data,
                                      f->req.len, collect_page, &p, &f->err),
                     99);
    assert_int_equal(p.n, 2);
    pages_free(&p);
    assert_int_equal(f->a->requests, 2);
}

/* cairn_call_json converts the request from JSON and the response to
 * JSON. */
static void call_json(void **state)
{
    struct fixture *f = *state;
    char *out = NULL;

    start_one(f, h_echo);
    assert_int_equal(cairn_call_json(f->c, "GetParameters",
                                     "{\"Names\": [\"/a\", \"/b\"], "
                                     "\"WithDecryption\": false}",
                                     &out, &f->err),
                     0);
    assert_string_equal(out,
                        "{\"Method\":\"GetParameters\",\"Request\":{"
                        "\"Names\":[\"/a\",\"/b\"],\"WithDecryption\":false}}");
    free(out);
    assert_int_equal(
        cairn_call_json(f->c, "GetParameters", "{\"Names\": [", &out, &f->err),
        CAIRN_INVALID_ARGUMENT);
    assert_null(out);
    assert_int_equal(
        cairn_call_json(f->c, "GetServiceSetting", NULL, &out, &f->err), 0);
    assert_string_equal(out,
                        "{\"Method\":\"GetServiceSetting\",\"Request\":{}}");
    free(out);
    assert_int_equal(f->a->requests, 2);
}

/* cairn_call_json passes server errors through. */
static void call_json_error(void **state)
{
    struct fixture *f = *state;
    char *out = NULL;

    start_one(f, h_not_found);
    assert_int_equal(cairn_call_json(f->c, "GetParameter",
                                     "{\"Name\": \"/nope\"}", &out, &f->err),
                     CAIRN_NOT_FOUND);
    assert_null(out);
    assert_string_equal(f->err.type, "ParameterNotFound");
}

/* cairn_get_parameter fills every field; a sealed value comes back in
 * base64. */
static void typed_get_parameter(void **state)
{
    struct fixture *f = *state;
    struct cairn_parameter p;

    start_one(f, h_get_parameter);
    assert_int_equal(cairn_get_parameter(f->c, "/app/db:7", false, &p, &f->err),
                     0);
    assert_string_equal(p.name, "/app/db");
    assert_string_equal(p.type, "SecureString");
    assert_string_equal(p.value, "aGkh");
    assert_int_equal(p.version, 7);
    assert_string_equal(p.selector, ":7");
    assert_true(p.last_modified == 1700000000.5);
    assert_string_equal(p.arn,
                        "arn:aws:ssm:us-east-1:123456789012:parameter/app/db");
    assert_string_equal(p.data_type, "text");
    cairn_parameter_free(&p);
    cairn_parameter_free(NULL);
    assert_string_equal(f->a->body[0],
                        "{\"Name\":\"/app/db:7\",\"WithDecryption\":false}");
}

/* cairn_get_parameter reports a server error and leaves the struct
 * empty. */
static void typed_get_parameter_error(void **state)
{
    struct fixture *f = *state;
    struct cairn_parameter p;

    start_one(f, h_not_found);
    assert_int_equal(cairn_get_parameter(f->c, "/nope", true, &p, &f->err),
                     CAIRN_NOT_FOUND);
    assert_null(p.name);
    assert_null(p.value);
    assert_string_equal(f->err.type, "ParameterNotFound");
}

/* A response that is not the expected shape is an INTERNAL error. */
static void typed_bad_response(void **state)
{
    struct fixture *f = *state;
    struct cairn_parameter p;

    start_one(f, h_echo);
    assert_int_equal(cairn_get_parameter(f->c, "/a", false, &p, &f->err),
                     CAIRN_INTERNAL);
    assert_null(p.name);
}

/* cairn_put_parameter returns the new version and sends a session; delete
 * sends the next sequence number. */
static void typed_put_and_delete(void **state)
{
    struct fixture *f = *state;
    uint64_t version = 0;

    start_one(f, h_put);
    assert_int_equal(
        cairn_put_parameter(f->c, "/a", "v", "String", true, &version, &f->err),
        0);
    assert_int_equal(version, 3);
    assert_string_equal(f->a->body[0],
                        "{\"Name\":\"/a\",\"Overwrite\":true,"
                        "\"Type\":\"String\",\"Value\":\"v\"}");
    assert_int_equal(
        cairn_put_parameter(f->c, "/a", "w", NULL, true, NULL, &f->err), 0);
    assert_string_equal(f->a->body[1],
                        "{\"Name\":\"/a\",\"Overwrite\":true,\"Value\":\"w\"}");
    assert_int_equal(cairn_delete_parameter(f->c, "/a", &f->err), 0);
    assert_string_equal(f->a->method[2], "DeleteParameter");
    assert_non_null(strstr(f->a->metadata[2], "\"seq\":3}"));
    assert_int_equal(
        cairn_put_parameter(f->c, NULL, "v", NULL, false, NULL, &f->err),
        CAIRN_INVALID_ARGUMENT);
}

struct names
{
    int n;
    char *name[4];
    char *value[4];
};

static int collect_parameter(void *ctx, const struct cairn_parameter *p)
{
    struct names *s = ctx;

    assert_true(s->n < 4);
    s->name[s->n] = strdup(p->name);
    s->value[s->n] = strdup(p->value);
    s->n++;
    return 0;
}

/* cairn_get_parameters_by_path visits every parameter of every page, in
 * order. */
static void typed_get_parameters_by_path(void **state)
{
    struct fixture *f = *state;
    struct names s = {0};

    start_one(f, h_paged);
    assert_int_equal(
        cairn_get_parameters_by_path(f->c, "/app", true, false,
                                     collect_parameter, &s, &f->err),
        0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.name[0], "/app/a");
    assert_string_equal(s.value[0], "1");
    assert_string_equal(s.name[1], "/app/b");
    assert_string_equal(s.name[2], "/app/c/secret");
    assert_string_equal(s.value[2], "AQID/w==");
    for (int i = 0; i < s.n; i++) {
        free(s.name[i]);
        free(s.value[i]);
    }
    assert_string_equal(
        f->a->body[0],
        "{\"Path\":\"/app\",\"Recursive\":true,\"WithDecryption\":false}");
}

/******************************************************************************
 *
 * Runner
 *
 *****************************************************************************/

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(call_and_response),
        CASE(call_new_stream_ids),
        CASE(call_refuses_non_map),
        CASE(write_metadata),
        CASE(write_methods_listed),
        CASE(stale_reads_metadata),
        CASE(server_error),
        CASE(unrelated_frames_skipped),
        CASE(retry_unavailable_same_session),
        CASE(retry_gives_up),
        CASE(deadline_exceeded),
        CASE(deadline_bounds_retries),
        CASE(failover_on_connect),
        CASE(failover_on_unavailable),
        CASE(failover_after_node_dies),
        CASE(goaway_reconnects),
        CASE(idle_close_reconnects),
        CASE(connect_unavailable),
        CASE(connect_bad_endpoints),
        CASE(connect_from_environment),
        CASE(paged_follows_next_token),
        CASE(paged_resumes_from_token),
        CASE(paged_callback_stops),
        CASE(call_json),
        CASE(call_json_error),
        CASE(typed_get_parameter),
        CASE(typed_get_parameter_error),
        CASE(typed_bad_response),
        CASE(typed_put_and_delete),
        CASE(typed_get_parameters_by_path),
    };
    return cmocka_run_group_tests_name("api-client", tests, NULL, NULL);
}
