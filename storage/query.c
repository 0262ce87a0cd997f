#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keyring.h"
#include "keys.h"
#include "names.h"
#include "store_int.h"

#define TIER_STANDARD "Standard"
#define SETTING_DEFAULT_TIER "/ssm/parameter-store/default-parameter-tier"
#define MAX_FILTERS 20
#define MAX_FILTER_VALUES 50

/* Token kinds: a token from one listing is refused by another. */
enum { TOKEN_BY_PATH = 1, TOKEN_DESCRIBE, TOKEN_HISTORY };

/* Side buffer for the list of results of a paged read, counted as they are
 * packed (the map header needs the count first). */
struct listing
{
    struct buf items;
    msgpack_packer pk;
    uint32_t count;
};

struct q
{
    struct store *s;
    MDB_txn *txn;
    const msgpack_object *req;
    struct cairn_error *err;
    msgpack_packer pk;
    struct buf *out;
    struct listing *listing; /* results of a paged scan */
};

static int validation(struct q *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int validation(struct q *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_error_vset(q->err, CAIRN_INVALID_ARGUMENT, "ValidationException", fmt,
                     ap);
    va_end(ap);
    return CAIRN_INVALID_ARGUMENT;
}

static int mdb_err(struct q *q, int rc, const char *what)
{
    return store_status_from_mdb(rc, q->err, what);
}

static bool str_eq(struct mp_str a, struct mp_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Canonical form of a record's display name into @p out. */
static size_t canonical_of(struct mp_str display, char *out)
{
    size_t n = 0;
    if (display.n == 0 || display.p[0] != '/') {
        out[n++] = '/';
    }
    memcpy(out + n, display.p, display.n);
    n += display.n;
    out[n] = '\0';
    return n;
}

static void pack_time(msgpack_packer *pk, const char *key, int64_t ms)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_double(pk, (double)ms / 1000.0);
}

/* ARN of a parameter: the store's prefix then the name without its leading
 * '/', packed in two pieces to avoid formatting. */
static void pack_arn(struct q *q, struct mp_str display)
{
    const char *name = display.p;
    size_t n = display.n;
    if (n > 0 && name[0] == '/') {
        name++;
        n--;
    }
    mp_pack_cstr(&q->pk, "ARN");
    msgpack_pack_str(&q->pk, q->s->arn_prefix_len + n);
    msgpack_pack_str_body(&q->pk, q->s->arn_prefix, q->s->arn_prefix_len);
    msgpack_pack_str_body(&q->pk, name, n);
}

static void pack_value(msgpack_packer *pk, const struct rec *v)
{
    mp_pack_cstr(pk, "Value");
    if (v->value_bin) {
        mp_pack_bin(pk, v->value.p, v->value.n);
    } else {
        mp_pack_str(pk, v->value.p, v->value.n);
    }
}

static void pack_policies(msgpack_packer *pk, const struct rec *r)
{
    mp_pack_cstr(pk, "Policies");
    msgpack_pack_array(pk, r->n_policies);
    for (unsigned i = 0; i < r->n_policies; i++) {
        msgpack_pack_map(pk, 3);
        mp_pack_kv_str(pk, "PolicyText", r->policies[i].text.p,
                       r->policies[i].text.n);
        mp_pack_kv_str(pk, "PolicyType", r->policies[i].type.p,
                       r->policies[i].type.n);
        mp_pack_kv_cstr(pk, "PolicyStatus", "Pending");
    }
}

/* The Parameter shape of the Get operations. */
static void pack_parameter(struct q *q,
                           const struct rec *param,
                           const struct rec *ver,
                           const char *selector)
{
    bool sel = selector != NULL && selector[0] != '\0';
    msgpack_pack_map(&q->pk, 7 + (sel ? 1 : 0));
    mp_pack_kv_str(&q->pk, "Name", param->name.p, param->name.n);
    mp_pack_kv_str(&q->pk, "Type", ver->type.p, ver->type.n);
    pack_value(&q->pk, ver);
    mp_pack_kv_u64(&q->pk, "Version", ver->version);
    if (sel) {
        mp_pack_kv_cstr(&q->pk, "Selector", selector);
    }
    pack_time(&q->pk, "LastModifiedDate", ver->ts);
    pack_arn(q, param->name);
    mp_pack_kv_str(&q->pk, "DataType",
                   ver->data_type.p != NULL ? ver->data_type.p : "text",
                   ver->data_type.p != NULL ? ver->data_type.n : 4);
}

/* ---- record access (borrowed from the read txn) --------------------- */

/* A record decoded in place from LMDB memory: valid for the read txn, and
 * nothing to free. Left uninitialised on purpose (struct rec is 8 KiB). */
struct doc_rec
{
    struct rec rec;
};

static int decode_into(struct q *q,
                       MDB_val *v,
                       struct doc_rec *d,
                       unsigned max_fields)
{
    if (rec_decode(v->mv_data, v->mv_size, &d->rec, max_fields, q->err) != 0) {
        return q->err->code;
    }
    return 0;
}

/* 0 and *found, or an error. */
static int get_param(struct q *q,
                     const struct names_name *nm,
                     struct doc_rec *d,
                     unsigned max_fields,
                     bool *found)
{
    uint8_t key[KEYS_PARAM_MAX];
    MDB_val k = {keys_param(nm->canonical, nm->canonical_len, key), key};
    MDB_val v;
    char canon[NAMES_MAX_LEN + 2];
    int rc = mdb_get(q->txn, q->s->params, &k, &v);
    int rv;

    *found = false;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return mdb_err(q, rc, "get parameter");
    }
    rv = decode_into(q, &v, d, max_fields);
    if (rv != 0) {
        return rv;
    }
    if (canonical_of(d->rec.name, canon) != nm->canonical_len ||
        memcmp(canon, nm->canonical, nm->canonical_len) != 0) {
        return 0; /* a long-name hash collision: not this parameter */
    }
    *found = true;
    return 0;
}

static int get_version(struct q *q,
                       uint64_t id,
                       uint64_t version,
                       struct doc_rec *d,
                       unsigned max_fields,
                       bool *found)
{
    uint8_t key[KEYS_VERSION_LEN];
    MDB_val k = {sizeof(key), key};
    MDB_val v;
    int rc;

    keys_version(id, version, key);
    rc = mdb_get(q->txn, q->s->versions, &k, &v);
    *found = false;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return mdb_err(q, rc, "get version");
    }
    *found = true;
    return decode_into(q, &v, d, max_fields);
}

/* Version carrying @p label, or 0. */
static int label_version(struct q *q,
                         uint64_t id,
                         const char *label,
                         size_t n,
                         uint64_t *version)
{
    uint8_t key[8 + NAMES_LABEL_MAX];
    MDB_val k;
    MDB_val v;
    int rc;

    *version = 0;
    if (n > NAMES_LABEL_MAX) {
        return 0;
    }
    k.mv_size = keys_label(id, label, n, key);
    k.mv_data = key;
    rc = mdb_get(q->txn, q->s->labels, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return mdb_err(q, rc, "get label");
    }
    if (v.mv_size == 8) {
        *version = be64_get(v.mv_data);
    }
    return 0;
}

/* Resolve a reference to (parameter, version). Business failures set
 * q->err (ParameterNotFound, ParameterVersionNotFound). */
static int resolve(struct q *q,
                   const char *input,
                   size_t n,
                   unsigned flags,
                   struct names_ref *ref,
                   struct doc_rec *param,
                   struct doc_rec *ver)
{
    bool found;
    uint64_t version;
    int rv = names_parse_ref(input, n, &q->s->opts.arn, flags, ref, q->err);

    if (rv != 0) {
        return rv;
    }
    rv = get_param(q, &ref->name, param, REC_PARAM_HEAD, &found);
    if (rv != 0) {
        return rv;
    }
    if (!found) {
        return cairn_error_set(q->err, CAIRN_NOT_FOUND, "ParameterNotFound",
                               "Parameter %.*s not found.", (int)n, input);
    }
    version = param->rec.version;
    if (ref->sel == NAMES_SEL_VERSION) {
        version = ref->version;
    } else if (ref->sel == NAMES_SEL_LABEL) {
        rv = label_version(q, param->rec.id, ref->label, strlen(ref->label),
                           &version);
        if (rv != 0) {
            return rv;
        }
        if (version == 0) {
            return cairn_error_set(q->err, CAIRN_NOT_FOUND, "ParameterNotFound",
                                   "Parameter %.*s not found.", (int)n, input);
        }
    }
    rv = get_version(q, param->rec.id, version, ver, REC_VERSION_HEAD, &found);
    if (rv != 0) {
        return rv;
    }
    if (!found) {
        return cairn_error_set(q->err, CAIRN_NOT_FOUND,
                               "ParameterVersionNotFound",
                               "Systems Manager could not find version %llu "
                               "of %.*s. Verify the version and try again.",
                               (unsigned long long)version,
                               (int)ref->name.display_len, ref->name.display);
    }
    return 0;
}

