/* Tests of the node (raft/node.c, raft/fsm.c): one real libraft node on
 * 127.0.0.1 with its libuv I/O and a store in a temporary directory. */
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsm.h"
#include "mp.h"
#include "node.h"
#include "query.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

#define WAIT_MS 20000

struct fx
{
    char *base;      /* temporary directory */
    char *store_dir; /* base/store */
    char *raft_dir;  /* base/raft (the node creates it) */
    char address[32];
    uv_loop_t loop;
    struct store_options sopts;
    struct store *store;
    struct node_options nopts;
    struct node *node;
    bool node_closed;
    struct buf cmd;
    struct buf out;
};

/* A free TCP port on 127.0.0.1: bind port 0 and read what the kernel gave.
 * The socket is closed unconnected, so the port is free again at once. */
static int pick_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void open_store(struct fx *f)
{
    struct cairn_error err;
    if (store_open(f->store_dir, &f->sopts, &f->store, &err) != 0) {
        fail_msg("store_open: %s", err.msg);
    }
    f->nopts.store = f->store;
}

/* Fresh directories, loop and store; no node yet. */
static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->base = test_mkdtemp();
    assert_true(asprintf(&f->store_dir, "%s/store", f->base) > 0);
    assert_true(asprintf(&f->raft_dir, "%s/raft", f->base) > 0);
    assert_int_equal(mkdir(f->store_dir, 0700), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->address, sizeof(f->address), "127.0.0.1:%d", pick_port());
    store_options_default(&f->sopts);
    f->sopts.no_sync = true;
    f->sopts.map_size = (size_t)1 << 30;
    open_store(f);
    node_options_default(&f->nopts);
    f->nopts.id = 1;
    f->nopts.raft_address = f->address;
    f->nopts.dir = f->raft_dir;
    f->nopts.store = f->store;
    buf_init(&f->cmd);
    buf_init(&f->out);
    return f;
}

/* Run the loop until @p done is true, failing after WAIT_MS. */
static void run_until(struct fx *f, const bool *done)
{
    uint64_t start;

    uv_update_time(&f->loop);
    start = uv_now(&f->loop);
    while (!*done) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        if (uv_now(&f->loop) - start > WAIT_MS) {
            fail_msg("timed out waiting on the loop");
        }
    }
}

static void on_settled(struct node_barrier_req *req, int status)
{
    bool *done = req->data;
    assert_int_equal(status, 0);
    *done = true;
}

static void fx_wait_leader(struct fx *f)
{
    uint64_t start;

    uv_update_time(&f->loop);
    start = uv_now(&f->loop);
    while (!node_is_leader(f->node)) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
        if (uv_now(&f->loop) - start > WAIT_MS) {
            fail_msg("no leader");
        }
    }
}

/* Wait until everything proposed so far (the Init of a new leader, the log
 * replayed at start) is applied. */
static void fx_settle(struct fx *f)
{
    struct node_barrier_req req;
    bool done = false;

    req.data = &done;
    assert_int_equal(node_barrier(f->node, &req, on_settled), 0);
    run_until(f, &done);
}

static int fx_try_start(struct fx *f, struct cairn_error *err)
{
    int rv = node_create(&f->loop, &f->nopts, &f->node, err);
    if (rv != 0) {
        return rv;
    }
    f->node_closed = false;
    return node_start(f->node, err);
}

static void fx_start(struct fx *f)
{
    struct cairn_error err;
    if (fx_try_start(f, &err) != 0) {
        fail_msg("node start: %s", err.msg);
    }
    fx_wait_leader(f);
    fx_settle(f);
}

static void on_node_closed(struct node *n, void *data)
{
    (void)n;
    *(bool *)data = true;
}

