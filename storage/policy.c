#include "policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_DAY INT64_C(86400000)

/* Texts of the AWS model's documentation for these errors (ssm-api.md
 * section 2.7 names the errors; the wording follows the service model). */
static const char msg_type[] =
    "The policy type isn't supported. Parameter Store supports the following "
    "policy types: Expiration, ExpirationNotification, and "
    "NoChangeNotification.";
static const char msg_incompatible[] =
    "There is a conflict in the policies specified for this parameter. You "
    "can't, for example, specify two Expiration policies for a parameter. "
    "Review your policies, and try again.";
static const char msg_limit[] =
    "You specified more than the maximum number of allowed policies for the "
    "parameter. The maximum is 10.";

const char *policy_type_name(enum policy_type t)
{
    switch (t) {
        case POLICY_EXPIRATION:
            return "Expiration";
        case POLICY_EXPIRATION_NOTIFICATION:
            return "ExpirationNotification";
        case POLICY_NO_CHANGE_NOTIFICATION:
            return "NoChangeNotification";
    }
    return "Unknown";
}

static int validation(struct cairn_error *err, const char *msg)
{
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "ValidationException",
                           "%s", msg);
}

static int bad_attribute(struct cairn_error *err,
                         const char *type,
                         const char *detail)
{
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                           "InvalidPolicyAttributeException",
                           "A policy attribute or its value is invalid. %s "
                           "policy: %s.",
                           type, detail);
}

/* Characters, not bytes: the 4096 limit is AWS's string length. Malformed
 * UTF-8 is left for the JSON parser to reject. */
static size_t count_chars(const char *s, size_t n)
{
    size_t chars = 0;

    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            chars++;
        }
    }
    return chars;
}

/* ---- timestamps ------------------------------------------------------- */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Floor division, so that leap-day counts stay right for year 0, whose
 * predecessor -1 is negative. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Leap days in the proleptic Gregorian years 1..y (negative for y < 0). */
static int64_t leaps_through(int64_t y)
{
    return floor_div(y, 4) - floor_div(y, 100) + floor_div(y, 400);
}

/* Days from 1970-01-01 to the given date. Counting whole years with their
 * leap days and then the months of the last year avoids the process time
 * zone that mktime() would apply. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    static const int before_month[12] = {0,   31,  59,  90,  120, 151,
                                         181, 212, 243, 273, 304, 334};
    int64_t days =
        (y - 1970) * 365 + leaps_through(y - 1) - leaps_through(1969);

    days += before_month[m - 1];
    if (m > 2 && is_leap(y)) {
        days++;
    }
    return days + d - 1;
}

/* Reads exactly @p k decimal digits at s[*pos]. */
static bool take_digits(const char *s, size_t n, size_t *pos, size_t k, int *v)
{
    if (n - *pos < k) {
        return false;
    }
    *v = 0;
    for (size_t i = 0; i < k; i++) {
        char c = s[*pos + i];
        if (c < '0' || c > '9') {
            return false;
        }
        *v = *v * 10 + (c - '0');
    }
    *pos += k;
    return true;
}

static bool take_char(const char *s, size_t n, size_t *pos, char c)
{
    if (*pos >= n || s[*pos] != c) {
        return false;
    }
    (*pos)++;
    return true;
}

/* Java's ISO formatters, which AWS parses with, accept 'T' and 'Z' in
 * either case. */
static bool take_char_ci(const char *s, size_t n, size_t *pos, char upper)
{
    return take_char(s, n, pos, upper) ||
           take_char(s, n, pos, (char)(upper - 'A' + 'a'));
}

/* "Z" or "+HH:MM" or "+HH:MM:SS" (or '-'), as seconds east of UTC. Java
 * limits offsets to 18 hours. */
static bool take_offset(const char *s, size_t n, size_t *pos, int *offset)
{
    int sign;
    int hh;
    int mm;
    int ss = 0;

    if (take_char_ci(s, n, pos, 'Z')) {
        *offset = 0;
        return true;
    }
    if (take_char(s, n, pos, '+')) {
        sign = 1;
    } else if (take_char(s, n, pos, '-')) {
        sign = -1;
    } else {
        return false;
    }
    if (!take_digits(s, n, pos, 2, &hh) || !take_char(s, n, pos, ':') ||
        !take_digits(s, n, pos, 2, &mm)) {
        return false;
    }
    if (take_char(s, n, pos, ':') && !take_digits(s, n, pos, 2, &ss)) {
        return false;
    }
    if (hh > 18 || mm > 59 || ss > 59) {
        return false;
    }
    *offset = sign * (hh * 3600 + mm * 60 + ss);
    return *offset >= -18 * 3600 && *offset <= 18 * 3600;
}

