/* The service's side of SecureString (docs/encryption.md): root keys, the
 * keyring read from the local store, sealing PutParameter requests,
 * opening values in read responses, and the material of new keys. Loop
 * thread only. */
#ifndef CAIRN_API_SECURE_H
#define CAIRN_API_SECURE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "mp.h"
#include "status.h"

struct store;
struct secure;

/**
 * Create over @p store (borrowed) with the root key @p root and, during a
 * root key rotation, the @p previous one (may be NULL); both are copied.
 */
int secure_create(struct store *store,
                  const struct env_root_key *root,
                  const struct env_root_key *previous,
                  struct secure **out,
                  struct cairn_error *err);

/** Wipe every key held and free. NULL is allowed. */
void secure_destroy(struct secure *s);

/**
 * Check that every key version in the store unwraps with one of the root
 * keys. FAILED_PRECONDITION naming the key and the fingerprints when one
 * does not (the node was given the wrong root key), DATA_LOSS when a
 * wrapped material fails authentication.
 */
int secure_check_store(struct secure *s, struct cairn_error *err);

/** True when @p store holds any key of the keyring (a node without a root
 * key must not serve such a store). */
bool secure_store_has_keys(struct store *store);

/** True when the local store has the default key (alias/aws/ssm). */
bool secure_has_default_key(struct secure *s);

/** The fingerprint of the current root key, as hex. */
const char *secure_root_fingerprint(const struct secure *s);

/**
 * Seal a PutParameter request of type SecureString for the parameter whose
 * canonical name (names_check_write) is @p name: append to @p out a copy
 * of @p req with Value replaced by the sealed blob (bin), ValueLength set,
 * and KeyId as given. @p key_id is the key to use (any form; NULL: the
 * default key). Errors: NOT_FOUND (the key is not in the local store: the
 * caller may wait for a read index and retry, then it is InvalidKeyId),
 * INVALID_ARGUMENT / InvalidKeyId (disabled or pending deletion),
 * FAILED_PRECONDITION (no root key for its material), INTERNAL.
 */
int secure_seal_put(struct secure *s,
                    const msgpack_object *req,
                    struct mp_str name,
                    const char *key_id,
                    struct buf *out,
                    struct cairn_error *err);

/**
 * Append to @p out @p resp (a read response: Parameter or Parameters) with
 * every sealed SecureString Value opened to its plaintext (str). Errors:
 * INVALID_ARGUMENT / InvalidKeyId (key disabled, pending deletion or gone),
 * DATA_LOSS / InvalidCiphertextException (tampered, or moved from another
 * name), INTERNAL. The caller wipes @p out after sending it.
 */
int secure_open_response(struct secure *s,
                         const void *resp,
                         size_t len,
                         struct buf *out,
                         struct cairn_error *err);

/** A new key id (a random UUID, 36 characters and a NUL). */
int secure_new_key_id(char id[37], struct cairn_error *err);

/**
 * Fresh material for version @p version of key @p key_id, wrapped by the
 * current root key into @p wrapped. 0 or INTERNAL.
 */
int secure_new_material(struct secure *s,
                        const char *key_id,
                        uint32_t version,
                        uint8_t wrapped[ENV_WRAPPED_LEN],
                        struct cairn_error *err);

/**
 * The request of a RewrapKeyring command: every version of every key in
 * the local store unwrapped (with whichever root key wrapped it) and
 * wrapped again by the current root key. Errors as secure_check_store.
 */
int secure_rewrap_request(struct secure *s,
                          struct buf *out,
                          struct cairn_error *err);

#endif
