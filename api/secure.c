#include "secure.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "query.h"

#define DEFAULT_ALIAS "alias/aws/ssm"
#define CACHE_MAX 256
#define KEY_ID_MAX 64

/* Unwrapped material of one key version, kept so that every read does not
 * unwrap again. Material never changes for a (key, version): a root key
 * rotation re-wraps the same bytes. */
struct cached
{
    char key_id[KEY_ID_MAX + 1];
    uint32_t version;
    uint8_t material[ENV_KEY_LEN];
};

struct secure
{
    struct store *store;
    struct env_root_key root;
    struct env_root_key previous;
    bool has_previous;
    struct cached cache[CACHE_MAX];
    unsigned n_cache;
    unsigned next_evict;
};

int secure_create(struct store *store,
                  const struct env_root_key *root,
                  const struct env_root_key *previous,
                  struct secure **out,
                  struct cairn_error *err)
{
    struct secure *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    s->store = store;
    s->root = *root;
    if (previous != NULL) {
        s->previous = *previous;
        s->has_previous = true;
    }
    *out = s;
    return 0;
}

void secure_destroy(struct secure *s)
{
    if (s == NULL) {
        return;
    }
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

const char *secure_root_fingerprint(const struct secure *s)
{
    return s->root.fingerprint_hex;
}

/* ---- the keyring in the local store --------------------------------- */

/* One key as GetKeyMaterial answers it; strings point into doc. */
struct key_view
{
    struct mp_doc doc;
    struct mp_str key_id;
    struct mp_str state;
    uint64_t current;
    const msgpack_object_array *versions;
};

/* Read key @p id (any form) from the local store. NOT_FOUND when absent. */
static int key_load(struct secure *s,
                    const char *id,
                    size_t id_len,
                    struct key_view *k,
                    struct buf *scratch,
                    struct cairn_error *err)
{
    struct buf q;
    msgpack_packer pk;
    int rv;

    memset(k, 0, sizeof(*k));
    buf_init(&q);
    mp_packer_init(&pk, &q);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_str(&pk, "KeyId", id, id_len);
    if (q.oom) {
        buf_close(&q);
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    buf_reset(scratch);
    rv = query_run(s->store, "GetKeyMaterial", q.data, q.len, scratch, err);
    buf_close(&q);
    if (rv != 0) {
        return rv;
    }
    rv = mp_doc_parse_trusted(&k->doc, scratch->data, scratch->len, err);
    if (rv != 0) {
        return rv;
    }
    if (mp_get_str(&k->doc.root, "KeyId", &k->key_id, NULL) != 1 ||
        k->key_id.n == 0 || k->key_id.n > KEY_ID_MAX ||
        mp_get_str(&k->doc.root, "KeyState", &k->state, NULL) != 1 ||
        mp_get_u64(&k->doc.root, "CurrentVersion", &k->current, NULL) != 1 ||
        mp_get_array(&k->doc.root, "Versions", &k->versions, NULL) != 1) {
        mp_doc_close(&k->doc);
        return cairn_error_set(err, CAIRN_INTERNAL, "InternalServerError",
                               "the keyring entry of %.*s is malformed",
                               (int)(id_len > 256 ? 256 : id_len), id);
    }
    return 0;
}

static const struct env_root_key *root_for(struct secure *s,
                                           const uint8_t *wrapped,
                                           size_t len)
{
    uint8_t fp[ENV_FINGERPRINT_LEN];
    if (env_wrapped_fingerprint(wrapped, len, fp, NULL) != 0) {
        return NULL;
    }
    if (memcmp(fp, s->root.fingerprint, sizeof(fp)) == 0) {
        return &s->root;
    }
    if (s->has_previous &&
        memcmp(fp, s->previous.fingerprint, sizeof(fp)) == 0) {
        return &s->previous;
    }
    return NULL;
}

/* Unwrap @p wrapped of key @p key_id version @p version with whichever
 * root key wrapped it. */
static int unwrap_any(struct secure *s,
                      const char *key_id,
                      uint32_t version,
                      const uint8_t *wrapped,
                      size_t len,
                      uint8_t material[ENV_KEY_LEN],
                      struct cairn_error *err)
{
    const struct env_root_key *rk = root_for(s, wrapped, len);
    if (rk == NULL) {
        uint8_t fp[ENV_FINGERPRINT_LEN];
        char hex[2 * ENV_FINGERPRINT_LEN + 1] = "?";
        if (env_wrapped_fingerprint(wrapped, len, fp, NULL) == 0) {
            for (int i = 0; i < ENV_FINGERPRINT_LEN; i++) {
                snprintf(hex + 2 * i, 3, "%02x", fp[i]);
            }
        }
        return cairn_error_set(
            err, CAIRN_FAILED_PRECONDITION, "InvalidKeyId",
            "key %s version %u is wrapped by root key %s, but this node has "
            "root key %s%s%s: start it with the cluster's root key file",
            key_id, version, hex, s->root.fingerprint_hex,
            s->has_previous ? " and previous root key " : "",
            s->has_previous ? s->previous.fingerprint_hex : "");
    }
    return env_unwrap_material(rk, key_id, version, wrapped, len, material,
                               err);
}

/* The material of @p version of key @p k, from the cache or unwrapped. */
static int material_of(struct secure *s,
                       const struct key_view *k,
                       uint32_t version,
                       uint8_t material[ENV_KEY_LEN],
                       struct cairn_error *err)
{
    char id[KEY_ID_MAX + 1];
    struct cached *c;

    memcpy(id, k->key_id.p, k->key_id.n);
    id[k->key_id.n] = '\0';
    for (unsigned i = 0; i < s->n_cache; i++) {
        if (s->cache[i].version == version &&
            strcmp(s->cache[i].key_id, id) == 0) {
            memcpy(material, s->cache[i].material, ENV_KEY_LEN);
            return 0;
        }
    }
    for (uint32_t i = 0; i < k->versions->size; i++) {
        const msgpack_object *v = &k->versions->ptr[i];
        uint64_t n = 0;
        struct mp_str wrapped;
        bool is_bin = false;
        int rv;

        if (mp_get_u64(v, "Version", &n, NULL) != 1 || n != version) {
            continue;
        }
        if (mp_get_bytes(v, "Material", &wrapped, &is_bin, NULL) != 1 ||
            !is_bin) {
            break;
        }
        rv = unwrap_any(s, id, version, (const uint8_t *)wrapped.p, wrapped.n,
                        material, err);
        if (rv != 0) {
            return rv;
        }
        if (s->n_cache < CACHE_MAX) {
            c = &s->cache[s->n_cache++];
        } else {
            c = &s->cache[s->next_evict++ % CACHE_MAX];
            OPENSSL_cleanse(c, sizeof(*c));
        }
        memcpy(c->key_id, id, sizeof(id));
        c->version = version;
        memcpy(c->material, material, ENV_KEY_LEN);
        return 0;
    }
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
                           "key %s has no version %u", id, version);
}

static int usable(const struct key_view *k, struct cairn_error *err)
{
    if (!mp_str_eqn(k->state, "Enabled")) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
                               "key %.*s is %.*s", (int)k->key_id.n,
                               k->key_id.p, (int)k->state.n, k->state.p);
    }
    return 0;
}

