#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mp.h"
#include "names.h"
#include "node.h"
#include "peer.h"
#include "query.h"
#include "sm.h"
#include "store.h"

/* A member's client API address, from the replicated member table. */
struct member_addr
{
    uint64_t id;
    char api[256];
};

#define SERVICE_MAX_MEMBERS 16

struct service
{
    struct node *node;
    struct store *store;
    uv_loop_t *loop;
    struct peer_pool *peers;
    char default_user[128];
    uint64_t id; /* this node's Raft id */
    char raft_address[256];
    char api_address[256]; /* registered in the member table; "" if none */
    unsigned forward_timeout_ms;
    /* Member table cache, reloaded by the tick and on a miss. */
    struct member_addr members[SERVICE_MAX_MEMBERS];
    unsigned n_members;
    /* Self-registration in the member table. */
    uv_timer_t tick;
    struct service_call reg_call;
    bool registering;
    bool registered;
    /* Linearizable reads on a follower share one read-index request. */
    struct cairn_queue ri_riders;  /* pending, for the next request */
    struct cairn_queue ri_boarded; /* pending, on the request in flight */
    struct peer_call ri_call;
    bool ri_busy;
    bool closing;
    int closes;
    void (*close_cb)(void *data);
    void *close_data;
};

/* A call waiting for something: a proposal, a barrier, a peer, the node
 * applying an index, a membership change. */
struct pending
{
    union {
        struct node_propose_req propose;
        struct node_barrier_req barrier;
        struct node_wait_req wait;
        struct node_change_req change;
        struct peer_call peer;
    } req;
    struct service_call *call;
    struct cairn_queue link; /* in ri_riders / ri_boarded */
    uint64_t index;          /* Cairn.ReadIndex: applied at arrival */
};

/* READ and WRITE are the Parameter Store's methods; LOCAL ones answer from
 * this node; LEADER ones need the leader and are never forwarded (they are
 * what forwarding uses); ADMIN ones are forwarded to the leader as they
 * came. */
enum kind { READ, WRITE, LOCAL, LEADER, ADMIN };

struct method
{
    const char *name;
    enum kind kind;
    bool paged;
    void (*fn)(struct service_call *call);
};

static void m_propose(struct service_call *call);
static void m_read_index(struct service_call *call);
static void m_node_status(struct service_call *call);
static void m_members(struct service_call *call);
static void m_add_member(struct service_call *call);
static void m_remove_member(struct service_call *call);
static void m_transfer(struct service_call *call);

static const struct method methods[] = {
    {"GetParameter", READ, false, NULL},
    {"GetParameters", READ, false, NULL},
    {"GetParametersByPath", READ, true, NULL},
    {"GetParameterHistory", READ, true, NULL},
    {"DescribeParameters", READ, true, NULL},
    {"ListTagsForResource", READ, false, NULL},
    {"GetServiceSetting", READ, false, NULL},
    {"GetChanges", READ, false, NULL},
    {"PutParameter", WRITE, false, NULL},
    {"DeleteParameter", WRITE, false, NULL},
    {"DeleteParameters", WRITE, false, NULL},
    {"LabelParameterVersion", WRITE, false, NULL},
    {"UnlabelParameterVersion", WRITE, false, NULL},
    {"AddTagsToResource", WRITE, false, NULL},
    {"RemoveTagsFromResource", WRITE, false, NULL},
    {"UpdateServiceSetting", WRITE, false, NULL},
    {"ResetServiceSetting", WRITE, false, NULL},
    {"Cairn.Propose", LEADER, false, m_propose},
    {"Cairn.ReadIndex", LEADER, false, m_read_index},
    {"Cairn.NodeStatus", LOCAL, false, m_node_status},
    {"Cairn.Members", LOCAL, false, m_members},
    {"Cairn.AddMember", ADMIN, false, m_add_member},
    {"Cairn.RemoveMember", ADMIN, false, m_remove_member},
    {"Cairn.TransferLeadership", ADMIN, false, m_transfer},
};

static const struct method *find_method(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strlen(methods[i].name) == len &&
            memcmp(methods[i].name, name, len) == 0) {
            return &methods[i];
        }
    }
    return NULL;
}

bool service_is_paged(const char *method, size_t len)
{
    const struct method *m = find_method(method, len);
    return m != NULL && m->paged;
}

void service_options_default(struct service_options *o)
{
    memset(o, 0, sizeof(*o));
    o->id = 1;
    o->forward_timeout_ms = 10000;
}

static void on_tick(uv_timer_t *t);

int service_create(uv_loop_t *loop,
                   struct node *node,
                   struct store *store,
                   const struct service_options *o,
                   struct service **out,
                   struct cairn_error *err)
{
    const struct store_options *so = store_get_options(store);
    struct service_options defaults;
    struct service *svc;
    int rv;

