/* Tests of the replicated keyring (storage/keyring.c, its ops in
 * storage/sm.c and its reads in storage/query.c): every keyring op and its
 * errors, key deletion by command time, the KeyId check of SecureString
 * puts, determinism and snapshots. */
#include "sm_helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"
#include "mpjson.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

static int setup(void **state)
{
    struct h *h = malloc(sizeof(*h));
    h_open(h, NULL);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct h *h = *state;
    h_close(h);
    free(h);
    return 0;
}

/******************************************************************************
 * Helper macros
 *****************************************************************************/

#define DAY_MS 86400000LL
#define ARN_KEY "arn:aws:kms:local:000000000000:key/"
#define ARN_ALIAS "arn:aws:kms:local:000000000000:"
#define OTHER_ROOT "8899aabbccddeeff"

#define OK(h, op, ...) json_decref(h_ok((h), (op), __VA_ARGS__))

/* A CreateKey request, every field chosen by the caller. */
struct create
{
    const char *key_id;
    const uint8_t *material; /* NULL: h_material(root, 1) */
    size_t material_len;
    bool text; /* send the material as a string, not a bin */
    const char *root;
    const char *description;
    const char *aliases[3];
    bool is_default;
};

static const struct sm_outcome *create_req(struct h *h, const struct create *r)
{
    uint8_t m[H_MATERIAL_LEN];
    const char *root = r->root != NULL ? r->root : H_ROOT_KEY;
    const uint8_t *mat = r->material;
    size_t mlen = r->material_len;
    unsigned n_aliases = 0;
    struct buf req;
    msgpack_packer pk;
    const struct sm_outcome *o;

    while (n_aliases < 3 && r->aliases[n_aliases] != NULL) {
        n_aliases++;
    }
    if (mat == NULL) {
        h_material(m, root, 1);
        mat = m;
        mlen = sizeof(m);
    }
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 2 + (r->key_id != NULL) + (r->description != NULL) +
                              (n_aliases > 0) + r->is_default);
    if (r->key_id != NULL) {
        mp_pack_kv_cstr(&pk, "KeyId", r->key_id);
    }
    mp_pack_cstr(&pk, "Material");
    if (r->text) {
        mp_pack_str(&pk, mat, mlen);
    } else {
        mp_pack_bin(&pk, mat, mlen);
    }
    mp_pack_kv_cstr(&pk, "RootKey", root);
    if (r->description != NULL) {
        mp_pack_kv_cstr(&pk, "Description", r->description);
    }
    if (n_aliases > 0) {
        mp_pack_cstr(&pk, "Aliases");
        msgpack_pack_array(&pk, n_aliases);
        for (unsigned i = 0; i < n_aliases; i++) {
            mp_pack_cstr(&pk, r->aliases[i]);
        }
    }
    if (r->is_default) {
        mp_pack_kv_bool(&pk, "Default", true);
    }
    assert_false(req.oom);
    o = h_apply_req(h, "CreateKey", req.data, req.len);
    buf_close(&req);
    return o;
}

/* RotateKey @p key with material of @p fill wrapped by @p root; @p version
 * < 0 leaves Version out. */
static const struct sm_outcome *rotate(struct h *h,
                                       const char *key,
                                       int fill,
                                       const char *root,
                                       long long version)
{
    uint8_t m[H_MATERIAL_LEN];
    struct buf req;
    msgpack_packer pk;
    const struct sm_outcome *o;

    h_material(m, root, fill);
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 3 + (version >= 0));
    mp_pack_kv_cstr(&pk, "KeyId", key);
    mp_pack_cstr(&pk, "Material");
    mp_pack_bin(&pk, m, sizeof(m));
    mp_pack_kv_cstr(&pk, "RootKey", root);
    if (version >= 0) {
        mp_pack_kv_u64(&pk, "Version", (uint64_t)version);
    }
    o = h_apply_req(h, "RotateKey", req.data, req.len);
    buf_close(&req);
    return o;
}

/* One key of a RewrapKeyring request: its versions, their material fill. */
struct rw_key
{
    const char *id;
    unsigned n;
    uint64_t versions[4];
};

static const struct sm_outcome *rewrap(struct h *h,
                                       const char *root,
                                       const char *material_root,
                                       const struct rw_key *keys,
                                       unsigned n_keys,
                                       int fill)
{
    uint8_t m[H_MATERIAL_LEN];
    struct buf req;
    msgpack_packer pk;
    const struct sm_outcome *o;

    h_material(m, material_root, fill);
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_cstr(&pk, "RootKey", root);
    mp_pack_cstr(&pk, "Keys");
    msgpack_pack_array(&pk, n_keys);
    for (unsigned i = 0; i < n_keys; i++) {
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_cstr(&pk, "KeyId", keys[i].id);
        mp_pack_cstr(&pk, "Versions");
        msgpack_pack_array(&pk, keys[i].n);
        for (unsigned j = 0; j < keys[i].n; j++) {
            msgpack_pack_map(&pk, 2);
            mp_pack_kv_u64(&pk, "Version", keys[i].versions[j]);
            mp_pack_cstr(&pk, "Material");
            mp_pack_bin(&pk, m, sizeof(m));
        }
    }
    o = h_apply_req(h, "RewrapKeyring", req.data, req.len);
    buf_close(&req);
    return o;
}

static void put_sec(struct h *h,
                    const char *name,
                    const char *key_id,
                    int code,
                    const char *type)
{
    static const uint8_t blob[] = {'C', 'R', 'N', 'E', 1, 2, 3};
    const struct sm_outcome *o =
        h_put_secure(h, name, blob, sizeof(blob), 6, key_id, true);
    if (o->err.code != code || strcmp(o->err.type, type) != 0) {
        fail_msg("put %s with %s: want %s %s, got %s %s: %s", name,
                 key_id != NULL ? key_id : "(default)", cairn_status_name(code),
                 type, cairn_status_name(o->err.code), o->err.type, o->err.msg);
    }
}

#define PUT_OK(h, name, key) put_sec((h), (name), (key), 0, "")
#define PUT_BAD(h, name, key) \
    put_sec((h), (name), (key), CAIRN_INVALID_ARGUMENT, "InvalidKeyId")

