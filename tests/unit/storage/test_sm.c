/* Tests of the deterministic state machine (storage/sm.c): every write
 * operation, its errors, limits, idempotent apply and snapshots. */
#include "sm_helpers.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

static int setup(void **state)
{
    struct h *h = malloc(sizeof(*h));
    h_open(h, NULL);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct h *h = *state;
    h_close(h);
    free(h);
    return 0;
}

/* A store with small limits, for limit tests. */
static struct h *open_small(struct store_options *o)
{
    struct h *h = malloc(sizeof(*h));
    h_open(h, o);
    return h;
}

static void close_small(struct h *h)
{
    h_close(h);
    free(h);
}

/******************************************************************************
 * Helper macros
 *****************************************************************************/

#define PUT(h, json) json_decref(h_ok((h), "PutParameter", "%s", (json)))

static long long version_of(struct h *h, const char *name)
{
    json_t *r = h_q(h, "GetParameter", "{\"Name\":\"%s\"}", name);
    long long v = ji(json_object_get(r, "Parameter"), "Version");
    json_decref(r);
    return v;
}

static char *value_of(struct h *h, const char *ref)
{
    json_t *r = h_q(h, "GetParameter", "{\"Name\":\"%s\"}", ref);
    char *v = strdup(js(json_object_get(r, "Parameter"), "Value"));
    json_decref(r);
    return v;
}

static json_t *describe_one(struct h *h, const char *name)
{
    json_t *r = h_q(h, "DescribeParameters",
                    "{\"ParameterFilters\":[{\"Key\":\"Name\",\"Values\":"
                    "[\"%s\"]}]}",
                    name);
    json_t *p =
        json_incref(json_array_get(json_object_get(r, "Parameters"), 0));
    json_decref(r);
    assert_non_null(p);
    return p;
}

/******************************************************************************
 * PutParameter
 *****************************************************************************/

/* A new parameter starts at version 1 on the Standard tier. */
static void put_create(void **state)
{
    struct h *h = *state;
    json_t *r = h_ok(h, "PutParameter",
                     "{\"Name\":\"/app/db\",\"Value\":\"v\",\"Type\":"
                     "\"String\",\"Description\":\"the db\"}");
    assert_int_equal(ji(r, "Version"), 1);
    assert_string_equal(js(r, "Tier"), "Standard");
    json_decref(r);
    r = describe_one(h, "/app/db");
    assert_string_equal(js(r, "Description"), "the db");
    assert_string_equal(js(r, "DataType"), "text");
    assert_string_equal(js(r, "LastModifiedUser"),
                        "arn:aws:iam::000000000000:user/test");
    json_decref(r);
}

/* Writing an existing name without Overwrite fails and changes nothing. */
static void put_exists(void **state)
{
    struct h *h = *state;
    const char *msg;
    PUT(h, "{\"Name\":\"/a\",\"Value\":\"1\",\"Type\":\"String\"}");
    msg = h_fail(h, CAIRN_ALREADY_EXISTS, "ParameterAlreadyExists",
                 "PutParameter",
                 "{\"Name\":\"/a\",\"Value\":\"2\",\"Type\":\"String\"}");
    assert_string_equal(msg,
                        "The parameter already exists. To overwrite this "
                        "value, set the overwrite option in the request "
                        "to true.");
    assert_int_equal(version_of(h, "/a"), 1);
}

/* Overwrite makes a new version and keeps the fields the request omits. */
static void put_overwrite_keeps_fields(void **state)
{
    struct h *h = *state;
    json_t *r;
    PUT(h,
        "{\"Name\":\"/a\",\"Value\":\"1\",\"Type\":\"StringList\","
        "\"Description\":\"d\",\"AllowedPattern\":\"^[0-9,]+$\"}");
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/a\",\"Value\":\"2,3\",\"Overwrite\":true}");
    assert_int_equal(ji(r, "Version"), 2);
    json_decref(r);
    r = describe_one(h, "/a");
    assert_string_equal(js(r, "Type"), "StringList");
    assert_string_equal(js(r, "Description"), "d");
    assert_string_equal(js(r, "AllowedPattern"), "^[0-9,]+$");
    json_decref(r);
    /* The kept pattern still applies. */
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ParameterPatternMismatchException",
           "PutParameter",
           "{\"Name\":\"/a\",\"Value\":\"x\",\"Overwrite\":true}");
    /* String and StringList may change into each other. */
    PUT(h,
        "{\"Name\":\"/a\",\"Value\":\"4\",\"Type\":\"String\","
        "\"Overwrite\":true}");
    assert_int_equal(version_of(h, "/a"), 3);
}

/* Required fields and enum values give AWS's validation messages. */
static void put_validation(void **state)
{
    struct h *h = *state;
    const char *msg;
    msg = h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
                 "PutParameter", "{\"Name\":\"/a\",\"Value\":\"v\"}");
    assert_string_equal(msg,
                        "A parameter type is required when you create a "
                        "parameter.");
    msg =
        h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
               "{\"Name\":\"/a\",\"Value\":\"v\",\"Type\":\"str\"}");
    assert_non_null(strstr(msg,
                           "Value 'str' at 'type' failed to satisfy "
                           "constraint: Member must satisfy enum value "
                           "set: [SecureString, StringList, String]"));
    msg =
        h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
               "{\"Name\":\"/a\",\"Value\":\"\",\"Type\":\"String\"}");
    assert_non_null(strstr(msg,
                           "Value '' at 'value' failed to satisfy "
                           "constraint: Member must have length greater "
                           "than or equal to 1."));
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Value\":\"v\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a\",\"Value\":\"v\",\"Type\":\"String\","
           "\"Tier\":\"Gold\"}");
    msg =
        h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
               "{\"Name\":\"/a\",\"Value\":\"v\",\"Type\":\"String\","
               "\"DataType\":\"Text\"}");
    assert_string_equal(msg,
                        "The following data type is not supported: Text "
                        "(Data type names are all lowercase.)");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a\",\"Value\":\"{{ssm:/b}}\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a\",\"Value\":\"v\",\"Type\":\"String\","
           "\"KeyId\":\"alias/x\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a\",\"Value\":\"v\",\"Type\":\"SecureString\","
           "\"KeyId\":\"bad key!\"}");
    /* A wrong JSON type is a serialization error. */
    h_fail(h, CAIRN_INVALID_ARGUMENT, "SerializationException", "PutParameter",
           "{\"Name\":\"/a\",\"Value\":\"v\",\"Type\":\"String\","
           "\"Overwrite\":\"yes\"}");
    /* Nothing was created by any of these. */
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/a\"}");
}

/* Names follow AWS's rules, reserved prefixes included. */
static void put_names(void **state)
{
    struct h *h = *state;
    char *ok = h_long_name("/n/", 1011);
    char *bad = h_long_name("/n/", 1012);
    const char *msg;

    PUT(h, "{\"Name\":\"  /trim/me  \",\"Value\":\"v\",\"Type\":\"String\"}");
    assert_int_equal(version_of(h, "/trim/me"), 1);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/in ner\",\"Value\":\"v\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a$b\",\"Value\":\"v\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"a/b\",\"Value\":\"v\",\"Type\":\"String\"}");
    msg = h_fail(h, CAIRN_PERMISSION_DENIED, "AccessDeniedException",
                 "PutParameter",
                 "{\"Name\":\"/aws/x\",\"Value\":\"v\",\"Type\":\"String\"}");
    assert_string_equal(msg, "No access to reserved parameter name: /aws/x.");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"SSM_x\",\"Value\":\"v\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/ssm/x\",\"Value\":\"v\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "HierarchyLevelLimitExceededException",
           "PutParameter",
           "{\"Name\":\"/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16\",\"Value\":"
           "\"v\",\"Type\":\"String\"}");
    PUT(h,
        "{\"Name\":\"/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15\",\"Value\":"
        "\"v\",\"Type\":\"String\"}");
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"%s\",\"Value\":\"v\",\"Type\":\"String\"}",
                     ok));
    assert_int_equal(version_of(h, ok), 1);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"%s\",\"Value\":\"v\",\"Type\":\"String\"}", bad);
    free(ok);
    free(bad);
}

