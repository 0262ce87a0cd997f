/* Unit tests for storage/policy.c: parameter policy JSON and ISO-8601
 * timestamps. */
#include "test.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

#define DAY_MS INT64_C(86400000)
#define HOUR_MS INT64_C(3600000)

/* 2018-12-02T21:34:33.000Z, the example of the user guide. */
#define EXP_JSON                                                   \
    "{\"Type\":\"Expiration\",\"Version\":\"1.0\",\"Attributes\":" \
    "{\"Timestamp\":\"2018-12-02T21:34:33.000Z\"}}"
#define EXP_MS INT64_C(1543786473000)
#define NOTE_JSON(before, unit)                                 \
    "{\"Type\":\"ExpirationNotification\",\"Version\":\"1.0\"," \
    "\"Attributes\":{\"Before\":" before ",\"Unit\":\"" unit "\"}}"
#define NOCHANGE_JSON(after, unit)                            \
    "{\"Type\":\"NoChangeNotification\",\"Version\":\"1.0\"," \
    "\"Attributes\":{\"After\":" after ",\"Unit\":\"" unit "\"}}"

static const char MSG_TYPE[] =
    "The policy type isn't supported. Parameter Store supports the following "
    "policy types: Expiration, ExpirationNotification, and "
    "NoChangeNotification.";
static const char MSG_INCOMPATIBLE[] =
    "There is a conflict in the policies specified for this parameter. You "
    "can't, for example, specify two Expiration policies for a parameter. "
    "Review your policies, and try again.";

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

static int64_t ts(const char *s)
{
    int64_t ms = 0;

    if (policy_parse_timestamp(s, strlen(s), &ms) != 0) {
        fail_msg("timestamp %s rejected", s);
    }
    return ms;
}

static bool ts_bad(const char *s)
{
    int64_t ms = 12345;
    int rv = policy_parse_timestamp(s, strlen(s), &ms);

    return rv == -1;
}

/******************************************************************************
 *
 * Assertions
 *
 *****************************************************************************/

#define assert_ts_bad(s)                          \
    do {                                          \
        if (!ts_bad(s)) {                         \
            fail_msg("timestamp %s accepted", s); \
        }                                         \
    } while (0)

static void parse_ok(const char *json, struct policy_set *set)
{
    struct cairn_error err;
    int rv = policy_parse(json, strlen(json), set, &err);

    if (rv != 0) {
        fail_msg("policy_parse(%s) = %d: %s %s", json, rv, err.type, err.msg);
    }
}

/* The policy fails with @p code and AWS error @p type (and message @p msg
 * unless NULL), and leaves nothing to free. */
static void parse_fails(const char *json,
                        int code,
                        const char *type,
                        const char *msg)
{
    struct policy_set set;
    struct cairn_error err;
    int rv;

    cairn_error_clear(&err);
    rv = policy_parse(json, json != NULL ? strlen(json) : 0, &set, &err);
    if (rv != code) {
        fail_msg("policy_parse(%s) = %d (%s: %s), want %d", json, rv, err.type,
                 err.msg, code);
    }
    assert_int_equal(err.code, code);
    assert_string_equal(err.type, type);
    if (msg != NULL) {
        assert_string_equal(err.msg, msg);
    }
    assert_int_equal(set.count, 0);
}

/* "[" + @p item + "]" with the single policy @p item. */
static void one_fails(const char *item, int code, const char *type)
{
    char json[1024];

    snprintf(json, sizeof(json), "[%s]", item);
    parse_fails(json, code, type, NULL);
}

/******************************************************************************
 *
 * Timestamps
 *
 *****************************************************************************/

