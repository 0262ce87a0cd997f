/* Tests of cluster membership in the node (raft/node.c): several real
 * libraft nodes in one process, all on one uv loop, talking TCP on
 * 127.0.0.1, each with its own store and Raft directory. */
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

#include "mp.h"
#include "node.h"
#include "query.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

#define WAIT_MS 20000
#define MAX_MEMBERS 4
#define ELECTION_MS 300
#define HEARTBEAT_MS 30

struct fx;

/* One node with its store and directories. Member i has Raft id i + 1. */
struct member
{
    struct fx *f;
    unsigned i;
    char *base;      /* temporary directory */
    char *store_dir; /* base/store */
    char *raft_dir;  /* base/raft (the node creates it) */
    char address[32];
    struct store *store;
    struct node_options nopts;
    struct node *node; /* NULL until started and after node_close */
    bool closed;       /* the close callback ran */
    struct buf out;    /* query responses */
};

struct fx
{
    uv_loop_t loop;
    struct member m[MAX_MEMBERS];
    unsigned n;        /* members set up */
    char cluster[256]; /* initial cluster of the first members */
    struct buf cmd;
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

/* A free address that no member of @p f uses yet. */
static void pick_address(struct fx *f, char *out, size_t size)
{
    for (;;) {
        bool taken = false;
        snprintf(out, size, "127.0.0.1:%d", pick_port());
        for (unsigned i = 0; i < f->n; i++) {
            taken = taken || strcmp(f->m[i].address, out) == 0;
        }
        if (!taken) {
            return;
        }
    }
}

static void member_init(struct fx *f, unsigned i, bool join)
{
    struct member *m = &f->m[i];
    struct store_options sopts;
    struct cairn_error err;

    memset(m, 0, sizeof(*m));
    m->f = f;
    m->i = i;
    m->base = test_mkdtemp();
    assert_true(asprintf(&m->store_dir, "%s/store", m->base) > 0);
    assert_true(asprintf(&m->raft_dir, "%s/raft", m->base) > 0);
    assert_int_equal(mkdir(m->store_dir, 0700), 0);
    pick_address(f, m->address, sizeof(m->address));
    store_options_default(&sopts);
    sopts.no_sync = true;
    sopts.map_size = (size_t)1 << 30;
    if (store_open(m->store_dir, &sopts, &m->store, &err) != 0) {
        fail_msg("store_open: %s", err.msg);
    }
    node_options_default(&m->nopts);
    m->nopts.id = i + 1;
    m->nopts.raft_address = m->address;
    m->nopts.dir = m->raft_dir;
    m->nopts.store = m->store;
    m->nopts.election_timeout_ms = ELECTION_MS;
    m->nopts.heartbeat_timeout_ms = HEARTBEAT_MS;
    m->nopts.join = join;
    m->nopts.initial_cluster = join ? NULL : f->cluster;
    m->closed = true; /* no node to wait for */
    buf_init(&m->out);
    f->n = i + 1;
}

/* @p total members, the first @p initial of them listed in the initial
 * cluster, the others fresh and joining; nothing started. */
static struct fx *fx_new(unsigned total, unsigned initial)
{
    struct fx *f = calloc(1, sizeof(*f));
    size_t len = 0;