/* Close the node and run the loop until every handle is gone. */
static void fx_stop(struct fx *f)
{
    if (f->node == NULL) {
        return;
    }
    node_close(f->node, on_node_closed, &f->node_closed);
    f->node = NULL;
    run_until(f, &f->node_closed);
    for (int i = 0; i < 100 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
}

/* Close node and store and open both again on the same directories. */
static void fx_restart(struct fx *f)
{
    fx_stop(f);
    store_close(f->store);
    open_store(f);
    fx_start(f);
}

static void fx_free(struct fx *f)
{
    fx_stop(f);
    store_close(f->store);
    /* Every handle of the node and of libraft is closed. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    buf_close(&f->cmd);
    buf_close(&f->out);
    free(f->store_dir);
    free(f->raft_dir);
    test_rmdir(f->base);
    free(f);
}

static int setup(void **state)
{
    struct fx *f = fx_new();
    fx_start(f);
    *state = f;
    return 0;
}

/* Loop, store and options only: the case starts the node itself. */
static int setup_idle(void **state)
{
    *state = fx_new();
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/******************************************************************************
 * Helper macros
 *****************************************************************************/

/* A proposal and what its callback saw. */
struct prop
{
    struct node_propose_req req;
    bool done;
    int status;
    int code;          /* outcome error code */
    char type[64];     /* outcome AWS error name */
    long long version; /* Version in the outcome body, or -1 */
    uint64_t index;    /* Raft index of the entry it rode in */
    int order;         /* completion order */
};

static int completions;

static void on_prop(struct node_propose_req *req,
                    int status,
                    const struct sm_outcome *o)
{
    struct prop *p = req->data;

    assert_false(p->done);
    p->done = true;
    p->status = status;
    p->version = -1;
    p->index = req->batch;
    p->order = completions++;
    if (status != 0) {
        assert_null(o);
        return;
    }
    assert_non_null(o);
    p->code = o->err.code;
    snprintf(p->type, sizeof(p->type), "%s", o->err.type);
    if (o->body != NULL) {
        struct mp_doc doc;
        struct cairn_error err;
        uint64_t v = 0;
        assert_int_equal(mp_doc_parse(&doc, o->body, o->body_len, &err), 0);
        if (mp_get_u64(&doc.root, "Version", &v, &err) == 1) {
            p->version = (long long)v;
        }
        mp_doc_close(&doc);
    }
}

static void put_cmd(struct fx *f,
                    const char *name,
                    const char *value,
                    bool overwrite)
{
    char *json = NULL;
    assert_true(asprintf(&json,
                         "{\"op\":\"PutParameter\",\"ts\":1700000000000,"
                         "\"user\":\"arn:aws:iam::000000000000:user/test\","
                         "\"req\":{\"Name\":\"%s\",\"Value\":\"%s\","
                         "\"Type\":\"String\",\"Overwrite\":%s}}",
                         name, value, overwrite ? "true" : "false") > 0);
    test_json_to_mp(json, &f->cmd);
    free(json);
}

/* Propose a PutParameter; returns node_propose's status. */
static int propose_put(struct fx *f,
                       struct prop *p,
                       const char *name,
                       const char *value,
                       bool overwrite)
{
    memset(p, 0, sizeof(*p));
    p->req.data = p;
    put_cmd(f, name, value, overwrite);
    return node_propose(f->node, &p->req, f->cmd.data, f->cmd.len, on_prop);
}

/* Propose, wait, expect success; returns the new Version. */
static long long put(struct fx *f, const char *name, const char *value)
{
    struct prop p;
    assert_int_equal(propose_put(f, &p, name, value, true), 0);
    run_until(f, &p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.code, CAIRN_OK);
    return p.version;
}

/* Run a read on the store; returns the status, response JSON in *json. */
static int query(struct fx *f,
                 const char *method,
                 const char *req_json,
                 char **json)
{
    struct buf req;
    struct cairn_error err;
    int rv;

    buf_init(&req);
    test_json_to_mp(req_json, &req);
    buf_reset(&f->out);
    rv = query_run(f->store, method, req.data, req.len, &f->out, &err);
    buf_close(&req);
    *json = rv == 0 ? test_mp_to_json(f->out.data, f->out.len) : NULL;
    return rv;
}

/* Version of parameter @p name in the store, or -1 if it does not exist. */
static long long version_of(struct fx *f, const char *name)
{
    char req[256];
    struct buf r;
    struct cairn_error err;
    struct mp_doc doc;
    const msgpack_object *param;
    uint64_t v = 0;
    int rv;

    snprintf(req, sizeof(req), "{\"Name\":\"%s\"}", name);
    buf_init(&r);
    test_json_to_mp(req, &r);
    buf_reset(&f->out);
    rv = query_run(f->store, "GetParameter", r.data, r.len, &f->out, &err);
    buf_close(&r);
    if (rv == CAIRN_NOT_FOUND) {
        return -1;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(mp_doc_parse(&doc, f->out.data, f->out.len, &err), 0);
    param = mp_map_get(&doc.root, "Parameter");
    assert_non_null(param);
    assert_int_equal(mp_get_u64(param, "Version", &v, &err), 1);
    mp_doc_close(&doc);
    return (long long)v;
}

static uint64_t store_applied(struct fx *f)
{
    struct cairn_error err;
    uint64_t index = 0;
    assert_int_equal(store_applied_index(f->store, &index, &err), 0);
    return index;
}

/* Whether @p dir holds a libraft snapshot file. */
static bool has_snapshot(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "snapshot-", 9) == 0 &&
            (len < 5 || strcmp(e->d_name + len - 5, ".meta") != 0)) {
            found = true;
        }
    }
    closedir(d);
    return found;
}

/* A barrier request and what its callback saw. */
struct bar
{
    struct node_barrier_req req;
    struct fx *f;
    bool done;
    int status;
    long long seen; /* version of /b/x in the store at the callback */
};

static void on_bar(struct node_barrier_req *req, int status)
{
    struct bar *b = req->data;
    assert_false(b->done);
    b->done = true;
    b->status = status;
    b->seen = status == 0 ? version_of(b->f, "/b/x") : -2;
}

static void bar_init(struct bar *b, struct fx *f)
{
    memset(b, 0, sizeof(*b));
    b->req.data = b;
    b->f = f;
}

/******************************************************************************
 * Status mapping and entry format
 *****************************************************************************/

/* libraft codes never leak: RAFT_NOMEM (1, gRPC CANCELLED) is
 * RESOURCE_EXHAUSTED, lost or absent leadership is UNAVAILABLE. */
static void status_from_raft(void **state)
{
    (void)state;
    assert_int_equal(node_status_from_raft(0), CAIRN_OK);
    assert_int_equal(node_status_from_raft(RAFT_NOMEM),
                     CAIRN_RESOURCE_EXHAUSTED);
    assert_int_equal(node_status_from_raft(RAFT_NOTLEADER), CAIRN_UNAVAILABLE);
    assert_int_equal(node_status_from_raft(RAFT_LEADERSHIPLOST),
                     CAIRN_UNAVAILABLE);
    assert_int_equal(node_status_from_raft(RAFT_SHUTDOWN), CAIRN_UNAVAILABLE);
    assert_int_equal(node_status_from_raft(RAFT_NOSPACE),
                     CAIRN_RESOURCE_EXHAUSTED);
    assert_int_equal(node_status_from_raft(RAFT_CORRUPT), CAIRN_DATA_LOSS);
    assert_int_equal(node_status_from_raft(RAFT_IOERR), CAIRN_INTERNAL);
    assert_int_equal(node_status_from_raft(12345), CAIRN_INTERNAL);
}

/* An entry is a header with the payload length, a msgpack array of bin
 * commands, and zero padding to a multiple of 8 bytes. */
static void entry_format(void **state)
{
    struct fsm_entry e;
    struct raft_buffer buf;
    const uint8_t *p;

    (void)state;
    fsm_entry_init(&e);
    assert_int_equal(fsm_entry_add(&e, "abcde", 5), 0);
    assert_int_equal(fsm_entry_add(&e, "xy", 2), 0);
    assert_int_equal(fsm_entry_finish(&e, &buf), 0);
    p = buf.base;
    /* 8 header + 3 array16 + (2 + 5) + (2 + 2) = 22 bytes, padded to 24. */
    assert_int_equal(buf.len, 24);
    assert_memory_equal(p, "CRN\1", 4);
    assert_int_equal(p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7], 14);
    assert_int_equal(p[8], 0xdc);
    assert_int_equal(p[9] << 8 | p[10], 2);
    assert_int_equal(p[11], 0xc4);
    assert_int_equal(p[12], 5);
    assert_memory_equal(p + 13, "abcde", 5);
    assert_int_equal(p[22], 0);
    assert_int_equal(p[23], 0);
    raft_free(buf.base);
    assert_null(e.base);
}

