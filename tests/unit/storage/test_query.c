/* Unit tests for storage/query.c: the read paths of the Parameter Store
 * (GetParameter, GetParameters, GetParametersByPath, GetParameterHistory,
 * DescribeParameters, ListTagsForResource, GetServiceSetting, GetChanges),
 * written through sm_apply and read through query_run. */
#include "sm_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"
#include "mpjson.h"
#include "token.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

/* Every case gets a fresh store with the default options in *state. */
static int setup(void **state)
{
    struct h *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return -1;
    }
    h_open(h, NULL);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct h *h = *state;
    if (h->dir != NULL) {
        h_close(h);
    }
    free(h);
    return 0;
}

/* Replace the fixture's store by a fresh one opened with @p opts. */
static void reopen_with(struct h *h, const struct store_options *opts)
{
    h_close(h);
    h_open(h, opts);
}

#define CALLER "arn:aws:iam::000000000000:user/test"
#define ARN_PREFIX "arn:aws:ssm:local:000000000000:parameter"
#define SETTING "/ssm/parameter-store/default-parameter-tier"
#define POLICY_EXPIRATION                                                      \
    "[{\\\"Type\\\":\\\"Expiration\\\",\\\"Version\\\":\\\"1.0\\\","           \
    "\\\"Attributes\\\":{\\\"Timestamp\\\":\\\"2030-01-01T00:00:00.000Z\\\"}}" \
    "]"

/* AWS's texts (ssm-api.md sections 2.3 and 2.9), spelled out here so that a
 * change to the storage code that alters them fails a test. */
static const char MSG_PATH[] =
    "The parameter doesn't meet the parameter name requirements. The "
    "parameter name must begin with a forward slash \"/\". It can't be "
    "prefixed with \"aws\" or \"ssm\" (case-insensitive). It must use only "
    "letters, numbers, or the following symbols: . (period), - (hyphen), _ "
    "(underscore). Special characters are not allowed. All sub-paths, if "
    "specified, must use the forward slash symbol \"/\". Valid example: "
    "/get/parameters2-/by1./path0_.";
static const char MSG_BAD_TOKEN[] = "The specified token is not valid.";
static const char MSG_BOTH_FILTERS[] =
    "You can use either Filters or ParameterFilters in a single request.";
static const char MSG_COMMON_PATH[] =
    "Filters for common parameters can't be prefixed with \"aws\" or \"ssm\" "
    "(case-insensitive). When using global parameters, please specify "
    "within a global namespace.";
static const char MSG_HIERARCHY[] =
    "A hierarchy can have a maximum of 15 levels. For more information, see "
    "https://docs.aws.amazon.com/systems-manager/latest/userguide/"
    "sysman-parameter-name-constraints.html";

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

/* A growable list of strings (owned copies). */
struct strv
{
    char **v;
    size_t n;
    size_t cap;
};

static void strv_push(struct strv *s, const char *x)
{
    if (s->n == s->cap) {
        s->cap = s->cap == 0 ? 64 : s->cap * 2;
        s->v = realloc(s->v, s->cap * sizeof(s->v[0]));
        assert_non_null(s->v);
    }
    s->v[s->n] = strdup(x);
    assert_non_null(s->v[s->n]);
    s->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strv_sort(struct strv *s)
{
    if (s->n > 1) {
        qsort(s->v, s->n, sizeof(s->v[0]), cmp_str);
    }
}

static void strv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* Fail unless the sorted list @p s holds no string twice. */
static void assert_no_duplicates(const struct strv *s)
{
    for (size_t i = 1; i < s->n; i++) {
        if (strcmp(s->v[i - 1], s->v[i]) == 0) {
            fail_msg("returned twice: %.200s", s->v[i]);
        }
    }
}

/* Fail unless @p got (any order) holds exactly the @p n names of @p want,
 * each once. Sorts @p got. */
static void assert_same_set(struct strv *got, const char *const *want, size_t n)
{
    struct strv w = {0};
    for (size_t i = 0; i < n; i++) {
        strv_push(&w, want[i]);
    }
    strv_sort(&w);
    strv_sort(got);
    assert_no_duplicates(got);
    for (size_t i = 0; i < got->n || i < w.n; i++) {
        const char *g = i < got->n ? got->v[i] : "(none)";
        const char *e = i < w.n ? w.v[i] : "(none)";
        if (strcmp(g, e) != 0) {
            fail_msg("result %zu of %zu (want %zu): got %.120s, want %.120s", i,
                     got->n, w.n, g, e);
        }
    }
    strv_free(&w);
}

/* The Parameters array of a response. */
static json_t *params_of(json_t *r)
{
    json_t *a = json_object_get(r, "Parameters");
    assert_true(json_is_array(a));
    return a;
}

/* The Parameter object of a GetParameter response. */
static json_t *param_of(json_t *r)
{
    json_t *p = json_object_get(r, "Parameter");
    assert_true(json_is_object(p));
    return p;
}

/* Member @p key of element @p i of the Parameters array. */
static const char *item_str(json_t *r, size_t i, const char *key)
{
    json_t *p = json_array_get(params_of(r), i);
    assert_non_null(p);
    return js(p, key);
}

static long long item_int(json_t *r, size_t i, const char *key)
{
    json_t *p = json_array_get(params_of(r), i);
    assert_non_null(p);
    return ji(p, key);
}

/* One page of @p method with the JSON members @p members (no braces) and
 * NextToken @p token (NULL for none). */
static json_t *page(struct h *h,
                    const char *method,
                    const char *members,
                    const char *token)
{
    if (token == NULL) {
        return h_q(h, method, "{%s}", members);
    }
    return h_q(h, method, "{%s,\"NextToken\":\"%s\"}", members, token);
}

/* A copy of the NextToken of @p r, or NULL. */
static char *token_of(json_t *r)
{
    const char *t = js(r, "NextToken");
    char *c;
    if (t == NULL) {
        return NULL;
    }
    assert_true(strlen(t) > 0);
    c = strdup(t);
    assert_non_null(c);
    return c;
}

/* Follow NextToken until it is absent, adding every returned Name to
 * @p out. Each page must hold at most @p max results. Returns the number of
 * pages read. */
static unsigned list_all(struct h *h,
                         const char *method,
                         const char *members,
                         size_t max,
                         struct strv *out)
{
    char *token = NULL;
    unsigned pages = 0;

    do {
        json_t *r = page(h, method, members, token);
        json_t *a = params_of(r);
        assert_true(json_array_size(a) <= max);
        for (size_t i = 0; i < json_array_size(a); i++) {
            const char *name = js(json_array_get(a, i), "Name");
            assert_non_null(name);
            strv_push(out, name);
        }
        free(token);
        token = token_of(r);
        json_decref(r);
        pages++;
        if (pages > 200000) {
            fail_msg("%s {%s}: NextToken never ends", method, members);
        }
    } while (token != NULL);
    return pages;
}

/* Fail unless listing @p method with @p members (following every token)
 * returns exactly the @p n names of @p want. */
static void expect_listing(struct h *h,
                           const char *method,
                           const char *members,
                           size_t max,
                           const char *const *want,
                           size_t n)
{
    struct strv got = {0};
    list_all(h, method, members, max, &got);
    assert_same_set(&got, want, n);
    strv_free(&got);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define EXPECT_BY_PATH(h, members, ...)                              \
    do {                                                             \
        const char *const want_[] = {__VA_ARGS__};                   \
        expect_listing(h, "GetParametersByPath", members, 10, want_, \
                       N_OF(want_));                                 \
    } while (0)
#define EXPECT_DESCRIBE(h, members, ...)                            \
    do {                                                            \
        const char *const want_[] = {__VA_ARGS__};                  \
        expect_listing(h, "DescribeParameters", members, 50, want_, \
                       N_OF(want_));                                \
    } while (0)

/* Fail unless listing @p method with @p members returns no parameter. */
static void expect_empty(struct h *h, const char *method, const char *members)
{
    struct strv got = {0};
    list_all(h, method, members, 50, &got);
    if (got.n != 0) {
        fail_msg("%s {%s}: want nothing, got %zu, first %.120s", method,
                 members, got.n, got.v[0]);
    }
    strv_free(&got);
}

/* Assert a query failure's message exactly. */
#define QFAIL_MSG(h, code, type, msg, method, ...) \
    assert_string_equal(h_qfail(h, code, type, method, __VA_ARGS__), msg)

/* Create String parameter @p name (no overwrite) without parsing the
 * response: fast enough for bulk loads inside a batch. */
static void put_new(struct h *h, const char *name, const char *value)
{
    const struct sm_outcome *o = h_apply(
        h, "PutParameter",
        "{\"Name\":\"%s\",\"Value\":\"%s\",\"Type\":\"String\"}", name, value);
    if (o->err.code != 0) {
        fail_msg("put %.200s: %s %s", name, o->err.type, o->err.msg);
    }
}

static void put_type(struct h *h,
                     const char *name,
                     const char *type,
                     const char *value)
{
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"%s\",\"Value\":\"%s\",\"Type\":\"%s\"}", name,
                     value, type));
}

static void put_secure(struct h *h,
                       const char *name,
                       const char *blob,
                       const char *key_id)
{
    const struct sm_outcome *o;

    h_ensure_key(h, key_id); /* SecureString puts need their key */
    o = h_put_secure(h, name, blob, strlen(blob), strlen(blob), key_id, true);
    if (o->err.code != 0) {
        fail_msg("secure put %s: %s %s", name, o->err.type, o->err.msg);
    }
}

static void del(struct h *h, const char *name)
{
    json_decref(h_ok(h, "DeleteParameter", "{\"Name\":\"%s\"}", name));
}

static void label(struct h *h,
                  const char *name,
                  unsigned version,
                  const char *l)
{
    json_t *r = h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"%s\",\"ParameterVersion\":%u,"
                     "\"Labels\":[\"%s\"]}",
                     name, version, l);
    assert_int_equal(json_array_size(json_object_get(r, "InvalidLabels")), 0);
    json_decref(r);
}

static void batch_begin(struct h *h)
{
    struct cairn_error err;
    if (sm_batch_begin(h->s, &err) != 0) {
        fail_msg("sm_batch_begin: %s", err.msg);
    }
}

static void batch_commit(struct h *h)
{
    struct cairn_error err;
    if (sm_batch_commit(h->s, &err) != 0) {
        fail_msg("sm_batch_commit: %s", err.msg);
    }
}

/* Apply Init with a token key of 32 bytes @p byte. */
static void init_token_key(struct h *h, uint8_t byte)
{
    uint8_t key[TOKEN_KEY_LEN];
    struct buf b;
    msgpack_packer pk;
    const struct sm_outcome *o;

    memset(key, byte, sizeof(key));
    buf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_cstr(&pk, "op", "Init");
    mp_pack_kv_i64(&pk, "ts", h->ts);
    mp_pack_kv_cstr(&pk, "user", CALLER);
    mp_pack_cstr(&pk, "req");
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "TokenKey");
    mp_pack_bin(&pk, key, sizeof(key));
    assert_false(b.oom);
    o = h_apply_raw(h, b.data, b.len);
    assert_int_equal(o->err.code, 0);
    buf_close(&b);
}

/* GetParameter @p input must return @p name at @p version with @p value,
 * and Selector @p selector (NULL: no Selector member). */
static void expect_get(struct h *h,
                       const char *input,
                       const char *name,
                       long long version,
                       const char *value,
                       const char *selector)
{
    json_t *r = h_q(h, "GetParameter", "{\"Name\":\"%s\"}", input);
    json_t *p = param_of(r);
    assert_string_equal(js(p, "Name"), name);
    assert_int_equal(ji(p, "Version"), version);
    assert_string_equal(js(p, "Value"), value);
    if (selector == NULL) {
        assert_null(json_object_get(p, "Selector"));
    } else {
        assert_string_equal(js(p, "Selector"), selector);
    }
    json_decref(r);
}

/* "/L1/L2/.../L<levels-1>/<leaf>" padded with 'q' to @p len characters if
 * @p len is non-zero. Free. */
static char *deep_name(unsigned levels, size_t len)
{
    char buf[2048];
    size_t n = 0;
    for (unsigned i = 1; i < levels; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/L%u", i);
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/leaf");
    if (len > n) {
        memset(buf + n, 'q', len - n);
        n = len;
    }
    buf[n] = '\0';
    return strdup(buf);
}

/* "<a><b>" in a new string. Free. */
static char *cat(const char *a, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s", a, b) < 0) {
        fail_msg("asprintf");
    }
    return s;
}

/******************************************************************************
 *
 * GetParameter
 *
 *****************************************************************************/

/* GetParameter returns the newest version with AWS's Parameter shape:
 * Name, Type, Value, Version, LastModifiedDate, ARN and DataType, and no
 * Selector when none was asked for. */
static void get_latest(void **state)
{
    struct h *h = *state;
    json_t *r, *p;

    assert_int_equal(h_put(h, "/a/b", "one"), 1);
    assert_int_equal(h_put(h, "/a/b", "two"), 2);
    r = h_q(h, "GetParameter", "{\"Name\":\"/a/b\"}");
    p = param_of(r);
    assert_int_equal(json_object_size(r), 1);
    assert_string_equal(js(p, "Name"), "/a/b");
    assert_string_equal(js(p, "Type"), "String");
    assert_string_equal(js(p, "Value"), "two");
    assert_int_equal(ji(p, "Version"), 2);
    assert_string_equal(js(p, "ARN"), ARN_PREFIX "/a/b");
    assert_string_equal(js(p, "DataType"), "text");
    /* The second put ran at h->ts: LastModifiedDate is in seconds. */
    assert_true(json_is_real(json_object_get(p, "LastModifiedDate")));
    assert_true(json_real_value(json_object_get(p, "LastModifiedDate")) ==
                (double)h->ts / 1000.0);
    assert_null(json_object_get(p, "Selector"));
    assert_null(json_object_get(p, "Description"));
    assert_int_equal(json_object_size(p), 7);
    json_decref(r);

    /* WithDecryption changes nothing for a String. */
    r = h_q(h, "GetParameter", "{\"Name\":\"/a/b\",\"WithDecryption\":true}");
    assert_string_equal(js(param_of(r), "Value"), "two");
    json_decref(r);
}