static int required_str(struct q *q,
                        const char *field,
                        const char *wire,
                        struct mp_str *out)
{
    int r = mp_get_str(q->req, field, out, q->err);
    if (r < 0) {
        return q->err->code;
    }
    if (r == 0) {
        return validation(q,
                          "1 validation error detected: Value null at '%s' "
                          "failed to satisfy constraint: Member must not be "
                          "null",
                          wire);
    }
    return 0;
}

/* ---- GetParameter(s) ------------------------------------------------ */

static int q_get_parameter(struct q *q)
{
    struct mp_str name;
    struct names_ref ref;
    struct doc_rec param;
    struct doc_rec ver;
    bool dec;
    int rv = required_str(q, "Name", "name", &name);

    if (rv == 0 && mp_get_bool(q->req, "WithDecryption", &dec, q->err) < 0) {
        rv = q->err->code;
    }
    if (rv == 0) {
        rv = resolve(q, name.p, name.n, NAMES_ALLOW_ARN | NAMES_ALLOW_SELECTOR,
                     &ref, &param, &ver);
    }
    if (rv == 0) {
        msgpack_pack_map(&q->pk, 1);
        mp_pack_cstr(&q->pk, "Parameter");
        pack_parameter(q, &param.rec, &ver.rec, ref.selector);
    }
    return rv;
}

/* Internal: the current Type and KeyId of a parameter, by one keyed
 * lookup (the service needs them to seal an overwrite that leaves them
 * out). {Name} -> {Type, KeyId?, AllowedPattern?}; ParameterNotFound
 * when absent. */
static int q_parameter_type(struct q *q)
{
    struct mp_str name;
    struct names_ref ref;
    struct doc_rec param;
    struct doc_rec ver;
    bool found = false;
    int rv = required_str(q, "Name", "name", &name);

    if (rv == 0) {
        rv = resolve(q, name.p, name.n, NAMES_ALLOW_ARN, &ref, &param, &ver);
    }
    /* resolve decodes only the head of the version: read it whole. */
    if (rv == 0) {
        rv = get_version(q, param.rec.id, ver.rec.version, &ver, 0, &found);
    }
    if (rv == 0 && !found) {
        rv = cairn_error_set(q->err, CAIRN_INTERNAL, "InternalServerError",
                             "the current version of %.*s is missing",
                             (int)(name.n > 256 ? 256 : name.n), name.p);
    }
    if (rv == 0) {
        bool key = ver.rec.key_id.p != NULL;
        bool pat = ver.rec.allowed_pattern.p != NULL;
        msgpack_pack_map(&q->pk, 1 + (key ? 1 : 0) + (pat ? 1 : 0));
        mp_pack_kv_str(&q->pk, "Type", ver.rec.type.p, ver.rec.type.n);
        if (key) {
            mp_pack_kv_str(&q->pk, "KeyId", ver.rec.key_id.p, ver.rec.key_id.n);
        }
        if (pat) {
            mp_pack_kv_str(&q->pk, "AllowedPattern", ver.rec.allowed_pattern.p,
                           ver.rec.allowed_pattern.n);
        }
    }
    return rv;
}

static int names_list(struct q *q, const msgpack_object_array **arr)
{
    int r = mp_get_array(q->req, "Names", arr, q->err);
    if (r < 0) {
        return q->err->code;
    }
    if (r == 0) {
        return validation(q,
                          "1 validation error detected: Value null at "
                          "'names' failed to satisfy constraint: Member "
                          "must not be null");
    }
    if ((*arr)->size < 1 || (*arr)->size > 10) {
        return validation(q,
                          "1 validation error detected: Value at 'names' "
                          "failed to satisfy constraint: Member must have "
                          "length %s",
                          (*arr)->size < 1 ? "greater than or equal to 1"
                                           : "less than or equal to 10");
    }
    for (uint32_t i = 0; i < (*arr)->size; i++) {
        if ((*arr)->ptr[i].type != MSGPACK_OBJECT_STR) {
            return cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "field Names must hold strings");
        }
    }
    return 0;
}

struct got
{
    const msgpack_object *input;
    bool ok;
    struct buf packed; /* the Parameter, packed */
    char sort[NAMES_MAX_LEN + NAMES_SELECTOR_MAX + 2];
};

static int cmp_got(const void *a, const void *b)
{
    const struct got *x = *(struct got *const *)a;
    const struct got *y = *(struct got *const *)b;
    return strcmp(x->sort, y->sort);
}

static int q_get_parameters(struct q *q)
{
    const msgpack_object_array *names;
    struct got got[10];
    struct got *order[10];
    unsigned n_ok = 0, n_bad = 0, n = 0;
    bool dec;
    int rv = names_list(q, &names);

    if (rv == 0 && mp_get_bool(q->req, "WithDecryption", &dec, q->err) < 0) {
        rv = q->err->code;
    }
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < names->size; i++) {
        const msgpack_object *o = &names->ptr[i];
        struct names_ref ref;
        struct doc_rec param;
        struct doc_rec ver;
        struct cairn_error e;
        struct q sub = *q;
        bool dup = false;

        for (unsigned j = 0; j < n; j++) {
            dup = dup || (got[j].input->via.str.size == o->via.str.size &&
                          memcmp(got[j].input->via.str.ptr, o->via.str.ptr,
                                 o->via.str.size) == 0);
        }
        if (dup) {
            continue;
        }
        got[n].input = o;
        got[n].ok = false;
        buf_init(&got[n].packed);
        sub.err = &e;
        rv =
            resolve(&sub, o->via.str.ptr, o->via.str.size,
                    NAMES_ALLOW_ARN | NAMES_ALLOW_SELECTOR, &ref, &param, &ver);
        if (rv == 0) {
            mp_packer_init(&sub.pk, &got[n].packed);
            pack_parameter(&sub, &param.rec, &ver.rec, ref.selector);
            snprintf(got[n].sort, sizeof(got[n].sort), "%.*s%s",
                     (int)param.rec.name.n, param.rec.name.p, ref.selector);
            got[n].ok = true;
            order[n_ok++] = &got[n];
        } else if (rv == CAIRN_NOT_FOUND || rv == CAIRN_INVALID_ARGUMENT) {
            n_bad++;
            rv = 0;
        } else {
            *q->err = e;
        }
        n++;
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0) {
        qsort(order, n_ok, sizeof(order[0]), cmp_got);
        msgpack_pack_map(&q->pk, 2);
        mp_pack_cstr(&q->pk, "Parameters");
        msgpack_pack_array(&q->pk, n_ok);
        for (unsigned i = 0; i < n_ok; i++) {
            buf_append(q->out, order[i]->packed.data, order[i]->packed.len);
        }
        mp_pack_cstr(&q->pk, "InvalidParameters");
        msgpack_pack_array(&q->pk, n_bad);
        for (unsigned i = 0; i < n; i++) {
            if (!got[i].ok) {
                mp_pack_str(&q->pk, got[i].input->via.str.ptr,
                            got[i].input->via.str.size);
            }
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (got[i].packed.oom) {
            rv = rv != 0 ? rv
                         : cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED,
                                           NULL, "out of memory");
        }
        buf_close(&got[i].packed);
    }
    return rv;
}

/* ---- filters -------------------------------------------------------- */

enum fkey {
    F_NAME,
    F_TYPE,
    F_KEYID,
    F_PATH,
    F_TIER,
    F_DATATYPE,
    F_LABEL,
    F_TAG
};
enum fopt { O_EQUALS, O_BEGINS, O_CONTAINS, O_ONELEVEL, O_RECURSIVE };

struct filter
{
    enum fkey key;
    enum fopt opt;
    struct mp_str tag; /* tag key for F_TAG */
    unsigned n_values;
    struct mp_str values[MAX_FILTER_VALUES];
    /* F_PATH: canonical paths */
    char *paths[MAX_FILTER_VALUES];
    size_t path_lens[MAX_FILTER_VALUES];
};

struct filters
{
    unsigned n;
    struct filter f[MAX_FILTERS];
};

static void filters_close(struct filters *fs)
{
    for (unsigned i = 0; i < fs->n; i++) {
        if (fs->f[i].key == F_PATH) {
            for (unsigned j = 0; j < fs->f[i].n_values; j++) {
                free(fs->f[i].paths[j]);
            }
        }
    }
    fs->n = 0;
}

static const char *const key_names[] = {"Name", "Type",     "KeyId", "Path",
                                        "Tier", "DataType", "Label"};

static bool lower_prefix(const char *p, size_t n, const char *pfx)
{
    size_t m = strlen(pfx);
    return n >= m && strncasecmp(p, pfx, m) == 0;
}