/* ISO_INSTANT with a 'Z' gives milliseconds since the epoch. */
static void ts_instant(void **state)
{
    (void)state;
    assert_int_equal(ts("2018-12-02T21:34:33.000Z"), EXP_MS);
    assert_int_equal(ts("2018-12-02T21:34:33Z"), EXP_MS);
    assert_int_equal(ts("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ts("2038-01-19T03:14:08Z"), INT64_C(2147483648000));
    assert_int_equal(ts("9999-12-31T23:59:59.999Z"), INT64_C(253402300799999));
}

/* Lower-case 't' and 'z' are accepted, as by Java's ISO parsers. */
static void ts_case(void **state)
{
    (void)state;
    assert_int_equal(ts("2018-12-02t21:34:33.000z"), EXP_MS);
}

/* Offsets of the form +HH:MM and +HH:MM:SS move the instant; -00:00 is
 * UTC. */
static void ts_offsets(void **state)
{
    (void)state;
    assert_int_equal(ts("2019-11-01T22:13:48.87+10:30"),
                     INT64_C(1572608628870));
    assert_int_equal(ts("2019-11-01T22:13:48.87+10:30:00"),
                     INT64_C(1572608628870));
    assert_int_equal(ts("2000-02-29T12:00:00-05:00"), INT64_C(951843600000));
    assert_int_equal(ts("1970-01-01T00:00:00-00:00"), 0);
    assert_int_equal(ts("1970-01-01T00:00:00+00:00:30"), -30000);
    assert_int_equal(ts("1970-01-01T00:00:00+18:00"), -18 * HOUR_MS);
    assert_int_equal(ts("1970-01-01T00:00:00-18:00"), 18 * HOUR_MS);
}

/* Fractions of 1 to 9 digits are accepted and truncated to
 * milliseconds, also before the epoch. */
static void ts_fractions(void **state)
{
    (void)state;
    assert_int_equal(ts("1970-01-01T00:00:00.5Z"), 500);
    assert_int_equal(ts("1970-01-01T00:00:00.05Z"), 50);
    assert_int_equal(ts("1970-01-01T00:00:00.123456789Z"), 123);
    assert_int_equal(ts("1970-01-01T00:00:00.999999999Z"), 999);
    assert_int_equal(ts("1969-12-31T23:59:59.999Z"), -1);
    assert_int_equal(ts("1969-12-31T23:59:59.9999Z"), -1);
    assert_ts_bad("1970-01-01T00:00:00.Z");
    assert_ts_bad("1970-01-01T00:00:00.1234567890Z");
    assert_ts_bad("1970-01-01T00:00:00,5Z");
}

/* Leap days exist only in leap years: 2024 and 2000, not 2023 or 1900. */
static void ts_leap_years(void **state)
{
    (void)state;
    assert_int_equal(ts("2024-02-29T00:00:00Z"), INT64_C(1709164800000));
    assert_int_equal(ts("2000-02-29T00:00:00Z") + DAY_MS,
                     ts("2000-03-01T00:00:00Z"));
    assert_ts_bad("2023-02-29T00:00:00Z");
    assert_ts_bad("1900-02-29T00:00:00Z");
    assert_int_equal(ts("1900-02-28T00:00:00Z") + DAY_MS,
                     ts("1900-03-01T00:00:00Z"));
    assert_int_equal(ts("1900-03-01T00:00:00Z"), INT64_C(-2203891200000));
}

/* Impossible dates and times are rejected: Feb 30, month 13, day 0, April
 * 31, hour 24, minute 60, second 60. */
static void ts_bad_dates(void **state)
{
    (void)state;
    assert_ts_bad("2024-02-30T00:00:00Z");
    assert_ts_bad("2024-13-01T00:00:00Z");
    assert_ts_bad("2024-00-01T00:00:00Z");
    assert_ts_bad("2024-01-00T00:00:00Z");
    assert_ts_bad("2024-01-32T00:00:00Z");
    assert_ts_bad("2024-04-31T00:00:00Z");
    assert_ts_bad("2024-06-31T00:00:00Z");
    assert_ts_bad("2024-09-31T00:00:00Z");
    assert_ts_bad("2024-11-31T00:00:00Z");
    assert_ts_bad("2024-01-01T24:00:00Z");
    assert_ts_bad("2024-01-01T23:60:00Z");
    assert_ts_bad("2024-01-01T23:59:60Z");
    assert_int_equal(ts("2024-12-31T23:59:59Z") + 1000,
                     ts("2025-01-01T00:00:00Z"));
}

/* Malformed text is rejected: missing parts, wrong widths, offsets out of
 * range, trailing characters. */
static void ts_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "2018-12-02",
        "2018-12-02T21:34Z",
        "2018-12-02T21:34:33",
        "2018-12-02 21:34:33Z",
        "2018-12-2T21:34:33Z",
        "18-12-02T21:34:33Z",
        "+2018-12-02T21:34:33Z",
        "2018/12/02T21:34:33Z",
        "2018-12-02T21:34:33+10",
        "2018-12-02T21:34:33+1030",
        "2018-12-02T21:34:33+10:3",
        "2018-12-02T21:34:33+10:30:",
        "2018-12-02T21:34:33+10:30:0",
        "2018-12-02T21:34:33+19:00",
        "2018-12-02T21:34:33+18:01",
        "2018-12-02T21:34:33+10:60",
        "2018-12-02T21:34:33+10:30:60",
        "2018-12-02T21:34:33ZZ",
        "2018-12-02T21:34:33Z ",
        " 2018-12-02T21:34:33Z",
        "2018-12-02T21:34:33.000",
        "2018-12-02T2a:34:33Z",
        "2018-12-02T21:34:33UTC",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_ts_bad(bad[i]);
    }
    assert_int_equal(policy_parse_timestamp(NULL, 0, NULL), -1);
}

