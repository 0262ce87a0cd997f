/* Integration tests: a real single-node cairnd on free loopback ports,
 * driven through libcairn and raw sockets. */
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "wire.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

static int setup(void **state)
{
    struct daemon *d = calloc(1, sizeof(*d));
    daemon_start(d);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct daemon *d = *state;
    daemon_cleanup(d);
    free(d);
    return 0;
}

/******************************************************************************
 * Helpers
 *****************************************************************************/

static json_t *call_ok(struct cairn_client *c,
                       const char *method,
                       const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
static json_t *call_ok(struct cairn_client *c,
                       const char *method,
                       const char *fmt,
                       ...)
{
    struct cairn_error err;
    char *req = NULL, *resp = NULL;
    json_t *j;
    va_list ap;

    va_start(ap, fmt);
    assert_true(vasprintf(&req, fmt, ap) >= 0);
    va_end(ap);
    if (cairn_call_json(c, method, req, &resp, &err) != 0) {
        fail_msg("%s %s: %s %s: %s", method, req, cairn_status_name(err.code),
                 err.type, err.msg);
    }
    j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    free(req);
    free(resp);
    return j;
}

static void put(struct cairn_client *c, const char *name, const char *value)
{
    struct cairn_error err;
    if (cairn_put_parameter(c, name, value, "String", true, NULL, &err) != 0) {
        fail_msg("put %s: %s", name, err.msg);
    }
}

static int connect_raw(struct daemon *d)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)d->api_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fail_msg("connect: %s", strerror(errno));
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return; /* the server may close first: that is allowed */
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Read frames until one arrives or the peer closes; true and the decoded
 * message if a frame arrived within @p ms. */
static bool read_frame(int fd,
                       struct wire_reader *r,
                       struct wire_msg *m,
                       struct mp_doc *doc,
                       int ms)
{
    long long end = proc_now_ms() + ms;
    for (;;) {
        const uint8_t *payload;
        size_t len;
        char chunk[65536];
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)(end - proc_now_ms());
        int rv = wire_reader_next(r, &payload, &len);
        ssize_t n;

        if (rv == 1) {
            struct cairn_error err;
            assert_int_equal(wire_decode(payload, len, m, doc, &err), 0);
            return true;
        }
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            return false;
        }
        n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) {
            return false;
        }
        assert_int_equal(wire_reader_feed(r, chunk, (size_t)n), 0);
    }
}

/* True if the server closes the connection within @p ms. */
static bool closed_by_peer(int fd, int ms)
{
    long long end = proc_now_ms() + ms;
    char chunk[4096];
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)(end - proc_now_ms());
        ssize_t n;
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            return false;
        }
        n = recv(fd, chunk, sizeof(chunk), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return true;
        }
    }
}

/* The server still answers a well-behaved client. */
static void assert_serving(struct daemon *d)
{
    struct cairn_client *c = daemon_client(d);
    json_t *r = call_ok(c, "GetServiceSetting",
                        "{\"SettingId\":\"/ssm/parameter-store/"
                        "default-parameter-tier\"}");
    json_decref(r);
    cairn_client_close(c);
}

/******************************************************************************
 * Operations
 *****************************************************************************/