/* An entry takes at most 65535 commands, so a command's position fits the
 * low 16 bits of its composite store index. */
static void entry_limit(void **state)
{
    struct fsm_entry e;

    (void)state;
    fsm_entry_init(&e);
    for (unsigned i = 0; i < FSM_MAX_COMMANDS; i++) {
        assert_int_equal(fsm_entry_add(&e, "c", 1), 0);
    }
    assert_int_equal(fsm_entry_add(&e, "c", 1), CAIRN_INVALID_ARGUMENT);
    assert_int_equal(e.n, FSM_MAX_COMMANDS);
    fsm_entry_close(&e);
    assert_int_equal(fsm_store_index(7, 0), (7u << 16) | 1);
    assert_int_equal(fsm_store_index(7, 65534), (7u << 16) | 65535);
    assert_int_equal(fsm_raft_index(fsm_store_index(7, 65534)), 7);
}

/******************************************************************************
 * Leadership and proposals
 *****************************************************************************/

/* A fresh single node bootstraps itself and becomes leader on its own. */
static void becomes_leader(void **state)
{
    struct fx *f = *state;
    struct node_status st;
    const char *address;
    uint64_t id;

    assert_true(node_is_leader(f->node));
    node_get_status(f->node, &st);
    assert_int_equal(st.id, 1);
    assert_string_equal(st.role, "leader");
    assert_true(st.term >= 1);
    assert_int_equal(st.leader_id, 1);
    assert_true(st.commit_index >= st.applied_index);
    assert_true(st.applied_index >= 2);
    node_leader(f->node, &id, &address);
    assert_int_equal(id, 1);
    assert_string_equal(address, f->address);
}