static int filter_option(struct q *q,
                         struct filter *f,
                         struct mp_str opt,
                         bool by_path)
{
    bool ok = false;
    const char *valid;

    if (opt.p == NULL) {
        f->opt = f->key == F_PATH ? O_ONELEVEL : O_EQUALS;
        return 0;
    }
    if (f->key == F_PATH) {
        valid = "[Recursive, OneLevel]";
        if (mp_str_eqn(opt, "Recursive")) {
            f->opt = O_RECURSIVE;
            ok = true;
        } else if (mp_str_eqn(opt, "OneLevel")) {
            f->opt = O_ONELEVEL;
            ok = true;
        }
    } else if (f->key == F_LABEL) {
        valid = "[Equals]";
        ok = mp_str_eqn(opt, "Equals");
        f->opt = O_EQUALS;
    } else {
        valid = f->key == F_NAME && !by_path ? "[Equals, BeginsWith, Contains]"
                                             : "[BeginsWith, Equals]";
        if (mp_str_eqn(opt, "Equals")) {
            f->opt = O_EQUALS;
            ok = true;
        } else if (mp_str_eqn(opt, "BeginsWith")) {
            f->opt = O_BEGINS;
            ok = true;
        } else if (f->key == F_NAME && mp_str_eqn(opt, "Contains")) {
            f->opt = O_CONTAINS;
            ok = true;
        }
    }
    if (!ok) {
        return cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                               "InvalidFilterOption",
                               "The following filter option is not valid: "
                               "%.*s. Valid options include: %s.",
                               (int)(opt.n > 64 ? 64 : opt.n), opt.p, valid);
    }
    return 0;
}

static int filter_values(struct q *q,
                         struct filter *f,
                         const msgpack_object *fo)
{
    const msgpack_object_array *vals;
    int r = mp_get_array(fo, "Values", &vals, q->err);
    if (r < 0) {
        return q->err->code;
    }
    if (r == 0 || vals->size == 0) {
        if (f->key == F_TAG) {
            f->n_values = 0; /* "the tag key exists" */
            return 0;
        }
        return cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                               "InvalidFilterValue",
                               "The following filter values are missing : "
                               "null for filter key %s.",
                               key_names[f->key]);
    }
    if (vals->size > MAX_FILTER_VALUES) {
        return validation(q,
                          "1 validation error detected: Value at "
                          "'parameterFilters.member.values' failed to "
                          "satisfy constraint: Member must have length "
                          "less than or equal to 50");
    }
    for (uint32_t i = 0; i < vals->size; i++) {
        const msgpack_object *v = &vals->ptr[i];
        if (v->type != MSGPACK_OBJECT_STR) {
            return cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                                   "SerializationException",
                                   "filter Values must hold strings");
        }
        if (v->via.str.size < 1 || v->via.str.size > 1024) {
            return validation(q,
                              "1 validation error detected: Value at "
                              "'parameterFilters.member.values.member' "
                              "failed to satisfy constraint: Member must "
                              "have length between 1 and 1024");
        }
        f->values[i].p = v->via.str.ptr;
        f->values[i].n = v->via.str.size;
    }
    f->n_values = vals->size;
    return 0;
}

static int check_enum_values(struct q *q,
                             struct filter *f,
                             const char *const *set,
                             const char *listing)
{
    if (f->opt != O_EQUALS) {
        return 0;
    }
    for (unsigned i = 0; i < f->n_values; i++) {
        bool ok = false;
        for (const char *const *s = set; *s != NULL; s++) {
            ok = ok || mp_str_eqn(f->values[i], *s);
        }
        if (!ok) {
            return cairn_error_set(
                q->err, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
                "The following filter value is not valid: "
                "%.*s. Valid values include: %s.",
                (int)(f->values[i].n > 64 ? 64 : f->values[i].n),
                f->values[i].p, listing);
        }
    }
    return 0;
}

static int filter_paths(struct q *q, struct filter *f)
{
    for (unsigned i = 0; i < f->n_values; i++) {
        char canon[NAMES_MAX_LEN + 2];
        size_t n;
        int rv;
        f->paths[i] = NULL;
        if (lower_prefix(f->values[i].p, f->values[i].n, "/aws") ||
            lower_prefix(f->values[i].p, f->values[i].n, "/ssm")) {
            f->n_values = i;
            return validation(q,
                              "Filters for common parameters can't be "
                              "prefixed with \"aws\" or \"ssm\" "
                              "(case-insensitive). When using global "
                              "parameters, please specify within a global "
                              "namespace.");
        }
        rv =
            names_check_path(f->values[i].p, f->values[i].n, canon, &n, q->err);
        if (rv == 0) {
            f->paths[i] = strndup(canon, n);
            f->path_lens[i] = n;
            if (f->paths[i] == NULL) {
                rv = cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                     "out of memory");
            }
        }
        if (rv != 0) {
            f->n_values = i;
            return rv;
        }
    }
    return 0;
}

static int parse_filters(struct q *q, bool by_path, struct filters *fs)
{
    static const char *const types[] = {"String", "StringList", "SecureString",
                                        NULL};
    static const char *const tiers[] = {"Standard", "Advanced",
                                        "Intelligent-Tiering", NULL};
    const msgpack_object_array *arr = NULL;
    const msgpack_object_array *legacy = NULL;
    int r1 = mp_get_array(q->req, "ParameterFilters", &arr, q->err);
    int r2 = by_path ? 0 : mp_get_array(q->req, "Filters", &legacy, q->err);
    int rv = 0;

    fs->n = 0;
    if (r1 < 0 || r2 < 0) {
        return q->err->code;
    }
    if (r1 > 0 && r2 > 0) {
        return validation(q,
                          "You can use either Filters or ParameterFilters "
                          "in a single request.");
    }
    if (r2 > 0) {
        arr = legacy;
    }
    if (arr == NULL) {
        return 0;
    }
    if (arr->size > MAX_FILTERS) {
        return validation(q,
                          "1 validation error detected: Value at "
                          "'parameterFilters' failed to satisfy "
                          "constraint: Member must have length less than "
                          "or equal to %d",
                          MAX_FILTERS);
    }
    for (uint32_t i = 0; i < arr->size; i++) {
        const msgpack_object *fo = &arr->ptr[i];
        struct filter *f = &fs->f[fs->n];
        struct mp_str key, opt = {NULL, 0};
        bool known = false;

        if (fo->type != MSGPACK_OBJECT_MAP) {
            rv = cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                                 "SerializationException",
                                 "each filter must be a map");
            goto fail;
        }
        if (mp_get_str(fo, "Key", &key, q->err) < 0 ||
            (r2 == 0 && mp_get_str(fo, "Option", &opt, q->err) < 0)) {
            rv = q->err->code;
            goto fail;
        }
        if (key.p == NULL || key.n < 1 || key.n > 132) {
            rv = validation(q,
                            "1 validation error detected: Value at "
                            "'parameterFilters.member.key' failed to "
                            "satisfy constraint: Member must have length "
                            "between 1 and 132");
            goto fail;
        }
        memset(f, 0, sizeof(*f));
        if (key.n > 4 && memcmp(key.p, "tag:", 4) == 0 && r2 == 0) {
            f->key = F_TAG;
            f->tag.p = key.p + 4;
            f->tag.n = key.n - 4;
            known = !by_path;
        } else {
            for (unsigned k = 0; k <= F_LABEL; k++) {
                if (mp_str_eqn(key, key_names[k])) {
                    f->key = (enum fkey)k;
                    known = true;
                }
            }
            if (known && r2 > 0) {
                known =
                    f->key == F_NAME || f->key == F_TYPE || f->key == F_KEYID;
            } else if (known && by_path) {
                known =
                    f->key == F_TYPE || f->key == F_KEYID || f->key == F_LABEL;
            } else if (known) {
                known = f->key != F_LABEL;
            }
        }
        if (!known) {
            if (r2 > 0) {
                rv = validation(q,
                                "1 validation error detected: Value '%.*s' at "
                                "'filters.%u.member.key' failed to satisfy "
                                "constraint: Member must satisfy enum value "
                                "set: [Name, Type, KeyId]",
                                (int)key.n, key.p, i + 1);
            } else {
                rv = cairn_error_set(
                    q->err, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
                    "The following filter key is not valid: %.*s. Valid "
                    "filter keys include: %s.",
                    (int)key.n, key.p,
                    by_path ? "[Type, KeyId]"
                            : "[Path, Name, Type, KeyId, Tier]");
            }
            goto fail;
        }
        for (unsigned j = 0; j < fs->n; j++) {
            bool same = fs->f[j].key == f->key &&
                        (f->key != F_TAG || str_eq(fs->f[j].tag, f->tag));
            if (same) {
                rv = cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                                     "InvalidFilterKey",
                                     "The following filter is duplicated in "
                                     "the request: %.*s. A request can "
                                     "contain only one occurrence of a "
                                     "specific filter.",
                                     (int)key.n, key.p);
                goto fail;
            }
        }
        rv = filter_option(q, f, opt, by_path);
        if (rv == 0) {
            rv = filter_values(q, f, fo);
        }
        if (rv == 0 && f->key == F_TYPE) {
            rv = check_enum_values(q, f, types,
                                   "[String, StringList, SecureString]");
        }
        if (rv == 0 && f->key == F_TIER) {
            rv = check_enum_values(q, f, tiers,
                                   "[Standard, Advanced, Intelligent-Tiering]");
        }
        if (rv == 0 && f->key == F_PATH) {
            fs->n++; /* so that filters_close frees the paths */
            rv = filter_paths(q, f);
            if (rv != 0) {
                goto fail;
            }
            continue;
        }
        if (rv != 0) {
            goto fail;
        }
        fs->n++;
    }
    return 0;
