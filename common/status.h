/* Status codes, error names and messages shared by every Cairn module. */
#ifndef CAIRN_COMMON_STATUS_H
#define CAIRN_COMMON_STATUS_H

#include <stdarg.h>

/* The values equal gRPC's status codes so that the wire carries the same
 * number with no mapping. */
enum cairn_status {
    CAIRN_OK = 0,
    CAIRN_CANCELLED = 1,
    CAIRN_UNKNOWN = 2,
    CAIRN_INVALID_ARGUMENT = 3,
    CAIRN_DEADLINE_EXCEEDED = 4,
    CAIRN_NOT_FOUND = 5,
    CAIRN_ALREADY_EXISTS = 6,
    CAIRN_PERMISSION_DENIED = 7,
    CAIRN_RESOURCE_EXHAUSTED = 8,
    CAIRN_FAILED_PRECONDITION = 9,
    CAIRN_ABORTED = 10,
    CAIRN_OUT_OF_RANGE = 11,
    CAIRN_UNIMPLEMENTED = 12,
    CAIRN_INTERNAL = 13,
    CAIRN_UNAVAILABLE = 14,
    CAIRN_DATA_LOSS = 15,
    CAIRN_UNAUTHENTICATED = 16,
};

#define CAIRN_ERROR_TYPE_MAX 64
/* Large enough for AWS messages that quote a 1011-character name twice. */
#define CAIRN_ERROR_MSG_MAX 3072

/* An error as it reaches a client: a status code, the AWS error name
 * (ParameterNotFound, ValidationException...) and a human message. */
struct cairn_error
{
    int code;                        /* enum cairn_status */
    char type[CAIRN_ERROR_TYPE_MAX]; /* AWS error name; "" when none */
    char msg[CAIRN_ERROR_MSG_MAX];   /* message; "" when none */
};

/** Name of a status code ("NOT_FOUND"), or "UNKNOWN_STATUS". */
const char *cairn_status_name(int code);

/** Reset @p err to OK with no name and no message. NULL is allowed. */
void cairn_error_clear(struct cairn_error *err);

/**
 * Fill @p err (which may be NULL) with @p code, the AWS error name @p type
 * (NULL for none) and a printf-style message. The message is truncated to
 * fit. Returns @p code so callers can write `return cairn_error_set(...)`.
 */
int cairn_error_set(struct cairn_error *err,
                    int code,
                    const char *type,
                    const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

int cairn_error_vset(struct cairn_error *err,
                     int code,
                     const char *type,
                     const char *fmt,
                     va_list ap);

/**
 * Prefix the message of @p err with context ("put /a: " + old message),
 * keeping code and type. Returns err->code.
 */
int cairn_error_prefix(struct cairn_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Map an errno value to a status (ENOMEM and ENOSPC: RESOURCE_EXHAUSTED,
 * ENOENT: NOT_FOUND, EINVAL: INVALID_ARGUMENT, anything else: INTERNAL). */
int cairn_status_from_errno(int e);

#endif
