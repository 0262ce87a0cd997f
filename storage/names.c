#include "names.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* AWS's texts (ssm-api.md section 2.2). The character rule and the "ssm"
 * path rule share their second sentence. */
#define SUBPATH_RULE                                                        \
    "If formed as a path, it can consist of sub-paths divided by slash "    \
    "symbol; each sub-path can be formed as a mix of letters, numbers and " \
    "the following 3 symbols .-_"

static const char msg_chars[] =
    "Parameter name: can't be prefixed with \"aws\" or \"ssm\" "
    "(case-insensitive). " SUBPATH_RULE;
static const char msg_root_prefix[] =
    "Parameter name: can't be prefixed with \"aws\" or \"ssm\" "
    "(case-insensitive).";
static const char msg_ssm_path[] =
    "Parameter name: can't be prefixed with \"ssm\" "
    "(case-insensitive). " SUBPATH_RULE;
static const char msg_not_qualified[] =
    "Parameter name must be a fully qualified name.";
static const char msg_hierarchy[] =
    "A hierarchy can have a maximum of 15 levels. For more information, see "
    "https://docs.aws.amazon.com/systems-manager/latest/userguide/"
    "sysman-parameter-name-constraints.html";
static const char msg_path[] =
    "The parameter doesn't meet the parameter name requirements. The "
    "parameter name must begin with a forward slash \"/\". It can't be "
    "prefixed with \"aws\" or \"ssm\" (case-insensitive). It must use only "
    "letters, numbers, or the following symbols: . (period), - (hyphen), _ "
    "(underscore). Special characters are not allowed. All sub-paths, if "
    "specified, must use the forward slash symbol \"/\". Valid example: "
    "/get/parameters2-/by1./path0_.";
static const char tag_pattern[] = "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$";

/* Messages quote client input. Quoting more than this gains nothing and
 * would only push the rest of the message out of the fixed buffer. */
#define QUOTE_MAX 1100

static int quote_len(size_t n)
{
    return (int)(n < QUOTE_MAX ? n : QUOTE_MAX);
}

static void trim_spaces(const char **s, size_t *n)
{
    while (*n > 0 && (*s)[0] == ' ') {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && (*s)[*n - 1] == ' ') {
        (*n)--;
    }
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* Letters, digits and ".-_": the characters of one name level and of a
 * label. The process locale must not widen this set, so no isalnum(). */
static bool is_word_char(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '_';
}

static bool starts_with_ci(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);

    if (n < k) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c - 'A' + 'a');
        }
        if (c != (unsigned char)prefix[i]) {
            return false;
        }
    }
    return true;
}

static bool reserved_prefix(const char *s, size_t n)
{
    return starts_with_ci(s, n, "aws") || starts_with_ci(s, n, "ssm");
}

static int validation(struct cairn_error *err, const char *msg)
{
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "ValidationException",
                           "%s", msg);
}

/* The syntax shared by names for writes and for reads, on input that is
 * already trimmed. Fills @p out on success. */
static int parse_name(const char *s,
                      size_t n,
                      struct names_name *out,
                      struct cairn_error *err)
{
    unsigned depth = 1;
    bool qualified;

    if (n == 0) {
        return validation(err,
                          "1 validation error detected: Value '' at "
                          "'name' failed to satisfy constraint: Member "
                          "must have length greater than or equal to 1");
    }
    if (n > NAMES_MAX_LEN) {
        return cairn_error_set(
            err, CAIRN_INVALID_ARGUMENT, "ValidationException",
            "1 validation error detected: Value '%.*s' at 'name' failed to "
            "satisfy constraint: Member must have length less than or equal "
            "to %d",
            quote_len(n), s, NAMES_MAX_LEN);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_word_char(c) && c != '/') {
            return validation(err, msg_chars);
        }
    }
    qualified = s[0] == '/';
    if (!qualified && memchr(s, '/', n) != NULL) {
        return validation(err, msg_not_qualified);
    }
    if (qualified) {
        /* An empty level ("//", a trailing '/', or "/" alone) names
         * nothing. */
        if (s[n - 1] == '/') {
            return validation(err, msg_chars);
        }
        /* s[n - 1] is not '/', so s[i + 1] below stays in bounds. */
        depth = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] != '/') {
                continue;
            }
            if (s[i + 1] == '/') {
                return validation(err, msg_chars);
            }
            depth++;
        }
    }
    if (depth > NAMES_MAX_DEPTH) {
        /* Reads check this too: no parameter can be this deep, and the
         * status code is the same as ValidationException's. */
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "HierarchyLevelLimitExceededException", "%s",
                               msg_hierarchy);
    }

    memcpy(out->display, s, n);
    out->display[n] = '\0';
    out->display_len = n;
    out->canonical_len = 0;
    if (!qualified) {
        out->canonical[out->canonical_len++] = '/';
    }
    memcpy(out->canonical + out->canonical_len, s, n);
    out->canonical_len += n;
    out->canonical[out->canonical_len] = '\0';
    out->depth = depth;
    return 0;
}