/* Create a customer key @p id, expecting success. */
static void mk(struct h *h, const char *id, const char *alias)
{
    const struct sm_outcome *o = h_create_key(h, id, alias, false);
    if (o->err.code != 0) {
        fail_msg("CreateKey %s: %s %s", id, o->err.type, o->err.msg);
    }
}

/* DescribeKey's KeyMetadata (decref). */
static json_t *describe(struct h *h, const char *ref)
{
    json_t *r = h_q(h, "DescribeKey", "{\"KeyId\":\"%s\"}", ref);
    json_t *m = json_incref(json_object_get(r, "KeyMetadata"));
    json_decref(r);
    assert_non_null(m);
    return m;
}

static char *state_of(struct h *h, const char *ref)
{
    json_t *m = describe(h, ref);
    char *s = strdup(js(m, "KeyState"));
    json_decref(m);
    return s;
}

#define assert_state(h, ref, want)       \
    do {                                 \
        char *s_ = state_of((h), (ref)); \
        assert_string_equal(s_, (want)); \
        free(s_);                        \
    } while (0)

#define assert_outcome(o, want_code, want_type)                     \
    do {                                                            \
        const struct sm_outcome *o_ = (o);                          \
        if (o_->err.code != (want_code) ||                          \
            strcmp(o_->err.type, (want_type)) != 0) {               \
            fail_msg("want %s %s, got %s %s: %s",                   \
                     cairn_status_name(want_code), (want_type),     \
                     cairn_status_name(o_->err.code), o_->err.type, \
                     o_->err.msg);                                  \
        }                                                           \
    } while (0)

static size_t count_of(struct h *h, const char *method, const char *list)
{
    json_t *r = h_q(h, method, "{}");
    size_t n = json_array_size(json_object_get(r, list));
    json_decref(r);
    return n;
}

static double jreal(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/******************************************************************************
 * CreateKey
 *****************************************************************************/

/* CreateKey answers KMS's KeyMetadata, and the key is listed, described
 * and its material readable by every KeyId form. */
static void create_key_ok(void **state)
{
    struct h *h = *state;
    struct create r = {.key_id = "k1",
                       .description = "first",
                       .aliases = {"alias/one", "alias/two/x"}};
    const struct sm_outcome *o = create_req(h, &r);
    json_t *j, *m, *v;
    uint8_t mat[H_MATERIAL_LEN];
    char *b64;

    assert_outcome(o, 0, "");
    j = h_ok(h, "EnableKey", "{\"KeyId\":\"k1\"}"); /* a no-op */
    json_decref(j);
    m = describe(h, "k1");
    assert_string_equal(js(m, "KeyId"), "k1");
    assert_string_equal(js(m, "Arn"), ARN_KEY "k1");
    assert_string_equal(js(m, "AWSAccountId"), "000000000000");
    assert_string_equal(js(m, "Description"), "first");
    assert_string_equal(js(m, "KeyState"), "Enabled");
    assert_true(json_is_true(json_object_get(m, "Enabled")));
    assert_string_equal(js(m, "KeyManager"), "CUSTOMER");
    assert_string_equal(js(m, "KeyUsage"), "ENCRYPT_DECRYPT");
    assert_true(json_is_false(json_object_get(m, "KeyRotationEnabled")));
    assert_int_equal(ji(m, "CurrentVersion"), 1);
    assert_null(json_object_get(m, "DeletionDate"));
    /* CreationDate is the command's time, in epoch seconds. */
    assert_true(jreal(m, "CreationDate") == (double)(h->ts - 1000) / 1000.0);
    json_decref(m);

    assert_int_equal(count_of(h, "ListKeys", "Keys"), 1);
    j = h_q(h, "ListKeys", "{}");
    v = json_array_get(json_object_get(j, "Keys"), 0);
    assert_string_equal(js(v, "KeyId"), "k1");
    assert_string_equal(js(v, "KeyArn"), ARN_KEY "k1");
    assert_true(json_is_false(json_object_get(j, "Truncated")));
    json_decref(j);

    j = h_q(h, "ListAliases", "{}");
    v = json_object_get(j, "Aliases");
    assert_int_equal(json_array_size(v), 2);
    assert_string_equal(js(json_array_get(v, 0), "AliasName"), "alias/one");
    assert_string_equal(js(json_array_get(v, 0), "AliasArn"),
                        ARN_ALIAS "alias/one");
    assert_string_equal(js(json_array_get(v, 0), "TargetKeyId"), "k1");
    assert_string_equal(js(json_array_get(v, 1), "AliasName"), "alias/two/x");
    json_decref(j);

    h_material(mat, H_ROOT_KEY, 1);
    b64 = mpjson_base64(mat, sizeof(mat));
    j = h_q(h, "GetKeyMaterial", "{\"KeyId\":\"alias/one\"}");
    assert_string_equal(js(j, "KeyId"), "k1");
    assert_string_equal(js(j, "Arn"), ARN_KEY "k1");
    assert_string_equal(js(j, "KeyState"), "Enabled");
    assert_int_equal(ji(j, "CurrentVersion"), 1);
    v = json_object_get(j, "Versions");
    assert_int_equal(json_array_size(v), 1);
    assert_int_equal(ji(json_array_get(v, 0), "Version"), 1);
    assert_string_equal(js(json_array_get(v, 0), "Material"), b64);
    assert_string_equal(js(json_array_get(v, 0), "RootKey"), H_ROOT_KEY);
    json_decref(j);
    free(b64);
}

/* CreateKey refuses bad input, an id or alias already taken and reserved
 * aliases, and then writes nothing. */
static void create_key_errors(void **state)
{
    struct h *h = *state;
    uint8_t m[H_MATERIAL_LEN];
    char *long_id = h_long_name("k", 65);
    char *long_desc = h_long_name("d", 8193);

    mk(h, "taken", "alias/taken");
    h_material(m, H_ROOT_KEY, 1);
    {
        struct create r = {.key_id = NULL};
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
    }
    {
        const char *bad[] = {"", "a/b", "a_b", "é", long_id};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            struct create r = {.key_id = bad[i]};
            assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                           "ValidationException");
        }
    }
    {
        /* Material: a bin of 73 bytes starting CRNW, wrapped by RootKey. */
        uint8_t bad[H_MATERIAL_LEN];
        struct create r = {
            .key_id = "n", .material = m, .material_len = H_MATERIAL_LEN - 1};
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
        r.material_len = sizeof(m);
        r.text = true;
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
        memcpy(bad, m, sizeof(bad));
        bad[0] = 'X';
        r.text = false;
        r.material = bad;
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
        r.material = m;
        r.root = OTHER_ROOT; /* the material names H_ROOT_KEY */
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
        r.root = "00112233445566";
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
        /* Fingerprints are lower-case hex. */
        h_material(bad, "00112233445566aa", 1);
        r.material = bad;
        r.root = "00112233445566AA";
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
        r.key_id = "lower";
        r.root = "00112233445566aa";
        assert_outcome(create_req(h, &r), 0, "");
    }
    {
        struct create r = {.key_id = "n", .description = long_desc};
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
    }
    {
        struct create r = {.key_id = "taken"};
        assert_outcome(create_req(h, &r), CAIRN_ALREADY_EXISTS,
                       "AlreadyExistsException");
    }
    {
        struct create r = {.key_id = "n",
                           .aliases = {"alias/new", "alias/taken"}};
        assert_outcome(create_req(h, &r), CAIRN_ALREADY_EXISTS,
                       "AlreadyExistsException");
    }
    {
        struct create r = {.key_id = "n", .aliases = {"alias/d", "alias/d"}};
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
    }
    {
        struct create r = {.key_id = "n", .aliases = {"alias/aws/mine"}};
        assert_outcome(create_req(h, &r), CAIRN_PERMISSION_DENIED,
                       "NotAuthorizedException");
    }
    {
        struct create r = {.key_id = "n", .aliases = {"noprefix"}};
        assert_outcome(create_req(h, &r), CAIRN_INVALID_ARGUMENT,
                       "ValidationException");
    }
    /* A field of the wrong type. */
    h_fail(h, CAIRN_INVALID_ARGUMENT, "SerializationException", "CreateKey",
           "{\"KeyId\":7}");
    assert_int_equal(count_of(h, "ListKeys", "Keys"), 2); /* and lower */
    assert_int_equal(count_of(h, "ListAliases", "Aliases"), 1);
    h_qfail(h, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
            "{\"KeyId\":\"alias/new\"}");
    free(long_id);
    free(long_desc);
}