/* "/x" and "x" name the same root parameter. */
static void put_root_alias(void **state)
{
    struct h *h = *state;
    char *v;
    PUT(h, "{\"Name\":\"x\",\"Value\":\"1\",\"Type\":\"String\"}");
    h_fail(h, CAIRN_ALREADY_EXISTS, "ParameterAlreadyExists", "PutParameter",
           "{\"Name\":\"/x\",\"Value\":\"2\",\"Type\":\"String\"}");
    PUT(h,
        "{\"Name\":\"/x\",\"Value\":\"2\",\"Type\":\"String\","
        "\"Overwrite\":true}");
    v = value_of(h, "x");
    assert_string_equal(v, "2");
    free(v);
    assert_int_equal(version_of(h, "/x"), 2);
}

/* Tags are set at creation only, never together with Overwrite. */
static void put_tags(void **state)
{
    struct h *h = *state;
    const char *msg;
    json_t *r;
    msg =
        h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
               "{\"Name\":\"/t\",\"Value\":\"v\",\"Type\":\"String\","
               "\"Overwrite\":true,\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]"
               "}");
    assert_non_null(strstr(msg, "tags and overwrite can't be used together"));
    PUT(h,
        "{\"Name\":\"/t\",\"Value\":\"v\",\"Type\":\"String\",\"Tags\":"
        "[{\"Key\":\"b\",\"Value\":\"2\"},{\"Key\":\"a\",\"Value\":\"1\"}]}");
    r = h_q(h, "ListTagsForResource",
            "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/t\"}");
    assert_int_equal(json_array_size(json_object_get(r, "TagList")), 2);
    assert_string_equal(
        js(json_array_get(json_object_get(r, "TagList"), 0), "Key"), "a");
    json_decref(r);
    /* Overwrite keeps the tags. */
    h_put(h, "/t", "w");
    r = h_q(h, "ListTagsForResource",
            "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/t\"}");
    assert_int_equal(json_array_size(json_object_get(r, "TagList")), 2);
    json_decref(r);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/t2\",\"Value\":\"v\",\"Type\":\"String\",\"Tags\":"
           "[{\"Key\":\"aws:x\",\"Value\":\"1\"}]}");
}

/* At most 50 tags per parameter, whichever way they are added. */
static void tags_limit(void **state)
{
    struct h *h = *state;
    char tags[8192];
    size_t n = 0;
    n += (size_t)snprintf(tags + n, sizeof(tags) - n, "[");
    for (int i = 0; i < 51; i++) {
        n += (size_t)snprintf(tags + n, sizeof(tags) - n,
                              "%s{\"Key\":\"k%02d\",\"Value\":\"v\"}",
                              i ? "," : "", i);
    }
    snprintf(tags + n, sizeof(tags) - n, "]");
    h_fail(h, CAIRN_RESOURCE_EXHAUSTED, "TooManyTagsError", "PutParameter",
           "{\"Name\":\"/t\",\"Value\":\"v\",\"Type\":\"String\",\"Tags\":%s}",
           tags);
    h_put(h, "/t", "v");
    h_fail(h, CAIRN_RESOURCE_EXHAUSTED, "TooManyTagsError", "AddTagsToResource",
           "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/t\",\"Tags\":%s}",
           tags);
    /* 50 fit, and replacing an existing key does not count twice. */
    n = (size_t)snprintf(tags, sizeof(tags), "[");
    for (int i = 0; i < 50; i++) {
        n += (size_t)snprintf(tags + n, sizeof(tags) - n,
                              "%s{\"Key\":\"k%02d\",\"Value\":\"v\"}",
                              i ? "," : "", i);
    }
    snprintf(tags + n, sizeof(tags) - n, "]");
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/t\","
                     "\"Tags\":%s}",
                     tags));
    json_decref(h_ok(h, "AddTagsToResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/t\","
                     "\"Tags\":[{\"Key\":\"k00\",\"Value\":\"new\"}]}"));
    json_decref(h_ok(h, "RemoveTagsFromResource",
                     "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/t\","
                     "\"TagKeys\":[\"k01\",\"absent\"]}"));
    {
        json_t *r = h_q(h, "ListTagsForResource",
                        "{\"ResourceType\":\"Parameter\",\"ResourceId\":"
                        "\"t\"}");
        json_t *list = json_object_get(r, "TagList");
        assert_int_equal(json_array_size(list), 49);
        assert_string_equal(js(json_array_get(list, 0), "Value"), "new");
        json_decref(r);
    }
    h_fail(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceId", "AddTagsToResource",
           "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/nope\",\"Tags\":"
           "[{\"Key\":\"a\",\"Value\":\"b\"}]}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "InvalidResourceType",
           "AddTagsToResource",
           "{\"ResourceType\":\"Document\",\"ResourceId\":\"/t\",\"Tags\":"
           "[{\"Key\":\"a\",\"Value\":\"b\"}]}");
}

/* AllowedPattern is a regular expression the value must match. */
static void put_allowed_pattern(void **state)
{
    struct h *h = *state;
    const char *msg;
    msg = h_fail(h, CAIRN_INVALID_ARGUMENT, "ParameterPatternMismatchException",
                 "PutParameter",
                 "{\"Name\":\"/p\",\"Value\":\"abc\",\"Type\":\"String\","
                 "\"AllowedPattern\":\"^\\\\d+$\"}");
    assert_string_equal(msg,
                        "Parameter value, cannot be validated against "
                        "allowedPattern: ^\\d+$");
    PUT(h,
        "{\"Name\":\"/p\",\"Value\":\"123\",\"Type\":\"String\","
        "\"AllowedPattern\":\"^\\\\d+$\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "InvalidAllowedPatternException",
           "PutParameter",
           "{\"Name\":\"/q\",\"Value\":\"1\",\"Type\":\"String\","
           "\"AllowedPattern\":\"([a-z\"}");
    /* Catastrophic backtracking is cut off deterministically. */
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ParameterPatternMismatchException",
           "PutParameter",
           "{\"Name\":\"/r\",\"Value\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\","
           "\"Type\":\"String\",\"AllowedPattern\":\"^(a+)+$\"}");
}

/* aws:ec2:image values must look like AMI ids and be Strings. */
static void put_data_type(void **state)
{
    struct h *h = *state;
    PUT(h,
        "{\"Name\":\"/ami\",\"Value\":\"ami-0123456789abcdef0\",\"Type\":"
        "\"String\",\"DataType\":\"aws:ec2:image\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/ami2\",\"Value\":\"not-an-ami\",\"Type\":\"String\","
           "\"DataType\":\"aws:ec2:image\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/ami3\",\"Value\":\"ami-12345678\",\"Type\":"
           "\"StringList\",\"DataType\":\"aws:ec2:image\"}");
    /* The data type is kept on overwrite. */
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/ami\",\"Value\":\"x\",\"Overwrite\":true}");
}

