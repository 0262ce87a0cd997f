/* cairnd: the Cairn server. The composition root: it creates the store, the
 * Raft node, the service and the network server, in that order, runs the
 * loop, and tears them down in reverse on SIGINT or SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cairn.h"
#include "envelope.h"
#include "log.h"
#include "mp.h"
#include "node.h"
#include "server.h"
#include "service.h"
#include "store.h"

#define CAIRND_VERSION "0.1.0"

struct config
{
    char data_dir[3900];
    char api[300]; /* as given, for the member table */
    char api_host[256];
    int api_port;
    char raft_address[300];
    uint64_t node_id;
    char *initial_cluster; /* "id=host:port,..." or NULL */
    char join[300];        /* API address of a member, or "" */
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    long long snapshot_log_mb; /* -1: the default */
    unsigned election_timeout_ms;
    char root_key_file[4096];     /* "" : <data-dir>/root.key */
    char previous_root_key[4096]; /* during a root key rotation, or "" */
};

/* Joining a running cluster: a thread asks a member to add this node,
 * with the blocking client, while the loop runs Raft (the leader must
 * reach this node to catch it up before it can vote). */
struct joiner
{
    uv_thread_t thread;
    uv_async_t done;
    bool running;
    int status;
    struct cairn_error err;
    char endpoint[300];
    uint64_t id;
    char raft_address[300];
    char api_address[300];
};

struct daemon
{
    uv_loop_t *loop;
    struct config cfg;
    struct store *store;
    struct node *node;
    struct service *svc;
    struct server *server;
    struct joiner joiner;
    struct env_root_key root, previous;
    bool has_root, has_previous;
    char created_root_key[4096]; /* created by this start, or "" */
    uv_signal_t sigint, sigterm;
    uv_timer_t watch;
    bool was_leader;
    bool stopping;
    int pending_closes;
    int exit_code;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairnd [options]\n"
            "\n"
            "Runs a Cairn node. With no options: a single-node cluster with "
            "data\nin ./cairn-data, the client API on 127.0.0.1:7400 and "
            "Raft on\n127.0.0.1:7401.\n"
            "\n"
            "  --data-dir DIR      data directory (./cairn-data)\n"
            "  --api HOST:PORT     client API address (127.0.0.1:7400)\n"
            "  --raft HOST:PORT    Raft address (127.0.0.1:7401)\n"
            "  --node-id N         Raft server id (1)\n"
            "  --initial-cluster ID=HOST:PORT,...\n"
            "                      the first members and their Raft "
            "addresses,\n"
            "                      this node among them (a fresh data "
            "directory\n"
            "                      only; default: a cluster of this node "
            "alone)\n"
            "  --join HOST:PORT    join the running cluster that has a "
            "member\n"
            "                      with this client API address (a fresh "
            "data\n"
            "                      directory only)\n"
            "  --config FILE       read options from FILE: one "
            "\"name = value\" per\n"
            "                      line with the long option names; "
            "flags win\n"
            "  --snapshot-threshold N   Raft entries between snapshots "
            "(65536)\n"
            "  --snapshot-log-mb N      also snapshot once the entries "
            "since the last\n"
            "                      hold N MiB (64; 0: no limit; node i "
            "waits\n"
            "                      1 + ((i-1) mod 4)/4 times as long)\n"
            "  --snapshot-trailing N    entries kept after a snapshot "
            "(2048)\n"
            "  --election-timeout MS    Raft election timeout (1000)\n"
            "  --root-key-file FILE     the cluster's root key for "
            "SecureString\n"
            "                      (default DATA-DIR/root.key, created on "
            "first\n"
            "                      start; `cairn keygen FILE` makes one)\n"
            "  --previous-root-key-file FILE   the old root key during a "
            "root\n"
            "                      key rotation (docs/encryption.md)\n"
            "  --log-level LEVEL   debug, info, warn or error (info)\n"
            "  --version           print the version\n"
            "  --help              this text\n");
}