/* The default key answers to alias/aws/ssm and alias/cairn/default, is
 * AWS managed, and is created once: CreateKey Default again answers the
 * existing key and writes nothing. */
static void default_key(void **state)
{
    struct h *h = *state;
    struct create r = {.key_id = "def-1", .is_default = true};
    struct create again = {.key_id = "def-2", .is_default = true};
    const struct sm_outcome *o;
    json_t *m;

    o = create_req(h, &r);
    assert_outcome(o, 0, "");
    m = describe(h, "alias/aws/ssm");
    assert_string_equal(js(m, "KeyId"), "def-1");
    assert_string_equal(js(m, "KeyManager"), "AWS");
    assert_true(json_is_true(json_object_get(m, "KeyRotationEnabled")));
    json_decref(m);
    m = describe(h, "alias/cairn/default");
    assert_string_equal(js(m, "KeyId"), "def-1");
    json_decref(m);

    o = create_req(h, &again);
    assert_outcome(o, 0, "");
    assert_int_equal(count_of(h, "ListKeys", "Keys"), 1);
    h_qfail(h, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
            "{\"KeyId\":\"def-2\"}");
    assert_int_equal(count_of(h, "ListAliases", "Aliases"), 2);
    /* The reserved alias cannot be moved or deleted. */
    mk(h, "other", NULL);
    h_fail(h, CAIRN_PERMISSION_DENIED, "NotAuthorizedException", "UpdateAlias",
           "{\"AliasName\":\"alias/aws/ssm\",\"TargetKeyId\":\"other\"}");
    h_fail(h, CAIRN_PERMISSION_DENIED, "NotAuthorizedException", "DeleteAlias",
           "{\"AliasName\":\"alias/aws/ssm\"}");
    h_fail(h, CAIRN_PERMISSION_DENIED, "NotAuthorizedException", "CreateAlias",
           "{\"AliasName\":\"alias/aws/other\",\"TargetKeyId\":\"other\"}");
    /* A SecureString without KeyId uses it. */
    PUT_OK(h, "/s", NULL);
}

/* alias/cairn/default is not reserved: when another key already holds it,
 * the default key is created without it. */
static void default_key_cairn_alias_taken(void **state)
{
    struct h *h = *state;
    struct create r = {.key_id = "def", .is_default = true};
    json_t *m;

    mk(h, "mine", "alias/cairn/default");
    assert_outcome(create_req(h, &r), 0, "");
    m = describe(h, "alias/cairn/default");
    assert_string_equal(js(m, "KeyId"), "mine");
    json_decref(m);
    m = describe(h, "alias/aws/ssm");
    assert_string_equal(js(m, "KeyId"), "def");
    json_decref(m);
}

/* The outcome of CreateKey is its KeyMetadata, and a replayed Default
 * answers the first key's. */
static void create_key_outcome(void **state)
{
    struct h *h = *state;
    struct create r = {.key_id = "def", .is_default = true};
    const struct sm_outcome *o = create_req(h, &r);
    char *s;

    assert_outcome(o, 0, "");
    s = test_mp_to_json(o->body, o->body_len);
    assert_non_null(strstr(s, "\"KeyMetadata\":{"));
    assert_non_null(strstr(s, "\"KeyId\":\"def\""));
    free(s);
    r.key_id = "def-again";
    o = create_req(h, &r);
    s = test_mp_to_json(o->body, o->body_len);
    assert_non_null(strstr(s, "\"KeyId\":\"def\""));
    free(s);
}

/******************************************************************************
 * RotateKey and the rotation flag
 *****************************************************************************/