fail:
    filters_close(fs);
    return rv;
}

static bool match_str(enum fopt opt, struct mp_str have, struct mp_str want)
{
    if (have.p == NULL) {
        return false;
    }
    switch (opt) {
        case O_EQUALS:
            return str_eq(have, want);
        case O_BEGINS:
            return have.n >= want.n && memcmp(have.p, want.p, want.n) == 0;
        case O_CONTAINS:
            return want.n == 0 ||
                   memmem(have.p, have.n, want.p, want.n) != NULL;
        default:
            return false;
    }
}

static bool under_path(const char *canon,
                       size_t n,
                       const char *path,
                       size_t plen,
                       bool recursive)
{
    if (n <= plen || memcmp(canon, path, plen) != 0) {
        return false;
    }
    return recursive || memchr(canon + plen, '/', n - plen) == NULL;
}

/* Whether the parameter passes every filter. For a Label filter, the
 * matching version is stored in *label_ver. */
static int match_filters(struct q *q,
                         const struct filters *fs,
                         const struct rec *r,
                         const char *canon,
                         size_t cn,
                         bool *ok,
                         uint64_t *label_ver)
{
    *ok = true;
    *label_ver = 0;
    for (unsigned i = 0; i < fs->n && *ok; i++) {
        const struct filter *f = &fs->f[i];
        bool any = false;
        for (unsigned j = 0; j < f->n_values && !any; j++) {
            struct mp_str want = f->values[j];
            struct mp_str have = {NULL, 0};
            switch (f->key) {
                case F_NAME:
                    if (f->opt == O_EQUALS || want.p[0] == '/' ||
                        f->opt == O_CONTAINS) {
                        /* Compare canonical forms: "x" is "/x". */
                        char wc[NAMES_MAX_LEN + 2];
                        size_t wn = 0;
                        if (f->opt == O_EQUALS && want.p[0] != '/' &&
                            want.n <= NAMES_MAX_LEN) {
                            wc[wn++] = '/';
                        }
                        if (wn + want.n > sizeof(wc)) {
                            break;
                        }
                        memcpy(wc + wn, want.p, want.n);
                        wn += want.n;
                        have.p = canon;
                        have.n = cn;
                        any = match_str(f->opt, have, (struct mp_str){wc, wn});
                    } else {
                        /* "ab" begins root names "ab..." only. */
                        bool root = memchr(canon + 1, '/', cn - 1) == NULL;
                        have.p = root ? canon + 1 : canon;
                        have.n = root ? cn - 1 : cn;
                        any = match_str(f->opt, have, want);
                    }
                    break;
                case F_TYPE:
                    any = match_str(f->opt, r->type, want);
                    break;
                case F_KEYID:
                    any = match_str(f->opt, r->key_id, want);
                    break;
                case F_TIER:
                    any = match_str(f->opt, r->tier, want);
                    break;
                case F_DATATYPE:
                    have = r->data_type.p != NULL ? r->data_type
                                                  : (struct mp_str){"text", 4};
                    any = match_str(f->opt, have, want);
                    break;
                case F_PATH:
                    any = under_path(canon, cn, f->paths[j], f->path_lens[j],
                                     f->opt == O_RECURSIVE);
                    break;
                case F_LABEL: {
                    uint64_t v;
                    int rv = label_version(q, r->id, want.p, want.n, &v);
                    if (rv != 0) {
                        return rv;
                    }
                    if (v != 0) {
                        any = true;
                        *label_ver = v;
                    }
                    break;
                }
                case F_TAG:
                    break;
            }
        }
        if (f->key == F_TAG) {
            for (unsigned t = 0; t < r->n_tags && !any; t++) {
                if (!str_eq(r->tags[t].key, f->tag)) {
                    continue;
                }
                any = f->n_values == 0;
                for (unsigned j = 0; j < f->n_values && !any; j++) {
                    any = match_str(f->opt, r->tags[t].value, f->values[j]);
                }
            }
        }
        *ok = any;
    }
    return 0;
}

/* ---- ordered scans over parameters ---------------------------------- */

struct scan
{
    const char *path; /* canonical path ending in '/', or NULL: everything */
    size_t path_len;
    bool recursive;
    uint32_t max;   /* results wanted */
    uint8_t kind;   /* token kind */
    uint64_t qhash; /* query fingerprint */
    const struct filters *fs;
    /* Called for each parameter that passes path and filters. */
    int (*emit)(struct q *q, const struct rec *param, uint64_t label_ver);
};