/* The reserved "aws" and "ssm" namespaces, for writes only. The first level
 * of the canonical form is the root name itself for a root parameter. */
static int check_reserved(const struct names_name *name,
                          struct cairn_error *err)
{
    const char *first = name->canonical + 1;
    size_t first_n = name->canonical_len - 1;
    const char *slash = memchr(first, '/', first_n);

    if (slash != NULL) {
        first_n = (size_t)(slash - first);
    }
    if (!reserved_prefix(first, first_n)) {
        return 0;
    }
    if (name->depth == 1) {
        return validation(err, msg_root_prefix);
    }
    if (starts_with_ci(first, first_n, "aws")) {
        return cairn_error_set(
            err, CAIRN_PERMISSION_DENIED, "AccessDeniedException",
            "No access to reserved parameter name: %s.", name->display);
    }
    return validation(err, msg_ssm_path);
}

int names_check_write(const char *s,
                      size_t n,
                      struct names_name *out,
                      struct cairn_error *err)
{
    int rv;

    if (s == NULL) {
        n = 0;
    }
    trim_spaces(&s, &n);
    rv = parse_name(s, n, out, err);
    if (rv != 0) {
        return rv;
    }
    return check_reserved(out, err);
}

int names_check_existing(const char *s,
                         size_t n,
                         struct names_name *out,
                         struct cairn_error *err)
{
    if (s == NULL) {
        n = 0;
    }
    trim_spaces(&s, &n);
    return parse_name(s, n, out, err);
}

/* ---- references: ARNs and selectors --------------------------------- */

static int not_found(const char *s, size_t n, struct cairn_error *err)
{
    return cairn_error_set(err, CAIRN_NOT_FOUND, "ParameterNotFound",
                           "Parameter %.*s not found.", quote_len(n), s);
}

static bool field_eq(const char *p, size_t n, const char *want)
{
    return want != NULL && strlen(want) == n && memcmp(p, want, n) == 0;
}

/* Outcome of matching "arn:..." against this store's namespace. */
enum arn_match {
    ARN_NOT_AN_ARN, /* not shaped like an ssm parameter ARN at all */
    ARN_FOREIGN,    /* a parameter ARN of another namespace */
    ARN_OURS,
};

/* Split "arn:<partition>:<service>:<region>:<account>:parameter/<rest>".
 * On ARN_OURS, *rest is what follows "parameter/" (a name and maybe a
 * selector). Input that is not shaped like an ARN is left to the name
 * parser, so that a parameter called "arn" can still take a selector. */
static enum arn_match match_arn(const char *s,
                                size_t n,
                                const struct names_arn *arn,
                                const char **rest,
                                size_t *rest_n)
{
    static const char resource[] = "parameter/";
    const size_t resource_n = sizeof(resource) - 1;
    const char *field[5];
    size_t field_n[5];
    const char *p = s;
    size_t left = n;

    for (int i = 0; i < 5; i++) {
        const char *colon = memchr(p, ':', left);
        if (colon == NULL) {
            return ARN_NOT_AN_ARN;
        }
        field[i] = p;
        field_n[i] = (size_t)(colon - p);
        left -= field_n[i] + 1;
        p = colon + 1;
    }
    if (!field_eq(field[0], field_n[0], "arn") ||
        !field_eq(field[2], field_n[2], "ssm") || left < resource_n ||
        memcmp(p, resource, resource_n) != 0) {
        return ARN_NOT_AN_ARN;
    }
    if (arn == NULL || !field_eq(field[1], field_n[1], arn->partition) ||
        !field_eq(field[3], field_n[3], arn->region) ||
        !field_eq(field[4], field_n[4], arn->account)) {
        return ARN_FOREIGN;
    }
    *rest = p + resource_n;
    *rest_n = left - resource_n;
    return ARN_OURS;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return n > 0;
}

/* Decimal digits to uint64; false on overflow. */
static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (*v > (UINT64_MAX - d) / 10) {
            return false;
        }
        *v = *v * 10 + d;
    }
    return true;
}

int names_parse_ref(const char *s,
                    size_t n,
                    const struct names_arn *arn,
                    unsigned flags,
                    struct names_ref *out,
                    struct cairn_error *err)
{
    /* An ARN names "/a/b" as "parameter/a/b": the name gets its leading
     * slash back here before the usual checks. */
    char rebuilt[NAMES_MAX_LEN + 2];
    const char *name;
    size_t name_n;
    const char *sel = NULL;
    size_t sel_n = 0;
    const char *colon;
    bool from_arn = false;
    int rv;

