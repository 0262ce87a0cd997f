#include "sm.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "keys.h"
#include "names.h"
#include "policy.h"
#include "store_int.h"

/* Matching limits for AllowedPattern: a pattern that backtracks without end
 * must not stall the state machine. The limits count work, not time, so
 * every replica reaches the same verdict. */
#define SM_PCRE_MATCH_LIMIT 1000000
#define SM_PCRE_DEPTH_LIMIT 10000
#define SM_PCRE_HEAP_LIMIT_KIB 8192

#define DEFAULT_KEY_ID "alias/aws/ssm"
#define TIER_STANDARD "Standard"
#define TIER_ADVANCED "Advanced"
#define TIER_INTELLIGENT "Intelligent-Tiering"
#define SETTING_DEFAULT_TIER "/ssm/parameter-store/default-parameter-tier"

/* Handlers return OK, a business status (with c->err filled), or FAULT
 * after a local storage failure (c->fault_err filled): then the whole
 * transaction is abandoned. */
#define FAULT (-1)

struct ctx
{
    struct store *s;
    MDB_txn *txn;
    const msgpack_object *req;
    int64_t ts;
    struct mp_str user;
    struct cairn_error *err;
    struct cairn_error fault_err;
    msgpack_packer pk; /* response body, into s->out */
    uint64_t revision;
};

static int fault(struct ctx *c, int rc, const char *what)
{
    store_status_from_mdb(rc, &c->fault_err, what);
    return FAULT;
}

static int validation(struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int validation(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_error_vset(c->err, CAIRN_INVALID_ARGUMENT, "ValidationException", fmt,
                     ap);
    va_end(ap);
    return CAIRN_INVALID_ARGUMENT;
}

static int oom(struct ctx *c)
{
    cairn_error_set(&c->fault_err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                    "out of memory");
    return FAULT;
}

/* ---- small helpers -------------------------------------------------- */

static bool str_eq(struct mp_str a, struct mp_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static struct mp_str cstr(const char *s)
{
    struct mp_str r = {s, strlen(s)};
    return r;
}

/* Copy an LMDB value into @p copy so it survives later writes in the same
 * write transaction (LMDB memory is only valid until the next update). */
static int load(struct ctx *c,
                MDB_dbi dbi,
                const void *key,
                size_t klen,
                struct buf *copy,
                bool *found)
{
    MDB_val k = {klen, (void *)key};
    MDB_val d;
    int rc = mdb_get(c->txn, dbi, &k, &d);
    *found = false;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return fault(c, rc, "get");
    }
    buf_reset(copy);
    if (buf_append(copy, d.mv_data, d.mv_size) != 0) {
        return oom(c);
    }
    *found = true;
    return 0;
}

static int decode(struct ctx *c, struct buf *copy, struct rec *r)
{
    if (rec_decode(copy->data, copy->len, r, 0, &c->fault_err) != 0) {
        return FAULT;
    }
    return 0;
}

/* How a record is put: GROWING for keys that usually sort after every
 * key in their table (new versions, ids only grow; feed rows, revisions
 * only grow). Those are tried with MDB_APPEND first, which fills each page
 * before starting the next: an ordinary insert at the end splits the last
 * page in half, and the left half stays half empty for good (with 1 KB
 * values the versions table was half again as large). MDB_APPEND refuses
 * a key that is not the largest (MDB_KEYEXIST, nothing written); the
 * ordinary insert then runs. */
enum put_how { ANYWHERE, GROWING };

static int put_as(struct ctx *c,
                  MDB_dbi dbi,
                  const void *key,
                  size_t klen,
                  const void *val,
                  size_t vlen,
                  enum put_how how)
{
    MDB_val k = {klen, (void *)key};
    MDB_val d = {vlen, (void *)val};
    int rc = MDB_KEYEXIST;

    if (how == GROWING) {
        rc = mdb_put(c->txn, dbi, &k, &d, MDB_APPEND);
    }
    if (rc == MDB_KEYEXIST) {
        rc = mdb_put(c->txn, dbi, &k, &d, 0);
    }
    return rc != 0 ? fault(c, rc, "put") : 0;
}

static int put(struct ctx *c,
               MDB_dbi dbi,
               const void *key,
               size_t klen,
               const void *val,
               size_t vlen)
{
    return put_as(c, dbi, key, klen, val, vlen, ANYWHERE);
}

static int del(struct ctx *c, MDB_dbi dbi, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(c->txn, dbi, &k, NULL);
    return rc != 0 && rc != MDB_NOTFOUND ? fault(c, rc, "del") : 0;
}

static int put_rec_as(struct ctx *c,
                      MDB_dbi dbi,
                      const void *key,
                      size_t klen,
                      const struct rec *r,
                      int kind,
                      enum put_how how)
{
    struct buf b;
    int rv;
    buf_init(&b);
    if (rec_encode(r, kind, &b) != 0) {
        buf_close(&b);
        return oom(c);
    }
    rv = put_as(c, dbi, key, klen, b.data, b.len, how);
    buf_close(&b);
    return rv;
}

static int put_rec(struct ctx *c,
                   MDB_dbi dbi,
                   const void *key,
                   size_t klen,
                   const struct rec *r,
                   int kind)
{
    return put_rec_as(c, dbi, key, klen, r, kind, ANYWHERE);
}

static int meta_u64(struct ctx *c, const char *key, uint64_t *v)
{
    int rc = store_meta_get_u64(c->txn, c->s->meta, key, 0, v);
    return rc != 0 ? fault(c, rc, key) : 0;
}

static int set_meta_u64(struct ctx *c, const char *key, uint64_t v)
{
    int rc = store_meta_put_u64(c->txn, c->s->meta, key, v);
    return rc != 0 ? fault(c, rc, key) : 0;
}

/* Delete the keys of @p dbi in [from, end) in key order, at most @p max of
 * them (0: no limit). Both bounds are 8-byte big-endian numbers, which is
 * how ids and revisions lead every key they bound. */
static int del_range(struct ctx *c,
                     MDB_dbi dbi,
                     uint64_t from,
                     uint64_t end,
                     unsigned max)
{
    uint8_t lo[8], hi[8];
    MDB_cursor *cur;
    MDB_val k = {8, lo};
    MDB_val e = {8, hi};
    MDB_val d;
    unsigned n = 0;
    int rc;

    be64_put(lo, from);
    be64_put(hi, end);
    rc = mdb_cursor_open(c->txn, dbi, &cur);
    if (rc != 0) {
        return fault(c, rc, "cursor");
    }
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    while (rc == 0 && mdb_cmp(c->txn, dbi, &k, &e) < 0 &&
           (max == 0 || n++ < max)) {
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) {
            rc = mdb_cursor_get(cur, &k, &d, MDB_GET_CURRENT);
        }
    }
    mdb_cursor_close(cur);
    /* After deleting the last key, GET_CURRENT reports NOTFOUND or EINVAL
     * depending on the LMDB version. */
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL) {
        return fault(c, rc, "delete range");
    }
    return 0;
}

/* Every version or label of parameter @p id. */
static int del_prefix(struct ctx *c, MDB_dbi dbi, uint64_t id)
{
    return del_range(c, dbi, id, id + 1, 0);
}

/* Oldest stored version of parameter @p id, or 0 if none. */
static int oldest_version(struct ctx *c, uint64_t id, uint64_t *oldest)
{
    uint8_t key[KEYS_VERSION_LEN];
    MDB_cursor *cur;
    MDB_val k = {sizeof(key), key};
    MDB_val d;
    int rc;

    *oldest = 0;
    keys_version(id, 0, key);
    rc = mdb_cursor_open(c->txn, c->s->versions, &cur);
    if (rc != 0) {
        return fault(c, rc, "cursor");
    }
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size == KEYS_VERSION_LEN && be64_get(k.mv_data) == id) {
        *oldest = be64_get((const uint8_t *)k.mv_data + 8);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return fault(c, rc, "oldest version");
    }
    return 0;
}

/* Rows deleted per append at most, so that lowering feed_retain a lot does
 * not make one transaction delete millions of rows. */
#define FEED_TRIM_MAX 1024

/* Delete change-feed rows up to revision @p upto, oldest first. Usually that
 * is the one row that just left the window; after feed_retain was lowered
 * between runs it is every older row too, a bounded number per append.
 * Deleting from the front keeps the retained rows contiguous, so GetChanges
 * can always tell a reader that it fell behind. */
static int feed_trim(struct ctx *c, uint64_t upto)
{
    return del_range(c, c->s->feed, 0, upto + 1, FEED_TRIM_MAX);
}

/* Append a change-feed row and trim rows past the retention window. */
static int feed_append(struct ctx *c,
                       const char *op,
                       struct mp_str name,
                       struct mp_str type,
                       uint64_t version)
{
    struct buf b;
    msgpack_packer pk;
    uint8_t key[8];
    uint64_t retain = c->s->opts.limits.feed_retain;
    int rv;

    c->revision++;
    buf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 6);
    mp_pack_kv_u64(&pk, "Revision", c->revision);
    mp_pack_kv_cstr(&pk, "Operation", op);
    mp_pack_kv_str(&pk, "Name", name.p, name.n);
    mp_pack_kv_str(&pk, "Type", type.p, type.n);
    mp_pack_kv_u64(&pk, "Version", version);
    mp_pack_kv_i64(&pk, "Time", c->ts);
    if (b.oom) {
        buf_close(&b);
        return oom(c);
    }
    be64_put(key, c->revision);
    rv = put_as(c, c->s->feed, key, 8, b.data, b.len, GROWING);
    buf_close(&b);
    if (rv == 0 && c->revision > retain) {
        rv = feed_trim(c, c->revision - retain);
    }
    return rv;
}

/* ---- parameter lookup ----------------------------------------------- */

/* A loaded parameter record with the memory it borrows from. */
struct loaded
{
    struct buf copy;
    bool found;
    struct rec rec;
    uint8_t key[KEYS_PARAM_MAX];
    size_t key_len;
};

static struct loaded *loaded_new(struct ctx *c)
{
    struct loaded *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        oom(c);
        return NULL;
    }
    buf_init(&l->copy);
    l->found = false;
    l->key_len = 0;
    return l;
}

static void loaded_free(struct loaded *l)
{
    if (l == NULL) {
        return;
    }
    buf_close(&l->copy);
    free(l);
}

/* True when the record's display name has canonical form @p nm. */
static bool same_name(struct mp_str display, const struct names_name *nm)
{
    if (display.n > 0 && display.p[0] == '/') {
        return display.n == nm->canonical_len &&
               memcmp(display.p, nm->canonical, display.n) == 0;
    }
    return display.n + 1 == nm->canonical_len &&
           memcmp(display.p, nm->canonical + 1, display.n) == 0;
}

static int load_param(struct ctx *c,
                      const struct names_name *nm,
                      struct loaded *l)
{
    int rv;
    l->key_len = keys_param(nm->canonical, nm->canonical_len, l->key);
    rv = load(c, c->s->params, l->key, l->key_len, &l->copy, &l->found);
    if (rv != 0 || !l->found) {
        return rv;
    }
    rv = decode(c, &l->copy, &l->rec);
    if (rv != 0) {
        return rv;
    }
    if (!same_name(l->rec.name, nm)) {
        /* Two long names with the same 16-byte hash prefix: not expected in
         * practice, refused rather than confused. */
        cairn_error_set(&c->fault_err, CAIRN_INTERNAL, "InternalServerError",
                        "parameter key collision for %s", nm->canonical);
        return FAULT;
    }
    return 0;
}

static int load_version(struct ctx *c,
                        uint64_t id,
                        uint64_t version,
                        struct loaded *l)
{
    int rv;
    keys_version(id, version, l->key);
    l->key_len = KEYS_VERSION_LEN;
    rv = load(c, c->s->versions, l->key, l->key_len, &l->copy, &l->found);
    if (rv != 0 || !l->found) {
        return rv;
    }
    return decode(c, &l->copy, &l->rec);
}

static int not_found(struct ctx *c, const char *what, size_t n)
{
    return cairn_error_set(c->err, CAIRN_NOT_FOUND, "ParameterNotFound",
                           "Parameter %.*s not found.", (int)n, what);
}

static int version_not_found(struct ctx *c,
                             uint64_t version,
                             struct mp_str name)
{
    return cairn_error_set(c->err, CAIRN_NOT_FOUND, "ParameterVersionNotFound",
                           "Systems Manager could not find version %llu of "
                           "%.*s. Verify the version and try again.",
                           (unsigned long long)version, (int)name.n, name.p);
}

/* Read a required Name field and validate it as an existing name. */
static int req_name(struct ctx *c,
                    const char *field,
                    struct mp_str *raw,
                    struct names_name *nm)
{
    int r = mp_get_str(c->req, field, raw, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0) {
        return validation(c,
                          "1 validation error detected: Value null at '%c%s' "
                          "failed to satisfy constraint: Member must not be "
                          "null",
                          field[0] + ('a' - 'A'), field + 1);
    }
    return names_check_existing(raw->p, raw->n, nm, c->err);
}

/* ---- PutParameter --------------------------------------------------- */

static int put_check_key(struct ctx *c, struct mp_str ref);

static bool one_of(struct mp_str v, const char *const *set)
{
    for (; *set != NULL; set++) {
        if (mp_str_eqn(v, *set)) {
            return true;
        }
    }
    return false;
}

int sm_check_pattern(struct mp_str pattern,
                     struct mp_str value,
                     struct cairn_error *err)
{
    pcre2_code *re;
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    int errcode;
    PCRE2_SIZE erroff;
    int rc;
    int rv = 0;