int policy_parse_timestamp(const char *s, size_t n, int64_t *ms)
{
    size_t pos = 0;
    int year;
    int month;
    int day;
    int hour;
    int minute;
    int second;
    int frac_ms = 0;
    int offset;
    int64_t secs;

    if (s == NULL) {
        return -1;
    }
    if (!take_digits(s, n, &pos, 4, &year) || !take_char(s, n, &pos, '-') ||
        !take_digits(s, n, &pos, 2, &month) || !take_char(s, n, &pos, '-') ||
        !take_digits(s, n, &pos, 2, &day) || !take_char_ci(s, n, &pos, 'T') ||
        !take_digits(s, n, &pos, 2, &hour) || !take_char(s, n, &pos, ':') ||
        !take_digits(s, n, &pos, 2, &minute) || !take_char(s, n, &pos, ':') ||
        !take_digits(s, n, &pos, 2, &second)) {
        return -1;
    }
    if (take_char(s, n, &pos, '.')) {
        /* 1 to 9 digits (nanoseconds); only milliseconds are kept, and
         * truncating is flooring because the fraction is non-negative. */
        size_t digits = 0;
        while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
            if (digits < 3) {
                frac_ms = frac_ms * 10 + (s[pos] - '0');
            }
            digits++;
            pos++;
        }
        if (digits < 1 || digits > 9) {
            return -1;
        }
        for (size_t i = digits; i < 3; i++) {
            frac_ms *= 10;
        }
    }
    if (!take_offset(s, n, &pos, &offset) || pos != n) {
        return -1;
    }
    if (month < 1 || month > 12 || day < 1 ||
        day > days_in_month(year, month) || hour > 23 || minute > 59 ||
        second > 59) {
        return -1;
    }
    secs = days_from_civil(year, month, day) * 86400 + hour * 3600 +
           minute * 60 + second - offset;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

/* ---- policies --------------------------------------------------------- */

/* A positive whole number given as a string of digits or as a JSON
 * integer, scaled by @p unit_ms without overflowing. */
static bool positive_amount(const json_t *v, int64_t unit_ms, int64_t *out)
{
    int64_t amount = 0;

    if (json_is_integer(v)) {
        amount = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0) {
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9' ||
                amount > (INT64_MAX - (s[i] - '0')) / 10) {
                return false;
            }
            amount = amount * 10 + (s[i] - '0');
        }
    } else {
        return false;
    }
    if (amount < 1 || amount > INT64_MAX / unit_ms) {
        return false;
    }
    *out = amount * unit_ms;
    return true;
}

/* {"Before"|"After": n, "Unit": "Days"|"Hours"}, nothing else. */
static int parse_notice(const json_t *attrs,
                        const char *type,
                        const char *amount_key,
                        int64_t *value_ms,
                        struct cairn_error *err)
{
    const json_t *amount = json_object_get(attrs, amount_key);
    const json_t *unit = json_object_get(attrs, "Unit");
    const char *unit_s;
    int64_t unit_ms;
    const char *key;
    const json_t *v;

    json_object_foreach((json_t *)attrs, key, v)
    {
        if (strcmp(key, amount_key) != 0 && strcmp(key, "Unit") != 0) {
            return bad_attribute(err, type, "unknown attribute");
        }
    }
    if (amount == NULL) {
        return bad_attribute(err, type, "missing attribute");
    }
    if (!json_is_string(unit)) {
        return bad_attribute(err, type, "Unit must be Days or Hours");
    }
    unit_s = json_string_value(unit);
    if (strcmp(unit_s, "Days") == 0) {
        unit_ms = MS_PER_DAY;
    } else if (strcmp(unit_s, "Hours") == 0) {
        unit_ms = MS_PER_HOUR;
    } else {
        return bad_attribute(err, type, "Unit must be Days or Hours");
    }
    if (!positive_amount(amount, unit_ms, value_ms)) {
        return bad_attribute(err, type,
                             "the amount must be a positive "
                             "integer");
    }
    return 0;
}

static int parse_expiration(const json_t *attrs,
                            int64_t *value_ms,
                            struct cairn_error *err)
{
    const json_t *ts = json_object_get(attrs, "Timestamp");

    if (json_object_size(attrs) != 1 || !json_is_string(ts)) {
        return bad_attribute(err, "Expiration",
                             "it takes exactly one attribute, Timestamp");
    }
    if (policy_parse_timestamp(json_string_value(ts), json_string_length(ts),
                               value_ms) != 0) {
        return bad_attribute(err, "Expiration",
                             "Timestamp must be ISO_INSTANT or "
                             "ISO_OFFSET_DATE_TIME");
    }
    return 0;
}

