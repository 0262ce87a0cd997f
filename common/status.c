#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *cairn_status_name(int code)
{
    if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0])) {
        return "UNKNOWN_STATUS";
    }
    return names[code];
}

void cairn_error_clear(struct cairn_error *err)
{
    if (err == NULL) {
        return;
    }
    err->code = CAIRN_OK;
    err->type[0] = '\0';
    err->msg[0] = '\0';
}

int cairn_error_vset(struct cairn_error *err,
                     int code,
                     const char *type,
                     const char *fmt,
                     va_list ap)
{
    if (err == NULL) {
        return code;
    }
    err->code = code;
    snprintf(err->type, sizeof(err->type), "%s", type != NULL ? type : "");
    if (fmt != NULL) {
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    } else {
        err->msg[0] = '\0';
    }
    return code;
}

int cairn_error_set(struct cairn_error *err,
                    int code,
                    const char *type,
                    const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_error_vset(err, code, type, fmt, ap);
    va_end(ap);
    return code;
}

int cairn_error_prefix(struct cairn_error *err, const char *fmt, ...)
{
    char prefix[256];
    char old[CAIRN_ERROR_MSG_MAX];
    va_list ap;

    if (err == NULL) {
        return CAIRN_INTERNAL;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    {
        size_t pn = strnlen(prefix, sizeof(err->msg) - 1);
        size_t on = strnlen(old, sizeof(old));
        if (on > sizeof(err->msg) - 1 - pn) {
            on = sizeof(err->msg) - 1 - pn;
        }
        memcpy(err->msg, prefix, pn);
        memcpy(err->msg + pn, old, on);
        err->msg[pn + on] = '\0';
    }
    return err->code;
}

int cairn_status_from_errno(int e)
{
    switch (e) {
        case 0:
            return CAIRN_OK;
        case ENOMEM:
        case ENOSPC:
        case EDQUOT:
            return CAIRN_RESOURCE_EXHAUSTED;
        case ENOENT:
            return CAIRN_NOT_FOUND;
        case EINVAL:
            return CAIRN_INVALID_ARGUMENT;
        case EEXIST:
            return CAIRN_ALREADY_EXISTS;
        case EACCES:
        case EPERM:
            return CAIRN_PERMISSION_DENIED;
        default:
            return CAIRN_INTERNAL;
    }
}