/* "name:3" returns version 3 with Selector ":3" while Name stays the bare
 * name and the ARN carries no selector. */
static void get_version_selector(void **state)
{
    struct h *h = *state;
    json_t *r, *p;

    h_put(h, "/a/b", "v1");
    h_put(h, "/a/b", "v2");
    h_put(h, "/a/b", "v3");
    h_put(h, "/a/b", "v4");
    r = h_q(h, "GetParameter", "{\"Name\":\"/a/b:3\"}");
    p = param_of(r);
    assert_string_equal(js(p, "Name"), "/a/b");
    assert_string_equal(js(p, "Selector"), ":3");
    assert_string_equal(js(p, "Value"), "v3");
    assert_int_equal(ji(p, "Version"), 3);
    assert_string_equal(js(p, "ARN"), ARN_PREFIX "/a/b");
    assert_int_equal(json_object_size(p), 8);
    json_decref(r);
    expect_get(h, "/a/b:1", "/a/b", 1, "v1", ":1");
    expect_get(h, "/a/b:4", "/a/b", 4, "v4", ":4");
}

/* "name:label" returns the labelled version with Selector ":label", and
 * follows the label when it moves to another version. */
static void get_label_selector(void **state)
{
    struct h *h = *state;

    h_put(h, "/app/db", "old");
    h_put(h, "/app/db", "new");
    label(h, "/app/db", 1, "prod");
    expect_get(h, "/app/db:prod", "/app/db", 1, "old", ":prod");
    label(h, "/app/db", 2, "prod");
    expect_get(h, "/app/db:prod", "/app/db", 2, "new", ":prod");
    /* Unlabelled, it selects nothing. */
    json_decref(h_ok(h, "UnlabelParameterVersion",
                     "{\"Name\":\"/app/db\",\"ParameterVersion\":2,"
                     "\"Labels\":[\"prod\"]}"));
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /app/db:prod not found.", "GetParameter",
              "{\"Name\":\"/app/db:prod\"}");
}

/* An unknown name, or an unknown label of a known name, is
 * ParameterNotFound "Parameter <input> not found.". */
static void get_unknown(void **state)
{
    struct h *h = *state;

    h_put(h, "/a/b", "v");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /nope not found.", "GetParameter",
              "{\"Name\":\"/nope\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /a/b:missing not found.", "GetParameter",
              "{\"Name\":\"/a/b:missing\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /a not found.", "GetParameter", "{\"Name\":\"/a\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /a/b/c not found.", "GetParameter",
              "{\"Name\":\"/a/b/c\"}");
    /* Names are case-sensitive. */
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /A/B not found.", "GetParameter",
              "{\"Name\":\"/A/B\"}");
}

/* A version that does not exist is ParameterVersionNotFound with AWS's
 * text, and is never replaced by the latest one, including a version
 * dropped by the version limit. */
static void get_missing_version(void **state)
{
    struct h *h = *state;
    struct store_options opts;

    h_put(h, "test-2", "v1");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound",
              "Systems Manager could not find version 2 of test-2. Verify "
              "the version and try again.",
              "GetParameter", "{\"Name\":\"test-2:2\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound",
              "Systems Manager could not find version 7 of /test-2. Verify "
              "the version and try again.",
              "GetParameter", "{\"Name\":\"/test-2:7\"}");
    /* Version 0 is no version at all. */
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter test-2:0 not found.", "GetParameter",
              "{\"Name\":\"test-2:0\"}");

    store_options_default(&opts);
    opts.limits.versions = 3;
    reopen_with(h, &opts);
    for (int i = 1; i <= 5; i++) {
        char v[24];
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(h_put(h, "/lim", v), i);
    }
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound",
              "Systems Manager could not find version 2 of /lim. Verify the "
              "version and try again.",
              "GetParameter", "{\"Name\":\"/lim:2\"}");
    expect_get(h, "/lim:3", "/lim", 3, "v3", ":3");
    expect_get(h, "/lim", "/lim", 5, "v5", NULL);
}

/* More than one ':' after the name ("test-2:2:3") is ParameterNotFound
 * quoting the whole input, as is an empty selector. */
static void get_two_selectors(void **state)
{
    struct h *h = *state;

    h_put(h, "test-2", "v1");
    h_put(h, "test-2", "v2");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter test-2:2:3 not found.", "GetParameter",
              "{\"Name\":\"test-2:2:3\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter test-2: not found.", "GetParameter",
              "{\"Name\":\"test-2:\"}");
    expect_get(h, "test-2:2", "test-2", 2, "v2", ":2");
}

/* The ARN of this store's namespace names the parameter (with or without a
 * selector); an ARN of another account, region or partition is
 * ParameterNotFound. */
static void get_by_arn(void **state)
{
    struct h *h = *state;
    json_t *r;

    h_put(h, "/a/b", "v1");
    h_put(h, "/a/b", "v2");
    h_put(h, "root", "r");
    r = h_q(h, "GetParameter", "{\"Name\":\"" ARN_PREFIX "/a/b\"}");
    assert_string_equal(js(param_of(r), "Name"), "/a/b");
    assert_string_equal(js(param_of(r), "Value"), "v2");
    assert_string_equal(js(param_of(r), "ARN"), ARN_PREFIX "/a/b");
    assert_null(json_object_get(param_of(r), "Selector"));
    json_decref(r);
    expect_get(h, ARN_PREFIX "/a/b:1", "/a/b", 1, "v1", ":1");
    expect_get(h, ARN_PREFIX "/root", "root", 1, "r", NULL);

    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter arn:aws:ssm:local:111111111111:parameter/a/b not "
              "found.",
              "GetParameter",
              "{\"Name\":\"arn:aws:ssm:local:111111111111:parameter/a/b\"}");
    QFAIL_MSG(
        h, CAIRN_NOT_FOUND, "ParameterNotFound",
        "Parameter arn:aws:ssm:us-east-1:000000000000:parameter/a/b "
        "not found.",
        "GetParameter",
        "{\"Name\":\"arn:aws:ssm:us-east-1:000000000000:parameter/a/b\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter arn:aws-cn:ssm:local:000000000000:parameter/a/b not "
              "found.",
              "GetParameter",
              "{\"Name\":\"arn:aws-cn:ssm:local:000000000000:parameter/a/b\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter " ARN_PREFIX "/a/c not found.", "GetParameter",
              "{\"Name\":\"" ARN_PREFIX "/a/c\"}");
}

/* A store answering to another namespace reports its own ARNs and refuses
 * the default one. */
static void get_by_arn_custom_namespace(void **state)
{
    struct h *h = *state;
    struct store_options opts;
    json_t *r;

    store_options_default(&opts);
    opts.arn.partition = "aws-us-gov";
    opts.arn.region = "us-gov-west-1";
    opts.arn.account = "123456789012";
    reopen_with(h, &opts);
    h_put(h, "/a/b", "v");
    r = h_q(h, "GetParameter",
            "{\"Name\":\"arn:aws-us-gov:ssm:us-gov-west-1:123456789012:"
            "parameter/a/b\"}");
    assert_string_equal(js(param_of(r), "ARN"),
                        "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:"
                        "parameter/a/b");
    json_decref(r);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"" ARN_PREFIX "/a/b\"}");
}

/* "/x" and "x" are the same root parameter: either form reads it, an
 * overwrite through the other form makes version 2, and its ARN has no
 * double slash. */
static void get_root_names(void **state)
{
    struct h *h = *state;
    json_t *r;

    assert_int_equal(h_put(h, "x", "one"), 1);
    expect_get(h, "x", "x", 1, "one", NULL);
    expect_get(h, "/x", "x", 1, "one", NULL);
    assert_int_equal(h_put(h, "/x", "two"), 2);
    expect_get(h, "x", "x", 2, "two", NULL);
    expect_get(h, "/x:1", "x", 1, "one", ":1");
    r = h_q(h, "GetParameter", "{\"Name\":\"/x\"}");
    assert_string_equal(js(param_of(r), "ARN"), ARN_PREFIX "/x");
    json_decref(r);
    /* "/x/y" is another parameter entirely. */
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/x/y\"}");
    /* Leading and trailing spaces are trimmed. */
    expect_get(h, "  x  ", "x", 2, "two", NULL);
}

/* A SecureString is returned as stored (the sealed blob, base64 in JSON)
 * with Type SecureString, with or without WithDecryption. */
static void get_secure_string(void **state)
{
    struct h *h = *state;
    static const uint8_t blob[] = {0x00, 0xff, 0x10, 0x80, 's',
                                   'e',  'a',  'l',  0x01, 0x7f};
    char *b64 = mpjson_base64(blob, sizeof(blob));
    const struct sm_outcome *o;
    json_t *r, *p;

    h_ensure_key(h, NULL);
    o = h_put_secure(h, "/sec", blob, sizeof(blob), 6, NULL, false);
    assert_int_equal(o->err.code, 0);
    for (int dec = 0; dec < 2; dec++) {
        r = h_q(h, "GetParameter", "{\"Name\":\"/sec\",\"WithDecryption\":%s}",
                dec ? "true" : "false");
        p = param_of(r);
        assert_string_equal(js(p, "Type"), "SecureString");
        assert_string_equal(js(p, "Value"), b64);
        assert_int_equal(ji(p, "Version"), 1);
        /* The Parameter shape has no KeyId. */
        assert_null(json_object_get(p, "KeyId"));
        json_decref(r);
    }
    free(b64);
}

/* A missing or malformed Name is a ValidationException, and a name deeper
 * than 15 levels is HierarchyLevelLimitExceededException. */
static void get_bad_input(void **state)
{
    struct h *h = *state;
    char *deep16 = deep_name(16, 0);

    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value null at 'name' failed to "
              "satisfy constraint: Member must not be null",
              "GetParameter", "{}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "GetParameter",
            "{\"Name\":\"/a b\"}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "GetParameter",
            "{\"Name\":\"a/b\"}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "GetParameter",
            "{\"Name\":\"\"}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "SerializationException", "GetParameter",
            "{\"Name\":7}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "HierarchyLevelLimitExceededException",
              MSG_HIERARCHY, "GetParameter", "{\"Name\":\"%s\"}", deep16);
    free(deep16);
}

/* An unknown method is UNIMPLEMENTED and leaves the output empty. */
static void unknown_method(void **state)
{
    struct h *h = *state;
    h_qfail(h, CAIRN_UNIMPLEMENTED, "UnknownOperationException", "PutParameter",
            "{\"Name\":\"/a\"}");
}

/******************************************************************************
 *
 * GetParameters
 *
 *****************************************************************************/

/* More than 10 names, or none, is a ValidationException on 'names'. */
static void getparams_count(void **state)
{
    struct h *h = *state;
    const char *msg;

    msg = h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
                  "GetParameters",
                  "{\"Names\":[\"/a1\",\"/a2\",\"/a3\",\"/a4\",\"/a5\","
                  "\"/a6\",\"/a7\",\"/a8\",\"/a9\",\"/a10\",\"/a11\"]}");
    assert_non_null(strstr(msg,
                           "at 'names' failed to satisfy constraint: "
                           "Member must have length less than or equal "
                           "to 10"));
    msg = h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
                  "GetParameters", "{\"Names\":[]}");
    assert_non_null(strstr(msg,
                           "at 'names' failed to satisfy constraint: "
                           "Member must have length greater than or "
                           "equal to 1"));
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "GetParameters",
            "{}");
    /* Exactly 10 is fine, even when none exists. */
    json_t *r = h_q(h, "GetParameters",
                    "{\"Names\":[\"/a1\",\"/a2\",\"/a3\",\"/a4\",\"/a5\","
                    "\"/a6\",\"/a7\",\"/a8\",\"/a9\",\"/a10\"]}");
    assert_int_equal(json_array_size(params_of(r)), 0);
    assert_int_equal(json_array_size(json_object_get(r, "InvalidParameters")),
                     10);
    json_decref(r);
}

/* Unknown names, unresolvable selectors (missing version, unknown label,
 * two selectors) and malformed names go to InvalidParameters, as given, in
 * request order; they are not errors. */
static void getparams_invalid(void **state)
{
    struct h *h = *state;
    json_t *r, *inv;

    h_put(h, "/ok", "v");
    r = h_q(h, "GetParameters",
            "{\"Names\":[\"/nope\",\"/ok\",\"/ok:9\",\"/ok:nolabel\","
            "\"/ok:1:1\",\"bad name\",\"" ARN_PREFIX "/zz\"]}");
    assert_int_equal(json_array_size(params_of(r)), 1);
    assert_string_equal(item_str(r, 0, "Name"), "/ok");
    assert_null(json_object_get(json_array_get(params_of(r), 0), "Selector"));
    inv = json_object_get(r, "InvalidParameters");
    assert_int_equal(json_array_size(inv), 6);
    assert_string_equal(json_string_value(json_array_get(inv, 0)), "/nope");
    assert_string_equal(json_string_value(json_array_get(inv, 1)), "/ok:9");
    assert_string_equal(json_string_value(json_array_get(inv, 2)),
                        "/ok:nolabel");
    assert_string_equal(json_string_value(json_array_get(inv, 3)), "/ok:1:1");
    assert_string_equal(json_string_value(json_array_get(inv, 4)), "bad name");
    assert_string_equal(json_string_value(json_array_get(inv, 5)),
                        ARN_PREFIX "/zz");
    json_decref(r);

    /* All valid: InvalidParameters is present and empty. */
    r = h_q(h, "GetParameters", "{\"Names\":[\"/ok\"]}");
    assert_int_equal(json_array_size(json_object_get(r, "InvalidParameters")),
                     0);
    json_decref(r);
}