/* Only the first @p n bytes are read: the input need not be
 * NUL-terminated. */
static void ts_length_bound(void **state)
{
    static const char s[] = "2018-12-02T21:34:33.000Z trailing";
    int64_t ms = 0;
    (void)state;

    assert_int_equal(policy_parse_timestamp(s, 24, &ms), 0);
    assert_int_equal(ms, EXP_MS);
    assert_int_equal(policy_parse_timestamp(s, 23, &ms), -1);
}

/* Years 0000 to 9999 are accepted, on the proleptic Gregorian calendar. */
static void ts_year_range(void **state)
{
    (void)state;
    assert_int_equal(ts("0001-01-01T00:00:00Z"), INT64_C(-62135596800000));
    assert_int_equal(ts("0000-01-01T00:00:00Z"), INT64_C(-62167219200000));
    assert_int_equal(ts("0000-02-29T00:00:00Z") + DAY_MS,
                     ts("0000-03-01T00:00:00Z"));
}

/* Walking the calendar day by day from 1600 to 2400, each valid date is
 * exactly one day after the one before, and the day after each month's
 * last day is rejected. */
static void ts_calendar_walk(void **state)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    char s[64];
    int64_t prev;
    int64_t ms;
    (void)state;

    prev = ts("1599-12-31T00:00:00Z");
    for (int y = 1600; y <= 2400; y++) {
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for (int m = 1; m <= 12; m++) {
            int last = mdays[m - 1] + (m == 2 && leap ? 1 : 0);
            for (int d = 1; d <= last; d++) {
                snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00Z", y, m, d);
                assert_int_equal(policy_parse_timestamp(s, strlen(s), &ms), 0);
                if (ms != prev + DAY_MS) {
                    fail_msg("%s is not one day after the previous date", s);
                }
                prev = ms;
            }
            snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00Z", y, m, last + 1);
            if (policy_parse_timestamp(s, strlen(s), &ms) != -1) {
                fail_msg("%s accepted", s);
            }
        }
    }
}

/******************************************************************************
 *
 * Policies: accepted input
 *
 *****************************************************************************/

/* One Expiration policy gives its instant and its compact text. */
static void policy_expiration(void **state)
{
    struct policy_set set;
    (void)state;

    parse_ok("[" EXP_JSON "]", &set);
    assert_int_equal(set.count, 1);
    assert_int_equal(set.items[0].type, POLICY_EXPIRATION);
    assert_int_equal(set.items[0].value_ms, EXP_MS);
    assert_string_equal(set.items[0].text, EXP_JSON);
    policy_set_close(&set);
    assert_int_equal(set.count, 0);
}

/* PolicyText is compact and keeps the keys in the client's order. */
static void policy_text_normalised(void **state)
{
    struct policy_set set;
    (void)state;

    parse_ok(
        "[ {\n  \"Version\" : \"1.0\",\n  \"Attributes\": { \"Unit\": "
        "\"Hours\", \"After\": \"20\" },\n  \"Type\": "
        "\"NoChangeNotification\"\n} ]",
        &set);
    assert_int_equal(set.count, 1);
    assert_string_equal(set.items[0].text,
                        "{\"Version\":\"1.0\",\"Attributes\":{\"Unit\":"
                        "\"Hours\",\"After\":\"20\"},\"Type\":"
                        "\"NoChangeNotification\"}");
    assert_int_equal(set.items[0].value_ms, 20 * HOUR_MS);
    policy_set_close(&set);
}

/* A full set: Expiration, two ExpirationNotifications (Days and Hours)
 * and a NoChangeNotification, in the given order. */
