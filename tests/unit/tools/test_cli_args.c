/* Unit tests for tools/cli_args.c: the cairn CLI's command line parsing
 * (AWS shorthand, JSON and file:// values, botocore-style validation),
 * pagination merging, the AWS CLI's json, text and table output, the
 * `cairn cluster` commands (their flags and the status view), the `cairn
 * kms` commands and `cairn keygen` (their arguments and output). The expected
 * outputs of the AWS formatters were produced by the AWS CLI's own
 * formatters on the same data. */
#include "test.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "mp.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

struct fixture
{
    char *dir; /* for file:// values */
    struct cli_diag d;
    struct cli_invocation inv;
    struct buf out;
    json_t *j;
    char *words; /* argv of assert_line, which inv.opt borrows from */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    f->dir = test_mkdtemp();
    buf_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    cli_invocation_close(&f->inv);
    free(f->words);
    json_decref(f->j);
    buf_close(&f->out);
    test_rmdir(f->dir);
    free(f);
    return 0;
}

/******************************************************************************
 *
 * Helper macros
 *
 *****************************************************************************/

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Compact JSON of @p j with members in their order; the caller frees. */
static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    return s;
}

/* Write @p text to DIR/@p name and return "file://DIR/name" (freed by the
 * caller). */
static char *write_file(struct fixture *f, const char *name, const char *text)
{
    char *path;
    char *url;
    FILE *fp;

    assert_true(asprintf(&path, "%s/%s", f->dir, name) > 0);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
    assert_true(asprintf(&url, "file://%s", path) > 0);
    free(path);
    return url;
}

/* The output buffer as a C string. */
static const char *out_str(struct fixture *f)
{
    assert_int_equal(buf_terminate(&f->out), 0);
    return f->out.data != NULL ? (const char *)f->out.data : "";
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL) {
        fail_msg("bad test JSON: %s", e.text);
    }
    return j;
}

/******************************************************************************
 *
 * Assertions
 *
 *****************************************************************************/

/* Shorthand @p text parses to the compact JSON @p want. */
#define ASSERT_SHORTHAND(text, want)                                     \
    do {                                                                 \
        json_t *j_;                                                      \
        char *s_;                                                        \
        assert_int_equal(cli_shorthand_parse("x", text, &j_, &f->d), 0); \
        s_ = dump(j_);                                                   \
        assert_string_equal(s_, want);                                   \
        free(s_);                                                        \
        json_decref(j_);                                                 \
    } while (0)

/* The struct list flag @p flag of @p cmd, given @p vals, fails with
 * exactly @p msg. */