/* Writes and reads go through the server with AWS's shapes and errors. */
static void operations(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c = daemon_client(d);
    struct cairn_parameter p;
    struct cairn_error err;
    uint64_t version = 0;
    json_t *r;
    char *out = NULL;

    assert_int_equal(cairn_put_parameter(c, "/app/dev/db-url", "postgres://x",
                                         "String", false, &version, &err),
                     0);
    assert_int_equal(version, 1);
    assert_int_equal(cairn_put_parameter(c, "/app/dev/db-url", "y", "String",
                                         false, &version, &err),
                     CAIRN_ALREADY_EXISTS);
    assert_string_equal(err.type, "ParameterAlreadyExists");
    assert_int_equal(cairn_get_parameter(c, "/app/dev/db-url", false, &p, &err),
                     0);
    assert_string_equal(p.value, "postgres://x");
    assert_int_equal(p.version, 1);
    cairn_parameter_free(&p);
    assert_int_equal(cairn_get_parameter(c, "/nope", false, &p, &err),
                     CAIRN_NOT_FOUND);
    assert_string_equal(err.type, "ParameterNotFound");
    assert_string_equal(err.msg, "Parameter /nope not found.");

    r = call_ok(c, "LabelParameterVersion",
                "{\"Name\":\"/app/dev/db-url\",\"Labels\":[\"prod\"]}");
    json_decref(r);
    r = call_ok(c, "GetParameters",
                "{\"Names\":[\"/app/dev/db-url:prod\",\"/missing\"]}");
    assert_int_equal(json_array_size(json_object_get(r, "Parameters")), 1);
    assert_int_equal(json_array_size(json_object_get(r, "InvalidParameters")),
                     1);
    json_decref(r);
    r = call_ok(c, "DescribeParameters", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "Parameters")), 1);
    json_decref(r);
    r = call_ok(c, "GetParameterHistory", "{\"Name\":\"/app/dev/db-url\"}");
    assert_int_equal(json_array_size(json_object_get(r, "Parameters")), 1);
    json_decref(r);
    r = call_ok(c, "AddTagsToResource",
                "{\"ResourceType\":\"Parameter\",\"ResourceId\":"
                "\"/app/dev/db-url\",\"Tags\":[{\"Key\":\"env\",\"Value\":"
                "\"dev\"}]}");
    json_decref(r);
    r = call_ok(c, "ListTagsForResource",
                "{\"ResourceType\":\"Parameter\",\"ResourceId\":"
                "\"/app/dev/db-url\"}");
    assert_int_equal(json_array_size(json_object_get(r, "TagList")), 1);
    json_decref(r);
    assert_int_equal(cairn_delete_parameter(c, "/app/dev/db-url", &err), 0);
    assert_int_equal(cairn_delete_parameter(c, "/app/dev/db-url", &err),
                     CAIRN_NOT_FOUND);
    /* SecureString on a single node's own root key: sealed, read back as
     * the envelope (base64) or decrypted. */
    {
        struct cairn_parameter prm;
        assert_int_equal(cairn_put_parameter(c, "/s", "secret-value",
                                             "SecureString", false, NULL, &err),
                         0);
        assert_int_equal(cairn_get_parameter(c, "/s", false, &prm, &err), 0);
        assert_string_equal(prm.type, "SecureString");
        assert_null(strstr(prm.value, "secret-value"));
        assert_true(strncmp(prm.value, "Q1JORQ", 6) == 0); /* "CRNE" */
        cairn_parameter_free(&prm);
        assert_int_equal(cairn_get_parameter(c, "/s", true, &prm, &err), 0);
        assert_string_equal(prm.value, "secret-value");
        cairn_parameter_free(&prm);
        /* AllowedPattern is checked on the plaintext, before sealing, and
         * kept for an overwrite that leaves it out. */
        json_decref(call_ok(c, "PutParameter",
                            "{\"Name\":\"/sp\",\"Value\":\"abc\","
                            "\"Type\":\"SecureString\","
                            "\"AllowedPattern\":\"^a\"}"));
        assert_int_not_equal(
            cairn_call_json(c, "PutParameter",
                            "{\"Name\":\"/sp\",\"Value\":\"bcd\","
                            "\"Type\":\"SecureString\",\"Overwrite\":true}",
                            &out, &err),
            0);
        assert_string_equal(err.type, "ParameterPatternMismatchException");
        assert_int_equal(cairn_put_parameter(c, "/sp", "axe", "SecureString",
                                             true, NULL, &err),
                         0);
    }
    cairn_client_close(c);
}

static int count_param(void *ctx, const struct cairn_parameter *p)
{
    int *n = ctx;
    (void)p;
    (*n)++;
    return 0;
}

