/* The deterministic state machine: applies msgpack commands to the store.
 *
 * A command is a msgpack map:
 *   {"op": "PutParameter", "ts": <ms since epoch>, "user": "<caller ARN>",
 *    "req": {<the AWS request, with AWS's field names>}}
 * Everything that varies (time, caller, sealed SecureString values) is
 * carried in the command; apply never reads the clock or any other source
 * of variation, so every replica reaches the same state and outcome.
 *
 * Ops: Init {"TokenKey": bin(32)}, PutParameter, DeleteParameter,
 * DeleteParameters, LabelParameterVersion, UnlabelParameterVersion,
 * AddTagsToResource, RemoveTagsFromResource, UpdateServiceSetting,
 * ResetServiceSetting.
 *
 * PutParameter with Type SecureString carries Value as bin (the sealed
 * envelope, opaque to storage), KeyId, and "ValueLength": the plaintext's
 * length in characters, which the tier rules need. */
#ifndef CAIRN_STORAGE_SM_H
#define CAIRN_STORAGE_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"
#include "store.h"

/* The result of applying one command. Owned by the store; valid until the
 * next sm_apply or sm_batch_* call. */
struct sm_outcome
{
    struct cairn_error err; /* code OK on success; otherwise the business
                               error with its AWS name and message */
    const uint8_t *body;    /* msgpack response body (AWS output shape);
                               NULL on error */
    size_t body_len;
    bool skipped;      /* the index was already applied: no-op */
    uint64_t revision; /* newest change-feed revision after apply */
};

/**
 * Apply the command @p cmd (borrowed for the call) at Raft index @p index.
 * If @p index is at or below the store's applied index the call is a no-op
 * (outcome->skipped). Otherwise the command's effects, its change-feed rows
 * and the new applied index are written in one LMDB transaction (or in the
 * open batch). A command that is malformed or fails a business rule still
 * advances the applied index: its error is in the outcome, never in the
 * return value.
 *
 * Returns 0 when the command was applied or skipped (see *outcome), or a
 * non-zero status for a local fault (MAP_FULL, I/O) after which nothing of
 * this command was written and the caller may retry; with a batch open the
 * whole batch is aborted.
 */
int sm_apply(struct store *s,
             uint64_t index,
             const void *cmd,
             size_t len,
             const struct sm_outcome **outcome);

/**
 * Group several sm_apply calls in one LMDB write transaction, so their
 * commit cost is shared. Nothing is visible to readers until commit.
 */
/**
 * Check @p value against the AllowedPattern @p pattern (PCRE2, find
 * semantics, bounded work) as PutParameter does; with value.p NULL only
 * the pattern is checked. The service checks a SecureString's plaintext
 * with it before sealing. 0, or INVALID_ARGUMENT with
 * InvalidAllowedPatternException / ParameterPatternMismatchException,
 * RESOURCE_EXHAUSTED.
 */
int sm_check_pattern(struct mp_str pattern,
                     struct mp_str value,
                     struct cairn_error *err);

int sm_batch_begin(struct store *s, struct cairn_error *err);
int sm_batch_commit(struct store *s, struct cairn_error *err);
void sm_batch_abort(struct store *s);

#endif