/* RotateKey adds version 2 and makes it current; version 1 stays. */
static void rotate_key(void **state)
{
    struct h *h = *state;
    const struct sm_outcome *o;
    json_t *j, *v;
    uint8_t m2[H_MATERIAL_LEN];
    char *b64;
    char *s;

    mk(h, "k", "alias/k");
    o = rotate(h, "alias/k", 2, H_ROOT_KEY, 2);
    assert_outcome(o, 0, "");
    s = test_mp_to_json(o->body, o->body_len);
    assert_string_equal(s, "{\"CurrentVersion\":2,\"KeyId\":\"k\"}");
    free(s);
    j = h_q(h, "GetKeyMaterial", "{\"KeyId\":\"k\"}");
    assert_int_equal(ji(j, "CurrentVersion"), 2);
    v = json_object_get(j, "Versions");
    assert_int_equal(json_array_size(v), 2);
    assert_int_equal(ji(json_array_get(v, 0), "Version"), 1);
    assert_int_equal(ji(json_array_get(v, 1), "Version"), 2);
    h_material(m2, H_ROOT_KEY, 2);
    b64 = mpjson_base64(m2, sizeof(m2));
    assert_string_equal(js(json_array_get(v, 1), "Material"), b64);
    free(b64);
    json_decref(j);
    /* Without Version the next one is taken. */
    assert_outcome(rotate(h, "k", 3, H_ROOT_KEY, -1), 0, "");
    j = describe(h, "k");
    assert_int_equal(ji(j, "CurrentVersion"), 3);
    json_decref(j);
}

/* RotateKey's errors: material for another version (ConflictException),
 * bad material, unknown, disabled and pending keys, and the version
 * limit. */
static void rotate_key_errors(void **state)
{
    struct h *h = *state;

    mk(h, "k", NULL);
    assert_outcome(rotate(h, "k", 2, H_ROOT_KEY, 3), CAIRN_ABORTED,
                   "ConflictException");
    assert_outcome(rotate(h, "k", 2, H_ROOT_KEY, 1), CAIRN_ABORTED,
                   "ConflictException");
    assert_outcome(rotate(h, "nope", 2, H_ROOT_KEY, 2), CAIRN_NOT_FOUND,
                   "NotFoundException");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "RotateKey",
           "{\"KeyId\":\"k\",\"Material\":\"x\",\"RootKey\":\"%s\"}",
           H_ROOT_KEY);
    OK(h, "DisableKey", "{\"KeyId\":\"k\"}");
    assert_outcome(rotate(h, "k", 2, H_ROOT_KEY, 2), CAIRN_FAILED_PRECONDITION,
                   "KMSInvalidStateException");
    OK(h, "EnableKey", "{\"KeyId\":\"k\"}");
    OK(h, "ScheduleKeyDeletion", "{\"KeyId\":\"k\",\"PendingWindowInDays\":7}");
    assert_outcome(rotate(h, "k", 2, H_ROOT_KEY, 2), CAIRN_FAILED_PRECONDITION,
                   "KMSInvalidStateException");
    {
        json_t *j = describe(h, "k");
        assert_int_equal(ji(j, "CurrentVersion"), 1);
        json_decref(j);
    }
    /* At most 100 versions per key. */
    mk(h, "many", NULL);
    for (int v = 2; v <= 100; v++) {
        assert_outcome(rotate(h, "many", v & 0xff, H_ROOT_KEY, v), 0, "");
    }
    assert_outcome(rotate(h, "many", 1, H_ROOT_KEY, 101),
                   CAIRN_RESOURCE_EXHAUSTED, "LimitExceededException");
}

/* Enable/DisableKeyRotation set the flag of an enabled key; a disabled key
 * gets DisabledException, a pending one KMSInvalidStateException. */
static void key_rotation_flag(void **state)
{
    struct h *h = *state;
    json_t *m;

    mk(h, "k", NULL);
    OK(h, "EnableKeyRotation", "{\"KeyId\":\"k\"}");
    m = describe(h, "k");
    assert_true(json_is_true(json_object_get(m, "KeyRotationEnabled")));
    json_decref(m);
    OK(h, "DisableKeyRotation", "{\"KeyId\":\"" ARN_KEY "k\"}");
    m = describe(h, "k");
    assert_true(json_is_false(json_object_get(m, "KeyRotationEnabled")));
    json_decref(m);
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "EnableKeyRotation",
           "{\"KeyId\":\"nope\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
           "EnableKeyRotation", "{}");
    OK(h, "DisableKey", "{\"KeyId\":\"k\"}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "DisabledException",
           "EnableKeyRotation", "{\"KeyId\":\"k\"}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "DisabledException",
           "DisableKeyRotation", "{\"KeyId\":\"k\"}");
    OK(h, "ScheduleKeyDeletion", "{\"KeyId\":\"k\",\"PendingWindowInDays\":7}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "EnableKeyRotation", "{\"KeyId\":\"k\"}");
}

/******************************************************************************
 * EnableKey, DisableKey, deletion
 *****************************************************************************/

/* DisableKey and EnableKey switch the state; a pending key refuses both;
 * unknown keys are NotFoundException. */
static void enable_disable(void **state)
{
    struct h *h = *state;
    json_t *m;

    mk(h, "k", NULL);
    OK(h, "DisableKey", "{\"KeyId\":\"k\"}");
    m = describe(h, "k");
    assert_string_equal(js(m, "KeyState"), "Disabled");
    assert_true(json_is_false(json_object_get(m, "Enabled")));
    json_decref(m);
    OK(h, "DisableKey", "{\"KeyId\":\"k\"}"); /* already disabled */
    OK(h, "EnableKey", "{\"KeyId\":\"k\"}");
    assert_state(h, "k", "Enabled");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "EnableKey",
           "{\"KeyId\":\"nope\"}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "DisableKey",
           "{\"KeyId\":\"alias/nope\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "DisableKey",
           "{\"KeyId\":\"\"}");
    OK(h, "ScheduleKeyDeletion", "{\"KeyId\":\"k\",\"PendingWindowInDays\":7}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "EnableKey", "{\"KeyId\":\"k\"}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "DisableKey", "{\"KeyId\":\"k\"}");
    assert_state(h, "k", "PendingDeletion");
}

/* ScheduleKeyDeletion: window 7..30 (default 30), DeletionDate = ts +
 * window, answered as KMS does; CancelKeyDeletion brings the key back
 * Disabled and forgets the date. */
static void schedule_and_cancel(void **state)
{
    struct h *h = *state;
    json_t *r, *m;
    int64_t ts;

    mk(h, "k", NULL);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
           "ScheduleKeyDeletion",
           "{\"KeyId\":\"k\",\"PendingWindowInDays\":6}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
           "ScheduleKeyDeletion",
           "{\"KeyId\":\"k\",\"PendingWindowInDays\":31}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "ScheduleKeyDeletion",
           "{\"KeyId\":\"nope\"}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "CancelKeyDeletion", "{\"KeyId\":\"k\"}");
    r = h_ok(h, "ScheduleKeyDeletion", "{\"KeyId\":\"k\"}");
    ts = h->ts;
    assert_string_equal(js(r, "KeyId"), ARN_KEY "k");
    assert_string_equal(js(r, "KeyState"), "PendingDeletion");
    assert_int_equal(ji(r, "PendingWindowInDays"), 30);
    assert_true(jreal(r, "DeletionDate") ==
                (double)(ts + 30 * DAY_MS) / 1000.0);
    json_decref(r);
    m = describe(h, "k");
    assert_string_equal(js(m, "KeyState"), "PendingDeletion");
    assert_true(jreal(m, "DeletionDate") ==
                (double)(ts + 30 * DAY_MS) / 1000.0);
    assert_int_equal(ji(m, "PendingDeletionWindowInDays"), 30);
    json_decref(m);
    r = h_q(h, "GetKeyMaterial", "{\"KeyId\":\"k\"}");
    assert_true(jreal(r, "DeletionDate") ==
                (double)(ts + 30 * DAY_MS) / 1000.0);
    json_decref(r);
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "ScheduleKeyDeletion", "{\"KeyId\":\"k\"}");

    r = h_ok(h, "CancelKeyDeletion", "{\"KeyId\":\"k\"}");
    assert_string_equal(js(r, "KeyId"), ARN_KEY "k");
    json_decref(r);
    m = describe(h, "k");
    assert_string_equal(js(m, "KeyState"), "Disabled");
    assert_null(json_object_get(m, "DeletionDate"));
    json_decref(m);
    /* The cancelled date no longer deletes the key. */
    h->ts = ts + 31 * DAY_MS;
    OK(h, "EnableKey", "{\"KeyId\":\"k\"}");
    assert_state(h, "k", "Enabled");
}

