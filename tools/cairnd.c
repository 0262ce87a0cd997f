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
#include <uv.h>

#include "log.h"
#include "node.h"
#include "server.h"
#include "service.h"
#include "store.h"

#define CAIRND_VERSION "0.1.0"

struct config
{
    const char *data_dir;
    char api_host[256];
    int api_port;
    char raft_address[300];
    uint64_t node_id;
};

struct daemon
{
    uv_loop_t *loop;
    struct config cfg;
    struct store *store;
    struct node *node;
    struct service *svc;
    struct server *server;
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

static int parse_args(int argc, char **argv, struct config *cfg)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"api", required_argument, NULL, 'a'},
        {"raft", required_argument, NULL, 'r'},
        {"node-id", required_argument, NULL, 'n'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *api = "127.0.0.1:7400";
    int c;

    cfg->data_dir = "./cairn-data";
    snprintf(cfg->raft_address, sizeof(cfg->raft_address), "127.0.0.1:7401");
    cfg->node_id = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char host[256];
        int port;
        char *end;
        switch (c) {
            case 'd':
                cfg->data_dir = optarg;
                break;
            case 'a':
                api = optarg;
                break;
            case 'r':
                if (split_host_port(optarg, host, sizeof(host), &port) != 0) {
                    fprintf(stderr, "cairnd: bad --raft address %s\n", optarg);
                    return 2;
                }
                snprintf(cfg->raft_address, sizeof(cfg->raft_address), "%s",
                         optarg);
                break;
            case 'n':
                cfg->node_id = strtoull(optarg, &end, 10);
                if (*end != '\0' || cfg->node_id == 0) {
                    fprintf(stderr, "cairnd: bad --node-id %s\n", optarg);
                    return 2;
                }
                break;
            case 'l':
                if (strcmp(optarg, "debug") == 0) {
                    log_set_level(LOG_DEBUG);
                } else if (strcmp(optarg, "info") == 0) {
                    log_set_level(LOG_INFO);
                } else if (strcmp(optarg, "warn") == 0) {
                    log_set_level(LOG_WARN);
                } else if (strcmp(optarg, "error") == 0) {
                    log_set_level(LOG_ERROR);
                } else {
                    fprintf(stderr, "cairnd: bad --log-level %s\n", optarg);
                    return 2;
                }
                break;
            case 'V':
                printf("cairnd %s\n", CAIRND_VERSION);
                exit(0);
            case 'h':
                usage(stdout);
                exit(0);
            default:
                usage(stderr);
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cairnd: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (split_host_port(api, cfg->api_host, sizeof(cfg->api_host),
                        &cfg->api_port) != 0) {
        fprintf(stderr, "cairnd: bad --api address %s\n", api);
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
    uv_timer_stop(&d->watch);
    d->pending_closes = 2;
    /* The server first, so no new calls arrive; then the node, which fails
     * what is still pending so that every stream completes. */
    if (d->server != NULL) {
        server_close(d->server, on_server_closed, d);
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

/* ---- start ------------------------------------------------------------ */

static int start(struct daemon *d)
{
    struct store_options so;
    struct node_options no;
    struct server_options sv;
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

    rv = service_create(d->node, d->store, &d->svc, &err);
    if (rv != 0) {
        log_error("cannot create the service: %s", err.msg);
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
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon d;
    int rv;

    memset(&d, 0, sizeof(d));
    rv = parse_args(argc, argv, &d.cfg);
    if (rv != 0) {
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
    log_info("stopped");
    return d.exit_code;
}