/******************************************************************************
 * SecureString
 *****************************************************************************/

/* Sealed values are stored as opaque bytes with a key id; plaintext is
 * refused and the type cannot switch to or from SecureString. */
static void secure_string(void **state)
{
    struct h *h = *state;
    const uint8_t blob[] = {0, 1, 2, 0xff, 0x80, 'x'};
    const struct sm_outcome *o;
    json_t *r;

    /* The keys must exist (tests/unit/storage/test_keyring.c). */
    h_ensure_key(h, NULL);
    h_ensure_key(h, "alias/other");
    o = h_put_secure(h, "/s", blob, sizeof(blob), 5, NULL, false);
    assert_int_equal(o->err.code, 0);
    r = describe_one(h, "/s");
    assert_string_equal(js(r, "KeyId"), "alias/aws/ssm");
    assert_string_equal(js(r, "Type"), "SecureString");
    json_decref(r);
    r = h_q(h, "GetParameter", "{\"Name\":\"/s\",\"WithDecryption\":true}");
    /* base64 of the blob: storage never decrypts. */
    assert_string_equal(js(json_object_get(r, "Parameter"), "Value"),
                        "AAEC/4B4");
    json_decref(r);
    o = h_put_secure(h, "/s", blob, sizeof(blob), 5, "alias/other", true);
    assert_int_equal(o->err.code, 0);
    r = describe_one(h, "/s");
    assert_string_equal(js(r, "KeyId"), "alias/other");
    json_decref(r);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/plain\",\"Value\":\"secret\",\"Type\":"
           "\"SecureString\"}");
    h_fail(h, CAIRN_FAILED_PRECONDITION, "HierarchyTypeMismatchException",
           "PutParameter",
           "{\"Name\":\"/s\",\"Value\":\"v\",\"Type\":\"String\","
           "\"Overwrite\":true}");
    h_put(h, "/str", "v");
    o = h_put_secure(h, "/str", blob, sizeof(blob), 5, NULL, true);
    assert_int_equal(o->err.code, CAIRN_FAILED_PRECONDITION);
    assert_string_equal(o->err.type, "HierarchyTypeMismatchException");
    /* A 5000-character secret goes beyond the Standard tier. */
    o = h_put_secure(h, "/big", blob, sizeof(blob), 5000, NULL, false);
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
}

/******************************************************************************
 * Tiers and limits
 *****************************************************************************/

static char *value_of_len(size_t n)
{
    char *v = malloc(n + 1);
    memset(v, 'v', n);
    v[n] = '\0';
    return v;
}

/* Value size limits per tier, and Intelligent-Tiering's choice. */
static void tier_sizes(void **state)
{
    struct h *h = *state;
    char *v4096 = value_of_len(4096);
    char *v4097 = value_of_len(4097);
    char *v8192 = value_of_len(8192);
    char *v8193 = value_of_len(8193);
    const char *msg;
    json_t *r;

    PUT(h, "{\"Name\":\"/s1\",\"Type\":\"String\",\"Value\":\"x\"}");
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/s\",\"Type\":\"String\",\"Value\":\"%s\"}",
                     v4096));
    msg = h_fail(
        h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
        "{\"Name\":\"/s2\",\"Type\":\"String\",\"Value\":\"%s\"}", v4097);
    assert_non_null(strstr(msg,
                           "Standard tier parameters support a maximum "
                           "parameter value of 4096 characters."));
    json_decref(h_ok(h, "PutParameter",
                     "{\"Name\":\"/a\",\"Type\":\"String\",\"Tier\":"
                     "\"Advanced\",\"Value\":\"%s\"}",
                     v8192));
    msg =
        h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
               "{\"Name\":\"/a2\",\"Type\":\"String\",\"Tier\":\"Advanced\","
               "\"Value\":\"%s\"}",
               v8193);
    assert_string_equal(msg,
                        "The specified parameter value is too large. "
                        "Advanced-tier parameters support a maximum "
                        "parameter value of 8192 characters.");
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/i\",\"Type\":\"String\",\"Tier\":"
             "\"Intelligent-Tiering\",\"Value\":\"small\"}");
    assert_string_equal(js(r, "Tier"), "Standard");
    json_decref(r);
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/i\",\"Type\":\"String\",\"Tier\":"
             "\"Intelligent-Tiering\",\"Overwrite\":true,\"Value\":\"%s\"}",
             v4097);
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
    /* Multi-byte characters count as one each. */
    {
        char *u = malloc(4096 * 2 + 1);
        for (int i = 0; i < 4096; i++) {
            u[2 * i] = (char)0xc3;
            u[2 * i + 1] = (char)0xa9;
        }
        u[8192] = '\0';
        json_decref(h_ok(h, "PutParameter",
                         "{\"Name\":\"/u\",\"Type\":\"String\",\"Value\":"
                         "\"%s\"}",
                         u));
        free(u);
    }
    free(v4096);
    free(v4097);
    free(v8192);
    free(v8193);
}

/* Advanced never goes back to Standard; omitting Tier keeps Advanced. */
static void tier_no_downgrade(void **state)
{
    struct h *h = *state;
    json_t *r;
    PUT(h,
        "{\"Name\":\"/a\",\"Type\":\"String\",\"Tier\":\"Advanced\","
        "\"Value\":\"v\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/a\",\"Type\":\"String\",\"Tier\":\"Standard\","
           "\"Overwrite\":true,\"Value\":\"v\"}");
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/a\",\"Value\":\"w\",\"Overwrite\":true}");
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/a\",\"Value\":\"w\",\"Overwrite\":true,\"Tier\":"
             "\"Intelligent-Tiering\"}");
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
    /* Standard to Advanced is allowed. */
    PUT(h, "{\"Name\":\"/s\",\"Type\":\"String\",\"Value\":\"v\"}");
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/s\",\"Value\":\"v\",\"Overwrite\":true,\"Tier\":"
             "\"Advanced\"}");
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
}

#define EXPIRATION_POLICY                                                      \
    "[{\\\"Type\\\":\\\"Expiration\\\",\\\"Version\\\":\\\"1.0\\\","           \
    "\\\"Attributes\\\":{\\\"Timestamp\\\":\\\"2030-01-01T00:00:00.000Z\\\"}}" \
    "]"

/* Policies need the Advanced tier, persist across updates, and "[{}]"
 * removes them. */
static void tier_policies(void **state)
{
    struct h *h = *state;
    json_t *r;
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "PutParameter",
           "{\"Name\":\"/p\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
           "\"Standard\",\"Policies\":\"" EXPIRATION_POLICY "\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "InvalidPolicyTypeException",
           "PutParameter",
           "{\"Name\":\"/p\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
           "\"Advanced\",\"Policies\":\"[{\\\"Type\\\":\\\"Bogus\\\","
           "\\\"Version\\\":\\\"1.0\\\",\\\"Attributes\\\":{}}]\"}");
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/p\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
             "\"Intelligent-Tiering\",\"Policies\":\"" EXPIRATION_POLICY "\"}");
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
    h_put(h, "/p", "w");
    r = describe_one(h, "/p");
    assert_int_equal(json_array_size(json_object_get(r, "Policies")), 1);
    assert_string_equal(
        js(json_array_get(json_object_get(r, "Policies"), 0), "PolicyType"),
        "Expiration");
    json_decref(r);
    PUT(h,
        "{\"Name\":\"/p\",\"Value\":\"x\",\"Overwrite\":true,\"Policies\":"
        "\"[{}]\"}");
    r = describe_one(h, "/p");
    assert_int_equal(json_array_size(json_object_get(r, "Policies")), 0);
    json_decref(r);
}