/* A key pending deletion refuses SecureString puts; once a keyring command
 * runs at or after its DeletionDate the key and its aliases are gone, and
 * not before. Other commands do not delete it. */
static void deletion_by_time(void **state)
{
    struct h *h = *state;
    int64_t due;
    json_t *r;

    mk(h, "doomed", "alias/doomed");
    mk(h, "kept", "alias/kept");
    OK(h, "CreateAlias",
       "{\"AliasName\":\"alias/doomed2\",\"TargetKeyId\":\"doomed\"}");
    PUT_OK(h, "/p", "alias/doomed");
    OK(h, "ScheduleKeyDeletion",
       "{\"KeyId\":\"doomed\",\"PendingWindowInDays\":7}");
    due = h->ts + 7 * DAY_MS;
    PUT_BAD(h, "/p", "alias/doomed");
    PUT_BAD(h, "/p", NULL); /* the stored KeyId is the doomed alias */
    PUT_BAD(h, "/q", "doomed");

    /* One millisecond before: a keyring command keeps it. */
    h->ts = due - 1 - 1000;
    OK(h, "EnableKey", "{\"KeyId\":\"kept\"}");
    assert_state(h, "doomed", "PendingDeletion");
    /* After the date a non-keyring command leaves it (reads still show
     * it pending) ... */
    h->ts = due + 5000;
    h_put(h, "/plain", "v");
    assert_state(h, "doomed", "PendingDeletion");
    PUT_BAD(h, "/p", "alias/doomed");
    /* ... and the next keyring command deletes it, whatever its own
     * outcome. */
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "EnableKey",
           "{\"KeyId\":\"nope\"}");
    h_qfail(h, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
            "{\"KeyId\":\"doomed\"}");
    h_qfail(h, CAIRN_NOT_FOUND, "NotFoundException", "GetKeyMaterial",
            "{\"KeyId\":\"alias/doomed\"}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "CancelKeyDeletion",
           "{\"KeyId\":\"doomed\"}");
    r = h_q(h, "ListAliases", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "Aliases")), 1);
    json_decref(r);
    assert_int_equal(count_of(h, "ListKeys", "Keys"), 1);
    PUT_BAD(h, "/p", "alias/doomed");
    PUT_OK(h, "/p", "alias/kept");
    /* The id and alias names are free again. */
    mk(h, "doomed", "alias/doomed");
}

/* A key due at exactly the command's time is deleted (DeletionDate <= ts),
 * and several due keys go in one command. */
static void deletion_at_exact_time(void **state)
{
    struct h *h = *state;
    int64_t due;

    mk(h, "a", NULL);
    mk(h, "b", NULL);
    OK(h, "ScheduleKeyDeletion", "{\"KeyId\":\"a\",\"PendingWindowInDays\":7}");
    due = h->ts + 7 * DAY_MS;
    OK(h, "ScheduleKeyDeletion", "{\"KeyId\":\"b\",\"PendingWindowInDays\":8}");
    h->ts = due - 1000; /* the next command runs at exactly due */
    mk(h, "c", NULL);
    assert_int_equal(count_of(h, "ListKeys", "Keys"), 2);
    h->ts = due + 2 * DAY_MS;
    mk(h, "d", NULL);
    assert_int_equal(count_of(h, "ListKeys", "Keys"), 2); /* c and d */
}

/******************************************************************************
 * Aliases
 *****************************************************************************/

/* CreateAlias, UpdateAlias, DeleteAlias and ListAliases, with their
 * errors. */
