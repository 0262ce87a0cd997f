#include "sm_helpers.h"

#include <ctype.h>
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

void h_material(uint8_t out[H_MATERIAL_LEN], const char *root_key, int fill)
{
    assert_int_equal(strlen(root_key), 16);
    memcpy(out, "CRNW", 4);
    out[4] = 1;
    for (int i = 0; i < 8; i++) {
        unsigned b;
        assert_int_equal(sscanf(root_key + 2 * i, "%2x", &b), 1);
        out[5 + i] = (uint8_t)b;
    }
    memset(out + 13, fill, H_MATERIAL_LEN - 13);
}

const struct sm_outcome *h_apply_req(struct h *h,
                                     const char *op,
                                     const void *req,
                                     size_t len)
{
    struct buf cmd;
    msgpack_packer pk;
    const struct sm_outcome *o;

    buf_init(&cmd);
    mp_packer_init(&pk, &cmd);
    h->ts += 1000;
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_cstr(&pk, "op", op);
    mp_pack_kv_i64(&pk, "ts", h->ts);
    mp_pack_kv_cstr(&pk, "user", "arn:aws:iam::000000000000:user/test");
    mp_pack_cstr(&pk, "req");
    buf_append(&cmd, req, len);
    assert_false(cmd.oom);
    o = h_apply_raw(h, cmd.data, cmd.len);
    buf_close(&cmd);
    return o;
}

const struct sm_outcome *h_create_key(struct h *h,
                                      const char *key_id,
                                      const char *alias,
                                      bool is_default)
{
    uint8_t m[H_MATERIAL_LEN];
    struct buf req;
    msgpack_packer pk;
    const struct sm_outcome *o;

    h_material(m, H_ROOT_KEY, 1);
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 3 + (alias != NULL) + is_default);
    mp_pack_kv_cstr(&pk, "KeyId", key_id);
    mp_pack_cstr(&pk, "Material");
    mp_pack_bin(&pk, m, sizeof(m));
    mp_pack_kv_cstr(&pk, "RootKey", H_ROOT_KEY);
    if (alias != NULL) {
        mp_pack_cstr(&pk, "Aliases");
        msgpack_pack_array(&pk, 1);
        mp_pack_cstr(&pk, alias);
    }
    if (is_default) {
        mp_pack_kv_bool(&pk, "Default", true);
    }
    assert_false(req.oom);
    o = h_apply_req(h, "CreateKey", req.data, req.len);
    buf_close(&req);
    return o;
}

void h_ensure_key(struct h *h, const char *key_ref)
{
    struct cairn_error err;
    struct buf q, out;
    msgpack_packer pk;
    const struct sm_outcome *o;
    char id[65];
    int rv;

    if (key_ref == NULL || strncmp(key_ref, "alias/aws/", 10) == 0) {
        o = h_create_key(h, "default-key", NULL, true);
        if (o->err.code != 0) {
            fail_msg("default key: %s %s", o->err.type, o->err.msg);
        }
        return;
    }
    buf_init(&q);
    buf_init(&out);
    mp_packer_init(&pk, &q);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_cstr(&pk, "KeyId", key_ref);
    rv = query_run(h->s, "DescribeKey", q.data, q.len, &out, &err);
    buf_close(&q);
    buf_close(&out);
    if (rv == 0) {
        return;
    }
    if (strncmp(key_ref, "alias/", 6) == 0) {
        size_t n = 0;
        for (const char *p = key_ref + 6; *p != '\0' && n < 60; p++) {
            id[n++] = (isalnum((unsigned char)*p) || *p == '-') ? *p : '-';
        }
        memcpy(id + n, "-key", 5);
        o = h_create_key(h, id, key_ref, false);
    } else {
        o = h_create_key(h, key_ref, NULL, false);
    }
    if (o->err.code != 0) {
        fail_msg("key %s: %s %s", key_ref, o->err.type, o->err.msg);
    }
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