static void assert_struct_error(struct fixture *f,
                                const char *cmd,
                                const char *flag,
                                char *const *vals,
                                size_t n,
                                const char *msg)
{
    const struct cli_command *c = cli_command_find(cmd);
    const struct cli_flag *fl = NULL;
    json_t *j = NULL;

    assert_non_null(c);
    for (size_t i = 0; i < c->n_flags; i++) {
        if (strcmp(c->flags[i].name, flag) == 0) {
            fl = &c->flags[i];
        }
    }
    assert_non_null(fl);
    assert_int_equal(cli_struct_list(fl, vals, n, &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(j);
    assert_false(f->d.usage);
    assert_string_equal(f->d.msg, msg);
}

static char *struct_ok(struct fixture *f,
                       const char *cmd,
                       const char *flag,
                       char *const *vals,
                       size_t n)
{
    const struct cli_command *c = cli_command_find(cmd);
    const struct cli_flag *fl = NULL;
    json_t *j = NULL;
    char *s;

    for (size_t i = 0; i < c->n_flags; i++) {
        if (strcmp(c->flags[i].name, flag) == 0) {
            fl = &c->flags[i];
        }
    }
    assert_non_null(fl);
    if (cli_struct_list(fl, vals, n, &j, &f->d) != 0) {
        fail_msg("unexpected error: %s", f->d.msg);
    }
    s = dump(j);
    json_decref(j);
    return s;
}

/* Parse @p argv and check the request is @p want. */
static void assert_request(struct fixture *f,
                           int argc,
                           char *const *argv,
                           const char *want)
{
    char *s;

    if (cli_parse(argc, argv, &f->inv, &f->d) != 0) {
        fail_msg("parse failed: %s", f->d.msg);
    }
    s = dump(f->inv.request);
    assert_string_equal(s, want);
    free(s);
}

/* Parse @p argv and check it fails with @p msg (usage error or not). */
static void assert_parse_error(struct fixture *f,
                               int argc,
                               char *const *argv,
                               bool usage,
                               const char *msg)
{
    assert_int_equal(cli_parse(argc, argv, &f->inv, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_string_equal(f->d.msg, msg);
    assert_int_equal(f->d.usage, usage);
}

/* Split "cairn " + @p line at single spaces into @p argv (at most 32
 * words); the words live in f->words until the next call. */
static int split_line(struct fixture *f, const char *line, char **argv)
{
    int argc = 1;

    free(f->words);
    f->words = strdup(line);
    assert_non_null(f->words);
    argv[0] = "cairn";
    for (char *w = strtok(f->words, " "); w != NULL; w = strtok(NULL, " ")) {
        assert_true(argc < 32);
        argv[argc++] = w;
    }
    return argc;
}

/* Parse "cairn " + @p line and check the request is @p want and the
 * command calls @p operation. */
static void assert_line(struct fixture *f,
                        const char *line,
                        const char *operation,
                        const char *want)
{
    char *argv[32];
    int argc;

    cli_invocation_close(&f->inv);
    argc = split_line(f, line, argv);
    assert_request(f, argc, argv, want);
    assert_non_null(f->inv.cmd);
    assert_string_equal(f->inv.cmd->operation, operation);
}

/* Parse "cairn " + @p line and check it fails with @p msg (a usage error
 * or not). */
static void assert_line_error(struct fixture *f,
                              const char *line,
                              bool usage,
                              const char *msg)
{
    char *argv[32];
    int argc;

    cli_invocation_close(&f->inv);
    argc = split_line(f, line, argv);
    assert_parse_error(f, argc, argv, usage, msg);
}

/* Render the JSON text @p resp and compare with @p want. */
static void assert_render(struct fixture *f,
                          const char *resp,
                          enum cli_output fmt,
                          const char *title,
                          bool paged,
                          unsigned width,
                          const char *want)
{
    json_t *j = load(resp);

    buf_reset(&f->out);
    assert_int_equal(cli_render(j, fmt, title, paged, width, &f->out), 0);
    json_decref(j);
    assert_string_equal(out_str(f), want);
}

/******************************************************************************
 *
 * Shorthand syntax
 *
 *****************************************************************************/

/* A tag in shorthand gives a Key/Value structure. */
static void shorthand_tag(void **state)
{
    struct fixture *f = *state;
    ASSERT_SHORTHAND("Key=env,Value=prod",
                     "{\"Key\":\"env\",\"Value\":\"prod\"}");
}

/* Values after a comma form a list until a "key=" starts the next member. */
static void shorthand_csv_list(void **state)
{
    struct fixture *f = *state;
    ASSERT_SHORTHAND("Key=Type,Values=String,SecureString",
                     "{\"Key\":\"Type\",\"Values\":[\"String\","
                     "\"SecureString\"]}");
    ASSERT_SHORTHAND("Key=Type,Option=Equals,Values=String,SecureString",
                     "{\"Key\":\"Type\",\"Option\":\"Equals\",\"Values\":["
                     "\"String\",\"SecureString\"]}");
    ASSERT_SHORTHAND("Key=a,b,Value=c",
                     "{\"Key\":[\"a\",\"b\"],\"Value\":\"c\"}");
}

/* Quotes and "\," put a comma into a value; "=" may appear inside one. */
static void shorthand_commas_in_values(void **state)
{
    struct fixture *f = *state;
    ASSERT_SHORTHAND("Key=\"a,b\",Value=c",
                     "{\"Key\":\"a,b\",\"Value\":\"c\"}");
    ASSERT_SHORTHAND("Key='x, y',Value=c",
                     "{\"Key\":\"x, y\",\"Value\":\"c\"}");
    ASSERT_SHORTHAND("Key=a\\,b,Value=c", "{\"Key\":\"a,b\",\"Value\":\"c\"}");
    ASSERT_SHORTHAND("Key=a=b", "{\"Key\":\"a=b\"}");
    ASSERT_SHORTHAND("Key='it\\'s'", "{\"Key\":\"it's\"}");
}

/* Explicit lists, hashes, empty values and spaces around separators. */
static void shorthand_forms(void **state)
{
    struct fixture *f = *state;
    ASSERT_SHORTHAND("Key=Name,Values=[a,b],Option=Equals",
                     "{\"Key\":\"Name\",\"Values\":[\"a\",\"b\"],\"Option\":"
                     "\"Equals\"}");
    ASSERT_SHORTHAND("a={b=c,d=[e,f]}",
                     "{\"a\":{\"b\":\"c\",\"d\":[\"e\","
                     "\"f\"]}}");
    ASSERT_SHORTHAND("Key=,Value=x", "{\"Key\":\"\",\"Value\":\"x\"}");
    ASSERT_SHORTHAND("Key=", "{\"Key\":\"\"}");
    ASSERT_SHORTHAND("Key = a , Value = b", "{\"Key\":\"a\",\"Value\":\"b\"}");
    ASSERT_SHORTHAND("Values=[]", "{\"Values\":[]}");
    ASSERT_SHORTHAND("k=\"a\\\\b\"", "{\"k\":\"a\\\\b\"}");
}

/* A missing '=' is reported as the AWS CLI does, with a caret. */
static void shorthand_missing_equals(void **state)
{
    struct fixture *f = *state;
    json_t *j = NULL;

    assert_int_equal(cli_shorthand_parse("tags", "Key", &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(j);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--tags': Expected: '=', "
                        "received: 'EOF' for input:\nKey\n   ^");
    assert_int_equal(cli_shorthand_parse("tags", "Key=[a],Value", &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--tags': Expected: '=', "
                        "received: 'EOF' for input:\nKey=[a],Value\n"
                        "             ^");
    /* Without "=", a second word is a list item, as in the AWS CLI. */
    ASSERT_SHORTHAND("Key=a,Value", "{\"Key\":[\"a\",\"Value\"]}");
    assert_int_equal(cli_shorthand_parse("tags", "Key:a", &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--tags': Expected: '=', "
                        "received: 'EOF' for input:\nKey:a\n     ^");
}

/* A trailing comma, a repeated key and an unclosed quote are errors. */
static void shorthand_syntax_errors(void **state)
{
    struct fixture *f = *state;
    json_t *j = NULL;

    assert_int_equal(cli_shorthand_parse("parameter-filters",
                                         "Key=Name,Values=a,", &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--parameter-filters': "
                        "Expected: '<second>', received: '<none>' for "
                        "input:\nKey=Name,Values=a,\n                  ^");
    assert_int_equal(
        cli_shorthand_parse("parameter-filters", "Key=Name,Key=b", &j, &f->d),
        CAIRN_INVALID_ARGUMENT);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--parameter-filters': "
                        "Second instance of key \"Key\" encountered for "
                        "input:\nKey=Name,Key=b\n         ^\nThis is often "
                        "because there is a preceding \",\" instead of a "
                        "space.");
    assert_int_equal(cli_shorthand_parse("tags", "Key='abc", &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--tags': Expected: "
                        "'<singled quoted>', received: '<none>' for input:\n"
                        "Key='abc\n    ^");
    assert_int_equal(cli_shorthand_parse("tags", "Values=[a,b", &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(j);
}

/* "key@=file://..." reads that member's value from a file. */
static void shorthand_paramfile_member(void **state)
{
    struct fixture *f = *state;
    char *url = write_file(f, "v.txt", "from file");
    char *text;
    json_t *j = NULL;
    char *s;

    assert_true(asprintf(&text, "Key=k,Value@=%s", url) > 0);
    assert_int_equal(cli_shorthand_parse("tags", text, &j, &f->d), 0);
    s = dump(j);
    assert_string_equal(s, "{\"Key\":\"k\",\"Value\":\"from file\"}");
    free(s);
    json_decref(j);
    free(text);
    /* Without the "@" a file:// value stays text. */
    assert_true(asprintf(&text, "Key=k,Value=%s", url) > 0);
    assert_int_equal(cli_shorthand_parse("tags", text, &j, &f->d), 0);
    assert_string_equal(json_string_value(json_object_get(j, "Value")), url);
    json_decref(j);
    free(text);
    free(url);
}

/******************************************************************************
 *
 * Structure lists and validation
 *
 *****************************************************************************/

/* Several shorthand arguments give one list; a single value given to a
 * list member becomes a one-item list. */
static void struct_list_shorthand(void **state)
{
    struct fixture *f = *state;
    char *tags[] = {"Key=env,Value=prod", "Key=team,Value=core"};
    char *filters[] = {"Key=Type,Values=String",
                       "Key=Name,Option=BeginsWith,Values=/a,/b"};
    char *s;

    s = struct_ok(f, "put-parameter", "tags", tags, 2);
    assert_string_equal(s,
                        "[{\"Key\":\"env\",\"Value\":\"prod\"},{\"Key\":"
                        "\"team\",\"Value\":\"core\"}]");
    free(s);
    s = struct_ok(f, "describe-parameters", "parameter-filters", filters, 2);
    assert_string_equal(s,
                        "[{\"Key\":\"Type\",\"Values\":[\"String\"]},"
                        "{\"Key\":\"Name\",\"Option\":\"BeginsWith\","
                        "\"Values\":[\"/a\",\"/b\"]}]");
    free(s);
}

/* The JSON form keeps commas inside values and the members' order. */
static void struct_list_json(void **state)
{
    struct fixture *f = *state;
    char *arr[] = {
        "  [{\"Key\":\"Name\",\"Values\":[\"a,b\",\"c\"],"
        "\"Option\":\"Contains\"}]"};
    char *objs[] = {"{\"Key\":\"a\",\"Value\":\"x,y\"}", "Key=b,Value=z"};
    char *s;

    s = struct_ok(f, "describe-parameters", "parameter-filters", arr, 1);
    assert_string_equal(s,
                        "[{\"Key\":\"Name\",\"Values\":[\"a,b\",\"c\"],"
                        "\"Option\":\"Contains\"}]");
    free(s);
    s = struct_ok(f, "add-tags-to-resource", "tags", objs, 2);
    assert_string_equal(s,
                        "[{\"Key\":\"a\",\"Value\":\"x,y\"},{\"Key\":"
                        "\"b\",\"Value\":\"z\"}]");
    free(s);
}

/* Unknown members are named with the members the shape accepts. */
static void struct_list_unknown_key(void **state)
{
    struct fixture *f = *state;
    char *tags[] = {"Key=a,Value=b", "Key=a,Value=b,Foo=c"};
    char *filters[] = {"[{\"Key\":\"Type\",\"Vals\":[\"String\"]}]"};

    assert_struct_error(f, "put-parameter", "tags", tags, 2,
                        "Parameter validation failed:\nUnknown parameter in "
                        "Tags[1]: \"Foo\", must be one of: Key, Value");
    assert_struct_error(f, "get-parameters-by-path", "parameter-filters",
                        filters, 1,
                        "Parameter validation failed:\nUnknown parameter in "
                        "ParameterFilters[0]: \"Vals\", must be one of: Key, "
                        "Option, Values");
}

/* Missing required members and wrong types read as botocore's. */
static void struct_list_types(void **state)
{
    struct fixture *f = *state;
    char *missing[] = {"Key=a"};
    char *list_key[] = {"Key=a,b,Value=c"};
    char *str_values[] = {"[{\"Key\":\"Name\",\"Values\":\"x\"}]"};
    char *not_list[] = {"[{\"Key\":\"Name\",\"Values\":[\"x\",5]}, 7]"};

    assert_struct_error(f, "put-parameter", "tags", missing, 1,
                        "Parameter validation failed:\nMissing required "
                        "parameter in Tags[0]: \"Value\"");
    assert_struct_error(f, "put-parameter", "tags", list_key, 1,
                        "Parameter validation failed:\nInvalid type for "
                        "parameter Tags[0].Key, value: ['a', 'b'], type: "
                        "<class 'list'>, valid types: <class 'str'>");
    assert_struct_error(f, "describe-parameters", "parameter-filters",
                        str_values, 1,
                        "Parameter validation failed:\nInvalid type for "
                        "parameter ParameterFilters[0].Values, value: x, "
                        "type: <class 'str'>, valid types: <class 'list'>, "
                        "<class 'tuple'>");
    assert_struct_error(f, "describe-parameters", "parameter-filters", not_list,
                        1,
                        "Parameter validation failed:\nInvalid type for "
                        "parameter ParameterFilters[0].Values[1], value: 5, "
                        "type: <class 'int'>, valid types: <class 'str'>\n"
                        "Invalid type for parameter ParameterFilters[1], "
                        "value: 7, type: <class 'int'>, valid types: <class "
                        "'dict'>");
}

/* Malformed JSON is reported with the text received. */
static void struct_list_bad_json(void **state)
{
    struct fixture *f = *state;
    const struct cli_command *c = cli_command_find("put-parameter");
    const struct cli_flag *tags = NULL;
    char *vals[] = {"[{\"Key\": \"a\""};
    json_t *j = NULL;

    for (size_t i = 0; i < c->n_flags; i++) {
        if (strcmp(c->flags[i].name, "tags") == 0) {
            tags = &c->flags[i];
        }
    }
    assert_int_equal(cli_struct_list(tags, vals, 1, &j, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_true(strncmp(f->d.msg,
                        "Error parsing parameter '--tags': Invalid JSON: ",
                        strlen("Error parsing parameter '--tags': Invalid "
                               "JSON: ")) == 0);
    assert_non_null(strstr(f->d.msg, "\nJSON received: [{\"Key\": \"a\""));
}

/******************************************************************************
 *
 * file:// values
 *
 *****************************************************************************/

/* file:// and fileb:// read the whole file, newline included, as AWS does;
 * other values are copied. */
static void load_value_file(void **state)
{
    struct fixture *f = *state;
    char *url = write_file(f, "value.txt", "line1\nline2,{x}\n");
    char *fileb;
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(cli_load_value("value", url, &out, &len, &f->d), 0);
    assert_string_equal(out, "line1\nline2,{x}\n");
    assert_int_equal(len, 16);
    free(out);
    assert_true(asprintf(&fileb, "fileb://%s", url + strlen("file://")) > 0);
    assert_int_equal(cli_load_value("value", fileb, &out, &len, &f->d), 0);
    assert_string_equal(out, "line1\nline2,{x}\n");
    free(out);
    free(fileb);
    free(url);
    url = write_file(f, "empty.txt", "");
    assert_int_equal(cli_load_value("value", url, &out, &len, &f->d), 0);
    assert_string_equal(out, "");
    assert_int_equal(len, 0);
    free(out);
    free(url);
    assert_int_equal(cli_load_value("value", "plain,text", &out, NULL, &f->d),
                     0);
    assert_string_equal(out, "plain,text");
    free(out);
}

/* A missing file fails with AWS's paramfile message. */
static void load_value_missing(void **state)
{
    struct fixture *f = *state;
    char *out = NULL;

    assert_int_equal(cli_load_value("value", "file:///nonexistent/cairn-x",
                                    &out, NULL, &f->d),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(out);
    assert_string_equal(f->d.msg,
                        "Error parsing parameter '--value': Unable to load "
                        "paramfile file:///nonexistent/cairn-x: No such file "
                        "or directory");
}

/******************************************************************************
 *
 * Command lines
 *
 *****************************************************************************/

/* Every put-parameter flag reaches its AWS member; file:// works for
 * --value and --policies. */
static void parse_put_parameter(void **state)
{
    struct fixture *f = *state;
    char *value = write_file(f, "v", "secret\n");
    char *policies = write_file(f, "p.json",
                                "[{\"Type\":\"Expiration\",\"Version\":\"1.0\","
                                "\"Attributes\":{\"Timestamp\":\"2030-01-01T00:"
                                "00:00.000Z\"}}]");
    char *argv[] = {"cairn",
                    "put-parameter",
                    "--name",
                    "/app/db",
                    "--value",
                    value,
                    "--type",
                    "SecureString",
                    "--key-id",
                    "alias/k",
                    "--no-overwrite",
                    "--description",
                    "DB password",
                    "--tier",
                    "Advanced",
                    "--allowed-pattern",
                    "^.*$",
                    "--data-type",
                    "text",
                    "--policies",
                    policies,
                    "--tags",
                    "Key=env,Value=prod",
                    "Key=team,Value=core"};

    assert_request(
        f, ARGC(argv), argv,
        "{\"Name\":\"/app/db\",\"Description\":\"DB password\",\"Value\":"
        "\"secret\\n\",\"Type\":\"SecureString\",\"KeyId\":\"alias/k\","
        "\"Overwrite\":false,\"AllowedPattern\":\"^.*$\",\"Tags\":[{\"Key\":"
        "\"env\",\"Value\":\"prod\"},{\"Key\":\"team\",\"Value\":\"core\"}],"
        "\"Tier\":\"Advanced\",\"Policies\":\"[{\\\"Type\\\":\\\"Expiration"
        "\\\",\\\"Version\\\":\\\"1.0\\\",\\\"Attributes\\\":{\\\"Timestamp"
        "\\\":\\\"2030-01-01T00:00:00.000Z\\\"}}]\",\"DataType\":\"text\"}");
    assert_ptr_equal(f->inv.cmd, cli_command_find("put-parameter"));
    assert_int_equal(f->inv.opt.output, CLI_OUTPUT_JSON);
    free(value);
    free(policies);
}

/* Global options go anywhere, "--flag=value" works, an "ssm" word before
 * the command is accepted, and a negative number is a value. */
static void parse_globals_anywhere(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {"cairn",
                    "--output",
                    "text",
                    "ssm",
                    "get-parameter",
                    "--name=/a:2",
                    "--with-decryption",
                    "--endpoint",
                    "http://10.0.0.1:7400",
                    "--consistency",
                    "stale",
                    "--cli-read-timeout",
                    "2.5",
                    "--region",
                    "us-east-1"};
    char *argv2[] = {"cairn", "put-parameter", "--name",        "n", "--value",
                     "-5",    "--overwrite",   "--output=table"};

    assert_request(f, ARGC(argv), argv,
                   "{\"Name\":\"/a:2\",\"WithDecryption\":true}");
    assert_int_equal(f->inv.opt.output, CLI_OUTPUT_TEXT);
    assert_string_equal(f->inv.opt.endpoint, "http://10.0.0.1:7400");
    assert_true(f->inv.opt.stale);
    assert_int_equal(f->inv.opt.timeout_ms, 2500);
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(argv2), argv2,
                   "{\"Name\":\"n\",\"Value\":\"-5\",\"Overwrite\":true}");
    assert_int_equal(f->inv.opt.output, CLI_OUTPUT_TABLE);
}

/* List flags take every following word, or one JSON array. */
static void parse_lists(void **state)
{
    struct fixture *f = *state;
    char *words[] = {"cairn", "get-parameters", "--names",
                     "/a",    "/b:1",           "--with-decryption"};
    char *json[] = {"cairn",
                    "label-parameter-version",
                    "--name",
                    "/a",
                    "--labels",
                    "[\"live\",\"blue\"]",
                    "--parameter-version",
                    "3"};
    char *bad[] = {"cairn", "delete-parameters", "--names", "[\"a\",5]"};

    assert_request(f, ARGC(words), words,
                   "{\"Names\":[\"/a\",\"/b:1\"],\"WithDecryption\":true}");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(json), json,
                   "{\"Name\":\"/a\",\"ParameterVersion\":3,\"Labels\":["
                   "\"live\",\"blue\"]}");
    cli_invocation_close(&f->inv);
    assert_parse_error(f, ARGC(bad), bad, false,
                       "Parameter validation failed:\nInvalid type for "
                       "parameter Names[1], value: 5, type: <class 'int'>, "
                       "valid types: <class 'str'>");
}

/* --cli-input-json gives the base request; flags override its members. */
static void parse_cli_input_json(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {"cairn",
                    "get-parameters-by-path",
                    "--cli-input-json",
                    "{\"Path\":\"/x\",\"Recursive\":true}",
                    "--path",
                    "/y"};

    assert_request(f, ARGC(argv), argv, "{\"Path\":\"/y\",\"Recursive\":true}");
}

/* Required flags, unknown options and bad values are usage errors. */
static void parse_usage_errors(void **state)
{
    struct fixture *f = *state;
    char *missing[] = {"cairn", "put-parameter", "--type", "String"};
    char *unknown[] = {"cairn", "get-parameter", "--name", "a", "--foo", "bar"};
    char *cmd[] = {"cairn", "get-parameterz"};
    char *none[] = {"cairn", "--output", "json"};
    char *dash[] = {"cairn", "put-parameter", "--name", "a", "--value", "--x"};
    char *integer[] = {"cairn",
                       "unlabel-parameter-version",
                       "--name",
                       "a",
                       "--parameter-version",
                       "x",
                       "--labels",
                       "l"};
    char *output[] = {"cairn",         "--output", "yaml",
                      "get-parameter", "--name",   "a"};
    char *bool_value[] = {"cairn", "get-parameter", "--name", "a",
                          "--with-decryption=yes"};
    char *empty_list[] = {"cairn", "get-parameters", "--names",
                          "--with-decryption"};

    assert_parse_error(f, ARGC(missing), missing, true,
                       "the following arguments are required: --name, "
                       "--value");
    assert_parse_error(f, ARGC(unknown), unknown, true,
                       "Unknown options: --foo, bar");
    assert_parse_error(f, ARGC(cmd), cmd, true,
                       "argument command: Invalid choice: 'get-parameterz' "
                       "(run `cairn --help` for the list)");
    assert_parse_error(f, ARGC(none), none, true,
                       "the following arguments are required: command");
    assert_parse_error(f, ARGC(dash), dash, true,
                       "argument --value: expected one argument");
    assert_parse_error(f, ARGC(integer), integer, true,
                       "argument --parameter-version: invalid int value: "
                       "'x'");
    assert_parse_error(f, ARGC(output), output, true,
                       "argument --output: Invalid choice 'yaml', valid "
                       "choices are: json | text | table");
    assert_parse_error(f, ARGC(bool_value), bool_value, true,
                       "argument --with-decryption: ignored explicit "
                       "argument 'yes'");
    assert_parse_error(f, ARGC(empty_list), empty_list, true,
                       "argument --names: expected at least one argument");
}

/* --help needs no command, and skips the required flags of one. */
static void parse_help(void **state)
{
    struct fixture *f = *state;
    char *top[] = {"cairn", "--help"};
    char *cmd[] = {"cairn", "put-parameter", "help"};

    assert_int_equal(cli_parse(ARGC(top), top, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_null(f->inv.cmd);
    cli_invocation_close(&f->inv);
    assert_int_equal(cli_parse(ARGC(cmd), cmd, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_ptr_equal(f->inv.cmd, cli_command_find("put-parameter"));
}

/* Paging options exist only for paged commands, conflict with
 * --no-paginate, and a raw --next-token turns pagination off. */
static void parse_paging(void **state)
{
    struct fixture *f = *state;
    char *ok[] = {"cairn",
                  "describe-parameters",
                  "--max-items",
                  "5",
                  "--page-size",
                  "2",
                  "--starting-token",
                  "T"};
    char *not_paged[] = {"cairn", "get-parameter", "--name",
                         "a",     "--max-items",   "5"};
    char *conflict[] = {"cairn", "get-parameters-by-path", "--path",
                        "/",     "--no-paginate",          "--max-items",
                        "5"};
    char *raw[] = {
        "cairn", "get-parameter-history", "--name", "a", "--next-token",
        "abc",   "--max-results",         "7"};
    char *zero[] = {"cairn", "describe-parameters", "--max-items", "0"};

    assert_request(f, ARGC(ok), ok, "{}");
    assert_true(f->inv.opt.paginate);
    assert_int_equal(f->inv.opt.max_items, 5);
    assert_int_equal(f->inv.opt.page_size, 2);
    assert_string_equal(f->inv.opt.starting_token, "T");
    cli_invocation_close(&f->inv);
    assert_parse_error(f, ARGC(not_paged), not_paged, true,
                       "Unknown options: --max-items");
    assert_parse_error(f, ARGC(conflict), conflict, false,
                       "Cannot specify --no-paginate along with pagination "
                       "arguments: --max-items");
    assert_request(f, ARGC(raw), raw,
                   "{\"Name\":\"a\",\"MaxResults\":7,\"NextToken\":\"abc\"}");
    assert_false(f->inv.opt.paginate);
    cli_invocation_close(&f->inv);
    assert_parse_error(f, ARGC(zero), zero, true,
                       "argument --max-items: must be at least 1, got 0");
}

/* Every read that can return a SecureString passes WithDecryption:
 * --with-decryption sends true, --no-with-decryption false, neither
 * nothing (the server's default, false). */
static void parse_with_decryption(void **state)
{
    struct fixture *f = *state;

    assert_line(f, "get-parameter --name /a --with-decryption", "GetParameter",
                "{\"Name\":\"/a\",\"WithDecryption\":true}");
    assert_line(f, "get-parameters --names /a /b --with-decryption",
                "GetParameters",
                "{\"Names\":[\"/a\",\"/b\"],\"WithDecryption\":true}");
    assert_line(f,
                "get-parameters-by-path --path /a --with-decryption "
                "--recursive",
                "GetParametersByPath",
                "{\"Path\":\"/a\",\"Recursive\":true,\"WithDecryption\":"
                "true}");
    assert_line(f, "get-parameter-history --name /a --with-decryption",
                "GetParameterHistory",
                "{\"Name\":\"/a\",\"WithDecryption\":true}");
    assert_line(f, "get-parameter-history --name /a --no-with-decryption",
                "GetParameterHistory",
                "{\"Name\":\"/a\",\"WithDecryption\":false}");
    assert_line(f, "get-parameter --name /a", "GetParameter",
                "{\"Name\":\"/a\"}");
}

/* The service-setting and tag commands map their flags. */
static void parse_other_commands(void **state)
{
    struct fixture *f = *state;
    char *update[] = {
        "cairn",           "update-service-setting",
        "--setting-id",    "/ssm/parameter-store/default-parameter-tier",
        "--setting-value", "Advanced"};
    char *remove[] = {"cairn",
                      "remove-tags-from-resource",
                      "--resource-type",
                      "Parameter",
                      "--resource-id",
                      "/a",
                      "--tag-keys",
                      "env",
                      "team"};

    assert_request(f, ARGC(update), update,
                   "{\"SettingId\":\"/ssm/parameter-store/default-parameter-"
                   "tier\",\"SettingValue\":\"Advanced\"}");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(remove), remove,
                   "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"/a\","
                   "\"TagKeys\":[\"env\",\"team\"]}");
}

/******************************************************************************
 *
 * The cluster group
 *
 *****************************************************************************/

/* Each cluster subcommand maps its flags to the internal method's body;
 * global options still go anywhere. */
static void parse_cluster(void **state)
{
    struct fixture *f = *state;
    char *status[] = {"cairn",   "--output", "table",
                      "cluster", "status",   "--digest"};
    char *status_plain[] = {"cairn", "cluster", "status"};
    char *add[] = {"cairn",
                   "cluster",
                   "add",
                   "--id",
                   "4",
                   "--raft-address",
                   "10.0.0.4:7401",
                   "--api-address=[fd00::4]:7400",
                   "--endpoint",
                   "10.0.0.1:7400"};
    char *add_min[] = {
        "cairn", "cluster",    "add", "--raft-address", "node4.example:7401",
        "--id",  "18446744073"};
    char *remove[] = {"cairn", "cluster", "remove", "--id", "3"};
    char *transfer[] = {"cairn", "cluster", "transfer-leadership"};
    char *transfer_to[] = {"cairn", "cluster", "transfer-leadership", "--id",
                           "2"};

    assert_request(f, ARGC(status), status, "{\"Digest\":true}");
    assert_ptr_equal(f->inv.cmd, cli_command_find("cluster status"));
    assert_true(cli_command_is_cluster(f->inv.cmd));
    assert_true(f->inv.cluster);
    assert_int_equal(f->inv.opt.output, CLI_OUTPUT_TABLE);
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(status_plain), status_plain, "{}");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(add), add,
                   "{\"Id\":4,\"RaftAddress\":\"10.0.0.4:7401\","
                   "\"ApiAddress\":\"[fd00::4]:7400\"}");
    assert_ptr_equal(f->inv.cmd, cli_command_find("cluster add"));
    assert_string_equal(f->inv.cmd->operation, "Cairn.AddMember");
    assert_string_equal(f->inv.opt.endpoint, "10.0.0.1:7400");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(add_min), add_min,
                   "{\"Id\":18446744073,\"RaftAddress\":\"node4.example:"
                   "7401\"}");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(remove), remove, "{\"Id\":3}");
    assert_string_equal(f->inv.cmd->operation, "Cairn.RemoveMember");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(transfer), transfer, "{}");
    assert_string_equal(f->inv.cmd->operation, "Cairn.TransferLeadership");
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(transfer_to), transfer_to, "{\"Id\":2}");
    assert_false(cli_command_is_cluster(cli_command_find("get-parameter")));
}

/* Bad ids, bad addresses, missing options and unknown subcommands are
 * usage errors (exit 252) with a message naming the option. */
static void parse_cluster_errors(void **state)
{
    struct fixture *f = *state;
    char *no_word[] = {"cairn", "cluster"};
    char *bad_word[] = {"cairn", "cluster", "stats"};
    char *not_group[] = {"cairn", "status"};
    char *ssm_cluster[] = {"cairn", "ssm", "cluster", "status"};
    char *id_zero[] = {"cairn", "cluster", "remove", "--id", "0"};
    char *id_neg[] = {"cairn", "cluster", "remove", "--id", "-2"};
    char *id_abc[] = {"cairn", "cluster", "remove", "--id", "abc"};
    char *id_frac[] = {"cairn", "cluster", "transfer-leadership", "--id",
                       "1.5"};
    char *id_big[] = {"cairn", "cluster", "remove", "--id",
                      "99999999999999999999"};
    char *id_none[] = {"cairn", "cluster", "remove", "--id"};
    char *missing[] = {"cairn", "cluster", "add"};
    char *missing_raft[] = {"cairn", "cluster", "add", "--id", "4"};
    char *unknown[] = {"cairn", "cluster", "status", "--id", "3"};
    char *paging[] = {"cairn", "cluster", "status", "--max-items", "3"};
    char *json_id[] = {"cairn", "cluster", "remove", "--cli-input-json",
                       "{\"Id\":0}"};
    char *json_types[] = {"cairn", "cluster", "add", "--cli-input-json",
                          "{\"Id\":\"4\",\"RaftAddress\":\"x\"}"};
    static const char *const bad_addresses[] = {
        "10.0.0.4",       "10.0.0.4:", ":7401",   "10.0.0.4:0",
        "10.0.0.4:70000", "h:74x1",    "h:-1",    "a,b:7401",
        "fd00::4:7401",   "[fd00::4]", "[]:7401", "[::1]7401",
        "h :7401",        "",
    };

    assert_parse_error(f, ARGC(no_word), no_word, true,
                       "the following arguments are required: cluster "
                       "command (status, add, remove or "
                       "transfer-leadership)");
    assert_parse_error(f, ARGC(bad_word), bad_word, true,
                       "argument cluster command: Invalid choice: 'stats', "
                       "valid choices are: status | add | remove | "
                       "transfer-leadership");
    assert_parse_error(f, ARGC(not_group), not_group, true,
                       "argument command: Invalid choice: 'status' (run "
                       "`cairn --help` for the list)");
    assert_parse_error(f, ARGC(ssm_cluster), ssm_cluster, true,
                       "argument command: Invalid choice: 'cluster' (run "
                       "`cairn --help` for the list)");
    assert_parse_error(f, ARGC(id_zero), id_zero, true,
                       "argument --id: must be at least 1, got 0");
    assert_parse_error(f, ARGC(id_neg), id_neg, true,
                       "argument --id: must be at least 1, got -2");
    assert_parse_error(f, ARGC(id_abc), id_abc, true,
                       "argument --id: invalid int value: 'abc'");
    assert_parse_error(f, ARGC(id_frac), id_frac, true,
                       "argument --id: invalid int value: '1.5'");
    assert_parse_error(f, ARGC(id_big), id_big, true,
                       "argument --id: invalid int value: "
                       "'99999999999999999999'");
    assert_parse_error(f, ARGC(id_none), id_none, true,
                       "argument --id: expected one argument");
    assert_parse_error(f, ARGC(missing), missing, true,
                       "the following arguments are required: --id, "
                       "--raft-address");
    assert_parse_error(f, ARGC(missing_raft), missing_raft, true,
                       "the following arguments are required: "
                       "--raft-address");
    assert_parse_error(f, ARGC(unknown), unknown, true,
                       "Unknown options: --id, 3");
    assert_parse_error(f, ARGC(paging), paging, true,
                       "Unknown options: --max-items");
    assert_parse_error(f, ARGC(json_id), json_id, false,
                       "Parameter validation failed:\nInvalid value for "
                       "parameter Id, value: 0, valid min value: 1");
    assert_parse_error(f, ARGC(json_types), json_types, false,
                       "Parameter validation failed:\nInvalid type for "
                       "parameter Id, value: 4, type: <class 'str'>, valid "
                       "types: <class 'int'>\nInvalid value for parameter "
                       "RaftAddress, value: x, expected HOST:PORT");
    for (size_t i = 0; i < sizeof(bad_addresses) / sizeof(bad_addresses[0]);
         i++) {
        char *argv[] = {"cairn",
                        "cluster",
                        "add",
                        "--id",
                        "4",
                        "--raft-address",
                        (char *)bad_addresses[i]};
        char want[256];
        snprintf(want, sizeof(want),
                 "argument --raft-address: invalid address '%s': expected "
                 "HOST:PORT (or [IPv6]:PORT) with a port from 1 to 65535",
                 bad_addresses[i]);
        assert_parse_error(f, ARGC(argv), argv, true, want);
    }
}

/* `cairn cluster help` asks for the group's help; a subcommand's --help
 * skips its required flags. */
static void parse_cluster_help(void **state)
{
    struct fixture *f = *state;
    char *group[] = {"cairn", "cluster", "help"};
    char *group_flag[] = {"cairn", "--help", "cluster"};
    char *cmd[] = {"cairn", "cluster", "add", "--help"};

    assert_int_equal(cli_parse(ARGC(group), group, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_true(f->inv.cluster);
    assert_null(f->inv.cmd);
    cli_invocation_close(&f->inv);
    assert_int_equal(cli_parse(ARGC(group_flag), group_flag, &f->inv, &f->d),
                     0);
    assert_true(f->inv.opt.help);
    assert_true(f->inv.cluster);
    cli_invocation_close(&f->inv);
    assert_int_equal(cli_parse(ARGC(cmd), cmd, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_ptr_equal(f->inv.cmd, cli_command_find("cluster add"));
}

/* Pack a Cairn.Members response as docs/cluster.md describes it, members
 * out of id order, the last one without an API address yet. */
static void pack_members(struct buf *b)
{
    msgpack_packer pk;
    static const struct
    {
        uint64_t id;
        const char *raft, *api, *role;
    } ms[] = {
        {3, "127.0.0.1:7421", "127.0.0.1:7420", "voter"},
        {1, "127.0.0.1:7401", "127.0.0.1:7400", "voter"},
        {2, "127.0.0.1:7411", "127.0.0.1:7410", "voter"},
        {4, "127.0.0.1:7431", NULL, "spare"},
    };

    mp_packer_init(&pk, b);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_u64(&pk, "LeaderId", 2);
    mp_pack_kv_u64(&pk, "Term", 7);
    mp_pack_cstr(&pk, "Members");
    msgpack_pack_array(&pk, 4);
    for (size_t i = 0; i < 4; i++) {
        msgpack_pack_map(&pk, ms[i].api != NULL ? 4 : 3);
        mp_pack_kv_u64(&pk, "Id", ms[i].id);
        mp_pack_kv_cstr(&pk, "RaftAddress", ms[i].raft);
        if (ms[i].api != NULL) {
            mp_pack_kv_cstr(&pk, "ApiAddress", ms[i].api);
        }
        mp_pack_kv_cstr(&pk, "Role", ms[i].role);
    }
    assert_false(b->oom);
}

/* Pack node @p id's Cairn.NodeStatus response, with a digest or not. */
static void pack_node_status(struct buf *b, uint64_t id, bool digest)
{
    msgpack_packer pk;

    buf_reset(b);
    mp_packer_init(&pk, b);
    msgpack_pack_map(&pk, digest ? 10 : 9);
    mp_pack_kv_u64(&pk, "Id", id);
    mp_pack_kv_cstr(&pk, "State", id == 2 ? "leader" : "follower");
    mp_pack_kv_u64(&pk, "Term", 7);
    mp_pack_kv_u64(&pk, "CommitIndex", 120 + id);
    mp_pack_kv_u64(&pk, "AppliedIndex", 120);
    mp_pack_kv_u64(&pk, "LeaderId", 2);
    mp_pack_kv_cstr(&pk, "RaftAddress", "ignored");
    mp_pack_kv_cstr(&pk, "ApiAddress", "ignored");
    mp_pack_kv_u64(&pk, "StoreIndex", 118);
    if (digest) {
        mp_pack_kv_cstr(&pk, "Digest",
                        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d"
                        "6c15b0f00a08");
    }
    assert_false(b->oom);
}

/* Build the status of the fixed cluster: node 1 answers as a follower,
 * node 2 as the leader, node 3 does not answer, node 4 has no address. */
static json_t *fixed_status(bool digest)
{
    struct buf mp;
    struct cairn_error err;
    json_t *members = NULL;
    json_t *node = NULL;
    json_t *st = NULL;
    json_t *list;

    buf_init(&mp);
    pack_members(&mp);
    assert_int_equal(cli_response_from_mp(mp.data, mp.len, &members, &err), 0);
    assert_int_equal(cli_status_from_members(members, &st, &err), 0);
    json_decref(members);
    list = json_object_get(st, "Members");
    assert_int_equal(json_array_size(list), 4);
    for (uint64_t id = 1; id <= 2; id++) {
        pack_node_status(&mp, id, digest);
        assert_int_equal(cli_response_from_mp(mp.data, mp.len, &node, &err), 0);
        assert_int_equal(
            cli_status_set_node(json_array_get(list, id - 1), node), 0);
        json_decref(node);
    }
    cairn_error_set(&err, CAIRN_UNAVAILABLE, NULL,
                    "no endpoint answered: connect 127.0.0.1:7420: "
                    "Connection refused");
    assert_int_equal(cli_status_set_error(json_array_get(list, 2), &err), 0);
    cairn_error_set(&err, CAIRN_UNAVAILABLE, NULL,
                    "no API address registered for this member");
    assert_int_equal(cli_status_set_error(json_array_get(list, 3), &err), 0);
    buf_close(&mp);
    return st;
}

/* The members come out in id order with the node's own numbers, and
 * members that did not answer say why. */
static void status_json(void **state)
{
    struct fixture *f = *state;

    f->j = fixed_status(true);
    assert_int_equal(cli_render_status(f->j, CLI_OUTPUT_JSON, &f->out), 0);
    assert_string_equal(
        out_str(f),
        "{\n"
        "    \"Leader\": 2,\n"
        "    \"Term\": 7,\n"
        "    \"Members\": [\n"
        "        {\n"
        "            \"Id\": 1,\n"
        "            \"RaftAddress\": \"127.0.0.1:7401\",\n"
        "            \"ApiAddress\": \"127.0.0.1:7400\",\n"
        "            \"Role\": \"voter\",\n"
        "            \"State\": \"follower\",\n"
        "            \"Term\": 7,\n"
        "            \"CommitIndex\": 121,\n"
        "            \"AppliedIndex\": 120,\n"
        "            \"LeaderId\": 2,\n"
        "            \"StoreIndex\": 118,\n"
        "            \"Digest\": "
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b8"
        "22cd15d6c15b0f00a08\"\n"
        "        },\n"
        "        {\n"
        "            \"Id\": 2,\n"
        "            \"RaftAddress\": \"127.0.0.1:7411\",\n"
        "            \"ApiAddress\": \"127.0.0.1:7410\",\n"
        "            \"Role\": \"voter\",\n"
        "            \"State\": \"leader\",\n"
        "            \"Term\": 7,\n"
        "            \"CommitIndex\": 122,\n"
        "            \"AppliedIndex\": 120,\n"
        "            \"LeaderId\": 2,\n"
        "            \"StoreIndex\": 118,\n"
        "            \"Digest\": "
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b8"
        "22cd15d6c15b0f00a08\"\n"
        "        },\n"
        "        {\n"
        "            \"Id\": 3,\n"
        "            \"RaftAddress\": \"127.0.0.1:7421\",\n"
        "            \"ApiAddress\": \"127.0.0.1:7420\",\n"
        "            \"Role\": \"voter\",\n"
        "            \"State\": \"unreachable\",\n"
        "            \"Error\": \"no endpoint answered: connect "
        "127.0.0.1:7420: "
        "Connection refused\"\n"
        "        },\n"
        "        {\n"
        "            \"Id\": 4,\n"
        "            \"RaftAddress\": \"127.0.0.1:7431\",\n"
        "            \"ApiAddress\": \"\",\n"
        "            \"Role\": \"spare\",\n"
        "            \"State\": \"unreachable\",\n"
        "            \"Error\": \"no API address registered for this member\"\n"
        "        }\n"
        "    ]\n"
        "}\n");
}

/* Table: the leader line, one aligned row per member with "-" for what is
 * unknown, a digest prefix only when digests were asked for, then the
 * errors. */
static void status_table(void **state)
{
    struct fixture *f = *state;

    f->j = fixed_status(true);
    assert_int_equal(cli_render_status(f->j, CLI_OUTPUT_TABLE, &f->out), 0);
    assert_string_equal(
        out_str(f),
        "Leader: 2, term 7\n"
        "ID  ROLE   STATE        RAFT ADDRESS    API ADDRESS     TERM  COMMIT  "
        "APPLIED  DIGEST\n"
        "1   voter  follower     127.0.0.1:7401  127.0.0.1:7400  7     121     "
        "120      9f86d081884c\n"
        "2   voter  leader       127.0.0.1:7411  127.0.0.1:7410  7     122     "
        "120      9f86d081884c\n"
        "3   voter  unreachable  127.0.0.1:7421  127.0.0.1:7420  -     -       "
        "-        -\n"
        "4   spare  unreachable  127.0.0.1:7431  -               -     -       "
        "-        -\n"
        "member 3: no endpoint answered: connect 127.0.0.1:7420: Connection "
        "refused\n"
        "member 4: no API address registered for this member\n");
    json_decref(f->j);
    f->j = fixed_status(false);
    buf_reset(&f->out);
    assert_int_equal(cli_render_status(f->j, CLI_OUTPUT_TABLE, &f->out), 0);
    assert_string_equal(
        out_str(f),
        "Leader: 2, term 7\n"
        "ID  ROLE   STATE        RAFT ADDRESS    API ADDRESS     TERM  COMMIT  "
        "APPLIED\n"
        "1   voter  follower     127.0.0.1:7401  127.0.0.1:7400  7     121     "
        "120\n"
        "2   voter  leader       127.0.0.1:7411  127.0.0.1:7410  7     122     "
        "120\n"
        "3   voter  unreachable  127.0.0.1:7421  127.0.0.1:7420  -     -       "
        "-\n"
        "4   spare  unreachable  127.0.0.1:7431  -               -     -       "
        "-\n"
        "member 3: no endpoint answered: connect 127.0.0.1:7420: Connection "
        "refused\n"
        "member 4: no API address registered for this member\n");
}

/* Text: one tab-separated line per member with a fixed column set, empty
 * fields for what is unknown, the full digest and the error last. */
static void status_text(void **state)
{
    struct fixture *f = *state;

    f->j = fixed_status(true);
    assert_int_equal(cli_render_status(f->j, CLI_OUTPUT_TEXT, &f->out), 0);
    assert_string_equal(
        out_str(f),
        "1\tvoter\tfollower\t127.0.0.1:7401\t127.0.0.1:7400\t7\t121\t120\t"
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\t\n"
        "2\tvoter\tleader\t127.0.0.1:7411\t127.0.0.1:7410\t7\t122\t120\t"
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\t\n"
        "3\tvoter\tunreachable\t127.0.0.1:7421\t127.0.0.1:7420\t\t\t\t\tno "
        "endpoint answered: connect 127.0.0.1:7420: Connection refused\n"
        "4\tspare\tunreachable\t127.0.0.1:7431\t\t\t\t\t\tno API address "
        "registered for this member\n");
}

/* A node that answers with an error is "error", not "unreachable"; a node
 * answering with another id is flagged; no leader reads "none known". */
static void status_edge_cases(void **state)
{
    struct fixture *f = *state;
    struct cairn_error err;
    json_t *m;
    json_t *node;
    json_t *members = load(
        "{\"Term\": 3, \"Members\": [{\"Id\": 5, \"RaftAddress\": \"h:1\", "
        "\"ApiAddress\": \"h:2\", \"Role\": \"voter\"}, {\"Id\": 6, "
        "\"RaftAddress\": \"h:3\", \"ApiAddress\": \"h:4\", \"Role\": "
        "\"voter\"}]}");
    json_t *bad = NULL;
    json_t *no_list = load("{\"LeaderId\": 1}");
    json_t *no_id = load("{\"Members\": [{\"RaftAddress\": \"h:1\"}]}");

    assert_int_equal(cli_status_from_members(members, &f->j, &err), 0);
    json_decref(members);
    assert_int_equal(json_integer_value(json_object_get(f->j, "Leader")), 0);
    m = json_array_get(json_object_get(f->j, "Members"), 0);
    cairn_error_set(&err, CAIRN_UNIMPLEMENTED, "UnknownOperationException",
                    "unknown method Cairn.NodeStatus");
    assert_int_equal(cli_status_set_error(m, &err), 0);
    assert_string_equal(json_string_value(json_object_get(m, "State")),
                        "error");
    assert_string_equal(json_string_value(json_object_get(m, "Error")),
                        "UnknownOperationException: unknown method "
                        "Cairn.NodeStatus");
    m = json_array_get(json_object_get(f->j, "Members"), 1);
    node = load("{\"Id\": 5, \"State\": \"candidate\", \"Term\": 4}");
    assert_int_equal(cli_status_set_node(m, node), 0);
    json_decref(node);
    assert_string_equal(json_string_value(json_object_get(m, "State")),
                        "candidate");
    assert_string_equal(json_string_value(json_object_get(m, "Error")),
                        "the node at this API address is node 5");
    cairn_error_set(&err, CAIRN_DEADLINE_EXCEEDED, NULL, "%s", "");
    m = json_array_get(json_object_get(f->j, "Members"), 0);
    assert_int_equal(cli_status_set_error(m, &err), 0);
    assert_string_equal(json_string_value(json_object_get(m, "State")),
                        "unreachable");
    assert_string_equal(json_string_value(json_object_get(m, "Error")),
                        "DEADLINE_EXCEEDED");
    assert_int_equal(cli_render_status(f->j, CLI_OUTPUT_TABLE, &f->out), 0);
    assert_true(strncmp(out_str(f), "Leader: none known, term 3\n", 27) == 0);

    assert_int_equal(cli_status_from_members(no_list, &bad, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(bad);
    assert_string_equal(err.type, "SerializationException");
    assert_int_equal(cli_status_from_members(no_id, &bad, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(bad);
    json_decref(no_list);
    json_decref(no_id);
}

/******************************************************************************
 *
 * The kms group and keygen
 *
 *****************************************************************************/

/* Every kms subcommand builds its Kms.* method's body with KMS's member
 * names; the flags mirror `aws kms`. */
static void parse_kms(void **state)
{
    struct fixture *f = *state;
    static const char *const key_id_commands[][2] = {
        {"describe-key", "Kms.DescribeKey"},
        {"enable-key", "Kms.EnableKey"},
        {"disable-key", "Kms.DisableKey"},
        {"enable-key-rotation", "Kms.EnableKeyRotation"},
        {"disable-key-rotation", "Kms.DisableKeyRotation"},
        {"rotate-key", "Kms.RotateKey"},
        {"cancel-key-deletion", "Kms.CancelKeyDeletion"},
    };

    assert_line(f, "kms create-key", "Kms.CreateKey", "{}");
    assert_true(f->inv.kms);
    assert_false(f->inv.cluster);
    assert_true(cli_command_is_kms(f->inv.cmd));
    assert_false(cli_command_is_cluster(f->inv.cmd));
    assert_line(f, "kms create-key --description db-passwords", "Kms.CreateKey",
                "{\"Description\":\"db-passwords\"}");
    assert_line(f, "kms list-keys", "Kms.ListKeys", "{}");
    for (size_t i = 0; i < sizeof(key_id_commands) / sizeof(key_id_commands[0]);
         i++) {
        char line[128];
        snprintf(line, sizeof(line),
                 "kms %s --key-id 1234abcd-12ab-34cd-56ef-1234567890ab",
                 key_id_commands[i][0]);
        assert_line(f, line, key_id_commands[i][1],
                    "{\"KeyId\":\"1234abcd-12ab-34cd-56ef-1234567890ab\"}");
    }
    /* Aliases and ARNs are key ids too. */
    assert_line(f, "kms describe-key --key-id alias/aws/ssm", "Kms.DescribeKey",
                "{\"KeyId\":\"alias/aws/ssm\"}");
    assert_line(f,
                "kms rotate-key --key-id=arn:aws:kms:us-east-1:000000000000:"
                "key/k1",
                "Kms.RotateKey",
                "{\"KeyId\":\"arn:aws:kms:us-east-1:000000000000:key/k1\"}");
    assert_line(f, "kms create-alias --alias-name alias/app --target-key-id k1",
                "Kms.CreateAlias",
                "{\"AliasName\":\"alias/app\",\"TargetKeyId\":\"k1\"}");
    assert_line(f,
                "kms update-alias --target-key-id k2 --alias-name "
                "alias/app/prod",
                "Kms.UpdateAlias",
                "{\"AliasName\":\"alias/app/prod\",\"TargetKeyId\":\"k2\"}");
    assert_line(f, "kms delete-alias --alias-name alias/app", "Kms.DeleteAlias",
                "{\"AliasName\":\"alias/app\"}");
    assert_line(f, "kms list-aliases", "Kms.ListAliases", "{}");
    assert_line(f, "kms list-aliases --key-id k1", "Kms.ListAliases",
                "{\"KeyId\":\"k1\"}");
    /* Without a window the server's default (30 days) applies. */
    assert_line(f, "kms schedule-key-deletion --key-id k1",
                "Kms.ScheduleKeyDeletion", "{\"KeyId\":\"k1\"}");
    assert_line(f,
                "kms schedule-key-deletion --pending-window-in-days 7 "
                "--key-id k1",
                "Kms.ScheduleKeyDeletion",
                "{\"KeyId\":\"k1\",\"PendingWindowInDays\":7}");
    assert_line(f,
                "kms schedule-key-deletion --key-id k1 "
                "--pending-window-in-days=30",
                "Kms.ScheduleKeyDeletion",
                "{\"KeyId\":\"k1\",\"PendingWindowInDays\":30}");
    assert_line(f, "kms rotate-root-key", "Kms.RotateRootKey", "{}");
    /* Global options go anywhere; --cli-input-json works as for ssm. */
    assert_line(f,
                "--output table kms describe-key --endpoint 10.0.0.1:7400 "
                "--key-id k1",
                "Kms.DescribeKey", "{\"KeyId\":\"k1\"}");
    assert_int_equal(f->inv.opt.output, CLI_OUTPUT_TABLE);
    assert_string_equal(f->inv.opt.endpoint, "10.0.0.1:7400");
    assert_line(f,
                "kms create-alias --cli-input-json "
                "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"k1\"} "
                "--target-key-id k2",
                "Kms.CreateAlias",
                "{\"AliasName\":\"alias/a\",\"TargetKeyId\":\"k2\"}");
    /* Tables and error messages name the operation as `aws kms` does. */
    assert_string_equal(cli_command_title(f->inv.cmd), "CreateAlias");
    assert_string_equal(
        cli_command_title(cli_command_find("kms schedule-key-deletion")),
        "ScheduleKeyDeletion");
    assert_string_equal(cli_command_title(cli_command_find("get-parameter")),
                        "GetParameter");
    assert_string_equal(cli_command_title(cli_command_find("cluster add")),
                        "Cairn.AddMember");
}

/* The values KMS would refuse and the missing options are usage errors
 * (exit 252) naming the option, before any call. */
static void parse_kms_errors(void **state)
{
    struct fixture *f = *state;
    static const char *const key_id_commands[] = {
        "describe-key",        "enable-key",
        "disable-key",         "enable-key-rotation",
        "rotate-key",          "disable-key-rotation",
        "cancel-key-deletion", "schedule-key-deletion",
    };
    static const char *const bad_aliases[] = {"foo", "alias/", "Alias/x",
                                              "aliasfoo", "/alias/x"};
    char *long_id = malloc(2 * (CLI_KEY_ID_MAX + 1) + 1);
    char *empty_id[] = {"cairn", "kms", "describe-key", "--key-id", ""};
    char *empty_target[] = {
        "cairn",           "kms", "create-alias", "--alias-name", "alias/a",
        "--target-key-id", ""};
    char *empty_list_id[] = {"cairn", "kms", "list-aliases", "--key-id", ""};
    char *empty_window[] = {"cairn",    "kms", "schedule-key-deletion",
                            "--key-id", "k",   "--pending-window-in-days",
                            ""};
    char *long_argv[] = {"cairn", "kms", "describe-key", "--key-id", long_id};

    for (size_t i = 0; i < sizeof(key_id_commands) / sizeof(key_id_commands[0]);
         i++) {
        char line[64];
        snprintf(line, sizeof(line), "kms %s", key_id_commands[i]);
        assert_line_error(f, line, true,
                          "the following arguments are required: --key-id");
    }
    assert_line_error(f, "kms create-alias", true,
                      "the following arguments are required: --alias-name, "
                      "--target-key-id");
    assert_line_error(f, "kms update-alias --alias-name alias/a", true,
                      "the following arguments are required: "
                      "--target-key-id");
    assert_line_error(f, "kms delete-alias", true,
                      "the following arguments are required: --alias-name");
    assert_line_error(f, "kms schedule-key-deletion --pending-window-in-days 7",
                      true, "the following arguments are required: --key-id");
    assert_line_error(f, "kms describe-key --key-id", true,
                      "argument --key-id: expected one argument");

    /* Alias names start with alias/ and name something. */
    for (size_t i = 0; i < sizeof(bad_aliases) / sizeof(bad_aliases[0]); i++) {
        char line[128];
        char want[256];
        snprintf(want, sizeof(want),
                 "argument --alias-name: must start with \"alias/\" followed "
                 "by the alias, got '%s'",
                 bad_aliases[i]);
        snprintf(line, sizeof(line),
                 "kms create-alias --alias-name %s --target-key-id k",
                 bad_aliases[i]);
        assert_line_error(f, line, true, want);
        snprintf(line, sizeof(line),
                 "kms update-alias --alias-name %s --target-key-id k",
                 bad_aliases[i]);
        assert_line_error(f, line, true, want);
        snprintf(line, sizeof(line), "kms delete-alias --alias-name %s",
                 bad_aliases[i]);
        assert_line_error(f, line, true, want);
    }

    /* The window is an integer from 7 to 30. */
    assert_line_error(f,
                      "kms schedule-key-deletion --key-id k "
                      "--pending-window-in-days 6",
                      true,
                      "argument --pending-window-in-days: must be from 7 to "
                      "30 (days), got 6");
    assert_line_error(f,
                      "kms schedule-key-deletion --key-id k "
                      "--pending-window-in-days 31",
                      true,
                      "argument --pending-window-in-days: must be from 7 to "
                      "30 (days), got 31");
    assert_line_error(f,
                      "kms schedule-key-deletion --key-id k "
                      "--pending-window-in-days 7.5",
                      true,
                      "argument --pending-window-in-days: invalid int value: "
                      "'7.5'");
    assert_line_error(f,
                      "kms schedule-key-deletion --key-id k "
                      "--pending-window-in-days seven",
                      true,
                      "argument --pending-window-in-days: invalid int value: "
                      "'seven'");
    assert_parse_error(f, ARGC(empty_window), empty_window, true,
                       "argument --pending-window-in-days: invalid int "
                       "value: ''");

    /* Key ids are 1 to 2048 characters, counted as characters. */
    assert_parse_error(f, ARGC(empty_id), empty_id, true,
                       "argument --key-id: must be 1 to 2048 characters "
                       "long, got 0");
    assert_parse_error(f, ARGC(empty_target), empty_target, true,
                       "argument --target-key-id: must be 1 to 2048 "
                       "characters long, got 0");
    assert_parse_error(f, ARGC(empty_list_id), empty_list_id, true,
                       "argument --key-id: must be 1 to 2048 characters "
                       "long, got 0");
    /* 2048 characters pass, 2049 do not, whatever their UTF-8 size. */
    assert_non_null(long_id);
    memset(long_id, 'a', CLI_KEY_ID_MAX + 1);
    long_id[CLI_KEY_ID_MAX + 1] = '\0';
    assert_parse_error(f, ARGC(long_argv), long_argv, true,
                       "argument --key-id: must be 1 to 2048 characters "
                       "long, got 2049");
    long_id[CLI_KEY_ID_MAX] = '\0';
    assert_int_equal(cli_parse(ARGC(long_argv), long_argv, &f->inv, &f->d), 0);
    assert_int_equal(
        json_string_length(json_object_get(f->inv.request, "KeyId")),
        CLI_KEY_ID_MAX);
    cli_invocation_close(&f->inv);
    for (size_t i = 0; i < CLI_KEY_ID_MAX + 1; i++) {
        memcpy(long_id + 2 * i, "\xc3\xa9", 2); /* é */
    }
    long_id[2 * CLI_KEY_ID_MAX] = '\0';
    assert_int_equal(cli_parse(ARGC(long_argv), long_argv, &f->inv, &f->d), 0);
    cli_invocation_close(&f->inv);
    memcpy(long_id + 2 * CLI_KEY_ID_MAX, "\xc3\xa9", 2);
    long_id[2 * (CLI_KEY_ID_MAX + 1)] = '\0';
    assert_parse_error(f, ARGC(long_argv), long_argv, true,
                       "argument --key-id: must be 1 to 2048 characters "
                       "long, got 2049");
    free(long_id);

    /* --cli-input-json is checked the same way, in botocore's words. */
    assert_line_error(f, "kms describe-key --cli-input-json {\"KeyId\":\"\"}",
                      false,
                      "Parameter validation failed:\nInvalid length for "
                      "parameter KeyId, value: 0, valid min length: 1");
    assert_line_error(f, "kms describe-key --cli-input-json {\"KeyId\":5}",
                      false,
                      "Parameter validation failed:\nInvalid type for "
                      "parameter KeyId, value: 5, type: <class 'int'>, valid "
                      "types: <class 'str'>");
    assert_line_error(f,
                      "kms create-alias --cli-input-json "
                      "{\"AliasName\":\"a\",\"TargetKeyId\":\"\"}",
                      false,
                      "Parameter validation failed:\nInvalid value for "
                      "parameter AliasName, value: a, must start with alias/ "
                      "followed by the alias\nInvalid length for parameter "
                      "TargetKeyId, value: 0, valid min length: 1");
    assert_line_error(f,
                      "kms schedule-key-deletion --cli-input-json "
                      "{\"KeyId\":\"k\",\"PendingWindowInDays\":31}",
                      false,
                      "Parameter validation failed:\nInvalid value for "
                      "parameter PendingWindowInDays, value: 31, valid max "
                      "value: 30");
    assert_line_error(f,
                      "kms schedule-key-deletion --cli-input-json "
                      "{\"KeyId\":\"k\",\"PendingWindowInDays\":6}",
                      false,
                      "Parameter validation failed:\nInvalid value for "
                      "parameter PendingWindowInDays, value: 6, valid min "
                      "value: 7");
    assert_line_error(f,
                      "kms schedule-key-deletion --cli-input-json "
                      "{\"KeyId\":\"k\",\"PendingWindowInDays\":\"7\"}",
                      false,
                      "Parameter validation failed:\nInvalid type for "
                      "parameter PendingWindowInDays, value: 7, type: <class "
                      "'str'>, valid types: <class 'int'>");

    /* The group and its words. */
    assert_line_error(f, "kms", true,
                      "the following arguments are required: kms command "
                      "(run `cairn kms help` for the list)");
    assert_line_error(f, "kms get-parameter --name /a", true,
                      "argument kms command: Invalid choice: "
                      "'get-parameter', valid choices are: create-key | "
                      "list-keys | describe-key | create-alias | "
                      "update-alias | delete-alias | list-aliases | "
                      "enable-key | disable-key | enable-key-rotation | "
                      "disable-key-rotation | rotate-key | "
                      "schedule-key-deletion | cancel-key-deletion | "
                      "rotate-root-key");
    assert_line_error(f, "describe-key --key-id k", true,
                      "argument command: Invalid choice: 'describe-key' (run "
                      "`cairn --help` for the list)");
    assert_line_error(f, "ssm kms list-keys", true,
                      "argument command: Invalid choice: 'kms' (run `cairn "
                      "--help` for the list)");
    assert_line_error(f, "cluster kms list-keys", true,
                      "argument cluster command: Invalid choice: 'kms', "
                      "valid choices are: status | add | remove | "
                      "transfer-leadership");
    assert_line_error(f, "kms cluster status", true,
                      "argument kms command: Invalid choice: 'cluster', "
                      "valid choices are: create-key | list-keys | "
                      "describe-key | create-alias | update-alias | "
                      "delete-alias | list-aliases | enable-key | "
                      "disable-key | enable-key-rotation | "
                      "disable-key-rotation | rotate-key | "
                      "schedule-key-deletion | cancel-key-deletion | "
                      "rotate-root-key");
    assert_line_error(f, "kms list-keys extra", true, "Unknown options: extra");
    assert_line_error(f, "kms list-keys --limit 5", true,
                      "Unknown options: --limit, 5");
    assert_line_error(f, "kms list-aliases --max-items 5", true,
                      "Unknown options: --max-items");
    assert_line_error(f, "kms rotate-key --key-id k --no-paginate", true,
                      "Unknown options: --no-paginate");
}

/* `cairn kms help` asks for the group's help; a subcommand's --help skips
 * its required options; the group's help lists every command. */
static void parse_kms_help(void **state)
{
    struct fixture *f = *state;
    char *group[] = {"cairn", "kms", "help"};
    char *group_flag[] = {"cairn", "--help", "kms"};
    char *cmd[] = {"cairn", "kms", "create-alias", "--help"};

    assert_int_equal(cli_parse(ARGC(group), group, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_true(f->inv.kms);
    assert_null(f->inv.cmd);
    cli_invocation_close(&f->inv);
    assert_int_equal(cli_parse(ARGC(group_flag), group_flag, &f->inv, &f->d),
                     0);
    assert_true(f->inv.opt.help);
    assert_true(f->inv.kms);
    cli_invocation_close(&f->inv);
    assert_int_equal(cli_parse(ARGC(cmd), cmd, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_ptr_equal(f->inv.cmd, cli_command_find("kms create-alias"));

    assert_int_equal(cli_render_kms_help(&f->out), 0);
    assert_true(strncmp(out_str(f),
                        "usage: cairn [options] kms <command> [parameters]\n",
                        50) == 0);
    assert_non_null(strstr(out_str(f),
                           "    cairn kms create-key "
                           "[--description <value>]\n"));
    assert_non_null(strstr(out_str(f), "    cairn kms list-keys\n"));
    assert_non_null(strstr(out_str(f),
                           "    cairn kms create-alias --alias-name "
                           "alias/NAME --target-key-id KEY\n"));
    assert_non_null(strstr(out_str(f),
                           "    cairn kms schedule-key-deletion --key-id KEY "
                           "[--pending-window-in-days N]\n"));
    assert_non_null(strstr(out_str(f), "    cairn kms rotate-root-key\n"));
    assert_non_null(strstr(out_str(f), "    list-aliases "));
    assert_null(strstr(out_str(f), "cairn cluster"));
    assert_null(strstr(out_str(f), "get-parameter"));
    buf_reset(&f->out);
    assert_int_equal(
        cli_render_help(&f->out, cli_command_find("kms describe-key")), 0);
    assert_non_null(strstr(out_str(f),
                           "Calls Kms.DescribeKey, the DescribeKey operation "
                           "of the KMS API"));
}

/* `cairn keygen FILE` takes its path as a positional word, as is (no
 * file:// reading), and contacts no server. */
static void parse_keygen(void **state)
{
    struct fixture *f = *state;
    char *plain[] = {"cairn", "keygen", "/etc/cairn/root.key"};
    char *globals[] = {"cairn",   "--output",   "text",         "keygen",
                       "new.key", "--endpoint", "10.0.0.1:7400"};
    char *url[] = {"cairn", "keygen", "file://x.key"};
    char *help[] = {"cairn", "keygen", "help"};

    assert_request(f, ARGC(plain), plain, "{\"File\":\"/etc/cairn/root.key\"}");
    assert_ptr_equal(f->inv.cmd, cli_command_find("keygen"));
    assert_string_equal(cli_command_title(f->inv.cmd), "Keygen");
    assert_false(cli_command_is_kms(f->inv.cmd));
    assert_false(cli_command_is_cluster(f->inv.cmd));
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(globals), globals, "{\"File\":\"new.key\"}");
    assert_int_equal(f->inv.opt.output, CLI_OUTPUT_TEXT);
    cli_invocation_close(&f->inv);
    assert_request(f, ARGC(url), url, "{\"File\":\"file://x.key\"}");
    cli_invocation_close(&f->inv);
    assert_int_equal(cli_parse(ARGC(help), help, &f->inv, &f->d), 0);
    assert_true(f->inv.opt.help);
    assert_ptr_equal(f->inv.cmd, cli_command_find("keygen"));
}

/* keygen's argument errors: no FILE, two, an empty or non-UTF-8 one, a
 * --file flag (there is none), keygen under `ssm`, paging options. */
static void parse_keygen_errors(void **state)
{
    struct fixture *f = *state;
    char *empty[] = {"cairn", "keygen", ""};
    char *binary[] = {"cairn", "keygen", "k\xff.key"};

    assert_line_error(f, "keygen", true,
                      "the following arguments are required: FILE");
    assert_line_error(f, "keygen --output json", true,
                      "the following arguments are required: FILE");
    assert_line_error(f, "keygen a.key b.key", true, "Unknown options: b.key");
    assert_parse_error(f, ARGC(empty), empty, true,
                       "argument FILE: must not be empty");
    assert_parse_error(f, ARGC(binary), binary, true,
                       "argument FILE: the path is not valid UTF-8");
    assert_line_error(f, "keygen --file a.key", true,
                      "Unknown options: --file, a.key");
    assert_line_error(f, "keygen --FILE a.key", true,
                      "Unknown options: --FILE, a.key");
    assert_line_error(f, "ssm keygen a.key", true,
                      "argument command: Invalid choice: 'keygen' (run "
                      "`cairn --help` for the list)");
    assert_line_error(f, "kms keygen a.key", true,
                      "argument kms command: Invalid choice: 'keygen', valid "
                      "choices are: create-key | list-keys | describe-key | "
                      "create-alias | update-alias | delete-alias | "
                      "list-aliases | enable-key | disable-key | "
                      "enable-key-rotation | disable-key-rotation | "
                      "rotate-key | schedule-key-deletion | "
                      "cancel-key-deletion | rotate-root-key");
    assert_line_error(f, "keygen a.key --max-items 2", true,
                      "Unknown options: --max-items");
    assert_line_error(f, "keygen --cli-input-json {\"File\":\"\"}", false,
                      "Parameter validation failed:\nInvalid length for "
                      "parameter File, value: 0, valid min length: 1");
    assert_line_error(f, "keygen --cli-input-json {\"File\":1}", false,
                      "Parameter validation failed:\nInvalid type for "
                      "parameter File, value: 1, type: <class 'int'>, valid "
                      "types: <class 'str'>");
}

/* What keygen prints and how it exits, whatever env_root_key_create
 * answered: an existing file is a usage error, never overwritten. */
static void keygen_output(void **state)
{
    struct fixture *f = *state;
    struct cairn_error e;

    assert_int_equal(cli_keygen_exit(0), CLI_EXIT_OK);
    assert_int_equal(cli_keygen_exit(CAIRN_ALREADY_EXISTS), CLI_EXIT_USAGE);
    assert_int_equal(cli_keygen_exit(CAIRN_NOT_FOUND), CLI_EXIT_USAGE);
    assert_int_equal(cli_keygen_exit(CAIRN_PERMISSION_DENIED), CLI_EXIT_USAGE);
    assert_int_equal(cli_keygen_exit(CAIRN_INVALID_ARGUMENT), CLI_EXIT_USAGE);
    assert_int_equal(cli_keygen_exit(CAIRN_INTERNAL), CLI_EXIT_FAILURE);
    assert_int_equal(cli_keygen_exit(CAIRN_RESOURCE_EXHAUSTED),
                     CLI_EXIT_FAILURE);

    cairn_error_set(&e, CAIRN_ALREADY_EXISTS, NULL, "open root.key: exists");
    assert_int_equal(cli_render_keygen_error(&f->out, "root.key", &e),
                     CLI_EXIT_USAGE);
    assert_string_equal(out_str(f),
                        "\nroot.key already exists: cairn keygen never "
                        "overwrites a file (a root key in use would be lost). "
                        "Choose another path.\n");
    buf_reset(&f->out);
    cairn_error_set(&e, CAIRN_NOT_FOUND, NULL,
                    "open /no/dir/k: No such file or directory");
    assert_int_equal(cli_render_keygen_error(&f->out, "/no/dir/k", &e),
                     CLI_EXIT_USAGE);
    assert_string_equal(out_str(f),
                        "\nCould not create the root key file /no/dir/k: open "
                        "/no/dir/k: No such file or directory\n");
    buf_reset(&f->out);
    cairn_error_clear(&e);
    e.code = CAIRN_INTERNAL;
    assert_int_equal(cli_render_keygen_error(&f->out, "k", &e),
                     CLI_EXIT_FAILURE);
    assert_true(strncmp(out_str(f),
                        "\nCould not create the root key file k: ", 38) == 0);
    assert_true(strlen(out_str(f)) > 40);

    f->j = cli_keygen_result("root.key", "0123456789abcdef");
    assert_non_null(f->j);
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_JSON, "Keygen", false, 80, &f->out), 0);
    assert_string_equal(out_str(f),
                        "{\n"
                        "    \"File\": \"root.key\",\n"
                        "    \"Fingerprint\": \"0123456789abcdef\"\n"
                        "}\n");
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_TEXT, "Keygen", false, 80, &f->out), 0);
    assert_string_equal(out_str(f), "root.key\t0123456789abcdef\n");
}

/* Pack a Kms.DescribeKey response as docs/encryption.md describes it: a
 * key pending deletion, dates in epoch seconds. */
static void pack_describe_key(struct buf *b)
{
    msgpack_packer pk;

    mp_packer_init(&pk, b);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "KeyMetadata");
    msgpack_pack_map(&pk, 9);
    mp_pack_kv_cstr(&pk, "KeyId", "k1");
    mp_pack_kv_cstr(&pk, "Arn", "arn:aws:kms:us-east-1:000000000000:key/k1");
    mp_pack_kv_cstr(&pk, "Description", "db");
    mp_pack_kv_cstr(&pk, "KeyState", "PendingDeletion");
    mp_pack_kv_bool(&pk, "Enabled", false);
    mp_pack_cstr(&pk, "CreationDate");
    msgpack_pack_double(&pk, 1672576496.789);
    mp_pack_cstr(&pk, "DeletionDate");
    msgpack_pack_double(&pk, 1675168496.0);
    mp_pack_kv_cstr(&pk, "KeyManager", "CUSTOMER");
    mp_pack_kv_u64(&pk, "CurrentVersion", 2);
    assert_false(b->oom);
}

/* KMS dates (CreationDate, DeletionDate) print as ISO-8601 like every other
 * CLI date, in json, text and table. */
static void render_kms_dates(void **state)
{
    struct fixture *f = *state;
    struct buf mp;
    struct cairn_error err;
    json_t *sched = NULL;
    msgpack_packer pk;

    buf_init(&mp);
    pack_describe_key(&mp);
    assert_int_equal(cli_response_from_mp(mp.data, mp.len, &f->j, &err), 0);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_JSON, "DescribeKey", false, 80, &f->out),
        0);
    assert_string_equal(
        out_str(f),
        "{\n"
        "    \"KeyMetadata\": {\n"
        "        \"KeyId\": \"k1\",\n"
        "        \"Arn\": \"arn:aws:kms:us-east-1:000000000000:key/k1\",\n"
        "        \"Description\": \"db\",\n"
        "        \"KeyState\": \"PendingDeletion\",\n"
        "        \"Enabled\": false,\n"
        "        \"CreationDate\": \"2023-01-01T12:34:56.789000+00:00\",\n"
        "        \"DeletionDate\": \"2023-01-31T12:34:56+00:00\",\n"
        "        \"KeyManager\": \"CUSTOMER\",\n"
        "        \"CurrentVersion\": 2\n"
        "    }\n"
        "}\n");
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_TEXT, "DescribeKey", false, 200, &f->out),
        0);
    assert_string_equal(out_str(f),
                        "KEYMETADATA\tarn:aws:kms:us-east-1:000000000000:key/"
                        "k1\t2023-01-01T12:34:56.789000+00:00\t2\t2023-01-"
                        "31T12:34:56+00:00\tdb\tFalse\tk1\tCUSTOMER\t"
                        "PendingDeletion\n");
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_TABLE, "DescribeKey", false, 80, &f->out),
        0);
    assert_string_equal(
        out_str(f),
        "-------------------------------------------------------------------\n"
        "|                           DescribeKey                           |\n"
        "+-----------------------------------------------------------------+\n"
        "||                          KeyMetadata                          ||\n"
        "|+-----------------+---------------------------------------------+|\n"
        "||  Arn            |  arn:aws:kms:us-east-1:000000000000:key/k1  ||\n"
        "||  CreationDate   |  2023-01-01T12:34:56.789000+00:00           ||\n"
        "||  CurrentVersion |  2                                          ||\n"
        "||  DeletionDate   |  2023-01-31T12:34:56+00:00                  ||\n"
        "||  Description    |  db                                         ||\n"
        "||  Enabled        |  False                                      ||\n"
        "||  KeyId          |  k1                                         ||\n"
        "||  KeyManager     |  CUSTOMER                                   ||\n"
        "||  KeyState       |  PendingDeletion                            ||\n"
        "|+-----------------+---------------------------------------------+|"
        "\n");

    /* ScheduleKeyDeletion answers the key and its deletion date. */
    buf_reset(&mp);
    mp_packer_init(&pk, &mp);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_cstr(&pk, "KeyId", "k1");
    mp_pack_cstr(&pk, "DeletionDate");
    msgpack_pack_double(&pk, 1675168496.5);
    assert_false(mp.oom);
    assert_int_equal(cli_response_from_mp(mp.data, mp.len, &sched, &err), 0);
    buf_reset(&f->out);
    assert_int_equal(cli_render(sched, CLI_OUTPUT_TEXT, "ScheduleKeyDeletion",
                                false, 80, &f->out),
                     0);
    assert_string_equal(out_str(f), "2023-01-31T12:34:56.500000+00:00\tk1\n");
    json_decref(sched);
    buf_close(&mp);
}

/******************************************************************************
 *
 * Pagination
 *
 *****************************************************************************/

/* With --max-items, each call asks only for what is still wanted and the
 * output ends with the token to resume from. */
static void pager_max_items(void **state)
{
    struct fixture *f = *state;
    const struct cli_command *c = cli_command_find("get-parameters-by-path");
    struct cli_options o = {.paginate = true, .max_items = 3};
    struct cli_pager p;
    json_t *req = load("{\"Path\":\"/\"}");
    json_t *page;
    json_t *res;
    char *s;

    assert_int_equal(cli_pager_init(&p, c, &o, 0), 0);
    assert_int_equal(cli_pager_prepare(&p, req), 0);
    s = dump(req);
    assert_string_equal(s, "{\"Path\":\"/\",\"MaxResults\":3}");
    free(s);
    page = load(
        "{\"Parameters\":[{\"Name\":\"/a\"},{\"Name\":\"/b\"}],"
        "\"NextToken\":\"t1\"}");
    assert_int_equal(cli_pager_add(&p, page), 0);
    json_decref(page);
    assert_false(p.done);
    assert_int_equal(cli_pager_prepare(&p, req), 0);
    s = dump(req);
    assert_string_equal(s,
                        "{\"Path\":\"/\",\"MaxResults\":1,\"NextToken\":"
                        "\"t1\"}");
    free(s);
    page = load("{\"Parameters\":[{\"Name\":\"/c\"}],\"NextToken\":\"t2\"}");
    assert_int_equal(cli_pager_add(&p, page), 0);
    json_decref(page);
    assert_true(p.done);
    res = cli_pager_result(&p);
    s = dump(res);
    assert_string_equal(s,
                        "{\"Parameters\":[{\"Name\":\"/a\"},{\"Name\":"
                        "\"/b\"},{\"Name\":\"/c\"}],\"NextToken\":\"t2\"}");
    free(s);
    json_decref(res);
    json_decref(req);
    cli_pager_close(&p);
    (void)f;
}

/* Without --max-items, empty pages are followed until NextToken ends, and
 * --starting-token seeds the first call. */
static void pager_all_pages(void **state)
{
    const struct cli_command *c = cli_command_find("describe-parameters");
    struct cli_options o = {.paginate = true, .starting_token = "t0"};
    struct cli_pager p;
    json_t *req = load("{}");
    const char *pages[] = {
        "{\"Parameters\":[{\"Name\":\"/a\"}],\"NextToken\":\"t1\"}",
        "{\"Parameters\":[],\"NextToken\":\"t2\"}",
        "{\"Parameters\":[{\"Name\":\"/b\"}]}",
    };
    json_t *res;
    char *s;

    (void)state;
    assert_int_equal(cli_pager_init(&p, c, &o, 0), 0);
    for (size_t i = 0; i < 3; i++) {
        json_t *page = load(pages[i]);
        assert_false(p.done);
        assert_int_equal(cli_pager_prepare(&p, req), 0);
        assert_string_equal(
            json_string_value(json_object_get(req, "NextToken")),
            i == 0 ? "t0" : (i == 1 ? "t1" : "t2"));
        assert_null(json_object_get(req, "MaxResults"));
        assert_int_equal(cli_pager_add(&p, page), 0);
        json_decref(page);
    }
    assert_true(p.done);
    res = cli_pager_result(&p);
    s = dump(res);
    assert_string_equal(s,
                        "{\"Parameters\":[{\"Name\":\"/a\"},{\"Name\":"
                        "\"/b\"}]}");
    free(s);
    json_decref(res);
    json_decref(req);
    cli_pager_close(&p);
}

/* A server repeating its token stops the loop and hands the token out. */
static void pager_repeated_token(void **state)
{
    const struct cli_command *c = cli_command_find("get-parameter-history");
    struct cli_options o = {.paginate = true, .page_size = 5};
    struct cli_pager p;
    json_t *req = load("{\"Name\":\"a\"}");
    json_t *page = load("{\"Parameters\":[],\"NextToken\":\"same\"}");
    json_t *res;

    (void)state;
    assert_int_equal(cli_pager_init(&p, c, &o, 0), 0);
    assert_int_equal(cli_pager_prepare(&p, req), 0);
    assert_int_equal(json_integer_value(json_object_get(req, "MaxResults")), 5);
    assert_int_equal(cli_pager_add(&p, page), 0);
    assert_false(p.done);
    assert_int_equal(cli_pager_prepare(&p, req), 0);
    assert_int_equal(cli_pager_add(&p, page), 0);
    assert_true(p.done);
    res = cli_pager_result(&p);
    assert_string_equal(json_string_value(json_object_get(res, "NextToken")),
                        "same");
    json_decref(res);
    json_decref(page);
    json_decref(req);
    cli_pager_close(&p);
}

/******************************************************************************
 *
 * Output
 *
 *****************************************************************************/

/* Epoch seconds print as Python's isoformat in UTC, microseconds rounded,
 * without a fraction when there is none. */
static void iso8601(void **state)
{
    char s[48];

    (void)state;
    assert_int_equal(cli_iso8601(1672576496.789, s, sizeof(s)), 0);
    assert_string_equal(s, "2023-01-01T12:34:56.789000+00:00");
    assert_int_equal(cli_iso8601(1672576496.0, s, sizeof(s)), 0);
    assert_string_equal(s, "2023-01-01T12:34:56+00:00");
    assert_int_equal(cli_iso8601(1530018761.888, s, sizeof(s)), 0);
    assert_string_equal(s, "2018-06-26T13:12:41.888000+00:00");
    assert_int_equal(cli_iso8601(1672576496.9999996, s, sizeof(s)), 0);
    assert_string_equal(s, "2023-01-01T12:34:57+00:00");
    assert_int_equal(cli_iso8601(-0.5, s, sizeof(s)), 0);
    assert_string_equal(s, "1969-12-31T23:59:59.500000+00:00");
    assert_int_equal(cli_iso8601(NAN, s, sizeof(s)), CAIRN_INVALID_ARGUMENT);
    assert_int_equal(cli_iso8601(1e300, s, sizeof(s)), CAIRN_INVALID_ARGUMENT);
}

/* Pack a GetParameter response as the server does. */
static void pack_get_parameter(struct buf *b, bool secure)
{
    msgpack_packer pk;

    mp_packer_init(&pk, b);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "Parameter");
    msgpack_pack_map(&pk, 7);
    mp_pack_kv_cstr(&pk, "Name", "/x");
    mp_pack_kv_cstr(&pk, "Type", secure ? "SecureString" : "String");
    if (secure) {
        mp_pack_cstr(&pk, "Value");
        mp_pack_bin(&pk, "\x01\x02\xff", 3);
    } else {
        mp_pack_kv_cstr(&pk, "Value", "v");
    }
    mp_pack_kv_u64(&pk, "Version", 1);
    mp_pack_cstr(&pk, "LastModifiedDate");
    msgpack_pack_double(&pk, 1672576496.789);
    mp_pack_kv_cstr(&pk, "ARN",
                    "arn:aws:ssm:us-east-1:000000000000:parameter/x");
    mp_pack_kv_cstr(&pk, "DataType", "text");
    assert_false(b->oom);
}

#define GET_PARAMETER_JSON                                                   \
    "{\n"                                                                    \
    "    \"Parameter\": {\n"                                                 \
    "        \"Name\": \"/x\",\n"                                            \
    "        \"Type\": \"String\",\n"                                        \
    "        \"Value\": \"v\",\n"                                            \
    "        \"Version\": 1,\n"                                              \
    "        \"LastModifiedDate\": \"2023-01-01T12:34:56.789000+00:00\",\n"  \
    "        \"ARN\": \"arn:aws:ssm:us-east-1:000000000000:parameter/x\",\n" \
    "        \"DataType\": \"text\"\n"                                       \
    "    }\n"                                                                \
    "}\n"

/* A GetParameter response prints exactly as `aws ssm get-parameter`: the
 * server's member order, 4-space indent, an ISO-8601 timestamp. */
static void render_get_parameter_json(void **state)
{
    struct fixture *f = *state;
    struct buf mp;
    struct cairn_error err;

    buf_init(&mp);
    pack_get_parameter(&mp, false);
    assert_int_equal(cli_response_from_mp(mp.data, mp.len, &f->j, &err), 0);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_JSON, "GetParameter", false, 80, &f->out),
        0);
    assert_string_equal(out_str(f), GET_PARAMETER_JSON);
    buf_close(&mp);
}

/* A bin value (a SecureString's sealed value, read without
 * --with-decryption) becomes base64 text, as the AWS CLI shows ciphertext,
 * in every output format. */
static void render_bin_value(void **state)
{
    struct fixture *f = *state;
    json_t *bad = NULL;
    json_t *empty = NULL;
    struct buf mp;
    struct cairn_error err;
    msgpack_packer pk;

    buf_init(&mp);
    pack_get_parameter(&mp, true);
    assert_int_equal(cli_response_from_mp(mp.data, mp.len, &f->j, &err), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(f->j, "Parameter"), "Value")),
                        "AQL/");
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_JSON, "GetParameter", false, 80, &f->out),
        0);
    assert_non_null(strstr(out_str(f),
                           "        \"Type\": \"SecureString\",\n"
                           "        \"Value\": \"AQL/\",\n"));
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_TEXT, "GetParameter", false, 80, &f->out),
        0);
    assert_string_equal(out_str(f),
                        "PARAMETER\tarn:aws:ssm:us-east-1:000000000000:"
                        "parameter/x\ttext\t2023-01-01T12:34:56.789000+00:00\t"
                        "/x\tSecureString\tAQL/\t1\n");
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(f->j, CLI_OUTPUT_TABLE, "GetParameter", false, 80, &f->out),
        0);
    assert_non_null(strstr(out_str(f), "||  Value            |  AQL/  "));
    /* Padding, and a sealed blob of the size docs/encryption.md gives. */
    buf_reset(&mp);
    mp_packer_init(&pk, &mp);
    msgpack_pack_map(&pk, 3);
    mp_pack_cstr(&pk, "A");
    mp_pack_bin(&pk, "\xfb\xff", 2);
    mp_pack_cstr(&pk, "B");
    mp_pack_bin(&pk, "", 0);
    mp_pack_cstr(&pk, "C");
    mp_pack_bin(&pk, "CRNE\x01", 5);
    assert_false(mp.oom);
    assert_int_equal(cli_response_from_mp(mp.data, mp.len, &empty, &err), 0);
    buf_reset(&f->out);
    assert_int_equal(
        cli_render(empty, CLI_OUTPUT_TEXT, "X", false, 80, &f->out), 0);
    assert_string_equal(out_str(f), "+/8=\t\tQ1JORQE=\n");
    json_decref(empty);
    buf_close(&mp);
    /* 0xc1 is never valid msgpack. */
    assert_int_equal(cli_response_from_mp("\xc1", 1, &bad, &err),
                     CAIRN_INVALID_ARGUMENT);
    assert_null(bad);
}