/* Results come in alphabetical order whatever the request order. */
static void getparams_sorted(void **state)
{
    struct h *h = *state;
    json_t *r;

    h_put(h, "/c", "3");
    h_put(h, "/a", "1");
    h_put(h, "b", "2");
    h_put(h, "/b/x", "4");
    h_put(h, "/B", "5");
    r = h_q(h, "GetParameters",
            "{\"Names\":[\"/c\",\"b\",\"/b/x\",\"/a\",\"/B\"]}");
    assert_int_equal(json_array_size(params_of(r)), 5);
    assert_string_equal(item_str(r, 0, "Name"), "/B");
    assert_string_equal(item_str(r, 1, "Name"), "/a");
    assert_string_equal(item_str(r, 2, "Name"), "/b/x");
    assert_string_equal(item_str(r, 3, "Name"), "/c");
    assert_string_equal(item_str(r, 4, "Name"), "b");
    assert_string_equal(item_str(r, 0, "Value"), "5");
    assert_string_equal(item_str(r, 4, "Value"), "2");
    json_decref(r);
}

/* Selectors work inside GetParameters: "name:1" and "name:label" return
 * those versions with Selector; the same name twice is returned once. */
static void getparams_selectors(void **state)
{
    struct h *h = *state;
    json_t *r;

    h_put(h, "/p", "v1");
    h_put(h, "/p", "v2");
    h_put(h, "/p", "v3");
    label(h, "/p", 2, "lbl");
    r = h_q(h, "GetParameters",
            "{\"Names\":[\"/p:lbl\",\"/p\",\"/p:1\",\"/p\","
            "\"" ARN_PREFIX "/p:3\"]}");
    assert_int_equal(json_array_size(params_of(r)), 4);
    assert_int_equal(json_array_size(json_object_get(r, "InvalidParameters")),
                     0);
    assert_string_equal(item_str(r, 0, "Name"), "/p");
    assert_null(json_object_get(json_array_get(params_of(r), 0), "Selector"));
    assert_int_equal(item_int(r, 0, "Version"), 3);
    assert_string_equal(item_str(r, 1, "Selector"), ":1");
    assert_string_equal(item_str(r, 1, "Value"), "v1");
    assert_int_equal(item_int(r, 1, "Version"), 1);
    assert_string_equal(item_str(r, 2, "Selector"), ":3");
    assert_int_equal(item_int(r, 2, "Version"), 3);
    assert_string_equal(item_str(r, 3, "Selector"), ":lbl");
    assert_string_equal(item_str(r, 3, "Value"), "v2");
    assert_int_equal(item_int(r, 3, "Version"), 2);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(item_str(r, i, "Name"), "/p");
        assert_string_equal(item_str(r, i, "ARN"), ARN_PREFIX "/p");
    }
    json_decref(r);
}

/* A SecureString in GetParameters is its stored blob. */
static void getparams_secure(void **state)
{
    struct h *h = *state;
    char *b64 = mpjson_base64("sealed!", 7);
    json_t *r;

    put_secure(h, "/s", "sealed!", "alias/k");
    h_put(h, "/t", "plain");
    r = h_q(h, "GetParameters",
            "{\"Names\":[\"/t\",\"/s\"],\"WithDecryption\":true}");
    assert_string_equal(item_str(r, 0, "Name"), "/s");
    assert_string_equal(item_str(r, 0, "Type"), "SecureString");
    assert_string_equal(item_str(r, 0, "Value"), b64);
    assert_string_equal(item_str(r, 1, "Value"), "plain");
    json_decref(r);
    free(b64);
}

/******************************************************************************
 *
 * GetParametersByPath
 *
 *****************************************************************************/

/* Recursive=false returns only direct children, Recursive=true the whole
 * subtree; neither returns the path itself, a sibling sharing the path's
 * text as a prefix, or anything outside; a trailing slash is tolerated. */
static void bypath_levels(void **state)
{
    struct h *h = *state;
    json_t *r;

    h_put(h, "/a", "leaf equal to the path");
    h_put(h, "/a/x", "1");
    h_put(h, "/a/y", "2");
    h_put(h, "/a/b/c", "3");
    h_put(h, "/a/b/d/e", "4");
    h_put(h, "/a/b", "leaf and child coexist");
    h_put(h, "/ab", "sibling");
    h_put(h, "/a-/z", "sibling with a lower byte");
    h_put(h, "root", "5");

    EXPECT_BY_PATH(h, "\"Path\":\"/a\"", "/a/x", "/a/y", "/a/b");
    EXPECT_BY_PATH(h, "\"Path\":\"/a/\",\"Recursive\":false", "/a/x", "/a/y",
                   "/a/b");
    EXPECT_BY_PATH(h, "\"Path\":\"/a\",\"Recursive\":true", "/a/x", "/a/y",
                   "/a/b", "/a/b/c", "/a/b/d/e");
    EXPECT_BY_PATH(h, "\"Path\":\"/a/b\",\"Recursive\":true", "/a/b/c",
                   "/a/b/d/e");
    EXPECT_BY_PATH(h, "\"Path\":\"/a/b/\"", "/a/b/c");
    EXPECT_BY_PATH(h, "\"Path\":\"/\"", "/a", "/ab", "root");
    EXPECT_BY_PATH(h, "\"Path\":\"/\",\"Recursive\":true", "/a", "/a/x", "/a/y",
                   "/a/b", "/a/b/c", "/a/b/d/e", "/ab", "/a-/z", "root");
    expect_empty(h, "GetParametersByPath", "\"Path\":\"/nothing\"");
    /* "The last part of the parameter name can't be in the path." */
    expect_empty(h, "GetParametersByPath",
                 "\"Path\":\"/a/x\",\"Recursive\":true");

    /* The items have the Parameter shape, newest version, no Selector. */
    h_put(h, "/a/x", "1b");
    r = h_q(h, "GetParametersByPath", "{\"Path\":\"/a\",\"MaxResults\":10}");
    for (size_t i = 0; i < json_array_size(params_of(r)); i++) {
        json_t *p = json_array_get(params_of(r), i);
        assert_null(json_object_get(p, "Selector"));
        assert_non_null(js(p, "ARN"));
        assert_string_equal(js(p, "Type"), "String");
        if (strcmp(js(p, "Name"), "/a/x") == 0) {
            assert_string_equal(js(p, "Value"), "1b");
            assert_int_equal(ji(p, "Version"), 2);
        }
    }
    assert_null(json_object_get(r, "NextToken"));
    json_decref(r);
}

/* Over 10,020 parameters, paging 10 at a time until NextToken is absent
 * returns every parameter under the path exactly once recursively, and only
 * the direct leaves one level down. */
static void bypath_ten_thousand(void **state)
{
    struct h *h = *state;
    struct store_options opts;
    struct strv want = {0};
    struct strv got = {0};
    char name[64];
    unsigned pages;

    store_options_default(&opts);
    opts.limits.standard_params = 20000;
    reopen_with(h, &opts);
    batch_begin(h);
    for (int a = 0; a < 100; a++) {
        for (int b = 0; b < 100; b++) {
            snprintf(name, sizeof(name), "/big/a%d/b%d", a, b);
            put_new(h, name, "v");
            strv_push(&want, name);
        }
    }
    for (int x = 0; x < 20; x++) {
        snprintf(name, sizeof(name), "/big/x%d", x);
        put_new(h, name, "leaf");
        strv_push(&want, name);
    }
    put_new(h, "/bigger/not/under", "v");
    put_new(h, "/big", "the path itself");
    batch_commit(h);
    strv_sort(&want);

    pages = list_all(h, "GetParametersByPath",
                     "\"Path\":\"/big\",\"Recursive\":true,\"MaxResults\":10",
                     10, &got);
    assert_int_equal(got.n, 10020);
    assert_true(pages >= 1002);
    strv_sort(&got);
    assert_no_duplicates(&got);
    for (size_t i = 0; i < got.n; i++) {
        assert_string_equal(got.v[i], want.v[i]);
    }
    strv_free(&got);

    /* One level: the twenty leaves only, the 100 subtrees skipped. */
    list_all(h, "GetParametersByPath", "\"Path\":\"/big\",\"MaxResults\":10",
             10, &got);
    assert_int_equal(got.n, 20);
    strv_sort(&got);
    assert_no_duplicates(&got);
    for (size_t i = 0; i < got.n; i++) {
        assert_int_equal(strncmp(got.v[i], "/big/x", 6), 0);
    }
    strv_free(&got);

    /* One level inside one subtree. */
    list_all(h, "GetParametersByPath", "\"Path\":\"/big/a42\"", 10, &got);
    assert_int_equal(got.n, 100);
    strv_sort(&got);
    assert_no_duplicates(&got);
    strv_free(&got);
    strv_free(&want);
}

/* A scan budget smaller than the page gives short and even empty pages
 * that still carry NextToken; following them returns every match once. */
static void bypath_short_pages(void **state)
{
    struct h *h = *state;
    struct store_options opts;
    struct strv got = {0};
    char name[32];
    char *token = NULL;
    bool saw_empty_with_token = false;
    bool saw_short_with_token = false;

    store_options_default(&opts);
    opts.limits.scan_budget = 3;
    reopen_with(h, &opts);
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof(name), "/s/p%02d", i);
        put_type(h, name, i % 5 == 0 ? "StringList" : "String", "v");
    }
    /* Only 6 of 30 match: most pages examine 3 non-matching keys. */
    do {
        json_t *r = page(h, "GetParametersByPath",
                         "\"Path\":\"/s\",\"MaxResults\":10,"
                         "\"ParameterFilters\":[{\"Key\":\"Type\","
                         "\"Values\":[\"StringList\"]}]",
                         token);
        size_t n = json_array_size(params_of(r));
        for (size_t i = 0; i < n; i++) {
            strv_push(&got, item_str(r, i, "Name"));
        }
        free(token);
        token = token_of(r);
        saw_empty_with_token |= n == 0 && token != NULL;
        saw_short_with_token |= n > 0 && n < 10 && token != NULL;
        json_decref(r);
    } while (token != NULL);
    assert_true(saw_empty_with_token);
    assert_true(saw_short_with_token);
    {
        const char *const want[] = {"/s/p00", "/s/p05", "/s/p10",
                                    "/s/p15", "/s/p20", "/s/p25"};
        assert_same_set(&got, want, N_OF(want));
    }
    strv_free(&got);
    /* Unfiltered, all thirty. */
    list_all(h, "GetParametersByPath", "\"Path\":\"/s\",\"MaxResults\":10", 10,
             &got);
    assert_int_equal(got.n, 30);
    strv_sort(&got);
    assert_no_duplicates(&got);
    strv_free(&got);
}

/* State of one parameter during the paging-under-changes runs. */
struct tracked
{
    char name[32];
    bool exists;         /* exists now */
    bool original;       /* existed when the listing began */
    bool throughout;     /* original and never deleted during the listing */
    bool deleted_unseen; /* deleted while still ahead of the listing */
    unsigned returned;
};

/* Page through @p method (members @p members, pages of @p max, under /m)
 * while, between pages, deleting parameters already returned (including
 * the one the token points at) and not yet reached, and adding new ones
 * behind and ahead of the position. */
static void paging_under_changes(struct h *h,
                                 const char *method,
                                 const char *members)
{
    struct tracked t[400];
    size_t nt = 0;
    char *token = NULL;
    char last[32] = "";
    unsigned pages = 0;
    unsigned next_new = 0;

    for (int i = 0; i < 120; i++) {
        struct tracked *x = &t[nt++];
        memset(x, 0, sizeof(*x));
        snprintf(x->name, sizeof(x->name), "/m/p%04d", i * 10);
        x->exists = x->original = x->throughout = true;
        put_new(h, x->name, "v");
    }
    do {
        json_t *r = page(h, method, members, token);
        json_t *a = params_of(r);
        size_t n = json_array_size(a);

        assert_true(n <= 7);
        for (size_t i = 0; i < n; i++) {
            const char *name = js(json_array_get(a, i), "Name");
            bool known = false;
            for (size_t k = 0; k < nt; k++) {
                if (strcmp(t[k].name, name) == 0) {
                    t[k].returned++;
                    known = true;
                    if (t[k].returned > 1) {
                        fail_msg("%s returned twice", name);
                    }
                }
            }
            if (!known) {
                fail_msg("%s returned but never created", name);
            }
            snprintf(last, sizeof(last), "%s", name);
        }
        free(token);
        token = token_of(r);
        json_decref(r);
        pages++;
        if (token == NULL) {
            break;
        }

        /* 1. Delete the last returned one (the token's position) on odd
         * pages, another already returned one on even pages. */
        for (size_t k = 0; k < nt; k++) {
            bool pick = pages % 2 == 1 ? strcmp(t[k].name, last) == 0
                                       : t[k].returned > 0;
            if (t[k].exists && pick) {
                del(h, t[k].name);
                t[k].exists = false;
                t[k].throughout = false;
                break;
            }
        }
        /* 2. Delete two not yet reached: the next one and one far ahead. */
        for (int pass = 0; pass < 2; pass++) {
            size_t victim = nt;
            for (size_t k = 0; k < nt; k++) {
                if (!t[k].exists || strcmp(t[k].name, last) <= 0) {
                    continue;
                }
                if (victim == nt ||
                    (pass == 0 ? strcmp(t[k].name, t[victim].name) < 0
                               : strcmp(t[k].name, t[victim].name) > 0)) {
                    victim = k;
                }
            }
            if (victim < nt) {
                del(h, t[victim].name);
                t[victim].exists = false;
                t[victim].throughout = false;
                t[victim].deleted_unseen = true;
            }
        }
        /* 3. Add one behind the position and one ahead of it. */
        for (int pass = 0; pass < 2 && nt + 2 < N_OF(t); pass++) {
            struct tracked *x = &t[nt];
            int base = atoi(last + 4);
            int num = pass == 0 ? base - 5 : base + 25 + (int)(next_new++ % 3);
            if (num < 0 || num % 10 == 0) {
                continue;
            }
            memset(x, 0, sizeof(*x));
            snprintf(x->name, sizeof(x->name), "/m/p%04d", num);
            bool dup = false;
            for (size_t k = 0; k < nt; k++) {
                dup = dup || strcmp(t[k].name, x->name) == 0;
            }
            if (dup) {
                continue;
            }
            x->exists = true;
            put_new(h, x->name, "new");
            nt++;
        }
    } while (pages < 1000);
    assert_null(token);
    assert_true(pages > 10);

    for (size_t k = 0; k < nt; k++) {
        if (t[k].throughout && t[k].returned != 1) {
            fail_msg("%s existed throughout, returned %u times", t[k].name,
                     t[k].returned);
        }
        if (t[k].deleted_unseen && t[k].returned != 0) {
            fail_msg("%s deleted before being reached, yet returned",
                     t[k].name);
        }
        assert_true(t[k].returned <= 1);
    }
    /* Clean up for another run. */
    for (size_t k = 0; k < nt; k++) {
        if (t[k].exists) {
            del(h, t[k].name);
        }
    }
}