    re = pcre2_compile((PCRE2_SPTR)pattern.p, pattern.n, PCRE2_UTF, &errcode,
                       &erroff, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        return cairn_error_set(
            err, CAIRN_INVALID_ARGUMENT, "InvalidAllowedPatternException",
            "The allowed pattern %.*s is not a valid "
            "regular expression: %s at offset %zu.",
            (int)pattern.n, pattern.p, (char *)msg, (size_t)erroff);
    }
    if (value.p == NULL) {
        goto out; /* pattern only validated */
    }
    md = pcre2_match_data_create_from_pattern(re, NULL);
    mc = pcre2_match_context_create(NULL);
    if (md == NULL || mc == NULL) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
        goto out;
    }
    pcre2_set_match_limit(mc, SM_PCRE_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, SM_PCRE_DEPTH_LIMIT);
    pcre2_set_heap_limit(mc, SM_PCRE_HEAP_LIMIT_KIB);
    rc = pcre2_match(re, (PCRE2_SPTR)value.p, value.n, 0, 0, md, mc);
    if (rc < 0) {
        rv = cairn_error_set(
            err, CAIRN_INVALID_ARGUMENT, "ParameterPatternMismatchException",
            "Parameter value, cannot be validated against "
            "allowedPattern: %.*s%s",
            (int)pattern.n, pattern.p,
            rc == PCRE2_ERROR_NOMATCH ? ""
                                      : " (the pattern needs too much work to "
                                        "match this value)");
    }
out:
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rv;
}

static int check_pattern(struct ctx *c,
                         struct mp_str pattern,
                         struct mp_str value)
{
    int rv = sm_check_pattern(pattern, value, c->err);
    if (rv == CAIRN_RESOURCE_EXHAUSTED) {
        return oom(c);
    }
    return rv;
}

/* Validate and collect the Tags of a PutParameter or AddTagsToResource
 * request into @p r (sorted by key, later duplicates replacing earlier). */
static int tags_merge(struct ctx *c,
                      const msgpack_object_array *tags,
                      struct rec *r)
{
    unsigned limit = c->s->opts.limits.tags;
    for (uint32_t i = 0; i < tags->size; i++) {
        const msgpack_object *t = &tags->ptr[i];
        struct mp_str k, v;
        int a, b;
        unsigned pos;

        if (t->type != MSGPACK_OBJECT_MAP) {
            return validation(c,
                              "Each tag must be an object with Key and "
                              "Value.");
        }
        a = mp_get_str(t, "Key", &k, c->err);
        b = mp_get_str(t, "Value", &v, c->err);
        if (a < 0 || b < 0) {
            return c->err->code;
        }
        if (a == 0 || b == 0) {
            return validation(c, "Each tag must have a Key and a Value.");
        }
        if (names_check_tag(k.p, k.n, v.p, v.n, c->err) != 0) {
            return c->err->code;
        }
        /* Insert sorted; an existing key takes the new value. */
        for (pos = 0; pos < r->n_tags; pos++) {
            size_t m = k.n < r->tags[pos].key.n ? k.n : r->tags[pos].key.n;
            int cmp = memcmp(k.p, r->tags[pos].key.p, m);
            if (cmp == 0 && k.n == r->tags[pos].key.n) {
                break;
            }
            if (cmp < 0 || (cmp == 0 && k.n < r->tags[pos].key.n)) {
                break;
            }
        }
        if (pos < r->n_tags && str_eq(k, r->tags[pos].key)) {
            r->tags[pos].value = v;
            continue;
        }
        if (r->n_tags >= limit) {
            return cairn_error_set(c->err, CAIRN_RESOURCE_EXHAUSTED,
                                   "TooManyTagsError",
                                   "The Tag list exceeds the maximum of %u "
                                   "tags per resource.",
                                   limit);
        }
        memmove(&r->tags[pos + 1], &r->tags[pos],
                (r->n_tags - pos) * sizeof(r->tags[0]));
        r->tags[pos].key = k;
        r->tags[pos].value = v;
        r->n_tags++;
    }
    return 0;
}

static int default_tier(struct ctx *c, char *out, size_t cap)
{
    MDB_val k = {strlen(META_DEFAULT_TIER), (void *)META_DEFAULT_TIER};
    MDB_val d;
    struct mp_doc doc;
    struct mp_str v;
    int rc = mdb_get(c->txn, c->s->meta, &k, &d);

    snprintf(out, cap, "%s", TIER_STANDARD);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return fault(c, rc, "default tier");
    }
    if (mp_doc_parse(&doc, d.mv_data, d.mv_size, NULL) != 0) {
        return 0;
    }
    if (mp_get_str(&doc.root, "SettingValue", &v, NULL) == 1 && v.n < cap) {
        snprintf(out, cap, "%.*s", (int)v.n, v.p);
    }
    mp_doc_close(&doc);
    return 0;
}

struct put_req
{
    struct mp_str raw_name, value, type, description, key_id, pattern, tier,
        policies, data_type;
    bool value_bin;
    bool overwrite;
    uint64_t value_chars;
    const msgpack_object_array *tags;
};