/* Paging through 1,000 parameters returns each exactly once. */
static void paging_1000(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c = daemon_client(d);
    struct cairn_error err;
    char name[64];
    int n = 0;

    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "/page/%02d/p%04d", i % 10, i);
        put(c, name, "v");
    }
    assert_int_equal(cairn_get_parameters_by_path(c, "/page", true, false,
                                                  count_param, &n, &err),
                     0);
    assert_int_equal(n, 1000);
    n = 0;
    assert_int_equal(cairn_get_parameters_by_path(c, "/page/03", false, false,
                                                  count_param, &n, &err),
                     0);
    assert_int_equal(n, 100);
    cairn_client_close(c);
}

/* A clean restart keeps every parameter and version. */
static void restart_keeps_data(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c = daemon_client(d);
    struct cairn_parameter p;
    struct cairn_error err;
    char *log;

    put(c, "/keep/a", "1");
    put(c, "/keep/a", "2");
    cairn_client_close(c);
    daemon_stop(d);
    log = daemon_log(d);
    assert_non_null(strstr(log, "shutting down"));
    assert_non_null(strstr(log, "stopped"));
    free(log);
    daemon_start(d);
    c = daemon_client(d);
    assert_int_equal(cairn_get_parameter(c, "/keep/a", false, &p, &err), 0);
    assert_string_equal(p.value, "2");
    assert_int_equal(p.version, 2);
    cairn_parameter_free(&p);
    put(c, "/keep/a", "3");
    cairn_client_close(c);
}

/* A second server on the same data directory is refused. */
static void second_server_refused(void **state)
{
    struct daemon *d = *state;
    struct daemon other;
    char api[64], raft[64];
    char *out = NULL, *errs = NULL;
    int status;

    memset(&other, 0, sizeof(other));
    snprintf(api, sizeof(api), "127.0.0.1:%d", proc_free_port());
    snprintf(raft, sizeof(raft), "127.0.0.1:%d", proc_free_port());
    {
        char *argv[] = {getenv("CAIRND"), "--data-dir", d->data, "--api", api,
                        "--raft",         raft,         NULL};
        status = proc_run(argv, &out, &errs, 20000);
    }
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(errs, "in use"));
    free(out);
    free(errs);
    assert_serving(d);
}

struct writer
{
    struct daemon *d;
    int acked; /* writes acknowledged: /kill/0 .. /kill/acked-1 */
    volatile int stop;
};

static void *write_loop(void *arg)
{
    struct writer *w = arg;
    struct cairn_client_options o;
    struct cairn_client *c = NULL;
    struct cairn_error err;
    char name[64];

    cairn_client_options_default(&o);
    o.endpoints = w->d->endpoint;
    o.timeout_ms = 2000;
    o.attempts = 1;
    if (cairn_client_connect(&o, &c, &err) != 0) {
        return NULL;
    }
    for (int i = 0; !w->stop; i++) {
        snprintf(name, sizeof(name), "/kill/%06d", i);
        if (cairn_put_parameter(c, name, "v", "String", false, NULL, &err) !=
            0) {
            break;
        }
        w->acked = i + 1;
    }
    cairn_client_close(c);
    return NULL;
}

/* kill -9 during a stream of writes loses no acknowledged write. */
static void kill9_keeps_acknowledged(void **state)
{
    struct daemon *d = *state;
    struct writer w = {d, 0, 0};
    struct cairn_client *c;
    struct cairn_parameter p;
    struct cairn_error err;
    pthread_t t;
    long long end = proc_now_ms() + 10000;

    assert_int_equal(pthread_create(&t, NULL, write_loop, &w), 0);
    while (w.acked < 300 && proc_now_ms() < end) {
        usleep(1000);
    }
    daemon_kill9(d);
    w.stop = 1;
    pthread_join(t, NULL);
    assert_true(w.acked >= 300);
    daemon_start(d);
    c = daemon_client(d);
    for (int i = 0; i < w.acked; i++) {
        char name[64];
        snprintf(name, sizeof(name), "/kill/%06d", i);
        if (cairn_get_parameter(c, name, false, &p, &err) != 0) {
            fail_msg("acknowledged write %s lost after kill -9 (%d acked)",
                     name, w.acked);
        }
        cairn_parameter_free(&p);
    }
    cairn_client_close(c);
}