/* Paging neither skips nor repeats while parameters are added and removed
 * between pages, for GetParametersByPath (one level and recursive) and
 * DescribeParameters (with and without a Path filter). */
static void paging_with_changes(void **state)
{
    struct h *h = *state;

    h_put(h, "/l/before", "outside the listing");
    h_put(h, "/n/after", "outside the listing");
    paging_under_changes(h, "GetParametersByPath",
                         "\"Path\":\"/m\",\"MaxResults\":7");
    paging_under_changes(h, "GetParametersByPath",
                         "\"Path\":\"/m\",\"Recursive\":true,"
                         "\"MaxResults\":7");
    paging_under_changes(h, "DescribeParameters",
                         "\"MaxResults\":7,\"ParameterFilters\":[{\"Key\":"
                         "\"Path\",\"Values\":[\"/m\"]}]");
    del(h, "/l/before");
    del(h, "/n/after");
    paging_under_changes(h, "DescribeParameters", "\"MaxResults\":7");
}

/* The long-name fixture: names up to 1011 characters whose first 380 bytes
 * (KEYS_INLINE) are shared, so they are keyed by prefix and hash. */
struct long_names
{
    char *base;   /* "/long/" + 400 'a': 406 characters, a parameter too */
    char *n[4];   /* base + "/n<k>/" + 'x' padding: 1011 characters */
    char *leaf;   /* base + "/leaf" */
    char *wide;   /* base + "/" + 'y' padding: 1011 characters, direct */
    char *n1;     /* base + "/n1": a leaf beside the subtree n1/ */
    char *deep;   /* base + "/n1/d/" + 'z' padding: 1011 characters */
    char *twin;   /* "/long/" + 401 'a' + "/z": same 380 bytes, not under */
    char *near;   /* "/long/" + 399 'a': a direct child of /long */
    char *shortn; /* "/long/b" */
};

static char *pad(const char *prefix, char c, size_t len)
{
    size_t pn = strlen(prefix);
    char *s = malloc(len + 1);
    assert_non_null(s);
    assert_true(pn <= len);
    memcpy(s, prefix, pn);
    memset(s + pn, c, len - pn);
    s[len] = '\0';
    return s;
}

static void long_names_make(struct long_names *l)
{
    char *tmp;

    l->base = pad("/long/", 'a', 406);
    for (int k = 0; k < 4; k++) {
        char sub[16];
        snprintf(sub, sizeof(sub), "/n%d/", k + 1);
        tmp = cat(l->base, sub);
        l->n[k] = pad(tmp, 'x', 1011);
        free(tmp);
    }
    l->leaf = cat(l->base, "/leaf");
    tmp = cat(l->base, "/");
    l->wide = pad(tmp, 'y', 1011);
    free(tmp);
    l->n1 = cat(l->base, "/n1");
    tmp = cat(l->base, "/n1/d/");
    l->deep = pad(tmp, 'z', 1011);
    free(tmp);
    tmp = pad("/long/", 'a', 407);
    l->twin = cat(tmp, "/z");
    free(tmp);
    l->near = pad("/long/", 'a', 405);
    l->shortn = strdup("/long/b");
}

static void long_names_free(struct long_names *l)
{
    free(l->base);
    for (int k = 0; k < 4; k++) {
        free(l->n[k]);
    }
    free(l->leaf);
    free(l->wide);
    free(l->n1);
    free(l->deep);
    free(l->twin);
    free(l->near);
    free(l->shortn);
}

/* The members of a by-path request for @p path. Free. */
static char *path_members(const char *path, bool recursive, unsigned max)
{
    char *s = NULL;
    if (asprintf(&s, "\"Path\":\"%s\",\"Recursive\":%s,\"MaxResults\":%u", path,
                 recursive ? "true" : "false", max) < 0) {
        fail_msg("asprintf");
    }
    return s;
}

static void expect_path(struct h *h,
                        const char *path,
                        bool recursive,
                        unsigned max,
                        const char *const *want,
                        size_t n)
{
    char *m = path_members(path, recursive, max);
    expect_listing(h, "GetParametersByPath", m, max, want, n);
    free(m);
}

/* 1011-character names under a path longer than LMDB's key limit work in
 * GetParameter, by-path queries one level and recursive from a short and
 * from a long path (with one-result pages), history, labels, Describe and
 * delete, and each query returns exactly the right set. */
static void bypath_long_names(void **state)
{
    struct h *h = *state;
    struct long_names l;
    char *arn;
    char *sub;
    json_t *r;

    long_names_make(&l);
    assert_int_equal(strlen(l.n[0]), 1011);
    assert_int_equal(strlen(l.wide), 1011);
    assert_int_equal(strlen(l.deep), 1011);
    assert_true(strlen(l.twin) > 400);
    assert_int_equal(memcmp(l.twin, l.base, 400), 0);

    const char *all[] = {l.base, l.n[0], l.n[1], l.n[2], l.n[3], l.leaf,
                         l.wide, l.n1,   l.deep, l.twin, l.near, l.shortn};
    for (size_t i = 0; i < N_OF(all); i++) {
        h_put(h, all[i], "v1");
    }
    h_put(h, "/longer/x", "outside");
    h_put(h, l.n[0], "v2");

    /* GetParameter, by name and by ARN (longer than 1011 characters). */
    for (size_t i = 0; i < N_OF(all); i++) {
        expect_get(h, all[i], all[i], all[i] == l.n[0] ? 2 : 1,
                   all[i] == l.n[0] ? "v2" : "v1", NULL);
    }
    arn = cat(ARN_PREFIX, l.n[1]);
    expect_get(h, arn, l.n[1], 1, "v1", NULL);
    r = h_q(h, "GetParameter", "{\"Name\":\"%s\"}", l.wide);
    sub = cat(ARN_PREFIX, l.wide);
    assert_string_equal(js(param_of(r), "ARN"), sub);
    free(sub);
    json_decref(r);

    /* From the short path /long. */
    {
        const char *want[] = {l.base, l.n[0], l.n[1], l.n[2], l.n[3], l.leaf,
                              l.wide, l.n1,   l.deep, l.twin, l.near, l.shortn};
        expect_path(h, "/long", true, 10, want, N_OF(want));
        expect_path(h, "/long", true, 1, want, N_OF(want));
    }
    {
        const char *want[] = {l.base, l.near, l.shortn};
        expect_path(h, "/long", false, 10, want, N_OF(want));
        expect_path(h, "/long", false, 1, want, N_OF(want));
    }
    /* From the long path base (406 characters). */
    {
        const char *want[] = {l.n[0], l.n[1], l.n[2], l.n[3],
                              l.leaf, l.wide, l.n1,   l.deep};
        expect_path(h, l.base, true, 10, want, N_OF(want));
        expect_path(h, l.base, true, 1, want, N_OF(want));
        sub = cat(l.base, "/");
        expect_path(h, sub, true, 3, want, N_OF(want));
        free(sub);
    }
    {
        const char *want[] = {l.leaf, l.wide, l.n1};
        expect_path(h, l.base, false, 10, want, N_OF(want));
        expect_path(h, l.base, false, 1, want, N_OF(want));
    }
    sub = cat(l.base, "/n1");
    {
        const char *want[] = {l.n[0], l.deep};
        expect_path(h, sub, true, 1, want, N_OF(want));
    }
    {
        const char *want[] = {l.n[0]};
        expect_path(h, sub, false, 10, want, N_OF(want));
    }
    free(sub);
    /* A path that is a long name's text prefix but not a level of it. */
    sub = pad("/long/", 'a', 405);
    expect_empty(h, "GetParametersByPath", "\"Path\":\"/long/a\"");
    {
        char *m = path_members(sub, true, 10);
        expect_empty(h, "GetParametersByPath", m);
        free(m);
    }
    free(sub);
    /* The full 1011-character name as a path: nothing under it. */
    {
        char *m = path_members(l.n[0], true, 10);
        expect_empty(h, "GetParametersByPath", m);
        free(m);
    }

    /* History, labels, selectors. */
    r = h_q(h, "GetParameterHistory", "{\"Name\":\"%s\"}", l.n[0]);
    assert_int_equal(json_array_size(params_of(r)), 2);
    assert_string_equal(item_str(r, 0, "Name"), l.n[0]);
    assert_string_equal(item_str(r, 0, "Value"), "v1");
    assert_string_equal(item_str(r, 1, "Value"), "v2");
    json_decref(r);
    label(h, l.n[0], 1, "old");
    sub = cat(l.n[0], ":old");
    expect_get(h, sub, l.n[0], 1, "v1", ":old");
    free(sub);
    sub = cat(l.n[0], ":2");
    expect_get(h, sub, l.n[0], 2, "v2", ":2");
    free(sub);
    r = h_q(h, "GetParametersByPath",
            "{\"Path\":\"%s\",\"Recursive\":true,\"ParameterFilters\":"
            "[{\"Key\":\"Label\",\"Values\":[\"old\"]}]}",
            l.base);
    assert_int_equal(json_array_size(params_of(r)), 1);
    assert_string_equal(item_str(r, 0, "Name"), l.n[0]);
    assert_int_equal(item_int(r, 0, "Version"), 1);
    json_decref(r);

    /* DescribeParameters over the same names. */
    {
        const char *want[] = {l.leaf, l.wide, l.n1};
        char *m = NULL;
        assert_true(asprintf(&m,
                             "\"ParameterFilters\":[{\"Key\":\"Path\","
                             "\"Values\":[\"%s\"]}]",
                             l.base) > 0);
        expect_listing(h, "DescribeParameters", m, 50, want, N_OF(want));
        free(m);
    }
    r = h_q(h, "DescribeParameters",
            "{\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":[\"%s\"]}]}",
            l.deep);
    assert_int_equal(json_array_size(params_of(r)), 1);
    assert_string_equal(item_str(r, 0, "Name"), l.deep);
    json_decref(r);

    /* Delete all; a missing 1011-character name is quoted whole. */
    for (size_t i = 0; i < N_OF(all); i++) {
        del(h, all[i]);
    }
    expect_empty(h, "GetParametersByPath",
                 "\"Path\":\"/long\",\"Recursive\":true");
    {
        char *msg = NULL;
        assert_true(asprintf(&msg, "Parameter %s not found.", l.wide) > 0);
        QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound", msg, "GetParameter",
                  "{\"Name\":\"%s\"}", l.wide);
        free(msg);
    }
    EXPECT_BY_PATH(h, "\"Path\":\"/\",\"Recursive\":true", "/longer/x");
    free(arn);
    long_names_free(&l);
}

/* A 15-level name (also at 1011 characters) is readable and listed from
 * every level above it; a 16-level path is
 * HierarchyLevelLimitExceededException. */
static void bypath_fifteen_levels(void **state)
{
    struct h *h = *state;
    char *d15 = deep_name(15, 0);
    char *d15long = deep_name(15, 1011);
    char *d16 = deep_name(16, 0);
    char path[256];
    size_t n = 0;

    assert_int_equal(strlen(d15long), 1011);
    h_put(h, d15, "fifteen");
    h_put(h, d15long, "long");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "HierarchyLevelLimitExceededException",
           "PutParameter",
           "{\"Name\":\"%s\",\"Value\":\"v\",\"Type\":\"String\"}", d16);
    expect_get(h, d15, d15, 1, "fifteen", NULL);
    expect_get(h, d15long, d15long, 1, "long", NULL);

    for (unsigned lv = 1; lv <= 14; lv++) {
        char *rec = NULL;
        n += (size_t)snprintf(path + n, sizeof(path) - n, "/L%u", lv);
        assert_true(asprintf(&rec, "\"Path\":\"%s\",\"Recursive\":true", path) >
                    0);
        {
            const char *want[] = {d15, d15long};
            expect_listing(h, "GetParametersByPath", rec, 10, want, 2);
        }
        free(rec);
        if (lv < 14) {
            char *m = NULL;
            assert_true(asprintf(&m, "\"Path\":\"%s\"", path) > 0);
            expect_empty(h, "GetParametersByPath", m);
            free(m);
        }
    }
    {
        char *m = NULL;
        const char *want[] = {d15, d15long};
        assert_true(asprintf(&m, "\"Path\":\"%s\"", path) > 0);
        expect_listing(h, "GetParametersByPath", m, 10, want, 2);
        free(m);
    }
    /* A 15-level path is valid (nothing can be under it). */
    {
        char *m = NULL;
        assert_true(asprintf(&m, "\"Path\":\"%s\",\"Recursive\":true", d15) >
                    0);
        expect_empty(h, "GetParametersByPath", m);
        free(m);
    }
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "HierarchyLevelLimitExceededException",
              MSG_HIERARCHY, "GetParametersByPath", "{\"Path\":\"%s\"}", d16);
    free(d15);
    free(d15long);
    free(d16);
}

/* Type and KeyId filters narrow a by-path listing; a Label filter returns
 * the labelled version of each parameter that has the label. */