int secure_check_store(struct secure *s, struct cairn_error *err)
{
    struct buf resp, scratch;
    struct mp_doc d;
    const msgpack_object_array *keys = NULL;
    int rv;

    buf_init(&resp);
    buf_init(&scratch);
    rv = query_run(s->store, "ListKeys", "\x80", 1, &resp, err);
    if (rv == 0) {
        rv = mp_doc_parse_trusted(&d, resp.data, resp.len, err);
    }
    if (rv != 0) {
        goto out;
    }
    if (mp_get_array(&d.root, "Keys", &keys, NULL) == 1) {
        for (uint32_t i = 0; i < keys->size && rv == 0; i++) {
            struct mp_str id;
            struct key_view k;
            if (mp_get_str(&keys->ptr[i], "KeyId", &id, NULL) != 1) {
                continue;
            }
            rv = key_load(s, id.p, id.n, &k, &scratch, err);
            if (rv == CAIRN_NOT_FOUND) {
                rv = 0; /* deleted meanwhile */
                continue;
            }
            for (uint32_t v = 0; rv == 0 && v < k.versions->size; v++) {
                uint64_t n = 0;
                uint8_t m[ENV_KEY_LEN];
                if (mp_get_u64(&k.versions->ptr[v], "Version", &n, NULL) == 1) {
                    rv = material_of(s, &k, (uint32_t)n, m, err);
                    OPENSSL_cleanse(m, sizeof(m));
                }
            }
            mp_doc_close(&k.doc);
        }
    }
    mp_doc_close(&d);
out:
    buf_close(&resp);
    buf_close(&scratch);
    return rv;
}

