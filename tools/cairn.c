/* cairn: the command line client, mirroring `aws ssm` for Parameter Store,
 * plus the `cluster` commands of docs/cluster.md, the `kms` commands
 * (mirroring `aws kms`) and `keygen` of docs/encryption.md.
 *
 * Parsing, pagination merging and output formatting live in cli_args.c,
 * which is unit-tested without a server; this file only connects, calls
 * and prints. Exit statuses follow the AWS CLI v2: 0 success, 252 bad
 * command line, 254 service error, 255 connection failure or anything
 * else. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "buf.h"
#include "cairn.h"
#include "cli_args.h"
#include "envelope.h"
#include "mpjson.h"
#include "status.h"

/* What libcairn contacts when neither --endpoint nor CAIRN_ENDPOINT is
 * given (cairn.h); only used to name the endpoint in messages. */
#define DEFAULT_ENDPOINT "127.0.0.1:7400"

/* A listing that needs more calls than this is a server bug (a token that
 * never ends); stop rather than loop forever. */
#define MAX_PAGES 1000000

/* `cluster status` asks each member once with a short deadline, so that a
 * dead member costs seconds, not the ordinary call's 10 s with retries.
 * Computing a digest reads the whole store, hence the longer one. */
#define NODE_STATUS_TIMEOUT_MS 2000
#define NODE_DIGEST_TIMEOUT_MS 10000

/* `cluster add` returns once the new member has caught up and become a
 * voter, which may need a snapshot: longer than an ordinary call. */
#define ADD_MEMBER_TIMEOUT_MS 60000

/* Write @p b to @p f whole. */
static void put_buf(FILE *f, const struct buf *b)
{
    if (b->len > 0) {
        fwrite(b->data, 1, b->len, f);
    }
}

/* Print a message built by cli_* to stderr; "out of memory" if it could
 * not be built. */
static void put_err(const struct buf *b)
{
    if (b->oom) {
        fputs("\nout of memory\n", stderr);
        return;
    }
    put_buf(stderr, b);
}

/* "http://h:p/path,h2:p2" -> "h:p,h2:p2": libcairn wants host:port items,
 * while AWS users write endpoint URLs. NULL when out of memory. */
static char *normalize_endpoints(const char *spec)
{
    struct buf out;
    const char *p = spec;

    buf_init(&out);
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        const char *item_end = end != NULL ? end : p + strlen(p);
        const char *host = p;
        const char *scheme = strstr(p, "://");
        const char *slash;

        while (host < item_end && (*host == ' ' || *host == '\t')) {
            host++;
        }
        if (scheme != NULL && scheme < item_end) {
            host = scheme + 3;
        }
        slash = memchr(host, '/', (size_t)(item_end - host));
        if (slash != NULL) {
            item_end = slash;
        }
        while (item_end > host &&
               (item_end[-1] == ' ' || item_end[-1] == '\t')) {
            item_end--;
        }
        if (item_end > host) {
            if (out.len > 0) {
                buf_append_str(&out, ",");
            }
            buf_append(&out, host, (size_t)(item_end - host));
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    if (buf_terminate(&out) != 0) {
        buf_close(&out);
        return NULL;
    }
    if (out.data == NULL) {
        return strdup("");
    }
    return (char *)buf_steal(&out, NULL);
}

/* The width the table format fits into: the terminal's, else 80 as in the
 * AWS CLI when the output is not a terminal. */
static unsigned terminal_width(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 80;
}

/* One call: the JSON request becomes msgpack, the msgpack response
 * becomes ordered JSON. */
static int call(struct cairn_client *c,
                const char *operation,
                const json_t *req,
                json_t **resp,
                struct cairn_error *err)
{
    char *text;
    struct buf body;
    void *out = NULL;
    size_t out_len = 0;
    int rv;

    *resp = NULL;
    text = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "out of memory");
    }
    buf_init(&body);
    rv = mpjson_from_json(text, &body, err);
    free(text);
    if (rv != 0) {
        buf_close(&body);
        return rv;
    }
    rv = cairn_call(c, operation, body.data, body.len, &out, &out_len, err);
    buf_close(&body);
    if (rv != 0) {
        return rv;
    }
    rv = cli_response_from_mp(out, out_len, resp, err);
    free(out);
    return rv;
}