    if (s == NULL) {
        n = 0;
    }
    trim_spaces(&s, &n);
    out->sel = NAMES_SEL_NONE;
    out->version = 0;
    out->label[0] = '\0';
    out->selector[0] = '\0';
    name = s;
    name_n = n;

    if ((flags & NAMES_ALLOW_ARN) != 0 && n >= 4 && memcmp(s, "arn:", 4) == 0) {
        switch (match_arn(s, n, arn, &name, &name_n)) {
            case ARN_FOREIGN:
                return not_found(s, n, err);
            case ARN_OURS:
                from_arn = true;
                break;
            case ARN_NOT_AN_ARN:
                break;
        }
    }

    colon = memchr(name, ':', name_n);
    if (colon != NULL) {
        sel = colon + 1;
        sel_n = name_n - (size_t)(sel - name);
        name_n = (size_t)(colon - name);
        if (memchr(sel, ':', sel_n) != NULL ||
            (flags & NAMES_ALLOW_SELECTOR) == 0) {
            return not_found(s, n, err);
        }
    }

    if (from_arn && name_n > 0 && memchr(name, '/', name_n) != NULL) {
        /* "parameter//a" would become "//a" and fail as it should. */
        if (name_n > NAMES_MAX_LEN) {
            return parse_name(name, name_n, &out->name, err);
        }
        rebuilt[0] = '/';
        memcpy(rebuilt + 1, name, name_n);
        name = rebuilt;
        name_n++;
    }
    rv = parse_name(name, name_n, &out->name, err);
    if (rv != 0) {
        return rv;
    }
    if (sel == NULL) {
        return 0;
    }

    /* Neither an empty selector nor one longer than any label can select
     * anything. */
    if (sel_n == 0 || sel_n > NAMES_LABEL_MAX) {
        return not_found(s, n, err);
    }
    if (all_digits(sel, sel_n)) {
        if (!parse_u64(sel, sel_n, &out->version) || out->version == 0) {
            out->version = 0;
            return not_found(s, n, err);
        }
        out->sel = NAMES_SEL_VERSION;
    } else {
        if (names_check_label(sel, sel_n) != NAMES_LABEL_OK) {
            return not_found(s, n, err);
        }
        out->sel = NAMES_SEL_LABEL;
        memcpy(out->label, sel, sel_n);
        out->label[sel_n] = '\0';
    }
    out->selector[0] = ':';
    memcpy(out->selector + 1, sel, sel_n);
    out->selector[sel_n + 1] = '\0';
    return 0;
}

/* ---- paths ------------------------------------------------------------ */

int names_check_path(const char *s,
                     size_t n,
                     char *out,
                     size_t *out_len,
                     struct cairn_error *err)
{
    unsigned depth = 0;

    if (s == NULL) {
        n = 0;
    }
    trim_spaces(&s, &n);
    if (n == 0 || n > NAMES_MAX_LEN || s[0] != '/') {
        return validation(err, msg_path);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/') {
            if (i + 1 < n && s[i + 1] == '/') {
                return validation(err, msg_path);
            }
            if (i + 1 < n) {
                depth++; /* a '/' followed by a level */
            }
        } else if (!is_word_char(c)) {
            return validation(err, msg_path);
        }
    }
    if (depth > NAMES_MAX_DEPTH) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "HierarchyLevelLimitExceededException", "%s",
                               msg_hierarchy);
    }
    memcpy(out, s, n);
    if (s[n - 1] != '/') {
        out[n++] = '/';
    }
    out[n] = '\0';
    *out_len = n;
    return 0;
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at @p p (at most @p n bytes),
 * or 0 if it is malformed: a stray continuation byte, an overlong form, a
 * surrogate, a code point above U+10FFFF or a truncated sequence. The
 * bounds on the second byte are what exclude the overlong forms, the
 * surrogates and the values above U+10FFFF (RFC 3629 section 4). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t len;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        if (p[0] == 0xe0) {
            lo = 0xa0;
        } else if (p[0] == 0xed) {
            hi = 0x9f;
        }
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        if (p[0] == 0xf0) {
            lo = 0x90;
        } else if (p[0] == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

long names_utf8_chars(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    long count = 0;
    size_t i = 0;

    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0 || count == LONG_MAX) {
            return -1;
        }
        i += k;
        count++;
    }
    return count;
}

/* ---- labels ----------------------------------------------------------- */

enum names_label_verdict names_check_label(const char *s, size_t n)
{
    long chars;

