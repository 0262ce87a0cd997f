/* Unit tests for storage/names.c: names, paths, references, labels, tags,
 * ARNs and UTF-8 counting. */
#include "test.h"

#include <stdio.h>
#include <string.h>

#include "names.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

static const struct names_arn arn_ns = {
    .partition = "aws",
    .region = "us-east-1",
    .account = "123456789012",
};

/* AWS's texts, spelled out again here so that a change to names.c that
 * alters them fails a test. */
static const char MSG_CHARS[] =
    "Parameter name: can't be prefixed with \"aws\" or \"ssm\" "
    "(case-insensitive). If formed as a path, it can consist of sub-paths "
    "divided by slash symbol; each sub-path can be formed as a mix of "
    "letters, numbers and the following 3 symbols .-_";
static const char MSG_ROOT_PREFIX[] =
    "Parameter name: can't be prefixed with \"aws\" or \"ssm\" "
    "(case-insensitive).";
static const char MSG_SSM_PATH[] =
    "Parameter name: can't be prefixed with \"ssm\" (case-insensitive). If "
    "formed as a path, it can consist of sub-paths divided by slash symbol; "
    "each sub-path can be formed as a mix of letters, numbers and the "
    "following 3 symbols .-_";
static const char MSG_NOT_QUALIFIED[] =
    "Parameter name must be a fully qualified name.";
static const char MSG_PATH[] =
    "The parameter doesn't meet the parameter name requirements. The "
    "parameter name must begin with a forward slash \"/\". It can't be "
    "prefixed with \"aws\" or \"ssm\" (case-insensitive). It must use only "
    "letters, numbers, or the following symbols: . (period), - (hyphen), _ "
    "(underscore). Special characters are not allowed. All sub-paths, if "
    "specified, must use the forward slash symbol \"/\". Valid example: "
    "/get/parameters2-/by1./path0_.";

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

/* A string of @p n copies of @p c in @p buf (which holds n + 1 bytes). */
static char *fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* "/l1/l2/.../l<levels-1>/name": a name with exactly @p levels levels. */
static char *deep_name(char *buf, size_t cap, unsigned levels)
{
    size_t len = 0;

    buf[0] = '\0';
    for (unsigned i = 1; i < levels; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "/L%u", i);
    }
    snprintf(buf + len, cap - len, "/name");
    return buf;
}

/* "/l1/.../l<levels>" with or without a trailing slash. */
static char *deep_path(char *buf, size_t cap, unsigned levels, bool slash)
{
    size_t len = 0;

    buf[0] = '\0';
    for (unsigned i = 1; i <= levels; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "/p%u", i);
    }
    if (slash || levels == 0) {
        snprintf(buf + len, cap - len, "/");
    }
    return buf;
}

/******************************************************************************
 *
 * Assertions
 *
 *****************************************************************************/

static void assert_error(const struct cairn_error *err,
                         int rv,
                         int code,
                         const char *type,
                         const char *msg)
{
    assert_int_equal(rv, code);
    assert_int_equal(err->code, code);
    assert_string_equal(err->type, type);
    if (msg != NULL) {
        assert_string_equal(err->msg, msg);
    }
}

static void write_ok(const char *s,
                     const char *canonical,
                     const char *display,
                     unsigned depth)
{
    struct names_name name;
    struct cairn_error err;
    int rv;

    cairn_error_clear(&err);
    rv = names_check_write(s, strlen(s), &name, &err);
    if (rv != 0) {
        fail_msg("names_check_write(\"%s\") = %d: %s %s", s, rv, err.type,
                 err.msg);
    }
    assert_string_equal(name.canonical, canonical);
    assert_int_equal(name.canonical_len, strlen(canonical));
    assert_string_equal(name.display, display);
    assert_int_equal(name.display_len, strlen(display));
    assert_int_equal(name.depth, depth);
}

static void write_fails(const char *s,
                        size_t n,
                        int code,
                        const char *type,
                        const char *msg)
{
    struct names_name name;
    struct cairn_error err;

    cairn_error_clear(&err);
    assert_error(&err, names_check_write(s, n, &name, &err), code, type, msg);
}

static void existing_ok(const char *s, const char *canonical)
{
    struct names_name name;
    struct cairn_error err;
    int rv = names_check_existing(s, strlen(s), &name, &err);

    if (rv != 0) {
        fail_msg("names_check_existing(\"%s\") = %d: %s", s, rv, err.msg);
    }
    assert_string_equal(name.canonical, canonical);
}

static void ref_not_found(const char *s, unsigned flags)
{
    struct names_ref ref;
    struct cairn_error err;
    char msg[2048];

    snprintf(msg, sizeof(msg), "Parameter %s not found.", s);
    assert_error(&err,
                 names_parse_ref(s, strlen(s), &arn_ns, flags, &ref, &err),
                 CAIRN_NOT_FOUND, "ParameterNotFound", msg);
}

static void ref_ok(const char *s, unsigned flags, struct names_ref *ref)
{
    struct cairn_error err;
    int rv = names_parse_ref(s, strlen(s), &arn_ns, flags, ref, &err);

    if (rv != 0) {
        fail_msg("names_parse_ref(\"%s\") = %d: %s %s", s, rv, err.type,
                 err.msg);
    }
}

