/* cairn-sample: load a few sample parameters into a local store and list
 * them back, driving the storage layer directly.
 *
 * This stands in for the server and CLI until they exist: it applies
 * PutParameter commands through sm_apply exactly as the Raft FSM will, at
 * the next index after the store's applied index, and reads them back with
 * GetParametersByPath, following NextToken. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "mp.h"
#include "mpjson.h"
#include "query.h"
#include "sm.h"
#include "status.h"
#include "store.h"

#define DEFAULT_DIR "./cairn-data"
#define SAMPLE_USER "arn:aws:iam::000000000000:user/cairn-sample"
#define LIST_PATH "/my-app/"
/* A listing longer than this is a bug (a token that never ends). */
#define MAX_PAGES 10000

struct sample
{
    const char *name;
    const char *type;
    const char *value;
    const char *description;
};

static const struct sample samples[] = {
    {"/my-app/dev/db-url", "String", "postgres://db.dev.internal:5432/app",
     "Database URL for dev"},
    {"/my-app/dev/db-user", "String", "app_dev", "Database user for dev"},
    {"/my-app/prod/db-url", "String", "postgres://db.prod.internal:5432/app",
     "Database URL for prod"},
    {"/my-app/prod/feature-flags", "StringList",
     "new-checkout,dark-mode,beta-search", "Features enabled in prod"},
    {"/my-app/dev/log-level", "String", "debug", "Log level for dev"},
};

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--data-dir DIR]\n"
            "Loads sample parameters under " LIST_PATH
            " into a local Cairn store\n"
            "(default directory " DEFAULT_DIR
            ", created if missing) and lists them.\n",
            prog);
}

/* mkdir -p: create @p path and its missing parents. */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    int rv = 0;

    if (p == NULL) {
        return ENOMEM;
    }
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                rv = errno;
                break;
            }
            *q = c;
            if (c == '\0') {
                break;
            }
        }
    }
    free(p);
    return rv;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start a command {"op", "ts", "user", "req": <map of n_fields>}; the
 * caller packs the request's fields next. */
static void pack_command_head(msgpack_packer *pk,
                              const char *op,
                              uint32_t n_fields)
{
    msgpack_pack_map(pk, 4);
    mp_pack_kv_cstr(pk, "op", op);
    mp_pack_kv_i64(pk, "ts", now_ms());
    mp_pack_kv_cstr(pk, "user", SAMPLE_USER);
    mp_pack_cstr(pk, "req");
    msgpack_pack_map(pk, n_fields);
}

/* Apply the command in @p cmd at the next Raft index. Returns 0 when it was
 * applied and succeeded; prints the error otherwise. On success the
 * response body is printed as JSON when @p show is true. */
static int apply_next(struct store *s,
                      const char *what,
                      struct buf *cmd,
                      bool show)
{
    const struct sm_outcome *outcome = NULL;
    struct cairn_error err;
    uint64_t index;
    char *json = NULL;
    int rv;

    if (cmd->oom) {
        fprintf(stderr, "error: %s: out of memory encoding the command\n",
                what);
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    rv = store_applied_index(s, &index, &err);
    if (rv != 0) {
        fprintf(stderr, "error: reading the applied index: %s: %s\n",
                cairn_status_name(rv), err.msg);
        return rv;
    }
    index++;
    rv = sm_apply(s, index, cmd->data, cmd->len, &outcome);
    if (rv != 0) {
        fprintf(stderr, "error: %s at index %llu: local fault %s\n", what,
                (unsigned long long)index, cairn_status_name(rv));
        return rv;
    }
    if (outcome->err.code != CAIRN_OK) {
        fprintf(stderr, "error: %s at index %llu: %s %s: %s\n", what,
                (unsigned long long)index, cairn_status_name(outcome->err.code),
                outcome->err.type, outcome->err.msg);
        return outcome->err.code;
    }
    if (show && outcome->body != NULL &&
        mpjson_to_json(outcome->body, outcome->body_len, &json, 0, &err) == 0) {
        printf("  %-28s index %-6llu -> %s\n", what, (unsigned long long)index,
               json);
        free(json);
    }
    return 0;
}

/* A new store gets an Init command first, with a random NextToken key, as
 * the server will do when it bootstraps a cluster. */
static int init_if_new(struct store *s)
{
    uint8_t key[32];
    struct cairn_error err;
    msgpack_packer pk;
    struct buf cmd;
    uint64_t index;
    int rv;

    rv = store_applied_index(s, &index, &err);
    if (rv != 0) {
        fprintf(stderr, "error: reading the applied index: %s: %s\n",
                cairn_status_name(rv), err.msg);
        return rv;
    }
    if (index != 0) {
        return 0;
    }
    if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
        fprintf(stderr, "error: getrandom: %s\n", strerror(errno));
        return CAIRN_INTERNAL;
    }
    buf_init(&cmd);
    mp_packer_init(&pk, &cmd);
    pack_command_head(&pk, "Init", 1);
    mp_pack_cstr(&pk, "TokenKey");
    mp_pack_bin(&pk, key, sizeof key);
    rv = apply_next(s, "Init", &cmd, false);
    buf_close(&cmd);
    return rv;
}

static int put_samples(struct store *s)
{
    msgpack_packer pk;
    struct buf cmd;
    int failed = 0;

    printf("Applying %zu PutParameter commands:\n",
           sizeof samples / sizeof samples[0]);
    buf_init(&cmd);
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const struct sample *p = &samples[i];
        buf_reset(&cmd);
        mp_packer_init(&pk, &cmd);
        pack_command_head(&pk, "PutParameter", 5);
        mp_pack_kv_cstr(&pk, "Name", p->name);
        mp_pack_kv_cstr(&pk, "Value", p->value);
        mp_pack_kv_cstr(&pk, "Type", p->type);
        mp_pack_kv_cstr(&pk, "Description", p->description);
        /* Overwrite makes re-runs add a version instead of failing. */
        mp_pack_kv_bool(&pk, "Overwrite", true);
        if (apply_next(s, p->name, &cmd, true) != 0) {
            failed++;
        }
    }
    buf_close(&cmd);
    return failed;
}