/* Empty responses print nothing; escapes and floats follow Python's json. */
static void render_json_details(void **state)
{
    struct fixture *f = *state;

    assert_render(f, "{}", CLI_OUTPUT_JSON, "DeleteParameter", false, 80, "");
    assert_render(f,
                  "{\"S\":\"a\\u0001b\\\"\\\\\\n\\t/é\",\"L\":[],\"O\":{},"
                  "\"F\":[1e16,0.1,1.5e-7,3.0,123456789.125],\"B\":[true,"
                  "null]}",
                  CLI_OUTPUT_JSON, "X", false, 80,
                  "{\n"
                  "    \"S\": \"a\\u0001b\\\"\\\\\\n\\t/é\",\n"
                  "    \"L\": [],\n"
                  "    \"O\": {},\n"
                  "    \"F\": [\n"
                  "        1e+16,\n"
                  "        0.1,\n"
                  "        1.5e-07,\n"
                  "        3.0,\n"
                  "        123456789.125\n"
                  "    ],\n"
                  "    \"B\": [\n"
                  "        true,\n"
                  "        null\n"
                  "    ]\n"
                  "}\n");
}

static const char get_parameter_resp[] =
    "{\"Parameter\": {\"Name\": \"/x\", \"Type\": \"String\", \"Value\": "
    "\"v\", \"Version\": 1, \"LastModifiedDate\": "
    "\"2023-01-01T12:34:56.789000+00:00\", \"ARN\": "
    "\"arn:aws:ssm:us-east-1:000000000000:parameter/x\", \"DataType\": "
    "\"text\"}}";