/* The README's example application fetches /my-app/dev/ by path. */
static void example_program(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c = daemon_client(d);
    char *out = NULL, *errs = NULL;
    int status;

    put(c, "/my-app/dev/db-url", "postgres://db.dev:5432/app");
    put(c, "/my-app/dev/db-password", "hunter2");
    put(c, "/my-app/prod/db-url", "postgres://db.prod:5432/app");
    cairn_client_close(c);
    setenv("CAIRN_ENDPOINT", d->endpoint, 1);
    {
        char *argv[] = {getenv("FETCH_CONFIG"), NULL};
        status = proc_run(argv, &out, &errs, 20000);
    }
    unsetenv("CAIRN_ENDPOINT");
    assert_int_equal(status, 0);
    assert_string_equal(out,
                        "/my-app/dev/db-password = hunter2 (version 1)\n"
                        "/my-app/dev/db-url = postgres://db.dev:5432/app "
                        "(version 1)\n");
    free(out);
    free(errs);
}

/* A paged method streams every page on one stream when asked: more=true on
 * all but the last response. */
static void server_streaming(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c = daemon_client(d);
    struct wire_reader r;
    struct wire_msg m;
    struct mp_doc doc;
    struct buf out, body, meta;
    msgpack_packer pk;
    char name[64];
    int fd, pages = 0, params = 0;
    bool more = true;

    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof(name), "/stream/p%02d", i);
        put(c, name, "v");
    }
    cairn_client_close(c);
    buf_init(&out);
    buf_init(&body);
    buf_init(&meta);
    mp_packer_init(&pk, &meta);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_bool(&pk, "stream", true);
    test_json_to_mp("{\"Path\":\"/stream\",\"MaxResults\":10}", &body);
    assert_int_equal(
        wire_encode_request(&out, 1, "GetParametersByPath", 5000, meta.data,
                            meta.len, body.data, body.len),
        0);
    fd = connect_raw(d);
    wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    send_all(fd, out.data, out.len);
    while (more) {
        struct mp_doc page;
        const msgpack_object_array *list;
        assert_true(read_frame(fd, &r, &m, &doc, 5000));
        assert_int_equal(m.type, WIRE_RESPONSE);
        assert_int_equal(m.stream, 1);
        assert_int_equal(m.status, 0);
        assert_int_equal(mp_doc_parse(&page, m.body.p, m.body.n, NULL), 0);
        assert_int_equal(mp_get_array(&page.root, "Parameters", &list, NULL),
                         1);
        params += (int)list->size;
        more = m.more;
        pages++;
        mp_doc_close(&page);
        mp_doc_close(&doc);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(params, 25);
    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&body);
    buf_close(&meta);
    close(fd);
}

/* The same write sent twice with the same client session and sequence
 * number (a retry after a lost answer) is applied once and answered the
 * same way both times. */
static void exactly_once_retry(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c;
    struct wire_reader r;
    struct wire_msg m;
    struct mp_doc doc;
    struct buf out, body, meta;
    msgpack_packer pk;
    char *first = NULL;
    json_t *h;
    int fd;

    buf_init(&out);
    buf_init(&body);
    buf_init(&meta);
    mp_packer_init(&pk, &meta);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_cstr(&pk, "cid", "integration-client-1");
    mp_pack_kv_u64(&pk, "seq", 1);
    test_json_to_mp(
        "{\"Name\":\"/once\",\"Value\":\"v\",\"Type\":"
        "\"String\",\"Overwrite\":true}",
        &body);
    wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    for (uint64_t stream = 1; stream <= 2; stream++) {
        /* A new connection each time, as after a lost answer. */
        fd = connect_raw(d);
        buf_reset(&out);
        assert_int_equal(
            wire_encode_request(&out, stream, "PutParameter", 5000, meta.data,
                                meta.len, body.data, body.len),
            0);
        send_all(fd, out.data, out.len);
        assert_true(read_frame(fd, &r, &m, &doc, 5000));
        assert_int_equal(m.status, 0);
        if (first == NULL) {
            first = test_mp_to_json(m.body.p, m.body.n);
        } else {
            char *again = test_mp_to_json(m.body.p, m.body.n);
            assert_string_equal(first, again);
            free(again);
        }
        mp_doc_close(&doc);
        close(fd);
        wire_reader_close(&r);
        wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    }
    assert_string_equal(first, "{\"Tier\":\"Standard\",\"Version\":1}");
    free(first);
    c = daemon_client(d);
    h = call_ok(c, "GetParameterHistory", "{\"Name\":\"/once\"}");
    assert_int_equal(json_array_size(json_object_get(h, "Parameters")), 1);
    json_decref(h);
    cairn_client_close(c);
    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&body);
    buf_close(&meta);
}