static int split_host_port(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long p;

    if (colon == NULL || colon == s || (size_t)(colon - s) >= cap) {
        return -1;
    }
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535 || colon[1] == '\0') {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

static const struct option longopts[] = {
    {"data-dir", required_argument, NULL, 'd'},
    {"api", required_argument, NULL, 'a'},
    {"raft", required_argument, NULL, 'r'},
    {"node-id", required_argument, NULL, 'n'},
    {"log-level", required_argument, NULL, 'l'},
    {"initial-cluster", required_argument, NULL, 'i'},
    {"join", required_argument, NULL, 'j'},
    {"config", required_argument, NULL, 'c'},
    {"snapshot-threshold", required_argument, NULL, 's'},
    {"snapshot-trailing", required_argument, NULL, 't'},
    {"snapshot-log-mb", required_argument, NULL, 'm'},
    {"election-timeout", required_argument, NULL, 'e'},
    {"root-key-file", required_argument, NULL, 'k'},
    {"previous-root-key-file", required_argument, NULL, 'p'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_uint(const char *name,
                      const char *v,
                      unsigned long long min,
                      unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    *out = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || *out < min ||
        *out > max) {
        fprintf(stderr, "cairnd: bad --%s %s (%llu to %llu)\n", name, v, min,
                max);
        return 2;
    }
    return 0;
}

static int copy_opt(const char *name, const char *v, char *dst, size_t cap)
{
    if (strlen(v) >= cap) {
        fprintf(stderr, "cairnd: --%s is too long\n", name);
        return 2;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

/* Apply one option. Returns 0, or 2 after printing why. */
static int apply_opt(struct config *cfg, int c, const char *v)
{
    char host[256];
    int port;
    unsigned long long u;

    switch (c) {
        case 'd':
            return copy_opt("data-dir", v, cfg->data_dir,
                            sizeof(cfg->data_dir));
        case 'a':
            if (split_host_port(v, host, sizeof(host), &port) != 0) {
                fprintf(stderr, "cairnd: bad --api address %s\n", v);
                return 2;
            }
            return copy_opt("api", v, cfg->api, sizeof(cfg->api));
        case 'r':
            if (split_host_port(v, host, sizeof(host), &port) != 0) {
                fprintf(stderr, "cairnd: bad --raft address %s\n", v);
                return 2;
            }
            return copy_opt("raft", v, cfg->raft_address,
                            sizeof(cfg->raft_address));
        case 'n':
            if (parse_uint("node-id", v, 1, UINT64_MAX, &u) != 0) {
                return 2;
            }
            cfg->node_id = u;
            return 0;
        case 'l':
            if (strcmp(v, "debug") == 0) {
                log_set_level(LOG_DEBUG);
            } else if (strcmp(v, "info") == 0) {
                log_set_level(LOG_INFO);
            } else if (strcmp(v, "warn") == 0) {
                log_set_level(LOG_WARN);
            } else if (strcmp(v, "error") == 0) {
                log_set_level(LOG_ERROR);
            } else {
                fprintf(stderr, "cairnd: bad --log-level %s\n", v);
                return 2;
            }
            return 0;
        case 'i':
            free(cfg->initial_cluster);
            cfg->initial_cluster = strdup(v);
            if (cfg->initial_cluster == NULL) {
                fprintf(stderr, "cairnd: out of memory\n");
                return 2;
            }
            return 0;
        case 'j':
            if (split_host_port(v, host, sizeof(host), &port) != 0) {
                fprintf(stderr, "cairnd: bad --join address %s\n", v);
                return 2;
            }
            return copy_opt("join", v, cfg->join, sizeof(cfg->join));
        case 's':
            if (parse_uint("snapshot-threshold", v, 1, 1u << 30, &u) != 0) {
                return 2;
            }
            cfg->snapshot_threshold = (unsigned)u;
            return 0;
        case 't':
            if (parse_uint("snapshot-trailing", v, 0, 1u << 30, &u) != 0) {
                return 2;
            }
            cfg->snapshot_trailing = (unsigned)u;
            return 0;
        case 'k':
            return copy_opt("root-key-file", v, cfg->root_key_file,
                            sizeof(cfg->root_key_file));
        case 'p':
            return copy_opt("previous-root-key-file", v, cfg->previous_root_key,
                            sizeof(cfg->previous_root_key));
        case 'm':
            if (parse_uint("snapshot-log-mb", v, 0, 1u << 20, &u) != 0) {
                return 2;
            }
            cfg->snapshot_log_mb = (long long)u;
            return 0;
        case 'e':
            if (parse_uint("election-timeout", v, 200, 60000, &u) != 0) {
                return 2;
            }
            cfg->election_timeout_ms = (unsigned)u;
            return 0;
        default:
            return 2;
    }
}

static char *trim(char *p)
{
    char *e;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    e = p + strlen(p);
    while (e > p &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) {
        *--e = '\0';
    }
    return p;
}

/* Options from a file: "name = value" per line, '#' comments. */
static int read_config(struct config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    unsigned lineno = 0;
    int rv = 0;

    if (f == NULL) {
        fprintf(stderr, "cairnd: cannot read --config %s: %s\n", path,
                strerror(errno));
        return 2;
    }
    while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *hash = strchr(line, '#');
        char *eq, *name, *value;
        const struct option *o;

        lineno++;
        if (hash != NULL) {
            *hash = '\0';
        }
        name = trim(line);
        if (*name == '\0') {
            continue;
        }
        eq = strchr(name, '=');
        if (eq == NULL) {
            fprintf(stderr, "cairnd: %s:%u: expected name = value\n", path,
                    lineno);
            rv = 2;
            break;
        }
        *eq = '\0';
        name = trim(name);
        value = trim(eq + 1);
        for (o = longopts; o->name != NULL; o++) {
            if (strcmp(o->name, name) == 0 && o->has_arg == required_argument &&
                o->val != 'c') {
                break;
            }
        }
        if (o->name == NULL) {
            fprintf(stderr, "cairnd: %s:%u: unknown option %s\n", path, lineno,
                    name);
            rv = 2;
            break;
        }
        rv = apply_opt(cfg, o->val, value);
    }
    fclose(f);
    return rv;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
    int c;
    int rv;

    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./cairn-data");
    snprintf(cfg->api, sizeof(cfg->api), "127.0.0.1:7400");
    snprintf(cfg->raft_address, sizeof(cfg->raft_address), "127.0.0.1:7401");
    cfg->node_id = 1;
    cfg->snapshot_log_mb = -1;
    /* A config file first, whatever its place, so that flags win. */
    for (int i = 1; i < argc; i++) {
        const char *file = NULL;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            file = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
        if (file != NULL && (rv = read_config(cfg, file)) != 0) {
            return rv;
        }
    }
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
            case 'c':
                break;
            case 'V':
                printf("cairnd %s\n", CAIRND_VERSION);
                exit(0);
            case 'h':
                usage(stdout);
                exit(0);
            case '?':
                usage(stderr);
                return 2;
            default:
                if ((rv = apply_opt(cfg, c, optarg)) != 0) {
                    return rv;
                }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cairnd: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (cfg->join[0] != '\0' && cfg->initial_cluster != NULL) {
        fprintf(stderr,
                "cairnd: --join and --initial-cluster exclude each "
                "other\n");
        return 2;
    }
    if (split_host_port(cfg->api, cfg->api_host, sizeof(cfg->api_host),
                        &cfg->api_port) != 0) {
        fprintf(stderr, "cairnd: bad --api address %s\n", cfg->api);
        return 2;
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/* ---- shutdown --------------------------------------------------------- */

static void closed_one(struct daemon *d)
{
    if (--d->pending_closes > 0) {
        return;
    }
    service_destroy(d->svc);
    d->svc = NULL;
    store_close(d->store);
    d->store = NULL;
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->watch, NULL);
}

static void on_server_closed(void *data)
{
    struct daemon *d = data;
    d->server = NULL;
    log_info("client API closed");
    closed_one(d);
}

static void on_service_closed(void *data)
{
    struct daemon *d = data;
    log_info("peer connections closed");
    closed_one(d);
}

static void on_node_closed(struct node *n, void *data)
{
    struct daemon *d = data;
    (void)n;
    d->node = NULL;
    log_info("raft node stopped");
    closed_one(d);
}

static void shutdown_daemon(struct daemon *d)
{
    if (d->stopping) {
        return;
    }
    d->stopping = true;
    log_info("shutting down");
    if (d->joiner.running) {
        /* The join thread may block for minutes: do not wait for it. */
        uv_unref((uv_handle_t *)&d->joiner.done);
    }
    uv_timer_stop(&d->watch);
    d->pending_closes = 3;
    /* The server first, so no new calls arrive; then the service's peer
     * connections and the node, which fail what is still pending so that
     * every stream completes. */
    if (d->server != NULL) {
        server_close(d->server, on_server_closed, d);
    } else {
        d->pending_closes--;
    }
    if (d->svc != NULL) {
        service_close(d->svc, on_service_closed, d);
    } else {
        d->pending_closes--;
    }
    if (d->node != NULL) {
        node_close(d->node, on_node_closed, d);
    } else {
        d->pending_closes--;
    }
    if (d->pending_closes == 0) {
        d->pending_closes = 1;
        closed_one(d);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    log_info("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown_daemon(d);
}

/* Report leadership changes: one line per lifecycle event. */
static void on_watch(uv_timer_t *t)
{
    struct daemon *d = t->data;
    struct node_status st;
    bool leader = node_is_leader(d->node);

    if (leader == d->was_leader) {
        return;
    }
    d->was_leader = leader;
    node_get_status(d->node, &st);
    if (leader) {
        log_info("node %llu is the leader (term %llu); ready",
                 (unsigned long long)st.id, (unsigned long long)st.term);
    } else {
        log_info("node %llu is no longer the leader (now %s)",
                 (unsigned long long)st.id, st.role);
    }
}

/* ---- joining ---------------------------------------------------------- */

static void join_thread(void *arg)
{
    struct joiner *j = arg;
    struct cairn_client_options o;
    struct cairn_client *c = NULL;
    struct buf req;
    msgpack_packer pk;
    void *resp = NULL;
    size_t resp_len = 0;

    cairn_client_options_default(&o);
    o.endpoints = j->endpoint;
    /* Promotion waits for this node to catch up, by snapshot if needed. */
    o.timeout_ms = 300000;
    o.attempts = 1000;
    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 3);
    mp_pack_kv_u64(&pk, "Id", j->id);
    mp_pack_kv_cstr(&pk, "RaftAddress", j->raft_address);
    mp_pack_kv_cstr(&pk, "ApiAddress", j->api_address);
    if (req.oom) {
        j->status = cairn_error_set(&j->err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                                    "out of memory");
    } else {
        j->status = cairn_client_connect(&o, &c, &j->err);
    }
    if (j->status == 0) {
        j->status = cairn_call(c, "Cairn.AddMember", req.data, req.len, &resp,
                               &resp_len, &j->err);
    }
    free(resp);
    cairn_client_close(c);
    buf_close(&req);
    uv_async_send(&j->done);
}

static void on_joined(uv_async_t *h)
{
    struct daemon *d = h->data;
    struct joiner *j = &d->joiner;

    uv_thread_join(&j->thread);
    j->running = false;
    uv_close((uv_handle_t *)&j->done, NULL);
    if (j->status != 0) {
        log_error("cannot join the cluster through %s: %s", j->endpoint,
                  j->err.msg);
        d->exit_code = 1;
        shutdown_daemon(d);
        return;
    }
    log_info("joined the cluster through %s as node %llu", j->endpoint,
             (unsigned long long)j->id);
}

static int start_join(struct daemon *d)
{
    struct joiner *j = &d->joiner;

    snprintf(j->endpoint, sizeof(j->endpoint), "%s", d->cfg.join);
    snprintf(j->raft_address, sizeof(j->raft_address), "%s",
             d->cfg.raft_address);
    snprintf(j->api_address, sizeof(j->api_address), "%s", d->cfg.api);
    j->id = d->cfg.node_id;
    uv_async_init(d->loop, &j->done, on_joined);
    j->done.data = d;
    if (uv_thread_create(&j->thread, join_thread, j) != 0) {
        uv_close((uv_handle_t *)&j->done, NULL);
        log_error("cannot start the join thread");
        return 1;
    }
    j->running = true;
    log_info("joining the cluster through %s", j->endpoint);
    return 0;
}

/* ---- root keys -------------------------------------------------------- */

/* The root key: the file given, or for a single node on its defaults one
 * in the data directory, created on first start. A multi-node cluster
 * needs the same file on every node: without --root-key-file it runs
 * without SecureString rather than with a key of its own. */
static int load_root_keys(struct daemon *d)
{
    struct cairn_error err;
    char path[4096];
    bool cluster =
        d->cfg.join[0] != '\0' || (d->cfg.initial_cluster != NULL &&
                                   strchr(d->cfg.initial_cluster, ',') != NULL);
    int rv;

    if (d->cfg.root_key_file[0] != '\0') {
        snprintf(path, sizeof(path), "%s", d->cfg.root_key_file);
    } else if (cluster) {
        log_warn(
            "no --root-key-file: SecureString parameters are refused "
            "(every node of a cluster needs the same root key; "
            "`cairn keygen FILE` makes one)");
        return 0;
    } else {
        snprintf(path, sizeof(path), "%s/root.key", d->cfg.data_dir);
        rv = env_root_key_load(path, &d->root, &err);
        if (rv == CAIRN_NOT_FOUND) {
            rv = env_root_key_create(path, &d->root, &err);
            if (rv == 0) {
                snprintf(d->created_root_key, sizeof(d->created_root_key), "%s",
                         path);
                log_info(
                    "created a root key in %s (fingerprint %s): keep "
                    "it safe, SecureString values cannot be read "
                    "without it",
                    path, d->root.fingerprint_hex);
            }
        }
        if (rv != 0) {
            log_error("root key %s: %s", path, err.msg);
            return 1;
        }
        d->has_root = true;
        return 0;
    }
    rv = env_root_key_load(path, &d->root, &err);
    if (rv != 0) {
        log_error("root key %s: %s", path, err.msg);
        return 1;
    }
    d->has_root = true;
    log_info("root key %s loaded (fingerprint %s)", path,
             d->root.fingerprint_hex);
    if (d->cfg.previous_root_key[0] != '\0') {
        rv = env_root_key_load(d->cfg.previous_root_key, &d->previous, &err);
        if (rv != 0) {
            log_error("previous root key %s: %s", d->cfg.previous_root_key,
                      err.msg);
            return 1;
        }
        d->has_previous = true;
        log_info("previous root key %s loaded (fingerprint %s)",
                 d->cfg.previous_root_key, d->previous.fingerprint_hex);
    }
    return 0;
}

/* ---- start ------------------------------------------------------------ */

static int start(struct daemon *d)
{
    struct store_options so;
    struct node_options no;
    struct server_options sv;
    struct service_options svo;
    struct cairn_error err;
    char store_dir[4096], raft_dir[4096];
    struct node_status st;
    int rv;

    if (mkdir_p(d->cfg.data_dir) != 0) {
        log_error("cannot create data directory %s: %s", d->cfg.data_dir,
                  strerror(errno));
        return 1;
    }
    snprintf(store_dir, sizeof(store_dir), "%s/store", d->cfg.data_dir);
    snprintf(raft_dir, sizeof(raft_dir), "%s/raft", d->cfg.data_dir);
    if (mkdir_p(store_dir) != 0 || mkdir_p(raft_dir) != 0) {
        log_error("cannot create %s or %s: %s", store_dir, raft_dir,
                  strerror(errno));
        return 1;
    }

    store_options_default(&so);
    /* The Raft log is the durable record: on restart every entry after
     * the store's applied index is applied again (DESIGN.md section 2). */
    so.no_sync = true;
    rv = store_open(store_dir, &so, &d->store, &err);
    if (rv != 0) {
        log_error("cannot open the store: %s", err.msg);
        return 1;
    }
    log_info("store opened in %s", store_dir);

    node_options_default(&no);
    no.id = d->cfg.node_id;
    no.raft_address = d->cfg.raft_address;
    no.dir = raft_dir;
    no.store = d->store;
    no.initial_cluster = d->cfg.initial_cluster;
    no.join = d->cfg.join[0] != '\0';
    if (d->cfg.snapshot_log_mb >= 0) {
        no.snapshot_log_bytes = (uint64_t)d->cfg.snapshot_log_mb << 20;
    }
    if (d->cfg.snapshot_threshold != 0) {
        no.snapshot_threshold = d->cfg.snapshot_threshold;
        no.snapshot_trailing = d->cfg.snapshot_trailing;
    }
    if (d->cfg.election_timeout_ms != 0) {
        no.election_timeout_ms = d->cfg.election_timeout_ms;
        no.heartbeat_timeout_ms = d->cfg.election_timeout_ms / 10;
    }
    rv = node_create(d->loop, &no, &d->node, &err);
    if (rv == 0) {
        rv = node_start(d->node, &err);
    }
    if (rv != 0) {
        log_error("cannot start the raft node: %s", err.msg);
        return 1;
    }
    node_get_status(d->node, &st);
    log_info("raft node %llu started on %s (applied index %llu)",
             (unsigned long long)d->cfg.node_id, d->cfg.raft_address,
             (unsigned long long)st.applied_index);

    rv = load_root_keys(d);
    if (rv != 0) {
        return rv;
    }
    service_options_default(&svo);
    svo.root_key = d->has_root ? &d->root : NULL;
    svo.previous_root_key = d->has_previous ? &d->previous : NULL;
    svo.id = d->cfg.node_id;
    svo.raft_address = d->cfg.raft_address;
    svo.api_address = d->cfg.api;
    rv = service_create(d->loop, d->node, d->store, &svo, &d->svc, &err);
    if (rv != 0) {
        log_error("cannot start the service: %s", err.msg);
        if (d->created_root_key[0] != '\0') {
            /* A key made by this start wraps nothing: do not leave it. */
            unlink(d->created_root_key);
        }
        return 1;
    }
    server_options_default(&sv);
    sv.host = d->cfg.api_host;
    sv.port = d->cfg.api_port;
    rv = server_start(d->loop, d->svc, &sv, &d->server, &err);
    if (rv != 0) {
        log_error("cannot serve the client API on %s:%d: %s", d->cfg.api_host,
                  d->cfg.api_port, err.msg);
        return 1;
    }
    log_info("client API listening on %s:%d", d->cfg.api_host,
             server_port(d->server));
    if (d->cfg.join[0] != '\0') {
        struct node_member m;
        if (node_members(d->node, &m, 1) > 0) {
            log_info(
                "already a member (the log holds the configuration): "
                "--join %s ignored",
                d->cfg.join);
        } else if (start_join(d) != 0) {
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon d;
    int rv;

    memset(&d, 0, sizeof(d));
    rv = parse_args(argc, argv, &d.cfg);
    if (rv != 0) {
        free(d.cfg.initial_cluster);
        return rv;
    }
    signal(SIGPIPE, SIG_IGN);
    d.loop = uv_default_loop();
    log_info("cairnd %s starting (node %llu, data in %s)", CAIRND_VERSION,
             (unsigned long long)d.cfg.node_id, d.cfg.data_dir);

    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sigterm);
    uv_timer_init(d.loop, &d.watch);
    d.sigint.data = &d;
    d.sigterm.data = &d;
    d.watch.data = &d;
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);

    if (start(&d) != 0) {
        d.exit_code = 1;
        shutdown_daemon(&d);
    } else {
        uv_timer_start(&d.watch, on_watch, 10, 50);
    }
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    free(d.cfg.initial_cluster);
    env_root_key_wipe(&d.root);
    env_root_key_wipe(&d.previous);
    log_info("stopped");
    return d.exit_code;
}