static const char get_parameters_resp[] =
    "{\"Parameters\": [{\"Name\": \"/a\", \"Type\": \"String\", \"Value\": "
    "\"1\", \"Version\": 1}, {\"Name\": \"/b\", \"Type\": \"StringList\", "
    "\"Value\": \"x,y\", \"Version\": 2, \"Selector\": \":2\"}], "
    "\"InvalidParameters\": [\"/c\"]}";

/* Text: sorted scalar columns under the upper-cased key; lists of dicts
 * share one column set; scalar lists print one item per line. */
static void render_text(void **state)
{
    struct fixture *f = *state;

    assert_render(f, get_parameter_resp, CLI_OUTPUT_TEXT, "GetParameter", false,
                  80,
                  "PARAMETER\tarn:aws:ssm:us-east-1:000000000000:parameter/"
                  "x\ttext\t2023-01-01T12:34:56.789000+00:00\t/x\tString\tv\t"
                  "1\n");
    assert_render(f, get_parameters_resp, CLI_OUTPUT_TEXT, "GetParameters",
                  false, 80,
                  "INVALIDPARAMETERS\t/c\n"
                  "PARAMETERS\t/a\t\tString\t1\t1\n"
                  "PARAMETERS\t/b\t:2\tStringList\tx,y\t2\n");
    assert_render(f, "{\"Version\": 2, \"Tier\": \"Standard\"}",
                  CLI_OUTPUT_TEXT, "PutParameter", false, 80, "Standard\t2\n");
    /* A merged listing ends with the token to resume from. */
    assert_render(f,
                  "{\"Parameters\": [{\"Name\": \"/a\", \"Version\": 1}], "
                  "\"NextToken\": \"tok\"}",
                  CLI_OUTPUT_TEXT, "DescribeParameters", true, 80,
                  "PARAMETERS\t/a\t1\nNEXTTOKEN\ttok\n");
}