static int query_fingerprint(struct q *q,
                             const char *method,
                             const char *path,
                             size_t plen,
                             bool recursive,
                             uint64_t *h)
{
    struct buf b;
    msgpack_packer pk;
    const msgpack_object *pf = mp_map_get(q->req, "ParameterFilters");
    const msgpack_object *lf = mp_map_get(q->req, "Filters");

    buf_init(&b);
    mp_packer_init(&pk, &b);
    mp_pack_cstr(&pk, method);
    mp_pack_str(&pk, path != NULL ? path : "", plen);
    msgpack_pack_int(&pk, recursive);
    if (pf != NULL) {
        msgpack_pack_object(&pk, *pf);
    }
    if (lf != NULL) {
        msgpack_pack_object(&pk, *lf);
    }
    if (b.oom) {
        buf_close(&b);
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    *h = token_hash(b.data, b.len);
    buf_close(&b);
    return 0;
}

static bool key_has_prefix(MDB_val *k, const uint8_t *p, size_t n)
{
    return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

/*
 * Walk the parameters in key order from the token position (or the start
 * of the path's key range), calling sc->emit for each match, until sc->max
 * results, the end of the range, or the scan budget. Appends "NextToken" to
 * q->pk when the range was not exhausted; returns through *has_token
 * whether it did (the caller sizes its map first, so it calls this before
 * packing the map header: results go to a side buffer).
 */
static int emit_parameter(struct q *q,
                          const struct rec *param,
                          uint64_t label_ver);

static int scan_params(struct q *q,
                       const struct scan *sc,
                       struct mp_str token,
                       struct buf *token_out)
{
    uint8_t prefix[KEYS_PARAM_MAX];
    size_t plen = 0;
    uint8_t pos[TOKEN_POS_MAX];
    size_t pos_len = 0;
    uint8_t last[KEYS_PARAM_MAX];
    size_t last_len = 0;
    uint8_t seek[KEYS_PARAM_MAX];
    uint8_t tkey[TOKEN_KEY_LEN];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    struct doc_rec d;
    uint32_t found = 0, examined = 0;
    uint32_t budget = q->s->opts.limits.scan_budget;
    char canon[NAMES_MAX_LEN + 2];
    bool more = false;
    int rc;
    int rv = 0;

    /* Without filters, listing parameters needs only the record's head. */
    bool head_only = sc->fs->n == 0 && sc->emit == emit_parameter;

    rv = store_token_key(q->s, q->txn, tkey, q->err);
    if (rv != 0) {
        return rv;
    }
    if (sc->path != NULL) {
        plen = sc->path_len < KEYS_INLINE ? sc->path_len : KEYS_INLINE;
        memcpy(prefix, sc->path, plen);
    }
    rc = mdb_cursor_open(q->txn, q->s->params, &cur);
    if (rc != 0) {
        return mdb_err(q, rc, "cursor");
    }
    if (token.p != NULL) {
        rv = token_decode(tkey, sc->kind, sc->qhash, token.p, token.n, pos,
                          &pos_len, q->err);
        if (rv != 0) {
            goto out;
        }
        if (pos_len == 0 || pos_len > KEYS_PARAM_MAX ||
            (plen > 0 && (pos_len < plen || memcmp(pos, prefix, plen) != 0))) {
            rv = cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                                 "InvalidNextToken",
                                 "The specified token is not valid.");
            goto out;
        }
        k.mv_data = pos;
        k.mv_size = pos_len;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == pos_len &&
            memcmp(k.mv_data, pos, pos_len) == 0) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    } else if (plen > 0) {
        k.mv_data = prefix;
        k.mv_size = plen;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }

    while (rc == 0 && key_has_prefix(&k, prefix, plen)) {
        size_t cn;
        bool ok;
        uint64_t label_ver;

        if (found >= sc->max || examined >= budget) {
            more = true;
            break;
        }
        examined++;
        memcpy(last, k.mv_data, k.mv_size);
        last_len = k.mv_size;
        rv = decode_into(q, &v, &d, head_only ? REC_PARAM_HEAD : 0);
        if (rv != 0) {
            goto out;
        }
        cn = canonical_of(d.rec.name, canon);
        if (sc->path != NULL && (cn <= sc->path_len ||
                                 memcmp(canon, sc->path, sc->path_len) != 0)) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (sc->path != NULL && !sc->recursive) {
            const char *slash =
                memchr(canon + sc->path_len, '/', cn - sc->path_len);
            if (slash != NULL) {
                /* A deeper subtree: seek past it instead of reading it. */
                size_t sl = (size_t)(slash - canon) + 1;
                if (sl <= KEYS_INLINE) {
                    memcpy(seek, canon, sl);
                    keys_prefix_end(seek, sl);
                    k.mv_data = seek;
                    k.mv_size = sl;
                    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                } else {
                    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
                }
                continue;
            }
        }
        rv = match_filters(q, sc->fs, &d.rec, canon, cn, &ok, &label_ver);
        if (rv != 0) {
            goto out;
        }
        if (ok) {
            rv = sc->emit(q, &d.rec, label_ver);
            if (rv != 0) {
                goto out;
            }
            found++;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rv = mdb_err(q, rc, "scan");
        goto out;
    }
    if (more && last_len > 0) {
        rv = token_encode(tkey, sc->kind, sc->qhash, last, last_len, token_out);
    }
out:
    mdb_cursor_close(cur);
    return rv;
}

static int max_results(struct q *q, uint32_t max, uint32_t *out)
{
    uint64_t v = max;
    const msgpack_object *o = mp_map_get(q->req, "MaxResults");
    if (o != NULL && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        return validation(q,
                          "1 validation error detected: Value '%lld' at "
                          "'maxResults' failed to satisfy constraint: Member "
                          "must have value greater than or equal to 1",
                          (long long)o->via.i64);
    }
    if (mp_get_u64(q->req, "MaxResults", &v, q->err) < 0) {
        return q->err->code;
    }
    if (v < 1 || v > max) {
        return validation(
            q,
            "1 validation error detected: Value '%llu' at "
            "'maxResults' failed to satisfy constraint: Member "
            "must have value %s %u",
            (unsigned long long)v,
            v < 1 ? "greater than or equal to" : "less than or equal to",
            v < 1 ? 1u : max);
    }
    *out = (uint32_t)v;
    return 0;
}

static int emit_parameter(struct q *q,
                          const struct rec *param,
                          uint64_t label_ver)
{
    struct doc_rec ver;
    struct q sub = *q;
    bool found;
    int rv =
        get_version(q, param->id, label_ver != 0 ? label_ver : param->version,
                    &ver, REC_VERSION_HEAD, &found);
    if (rv != 0 || !found) {
        return rv;
    }
    sub.pk = q->listing->pk;
    pack_parameter(&sub, param, &ver.rec, NULL);
    q->listing->count++;
    return 0;
}

static int emit_metadata(struct q *q, const struct rec *r, uint64_t unused)
{
    msgpack_packer *pk = &q->listing->pk;
    struct q sub = *q;
    unsigned n = 8;
    bool secure = r->key_id.p != NULL;

    n += secure + (r->description.p != NULL) + (r->allowed_pattern.p != NULL) +
         (r->user.p != NULL && r->user.n > 0);
    msgpack_pack_map(pk, n);
    mp_pack_kv_str(pk, "Name", r->name.p, r->name.n);
    sub.pk = *pk;
    pack_arn(&sub, r->name);
    mp_pack_kv_str(pk, "Type", r->type.p, r->type.n);
    if (secure) {
        mp_pack_kv_str(pk, "KeyId", r->key_id.p, r->key_id.n);
    }
    pack_time(pk, "LastModifiedDate", r->ts);
    if (r->user.p != NULL && r->user.n > 0) {
        mp_pack_kv_str(pk, "LastModifiedUser", r->user.p, r->user.n);
    }
    if (r->description.p != NULL) {
        mp_pack_kv_str(pk, "Description", r->description.p, r->description.n);
    }
    if (r->allowed_pattern.p != NULL) {
        mp_pack_kv_str(pk, "AllowedPattern", r->allowed_pattern.p,
                       r->allowed_pattern.n);
    }
    mp_pack_kv_u64(pk, "Version", r->version);
    mp_pack_kv_str(pk, "Tier", r->tier.p != NULL ? r->tier.p : TIER_STANDARD,
                   r->tier.p != NULL ? r->tier.n : strlen(TIER_STANDARD));
    pack_policies(pk, r);
    mp_pack_kv_str(pk, "DataType",
                   r->data_type.p != NULL ? r->data_type.p : "text",
                   r->data_type.p != NULL ? r->data_type.n : 4);
    q->listing->count++;
    (void)unused;
    return 0;
}

/* Pack {"Parameters": [...], "NextToken": ...} from a listing. */
static int finish_listing(struct q *q, struct listing *l, struct buf *token)
{
    msgpack_pack_map(&q->pk, token->len > 0 ? 2 : 1);
    mp_pack_cstr(&q->pk, "Parameters");
    msgpack_pack_array(&q->pk, l->count);
    buf_append(q->out, l->items.data, l->items.len);
    if (token->len > 0) {
        mp_pack_kv_str(&q->pk, "NextToken", token->data, token->len);
    }
    if (l->items.oom || token->oom) {
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    return 0;
}

static int run_listing(struct q *q, struct scan *sc, struct mp_str token)
{
    struct listing l;
    struct buf tok;
    int rv;

    buf_init(&l.items);
    buf_init(&tok);
    mp_packer_init(&l.pk, &l.items);
    l.count = 0;
    q->listing = &l;
    rv = scan_params(q, sc, token, &tok);
    q->listing = NULL;
    if (rv == 0) {
        rv = finish_listing(q, &l, &tok);
    }
    buf_close(&l.items);
    buf_close(&tok);
    return rv;
}

static int q_get_by_path(struct q *q)
{
    struct mp_str path, token;
    char canon[NAMES_MAX_LEN + 2];
    size_t cn;
    bool recursive = false, dec;
    struct filters *fs;
    struct scan sc;
    int rv = required_str(q, "Path", "path", &path);

    if (rv != 0) {
        return rv;
    }
    if (mp_get_bool(q->req, "Recursive", &recursive, q->err) < 0 ||
        mp_get_bool(q->req, "WithDecryption", &dec, q->err) < 0 ||
        mp_get_str(q->req, "NextToken", &token, q->err) < 0) {
        return q->err->code;
    }
    memset(&sc, 0, sizeof(sc));
    rv = max_results(q, 10, &sc.max);
    if (rv == 0) {
        rv = names_check_path(path.p, path.n, canon, &cn, q->err);
    }
    if (rv != 0) {
        return rv;
    }
    fs = malloc(sizeof(*fs));
    if (fs == NULL) {
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = parse_filters(q, true, fs);
    if (rv == 0) {
        sc.path = canon;
        sc.path_len = cn;
        sc.recursive = recursive;
        sc.kind = TOKEN_BY_PATH;
        sc.fs = fs;
        sc.emit = emit_parameter;
        rv = query_fingerprint(q, "GetParametersByPath", canon, cn, recursive,
                               &sc.qhash);
        if (rv == 0) {
            rv = run_listing(q, &sc, token);
        }
        filters_close(fs);
    }
    free(fs);
    return rv;
}

static int q_describe(struct q *q)
{
    struct mp_str token;
    struct filters *fs;
    struct scan sc;
    bool shared = false;
    int rv;

    if (mp_get_str(q->req, "NextToken", &token, q->err) < 0 ||
        mp_get_bool(q->req, "Shared", &shared, q->err) < 0) {
        return q->err->code;
    }
    memset(&sc, 0, sizeof(sc));
    rv = max_results(q, 50, &sc.max);
    if (rv != 0) {
        return rv;
    }
    fs = malloc(sizeof(*fs));
    if (fs == NULL) {
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = parse_filters(q, false, fs);
    if (rv != 0) {
        free(fs);
        return rv;
    }
    if (shared) {
        /* Nothing is shared from other accounts in a self-hosted store. */
        msgpack_pack_map(&q->pk, 1);
        mp_pack_cstr(&q->pk, "Parameters");
        msgpack_pack_array(&q->pk, 0);
        goto out;
    }
    /* A single Path filter with one value narrows the scan to its range. */
    for (unsigned i = 0; i < fs->n; i++) {
        if (fs->f[i].key == F_PATH && fs->f[i].n_values == 1) {
            sc.path = fs->f[i].paths[0];
            sc.path_len = fs->f[i].path_lens[0];
            sc.recursive = fs->f[i].opt == O_RECURSIVE;
        }
    }
    sc.kind = TOKEN_DESCRIBE;
    sc.fs = fs;
    sc.emit = emit_metadata;
    rv = query_fingerprint(q, "DescribeParameters", NULL, 0, false, &sc.qhash);
    if (rv == 0) {
        rv = run_listing(q, &sc, token);
    }
out:
    filters_close(fs);
    free(fs);
    return rv;
}

/* ---- history -------------------------------------------------------- */

static int q_history(struct q *q)
{
    struct mp_str name, token;
    struct names_ref ref;
    struct doc_rec param;
    struct doc_rec ver;
    uint8_t tkey[TOKEN_KEY_LEN];
    uint8_t key[KEYS_VERSION_LEN];
    uint8_t pos[TOKEN_POS_MAX];
    size_t pos_len;
    uint64_t start = 0, qhash, last = 0;
    uint32_t max = 50, count = 0;
    struct listing l;
    struct buf tok;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    bool dec, found, more = false;
    int rc;
    int rv = required_str(q, "Name", "name", &name);

    buf_init(&l.items);
    buf_init(&tok);
    mp_packer_init(&l.pk, &l.items);
    if (rv == 0 && (mp_get_bool(q->req, "WithDecryption", &dec, q->err) < 0 ||
                    mp_get_str(q->req, "NextToken", &token, q->err) < 0)) {
        rv = q->err->code;
    }
    if (rv == 0) {
        rv = max_results(q, 50, &max);
    }
    if (rv == 0) {
        rv = names_parse_ref(name.p, name.n, &q->s->opts.arn, NAMES_ALLOW_ARN,
                             &ref, q->err);
    }
    if (rv == 0) {
        rv = get_param(q, &ref.name, &param, REC_PARAM_HEAD, &found);
        if (rv == 0 && !found) {
            rv = cairn_error_set(q->err, CAIRN_NOT_FOUND, "ParameterNotFound",
                                 "Parameter %.*s not found.", (int)name.n,
                                 name.p);
        }
    }
    if (rv != 0) {
        goto out;
    }
    rv = store_token_key(q->s, q->txn, tkey, q->err);
    if (rv != 0) {
        goto out;
    }
    /* The id is part of the fingerprint: a parameter deleted and created
     * again is another history. */
    {
        uint8_t idb[8];
        be64_put(idb, param.rec.id);
        qhash = token_hash(idb, sizeof(idb));
    }
    if (token.p != NULL) {
        rv = token_decode(tkey, TOKEN_HISTORY, qhash, token.p, token.n, pos,
                          &pos_len, q->err);
        if (rv == 0 && pos_len != 8) {
            rv = cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                                 "InvalidNextToken",
                                 "The specified token is not valid.");
        }
        if (rv != 0) {
            goto out;
        }
        start = be64_get(pos) + 1;
    }
    rc = mdb_cursor_open(q->txn, q->s->versions, &cur);
    if (rc != 0) {
        rv = mdb_err(q, rc, "cursor");
        goto out;
    }
    keys_version(param.rec.id, start, key);
    k.mv_data = key;
    k.mv_size = sizeof(key);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == KEYS_VERSION_LEN &&
           be64_get(k.mv_data) == param.rec.id) {
        const struct rec *r;
        unsigned n = 9;
        if (count >= max) {
            more = true;
            break;
        }
        rv = decode_into(q, &v, &ver, 0);
        if (rv != 0) {
            goto out;
        }
        r = &ver.rec;
        n += (r->key_id.p != NULL) + (r->description.p != NULL) +
             (r->allowed_pattern.p != NULL) + (r->user.p != NULL && r->user.n);
        msgpack_pack_map(&l.pk, n);
        mp_pack_kv_str(&l.pk, "Name", param.rec.name.p, param.rec.name.n);
        mp_pack_kv_str(&l.pk, "Type", r->type.p, r->type.n);
        if (r->key_id.p != NULL) {
            mp_pack_kv_str(&l.pk, "KeyId", r->key_id.p, r->key_id.n);
        }
        pack_time(&l.pk, "LastModifiedDate", r->ts);
        if (r->user.p != NULL && r->user.n > 0) {
            mp_pack_kv_str(&l.pk, "LastModifiedUser", r->user.p, r->user.n);
        }
        if (r->description.p != NULL) {
            mp_pack_kv_str(&l.pk, "Description", r->description.p,
                           r->description.n);
        }
        pack_value(&l.pk, r);
        if (r->allowed_pattern.p != NULL) {
            mp_pack_kv_str(&l.pk, "AllowedPattern", r->allowed_pattern.p,
                           r->allowed_pattern.n);
        }
        mp_pack_kv_u64(&l.pk, "Version", r->version);
        mp_pack_cstr(&l.pk, "Labels");
        msgpack_pack_array(&l.pk, r->n_labels);
        for (unsigned i = 0; i < r->n_labels; i++) {
            mp_pack_str(&l.pk, r->labels[i].p, r->labels[i].n);
        }
        mp_pack_kv_str(&l.pk, "Tier",
                       r->tier.p != NULL ? r->tier.p : TIER_STANDARD,
                       r->tier.p != NULL ? r->tier.n : strlen(TIER_STANDARD));
        pack_policies(&l.pk, r);
        mp_pack_kv_str(&l.pk, "DataType",
                       r->data_type.p != NULL ? r->data_type.p : "text",
                       r->data_type.p != NULL ? r->data_type.n : 4);
        count++;
        last = r->version;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rv = mdb_err(q, rc, "history");
        goto out;
    }
    if (more) {
        uint8_t lb[8];
        be64_put(lb, last);
        rv = token_encode(tkey, TOKEN_HISTORY, qhash, lb, 8, &tok);
        if (rv != 0) {
            goto out;
        }
    }
    l.count = count;
    rv = finish_listing(q, &l, &tok);
out:
    mdb_cursor_close(cur);
    buf_close(&l.items);
    buf_close(&tok);
    return rv;
}

/* ---- tags and settings ---------------------------------------------- */

static int q_list_tags(struct q *q)
{
    struct mp_str rtype, rid;
    struct names_name nm;
    struct cairn_error ignore;
    struct doc_rec param;
    bool found;
    int rv = required_str(q, "ResourceType", "resourceType", &rtype);

    if (rv == 0) {
        rv = required_str(q, "ResourceId", "resourceId", &rid);
    }
    if (rv != 0) {
        return rv;
    }
    if (!mp_str_eqn(rtype, "Parameter")) {
        return cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                               "InvalidResourceType", "Invalid Resource Type");
    }
    if (names_check_existing(rid.p, rid.n, &nm, &ignore) != 0) {
        return cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                               "InvalidResourceId", "Invalid Resource Id");
    }
    rv = get_param(q, &nm, &param, 0, &found);
    if (rv == 0 && !found) {
        rv = cairn_error_set(q->err, CAIRN_INVALID_ARGUMENT,
                             "InvalidResourceId", "Invalid Resource Id");
    }
    if (rv == 0) {
        msgpack_pack_map(&q->pk, 1);
        mp_pack_cstr(&q->pk, "TagList");
        msgpack_pack_array(&q->pk, param.rec.n_tags);
        for (unsigned i = 0; i < param.rec.n_tags; i++) {
            msgpack_pack_map(&q->pk, 2);
            mp_pack_kv_str(&q->pk, "Key", param.rec.tags[i].key.p,
                           param.rec.tags[i].key.n);
            mp_pack_kv_str(&q->pk, "Value", param.rec.tags[i].value.p,
                           param.rec.tags[i].value.n);
        }
    }
    return rv;
}