    if (o == NULL) {
        service_options_default(&defaults);
        o = &defaults;
    }
    svc = calloc(1, sizeof(*svc));
    if (svc == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    svc->loop = loop;
    svc->node = node;
    svc->store = store;
    svc->id = o->id;
    svc->forward_timeout_ms =
        o->forward_timeout_ms != 0 ? o->forward_timeout_ms : 10000;
    snprintf(svc->raft_address, sizeof(svc->raft_address), "%s",
             o->raft_address != NULL ? o->raft_address : "");
    snprintf(svc->api_address, sizeof(svc->api_address), "%s",
             o->api_address != NULL ? o->api_address : "");
    /* No authentication yet: writes are attributed to the account root. */
    snprintf(svc->default_user, sizeof(svc->default_user),
             "arn:%s:iam::%s:root", so->arn.partition, so->arn.account);
    cairn_queue_init(&svc->ri_riders);
    cairn_queue_init(&svc->ri_boarded);
    rv = peer_pool_create(loop, &svc->peers, err);
    if (rv != 0) {
        free(svc);
        return rv;
    }
    uv_timer_init(loop, &svc->tick);
    svc->tick.data = svc;
    /* Register soon after start, then check every second. */
    uv_timer_start(&svc->tick, on_tick, 50, 1000);
    uv_unref((uv_handle_t *)&svc->tick);
    *out = svc;
    return 0;
}

static void service_closed_one(struct service *svc)
{
    if (--svc->closes > 0) {
        return;
    }
    if (svc->close_cb != NULL) {
        svc->close_cb(svc->close_data);
    }
}

static void on_tick_closed(uv_handle_t *h)
{
    service_closed_one(h->data);
}

static void on_peers_closed(void *data)
{
    struct service *svc = data;
    svc->peers = NULL;
    service_closed_one(svc);
}

void service_close(struct service *svc, void (*cb)(void *data), void *data)
{
    if (svc->closing) {
        return;
    }
    svc->closing = true;
    svc->close_cb = cb;
    svc->close_data = data;
    svc->closes = 2;
    uv_close((uv_handle_t *)&svc->tick, on_tick_closed);
    peer_pool_close(svc->peers, on_peers_closed, svc);
}

void service_destroy(struct service *svc)
{
    free(svc);
}

void service_cancel(struct service_call *call)
{
    call->cancelled = true;
}

/* Finish a call: report to the caller, then release what the service
 * holds. The callback may free the call. */
static void finish(struct service_call *call,
                   int status,
                   const void *body,
                   size_t len)
{
    service_cb cb = call->cb;
    /* Take the response memory: @p body may point into it, and the call
     * may be freed by the callback. */
    struct buf resp = call->resp;

    buf_init(&call->resp);
    if (call->pending != NULL) {
        free(call->pending);
        call->pending = NULL;
    }
    buf_close(&call->req);
    cb(call, status, body, len);
    buf_close(&resp);
}

static void fail(struct service_call *call,
                 int code,
                 const char *type,
                 const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
static void fail(struct service_call *call,
                 int code,
                 const char *type,
                 const char *fmt,
                 ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_error_vset(&call->err, code, type, fmt, ap);
    va_end(ap);
    finish(call, code, NULL, 0);
}

/* Finish with the response body built in call->resp. */
static void reply(struct service_call *call)
{
    if (call->resp.oom) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    finish(call, 0, call->resp.data, call->resp.len);
}

static struct pending *pending_new(struct service_call *call)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return NULL;
    }
    p->call = call;
    cairn_queue_init(&p->link);
    call->pending = p;
    return p;
}

/* ---- the member table ------------------------------------------------ */

/* Reload the member table cache from the local store. */
static void load_members(struct service *svc)
{
    struct buf q, resp;
    struct mp_doc d;
    struct cairn_error e;
    const msgpack_object *arr;

    buf_init(&q);
    buf_init(&resp);
    buf_append(&q, "\x80", 1); /* {} */
    if (!q.oom &&
        query_run(svc->store, "ListMembers", q.data, q.len, &resp, &e) == 0 &&
        mp_doc_parse(&d, resp.data, resp.len, NULL) == 0) {
        arr = mp_map_get(&d.root, "Members");
        svc->n_members = 0;
        if (arr != NULL && arr->type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < arr->via.array.size &&
                                 svc->n_members < SERVICE_MAX_MEMBERS;
                 i++) {
                const msgpack_object *m = &arr->via.array.ptr[i];
                struct member_addr *a = &svc->members[svc->n_members];
                struct mp_str api;
                if (mp_get_u64(m, "Id", &a->id, NULL) == 1 &&
                    mp_get_str(m, "ApiAddress", &api, NULL) == 1 &&
                    api.n < sizeof(a->api)) {
                    memcpy(a->api, api.p, api.n);
                    a->api[api.n] = '\0';
                    svc->n_members++;
                }
            }
        }
        mp_doc_close(&d);
    }
    buf_close(&q);
    buf_close(&resp);
}

static const char *member_api(struct service *svc, uint64_t id, bool reload)
{
    for (int pass = 0; pass < (reload ? 2 : 1); pass++) {
        for (unsigned i = 0; i < svc->n_members; i++) {
            if (svc->members[i].id == id) {
                return svc->members[i].api;
            }
        }
        load_members(svc);
    }
    return NULL;
}

/* The leader's API address, or NULL with call->err set. */
static const char *leader_api(struct service_call *call)
{
    struct service *svc = call->svc;
    uint64_t id;
    const char *raft_address;
    const char *api;

    node_leader(svc->node, &id, &raft_address);
    if (id == 0) {
        cairn_error_set(&call->err, CAIRN_UNAVAILABLE, "ServiceUnavailable",
                        "no leader is known at the moment; retry");
        return NULL;
    }
    if (id == svc->id) {
        /* Leader in Raft's view but not ready to serve (closing). */
        cairn_error_set(&call->err, CAIRN_UNAVAILABLE, "ServiceUnavailable",
                        "this node is changing role; retry");
        return NULL;
    }
    api = member_api(svc, id, true);
    if (api == NULL) {
        cairn_error_set(&call->err, CAIRN_UNAVAILABLE, "ServiceUnavailable",
                        "the leader (node %llu at %s) has not registered its "
                        "API address yet; retry",
                        (unsigned long long)id,
                        raft_address != NULL ? raft_address : "?");
    }
    return api;
}