/* Table: the operation titles the box, single-row sections turn into
 * key/value rows when the table is wider than the terminal. */
static void render_table(void **state)
{
    struct fixture *f = *state;

    assert_render(
        f, get_parameter_resp, CLI_OUTPUT_TABLE, "GetParameter", false, 80,
        "--------------------------------------------------------------------"
        "------\n"
        "|                              GetParameter                         "
        "     |\n"
        "+-------------------------------------------------------------------"
        "-----+\n"
        "||                               Parameter                          "
        "    ||\n"
        "|+-------------------+----------------------------------------------"
        "----+|\n"
        "||  ARN              |  arn:aws:ssm:us-east-1:000000000000:parameter"
        "/x  ||\n"
        "||  DataType         |  text                                        "
        "    ||\n"
        "||  LastModifiedDate |  2023-01-01T12:34:56.789000+00:00            "
        "    ||\n"
        "||  Name             |  /x                                          "
        "    ||\n"
        "||  Type             |  String                                      "
        "    ||\n"
        "||  Value            |  v                                           "
        "    ||\n"
        "||  Version          |  1                                           "
        "    ||\n"
        "|+-------------------+----------------------------------------------"
        "----+|\n");
    assert_render(
        f, get_parameters_resp, CLI_OUTPUT_TABLE, "GetParameters", false, 80,
        "----------------------------------------------------------\n"
        "|                      GetParameters                     |\n"
        "+--------------------------------------------------------+\n"
        "||                   InvalidParameters                  ||\n"
        "|+------------------------------------------------------+|\n"
        "||  /c                                                  ||\n"
        "|+------------------------------------------------------+|\n"
        "||                      Parameters                      ||\n"
        "|+------+-----------+--------------+--------+-----------+|\n"
        "|| Name | Selector  |    Type      | Value  |  Version  ||\n"
        "|+------+-----------+--------------+--------+-----------+|\n"
        "||  /a  |           |  String      |  1     |  1        ||\n"
        "||  /b  |  :2       |  StringList  |  x,y   |  2        ||\n"
        "|+------+-----------+--------------+--------+-----------+|\n");
    assert_render(f,
                  "{\"TagList\": [{\"Key\": \"env\", \"Value\": \"prod\"}, "
                  "{\"Key\": \"team\", \"Value\": \"日本語\"}]}",
                  CLI_OUTPUT_TABLE, "ListTagsForResource", false, 80,
                  "----------------------\n"
                  "| ListTagsForResource|\n"
                  "+--------------------+\n"
                  "||      TagList     ||\n"
                  "|+-------+----------+|\n"
                  "||  Key  |  Value   ||\n"
                  "|+-------+----------+|\n"
                  "||  env  |  prod    ||\n"
                  "||  team |  日本語  ||\n"
                  "|+-------+----------+|\n");
    assert_render(f, "{}", CLI_OUTPUT_TABLE, "DeleteParameter", false, 80, "");
}