static void policy_all_types(void **state)
{
    struct policy_set set;
    (void)state;

    parse_ok("[" EXP_JSON "," NOTE_JSON("\"30\"", "Days") "," NOTE_JSON(
                 "\"15\"", "Hours") "," NOCHANGE_JSON("\"20\"", "Days") "]",
             &set);
    assert_int_equal(set.count, 4);
    assert_int_equal(set.items[0].type, POLICY_EXPIRATION);
    assert_int_equal(set.items[1].type, POLICY_EXPIRATION_NOTIFICATION);
    assert_int_equal(set.items[1].value_ms, 30 * DAY_MS);
    assert_int_equal(set.items[2].type, POLICY_EXPIRATION_NOTIFICATION);
    assert_int_equal(set.items[2].value_ms, 15 * HOUR_MS);
    assert_int_equal(set.items[3].type, POLICY_NO_CHANGE_NOTIFICATION);
    assert_int_equal(set.items[3].value_ms, 20 * DAY_MS);
    assert_string_equal(set.items[1].text, NOTE_JSON("\"30\"", "Days"));
    assert_string_equal(set.items[3].text, NOCHANGE_JSON("\"20\"", "Days"));
    policy_set_close(&set);
}

/* Amounts may also be JSON integers, and leading zeros are harmless. */
static void policy_integer_amounts(void **state)
{
    struct policy_set set;
    (void)state;

    parse_ok("[" EXP_JSON "," NOTE_JSON("15", "Days") "," NOCHANGE_JSON(
                 "\"007\"", "Hours") "]",
             &set);
    assert_int_equal(set.count, 3);
    assert_int_equal(set.items[1].value_ms, 15 * DAY_MS);
    assert_int_equal(set.items[2].value_ms, 7 * HOUR_MS);
    policy_set_close(&set);
}

/* A NoChangeNotification alone needs no Expiration. */
static void policy_no_change_alone(void **state)
{
    struct policy_set set;
    (void)state;

    parse_ok("[" NOCHANGE_JSON("\"1\"", "Hours") "]", &set);
    assert_int_equal(set.count, 1);
    assert_int_equal(set.items[0].value_ms, HOUR_MS);
    policy_set_close(&set);
}

/* "[{}]" alone means "remove every policy": success with count 0. */
static void policy_clear(void **state)
{
    struct policy_set set;
    (void)state;

    parse_ok("[{}]", &set);
    assert_int_equal(set.count, 0);
    policy_set_close(&set);
    parse_ok(" [ { } ] ", &set);
    assert_int_equal(set.count, 0);
}

/* Ten policies are the most allowed. */
static void policy_ten(void **state)
{
    char json[2048] = "[" EXP_JSON;
    struct policy_set set;
    (void)state;

    for (int i = 0; i < POLICY_MAX - 1; i++) {
        strcat(json, "," NOTE_JSON("\"1\"", "Days"));
    }
    strcat(json, "]");
    parse_ok(json, &set);
    assert_int_equal(set.count, POLICY_MAX);
    policy_set_close(&set);
}

/* A policy string of exactly 4096 characters is accepted (4097 is not,
 * see policy_too_long). */
static void policy_max_length(void **state)
{
    char json[POLICY_TEXT_MAX + 2];
    struct policy_set set;
    size_t n;
    (void)state;

    strcpy(json, "[" EXP_JSON);
    n = strlen(json);
    memset(json + n, ' ', POLICY_TEXT_MAX - 1 - n);
    json[POLICY_TEXT_MAX - 1] = ']';
    json[POLICY_TEXT_MAX] = '\0';
    parse_ok(json, &set);
    assert_int_equal(set.count, 1);
    policy_set_close(&set);
}

/* The type names are AWS's. */
static void policy_type_names(void **state)
{
    (void)state;
    assert_string_equal(policy_type_name(POLICY_EXPIRATION), "Expiration");
    assert_string_equal(policy_type_name(POLICY_EXPIRATION_NOTIFICATION),
                        "ExpirationNotification");
    assert_string_equal(policy_type_name(POLICY_NO_CHANGE_NOTIFICATION),
                        "NoChangeNotification");
}

/* policy_set_close accepts NULL and an already closed set. */
static void policy_close_safe(void **state)
{
    struct policy_set set;
    (void)state;

    policy_set_close(NULL);
    parse_ok("[" EXP_JSON "]", &set);
    policy_set_close(&set);
    policy_set_close(&set);
}

/******************************************************************************
 *
 * Policies: ValidationException
 *
 *****************************************************************************/

