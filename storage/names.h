/* Parameter names, paths, selectors, ARNs, labels and tags: the pure syntax
 * rules of AWS Parameter Store (ssm-api.md section 2.2, 2.3, 6.5). No I/O. */
#ifndef CAIRN_STORAGE_NAMES_H
#define CAIRN_STORAGE_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define NAMES_MAX_LEN 1011  /* characters in a name, AWS's usable maximum */
#define NAMES_MAX_DEPTH 15  /* hierarchy levels */
#define NAMES_LABEL_MAX 100 /* characters in a label */
#define NAMES_TAG_KEY_MAX 128
#define NAMES_TAG_VALUE_MAX 256
/* Longest selector suffix accepted after a name (":" + label). */
#define NAMES_SELECTOR_MAX (NAMES_LABEL_MAX + 1)

/* The ARN namespace this store answers to:
 * arn:<partition>:ssm:<region>:<account>:parameter/<name> */
struct names_arn
{
    const char *partition; /* "aws" */
    const char *region;    /* "us-east-1" */
    const char *account;   /* "123456789012" */
};

/* A parameter name after validation. Both forms are NUL-terminated.
 * canonical always starts with '/': the root parameter "x" and "/x" are the
 * same parameter, with canonical form "/x". display is the name as the
 * client gave it, leading and trailing spaces trimmed. */
struct names_name
{
    char canonical[NAMES_MAX_LEN + 2];
    size_t canonical_len;
    char display[NAMES_MAX_LEN + 1];
    size_t display_len;
    unsigned depth; /* number of levels: "x" and "/x" 1, "/a/b" 2 */
};

enum names_selector {
    NAMES_SEL_NONE = 0,
    NAMES_SEL_VERSION,
    NAMES_SEL_LABEL,
};

/* A reference to a parameter as reads accept it: a name, or an ARN of this
 * store's namespace, optionally followed by ":<version>" or ":<label>". */
struct names_ref
{
    struct names_name name;
    enum names_selector sel;
    uint64_t version;                      /* NAMES_SEL_VERSION */
    char label[NAMES_LABEL_MAX + 1];       /* NAMES_SEL_LABEL, NUL-terminated */
    char selector[NAMES_SELECTOR_MAX + 1]; /* ":3" or ":prod", "" if none */
};

/**
 * Validate a name for a write (PutParameter). Leading and trailing spaces
 * are trimmed. Errors, with AWS's error names and messages:
 * - ValidationException (INVALID_ARGUMENT): empty, inner spaces, characters
 *   outside a-zA-Z0-9_.-/, "//" or a trailing "/", longer than 1011, a
 *   hierarchical name that does not start with "/" ("Parameter name must be
 *   a fully qualified name."), a root name or first level starting with
 *   "ssm", or a root name starting with "aws" (case-insensitive);
 * - AccessDeniedException (PERMISSION_DENIED): a path whose first level
 *   starts with "aws" ("No access to reserved parameter name: <name>.");
 * - HierarchyLevelLimitExceededException (INVALID_ARGUMENT): more than 15
 *   levels.
 */
int names_check_write(const char *s,
                      size_t n,
                      struct names_name *out,
                      struct cairn_error *err);

/**
 * Validate a name that identifies an existing parameter (reads, deletes,
 * labels, tags). Same syntax as names_check_write except that reserved
 * prefixes are allowed (they simply do not exist). Errors:
 * ValidationException (INVALID_ARGUMENT).
 */
int names_check_existing(const char *s,
                         size_t n,
                         struct names_name *out,
                         struct cairn_error *err);

/* Flags for names_parse_ref. */
#define NAMES_ALLOW_ARN 1u
#define NAMES_ALLOW_SELECTOR 2u

/**
 * Parse a reference "name", "name:3", "name:label", or (with
 * NAMES_ALLOW_ARN) "arn:<partition>:ssm:<region>:<account>:parameter/<name>"
 * possibly with a selector. @p arn may be NULL when ARNs are not allowed.
 * Errors:
 * - ParameterNotFound (NOT_FOUND) "Parameter <input> not found.": more than
 *   one ':' after the name, a selector when not allowed, an empty selector,
 *   a label selector that is not a valid label, an ARN of another
 *   partition, region or account;
 * - ValidationException (INVALID_ARGUMENT): a malformed name.
 */
int names_parse_ref(const char *s,
                    size_t n,
                    const struct names_arn *arn,
                    unsigned flags,
                    struct names_ref *out,
                    struct cairn_error *err);

/**
 * Validate a path for GetParametersByPath or a Path filter and write its
 * canonical form, which always ends with '/' ("/a/b" and "/a/b/" give
 * "/a/b/", "/" gives "/"). @p out must hold NAMES_MAX_LEN + 2 bytes.
 * Errors: ValidationException (INVALID_ARGUMENT) "The parameter doesn't meet
 * the parameter name requirements. The parameter name must begin with a
 * forward slash "/". ..." for a missing leading '/', "//", bad characters,
 * or a path longer than 1011 characters; HierarchyLevelLimitExceededException
 * for more than 15 levels.
 */
int names_check_path(const char *s,
                     size_t n,
                     char *out,
                     size_t *out_len,
                     struct cairn_error *err);

/* Verdict on one label (LabelParameterVersion, UnlabelParameterVersion). */
enum names_label_verdict {
    NAMES_LABEL_OK = 0,
    NAMES_LABEL_BAD_LENGTH, /* 0 or more than 100 characters: the request
                               fails with ValidationException */
    NAMES_LABEL_INVALID,    /* bad characters, or starts with a digit, "aws"
                               or "ssm": returned in InvalidLabels */
};

enum names_label_verdict names_check_label(const char *s, size_t n);

/**
 * Fill @p err with AWS's ValidationException for a label of bad length:
 * "1 validation error detected: Value '[<label>]' at 'labels' failed to
 * satisfy constraint: ...". Returns INVALID_ARGUMENT.
 */
int names_label_length_error(const char *s, size_t n, struct cairn_error *err);

/**
 * Validate a tag: key 1..128, value 0..256 characters of letters, digits,
 * spaces and _.:/=+-@ (Unicode letters and digits allowed); keys starting
 * with "aws:" are reserved. Errors: ValidationException (INVALID_ARGUMENT).
 */
int names_check_tag(const char *key,
                    size_t key_n,
                    const char *value,
                    size_t value_n,
                    struct cairn_error *err);

/**
 * Write the ARN of canonical name @p canonical into @p out (size @p cap):
 * arn:<partition>:ssm:<region>:<account>:parameter/<name without its
 * leading '/'>. Returns the length, or 0 if it does not fit.
 */
size_t names_format_arn(const struct names_arn *arn,
                        const char *canonical,
                        size_t canonical_len,
                        char *out,
                        size_t cap);

/** Number of UTF-8 characters in @p s, or -1 if it is not valid UTF-8. */
long names_utf8_chars(const char *s, size_t n);

#endif