/* ---- forwarding to the leader --------------------------------------- */

static void on_forwarded(struct peer_call *pc,
                         int status,
                         const char *type,
                         const char *message,
                         const void *body,
                         size_t len)
{
    struct pending *p = pc->data;
    struct service_call *call = p->call;

    if (status != 0) {
        cairn_error_set(&call->err, status, type[0] != '\0' ? type : NULL, "%s",
                        message);
        finish(call, status, NULL, 0);
        return;
    }
    buf_reset(&call->resp);
    buf_append(&call->resp, body, len);
    reply(call);
}

/* Send @p method with @p body to the leader and relay its answer. */
static void forward(struct service_call *call,
                    const char *method,
                    const void *body,
                    size_t len)
{
    struct service *svc = call->svc;
    const char *api;
    struct pending *p;
    int rv;

    if (svc->closing) {
        fail(call, CAIRN_UNAVAILABLE, "ServiceUnavailable",
             "this node is shutting down; retry");
        return;
    }
    api = leader_api(call);
    if (api == NULL) {
        finish(call, call->err.code, NULL, 0);
        return;
    }
    p = pending_new(call);
    if (p == NULL) {
        return;
    }
    p->req.peer.data = p;
    rv = peer_call_start(svc->peers, &p->req.peer, api, method, NULL, 0, body,
                         len, svc->forward_timeout_ms, on_forwarded);
    if (rv != 0) {
        fail(call, CAIRN_UNAVAILABLE, "ServiceUnavailable",
             "cannot forward to the leader at %s; retry", api);
    }
}

static void not_leader(struct service_call *call)
{
    uint64_t id;
    const char *address;
    node_leader(call->svc->node, &id, &address);
    if (address != NULL) {
        fail(call, CAIRN_UNAVAILABLE, "ServiceUnavailable",
             "this node is not the leader; the leader is node %llu at %s",
             (unsigned long long)id, address);
    } else {
        fail(call, CAIRN_UNAVAILABLE, "ServiceUnavailable",
             "no leader is known at the moment; retry");
    }
}

/* ---- reads ---------------------------------------------------------- */

static void run_read(struct service_call *call)
{
    int rv;
    buf_reset(&call->resp);
    rv = query_run(call->svc->store, call->method, call->req.data,
                   call->req.len, &call->resp, &call->err);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    finish(call, 0, call->resp.data, call->resp.len);
}

static void on_barrier(struct node_barrier_req *req, int status)
{
    struct pending *p = req->data;
    struct service_call *call = p->call;
    if (status != 0) {
        cairn_error_set(&call->err, status, "ServiceUnavailable",
                        "read barrier failed: leadership changed; retry");
        finish(call, status, NULL, 0);
        return;
    }
    run_read(call);
}

static void on_read_applied(struct node_wait_req *req, int status)
{
    struct pending *p = req->data;
    struct service_call *call = p->call;
    if (status != 0) {
        fail(call, status, "ServiceUnavailable",
             "this node stopped before it caught up; retry");
        return;
    }
    run_read(call);
}

static void flush_read_index(struct service *svc);

/* The leader answered a read index: every read on board waits until this
 * node has applied it, then reads its own store. */
static void on_read_index(struct peer_call *pc,
                          int status,
                          const char *type,
                          const char *message,
                          const void *body,
                          size_t len)
{
    struct service *svc = pc->data;
    uint64_t index = 0;
    struct mp_doc d;

    svc->ri_busy = false;
    if (status == 0) {
        if (mp_doc_parse(&d, body, len, NULL) == 0) {
            if (mp_get_u64(&d.root, "Index", &index, NULL) != 1) {
                index = 0;
            }
            mp_doc_close(&d);
        }
        if (index == 0) {
            status = CAIRN_UNAVAILABLE;
            type = "ServiceUnavailable";
            message = "the leader sent a malformed read index; retry";
        }
    }
    while (!cairn_queue_empty(&svc->ri_boarded)) {
        struct cairn_queue *q = cairn_queue_head(&svc->ri_boarded);
        struct pending *p = cairn_queue_data(q, struct pending, link);
        cairn_queue_remove(q);
        cairn_queue_init(q);
        if (status != 0) {
            cairn_error_set(&p->call->err, status,
                            type[0] != '\0' ? type : NULL, "%s", message);
            finish(p->call, status, NULL, 0);
            continue;
        }
        p->req.wait.data = p;
        node_wait_applied(svc->node, &p->req.wait, index, on_read_applied);
    }
    flush_read_index(svc);
}

/* One read-index request at a time, for every read that arrived before
 * it was sent: the leader's barrier is proposed after they all arrived. */
