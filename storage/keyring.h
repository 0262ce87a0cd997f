/* The replicated keyring of master keys (docs/encryption.md): its records
 * in the meta database, the syntax of key ids, aliases and wrapped
 * material, the resolution of the four KeyId forms, and KMS's KeyMetadata
 * shape. Shared by sm.c (writes) and query.c (reads); never decrypts. */
#ifndef CAIRN_STORAGE_KEYRING_H
#define CAIRN_STORAGE_KEYRING_H

#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"
#include "names.h"
#include "status.h"

#define KEYRING_ID_MAX 64     /* KeyId: 1..64 of [A-Za-z0-9-] */
#define KEYRING_ALIAS_MAX 256 /* AliasName: "alias/" + 1..250 */
#define KEYRING_MATERIAL_LEN 73
#define KEYRING_FINGERPRINT_LEN 8
#define KEYRING_FINGERPRINT_HEX (2 * KEYRING_FINGERPRINT_LEN)
#define KEYRING_MAX_VERSIONS 100 /* versions kept per key */
#define KEYRING_DESCRIPTION_MAX 8192

#define KEYRING_DEFAULT_ALIAS "alias/aws/ssm"
#define KEYRING_CAIRN_ALIAS "alias/cairn/default"
#define KEYRING_RESERVED_PREFIX "alias/aws/"

#define KEYRING_ENABLED "Enabled"
#define KEYRING_DISABLED "Disabled"
#define KEYRING_PENDING "PendingDeletion"

/* Longest meta key the keyring writes: prefix, 8-byte date, name. */
#define KEYRING_META_KEY_MAX (16 + 8 + KEYRING_ALIAS_MAX)

/* One version of a master key. Strings borrow from the decoded record. */
struct keyring_version
{
    uint64_t version;
    struct mp_str material; /* KEYRING_MATERIAL_LEN bytes, wrapped */
    struct mp_str root_key; /* fingerprint of the wrapping root key, hex */
    int64_t created;        /* ms since epoch */
};

/*
 * A master key as stored under META_KMS_KEY + id. Strings borrow from the
 * bytes it was decoded from. deletion and window_days are set only in
 * state PendingDeletion; current is the highest version.
 */
struct keyring_key
{
    struct mp_str id;
    struct mp_str description;
    struct mp_str state;   /* KEYRING_ENABLED, _DISABLED or _PENDING */
    struct mp_str manager; /* "AWS" for the default key, else "CUSTOMER" */
    int64_t created;       /* ms */
    int64_t deletion;      /* DeletionDate in ms, or 0 */
    uint64_t window_days;  /* PendingWindowInDays, or 0 */
    bool rotation;         /* KeyRotationEnabled */
    uint64_t current;      /* CurrentVersion */
    uint32_t n_versions;
    struct keyring_version versions[KEYRING_MAX_VERSIONS];
};

/* An alias as stored under META_KMS_ALIAS + name. */
struct keyring_alias
{
    struct mp_str target; /* bare key id */
    int64_t created;      /* ms */
    int64_t updated;      /* ms */
};

/** True when @p id is 1..KEYRING_ID_MAX characters of [A-Za-z0-9-]. */
bool keyring_id_valid(struct mp_str id);

/**
 * Check an alias name: "alias/" then 1..250 of [a-zA-Z0-9/_-]. With
 * @p allow_reserved false, a name under "alias/aws/" is refused.
 * Errors: INVALID_ARGUMENT / ValidationException (syntax),
 * PERMISSION_DENIED / NotAuthorizedException (reserved prefix).
 */
int keyring_alias_check(struct mp_str name,
                        bool allow_reserved,
                        struct cairn_error *err);

/** True when @p root_key is a root key fingerprint: KEYRING_FINGERPRINT_HEX
 * lower-case hex digits. */
bool keyring_root_key_valid(struct mp_str root_key);

/**
 * Check wrapped material and the fingerprint that goes with it: a bin of
 * KEYRING_MATERIAL_LEN bytes starting "CRNW", and @p root_key a fingerprint
 * (keyring_root_key_valid) equal to the one recorded in the material
 * (bytes 5..12).
 * Errors: INVALID_ARGUMENT / ValidationException.
 */
int keyring_material_check(struct mp_str material,
                           bool is_bin,
                           struct mp_str root_key,
                           struct cairn_error *err);

/** Write @p prefix then @p name to @p out (KEYRING_META_KEY_MAX bytes);
 * returns the length. @p name must fit. */
size_t keyring_meta_key(const char *prefix, struct mp_str name, uint8_t *out);

/** Decode a key record in place (strings point into @p p). 0, or -1 if the
 * record is malformed. */
int keyring_key_decode(const void *p, size_t n, struct keyring_key *k);

/** Append the record of @p k to @p out. 0 or RESOURCE_EXHAUSTED. */
int keyring_key_encode(const struct keyring_key *k, struct buf *out);

/** Decode an alias record in place. 0 or -1. */
int keyring_alias_decode(const void *p, size_t n, struct keyring_alias *a);

/** Append an alias record to @p out. 0 or RESOURCE_EXHAUSTED. */
int keyring_alias_encode(const struct keyring_alias *a, struct buf *out);

/**
 * Resolve @p ref, in any of the forms a KeyId may take (key id, key ARN,
 * alias name, alias ARN; ARNs must name this store's partition, region and
 * account), to a bare key id copied into @p id (NUL-terminated). Only the
 * alias is looked up: the caller loads the key record itself. *found is
 * false when @p ref is malformed or names no alias.
 * Returns 0, or an LMDB error code.
 */
int keyring_resolve(MDB_txn *txn,
                    MDB_dbi meta,
                    const struct names_arn *arn,
                    struct mp_str ref,
                    char id[KEYRING_ID_MAX + 1],
                    bool *found);

/** True when @p ref is an alias name or alias ARN (for messages). */
bool keyring_ref_is_alias(struct mp_str ref);

/** Pack the key ARN "arn:<partition>:kms:<region>:<account>:key/<id>". */
void keyring_pack_key_arn(msgpack_packer *pk,
                          const struct names_arn *arn,
                          struct mp_str id);

/** Pack the alias ARN "arn:<partition>:kms:<region>:<account>:<name>". */
void keyring_pack_alias_arn(msgpack_packer *pk,
                            const struct names_arn *arn,
                            struct mp_str name);

/** Format the key ARN into @p out (truncated to @p cap). */
void keyring_format_key_arn(const struct names_arn *arn,
                            struct mp_str id,
                            char *out,
                            size_t cap);

/** Pack a time in ms as epoch seconds (a float), as the store's dates. */
void keyring_pack_time(msgpack_packer *pk, const char *key, int64_t ms);

/**
 * Pack KMS's KeyMetadata map for @p k: KeyId, Arn, AWSAccountId,
 * Description, KeyState, Enabled, CreationDate, DeletionDate and
 * PendingDeletionWindowInDays (when pending), KeyManager, KeyUsage,
 * KeySpec, Origin, KeyRotationEnabled, and Cairn's CurrentVersion.
 */
void keyring_pack_metadata(msgpack_packer *pk,
                           const struct names_arn *arn,
                           const struct keyring_key *k);

#endif