    assert_non_null(f);
    assert_true(total <= MAX_MEMBERS && initial <= total);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    buf_init(&f->cmd);
    for (unsigned i = 0; i < total; i++) {
        member_init(f, i, i >= initial);
    }
    for (unsigned i = 0; i < initial; i++) {
        len += (size_t)snprintf(f->cluster + len, sizeof(f->cluster) - len,
                                "%s%u=%s", i > 0 ? "," : "", i + 1,
                                f->m[i].address);
        assert_true(len < sizeof(f->cluster));
    }
    return f;
}

static bool elapsed(struct fx *f, uint64_t start, uint64_t ms)
{
    uv_update_time(&f->loop);
    return uv_now(&f->loop) - start > ms;
}

static uint64_t now_ms(struct fx *f)
{
    uv_update_time(&f->loop);
    return uv_now(&f->loop);
}

/* Run the loop until @p done is true, failing after WAIT_MS. */
static void run_until(struct fx *f, const bool *done)
{
    uint64_t start = now_ms(f);

    while (!*done) {
        uv_run(&f->loop, UV_RUN_ONCE);
        if (elapsed(f, start, WAIT_MS)) {
            fail_msg("timed out waiting on the loop");
        }
    }
}

/* Run the loop until @p cond holds, failing after WAIT_MS with @p what. */
static void run_until_cond(struct fx *f,
                           bool (*cond)(struct fx *f, void *arg),
                           void *arg,
                           const char *what)
{
    uint64_t start = now_ms(f);

    while (!cond(f, arg)) {
        uv_run(&f->loop, UV_RUN_ONCE);
        if (elapsed(f, start, WAIT_MS)) {
            fail_msg("timed out waiting for %s", what);
        }
    }
}

/* Running nodes wake the loop at least every heartbeat. */
static void run_for(struct fx *f, uint64_t ms)
{
    uint64_t start = now_ms(f);

    while (!elapsed(f, start, ms)) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static int member_try_start(struct member *m, struct cairn_error *err)
{
    int rv = node_create(&m->f->loop, &m->nopts, &m->node, err);
    if (rv != 0) {
        return rv;
    }
    m->closed = false;
    return node_start(m->node, err);
}

static void member_start(struct member *m)
{
    struct cairn_error err;
    if (member_try_start(m, &err) != 0) {
        fail_msg("node %u start: %s", m->i + 1, err.msg);
    }
}

/* The one leader among the running nodes, if there is exactly one and
 * every running node of the first @p *count members names it. */
static bool has_one_leader(struct fx *f, void *arg)
{
    unsigned *count = arg;
    unsigned leaders = 0;
    unsigned leader = 0;

    for (unsigned i = 0; i < f->n; i++) {
        if (f->m[i].node != NULL && node_is_leader(f->m[i].node)) {
            leaders++;
            leader = i;
        }
    }
    if (leaders != 1) {
        return false;
    }
    for (unsigned i = 0; i < *count; i++) {
        const char *address;
        uint64_t id;
        if (f->m[i].node == NULL) {
            continue;
        }
        node_leader(f->m[i].node, &id, &address);
        if (id != leader + 1 || strcmp(address, f->m[leader].address) != 0) {
            return false;
        }
    }
    return true;
}

/* Index of the leader, once exactly one node leads and the running nodes
 * among the first @p count members agree on it. */
static unsigned fx_wait_leader(struct fx *f, unsigned count)
{
    run_until_cond(f, has_one_leader, &count, "one leader");
    for (unsigned i = 0; i < f->n; i++) {
        if (f->m[i].node != NULL && node_is_leader(f->m[i].node)) {
            return i;
        }
    }
    fail_msg("no leader");
    return 0;
}

static void on_settled(struct node_barrier_req *req, int status)
{
    bool *done = req->data;
    assert_int_equal(status, 0);
    *done = true;
}

/* Wait until everything the leader proposed so far (its Init) is applied
 * on it. */
static void fx_settle(struct fx *f, unsigned leader)
{
    struct node_barrier_req req;
    bool done = false;

    req.data = &done;
    assert_int_equal(node_barrier(f->m[leader].node, &req, on_settled), 0);
    run_until(f, &done);
}

/* Start the first @p count members; returns the leader, settled. */
static unsigned fx_start(struct fx *f, unsigned count)
{
    unsigned leader;

    for (unsigned i = 0; i < count; i++) {
        member_start(&f->m[i]);
    }
    leader = fx_wait_leader(f, count);
    fx_settle(f, leader);
    return leader;
}

static void on_node_closed(struct node *n, void *data)
{
    (void)n;
    *(bool *)data = true;
}

static void member_stop(struct member *m)
{
    if (m->node == NULL) {
        return;
    }
    node_close(m->node, on_node_closed, &m->closed);
    m->node = NULL;
    run_until(m->f, &m->closed);
}

static void fx_free(struct fx *f)
{
    /* Close every node first, then wait: none outlives the loop. */
    for (unsigned i = 0; i < f->n; i++) {
        if (f->m[i].node != NULL) {
            node_close(f->m[i].node, on_node_closed, &f->m[i].closed);
            f->m[i].node = NULL;
        }
    }
    for (unsigned i = 0; i < f->n; i++) {
        run_until(f, &f->m[i].closed);
    }
    for (int i = 0; i < 100 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
    /* Every handle of the nodes and of libraft is closed. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (unsigned i = 0; i < f->n; i++) {
        struct member *m = &f->m[i];
        store_close(m->store);
        buf_close(&m->out);
        free(m->store_dir);
        free(m->raft_dir);
        test_rmdir(m->base);
    }
    buf_close(&f->cmd);
    free(f);
}

/* Three members, none started. */
static int setup_idle(void **state)
{
    *state = fx_new(3, 3);
    return 0;
}

/* A running three-voter cluster. */
static int setup(void **state)
{
    struct fx *f = fx_new(3, 3);
    fx_start(f, 3);
    *state = f;
    return 0;
}

/* A running three-voter cluster and a fourth member, fresh, to join. */
static int setup_join(void **state)
{
    struct fx *f = fx_new(4, 3);
    fx_start(f, 3);
    *state = f;
    return 0;
}

/* Four members, none started; the fourth one joins. */
static int setup_join_idle(void **state)
{
    *state = fx_new(4, 3);
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

static unsigned leader_of(struct fx *f)
{
    unsigned count = 0;
    unsigned leader = 0;

    for (unsigned i = 0; i < f->n; i++) {
        if (f->m[i].node != NULL && node_is_leader(f->m[i].node)) {
            count++;
            leader = i;
        }
    }
    assert_int_equal(count, 1);
    return leader;
}

/* A running member other than @p leader (the first one). */
static unsigned follower_of(struct fx *f, unsigned leader)
{
    for (unsigned i = 0; i < f->n; i++) {
        if (i != leader && f->m[i].node != NULL) {
            return i;
        }
    }
    fail_msg("no follower");
    return 0;
}

/* A proposal and what its callback saw. */
struct prop
{
    struct node_propose_req req;
    bool done;
    int status;
    int code;          /* outcome error code */
    long long version; /* Version in the outcome body, or -1 */
};

static void on_prop(struct node_propose_req *req,
                    int status,
                    const struct sm_outcome *o)
{
    struct prop *p = req->data;

    assert_false(p->done);
    p->done = true;
    p->status = status;
    p->version = -1;
    if (status != 0) {
        assert_null(o);
        return;
    }
    assert_non_null(o);
    p->code = o->err.code;
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

/* Propose a PutParameter (Overwrite) on member @p i; returns
 * node_propose's status. */
static int propose_put(struct fx *f,
                       unsigned i,
                       struct prop *p,
                       const char *name,
                       const char *value)
{
    char *json = NULL;

    assert_true(asprintf(&json,
                         "{\"op\":\"PutParameter\",\"ts\":1700000000000,"
                         "\"user\":\"arn:aws:iam::000000000000:user/test\","
                         "\"req\":{\"Name\":\"%s\",\"Value\":\"%s\","
                         "\"Type\":\"String\",\"Overwrite\":true}}",
                         name, value) > 0);
    test_json_to_mp(json, &f->cmd);
    free(json);
    memset(p, 0, sizeof(*p));
    p->req.data = p;
    return node_propose(f->m[i].node, &p->req, f->cmd.data, f->cmd.len,
                        on_prop);
}

/* Propose on member @p i, wait, expect success; returns the new Version. */
static long long put(struct fx *f, unsigned i, const char *name, const char *v)
{
    struct prop p;
    assert_int_equal(propose_put(f, i, &p, name, v), 0);
    run_until(f, &p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.code, CAIRN_OK);
    return p.version;
}

/* Version of parameter @p name in @p m's store (GetParameter through
 * query_run), or -1 if it does not exist. */
static long long version_of(struct member *m, const char *name)
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
    buf_reset(&m->out);
    rv = query_run(m->store, "GetParameter", r.data, r.len, &m->out, &err);
    buf_close(&r);
    if (rv == CAIRN_NOT_FOUND) {
        return -1;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(mp_doc_parse(&doc, m->out.data, m->out.len, &err), 0);
    param = mp_map_get(&doc.root, "Parameter");
    assert_non_null(param);
    assert_int_equal(mp_get_u64(param, "Version", &v, &err), 1);
    mp_doc_close(&doc);
    return (long long)v;
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

static bool member_has_snapshot(struct fx *f, void *arg)
{
    (void)f;
    return has_snapshot(((struct member *)arg)->raft_dir);
}

/* A wait for an applied index, and what its callback saw. */
struct wait
{
    struct node_wait_req req;
    struct member *m;
    const char *name; /* parameter to read in the callback, or NULL */
    bool done;
    bool in_call; /* the callback ran inside node_wait_applied */
    int status;
    uint64_t applied;  /* node_applied_index at the callback */
    long long version; /* version of name in m's store at the callback */
};

static bool waiting_in_call;

static void on_wait(struct node_wait_req *req, int status)
{
    struct wait *w = req->data;

    assert_false(w->done);
    w->done = true;
    w->in_call = waiting_in_call;
    w->status = status;
    w->version = -2;
    if (status == 0) {
        w->applied = node_applied_index(w->m->node);
        if (w->name != NULL) {
            w->version = version_of(w->m, w->name);
        }
    }
}

static void wait_applied(struct member *m,
                         struct wait *w,
                         uint64_t index,
                         const char *name)
{
    memset(w, 0, sizeof(*w));
    w->req.data = w;
    w->m = m;
    w->name = name;
    waiting_in_call = true;
    assert_int_equal(node_wait_applied(m->node, &w->req, index, on_wait), 0);
    waiting_in_call = false;
}

/* A membership change or transfer and what its callback saw. */
struct change
{
    struct node_change_req req;
    bool done;
    int status;
    uint64_t leader; /* req.leader at the callback */
    char message[256];
};

static void on_change(struct node_change_req *req,
                      int status,
                      const char *message)
{
    struct change *c = req->data;

    assert_false(c->done);
    assert_non_null(message);
    c->done = true;
    c->status = status;
    c->leader = req->leader;
    snprintf(c->message, sizeof(c->message), "%s", message);
}

static void change_init(struct change *c)
{
    memset(c, 0, sizeof(*c));
    c->req.data = c;
}

static int add_member(struct fx *f,
                      unsigned on,
                      struct change *c,
                      uint64_t id,
                      const char *address)
{
    change_init(c);
    return node_add_member(f->m[on].node, &c->req, id, address, on_change);
}

/* Wait for a change's callback and expect success. */
static void change_wait(struct fx *f, struct change *c)
{
    run_until(f, &c->done);
    if (c->status != 0) {
        fail_msg("change failed: status %d: %s", c->status, c->message);
    }
}

/******************************************************************************
 * Assertions
 *****************************************************************************/

/* node_members on @p m lists exactly the members in @p mask (bit i for
 * member i), all voters, at their addresses. */
static bool members_are(struct fx *f, struct member *m, unsigned mask)
{
    struct node_member list[8];
    unsigned want = 0;
    unsigned n;

    for (unsigned i = 0; i < f->n; i++) {
        want += (mask >> i) & 1u;
    }
    n = node_members(m->node, list, 8);
    if (n != want) {
        return false;
    }
    for (unsigned k = 0; k < n; k++) {
        uint64_t id = list[k].id;
        if (id == 0 || id > f->n || !((mask >> (id - 1)) & 1u) ||
            strcmp(list[k].raft_address, f->m[id - 1].address) != 0 ||
            strcmp(list[k].role, "voter") != 0) {
            return false;
        }
    }
    return true;
}

#define assert_members(F, M, MASK)                                \
    do {                                                          \
        if (!members_are((F), (M), (MASK))) {                     \
            fail_msg("node %u: members are not 0x%x", (M)->i + 1, \
                     (unsigned)(MASK));                           \
        }                                                         \
    } while (0)

struct members_want
{
    struct member *m;
    unsigned mask;
};

static bool members_reached(struct fx *f, void *arg)
{
    struct members_want *w = arg;
    return members_are(f, w->m, w->mask);
}

/* Start member @p i with initial cluster @p cluster: node_start fails with
 * INVALID_ARGUMENT and a message containing @p needle; the node closes. */
static void assert_bad_cluster(struct fx *f,
                               unsigned i,
                               const char *cluster,
                               const char *needle)
{
    struct member *m = &f->m[i];
    struct cairn_error err;
    int rv;

    m->nopts.initial_cluster = cluster;
    memset(&err, 0, sizeof(err));
    rv = member_try_start(m, &err);
    if (rv != CAIRN_INVALID_ARGUMENT) {
        fail_msg(
            "initial cluster \"%s\": status %d (%s), not "
            "INVALID_ARGUMENT",
            cluster, rv, err.msg);
    }
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("initial cluster \"%s\": message \"%s\" lacks \"%s\"", cluster,
                 err.msg, needle);
    }
    assert_non_null(m->node);
    member_stop(m);
}

/******************************************************************************
 * Initial cluster
 *****************************************************************************/

/* An initial cluster that does not list this node at its own address, lists
 * a node twice or is not id=host:port pairs makes node_start fail with
 * INVALID_ARGUMENT and a message naming the problem; a valid one starts. */
static void bad_initial_cluster(void **state)
{
    struct fx *f = *state;
    const char *a1 = f->m[0].address;
    const char *a2 = f->m[1].address;
    const char *a3 = f->m[2].address;
    char s[256];

    snprintf(s, sizeof(s), "2=%s,3=%s", a2, a3);
    assert_bad_cluster(f, 0, s, "this node (1) is not listed");
    snprintf(s, sizeof(s), "1=%s,2=%s", a2, a3);
    assert_bad_cluster(f, 0, s, "node 1 is listed at");
    assert_bad_cluster(f, 0, s, a2);
    snprintf(s, sizeof(s), "1=%s,2=%s,2=%s", a1, a2, a3);
    assert_bad_cluster(f, 0, s, "listed twice");
    snprintf(s, sizeof(s), "1=%s,1=%s", a1, a1);
    assert_bad_cluster(f, 0, s, "listed twice");
    snprintf(s, sizeof(s), "1=%s,2=%s,3=%s", a1, a2, a2);
    assert_bad_cluster(f, 0, s, "listed twice");
    assert_bad_cluster(f, 0, "x", "\"x\" is not id=host:port");
    assert_bad_cluster(f, 0, "1=", "\"1=\" is not id=host:port");
    assert_bad_cluster(f, 0, "=a:1", "\"=a:1\" is not id=host:port");
    assert_bad_cluster(f, 0, "0=a:1", "\"0=a:1\" is not id=host:port");
    assert_bad_cluster(f, 0, "1=nohostport", "nohostport");
    assert_bad_cluster(f, 0, "1=nohostport", "has no port");
    snprintf(s, sizeof(s), "1=%s,x", a1);
    assert_bad_cluster(f, 0, s, "\"x\" is not id=host:port");

    /* Valid: the node starts with the three voters as its configuration,
     * before any election. */
    snprintf(s, sizeof(s), "1=%s,2=%s,3=%s", a1, a2, a3);
    f->m[0].nopts.initial_cluster = s;
    member_start(&f->m[0]);
    assert_members(f, &f->m[0], 0x7);
    assert_false(node_is_leader(f->m[0].node));
    member_stop(&f->m[0]);
}

/******************************************************************************
 * Replication
 *****************************************************************************/

/* Three nodes with the same initial cluster elect exactly one leader; a
 * command proposed on it is applied on every node; followers refuse to
 * propose; every node lists the three voters. */
static void three_nodes_replicate(void **state)
{
    struct fx *f = *state;
    unsigned leader = leader_of(f);
    struct node_status st;
    struct wait w[3];
    struct prop p;
    uint64_t index;

    for (unsigned i = 0; i < 3; i++) {
        assert_members(f, &f->m[i], 0x7);
        node_get_status(f->m[i].node, &st);
        assert_int_equal(st.id, i + 1);
        assert_int_equal(st.leader_id, leader + 1);
        assert_string_equal(st.role, i == leader ? "leader" : "follower");
    }
    for (unsigned i = 0; i < 3; i++) {
        if (i != leader) {
            assert_int_equal(propose_put(f, i, &p, "/r/x", "no"),
                             CAIRN_UNAVAILABLE);
            assert_false(p.done);
        }
    }
    assert_int_equal(put(f, leader, "/r/x", "1"), 1);
    index = node_applied_index(f->m[leader].node);
    for (unsigned i = 0; i < 3; i++) {
        wait_applied(&f->m[i], &w[i], index, "/r/x");
    }
    for (unsigned i = 0; i < 3; i++) {
        run_until(f, &w[i].done);
        assert_int_equal(w[i].status, 0);
        assert_false(w[i].in_call);
        assert_true(w[i].applied >= index);
        assert_int_equal(w[i].version, 1);
    }
    /* Still one leader, the same one. */
    assert_int_equal(leader_of(f), leader);
}

/******************************************************************************
 * Join
 *****************************************************************************/

/* A fresh node started with join has no configuration and never leads;
 * node_add_member makes it a voter that every node lists, and it gets the
 * data written before and after. Repeating the add is a no-op; conflicting
 * or malformed adds, and adds on a follower, are refused. */
static void join(void **state)
{
    struct fx *f = *state;
    struct member *m4 = &f->m[3];
    unsigned leader = leader_of(f);
    unsigned follower = follower_of(f, leader);
    struct members_want mw;
    struct change c;
    struct wait w;
    uint64_t start;

    assert_int_equal(put(f, leader, "/j/before", "1"), 1);

    member_start(m4);
    assert_int_equal(node_members(m4->node, NULL, 0), 0);
    start = now_ms(f);
    while (!elapsed(f, start, 3 * ELECTION_MS)) {
        uv_run(&f->loop, UV_RUN_ONCE);
        assert_false(node_is_leader(m4->node));
        assert_int_equal(node_members(m4->node, NULL, 0), 0);
    }
    assert_int_equal(leader_of(f), leader);

    /* Refused without the callback. */
    assert_int_equal(add_member(f, follower, &c, 4, m4->address),
                     CAIRN_UNAVAILABLE);
    assert_int_equal(add_member(f, leader, &c, 0, m4->address),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(add_member(f, leader, &c, 4, "127.0.0.1"),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(add_member(f, leader, &c, 4, NULL),
                     CAIRN_INVALID_ARGUMENT);
    /* Another id's address; a member's id at another address. */
    assert_int_equal(add_member(f, leader, &c, 4, f->m[follower].address),
                     CAIRN_ALREADY_EXISTS);
    assert_int_equal(add_member(f, leader, &c, follower + 1, m4->address),
                     CAIRN_ALREADY_EXISTS);
    /* An existing voter at its own address: nothing to do. */
    assert_int_equal(
        add_member(f, leader, &c, follower + 1, f->m[follower].address), 1);
    assert_false(c.done);

    assert_int_equal(add_member(f, leader, &c, 4, m4->address), 0);
    assert_false(c.done);
    change_wait(f, &c);
    assert_members(f, &f->m[leader], 0xf);

    /* Nothing more to do for it; conflicts with it. */
    assert_int_equal(add_member(f, leader, &c, 4, m4->address), 1);
    assert_false(c.done);
    assert_int_equal(add_member(f, leader, &c, 4, "127.0.0.1:1"),
                     CAIRN_ALREADY_EXISTS);
    assert_int_equal(add_member(f, leader, &c, 5, m4->address),
                     CAIRN_ALREADY_EXISTS);
    assert_int_equal(add_member(f, follower, &c, 4, m4->address),
                     CAIRN_UNAVAILABLE);

    /* The new node learns the configuration and has the earlier data. */
    mw.m = m4;
    mw.mask = 0xf;
    run_until_cond(f, members_reached, &mw, "node 4 to list 4 voters");
    wait_applied(m4, &w, node_applied_index(f->m[leader].node), "/j/before");
    run_until(f, &w.done);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.version, 1);

    /* And what is written now. */
    assert_int_equal(put(f, leader, "/j/after", "1"), 1);
    wait_applied(m4, &w, node_applied_index(f->m[leader].node), "/j/after");
    run_until(f, &w.done);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.version, 1);
    for (unsigned i = 0; i < 4; i++) {
        mw.m = &f->m[i];
        run_until_cond(f, members_reached, &mw, "4 voters everywhere");
    }
    assert_false(node_is_leader(m4->node));
    assert_int_equal(leader_of(f), leader);
}

/* One membership change at a time: while an add is in progress, or a
 * leadership transfer, another add or a remove is refused with UNAVAILABLE,
 * without its callback and without leaking.
 *
 * libraft 0.22.1 builds the new configuration before refusing a change
 * and leaks it, so the node refuses first (raft/node.c, change_busy). */
static void change_while_busy(void **state)
{
    struct fx *f = *state;
    struct member *m4 = &f->m[3];
    unsigned leader = leader_of(f);
    unsigned follower = follower_of(f, leader);
    struct change c;
    struct change busy;

    member_start(m4);
    assert_int_equal(add_member(f, leader, &c, 4, m4->address), 0);
    assert_int_equal(add_member(f, leader, &busy, 5, "127.0.0.1:1"),
                     CAIRN_UNAVAILABLE);
    change_init(&busy);
    assert_int_equal(node_remove_member(f->m[leader].node, &busy.req,
                                        follower + 1, on_change),
                     CAIRN_UNAVAILABLE);
    change_wait(f, &c);
    assert_false(busy.done);
    assert_members(f, &f->m[leader], 0xf);

    /* During a transfer the leader accepts no change either. */
    change_init(&c);
    assert_int_equal(node_transfer_leadership(f->m[leader].node, &c.req,
                                              follower + 1, on_change),
                     0);
    assert_int_equal(
        node_remove_member(f->m[leader].node, &busy.req, 4, on_change),
        CAIRN_UNAVAILABLE);
    run_until(f, &c.done);
    assert_false(busy.done);
}

/* A node that joins after the leader compacted its log catches up by
 * InstallSnapshot: its store holds what was written before the join and
 * its Raft directory holds the installed snapshot. The leader's snapshots
 * are deferred copies made in the thread pool. */
static void join_catch_up_by_snapshot(void **state)
{
    struct fx *f = *state;
    enum { N = 200 };
    struct member *m4 = &f->m[3];
    struct members_want mw;
    struct change c;
    struct wait w;
    unsigned leader;
    char name[32];

    for (unsigned i = 0; i < f->n; i++) {
        f->m[i].nopts.snapshot_threshold = 32;
        f->m[i].nopts.snapshot_trailing = 8;
    }
    leader = fx_start(f, 3);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(put(f, leader, name, "v"), 1);
    }
    run_until_cond(f, member_has_snapshot, &f->m[leader],
                   "a snapshot on the leader");

    member_start(m4); /* node_create makes its Raft directory */
    assert_false(has_snapshot(m4->raft_dir));
    assert_int_equal(add_member(f, leader, &c, 4, m4->address), 0);
    change_wait(f, &c);
    assert_members(f, &f->m[leader], 0xf);

    wait_applied(m4, &w, node_applied_index(f->m[leader].node), NULL);
    run_until(f, &w.done);
    assert_int_equal(w.status, 0);
    assert_true(has_snapshot(m4->raft_dir));
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "/s/p%d", i);
        assert_int_equal(version_of(m4, name), 1);
    }
    mw.m = m4;
    mw.mask = 0xf;
    run_until_cond(f, members_reached, &mw, "node 4 to list 4 voters");

    /* It replicates what follows, too. */
    assert_int_equal(put(f, leader, "/s/after", "v"), 1);
    wait_applied(m4, &w, node_applied_index(f->m[leader].node), "/s/after");
    run_until(f, &w.done);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.version, 1);
}

/******************************************************************************
 * Leadership transfer
 *****************************************************************************/

/* Leadership moves to the named follower: the callback reports it as the
 * leader and it leads afterwards. An unknown id or the leader itself is
 * refused, and so is a transfer asked of a follower. */
static void transfer_leadership(void **state)
{
    struct fx *f = *state;
    unsigned leader = leader_of(f);
    unsigned target = follower_of(f, leader);
    struct change c;

    change_init(&c);
    assert_int_equal(
        node_transfer_leadership(f->m[leader].node, &c.req, 9, on_change),
        CAIRN_INVALID_ARGUMENT);
    assert_int_equal(node_transfer_leadership(f->m[leader].node, &c.req,
                                              leader + 1, on_change),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(node_transfer_leadership(f->m[target].node, &c.req,
                                              leader + 1, on_change),
                     CAIRN_UNAVAILABLE);
    assert_false(c.done);

    assert_int_equal(node_transfer_leadership(f->m[leader].node, &c.req,
                                              target + 1, on_change),
                     0);
    assert_false(c.done);
    run_until(f, &c.done);
    if (c.status != 0) {
        fail_msg("transfer: status %d: %s", c.status, c.message);
    }
    assert_int_equal(c.leader, target + 1);
    assert_true(node_is_leader(f->m[target].node));
    assert_false(node_is_leader(f->m[leader].node));
    assert_int_equal(fx_wait_leader(f, 3), target);
    assert_int_equal(put(f, target, "/t/x", "1"), 1);
}

/******************************************************************************
 * Remove
 *****************************************************************************/

/* Removing a follower completes; the leader lists one voter fewer and
 * writes still commit. An unknown id is NOT_FOUND; a follower refuses. */
static void remove_member(void **state)
{
    struct fx *f = *state;
    unsigned leader = leader_of(f);
    unsigned gone = follower_of(f, leader);
    unsigned stay = 3 - leader - gone;
    struct members_want mw;
    struct change c;
    struct wait w;

    change_init(&c);
    assert_int_equal(
        node_remove_member(f->m[leader].node, &c.req, 9, on_change),
        CAIRN_NOT_FOUND);
    assert_int_equal(
        node_remove_member(f->m[stay].node, &c.req, gone + 1, on_change),
        CAIRN_UNAVAILABLE);
    assert_false(c.done);

    assert_int_equal(
        node_remove_member(f->m[leader].node, &c.req, gone + 1, on_change), 0);
    change_wait(f, &c);
    assert_members(f, &f->m[leader], 0x7 & ~(1u << gone));
    assert_int_equal(
        node_remove_member(f->m[leader].node, &c.req, gone + 1, on_change),
        CAIRN_NOT_FOUND);

    /* A write still commits, and reaches the remaining follower. */
    assert_int_equal(put(f, leader, "/rm/x", "1"), 1);
    wait_applied(&f->m[stay], &w, node_applied_index(f->m[leader].node),
                 "/rm/x");
    run_until(f, &w.done);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.version, 1);
    mw.m = &f->m[stay];
    mw.mask = 0x7 & ~(1u << gone);
    run_until_cond(f, members_reached, &mw, "the follower to list 2 voters");

    /* Without the removed node, the two left still commit. */
    member_stop(&f->m[gone]);
    assert_int_equal(put(f, leader, "/rm/x", "2"), 2);
}

static bool not_leader(struct fx *f, void *arg)
{
    (void)f;
    return !node_is_leader(((struct member *)arg)->node);
}

/* Removing the leader itself completes once committed; the leader steps
 * down and the two others elect a leader among themselves that lists them
 * both and commits writes. */
static void remove_leader(void **state)
{
    struct fx *f = *state;
    unsigned leader = leader_of(f);
    unsigned mask = 0x7 & ~(1u << leader);
    unsigned next;
    struct change c;

    change_init(&c);
    assert_int_equal(
        node_remove_member(f->m[leader].node, &c.req, leader + 1, on_change),
        0);
    change_wait(f, &c);
    run_until_cond(f, not_leader, &f->m[leader], "the leader to step down");
    member_stop(&f->m[leader]);
    next = fx_wait_leader(f, 3);
    assert_int_not_equal(next, leader);
    assert_members(f, &f->m[next], mask);
    assert_int_equal(put(f, next, "/rl/x", "1"), 1);
}

/******************************************************************************
 * Waiting for an applied index
 *****************************************************************************/

/* A wait for an index already applied calls back with 0 from the loop, not
 * inside the call; a wait for an index far ahead is failed with
 * UNAVAILABLE when the node closes. */
static void wait_applied_index(void **state)
{
    struct fx *f = *state;
    unsigned leader = leader_of(f);
    unsigned follower = follower_of(f, leader);
    struct member *fm = &f->m[follower];
    struct wait now;
    struct wait now_leader;
    struct wait later;
    struct wait later_leader;
    uint64_t index = node_applied_index(fm->node);

    assert_true(index > 0);
    wait_applied(fm, &now, index, NULL);
    assert_false(now.done);
    wait_applied(&f->m[leader], &now_leader, 1, NULL);
    assert_false(now_leader.done);
    run_until(f, &now.done);
    run_until(f, &now_leader.done);
    assert_int_equal(now.status, 0);
    assert_false(now.in_call);
    assert_true(now.applied >= index);
    assert_int_equal(now_leader.status, 0);
    assert_false(now_leader.in_call);

    wait_applied(fm, &later, index + ((uint64_t)1 << 40), NULL);
    wait_applied(&f->m[leader], &later_leader, (uint64_t)1 << 40, NULL);
    run_for(f, 2 * HEARTBEAT_MS);
    assert_false(later.done);
    assert_false(later_leader.done);
    member_stop(fm);
    assert_true(later.done);
    assert_int_equal(later.status, CAIRN_UNAVAILABLE);
    assert_false(later_leader.done);
    member_stop(&f->m[leader]);
    assert_true(later_leader.done);
    assert_int_equal(later_leader.status, CAIRN_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bad_initial_cluster, setup_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(three_nodes_replicate, setup, teardown),
        cmocka_unit_test_setup_teardown(join, setup_join, teardown),
        cmocka_unit_test_setup_teardown(change_while_busy, setup_join,
                                        teardown),
        cmocka_unit_test_setup_teardown(join_catch_up_by_snapshot,
                                        setup_join_idle, teardown),
        cmocka_unit_test_setup_teardown(transfer_leadership, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_member, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(wait_applied_index, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