static void aliases(void **state)
{
    struct h *h = *state;
    char *long_alias = h_long_name("alias/", 257);
    char *max_alias = h_long_name("alias/", 256);
    json_t *r, *a;

    mk(h, "k1", NULL);
    mk(h, "k2", NULL);
    OK(h, "CreateAlias", "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"k1\"}");
    OK(h, "CreateAlias",
       "{\"AliasName\":\"%s\",\"TargetKeyId\":\"" ARN_KEY "k2\"}", max_alias);
    OK(h, "CreateAlias",
       "{\"AliasName\":\"alias/b_c-D/9\",\"TargetKeyId\":\"alias/a\"}");
    /* Bad names. */
    {
        const char *bad[] = {"a",         "alias/",  "alias/x y",
                             "alias/x:y", "Alias/x", long_alias};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
                   "CreateAlias",
                   "{\"AliasName\":\"%s\",\"TargetKeyId\":\"k1\"}", bad[i]);
        }
    }
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "CreateAlias",
           "{\"TargetKeyId\":\"k1\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "CreateAlias",
           "{\"AliasName\":\"alias/z\"}");
    h_fail(h, CAIRN_ALREADY_EXISTS, "AlreadyExistsException", "CreateAlias",
           "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"k2\"}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "CreateAlias",
           "{\"AliasName\":\"alias/z\",\"TargetKeyId\":\"nope\"}");
    h_fail(h, CAIRN_PERMISSION_DENIED, "NotAuthorizedException", "CreateAlias",
           "{\"AliasName\":\"alias/aws/z\",\"TargetKeyId\":\"k1\"}");

    r = h_q(h, "ListAliases", "{\"KeyId\":\"k1\"}");
    a = json_object_get(r, "Aliases");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(js(json_array_get(a, 0), "AliasName"), "alias/a");
    assert_string_equal(js(json_array_get(a, 1), "AliasName"), "alias/b_c-D/9");
    assert_string_equal(js(json_array_get(a, 1), "TargetKeyId"), "k1");
    json_decref(r);
    r = h_q(h, "ListAliases", "{\"KeyId\":\"%s\"}", max_alias);
    assert_int_equal(json_array_size(json_object_get(r, "Aliases")), 1);
    json_decref(r);
    h_qfail(h, CAIRN_NOT_FOUND, "NotFoundException", "ListAliases",
            "{\"KeyId\":\"nope\"}");

    /* UpdateAlias moves; its target must exist and not be pending. */
    OK(h, "UpdateAlias", "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"k2\"}");
    r = h_q(h, "ListAliases", "{\"KeyId\":\"k2\"}");
    assert_int_equal(json_array_size(json_object_get(r, "Aliases")), 2);
    json_decref(r);
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "UpdateAlias",
           "{\"AliasName\":\"alias/none\",\"TargetKeyId\":\"k2\"}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "UpdateAlias",
           "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"nope\"}");
    OK(h, "ScheduleKeyDeletion",
       "{\"KeyId\":\"k1\",\"PendingWindowInDays\":7}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "UpdateAlias", "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"k1\"}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "KMSInvalidStateException",
           "CreateAlias", "{\"AliasName\":\"alias/q\",\"TargetKeyId\":\"k1\"}");
    /* An alias of a pending key may still move away from it. */
    OK(h, "UpdateAlias",
       "{\"AliasName\":\"alias/b_c-D/9\",\"TargetKeyId\":\"k2\"}");

    OK(h, "DeleteAlias", "{\"AliasName\":\"alias/a\"}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "DeleteAlias",
           "{\"AliasName\":\"alias/a\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "DeleteAlias",
           "{\"AliasName\":\"x\"}");
    assert_int_equal(count_of(h, "ListAliases", "Aliases"), 2);
    free(long_alias);
    free(max_alias);
}

/* An alias moved by UpdateAlias resolves to its new key for PutParameter,
 * and the parameter keeps the KeyId as given. */
static void alias_moved_for_put(void **state)
{
    struct h *h = *state;
    json_t *r;

    mk(h, "a", "alias/app");
    mk(h, "b", NULL);
    PUT_OK(h, "/p", "alias/app");
    OK(h, "DisableKey", "{\"KeyId\":\"a\"}");
    PUT_BAD(h, "/p", "alias/app");
    OK(h, "UpdateAlias", "{\"AliasName\":\"alias/app\",\"TargetKeyId\":\"b\"}");
    PUT_OK(h, "/p", "alias/app");
    r = h_q(h, "DescribeParameters", "{}");
    assert_string_equal(
        js(json_array_get(json_object_get(r, "Parameters"), 0), "KeyId"),
        "alias/app");
    json_decref(r);
    OK(h, "DisableKey", "{\"KeyId\":\"b\"}");
    PUT_BAD(h, "/p", "alias/app");
}

/******************************************************************************
 * PutParameter's KeyId
 *****************************************************************************/

/* A SecureString put needs an enabled key: unknown, disabled and missing
 * default keys give InvalidKeyId and nothing is written; an overwrite
 * without KeyId checks the stored one. */
static void put_key_checked(void **state)
{
    struct h *h = *state;
    json_t *r;

    PUT_BAD(h, "/s", NULL); /* no default key yet */
    PUT_BAD(h, "/s", "nope");
    PUT_BAD(h, "/s", "alias/nope");
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/s\"}");
    mk(h, "k", NULL);
    PUT_OK(h, "/s", "k");
    OK(h, "DisableKey", "{\"KeyId\":\"k\"}");
    PUT_BAD(h, "/s", "k");
    PUT_BAD(h, "/s", NULL); /* the stored KeyId, k */
    OK(h, "EnableKey", "{\"KeyId\":\"k\"}");
    PUT_OK(h, "/s", NULL);
    r = h_q(h, "GetParameter", "{\"Name\":\"/s\"}");
    assert_int_equal(ji(json_object_get(r, "Parameter"), "Version"), 2);
    json_decref(r);
    h_ensure_key(h, NULL);
    PUT_OK(h, "/d", NULL);
    r = h_q(h, "DescribeParameters",
            "{\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":[\"/d\"]}]}");
    assert_string_equal(
        js(json_array_get(json_object_get(r, "Parameters"), 0), "KeyId"),
        "alias/aws/ssm");
    json_decref(r);
    /* String parameters need no key. */
    h_put(h, "/plain", "v");
}

/* A KeyId may be a key id, a key ARN, an alias name or an alias ARN, for
 * the ops, the reads and PutParameter; an ARN of another account, region
 * or service names nothing. */
static void key_id_forms(void **state)
{
    struct h *h = *state;
    const char *forms[] = {"k", ARN_KEY "k", "alias/k", ARN_ALIAS "alias/k"};
    const char *none[] = {"arn:aws:kms:other:000000000000:key/k",
                          "arn:aws:kms:local:111111111111:key/k",
                          "arn:aws:ssm:local:000000000000:key/k",
                          "arn:aws-cn:kms:local:000000000000:alias/k",
                          "key/k",
                          "K",
                          ARN_KEY,
                          ARN_KEY "k/x",
                          "alias/K"};

    mk(h, "k", "alias/k");
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        json_t *m = describe(h, forms[i]);
        json_t *r = h_q(h, "GetKeyMaterial", "{\"KeyId\":\"%s\"}", forms[i]);
        assert_string_equal(js(m, "KeyId"), "k");
        assert_string_equal(js(r, "KeyId"), "k");
        json_decref(m);
        json_decref(r);
        PUT_OK(h, "/p", forms[i]);
        OK(h, "DisableKey", "{\"KeyId\":\"%s\"}", forms[i]);
        assert_state(h, "k", "Disabled");
        OK(h, "EnableKey", "{\"KeyId\":\"%s\"}", forms[i]);
    }
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        h_qfail(h, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
                "{\"KeyId\":\"%s\"}", none[i]);
        h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "EnableKey",
               "{\"KeyId\":\"%s\"}", none[i]);
        PUT_BAD(h, "/p", none[i]);
    }
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "DescribeKey",
            "{}");
    h_qfail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "GetKeyMaterial",
            "{\"KeyId\":\"\"}");
}