/* The default-tier setting applies when a request has no Tier. */
static void tier_default_setting(void **state)
{
    struct h *h = *state;
    json_t *r;
    h_fail(h, CAIRN_NOT_FOUND, "ServiceSettingNotFound", "UpdateServiceSetting",
           "{\"SettingId\":\"/ssm/other\",\"SettingValue\":\"Advanced\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
           "UpdateServiceSetting",
           "{\"SettingId\":\"/ssm/parameter-store/default-parameter-tier\","
           "\"SettingValue\":\"Gold\"}");
    json_decref(h_ok(h, "UpdateServiceSetting",
                     "{\"SettingId\":\"arn:aws:ssm:local:000000000000:"
                     "servicesetting/ssm/parameter-store/"
                     "default-parameter-tier\",\"SettingValue\":"
                     "\"Advanced\"}"));
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/d\",\"Type\":\"String\",\"Value\":\"v\"}");
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/e\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
             "\"Standard\"}");
    assert_string_equal(js(r, "Tier"), "Standard");
    json_decref(r);
    json_decref(h_ok(h, "ResetServiceSetting",
                     "{\"SettingId\":\"/ssm/parameter-store/"
                     "default-parameter-tier\"}"));
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/f\",\"Type\":\"String\",\"Value\":\"v\"}");
    assert_string_equal(js(r, "Tier"), "Standard");
    json_decref(r);
}

/* Count limits per tier, with small configured limits. */
static void tier_count_limits(void **state)
{
    struct store_options o;
    struct h *h;
    json_t *r;
    const char *msg;
    (void)state;

    store_options_default(&o);
    o.limits.standard_params = 3;
    o.limits.advanced_params = 2;
    h = open_small(&o);
    h_put(h, "/s1", "v");
    h_put(h, "/s2", "v");
    h_put(h, "/s3", "v");
    msg = h_fail(h, CAIRN_RESOURCE_EXHAUSTED, "ParameterLimitExceeded",
                 "PutParameter",
                 "{\"Name\":\"/s4\",\"Type\":\"String\",\"Value\":\"v\"}");
    assert_non_null(strstr(msg, "standard"));
    /* Overwriting an existing one is not a new parameter. */
    h_put(h, "/s3", "w");
    /* Intelligent-Tiering moves to Advanced once Standard is full. */
    r = h_ok(h, "PutParameter",
             "{\"Name\":\"/i\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
             "\"Intelligent-Tiering\"}");
    assert_string_equal(js(r, "Tier"), "Advanced");
    json_decref(r);
    /* Upgrading /s1 frees a Standard slot and takes the last Advanced. */
    PUT(h,
        "{\"Name\":\"/s1\",\"Value\":\"v\",\"Overwrite\":true,\"Tier\":"
        "\"Advanced\"}");
    h_put(h, "/s4", "v");
    h_fail(h, CAIRN_RESOURCE_EXHAUSTED, "ParameterLimitExceeded",
           "PutParameter",
           "{\"Name\":\"/a3\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
           "\"Advanced\"}");
    h_fail(h, CAIRN_RESOURCE_EXHAUSTED, "ParameterLimitExceeded",
           "PutParameter",
           "{\"Name\":\"/s2\",\"Value\":\"v\",\"Overwrite\":true,\"Tier\":"
           "\"Advanced\"}");
    /* Deleting frees a slot. */
    json_decref(h_ok(h, "DeleteParameter", "{\"Name\":\"/i\"}"));
    PUT(h,
        "{\"Name\":\"/a3\",\"Type\":\"String\",\"Value\":\"v\",\"Tier\":"
        "\"Advanced\"}");
    /* Counters survive a restart. */
    h_reopen(h);
    h_fail(h, CAIRN_RESOURCE_EXHAUSTED, "ParameterLimitExceeded",
           "PutParameter",
           "{\"Name\":\"/s5\",\"Type\":\"String\",\"Value\":\"v\"}");
    close_small(h);
}

/******************************************************************************
 * Versions
 *****************************************************************************/

static long long history_count(struct h *h,
                               const char *name,
                               long long *first,
                               long long *last)
{
    long long n = 0;
    char *token = NULL;
    *first = -1;
    do {
        json_t *r = token == NULL
                        ? h_q(h, "GetParameterHistory",
                              "{\"Name\":\"%s\",\"MaxResults\":50}", name)
                        : h_q(h, "GetParameterHistory",
                              "{\"Name\":\"%s\",\"MaxResults\":50,"
                              "\"NextToken\":\"%s\"}",
                              name, token);
        json_t *ps = json_object_get(r, "Parameters");
        size_t i;
        json_t *p;
        json_array_foreach(ps, i, p)
        {
            if (*first < 0) {
                *first = ji(p, "Version");
            }
            *last = ji(p, "Version");
            n++;
        }
        free(token);
        token = js(r, "NextToken") ? strdup(js(r, "NextToken")) : NULL;
        json_decref(r);
    } while (token != NULL);
    return n;
}

/* The 101st version drops the oldest; a labelled oldest blocks the write. */
static void versions_limit(void **state)
{
    struct h *h = *state;
    long long first, last;
    const char *msg;
    char *v;

    for (int i = 1; i <= 100; i++) {
        assert_int_equal(h_put(h, "/v", "x"), (uint64_t)i);
    }
    assert_int_equal(history_count(h, "/v", &first, &last), 100);
    assert_int_equal(first, 1);
    assert_int_equal(h_put(h, "/v", "101"), 101);
    assert_int_equal(history_count(h, "/v", &first, &last), 100);
    assert_int_equal(first, 2);
    assert_int_equal(last, 101);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound", "GetParameter",
            "{\"Name\":\"/v:1\"}");
    /* Label the oldest: the next write fails and changes nothing. */
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/v\",\"ParameterVersion\":2,\"Labels\":"
                     "[\"keep\"]}"));
    msg = h_fail(h, CAIRN_RESOURCE_EXHAUSTED,
                 "ParameterMaxVersionLimitExceeded", "PutParameter",
                 "{\"Name\":\"/v\",\"Value\":\"102\",\"Overwrite\":true}");
    assert_string_equal(msg,
                        "You attempted to create a new version of /v by "
                        "calling the PutParameter API with the overwrite "
                        "flag. Version 2, the oldest version, can't be "
                        "deleted because it has a label associated with it. "
                        "Move the label to another version of the parameter, "
                        "and try again.");
    assert_int_equal(version_of(h, "/v"), 101);
    v = value_of(h, "/v:keep");
    assert_string_equal(v, "x");
    free(v);
    /* Moving the label away unblocks it. */
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/v\",\"ParameterVersion\":50,\"Labels\":"
                     "[\"keep\"]}"));
    assert_int_equal(h_put(h, "/v", "102"), 102);
    assert_int_equal(history_count(h, "/v", &first, &last), 100);
    assert_int_equal(first, 3);
}