static int put_read(struct ctx *c, struct put_req *p)
{
    static const char *const types[] = {"String", "StringList", "SecureString",
                                        NULL};
    static const char *const tiers[] = {TIER_STANDARD, TIER_ADVANCED,
                                        TIER_INTELLIGENT, NULL};
    static const char *const data_types[] = {"text", "aws:ec2:image",
                                             "aws:ssm:integration", NULL};
    int r = 0;

    memset(p, 0, sizeof(*p));
    if (mp_get_str(c->req, "Name", &p->raw_name, c->err) < 0 ||
        mp_get_bytes(c->req, "Value", &p->value, &p->value_bin, c->err) < 0 ||
        mp_get_str(c->req, "Type", &p->type, c->err) < 0 ||
        mp_get_str(c->req, "Description", &p->description, c->err) < 0 ||
        mp_get_str(c->req, "KeyId", &p->key_id, c->err) < 0 ||
        mp_get_str(c->req, "AllowedPattern", &p->pattern, c->err) < 0 ||
        mp_get_str(c->req, "Tier", &p->tier, c->err) < 0 ||
        mp_get_str(c->req, "Policies", &p->policies, c->err) < 0 ||
        mp_get_str(c->req, "DataType", &p->data_type, c->err) < 0 ||
        mp_get_bool(c->req, "Overwrite", &p->overwrite, c->err) < 0 ||
        (r = mp_get_array(c->req, "Tags", &p->tags, c->err)) < 0 ||
        mp_get_u64(c->req, "ValueLength", &p->value_chars, c->err) < 0) {
        return c->err->code;
    }
    if (r == 0) {
        p->tags = NULL;
    }
    if (p->raw_name.p == NULL) {
        return validation(c,
                          "1 validation error detected: Value null at "
                          "'name' failed to satisfy constraint: Member "
                          "must not be null");
    }
    if (p->value.p == NULL) {
        return validation(c,
                          "1 validation error detected: Value null at "
                          "'value' failed to satisfy constraint: Member "
                          "must not be null");
    }
    if (p->value.n == 0) {
        return validation(c,
                          "1 validation error detected: Value '' at "
                          "'value' failed to satisfy constraint: Member "
                          "must have length greater than or equal to 1.");
    }
    if (p->type.p != NULL && !one_of(p->type, types)) {
        return validation(c,
                          "1 validation error detected: Value '%.*s' at "
                          "'type' failed to satisfy constraint: Member must "
                          "satisfy enum value set: [SecureString, StringList, "
                          "String]",
                          (int)p->type.n, p->type.p);
    }
    if (p->tier.p != NULL && !one_of(p->tier, tiers)) {
        return validation(c,
                          "1 validation error detected: Value '%.*s' at "
                          "'tier' failed to satisfy constraint: Member must "
                          "satisfy enum value set: [Advanced, "
                          "Intelligent-Tiering, Standard]",
                          (int)p->tier.n, p->tier.p);
    }
    if (p->data_type.p != NULL && !one_of(p->data_type, data_types)) {
        return validation(c,
                          "The following data type is not supported: %.*s "
                          "(Data type names are all lowercase.)",
                          (int)p->data_type.n, p->data_type.p);
    }
    if (p->description.p != NULL &&
        names_utf8_chars(p->description.p, p->description.n) > 1024) {
        return validation(c,
                          "1 validation error detected: Value at "
                          "'description' failed to satisfy constraint: "
                          "Member must have length less than or equal to "
                          "1024");
    }
    if (p->pattern.p != NULL && p->pattern.n > 1024) {
        return validation(c,
                          "1 validation error detected: Value at "
                          "'allowedPattern' failed to satisfy constraint: "
                          "Member must have length less than or equal to "
                          "1024");
    }
    if (p->key_id.p != NULL) {
        bool ok = p->key_id.n >= 1 && p->key_id.n <= 256;
        for (size_t i = 0; ok && i < p->key_id.n; i++) {
            char ch = p->key_id.p[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == ':' || ch == '/' ||
                 ch == '_' || ch == '-';
        }
        if (!ok) {
            return validation(c,
                              "1 validation error detected: Value '%.*s' at "
                              "'keyId' failed to satisfy constraint: Member "
                              "must satisfy regular expression pattern: "
                              "^([a-zA-Z0-9:/_-]+)$",
                              (int)(p->key_id.n > 256 ? 256 : p->key_id.n),
                              p->key_id.p);
        }
    }
    if (p->tags != NULL && p->overwrite) {
        return validation(c,
                          "Invalid request: tags and overwrite can't be "
                          "used together. To create a parameter with "
                          "tags, please remove overwrite flag. To update "
                          "tags for an existing parameter, please use "
                          "AddTagsToResource or RemoveTagsFromResource.");
    }
    return 0;
}

/* Value checks that depend on the final type. */
static int put_check_value(struct ctx *c, struct put_req *p, struct mp_str type)
{
    if (mp_str_eqn(type, "SecureString")) {
        /* Sealed by the service layer: plaintext must never reach the log
         * or the store, so a text value here is refused. */
        if (!p->value_bin) {
            return validation(c,
                              "A SecureString value must arrive sealed "
                              "(binary); plaintext is not accepted by the "
                              "state machine.");
        }
        if (p->value_chars == 0) {
            return validation(c,
                              "A sealed SecureString value must carry "
                              "ValueLength, the plaintext length.");
        }
        return 0;
    }
    if (p->value_bin) {
        return validation(c, "The value of a %.*s parameter must be text.",
                          (int)type.n, type.p);
    }
    long chars = names_utf8_chars(p->value.p, p->value.n);
    if (chars < 0) {
        return validation(c, "The parameter value is not valid UTF-8.");
    }
    p->value_chars = (uint64_t)chars;
    if (memmem(p->value.p, p->value.n, "{{", 2) != NULL &&
        memmem(p->value.p, p->value.n, "}}", 2) != NULL) {
        return validation(c,
                          "Parameter value can't nest another parameter. "
                          "Do not use \"{{}}\" in the value.");
    }
    return 0;
}

static bool is_ami_id(struct mp_str v)
{
    if (v.n < 12 || memcmp(v.p, "ami-", 4) != 0) {
        return false;
    }
    if (v.n != 12 && v.n != 21) {
        return false;
    }
    for (size_t i = 4; i < v.n; i++) {
        char ch = v.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int op_put(struct ctx *c)
{
    const struct store_limits *lim = &c->s->opts.limits;
    struct put_req p;
    struct names_name nm;
    struct policy_set pol;
    bool have_pol = false;
    struct loaded *old = NULL;
    struct loaded *oldest = NULL;
    struct rec *nr = NULL;
    struct mp_str type, tier;
    char deftier[32];
    const char *want_tier;
    uint64_t n_std, n_adv, version = 1, oldest_v = 0, id;
    bool drop_oldest = false;
    int rv;

    rv = put_read(c, &p);
    if (rv != 0) {
        return rv;
    }
    rv = names_check_write(p.raw_name.p, p.raw_name.n, &nm, c->err);
    if (rv != 0) {
        return rv;
    }
    if (p.policies.p != NULL) {
        rv = policy_parse(p.policies.p, p.policies.n, &pol, c->err);
        if (rv != 0) {
            return rv;
        }
        have_pol = true;
    }
    old = loaded_new(c);
    nr = calloc(1, sizeof(*nr));
    if (old == NULL || nr == NULL) {
        rv = oom(c);
        goto out;
    }
    rv = load_param(c, &nm, old);
    if (rv != 0) {
        goto out;
    }
    if (old->found && !p.overwrite) {
        rv = cairn_error_set(c->err, CAIRN_ALREADY_EXISTS,
                             "ParameterAlreadyExists",
                             "The parameter already exists. To overwrite "
                             "this value, set the overwrite option in the "
                             "request to true.");
        goto out;
    }
    if (!old->found && p.type.p == NULL) {
        rv = validation(c,
                        "A parameter type is required when you create a "
                        "parameter.");
        goto out;
    }
    type = p.type.p != NULL ? p.type : old->rec.type;
    if (old->found && !str_eq(type, old->rec.type) &&
        (mp_str_eqn(type, "SecureString") ||
         mp_str_eqn(old->rec.type, "SecureString"))) {
        rv = cairn_error_set(
            c->err, CAIRN_FAILED_PRECONDITION, "HierarchyTypeMismatchException",
            "The parameter type can't be changed from "
            "%.*s to %.*s. Delete the parameter and create "
            "it again with the new type.",
            (int)old->rec.type.n, old->rec.type.p, (int)type.n, type.p);
        goto out;
    }
    rv = put_check_value(c, &p, type);
    if (rv != 0) {
        goto out;
    }

    /* Fields the request omits keep their previous values on overwrite. */
    nr->type = type;
    nr->value = p.value;
    nr->value_bin = p.value_bin;
    nr->description =
        p.description.p != NULL ? p.description : old->rec.description;
    nr->allowed_pattern =
        p.pattern.p != NULL ? p.pattern : old->rec.allowed_pattern;
    nr->data_type = p.data_type.p != NULL ? p.data_type
                    : old->found && old->rec.data_type.p != NULL
                        ? old->rec.data_type
                        : cstr("text");
    if (mp_str_eqn(type, "SecureString")) {
        nr->key_id = p.key_id.p != NULL          ? p.key_id
                     : old->rec.key_id.p != NULL ? old->rec.key_id
                                                 : cstr(DEFAULT_KEY_ID);
        rv = put_check_key(c, nr->key_id);
        if (rv != 0) {
            goto out;
        }
    } else if (p.key_id.p != NULL) {
        rv = validation(c,
                        "KeyId can be used only with a parameter of type "
                        "SecureString.");
        goto out;
    }
    if (mp_str_eqn(nr->data_type, "aws:ec2:image")) {
        if (!mp_str_eqn(type, "String")) {
            rv = validation(c,
                            "The aws:ec2:image data type can be used only "
                            "with a parameter of type String.");
            goto out;
        }
        if (!is_ami_id(p.value)) {
            rv = validation(c,
                            "Parameter value %.*s is not a valid Amazon "
                            "Machine Image ID for data type aws:ec2:image.",
                            (int)(p.value.n > 64 ? 64 : p.value.n), p.value.p);
            goto out;
        }
    }
    if (have_pol) {
        nr->n_policies = pol.count;
        for (unsigned i = 0; i < pol.count; i++) {
            nr->policies[i].text = cstr(pol.items[i].text);
            nr->policies[i].type = cstr(policy_type_name(pol.items[i].type));
        }
    } else if (old->found) {
        nr->n_policies = old->rec.n_policies;
        memcpy(nr->policies, old->rec.policies, sizeof(nr->policies));
    }
    if (nr->allowed_pattern.p != NULL) {
        struct mp_str v = {NULL, 0};
        if (!p.value_bin) {
            v = p.value; /* sealed values are checked before sealing */
        }
        rv = check_pattern(c, nr->allowed_pattern, v);
        if (rv != 0) {
            goto out;
        }
    }

    /* The tier. */
    rv = meta_u64(c, META_N_STANDARD, &n_std);
    if (rv == 0) {
        rv = meta_u64(c, META_N_ADVANCED, &n_adv);
    }
    if (rv == 0) {
        rv = default_tier(c, deftier, sizeof(deftier));
    }
    if (rv != 0) {
        goto out;
    }
    if (p.tier.p != NULL) {
        want_tier = mp_str_eqn(p.tier, TIER_STANDARD)   ? TIER_STANDARD
                    : mp_str_eqn(p.tier, TIER_ADVANCED) ? TIER_ADVANCED
                                                        : TIER_INTELLIGENT;
    } else if (!old->found || strcmp(deftier, TIER_INTELLIGENT) == 0) {
        want_tier = strcmp(deftier, TIER_ADVANCED) == 0      ? TIER_ADVANCED
                    : strcmp(deftier, TIER_INTELLIGENT) == 0 ? TIER_INTELLIGENT
                                                             : TIER_STANDARD;
    } else {
        want_tier = mp_str_eqn(old->rec.tier, TIER_ADVANCED) ? TIER_ADVANCED
                                                             : TIER_STANDARD;
    }
    bool was_adv = old->found && mp_str_eqn(old->rec.tier, TIER_ADVANCED);
    if (strcmp(want_tier, TIER_INTELLIGENT) == 0) {
        bool adv = was_adv || p.value_chars > lim->standard_value ||
                   nr->n_policies > 0 ||
                   (!old->found && n_std >= lim->standard_params);
        tier = cstr(adv ? TIER_ADVANCED : TIER_STANDARD);
    } else {
        tier = cstr(want_tier);
    }
    if (was_adv && mp_str_eqn(tier, TIER_STANDARD)) {
        rv = validation(c,
                        "This parameter uses the advanced-parameter tier. "
                        "You can't downgrade a parameter from the "
                        "advanced-parameter tier to the "
                        "standard-parameter tier. If necessary, you can "
                        "delete the advanced parameter and recreate it as "
                        "a standard parameter.");
        goto out;
    }
    if (mp_str_eqn(tier, TIER_STANDARD)) {
        if (p.value_chars > lim->standard_value) {
            rv = validation(c,
                            "Standard tier parameters support a maximum "
                            "parameter value of %u characters. To create a "
                            "larger parameter value, upgrade the parameter "
                            "to use the advanced-parameter tier. For more "
                            "information, see https://docs.aws.amazon.com/"
                            "systems-manager/latest/userguide/"
                            "parameter-store-advanced-parameters.html",
                            lim->standard_value);
            goto out;
        }
        if (nr->n_policies > 0) {
            rv = validation(c,
                            "Parameter policies are supported only for "
                            "advanced-tier parameters. Use the Advanced "
                            "or Intelligent-Tiering tier to attach "
                            "policies.");
            goto out;
        }
    } else if (p.value_chars > lim->advanced_value) {
        rv = validation(c,
                        "The specified parameter value is too large. "
                        "Advanced-tier parameters support a maximum "
                        "parameter value of %u characters.",
                        lim->advanced_value);
        goto out;
    }
    nr->tier = tier;

    /* Count limits. */
    bool now_adv = mp_str_eqn(tier, TIER_ADVANCED);
    if ((!old->found && !now_adv && n_std >= lim->standard_params) ||
        (now_adv && !was_adv && n_adv >= lim->advanced_params)) {
        rv = cairn_error_set(
            c->err, CAIRN_RESOURCE_EXHAUSTED, "ParameterLimitExceeded",
            "You have exceeded the number of %s parameters "
            "allowed (%llu). Delete unnecessary parameters "
            "and try again.",
            now_adv ? "advanced" : "standard",
            (unsigned long long)(now_adv ? lim->advanced_params
                                         : lim->standard_params));
        goto out;
    }

    /* Versions: keep the newest lim->versions. */
    if (old->found) {
        version = old->rec.version + 1;
        rv = oldest_version(c, old->rec.id, &oldest_v);
        if (rv != 0) {
            goto out;
        }
        if (oldest_v != 0 && version - oldest_v + 1 > lim->versions) {
            oldest = loaded_new(c);
            if (oldest == NULL) {
                rv = FAULT;
                goto out;
            }
            rv = load_version(c, old->rec.id, oldest_v, oldest);
            if (rv != 0) {
                goto out;
            }
            if (oldest->found && oldest->rec.n_labels > 0) {
                rv = cairn_error_set(
                    c->err, CAIRN_RESOURCE_EXHAUSTED,
                    "ParameterMaxVersionLimitExceeded",
                    "You attempted to create a new version of %.*s by "
                    "calling the PutParameter API with the overwrite flag. "
                    "Version %llu, the oldest version, can't be deleted "
                    "because it has a label associated with it. Move the "
                    "label to another version of the parameter, and try "
                    "again.",
                    (int)old->rec.name.n, old->rec.name.p,
                    (unsigned long long)oldest_v);
                goto out;
            }
            drop_oldest = true;
        }
    }
    if (p.tags != NULL) {
        rv = tags_merge(c, p.tags, nr);
        if (rv != 0) {
            goto out;
        }
    }

    /* Every check passed: write. */
    if (old->found) {
        id = old->rec.id;
        nr->n_tags = old->rec.n_tags;
        memcpy(nr->tags, old->rec.tags, old->rec.n_tags * sizeof(nr->tags[0]));
        nr->name = old->rec.name;
        if (now_adv && !was_adv) {
            rv = set_meta_u64(c, META_N_STANDARD, n_std - 1);
            if (rv == 0) {
                rv = set_meta_u64(c, META_N_ADVANCED, n_adv + 1);
            }
        }
    } else {
        rv = meta_u64(c, META_NEXT_ID, &id);
        if (rv == 0) {
            id++;
            rv = set_meta_u64(c, META_NEXT_ID, id);
        }
        if (rv == 0) {
            rv = now_adv ? set_meta_u64(c, META_N_ADVANCED, n_adv + 1)
                         : set_meta_u64(c, META_N_STANDARD, n_std + 1);
        }
        nr->name.p = nm.display;
        nr->name.n = nm.display_len;
    }
    if (rv != 0) {
        goto out;
    }
    if (drop_oldest) {
        rv = del(c, c->s->versions, oldest->key, oldest->key_len);
        if (rv != 0) {
            goto out;
        }
    }
    nr->id = id;
    nr->version = version;
    nr->ts = c->ts;
    nr->user = c->user;
    {
        uint8_t vkey[KEYS_VERSION_LEN];
        keys_version(id, version, vkey);
        rv = put_rec_as(c, c->s->versions, vkey, sizeof(vkey), nr, REC_VERSION,
                        GROWING);
    }
    if (rv == 0) {
        rv = put_rec(c, c->s->params, old->key, old->key_len, nr, REC_PARAM);
    }
    if (rv == 0) {
        rv = feed_append(c, old->found ? "Update" : "Create", nr->name, type,
                         version);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 2);
        mp_pack_kv_u64(&c->pk, "Version", version);
        mp_pack_kv_str(&c->pk, "Tier", tier.p, tier.n);
    }
out:
    if (have_pol) {
        policy_set_close(&pol);
    }
    free(nr);
    loaded_free(oldest);
    loaded_free(old);
    return rv;
}

/* ---- DeleteParameter(s) --------------------------------------------- */

/* Delete the parameter in @p l (found) with all its versions and labels. */
static int delete_loaded(struct ctx *c, struct loaded *l)
{
    uint64_t n;
    const char *counter = mp_str_eqn(l->rec.tier, TIER_ADVANCED)
                              ? META_N_ADVANCED
                              : META_N_STANDARD;
    int rv = del_prefix(c, c->s->versions, l->rec.id);
    if (rv == 0) {
        rv = del_prefix(c, c->s->labels, l->rec.id);
    }
    if (rv == 0) {
        rv = del(c, c->s->params, l->key, l->key_len);
    }
    if (rv == 0) {
        rv = meta_u64(c, counter, &n);
    }
    if (rv == 0) {
        rv = set_meta_u64(c, counter, n > 0 ? n - 1 : 0);
    }
    if (rv == 0) {
        rv = feed_append(c, "Delete", l->rec.name, l->rec.type, l->rec.version);
    }
    return rv;
}

static int op_delete(struct ctx *c)
{
    struct mp_str raw;
    struct names_name nm;
    struct loaded *l;
    int rv = req_name(c, "Name", &raw, &nm);

    if (rv != 0) {
        return rv;
    }
    l = loaded_new(c);
    if (l == NULL) {
        return FAULT;
    }
    rv = load_param(c, &nm, l);
    if (rv == 0 && !l->found) {
        rv = not_found(c, raw.p, raw.n);
    }
    if (rv == 0) {
        rv = delete_loaded(c, l);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
    loaded_free(l);
    return rv;
}

static int names_array(struct ctx *c,
                       const char *field,
                       const char *wire,
                       const msgpack_object_array **arr)
{
    int r = mp_get_array(c->req, field, arr, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0) {
        return validation(c,
                          "1 validation error detected: Value null at '%s' "
                          "failed to satisfy constraint: Member must not be "
                          "null",
                          wire);
    }
    if ((*arr)->size < 1 || (*arr)->size > 10) {
        return validation(c,
                          "1 validation error detected: Value at '%s' failed "
                          "to satisfy constraint: Member must have length "
                          "%s",
                          wire,
                          (*arr)->size < 1 ? "greater than or equal to 1"
                                           : "less than or equal to 10");
    }
    for (uint32_t i = 0; i < (*arr)->size; i++) {
        if ((*arr)->ptr[i].type != MSGPACK_OBJECT_STR) {
            return cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "field %s must hold strings", field);
        }
    }
    return 0;
}

static int op_delete_many(struct ctx *c)
{
    const msgpack_object_array *names;
    struct loaded *l;
    bool deleted[10] = {false};
    bool invalid[10] = {false};
    unsigned nd = 0, ni = 0;
    int rv = names_array(c, "Names", "names", &names);

    if (rv != 0) {
        return rv;
    }
    l = loaded_new(c);
    if (l == NULL) {
        return FAULT;
    }
    for (uint32_t i = 0; i < names->size && rv == 0; i++) {
        const msgpack_object *o = &names->ptr[i];
        struct names_name nm;
        struct cairn_error ignore;
        bool dup = false;
        for (uint32_t j = 0; j < i; j++) {
            if (o->via.str.size == names->ptr[j].via.str.size &&
                memcmp(o->via.str.ptr, names->ptr[j].via.str.ptr,
                       o->via.str.size) == 0) {
                dup = true;
            }
        }
        if (dup) {
            continue; /* reported once */
        }
        if (names_check_existing(o->via.str.ptr, o->via.str.size, &nm,
                                 &ignore) != 0) {
            invalid[i] = true;
            ni++;
            continue;
        }
        rv = load_param(c, &nm, l);
        if (rv != 0) {
            break;
        }
        if (!l->found) {
            invalid[i] = true;
            ni++;
            continue;
        }
        rv = delete_loaded(c, l);
        deleted[i] = true;
        nd++;
    }
    loaded_free(l);
    if (rv != 0) {
        return rv;
    }
    msgpack_pack_map(&c->pk, 2);
    mp_pack_cstr(&c->pk, "DeletedParameters");
    msgpack_pack_array(&c->pk, nd);
    for (uint32_t i = 0; i < names->size; i++) {
        if (deleted[i]) {
            mp_pack_str(&c->pk, names->ptr[i].via.str.ptr,
                        names->ptr[i].via.str.size);
        }
    }
    mp_pack_cstr(&c->pk, "InvalidParameters");
    msgpack_pack_array(&c->pk, ni);
    for (uint32_t i = 0; i < names->size; i++) {
        if (invalid[i]) {
            mp_pack_str(&c->pk, names->ptr[i].via.str.ptr,
                        names->ptr[i].via.str.size);
        }
    }
    return 0;
}

/* ---- labels --------------------------------------------------------- */

static int labels_array(struct ctx *c, const msgpack_object_array **arr)
{
    int rv = names_array(c, "Labels", "labels", arr);
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < (*arr)->size; i++) {
        const msgpack_object *o = &(*arr)->ptr[i];
        if (names_check_label(o->via.str.ptr, o->via.str.size) ==
            NAMES_LABEL_BAD_LENGTH) {
            return names_label_length_error(o->via.str.ptr, o->via.str.size,
                                            c->err);
        }
    }
    return 0;
}

static bool has_label(const struct rec *r, struct mp_str label, unsigned *at)
{
    for (unsigned i = 0; i < r->n_labels; i++) {
        if (str_eq(r->labels[i], label)) {
            if (at != NULL) {
                *at = i;
            }
            return true;
        }
    }
    return false;
}

static void remove_label(struct rec *r, unsigned at)
{
    memmove(&r->labels[at], &r->labels[at + 1],
            (r->n_labels - at - 1) * sizeof(r->labels[0]));
    r->n_labels--;
}

static int label_version_of(struct ctx *c,
                            uint64_t id,
                            struct mp_str label,
                            uint64_t *version)
{
    uint8_t key[8 + NAMES_LABEL_MAX];
    size_t klen = keys_label(id, label.p, label.n, key);
    MDB_val k = {klen, key};
    MDB_val d;
    int rc = mdb_get(c->txn, c->s->labels, &k, &d);
    *version = 0;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return fault(c, rc, "label");
    }
    if (d.mv_size != 8) {
        cairn_error_set(&c->fault_err, CAIRN_DATA_LOSS, "InternalServerError",
                        "malformed label record");
        return FAULT;
    }
    *version = be64_get(d.mv_data);
    return 0;
}