/* A proposed PutParameter is applied and its outcome reaches the caller. */
static void propose_put_outcome(void **state)
{
    struct fx *f = *state;
    struct prop p;

    assert_int_equal(propose_put(f, &p, "/app/db", "v1", false), 0);
    assert_false(p.done); /* never called back before returning */
    run_until(f, &p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.code, CAIRN_OK);
    assert_int_equal(p.version, 1);
    assert_int_equal(version_of(f, "/app/db"), 1);
}

/* Command i of the entry at Raft index R is applied at store index
 * (R << 16) | (i + 1): the entry's index is raft_last_applied() + 1 at
 * apply time, and barriers consume indexes too. */
static void index_mapping(void **state)
{
    struct fx *f = *state;
    struct node_status st;
    struct prop a;
    struct prop b;

    assert_int_equal(propose_put(f, &a, "/i/a", "1", true), 0);
    run_until(f, &a.done);
    assert_int_equal(a.status, 0);
    assert_true(a.index > 1);
    assert_int_equal(store_applied(f), (a.index << 16) | 1);

    fx_settle(f); /* one barrier entry */
    assert_int_equal(propose_put(f, &b, "/i/b", "1", true), 0);
    run_until(f, &b.done);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.index, a.index + 2);
    assert_int_equal(store_applied(f), (b.index << 16) | 1);
    node_get_status(f->node, &st);
    assert_true(st.applied_index >= b.index);
}

/* 200 concurrent proposals are packed into fewer entries than commands and
 * each gets its own outcome, in the order proposed. */
static void group_commit(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    struct prop *p = calloc(N, sizeof(*p));
    uint64_t last = 0;
    unsigned entries = 0;
    int first;

    assert_non_null(p);
    for (int i = 0; i < N; i++) {
        char value[16];
        snprintf(value, sizeof(value), "v%d", i);
        assert_int_equal(propose_put(f, &p[i], "/gc/x", value, true), 0);
    }
    run_until(f, &p[N - 1].done);
    first = p[0].order;
    for (int i = 0; i < N; i++) {
        assert_true(p[i].done);
        assert_int_equal(p[i].status, 0);
        assert_int_equal(p[i].code, CAIRN_OK);
        assert_int_equal(p[i].version, i + 1);
        assert_int_equal(p[i].order, first + i);
        assert_true(p[i].index >= last);
        if (p[i].index != last) {
            entries++;
            last = p[i].index;
        }
    }
    assert_true(entries < N);
    assert_int_equal(version_of(f, "/gc/x"), N);
    free(p);
}