static void flush_read_index(struct service *svc)
{
    struct service_call probe;
    const char *api;
    int rv;

    if (svc->ri_busy || cairn_queue_empty(&svc->ri_riders)) {
        return;
    }
    memset(&probe, 0, sizeof(probe));
    probe.svc = svc;
    api = svc->closing ? NULL : leader_api(&probe);
    if (api != NULL) {
        svc->ri_call.data = svc;
        rv = peer_call_start(svc->peers, &svc->ri_call, api, "Cairn.ReadIndex",
                             NULL, 0, "\x80", 1, svc->forward_timeout_ms,
                             on_read_index);
        if (rv == 0) {
            svc->ri_busy = true;
            while (!cairn_queue_empty(&svc->ri_riders)) {
                struct cairn_queue *q = cairn_queue_head(&svc->ri_riders);
                cairn_queue_remove(q);
                cairn_queue_push(&svc->ri_boarded, q);
            }
            return;
        }
        cairn_error_set(&probe.err, CAIRN_UNAVAILABLE, "ServiceUnavailable",
                        "cannot reach the leader at %s; retry", api);
    } else if (svc->closing) {
        cairn_error_set(&probe.err, CAIRN_UNAVAILABLE, "ServiceUnavailable",
                        "this node is shutting down; retry");
    }
    while (!cairn_queue_empty(&svc->ri_riders)) {
        struct cairn_queue *q = cairn_queue_head(&svc->ri_riders);
        struct pending *p = cairn_queue_data(q, struct pending, link);
        cairn_queue_remove(q);
        cairn_queue_init(q);
        p->call->err = probe.err;
        finish(p->call, probe.err.code, NULL, 0);
    }
}

static void start_read(struct service_call *call)
{
    struct service *svc = call->svc;
    struct pending *p;

    if (call->meta.stale) {
        run_read(call);
        return;
    }
    p = pending_new(call);
    if (p == NULL) {
        return;
    }
    /* Linearizable: on the leader, a barrier proposed after this read
     * arrived is applied before the read runs, so it sees every write
     * acknowledged before. A follower gets the same from the leader's
     * read index (docs/cluster.md). */
    if (node_is_leader(svc->node)) {
        p->req.barrier.data = p;
        if (node_barrier(svc->node, &p->req.barrier, on_barrier) != 0) {
            not_leader(call);
        }
        return;
    }
    cairn_queue_push(&svc->ri_riders, &p->link);
    flush_read_index(svc);
}

/* ---- writes --------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Checks that need no state, so that requests bound to fail never enter
 * the log. The state machine checks everything again. */
static int validate_write(struct service_call *call, const msgpack_object *req)
{
    struct mp_str name, type;
    struct names_name nm;

    if (strcmp(call->method, "PutParameter") != 0) {
        return 0;
    }
    if (mp_get_str(req, "Name", &name, &call->err) < 0 ||
        mp_get_str(req, "Type", &type, &call->err) < 0) {
        return call->err.code;
    }
    if (name.p != NULL &&
        names_check_write(name.p, name.n, &nm, &call->err) != 0) {
        return call->err.code;
    }
    if (name.p != NULL && type.p == NULL) {
        /* An overwrite without Type keeps the stored type: look it up in
         * the local store so that a SecureString is never overwritten with
         * plaintext. */
        struct buf q, resp;
        msgpack_packer pk;
        struct cairn_error e;
        buf_init(&q);
        buf_init(&resp);
        mp_packer_init(&pk, &q);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "Name", name.p, name.n);
        if (!q.oom && query_run(call->svc->store, "GetParameter", q.data, q.len,
                                &resp, &e) == 0) {
            struct mp_doc d;
            struct mp_str t;
            if (mp_doc_parse(&d, resp.data, resp.len, NULL) == 0) {
                const msgpack_object *param = mp_map_get(&d.root, "Parameter");
                if (mp_get_str(param, "Type", &t, NULL) == 1 &&
                    mp_str_eqn(t, "SecureString")) {
                    type.p = "SecureString";
                    type.n = strlen(type.p);
                }
                mp_doc_close(&d);
            }
        }
        buf_close(&q);
        buf_close(&resp);
    }
    if (mp_str_eqn(type, "SecureString")) {
        /* Envelope encryption (a keyring of master keys) is not built
         * yet; plaintext must never reach the log, so refuse. */
        return cairn_error_set(&call->err, CAIRN_UNIMPLEMENTED,
                               "UnsupportedParameterType",
                               "SecureString parameters need the keyring, "
                               "which this server does not have yet.");
    }
    return 0;
}

static void on_applied(struct node_propose_req *req,
                       int status,
                       const struct sm_outcome *o)
{
    struct pending *p = req->data;
    struct service_call *call = p->call;

    if (status != 0) {
        cairn_error_set(&call->err, status, "ServiceUnavailable",
                        "the write's outcome is unknown (leadership changed "
                        "or the node is stopping); retry with the same "
                        "client session and sequence number");
        finish(call, status, NULL, 0);
        return;
    }
    if (o->err.code != 0) {
        call->err = o->err;
        finish(call, o->err.code, NULL, 0);
        return;
    }
    buf_reset(&call->resp);
    if (buf_append(&call->resp, o->body, o->body_len) != 0) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    finish(call, 0, call->resp.data, call->resp.len);
}

/* Replicate a command: propose it here if this node leads, else send it to
 * the leader (Cairn.Propose), which relays the outcome. */
