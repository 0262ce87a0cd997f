#include "keyring.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "store_int.h"

#define MATERIAL_MAGIC "CRNW"
#define MATERIAL_FP_AT 5 /* "CRNW", the format version, the fingerprint */

/* ---- syntax --------------------------------------------------------- */

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9');
}

bool keyring_id_valid(struct mp_str id)
{
    if (id.p == NULL || id.n == 0 || id.n > KEYRING_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < id.n; i++) {
        if (!is_alnum(id.p[i]) && id.p[i] != '-') {
            return false;
        }
    }
    return true;
}

static bool has_prefix(struct mp_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

int keyring_alias_check(struct mp_str name,
                        bool allow_reserved,
                        struct cairn_error *err)
{
    const size_t pn = strlen("alias/");
    int shown = (int)(name.n > KEYRING_ALIAS_MAX ? KEYRING_ALIAS_MAX : name.n);

    if (name.p == NULL || name.n == 0 || name.n > KEYRING_ALIAS_MAX) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "1 validation error detected: Value at "
                               "'aliasName' failed to satisfy constraint: "
                               "Member must have length between 1 and %d",
                               KEYRING_ALIAS_MAX);
    }
    for (size_t i = 0; i < name.n; i++) {
        char ch = name.p[i];
        if (!is_alnum(ch) && ch != '/' && ch != '_' && ch != '-') {
            return cairn_error_set(
                err, CAIRN_INVALID_ARGUMENT, "ValidationException",
                "1 validation error detected: Value '%.*s' at 'aliasName' "
                "failed to satisfy constraint: Member must satisfy regular "
                "expression pattern: ^[a-zA-Z0-9/_-]+$",
                shown, name.p);
        }
    }
    if (!has_prefix(name, "alias/") || name.n == pn) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "Alias must start with the prefix \"alias/\" "
                               "followed by a name: %.*s",
                               shown, name.p);
    }
    if (!allow_reserved && has_prefix(name, KEYRING_RESERVED_PREFIX)) {
        return cairn_error_set(err, CAIRN_PERMISSION_DENIED,
                               "NotAuthorizedException",
                               "The alias %.*s is reserved: names that begin "
                               "with %s belong to the AWS managed (default) "
                               "key.",
                               shown, name.p, KEYRING_RESERVED_PREFIX);
    }
    return 0;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    /* Lower case only: fingerprints are compared as text elsewhere. */
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

bool keyring_root_key_valid(struct mp_str root_key)
{
    if (root_key.p == NULL || root_key.n != KEYRING_FINGERPRINT_HEX) {
        return false;
    }
    for (size_t i = 0; i < root_key.n; i++) {
        if (hex_value(root_key.p[i]) < 0) {
            return false;
        }
    }
    return true;
}

int keyring_material_check(struct mp_str material,
                           bool is_bin,
                           struct mp_str root_key,
                           struct cairn_error *err)
{
    const uint8_t *m = (const uint8_t *)material.p;

    if (material.p == NULL || !is_bin || material.n != KEYRING_MATERIAL_LEN ||
        memcmp(m, MATERIAL_MAGIC, 4) != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "Material must be wrapped key material: %d "
                               "bytes (binary) starting \"CRNW\".",
                               KEYRING_MATERIAL_LEN);
    }
    if (!keyring_root_key_valid(root_key)) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "RootKey must be the root key fingerprint: %d "
                               "lower-case hex digits.",
                               KEYRING_FINGERPRINT_HEX);
    }
    for (size_t i = 0; i < KEYRING_FINGERPRINT_LEN; i++) {
        int hi = hex_value(root_key.p[2 * i]);
        int lo = hex_value(root_key.p[2 * i + 1]);
        if (m[MATERIAL_FP_AT + i] != (uint8_t)(hi << 4 | lo)) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "ValidationException",
                                   "The material was wrapped by another root "
                                   "key than RootKey %.*s.",
                                   (int)root_key.n, root_key.p);
        }
    }
    return 0;
}

size_t keyring_meta_key(const char *prefix, struct mp_str name, uint8_t *out)
{
    size_t pn = strlen(prefix);
    memcpy(out, prefix, pn);
    memcpy(out + pn, name.p, name.n);
    return pn + name.n;
}

/* ---- records -------------------------------------------------------- */