/******************************************************************************
 * Bad input on the socket
 *****************************************************************************/

/* A truncated frame followed by a close does not disturb the server. */
static void bad_truncated(void **state)
{
    struct daemon *d = *state;
    int fd = connect_raw(d);
    static const uint8_t part[] = {0, 0, 0, 40, 0x96, 0x00, 0x01};
    send_all(fd, part, sizeof(part));
    close(fd);
    assert_serving(d);
}

/* An oversized length prefix closes the connection. */
static void bad_oversized(void **state)
{
    struct daemon *d = *state;
    int fd = connect_raw(d);
    static const uint8_t big[] = {0x7f, 0xff, 0xff, 0xff, 0x96};
    send_all(fd, big, sizeof(big));
    assert_true(closed_by_peer(fd, 5000));
    close(fd);
    assert_serving(d);
}

/* Random bytes close the connection. */
static void bad_random(void **state)
{
    struct daemon *d = *state;
    uint8_t junk[4096];
    unsigned seed = 42;
    for (int round = 0; round < 20; round++) {
        int fd = connect_raw(d);
        for (size_t i = 0; i < sizeof(junk); i++) {
            junk[i] = (uint8_t)rand_r(&seed);
        }
        /* A plausible small length so that the payload is parsed. */
        junk[0] = 0;
        junk[1] = 0;
        junk[2] = (uint8_t)(round % 16);
        send_all(fd, junk, sizeof(junk));
        closed_by_peer(fd, 2000);
        close(fd);
    }
    assert_serving(d);
}

/* An unknown method and wrong field types get clear errors. */
static void bad_method_and_types(void **state)
{
    struct daemon *d = *state;
    int fd = connect_raw(d);
    struct wire_reader r;
    struct wire_msg m;
    struct mp_doc doc;
    struct buf out;
    struct buf body;

    buf_init(&out);
    buf_init(&body);
    wire_reader_init(&r, WIRE_DEFAULT_MAX_FRAME);
    test_json_to_mp("{}", &body);
    assert_int_equal(wire_encode_request(&out, 1, "NoSuchMethod", 5000, NULL, 0,
                                         body.data, body.len),
                     0);
    send_all(fd, out.data, out.len);
    assert_true(read_frame(fd, &r, &m, &doc, 5000));
    assert_int_equal(m.type, WIRE_RESPONSE);
    assert_int_equal(m.stream, 1);
    assert_int_equal(m.status, CAIRN_UNIMPLEMENTED);
    mp_doc_close(&doc);

    buf_reset(&out);
    test_json_to_mp("{\"Name\":7}", &body);
    assert_int_equal(wire_encode_request(&out, 2, "GetParameter", 5000, NULL, 0,
                                         body.data, body.len),
                     0);
    send_all(fd, out.data, out.len);
    assert_true(read_frame(fd, &r, &m, &doc, 5000));
    assert_int_equal(m.stream, 2);
    assert_int_equal(m.status, CAIRN_INVALID_ARGUMENT);
    assert_true(mp_str_eqn(m.error_type, "SerializationException"));
    mp_doc_close(&doc);

    /* A body that is not msgpack at all. */
    buf_reset(&out);
    assert_int_equal(wire_encode_request(&out, 3, "GetParameter", 5000, NULL, 0,
                                         "\xc1\xc1", 2),
                     0);
    send_all(fd, out.data, out.len);
    assert_true(read_frame(fd, &r, &m, &doc, 5000));
    assert_int_equal(m.stream, 3);
    assert_int_equal(m.status, CAIRN_INVALID_ARGUMENT);
    mp_doc_close(&doc);

    wire_reader_close(&r);
    buf_close(&out);
    buf_close(&body);
    close(fd);
    assert_serving(d);
}