static void submit(struct service_call *call, const void *cmd, size_t len)
{
    struct service *svc = call->svc;
    struct pending *p;
    int rv;

    if (!node_is_leader(svc->node)) {
        struct buf body;
        msgpack_packer pk;
        buf_init(&body);
        mp_packer_init(&pk, &body);
        msgpack_pack_map(&pk, 1);
        mp_pack_cstr(&pk, "Command");
        mp_pack_bin(&pk, cmd, len);
        if (body.oom) {
            buf_close(&body);
            fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
            return;
        }
        forward(call, "Cairn.Propose", body.data, body.len);
        buf_close(&body);
        return;
    }
    p = pending_new(call);
    if (p == NULL) {
        return;
    }
    p->req.propose.data = p;
    rv = node_propose(svc->node, &p->req.propose, cmd, len, on_applied);
    if (rv == CAIRN_UNAVAILABLE) {
        not_leader(call);
    } else if (rv != 0) {
        fail(call, rv, "ValidationException",
             "the request is too large to replicate");
    }
}

/* Build the command for @p op with request map @p req: it carries
 * everything that varies (time, caller, client session). */
static int build_command(struct service_call *call,
                         const char *op,
                         const void *req,
                         size_t req_len,
                         struct buf *cmd)
{
    msgpack_packer pk;
    unsigned fields = 4;

    buf_init(cmd);
    mp_packer_init(&pk, cmd);
    fields += call->meta.cid != NULL ? 2 : 0;
    msgpack_pack_map(&pk, fields);
    mp_pack_kv_cstr(&pk, "op", op);
    mp_pack_kv_i64(&pk, "ts", now_ms());
    mp_pack_kv_cstr(
        &pk, "user",
        call->meta.user != NULL ? call->meta.user : call->svc->default_user);
    if (call->meta.cid != NULL) {
        mp_pack_kv_cstr(&pk, "cid", call->meta.cid);
        mp_pack_kv_u64(&pk, "seq", call->meta.seq);
    }
    mp_pack_cstr(&pk, "req");
    buf_append(cmd, req, req_len);
    if (cmd->oom) {
        buf_close(cmd);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    return 0;
}

static void start_write(struct service_call *call)
{
    struct mp_doc doc;
    struct buf cmd;
    int rv;

    rv = mp_doc_parse_map(&doc, call->req.data, call->req.len, &call->err);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    rv = validate_write(call, &doc.root);
    mp_doc_close(&doc);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    if (build_command(call, call->method, call->req.data, call->req.len,
                      &cmd) != 0) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    submit(call, cmd.data, cmd.len);
    buf_close(&cmd);
}

/* ---- internal methods ----------------------------------------------- */

/* Parse the request body as a map into @p doc, or fail the call. */
static bool parse_body(struct service_call *call, struct mp_doc *doc)
{
    int rv = mp_doc_parse_map(doc, call->req.data, call->req.len, &call->err);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return false;
    }
    return true;
}

/* Cairn.Propose {Command}: a follower's command, proposed by the leader. */
static void m_propose(struct service_call *call)
{
    struct mp_doc doc;
    struct mp_str cmd;
    bool is_bin = false;
    struct pending *p;
    int r, rv;

    if (!parse_body(call, &doc)) {
        return;
    }
    r = mp_get_bytes(&doc.root, "Command", &cmd, &is_bin, &call->err);
    if (r != 1 || !is_bin || cmd.n == 0) {
        mp_doc_close(&doc);
        fail(call, CAIRN_INVALID_ARGUMENT, "ValidationException",
             "Cairn.Propose needs Command: a binary state machine command");
        return;
    }
    p = pending_new(call);
    if (p == NULL) {
        mp_doc_close(&doc);
        return;
    }
    p->req.propose.data = p;
    rv = node_propose(call->svc->node, &p->req.propose, cmd.p, cmd.n,
                      on_applied);
    mp_doc_close(&doc);
    if (rv == CAIRN_UNAVAILABLE) {
        not_leader(call);
    } else if (rv != 0) {
        fail(call, rv, "ValidationException",
             "the request is too large to replicate");
    }
}

static void on_read_index_barrier(struct node_barrier_req *req, int status)
{
    struct pending *p = req->data;
    struct service_call *call = p->call;
    msgpack_packer pk;

    if (status != 0) {
        fail(call, status, "ServiceUnavailable",
             "read barrier failed: leadership changed; retry");
        return;
    }
    if (p->index == 0) {
        p->index = node_applied_index(call->svc->node);
    }
    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_u64(&pk, "Index", p->index);
    reply(call);
}

/*
 * Cairn.ReadIndex: every write acknowledged before this request arrived
 * was applied here before it was acknowledged, so the index applied now
 * covers them all; the barrier proposed after it proves this node still
 * leads. The follower then waits for that index, which it usually holds
 * already: answering the barrier's own index instead would make it wait
 * for the next heartbeat to learn that the barrier committed. A leader
 * that has not applied an entry of its own term yet answers the index
 * applied after the barrier (node_read_index).
 */