/* Resolve Name and ParameterVersion of a label request. */
static int label_target(struct ctx *c,
                        bool version_required,
                        struct loaded *param,
                        struct loaded *target,
                        struct mp_str *raw)
{
    struct names_name nm;
    uint64_t version = 0;
    int has_version;
    int rv = req_name(c, "Name", raw, &nm);

    if (rv != 0) {
        return rv;
    }
    has_version = mp_get_u64(c->req, "ParameterVersion", &version, c->err);
    if (has_version < 0) {
        return c->err->code;
    }
    if (has_version == 0 && version_required) {
        return validation(c,
                          "1 validation error detected: Value 'null' at "
                          "'parameterVersion' failed to satisfy "
                          "constraint: Member must not be null");
    }
    rv = load_param(c, &nm, param);
    if (rv != 0) {
        return rv;
    }
    if (!param->found) {
        return not_found(c, raw->p, raw->n);
    }
    if (has_version == 0) {
        version = param->rec.version;
    }
    rv = load_version(c, param->rec.id, version, target);
    if (rv != 0) {
        return rv;
    }
    if (!target->found) {
        return version_not_found(c, version, param->rec.name);
    }
    return 0;
}

static int op_label(struct ctx *c)
{
    const msgpack_object_array *labels;
    struct loaded *param = loaded_new(c);
    struct loaded *target = loaded_new(c);
    struct loaded *other = loaded_new(c);
    struct mp_str raw;
    struct mp_str valid[10];
    unsigned n_valid = 0;
    bool invalid[10] = {false};
    unsigned n_invalid = 0;
    uint64_t id, version;
    int rv;

    if (param == NULL || target == NULL || other == NULL) {
        rv = FAULT;
        goto out;
    }
    rv = labels_array(c, &labels);
    if (rv == 0) {
        rv = label_target(c, false, param, target, &raw);
    }
    if (rv != 0) {
        goto out;
    }
    id = param->rec.id;
    version = target->rec.version;
    for (uint32_t i = 0; i < labels->size; i++) {
        struct mp_str l = {labels->ptr[i].via.str.ptr,
                           labels->ptr[i].via.str.size};
        bool dup = false;
        if (names_check_label(l.p, l.n) != NAMES_LABEL_OK) {
            invalid[i] = true;
            n_invalid++;
            continue;
        }
        for (unsigned j = 0; j < n_valid; j++) {
            dup = dup || str_eq(valid[j], l);
        }
        if (!dup) {
            valid[n_valid++] = l;
        }
    }
    /* The version's label count after the change must fit the limit. */
    {
        unsigned total = target->rec.n_labels;
        for (unsigned j = 0; j < n_valid; j++) {
            if (!has_label(&target->rec, valid[j], NULL)) {
                total++;
            }
        }
        if (total > c->s->opts.limits.labels_per_version) {
            rv = cairn_error_set(c->err, CAIRN_RESOURCE_EXHAUSTED,
                                 "ParameterVersionLabelLimitExceeded",
                                 "A parameter version can have maximum %u "
                                 "labels.Move one or more labels to another "
                                 "version and try again.",
                                 c->s->opts.limits.labels_per_version);
            goto out;
        }
    }
    for (unsigned j = 0; j < n_valid; j++) {
        uint8_t key[8 + NAMES_LABEL_MAX];
        uint8_t val[8];
        size_t klen;
        uint64_t from;

        if (has_label(&target->rec, valid[j], NULL)) {
            continue;
        }
        rv = label_version_of(c, id, valid[j], &from);
        if (rv != 0) {
            goto out;
        }
        if (from != 0 && from != version) {
            /* The label moves: take it off the version that had it. */
            unsigned at;
            rv = load_version(c, id, from, other);
            if (rv != 0) {
                goto out;
            }
            if (other->found && has_label(&other->rec, valid[j], &at)) {
                remove_label(&other->rec, at);
                rv = put_rec(c, c->s->versions, other->key, other->key_len,
                             &other->rec, REC_VERSION);
                if (rv != 0) {
                    goto out;
                }
            }
        }
        klen = keys_label(id, valid[j].p, valid[j].n, key);
        be64_put(val, version);
        rv = put(c, c->s->labels, key, klen, val, sizeof(val));
        if (rv != 0) {
            goto out;
        }
        target->rec.labels[target->rec.n_labels++] = valid[j];
    }
    rv = put_rec(c, c->s->versions, target->key, target->key_len, &target->rec,
                 REC_VERSION);
    if (rv == 0) {
        rv = feed_append(c, "LabelParameterVersion", param->rec.name,
                         target->rec.type, version);
    }
    if (rv != 0) {
        goto out;
    }
    msgpack_pack_map(&c->pk, 2);
    mp_pack_cstr(&c->pk, "InvalidLabels");
    msgpack_pack_array(&c->pk, n_invalid);
    for (uint32_t i = 0; i < labels->size; i++) {
        if (invalid[i]) {
            mp_pack_str(&c->pk, labels->ptr[i].via.str.ptr,
                        labels->ptr[i].via.str.size);
        }
    }
    mp_pack_kv_u64(&c->pk, "ParameterVersion", version);
out:
    loaded_free(other);
    loaded_free(target);
    loaded_free(param);
    return rv;
}

static int op_unlabel(struct ctx *c)
{
    const msgpack_object_array *labels;
    struct loaded *param = loaded_new(c);
    struct loaded *target = loaded_new(c);
    struct mp_str raw;
    bool removed[10] = {false};
    unsigned n_removed = 0;
    int rv;

    if (param == NULL || target == NULL) {
        rv = FAULT;
        goto out;
    }
    rv = labels_array(c, &labels);
    if (rv == 0) {
        rv = label_target(c, true, param, target, &raw);
    }
    if (rv != 0) {
        goto out;
    }
    for (uint32_t i = 0; i < labels->size; i++) {
        struct mp_str l = {labels->ptr[i].via.str.ptr,
                           labels->ptr[i].via.str.size};
        uint8_t key[8 + NAMES_LABEL_MAX];
        unsigned at;
        if (!has_label(&target->rec, l, &at)) {
            continue;
        }
        remove_label(&target->rec, at);
        rv =
            del(c, c->s->labels, key, keys_label(param->rec.id, l.p, l.n, key));
        if (rv != 0) {
            goto out;
        }
        removed[i] = true;
        n_removed++;
    }
    if (n_removed > 0) {
        rv = put_rec(c, c->s->versions, target->key, target->key_len,
                     &target->rec, REC_VERSION);
        if (rv == 0) {
            rv = feed_append(c, "LabelParameterVersion", param->rec.name,
                             target->rec.type, target->rec.version);
        }
        if (rv != 0) {
            goto out;
        }
    }
    msgpack_pack_map(&c->pk, 2);
    mp_pack_cstr(&c->pk, "RemovedLabels");
    msgpack_pack_array(&c->pk, n_removed);
    for (uint32_t i = 0; i < labels->size; i++) {
        if (removed[i]) {
            mp_pack_str(&c->pk, labels->ptr[i].via.str.ptr,
                        labels->ptr[i].via.str.size);
        }
    }
    mp_pack_cstr(&c->pk, "InvalidLabels");
    msgpack_pack_array(&c->pk, labels->size - n_removed);
    for (uint32_t i = 0; i < labels->size; i++) {
        if (!removed[i]) {
            mp_pack_str(&c->pk, labels->ptr[i].via.str.ptr,
                        labels->ptr[i].via.str.size);
        }
    }
out:
    loaded_free(target);
    loaded_free(param);
    return rv;
}

/* ---- tags ----------------------------------------------------------- */

static int tag_resource(struct ctx *c, struct loaded *l)
{
    struct mp_str rtype, rid;
    struct names_name nm;
    struct cairn_error ignore;
    int a = mp_get_str(c->req, "ResourceType", &rtype, c->err);
    int b = mp_get_str(c->req, "ResourceId", &rid, c->err);
    int rv;

    if (a < 0 || b < 0) {
        return c->err->code;
    }
    if (a == 0 || b == 0) {
        return validation(c,
                          "1 validation error detected: Value null at "
                          "'%s' failed to satisfy constraint: Member must "
                          "not be null",
                          a == 0 ? "resourceType" : "resourceId");
    }
    if (!mp_str_eqn(rtype, "Parameter")) {
        return cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                               "InvalidResourceType", "Invalid Resource Type");
    }
    if (names_check_existing(rid.p, rid.n, &nm, &ignore) != 0) {
        return cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                               "InvalidResourceId", "Invalid Resource Id");
    }
    rv = load_param(c, &nm, l);
    if (rv == 0 && !l->found) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                             "InvalidResourceId", "Invalid Resource Id");
    }
    return rv;
}

static int op_add_tags(struct ctx *c)
{
    const msgpack_object_array *tags;
    struct loaded *l = loaded_new(c);
    int rv;
    int r;

    if (l == NULL) {
        return FAULT;
    }
    r = mp_get_array(c->req, "Tags", &tags, c->err);
    if (r < 0) {
        rv = c->err->code;
        goto out;
    }
    if (r == 0 || tags->size == 0) {
        rv = validation(c,
                        "1 validation error detected: Value at 'tags' "
                        "failed to satisfy constraint: Member must have "
                        "length greater than or equal to 1");
        goto out;
    }
    rv = tag_resource(c, l);
    if (rv == 0) {
        rv = tags_merge(c, tags, &l->rec);
    }
    if (rv == 0) {
        rv = put_rec(c, c->s->params, l->key, l->key_len, &l->rec, REC_PARAM);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
out:
    loaded_free(l);
    return rv;
}

static int op_remove_tags(struct ctx *c)
{
    const msgpack_object_array *keys;
    struct loaded *l = loaded_new(c);
    int rv;
    int r;

    if (l == NULL) {
        return FAULT;
    }
    r = mp_get_array(c->req, "TagKeys", &keys, c->err);
    if (r < 0) {
        rv = c->err->code;
        goto out;
    }
    if (r == 0) {
        rv = validation(c,
                        "1 validation error detected: Value null at "
                        "'tagKeys' failed to satisfy constraint: Member "
                        "must not be null");
        goto out;
    }
    for (uint32_t i = 0; i < keys->size; i++) {
        if (keys->ptr[i].type != MSGPACK_OBJECT_STR) {
            rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                                 "SerializationException",
                                 "field TagKeys must hold strings");
            goto out;
        }
    }
    rv = tag_resource(c, l);
    if (rv != 0) {
        goto out;
    }
    for (uint32_t i = 0; i < keys->size; i++) {
        struct mp_str k = {keys->ptr[i].via.str.ptr, keys->ptr[i].via.str.size};
        for (unsigned j = 0; j < l->rec.n_tags; j++) {
            if (str_eq(l->rec.tags[j].key, k)) {
                memmove(&l->rec.tags[j], &l->rec.tags[j + 1],
                        (l->rec.n_tags - j - 1) * sizeof(l->rec.tags[0]));
                l->rec.n_tags--;
                break;
            }
        }
    }
    rv = put_rec(c, c->s->params, l->key, l->key_len, &l->rec, REC_PARAM);
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
out:
    loaded_free(l);
    return rv;
}