/* At most max_inflight entries are in flight; commands proposed meanwhile
 * wait (their entry has no index yet) and are then packed into one entry. */
static void inflight_limit(void **state)
{
    struct fx *f = *state;
    enum { N = 10 };
    struct prop p[N];
    bool waited;

    assert_int_equal(f->nopts.max_inflight, 2);
    for (int i = 0; i < N; i++) {
        assert_int_equal(propose_put(f, &p[i], "/il/x", "v", true), 0);
        uv_run(&f->loop, UV_RUN_NOWAIT); /* flushes what may go */
    }
    /* Both first entries are proposed; unless one of them committed within
     * these few loop turns (a disk write takes far longer), every later
     * command is still waiting. */
    assert_int_not_equal(p[0].req.batch, 0);
    assert_int_not_equal(p[1].req.batch, 0);
    waited = !p[0].done && !p[1].done;
    if (waited) {
        for (int i = 2; i < N; i++) {
            assert_int_equal(p[i].req.batch, 0);
        }
    }
    run_until(f, &p[N - 1].done);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].status, 0);
        assert_int_equal(p[i].version, i + 1);
    }
    assert_true(p[1].index > p[0].index);
    if (waited) {
        for (int i = 3; i < N; i++) {
            assert_int_equal(p[i].index, p[2].index);
        }
        assert_true(p[2].index > p[1].index);
    }
}

/* Each command keeps its own outcome when libraft applies several entries
 * before it fires their callbacks (0.22 fires them later, from its uv
 * handles): here every command is its own entry, several in flight. */
static void outcomes_per_entry(void **state)
{
    struct fx *f = *state;
    enum { N = 12 };
    struct prop p[N];
    unsigned entries = 0;

    f->nopts.max_batch_bytes = 160; /* one PutParameter per entry */
    f->nopts.max_inflight = 4;
    fx_start(f);
    for (int i = 0; i < N; i++) {
        assert_int_equal(propose_put(f, &p[i], "/pe/x", "v", true), 0);
    }
    run_until(f, &p[N - 1].done);
    for (int i = 0; i < N; i++) {
        assert_int_equal(p[i].status, 0);
        assert_int_equal(p[i].code, CAIRN_OK);
        assert_int_equal(p[i].version, i + 1);
        if (i == 0 || p[i].index != p[i - 1].index) {
            entries++;
        }
    }
    assert_int_equal(entries, N);
}

/* A business error (ParameterAlreadyExists) is an outcome, not a fault: the
 * node goes on applying. */
static void business_error(void **state)
{
    struct fx *f = *state;
    struct prop p;

    assert_int_equal(put(f, "/dup", "1"), 1);
    assert_int_equal(propose_put(f, &p, "/dup", "2", false), 0);
    run_until(f, &p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.code, CAIRN_ALREADY_EXISTS);
    assert_string_equal(p.type, "ParameterAlreadyExists");
    assert_int_equal(p.version, -1);
    assert_int_equal(put(f, "/dup", "3"), 2);
    assert_int_equal(put(f, "/other", "1"), 1);
}

/* A command larger than max_batch_bytes is refused at once. */
static void too_large(void **state)
{
    struct fx *f = *state;
    struct prop p;
    size_t len = f->nopts.max_batch_bytes + 1;
    char *big = calloc(1, len);

    assert_non_null(big);
    memset(&p, 0, sizeof(p));
    p.req.data = &p;
    assert_int_equal(node_propose(f->node, &p.req, big, len, on_prop),
                     CAIRN_INVALID_ARGUMENT);
    free(big);
    assert_false(p.done);
}

/* A malformed command still advances the log: its error is its outcome. */
static void malformed_command(void **state)
{
    struct fx *f = *state;
    struct prop p;

    memset(&p, 0, sizeof(p));
    p.req.data = &p;
    assert_int_equal(node_propose(f->node, &p.req, "\xc1", 1, on_prop), 0);
    run_until(f, &p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.code, CAIRN_INVALID_ARGUMENT);
    assert_int_equal(put(f, "/after", "1"), 1);
}

