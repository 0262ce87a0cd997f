/* Integration tests of the cairn CLI against a real cairnd: every
 * Parameter Store command, its output shape, errors and exit statuses. */
#include "test.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

/******************************************************************************
 * Fixture
 *****************************************************************************/

/* One daemon for the whole file: the CLI cases do not disturb each other
 * (each uses its own names). */
static struct daemon d;

static int group_setup(void **state)
{
    (void)state;
    daemon_start(&d);
    setenv("CAIRN_ENDPOINT", d.endpoint, 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    daemon_cleanup(&d);
    return 0;
}

/******************************************************************************
 * Helpers
 *****************************************************************************/

struct result
{
    int status;
    char *out;
    char *err;
};

/* Run cairn with the given arguments (NULL-terminated). */
static struct result cli(const char *first, ...)
{
    char *argv[64];
    struct result r;
    va_list ap;
    int n = 0;

    argv[n++] = getenv("CAIRN");
    argv[n++] = (char *)first;
    va_start(ap, first);
    for (;;) {
        char *a = va_arg(ap, char *);
        if (a == NULL) {
            break;
        }
        assert_true(n < 63);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    r.status = proc_run(argv, &r.out, &r.err, 60000);
    return r;
}

static void result_free(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* Expect success and JSON on stdout. */
static json_t *cli_json(struct result r)
{
    json_error_t je;
    json_t *j;
    if (r.status != 0) {
        fail_msg("cairn exited %d\nstdout: %s\nstderr: %s", r.status, r.out,
                 r.err);
    }
    j = json_loads(r.out, 0, &je);
    if (j == NULL) {
        fail_msg("not JSON (%s): %s", je.text, r.out);
    }
    result_free(&r);
    return j;
}

static const char *jstr(json_t *o, const char *path)
{
    json_t *v = o;
    char key[128];
    const char *p = path;
    while (*p != '\0' && v != NULL) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        v = json_object_get(v, key);
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/******************************************************************************
 * Cases
 *****************************************************************************/

/* put-parameter then get-parameter return AWS CLI shapes. */
static void put_get(void **state)
{
    json_t *j;
    (void)state;
    j = cli_json(cli("put-parameter", "--name", "/cli/a", "--value", "one",
                     "--type", "String", NULL));
    assert_int_equal(json_integer_value(json_object_get(j, "Version")), 1);
    assert_string_equal(jstr(j, "Tier"), "Standard");
    json_decref(j);
    j = cli_json(cli("get-parameter", "--name", "/cli/a", NULL));
    assert_string_equal(jstr(j, "Parameter.Value"), "one");
    assert_string_equal(jstr(j, "Parameter.Name"), "/cli/a");
    assert_string_equal(jstr(j, "Parameter.Type"), "String");
    /* AWS CLI v2 prints timestamps as ISO-8601 strings. */
    assert_non_null(jstr(j, "Parameter.LastModifiedDate"));
    json_decref(j);
    j = cli_json(cli("put-parameter", "--name", "/cli/a", "--value", "two",
                     "--overwrite", NULL));
    assert_int_equal(json_integer_value(json_object_get(j, "Version")), 2);
    json_decref(j);
}

/* Errors print AWS's message on stderr with exit status 254. */
static void errors(void **state)
{
    struct result r;
    (void)state;
    r = cli("get-parameter", "--name", "/cli/nope", NULL);
    assert_int_equal(r.status, 254);
    assert_non_null(strstr(r.err,
                           "An error occurred (ParameterNotFound) when "
                           "calling the GetParameter operation: "
                           "Parameter /cli/nope not found."));
    result_free(&r);
    r = cli("put-parameter", "--name", "/cli/e", "--value", "v", NULL);
    assert_int_equal(r.status, 254);
    assert_non_null(strstr(r.err, "(ValidationException)"));
    result_free(&r);
    /* A usage error: a required flag is missing. */
    r = cli("get-parameter", NULL);
    assert_int_equal(r.status, 252);
    result_free(&r);
    r = cli("no-such-command", NULL);
    assert_int_equal(r.status, 252);
    result_free(&r);
    /* Nothing listens there. */
    {
        char endpoint[64];
        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", proc_free_port());
        r = cli("--endpoint", endpoint, "get-parameter", "--name", "/x", NULL);
        assert_int_equal(r.status, 255);
        result_free(&r);
    }
}

/* get-parameters and get-parameters-by-path, paging followed to the end
 * unless --max-items asks otherwise. */
static void paging(void **state)
{
    struct cairn_client *c = daemon_client(&d);
    struct cairn_error err;
    json_t *j;
    const char *token;
    char name[64];
    (void)state;

    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "/cli/page/%02d/p%04d", i % 10, i);
        assert_int_equal(
            cairn_put_parameter(c, name, "v", "String", true, NULL, &err), 0);
    }
    cairn_client_close(c);
    j = cli_json(cli("get-parameters-by-path", "--path", "/cli/page",
                     "--recursive", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 1000);
    assert_null(json_object_get(j, "NextToken"));
    json_decref(j);
    j = cli_json(cli("get-parameters-by-path", "--path", "/cli/page/07", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 100);
    json_decref(j);
    j = cli_json(cli("get-parameters-by-path", "--path", "/cli/page",
                     "--recursive", "--max-items", "15", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 15);
    token = jstr(j, "NextToken");
    assert_non_null(token);
    {
        json_t *k = cli_json(cli("get-parameters-by-path", "--path",
                                 "/cli/page", "--recursive", "--max-items",
                                 "15", "--starting-token", token, NULL));
        json_t *first = json_array_get(json_object_get(j, "Parameters"), 0);
        json_t *next = json_array_get(json_object_get(k, "Parameters"), 0);
        assert_int_equal(json_array_size(json_object_get(k, "Parameters")), 15);
        assert_string_not_equal(jstr(first, "Name"), jstr(next, "Name"));
        json_decref(k);
    }
    json_decref(j);
    j = cli_json(cli("get-parameters", "--names", "/cli/page/00/p0000",
                     "/cli/page/01/p0001", "/cli/missing", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "InvalidParameters")),
                     1);
    json_decref(j);
    j = cli_json(cli("describe-parameters", "--parameter-filters",
                     "Key=Path,Option=Recursive,Values=/cli/page/03", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 100);
    json_decref(j);
}

/* History, labels, deletes, tags and settings. */
static void the_rest(void **state)
{
    json_t *j;
    struct result r;
    (void)state;

    json_decref(
        cli_json(cli("put-parameter", "--name", "/cli/h", "--value", "1",
                     "--type", "String", "--tags", "Key=env,Value=dev", NULL)));
    json_decref(cli_json(cli("put-parameter", "--name", "/cli/h", "--value",
                             "2", "--overwrite", NULL)));
    j = cli_json(cli("get-parameter-history", "--name", "/cli/h", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 2);
    json_decref(j);
    j = cli_json(cli("label-parameter-version", "--name", "/cli/h",
                     "--parameter-version", "1", "--labels", "stable", "1bad",
                     NULL));
    assert_int_equal(json_array_size(json_object_get(j, "InvalidLabels")), 1);
    json_decref(j);
    j = cli_json(cli("get-parameter", "--name", "/cli/h:stable", NULL));
    assert_string_equal(jstr(j, "Parameter.Value"), "1");
    assert_string_equal(jstr(j, "Parameter.Selector"), ":stable");
    json_decref(j);
    j = cli_json(cli("unlabel-parameter-version", "--name", "/cli/h",
                     "--parameter-version", "1", "--labels", "stable", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "RemovedLabels")), 1);
    json_decref(j);
    j = cli_json(cli("list-tags-for-resource", "--resource-type", "Parameter",
                     "--resource-id", "/cli/h", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "TagList")), 1);
    json_decref(j);
    r = cli("add-tags-to-resource", "--resource-type", "Parameter",
            "--resource-id", "/cli/h", "--tags", "Key=team,Value=core", NULL);
    assert_int_equal(r.status, 0);
    result_free(&r);
    r = cli("remove-tags-from-resource", "--resource-type", "Parameter",
            "--resource-id", "/cli/h", "--tag-keys", "env", NULL);
    assert_int_equal(r.status, 0);
    result_free(&r);
    j = cli_json(cli("list-tags-for-resource", "--resource-type", "Parameter",
                     "--resource-id", "/cli/h", NULL));
    assert_string_equal(
        jstr(json_array_get(json_object_get(j, "TagList"), 0), "Key"), "team");
    json_decref(j);
    j = cli_json(cli("get-service-setting", "--setting-id",
                     "/ssm/parameter-store/default-parameter-tier", NULL));
    assert_string_equal(jstr(j, "ServiceSetting.SettingValue"), "Standard");
    json_decref(j);
    r = cli("update-service-setting", "--setting-id",
            "/ssm/parameter-store/default-parameter-tier", "--setting-value",
            "Advanced", NULL);
    assert_int_equal(r.status, 0);
    result_free(&r);
    j = cli_json(cli("put-parameter", "--name", "/cli/adv", "--value", "v",
                     "--type", "String", NULL));
    assert_string_equal(jstr(j, "Tier"), "Advanced");
    json_decref(j);
    j = cli_json(cli("reset-service-setting", "--setting-id",
                     "/ssm/parameter-store/default-parameter-tier", NULL));
    assert_string_equal(jstr(j, "ServiceSetting.SettingValue"), "Standard");
    json_decref(j);
    r = cli("delete-parameter", "--name", "/cli/h", NULL);
    assert_int_equal(r.status, 0);
    result_free(&r);
    j = cli_json(
        cli("delete-parameters", "--names", "/cli/a", "/cli/gone", NULL));
    assert_int_equal(json_array_size(json_object_get(j, "DeletedParameters")),
                     1);
    assert_int_equal(json_array_size(json_object_get(j, "InvalidParameters")),
                     1);
    json_decref(j);
}

/* Text and table output, and help. */
static void formats(void **state)
{
    struct result r;
    (void)state;
    json_decref(cli_json(cli("put-parameter", "--name", "/cli/f", "--value",
                             "fmt", "--type", "String", NULL)));
    r = cli("--output", "text", "get-parameter", "--name", "/cli/f", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "fmt"));
    assert_null(strstr(r.out, "{"));
    result_free(&r);
    r = cli("--output", "table", "get-parameter", "--name", "/cli/f", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "fmt"));
    result_free(&r);
    r = cli("--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "get-parameters-by-path"));
    result_free(&r);
    r = cli("put-parameter", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--allowed-pattern"));
    result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get), cmocka_unit_test(errors),
        cmocka_unit_test(paging),  cmocka_unit_test(the_rest),
        cmocka_unit_test(formats),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