static void m_read_index(struct service_call *call)
{
    struct pending *p = pending_new(call);
    if (p == NULL) {
        return;
    }
    p->index = node_read_index(call->svc->node);
    p->req.barrier.data = p;
    if (node_barrier(call->svc->node, &p->req.barrier, on_read_index_barrier) !=
        0) {
        not_leader(call);
    }
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Cairn.NodeStatus {Digest?}: this node's view. */
static void m_node_status(struct service_call *call)
{
    struct service *svc = call->svc;
    struct node_status st;
    struct mp_doc doc;
    bool want_digest = false;
    uint8_t digest[32];
    char digest_hex[65];
    uint64_t store_index = 0;
    msgpack_packer pk;
    int rv;

    if (!parse_body(call, &doc)) {
        return;
    }
    mp_get_bool(&doc.root, "Digest", &want_digest, NULL);
    mp_doc_close(&doc);
    if (want_digest) {
        rv = store_digest(svc->store, digest, &store_index, &call->err);
        hex(digest, sizeof(digest), digest_hex);
    } else {
        rv = store_applied_index(svc->store, &store_index, &call->err);
    }
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    node_get_status(svc->node, &st);
    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, want_digest ? 10 : 9);
    mp_pack_kv_u64(&pk, "Id", st.id);
    mp_pack_kv_cstr(&pk, "State", st.role);
    mp_pack_kv_u64(&pk, "Term", st.term);
    mp_pack_kv_u64(&pk, "CommitIndex", st.commit_index);
    mp_pack_kv_u64(&pk, "AppliedIndex", st.applied_index);
    mp_pack_kv_u64(&pk, "LeaderId", st.leader_id);
    mp_pack_kv_cstr(&pk, "RaftAddress", svc->raft_address);
    mp_pack_kv_cstr(&pk, "ApiAddress", svc->api_address);
    mp_pack_kv_u64(&pk, "StoreIndex", store_index);
    if (want_digest) {
        mp_pack_kv_cstr(&pk, "Digest", digest_hex);
    }
    reply(call);
}

/* Cairn.Members: the configuration as this node knows it, with each
 * member's API address from the member table. */
static void m_members(struct service_call *call)
{
    struct service *svc = call->svc;
    struct node_member members[SERVICE_MAX_MEMBERS];
    struct node_status st;
    unsigned n = node_members(svc->node, members, SERVICE_MAX_MEMBERS);
    msgpack_packer pk;

    if (n > SERVICE_MAX_MEMBERS) {
        n = SERVICE_MAX_MEMBERS;
    }
    load_members(svc);
    node_get_status(svc->node, &st);
    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_u64(&pk, "LeaderId", st.leader_id);
    mp_pack_kv_u64(&pk, "Term", st.term);
    mp_pack_cstr(&pk, "Members");
    msgpack_pack_array(&pk, n);
    for (unsigned i = 0; i < n; i++) {
        const char *api = member_api(svc, members[i].id, false);
        msgpack_pack_map(&pk, 4);
        mp_pack_kv_u64(&pk, "Id", members[i].id);
        mp_pack_kv_cstr(&pk, "RaftAddress", members[i].raft_address);
        mp_pack_kv_cstr(&pk, "ApiAddress", api != NULL ? api : "");
        mp_pack_kv_cstr(&pk, "Role", members[i].role);
    }
    reply(call);
}

/* Membership changes and the table updates that go with them. */
struct admin
{
    struct pending p; /* first: call->pending frees the whole struct */
    uint64_t id;
    char raft_address[256];
    char api_address[256];
    int step;
};

static void admin_table_done(struct node_propose_req *req,
                             int status,
                             const struct sm_outcome *o)
{
    struct admin *a = req->data;
    struct service_call *call = a->p.call;
    msgpack_packer pk;

    if (status != 0 || o->err.code != 0) {
        /* The Raft change is made; the address book lags until the
         * member registers itself. */
        log_warn("service: member table update for node %llu failed",
                 (unsigned long long)a->id);
    }
    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, 0);
    reply(call);
}

/* Record (or with @p remove, drop) the member in the table; @p done
 * runs once the command is applied. */
static void admin_update_table(struct admin *a,
                               bool remove,
                               node_propose_cb done)
{
    struct service_call *call = a->p.call;
    struct buf req, cmd;
    msgpack_packer pk;
    int rv;

    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, remove ? 1 : 3);
    mp_pack_kv_u64(&pk, "Id", a->id);
    if (!remove) {
        mp_pack_kv_cstr(&pk, "RaftAddress", a->raft_address);
        mp_pack_kv_cstr(&pk, "ApiAddress", a->api_address);
    }
    rv = req.oom ? CAIRN_RESOURCE_EXHAUSTED
                 : build_command(call, remove ? "RemoveMember" : "SetMember",
                                 req.data, req.len, &cmd);
    buf_close(&req);
    if (rv != 0) {
        fail(call, rv, NULL, "out of memory");
        return;
    }
    a->p.req.propose.data = a;
    rv = node_propose(call->svc->node, &a->p.req.propose, cmd.data, cmd.len,
                      done);
    buf_close(&cmd);
    if (rv != 0) {
        not_leader(call);
    }
}

static void on_member_added(struct node_change_req *req,
                            int status,
                            const char *message)
{
    struct admin *a = req->data;
    if (status != 0) {
        fail(a->p.call, status, "ServiceUnavailable", "add node %llu: %s",
             (unsigned long long)a->id, message);
        return;
    }
    if (a->api_address[0] == '\0') {
        struct service_call *call = a->p.call;
        msgpack_packer pk;
        buf_reset(&call->resp);
        mp_packer_init(&pk, &call->resp);
        msgpack_pack_map(&pk, 0);
        reply(call);
        return;
    }
    admin_update_table(a, false, admin_table_done);
}

static struct admin *admin_new(struct service_call *call)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return NULL;
    }
    a->p.call = call;
    cairn_queue_init(&a->p.link);
    call->pending = &a->p;
    return a;
}