    if (s == NULL) {
        n = 0;
    }
    /* The limit counts characters; bytes stand in when the label is not
     * even UTF-8, and it fails the character rule below anyway. */
    chars = names_utf8_chars(s, n);
    if (chars < 0) {
        chars = n > LONG_MAX ? LONG_MAX : (long)n;
    }
    if (chars < 1 || chars > NAMES_LABEL_MAX) {
        return NAMES_LABEL_BAD_LENGTH;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_word_char((unsigned char)s[i])) {
            return NAMES_LABEL_INVALID;
        }
    }
    if ((s[0] >= '0' && s[0] <= '9') || reserved_prefix(s, n)) {
        return NAMES_LABEL_INVALID;
    }
    return NAMES_LABEL_OK;
}

int names_label_length_error(const char *s, size_t n, struct cairn_error *err)
{
    if (s == NULL) {
        n = 0;
        s = "";
    }
    return cairn_error_set(
        err, CAIRN_INVALID_ARGUMENT, "ValidationException",
        "1 validation error detected: Value '[%.*s]' at 'labels' failed to "
        "satisfy constraint: Member must satisfy constraint: [Member must "
        "have length less than or equal to %d, Member must have length "
        "greater than or equal to 1]",
        quote_len(n), s, NAMES_LABEL_MAX);
}

/* ---- tags ------------------------------------------------------------- */

/* The tag pattern is [\p{L}\p{Z}\p{N}_.:/=+\-@]*. Classifying every Unicode
 * code point would need the Unicode tables, so any well-formed non-ASCII
 * character is accepted as a letter. Below U+0080 the rule is exact: ASCII
 * letters, digits, the space and the listed symbols; no control
 * characters. */
static bool tag_chars_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0) {
            return false;
        }
        /* The NUL test comes first because strchr() would find the
         * terminator of its own set. */
        if (k == 1 && (p[i] == '\0' || (!is_alnum(p[i]) &&
                                        strchr(" _.:/=+-@", p[i]) == NULL))) {
            return false;
        }
        i += k;
    }
    return true;
}

static int tag_error(struct cairn_error *err,
                     const char *member,
                     const char *s,
                     size_t n,
                     const char *constraint)
{
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "ValidationException",
                           "1 validation error detected: Value '%.*s' at "
                           "'%s' failed to satisfy constraint: Member must "
                           "%s",
                           quote_len(n), s, member, constraint);
}

static int check_tag_part(const char *member,
                          const char *s,
                          size_t n,
                          long min,
                          long max,
                          struct cairn_error *err)
{
    char constraint[128];
    long chars = names_utf8_chars(s, n);

    if (chars < 0 || !tag_chars_ok(s, n)) {
        snprintf(constraint, sizeof(constraint),
                 "satisfy regular expression pattern: %s", tag_pattern);
        return tag_error(err, member, s, n, constraint);
    }
    if (chars < min) {
        snprintf(constraint, sizeof(constraint),
                 "have length greater than or equal to %ld", min);
        return tag_error(err, member, s, n, constraint);
    }
    if (chars > max) {
        snprintf(constraint, sizeof(constraint),
                 "have length less than or equal to %ld", max);
        return tag_error(err, member, s, n, constraint);
    }
    return 0;
}

int names_check_tag(const char *key,
                    size_t key_n,
                    const char *value,
                    size_t value_n,
                    struct cairn_error *err)
{
    int rv;

    if (key == NULL) {
        key = "";
        key_n = 0;
    }
    if (value == NULL) {
        value = "";
        value_n = 0;
    }
    rv = check_tag_part("tags.member.key", key, key_n, 1, NAMES_TAG_KEY_MAX,
                        err);
    if (rv != 0) {
        return rv;
    }
    /* AWS reserves "aws:" in every case combination for its own tags. */
    if (starts_with_ci(key, key_n, "aws:")) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "Tag keys can't start with \"aws:\": the "
                               "prefix is reserved for AWS use. Key: %.*s",
                               quote_len(key_n), key);
    }
    return check_tag_part("tags.member.value", value, value_n, 0,
                          NAMES_TAG_VALUE_MAX, err);
}

/* ---- ARNs ------------------------------------------------------------- */

size_t names_format_arn(const struct names_arn *arn,
                        const char *canonical,
                        size_t canonical_len,
                        char *out,
                        size_t cap)
{
    int len;

    if (canonical_len > 0 && canonical[0] == '/') {
        canonical++;
        canonical_len--;
    }
    if (cap == 0 || canonical_len > INT_MAX) {
        return 0;
    }
    len = snprintf(out, cap, "arn:%s:ssm:%s:%s:parameter/%.*s", arn->partition,
                   arn->region, arn->account, (int)canonical_len, canonical);
    if (len < 0 || (size_t)len >= cap) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)len;
}