/* A configured smaller version limit applies the same way. */
static void versions_small_limit(void **state)
{
    struct store_options o;
    struct h *h;
    long long first, last;
    (void)state;
    store_options_default(&o);
    o.limits.versions = 3;
    h = open_small(&o);
    for (int i = 0; i < 5; i++) {
        h_put(h, "/v", "x");
    }
    assert_int_equal(history_count(h, "/v", &first, &last), 3);
    assert_int_equal(first, 3);
    assert_int_equal(last, 5);
    close_small(h);
}

/******************************************************************************
 * Labels
 *****************************************************************************/

/* Labels attach to a version, move between versions, and resolve. */
static void labels_move(void **state)
{
    struct h *h = *state;
    json_t *r;
    char *v;

    h_put(h, "/l", "one");
    h_put(h, "/l", "two");
    h_put(h, "/l", "three");
    r = h_ok(h, "LabelParameterVersion",
             "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":[\"prod\","
             "\"blue\"]}");
    assert_int_equal(ji(r, "ParameterVersion"), 1);
    assert_int_equal(json_array_size(json_object_get(r, "InvalidLabels")), 0);
    json_decref(r);
    v = value_of(h, "/l:prod");
    assert_string_equal(v, "one");
    free(v);
    /* Without a version the newest is labelled; "prod" moves there. */
    r = h_ok(h, "LabelParameterVersion",
             "{\"Name\":\"/l\",\"Labels\":[\"prod\"]}");
    assert_int_equal(ji(r, "ParameterVersion"), 3);
    json_decref(r);
    v = value_of(h, "/l:prod");
    assert_string_equal(v, "three");
    free(v);
    r = h_q(h, "GetParameterHistory", "{\"Name\":\"/l\"}");
    {
        json_t *ps = json_object_get(r, "Parameters");
        json_t *l1 = json_object_get(json_array_get(ps, 0), "Labels");
        json_t *l3 = json_object_get(json_array_get(ps, 2), "Labels");
        assert_int_equal(json_array_size(l1), 1);
        assert_string_equal(json_string_value(json_array_get(l1, 0)), "blue");
        assert_int_equal(json_array_size(l3), 1);
        assert_string_equal(json_string_value(json_array_get(l3, 0)), "prod");
    }
    json_decref(r);
}

/* Invalid labels are returned, not attached; bad lengths fail the call. */
static void labels_invalid(void **state)
{
    struct h *h = *state;
    json_t *r;
    char longlabel[102];
    memset(longlabel, 'a', 101);
    longlabel[101] = '\0';

    h_put(h, "/l", "v");
    r = h_ok(h, "LabelParameterVersion",
             "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":[\"ok\","
             "\"1digit\",\"awsx\",\"SSMy\",\"bad/char\"]}");
    assert_int_equal(json_array_size(json_object_get(r, "InvalidLabels")), 4);
    json_decref(r);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/l:awsx\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
           "LabelParameterVersion", "{\"Name\":\"/l\",\"Labels\":[\"%s\"]}",
           longlabel);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
           "LabelParameterVersion", "{\"Name\":\"/l\",\"Labels\":[]}");
    h_fail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "LabelParameterVersion",
           "{\"Name\":\"/nope\",\"Labels\":[\"a\"]}");
    h_fail(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound",
           "LabelParameterVersion",
           "{\"Name\":\"/l\",\"ParameterVersion\":7,\"Labels\":[\"a\"]}");
}

/* A version holds at most 10 labels. */
static void labels_limit(void **state)
{
    struct h *h = *state;
    const char *msg;
    h_put(h, "/l", "v");
    h_put(h, "/l", "w");
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":"
                     "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
                     "\"j\"]}"));
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/l\",\"ParameterVersion\":2,\"Labels\":"
                     "[\"k\"]}"));
    msg = h_fail(h, CAIRN_RESOURCE_EXHAUSTED,
                 "ParameterVersionLabelLimitExceeded", "LabelParameterVersion",
                 "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":[\"k\"]}");
    assert_string_equal(msg,
                        "A parameter version can have maximum 10 "
                        "labels.Move one or more labels to another "
                        "version and try again.");
    /* Nothing moved. */
    assert_int_equal(version_of(h, "/l:k"), 2);
    /* Re-labelling with a label already there is not a new one. */
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":"
                     "[\"a\"]}"));
}

/* Unlabel removes only labels on that version. */
static void labels_unlabel(void **state)
{
    struct h *h = *state;
    json_t *r;
    const char *msg;
    h_put(h, "/l", "v");
    h_put(h, "/l", "w");
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":"
                     "[\"a\",\"b\"]}"));
    msg = h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException",
                 "UnlabelParameterVersion",
                 "{\"Name\":\"/l\",\"Labels\":[\"a\"]}");
    assert_string_equal(msg,
                        "1 validation error detected: Value 'null' at "
                        "'parameterVersion' failed to satisfy "
                        "constraint: Member must not be null");
    r = h_ok(h, "UnlabelParameterVersion",
             "{\"Name\":\"/l\",\"ParameterVersion\":1,\"Labels\":[\"a\","
             "\"zz\"]}");
    assert_int_equal(json_array_size(json_object_get(r, "RemovedLabels")), 1);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(r, "InvalidLabels"), 0)),
                        "zz");
    json_decref(r);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/l:a\"}");
    assert_int_equal(version_of(h, "/l:b"), 1);
    r = h_ok(h, "UnlabelParameterVersion",
             "{\"Name\":\"/l\",\"ParameterVersion\":2,\"Labels\":[\"b\"]}");
    assert_int_equal(json_array_size(json_object_get(r, "RemovedLabels")), 0);
    json_decref(r);
    h_fail(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound",
           "UnlabelParameterVersion",
           "{\"Name\":\"/l\",\"ParameterVersion\":9,\"Labels\":[\"b\"]}");
}

/******************************************************************************
 * Deletes
 *****************************************************************************/

/* Delete removes every version and label; re-creating starts afresh. */
static void delete_one(void **state)
{
    struct h *h = *state;
    const char *msg;
    h_put(h, "/d", "1");
    h_put(h, "/d", "2");
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/d\",\"Labels\":[\"x\"]}"));
    json_decref(h_ok(h, "DeleteParameter", "{\"Name\":\"/d\"}"));
    msg = h_fail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "DeleteParameter",
                 "{\"Name\":\"/d\"}");
    assert_string_equal(msg, "Parameter /d not found.");
    assert_int_equal(h_put(h, "/d", "new"), 1);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/d:x\"}");
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterVersionNotFound", "GetParameter",
            "{\"Name\":\"/d:2\"}");
}

/* DeleteParameters reports deleted and invalid names. */
static void delete_many(void **state)
{
    struct h *h = *state;
    json_t *r;
    h_put(h, "/a", "1");
    h_put(h, "b", "1");
    r = h_ok(h, "DeleteParameters",
             "{\"Names\":[\"/a\",\"/b\",\"/missing\",\"bad name\",\"/a\"]}");
    assert_int_equal(json_array_size(json_object_get(r, "DeletedParameters")),
                     2);
    assert_int_equal(json_array_size(json_object_get(r, "InvalidParameters")),
                     2);
    json_decref(r);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "DeleteParameters",
           "{\"Names\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
           "\"9\",\"10\",\"11\"]}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "DeleteParameters",
           "{\"Names\":[]}");
}

/******************************************************************************
 * Apply: determinism, idempotence, malformed commands
 *****************************************************************************/