/* 10,000 connections opened and dropped leave the server serving. */
static void many_connections(void **state)
{
    struct daemon *d = *state;
    for (int i = 0; i < 10000; i++) {
        int fd = connect_raw(d);
        if (i % 3 == 0) {
            send_all(fd, "\0\0", 2);
        }
        close(fd);
    }
    assert_serving(d);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return kib;
}

/* A client that never reads its responses does not stall others, and the
 * server's memory stays bounded while it pipelines requests. */
static void never_reads(void **state)
{
    struct daemon *d = *state;
    struct cairn_client *c = daemon_client(d);
    struct buf out, body;
    char value[4001];
    char name[64];
    int rcvbuf = 4096;
    int fd;
    long before, after;
    uint64_t sent = 0;

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "/big/p%02d", i);
        put(c, name, value);
    }
    before = rss_kib(d->proc.pid);
    fd = connect_raw(d);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    buf_init(&out);
    buf_init(&body);
    {
        /* 4 KB requests (unknown fields are ignored) fill the socket
         * buffers quickly; each answer is ~40 KB. */
        char *json = NULL;
        assert_true(asprintf(&json,
                             "{\"Path\":\"/big\",\"Recursive\":true,"
                             "\"Padding\":\"%s\"}",
                             value) > 0);
        test_json_to_mp(json, &body);
        free(json);
    }
    for (uint64_t i = 1; i <= 100000; i++) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        buf_reset(&out);
        assert_int_equal(wire_encode_request(&out, i, "GetParametersByPath", 0,
                                             NULL, 0, body.data, body.len),
                         0);
        if (poll(&pfd, 1, 200) <= 0) {
            break; /* the server stopped reading us: back-pressure */
        }
        send_all(fd, out.data, out.len);
        sent = i;
    }
    /* Every response is ~40 KB: without back-pressure the server would
     * hold gigabytes by now. */
    assert_true(sent < 100000);
    assert_serving(d);
    after = rss_kib(d->proc.pid);
    if (before > 0 && after > 0) {
        assert_true(after - before < 128 * 1024);
    }
    close(fd);
    buf_close(&out);
    buf_close(&body);
    assert_serving(d);
    cairn_client_close(c);
}

/* Bad cluster options and config files are refused before anything starts,
 * with exit status 2 and a message naming the problem. */