/******************************************************************************
 * Barriers
 *****************************************************************************/

/* A barrier completes after the writes proposed before it: a read in its
 * callback sees them. */
static void barrier_sees_write(void **state)
{
    struct fx *f = *state;
    struct prop p;
    struct bar b;

    assert_int_equal(propose_put(f, &p, "/b/x", "1", true), 0);
    bar_init(&b, f);
    assert_int_equal(node_barrier(f->node, &b.req, on_bar), 0);
    run_until(f, &b.done);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.seen, 1);
    assert_true(p.done);
}

/* Barriers that arrive together share one log entry. */
static void barriers_share_entry(void **state)
{
    struct fx *f = *state;
    struct node_status before;
    struct node_status after;
    struct bar b[3];

    node_get_status(f->node, &before);
    for (int i = 0; i < 3; i++) {
        bar_init(&b[i], f);
        assert_int_equal(node_barrier(f->node, &b[i].req, on_bar), 0);
    }
    run_until(f, &b[2].done);
    for (int i = 0; i < 3; i++) {
        assert_true(b[i].done);
        assert_int_equal(b[i].status, 0);
    }
    node_get_status(f->node, &after);
    assert_int_equal(after.commit_index, before.commit_index + 1);
}

/******************************************************************************
 * Lifecycle
 *****************************************************************************/

/* A node that is not started is no leader: proposals and barriers are
 * refused with UNAVAILABLE, and closing it frees everything. */
static void not_started(void **state)
{
    struct fx *f = *state;
    struct cairn_error err;
    struct node_status st;
    struct prop p;
    struct bar b;

    assert_int_equal(node_create(&f->loop, &f->nopts, &f->node, &err), 0);
    assert_false(node_is_leader(f->node));
    assert_int_equal(propose_put(f, &p, "/x", "1", true), CAIRN_UNAVAILABLE);
    bar_init(&b, f);
    assert_int_equal(node_barrier(f->node, &b.req, on_bar), CAIRN_UNAVAILABLE);
    node_get_status(f->node, &st);
    assert_string_equal(st.role, "follower");
    assert_false(p.done);
    assert_false(b.done);
}

/* Closing fails the proposals and barriers still waiting with
 * UNAVAILABLE. */
static void close_fails_pending(void **state)
{
    struct fx *f = *state;
    struct prop p[5];
    struct bar b;

    for (int i = 0; i < 5; i++) {
        assert_int_equal(propose_put(f, &p[i], "/c/x", "1", true), 0);
    }
    bar_init(&b, f);
    assert_int_equal(node_barrier(f->node, &b.req, on_bar), 0);
    node_close(f->node, on_node_closed, &f->node_closed);
    f->node = NULL;
    for (int i = 0; i < 5; i++) {
        assert_true(p[i].done);
        assert_int_equal(p[i].status, CAIRN_UNAVAILABLE);
    }
    assert_true(b.done);
    assert_int_equal(b.status, CAIRN_UNAVAILABLE);
    run_until(f, &f->node_closed);
}