static int q_get_setting(struct q *q)
{
    struct mp_str id, value = {TIER_STANDARD, strlen(TIER_STANDARD)};
    struct mp_str user = {NULL, 0};
    int64_t ts = 0;
    const char *suffix = ":servicesetting" SETTING_DEFAULT_TIER;
    size_t sn = strlen(suffix);
    MDB_val k = {strlen(META_DEFAULT_TIER), (void *)META_DEFAULT_TIER};
    MDB_val v;
    struct mp_doc doc;
    bool have_doc = false;
    char arn[512];
    int rc;
    int rv = required_str(q, "SettingId", "settingId", &id);

    if (rv != 0) {
        return rv;
    }
    if (!mp_str_eqn(id, SETTING_DEFAULT_TIER) &&
        !(id.n > sn && memcmp(id.p, "arn:", 4) == 0 &&
          memcmp(id.p + id.n - sn, suffix, sn) == 0)) {
        return cairn_error_set(q->err, CAIRN_NOT_FOUND,
                               "ServiceSettingNotFound",
                               "The service setting %.*s was not found.",
                               (int)(id.n > 256 ? 256 : id.n), id.p);
    }
    rc = mdb_get(q->txn, q->s->meta, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return mdb_err(q, rc, "setting");
    }
    if (rc == 0 && mp_doc_parse(&doc, v.mv_data, v.mv_size, NULL) == 0) {
        have_doc = true;
        mp_get_str(&doc.root, "SettingValue", &value, NULL);
        mp_get_str(&doc.root, "LastModifiedUser", &user, NULL);
        mp_get_i64(&doc.root, "LastModifiedDate", &ts, NULL);
    }
    snprintf(arn, sizeof(arn), "arn:%s:ssm:%s:%s:servicesetting%s",
             q->s->opts.arn.partition, q->s->opts.arn.region,
             q->s->opts.arn.account, SETTING_DEFAULT_TIER);
    msgpack_pack_map(&q->pk, 1);
    mp_pack_cstr(&q->pk, "ServiceSetting");
    msgpack_pack_map(&q->pk, have_doc ? 6 : 4);
    mp_pack_kv_cstr(&q->pk, "SettingId", SETTING_DEFAULT_TIER);
    mp_pack_kv_str(&q->pk, "SettingValue", value.p, value.n);
    if (have_doc) {
        pack_time(&q->pk, "LastModifiedDate", ts);
        mp_pack_kv_str(&q->pk, "LastModifiedUser", user.p != NULL ? user.p : "",
                       user.n);
    }
    mp_pack_kv_cstr(&q->pk, "ARN", arn);
    mp_pack_kv_cstr(&q->pk, "Status", have_doc ? "Customized" : "Default");
    if (have_doc) {
        mp_doc_close(&doc);
    }
    return 0;
}

