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
#include "secure.h"
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
    /* The leader's reads wait for a confirmation round (leader_confirm):
     * riders board the next round; one round at a time awaits its
     * quorum. */
    struct cairn_queue cf_riders; /* pending, by link */
    struct confirm_round *cf_open;
    /* SecureString: root keys and the keyring view; NULL if no root key. */
    struct secure *secure;
    struct service_call default_key_call; /* creating the default key */
    bool creating_default_key;
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
    struct cairn_queue link; /* in ri_riders / ri_boarded / cf_riders or a
                                confirm_round's riders */
    uint64_t index;          /* Cairn.ReadIndex: applied at arrival */
    void (*then)(struct service_call *call); /* after a read index */
    node_barrier_cb confirmed; /* leader_confirm: called with req.barrier */
};

/* READ and WRITE are the Parameter Store's methods; LOCAL ones answer from
 * this node; LEADER ones need the leader and are never forwarded (they are
 * what forwarding uses); ADMIN ones are forwarded to the leader as they
 * came; KMS ones build their command here (new key material). */
enum kind { READ, WRITE, LOCAL, LEADER, ADMIN, KMS };

struct method
{
    const char *name;
    enum kind kind;
    bool paged;
    void (*fn)(struct service_call *call);
    const char *op; /* query or state machine op; NULL: the method's name */
};

static void m_propose(struct service_call *call);
static void m_read_index(struct service_call *call);
static void m_term(struct service_call *call);
static void m_node_status(struct service_call *call);
static void m_members(struct service_call *call);
static void m_add_member(struct service_call *call);
static void m_remove_member(struct service_call *call);
static void m_transfer(struct service_call *call);
static void m_kms_create_key(struct service_call *call);
static void m_kms_rotate_key(struct service_call *call);
static void m_kms_rotate_root(struct service_call *call);