/* Follow NextToken and merge the pages, as the AWS CLI does. */
static int call_paged(struct cairn_client *c,
                      const struct cli_invocation *inv,
                      json_t **resp,
                      struct cairn_error *err)
{
    struct cli_pager pager;
    json_t *req_max = json_object_get(inv->request, "MaxResults");
    long long max_results =
        json_is_integer(req_max) ? (long long)json_integer_value(req_max) : 0;
    int rv;

    *resp = NULL;
    rv = cli_pager_init(&pager, inv->cmd, &inv->opt, max_results);
    for (long pages = 0; rv == 0 && !pager.done; pages++) {
        json_t *page;
        if (pages == MAX_PAGES) {
            rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                                 "the listing did not end after %d calls",
                                 MAX_PAGES);
            break;
        }
        rv = cli_pager_prepare(&pager, inv->request);
        if (rv != 0) {
            break;
        }
        rv = call(c, inv->cmd->operation, inv->request, &page, err);
        if (rv != 0) {
            break;
        }
        rv = cli_pager_add(&pager, page);
        json_decref(page);
        if (rv == CAIRN_INVALID_ARGUMENT) {
            cairn_error_set(err, rv, "SerializationException",
                            "the response has no %s list",
                            inv->cmd->result_key);
        }
    }
    if (rv == CAIRN_RESOURCE_EXHAUSTED && err->code != rv) {
        cairn_error_set(err, rv, NULL, "out of memory");
    }
    if (rv == 0) {
        *resp = cli_pager_result(&pager);
        if (*resp == NULL) {
            rv = cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                 "out of memory");
        }
    }
    cli_pager_close(&pager);
    return rv;
}

/* A failure that never got an answer from a server: the AWS CLI reports
 * these as connection errors (exit 255), not as service errors. */
static bool is_transport_error(const struct cairn_error *e)
{
    return e->type[0] == '\0' &&
           (e->code == CAIRN_UNAVAILABLE || e->code == CAIRN_DEADLINE_EXCEEDED);
}

static int report_call_error(const char *operation,
                             const char *endpoint,
                             const struct cairn_error *e)
{
    struct buf b;
    int code = CLI_EXIT_SERVICE;

    buf_init(&b);
    if (e->code == CAIRN_DEADLINE_EXCEEDED && e->type[0] == '\0') {
        buf_printf(&b, "\nRead timeout on endpoint URL: \"%s\"\n", endpoint);
        code = CLI_EXIT_FAILURE;
    } else if (is_transport_error(e)) {
        buf_printf(&b, "\nCould not connect to the endpoint URL: \"%s\"\n",
                   endpoint);
        code = CLI_EXIT_FAILURE;
    } else if (e->type[0] == '\0' && e->code == CAIRN_RESOURCE_EXHAUSTED &&
               strcmp(e->msg, "out of memory") == 0) {
        buf_append_str(&b, "\nout of memory\n");
        code = CLI_EXIT_FAILURE;
    } else {
        cli_render_error(&b, operation, e);
    }
    put_err(&b);
    buf_close(&b);
    return code;
}

static int report_parse_error(int rv, const struct cli_diag *d)
{
    struct buf b;

    buf_init(&b);
    if (d->usage) {
        cli_render_usage(&b);
        buf_printf(&b, "cairn: error: %s\n", d->msg);
    } else {
        buf_printf(&b, "\n%s\n", d->msg);
    }
    put_err(&b);
    buf_close(&b);
    return rv == CAIRN_INVALID_ARGUMENT ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
}