/* Validate one array element and fill @p item, text included. */
static int parse_item(json_t *obj, struct policy *item, struct cairn_error *err)
{
    const json_t *type = json_object_get(obj, "Type");
    const json_t *version = json_object_get(obj, "Version");
    const json_t *attrs = json_object_get(obj, "Attributes");
    const char *type_s;
    const char *key;
    json_t *v;
    int rv;

    if (!json_is_object(obj)) {
        return validation(err, "Each policy must be a JSON object.");
    }
    if (!json_is_string(type)) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "InvalidPolicyTypeException", "%s", msg_type);
    }
    type_s = json_string_value(type);
    if (strcmp(type_s, "Expiration") == 0) {
        item->type = POLICY_EXPIRATION;
    } else if (strcmp(type_s, "ExpirationNotification") == 0) {
        item->type = POLICY_EXPIRATION_NOTIFICATION;
    } else if (strcmp(type_s, "NoChangeNotification") == 0) {
        item->type = POLICY_NO_CHANGE_NOTIFICATION;
    } else {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "InvalidPolicyTypeException", "%s", msg_type);
    }
    if (!json_is_string(version) ||
        strcmp(json_string_value(version), "1.0") != 0) {
        return validation(err,
                          "The policy version isn't supported. "
                          "Parameter Store supports policy Version "
                          "1.0.");
    }
    /* A member we do not know might change what the policy means, so it is
     * refused rather than ignored and then stored in PolicyText. */
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "Type") != 0 && strcmp(key, "Version") != 0 &&
            strcmp(key, "Attributes") != 0) {
            return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                                   "ValidationException",
                                   "Unknown policy member: %s.", key);
        }
    }
    if (!json_is_object(attrs)) {
        return bad_attribute(err, type_s, "Attributes must be an object");
    }
    switch (item->type) {
        case POLICY_EXPIRATION:
            rv = parse_expiration(attrs, &item->value_ms, err);
            break;
        case POLICY_EXPIRATION_NOTIFICATION:
            rv = parse_notice(attrs, type_s, "Before", &item->value_ms, err);
            break;
        case POLICY_NO_CHANGE_NOTIFICATION:
        default:
            rv = parse_notice(attrs, type_s, "After", &item->value_ms, err);
            break;
    }
    if (rv != 0) {
        return rv;
    }
    item->text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (item->text == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory serialising a policy");
    }
    return 0;
}

/* Conflicts between the policies of one parameter. */
static int check_compatible(const struct policy_set *set,
                            struct cairn_error *err)
{
    unsigned count[3] = {0, 0, 0};

    for (unsigned i = 0; i < set->count; i++) {
        count[set->items[i].type]++;
    }
    if (count[POLICY_EXPIRATION] > 1 ||
        count[POLICY_NO_CHANGE_NOTIFICATION] > 1 ||
        (count[POLICY_EXPIRATION_NOTIFICATION] > 0 &&
         count[POLICY_EXPIRATION] == 0)) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "IncompatiblePolicyException", "%s",
                               msg_incompatible);
    }
    return 0;
}

int policy_parse(const char *json,
                 size_t n,
                 struct policy_set *out,
                 struct cairn_error *err)
{
    json_error_t jerr;
    json_t *root;
    size_t size;
    int rv;

    memset(out, 0, sizeof(*out));
    if (json == NULL || n == 0) {
        return validation(err,
                          "1 validation error detected: Value '' at "
                          "'policies' failed to satisfy constraint: "
                          "Member must have length greater than or "
                          "equal to 1");
    }
    if (count_chars(json, n) > POLICY_TEXT_MAX) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "1 validation error detected: Value at "
                               "'policies' failed to satisfy constraint: "
                               "Member must have length less than or equal "
                               "to %d",
                               POLICY_TEXT_MAX);
    }
    /* Duplicate keys would make the meaning depend on which one wins. */
    root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL && json_error_code(&jerr) == json_error_out_of_memory) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory parsing policies");
    }
    if (root == NULL) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT,
                               "ValidationException",
                               "Policies must be a valid JSON array: %s "
                               "(line %d, column %d).",
                               jerr.text, jerr.line, jerr.column);
    }
    if (!json_is_array(root) || json_array_size(root) == 0) {
        rv = validation(err,
                        "Policies must be a non-empty JSON array of "
                        "policy objects.");
        goto err_after_root;
    }
    size = json_array_size(root);
    if (size > POLICY_MAX) {
        rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED,
                             "PoliciesLimitExceededException", "%s", msg_limit);
        goto err_after_root;
    }
    /* "[{}]" is how a client removes every policy. */
    if (size == 1 && json_is_object(json_array_get(root, 0)) &&
        json_object_size(json_array_get(root, 0)) == 0) {
        json_decref(root);
        return 0;
    }
    for (size_t i = 0; i < size; i++) {
        rv = parse_item(json_array_get(root, i), &out->items[out->count], err);
        if (rv != 0) {
            goto err_after_items;
        }
        out->count++;
    }
    rv = check_compatible(out, err);
    if (rv != 0) {
        goto err_after_items;
    }
    json_decref(root);
    return 0;

err_after_items:
    policy_set_close(out);
err_after_root:
    json_decref(root);
    return rv;
}

void policy_set_close(struct policy_set *set)
{
    if (set == NULL) {
        return;
    }
    for (unsigned i = 0; i < set->count; i++) {
        free(set->items[i].text);
        set->items[i].text = NULL;
    }
    set->count = 0;
}
