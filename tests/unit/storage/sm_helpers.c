#include "sm_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "mpjson.h"

void h_open(struct h *h, const struct store_options *opts)
{
    struct cairn_error err;
    memset(h, 0, sizeof(*h));
    if (opts != NULL) {
        h->opts = *opts;
    } else {
        store_options_default(&h->opts);
    }
    h->opts.no_sync = true;
    h->opts.map_size = (size_t)1 << 30;
    h->dir = test_mkdtemp();
    h->ts = 1700000000000;
    buf_init(&h->cmd);
    buf_init(&h->out);
    if (store_open(h->dir, &h->opts, &h->s, &err) != 0) {
        fail_msg("store_open: %s", err.msg);
    }
}

void h_close(struct h *h)
{
    store_close(h->s);
    h->s = NULL;
    buf_close(&h->cmd);
    buf_close(&h->out);
    test_rmdir(h->dir);
    h->dir = NULL;
}

void h_reopen(struct h *h)
{
    struct cairn_error err;
    store_close(h->s);
    if (store_open(h->dir, &h->opts, &h->s, &err) != 0) {
        fail_msg("store_open: %s", err.msg);
    }
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        fail_msg("vasprintf");
    }
    return s;
}

const struct sm_outcome *h_apply_raw(struct h *h, const void *cmd, size_t len)
{
    const struct sm_outcome *o = NULL;
    int rv = sm_apply(h->s, ++h->index, cmd, len, &o);
    if (rv != 0) {
        fail_msg("sm_apply fault %d: %s", rv, o->err.msg);
    }
    return o;
}

static const struct sm_outcome *vapply(struct h *h,
                                       const char *op,
                                       const char *fmt,
                                       va_list ap)
{
    char *req = vformat(fmt, ap);
    char *json = NULL;
    const struct sm_outcome *o;

    h->ts += 1000;
    if (asprintf(&json,
                 "{\"op\":\"%s\",\"ts\":%lld,\"user\":\"arn:aws:iam::"
                 "000000000000:user/test\",\"req\":%s}",
                 op, (long long)h->ts, req) < 0) {
        fail_msg("asprintf");
    }
    test_json_to_mp(json, &h->cmd);
    free(json);
    free(req);
    o = h_apply_raw(h, h->cmd.data, h->cmd.len);
    return o;
}

const struct sm_outcome *h_apply(struct h *h,
                                 const char *op,
                                 const char *fmt,
                                 ...)
{
    va_list ap;
    const struct sm_outcome *o;
    va_start(ap, fmt);
    o = vapply(h, op, fmt, ap);
    va_end(ap);
    return o;
}

static json_t *to_json(const void *p, size_t n)
{
    char *s = test_mp_to_json(p, n);
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    if (j == NULL) {
        fail_msg("bad JSON from msgpack: %s", je.text);
    }
    free(s);
    return j;
}

json_t *h_ok(struct h *h, const char *op, const char *fmt, ...)
{
    va_list ap;
    const struct sm_outcome *o;
    va_start(ap, fmt);
    o = vapply(h, op, fmt, ap);
    va_end(ap);
    if (o->err.code != 0) {
        fail_msg("%s failed: %s %s: %s", op, cairn_status_name(o->err.code),
                 o->err.type, o->err.msg);
    }
    assert_false(o->skipped);
    assert_non_null(o->body);
    return to_json(o->body, o->body_len);
}

const char *h_fail(struct h *h,
                   int code,
                   const char *type,
                   const char *op,
                   const char *fmt,
                   ...)
{
    va_list ap;
    const struct sm_outcome *o;
    va_start(ap, fmt);
    o = vapply(h, op, fmt, ap);
    va_end(ap);
    if (o->err.code != code || strcmp(o->err.type, type) != 0) {
        fail_msg("%s: want %s %s, got %s %s: %s", op, cairn_status_name(code),
                 type, cairn_status_name(o->err.code), o->err.type, o->err.msg);
    }
    assert_null(o->body);
    return o->err.msg;
}

json_t *h_q(struct h *h, const char *method, const char *fmt, ...)
{
    va_list ap;
    struct cairn_error err;
    char *req;
    json_t *j;

    va_start(ap, fmt);
    req = vformat(fmt, ap);
    va_end(ap);
    test_json_to_mp(req, &h->cmd);
    free(req);
    buf_reset(&h->out);
    if (query_run(h->s, method, h->cmd.data, h->cmd.len, &h->out, &err) != 0) {
        fail_msg("%s failed: %s %s: %s", method, cairn_status_name(err.code),
                 err.type, err.msg);
    }
    j = to_json(h->out.data, h->out.len);
    return j;
}

const char *h_qfail(struct h *h,
                    int code,
                    const char *type,
                    const char *method,
                    const char *fmt,
                    ...)
{
    static struct cairn_error err;
    va_list ap;
    char *req;
    int rv;

    va_start(ap, fmt);
    req = vformat(fmt, ap);
    va_end(ap);
    test_json_to_mp(req, &h->cmd);
    free(req);
    buf_reset(&h->out);
    rv = query_run(h->s, method, h->cmd.data, h->cmd.len, &h->out, &err);
    if (rv != code || err.code != code || strcmp(err.type, type) != 0) {
        fail_msg("%s: want %s %s, got %s %s: %s", method,
                 cairn_status_name(code), type, cairn_status_name(err.code),
                 err.type, err.msg);
    }
    assert_int_equal(h->out.len, 0);
    return err.msg;
}

uint64_t h_put(struct h *h, const char *name, const char *value)
{
    json_t *r = h_ok(h, "PutParameter",
                     "{\"Name\":\"%s\",\"Value\":\"%s\",\"Type\":\"String\","
                     "\"Overwrite\":true}",
                     name, value);
    uint64_t v = (uint64_t)ji(r, "Version");
    json_decref(r);
    return v;
}

const struct sm_outcome *h_put_secure(struct h *h,
                                      const char *name,
                                      const void *blob,
                                      size_t n,
                                      uint64_t plain_len,
                                      const char *key_id,
                                      bool overwrite)
{
    msgpack_packer pk;
    unsigned fields = 5 + (key_id != NULL);

    buf_reset(&h->cmd);
    mp_packer_init(&pk, &h->cmd);
    h->ts += 1000;
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_cstr(&pk, "op", "PutParameter");
    mp_pack_kv_i64(&pk, "ts", h->ts);
    mp_pack_kv_cstr(&pk, "user", "arn:aws:iam::000000000000:user/test");
    mp_pack_cstr(&pk, "req");
    msgpack_pack_map(&pk, fields);
    mp_pack_kv_cstr(&pk, "Name", name);
    mp_pack_kv_cstr(&pk, "Type", "SecureString");
    mp_pack_cstr(&pk, "Value");
    mp_pack_bin(&pk, blob, n);
    mp_pack_kv_u64(&pk, "ValueLength", plain_len);
    mp_pack_kv_bool(&pk, "Overwrite", overwrite);
    if (key_id != NULL) {
        mp_pack_kv_cstr(&pk, "KeyId", key_id);
    }
    assert_false(h->cmd.oom);
    return h_apply_raw(h, h->cmd.data, h->cmd.len);
}

const char *js(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long ji(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

char *h_long_name(const char *prefix, size_t len)
{
    size_t pn = strlen(prefix);
    char *s = malloc(len + 1);
    assert_non_null(s);
    assert_true(pn <= len);
    memcpy(s, prefix, pn);
    memset(s + pn, 'x', len - pn);
    s[len] = '\0';
    return s;
}