/* Service errors read as the AWS CLI's; a missing name gets a fallback. */
static void render_error(void **state)
{
    struct fixture *f = *state;
    struct cairn_error e;

    cairn_error_set(&e, CAIRN_NOT_FOUND, "ParameterNotFound",
                    "Parameter /x not found.");
    assert_int_equal(cli_render_error(&f->out, "GetParameter", &e), 0);
    assert_string_equal(out_str(f),
                        "\nAn error occurred (ParameterNotFound) when calling "
                        "the GetParameter operation: Parameter /x not "
                        "found.\n");
    buf_reset(&f->out);
    cairn_error_set(&e, CAIRN_INVALID_ARGUMENT, NULL, "bad name");
    assert_int_equal(cli_render_error(&f->out, "PutParameter", &e), 0);
    assert_string_equal(out_str(f),
                        "\nAn error occurred (ValidationException) when "
                        "calling the PutParameter operation: bad name\n");
}

/* Every line of @p text fits in 80 columns. */
static void assert_lines_fit(const char *text, const char *what)
{
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (nl - p > 80) {
            fail_msg("%s: line too long: %.*s", what, (int)(nl - p), p);
        }
        p = nl + 1;
    }
}

/* The help of every command documents each of its flags, and the top help
 * lists every command; both come from the same table as the parser. */