/* ---- change feed ---------------------------------------------------- */

/* Rows from FromRevision on (at most MaxResults, 1..1000, default 100);
 * without FromRevision, from the oldest row retained. A revision older than
 * the retained window is OUT_OF_RANGE: the reader must resynchronise from a
 * fresh baseline. */
static int q_changes(struct q *q)
{
    uint64_t from = 1, newest = 0, max = 100, oldest = 0;
    uint8_t key[8];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    struct listing l;
    int rc;
    int rv = 0;

    int has_from = mp_get_u64(q->req, "FromRevision", &from, q->err);

    if (has_from < 0 || mp_get_u64(q->req, "MaxResults", &max, q->err) < 0) {
        return q->err->code;
    }
    if (max < 1 || max > 1000) {
        return validation(q, "MaxResults must be between 1 and 1000.");
    }
    rc = store_meta_get_u64(q->txn, q->s->meta, META_REVISION, 0, &newest);
    if (rc == 0) {
        rc = mdb_cursor_open(q->txn, q->s->feed, &cur);
    }
    if (rc != 0) {
        return mdb_err(q, rc, "feed");
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == 8) {
        oldest = be64_get(k.mv_data);
    }
    if (has_from == 0) {
        from = oldest > 0 ? oldest : newest + 1; /* all that is retained */
    } else if (from == 0) {
        from = 1;
    }
    if (oldest > 0 && from < oldest) {
        mdb_cursor_close(cur);
        return cairn_error_set(q->err, CAIRN_OUT_OF_RANGE, "RevisionCompacted",
                               "Revision %llu is older than the oldest "
                               "retained revision %llu; read a fresh "
                               "baseline and resume from its revision.",
                               (unsigned long long)from,
                               (unsigned long long)oldest);
    }
    buf_init(&l.items);
    mp_packer_init(&l.pk, &l.items);
    l.count = 0;
    be64_put(key, from);
    k.mv_data = key;
    k.mv_size = 8;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && l.count < max) {
        buf_append(&l.items, v.mv_data, v.mv_size); /* rows are msgpack */
        l.count++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rv = mdb_err(q, rc, "feed scan");
    }
    if (rv == 0) {
        msgpack_pack_map(&q->pk, 3);
        mp_pack_cstr(&q->pk, "Changes");
        msgpack_pack_array(&q->pk, l.count);
        buf_append(q->out, l.items.data, l.items.len);
        mp_pack_kv_u64(&q->pk, "Revision", newest);
        mp_pack_kv_u64(&q->pk, "OldestRevision", oldest);
        if (l.items.oom) {
            rv = cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                 "out of memory");
        }
    }
    buf_close(&l.items);
    return rv;
}

/* ---- cluster members ------------------------------------------------ */

/* Every row of the member table, in id order: {Members: [{Id,
 * RaftAddress, ApiAddress}]}. */
static int q_members(struct q *q)
{
    MDB_cursor *cur;
    MDB_val k = {strlen(META_MEMBER), (void *)META_MEMBER};
    MDB_val v;
    size_t n = 0;
    struct buf items;
    msgpack_packer pk;
    int rc = mdb_cursor_open(q->txn, q->s->meta, &cur);

    if (rc != 0) {
        return mdb_err(q, rc, "members");
    }
    buf_init(&items);
    mp_packer_init(&pk, &items);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != META_MEMBER_KEY_LEN ||
            memcmp(k.mv_data, META_MEMBER, strlen(META_MEMBER)) != 0) {
            break;
        }
        /* The store wrote these records; copy them through. */
        buf_append(&items, v.mv_data, v.mv_size);
        n++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        buf_close(&items);
        return mdb_err(q, rc, "members");
    }
    msgpack_pack_map(&q->pk, 1);
    mp_pack_cstr(&q->pk, "Members");
    msgpack_pack_array(&q->pk, n);
    buf_append(q->out, items.data, items.len);
    if (items.oom) {
        q->out->oom = 1;
    }
    buf_close(&items);
    return 0;
}

/* ---- keyring -------------------------------------------------------- */

/*
 * Reads of the keyring (docs/encryption.md). A read has no command time,
 * so a key past its DeletionDate that no keyring command has deleted yet
 * is still listed, in state PendingDeletion.
 */

/* The key that @p ref names in any KeyId form, decoded in place from the
 * read transaction's memory. NotFoundException when there is none. */
static int load_key(struct q *q, struct mp_str ref, struct keyring_key *k)
{
    char id[KEYRING_ID_MAX + 1];
    uint8_t key[KEYRING_META_KEY_MAX];
    MDB_val kv, v;
    bool found = false;
    int shown = (int)(ref.n > KEYRING_ALIAS_MAX ? KEYRING_ALIAS_MAX : ref.n);
    int rc =
        keyring_resolve(q->txn, q->s->meta, &q->s->opts.arn, ref, id, &found);

    if (rc != 0) {
        return mdb_err(q, rc, "resolve key");
    }
    if (found) {
        kv.mv_data = key;
        kv.mv_size = keyring_meta_key(META_KMS_KEY,
                                      (struct mp_str){id, strlen(id)}, key);
        rc = mdb_get(q->txn, q->s->meta, &kv, &v);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return mdb_err(q, rc, "key");
        }
        found = rc == 0;
    }
    if (!found) {
        if (keyring_ref_is_alias(ref)) {
            return cairn_error_set(q->err, CAIRN_NOT_FOUND, "NotFoundException",
                                   "Alias %.*s is not found.", shown, ref.p);
        }
        return cairn_error_set(q->err, CAIRN_NOT_FOUND, "NotFoundException",
                               "Key '%.*s' does not exist", shown, ref.p);
    }
    if (keyring_key_decode(v.mv_data, v.mv_size, k) != 0) {
        return cairn_error_set(q->err, CAIRN_DATA_LOSS, "InternalServerError",
                               "malformed keyring record of key %s", id);
    }
    return 0;
}

/* The request's KeyId (required, any form) and its key. */
static int req_key(struct q *q, struct keyring_key *k)
{
    struct mp_str ref;
    int rv = required_str(q, "KeyId", "keyId", &ref);
    if (rv != 0) {
        return rv;
    }
    if (ref.n == 0 || ref.n > 2048) {
        return validation(q,
                          "1 validation error detected: Value at 'keyId' "
                          "failed to satisfy constraint: Member must have "
                          "length between 1 and 2048");
    }
    return load_key(q, ref, k);
}

/* Visit every record under meta prefix @p prefix in key order, packing
 * what @p fn packs into a side buffer; then {@p list: [...],
 * "Truncated": false}. The keyring is small: no paging. */