static void bad_options(void **state)
{
    static const char *const cases[][4] = {
        {"--join", "nohostport", NULL, "bad --join"},
        {"--join", "127.0.0.1:1", "--initial-cluster=1=127.0.0.1:2",
         "exclude each other"},
        {"--node-id", "0", NULL, "bad --node-id"},
        {"--snapshot-threshold", "0", NULL, "bad --snapshot-threshold"},
        {"--election-timeout", "50", NULL, "bad --election-timeout"},
        {"--config", "/nonexistent/cairnd.conf", NULL, "cannot read --config"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL, *errs = NULL;
        char *argv[] = {getenv("CAIRND"), (char *)cases[i][0],
                        (char *)cases[i][1], (char *)cases[i][2], NULL};
        int status = proc_run(argv, &out, &errs, 20000);
        assert_int_equal(status, 2);
        if (strstr(errs, cases[i][3]) == NULL) {
            fail_msg("case %zu: expected \"%s\" in: %s", i, cases[i][3], errs);
        }
        free(out);
        free(errs);
    }
}

/* Options from a config file, a flag overriding one of them; bad lines
 * and an initial cluster without this node are refused. */
/* The config_file test's cairnd: stopped by its PID even when the test
 * fails half-way. */
static struct proc config_proc;

static int stop_config_proc(void **state)
{
    (void)state;
    if (config_proc.pid != 0) {
        proc_stop(&config_proc, 20000);
    }
    return 0;
}

static void config_file(void **state)
{
    char *dir = test_mkdtemp();
    char conf[4096], bad[4096], data[4096], log[4096], api[64], flag_api[64];
    int raft_port = proc_free_port();
    struct cairn_client_options o;
    struct cairn_client *c = NULL;
    struct cairn_error err;
    struct proc *p = &config_proc;
    FILE *f;
    char *out = NULL, *errs = NULL;
    int status;

    (void)state;
    snprintf(conf, sizeof(conf), "%s/cairnd.conf", dir);
    snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/cairnd.log", dir);
    snprintf(api, sizeof(api), "127.0.0.1:%d", proc_free_port());
    snprintf(flag_api, sizeof(flag_api), "127.0.0.1:%d", proc_free_port());
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "# a test node\nnode-id = 7\ndata-dir = %s   # trailing comment\n"
            "api = %s\n  raft=127.0.0.1:%d\n"
            "initial-cluster = 7=127.0.0.1:%d\n\n",
            data, api, raft_port, raft_port);
    fclose(f);

    /* The flag wins over the file's api. */
    {
        char *argv[] = {getenv("CAIRND"), "--config", conf,
                        "--api",          flag_api,   NULL};
        proc_spawn(p, argv, log);
    }
    cairn_client_options_default(&o);
    o.endpoints = flag_api;
    o.timeout_ms = 20000;
    o.attempts = 100;
    for (long long start = proc_now_ms();
         cairn_client_connect(&o, &c, &err) != 0;) {
        if (proc_now_ms() - start > 20000) {
            fail_msg("cairnd with --config does not serve %s: %s", flag_api,
                     err.msg);
        }
        usleep(50000);
    }
    put(c, "/conf/a", "1");
    {
        json_t *j = call_ok(c, "Cairn.NodeStatus", "{}");
        assert_int_equal(json_integer_value(json_object_get(j, "Id")), 7);
        assert_string_equal(json_string_value(json_object_get(j, "ApiAddress")),
                            flag_api);
        json_decref(j);
    }
    cairn_client_close(c);
    proc_stop(p, 20000);
    assert_true(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0);

    f = fopen(bad, "w");
    assert_non_null(f);
    fprintf(f, "node-id = 1\nno-such-option = 3\n");
    fclose(f);
    {
        char *argv[] = {getenv("CAIRND"), "--config", bad, NULL};
        status = proc_run(argv, &out, &errs, 20000);
    }
    assert_int_equal(status, 2);
    assert_non_null(strstr(errs, ":2: unknown option no-such-option"));
    free(out);
    free(errs);

    /* A member list without this node: refused at start. */
    {
        char other[64];
        snprintf(other, sizeof(other), "2=127.0.0.1:%d", proc_free_port());
        char *argv[] = {getenv("CAIRND"),    "--data-dir", data,
                        "--initial-cluster", other,        NULL};
        status = proc_run(argv, &out, &errs, 20000);
    }
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(errs, "is not listed"));
    free(out);
    free(errs);
    test_rmdir(dir);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(operations),
        T(paging_1000),
        T(restart_keeps_data),
        T(second_server_refused),
        T(kill9_keeps_acknowledged),
        T(example_program),
        T(server_streaming),
        T(exactly_once_retry),
        T(bad_truncated),
        T(bad_oversized),
        T(bad_random),
        T(bad_method_and_types),
        T(many_connections),
        T(never_reads),
        cmocka_unit_test(bad_options),
        cmocka_unit_test_teardown(config_file, stop_config_proc),
    };
#undef T
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
