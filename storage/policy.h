/* Parameter policies (Expiration, ExpirationNotification,
 * NoChangeNotification): JSON validation and normalisation. No I/O. */
#ifndef CAIRN_STORAGE_POLICY_H
#define CAIRN_STORAGE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define POLICY_MAX 10        /* policies per parameter */
#define POLICY_TEXT_MAX 4096 /* characters in the Policies string */

enum policy_type {
    POLICY_EXPIRATION = 0,
    POLICY_EXPIRATION_NOTIFICATION,
    POLICY_NO_CHANGE_NOTIFICATION,
};

struct policy
{
    enum policy_type type;
    char *text; /* this policy's JSON object as compact JSON (PolicyText) */
    /* Expiration: the instant, in milliseconds since the epoch (UTC).
     * ExpirationNotification: Before, NoChangeNotification: After, both in
     * milliseconds (Days and Hours converted). */
    int64_t value_ms;
};

struct policy_set
{
    struct policy items[POLICY_MAX];
    unsigned count; /* 0 for "[{}]", which removes every policy */
};

/** "Expiration", "ExpirationNotification", "NoChangeNotification". */
const char *policy_type_name(enum policy_type t);

/**
 * Parse and validate the Policies string of PutParameter: a JSON array of
 * 1..10 objects {"Type", "Version": "1.0", "Attributes": {...}}; "[{}]"
 * alone means "no policies". Errors (AWS names):
 * - ValidationException (INVALID_ARGUMENT): not JSON, not an array, empty,
 *   longer than 4096 characters, an element that is not an object, a missing
 *   or unsupported Version;
 * - PoliciesLimitExceededException (RESOURCE_EXHAUSTED): more than 10;
 * - InvalidPolicyTypeException (INVALID_ARGUMENT): unknown or missing Type;
 * - InvalidPolicyAttributeException (INVALID_ARGUMENT): missing, unknown or
 *   malformed attributes (Timestamp must be ISO_INSTANT or
 *   ISO_OFFSET_DATE_TIME; Before/After a positive integer string; Unit
 *   "Days" or "Hours");
 * - IncompatiblePolicyException (INVALID_ARGUMENT): more than one
 *   Expiration or NoChangeNotification, or an ExpirationNotification
 *   without an Expiration.
 * On success the caller frees with policy_set_close; on failure nothing
 * needs freeing.
 */
int policy_parse(const char *json,
                 size_t n,
                 struct policy_set *out,
                 struct cairn_error *err);

void policy_set_close(struct policy_set *set);

/**
 * Parse an ISO-8601 instant ("2018-12-02T21:34:33.000Z",
 * "2019-11-01T22:13:48.87+10:30", "...+10:30:00") into milliseconds since
 * the epoch. 0 on success, -1 if malformed or out of range.
 */
int policy_parse_timestamp(const char *s, size_t n, int64_t *ms);

#endif