bool secure_store_has_keys(struct store *store)
{
    struct buf resp;
    struct mp_doc d;
    const msgpack_object_array *keys = NULL;
    struct cairn_error e;
    bool found = false;

    buf_init(&resp);
    if (query_run(store, "ListKeys", "\x80", 1, &resp, &e) == 0 &&
        mp_doc_parse_trusted(&d, resp.data, resp.len, NULL) == 0) {
        found =
            mp_get_array(&d.root, "Keys", &keys, NULL) == 1 && keys->size > 0;
        mp_doc_close(&d);
    }
    buf_close(&resp);
    return found;
}

bool secure_has_default_key(struct secure *s)
{
    struct buf scratch;
    struct key_view k;
    struct cairn_error e;
    bool found;

    buf_init(&scratch);
    found = key_load(s, DEFAULT_ALIAS, strlen(DEFAULT_ALIAS), &k, &scratch,
                     &e) == 0;
    if (found) {
        mp_doc_close(&k.doc);
    }
    buf_close(&scratch);
    return found;
}

/* ---- sealing and opening ---------------------------------------------- */

static bool key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

int secure_seal_put(struct secure *s,
                    const msgpack_object *req,
                    struct mp_str name,
                    const char *key_id,
                    struct buf *out,
                    struct cairn_error *err)
{
    struct buf scratch, sealed;
    struct key_view k;
    struct mp_str value;
    bool is_bin = false;
    uint8_t material[ENV_KEY_LEN];
    char id[KEY_ID_MAX + 1];
    msgpack_packer pk;
    int rv;

    if (key_id == NULL) {
        key_id = DEFAULT_ALIAS;
    }
    if (mp_get_bytes(req, "Value", &value, &is_bin, err) != 1 || is_bin) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "A SecureString value must be a string.");
    }
    buf_init(&scratch);
    buf_init(&sealed);
    rv = key_load(s, key_id, strlen(key_id), &k, &scratch, err);
    if (rv != 0) {
        buf_close(&scratch);
        return rv;
    }
    rv = usable(&k, err);
    if (rv == 0) {
        rv = material_of(s, &k, (uint32_t)k.current, material, err);
    }
    if (rv == 0) {
        memcpy(id, k.key_id.p, k.key_id.n);
        id[k.key_id.n] = '\0';
        rv = env_seal(material, id, (uint32_t)k.current, name.p, name.n,
                      value.p, value.n, &sealed, err);
    }
    OPENSSL_cleanse(material, sizeof(material));
    mp_doc_close(&k.doc);
    buf_close(&scratch);
    if (rv != 0) {
        buf_close(&sealed);
        return rv;
    }

    /* The request again, with the sealed Value and its length. */
    mp_packer_init(&pk, out);
    {
        uint32_t n = 0;
        for (uint32_t i = 0; i < req->via.map.size; i++) {
            const msgpack_object *key = &req->via.map.ptr[i].key;
            n += !key_is(key, "Value") && !key_is(key, "ValueLength");
        }
        msgpack_pack_map(&pk, n + 2);
        for (uint32_t i = 0; i < req->via.map.size; i++) {
            const msgpack_object_kv *kv = &req->via.map.ptr[i];
            if (!key_is(&kv->key, "Value") &&
                !key_is(&kv->key, "ValueLength")) {
                msgpack_pack_object(&pk, kv->key);
                msgpack_pack_object(&pk, kv->val);
            }
        }
    }
    mp_pack_cstr(&pk, "Value");
    mp_pack_bin(&pk, sealed.data, sealed.len);
    mp_pack_kv_u64(&pk, "ValueLength", value.n);
    buf_close(&sealed);
    if (out->oom) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    return 0;
}

/* Open one sealed value of parameter @p name into @p plain. */
static int open_value(struct secure *s,
                      struct mp_str name,
                      const uint8_t *blob,
                      size_t len,
                      struct buf *plain,
                      struct buf *scratch,
                      struct cairn_error *err)
{
    const char *kid;
    size_t kid_len;
    uint32_t version;
    struct key_view k;
    uint8_t material[ENV_KEY_LEN];
    struct names_name nm;
    int rv;