static int list_prefix(struct q *q,
                       const char *prefix,
                       const char *list,
                       int (*fn)(struct q *q,
                                 msgpack_packer *pk,
                                 MDB_val *k,
                                 MDB_val *v,
                                 const void *arg),
                       const void *arg)
{
    const size_t pn = strlen(prefix);
    MDB_cursor *cur;
    MDB_val k = {pn, (void *)prefix};
    MDB_val v;
    struct listing l;
    int rv = 0;
    int rc = mdb_cursor_open(q->txn, q->s->meta, &cur);

    if (rc != 0) {
        return mdb_err(q, rc, "keyring");
    }
    buf_init(&l.items);
    mp_packer_init(&l.pk, &l.items);
    l.count = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && rv >= 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= pn || memcmp(k.mv_data, prefix, pn) != 0) {
            break;
        }
        rv = fn(q, &l.pk, &k, &v, arg);
        if (rv > 0) {
            l.count++;
        }
    }
    mdb_cursor_close(cur);
    if (rv < 0) {
        rv = q->err->code;
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        rv = mdb_err(q, rc, "keyring");
    } else {
        rv = 0;
        msgpack_pack_map(&q->pk, 2);
        mp_pack_cstr(&q->pk, list);
        msgpack_pack_array(&q->pk, l.count);
        buf_append(q->out, l.items.data, l.items.len);
        mp_pack_kv_bool(&q->pk, "Truncated", false);
        if (l.items.oom) {
            q->out->oom = 1;
        }
    }
    buf_close(&l.items);
    return rv;
}

/* Returns 1 (packed one), 0 (skipped) or -1 (error in q->err). */
static int list_key(struct q *q,
                    msgpack_packer *pk,
                    MDB_val *k,
                    MDB_val *v,
                    const void *arg)
{
    struct mp_str id = {(const char *)k->mv_data + strlen(META_KMS_KEY),
                        k->mv_size - strlen(META_KMS_KEY)};
    (void)v;
    (void)arg;
    msgpack_pack_map(pk, 2);
    mp_pack_kv_str(pk, "KeyId", id.p, id.n);
    mp_pack_cstr(pk, "KeyArn");
    keyring_pack_key_arn(pk, &q->s->opts.arn, id);
    return 1;
}

/* ListKeys {} -> {Keys: [{KeyId, KeyArn}], Truncated}, in key id order. */
static int q_list_keys(struct q *q)
{
    return list_prefix(q, META_KMS_KEY, "Keys", list_key, NULL);
}

/* DescribeKey {KeyId} -> {KeyMetadata}. */
static int q_describe_key(struct q *q)
{
    struct keyring_key *k = malloc(sizeof(*k));
    int rv;

    if (k == NULL) {
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = req_key(q, k);
    if (rv == 0) {
        msgpack_pack_map(&q->pk, 1);
        mp_pack_cstr(&q->pk, "KeyMetadata");
        keyring_pack_metadata(&q->pk, &q->s->opts.arn, k);
    }
    free(k);
    return rv;
}

static int list_alias(struct q *q,
                      msgpack_packer *pk,
                      MDB_val *k,
                      MDB_val *v,
                      const void *arg)
{
    const struct mp_str *only = arg;
    struct mp_str name = {(const char *)k->mv_data + strlen(META_KMS_ALIAS),
                          k->mv_size - strlen(META_KMS_ALIAS)};
    struct keyring_alias a;

    if (keyring_alias_decode(v->mv_data, v->mv_size, &a) != 0) {
        cairn_error_set(q->err, CAIRN_DATA_LOSS, "InternalServerError",
                        "malformed keyring record of alias %.*s", (int)name.n,
                        name.p);
        return -1;
    }
    if (only != NULL && !str_eq(*only, a.target)) {
        return 0;
    }
    msgpack_pack_map(pk, 5);
    mp_pack_kv_str(pk, "AliasName", name.p, name.n);
    mp_pack_cstr(pk, "AliasArn");
    keyring_pack_alias_arn(pk, &q->s->opts.arn, name);
    mp_pack_kv_str(pk, "TargetKeyId", a.target.p, a.target.n);
    keyring_pack_time(pk, "CreationDate", a.created);
    keyring_pack_time(pk, "LastUpdatedDate", a.updated);
    return 1;
}

/* ListAliases {KeyId?} -> {Aliases: [{AliasName, AliasArn, TargetKeyId,
 * CreationDate, LastUpdatedDate}], Truncated}, in name order; with KeyId
 * (any form) only that key's. */
static int q_list_aliases(struct q *q)
{
    struct mp_str ref;
    struct keyring_key *k;
    int r = mp_get_str(q->req, "KeyId", &ref, q->err);
    int rv;

    if (r < 0) {
        return q->err->code;
    }
    if (r == 0) {
        return list_prefix(q, META_KMS_ALIAS, "Aliases", list_alias, NULL);
    }
    k = malloc(sizeof(*k));
    if (k == NULL) {
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = load_key(q, ref, k);
    if (rv == 0) {
        rv = list_prefix(q, META_KMS_ALIAS, "Aliases", list_alias, &k->id);
    }
    free(k);
    return rv;
}

/* Cairn's GetKeyMaterial {KeyId (any form)} -> {KeyId, Arn, KeyState,
 * CurrentVersion, DeletionDate?, Versions: [{Version, Material (bin),
 * RootKey, CreationDate}]}: what the service layer needs to unwrap. */
static int q_key_material(struct q *q)
{
    struct keyring_key *k = malloc(sizeof(*k));
    bool pending;
    int rv;

    if (k == NULL) {
        return cairn_error_set(q->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    rv = req_key(q, k);
    if (rv != 0) {
        free(k);
        return rv;
    }
    pending = k->deletion != 0;
    msgpack_pack_map(&q->pk, 5 + (pending ? 1 : 0));
    mp_pack_kv_str(&q->pk, "KeyId", k->id.p, k->id.n);
    mp_pack_cstr(&q->pk, "Arn");
    keyring_pack_key_arn(&q->pk, &q->s->opts.arn, k->id);
    mp_pack_kv_str(&q->pk, "KeyState", k->state.p, k->state.n);
    mp_pack_kv_u64(&q->pk, "CurrentVersion", k->current);
    if (pending) {
        keyring_pack_time(&q->pk, "DeletionDate", k->deletion);
    }
    mp_pack_cstr(&q->pk, "Versions");
    msgpack_pack_array(&q->pk, k->n_versions);
    for (uint32_t i = 0; i < k->n_versions; i++) {
        const struct keyring_version *v = &k->versions[i];
        msgpack_pack_map(&q->pk, 4);
        mp_pack_kv_u64(&q->pk, "Version", v->version);
        mp_pack_cstr(&q->pk, "Material");
        mp_pack_bin(&q->pk, v->material.p, v->material.n);
        mp_pack_kv_str(&q->pk, "RootKey", v->root_key.p, v->root_key.n);
        keyring_pack_time(&q->pk, "CreationDate", v->created);
    }
    free(k);
    return 0;
}

/* ---- dispatch ------------------------------------------------------- */

struct method
{
    const char *name;
    int (*fn)(struct q *q);
};

static const struct method methods[] = {
    {"GetParameter", q_get_parameter},
    {"GetParameters", q_get_parameters},
    {"GetParametersByPath", q_get_by_path},
    {"GetParameterHistory", q_history},
    {"DescribeParameters", q_describe},
    {"ListTagsForResource", q_list_tags},
    {"GetServiceSetting", q_get_setting},
    {"GetChanges", q_changes},
    {"ListMembers", q_members},
    {"ListKeys", q_list_keys},
    {"DescribeKey", q_describe_key},
    {"ListAliases", q_list_aliases},
    {"GetKeyMaterial", q_key_material},
    {"GetParameterType", q_parameter_type},
};

int query_run(struct store *s,
              const char *method,
              const void *req,
              size_t len,
              struct buf *out,
              struct cairn_error *err)
{
    const struct method *m = NULL;
    struct mp_doc doc;
    struct q q;
    size_t mark = out->len;
    int rv;

    cairn_error_clear(err);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(methods[i].name, method) == 0) {
            m = &methods[i];
        }
    }
    if (m == NULL) {
        return cairn_error_set(err, CAIRN_UNIMPLEMENTED,
                               "UnknownOperationException",
                               "unknown read method %.64s", method);
    }
    rv = mp_doc_parse_map(&doc, req, len, err);
    if (rv != 0) {
        return rv;
    }
    memset(&q, 0, sizeof(q));
    q.s = s;
    q.req = &doc.root;
    q.err = err;
    q.out = out;
    mp_packer_init(&q.pk, out);
    rv = store_read_begin(s, &q.txn, err);
    if (rv == 0) {
        rv = m->fn(&q);
        store_read_end(s);
    }
    mp_doc_close(&doc);
    if (rv == 0 && out->oom) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory encoding the response");
    }
    if (rv != 0) {
        out->len = mark; /* leave out unchanged on failure */
        out->oom = 0;
    }
    return rv;
}