/* ---- service settings and Init -------------------------------------- */

/* Accepts "/ssm/parameter-store/default-parameter-tier" or its ARN. */
static bool is_default_tier_setting(struct mp_str id)
{
    const char *suffix = ":servicesetting" SETTING_DEFAULT_TIER;
    size_t sn = strlen(suffix);
    if (mp_str_eqn(id, SETTING_DEFAULT_TIER)) {
        return true;
    }
    return id.n > sn && memcmp(id.p, "arn:", 4) == 0 &&
           memcmp(id.p + id.n - sn, suffix, sn) == 0;
}

static int setting_id(struct ctx *c, struct mp_str *id)
{
    int r = mp_get_str(c->req, "SettingId", id, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0) {
        return validation(c,
                          "1 validation error detected: Value null at "
                          "'settingId' failed to satisfy constraint: "
                          "Member must not be null");
    }
    if (!is_default_tier_setting(*id)) {
        return cairn_error_set(c->err, CAIRN_NOT_FOUND,
                               "ServiceSettingNotFound",
                               "The service setting %.*s was not found.",
                               (int)(id->n > 256 ? 256 : id->n), id->p);
    }
    return 0;
}

static int op_update_setting(struct ctx *c)
{
    static const char *const tiers[] = {TIER_STANDARD, TIER_ADVANCED,
                                        TIER_INTELLIGENT, NULL};
    struct mp_str id, value;
    struct buf b;
    msgpack_packer pk;
    int rv = setting_id(c, &id);
    int r;
    MDB_val k = {strlen(META_DEFAULT_TIER), (void *)META_DEFAULT_TIER};

    if (rv != 0) {
        return rv;
    }
    r = mp_get_str(c->req, "SettingValue", &value, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0 || !one_of(value, tiers)) {
        return validation(c,
                          "The value %.*s is not valid for setting %s. Valid "
                          "values: Standard, Advanced, Intelligent-Tiering.",
                          (int)(value.n > 64 ? 64 : value.n),
                          value.p != NULL ? value.p : "", SETTING_DEFAULT_TIER);
    }
    buf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_str(&pk, "SettingValue", value.p, value.n);
    mp_pack_kv_i64(&pk, "LastModifiedDate", c->ts);
    mp_pack_kv_str(&pk, "LastModifiedUser", c->user.p, c->user.n);
    if (b.oom) {
        buf_close(&b);
        return oom(c);
    }
    rv = put(c, c->s->meta, k.mv_data, k.mv_size, b.data, b.len);
    buf_close(&b);
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
    return rv;
}

static int op_reset_setting(struct ctx *c)
{
    struct mp_str id;
    int rv = setting_id(c, &id);
    if (rv != 0) {
        return rv;
    }
    rv = del(c, c->s->meta, META_DEFAULT_TIER, strlen(META_DEFAULT_TIER));
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 1);
        mp_pack_cstr(&c->pk, "ServiceSetting");
        msgpack_pack_map(&c->pk, 3);
        mp_pack_kv_cstr(&c->pk, "SettingId", SETTING_DEFAULT_TIER);
        mp_pack_kv_cstr(&c->pk, "SettingValue", TIER_STANDARD);
        mp_pack_kv_cstr(&c->pk, "Status", "Default");
    }
    return rv;
}

static int op_init(struct ctx *c)
{
    struct mp_str key;
    bool is_bin = false;
    MDB_val k = {strlen(META_TOKEN_KEY), (void *)META_TOKEN_KEY};
    MDB_val d;
    int r = mp_get_bytes(c->req, "TokenKey", &key, &is_bin, c->err);
    int rc;

    if (r < 0) {
        return c->err->code;
    }
    if (r == 0 || !is_bin || key.n != TOKEN_KEY_LEN) {
        return validation(c, "Init needs TokenKey: %d random bytes.",
                          TOKEN_KEY_LEN);
    }
    /* The first Init wins: paging tokens stay valid for the cluster's
     * life. */
    rc = mdb_get(c->txn, c->s->meta, &k, &d);
    if (rc == MDB_NOTFOUND) {
        int rv = put(c, c->s->meta, k.mv_data, k.mv_size, key.p, key.n);
        if (rv != 0) {
            return rv;
        }
    } else if (rc != 0) {
        return fault(c, rc, "token key");
    }
    msgpack_pack_map(&c->pk, 0);
    return 0;
}

/* ---- client sessions: exactly-once writes --------------------------- */

/*
 * A command may carry a client session id ("cid") and a sequence number
 * ("seq", from 1, increasing per session). The state machine keeps the last
 * sequence number and outcome of each session, so a write retried after an
 * indeterminate failure (a leader lost mid-commit) returns the first
 * outcome instead of applying twice (Raft dissertation, section 6.3).
 */
#define SESSION_ID_MAX 128

static int session_check(struct ctx *c,
                         struct mp_str cid,
                         uint64_t seq,
                         bool *replayed)
{
    struct buf copy;
    struct mp_doc doc;
    bool found;
    uint64_t last = 0;
    int64_t code = 0;
    struct mp_str type = {NULL, 0}, msg = {NULL, 0}, body = {NULL, 0};
    bool is_bin;
    int rv;

    *replayed = false;
    if (cid.n == 0 || cid.n > SESSION_ID_MAX || seq == 0) {
        return validation(c,
                          "A client session id must have 1 to %d bytes "
                          "and a sequence number from 1.",
                          SESSION_ID_MAX);
    }
    buf_init(&copy);
    rv = load(c, c->s->sessions, cid.p, cid.n, &copy, &found);
    if (rv != 0 || !found) {
        buf_close(&copy);
        return rv;
    }
    if (mp_doc_parse(&doc, copy.data, copy.len, NULL) != 0) {
        buf_close(&copy);
        cairn_error_set(&c->fault_err, CAIRN_DATA_LOSS, "InternalServerError",
                        "malformed session record");
        return FAULT;
    }
    mp_get_u64(&doc.root, "Seq", &last, NULL);
    mp_get_i64(&doc.root, "Code", &code, NULL);
    mp_get_str(&doc.root, "Type", &type, NULL);
    mp_get_str(&doc.root, "Message", &msg, NULL);
    mp_get_bytes(&doc.root, "Body", &body, &is_bin, NULL);
    if (seq < last) {
        rv = cairn_error_set(c->err, CAIRN_FAILED_PRECONDITION,
                             "RequestAlreadyApplied",
                             "Request %llu of this client session was "
                             "already applied (the session is at %llu); its "
                             "outcome is no longer kept.",
                             (unsigned long long)seq, (unsigned long long)last);
    } else if (seq == last) {
        *replayed = true;
        if (code != 0) {
            rv = cairn_error_set(c->err, (int)code, NULL, "%.*s", (int)msg.n,
                                 msg.p != NULL ? msg.p : "");
            snprintf(c->err->type, sizeof(c->err->type), "%.*s", (int)type.n,
                     type.p != NULL ? type.p : "");
        } else if (buf_append(&c->s->out, body.p, body.n) != 0) {
            rv = oom(c);
        }
    }
    mp_doc_close(&doc);
    buf_close(&copy);
    return rv;
}

/* Add (@p add) or remove the time-index key of session @p cid at @p ts. */
static int session_time_key(struct ctx *c,
                            int64_t ts,
                            struct mp_str cid,
                            bool add)
{
    uint8_t key[8 + SESSION_ID_MAX];
    be64_put(key, ts < 0 ? 0 : (uint64_t)ts);
    memcpy(key + 8, cid.p, cid.n);
    return add ? put(c, c->s->session_times, key, 8 + cid.n, "", 0)
               : del(c, c->s->session_times, key, 8 + cid.n);
}

static int session_save(struct ctx *c, struct mp_str cid, uint64_t seq)
{
    struct buf b;
    msgpack_packer pk;
    int ok = c->err->code == 0;
    int rv;

    buf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 6);
    mp_pack_kv_u64(&pk, "Seq", seq);
    mp_pack_kv_i64(&pk, "Time", c->ts);
    mp_pack_kv_i64(&pk, "Code", c->err->code);
    mp_pack_kv_cstr(&pk, "Type", c->err->type);
    mp_pack_kv_cstr(&pk, "Message", c->err->msg);
    mp_pack_cstr(&pk, "Body");
    mp_pack_bin(&pk, ok ? c->s->out.data : NULL, ok ? c->s->out.len : 0);
    if (b.oom) {
        buf_close(&b);
        return oom(c);
    }
    /* Move the session in the time index: drop its previous use. */
    {
        MDB_val k = {cid.n, (void *)cid.p};
        MDB_val d;
        struct mp_doc doc;
        int64_t last;
        int rc = mdb_get(c->txn, c->s->sessions, &k, &d);
        if (rc == 0 &&
            mp_doc_parse_trusted(&doc, d.mv_data, d.mv_size, NULL) == 0) {
            if (mp_get_i64(&doc.root, "Time", &last, NULL) == 1) {
                rv = session_time_key(c, last, cid, false);
            } else {
                rv = 0;
            }
            mp_doc_close(&doc);
            if (rv != 0) {
                buf_close(&b);
                return rv;
            }
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            buf_close(&b);
            return fault(c, rc, "session");
        }
    }
    rv = put(c, c->s->sessions, cid.p, cid.n, b.data, b.len);
    buf_close(&b);
    if (rv == 0) {
        rv = session_time_key(c, c->ts, cid, true);
    }
    return rv;
}

/* Sessions forgotten per command at most, to bound the work of one. */
#define SESSION_PRUNE_MAX 64

/* Forget sessions unused for limits.session_ttl_ms, by command time (the
 * same on every replica). A retry must arrive within that time to be
 * recognised. */
static int sessions_prune(struct ctx *c)
{
    uint64_t ttl = c->s->opts.limits.session_ttl_ms;
    MDB_cursor *cur;
    MDB_val k, d;
    unsigned n = 0;
    int rc;

    if (c->ts < 0 || (uint64_t)c->ts <= ttl) {
        return 0;
    }
    rc = mdb_cursor_open(c->txn, c->s->session_times, &cur);
    if (rc != 0) {
        return fault(c, rc, "cursor");
    }
    while ((rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST)) == 0 &&
           n++ < SESSION_PRUNE_MAX && k.mv_size > 8 &&
           be64_get(k.mv_data) < (uint64_t)c->ts - ttl) {
        MDB_val id = {k.mv_size - 8, (uint8_t *)k.mv_data + 8};
        rc = mdb_del(c->txn, c->s->sessions, &id, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            break;
        }
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return fault(c, rc, "prune sessions");
    }
    return 0;
}

/* ---- keyring (docs/encryption.md) ----------------------------------- */

/*
 * The keyring lives in the meta database (store_int.h, META_KMS_*). Every
 * op below first deletes the keys whose DeletionDate has come by the
 * command's time (keyring_sweep, run from the dispatch), so that a key
 * past its date is gone for every later keyring command on every replica.
 * Errors carry KMS's names: NotFoundException, AlreadyExistsException,
 * DisabledException, KMSInvalidStateException, ValidationException,
 * NotAuthorizedException (the reserved alias/aws/ prefix),
 * LimitExceededException and ConflictException.
 */
#define DAY_MS 86400000LL
#define WINDOW_MIN 7
#define WINDOW_MAX 30
#define WINDOW_DEFAULT 30
#define CREATE_ALIASES_MAX 50 /* Aliases in one CreateKey */
#define DEFAULT_KEY_DESCRIPTION \
    "Default key that protects my SSM parameters when no other key is defined"