/* Closing with entries in flight completes each of them exactly once. */
static void close_in_flight(void **state)
{
    struct fx *f = *state;
    struct prop p[20];

    for (int i = 0; i < 20; i++) {
        assert_int_equal(propose_put(f, &p[i], "/c/y", "1", true), 0);
        /* One loop turn each, so that several entries are in flight. */
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    node_close(f->node, on_node_closed, &f->node_closed);
    f->node = NULL;
    run_until(f, &f->node_closed);
    for (int i = 0; i < 20; i++) {
        assert_true(p[i].done);
        assert_true(p[i].status == 0 || p[i].status == CAIRN_UNAVAILABLE);
    }
}

/* After a restart (node and store closed and reopened) the data is there,
 * no command was applied twice, and new proposals work. */
static void restart(void **state)
{
    struct fx *f = *state;
    uint64_t applied;

    for (int i = 0; i < 5; i++) {
        assert_int_equal(put(f, "/r/x", "v"), i + 1);
    }
    assert_int_equal(put(f, "/r/y", "v"), 1);
    applied = store_applied(f);

    fx_restart(f); /* settles: the whole log is replayed */
    assert_int_equal(version_of(f, "/r/x"), 5);
    assert_int_equal(version_of(f, "/r/y"), 1);
    /* Replay skipped everything; only the new leader's Init is new. */
    assert_true(store_applied(f) > applied);
    assert_int_equal(put(f, "/r/x", "w"), 6);

    fx_restart(f);
    assert_int_equal(version_of(f, "/r/x"), 6);
    assert_int_equal(put(f, "/r/y", "w"), 2);
}

/* Stop the node and replace its store by an empty one, as if it were
 * lost. */
static void fx_lose_store(struct fx *f)
{
    fx_stop(f);
    store_close(f->store);
    test_rmdir(f->store_dir);
    assert_true(asprintf(&f->store_dir, "%s/store", f->base) > 0);
    assert_int_equal(mkdir(f->store_dir, 0700), 0);
    open_store(f);
}

/* With a tiny snapshot threshold and full snapshots the node takes
 * snapshots, restarts from them, and rebuilds a lost store from the newest
 * one plus the log. */
static void snapshots(void **state)
{
    struct fx *f = *state;
    char name[32];

    f->nopts.snapshot_threshold = 16;
    f->nopts.snapshot_trailing = 8;
    f->nopts.full_snapshots = true;
    fx_start(f);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(put(f, name, "v"), 1);
    }
    assert_true(has_snapshot(f->raft_dir));

    fx_restart(f);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(version_of(f, name), 1);
    }
    assert_int_equal(put(f, "/s/p0", "w"), 2);

    /* Lose the store: the snapshot restores it inside node_start, before
     * the loop runs, and the log brings it up to date. */
    fx_lose_store(f);
    assert_int_equal(store_applied(f), 0);
    {
        struct cairn_error err;
        if (fx_try_start(f, &err) != 0) {
            fail_msg("node start: %s", err.msg);
        }
    }
    assert_true(store_applied(f) > 0);
    fx_wait_leader(f);
    fx_settle(f);
    for (int i = 1; i < 100; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(version_of(f, name), 1);
    }
    assert_int_equal(version_of(f, "/s/p0"), 2);
    assert_int_equal(put(f, "/s/p0", "x"), 3);
}

/* The size of the newest libraft snapshot file in @p dir, or -1. */
static long long snapshot_file_size(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long long size = -1;
    char best[256] = "";

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "snapshot-", 9) == 0 &&
            (len < 5 || strcmp(e->d_name + len - 5, ".meta") != 0) &&
            strcmp(e->d_name, best) > 0 && len < sizeof(best)) {
            snprintf(best, sizeof(best), "%s", e->d_name);
        }
    }
    closedir(d);
    if (best[0] != '\0') {
        char *path;
        struct stat st;
        assert_true(asprintf(&path, "%s/%s", dir, best) > 0);
        if (stat(path, &st) == 0) {
            size = (long long)st.st_size;
        }
        free(path);
    }
    return size;
}

/* By default a snapshot is a reference to the synced store, not a copy: a
 * few bytes on disk; a restart uses it; a node whose store was lost
 * refuses to start, saying why, instead of running with an empty store. */
static void reference_snapshots(void **state)
{
    struct fx *f = *state;
    char name[32];
    char value[1025];
    struct cairn_error err;
    long long size;

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    f->nopts.snapshot_threshold = 16;
    f->nopts.snapshot_trailing = 8;
    fx_start(f);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(put(f, name, value), 1);
    }
    fx_settle(f);
    size = snapshot_file_size(f->raft_dir);
    if (size < 0 || size > 1024) {
        fail_msg("snapshot file of %lld bytes for 100 KB of values", size);
    }

    fx_restart(f);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(version_of(f, name), 1);
    }

    fx_lose_store(f);
    cairn_error_clear(&err);
    assert_int_not_equal(fx_try_start(f, &err), 0);
    f->node_closed = true;
    if (strstr(err.msg, "join it to the cluster again") == NULL) {
        fail_msg("node start without its store: %s", err.msg);
    }
}