static void bypath_filters(void **state)
{
    struct h *h = *state;
    json_t *r;

    h_put(h, "/f/s1", "s1-v1");
    h_put(h, "/f/s1", "s1-v2");
    h_put(h, "/f/s1", "s1-v3");
    put_type(h, "/f/s2", "StringList", "a,b");
    put_secure(h, "/f/sec1", "blob1", NULL);
    put_secure(h, "/f/sec2", "blob2", "alias/custom");
    h_put(h, "/f/sub/s3", "s3");
    put_type(h, "/g/other", "StringList", "x");
    label(h, "/f/s1", 2, "stable");
    label(h, "/f/sub/s3", 1, "stable");
    label(h, "/f/s2", 1, "canary");

    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
                   "\"Values\":[\"String\"]}]",
                   "/f/s1");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"Recursive\":true,\"ParameterFilters\":"
                   "[{\"Key\":\"Type\",\"Option\":\"Equals\",\"Values\":"
                   "[\"String\"]}]",
                   "/f/s1", "/f/sub/s3");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
                   "\"Values\":[\"String\",\"StringList\"]}]",
                   "/f/s1", "/f/s2");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
                   "\"Option\":\"BeginsWith\",\"Values\":[\"Str\"]}]",
                   "/f/s1", "/f/s2");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
                   "\"Values\":[\"SecureString\"]}]",
                   "/f/sec1", "/f/sec2");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":"
                   "\"KeyId\",\"Values\":[\"alias/custom\"]}]",
                   "/f/sec2");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":"
                   "\"KeyId\",\"Values\":[\"alias/aws/ssm\"]}]",
                   "/f/sec1");
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":"
                   "\"KeyId\",\"Option\":\"BeginsWith\",\"Values\":"
                   "[\"alias/\"]}]",
                   "/f/sec1", "/f/sec2");
    /* Two filters are ANDed. */
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"Recursive\":true,\"ParameterFilters\":"
                   "[{\"Key\":\"Type\",\"Values\":[\"String\"]},{\"Key\":"
                   "\"Label\",\"Values\":[\"stable\"]}]",
                   "/f/s1", "/f/sub/s3");
    expect_empty(h, "GetParametersByPath",
                 "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
                 "\"Values\":[\"String\"]},{\"Key\":\"KeyId\",\"Values\":"
                 "[\"alias/custom\"]}]");

    /* Label: the labelled version, not the newest. */
    r = h_q(h, "GetParametersByPath",
            "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Label\","
            "\"Option\":\"Equals\",\"Values\":[\"stable\"]}]}");
    assert_int_equal(json_array_size(params_of(r)), 1);
    assert_string_equal(item_str(r, 0, "Name"), "/f/s1");
    assert_int_equal(item_int(r, 0, "Version"), 2);
    assert_string_equal(item_str(r, 0, "Value"), "s1-v2");
    json_decref(r);
    /* The values of one filter are ORed. */
    EXPECT_BY_PATH(h,
                   "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Label\","
                   "\"Values\":[\"stable\",\"canary\"]}]",
                   "/f/s1", "/f/s2");
    expect_empty(h, "GetParametersByPath",
                 "\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Label\","
                 "\"Values\":[\"nobody\"]}]");

    /* SecureString values in a listing are the stored blobs. */
    r = h_q(h, "GetParametersByPath",
            "{\"Path\":\"/f\",\"WithDecryption\":true,\"ParameterFilters\":"
            "[{\"Key\":\"KeyId\",\"Values\":[\"alias/custom\"]}]}");
    {
        char *b64 = mpjson_base64("blob2", 5);
        assert_string_equal(item_str(r, 0, "Value"), b64);
        assert_string_equal(item_str(r, 0, "Type"), "SecureString");
        free(b64);
    }
    json_decref(r);
}

/* By-path filter errors carry AWS's types and texts (section 2.9). */
static void bypath_filter_errors(void **state)
{
    struct h *h = *state;

    h_put(h, "/f/a", "v");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter key is not valid: Name. Valid filter "
              "keys include: [Type, KeyId].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Name\","
              "\"Values\":[\"/f/a\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter key is not valid: Path. Valid filter "
              "keys include: [Type, KeyId].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Path\","
              "\"Values\":[\"/f\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter key is not valid: Tier. Valid filter "
              "keys include: [Type, KeyId].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Tier\","
              "\"Values\":[\"Standard\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter key is not valid: tag:env. Valid filter "
              "keys include: [Type, KeyId].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"tag:env\","
              "\"Values\":[\"x\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter is duplicated in the request: Type. A "
              "request can contain only one occurrence of a specific filter.",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
              "\"Values\":[\"String\"]},{\"Key\":\"Type\",\"Values\":"
              "[\"StringList\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter option is not valid: Contains. Valid "
              "options include: [BeginsWith, Equals].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
              "\"Option\":\"Contains\",\"Values\":[\"String\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter option is not valid: BeginsWith. Valid "
              "options include: [Equals].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Label\","
              "\"Option\":\"BeginsWith\",\"Values\":[\"x\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterValue",
              "The following filter values are missing : null for filter key "
              "Type.",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\"}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterValue",
              "The following filter values are missing : null for filter key "
              "Label.",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Label\","
              "\"Values\":[]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter value is not valid: Bogus. Valid values "
              "include: [String, StringList, SecureString].",
              "GetParametersByPath",
              "{\"Path\":\"/f\",\"ParameterFilters\":[{\"Key\":\"Type\","
              "\"Values\":[\"String\",\"Bogus\"]}]}");
    /* The legacy Filters member is not part of GetParametersByPath. */
    json_decref(h_q(h, "GetParametersByPath",
                    "{\"Path\":\"/f\",\"Filters\":[{\"Key\":\"Name\","
                    "\"Values\":[\"x\"]}]}"));
}

/* MaxResults outside 1..10 and a malformed or missing Path are
 * ValidationExceptions with AWS's texts. */
static void bypath_validation(void **state)
{
    struct h *h = *state;

    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value '0' at 'maxResults' failed "
              "to satisfy constraint: Member must have value greater than or "
              "equal to 1",
              "GetParametersByPath", "{\"Path\":\"/a\",\"MaxResults\":0}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value '11' at 'maxResults' failed "
              "to satisfy constraint: Member must have value less than or "
              "equal to 10",
              "GetParametersByPath", "{\"Path\":\"/a\",\"MaxResults\":11}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "GetParametersByPath", "{\"Path\":\"/a\",\"MaxResults\":-1}");
    json_decref(
        h_q(h, "GetParametersByPath", "{\"Path\":\"/a\",\"MaxResults\":1}"));
    json_decref(
        h_q(h, "GetParametersByPath", "{\"Path\":\"/a\",\"MaxResults\":10}"));

    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value null at 'path' failed to "
              "satisfy constraint: Member must not be null",
              "GetParametersByPath", "{\"Recursive\":true}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "GetParametersByPath", "{\"Path\":\"a/b\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "GetParametersByPath", "{\"Path\":\"a\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "GetParametersByPath", "{\"Path\":\"/a//b\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "GetParametersByPath", "{\"Path\":\"/a b\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "GetParametersByPath", "{\"Path\":\"/a$\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "GetParametersByPath", "{\"Path\":\"\"}");
    {
        char *p = pad("/", 'p', 1012);
        QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
                  "GetParametersByPath", "{\"Path\":\"%s\"}", p);
        free(p);
    }
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "SerializationException",
            "GetParametersByPath", "{\"Path\":\"/a\",\"Recursive\":\"yes\"}");
}

/******************************************************************************
 *
 * NextToken
 *
 *****************************************************************************/

/* Put /t/p00../t/p<n-1>. */
static void put_series(struct h *h, const char *prefix, int n)
{
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s%02d", prefix, i);
        put_new(h, name, "v");
    }
}

/* The NextToken of the first page of @p method {members}. Free. */
static char *first_token(struct h *h, const char *method, const char *members)
{
    json_t *r = page(h, method, members, NULL);
    char *t = token_of(r);
    assert_non_null(t);
    json_decref(r);
    return t;
}

#define BAD_TOKEN(h, method, members, tok)                                  \
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidNextToken", MSG_BAD_TOKEN, \
              method, "{%s,\"NextToken\":\"%s\"}", members, tok)

/* A made-up token, whether random base64url text, text outside the
 * alphabet, or a well-formed token sealed under another key, is
 * InvalidNextToken. */
static void token_forged(void **state)
{
    struct h *h = *state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *m = "\"Path\":\"/t\",\"MaxResults\":2";
    unsigned seed = 12345;
    char tok[128];

    put_series(h, "/t/p", 10);
    for (int round = 0; round < 20; round++) {
        size_t len = 8 + (size_t)round * 5;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            tok[i] = alphabet[(seed >> 16) % 64];
        }
        tok[len] = '\0';
        BAD_TOKEN(h, "GetParametersByPath", m, tok);
        BAD_TOKEN(h, "DescribeParameters", "\"MaxResults\":2", tok);
        BAD_TOKEN(h, "GetParameterHistory", "\"Name\":\"/t/p00\"", tok);
    }
    BAD_TOKEN(h, "GetParametersByPath", m, "not a token!");
    BAD_TOKEN(h, "GetParametersByPath", m, "AAAA====");
    BAD_TOKEN(h, "GetParametersByPath", m, "x");
    {
        /* Well formed, right kind, sealed under a key the store never
         * had. */
        uint8_t key[TOKEN_KEY_LEN];
        struct buf b;
        memset(key, 0x5a, sizeof(key));
        buf_init(&b);
        assert_int_equal(token_encode(key, 1, 0, "/t/p03", 6, &b), 0);
        assert_int_equal(buf_terminate(&b), 0);
        BAD_TOKEN(h, "GetParametersByPath", m, (char *)b.data);
        buf_close(&b);
    }
}

/* Changing any one character of a real token, or dropping or adding one,
 * makes it InvalidNextToken. */
static void token_corrupted(void **state)
{
    struct h *h = *state;
    const char *m = "\"Path\":\"/t\",\"Recursive\":true,\"MaxResults\":3";
    char *tok;
    size_t len;

    put_series(h, "/t/p", 10);
    tok = first_token(h, "GetParametersByPath", m);
    len = strlen(tok);
    for (size_t i = 0; i < len; i++) {
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        BAD_TOKEN(h, "GetParametersByPath", m, tok);
        tok[i] = saved == '_' ? '-' : '_';
        BAD_TOKEN(h, "GetParametersByPath", m, tok);
        tok[i] = saved;
    }
    {
        char *longer = cat(tok, "A");
        BAD_TOKEN(h, "GetParametersByPath", m, longer);
        free(longer);
    }
    tok[len - 1] = '\0';
    BAD_TOKEN(h, "GetParametersByPath", m, tok);
    free(tok);

    /* The same for a history token. */
    for (int i = 0; i < 5; i++) {
        h_put(h, "/t/p00", "again");
    }
    tok = first_token(h, "GetParameterHistory",
                      "\"Name\":\"/t/p00\",\"MaxResults\":2");
    len = strlen(tok);
    for (size_t i = 0; i < len; i++) {
        char saved = tok[i];
        tok[i] = saved == 'z' ? 'y' : 'z';
        BAD_TOKEN(h, "GetParameterHistory",
                  "\"Name\":\"/t/p00\",\"MaxResults\":2", tok);
        tok[i] = saved;
    }
    free(tok);
}

/* A token is bound to its query: another path, another Recursive, other
 * filters, another listing kind, or another parameter's history is
 * InvalidNextToken. */
static void token_other_query(void **state)
{
    struct h *h = *state;
    const char *m = "\"Path\":\"/t\",\"MaxResults\":2";
    char *bp, *ds, *hs;

    put_series(h, "/t/p", 10);
    put_series(h, "/u/p", 10);
    for (int i = 0; i < 4; i++) {
        h_put(h, "/t/p00", "v");
        h_put(h, "/t/p01", "v");
    }
    bp = first_token(h, "GetParametersByPath", m);
    ds = first_token(h, "DescribeParameters", "\"MaxResults\":2");
    hs = first_token(h, "GetParameterHistory",
                     "\"Name\":\"/t/p00\",\"MaxResults\":2");

    /* The genuine ones are accepted where they came from. */
    json_decref(page(h, "GetParametersByPath", m, bp));
    json_decref(page(h, "DescribeParameters", "\"MaxResults\":2", ds));
    json_decref(page(h, "GetParameterHistory",
                     "\"Name\":\"/t/p00\",\"MaxResults\":2", hs));

    BAD_TOKEN(h, "GetParametersByPath", "\"Path\":\"/u\",\"MaxResults\":2", bp);
    BAD_TOKEN(h, "GetParametersByPath", "\"Path\":\"/\",\"MaxResults\":2", bp);
    BAD_TOKEN(h, "GetParametersByPath",
              "\"Path\":\"/t\",\"Recursive\":true,\"MaxResults\":2", bp);
    BAD_TOKEN(h, "GetParametersByPath",
              "\"Path\":\"/t\",\"MaxResults\":2,\"ParameterFilters\":[{"
              "\"Key\":\"Type\",\"Values\":[\"String\"]}]",
              bp);
    BAD_TOKEN(h, "DescribeParameters", "\"MaxResults\":2", bp);
    BAD_TOKEN(h, "GetParameterHistory", "\"Name\":\"/t/p00\"", bp);

    BAD_TOKEN(h, "GetParametersByPath", m, ds);
    BAD_TOKEN(h, "DescribeParameters",
              "\"MaxResults\":2,\"ParameterFilters\":[{\"Key\":\"Type\","
              "\"Values\":[\"String\"]}]",
              ds);
    BAD_TOKEN(h, "GetParameterHistory", "\"Name\":\"/t/p00\"", ds);

    BAD_TOKEN(h, "GetParametersByPath", m, hs);
    BAD_TOKEN(h, "DescribeParameters", "\"MaxResults\":2", hs);
    BAD_TOKEN(h, "GetParameterHistory", "\"Name\":\"/t/p01\"", hs);
    /* The same name deleted and created again is another history. */
    del(h, "/t/p00");
    for (int i = 0; i < 5; i++) {
        h_put(h, "/t/p00", "v");
    }
    BAD_TOKEN(h, "GetParameterHistory", "\"Name\":\"/t/p00\"", hs);
    free(bp);
    free(ds);
    free(hs);
}

/* A real token resumes right after the last page, MaxResults may change
 * between pages, and after Init a token stays valid across a reopen. */
static void token_resumes(void **state)
{
    struct h *h = *state;
    const char *m = "\"Path\":\"/t\",\"MaxResults\":4";
    json_t *r;
    char *tok;

    init_token_key(h, 0x42);
    put_series(h, "/t/p", 10);
    r = page(h, "GetParametersByPath", m, NULL);
    assert_int_equal(json_array_size(params_of(r)), 4);
    assert_string_equal(item_str(r, 0, "Name"), "/t/p00");
    assert_string_equal(item_str(r, 3, "Name"), "/t/p03");
    tok = token_of(r);
    json_decref(r);

    r = page(h, "GetParametersByPath", m, tok);
    assert_int_equal(json_array_size(params_of(r)), 4);
    assert_string_equal(item_str(r, 0, "Name"), "/t/p04");
    json_decref(r);
    /* The same token again gives the same page: tokens are stateless. */
    r = page(h, "GetParametersByPath", "\"Path\":\"/t\",\"MaxResults\":10",
             tok);
    assert_int_equal(json_array_size(params_of(r)), 6);
    assert_string_equal(item_str(r, 0, "Name"), "/t/p04");
    assert_string_equal(item_str(r, 5, "Name"), "/t/p09");
    assert_null(json_object_get(r, "NextToken"));
    json_decref(r);

    h_reopen(h);
    r = page(h, "GetParametersByPath", m, tok);
    assert_int_equal(json_array_size(params_of(r)), 4);
    assert_string_equal(item_str(r, 0, "Name"), "/t/p04");
    json_decref(r);
    free(tok);

    /* The last page has no NextToken when the results end exactly at
     * MaxResults. */
    r = page(h, "GetParametersByPath", "\"Path\":\"/t\",\"MaxResults\":5",
             NULL);
    tok = token_of(r);
    json_decref(r);
    r = page(h, "GetParametersByPath", "\"Path\":\"/t\",\"MaxResults\":5", tok);
    assert_int_equal(json_array_size(params_of(r)), 5);
    assert_null(json_object_get(r, "NextToken"));
    json_decref(r);
    free(tok);
}

/******************************************************************************
 *
 * GetParameterHistory
 *
 *****************************************************************************/

/* History lists every version oldest to newest with the version's own
 * metadata, and pages with MaxResults and NextToken. */
static void history_paging(void **state)
{
    struct h *h = *state;
    json_t *r;
    char *tok;
    long long expect = 1;
    unsigned pages = 0;

    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/h\",\"Value\":\"v1\",\"Type\":\"String\","
                     "\"Description\":\"first\"}"));
    for (int i = 2; i <= 5; i++) {
        char v[24];
        snprintf(v, sizeof(v), "v%d", i);
        h_put(h, "/h", v);
    }
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/h\",\"Value\":\"v6\",\"Overwrite\":true,"
                     "\"Description\":\"sixth\",\"AllowedPattern\":"
                     "\"^v[0-9]$\"}"));

    tok = NULL;
    do {
        r = page(h, "GetParameterHistory", "\"Name\":\"/h\",\"MaxResults\":2",
                 tok);
        free(tok);
        assert_int_equal(json_array_size(params_of(r)), 2);
        for (size_t i = 0; i < 2; i++) {
            char v[24];
            json_t *p = json_array_get(params_of(r), i);
            snprintf(v, sizeof(v), "v%lld", expect);
            assert_int_equal(ji(p, "Version"), expect);
            assert_string_equal(js(p, "Value"), v);
            assert_string_equal(js(p, "Name"), "/h");
            assert_string_equal(js(p, "Type"), "String");
            assert_string_equal(js(p, "LastModifiedUser"), CALLER);
            assert_string_equal(js(p, "Tier"), "Standard");
            assert_string_equal(js(p, "DataType"), "text");
            assert_true(json_is_array(json_object_get(p, "Labels")));
            assert_true(json_is_array(json_object_get(p, "Policies")));
            assert_null(json_object_get(p, "KeyId"));
            assert_non_null(json_object_get(p, "LastModifiedDate"));
            /* Description and AllowedPattern are those of the version. */
            assert_string_equal(js(p, "Description"),
                                expect == 6 ? "sixth" : "first");
            if (expect == 6) {
                assert_string_equal(js(p, "AllowedPattern"), "^v[0-9]$");
            } else {
                assert_null(json_object_get(p, "AllowedPattern"));
            }
            expect++;
        }
        tok = token_of(r);
        json_decref(r);
        pages++;
    } while (tok != NULL);
    assert_int_equal(expect, 7);
    assert_int_equal(pages, 3);

    /* The default page holds all six, with no token. */
    r = h_q(h, "GetParameterHistory", "{\"Name\":\"/h\"}");
    assert_int_equal(json_array_size(params_of(r)), 6);
    assert_int_equal(item_int(r, 0, "Version"), 1);
    assert_int_equal(item_int(r, 5, "Version"), 6);
    assert_null(json_object_get(r, "NextToken"));
    json_decref(r);
    /* The ARN and the other root form work too. */
    r = h_q(h, "GetParameterHistory", "{\"Name\":\"" ARN_PREFIX "/h\"}");
    assert_int_equal(json_array_size(params_of(r)), 6);
    json_decref(r);
}