/******************************************************************************
 * RewrapKeyring
 *****************************************************************************/

static char *material_json(struct h *h)
{
    json_t *r = h_q(h, "ListKeys", "{}");
    json_t *all = json_array();
    json_t *keys = json_object_get(r, "Keys");
    char *s;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_array_append_new(all,
                              h_q(h, "GetKeyMaterial", "{\"KeyId\":\"%s\"}",
                                  js(json_array_get(keys, i), "KeyId")));
    }
    s = json_dumps(all, JSON_SORT_KEYS);
    json_decref(all);
    json_decref(r);
    return s;
}

/* RewrapKeyring replaces every version's material and root key when it
 * lists exactly the keyring's keys and versions; any other list is a
 * ValidationException that changes nothing. */
static void rewrap_keyring(void **state)
{
    struct h *h = *state;
    const struct rw_key all[] = {{"a", 2, {1, 2}}, {"b", 1, {1}}};
    const struct rw_key missing_key[] = {{"a", 2, {1, 2}}};
    const struct rw_key missing_version[] = {{"a", 1, {2}}, {"b", 1, {1}}};
    const struct rw_key unknown_key[] = {{"a", 2, {1, 2}}, {"c", 1, {1}}};
    const struct rw_key unknown_version[] = {{"a", 2, {1, 3}}, {"b", 1, {1}}};
    const struct rw_key dup_version[] = {{"a", 2, {1, 1}}, {"b", 1, {1}}};
    const struct rw_key dup_key[] = {{"a", 2, {1, 2}}, {"a", 2, {1, 2}}};
    const struct rw_key extra[] = {
        {"a", 2, {1, 2}}, {"b", 1, {1}}, {"b", 1, {1}}};
    const struct rw_key alias_form[] = {{"a", 2, {1, 2}}, {"alias/b", 1, {1}}};
    uint8_t m[H_MATERIAL_LEN];
    char *before, *after, *b64;
    json_t *r, *v;

    mk(h, "a", NULL);
    mk(h, "b", "alias/b");
    assert_outcome(rotate(h, "a", 2, H_ROOT_KEY, 2), 0, "");
    before = material_json(h);
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, missing_key, 1, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, missing_version, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, unknown_key, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, unknown_version, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, dup_version, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, dup_key, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, extra, 3, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, alias_form, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    /* Material wrapped by another root key than RootKey says. */
    assert_outcome(rewrap(h, OTHER_ROOT, H_ROOT_KEY, all, 2, 9),
                   CAIRN_INVALID_ARGUMENT, "ValidationException");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "RewrapKeyring",
           "{\"RootKey\":\"%s\"}", OTHER_ROOT);
    after = material_json(h);
    assert_string_equal(before, after);
    free(after);

    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, all, 2, 9), 0, "");
    h_material(m, OTHER_ROOT, 9);
    b64 = mpjson_base64(m, sizeof(m));
    for (int k = 0; k < 2; k++) {
        r = h_q(h, "GetKeyMaterial", "{\"KeyId\":\"%s\"}", k ? "b" : "a");
        v = json_object_get(r, "Versions");
        assert_int_equal(json_array_size(v), k ? 1 : 2);
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            assert_int_equal(ji(x, "Version"), (long long)i + 1);
            assert_string_equal(js(x, "Material"), b64);
            assert_string_equal(js(x, "RootKey"), OTHER_ROOT);
        }
        json_decref(r);
    }
    free(b64);
    free(before);
    /* An empty keyring rewraps with an empty list. */
    {
        struct h e;
        h_open(&e, NULL);
        assert_outcome(rewrap(&e, "8899AABBCCDDEEFF", OTHER_ROOT, NULL, 0, 9),
                       CAIRN_INVALID_ARGUMENT, "ValidationException");
        assert_outcome(rewrap(&e, OTHER_ROOT, OTHER_ROOT, NULL, 0, 9), 0, "");
        h_close(&e);
    }
}

/******************************************************************************
 * Determinism, persistence, snapshots
 *****************************************************************************/

/* One scripted history of keyring commands and puts. */
static void script(struct h *h)
{
    const struct rw_key all[] = {
        {"k1", 2, {1, 2}}, {"k2", 1, {1}}, {"default-key", 1, {1}}};
    int64_t due;

    mk(h, "k1", "alias/one");
    mk(h, "k2", NULL);
    h_ensure_key(h, NULL);
    PUT_OK(h, "/s/1", NULL);
    PUT_OK(h, "/s/2", "alias/one");
    assert_outcome(rotate(h, "k1", 5, H_ROOT_KEY, 2), 0, "");
    OK(h, "CreateAlias",
       "{\"AliasName\":\"alias/two\",\"TargetKeyId\":\"k2\"}");
    OK(h, "UpdateAlias",
       "{\"AliasName\":\"alias/one\",\"TargetKeyId\":\"k2\"}");
    OK(h, "EnableKeyRotation", "{\"KeyId\":\"k1\"}");
    OK(h, "DisableKey", "{\"KeyId\":\"k2\"}");
    PUT_BAD(h, "/s/2", NULL);
    OK(h, "EnableKey", "{\"KeyId\":\"k2\"}");
    assert_outcome(rewrap(h, OTHER_ROOT, OTHER_ROOT, all, 3, 7), 0, "");
    mk(h, "k3", "alias/three");
    OK(h, "ScheduleKeyDeletion",
       "{\"KeyId\":\"k3\",\"PendingWindowInDays\":7}");
    due = h->ts + 7 * DAY_MS;
    h->ts = due;
    OK(h, "DeleteAlias", "{\"AliasName\":\"alias/two\"}");
    h_fail(h, CAIRN_NOT_FOUND, "NotFoundException", "EnableKey",
           "{\"KeyId\":\"k3\"}");
}