/* Applying an index at or below the applied index is a no-op. */
static void apply_same_index_twice(void **state)
{
    struct h *h = *state;
    const struct sm_outcome *o;
    struct cairn_error err;
    uint64_t applied;
    uint64_t rev;
    struct buf cmd;

    h_put(h, "/i", "v");
    /* Replay the same command bytes at the same index. */
    buf_init(&cmd);
    buf_append(&cmd, h->cmd.data, h->cmd.len);
    o = NULL;
    assert_int_equal(sm_apply(h->s, h->index, cmd.data, cmd.len, &o), 0);
    assert_true(o->skipped);
    assert_int_equal(sm_apply(h->s, 1, cmd.data, cmd.len, &o), 0);
    assert_true(o->skipped);
    assert_int_equal(version_of(h, "/i"), 1);
    assert_int_equal(store_applied_index(h->s, &applied, &err), 0);
    assert_int_equal(applied, h->index);
    assert_int_equal(store_revision(h->s, &rev, &err), 0);
    assert_int_equal(rev, 1);
    /* Across a restart, too. */
    h_reopen(h);
    assert_int_equal(sm_apply(h->s, h->index, cmd.data, cmd.len, &o), 0);
    assert_true(o->skipped);
    assert_int_equal(version_of(h, "/i"), 1);
    /* The next index applies. */
    assert_int_equal(sm_apply(h->s, h->index + 1, cmd.data, cmd.len, &o), 0);
    assert_false(o->skipped);
    if (o->err.code != 0) {
        fail_msg("%s", o->err.msg);
    }
    assert_int_equal(version_of(h, "/i"), 2);
    buf_close(&cmd);
}

/* Malformed commands produce errors, advance the index, change nothing. */
static void apply_malformed(void **state)
{
    struct h *h = *state;
    static const uint8_t garbage[] = {0xc1, 0x00};
    static const uint8_t truncated[] = {0x82, 0xa2, 'o', 'p'};
    static const uint8_t not_map[] = {0x93, 1, 2, 3};
    static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const struct sm_outcome *o;
    struct cairn_error err;
    uint64_t applied;
    struct buf b;

    o = h_apply_raw(h, garbage, sizeof(garbage));
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    o = h_apply_raw(h, truncated, sizeof(truncated));
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    o = h_apply_raw(h, not_map, sizeof(not_map));
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    o = h_apply_raw(h, huge, sizeof(huge));
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    o = h_apply_raw(h, "", 0);
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    buf_init(&b);
    test_json_to_mp("{\"op\":\"Nope\",\"ts\":1,\"req\":{}}", &b);
    o = h_apply_raw(h, b.data, b.len);
    assert_int_equal(o->err.code, CAIRN_UNIMPLEMENTED);
    test_json_to_mp("{\"op\":\"PutParameter\",\"ts\":1}", &b);
    o = h_apply_raw(h, b.data, b.len);
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    test_json_to_mp("{\"op\":7,\"ts\":1,\"req\":{}}", &b);
    o = h_apply_raw(h, b.data, b.len);
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
    test_json_to_mp("{\"op\":\"PutParameter\",\"ts\":\"x\",\"req\":{}}", &b);
    o = h_apply_raw(h, b.data, b.len);
    assert_string_equal(o->err.type, "SerializationException");
    buf_close(&b);
    assert_int_equal(store_applied_index(h->s, &applied, &err), 0);
    assert_int_equal(applied, h->index);
    /* The store still works. */
    h_put(h, "/ok", "v");
}

/* A batch commits all its commands at once; an abort drops them all. */
static void apply_batch(void **state)
{
    struct h *h = *state;
    struct cairn_error err;
    uint64_t applied;

    assert_int_equal(sm_batch_begin(h->s, &err), 0);
    h_put(h, "/b1", "v");
    h_put(h, "/b2", "v");
    assert_int_not_equal(sm_batch_begin(h->s, &err), 0);
    assert_int_equal(sm_batch_commit(h->s, &err), 0);
    assert_int_equal(version_of(h, "/b2"), 1);
    assert_int_equal(sm_batch_begin(h->s, &err), 0);
    h_put(h, "/b3", "v");
    sm_batch_abort(h->s);
    h_qfail(h, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/b3\"}");
    assert_int_equal(store_applied_index(h->s, &applied, &err), 0);
    assert_int_equal(applied, h->index - 1);
}

/* Two stores fed the same commands reach byte-identical query results. */
static void apply_deterministic(void **state)
{
    struct h a, b;
    (void)state;
    h_open(&a, NULL);
    h_open(&b, NULL);
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof(name), "/det/%d/p%d", i % 5, i);
        h_put(&a, name, "v");
        h_put(&b, name, "v");
    }
    json_decref(h_ok(&a, "LabelParameterVersion",
                     "{\"Name\":\"/det/1/p1\",\"Labels\":[\"x\"]}"));
    json_decref(h_ok(&b, "LabelParameterVersion",
                     "{\"Name\":\"/det/1/p1\",\"Labels\":[\"x\"]}"));
    {
        json_t *ra = h_q(&a, "DescribeParameters", "{\"MaxResults\":50}");
        json_t *rb = h_q(&b, "DescribeParameters", "{\"MaxResults\":50}");
        json_t *ca = h_q(&a, "GetChanges", "{\"MaxResults\":1000}");
        json_t *cb = h_q(&b, "GetChanges", "{\"MaxResults\":1000}");
        json_object_del(ra, "NextToken"); /* tokens are sealed per store */
        json_object_del(rb, "NextToken");
        assert_true(json_equal(ra, rb));
        assert_true(json_equal(ca, cb));
        json_decref(ra);
        json_decref(rb);
        json_decref(ca);
        json_decref(cb);
    }
    /* The digests agree at the same index, and differ after one more
     * write on one side only. */
    {
        uint8_t da[32], db[32];
        uint64_t ia, ib;
        struct cairn_error err;
        assert_int_equal(store_digest(a.s, da, &ia, &err), 0);
        assert_int_equal(store_digest(b.s, db, &ib, &err), 0);
        assert_int_equal(ia, ib);
        assert_memory_equal(da, db, 32);
        h_put(&a, "/det/extra", "v");
        assert_int_equal(store_digest(a.s, da, &ia, &err), 0);
        assert_memory_not_equal(da, db, 32);
    }
    h_close(&a);
    h_close(&b);
}

/* Init sets the replicated token key once; later Inits keep the first. */
static void apply_init(void **state)
{
    struct h *h = *state;
    msgpack_packer pk;
    struct buf b;
    uint8_t key[32];
    const struct sm_outcome *o;

    memset(key, 7, sizeof(key));
    buf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_cstr(&pk, "op", "Init");
    mp_pack_kv_i64(&pk, "ts", 1);
    mp_pack_cstr(&pk, "req");
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "TokenKey");
    mp_pack_bin(&pk, key, sizeof(key));
    o = h_apply_raw(h, b.data, b.len);
    assert_int_equal(o->err.code, 0);
    o = h_apply_raw(h, b.data, b.len);
    assert_int_equal(o->err.code, 0);
    buf_close(&b);
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "Init",
           "{\"TokenKey\":\"short\"}");
}

/* The member table: set, replace, remove, listed in id order; bad input is
 * a validation error that changes nothing. */