/* mp_rd has no boolean reader: records are ours, so read the two bytes. */
static int rd_bool(struct mp_rd *r, bool *v)
{
    if (r->left < 1 || (r->p[0] != 0xc2 && r->p[0] != 0xc3)) {
        return -1;
    }
    *v = r->p[0] == 0xc3;
    r->p++;
    r->left--;
    return 0;
}

static bool name_is(struct mp_str name, const char *s)
{
    return mp_str_eqn(name, s);
}

static int decode_version(struct mp_rd *r, struct keyring_version *v)
{
    uint32_t n;
    struct mp_str name;
    bool is_bin;

    if (mp_rd_map(r, &n) != 0) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        int rc;
        if (mp_rd_str(r, &name) != 0) {
            return -1;
        }
        if (name_is(name, "Version")) {
            rc = mp_rd_u64(r, &v->version);
        } else if (name_is(name, "Material")) {
            rc = mp_rd_bytes(r, &v->material, &is_bin);
        } else if (name_is(name, "RootKey")) {
            rc = mp_rd_str(r, &v->root_key);
        } else if (name_is(name, "CreationDate")) {
            rc = mp_rd_i64(r, &v->created);
        } else {
            rc = mp_rd_skip(r);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

int keyring_key_decode(const void *p, size_t n, struct keyring_key *k)
{
    struct mp_rd r;
    uint32_t nf;
    struct mp_str name;

    memset(k, 0, offsetof(struct keyring_key, versions));
    mp_rd_init(&r, p, n);
    if (mp_rd_map(&r, &nf) != 0) {
        return -1;
    }
    for (uint32_t i = 0; i < nf; i++) {
        int rc;
        if (mp_rd_str(&r, &name) != 0) {
            return -1;
        }
        if (name_is(name, "KeyId")) {
            rc = mp_rd_str(&r, &k->id);
        } else if (name_is(name, "Description")) {
            rc = mp_rd_str(&r, &k->description);
        } else if (name_is(name, "KeyState")) {
            rc = mp_rd_str(&r, &k->state);
        } else if (name_is(name, "KeyManager")) {
            rc = mp_rd_str(&r, &k->manager);
        } else if (name_is(name, "CreationDate")) {
            rc = mp_rd_i64(&r, &k->created);
        } else if (name_is(name, "DeletionDate")) {
            rc = mp_rd_i64(&r, &k->deletion);
        } else if (name_is(name, "PendingWindowInDays")) {
            rc = mp_rd_u64(&r, &k->window_days);
        } else if (name_is(name, "KeyRotationEnabled")) {
            rc = rd_bool(&r, &k->rotation);
        } else if (name_is(name, "CurrentVersion")) {
            rc = mp_rd_u64(&r, &k->current);
        } else if (name_is(name, "Versions")) {
            uint32_t nv;
            rc = mp_rd_array(&r, &nv);
            if (rc == 0 && nv > KEYRING_MAX_VERSIONS) {
                return -1;
            }
            for (uint32_t j = 0; rc == 0 && j < nv; j++) {
                memset(&k->versions[j], 0, sizeof(k->versions[j]));
                rc = decode_version(&r, &k->versions[j]);
            }
            k->n_versions = nv;
        } else {
            rc = mp_rd_skip(&r);
        }
        if (rc != 0) {
            return -1;
        }
    }
    if (k->id.p == NULL || k->state.p == NULL || k->n_versions == 0) {
        return -1;
    }
    return 0;
}

int keyring_key_encode(const struct keyring_key *k, struct buf *out)
{
    msgpack_packer pk;
    bool pending = k->deletion != 0;

    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, 8 + (pending ? 2 : 0));
    mp_pack_kv_str(&pk, "KeyId", k->id.p, k->id.n);
    mp_pack_kv_str(&pk, "Description",
                   k->description.p != NULL ? k->description.p : "",
                   k->description.n);
    mp_pack_kv_str(&pk, "KeyState", k->state.p, k->state.n);
    mp_pack_kv_str(&pk, "KeyManager", k->manager.p, k->manager.n);
    mp_pack_kv_i64(&pk, "CreationDate", k->created);
    if (pending) {
        mp_pack_kv_i64(&pk, "DeletionDate", k->deletion);
        mp_pack_kv_u64(&pk, "PendingWindowInDays", k->window_days);
    }
    mp_pack_kv_bool(&pk, "KeyRotationEnabled", k->rotation);
    mp_pack_kv_u64(&pk, "CurrentVersion", k->current);
    mp_pack_cstr(&pk, "Versions");
    msgpack_pack_array(&pk, k->n_versions);
    for (uint32_t i = 0; i < k->n_versions; i++) {
        const struct keyring_version *v = &k->versions[i];
        msgpack_pack_map(&pk, 4);
        mp_pack_kv_u64(&pk, "Version", v->version);
        mp_pack_cstr(&pk, "Material");
        mp_pack_bin(&pk, v->material.p, v->material.n);
        mp_pack_kv_str(&pk, "RootKey", v->root_key.p, v->root_key.n);
        mp_pack_kv_i64(&pk, "CreationDate", v->created);
    }
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

int keyring_alias_decode(const void *p, size_t n, struct keyring_alias *a)
{
    struct mp_rd r;
    uint32_t nf;
    struct mp_str name;

    memset(a, 0, sizeof(*a));
    mp_rd_init(&r, p, n);
    if (mp_rd_map(&r, &nf) != 0) {
        return -1;
    }
    for (uint32_t i = 0; i < nf; i++) {
        int rc;
        if (mp_rd_str(&r, &name) != 0) {
            return -1;
        }
        if (name_is(name, "TargetKeyId")) {
            rc = mp_rd_str(&r, &a->target);
        } else if (name_is(name, "CreationDate")) {
            rc = mp_rd_i64(&r, &a->created);
        } else if (name_is(name, "LastUpdatedDate")) {
            rc = mp_rd_i64(&r, &a->updated);
        } else {
            rc = mp_rd_skip(&r);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return a->target.p != NULL && a->target.n <= KEYRING_ID_MAX ? 0 : -1;
}

int keyring_alias_encode(const struct keyring_alias *a, struct buf *out)
{
    msgpack_packer pk;
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_str(&pk, "TargetKeyId", a->target.p, a->target.n);
    mp_pack_kv_i64(&pk, "CreationDate", a->created);
    mp_pack_kv_i64(&pk, "LastUpdatedDate", a->updated);
    return out->oom ? CAIRN_RESOURCE_EXHAUSTED : 0;
}

/* ---- resolution ----------------------------------------------------- */

/* Consume @p s from the front of @p ref if it is there. */
static bool eat(struct mp_str *ref, const char *s, size_t n)
{
    if (ref->n < n || memcmp(ref->p, s, n) != 0) {
        return false;
    }
    ref->p += n;
    ref->n -= n;
    return true;
}

static bool eat_cstr(struct mp_str *ref, const char *s)
{
    return eat(ref, s, strlen(s));
}

/* Strip "arn:<partition>:kms:<region>:<account>:" from @p ref: true when
 * @p ref is an ARN of this store's KMS namespace. */
static bool eat_kms_arn(struct mp_str *ref, const struct names_arn *arn)
{
    struct mp_str r = *ref;
    if (!eat_cstr(&r, "arn:") || !eat_cstr(&r, arn->partition) ||
        !eat_cstr(&r, ":kms:") || !eat_cstr(&r, arn->region) ||
        !eat_cstr(&r, ":") || !eat_cstr(&r, arn->account) ||
        !eat_cstr(&r, ":")) {
        return false;
    }
    *ref = r;
    return true;
}

bool keyring_ref_is_alias(struct mp_str ref)
{
    if (has_prefix(ref, "alias/")) {
        return true;
    }
    if (!has_prefix(ref, "arn:")) {
        return false;
    }
    /* The resource part of an ARN follows its fifth ':'. */
    for (int colons = 0; ref.n > 0 && colons < 5; ref.p++, ref.n--) {
        colons += ref.p[0] == ':';
    }
    return has_prefix(ref, "alias/");
}

int keyring_resolve(MDB_txn *txn,
                    MDB_dbi meta,
                    const struct names_arn *arn,
                    struct mp_str ref,
                    char id[KEYRING_ID_MAX + 1],
                    bool *found)
{
    struct mp_str bare = ref;
    bool is_arn = has_prefix(ref, "arn:");

    *found = false;
    id[0] = '\0';
    if (ref.p == NULL) {
        return 0;
    }
    if (is_arn && !eat_kms_arn(&bare, arn)) {
        return 0; /* another service, partition, region or account */
    }
    if (is_arn && eat_cstr(&bare, "key/")) {
        if (!keyring_id_valid(bare)) {
            return 0;
        }
    } else if (has_prefix(bare, "alias/")) {
        uint8_t key[KEYRING_META_KEY_MAX];
        MDB_val k, v;
        struct keyring_alias a;
        int rc;
        if (bare.n > KEYRING_ALIAS_MAX) {
            return 0;
        }
        k.mv_data = key;
        k.mv_size = keyring_meta_key(META_KMS_ALIAS, bare, key);
        rc = mdb_get(txn, meta, &k, &v);
        if (rc == MDB_NOTFOUND) {
            return 0;
        }
        if (rc != 0) {
            return rc;
        }
        if (keyring_alias_decode(v.mv_data, v.mv_size, &a) != 0) {
            return MDB_CORRUPTED;
        }
        bare = a.target;
    } else if (is_arn || !keyring_id_valid(bare)) {
        return 0;
    }
    memcpy(id, bare.p, bare.n);
    id[bare.n] = '\0';
    *found = true;
    return 0;
}

/* ---- packing -------------------------------------------------------- */

static void pack_kms_arn(msgpack_packer *pk,
                         const struct names_arn *arn,
                         const char *kind,
                         struct mp_str name)
{
    size_t n = strlen("arn:") + strlen(arn->partition) + strlen(":kms:") +
               strlen(arn->region) + 1 + strlen(arn->account) + 1 +
               strlen(kind) + name.n;
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, "arn:", 4);
    msgpack_pack_str_body(pk, arn->partition, strlen(arn->partition));
    msgpack_pack_str_body(pk, ":kms:", 5);
    msgpack_pack_str_body(pk, arn->region, strlen(arn->region));
    msgpack_pack_str_body(pk, ":", 1);
    msgpack_pack_str_body(pk, arn->account, strlen(arn->account));
    msgpack_pack_str_body(pk, ":", 1);
    msgpack_pack_str_body(pk, kind, strlen(kind));
    msgpack_pack_str_body(pk, name.p, name.n);
}

void keyring_pack_key_arn(msgpack_packer *pk,
                          const struct names_arn *arn,
                          struct mp_str id)
{
    pack_kms_arn(pk, arn, "key/", id);
}

void keyring_pack_alias_arn(msgpack_packer *pk,
                            const struct names_arn *arn,
                            struct mp_str name)
{
    pack_kms_arn(pk, arn, "", name);
}

void keyring_format_key_arn(const struct names_arn *arn,
                            struct mp_str id,
                            char *out,
                            size_t cap)
{
    snprintf(out, cap, "arn:%s:kms:%s:%s:key/%.*s", arn->partition, arn->region,
             arn->account, (int)id.n, id.p);
}

void keyring_pack_time(msgpack_packer *pk, const char *key, int64_t ms)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_double(pk, (double)ms / 1000.0);
}

void keyring_pack_metadata(msgpack_packer *pk,
                           const struct names_arn *arn,
                           const struct keyring_key *k)
{
    bool pending = mp_str_eqn(k->state, KEYRING_PENDING) && k->deletion != 0;

    msgpack_pack_map(pk, 14 + (pending ? 2 : 0));
    mp_pack_kv_str(pk, "KeyId", k->id.p, k->id.n);
    mp_pack_cstr(pk, "Arn");
    keyring_pack_key_arn(pk, arn, k->id);
    mp_pack_kv_cstr(pk, "AWSAccountId", arn->account);
    mp_pack_kv_str(pk, "Description",
                   k->description.p != NULL ? k->description.p : "",
                   k->description.n);
    mp_pack_kv_str(pk, "KeyState", k->state.p, k->state.n);
    mp_pack_kv_bool(pk, "Enabled", mp_str_eqn(k->state, KEYRING_ENABLED));
    keyring_pack_time(pk, "CreationDate", k->created);
    if (pending) {
        keyring_pack_time(pk, "DeletionDate", k->deletion);
        mp_pack_kv_u64(pk, "PendingDeletionWindowInDays", k->window_days);
    }
    mp_pack_kv_str(pk, "KeyManager", k->manager.p, k->manager.n);
    mp_pack_kv_cstr(pk, "KeyUsage", "ENCRYPT_DECRYPT");
    mp_pack_kv_cstr(pk, "KeySpec", "SYMMETRIC_DEFAULT");
    mp_pack_kv_cstr(pk, "Origin", "AWS_KMS");
    mp_pack_kv_bool(pk, "MultiRegion", false);
    mp_pack_kv_bool(pk, "KeyRotationEnabled", k->rotation);
    mp_pack_kv_u64(pk, "CurrentVersion", k->current);
}
