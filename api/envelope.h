/* Envelope encryption for SecureString values (docs/encryption.md): the
 * root key file, key material wrapped by a root key, and values sealed by a
 * fresh data key wrapped by a master key version. Pure functions over
 * OpenSSL (AES-256-GCM, RAND_bytes); no I/O except the root key file. */
#ifndef CAIRN_API_ENVELOPE_H
#define CAIRN_API_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

#define ENV_KEY_LEN 32
#define ENV_FINGERPRINT_LEN 8
#define ENV_WRAPPED_LEN 73 /* "CRNW" 1 fp8 nonce12 ct32 tag16 */
#define ENV_KEY_ID_MAX 255

struct env_root_key
{
    uint8_t key[ENV_KEY_LEN];
    uint8_t fingerprint[ENV_FINGERPRINT_LEN];
    char fingerprint_hex[2 * ENV_FINGERPRINT_LEN + 1];
};

/** Fill @p rk from 32 raw bytes (computes the fingerprint). */
void env_root_key_from_bytes(struct env_root_key *rk, const uint8_t *key);

/** Wipe @p rk. */
void env_root_key_wipe(struct env_root_key *rk);

/**
 * Read a root key file: one line "cairn-root-key-v1 " + 64 hex digits (+
 * optional newline). Errors: NOT_FOUND (no such file), PERMISSION_DENIED
 * (readable or writable by group or others: the message says chmod 600),
 * INVALID_ARGUMENT (not a Cairn root key: the message says what is
 * wrong), INTERNAL (I/O).
 */
int env_root_key_load(const char *path,
                      struct env_root_key *rk,
                      struct cairn_error *err);

/**
 * Create a new root key file with mode 0600 (O_EXCL: refuses to overwrite,
 * ALREADY_EXISTS), fsync it, and fill @p rk (may be NULL). Errors:
 * ALREADY_EXISTS, INTERNAL (I/O, no randomness).
 */
int env_root_key_create(const char *path,
                        struct env_root_key *rk,
                        struct cairn_error *err);

/** 32 random bytes (new master key material or a data key). 0 or
 * INTERNAL. */
int env_random_key(uint8_t key[ENV_KEY_LEN], struct cairn_error *err);

/**
 * Wrap master key material (version @p version of key @p key_id) under the
 * root key: writes ENV_WRAPPED_LEN bytes to @p out. 0 or INTERNAL.
 */
int env_wrap_material(const struct env_root_key *rk,
                      const char *key_id,
                      uint32_t version,
                      const uint8_t material[ENV_KEY_LEN],
                      uint8_t out[ENV_WRAPPED_LEN],
                      struct cairn_error *err);

/** The root key fingerprint recorded in a wrapped blob (for choosing
 * among root keys). INVALID_ARGUMENT if @p wrapped is not one. */
int env_wrapped_fingerprint(const uint8_t *wrapped,
                            size_t len,
                            uint8_t fingerprint[ENV_FINGERPRINT_LEN],
                            struct cairn_error *err);

/**
 * Unwrap material wrapped by env_wrap_material, for the same key id and
 * version. Errors: INVALID_ARGUMENT (malformed), FAILED_PRECONDITION
 * (wrapped by another root key: fingerprints differ; the message names
 * both), DATA_LOSS (authentication failed: tampered, or another key id or
 * version).
 */
int env_unwrap_material(const struct env_root_key *rk,
                        const char *key_id,
                        uint32_t version,
                        const uint8_t *wrapped,
                        size_t len,
                        uint8_t material[ENV_KEY_LEN],
                        struct cairn_error *err);

/**
 * Seal @p plain (@p n bytes) for parameter @p name with a fresh data key
 * wrapped by @p material (key @p key_id, @p version): appends the sealed
 * blob (format in docs/encryption.md) to @p out. The data key is wiped.
 * Errors: INVALID_ARGUMENT (key id longer than ENV_KEY_ID_MAX),
 * RESOURCE_EXHAUSTED, INTERNAL.
 */
int env_seal(const uint8_t material[ENV_KEY_LEN],
             const char *key_id,
             uint32_t version,
             const char *name,
             size_t name_len,
             const void *plain,
             size_t n,
             struct buf *out,
             struct cairn_error *err);

/** The key id (pointing into @p blob) and version a sealed blob names.
 * INVALID_ARGUMENT if it is not a sealed blob. */
int env_sealed_key(const uint8_t *blob,
                   size_t len,
                   const char **key_id,
                   size_t *key_id_len,
                   uint32_t *version,
                   struct cairn_error *err);

/**
 * Open a sealed blob for parameter @p name with the material of the key
 * version it names: appends the plaintext to @p out (the caller wipes it
 * with env_wipe_buf after use). Errors: INVALID_ARGUMENT (malformed),
 * DATA_LOSS (authentication failed: tampered, another name, or the wrong
 * material), RESOURCE_EXHAUSTED.
 */
int env_open(const uint8_t material[ENV_KEY_LEN],
             const char *name,
             size_t name_len,
             const uint8_t *blob,
             size_t len,
             struct buf *out,
             struct cairn_error *err);

/** OPENSSL_cleanse the bytes of @p b, then close it. */
void env_wipe_buf(struct buf *b);

#endif