/* History shows the labels of each version (moved labels move) and the
 * policies as [{PolicyText, PolicyType, PolicyStatus}]. */
static void history_labels_policies(void **state)
{
    struct h *h = *state;
    json_t *r, *pol, *labels;

    h_put(h, "/hp", "v1");
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/hp\",\"Value\":\"v2\",\"Overwrite\":true,"
                     "\"Tier\":\"Advanced\",\"Policies\":\"" POLICY_EXPIRATION
                     "\"}"));
    h_put(h, "/hp", "v3");
    label(h, "/hp", 1, "a");
    label(h, "/hp", 1, "b");
    label(h, "/hp", 2, "c");
    label(h, "/hp", 2, "a"); /* moves from 1 to 2 */

    r = h_q(h, "GetParameterHistory", "{\"Name\":\"hp\"}");
    assert_int_equal(json_array_size(params_of(r)), 3);
    labels = json_object_get(json_array_get(params_of(r), 0), "Labels");
    assert_int_equal(json_array_size(labels), 1);
    assert_string_equal(json_string_value(json_array_get(labels, 0)), "b");
    labels = json_object_get(json_array_get(params_of(r), 1), "Labels");
    {
        struct strv got = {0};
        const char *const want[] = {"a", "c"};
        for (size_t i = 0; i < json_array_size(labels); i++) {
            strv_push(&got, json_string_value(json_array_get(labels, i)));
        }
        assert_same_set(&got, want, N_OF(want));
        strv_free(&got);
    }
    labels = json_object_get(json_array_get(params_of(r), 2), "Labels");
    assert_int_equal(json_array_size(labels), 0);

    /* Version 1: Standard, no policies; 2 and 3: Advanced with the
     * policy, which persists across the update that did not send one. */
    assert_string_equal(item_str(r, 0, "Tier"), "Standard");
    assert_int_equal(json_array_size(json_object_get(
                         json_array_get(params_of(r), 0), "Policies")),
                     0);
    for (size_t i = 1; i < 3; i++) {
        json_t *p0;
        json_t *text;
        json_error_t je;
        assert_string_equal(item_str(r, i, "Tier"), "Advanced");
        pol = json_object_get(json_array_get(params_of(r), i), "Policies");
        assert_int_equal(json_array_size(pol), 1);
        p0 = json_array_get(pol, 0);
        assert_int_equal(json_object_size(p0), 3);
        assert_string_equal(js(p0, "PolicyType"), "Expiration");
        assert_string_equal(js(p0, "PolicyStatus"), "Pending");
        /* PolicyText is that policy's JSON. */
        text = json_loads(js(p0, "PolicyText"), 0, &je);
        assert_non_null(text);
        assert_string_equal(js(text, "Type"), "Expiration");
        assert_string_equal(js(text, "Version"), "1.0");
        assert_string_equal(
            js(json_object_get(text, "Attributes"), "Timestamp"),
            "2030-01-01T00:00:00.000Z");
        json_decref(text);
    }
    json_decref(r);
}

/* A SecureString's history holds the stored blobs and the KeyId of each
 * version. */
static void history_secure(void **state)
{
    struct h *h = *state;
    json_t *r;
    char *b1 = mpjson_base64("one", 3);
    char *b2 = mpjson_base64("two", 3);

    put_secure(h, "/hs", "one", NULL);
    put_secure(h, "/hs", "two", "alias/mine");
    r = h_q(h, "GetParameterHistory", "{\"Name\":\"/hs\"}");
    assert_int_equal(json_array_size(params_of(r)), 2);
    assert_string_equal(item_str(r, 0, "Type"), "SecureString");
    assert_string_equal(item_str(r, 0, "KeyId"), "alias/aws/ssm");
    assert_string_equal(item_str(r, 0, "Value"), b1);
    assert_string_equal(item_str(r, 1, "KeyId"), "alias/mine");
    assert_string_equal(item_str(r, 1, "Value"), b2);
    json_decref(r);
    free(b1);
    free(b2);
}

/* An unknown name is ParameterNotFound, a selector is not accepted, and
 * MaxResults outside 1..50 is a ValidationException. */
static void history_errors(void **state)
{
    struct h *h = *state;

    h_put(h, "/h", "v");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /nope not found.", "GetParameterHistory",
              "{\"Name\":\"/nope\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter /h:1 not found.", "GetParameterHistory",
              "{\"Name\":\"/h:1\"}");
    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ParameterNotFound",
              "Parameter arn:aws:ssm:local:999999999999:parameter/h not "
              "found.",
              "GetParameterHistory",
              "{\"Name\":\"arn:aws:ssm:local:999999999999:parameter/h\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value '51' at 'maxResults' failed "
              "to satisfy constraint: Member must have value less than or "
              "equal to 50",
              "GetParameterHistory", "{\"Name\":\"/h\",\"MaxResults\":51}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "GetParameterHistory", "{\"Name\":\"/h\",\"MaxResults\":0}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "GetParameterHistory", "{}");
    del(h, "/h");
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameterHistory",
            "{\"Name\":\"/h\"}");
}

/******************************************************************************
 *
 * DescribeParameters
 *
 *****************************************************************************/

/* Describe returns ParameterMetadata: ARN, Type, KeyId for a SecureString
 * only, Version, Tier, Policies, DataType, Description, and never Value. */
static void describe_metadata(void **state)
{
    struct h *h = *state;
    json_t *r;

    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/d/plain\",\"Value\":\"v\",\"Type\":"
                     "\"String\",\"Description\":\"desc\",\"AllowedPattern\":"
                     "\"^v$\"}"));
    h_put(h, "/d/plain", "v");
    put_secure(h, "/d/secret", "blob", NULL);
    r = h_q(h, "DescribeParameters", "{}");
    assert_int_equal(json_array_size(params_of(r)), 2);
    assert_null(json_object_get(r, "NextToken"));
    for (size_t i = 0; i < 2; i++) {
        json_t *p = json_array_get(params_of(r), i);
        bool secure = strcmp(js(p, "Name"), "/d/secret") == 0;
        char *arn = cat(ARN_PREFIX, js(p, "Name"));
        assert_null(json_object_get(p, "Value"));
        assert_null(json_object_get(p, "Selector"));
        assert_string_equal(js(p, "ARN"), arn);
        assert_string_equal(js(p, "Type"), secure ? "SecureString" : "String");
        assert_string_equal(js(p, "Tier"), "Standard");
        assert_string_equal(js(p, "DataType"), "text");
        assert_string_equal(js(p, "LastModifiedUser"), CALLER);
        assert_true(json_is_array(json_object_get(p, "Policies")));
        assert_int_equal(json_array_size(json_object_get(p, "Policies")), 0);
        if (secure) {
            assert_string_equal(js(p, "KeyId"), "alias/aws/ssm");
            assert_int_equal(ji(p, "Version"), 1);
            assert_null(json_object_get(p, "Description"));
        } else {
            assert_null(json_object_get(p, "KeyId"));
            assert_int_equal(ji(p, "Version"), 2);
            assert_string_equal(js(p, "Description"), "desc");
            assert_string_equal(js(p, "AllowedPattern"), "^v$");
        }
        free(arn);
    }
    json_decref(r);

    /* Shared=true lists parameters shared from other accounts: none. */
    r = h_q(h, "DescribeParameters", "{\"Shared\":true}");
    assert_int_equal(json_array_size(params_of(r)), 0);
    json_decref(r);
}

/* The legacy Filters and ParameterFilters together are a
 * ValidationException; the legacy Filters alone work. */
static void describe_filters_conflict(void **state)
{
    struct h *h = *state;

    h_put(h, "/a", "v");
    put_secure(h, "/s", "blob", NULL);
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              MSG_BOTH_FILTERS, "DescribeParameters",
              "{\"Filters\":[{\"Key\":\"Type\",\"Values\":[\"String\"]}],"
              "\"ParameterFilters\":[{\"Key\":\"Type\",\"Values\":"
              "[\"String\"]}]}");
    EXPECT_DESCRIBE(h,
                    "\"Filters\":[{\"Key\":\"Type\",\"Values\":"
                    "[\"SecureString\"]}]",
                    "/s");
    EXPECT_DESCRIBE(h, "\"Filters\":[{\"Key\":\"Name\",\"Values\":[\"/a\"]}]",
                    "/a");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "DescribeParameters",
            "{\"Filters\":[{\"Key\":\"Path\",\"Values\":[\"/\"]}]}");
}

/* Name filters: Equals (the default; "x" and "/x" are the same root name),
 * BeginsWith and Contains. */