/* Two stores that apply the same commands reach the same digest and
 * answer the same reads. */
static void deterministic(void **state)
{
    struct h a, b;
    uint8_t da[32], db[32];
    uint64_t ia, ib;
    struct cairn_error err;
    static const char *const reads[][2] = {
        {"ListKeys", "{}"},
        {"ListAliases", "{}"},
        {"DescribeKey", "{\"KeyId\":\"k1\"}"},
        {"GetKeyMaterial", "{\"KeyId\":\"alias/aws/ssm\"}"},
    };

    (void)state;
    h_open(&a, NULL);
    h_open(&b, NULL);
    script(&a);
    script(&b);
    assert_int_equal(store_digest(a.s, da, &ia, &err), 0);
    assert_int_equal(store_digest(b.s, db, &ib, &err), 0);
    assert_int_equal(ia, ib);
    assert_memory_equal(da, db, sizeof(da));
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        json_t *ra = h_q(&a, reads[i][0], "%s", reads[i][1]);
        json_t *rb = h_q(&b, reads[i][0], "%s", reads[i][1]);
        assert_true(json_equal(ra, rb));
        json_decref(ra);
        json_decref(rb);
    }
    h_qfail(&a, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
            "{\"KeyId\":\"k3\"}");
    /* One more keyring command on one side only changes the digest. */
    OK(&a, "DisableKey", "{\"KeyId\":\"k2\"}");
    assert_int_equal(store_digest(a.s, da, &ia, &err), 0);
    assert_memory_not_equal(da, db, sizeof(da));
    h_close(&a);
    h_close(&b);
}

/* The keyring survives a reopen, and a snapshot restored into a fresh
 * store answers every keyring read the same and keeps deleting by time. */
static void snapshot_restore(void **state)
{
    struct h *h = *state;
    struct h fresh;
    struct cairn_error err;
    char path[4096];
    bool restored = false;
    uint64_t idx = 0;
    char *a, *b;
    int fd;
    int64_t due;
    static const char *const reads[][2] = {
        {"ListKeys", "{}"},
        {"ListAliases", "{}"},
        {"DescribeKey", "{\"KeyId\":\"k1\"}"},
        {"DescribeKey", "{\"KeyId\":\"alias/gone\"}"},
        {"GetKeyMaterial", "{\"KeyId\":\"alias/one\"}"},
    };

    mk(h, "k1", "alias/one");
    mk(h, "k2", "alias/gone");
    assert_outcome(rotate(h, "k1", 4, H_ROOT_KEY, 2), 0, "");
    OK(h, "ScheduleKeyDeletion",
       "{\"KeyId\":\"k2\",\"PendingWindowInDays\":7}");
    due = h->ts + 7 * DAY_MS;
    h_reopen(h);
    a = material_json(h);
    snprintf(path, sizeof(path), "%s/snap.out", h->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(store_snapshot_write(h->s, fd, &err), 0);
    h_open(&fresh, NULL);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(store_restore(fresh.s, fd, true, &restored, &idx, &err),
                     0);
    assert_true(restored);
    close(fd);
    fresh.index = idx;
    fresh.ts = h->ts;
    b = material_json(&fresh);
    assert_string_equal(a, b);
    free(a);
    free(b);
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        json_t *ra = h_q(h, reads[i][0], "%s", reads[i][1]);
        json_t *rb = h_q(&fresh, reads[i][0], "%s", reads[i][1]);
        assert_true(json_equal(ra, rb));
        json_decref(ra);
        json_decref(rb);
    }
    /* The due index came along: the pending key goes at its time. */
    fresh.ts = due;
    OK(&fresh, "EnableKey", "{\"KeyId\":\"k1\"}");
    h_qfail(&fresh, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
            "{\"KeyId\":\"alias/gone\"}");
    h_qfail(&fresh, CAIRN_NOT_FOUND, "NotFoundException", "DescribeKey",
            "{\"KeyId\":\"k2\"}");
    PUT_OK(&fresh, "/p", "alias/one");
    h_close(&fresh);
}

/* Keyring commands are deduplicated by client session like other
 * writes: a retried CreateKey answers the first outcome. */
static void session_retry(void **state)
{
    struct h *h = *state;
    uint8_t m[H_MATERIAL_LEN];
    struct buf cmd;
    msgpack_packer pk;
    const struct sm_outcome *o;
    char *first, *second;

    h_material(m, H_ROOT_KEY, 1);
    buf_init(&cmd);
    mp_packer_init(&pk, &cmd);
    msgpack_pack_map(&pk, 6);
    mp_pack_kv_cstr(&pk, "op", "CreateKey");
    mp_pack_kv_i64(&pk, "ts", h->ts + 1000);
    mp_pack_kv_cstr(&pk, "user", "arn:aws:iam::000000000000:user/test");
    mp_pack_kv_cstr(&pk, "cid", "client");
    mp_pack_kv_u64(&pk, "seq", 1);
    mp_pack_cstr(&pk, "req");
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_cstr(&pk, "KeyId", "k");
    mp_pack_cstr(&pk, "Material");
    mp_pack_bin(&pk, m, sizeof(m));
    mp_pack_kv_cstr(&pk, "RootKey", H_ROOT_KEY);
    o = h_apply_raw(h, cmd.data, cmd.len);
    assert_outcome(o, 0, "");
    first = test_mp_to_json(o->body, o->body_len);
    o = h_apply_raw(h, cmd.data, cmd.len);
    assert_outcome(o, 0, "");
    second = test_mp_to_json(o->body, o->body_len);
    assert_string_equal(first, second);
    assert_int_equal(count_of(h, "ListKeys", "Keys"), 1);
    free(first);
    free(second);
    buf_close(&cmd);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(create_key_ok),
        T(create_key_errors),
        T(default_key),
        T(default_key_cairn_alias_taken),
        T(create_key_outcome),
        T(rotate_key),
        T(rotate_key_errors),
        T(key_rotation_flag),
        T(enable_disable),
        T(schedule_and_cancel),
        T(deletion_by_time),
        T(deletion_at_exact_time),
        T(aliases),
        T(alias_moved_for_put),
        T(put_key_checked),
        T(key_id_forms),
        T(rewrap_keyring),
        cmocka_unit_test(deterministic),
        T(snapshot_restore),
        T(session_retry),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