    /* Values are bound to the canonical name (a root-level "x" and "/x"
     * are one parameter). */
    if (names_check_write(name.p, name.n, &nm, NULL) == 0) {
        name.p = nm.canonical;
        name.n = nm.canonical_len;
    }
    rv = env_sealed_key(blob, len, &kid, &kid_len, &version, err);
    if (rv != 0) {
        return cairn_error_set(err, CAIRN_DATA_LOSS,
                               "InvalidCiphertextException",
                               "the stored value of %.*s is not a sealed "
                               "SecureString value",
                               (int)(name.n > 256 ? 256 : name.n), name.p);
    }
    rv = key_load(s, kid, kid_len, &k, scratch, err);
    if (rv == CAIRN_NOT_FOUND) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "InvalidKeyId",
                               "the key %.*s that encrypted %.*s no longer "
                               "exists",
                               (int)kid_len, kid,
                               (int)(name.n > 256 ? 256 : name.n), name.p);
    }
    if (rv != 0) {
        return rv;
    }
    rv = usable(&k, err);
    if (rv == 0) {
        rv = material_of(s, &k, version, material, err);
    }
    if (rv == 0) {
        rv = env_open(material, name.p, name.n, blob, len, plain, err);
        if (rv == CAIRN_DATA_LOSS) {
            cairn_error_set(err, CAIRN_DATA_LOSS, "InvalidCiphertextException",
                            "the value of %.*s failed authentication: it was "
                            "altered, or sealed for another parameter",
                            (int)(name.n > 256 ? 256 : name.n), name.p);
        }
    }
    OPENSSL_cleanse(material, sizeof(material));
    mp_doc_close(&k.doc);
    return rv;
}

/* Pack parameter map @p p, its sealed Value opened. */
static int pack_parameter(struct secure *s,
                          msgpack_packer *pk,
                          const msgpack_object *p,
                          struct buf *scratch,
                          struct cairn_error *err)
{
    struct mp_str type = {NULL, 0}, name = {NULL, 0};
    struct buf plain;
    int rv = 0;

    if (p->type != MSGPACK_OBJECT_MAP) {
        return msgpack_pack_object(pk, *p) == 0 ? 0 : CAIRN_RESOURCE_EXHAUSTED;
    }
    mp_get_str(p, "Type", &type, NULL);
    mp_get_str(p, "Name", &name, NULL);
    buf_init(&plain);
    msgpack_pack_map(pk, p->via.map.size);
    for (uint32_t i = 0; i < p->via.map.size && rv == 0; i++) {
        const msgpack_object_kv *kv = &p->via.map.ptr[i];
        msgpack_pack_object(pk, kv->key);
        if (key_is(&kv->key, "Value") && kv->val.type == MSGPACK_OBJECT_BIN &&
            mp_str_eqn(type, "SecureString") && name.p != NULL) {
            buf_reset(&plain);
            rv = open_value(s, name, (const uint8_t *)kv->val.via.bin.ptr,
                            kv->val.via.bin.size, &plain, scratch, err);
            if (rv == 0) {
                mp_pack_str(pk, plain.data, plain.len);
            }
        } else {
            msgpack_pack_object(pk, kv->val);
        }
    }
    env_wipe_buf(&plain);
    return rv;
}

int secure_open_response(struct secure *s,
                         const void *resp,
                         size_t len,
                         struct buf *out,
                         struct cairn_error *err)
{
    struct mp_doc d;
    struct buf scratch;
    msgpack_packer pk;
    int rv;