static void describe_name_filters(void **state)
{
    struct h *h = *state;

    h_put(h, "/app/db/url", "v");
    h_put(h, "/app/db/user", "v");
    h_put(h, "/app/web", "v");
    h_put(h, "/apple", "v");
    h_put(h, "dbroot", "v");

    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":"
                    "[\"/app/web\"]}]",
                    "/app/web");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                    "\"Equals\",\"Values\":[\"/app/web\",\"/apple\","
                    "\"/none\"]}]",
                    "/app/web", "/apple");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":"
                    "[\"/dbroot\"]}]",
                    "dbroot");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":"
                    "[\"dbroot\"]}]",
                    "dbroot");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                    "\"BeginsWith\",\"Values\":[\"/app/\"]}]",
                    "/app/db/url", "/app/db/user", "/app/web");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                    "\"BeginsWith\",\"Values\":[\"/app\"]}]",
                    "/app/db/url", "/app/db/user", "/app/web", "/apple");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                    "\"BeginsWith\",\"Values\":[\"db\"]}]",
                    "dbroot");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                    "\"Contains\",\"Values\":[\"db\"]}]",
                    "/app/db/url", "/app/db/user", "dbroot");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                    "\"Contains\",\"Values\":[\"user\",\"web\"]}]",
                    "/app/db/user", "/app/web");
    expect_empty(h, "DescribeParameters",
                 "\"ParameterFilters\":[{\"Key\":\"Name\",\"Option\":"
                 "\"Contains\",\"Values\":[\"zzz\"]}]");
}

/* Type, Tier, DataType and KeyId filters select on the current
 * metadata. */
static void describe_type_tier_datatype(void **state)
{
    struct h *h = *state;

    h_put(h, "/p/str", "v");
    put_type(h, "/p/list", "StringList", "a,b");
    put_secure(h, "/p/sec", "blob", "alias/k1");
    put_secure(h, "/p/sec2", "blob", NULL);
    json_decref(h_ok(
        h, "PutParameter",
        "{\"Name\":\"/p/adv\",\"Value\":\"v\",\"Type\":"
        "\"String\",\"Tier\":\"Advanced\",\"Policies\":\"" POLICY_EXPIRATION
        "\"}"));
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/p/ami\",\"Value\":\"ami-0123456789abcdef0\","
                     "\"Type\":\"String\",\"DataType\":\"aws:ec2:image\"}"));

    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Type\",\"Values\":"
                    "[\"StringList\",\"SecureString\"]}]",
                    "/p/list", "/p/sec", "/p/sec2");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Tier\",\"Values\":"
                    "[\"Advanced\"]}]",
                    "/p/adv");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Tier\",\"Values\":"
                    "[\"Standard\"]}]",
                    "/p/str", "/p/list", "/p/sec", "/p/sec2", "/p/ami");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"DataType\",\"Values\":"
                    "[\"aws:ec2:image\"]}]",
                    "/p/ami");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"DataType\",\"Option\":"
                    "\"BeginsWith\",\"Values\":[\"te\"]}]",
                    "/p/str", "/p/list", "/p/sec", "/p/sec2", "/p/adv");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"KeyId\",\"Values\":"
                    "[\"alias/k1\"]}]",
                    "/p/sec");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"KeyId\",\"Values\":"
                    "[\"alias/aws/ssm\"]}]",
                    "/p/sec2");
    /* Filters are ANDed. */
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Type\",\"Values\":"
                    "[\"String\"]},{\"Key\":\"Tier\",\"Values\":"
                    "[\"Standard\"]},{\"Key\":\"DataType\",\"Values\":"
                    "[\"text\"]}]",
                    "/p/str");

    /* The metadata says what the filters matched. */
    {
        json_t *r = h_q(h, "DescribeParameters",
                        "{\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":"
                        "[\"/p/ami\",\"/p/adv\"]}]}");
        for (size_t i = 0; i < 2; i++) {
            json_t *p = json_array_get(params_of(r), i);
            if (strcmp(js(p, "Name"), "/p/ami") == 0) {
                assert_string_equal(js(p, "DataType"), "aws:ec2:image");
            } else {
                json_t *pol = json_object_get(p, "Policies");
                assert_string_equal(js(p, "Tier"), "Advanced");
                assert_int_equal(json_array_size(pol), 1);
                assert_string_equal(js(json_array_get(pol, 0), "PolicyType"),
                                    "Expiration");
                assert_string_equal(js(json_array_get(pol, 0), "PolicyStatus"),
                                    "Pending");
                assert_non_null(js(json_array_get(pol, 0), "PolicyText"));
            }
        }
        json_decref(r);
    }
}

/* Path filters: OneLevel by default, Recursive on request, several values
 * ORed; the path itself is never listed. */
static void describe_path_filter(void **state)
{
    struct h *h = *state;

    h_put(h, "/a", "v");
    h_put(h, "/a/x", "v");
    h_put(h, "/a/b/y", "v");
    h_put(h, "/c/z", "v");
    h_put(h, "/c/d/w", "v");
    h_put(h, "root", "v");

    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
                    "[\"/a\"]}]",
                    "/a/x");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Path\",\"Option\":"
                    "\"OneLevel\",\"Values\":[\"/a/\"]}]",
                    "/a/x");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Path\",\"Option\":"
                    "\"Recursive\",\"Values\":[\"/a\"]}]",
                    "/a/x", "/a/b/y");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Path\",\"Option\":"
                    "\"Recursive\",\"Values\":[\"/a\",\"/c/d\"]}]",
                    "/a/x", "/a/b/y", "/c/d/w");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
                    "[\"/a\",\"/c\"]}]",
                    "/a/x", "/c/z");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
                    "[\"/\"]}]",
                    "/a", "root");
    /* With paging over a narrowed range. */
    expect_listing(
        h, "DescribeParameters",
        "\"MaxResults\":1,\"ParameterFilters\":[{\"Key\":\"Path\","
        "\"Option\":\"Recursive\",\"Values\":[\"/\"]}]",
        1,
        (const char *const[]){"/a", "/a/x", "/a/b/y", "/c/z", "/c/d/w", "root"},
        6);
}

/* tag:KEY matches parameters carrying the tag, with one of the values, or
 * with any value when Values is omitted. */
static void describe_tag_filter(void **state)
{
    struct h *h = *state;

    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/t/prod\",\"Value\":\"v\",\"Type\":"
                     "\"String\",\"Tags\":[{\"Key\":\"env\",\"Value\":"
                     "\"prod\"},{\"Key\":\"team\",\"Value\":\"core\"}]}"));
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/t/dev\",\"Value\":\"v\",\"Type\":"
                     "\"String\",\"Tags\":[{\"Key\":\"env\",\"Value\":"
                     "\"dev\"}]}"));
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/t/none\",\"Value\":\"v\",\"Type\":"
                     "\"String\"}"));
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":"
                     "\"/t/none\",\"Tags\":[{\"Key\":\"Env\",\"Value\":"
                     "\"prod\"}]}"));

    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"tag:env\",\"Values\":"
                    "[\"prod\"]}]",
                    "/t/prod");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"tag:env\",\"Values\":"
                    "[\"prod\",\"dev\"]}]",
                    "/t/prod", "/t/dev");
    EXPECT_DESCRIBE(h, "\"ParameterFilters\":[{\"Key\":\"tag:env\"}]",
                    "/t/prod", "/t/dev");
    EXPECT_DESCRIBE(h, "\"ParameterFilters\":[{\"Key\":\"tag:Env\"}]",
                    "/t/none");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"tag:env\",\"Option\":"
                    "\"BeginsWith\",\"Values\":[\"pr\"]}]",
                    "/t/prod");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"tag:env\"},{\"Key\":"
                    "\"tag:team\",\"Values\":[\"core\"]}]",
                    "/t/prod");
    expect_empty(h, "DescribeParameters",
                 "\"ParameterFilters\":[{\"Key\":\"tag:owner\"}]");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter is duplicated in the request: tag:env. A "
              "request can contain only one occurrence of a specific filter.",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"tag:env\"},{\"Key\":"
              "\"tag:env\",\"Values\":[\"x\"]}]}");
}

/* Describe filter errors carry AWS's types and texts (section 2.9). */
static void describe_filter_errors(void **state)
{
    struct h *h = *state;

    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter key is not valid: Label. Valid filter "
              "keys include: [Path, Name, Type, KeyId, Tier].",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Label\",\"Values\":"
              "[\"x\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter key is not valid: Colour. Valid filter "
              "keys include: [Path, Name, Type, KeyId, Tier].",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Colour\",\"Values\":"
              "[\"x\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterKey",
              "The following filter is duplicated in the request: Name. A "
              "request can contain only one occurrence of a specific filter.",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":[\"/a\"]},"
              "{\"Key\":\"Name\",\"Values\":[\"/b\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter option is not valid: Contains. Valid "
              "options include: [BeginsWith, Equals].",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Tier\",\"Option\":"
              "\"Contains\",\"Values\":[\"Standard\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter option is not valid: Equals. Valid "
              "options include: [Recursive, OneLevel].",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Path\",\"Option\":"
              "\"Equals\",\"Values\":[\"/a\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter value is not valid: Premium. Valid values "
              "include: [Standard, Advanced, Intelligent-Tiering].",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Tier\",\"Values\":"
              "[\"Premium\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterOption",
              "The following filter value is not valid: string. Valid values "
              "include: [String, StringList, SecureString].",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Type\",\"Values\":"
              "[\"string\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidFilterValue",
              "The following filter values are missing : null for filter key "
              "Name.",
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Name\"}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_COMMON_PATH,
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
              "[\"/aws/service\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_COMMON_PATH,
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
              "[\"/ok\",\"/SSM/x\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
              "[\"no/slash\"]}]}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_PATH,
              "DescribeParameters",
              "{\"ParameterFilters\":[{\"Key\":\"Path\",\"Values\":"
              "[\"/a//b\"]}]}");
}

/* Describe pages by MaxResults (1..50, default 50) and NextToken. */
static void describe_paging(void **state)
{
    struct h *h = *state;
    struct strv got = {0};
    unsigned pages;
    json_t *r;

    put_series(h, "/dp/p", 25);
    pages = list_all(h, "DescribeParameters", "\"MaxResults\":10", 10, &got);
    assert_int_equal(got.n, 25);
    assert_int_equal(pages, 3);
    strv_sort(&got);
    assert_no_duplicates(&got);
    strv_free(&got);

    put_series(h, "/dq/p", 40);
    r = h_q(h, "DescribeParameters", "{}");
    assert_int_equal(json_array_size(params_of(r)), 50);
    assert_non_null(js(r, "NextToken"));
    json_decref(r);
    pages = list_all(h, "DescribeParameters", "\"MaxResults\":50", 50, &got);
    assert_int_equal(got.n, 65);
    assert_int_equal(pages, 2);
    strv_free(&got);

    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value '51' at 'maxResults' failed "
              "to satisfy constraint: Member must have value less than or "
              "equal to 50",
              "DescribeParameters", "{\"MaxResults\":51}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "1 validation error detected: Value '0' at 'maxResults' failed "
              "to satisfy constraint: Member must have value greater than or "
              "equal to 1",
              "DescribeParameters", "{\"MaxResults\":0}");

    /* Paging with a filter applies the page before the filter: a small
     * budget gives short pages, still complete in the end. */
    {
        struct store_options opts;
        store_options_default(&opts);
        opts.limits.scan_budget = 4;
        reopen_with(h, &opts);
        put_series(h, "/dp/p", 25);
        put_type(h, "/dp/z", "StringList", "x");
        EXPECT_DESCRIBE(h,
                        "\"ParameterFilters\":[{\"Key\":\"Type\",\"Values\":"
                        "[\"StringList\"]}]",
                        "/dp/z");
    }
}

/******************************************************************************
 *
 * Tags
 *
 *****************************************************************************/

/* The TagList of ListTagsForResource, as "k=v,k=v". Free. */
static char *tag_list(struct h *h, const char *id)
{
    json_t *r =
        h_q(h, "ListTagsForResource",
            "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"%s\"}", id);
    json_t *l = json_object_get(r, "TagList");
    struct buf b;
    char *s;

    assert_true(json_is_array(l));
    buf_init(&b);
    for (size_t i = 0; i < json_array_size(l); i++) {
        json_t *t = json_array_get(l, i);
        assert_int_equal(json_object_size(t), 2);
        buf_printf(&b, "%s%s=%s", i > 0 ? "," : "", js(t, "Key"),
                   js(t, "Value"));
    }
    buf_terminate(&b);
    s = strdup(b.len > 0 ? (char *)b.data : "");
    buf_close(&b);
    json_decref(r);
    return s;
}

#define EXPECT_TAGS(h, id, want)       \
    do {                               \
        char *t_ = tag_list(h, id);    \
        assert_string_equal(t_, want); \
        free(t_);                      \
    } while (0)

/* Tags added, overwritten and removed show in ListTagsForResource as a
 * TagList sorted by key; a root name is the same resource with or without
 * its slash; a deleted and re-created parameter has no tags. */
static void tags_list(void **state)
{
    struct h *h = *state;

    h_put(h, "/tg", "v");
    EXPECT_TAGS(h, "/tg", "");
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/tg\","
                     "\"Tags\":[{\"Key\":\"zeta\",\"Value\":\"1\"},{\"Key\":"
                     "\"alpha\",\"Value\":\"2\"},{\"Key\":\"Mid\",\"Value\":"
                     "\"\"}]}"));
    EXPECT_TAGS(h, "/tg", "Mid=,alpha=2,zeta=1");
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/tg\","
                     "\"Tags\":[{\"Key\":\"alpha\",\"Value\":\"3\"},{\"Key\":"
                     "\"beta\",\"Value\":\"4\"}]}"));
    EXPECT_TAGS(h, "/tg", "Mid=,alpha=3,beta=4,zeta=1");
    json_decref(h_ok(h, "RemoveTagsFromResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/tg\","
                     "\"TagKeys\":[\"zeta\",\"absent\",\"Mid\"]}"));
    EXPECT_TAGS(h, "/tg", "alpha=3,beta=4");
    /* Tags belong to the parameter, not to a version. */
    h_put(h, "/tg", "v2");
    EXPECT_TAGS(h, "/tg", "alpha=3,beta=4");

    h_put(h, "rootp", "v");
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":"
                     "\"/rootp\",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}"));
    EXPECT_TAGS(h, "rootp", "k=v");
    EXPECT_TAGS(h, "/rootp", "k=v");

    del(h, "/tg");
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/tg\",\"Value\":\"v\",\"Type\":\"String\"}"));
    EXPECT_TAGS(h, "/tg", "");
}

/* Another resource type is InvalidResourceType; an unknown or malformed
 * parameter name is InvalidResourceId. */