static int kms_error(struct ctx *c,
                     int code,
                     const char *type,
                     const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
static int kms_error(struct ctx *c,
                     int code,
                     const char *type,
                     const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_error_vset(c->err, code, type, fmt, ap);
    va_end(ap);
    return code;
}

static int keyring_corrupt(struct ctx *c, const char *what)
{
    cairn_error_set(&c->fault_err, CAIRN_DATA_LOSS, "InternalServerError",
                    "malformed keyring record (%s)", what);
    return FAULT;
}

/* A key loaded for reading or change: its record copied out of LMDB (a
 * later write in the transaction may move LMDB's memory) and decoded in
 * place, with its ARN for messages. */
struct kkey
{
    struct buf copy;
    struct keyring_key k;
    char id[KEYRING_ID_MAX + 1];
    char arn[512];
};

static void kkey_init(struct kkey *kk)
{
    buf_init(&kk->copy);
    kk->id[0] = '\0';
    kk->arn[0] = '\0';
}

static void kkey_close(struct kkey *kk)
{
    buf_close(&kk->copy);
}

/* Load the key that @p ref names in any KeyId form; *found is false when
 * there is none. */
static int kkey_load(struct ctx *c,
                     struct mp_str ref,
                     struct kkey *kk,
                     bool *found)
{
    uint8_t key[KEYRING_META_KEY_MAX];
    size_t klen;
    int rc = keyring_resolve(c->txn, c->s->meta, &c->s->opts.arn, ref, kk->id,
                             found);
    int rv;

    if (rc != 0) {
        return fault(c, rc, "resolve key");
    }
    if (!*found) {
        return 0;
    }
    klen = keyring_meta_key(META_KMS_KEY, cstr(kk->id), key);
    rv = load(c, c->s->meta, key, klen, &kk->copy, found);
    if (rv != 0 || !*found) {
        return rv;
    }
    if (keyring_key_decode(kk->copy.data, kk->copy.len, &kk->k) != 0) {
        return keyring_corrupt(c, kk->id);
    }
    keyring_format_key_arn(&c->s->opts.arn, kk->k.id, kk->arn, sizeof(kk->arn));
    return 0;
}

static int key_not_found(struct ctx *c, struct mp_str ref)
{
    int n = (int)(ref.n > KEYRING_ALIAS_MAX ? KEYRING_ALIAS_MAX : ref.n);
    if (keyring_ref_is_alias(ref)) {
        return kms_error(c, CAIRN_NOT_FOUND, "NotFoundException",
                         "Alias %.*s is not found.", n, ref.p);
    }
    return kms_error(c, CAIRN_NOT_FOUND, "NotFoundException",
                     "Key '%.*s' does not exist", n, ref.p);
}

/* The key named by the request's (required) field @p field. */
static int kkey_req(struct ctx *c,
                    const char *field,
                    const char *wire,
                    struct kkey *kk)
{
    struct mp_str ref;
    bool found = false;
    int r = mp_get_str(c->req, field, &ref, c->err);
    int rv;

    if (r < 0) {
        return c->err->code;
    }
    if (r == 0 || ref.n == 0 || ref.n > 2048) {
        return validation(c,
                          "1 validation error detected: Value at '%s' "
                          "failed to satisfy constraint: Member must have "
                          "length between 1 and 2048",
                          wire);
    }
    rv = kkey_load(c, ref, kk, &found);
    if (rv == 0 && !found) {
        rv = key_not_found(c, ref);
    }
    return rv;
}

static int kkey_save(struct ctx *c, const struct keyring_key *k)
{
    uint8_t key[KEYRING_META_KEY_MAX];
    size_t klen = keyring_meta_key(META_KMS_KEY, k->id, key);
    struct buf b;
    int rv;

    buf_init(&b);
    if (keyring_key_encode(k, &b) != 0) {
        buf_close(&b);
        return oom(c);
    }
    rv = put(c, c->s->meta, key, klen, b.data, b.len);
    buf_close(&b);
    return rv;
}

static bool key_in(const struct keyring_key *k, const char *state)
{
    return mp_str_eqn(k->state, state);
}

static int key_pending(struct ctx *c, const struct kkey *kk)
{
    return kms_error(c, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
                     "%s is pending deletion.", kk->arn);
}

/* "kms/due/" + DeletionDate (8 bytes BE) + key id. */
static size_t due_key(int64_t when, struct mp_str id, uint8_t *out)
{
    size_t pn = strlen(META_KMS_DUE);
    memcpy(out, META_KMS_DUE, pn);
    be64_put(out + pn, when < 0 ? 0 : (uint64_t)when);
    memcpy(out + pn + 8, id.p, id.n);
    return pn + 8 + id.n;
}

static void alias_arn(struct ctx *c, struct mp_str name, char *out, size_t cap)
{
    snprintf(out, cap, "arn:%s:kms:%s:%s:%.*s", c->s->opts.arn.partition,
             c->s->opts.arn.region, c->s->opts.arn.account, (int)name.n,
             name.p);
}

static int alias_load(struct ctx *c,
                      struct mp_str name,
                      struct buf *copy,
                      struct keyring_alias *a,
                      bool *found)
{
    uint8_t key[KEYRING_META_KEY_MAX];
    size_t klen = keyring_meta_key(META_KMS_ALIAS, name, key);
    int rv = load(c, c->s->meta, key, klen, copy, found);
    if (rv != 0 || !*found) {
        return rv;
    }
    if (keyring_alias_decode(copy->data, copy->len, a) != 0) {
        return keyring_corrupt(c, "alias");
    }
    return 0;
}

static int alias_save(struct ctx *c,
                      struct mp_str name,
                      const struct keyring_alias *a)
{
    uint8_t key[KEYRING_META_KEY_MAX];
    size_t klen = keyring_meta_key(META_KMS_ALIAS, name, key);
    struct buf b;
    int rv;

    buf_init(&b);
    if (keyring_alias_encode(a, &b) != 0) {
        buf_close(&b);
        return oom(c);
    }
    rv = put(c, c->s->meta, key, klen, b.data, b.len);
    buf_close(&b);
    return rv;
}

static int alias_exists(struct ctx *c, struct mp_str name, bool *found)
{
    uint8_t key[KEYRING_META_KEY_MAX];
    MDB_val k = {keyring_meta_key(META_KMS_ALIAS, name, key), key};
    MDB_val v;
    int rc = mdb_get(c->txn, c->s->meta, &k, &v);
    *found = rc == 0;
    return rc != 0 && rc != MDB_NOTFOUND ? fault(c, rc, "alias") : 0;
}

static int alias_taken(struct ctx *c, struct mp_str name)
{
    char arn[512];
    alias_arn(c, name, arn, sizeof(arn));
    return kms_error(c, CAIRN_ALREADY_EXISTS, "AlreadyExistsException",
                     "An alias with the name %s already exists", arn);
}

/* Read the required AliasName and check its syntax and prefix. */
static int req_alias(struct ctx *c, struct mp_str *name)
{
    int r = mp_get_str(c->req, "AliasName", name, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0) {
        return validation(c,
                          "1 validation error detected: Value null at "
                          "'aliasName' failed to satisfy constraint: Member "
                          "must not be null");
    }
    return keyring_alias_check(*name, false, c->err);
}

/* Delete every alias that targets key @p id. The names are gathered first
 * (two length bytes, then the key) and deleted after the scan. */
static int delete_aliases_of(struct ctx *c, struct mp_str id)
{
    const size_t pn = strlen(META_KMS_ALIAS);
    MDB_cursor *cur;
    MDB_val k = {pn, (void *)META_KMS_ALIAS};
    MDB_val v;
    struct buf doomed;
    int rc;
    int rv = 0;

    rc = mdb_cursor_open(c->txn, c->s->meta, &cur);
    if (rc != 0) {
        return fault(c, rc, "cursor");
    }
    buf_init(&doomed);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct keyring_alias a;
        uint8_t len[2] = {(uint8_t)(k.mv_size >> 8), (uint8_t)k.mv_size};
        if (k.mv_size < pn || memcmp(k.mv_data, META_KMS_ALIAS, pn) != 0) {
            break;
        }
        if (keyring_alias_decode(v.mv_data, v.mv_size, &a) == 0 &&
            str_eq(a.target, id)) {
            buf_append(&doomed, len, 2);
            buf_append(&doomed, k.mv_data, k.mv_size);
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rv = fault(c, rc, "aliases");
    } else if (doomed.oom) {
        rv = oom(c);
    }
    for (size_t at = 0; rv == 0 && at + 2 <= doomed.len;) {
        size_t n = (size_t)doomed.data[at] << 8 | doomed.data[at + 1];
        rv = del(c, c->s->meta, doomed.data + at + 2, n);
        at += 2 + n;
    }
    buf_close(&doomed);
    return rv;
}

/* Delete the keys whose DeletionDate is at or before the command's time,
 * with their aliases, oldest first. The due index holds only pending keys,
 * so this reads one entry when nothing is due. */
static int keyring_sweep(struct ctx *c)
{
    const size_t pn = strlen(META_KMS_DUE);

    for (;;) {
        uint8_t due[KEYRING_META_KEY_MAX];
        uint8_t key[KEYRING_META_KEY_MAX];
        size_t due_len = 0;
        struct mp_str id;
        MDB_cursor *cur;
        MDB_val k = {pn, (void *)META_KMS_DUE};
        MDB_val v;
        bool take;
        int rv;
        int rc = mdb_cursor_open(c->txn, c->s->meta, &cur);

        if (rc != 0) {
            return fault(c, rc, "cursor");
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        take = rc == 0 && k.mv_size > pn + 8 &&
               k.mv_size <= pn + 8 + KEYRING_ID_MAX &&
               memcmp(k.mv_data, META_KMS_DUE, pn) == 0 && c->ts >= 0 &&
               be64_get((const uint8_t *)k.mv_data + pn) <= (uint64_t)c->ts;
        if (take) {
            due_len = k.mv_size;
            memcpy(due, k.mv_data, due_len);
        }
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return fault(c, rc, "keyring sweep");
        }
        if (!take) {
            return 0;
        }
        id.p = (const char *)due + pn + 8;
        id.n = due_len - pn - 8;
        rv = del(c, c->s->meta, due, due_len);
        if (rv == 0) {
            rv = del(c, c->s->meta, key,
                     keyring_meta_key(META_KMS_KEY, id, key));
        }
        if (rv == 0) {
            rv = delete_aliases_of(c, id);
        }
        if (rv != 0) {
            return rv;
        }
    }
}

static void pack_key_metadata(struct ctx *c, const struct keyring_key *k)
{
    msgpack_pack_map(&c->pk, 1);
    mp_pack_cstr(&c->pk, "KeyMetadata");
    keyring_pack_metadata(&c->pk, &c->s->opts.arn, k);
}

/* Material and RootKey of a CreateKey or RotateKey. */
static int req_material(struct ctx *c,
                        struct mp_str *material,
                        struct mp_str *root_key)
{
    bool is_bin = false;
    if (mp_get_bytes(c->req, "Material", material, &is_bin, c->err) < 0 ||
        mp_get_str(c->req, "RootKey", root_key, c->err) < 0) {
        return c->err->code;
    }
    return keyring_material_check(*material, is_bin, *root_key, c->err);
}

static int op_create_key(struct ctx *c)
{
    struct mp_str id, description = {NULL, 0}, material, root_key;
    bool is_default = false, found = false, cairn_alias = false;
    const msgpack_object_array *aliases = NULL;
    struct mp_str names[CREATE_ALIASES_MAX];
    unsigned n_names = 0;
    struct kkey existing;
    struct keyring_key nk;
    struct keyring_alias a;
    int r = 0;
    int rv;

    if (mp_get_str(c->req, "KeyId", &id, c->err) < 0 ||
        mp_get_str(c->req, "Description", &description, c->err) < 0 ||
        mp_get_bool(c->req, "Default", &is_default, c->err) < 0 ||
        (r = mp_get_array(c->req, "Aliases", &aliases, c->err)) < 0) {
        return c->err->code;
    }
    if (r == 0) {
        aliases = NULL;
    }
    if (!keyring_id_valid(id)) {
        return validation(c,
                          "KeyId must have 1 to %d characters of "
                          "[A-Za-z0-9-].",
                          KEYRING_ID_MAX);
    }
    if (description.p != NULL && description.n > KEYRING_DESCRIPTION_MAX) {
        return validation(c,
                          "1 validation error detected: Value at "
                          "'description' failed to satisfy constraint: "
                          "Member must have length less than or equal to "
                          "%d",
                          KEYRING_DESCRIPTION_MAX);
    }
    rv = req_material(c, &material, &root_key);
    if (rv != 0) {
        return rv;
    }
    if (aliases != NULL && aliases->size > CREATE_ALIASES_MAX) {
        return validation(c, "A key may be created with at most %d aliases.",
                          CREATE_ALIASES_MAX);
    }
    for (uint32_t i = 0; aliases != NULL && i < aliases->size; i++) {
        const msgpack_object *o = &aliases->ptr[i];
        struct mp_str name;
        if (o->type != MSGPACK_OBJECT_STR) {
            return validation(c, "Aliases must be a list of alias names.");
        }
        name.p = o->via.str.size > 0 ? o->via.str.ptr : "";
        name.n = o->via.str.size;
        rv = keyring_alias_check(name, false, c->err);
        if (rv != 0) {
            return rv;
        }
        for (unsigned j = 0; j < n_names; j++) {
            if (str_eq(names[j], name)) {
                return validation(c, "Alias %.*s is listed twice.", (int)name.n,
                                  name.p);
            }
        }
        names[n_names++] = name;
    }

    kkey_init(&existing);
    if (is_default) {
        /* The default key is created once: later requests answer it. */
        rv = kkey_load(c, cstr(KEYRING_DEFAULT_ALIAS), &existing, &found);
        if (rv == 0 && found) {
            pack_key_metadata(c, &existing.k);
        }
        if (rv != 0 || found) {
            goto out;
        }
    }
    rv = kkey_load(c, id, &existing, &found);
    if (rv != 0) {
        goto out;
    }
    if (found) {
        rv = kms_error(c, CAIRN_ALREADY_EXISTS, "AlreadyExistsException",
                       "A key with id %.*s already exists.", (int)id.n, id.p);
        goto out;
    }
    for (unsigned i = 0; i < n_names; i++) {
        rv = alias_exists(c, names[i], &found);
        if (rv == 0 && found) {
            rv = alias_taken(c, names[i]);
        }
        if (rv != 0) {
            goto out;
        }
    }
    if (is_default) {
        /* alias/aws/ssm is reserved and follows the default key; the
         * Cairn alias is not reserved, so it is taken only if free. */
        rv = alias_exists(c, cstr(KEYRING_CAIRN_ALIAS), &found);
        if (rv != 0) {
            goto out;
        }
        cairn_alias = !found;
    }

    /* Every check passed: write. */
    memset(&nk, 0, offsetof(struct keyring_key, versions));
    nk.id = id;
    nk.description = description.p != NULL ? description
                     : is_default          ? cstr(DEFAULT_KEY_DESCRIPTION)
                                           : cstr("");
    nk.state = cstr(KEYRING_ENABLED);
    nk.manager = cstr(is_default ? "AWS" : "CUSTOMER");
    nk.created = c->ts;
    /* AWS managed keys rotate every year. */
    nk.rotation = is_default;
    nk.current = 1;
    nk.n_versions = 1;
    nk.versions[0].version = 1;
    nk.versions[0].material = material;
    nk.versions[0].root_key = root_key;
    nk.versions[0].created = c->ts;
    rv = kkey_save(c, &nk);
    a.target = id;
    a.created = c->ts;
    a.updated = c->ts;
    for (unsigned i = 0; rv == 0 && i < n_names; i++) {
        rv = alias_save(c, names[i], &a);
    }
    if (rv == 0 && is_default) {
        rv = alias_save(c, cstr(KEYRING_DEFAULT_ALIAS), &a);
    }
    if (rv == 0 && cairn_alias) {
        rv = alias_save(c, cstr(KEYRING_CAIRN_ALIAS), &a);
    }
    if (rv == 0) {
        pack_key_metadata(c, &nk);
    }
out:
    kkey_close(&existing);
    return rv;
}

static int op_rotate_key(struct ctx *c)
{
    struct mp_str material, root_key;
    uint64_t want = 0, next;
    struct kkey kk;
    struct keyring_version *v;
    int has_want = mp_get_u64(c->req, "Version", &want, c->err);
    int rv;

    if (has_want < 0) {
        return c->err->code;
    }
    rv = req_material(c, &material, &root_key);
    if (rv != 0) {
        return rv;
    }
    kkey_init(&kk);
    rv = kkey_req(c, "KeyId", "keyId", &kk);
    if (rv != 0) {
        goto out;
    }
    if (key_in(&kk.k, KEYRING_PENDING)) {
        rv = key_pending(c, &kk);
        goto out;
    }
    if (!key_in(&kk.k, KEYRING_ENABLED)) {
        rv = kms_error(c, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
                       "%s is disabled.", kk.arn);
        goto out;
    }
    if (kk.k.n_versions >= KEYRING_MAX_VERSIONS) {
        rv = kms_error(c, CAIRN_RESOURCE_EXHAUSTED, "LimitExceededException",
                       "%s has the maximum of %d versions.", kk.arn,
                       KEYRING_MAX_VERSIONS);
        goto out;
    }
    next = kk.k.current + 1;
    /* The material is bound to its version (AAD): material wrapped for
     * another version than the one it would get must not be stored. */
    if (has_want == 1 && want != next) {
        rv = kms_error(c, CAIRN_ABORTED, "ConflictException",
                       "The material was wrapped for version %llu of %s, "
                       "whose next version is %llu; read the key again and "
                       "retry.",
                       (unsigned long long)want, kk.arn,
                       (unsigned long long)next);
        goto out;
    }
    v = &kk.k.versions[kk.k.n_versions++];
    v->version = next;
    v->material = material;
    v->root_key = root_key;
    v->created = c->ts;
    kk.k.current = next;
    rv = kkey_save(c, &kk.k);
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 2);
        mp_pack_kv_str(&c->pk, "KeyId", kk.k.id.p, kk.k.id.n);
        mp_pack_kv_u64(&c->pk, "CurrentVersion", next);
    }