/* Print each element of the Parameters array of a response as JSON. */
static int print_parameters(const msgpack_object *root, size_t *count)
{
    const msgpack_object_array *params = NULL;
    struct cairn_error err;
    msgpack_packer pk;
    struct buf one;
    int rv;

    if (mp_get_array(root, "Parameters", &params, &err) < 0) {
        fprintf(stderr, "error: bad response: %s\n", err.msg);
        return CAIRN_INTERNAL;
    }
    if (params == NULL) {
        return 0;
    }
    buf_init(&one);
    for (uint32_t i = 0; i < params->size; i++) {
        char *json = NULL;
        buf_reset(&one);
        mp_packer_init(&pk, &one);
        msgpack_pack_object(&pk, params->ptr[i]);
        if (one.oom) {
            rv = CAIRN_RESOURCE_EXHAUSTED;
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        rv = mpjson_to_json(one.data, one.len, &json, 0, &err);
        if (rv != 0) {
            fprintf(stderr, "error: rendering a parameter: %s\n", err.msg);
            goto out;
        }
        printf("  %s\n", json);
        free(json);
        (*count)++;
    }
    rv = 0;
out:
    buf_close(&one);
    return rv;
}

static int list_samples(struct store *s)
{
    struct cairn_error err;
    struct buf req, resp;
    char *token = NULL;
    size_t count = 0;
    int pages = 0;
    int rv = 0;

    printf("GetParametersByPath " LIST_PATH " (recursive):\n");
    buf_init(&req);
    buf_init(&resp);
    do {
        struct mp_doc doc;
        struct mp_str next;
        msgpack_packer pk;
        int has_next;

        buf_reset(&req);
        buf_reset(&resp);
        mp_packer_init(&pk, &req);
        msgpack_pack_map(&pk, token != NULL ? 3 : 2);
        mp_pack_kv_cstr(&pk, "Path", LIST_PATH);
        mp_pack_kv_bool(&pk, "Recursive", true);
        if (token != NULL) {
            mp_pack_kv_cstr(&pk, "NextToken", token);
        }
        free(token);
        token = NULL;
        if (req.oom) {
            fprintf(stderr, "error: out of memory\n");
            rv = CAIRN_RESOURCE_EXHAUSTED;
            break;
        }
        rv =
            query_run(s, "GetParametersByPath", req.data, req.len, &resp, &err);
        if (rv != 0) {
            fprintf(stderr, "error: GetParametersByPath: %s %s: %s\n",
                    cairn_status_name(rv), err.type, err.msg);
            break;
        }
        rv = mp_doc_parse(&doc, resp.data, resp.len, &err);
        if (rv != 0) {
            fprintf(stderr, "error: bad response: %s\n", err.msg);
            break;
        }
        rv = print_parameters(&doc.root, &count);
        has_next =
            rv == 0 ? mp_get_str(&doc.root, "NextToken", &next, &err) : 0;
        if (has_next > 0 && next.n > 0) {
            token = strndup(next.p, next.n);
            if (token == NULL) {
                rv = CAIRN_RESOURCE_EXHAUSTED;
            }
        } else if (has_next < 0) {
            fprintf(stderr, "error: bad NextToken: %s\n", err.msg);
            rv = CAIRN_INTERNAL;
        }
        mp_doc_close(&doc);
        if (++pages > MAX_PAGES && token != NULL) {
            fprintf(stderr, "error: more than %d pages; giving up\n",
                    MAX_PAGES);
            rv = CAIRN_INTERNAL;
        }
    } while (rv == 0 && token != NULL);
    free(token);
    buf_close(&req);
    buf_close(&resp);
    if (rv == 0) {
        printf("%zu parameters in %d page%s.\n", count, pages,
               pages == 1 ? "" : "s");
    }
    return rv;
}

int main(int argc, char **argv)
{
    const char *dir = DEFAULT_DIR;
    struct store_options opts;
    struct cairn_error err;
    struct store *s = NULL;
    uint64_t index = 0;
    int failed;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strncmp(argv[i], "--data-dir=", 11) == 0) {
            dir = argv[i] + 11;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout, argv[0]);
            return 0;
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (dir[0] == '\0') {
        fprintf(stderr, "error: empty --data-dir\n");
        return 2;
    }

    rv = make_dirs(dir);
    if (rv != 0) {
        fprintf(stderr, "error: cannot create %s: %s\n", dir, strerror(rv));
        return 1;
    }
    store_options_default(&opts);
    rv = store_open(dir, &opts, &s, &err);
    if (rv != 0) {
        fprintf(stderr, "error: cannot open the store in %s: %s: %s\n", dir,
                cairn_status_name(rv), err.msg);
        return 1;
    }
    printf("Store %s\n", dir);

    failed = init_if_new(s) != 0 ? 1 : put_samples(s);
    /* List even after a failed put: it shows what the store holds. */
    rv = list_samples(s);
    if (store_applied_index(s, &index, &err) == 0) {
        printf("Applied index is now %llu.\n", (unsigned long long)index);
    }
    store_close(s);
    if (failed != 0) {
        fprintf(stderr, "cairn-sample: %d command(s) failed\n", failed);
    }
    if (rv != 0) {
        fprintf(stderr, "cairn-sample: listing failed\n");
    }
    return failed != 0 || rv != 0 ? 1 : 0;
}