static void tags_errors(void **state)
{
    struct h *h = *state;

    h_put(h, "/tg", "v");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceType",
              "Invalid Resource Type", "ListTagsForResource",
              "{\"ResourceType\":\"Document\",\"ResourceId\":\"/tg\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceType",
              "Invalid Resource Type", "ListTagsForResource",
              "{\"ResourceType\":\"parameter\",\"ResourceId\":\"/tg\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceId",
              "Invalid Resource Id", "ListTagsForResource",
              "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/nope\"}");
    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceId",
              "Invalid Resource Id", "ListTagsForResource",
              "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"bad id\"}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "ListTagsForResource", "{\"ResourceType\":\"Parameter\"}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "ListTagsForResource", "{\"ResourceId\":\"/tg\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceId", "AddTagsToResource",
           "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/nope\","
           "\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceType",
           "RemoveTagsFromResource",
           "{\"ResourceType\":\"Document\",\"ResourceId\":\"/tg\","
           "\"TagKeys\":[\"k\"]}");
    EXPECT_TAGS(h, "/tg", "");
}

/******************************************************************************
 *
 * Service settings
 *
 *****************************************************************************/

/* The default-tier setting reads Standard with Status Default until
 * updated, then Customized with the value, date and user, by short id or
 * ARN, and reset brings back the default. */
static void setting_lifecycle(void **state)
{
    struct h *h = *state;
    json_t *r, *s;
    const char *arn = "arn:aws:ssm:local:000000000000:servicesetting" SETTING;

    r = h_q(h, "GetServiceSetting", "{\"SettingId\":\"" SETTING "\"}");
    s = json_object_get(r, "ServiceSetting");
    assert_string_equal(js(s, "SettingId"), SETTING);
    assert_string_equal(js(s, "SettingValue"), "Standard");
    assert_string_equal(js(s, "Status"), "Default");
    assert_string_equal(js(s, "ARN"), arn);
    assert_null(json_object_get(s, "LastModifiedDate"));
    json_decref(r);

    json_decref(h_ok(h, "UpdateServiceSetting",
                     "{\"SettingId\":\"" SETTING "\",\"SettingValue\":"
                     "\"Advanced\"}"));
    r = h_q(h, "GetServiceSetting", "{\"SettingId\":\"%s\"}", arn);
    s = json_object_get(r, "ServiceSetting");
    assert_string_equal(js(s, "SettingId"), SETTING);
    assert_string_equal(js(s, "SettingValue"), "Advanced");
    assert_string_equal(js(s, "Status"), "Customized");
    assert_string_equal(js(s, "LastModifiedUser"), CALLER);
    assert_true(json_real_value(json_object_get(s, "LastModifiedDate")) ==
                (double)h->ts / 1000.0);
    assert_string_equal(js(s, "ARN"), arn);
    json_decref(r);

    /* A parameter created now without Tier is Advanced. */
    h_put(h, "/after", "v");
    EXPECT_DESCRIBE(h,
                    "\"ParameterFilters\":[{\"Key\":\"Tier\",\"Values\":"
                    "[\"Advanced\"]}]",
                    "/after");

    r = h_ok(h, "ResetServiceSetting", "{\"SettingId\":\"" SETTING "\"}");
    assert_string_equal(js(json_object_get(r, "ServiceSetting"), "Status"),
                        "Default");
    json_decref(r);
    r = h_q(h, "GetServiceSetting", "{\"SettingId\":\"" SETTING "\"}");
    s = json_object_get(r, "ServiceSetting");
    assert_string_equal(js(s, "SettingValue"), "Standard");
    assert_string_equal(js(s, "Status"), "Default");
    assert_null(json_object_get(s, "LastModifiedUser"));
    json_decref(r);
}

/* An unknown setting is ServiceSettingNotFound; no SettingId is a
 * ValidationException. */
static void setting_errors(void **state)
{
    struct h *h = *state;

    QFAIL_MSG(h, CAIRN_NOT_FOUND, "ServiceSettingNotFound",
              "The service setting /ssm/parameter-store/high-throughput-"
              "enabled was not found.",
              "GetServiceSetting",
              "{\"SettingId\":\"/ssm/parameter-store/high-throughput-"
              "enabled\"}");
    h_qfail(h, CAIRN_NOT_FOUND, "ServiceSettingNotFound", "GetServiceSetting",
            "{\"SettingId\":\"arn:aws:ssm:local:000000000000:servicesetting"
            "/ssm/other\"}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "GetServiceSetting", "{}");
}

/******************************************************************************
 *
 * GetChanges
 *
 *****************************************************************************/

/* Fail unless change @p i of @p r is (rev, op, name, type, version). */
static void expect_change(json_t *r,
                          size_t i,
                          long long rev,
                          const char *op,
                          const char *name,
                          const char *type,
                          long long version)
{
    json_t *c = json_array_get(json_object_get(r, "Changes"), i);
    assert_non_null(c);
    assert_int_equal(ji(c, "Revision"), rev);
    assert_string_equal(js(c, "Operation"), op);
    assert_string_equal(js(c, "Name"), name);
    assert_string_equal(js(c, "Type"), type);
    assert_int_equal(ji(c, "Version"), version);
    assert_true(ji(c, "Time") > 0);
}

/* The change feed lists Create, Update, LabelParameterVersion and Delete
 * rows with consecutive revisions; failed commands, tags and reads add no
 * row; FromRevision and MaxResults select a window. */
static void changes_feed(void **state)
{
    struct h *h = *state;
    json_t *r;

    r = h_q(h, "GetChanges", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 0);
    assert_int_equal(ji(r, "Revision"), 0);
    assert_int_equal(ji(r, "OldestRevision"), 0);
    json_decref(r);

    h_put(h, "/c/a", "1");                    /* 1 Create */
    h_put(h, "/c/a", "2");                    /* 2 Update */
    put_type(h, "/c/b", "StringList", "x,y"); /* 3 Create */
    h_fail(h, CAIRN_ALREADY_EXISTS, "ParameterAlreadyExists", "PutParameter",
           "{\"Name\":\"/c/b\",\"Value\":\"z\",\"Type\":\"StringList\"}");
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":"
                     "\"/c/a\",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}"));
    label(h, "/c/a", 1, "old");          /* 4 Label */
    del(h, "/c/b");                      /* 5 Delete */
    put_secure(h, "/c/s", "blob", NULL); /* 6 Create */

    r = h_q(h, "GetChanges", "{\"FromRevision\":1}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 6);
    assert_int_equal(ji(r, "Revision"), 6);
    assert_int_equal(ji(r, "OldestRevision"), 1);
    expect_change(r, 0, 1, "Create", "/c/a", "String", 1);
    expect_change(r, 1, 2, "Update", "/c/a", "String", 2);
    expect_change(r, 2, 3, "Create", "/c/b", "StringList", 1);
    expect_change(r, 3, 4, "LabelParameterVersion", "/c/a", "String", 1);
    expect_change(r, 4, 5, "Delete", "/c/b", "StringList", 1);
    expect_change(r, 5, 6, "Create", "/c/s", "SecureString", 1);
    /* Times follow the commands' timestamps (ms). */
    assert_int_equal(
        ji(json_array_get(json_object_get(r, "Changes"), 5), "Time"), h->ts);
    json_decref(r);

    r = h_q(h, "GetChanges", "{\"FromRevision\":3,\"MaxResults\":2}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 2);
    expect_change(r, 0, 3, "Create", "/c/b", "StringList", 1);
    expect_change(r, 1, 4, "LabelParameterVersion", "/c/a", "String", 1);
    assert_int_equal(ji(r, "Revision"), 6);
    json_decref(r);

    /* Past the newest: nothing yet. */
    r = h_q(h, "GetChanges", "{\"FromRevision\":7}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 0);
    assert_int_equal(ji(r, "Revision"), 6);
    json_decref(r);

    /* DeleteParameters writes one row per deleted name; unlabelling is a
     * LabelParameterVersion change too. */
    h_put(h, "/c/d1", "v"); /* 7 Create */
    json_decref(h_ok(h, "UnlabelParameterVersion",
                     "{\"Name\":\"/c/a\",\"ParameterVersion\":1,"
                     "\"Labels\":[\"old\"]}")); /* 8 Label */
    json_decref(h_ok(h, "DeleteParameters",
                     "{\"Names\":[\"/c/a\",\"/c/none\",\"/c/d1\"]}"));
    r = h_q(h, "GetChanges", "{\"FromRevision\":7}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 4);
    expect_change(r, 0, 7, "Create", "/c/d1", "String", 1);
    expect_change(r, 1, 8, "LabelParameterVersion", "/c/a", "String", 1);
    expect_change(r, 2, 9, "Delete", "/c/a", "String", 2);
    expect_change(r, 3, 10, "Delete", "/c/d1", "String", 1);
    assert_int_equal(ji(r, "Revision"), 10);
    json_decref(r);

    QFAIL_MSG(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
              "MaxResults must be between 1 and 1000.", "GetChanges",
              "{\"MaxResults\":0}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "GetChanges",
            "{\"MaxResults\":1001}");
}

/* With a small retention window, a FromRevision older than the oldest
 * retained row is OUT_OF_RANGE RevisionCompacted; the window itself is
 * still readable. */
static void changes_compacted(void **state)
{
    struct h *h = *state;
    struct store_options opts;
    json_t *r;

    store_options_default(&opts);
    opts.limits.feed_retain = 3;
    reopen_with(h, &opts);
    for (int i = 0; i < 6; i++) {
        h_put(h, "/c", "v"); /* revisions 1..6 */
    }
    QFAIL_MSG(h, CAIRN_OUT_OF_RANGE, "RevisionCompacted",
              "Revision 1 is older than the oldest retained revision 4; read "
              "a fresh baseline and resume from its revision.",
              "GetChanges", "{\"FromRevision\":1}");
    h_qfail(h, CAIRN_OUT_OF_RANGE, "RevisionCompacted", "GetChanges",
            "{\"FromRevision\":3}");
    r = h_q(h, "GetChanges", "{\"FromRevision\":4}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 3);
    assert_int_equal(ji(r, "OldestRevision"), 4);
    assert_int_equal(ji(r, "Revision"), 6);
    expect_change(r, 0, 4, "Update", "/c", "String", 4);
    expect_change(r, 2, 6, "Update", "/c", "String", 6);
    json_decref(r);
}

/* After the retention is lowered between runs, the next change trims every
 * row that fell out of the window, so the feed never has a gap that a
 * reader could step over without RevisionCompacted. */
static void changes_retention_lowered(void **state)
{
    struct h *h = *state;
    json_t *r;

    for (int i = 0; i < 10; i++) {
        h_put(h, "/c", "v"); /* revisions 1..10 */
    }
    h->opts.limits.feed_retain = 3;
    h_reopen(h);
    h_put(h, "/c", "v"); /* revision 11: the window is 9..11 */
    QFAIL_MSG(h, CAIRN_OUT_OF_RANGE, "RevisionCompacted",
              "Revision 1 is older than the oldest retained revision 9; read "
              "a fresh baseline and resume from its revision.",
              "GetChanges", "{\"FromRevision\":1}");
    h_qfail(h, CAIRN_OUT_OF_RANGE, "RevisionCompacted", "GetChanges",
            "{\"FromRevision\":8}");
    r = h_q(h, "GetChanges", "{\"FromRevision\":9}");
    assert_int_equal(json_array_size(json_object_get(r, "Changes")), 3);
    assert_int_equal(ji(r, "OldestRevision"), 9);
    expect_change(r, 0, 9, "Update", "/c", "String", 9);
    expect_change(r, 2, 11, "Update", "/c", "String", 11);
    json_decref(r);
}

/******************************************************************************
 *
 * Runner
 *
 *****************************************************************************/

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* GetParameterType (internal): Type and KeyId by name, NotFound when
 * absent. */
static void parameter_type(void **state)
{
    struct h *h = *state;
    json_t *r;

    h_put(h, "/pt/plain", "v");
    h_ensure_key(h, NULL);
    assert_int_equal(
        h_put_secure(h, "/pt/secret", "sealed", 6, 6, "alias/aws/ssm", false)
            ->err.code,
        0);
    r = h_q(h, "GetParameterType", "{\"Name\":\"/pt/plain\"}");
    assert_string_equal(js(r, "Type"), "String");
    assert_null(js(r, "KeyId"));
    json_decref(r);
    r = h_q(h, "GetParameterType", "{\"Name\":\"/pt/secret\"}");
    assert_string_equal(js(r, "Type"), "SecureString");
    assert_string_equal(js(r, "KeyId"), "alias/aws/ssm");
    json_decref(r);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameterType",
            "{\"Name\":\"/pt/none\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(get_latest),
        T(get_version_selector),
        T(get_label_selector),
        T(get_unknown),
        T(get_missing_version),
        T(get_two_selectors),
        T(get_by_arn),
        T(get_by_arn_custom_namespace),
        T(get_root_names),
        T(get_secure_string),
        T(get_bad_input),
        T(unknown_method),
        T(getparams_count),
        T(getparams_invalid),
        T(getparams_sorted),
        T(getparams_selectors),
        T(getparams_secure),
        T(bypath_levels),
        T(bypath_ten_thousand),
        T(bypath_short_pages),
        T(paging_with_changes),
        T(bypath_long_names),
        T(bypath_fifteen_levels),
        T(bypath_filters),
        T(bypath_filter_errors),
        T(bypath_validation),
        T(token_forged),
        T(token_corrupted),
        T(token_other_query),
        T(token_resumes),
        T(history_paging),
        T(history_labels_policies),
        T(history_secure),
        T(history_errors),
        T(describe_metadata),
        T(describe_filters_conflict),
        T(describe_name_filters),
        T(describe_type_tier_datatype),
        T(describe_path_filter),
        T(describe_tag_filter),
        T(describe_filter_errors),
        T(describe_paging),
        T(tags_list),
        T(tags_errors),
        T(setting_lifecycle),
        T(setting_errors),
        T(changes_feed),
        T(changes_compacted),
        T(changes_retention_lowered),
        T(parameter_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