out:
    kkey_close(&kk);
    return rv;
}

/* EnableKeyRotation and DisableKeyRotation. */
static int set_rotation(struct ctx *c, bool on)
{
    struct kkey kk;
    int rv;

    kkey_init(&kk);
    rv = kkey_req(c, "KeyId", "keyId", &kk);
    if (rv == 0 && key_in(&kk.k, KEYRING_PENDING)) {
        rv = key_pending(c, &kk);
    } else if (rv == 0 && !key_in(&kk.k, KEYRING_ENABLED)) {
        rv = kms_error(c, CAIRN_FAILED_PRECONDITION, "DisabledException",
                       "%s is disabled.", kk.arn);
    }
    if (rv == 0) {
        kk.k.rotation = on;
        rv = kkey_save(c, &kk.k);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
    kkey_close(&kk);
    return rv;
}

static int op_enable_rotation(struct ctx *c)
{
    return set_rotation(c, true);
}

static int op_disable_rotation(struct ctx *c)
{
    return set_rotation(c, false);
}

/* EnableKey and DisableKey: allowed unless the key is pending deletion. */
static int set_enabled(struct ctx *c, bool on)
{
    struct kkey kk;
    int rv;

    kkey_init(&kk);
    rv = kkey_req(c, "KeyId", "keyId", &kk);
    if (rv == 0 && key_in(&kk.k, KEYRING_PENDING)) {
        rv = key_pending(c, &kk);
    }
    if (rv == 0) {
        kk.k.state = cstr(on ? KEYRING_ENABLED : KEYRING_DISABLED);
        rv = kkey_save(c, &kk.k);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
    kkey_close(&kk);
    return rv;
}

static int op_enable_key(struct ctx *c)
{
    return set_enabled(c, true);
}

static int op_disable_key(struct ctx *c)
{
    return set_enabled(c, false);
}

static int op_schedule_deletion(struct ctx *c)
{
    uint64_t days = WINDOW_DEFAULT;
    uint8_t due[KEYRING_META_KEY_MAX];
    struct kkey kk;
    int r = mp_get_u64(c->req, "PendingWindowInDays", &days, c->err);
    int rv;

    if (r < 0) {
        return c->err->code;
    }
    if (days < WINDOW_MIN || days > WINDOW_MAX) {
        return validation(c,
                          "1 validation error detected: Value '%llu' at "
                          "'pendingWindowInDays' failed to satisfy "
                          "constraint: Member must have value between %d "
                          "and %d",
                          (unsigned long long)days, WINDOW_MIN, WINDOW_MAX);
    }
    kkey_init(&kk);
    rv = kkey_req(c, "KeyId", "keyId", &kk);
    if (rv == 0 && key_in(&kk.k, KEYRING_PENDING)) {
        rv = key_pending(c, &kk);
    }
    if (rv == 0) {
        kk.k.state = cstr(KEYRING_PENDING);
        int64_t window = (int64_t)days * DAY_MS;
        kk.k.deletion = c->ts > INT64_MAX - window ? INT64_MAX : c->ts + window;
        kk.k.window_days = days;
        rv = kkey_save(c, &kk.k);
    }
    if (rv == 0) {
        rv = put(c, c->s->meta, due, due_key(kk.k.deletion, kk.k.id, due), "",
                 0);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 4);
        mp_pack_kv_cstr(&c->pk, "KeyId", kk.arn);
        keyring_pack_time(&c->pk, "DeletionDate", kk.k.deletion);
        mp_pack_kv_cstr(&c->pk, "KeyState", KEYRING_PENDING);
        mp_pack_kv_u64(&c->pk, "PendingWindowInDays", days);
    }
    kkey_close(&kk);
    return rv;
}

/* A key whose deletion is cancelled comes back Disabled, as in KMS. */
static int op_cancel_deletion(struct ctx *c)
{
    uint8_t due[KEYRING_META_KEY_MAX];
    struct kkey kk;
    int rv;

    kkey_init(&kk);
    rv = kkey_req(c, "KeyId", "keyId", &kk);
    if (rv == 0 && !key_in(&kk.k, KEYRING_PENDING)) {
        rv = kms_error(c, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
                       "%s is not pending deletion.", kk.arn);
    }
    if (rv == 0) {
        rv = del(c, c->s->meta, due, due_key(kk.k.deletion, kk.k.id, due));
    }
    if (rv == 0) {
        kk.k.state = cstr(KEYRING_DISABLED);
        kk.k.deletion = 0;
        kk.k.window_days = 0;
        rv = kkey_save(c, &kk.k);
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 1);
        mp_pack_kv_cstr(&c->pk, "KeyId", kk.arn);
    }
    kkey_close(&kk);
    return rv;
}

/* CreateAlias (@p create) and UpdateAlias. The target may be named in any
 * KeyId form; the alias records its bare id. */
static int put_alias(struct ctx *c, bool create)
{
    struct mp_str name;
    struct kkey kk;
    struct buf copy;
    struct keyring_alias a;
    bool found = false;
    int rv = req_alias(c, &name);

    if (rv != 0) {
        return rv;
    }
    kkey_init(&kk);
    buf_init(&copy);
    rv = alias_load(c, name, &copy, &a, &found);
    if (rv != 0) {
        goto out;
    }
    if (create && found) {
        rv = alias_taken(c, name);
        goto out;
    }
    if (!create && !found) {
        rv = key_not_found(c, name);
        goto out;
    }
    rv = kkey_req(c, "TargetKeyId", "targetKeyId", &kk);
    if (rv == 0 && key_in(&kk.k, KEYRING_PENDING)) {
        rv = key_pending(c, &kk);
    }
    if (rv != 0) {
        goto out;
    }
    if (create) {
        a.created = c->ts;
    }
    a.target = kk.k.id;
    a.updated = c->ts;
    rv = alias_save(c, name, &a);
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
out:
    buf_close(&copy);
    kkey_close(&kk);
    return rv;
}

static int op_create_alias(struct ctx *c)
{
    return put_alias(c, true);
}

static int op_update_alias(struct ctx *c)
{
    return put_alias(c, false);
}

static int op_delete_alias(struct ctx *c)
{
    struct mp_str name;
    uint8_t key[KEYRING_META_KEY_MAX];
    bool found = false;
    int rv = req_alias(c, &name);

    if (rv == 0) {
        rv = alias_exists(c, name, &found);
    }
    if (rv == 0 && !found) {
        rv = key_not_found(c, name);
    }
    if (rv == 0) {
        rv = del(c, c->s->meta, key,
                 keyring_meta_key(META_KMS_ALIAS, name, key));
    }
    if (rv == 0) {
        msgpack_pack_map(&c->pk, 0);
    }
    return rv;
}

static int count_keys(struct ctx *c, uint64_t *n)
{
    const size_t pn = strlen(META_KMS_KEY);
    MDB_cursor *cur;
    MDB_val k = {pn, (void *)META_KMS_KEY};
    MDB_val v;
    int rc = mdb_cursor_open(c->txn, c->s->meta, &cur);

    *n = 0;
    if (rc != 0) {
        return fault(c, rc, "cursor");
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < pn || memcmp(k.mv_data, META_KMS_KEY, pn) != 0) {
            break;
        }
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc != 0 && rc != MDB_NOTFOUND ? fault(c, rc, "count keys") : 0;
}

/* One entry of RewrapKeyring's Keys: its KeyId and Versions array. */
static int rewrap_entry(struct ctx *c,
                        const msgpack_object *e,
                        struct mp_str *id,
                        const msgpack_object_array **versions)
{
    int r;
    if (e->type != MSGPACK_OBJECT_MAP) {
        return validation(c, "Each entry of Keys must be a map.");
    }
    if (mp_get_str(e, "KeyId", id, c->err) < 0 ||
        (r = mp_get_array(e, "Versions", versions, c->err)) < 0) {
        return c->err->code;
    }
    if (!keyring_id_valid(*id) || r == 0) {
        return validation(c,
                          "Each entry of Keys needs a KeyId (a bare key id) "
                          "and its Versions.");
    }
    return 0;
}

/*
 * Check (with @p apply false) or apply one entry of RewrapKeyring for key
 * @p kk: every version of the key must be listed exactly once, each with
 * material wrapped by @p root_key.
 */
static int rewrap_versions(struct ctx *c,
                           struct kkey *kk,
                           const msgpack_object_array *versions,
                           struct mp_str root_key,
                           bool apply)
{
    bool seen[KEYRING_MAX_VERSIONS] = {false};
    int rv;

    if (versions->size != kk->k.n_versions) {
        return validation(c,
                          "RewrapKeyring must list every version of key %s "
                          "(it has %u, %u listed).",
                          kk->id, kk->k.n_versions, versions->size);
    }
    for (uint32_t i = 0; i < versions->size; i++) {
        const msgpack_object *o = &versions->ptr[i];
        struct mp_str material;
        bool is_bin = false;
        uint64_t version = 0;
        uint32_t at;
        if (o->type != MSGPACK_OBJECT_MAP ||
            mp_get_u64(o, "Version", &version, c->err) != 1 ||
            mp_get_bytes(o, "Material", &material, &is_bin, c->err) != 1) {
            return validation(c,
                              "Each version of key %s needs a Version and "
                              "its Material.",
                              kk->id);
        }
        rv = keyring_material_check(material, is_bin, root_key, c->err);
        if (rv != 0) {
            return rv;
        }
        for (at = 0; at < kk->k.n_versions; at++) {
            if (kk->k.versions[at].version == version) {
                break;
            }
        }
        if (at == kk->k.n_versions || seen[at]) {
            return validation(c,
                              "Version %llu of key %s does not exist or is "
                              "listed twice.",
                              (unsigned long long)version, kk->id);
        }
        seen[at] = true;
        if (apply) {
            kk->k.versions[at].material = material;
            kk->k.versions[at].root_key = root_key;
        }
    }
    return apply ? kkey_save(c, &kk->k) : 0;
}

/* Root key rotation: every version's Material and RootKey are replaced,
 * all or nothing. Every key and version in the keyring must be listed. */