static void members_table(void **state)
{
    struct h *h = *state;
    json_t *r, *m;

    r = h_q(h, "ListMembers", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "Members")), 0);
    json_decref(r);
    json_decref(h_ok(h, "SetMember",
                     "{\"Id\":3,\"RaftAddress\":\"127.0.0.1:7421\","
                     "\"ApiAddress\":\"127.0.0.1:7420\"}"));
    json_decref(h_ok(h, "SetMember",
                     "{\"Id\":1,\"RaftAddress\":\"127.0.0.1:7401\","
                     "\"ApiAddress\":\"127.0.0.1:7400\"}"));
    json_decref(h_ok(h, "SetMember",
                     "{\"Id\":3,\"RaftAddress\":\"127.0.0.1:7421\","
                     "\"ApiAddress\":\"127.0.0.1:9999\"}"));
    r = h_q(h, "ListMembers", "{}");
    m = json_object_get(r, "Members");
    assert_int_equal(json_array_size(m), 2);
    assert_int_equal(ji(json_array_get(m, 0), "Id"), 1);
    assert_int_equal(ji(json_array_get(m, 1), "Id"), 3);
    assert_string_equal(js(json_array_get(m, 1), "ApiAddress"),
                        "127.0.0.1:9999");
    assert_string_equal(js(json_array_get(m, 0), "RaftAddress"),
                        "127.0.0.1:7401");
    json_decref(r);

    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "SetMember",
           "{\"Id\":0,\"RaftAddress\":\"a:1\",\"ApiAddress\":\"a:2\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "SetMember",
           "{\"Id\":2,\"RaftAddress\":\"noport\",\"ApiAddress\":\"a:2\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "SetMember",
           "{\"Id\":2,\"RaftAddress\":\"a:1\"}");
    h_fail(h, CAIRN_INVALID_ARGUMENT, "ValidationException", "RemoveMember",
           "{}");
    json_decref(h_ok(h, "RemoveMember", "{\"Id\":1}"));
    json_decref(h_ok(h, "RemoveMember", "{\"Id\":42}"));
    r = h_q(h, "ListMembers", "{}");
    m = json_object_get(r, "Members");
    assert_int_equal(json_array_size(m), 1);
    assert_int_equal(ji(json_array_get(m, 0), "Id"), 3);
    json_decref(r);
}

/******************************************************************************
 * Change feed
 *****************************************************************************/

/* Every change appends one row, in order. */
static void feed_rows(void **state)
{
    struct h *h = *state;
    json_t *r, *rows;
    static const char *const ops[] = {"Create", "Update",
                                      "LabelParameterVersion", "Delete"};
    h_put(h, "/f", "1");
    h_put(h, "/f", "2");
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/f\",\"Labels\":[\"x\"]}"));
    h_fail(h, CAIRN_ALREADY_EXISTS, "ParameterAlreadyExists", "PutParameter",
           "{\"Name\":\"/f\",\"Value\":\"v\",\"Type\":\"String\"}");
    json_decref(h_ok(h, "DeleteParameter", "{\"Name\":\"/f\"}"));
    r = h_q(h, "GetChanges", "{\"FromRevision\":1}");
    rows = json_object_get(r, "Changes");
    assert_int_equal(json_array_size(rows), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *row = json_array_get(rows, i);
        assert_int_equal(ji(row, "Revision"), (long long)i + 1);
        assert_string_equal(js(row, "Operation"), ops[i]);
        assert_string_equal(js(row, "Name"), "/f");
        assert_string_equal(js(row, "Type"), "String");
    }
    assert_int_equal(ji(json_array_get(rows, 1), "Version"), 2);
    assert_int_equal(ji(r, "Revision"), 4);
    json_decref(r);
}

/* A no_sync store writes through the map into a sparse file (as large as
 * the map); its blocks are reserved ahead of the used end so that a write
 * into a hole can never meet a full disk (store_reserve). */
static void writemap_reserves_ahead(void **state)
{
    struct h *h = *state;
    char *path = NULL;
    char name[32];
    char value[2049];
    struct stat st;

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < 200; i++) { /* under 1 MB of versions */
        snprintf(name, sizeof(name), "/w/p%d", i);
        h_put(h, name, value);
    }
    assert_true(asprintf(&path, "%s/data.mdb", h->dir) > 0);
    assert_int_equal(stat(path, &st), 0);
    free(path);
    /* The map's size, sparse... */
    assert_int_equal((long long)st.st_size, (long long)h->opts.map_size);
    /* ...with at least half the headroom allocated past a few MB used. */
    if ((long long)st.st_blocks * 512 < (32LL << 20)) {
        fail_msg("%lld bytes allocated for a store of about 1 MB",
                 (long long)st.st_blocks * 512);
    }
    if ((long long)st.st_blocks * 512 > (256LL << 20)) {
        fail_msg("%lld bytes allocated: the whole map, not a headroom",
                 (long long)st.st_blocks * 512);
    }
}

/******************************************************************************
 * Snapshots
 *****************************************************************************/

/* A snapshot restored into a fresh store answers every query the same. */
static void snapshot_restore(void **state)
{
    struct h *h = *state;
    struct h fresh;
    struct cairn_error err;
    char path[4096];
    bool restored = false;
    uint64_t idx = 0, applied = 0;
    int fd;
    static const char *const queries[][2] = {
        {"DescribeParameters", "{\"MaxResults\":50}"},
        {"GetParametersByPath", "{\"Path\":\"/snap\",\"Recursive\":true}"},
        {"GetParameterHistory", "{\"Name\":\"/snap/a/3\"}"},
        {"GetParameter", "{\"Name\":\"/snap/a/3:lbl\"}"},
        {"GetChanges", "{\"MaxResults\":1000}"},
        {"ListTagsForResource",
         "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/snap/t\"}"},
    };

    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof(name), "/snap/%c/%d", 'a' + i % 3, i);
        h_put(h, name, "v");
        h_put(h, name, "w");
    }
    json_decref(h_ok(h, "LabelParameterVersion",
                     "{\"Name\":\"/snap/a/3\",\"ParameterVersion\":1,"
                     "\"Labels\":[\"lbl\"]}"));
    PUT(h,
        "{\"Name\":\"/snap/t\",\"Value\":\"v\",\"Type\":\"String\","
        "\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}");
    snprintf(path, sizeof(path), "%s/snap.out", h->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(store_snapshot_write(h->s, fd, &err), 0);
    /* Later writes are not in the snapshot. */
    h_put(h, "/after", "v");

    h_open(&fresh, NULL);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(store_restore(fresh.s, fd, true, &restored, &idx, &err),
                     0);
    assert_true(restored);
    assert_int_equal(idx, h->index - 1);
    assert_int_equal(store_applied_index(fresh.s, &applied, &err), 0);
    assert_int_equal(applied, idx);
    h_qfail(&fresh, CAIRN_NOT_FOUND, "ParameterNotFound", "GetParameter",
            "{\"Name\":\"/after\"}");
    /* Make the source match the snapshot again, then compare. */
    json_decref(h_ok(h, "DeleteParameter", "{\"Name\":\"/after\"}"));
    fresh.index = idx;
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        json_t *a = h_q(h, queries[i][0], "%s", queries[i][1]);
        json_t *b = h_q(&fresh, queries[i][0], "%s", queries[i][1]);
        if (strcmp(queries[i][0], "GetChanges") == 0) {
            /* The source has two more rows (create and delete /after). */
            json_t *ca = json_object_get(a, "Changes");
            json_array_remove(ca, json_array_size(ca) - 1);
            json_array_remove(ca, json_array_size(ca) - 1);
            json_object_del(a, "Revision");
            json_object_del(b, "Revision");
        }
        json_object_del(a, "NextToken"); /* sealed with per-store keys */
        json_object_del(b, "NextToken");
        if (!json_equal(a, b)) {
            char *sa = json_dumps(a, JSON_SORT_KEYS);
            char *sb = json_dumps(b, JSON_SORT_KEYS);
            fail_msg("%s differs:\n%s\n%s", queries[i][0], sa, sb);
        }
        json_decref(a);
        json_decref(b);
    }
    /* The restored store takes new writes at later indexes. */
    h_put(&fresh, "/snap/new", "v");
    /* A snapshot older than the store is skipped when asked. */
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(store_restore(fresh.s, fd, true, &restored, &idx, &err),
                     0);
    assert_false(restored);
    assert_int_equal(version_of(&fresh, "/snap/new"), 1);
    close(fd);
    h_close(&fresh);
}