static void render_help(void **state)
{
    struct fixture *f = *state;
    size_t n;
    const struct cli_command *cmds = cli_commands(&n);

    assert_int_equal(n, 36);
    assert_int_equal(cli_render_help(&f->out, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(strstr(out_str(f), cmds[i].name));
    }
    assert_non_null(strstr(out_str(f), "`cairn cluster help`"));
    assert_non_null(strstr(out_str(f), "`cairn kms help`"));
    assert_non_null(strstr(out_str(f), "\n    keygen "));
    assert_lines_fit(out_str(f), "cairn help");
    buf_reset(&f->out);
    assert_int_equal(cli_render_cluster_help(&f->out), 0);
    assert_non_null(strstr(out_str(f),
                           "cairn cluster add --id N --raft-address HOST:PORT "
                           "[--api-address HOST:PORT]\n"));
    assert_non_null(strstr(out_str(f), "cairn cluster status [--digest]\n"));
    assert_non_null(strstr(out_str(f), "cairn cluster remove --id N\n"));
    assert_non_null(
        strstr(out_str(f), "cairn cluster transfer-leadership [--id N]\n"));
    assert_lines_fit(out_str(f), "cairn cluster help");
    buf_reset(&f->out);
    assert_int_equal(cli_render_kms_help(&f->out), 0);
    assert_lines_fit(out_str(f), "cairn kms help");
    /* So does every kms command's and keygen's. */
    for (size_t i = 0; i < n; i++) {
        buf_reset(&f->out);
        assert_int_equal(cli_render_help(&f->out, &cmds[i]), 0);
        /* put-parameter's --policies example is one long word. */
        if (cli_command_is_kms(&cmds[i]) ||
            strcmp(cmds[i].name, "keygen") == 0) {
            assert_lines_fit(out_str(f), cmds[i].name);
        }
        for (size_t k = 0; k < cmds[i].n_flags; k++) {
            char opt[64];
            snprintf(
                opt, sizeof(opt),
                cmds[i].flags[k].kind == CLI_PATH ? "    %s " : "    --%s ",
                cmds[i].flags[k].name);
            if (strstr(out_str(f), opt) == NULL) {
                fail_msg("%s --help lacks %s", cmds[i].name, opt);
            }
        }
        assert_true((strstr(out_str(f), "--max-items") != NULL) ==
                    (cmds[i].result_key != NULL));
    }
    buf_reset(&f->out);
    assert_int_equal(cli_render_usage(&f->out), 0);
    assert_true(strncmp(out_str(f), "usage: cairn", 12) == 0);
}

/******************************************************************************
 *
 * Cases
 *
 *****************************************************************************/

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(shorthand_tag),
        CASE(shorthand_csv_list),
        CASE(shorthand_commas_in_values),
        CASE(shorthand_forms),
        CASE(shorthand_missing_equals),
        CASE(shorthand_syntax_errors),
        CASE(shorthand_paramfile_member),
        CASE(struct_list_shorthand),
        CASE(struct_list_json),
        CASE(struct_list_unknown_key),
        CASE(struct_list_types),
        CASE(struct_list_bad_json),
        CASE(load_value_file),
        CASE(load_value_missing),
        CASE(parse_put_parameter),
        CASE(parse_globals_anywhere),
        CASE(parse_lists),
        CASE(parse_cli_input_json),
        CASE(parse_usage_errors),
        CASE(parse_help),
        CASE(parse_paging),
        CASE(parse_other_commands),
        CASE(parse_cluster),
        CASE(parse_cluster_errors),
        CASE(parse_cluster_help),
        CASE(parse_with_decryption),
        CASE(parse_kms),
        CASE(parse_kms_errors),
        CASE(parse_kms_help),
        CASE(parse_keygen),
        CASE(parse_keygen_errors),
        CASE(keygen_output),
        CASE(render_kms_dates),
        CASE(status_json),
        CASE(status_table),
        CASE(status_text),
        CASE(status_edge_cases),
        CASE(pager_max_items),
        CASE(pager_all_pages),
        CASE(pager_repeated_token),
        CASE(iso8601),
        CASE(render_get_parameter_json),
        CASE(render_bin_value),
        CASE(render_json_details),
        CASE(render_text),
        CASE(render_table),
        CASE(render_error),
        CASE(render_help),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