static bool copy_address(struct service_call *call,
                         const msgpack_object *req,
                         const char *field,
                         bool required,
                         char *dst,
                         size_t cap)
{
    struct mp_str s;
    int r = mp_get_str(req, field, &s, &call->err);
    if (r < 0) {
        return false;
    }
    if (r == 0) {
        dst[0] = '\0';
        if (required) {
            cairn_error_set(&call->err, CAIRN_INVALID_ARGUMENT,
                            "ValidationException", "%s is required.", field);
        }
        return !required;
    }
    if (s.n == 0 || s.n >= cap || memchr(s.p, ':', s.n) == NULL ||
        memchr(s.p, ',', s.n) != NULL || memchr(s.p, '\0', s.n) != NULL) {
        cairn_error_set(
            &call->err, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "%s must be host:port, under %zu characters.", field, cap);
        return false;
    }
    memcpy(dst, s.p, s.n);
    dst[s.n] = '\0';
    return true;
}

static bool get_id(struct service_call *call,
                   const msgpack_object *req,
                   bool required,
                   uint64_t *id)
{
    int r = mp_get_u64(req, "Id", id, &call->err);
    if (r < 0) {
        return false;
    }
    if (r == 0) {
        *id = 0;
        if (required) {
            cairn_error_set(&call->err, CAIRN_INVALID_ARGUMENT,
                            "ValidationException", "Id is required.");
            return false;
        }
        return true;
    }
    if (*id == 0) {
        cairn_error_set(&call->err, CAIRN_INVALID_ARGUMENT,
                        "ValidationException", "Id must be 1 or more.");
        return false;
    }
    return true;
}

/* Cairn.AddMember {Id, RaftAddress, ApiAddress?}. */
static void m_add_member(struct service_call *call)
{
    struct mp_doc doc;
    struct admin *a;
    uint64_t id;
    char raft[256], api[256];
    bool ok;
    int rv;

    if (!parse_body(call, &doc)) {
        return;
    }
    ok = get_id(call, &doc.root, true, &id) &&
         copy_address(call, &doc.root, "RaftAddress", true, raft,
                      sizeof(raft)) &&
         copy_address(call, &doc.root, "ApiAddress", false, api, sizeof(api));
    mp_doc_close(&doc);
    if (!ok) {
        finish(call, call->err.code, NULL, 0);
        return;
    }
    a = admin_new(call);
    if (a == NULL) {
        return;
    }
    a->id = id;
    memcpy(a->raft_address, raft, sizeof(raft));
    memcpy(a->api_address, api, sizeof(api));
    a->p.req.change.data = a;
    rv = node_add_member(call->svc->node, &a->p.req.change, id, raft,
                         on_member_added);
    if (rv == 1) {
        on_member_added(&a->p.req.change, 0, "");
    } else if (rv == CAIRN_ALREADY_EXISTS) {
        fail(call, rv, "AlreadyExistsException",
             "node %llu or Raft address %s belongs to another member",
             (unsigned long long)id, raft);
    } else if (rv == CAIRN_UNAVAILABLE) {
        fail(call, rv, "ServiceUnavailable",
             "the leader is changing or another membership change is in "
             "progress; retry");
    } else if (rv != 0) {
        fail(call, rv, "ValidationException", "cannot add node %llu at %s",
             (unsigned long long)id, raft);
    }
}

static void on_member_removed(struct node_change_req *req,
                              int status,
                              const char *message)
{
    struct admin *a = req->data;
    struct service_call *call = a->p.call;
    msgpack_packer pk;

    if (status != 0) {
        fail(call, status, "ServiceUnavailable", "remove node %llu: %s",
             (unsigned long long)a->id, message);
        return;
    }
    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, 0);
    reply(call);
}

static void on_removed_from_table(struct node_propose_req *req,
                                  int status,
                                  const struct sm_outcome *o)
{
    struct admin *a = req->data;
    struct service_call *call = a->p.call;
    int rv;

    (void)o;
    if (status != 0) {
        fail(call, status, "ServiceUnavailable",
             "leadership changed while removing node %llu; retry",
             (unsigned long long)a->id);
        return;
    }
    a->p.req.change.data = a;
    rv = node_remove_member(call->svc->node, &a->p.req.change, a->id,
                            on_member_removed);
    if (rv == CAIRN_NOT_FOUND) {
        on_member_removed(&a->p.req.change, 0, "");
    } else if (rv != 0) {
        fail(call, rv, "ServiceUnavailable",
             "the leader is changing or another membership change is in "
             "progress; retry");
    }
}

/* Cairn.RemoveMember {Id}: out of the member table first (a member still
 * running registers itself again), then out of the configuration. */
static void m_remove_member(struct service_call *call)
{
    struct node_member members[SERVICE_MAX_MEMBERS];
    unsigned n = node_members(call->svc->node, members, SERVICE_MAX_MEMBERS);
    struct mp_doc doc;
    struct admin *a;
    uint64_t id;
    bool found = false;
    int rv;

    if (!parse_body(call, &doc)) {
        return;
    }
    rv = get_id(call, &doc.root, true, &id) ? 0 : call->err.code;
    mp_doc_close(&doc);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    for (unsigned i = 0; i < n && i < SERVICE_MAX_MEMBERS; i++) {
        found = found || members[i].id == id;
    }
    if (!found) {
        fail(call, CAIRN_NOT_FOUND, "NotFoundException",
             "node %llu is not a member", (unsigned long long)id);
        return;
    }
    a = admin_new(call);
    if (a == NULL) {
        return;
    }
    a->id = id;
    admin_update_table(a, true, on_removed_from_table);
}