    rv = mp_doc_parse_trusted(&d, resp, len, err);
    if (rv != 0) {
        return rv;
    }
    if (d.root.type != MSGPACK_OBJECT_MAP) {
        mp_doc_close(&d);
        return cairn_error_set(err, CAIRN_INTERNAL, NULL,
                               "read response is not a map");
    }
    buf_init(&scratch);
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, d.root.via.map.size);
    for (uint32_t i = 0; i < d.root.via.map.size && rv == 0; i++) {
        const msgpack_object_kv *kv = &d.root.via.map.ptr[i];
        msgpack_pack_object(&pk, kv->key);
        if (key_is(&kv->key, "Parameter")) {
            rv = pack_parameter(s, &pk, &kv->val, &scratch, err);
        } else if (key_is(&kv->key, "Parameters") &&
                   kv->val.type == MSGPACK_OBJECT_ARRAY) {
            msgpack_pack_array(&pk, kv->val.via.array.size);
            for (uint32_t j = 0; j < kv->val.via.array.size && rv == 0; j++) {
                rv = pack_parameter(s, &pk, &kv->val.via.array.ptr[j], &scratch,
                                    err);
            }
        } else {
            msgpack_pack_object(&pk, kv->val);
        }
    }
    buf_close(&scratch);
    mp_doc_close(&d);
    if (rv == 0 && out->oom) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
    }
    return rv;
}

/* ---- new keys --------------------------------------------------------- */

int secure_new_key_id(char id[37], struct cairn_error *err)
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return cairn_error_set(err, CAIRN_INTERNAL, NULL,
                               "no random bytes for a key id");
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(id, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

int secure_new_material(struct secure *s,
                        const char *key_id,
                        uint32_t version,
                        uint8_t wrapped[ENV_WRAPPED_LEN],
                        struct cairn_error *err)
{
    uint8_t material[ENV_KEY_LEN];
    int rv = env_random_key(material, err);
    if (rv == 0) {
        rv = env_wrap_material(&s->root, key_id, version, material, wrapped,
                               err);
    }
    OPENSSL_cleanse(material, sizeof(material));
    return rv;
}

int secure_rewrap_request(struct secure *s,
                          struct buf *out,
                          struct cairn_error *err)
{
    struct buf resp, scratch;
    struct mp_doc d;
    const msgpack_object_array *keys = NULL;
    msgpack_packer pk;
    int rv;

    buf_init(&resp);
    buf_init(&scratch);
    rv = query_run(s->store, "ListKeys", "\x80", 1, &resp, err);
    if (rv == 0) {
        rv = mp_doc_parse_trusted(&d, resp.data, resp.len, err);
    }
    if (rv != 0) {
        buf_close(&resp);
        buf_close(&scratch);
        return rv;
    }
    mp_get_array(&d.root, "Keys", &keys, NULL);
    mp_packer_init(&pk, out);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_cstr(&pk, "RootKey", s->root.fingerprint_hex);
    mp_pack_cstr(&pk, "Keys");
    msgpack_pack_array(&pk, keys != NULL ? keys->size : 0);
    for (uint32_t i = 0; keys != NULL && i < keys->size && rv == 0; i++) {
        struct mp_str id;
        struct key_view k;
        char cid[KEY_ID_MAX + 1];

        if (mp_get_str(&keys->ptr[i], "KeyId", &id, NULL) != 1) {
            rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                                 "ListKeys answered a key without KeyId");
            break;
        }
        rv = key_load(s, id.p, id.n, &k, &scratch, err);
        if (rv != 0) {
            break;
        }
        memcpy(cid, k.key_id.p, k.key_id.n);
        cid[k.key_id.n] = '\0';
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_str(&pk, "KeyId", k.key_id.p, k.key_id.n);
        mp_pack_cstr(&pk, "Versions");
        msgpack_pack_array(&pk, k.versions->size);
        for (uint32_t v = 0; v < k.versions->size && rv == 0; v++) {
            uint64_t n = 0;
            uint8_t m[ENV_KEY_LEN];
            uint8_t w[ENV_WRAPPED_LEN];
            mp_get_u64(&k.versions->ptr[v], "Version", &n, NULL);
            rv = material_of(s, &k, (uint32_t)n, m, err);
            if (rv == 0) {
                rv = env_wrap_material(&s->root, cid, (uint32_t)n, m, w, err);
            }
            OPENSSL_cleanse(m, sizeof(m));
            if (rv == 0) {
                msgpack_pack_map(&pk, 2);
                mp_pack_kv_u64(&pk, "Version", n);
                mp_pack_cstr(&pk, "Material");
                mp_pack_bin(&pk, w, sizeof(w));
            }
        }
        mp_doc_close(&k.doc);
    }
    mp_doc_close(&d);
    buf_close(&resp);
    buf_close(&scratch);
    if (rv == 0 && out->oom) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                             "out of memory");
    }
    return rv;
}
