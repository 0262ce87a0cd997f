#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mp.h"
#include "names.h"
#include "node.h"
#include "query.h"
#include "sm.h"
#include "store.h"

struct service
{
    struct node *node;
    struct store *store;
    char default_user[128];
};

/* A call waiting for the node: a proposal or a read barrier. */
struct pending
{
    union {
        struct node_propose_req propose;
        struct node_barrier_req barrier;
    } req;
    struct service_call *call;
};

enum kind { READ, WRITE };

struct method
{
    const char *name;
    enum kind kind;
    bool paged;
};

static const struct method methods[] = {
    {"GetParameter", READ, false},
    {"GetParameters", READ, false},
    {"GetParametersByPath", READ, true},
    {"GetParameterHistory", READ, true},
    {"DescribeParameters", READ, true},
    {"ListTagsForResource", READ, false},
    {"GetServiceSetting", READ, false},
    {"GetChanges", READ, false},
    {"PutParameter", WRITE, false},
    {"DeleteParameter", WRITE, false},
    {"DeleteParameters", WRITE, false},
    {"LabelParameterVersion", WRITE, false},
    {"UnlabelParameterVersion", WRITE, false},
    {"AddTagsToResource", WRITE, false},
    {"RemoveTagsFromResource", WRITE, false},
    {"UpdateServiceSetting", WRITE, false},
    {"ResetServiceSetting", WRITE, false},
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

int service_create(struct node *node,
                   struct store *store,
                   struct service **out,
                   struct cairn_error *err)
{
    const struct store_options *o = store_get_options(store);
    struct service *svc = calloc(1, sizeof(*svc));

    if (svc == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    svc->node = node;
    svc->store = store;
    /* No authentication yet: writes are attributed to the account root. */
    snprintf(svc->default_user, sizeof(svc->default_user),
             "arn:%s:iam::%s:root", o->arn.partition, o->arn.account);
    *out = svc;
    return 0;
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

static void start_read(struct service_call *call)
{
    struct pending *p;

    if (call->meta.stale) {
        run_read(call);
        return;
    }
    /* Linearizable: a barrier proposed after this read arrived is applied
     * before the read runs, so it sees every write acknowledged before. */
    if (!node_is_leader(call->svc->node)) {
        not_leader(call);
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    p->call = call;
    p->req.barrier.data = p;
    call->pending = p;
    if (node_barrier(call->svc->node, &p->req.barrier, on_barrier) != 0) {
        not_leader(call);
    }
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

static void start_write(struct service_call *call)
{
    struct mp_doc doc;
    struct buf cmd;
    msgpack_packer pk;
    struct pending *p;
    unsigned fields = 4;
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
    if (!node_is_leader(call->svc->node)) {
        not_leader(call);
        return;
    }

    /* The command carries everything that varies: time, caller, client
     * session. The request map goes in as it came. */
    buf_init(&cmd);
    mp_packer_init(&pk, &cmd);
    fields += call->meta.cid != NULL ? 2 : 0;
    msgpack_pack_map(&pk, fields);
    mp_pack_kv_cstr(&pk, "op", call->method);
    mp_pack_kv_i64(&pk, "ts", now_ms());
    mp_pack_kv_cstr(
        &pk, "user",
        call->meta.user != NULL ? call->meta.user : call->svc->default_user);
    if (call->meta.cid != NULL) {
        mp_pack_kv_cstr(&pk, "cid", call->meta.cid);
        mp_pack_kv_u64(&pk, "seq", call->meta.seq);
    }
    mp_pack_cstr(&pk, "req");
    buf_append(&cmd, call->req.data, call->req.len);
    if (cmd.oom) {
        buf_close(&cmd);
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        buf_close(&cmd);
        fail(call, CAIRN_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    p->call = call;
    p->req.propose.data = p;
    call->pending = p;
    rv = node_propose(call->svc->node, &p->req.propose, cmd.data, cmd.len,
                      on_applied);
    buf_close(&cmd);
    if (rv == CAIRN_UNAVAILABLE) {
        not_leader(call);
    } else if (rv != 0) {
        fail(call, rv, "ValidationException",
             "the request is too large to replicate");
    }
}

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
    if (m->kind == READ) {
        start_read(call);
    } else {
        start_write(call);
    }
}