static void path_ok(const char *s, const char *want)
{
    char out[NAMES_MAX_LEN + 2];
    size_t len = 0;
    struct cairn_error err;
    int rv = names_check_path(s, strlen(s), out, &len, &err);

    if (rv != 0) {
        fail_msg("names_check_path(\"%s\") = %d: %s", s, rv, err.msg);
    }
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

static void path_fails(const char *s, const char *type, const char *msg)
{
    char out[NAMES_MAX_LEN + 2];
    size_t len = 0;
    struct cairn_error err;

    assert_error(&err, names_check_path(s, strlen(s), out, &len, &err),
                 CAIRN_INVALID_ARGUMENT, type, msg);
}

static void tag_ok(const char *key, const char *value)
{
    struct cairn_error err;
    int rv = names_check_tag(key, strlen(key), value, strlen(value), &err);

    if (rv != 0) {
        fail_msg("names_check_tag(\"%s\", \"%s\") = %d: %s", key, value, rv,
                 err.msg);
    }
}

static void tag_fails(const char *key,
                      size_t key_n,
                      const char *value,
                      size_t value_n,
                      const char *msg)
{
    struct cairn_error err;

    assert_error(&err, names_check_tag(key, key_n, value, value_n, &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException", msg);
}

/******************************************************************************
 *
 * names_check_write
 *
 *****************************************************************************/

/* A root name with or without its leading slash has the same canonical
 * form, and the display form keeps what the client wrote. */
static void write_root_names(void **state)
{
    (void)state;
    write_ok("x", "/x", "x", 1);
    write_ok("/x", "/x", "/x", 1);
    write_ok("TestParam1", "/TestParam1", "TestParam1", 1);
    write_ok("/a/b", "/a/b", "/a/b", 2);
    write_ok("/Dev/Production/East/Project-ABC/MyParameter",
             "/Dev/Production/East/Project-ABC/MyParameter",
             "/Dev/Production/East/Project-ABC/MyParameter", 5);
}

/* Every allowed character (letters, digits, '.', '-', '_' and '/') is
 * accepted, and case is preserved. */
static void write_allowed_chars(void **state)
{
    (void)state;
    write_ok("/aZ09._-/Q.q-_9", "/aZ09._-/Q.q-_9", "/aZ09._-/Q.q-_9", 2);
    write_ok("...", "/...", "...", 1);
    write_ok("-_-", "/-_-", "-_-", 1);
}

/* Leading and trailing spaces are trimmed before any other rule. */
static void write_trims_spaces(void **state)
{
    (void)state;
    write_ok("  /a/b  ", "/a/b", "/a/b", 2);
    write_ok(" x", "/x", "x", 1);
    write_ok("x   ", "/x", "x", 1);
}

/* An inner space is a ValidationException with AWS's character text. */
static void write_inner_space(void **state)
{
    (void)state;
    write_fails("my param", 8, CAIRN_INVALID_ARGUMENT, "ValidationException",
                MSG_CHARS);
    write_fails(" /a /b ", 7, CAIRN_INVALID_ARGUMENT, "ValidationException",
                MSG_CHARS);
}

/* Characters outside a-zA-Z0-9_.-/ are rejected, including non-ASCII
 * letters, control characters and an embedded NUL. */
static void write_bad_chars(void **state)
{
    static const char *const bad[] = {"a@b",  "a*b",         "/a/b:c",
                                      "a\tb", "caf\xc3\xa9", "a+b",
                                      "a\\b", "a~b",         "\xff"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_fails(bad[i], strlen(bad[i]), CAIRN_INVALID_ARGUMENT,
                    "ValidationException", MSG_CHARS);
    }
    write_fails("a\0b", 3, CAIRN_INVALID_ARGUMENT, "ValidationException",
                MSG_CHARS);
}

/* An empty name, or one made only of spaces, fails the length rule. */
static void write_empty(void **state)
{
    static const char msg[] =
        "1 validation error detected: Value '' at 'name' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1";
    (void)state;
    write_fails("", 0, CAIRN_INVALID_ARGUMENT, "ValidationException", msg);
    write_fails("   ", 3, CAIRN_INVALID_ARGUMENT, "ValidationException", msg);
    write_fails(NULL, 0, CAIRN_INVALID_ARGUMENT, "ValidationException", msg);
}

/* 1011 characters is the longest name; 1012 fails, for root and
 * hierarchical names alike, and trimmed spaces do not count. */
static void write_length_limit(void **state)
{
    char name[NAMES_MAX_LEN + 8];
    char want[NAMES_MAX_LEN + 16];
    struct names_name out;
    struct cairn_error err;
    (void)state;

    fill(name, 'a', NAMES_MAX_LEN);
    snprintf(want, sizeof(want), "/%s", name);
    write_ok(name, want, name, 1);
    assert_int_equal(strlen(want), NAMES_MAX_LEN + 1);

    fill(name, 'a', NAMES_MAX_LEN + 1);
    write_fails(name, strlen(name), CAIRN_INVALID_ARGUMENT,
                "ValidationException", NULL);
    assert_int_equal(names_check_write(name, strlen(name), &out, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg,
                           "Member must have length less than or "
                           "equal to 1011"));

    /* "/a/" + 1008 = 1011 characters. */
    fill(name, 'b', NAMES_MAX_LEN);
    memcpy(name, "/a/", 3);
    write_ok(name, name, name, 2);
    fill(name, 'b', NAMES_MAX_LEN + 1);
    memcpy(name, "/a/", 3);
    write_fails(name, strlen(name), CAIRN_INVALID_ARGUMENT,
                "ValidationException", NULL);

    /* Surrounding spaces are trimmed before measuring. */
    name[0] = ' ';
    fill(name + 1, 'c', NAMES_MAX_LEN);
    strcat(name, "  ");
    assert_int_equal(names_check_write(name, strlen(name), &out, &err), 0);
    assert_int_equal(out.display_len, NAMES_MAX_LEN);
}

/* 15 levels are allowed; 16 give HierarchyLevelLimitExceededException with
 * status INVALID_ARGUMENT. */
static void write_depth_limit(void **state)
{
    char name[256];
    struct names_name out;
    struct cairn_error err;
    (void)state;

    deep_name(name, sizeof(name), NAMES_MAX_DEPTH);
    write_ok(name, name, name, NAMES_MAX_DEPTH);
    assert_non_null(strstr(name, "/L14/name"));

    deep_name(name, sizeof(name), NAMES_MAX_DEPTH + 1);
    assert_error(&err, names_check_write(name, strlen(name), &out, &err),
                 CAIRN_INVALID_ARGUMENT, "HierarchyLevelLimitExceededException",
                 NULL);
    assert_non_null(strstr(err.msg, "maximum of 15 levels"));
}

/* A name with a '/' that does not start with '/' is not fully
 * qualified. */
static void write_not_qualified(void **state)
{
    (void)state;
    write_fails("MyParameter3/L1", 15, CAIRN_INVALID_ARGUMENT,
                "ValidationException", MSG_NOT_QUALIFIED);
    write_fails("a/b/c", 5, CAIRN_INVALID_ARGUMENT, "ValidationException",
                MSG_NOT_QUALIFIED);
}

/* Empty levels ("//", a trailing '/', "/" alone) are invalid. */
static void write_empty_levels(void **state)
{
    static const char *const bad[] = {"/",   "//",    "//a", "/a//b",
                                      "/a/", "/a/b/", "///"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_fails(bad[i], strlen(bad[i]), CAIRN_INVALID_ARGUMENT,
                    "ValidationException", MSG_CHARS);
    }
}

/* A root name starting with "aws" or "ssm" in any case, with or without
 * its leading slash, is a ValidationException with the root text. */
static void write_reserved_root(void **state)
{
    static const char *const bad[] = {"ssm_test", "AWS_TEST", "aws",
                                      "SsM",      "/awsx",    "/SSMtest",
                                      "AwS.x",    "  ssm  "};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_fails(bad[i], strlen(bad[i]), CAIRN_INVALID_ARGUMENT,
                    "ValidationException", MSG_ROOT_PREFIX);
    }
}

/* A path whose first level starts with "aws" (any case) is an
 * AccessDeniedException that quotes the name. */
static void write_reserved_aws_path(void **state)
{
    (void)state;
    write_fails("/aws/x", 6, CAIRN_PERMISSION_DENIED, "AccessDeniedException",
                "No access to reserved parameter name: /aws/x.");
    write_fails("/AWSome/app/key", 15, CAIRN_PERMISSION_DENIED,
                "AccessDeniedException",
                "No access to reserved parameter name: /AWSome/app/key.");
    write_fails(" /Aws/service/x ", 16, CAIRN_PERMISSION_DENIED,
                "AccessDeniedException",
                "No access to reserved parameter name: /Aws/service/x.");
}

/* A path whose first level starts with "ssm" (any case) is a
 * ValidationException with the "ssm" path text. */
static void write_reserved_ssm_path(void **state)
{
    (void)state;
    write_fails("/ssm/x", 6, CAIRN_INVALID_ARGUMENT, "ValidationException",
                MSG_SSM_PATH);
    write_fails("/SSMfoo/a/b", 11, CAIRN_INVALID_ARGUMENT,
                "ValidationException", MSG_SSM_PATH);
}

/* The reserved words only matter at the start of the first level. */
static void write_reserved_elsewhere(void **state)
{
    (void)state;
    write_ok("/app/aws/x", "/app/aws/x", "/app/aws/x", 3);
    write_ok("/app/ssm", "/app/ssm", "/app/ssm", 2);
    write_ok("myaws", "/myaws", "myaws", 1);
    write_ok("/xssm/a", "/xssm/a", "/xssm/a", 2);
    write_ok("/aw/s", "/aw/s", "/aw/s", 2);
    write_ok("ss", "/ss", "ss", 1);
}

/******************************************************************************
 *
 * names_check_existing
 *
 *****************************************************************************/

/* Reads accept reserved names, which simply do not exist. */
static void existing_allows_reserved(void **state)
{
    (void)state;
    existing_ok("/aws/service/ami-amazon-linux-latest/x",
                "/aws/service/ami-amazon-linux-latest/x");
    existing_ok("ssm_test", "/ssm_test");
    existing_ok("/ssm/x", "/ssm/x");
    existing_ok(" AWS ", "/AWS");
}

/* Reads apply the same syntax rules as writes. */
static void existing_syntax(void **state)
{
    char name[256];
    struct names_name out;
    struct cairn_error err;
    (void)state;

    assert_error(&err, names_check_existing("a b", 3, &out, &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_CHARS);
    assert_error(&err, names_check_existing("a/b", 3, &out, &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException",
                 MSG_NOT_QUALIFIED);
    assert_error(&err, names_check_existing("/a/", 3, &out, &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_CHARS);
    deep_name(name, sizeof(name), NAMES_MAX_DEPTH + 1);
    assert_error(&err, names_check_existing(name, strlen(name), &out, &err),
                 CAIRN_INVALID_ARGUMENT, "HierarchyLevelLimitExceededException",
                 NULL);
}

/******************************************************************************
 *
 * names_parse_ref
 *
 *****************************************************************************/

/* A bare name gives no selector. */
static void ref_plain(void **state)
{
    struct names_ref ref;
    (void)state;

    ref_ok("/a/b", NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/a/b");
    assert_int_equal(ref.sel, NAMES_SEL_NONE);
    assert_string_equal(ref.selector, "");
    ref_ok(" x ", 0, &ref);
    assert_string_equal(ref.name.canonical, "/x");
    assert_string_equal(ref.name.display, "x");
}

/* "name:<digits>" selects a version and keeps ":<digits>" as selector. */
static void ref_version(void **state)
{
    struct names_ref ref;
    (void)state;

    ref_ok("/a/b:3", NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/a/b");
    assert_string_equal(ref.name.display, "/a/b");
    assert_int_equal(ref.sel, NAMES_SEL_VERSION);
    assert_int_equal(ref.version, 3);
    assert_string_equal(ref.selector, ":3");

    ref_ok("x:007", NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/x");
    assert_int_equal(ref.version, 7);
    assert_string_equal(ref.selector, ":007");

    ref_ok("x:18446744073709551615", NAMES_ALLOW_SELECTOR, &ref);
    assert_true(ref.version == UINT64_MAX);
}

/* Version 0 and versions that overflow uint64 select nothing. */
static void ref_bad_version(void **state)
{
    (void)state;
    ref_not_found("x:0", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:000", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:18446744073709551616", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:99999999999999999999999", NAMES_ALLOW_SELECTOR);
}

/* "name:<label>" selects a label and keeps ":<label>" as selector. */
static void ref_label(void **state)
{
    struct names_ref ref;
    char s[NAMES_LABEL_MAX + 16];
    (void)state;

    ref_ok("/app/db:prod", NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/app/db");
    assert_int_equal(ref.sel, NAMES_SEL_LABEL);
    assert_string_equal(ref.label, "prod");
    assert_string_equal(ref.selector, ":prod");

    /* The longest label fills the selector buffer exactly. */
    strcpy(s, "x:");
    fill(s + 2, 'L', NAMES_LABEL_MAX);
    ref_ok(s, NAMES_ALLOW_SELECTOR, &ref);
    assert_int_equal(strlen(ref.label), NAMES_LABEL_MAX);
    assert_int_equal(strlen(ref.selector), NAMES_LABEL_MAX + 1);

    /* Not a negative version: a label may start with '-'. */
    ref_ok("x:-1", NAMES_ALLOW_SELECTOR, &ref);
    assert_int_equal(ref.sel, NAMES_SEL_LABEL);
    assert_string_equal(ref.label, "-1");
}

/* A selector that is not a valid label, or is empty, finds nothing. */
static void ref_bad_label(void **state)
{
    char s[NAMES_LABEL_MAX + 16];
    (void)state;

    ref_not_found("x:", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:3a", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:aws-prod", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:SSM", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:pr*d", NAMES_ALLOW_SELECTOR);
    ref_not_found("x:+1", NAMES_ALLOW_SELECTOR);
    ref_not_found("x: prod", NAMES_ALLOW_SELECTOR);
    strcpy(s, "x:");
    fill(s + 2, 'L', NAMES_LABEL_MAX + 1);
    ref_not_found(s, NAMES_ALLOW_SELECTOR);
}

/* More than one ':' after the name is ParameterNotFound quoting the
 * input. */
static void ref_two_colons(void **state)
{
    (void)state;
    ref_not_found("test-2:2:3", NAMES_ALLOW_SELECTOR);
    ref_not_found("a:2:3", NAMES_ALLOW_SELECTOR | NAMES_ALLOW_ARN);
    ref_not_found("a::", NAMES_ALLOW_SELECTOR);
    ref_not_found("/a/b:prod:1", NAMES_ALLOW_SELECTOR);
}

/* A selector where none is allowed is ParameterNotFound. */
static void ref_selector_not_allowed(void **state)
{
    (void)state;
    ref_not_found("x:3", 0);
    ref_not_found("x:prod", NAMES_ALLOW_ARN);
}

/* A malformed name is a ValidationException even with a selector. */
static void ref_bad_name(void **state)
{
    struct names_ref ref;
    struct cairn_error err;
    (void)state;

    assert_error(
        &err,
        names_parse_ref("a b:1", 5, &arn_ns, NAMES_ALLOW_SELECTOR, &ref, &err),
        CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_CHARS);
    assert_error(
        &err,
        names_parse_ref("x :1", 4, &arn_ns, NAMES_ALLOW_SELECTOR, &ref, &err),
        CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_CHARS);
    assert_error(
        &err,
        names_parse_ref(":1", 2, &arn_ns, NAMES_ALLOW_SELECTOR, &ref, &err),
        CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    assert_error(
        &err,
        names_parse_ref("a/b:1", 5, &arn_ns, NAMES_ALLOW_SELECTOR, &ref, &err),
        CAIRN_INVALID_ARGUMENT, "ValidationException", MSG_NOT_QUALIFIED);
}

/* Reads may name reserved parameters. */
static void ref_reserved_allowed(void **state)
{
    struct names_ref ref;
    (void)state;

    ref_ok("/aws/service/x:2", NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/aws/service/x");
    assert_int_equal(ref.version, 2);
}

/* An ARN of this namespace names "/a/b" as "parameter/a/b" and a root
 * parameter "x" as "parameter/x". */
static void ref_arn(void **state)
{
    struct names_ref ref;
    (void)state;

    ref_ok("arn:aws:ssm:us-east-1:123456789012:parameter/a/b", NAMES_ALLOW_ARN,
           &ref);
    assert_string_equal(ref.name.canonical, "/a/b");
    assert_string_equal(ref.name.display, "/a/b");
    assert_int_equal(ref.name.depth, 2);
    assert_int_equal(ref.sel, NAMES_SEL_NONE);

    ref_ok("arn:aws:ssm:us-east-1:123456789012:parameter/x", NAMES_ALLOW_ARN,
           &ref);
    assert_string_equal(ref.name.canonical, "/x");
    assert_string_equal(ref.name.display, "x");

    ref_ok("  arn:aws:ssm:us-east-1:123456789012:parameter/a/b:prod  ",
           NAMES_ALLOW_ARN | NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/a/b");
    assert_int_equal(ref.sel, NAMES_SEL_LABEL);
    assert_string_equal(ref.selector, ":prod");

    ref_ok("arn:aws:ssm:us-east-1:123456789012:parameter/x:12",
           NAMES_ALLOW_ARN | NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/x");
    assert_int_equal(ref.version, 12);
    assert_string_equal(ref.selector, ":12");
}

/* An ARN of another partition, region or account, or of another service,
 * is ParameterNotFound quoting the whole ARN. */
static void ref_arn_foreign(void **state)
{
    const unsigned f = NAMES_ALLOW_ARN | NAMES_ALLOW_SELECTOR;
    const char *ours = "arn:aws:ssm:us-east-1:123456789012:parameter/a";
    struct names_ref ref;
    struct cairn_error err;
    (void)state;

    ref_not_found("arn:aws:ssm:us-east-1:999999999999:parameter/a/b", f);
    ref_not_found("arn:aws:ssm:eu-west-1:123456789012:parameter/a/b", f);
    ref_not_found("arn:aws-cn:ssm:us-east-1:123456789012:parameter/a", f);
    ref_not_found("arn:aws:ssm:us-east-1:12345678901:parameter/a", f);
    ref_not_found("arn:aws:ssm:us-east-1:123456789012:document/a", f);
    ref_not_found("arn:aws:s3:us-east-1:123456789012:parameter/a", f);
    ref_not_found("arn:aws:ssm:us-east-1:123456789012:parameter/a:1:2", f);

    /* With no namespace configured no ARN is ours. */
    assert_error(&err, names_parse_ref(ours, strlen(ours), NULL, f, &ref, &err),
                 CAIRN_NOT_FOUND, "ParameterNotFound", NULL);
}

/* "parameter//a", an empty name and bad characters in an ARN are malformed
 * names. */
static void ref_arn_bad_name(void **state)
{
    static const char *const bad[] = {
        "arn:aws:ssm:us-east-1:123456789012:parameter//a",
        "arn:aws:ssm:us-east-1:123456789012:parameter/",
        "arn:aws:ssm:us-east-1:123456789012:parameter/a//b",
        "arn:aws:ssm:us-east-1:123456789012:parameter/a/",
        "arn:aws:ssm:us-east-1:123456789012:parameter/a b",
    };
    struct names_ref ref;
    struct cairn_error err;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_error(&err,
                     names_parse_ref(bad[i], strlen(bad[i]), &arn_ns,
                                     NAMES_ALLOW_ARN, &ref, &err),
                     CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    }
}

/* Without NAMES_ALLOW_ARN an ARN is just a name with too many colons. */
static void ref_arn_not_allowed(void **state)
{
    (void)state;
    ref_not_found("arn:aws:ssm:us-east-1:123456789012:parameter/a",
                  NAMES_ALLOW_SELECTOR);
}

/* A parameter called "arn" can still take a selector when ARNs are
 * allowed. */
static void ref_name_called_arn(void **state)
{
    struct names_ref ref;
    (void)state;

    ref_ok("arn:prod", NAMES_ALLOW_ARN | NAMES_ALLOW_SELECTOR, &ref);
    assert_string_equal(ref.name.canonical, "/arn");
    assert_string_equal(ref.label, "prod");
}

/* The ARN length follows the name limit: a 1011-character name is fine,
 * and one more character is a ValidationException. */
static void ref_arn_long(void **state)
{
    static const char prefix[] =
        "arn:aws:ssm:us-east-1:123456789012:"
        "parameter/";
    char s[sizeof(prefix) + NAMES_MAX_LEN + 8];
    struct names_ref ref;
    struct cairn_error err;
    size_t p = sizeof(prefix) - 1;
    (void)state;

    /* "a/" + 1008 characters is the 1011-character name "/a/...". */
    memcpy(s, prefix, p);
    fill(s + p, 'z', NAMES_MAX_LEN - 1);
    memcpy(s + p, "a/", 2);
    ref_ok(s, NAMES_ALLOW_ARN, &ref);
    assert_int_equal(ref.name.canonical_len, NAMES_MAX_LEN);

    fill(s + p, 'z', NAMES_MAX_LEN);
    memcpy(s + p, "a/", 2);
    assert_error(
        &err,
        names_parse_ref(s, strlen(s), &arn_ns, NAMES_ALLOW_ARN, &ref, &err),
        CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
}

/* names_format_arn and names_parse_ref are inverses. */
static void ref_arn_round_trip(void **state)
{
    static const char *const names[] = {"/x", "/a/b", "/a.b-c_d/E/f9"};
    char arn[2048];
    struct names_ref ref;
    (void)state;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t len = names_format_arn(&arn_ns, names[i], strlen(names[i]), arn,
                                      sizeof(arn));
        assert_true(len > 0);
        ref_ok(arn, NAMES_ALLOW_ARN, &ref);
        assert_string_equal(ref.name.canonical, names[i]);
    }
}

/******************************************************************************
 *
 * names_check_path
 *
 *****************************************************************************/

/* The canonical path always ends with '/'. */
static void path_canonical(void **state)
{
    (void)state;
    path_ok("/", "/");
    path_ok("/a", "/a/");
    path_ok("/a/b", "/a/b/");
    path_ok("/a/b/", "/a/b/");
    path_ok("  /a/b  ", "/a/b/");
    path_ok("/a.b-c_D9", "/a.b-c_D9/");
}

/* Reserved namespaces can be read by path. */
static void path_reserved_allowed(void **state)
{
    (void)state;
    path_ok("/aws/service/global-infrastructure",
            "/aws/service/global-infrastructure/");
    path_ok("/ssm", "/ssm/");
    path_ok("/AWS/", "/AWS/");
}

/* A path must start with '/', have no empty level and no bad character:
 * each failure gives AWS's path text. */
static void path_bad(void **state)
{
    static const char *const bad[] = {"",      "a",      "a/b",         "//",
                                      "/a//b", "/a b",   "/a*",         "/a:b",
                                      "   ",   "/a/b//", "/caf\xc3\xa9"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        path_fails(bad[i], "ValidationException", MSG_PATH);
    }
}

/* A path of up to 1011 characters is accepted; its canonical form then
 * fills the output buffer. 1012 characters fail. */
static void path_length(void **state)
{
    char s[NAMES_MAX_LEN + 8];
    char out[NAMES_MAX_LEN + 2];
    size_t len = 0;
    struct cairn_error err;
    (void)state;

    fill(s, 'p', NAMES_MAX_LEN);
    s[0] = '/';
    assert_int_equal(names_check_path(s, strlen(s), out, &len, &err), 0);
    assert_int_equal(len, NAMES_MAX_LEN + 1);
    assert_int_equal(out[NAMES_MAX_LEN], '/');
    assert_int_equal(out[NAMES_MAX_LEN + 1], '\0');

    fill(s, 'p', NAMES_MAX_LEN + 1);
    s[0] = '/';
    path_fails(s, "ValidationException", MSG_PATH);
}

/* 15 levels are allowed in a path, with or without a trailing slash; 16
 * give HierarchyLevelLimitExceededException. */
static void path_depth(void **state)
{
    char s[256];
    char want[256];
    (void)state;

    deep_path(s, sizeof(s), NAMES_MAX_DEPTH, false);
    deep_path(want, sizeof(want), NAMES_MAX_DEPTH, true);
    path_ok(s, want);
    path_ok(want, want);
    deep_path(s, sizeof(s), NAMES_MAX_DEPTH + 1, true);
    path_fails(s, "HierarchyLevelLimitExceededException", NULL);
    deep_path(s, sizeof(s), NAMES_MAX_DEPTH + 1, false);
    path_fails(s, "HierarchyLevelLimitExceededException", NULL);
}

/******************************************************************************
 *
 * Labels
 *
 *****************************************************************************/

/* Letters, digits, '.', '-' and '_' make a label when the first character
 * is not a digit. */
static void label_ok(void **state)
{
    static const char *const good[] = {"prod", "Prod-2", "a1", "_x", ".x",
                                       "-x",   "v1.2.3", "aw", "ss", "AWx"};
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(names_check_label(good[i], strlen(good[i])),
                         NAMES_LABEL_OK);
    }
}

/* 1 and 100 characters are fine; 0 and 101 are a length error. */
static void label_length(void **state)
{
    char s[NAMES_LABEL_MAX + 2];
    (void)state;

    assert_int_equal(names_check_label("a", 1), NAMES_LABEL_OK);
    fill(s, 'a', NAMES_LABEL_MAX);
    assert_int_equal(names_check_label(s, strlen(s)), NAMES_LABEL_OK);
    fill(s, 'a', NAMES_LABEL_MAX + 1);
    assert_int_equal(names_check_label(s, strlen(s)), NAMES_LABEL_BAD_LENGTH);
    assert_int_equal(names_check_label("", 0), NAMES_LABEL_BAD_LENGTH);
    assert_int_equal(names_check_label(NULL, 0), NAMES_LABEL_BAD_LENGTH);
}

/* A leading digit, an "aws" or "ssm" prefix in any case, or a bad
 * character make a label invalid (not a request error). */
static void label_invalid(void **state)
{
    static const char *const bad[] = {"1prod", "9",   "aws",  "AWSlabel",
                                      "ssm-x", "SsM", "pr d", "a*b",
                                      "a:b",   "a/b", "a\tb", "caf\xc3\xa9"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(names_check_label(bad[i], strlen(bad[i])),
                         NAMES_LABEL_INVALID);
    }
    assert_int_equal(names_check_label("a\0b", 3), NAMES_LABEL_INVALID);
}

/* The length limit counts characters: 100 two-byte characters are invalid
 * characters, 101 of them are a length error. */
static void label_length_in_chars(void **state)
{
    char s[2 * (NAMES_LABEL_MAX + 1) + 1];
    (void)state;

    for (size_t i = 0; i < NAMES_LABEL_MAX + 1; i++) {
        memcpy(s + 2 * i, "\xc3\xa9", 2);
    }
    assert_int_equal(names_check_label(s, 2 * NAMES_LABEL_MAX),
                     NAMES_LABEL_INVALID);
    assert_int_equal(names_check_label(s, 2 * (NAMES_LABEL_MAX + 1)),
                     NAMES_LABEL_BAD_LENGTH);
}

/* The length error quotes the label in AWS's format. */
static void label_length_message(void **state)
{
    struct cairn_error err;
    (void)state;

    assert_int_equal(names_label_length_error("", 0, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_int_equal(err.code, CAIRN_INVALID_ARGUMENT);
    assert_string_equal(err.type, "ValidationException");
    assert_string_equal(
        err.msg,
        "1 validation error detected: Value '[]' at 'labels' failed to "
        "satisfy constraint: Member must satisfy constraint: [Member must "
        "have length less than or equal to 100, Member must have length "
        "greater than or equal to 1]");
    names_label_length_error("abc", 3, &err);
    assert_non_null(strstr(err.msg, "Value '[abc]' at 'labels'"));
}

/******************************************************************************
 *
 * Tags
 *
 *****************************************************************************/

/* Letters, digits, spaces and _.:/=+-@ are allowed in keys and values. */
static void tag_chars(void **state)
{
    (void)state;
    tag_ok("Name", "web server 1");
    tag_ok("a_b.c:d/e=f+g-h@i", "a_b.c:d/e=f+g-h@i");
    tag_ok(" ", " ");
    tag_ok("aws", "x");
    tag_ok("awsx:y", "x");
    tag_ok("owner", "aws:cloudformation");
}

/* Non-ASCII letters are accepted (any well-formed non-ASCII character
 * counts as a letter). */
static void tag_unicode(void **state)
{
    (void)state;
    tag_ok("\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", "\xe5\x80\xbc");
    tag_ok("caf\xc3\xa9", "\xf0\x9f\x98\x80");
}

/* An empty key or one over 128 characters fails; 128 is fine. */
static void tag_key_length(void **state)
{
    char key[NAMES_TAG_KEY_MAX + 2];
    struct cairn_error err;
    (void)state;

    fill(key, 'k', NAMES_TAG_KEY_MAX);
    tag_ok(key, "v");
    fill(key, 'k', NAMES_TAG_KEY_MAX + 1);
    assert_error(&err, names_check_tag(key, strlen(key), "v", 1, &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    assert_non_null(strstr(err.msg, "less than or equal to 128"));
    assert_error(&err, names_check_tag("", 0, "v", 1, &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    assert_non_null(strstr(err.msg, "greater than or equal to 1"));
}

/* An empty value is allowed; 256 characters are fine, 257 fail. */
static void tag_value_length(void **state)
{
    char value[NAMES_TAG_VALUE_MAX + 2];
    struct cairn_error err;
    (void)state;

    tag_ok("k", "");
    assert_int_equal(names_check_tag("k", 1, NULL, 0, &err), 0);
    fill(value, 'v', NAMES_TAG_VALUE_MAX);
    tag_ok("k", value);
    fill(value, 'v', NAMES_TAG_VALUE_MAX + 1);
    assert_error(&err, names_check_tag("k", 1, value, strlen(value), &err),
                 CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    assert_non_null(strstr(err.msg, "less than or equal to 256"));
}

/* The limits count characters, not bytes. */
static void tag_length_in_chars(void **state)
{
    char key[2 * (NAMES_TAG_KEY_MAX + 1) + 1];
    char value[3 * (NAMES_TAG_VALUE_MAX + 1) + 1];
    (void)state;

    for (size_t i = 0; i < NAMES_TAG_KEY_MAX + 1; i++) {
        memcpy(key + 2 * i, "\xd0\xb6", 2);
    }
    for (size_t i = 0; i < NAMES_TAG_VALUE_MAX + 1; i++) {
        memcpy(value + 3 * i, "\xe2\x82\xac", 3);
    }
    assert_int_equal(names_check_tag(key, 2 * NAMES_TAG_KEY_MAX, value,
                                     3 * NAMES_TAG_VALUE_MAX, NULL),
                     0);
    tag_fails(key, 2 * (NAMES_TAG_KEY_MAX + 1), "v", 1, NULL);
    tag_fails("k", 1, value, 3 * (NAMES_TAG_VALUE_MAX + 1), NULL);
}

/* Other ASCII symbols, control characters, NUL and malformed UTF-8 fail
 * the pattern. */
static void tag_bad_chars(void **state)
{
    static const char *const bad[] = {"a*b", "a#b",  "a\tb", "a!",
                                      "a,b", "\xff", "\xc3", "\xed\xa0\x80"};
    struct cairn_error err;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tag_fails(bad[i], strlen(bad[i]), "v", 1, NULL);
        tag_fails("k", 1, bad[i], strlen(bad[i]), NULL);
    }
    tag_fails("a\0b", 3, "v", 1, NULL);
    tag_fails("k", 1, "a\0b", 3, NULL);
    assert_int_equal(names_check_tag("a*", 2, "v", 1, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_string_equal(
        err.msg,
        "1 validation error detected: Value 'a*' at "
        "'tags.member.key' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: "
        "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$");
}

/* Keys starting with "aws:" in any case are reserved. */
static void tag_reserved_key(void **state)
{
    struct cairn_error err;
    (void)state;

    tag_fails("aws:x", 5, "v", 1, NULL);
    tag_fails("AWS:createdBy", 13, "v", 1, NULL);
    tag_fails("Aws:", 4, "v", 1, NULL);
    assert_int_equal(names_check_tag("aws:x", 5, "v", 1, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "aws:"));
}

/******************************************************************************
 *
 * ARN formatting
 *
 *****************************************************************************/

/* The ARN drops the canonical name's leading slash. */
static void arn_format(void **state)
{
    char out[256];
    size_t len;
    (void)state;

    len = names_format_arn(&arn_ns, "/a/b", 4, out, sizeof(out));
    assert_string_equal(out,
                        "arn:aws:ssm:us-east-1:123456789012:parameter/a/b");
    assert_int_equal(len, strlen(out));
    len = names_format_arn(&arn_ns, "/x", 2, out, sizeof(out));
    assert_string_equal(out, "arn:aws:ssm:us-east-1:123456789012:parameter/x");
    assert_int_equal(len, strlen(out));
}

/* An output buffer one byte short gives 0; an exact fit works. */
static void arn_format_capacity(void **state)
{
    static const char want[] =
        "arn:aws:ssm:us-east-1:123456789012:"
        "parameter/a/b";
    char out[sizeof(want)];
    (void)state;

    assert_int_equal(names_format_arn(&arn_ns, "/a/b", 4, out, sizeof(want)),
                     sizeof(want) - 1);
    assert_string_equal(out, want);
    assert_int_equal(
        names_format_arn(&arn_ns, "/a/b", 4, out, sizeof(want) - 1), 0);
    assert_int_equal(names_format_arn(&arn_ns, "/a/b", 4, out, 0), 0);
}

/******************************************************************************
 *
 * UTF-8
 *
 *****************************************************************************/

/* Well-formed sequences of 1 to 4 bytes count as one character each,
 * including the boundary code points. */
static void utf8_valid(void **state)
{
    (void)state;
    assert_int_equal(names_utf8_chars("", 0), 0);
    assert_int_equal(names_utf8_chars("abc", 3), 3);
    assert_int_equal(names_utf8_chars("a\0b", 3), 3);
    assert_int_equal(names_utf8_chars("\xc2\x80", 2), 1);         /* U+0080 */
    assert_int_equal(names_utf8_chars("\xdf\xbf", 2), 1);         /* U+07FF */
    assert_int_equal(names_utf8_chars("\xe0\xa0\x80", 3), 1);     /* U+0800 */
    assert_int_equal(names_utf8_chars("\xed\x9f\xbf", 3), 1);     /* U+D7FF */
    assert_int_equal(names_utf8_chars("\xee\x80\x80", 3), 1);     /* U+E000 */
    assert_int_equal(names_utf8_chars("\xef\xbf\xbf", 3), 1);     /* U+FFFF */
    assert_int_equal(names_utf8_chars("\xf0\x90\x80\x80", 4), 1); /* 10000 */
    assert_int_equal(names_utf8_chars("\xf4\x8f\xbf\xbf", 4), 1); /* 10FFFF */
    assert_int_equal(names_utf8_chars("caf\xc3\xa9 \xf0\x9f\x98\x80", 10), 6);
}

/* Overlong forms, surrogates, code points above U+10FFFF, stray or
 * missing continuation bytes and truncated sequences are rejected. */
static void utf8_invalid(void **state)
{
    static const struct
    {
        const char *s;
        size_t n;
    } bad[] = {
        {"\xc0\x80", 2},         /* overlong NUL */
        {"\xc1\xbf", 2},         /* overlong U+007F */
        {"\xe0\x80\x80", 3},     /* overlong 3-byte */
        {"\xe0\x9f\xbf", 3},     /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 4}, /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", 4}, /* overlong U+FFFF */
        {"\xed\xa0\x80", 3},     /* U+D800 */
        {"\xed\xbf\xbf", 3},     /* U+DFFF */
        {"\xf4\x90\x80\x80", 4}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4},
        {"\xff", 1},
        {"\xfe", 1},
        {"\x80", 1}, /* stray continuation */
        {"a\xbf", 2},
        {"\xe2\x82", 2}, /* truncated */
        {"\xf0\x9f\x98", 3},
        {"\xc3", 1},
        {"\xc3\x28", 2}, /* bad continuation */
        {"\xe2\x28\xa1", 3},
        {"\xe2\x82\x28", 3},
        {"\xf0\x9f\x98\x28", 4},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (names_utf8_chars(bad[i].s, bad[i].n) != -1) {
            fail_msg("case %zu accepted", i);
        }
    }
    /* The length bounds the scan: a valid prefix of a longer buffer. */
    assert_int_equal(names_utf8_chars("ab\xe2\x82\xac", 2), 2);
    assert_int_equal(names_utf8_chars("ab\xe2\x82\xac", 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_root_names),
        cmocka_unit_test(write_allowed_chars),
        cmocka_unit_test(write_trims_spaces),
        cmocka_unit_test(write_inner_space),
        cmocka_unit_test(write_bad_chars),
        cmocka_unit_test(write_empty),
        cmocka_unit_test(write_length_limit),
        cmocka_unit_test(write_depth_limit),
        cmocka_unit_test(write_not_qualified),
        cmocka_unit_test(write_empty_levels),
        cmocka_unit_test(write_reserved_root),
        cmocka_unit_test(write_reserved_aws_path),
        cmocka_unit_test(write_reserved_ssm_path),
        cmocka_unit_test(write_reserved_elsewhere),
        cmocka_unit_test(existing_allows_reserved),
        cmocka_unit_test(existing_syntax),
        cmocka_unit_test(ref_plain),
        cmocka_unit_test(ref_version),
        cmocka_unit_test(ref_bad_version),
        cmocka_unit_test(ref_label),
        cmocka_unit_test(ref_bad_label),
        cmocka_unit_test(ref_two_colons),
        cmocka_unit_test(ref_selector_not_allowed),
        cmocka_unit_test(ref_bad_name),
        cmocka_unit_test(ref_reserved_allowed),
        cmocka_unit_test(ref_arn),
        cmocka_unit_test(ref_arn_foreign),
        cmocka_unit_test(ref_arn_bad_name),
        cmocka_unit_test(ref_arn_not_allowed),
        cmocka_unit_test(ref_name_called_arn),
        cmocka_unit_test(ref_arn_long),
        cmocka_unit_test(ref_arn_round_trip),
        cmocka_unit_test(path_canonical),
        cmocka_unit_test(path_reserved_allowed),
        cmocka_unit_test(path_bad),
        cmocka_unit_test(path_length),
        cmocka_unit_test(path_depth),
        cmocka_unit_test(label_ok),
        cmocka_unit_test(label_length),
        cmocka_unit_test(label_invalid),
        cmocka_unit_test(label_length_in_chars),
        cmocka_unit_test(label_length_message),
        cmocka_unit_test(tag_chars),
        cmocka_unit_test(tag_unicode),
        cmocka_unit_test(tag_key_length),
        cmocka_unit_test(tag_value_length),
        cmocka_unit_test(tag_length_in_chars),
        cmocka_unit_test(tag_bad_chars),
        cmocka_unit_test(tag_reserved_key),
        cmocka_unit_test(arn_format),
        cmocka_unit_test(arn_format_capacity),
        cmocka_unit_test(utf8_valid),
        cmocka_unit_test(utf8_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