static int print_help(const struct cli_invocation *inv)
{
    struct buf b;
    int rv;

    buf_init(&b);
    if (inv->cmd == NULL && inv->cluster) {
        rv = cli_render_cluster_help(&b);
    } else if (inv->cmd == NULL && inv->kms) {
        rv = cli_render_kms_help(&b);
    } else {
        rv = cli_render_help(&b, inv->cmd);
    }
    if (rv == 0) {
        put_buf(stdout, &b);
    } else {
        put_err(&b);
    }
    buf_close(&b);
    return rv == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* Ask the node at @p address alone for its Cairn.NodeStatus: one attempt
 * within @p timeout_ms. */
static int node_status(const char *address,
                       unsigned timeout_ms,
                       const json_t *req,
                       json_t **resp,
                       struct cairn_error *err)
{
    struct cairn_client_options o;
    struct cairn_client *c = NULL;
    int rv;

    *resp = NULL;
    cairn_client_options_default(&o);
    o.endpoints = address;
    o.timeout_ms = timeout_ms;
    o.attempts = 1;
    rv = cairn_client_connect(&o, &c, err);
    if (rv == 0) {
        rv = call(c, "Cairn.NodeStatus", req, resp, err);
    }
    cairn_client_close(c);
    return rv;
}

/* Write @p b to stdout; the exit status. */
static int print_output(const struct buf *b, int rv)
{
    if (rv != 0) {
        fputs("\nout of memory\n", stderr);
        return CLI_EXIT_FAILURE;
    }
    put_buf(stdout, b);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* `cairn cluster status`: the member list from the contacted node, then
 * each member's own view from its API address. Members that do not answer
 * are shown as such; the exit status is 0 once the list was read. */
static int cluster_status(struct cairn_client *client,
                          const struct cli_invocation *inv,
                          const char *endpoint)
{
    bool digest = json_is_true(json_object_get(inv->request, "Digest"));
    unsigned timeout_ms = inv->opt.timeout_ms > 0 ? inv->opt.timeout_ms
                          : digest                ? NODE_DIGEST_TIMEOUT_MS
                                                  : NODE_STATUS_TIMEOUT_MS;
    struct cairn_error err;
    json_t *empty = NULL;
    json_t *members = NULL;
    json_t *status = NULL;
    json_t *node_req = NULL;
    json_t *m;
    struct buf out;
    size_t i;
    int code;
    int rv;

    cairn_error_clear(&err);
    buf_init(&out);
    empty = json_object();
    node_req = json_pack("{s:b}", "Digest", digest);
    if (empty == NULL || node_req == NULL) {
        code = print_output(&out, CAIRN_RESOURCE_EXHAUSTED);
        goto out;
    }
    rv = call(client, "Cairn.Members", empty, &members, &err);
    if (rv == 0) {
        rv = cli_status_from_members(members, &status, &err);
    }
    if (rv != 0) {
        code = report_call_error("Cairn.Members", endpoint, &err);
        goto out;
    }
    json_array_foreach(json_object_get(status, "Members"), i, m)
    {
        const char *api = json_string_value(json_object_get(m, "ApiAddress"));
        json_t *node = NULL;
        if (api == NULL || api[0] == '\0') {
            cairn_error_set(&err, CAIRN_UNAVAILABLE, NULL,
                            "no API address registered for this member");
            rv = cli_status_set_error(m, &err);
        } else if (node_status(api, timeout_ms, node_req, &node, &err) == 0) {
            rv = cli_status_set_node(m, node);
        } else {
            rv = cli_status_set_error(m, &err);
        }
        json_decref(node);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0) {
        rv = cli_render_status(status, inv->opt.output, &out);
    }
    code = print_output(&out, rv);
out:
    buf_close(&out);
    json_decref(status);
    json_decref(members);
    json_decref(node_req);
    json_decref(empty);
    return code;
}

/* `cairn keygen FILE`: a new root key file, written here, not by a
 * server. The key itself is wiped once its fingerprint is printed. */
static int keygen(const struct cli_invocation *inv)
{
    const char *path = json_string_value(json_object_get(inv->request, "File"));
    struct env_root_key rk;
    struct cairn_error err;
    json_t *result;
    struct buf out;
    int code;
    int rv;

    cairn_error_clear(&err);
    buf_init(&out);
    rv = env_root_key_create(path, &rk, &err);
    if (rv != 0) {
        err.code = rv; /* the returned status decides the exit status */
        code = cli_render_keygen_error(&out, path, &err);
        put_err(&out);
        buf_close(&out);
        return code;
    }
    result = cli_keygen_result(path, rk.fingerprint_hex);
    env_root_key_wipe(&rk);
    rv = result != NULL
             ? cli_render(result, inv->opt.output, cli_command_title(inv->cmd),
                          false, terminal_width(), &out)
             : CAIRN_RESOURCE_EXHAUSTED;
    code = print_output(&out, rv);
    json_decref(result);
    buf_close(&out);
    return code;
}

int main(int argc, char **argv)
{
    struct cli_invocation inv;
    struct cli_diag diag;
    struct cairn_client_options opts;
    struct cairn_client *client = NULL;
    struct cairn_error err;
    char *endpoints = NULL;
    const char *spec;
    json_t *resp = NULL;
    struct buf out;
    bool paged;
    int rv;
    int code;

    rv = cli_parse(argc, argv, &inv, &diag);
    if (rv != 0) {
        return report_parse_error(rv, &diag);
    }
    if (inv.opt.help) {
        code = print_help(&inv);
        cli_invocation_close(&inv);
        return code;
    }
    if (inv.cmd == cli_command_find("keygen")) {
        code = keygen(&inv);
        cli_invocation_close(&inv);
        return code;
    }

    cairn_error_clear(&err);
    cairn_client_options_default(&opts);
    spec =
        inv.opt.endpoint != NULL ? inv.opt.endpoint : getenv("CAIRN_ENDPOINT");
    if (spec != NULL && spec[0] != '\0') {
        endpoints = normalize_endpoints(spec);
        if (endpoints == NULL) {
            fputs("\nout of memory\n", stderr);
            cli_invocation_close(&inv);
            return CLI_EXIT_FAILURE;
        }
        if (endpoints[0] == '\0') {
            fprintf(stderr,
                    "\nBad value for --endpoint \"%s\": expected "
                    "host:port[,host:port...] or a URL\n",
                    spec);
            free(endpoints);
            cli_invocation_close(&inv);
            return CLI_EXIT_USAGE;
        }
        opts.endpoints = endpoints;
    }
    if (inv.opt.timeout_ms > 0) {
        opts.timeout_ms = inv.opt.timeout_ms;
    } else if (inv.cmd == cli_command_find("cluster add")) {
        opts.timeout_ms = ADD_MEMBER_TIMEOUT_MS;
    }
    opts.stale_reads = inv.opt.stale;

    rv = cairn_client_connect(&opts, &client, &err);
    if (rv != 0) {
        const char *shown = endpoints != NULL ? endpoints : DEFAULT_ENDPOINT;
        if (rv == CAIRN_INVALID_ARGUMENT) {
            fprintf(stderr, "\nBad value for --endpoint \"%s\": %s\n", shown,
                    err.msg);
            code = CLI_EXIT_USAGE;
        } else if (rv == CAIRN_UNAVAILABLE || rv == CAIRN_DEADLINE_EXCEEDED) {
            fprintf(stderr, "\nCould not connect to the endpoint URL: \"%s\"\n",
                    shown);
            code = CLI_EXIT_FAILURE;
        } else {
            fprintf(stderr, "\n%s\n",
                    err.msg[0] != '\0' ? err.msg : cairn_status_name(rv));
            code = CLI_EXIT_FAILURE;
        }
        free(endpoints);
        cli_invocation_close(&inv);
        return code;
    }

    if (inv.cmd == cli_command_find("cluster status")) {
        code = cluster_status(client, &inv,
                              endpoints != NULL ? endpoints : DEFAULT_ENDPOINT);
        goto out;
    }

    paged = inv.cmd->result_key != NULL && inv.opt.paginate;
    if (paged) {
        rv = call_paged(client, &inv, &resp, &err);
    } else {
        rv = call(client, inv.cmd->operation, inv.request, &resp, &err);
    }
    if (rv != 0) {
        code = report_call_error(
            cli_command_title(inv.cmd),
            endpoints != NULL ? endpoints : DEFAULT_ENDPOINT, &err);
        goto out;
    }

    buf_init(&out);
    rv = cli_render(resp, inv.opt.output, cli_command_title(inv.cmd), paged,
                    terminal_width(), &out);
    code = print_output(&out, rv);
    buf_close(&out);
out:
    json_decref(resp);
    cairn_client_close(client);
    free(endpoints);
    cli_invocation_close(&inv);
    return code;
}