static int op_rewrap(struct ctx *c)
{
    struct mp_str root_key;
    const msgpack_object_array *keys;
    uint64_t stored;
    int r, rv;

    if ((r = mp_get_str(c->req, "RootKey", &root_key, c->err)) < 0) {
        return c->err->code;
    }
    if (r == 0 || (r = mp_get_array(c->req, "Keys", &keys, c->err)) <= 0) {
        return r < 0 ? c->err->code
                     : validation(c, "RewrapKeyring needs RootKey and Keys.");
    }
    if (!keyring_root_key_valid(root_key)) {
        return validation(c,
                          "RootKey must be the root key fingerprint: %d "
                          "lower-case hex digits.",
                          KEYRING_FINGERPRINT_HEX);
    }
    rv = count_keys(c, &stored);
    if (rv != 0) {
        return rv;
    }
    if (keys->size != stored) {
        return validation(c,
                          "RewrapKeyring must list every key of the keyring "
                          "(%llu keys, %u listed).",
                          (unsigned long long)stored, keys->size);
    }
    /* Two passes: check everything, then write. */
    for (int apply = 0; apply < 2; apply++) {
        for (uint32_t i = 0; i < keys->size; i++) {
            struct mp_str id;
            const msgpack_object_array *versions;
            struct kkey kk;
            bool found = false;

            rv = rewrap_entry(c, &keys->ptr[i], &id, &versions);
            for (uint32_t j = 0; rv == 0 && !apply && j < i; j++) {
                struct mp_str other;
                const msgpack_object_array *unused;
                rewrap_entry(c, &keys->ptr[j], &other, &unused);
                if (str_eq(other, id)) {
                    rv = validation(c, "Key %.*s is listed twice.", (int)id.n,
                                    id.p);
                }
            }
            if (rv != 0) {
                return rv;
            }
            kkey_init(&kk);
            rv = kkey_load(c, id, &kk, &found);
            if (rv == 0 && !found) {
                rv = validation(c, "Key %.*s is not in the keyring.", (int)id.n,
                                id.p);
            }
            if (rv == 0) {
                rv = rewrap_versions(c, &kk, versions, root_key, apply);
            }
            kkey_close(&kk);
            if (rv != 0) {
                return rv;
            }
        }
    }
    msgpack_pack_map(&c->pk, 0);
    return 0;
}

/* PutParameter of a SecureString: its KeyId (as given, or the stored or
 * default one) must name an enabled key when the value is written. Checked
 * at apply time against the replicated keyring, so every replica agrees. */
static int put_check_key(struct ctx *c, struct mp_str ref)
{
    struct kkey kk;
    bool found = false;
    int n = (int)(ref.n > 256 ? 256 : ref.n);
    int rv;

    kkey_init(&kk);
    rv = kkey_load(c, ref, &kk, &found);
    if (rv == 0 && !found) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
                             "Invalid keyId %.*s: no such key.", n, ref.p);
    } else if (rv == 0 && key_in(&kk.k, KEYRING_PENDING)) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
                             "%s is pending deletion.", kk.arn);
    } else if (rv == 0 && !key_in(&kk.k, KEYRING_ENABLED)) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
                             "%s is disabled.", kk.arn);
    }
    kkey_close(&kk);
    return rv;
}

/* ---- cluster members ------------------------------------------------ */

/* The member table tells every node where each member's client API
 * listens, so a follower can forward to the leader. The Raft configuration
 * stays libraft's; this is only an address book. */
#define MEMBER_ADDRESS_MAX 255

static void member_key(uint8_t key[META_MEMBER_KEY_LEN], uint64_t id)
{
    memcpy(key, META_MEMBER, sizeof(META_MEMBER) - 1);
    for (int i = 0; i < 8; i++) {
        key[sizeof(META_MEMBER) - 1 + (size_t)i] =
            (uint8_t)(id >> (56 - 8 * i));
    }
}

static int member_id(struct ctx *c, uint64_t *id)
{
    int r = mp_get_u64(c->req, "Id", id, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0 || *id == 0) {
        return validation(c, "A member needs an Id from 1.");
    }
    return 0;
}

static int member_address(struct ctx *c, const char *field, struct mp_str *a)
{
    int r = mp_get_str(c->req, field, a, c->err);
    if (r < 0) {
        return c->err->code;
    }
    if (r == 0 || a->n == 0 || a->n > MEMBER_ADDRESS_MAX ||
        memchr(a->p, ':', a->n) == NULL) {
        return validation(c, "%s must be host:port, up to %d characters.",
                          field, MEMBER_ADDRESS_MAX);
    }
    return 0;
}

static int op_set_member(struct ctx *c)
{
    uint8_t key[META_MEMBER_KEY_LEN];
    struct mp_str raft, api;
    uint64_t id;
    struct buf rec;
    msgpack_packer pk;
    int rv;

    if ((rv = member_id(c, &id)) != 0 ||
        (rv = member_address(c, "RaftAddress", &raft)) != 0 ||
        (rv = member_address(c, "ApiAddress", &api)) != 0) {
        return rv;
    }
    buf_init(&rec);
    mp_packer_init(&pk, &rec);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_u64(&pk, "Id", id);
    mp_pack_kv_str(&pk, "RaftAddress", raft.p, raft.n);
    mp_pack_kv_str(&pk, "ApiAddress", api.p, api.n);
    if (rec.oom) {
        buf_close(&rec);
        return oom(c);
    }
    member_key(key, id);
    rv = put(c, c->s->meta, key, sizeof(key), rec.data, rec.len);
    buf_close(&rec);
    if (rv != 0) {
        return rv;
    }
    msgpack_pack_map(&c->pk, 0);
    return 0;
}

static int op_remove_member(struct ctx *c)
{
    uint8_t key[META_MEMBER_KEY_LEN];
    uint64_t id;
    int rv = member_id(c, &id);

    if (rv != 0) {
        return rv;
    }
    member_key(key, id);
    rv = del(c, c->s->meta, key, sizeof(key));
    if (rv != 0) {
        return rv;
    }
    msgpack_pack_map(&c->pk, 0);
    return 0;
}

/* ---- dispatch ------------------------------------------------------- */

struct op
{
    const char *name;
    int (*fn)(struct ctx *c);
    bool keyring; /* a keyring op: keys past their DeletionDate go first */
};

static const struct op ops[] = {
    {"PutParameter", op_put, false},
    {"DeleteParameter", op_delete, false},
    {"DeleteParameters", op_delete_many, false},
    {"LabelParameterVersion", op_label, false},
    {"UnlabelParameterVersion", op_unlabel, false},
    {"AddTagsToResource", op_add_tags, false},
    {"RemoveTagsFromResource", op_remove_tags, false},
    {"UpdateServiceSetting", op_update_setting, false},
    {"ResetServiceSetting", op_reset_setting, false},
    {"Init", op_init, false},
    {"SetMember", op_set_member, false},
    {"RemoveMember", op_remove_member, false},
    {"CreateKey", op_create_key, true},
    {"RotateKey", op_rotate_key, true},
    {"EnableKeyRotation", op_enable_rotation, true},
    {"DisableKeyRotation", op_disable_rotation, true},
    {"EnableKey", op_enable_key, true},
    {"DisableKey", op_disable_key, true},
    {"ScheduleKeyDeletion", op_schedule_deletion, true},
    {"CancelKeyDeletion", op_cancel_deletion, true},
    {"CreateAlias", op_create_alias, true},
    {"UpdateAlias", op_update_alias, true},
    {"DeleteAlias", op_delete_alias, true},
    {"RewrapKeyring", op_rewrap, true},
};

/* Decode the envelope and run the op. Returns OK/business status/FAULT. */
static int run(struct ctx *c, const void *cmd, size_t len)
{
    struct mp_doc doc;
    struct mp_str op;
    struct mp_str cid = {NULL, 0};
    uint64_t seq = 0;
    int rv;

    rv = mp_doc_parse(&doc, cmd, len, c->err);
    if (rv == CAIRN_RESOURCE_EXHAUSTED) {
        *(&c->fault_err) = *c->err;
        cairn_error_clear(c->err);
        return FAULT;
    }
    if (rv != 0) {
        return rv;
    }
    if (doc.root.type != MSGPACK_OBJECT_MAP) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                             "SerializationException",
                             "a command must be a msgpack map");
        goto out;
    }
    if (mp_get_str(&doc.root, "op", &op, c->err) < 0 ||
        mp_get_i64(&doc.root, "ts", &c->ts, c->err) < 0 ||
        mp_get_str(&doc.root, "user", &c->user, c->err) < 0) {
        rv = c->err->code;
        goto out;
    }
    c->req = mp_map_get(&doc.root, "req");
    if (op.p == NULL) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                             "SerializationException", "a command needs an op");
        goto out;
    }
    if (c->req == NULL || c->req->type != MSGPACK_OBJECT_MAP) {
        rv = cairn_error_set(c->err, CAIRN_INVALID_ARGUMENT,
                             "SerializationException",
                             "a command needs a req map");
        goto out;
    }
    if (mp_get_str(&doc.root, "cid", &cid, c->err) < 0 ||
        mp_get_u64(&doc.root, "seq", &seq, c->err) < 0) {
        rv = c->err->code;
        goto out;
    }
    if (cid.p != NULL) {
        bool replayed = false;
        rv = session_check(c, cid, seq, &replayed);
        if (rv != 0 || replayed) {
            goto out;
        }
    }
    rv = cairn_error_set(c->err, CAIRN_UNIMPLEMENTED,
                         "UnknownOperationException", "unknown command %.*s",
                         (int)(op.n > 64 ? 64 : op.n), op.p);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (mp_str_eqn(op, ops[i].name)) {
            cairn_error_clear(c->err);
            /* Deleting due keys is housekeeping by command time, like
             * forgetting sessions: it happens whatever the op's outcome. */
            rv = ops[i].keyring ? keyring_sweep(c) : 0;
            if (rv == 0) {
                rv = ops[i].fn(c);
            }
            break;
        }
    }
    if (cid.p != NULL && rv != FAULT) {
        int srv = session_save(c, cid, seq);
        if (srv != 0) {
            rv = srv;
        }
    }
out:
    mp_doc_close(&doc);
    return rv;
}

int sm_batch_begin(struct store *s, struct cairn_error *err)
{
    int rc;
    if (s->batch != NULL) {
        return cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                               "a batch is already open");
    }
    rc = store_reserve(s, err);
    if (rc != 0) {
        return rc;
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &s->batch);
    if (rc != 0) {
        s->batch = NULL;
        return store_status_from_mdb(rc, err, "begin batch");
    }
    return 0;
}

int sm_batch_commit(struct store *s, struct cairn_error *err)
{
    int rc;
    if (s->batch == NULL) {
        return cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                               "no batch is open");
    }
    rc = mdb_txn_commit(s->batch);
    s->batch = NULL;
    return rc != 0 ? store_status_from_mdb(rc, err, "commit batch") : 0;
}

void sm_batch_abort(struct store *s)
{
    if (s->batch != NULL) {
        mdb_txn_abort(s->batch);
        s->batch = NULL;
    }
}

int sm_apply(struct store *s,
             uint64_t index,
             const void *cmd,
             size_t len,
             const struct sm_outcome **outcome)
{
    struct sm_outcome *o = &s->outcome;
    struct ctx c;
    bool own = s->batch == NULL;
    uint64_t applied;
    int rc;
    int rv;

    memset(o, 0, sizeof(*o));
    *outcome = o;
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.err = &o->err;
    buf_reset(&s->out);
    mp_packer_init(&c.pk, &s->out);

    if (own) {
        rv = store_reserve(s, &o->err);
        if (rv != 0) {
            return rv;
        }
        rc = mdb_txn_begin(s->env, NULL, 0, &c.txn);
        if (rc != 0) {
            return store_status_from_mdb(rc, &o->err, "begin apply");
        }
    } else {
        c.txn = s->batch;
    }
    rc = store_meta_get_u64(c.txn, s->meta, META_APPLIED, 0, &applied);
    if (rc == 0) {
        rc = store_meta_get_u64(c.txn, s->meta, META_REVISION, 0, &c.revision);
    }
    if (rc != 0) {
        rv = store_status_from_mdb(rc, &o->err, "read applied index");
        goto fail;
    }
    if (index <= applied) {
        o->skipped = true;
        o->revision = c.revision;
        if (own) {
            mdb_txn_abort(c.txn);
        }
        return 0;
    }
    rv = run(&c, cmd, len);
    if (rv == FAULT) {
        o->err = c.fault_err;
        rv = o->err.code != 0 ? o->err.code : CAIRN_INTERNAL;
        goto fail;
    }
    if (s->out.oom) {
        rv = cairn_error_set(&o->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory encoding the outcome");
        goto fail;
    }
    if (sessions_prune(&c) == FAULT) {
        o->err = c.fault_err;
        rv = o->err.code != 0 ? o->err.code : CAIRN_INTERNAL;
        goto fail;
    }
    rc = store_meta_put_u64(c.txn, s->meta, META_APPLIED, index);
    if (rc == 0) {
        rc = store_meta_put_u64(c.txn, s->meta, META_REVISION, c.revision);
    }
    if (rc == 0 && own) {
        rc = mdb_txn_commit(c.txn);
        c.txn = NULL;
    }
    if (rc != 0) {
        rv = store_status_from_mdb(rc, &o->err, "commit apply");
        own = own && c.txn != NULL;
        goto fail;
    }
    if (o->err.code == CAIRN_OK) {
        o->body = s->out.data;
        o->body_len = s->out.len;
    }
    o->revision = c.revision;
    return 0;

fail:
    if (own) {
        if (c.txn != NULL) {
            mdb_txn_abort(c.txn);
        }
    } else {
        sm_batch_abort(s);
    }
    return rv;
}