static const struct method methods[] = {
    {"GetParameter", READ, false, NULL, NULL},
    {"GetParameters", READ, false, NULL, NULL},
    {"GetParametersByPath", READ, true, NULL, NULL},
    {"GetParameterHistory", READ, true, NULL, NULL},
    {"DescribeParameters", READ, true, NULL, NULL},
    {"ListTagsForResource", READ, false, NULL, NULL},
    {"GetServiceSetting", READ, false, NULL, NULL},
    {"GetChanges", READ, false, NULL, NULL},
    {"PutParameter", WRITE, false, NULL, NULL},
    {"DeleteParameter", WRITE, false, NULL, NULL},
    {"DeleteParameters", WRITE, false, NULL, NULL},
    {"LabelParameterVersion", WRITE, false, NULL, NULL},
    {"UnlabelParameterVersion", WRITE, false, NULL, NULL},
    {"AddTagsToResource", WRITE, false, NULL, NULL},
    {"RemoveTagsFromResource", WRITE, false, NULL, NULL},
    {"UpdateServiceSetting", WRITE, false, NULL, NULL},
    {"ResetServiceSetting", WRITE, false, NULL, NULL},
    {"Cairn.Propose", LEADER, false, m_propose, NULL},
    {"Cairn.ReadIndex", LEADER, false, m_read_index, NULL},
    {"Cairn.Term", LOCAL, false, m_term, NULL},
    {"Cairn.NodeStatus", LOCAL, false, m_node_status, NULL},
    {"Cairn.Members", LOCAL, false, m_members, NULL},
    {"Cairn.AddMember", ADMIN, false, m_add_member, NULL},
    {"Cairn.RemoveMember", ADMIN, false, m_remove_member, NULL},
    {"Cairn.TransferLeadership", ADMIN, false, m_transfer, NULL},
    {"Kms.ListKeys", READ, false, NULL, "ListKeys"},
    {"Kms.DescribeKey", READ, false, NULL, "DescribeKey"},
    {"Kms.ListAliases", READ, false, NULL, "ListAliases"},
    {"Kms.CreateKey", KMS, false, m_kms_create_key, "CreateKey"},
    {"Kms.RotateKey", KMS, false, m_kms_rotate_key, "RotateKey"},
    {"Kms.RotateRootKey", KMS, false, m_kms_rotate_root, "RewrapKeyring"},
    {"Kms.CreateAlias", WRITE, false, NULL, "CreateAlias"},
    {"Kms.UpdateAlias", WRITE, false, NULL, "UpdateAlias"},
    {"Kms.DeleteAlias", WRITE, false, NULL, "DeleteAlias"},
    {"Kms.EnableKey", WRITE, false, NULL, "EnableKey"},
    {"Kms.DisableKey", WRITE, false, NULL, "DisableKey"},
    {"Kms.EnableKeyRotation", WRITE, false, NULL, "EnableKeyRotation"},
    {"Kms.DisableKeyRotation", WRITE, false, NULL, "DisableKeyRotation"},
    {"Kms.ScheduleKeyDeletion", WRITE, false, NULL, "ScheduleKeyDeletion"},
    {"Kms.CancelKeyDeletion", WRITE, false, NULL, "CancelKeyDeletion"},
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
    cairn_queue_init(&svc->cf_riders);
    if (o->root_key != NULL) {
        rv = secure_create(store, o->root_key, o->previous_root_key,
                           &svc->secure, err);
        if (rv == 0) {
            /* A wrong root key is a start-up error, never silent damage. */
            rv = secure_check_store(svc->secure, err);
        }
        if (rv != 0) {
            secure_destroy(svc->secure);
            free(svc);
            return rv;
        }
    }
    if (o->root_key == NULL && secure_store_has_keys(store)) {
        /* Encrypted material and no key to read it: refuse to start. */
        free(svc);
        return cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                               "the store holds SecureString key material "
                               "but no root key was given: start with "
                               "--root-key-file (the cluster's root key)");
    }
    rv = peer_pool_create(loop, &svc->peers, err);
    if (rv != 0) {
        secure_destroy(svc->secure);
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
    if (svc != NULL) {
        secure_destroy(svc->secure);
    }
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
    bool wipe = call->wipe;

    call->wipe = false;
    env_wipe_buf(&call->req);
    cb(call, status, body, len);
    if (wipe) {
        env_wipe_buf(&resp);
    } else {
        buf_close(&resp);
    }
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

/* True if the read request asks for decrypted values. */
static bool wants_decryption(struct service_call *call)
{
    static const char field[] = "WithDecryption";
    struct mp_doc d;
    bool with = false;

    /* Every read passes here: parse only requests that name the field, and
     * only when the answer holds a SecureString at all. */
    if (call->req.data == NULL || call->resp.data == NULL ||
        memmem(call->req.data, call->req.len, field, sizeof(field) - 1) ==
            NULL ||
        memmem(call->resp.data, call->resp.len, "SecureString", 12) == NULL) {
        return false;
    }
    if (mp_doc_parse(&d, call->req.data, call->req.len, NULL) == 0) {
        mp_get_bool(&d.root, "WithDecryption", &with, NULL);
        mp_doc_close(&d);
    }
    return with;
}

/* ---- leadership confirmation ---------------------------------------- */

/*
 * A linearizable read on the leader needs proof that this node still led
 * after the read arrived: a leader deposed meanwhile could miss writes
 * acknowledged by its successor. A barrier (an entry through the log) gives
 * the proof but costs a disk write on a majority and queues behind the
 * writes in flight. Instead the leader asks every other voter for its
 * current term (Cairn.Term, no disk). Terms only grow and a voter's term
 * moves past T before it votes for a leader of a later term, so if a
 * majority, this node included, answer T after the read arrived, no other
 * leader had been elected by then (Raft thesis, section 6.4). Every write
 * acknowledged before the read was applied here before it was
 * acknowledged, so the store already holds them: nothing to wait for. A
 * new leader that has not applied an entry of its own term yet
 * (node_read_index 0), or one that cannot reach the voters' API
 * addresses, uses the barrier.
 */
struct confirm_round
{
    struct service *svc;
    uint64_t term;
    unsigned need;        /* answers of term T still needed */
    unsigned outstanding; /* peer calls not yet called back */
    bool decided;
    struct cairn_queue riders; /* pending, by link */
    struct peer_call calls[SERVICE_MAX_MEMBERS];
};

static void flush_confirm(struct service *svc);

/* Complete the riders: proven (status 0), or else left to a barrier, which
 * also settles whether this node still leads. */
static void confirm_complete(struct service *svc,
                             struct cairn_queue *riders,
                             int status)
{
    while (!cairn_queue_empty(riders)) {
        struct cairn_queue *q = cairn_queue_head(riders);
        struct pending *p = cairn_queue_data(q, struct pending, link);
        node_barrier_cb cb = p->confirmed;

        cairn_queue_remove(q);
        cairn_queue_init(q);
        if (status == 0) {
            cb(&p->req.barrier, 0);
        } else if (svc->closing ||
                   node_barrier(svc->node, &p->req.barrier, cb) != 0) {
            cb(&p->req.barrier, CAIRN_UNAVAILABLE);
        }
    }
}

static void confirm_decide(struct confirm_round *r, int status)
{
    struct service *svc = r->svc;

    r->decided = true;
    if (svc->cf_open == r) {
        svc->cf_open = NULL;
    }
    confirm_complete(svc, &r->riders, status);
}

static void on_term(struct peer_call *pc,
                    int status,
                    const char *type,
                    const char *message,
                    const void *body,
                    size_t len)
{
    struct confirm_round *r = pc->data;
    struct service *svc = r->svc;
    uint64_t term = 0;
    struct mp_doc d;

    (void)type;
    (void)message;
    if (status == 0 && mp_doc_parse(&d, body, len, NULL) == 0) {
        if (mp_get_u64(&d.root, "Term", &term, NULL) != 1) {
            term = 0;
        }
        mp_doc_close(&d);
    }
    r->outstanding--;
    if (!r->decided && term == r->term && r->need > 0 && --r->need == 0) {
        /* Still the leader of that term as far as this node knows? */
        confirm_decide(
            r, node_is_leader(svc->node) && node_term(svc->node) == r->term
                   ? 0
                   : CAIRN_UNAVAILABLE);
    }
    if (!r->decided && r->outstanding < r->need) {
        confirm_decide(r, CAIRN_UNAVAILABLE); /* no quorum this round */
    }
    if (r->outstanding == 0) {
        free(r);
        flush_confirm(svc);
    } else if (r->decided) {
        flush_confirm(svc); /* the next round need not wait for stragglers */
    }
}

/* Start a round for the riders, unless one awaits its quorum. */
static void flush_confirm(struct service *svc)
{
    struct node_member m[SERVICE_MAX_MEMBERS];
    const char *apis[SERVICE_MAX_MEMBERS];
    struct confirm_round *r;
    unsigned n, voters = 0, others = 0;

    if (svc->cf_open != NULL || cairn_queue_empty(&svc->cf_riders)) {
        return;
    }
    if (svc->closing || node_read_index(svc->node) == 0) {
        goto barrier;
    }
    n = node_members(svc->node, m, SERVICE_MAX_MEMBERS);
    if (n > SERVICE_MAX_MEMBERS) {
        goto barrier;
    }
    /* Every voter's API address from the member table, reloaded at most
     * once: a reload rewrites the table the addresses point into. */
    for (int pass = 0;; pass++) {
        bool missing = false;
        voters = others = 0;
        for (unsigned i = 0; i < n && !missing; i++) {
            if (strcmp(m[i].role, "voter") != 0) {
                continue;
            }
            voters++;
            if (m[i].id != svc->id) {
                apis[others] = member_api(svc, m[i].id, false);
                missing = apis[others++] == NULL;
            }
        }
        if (!missing) {
            break;
        }
        if (pass == 1) {
            goto barrier;
        }
        load_members(svc);
    }
    if (voters == 0 || others + 1 != voters) {
        goto barrier; /* this node is not a voter: let Raft decide */
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        goto barrier;
    }
    r->svc = svc;
    r->term = node_term(svc->node);
    r->need = voters / 2; /* a majority with this node's own vote */
    cairn_queue_init(&r->riders);
    while (!cairn_queue_empty(&svc->cf_riders)) {
        struct cairn_queue *q = cairn_queue_head(&svc->cf_riders);
        cairn_queue_remove(q);
        cairn_queue_push(&r->riders, q);
    }
    if (r->need == 0) {
        confirm_decide(r, 0); /* the only voter */
        free(r);
        return;
    }
    svc->cf_open = r;
    for (unsigned i = 0; i < others; i++) {
        r->calls[i].data = r;
        if (peer_call_start(svc->peers, &r->calls[i], apis[i], "Cairn.Term",
                            NULL, 0, "\x80", 1, svc->forward_timeout_ms,
                            on_term) == 0) {
            r->outstanding++;
        }
    }
    if (r->outstanding < r->need) {
        if (!r->decided) {
            confirm_decide(r, CAIRN_UNAVAILABLE);
        }
        if (r->outstanding == 0) {
            free(r);
        }
    }
    return;

barrier:
    /* Riders fall back to a barrier (node_barrier shares one). */
    confirm_complete(svc, &svc->cf_riders, CAIRN_UNAVAILABLE);
}

/* Call @p cb with p->req.barrier (its data set by the caller) once this
 * node is known to have led after this call (status 0), or with
 * UNAVAILABLE. Returns UNAVAILABLE without calling @p cb if this node is
 * not the leader, as node_barrier does. */
static int leader_confirm(struct service *svc,
                          struct pending *p,
                          node_barrier_cb cb)
{
    if (!node_is_leader(svc->node)) {
        return CAIRN_UNAVAILABLE;
    }
    p->confirmed = cb;
    cairn_queue_push(&svc->cf_riders, &p->link);
    flush_confirm(svc);
    return 0;
}

static void run_read(struct service_call *call)
{
    struct buf plain;
    int rv;

    buf_reset(&call->resp);
    rv = query_run(call->svc->store, call->op, call->req.data, call->req.len,
                   &call->resp, &call->err);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    if (call->svc->secure != NULL && wants_decryption(call)) {
        buf_init(&plain);
        call->wipe = true;
        rv = secure_open_response(call->svc->secure, call->resp.data,
                                  call->resp.len, &plain, &call->err);
        if (rv != 0) {
            env_wipe_buf(&plain);
            finish(call, rv, NULL, 0);
            return;
        }
        buf_close(&call->resp);
        call->resp = plain;
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
    if (p->then != NULL) {
        void (*then)(struct service_call *) = p->then;
        /* The next step may wait again: release this wait first. */
        free(call->pending);
        call->pending = NULL;
        then(call);
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
        if (leader_confirm(svc, p, on_barrier) != 0) {
            not_leader(call);
        }
        return;
    }
    cairn_queue_push(&svc->ri_riders, &p->link);
    flush_read_index(svc);
}

/* On a follower: run @p then once this node has applied the leader's read
 * index, i.e. once it has seen every write acknowledged so far. */
static void read_index_then(struct service_call *call,
                            void (*then)(struct service_call *call))
{
    struct pending *p = pending_new(call);
    if (p == NULL) {
        return;
    }
    p->then = then;
    cairn_queue_push(&call->svc->ri_riders, &p->link);
    flush_read_index(call->svc);
}

/* ---- writes --------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a PutParameter of a SecureString needs: its canonical name and the
 * key to seal with (NULL: the default key). */
struct secure_put
{
    bool secure;
    struct names_name name;
    char key_id[257];
    bool has_key_id;
    char pattern[1025]; /* AllowedPattern: the request's or the stored one */
    bool has_pattern;
};

/* The stored type and KeyId of parameter @p name in the local store, for
 * an overwrite that leaves them out. */
static void stored_type(struct service_call *call,
                        struct mp_str name,
                        bool *secure,
                        struct secure_put *sp)
{
    struct buf q, resp;
    msgpack_packer pk;
    struct cairn_error e;
    struct mp_doc d;

    buf_init(&q);
    buf_init(&resp);
    mp_packer_init(&pk, &q);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_str(&pk, "Name", name.p, name.n);
    if (!q.oom &&
        query_run(call->svc->store, "GetParameterType", q.data, q.len, &resp,
                  &e) == 0 &&
        mp_doc_parse(&d, resp.data, resp.len, NULL) == 0) {
        struct mp_str t, k;
        if (mp_get_str(&d.root, "Type", &t, NULL) == 1 &&
            mp_str_eqn(t, "SecureString")) {
            *secure = true;
            if (mp_get_str(&d.root, "KeyId", &k, NULL) == 1 &&
                k.n < sizeof(sp->key_id) && !sp->has_key_id) {
                memcpy(sp->key_id, k.p, k.n);
                sp->key_id[k.n] = '\0';
                sp->has_key_id = true;
            }
            if (mp_get_str(&d.root, "AllowedPattern", &k, NULL) == 1 &&
                k.n < sizeof(sp->pattern) && !sp->has_pattern) {
                memcpy(sp->pattern, k.p, k.n);
                sp->pattern[k.n] = '\0';
                sp->has_pattern = true;
            }
        }
        mp_doc_close(&d);
    }
    buf_close(&q);
    buf_close(&resp);
}

/* Checks that need no state, so that requests bound to fail never enter
 * the log (the state machine checks everything again), and what sealing a
 * SecureString needs. */
static int validate_write(struct service_call *call,
                          const msgpack_object *req,
                          struct secure_put *sp)
{
    struct mp_str name, type, key_id;
    bool secure = false;
    int r;

    memset(sp, 0, sizeof(*sp));
    if (strcmp(call->op, "PutParameter") != 0) {
        return 0;
    }
    if (mp_get_str(req, "Name", &name, &call->err) < 0 ||
        mp_get_str(req, "Type", &type, &call->err) < 0) {
        return call->err.code;
    }
    r = mp_get_str(req, "KeyId", &key_id, &call->err);
    if (r < 0) {
        return call->err.code;
    }
    if (name.p == NULL) {
        return 0; /* the state machine names what is missing */
    }
    if (names_check_write(name.p, name.n, &sp->name, &call->err) != 0) {
        return call->err.code;
    }
    if (type.p != NULL) {
        secure = mp_str_eqn(type, "SecureString");
    } else {
        /* An overwrite without Type keeps the stored type: a SecureString
         * is never overwritten with plaintext. */
        stored_type(call, name, &secure, sp);
    }
    if (r == 1 && secure) {
        if (key_id.n == 0 || key_id.n >= sizeof(sp->key_id)) {
            return cairn_error_set(&call->err, CAIRN_INVALID_ARGUMENT,
                                   "InvalidKeyId",
                                   "KeyId must have 1 to %zu "
                                   "characters.",
                                   sizeof(sp->key_id) - 1);
        }
        memcpy(sp->key_id, key_id.p, key_id.n);
        sp->key_id[key_id.n] = '\0';
        sp->has_key_id = true;
    }
    {
        struct mp_str pat;
        int rp = mp_get_str(req, "AllowedPattern", &pat, &call->err);
        if (rp < 0) {
            return call->err.code;
        }
        if (rp == 1 && pat.n < sizeof(sp->pattern)) {
            memcpy(sp->pattern, pat.p, pat.n);
            sp->pattern[pat.n] = '\0';
            sp->has_pattern = true;
        }
    }
    if (secure && (!sp->has_key_id || !sp->has_pattern) && type.p != NULL) {
        /* An overwrite without KeyId keeps the stored key. */
        bool stored_secure = false;
        stored_type(call, name, &stored_secure, sp);
    }
    if (secure && call->svc->secure == NULL) {
        /* Plaintext must never reach the log. */
        return cairn_error_set(&call->err, CAIRN_UNIMPLEMENTED,
                               "UnsupportedParameterType",
                               "SecureString parameters need a root key, "
                               "which this server was not given.");
    }
    sp->secure = secure;
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

static void ensure_default_key(struct service *svc);

static void start_write(struct service_call *call)
{
    struct mp_doc doc;
    struct secure_put sp;
    struct buf cmd, sealed;
    const void *req = call->req.data;
    size_t req_len = call->req.len;
    int rv;

    rv = mp_doc_parse_map(&doc, call->req.data, call->req.len, &call->err);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    rv = validate_write(call, &doc.root, &sp);
    buf_init(&sealed);
    if (rv == 0 && sp.secure && sp.has_pattern) {
        /* The state machine cannot see a sealed value: the plaintext is
         * checked against AllowedPattern here. */
        struct mp_str value = {NULL, 0}, pat = {sp.pattern, strlen(sp.pattern)};
        bool is_bin = false;
        if (mp_get_bytes(&doc.root, "Value", &value, &is_bin, NULL) == 1 &&
            !is_bin) {
            rv = sm_check_pattern(pat, value, &call->err);
        }
    }
    if (rv == 0 && sp.secure) {
        /* Sealed here, by the node that received the value: only the blob
         * enters the command, the log and the store. */
        struct mp_str canonical = {sp.name.canonical, sp.name.canonical_len};
        rv = secure_seal_put(call->svc->secure, &doc.root, canonical,
                             sp.has_key_id ? sp.key_id : NULL, &sealed,
                             &call->err);
        call->wipe = true;
    }
    mp_doc_close(&doc);
    if (rv == CAIRN_NOT_FOUND) {
        struct service *svc = call->svc;
        env_wipe_buf(&sealed);
        if (!call->retried && !node_is_leader(svc->node)) {
            /* The key may be newer than this follower's copy. */
            call->retried = true;
            read_index_then(call, start_write);
            return;
        }
        if (!sp.has_key_id) {
            ensure_default_key(svc);
            fail(call, CAIRN_UNAVAILABLE, "ServiceUnavailable",
                 "the default key (alias/aws/ssm) is being created; retry");
            return;
        }
        fail(call, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
             "The key %s does not exist.", sp.key_id);
        return;
    }
    if (rv != 0) {
        env_wipe_buf(&sealed);
        finish(call, rv, NULL, 0);
        return;
    }
    if (sp.secure) {
        req = sealed.data;
        req_len = sealed.len;
    }
    rv = build_command(call, call->op, req, req_len, &cmd);
    env_wipe_buf(&sealed);
    if (rv != 0) {
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
    if (leader_confirm(call->svc, p, on_read_index_barrier) != 0) {
        not_leader(call);
    }
}

/* Cairn.Term: this node's current term, for a leader confirming that it
 * still leads (leader_confirm). */
static void m_term(struct service_call *call)
{
    msgpack_packer pk;

    buf_reset(&call->resp);
    mp_packer_init(&pk, &call->resp);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_u64(&pk, "Term", node_term(call->svc->node));
    reply(call);
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

/* ---- the keyring ------------------------------------------------------ */

/* Build command @p op from the request map in @p req and replicate it. */
static void submit_op(struct service_call *call,
                      const char *op,
                      struct buf *req)
{
    struct buf cmd;
    int rv = req->oom ? CAIRN_RESOURCE_EXHAUSTED
                      : build_command(call, op, req->data, req->len, &cmd);
    buf_close(req);
    if (rv != 0) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    submit(call, cmd.data, cmd.len);
    buf_close(&cmd);
}

/* Pack a new key's fields: KeyId, version 1 material, root key. */
static int pack_new_key(struct service *svc,
                        msgpack_packer *pk,
                        char id[37],
                        struct cairn_error *err)
{
    uint8_t wrapped[ENV_WRAPPED_LEN];
    int rv = secure_new_key_id(id, err);
    if (rv == 0) {
        rv = secure_new_material(svc->secure, id, 1, wrapped, err);
    }
    if (rv != 0) {
        return rv;
    }
    mp_pack_kv_cstr(pk, "KeyId", id);
    mp_pack_cstr(pk, "Material");
    mp_pack_bin(pk, wrapped, sizeof(wrapped));
    mp_pack_kv_cstr(pk, "RootKey", secure_root_fingerprint(svc->secure));
    return 0;
}

/* Kms.CreateKey {Description?}: the material is made and wrapped here. */
static void m_kms_create_key(struct service_call *call)
{
    struct mp_doc doc;
    struct mp_str desc = {NULL, 0};
    struct buf req;
    msgpack_packer pk;
    char id[37];
    int rv;

    if (!parse_body(call, &doc)) {
        return;
    }
    if (mp_get_str(&doc.root, "Description", &desc, &call->err) < 0) {
        mp_doc_close(&doc);
        finish(call, call->err.code, NULL, 0);
        return;
    }
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, desc.p != NULL ? 4 : 3);
    rv = pack_new_key(call->svc, &pk, id, &call->err);
    if (desc.p != NULL) {
        mp_pack_kv_str(&pk, "Description", desc.p, desc.n);
    }
    mp_doc_close(&doc);
    if (rv != 0) {
        buf_close(&req);
        finish(call, rv, NULL, 0);
        return;
    }
    submit_op(call, "CreateKey", &req);
}

/* Kms.RotateKey {KeyId}: new material for the next version, which the
 * state machine accepts only if it is still the next one. */
static void m_kms_rotate_key(struct service_call *call)
{
    struct mp_doc doc, km;
    struct mp_str kid;
    struct buf q, resp, req;
    msgpack_packer pk;
    uint64_t current = 0;
    struct mp_str canon;
    char id[65];
    uint8_t wrapped[ENV_WRAPPED_LEN];
    int rv;

    /* The next version comes from this node's copy of the keyring: on a
     * follower, wait until it holds every change acknowledged so far. */
    if (!call->retried && !node_is_leader(call->svc->node)) {
        call->retried = true;
        read_index_then(call, m_kms_rotate_key);
        return;
    }
    if (!parse_body(call, &doc)) {
        return;
    }
    rv = mp_get_str(&doc.root, "KeyId", &kid, &call->err);
    if (rv != 1) {
        mp_doc_close(&doc);
        fail(call, CAIRN_INVALID_ARGUMENT, "ValidationException",
             "KeyId is required.");
        return;
    }
    buf_init(&q);
    buf_init(&resp);
    mp_packer_init(&pk, &q);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_str(&pk, "KeyId", kid.p, kid.n);
    mp_doc_close(&doc);
    rv = q.oom ? CAIRN_RESOURCE_EXHAUSTED
               : query_run(call->svc->store, "GetKeyMaterial", q.data, q.len,
                           &resp, &call->err);
    buf_close(&q);
    if (rv == 0) {
        rv = mp_doc_parse(&km, resp.data, resp.len, &call->err);
    }
    if (rv != 0) {
        buf_close(&resp);
        finish(call, rv, NULL, 0);
        return;
    }
    if (mp_get_str(&km.root, "KeyId", &canon, NULL) != 1 || canon.n == 0 ||
        canon.n >= sizeof(id) ||
        mp_get_u64(&km.root, "CurrentVersion", &current, NULL) != 1) {
        mp_doc_close(&km);
        buf_close(&resp);
        fail(call, CAIRN_INTERNAL, "InternalServerError",
             "the keyring entry is malformed");
        return;
    }
    memcpy(id, canon.p, canon.n);
    id[canon.n] = '\0';
    mp_doc_close(&km);
    buf_close(&resp);
    rv = secure_new_material(call->svc->secure, id, (uint32_t)current + 1,
                             wrapped, &call->err);
    if (rv != 0) {
        finish(call, rv, NULL, 0);
        return;
    }
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_cstr(&pk, "KeyId", id);
    mp_pack_kv_u64(&pk, "Version", current + 1);
    mp_pack_cstr(&pk, "Material");
    mp_pack_bin(&pk, wrapped, sizeof(wrapped));
    mp_pack_kv_cstr(&pk, "RootKey", secure_root_fingerprint(call->svc->secure));
    submit_op(call, "RotateKey", &req);
}

/* Kms.RotateRootKey: every key version re-wrapped by this node's root key,
 * unwrapped with whichever root key (current or previous) wrapped it. */
static void m_kms_rotate_root(struct service_call *call)
{
    struct buf req;
    int rv;

    if (!call->retried && !node_is_leader(call->svc->node)) {
        call->retried = true;
        read_index_then(call, m_kms_rotate_root);
        return;
    }

    buf_init(&req);
    rv = secure_rewrap_request(call->svc->secure, &req, &call->err);
    if (rv != 0) {
        buf_close(&req);
        finish(call, rv, NULL, 0);
        return;
    }
    submit_op(call, "RewrapKeyring", &req);
}

static void on_default_key(struct service_call *call,
                           int status,
                           const void *body,
                           size_t len)
{
    struct service *svc = call->data;
    (void)body;
    (void)len;
    svc->creating_default_key = false;
    if (status != 0) {
        log_warn("service: creating the default key: %s", call->err.msg);
    } else {
        log_info("service: the default key (alias/aws/ssm) exists");
    }
}

/* The default key answers to alias/aws/ssm; the leader creates it (the
 * state machine keeps the first, so a race between leaders is harmless). */
static void ensure_default_key(struct service *svc)
{
    struct service_call *call = &svc->default_key_call;
    struct buf req;
    msgpack_packer pk;
    char id[37];

    if (svc->secure == NULL || svc->closing || svc->creating_default_key ||
        !node_is_leader(svc->node) || secure_has_default_key(svc->secure)) {
        return;
    }
    memset(call, 0, sizeof(*call));
    call->svc = svc;
    call->data = svc;
    call->cb = on_default_key;
    call->op = "CreateKey";
    buf_init(&call->req);
    buf_init(&call->resp);
    snprintf(call->method, sizeof(call->method), "CreateKey");
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 5);
    if (pack_new_key(svc, &pk, id, &call->err) != 0) {
        buf_close(&req);
        log_warn("service: no material for the default key: %s", call->err.msg);
        return;
    }
    mp_pack_kv_bool(&pk, "Default", true);
    mp_pack_kv_cstr(&pk, "Description",
                    "Default key for SecureString parameters");
    svc->creating_default_key = true;
    submit_op(call, "CreateKey", &req);
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

    ensure_default_key(svc);
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
    call->op = "SetMember";
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
    call->op = m->op != NULL ? m->op : m->name;
    call->wipe = false;
    call->retried = false;
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
        case KMS:
            if (svc->secure == NULL) {
                fail(call, CAIRN_UNIMPLEMENTED, "UnsupportedOperation",
                     "this server was not given a root key");
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