/* A file that is not a Cairn store is refused and the store is unharmed. */
static void snapshot_restore_garbage(void **state)
{
    struct h *h = *state;
    struct cairn_error err;
    char path[4096];
    bool restored = true;
    int fd;

    h_put(h, "/keep", "v");
    snprintf(path, sizeof(path), "%s/garbage", h->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not an lmdb file at all", 23), 23);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(store_restore(h->s, fd, false, &restored, NULL, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_false(restored);
    close(fd);
    assert_int_equal(version_of(h, "/keep"), 1);
}

/* A second opener of the same directory is refused. */
static void store_single_opener(void **state)
{
    struct h *h = *state;
    struct store *other = NULL;
    struct cairn_error err;
    assert_int_equal(store_open(h->dir, NULL, &other, &err),
                     CAIRN_FAILED_PRECONDITION);
    assert_null(other);
    assert_int_equal(store_open("/nonexistent/cairn", NULL, &other, &err),
                     CAIRN_NOT_FOUND);
}

/******************************************************************************
 * Client sessions
 *****************************************************************************/

static const struct sm_outcome *session_put(struct h *h,
                                            const char *cid,
                                            uint64_t seq,
                                            const char *name,
                                            bool overwrite)
{
    char *json = NULL;
    h->ts += 1000;
    assert_true(asprintf(&json,
                         "{\"op\":\"PutParameter\",\"ts\":%lld,\"cid\":"
                         "\"%s\",\"seq\":%llu,\"req\":{\"Name\":\"%s\","
                         "\"Value\":\"v\",\"Type\":\"String\","
                         "\"Overwrite\":%s}}",
                         (long long)h->ts, cid, (unsigned long long)seq, name,
                         overwrite ? "true" : "false") > 0);
    test_json_to_mp(json, &h->cmd);
    free(json);
    return h_apply_raw(h, h->cmd.data, h->cmd.len);
}

/* A write retried with the same session and sequence number is applied
 * once and answers with the first outcome, success or error. */
static void session_exactly_once(void **state)
{
    struct h *h = *state;
    const struct sm_outcome *o;
    char *first;

    o = session_put(h, "client-1", 1, "/s", true);
    assert_int_equal(o->err.code, 0);
    first = test_mp_to_json(o->body, o->body_len);
    /* The retry arrives at a new index (a new log entry). */
    o = session_put(h, "client-1", 1, "/s", true);
    assert_int_equal(o->err.code, 0);
    {
        char *again = test_mp_to_json(o->body, o->body_len);
        assert_string_equal(first, again);
        free(again);
    }
    free(first);
    assert_int_equal(version_of(h, "/s"), 1);
    o = session_put(h, "client-1", 2, "/s", true);
    assert_int_equal(o->err.code, 0);
    assert_int_equal(version_of(h, "/s"), 2);
    /* An older sequence number is refused, not applied. */
    o = session_put(h, "client-1", 1, "/s", true);
    assert_int_equal(o->err.code, CAIRN_FAILED_PRECONDITION);
    assert_string_equal(o->err.type, "RequestAlreadyApplied");
    assert_int_equal(version_of(h, "/s"), 2);
    /* Errors are remembered too. */
    o = session_put(h, "client-1", 3, "/s", false);
    assert_int_equal(o->err.code, CAIRN_ALREADY_EXISTS);
    h_put(h, "/other", "v");
    o = session_put(h, "client-1", 3, "/s", false);
    assert_int_equal(o->err.code, CAIRN_ALREADY_EXISTS);
    assert_string_equal(o->err.type, "ParameterAlreadyExists");
    /* Sessions are independent. */
    o = session_put(h, "client-2", 1, "/s", true);
    assert_int_equal(o->err.code, 0);
    assert_int_equal(version_of(h, "/s"), 3);
    /* They survive a restart. */
    h_reopen(h);
    o = session_put(h, "client-2", 1, "/s", true);
    assert_int_equal(o->err.code, 0);
    assert_int_equal(version_of(h, "/s"), 3);
    o = session_put(h, "client-3", 0, "/s", true);
    assert_int_equal(o->err.code, CAIRN_INVALID_ARGUMENT);
}

/* A session unused for longer than session_ttl_ms (by command time) is
 * forgotten: a retry after that is a new request. */
static void session_expiry(void **state)
{
    struct store_options o;
    struct h *h;
    const struct sm_outcome *out;
    (void)state;

    store_options_default(&o);
    o.limits.session_ttl_ms = 10000; /* 10 s; each command advances 1 s */
    h = open_small(&o);
    out = session_put(h, "old", 1, "/e", true);
    assert_int_equal(out->err.code, 0);
    out = session_put(h, "fresh", 1, "/f", true);
    assert_int_equal(out->err.code, 0);
    /* Within the TTL the retry is recognised. */
    out = session_put(h, "old", 1, "/e", true);
    assert_int_equal(out->err.code, 0);
    assert_int_equal(version_of(h, "/e"), 1);
    /* Keep "fresh" in use while time passes. */
    for (int i = 0; i < 12; i++) {
        out = session_put(h, "fresh", (uint64_t)i + 2, "/f", true);
        assert_int_equal(out->err.code, 0);
    }
    /* "old" was forgotten: the same seq applies again... */
    out = session_put(h, "old", 1, "/e", true);
    assert_int_equal(out->err.code, 0);
    assert_int_equal(version_of(h, "/e"), 2);
    /* ... while "fresh" still deduplicates. */
    out = session_put(h, "fresh", 13, "/f", true);
    assert_int_equal(out->err.code, 0);
    assert_int_equal(version_of(h, "/f"), 13);
    close_small(h);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(put_create),
        T(writemap_reserves_ahead),
        T(put_exists),
        T(put_overwrite_keeps_fields),
        T(put_validation),
        T(put_names),
        T(put_root_alias),
        T(put_tags),
        T(tags_limit),
        T(put_allowed_pattern),
        T(put_data_type),
        T(secure_string),
        T(tier_sizes),
        T(tier_no_downgrade),
        T(tier_policies),
        T(tier_default_setting),
        cmocka_unit_test(tier_count_limits),
        T(versions_limit),
        cmocka_unit_test(versions_small_limit),
        T(labels_move),
        T(labels_invalid),
        T(labels_limit),
        T(labels_unlabel),
        T(delete_one),
        T(delete_many),
        T(apply_same_index_twice),
        T(apply_malformed),
        T(apply_batch),
        cmocka_unit_test(apply_deterministic),
        T(apply_init),
        T(members_table),
        T(feed_rows),
        T(snapshot_restore),
        T(snapshot_restore_garbage),
        T(store_single_opener),
        T(session_exactly_once),
        cmocka_unit_test(session_expiry),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