/* Empty input, text that is not JSON, JSON that is not a non-empty array,
 * and duplicate keys are ValidationExceptions. */
static void policy_not_an_array(void **state)
{
    static const char *const bad[] = {
        "[",    "not json", "{}",    "\"x\"",
        "[]",   "[{}",      "[{}]x", "{\"Type\":\"Expiration\"}",
        "null", "[{},]",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_fails(bad[i], CAIRN_INVALID_ARGUMENT, "ValidationException",
                    NULL);
    }
    parse_fails("", CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    parse_fails(NULL, CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
}

/* An element that is not an object is a ValidationException. */
static void policy_element_not_object(void **state)
{
    (void)state;
    parse_fails("[1]", CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
    parse_fails("[" EXP_JSON ",\"x\"]", CAIRN_INVALID_ARGUMENT,
                "ValidationException", NULL);
    parse_fails("[[]]", CAIRN_INVALID_ARGUMENT, "ValidationException", NULL);
}

/* A missing or unsupported Version is a ValidationException. */
static void policy_bad_version(void **state)
{
    (void)state;
    one_fails(
        "{\"Type\":\"Expiration\",\"Attributes\":{\"Timestamp\":"
        "\"2018-12-02T21:34:33Z\"}}",
        CAIRN_INVALID_ARGUMENT, "ValidationException");
    one_fails(
        "{\"Type\":\"Expiration\",\"Version\":\"2.0\",\"Attributes\":"
        "{\"Timestamp\":\"2018-12-02T21:34:33Z\"}}",
        CAIRN_INVALID_ARGUMENT, "ValidationException");
    one_fails(
        "{\"Type\":\"Expiration\",\"Version\":1.0,\"Attributes\":"
        "{\"Timestamp\":\"2018-12-02T21:34:33Z\"}}",
        CAIRN_INVALID_ARGUMENT, "ValidationException");
}

/* Policies longer than 4096 characters are a ValidationException. */
static void policy_too_long(void **state)
{
    char json[POLICY_TEXT_MAX + 2];
    size_t n;
    (void)state;

    strcpy(json, "[" EXP_JSON);
    n = strlen(json);
    memset(json + n, ' ', POLICY_TEXT_MAX - n);
    json[POLICY_TEXT_MAX] = ']';
    json[POLICY_TEXT_MAX + 1] = '\0';
    parse_fails(json, CAIRN_INVALID_ARGUMENT, "ValidationException",
                "1 validation error detected: Value at 'policies' failed to "
                "satisfy constraint: Member must have length less than or "
                "equal to 4096");
}

/* Duplicate keys are refused rather than letting one silently win. */
static void policy_duplicate_keys(void **state)
{
    (void)state;
    one_fails(
        "{\"Type\":\"Expiration\",\"Type\":\"Expiration\","
        "\"Version\":\"1.0\",\"Attributes\":{\"Timestamp\":"
        "\"2018-12-02T21:34:33Z\"}}",
        CAIRN_INVALID_ARGUMENT, "ValidationException");
}

/* A member other than Type, Version and Attributes is refused. */
static void policy_unknown_member(void **state)
{
    (void)state;
    one_fails(
        "{\"Type\":\"Expiration\",\"Version\":\"1.0\",\"Attributes\":"
        "{\"Timestamp\":\"2018-12-02T21:34:33Z\"},\"Extra\":1}",
        CAIRN_INVALID_ARGUMENT, "ValidationException");
}

/******************************************************************************
 *
 * Policies: the policy-specific errors
 *
 *****************************************************************************/

/* More than ten policies is PoliciesLimitExceededException with status
 * RESOURCE_EXHAUSTED, whatever the elements hold. */
static void policy_limit(void **state)
{
    char json[4096] = "[" EXP_JSON;
    (void)state;

    for (int i = 0; i < POLICY_MAX; i++) {
        strcat(json, "," NOTE_JSON("\"1\"", "Days"));
    }
    strcat(json, "]");
    parse_fails(json, CAIRN_RESOURCE_EXHAUSTED,
                "PoliciesLimitExceededException",
                "You specified more than the maximum number of allowed "
                "policies for the parameter. The maximum is 10.");
    parse_fails("[{},{},{},{},{},{},{},{},{},{},{}]", CAIRN_RESOURCE_EXHAUSTED,
                "PoliciesLimitExceededException", NULL);
}

/* An unknown, missing or non-string Type is InvalidPolicyTypeException,
 * also for "{}" next to other policies. */
static void policy_bad_type(void **state)
{
    (void)state;
    parse_fails(
        "[{\"Type\":\"Expire\",\"Version\":\"1.0\",\"Attributes\":"
        "{}}]",
        CAIRN_INVALID_ARGUMENT, "InvalidPolicyTypeException", MSG_TYPE);
    one_fails(
        "{\"Type\":\"expiration\",\"Version\":\"1.0\",\"Attributes\":"
        "{\"Timestamp\":\"2018-12-02T21:34:33Z\"}}",
        CAIRN_INVALID_ARGUMENT, "InvalidPolicyTypeException");
    one_fails("{\"Version\":\"1.0\",\"Attributes\":{}}", CAIRN_INVALID_ARGUMENT,
              "InvalidPolicyTypeException");
    one_fails("{\"Type\":3,\"Version\":\"1.0\",\"Attributes\":{}}",
              CAIRN_INVALID_ARGUMENT, "InvalidPolicyTypeException");
    parse_fails("[{}," EXP_JSON "]", CAIRN_INVALID_ARGUMENT,
                "InvalidPolicyTypeException", MSG_TYPE);
    parse_fails("[{},{}]", CAIRN_INVALID_ARGUMENT, "InvalidPolicyTypeException",
                MSG_TYPE);
}

/* Expiration attributes: Timestamp must be present, a string, a valid
 * instant, and alone. */
static void policy_bad_expiration(void **state)
{
    static const char *const attrs[] = {
        "{}",
        "{\"Timestamp\":1543786473}",
        "{\"Timestamp\":\"2018-12-02\"}",
        "{\"Timestamp\":\"2023-02-29T00:00:00Z\"}",
        "{\"Timestamp\":\"2018-12-02T21:34:33.000Z\",\"Unit\":\"Days\"}",
        "{\"timestamp\":\"2018-12-02T21:34:33.000Z\"}",
    };
    char item[512];
    (void)state;

    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        snprintf(item, sizeof(item),
                 "{\"Type\":\"Expiration\",\"Version\":\"1.0\","
                 "\"Attributes\":%s}",
                 attrs[i]);
        one_fails(item, CAIRN_INVALID_ARGUMENT,
                  "InvalidPolicyAttributeException");
    }
    one_fails("{\"Type\":\"Expiration\",\"Version\":\"1.0\"}",
              CAIRN_INVALID_ARGUMENT, "InvalidPolicyAttributeException");
    one_fails(
        "{\"Type\":\"Expiration\",\"Version\":\"1.0\",\"Attributes\":"
        "[]}",
        CAIRN_INVALID_ARGUMENT, "InvalidPolicyAttributeException");
}

/* Notification attributes: the amount must be a positive integer (string
 * or JSON integer), Unit must be "Days" or "Hours", nothing else. */
static void policy_bad_notification(void **state)
{
    static const char *const attrs[] = {
        "{\"Before\":\"0\",\"Unit\":\"Days\"}",
        "{\"Before\":0,\"Unit\":\"Days\"}",
        "{\"Before\":\"-1\",\"Unit\":\"Days\"}",
        "{\"Before\":-1,\"Unit\":\"Days\"}",
        "{\"Before\":\"1.5\",\"Unit\":\"Days\"}",
        "{\"Before\":1.5,\"Unit\":\"Days\"}",
        "{\"Before\":15.0,\"Unit\":\"Days\"}",
        "{\"Before\":\"\",\"Unit\":\"Days\"}",
        "{\"Before\":\"abc\",\"Unit\":\"Days\"}",
        "{\"Before\":\" 15\",\"Unit\":\"Days\"}",
        "{\"Before\":\"+15\",\"Unit\":\"Days\"}",
        "{\"Before\":true,\"Unit\":\"Days\"}",
        "{\"Before\":\"99999999999999999999\",\"Unit\":\"Days\"}",
        "{\"Before\":\"9223372036854775807\",\"Unit\":\"Hours\"}",
        "{\"Before\":\"15\"}",
        "{\"Before\":\"15\",\"Unit\":\"Minutes\"}",
        "{\"Before\":\"15\",\"Unit\":\"days\"}",
        "{\"Before\":\"15\",\"Unit\":1}",
        "{\"Unit\":\"Days\"}",
        "{\"After\":\"15\",\"Unit\":\"Days\"}",
        "{\"Before\":\"15\",\"Unit\":\"Days\",\"Extra\":\"1\"}",
        "{}",
    };
    char item[512];
    (void)state;

    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        snprintf(item, sizeof(item),
                 "[" EXP_JSON
                 ",{\"Type\":\"ExpirationNotification\","
                 "\"Version\":\"1.0\",\"Attributes\":%s}]",
                 attrs[i]);
        parse_fails(item, CAIRN_INVALID_ARGUMENT,
                    "InvalidPolicyAttributeException", NULL);
    }
    /* NoChangeNotification takes After, not Before. */
    one_fails(NOCHANGE_JSON("\"0\"", "Days"), CAIRN_INVALID_ARGUMENT,
              "InvalidPolicyAttributeException");
    one_fails(
        "{\"Type\":\"NoChangeNotification\",\"Version\":\"1.0\","
        "\"Attributes\":{\"Before\":\"15\",\"Unit\":\"Days\"}}",
        CAIRN_INVALID_ARGUMENT, "InvalidPolicyAttributeException");
}

/* Two Expirations, two NoChangeNotifications, or an
 * ExpirationNotification without an Expiration are
 * IncompatiblePolicyException. */
static void policy_incompatible(void **state)
{
    (void)state;
    parse_fails("[" EXP_JSON "," EXP_JSON "]", CAIRN_INVALID_ARGUMENT,
                "IncompatiblePolicyException", MSG_INCOMPATIBLE);
    parse_fails("[" NOCHANGE_JSON("\"1\"", "Days") "," NOCHANGE_JSON(
                    "\"2\"", "Days") "]",
                CAIRN_INVALID_ARGUMENT, "IncompatiblePolicyException",
                MSG_INCOMPATIBLE);
    parse_fails("[" NOTE_JSON("\"15\"", "Days") "]", CAIRN_INVALID_ARGUMENT,
                "IncompatiblePolicyException", MSG_INCOMPATIBLE);
    parse_fails(
        "[" NOTE_JSON("\"15\"", "Days") "," NOCHANGE_JSON("\"2\"", "Days") "]",
        CAIRN_INVALID_ARGUMENT, "IncompatiblePolicyException",
        MSG_INCOMPATIBLE);
}

/* A failure after some policies were already parsed frees them (ASan's
 * leak checker watches this case). */
static void policy_failure_frees(void **state)
{
    (void)state;
    parse_fails("[" EXP_JSON "," NOTE_JSON("\"1\"", "Days") ",{\"Type\":"
                "\"Bad\"}]",
                CAIRN_INVALID_ARGUMENT, "InvalidPolicyTypeException", NULL);
    parse_fails("[" EXP_JSON "," NOTE_JSON("\"1\"", "Days") "," EXP_JSON "]",
                CAIRN_INVALID_ARGUMENT, "IncompatiblePolicyException", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ts_instant),
        cmocka_unit_test(ts_case),
        cmocka_unit_test(ts_offsets),
        cmocka_unit_test(ts_fractions),
        cmocka_unit_test(ts_leap_years),
        cmocka_unit_test(ts_bad_dates),
        cmocka_unit_test(ts_malformed),
        cmocka_unit_test(ts_length_bound),
        cmocka_unit_test(ts_year_range),
        cmocka_unit_test(ts_calendar_walk),
        cmocka_unit_test(policy_expiration),
        cmocka_unit_test(policy_text_normalised),
        cmocka_unit_test(policy_all_types),
        cmocka_unit_test(policy_integer_amounts),
        cmocka_unit_test(policy_no_change_alone),
        cmocka_unit_test(policy_clear),
        cmocka_unit_test(policy_ten),
        cmocka_unit_test(policy_max_length),
        cmocka_unit_test(policy_type_names),
        cmocka_unit_test(policy_close_safe),
        cmocka_unit_test(policy_not_an_array),
        cmocka_unit_test(policy_element_not_object),
        cmocka_unit_test(policy_bad_version),
        cmocka_unit_test(policy_too_long),
        cmocka_unit_test(policy_duplicate_keys),
        cmocka_unit_test(policy_unknown_member),
        cmocka_unit_test(policy_limit),
        cmocka_unit_test(policy_bad_type),
        cmocka_unit_test(policy_bad_expiration),
        cmocka_unit_test(policy_bad_notification),
        cmocka_unit_test(policy_incompatible),
        cmocka_unit_test(policy_failure_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