static void on_transferred(struct node_change_req *req,
                           int status,
                           const char *message)
{
    struct admin *a = req->data;
    struct service_call *call = a->p.call;
    msgpack_packer pk;

    if (status != 0) {
        fail(call, status, "ServiceUnavailable", "%s", message);
        return;
    }
    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_u64(&pk, "LeaderId", req->leader);
    reply(call);
}

/* Cairn.TransferLeadership {Id?}. */
static void m_transfer(struct service_call *call)
{
    struct mp_doc doc;
    struct admin *a;
    uint64_t id;
    int rv;

    if (!parse_body(call, &doc)) {
        return;
    }
    rv = get_id(call, &doc.root, false, &id) ? 0 : call->err.code;
    mp_doc_close(&doc);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    a = admin_new(call);
    if (a == NULL) {
        return;
    }
    a->id = id;
    a->p.req.change.data = a;
    rv = node_transfer_leadership(call->svc->node, &a->p.req.change, id,
                                  on_transferred);
    if (rv == CAIRN_INVALID_ARGUMENT) {
        fail(call, rv, "ValidationException",
             "node %llu is not another voting member", (unsigned long long)id);
    } else if (rv == CAIRN_NOT_FOUND) {
        fail(call, rv, "NotFoundException",
             "there is no other voting member to lead");
    } else if (rv != 0) {
        not_leader(call);
    }
}

/* ---- self-registration ---------------------------------------------- */

static void on_registered(struct service_call *call,
                          int status,
                          const void *body,
                          size_t len)
{
    struct service *svc = call->data;
    (void)body;
    (void)len;
    svc->registering = false;
    if (status == 0) {
        load_members(svc);
    } else {
        log_debug("service: registering the API address: %s", call->err.msg);
    }
}

/* Make sure the member table has this node's addresses, so that followers
 * can forward to it; a write like any other, forwarded when needed. */
static void on_tick(uv_timer_t *t)
{
    struct service *svc = t->data;
    struct service_call *call = &svc->reg_call;
    struct buf req, cmd;
    msgpack_packer pk;
    uint64_t leader;
    const char *addr;
    const char *have;

    if (svc->closing || svc->registering || svc->api_address[0] == '\0') {
        return;
    }
    load_members(svc);
    have = member_api(svc, svc->id, false);
    svc->registered = have != NULL && strcmp(have, svc->api_address) == 0;
    /* Check often until registered: followers cannot forward before. */
    uv_timer_set_repeat(t, svc->registered ? 1000 : 100);
    node_leader(svc->node, &leader, &addr);
    if (svc->registered || leader == 0) {
        return;
    }
    memset(call, 0, sizeof(*call));
    call->svc = svc;
    call->data = svc;
    call->cb = on_registered;
    buf_init(&call->req);
    buf_init(&call->resp);
    snprintf(call->method, sizeof(call->method), "SetMember");
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_u64(&pk, "Id", svc->id);
    mp_pack_kv_cstr(&pk, "RaftAddress", svc->raft_address);
    mp_pack_kv_cstr(&pk, "ApiAddress", svc->api_address);
    if (req.oom || build_command(call, "SetMember", req.data, req.len, &cmd)) {
        buf_close(&req);
        return;
    }
    buf_close(&req);
    svc->registering = true;
    submit(call, cmd.data, cmd.len);
    buf_close(&cmd);
}

/* ---- dispatch -------------------------------------------------------- */

void service_call(struct service *svc,
                  struct service_call *call,
                  const char *method,
                  size_t method_len,
                  const void *body,
                  size_t body_len,
                  const struct service_meta *meta,
                  service_cb cb)
{
    const struct method *m = find_method(method, method_len);

    call->svc = svc;
    call->cb = cb;
    call->cancelled = false;
    call->pending = NULL;
    cairn_error_clear(&call->err);
    buf_init(&call->req);
    buf_init(&call->resp);
    memset(&call->meta, 0, sizeof(call->meta));
    if (m == NULL) {
        fail(call, CAIRN_UNIMPLEMENTED, "UnknownOperationException",
             "unknown method %.*s", (int)(method_len > 64 ? 64 : method_len),
             method);
        return;
    }
    snprintf(call->method, sizeof(call->method), "%s", m->name);
    if (meta != NULL) {
        call->meta.stale = meta->stale;
        call->meta.seq = meta->seq;
        if (meta->cid != NULL) {
            snprintf(call->cid, sizeof(call->cid), "%s", meta->cid);
            call->meta.cid = call->cid;
        }
        if (meta->user != NULL) {
            snprintf(call->user, sizeof(call->user), "%s", meta->user);
            call->meta.user = call->user;
        }
    }
    if (buf_append(&call->req, body, body_len) != 0) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    switch (m->kind) {
        case READ:
            start_read(call);
            break;
        case WRITE:
            start_write(call);
            break;
        case LOCAL:
            m->fn(call);
            break;
        case LEADER:
            if (!node_is_leader(svc->node)) {
                not_leader(call);
            } else {
                m->fn(call);
            }
            break;
        case ADMIN:
            if (node_is_leader(svc->node)) {
                m->fn(call);
            } else {
                /* The body moves into the forward; keep a copy alive. */
                struct buf copy = call->req;
                buf_init(&call->req);
                forward(call, m->name, copy.data, copy.len);
                buf_close(&copy);
            }
            break;
    }
}