/* Snapshots by size: with a count threshold never reached, the node takes
 * one once the entries applied since the last hold snapshot_log_bytes, not
 * before. */
static void snapshots_by_size(void **state)
{
    struct fx *f = *state;
    char name[32];
    char value[2049];

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    f->nopts.snapshot_threshold = 1u << 20;
    f->nopts.snapshot_trailing = 8;
    f->nopts.snapshot_log_bytes = 32 << 10;
    f->nopts.snapshot_trailing_bytes = 0;
    fx_start(f);
    for (int i = 0; i < 8; i++) { /* about 16 KB of entries */
        snprintf(name, sizeof(name), "/z/p%d", i);
        assert_int_equal(put(f, name, value), 1);
    }
    assert_false(has_snapshot(f->raft_dir));
    for (int i = 8; i < 40; i++) {
        snprintf(name, sizeof(name), "/z/p%d", i);
        assert_int_equal(put(f, name, value), 1);
    }
    fx_settle(f);
    assert_true(has_snapshot(f->raft_dir));
    fx_restart(f);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "/z/p%d", i);
        assert_int_equal(version_of(f, name), 1);
    }
}

/* A store that is ahead of the Raft log (its Raft directory was lost) is
 * refused rather than silently skipping every new command. */
static void store_ahead_of_log(void **state)
{
    struct fx *f = *state;
    struct cairn_error err;

    fx_start(f);
    assert_int_equal(put(f, "/a", "1"), 1);
    assert_int_equal(put(f, "/a", "2"), 2);
    fx_stop(f);
    test_rmdir(strdup(f->raft_dir));
    assert_int_equal(fx_try_start(f, &err), CAIRN_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "does not belong"));
}

/* A node whose address is taken fails to start, and closes cleanly. */
static void address_in_use(void **state)
{
    struct fx *f = *state;
    struct cairn_error err;
    struct sockaddr_in sa;
    int port = atoi(strchr(f->address, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(fx_try_start(f, &err), CAIRN_INTERNAL);
    assert_non_null(strstr(err.msg, "Address already in use"));
    assert_non_null(f->node);
    fx_stop(f);
    close(fd);
}

/* A new leader proposes Init: the token key is replicated, so a NextToken
 * still works after the store is closed and reopened. */
static void init_token_key(void **state)
{
    struct fx *f = *state;
    const char *path = "{\"Path\":\"/t\",\"MaxResults\":1}";
    char *json = NULL;
    char *token;
    char *next;
    char *req = NULL;

    assert_int_equal(put(f, "/t/a", "1"), 1);
    assert_int_equal(put(f, "/t/b", "1"), 1);
    assert_int_equal(put(f, "/t/c", "1"), 1);
    assert_int_equal(query(f, "GetParametersByPath", path, &json), 0);
    token = strstr(json, "\"NextToken\":\"");
    assert_non_null(token);
    token += strlen("\"NextToken\":\"");
    next = strchr(token, '"');
    assert_non_null(next);
    *next = '\0';
    assert_true(asprintf(&req,
                         "{\"Path\":\"/t\",\"MaxResults\":1,"
                         "\"NextToken\":\"%s\"}",
                         token) > 0);
    free(json);

    fx_restart(f);
    assert_int_equal(query(f, "GetParametersByPath", req, &json), 0);
    assert_non_null(strstr(json, "/t/b"));
    free(json);
    free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_from_raft),
        cmocka_unit_test(entry_format),
        cmocka_unit_test(entry_limit),
        cmocka_unit_test_setup_teardown(becomes_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(propose_put_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(index_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(inflight_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(outcomes_per_entry, setup_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(business_error, setup, teardown),
        cmocka_unit_test_setup_teardown(too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_command, setup, teardown),
        cmocka_unit_test_setup_teardown(barrier_sees_write, setup, teardown),
        cmocka_unit_test_setup_teardown(barriers_share_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(not_started, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(close_fails_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(restart, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshots, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(reference_snapshots, setup_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(snapshots_by_size, setup_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(store_ahead_of_log, setup_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(address_in_use, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(init_token_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
