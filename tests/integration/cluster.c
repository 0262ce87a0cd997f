#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* How long a status probe of one node may take: a node busy catching up
 * under ASan answers slowly, but a dead one is refused at once. */
#define PROBE_MS 2000

static struct cairn_client *connect_to(const char *endpoints,
                                       unsigned attempts,
                                       unsigned timeout_ms,
                                       bool stale,
                                       struct cairn_error *err);
static void check_alive(struct cluster *c, uint64_t id);

int64_t cluster_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *cairnd_path(void)
{
    const char *p = getenv("CAIRND");
    if (p == NULL || p[0] == '\0') {
        fail_msg("CAIRND is not set (run through meson test)");
    }
    return p;
}

/******************************************************************************
 * A safety net: if the test process dies of a signal (a sanitizer's abort,
 * Ctrl-C, a runner's SIGTERM), its nodes are killed by their stored PIDs
 * instead of being left running. A cmocka failure returns through teardown
 * and needs none of this.
 *****************************************************************************/

#define LIVE_MAX 4
static struct cluster *volatile live[LIVE_MAX];
static const int fatal_signals[] = {SIGABRT, SIGTERM, SIGINT, SIGHUP};

static void on_fatal(int sig)
{
    for (int k = 0; k < LIVE_MAX; k++) {
        struct cluster *c = live[k];
        if (c == NULL) {
            continue;
        }
        for (int i = 1; i <= CLUSTER_MAX; i++) {
            pid_t pid = c->nodes[i].proc.pid;
            if (pid > 0) {
                kill(pid, SIGKILL);
            }
        }
    }
    raise(sig); /* SA_RESETHAND restored the default action */
}

static void watch(struct cluster *c)
{
    static bool installed;
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_fatal;
        sa.sa_flags = (int)SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(int); i++) {
            sigaction(fatal_signals[i], &sa, NULL);
        }
        installed = true;
    }
    for (int k = 0; k < LIVE_MAX; k++) {
        if (live[k] == NULL) {
            live[k] = c;
            return;
        }
    }
}

static void unwatch(struct cluster *c)
{
    for (int k = 0; k < LIVE_MAX; k++) {
        if (live[k] == c) {
            live[k] = NULL;
        }
    }
}

void cluster_options_default(struct cluster_options *o)
{
    memset(o, 0, sizeof(*o));
    o->n = 3;
    o->election_timeout_ms = 300;
}

/******************************************************************************
 * Nodes
 *****************************************************************************/

static int port_of(const char *address)
{
    const char *colon = strrchr(address, ':');
    return colon != NULL ? atoi(colon + 1) : 0;
}

static bool port_taken(const struct cluster *c, int port)
{
    for (unsigned i = 1; i <= c->n; i++) {
        const struct cluster_node *nd = &c->nodes[i];
        if (port_of(nd->api) == port || port_of(nd->raft) == port) {
            return true;
        }
    }
    return false;
}

/* Whether @p port can be bound on 127.0.0.1 right now. */
static bool bindable(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0) {
        return false;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A free port below the kernel's ephemeral range: a node is restarted on
 * the same ports, and while it is down an ephemeral port (of the many
 * client connections a test makes) must not take its place. */
static int fresh_port(const struct cluster *c, int other)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

    if (f != NULL) {
        if (fscanf(f, "%d %d", &low, &high) != 2) {
            low = 32768;
        }
        fclose(f);
    }
    if (low > 12000) {
        for (int tries = 0; tries < 1000; tries++) {
            int port =
                10000 + (int)((unsigned)rand() % (unsigned)(low - 10000));
            if (port != other && !port_taken(c, port) && bindable(port)) {
                return port;
            }
        }
    }
    /* No room below the range: any free port. */
    for (;;) {
        int port = proc_free_port();
        if (port != other && !port_taken(c, port)) {
            return port;
        }
    }
}

/* Give node n+1 its directory and ports. */
static struct cluster_node *create_node(struct cluster *c)
{
    struct cluster_node *nd;
    int api, raft;

    if (c->n >= CLUSTER_MAX) {
        fail_msg("a cluster holds at most %d nodes", CLUSTER_MAX);
    }
    nd = &c->nodes[c->n + 1];
    memset(nd, 0, sizeof(*nd));
    nd->id = c->n + 1;
    nd->dir = test_mkdtemp();
    snprintf(nd->data, sizeof(nd->data), "%s/data", nd->dir);
    snprintf(nd->log, sizeof(nd->log), "%s/cairnd.log", nd->dir);
    api = fresh_port(c, 0);
    raft = fresh_port(c, api);
    snprintf(nd->api, sizeof(nd->api), "127.0.0.1:%d", api);
    snprintf(nd->raft, sizeof(nd->raft), "127.0.0.1:%d", raft);
    snprintf(nd->root_key, sizeof(nd->root_key), "%s",
             c->opts.root_key_file != NULL ? c->opts.root_key_file : "");
    snprintf(nd->previous_root_key, sizeof(nd->previous_root_key), "%s",
             c->opts.previous_root_key_file != NULL
                 ? c->opts.previous_root_key_file
                 : "");
    nd->created = true;
    c->n++;
    snprintf(c->endpoints + strlen(c->endpoints),
             sizeof(c->endpoints) - strlen(c->endpoints), "%s%s",
             c->endpoints[0] != '\0' ? "," : "", nd->api);
    return nd;
}

static struct cluster_node *node(struct cluster *c, uint64_t id)
{
    if (id == 0 || id > c->n || !c->nodes[id].created) {
        fail_msg("no node %llu in the cluster", (unsigned long long)id);
    }
    return &c->nodes[id];
}

bool cluster_running(const struct cluster *c, uint64_t id)
{
    return id >= 1 && id <= c->n && c->nodes[id].proc.pid > 0;
}

void cluster_spawn(struct cluster *c, uint64_t id)
{
    struct cluster_node *nd = node(c, id);
    char node_id[24], election[24], threshold[24], trailing[24];
    char *argv[32];
    int i = 0;

    if (nd->proc.pid > 0) {
        fail_msg("node %llu is already running", (unsigned long long)id);
    }
    snprintf(node_id, sizeof(node_id), "%llu", (unsigned long long)id);
    snprintf(election, sizeof(election), "%u", c->opts.election_timeout_ms);
    snprintf(threshold, sizeof(threshold), "%u", c->opts.snapshot_threshold);
    snprintf(trailing, sizeof(trailing), "%u", c->opts.snapshot_trailing);
    argv[i++] = (char *)cairnd_path();
    argv[i++] = "--node-id";
    argv[i++] = node_id;
    argv[i++] = "--data-dir";
    argv[i++] = nd->data;
    argv[i++] = "--api";
    argv[i++] = nd->api;
    argv[i++] = "--raft";
    argv[i++] = nd->raft;
    /* Both are read only when the data directory is new; a restart passes
     * them again, as an operator's unit file would. */
    if (nd->join[0] != '\0') {
        argv[i++] = "--join";
        argv[i++] = nd->join;
    } else {
        argv[i++] = "--initial-cluster";
        argv[i++] = c->initial;
    }
    if (c->opts.election_timeout_ms != 0) {
        argv[i++] = "--election-timeout";
        argv[i++] = election;
    }
    if (c->opts.snapshot_threshold != 0) {
        argv[i++] = "--snapshot-threshold";
        argv[i++] = threshold;
        argv[i++] = "--snapshot-trailing";
        argv[i++] = trailing;
    }
    if (nd->root_key[0] != '\0') {
        argv[i++] = "--root-key-file";
        argv[i++] = nd->root_key;
    }
    if (nd->previous_root_key[0] != '\0') {
        argv[i++] = "--previous-root-key-file";
        argv[i++] = nd->previous_root_key;
    }
    argv[i] = NULL;
    proc_spawn(&nd->proc, argv, nd->log);
}

void cluster_kill9(struct cluster *c, uint64_t id)
{
    struct cluster_node *nd = &c->nodes[id];
    proc_signal(&nd->proc, SIGKILL);
    proc_wait(&nd->proc, 10000);
}

void cluster_stop(struct cluster *c, uint64_t id)
{
    struct cluster_node *nd = node(c, id);

    proc_signal(&nd->proc, SIGTERM);
    if (!proc_wait(&nd->proc, 30000)) {
        proc_stop(&nd->proc, 1000);
        cluster_dump_logs(c);
        fail_msg("node %llu did not stop within 30 s of SIGTERM",
                 (unsigned long long)id);
    }
    if (!WIFEXITED(nd->proc.status) || WEXITSTATUS(nd->proc.status) != 0) {
        cluster_dump_logs(c);
        fail_msg("node %llu exited with status %#x after SIGTERM",
                 (unsigned long long)id, nd->proc.status);
    }
}

void cluster_check_alive(struct cluster *c)
{
    for (unsigned i = 1; i <= c->n; i++) {
        check_alive(c, i);
    }
}

/* Fail the test if node @p id died on its own (a crash or a sanitizer
 * report). */
static void check_alive(struct cluster *c, uint64_t id)
{
    struct cluster_node *nd = &c->nodes[id];
    if (nd->proc.pid > 0 && proc_wait(&nd->proc, 0)) {
        cluster_dump_logs(c);
        fail_msg("node %llu exited unexpectedly with status %#x",
                 (unsigned long long)id, nd->proc.status);
    }
}

void cluster_restart(struct cluster *c, uint64_t id, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    struct cluster_status st;

    cluster_spawn(c, id);
    for (;;) {
        check_alive(c, id);
        if (cluster_node_status(c, id, false, PROBE_MS, &st) == 0 &&
            st.leader_id != 0) {
            return;
        }
        if (proc_now_ms() > end) {
            cluster_dump_logs(c);
            fail_msg("node %llu did not rejoin within %d ms",
                     (unsigned long long)id, timeout_ms);
        }
        usleep(20 * 1000);
    }
}

void cluster_set_root_keys(struct cluster *c,
                           uint64_t id,
                           const char *root,
                           const char *previous)
{
    struct cluster_node *nd = node(c, id);
    snprintf(nd->root_key, sizeof(nd->root_key), "%s",
             root != NULL ? root : "");
    snprintf(nd->previous_root_key, sizeof(nd->previous_root_key), "%s",
             previous != NULL ? previous : "");
}

bool cluster_wait_exit(struct cluster *c,
                       uint64_t id,
                       int timeout_ms,
                       int *status)
{
    struct cluster_node *nd = node(c, id);
    if (nd->proc.pid == 0 || !proc_wait(&nd->proc, timeout_ms)) {
        return false;
    }
    *status = nd->proc.status;
    return true;
}

uint64_t cluster_join(struct cluster *c, uint64_t via)
{
    struct cluster_node *v = node(c, via);
    struct cluster_node *nd = create_node(c);

    snprintf(nd->join, sizeof(nd->join), "%s", v->api);
    cluster_spawn(c, nd->id);
    return nd->id;
}

/* Whether every running node lists every member with its API address:
 * until a leader has registered its address in the member table, a
 * follower cannot forward to it and answers UNAVAILABLE. */
static bool registered(struct cluster *c)
{
    for (unsigned i = 1; i <= c->n; i++) {
        struct cairn_error err;
        struct cairn_client *cl;
        char *resp = NULL;
        json_t *j, *m;
        size_t k, n = 0;
        bool ok = true;
        int rv;

        if (!cluster_running(c, i)) {
            continue;
        }
        cl = connect_to(c->nodes[i].api, 1, PROBE_MS, false, &err);
        if (cl == NULL) {
            return false;
        }
        rv = cairn_call_json(cl, "Cairn.Members", "{}", &resp, &err);
        cairn_client_close(cl);
        j = rv == 0 ? json_loads(resp, 0, NULL) : NULL;
        free(resp);
        if (j == NULL) {
            return false;
        }
        json_array_foreach(json_object_get(j, "Members"), k, m)
        {
            const char *api =
                json_string_value(json_object_get(m, "ApiAddress"));
            ok = ok && api != NULL && api[0] != '\0';
            n++;
        }
        json_decref(j);
        if (!ok || n == 0) {
            return false;
        }
    }
    return true;
}

static void wait_registered(struct cluster *c, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    while (!registered(c)) {
        if (proc_now_ms() > end) {
            cluster_dump_logs(c);
            fail_msg("members' API addresses not registered within %d ms",
                     timeout_ms);
        }
        usleep(20 * 1000);
    }
}

struct cluster *cluster_create(const struct cluster_options *o)
{
    struct cluster *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    assert_true(o->n >= 1 && o->n <= CLUSTER_MAX);
    /* Different ports for test binaries that run at the same time. */
    srand((unsigned)getpid() ^ (unsigned)cluster_now_ns());
    c->opts = *o;
    /* The caller's strings need not outlive this call: nodes created by
     * cluster_join later read the copies. */
    if (o->root_key_file != NULL) {
        snprintf(c->root_key_file, sizeof(c->root_key_file), "%s",
                 o->root_key_file);
        c->opts.root_key_file = c->root_key_file;
    }
    if (o->previous_root_key_file != NULL) {
        snprintf(c->previous_root_key_file, sizeof(c->previous_root_key_file),
                 "%s", o->previous_root_key_file);
        c->opts.previous_root_key_file = c->previous_root_key_file;
    }
    for (unsigned i = 0; i < o->n; i++) {
        struct cluster_node *nd = create_node(c);
        snprintf(c->initial + strlen(c->initial),
                 sizeof(c->initial) - strlen(c->initial), "%s%llu=%s",
                 i > 0 ? "," : "", (unsigned long long)nd->id, nd->raft);
    }
    watch(c);
    return c;
}

void cluster_start(struct cluster *c)
{
    for (unsigned i = 1; i <= c->opts.n; i++) {
        cluster_spawn(c, i);
    }
    cluster_wait_leader(c, 60000);
    wait_registered(c, 60000);
}

void cluster_destroy(struct cluster *c)
{
    bool keep;

    if (c == NULL) {
        return;
    }
    keep = getenv("CAIRN_TEST_KEEP") != NULL;
    /* Signal all first so that they stop in parallel. */
    for (unsigned i = 1; i <= c->n; i++) {
        proc_signal(&c->nodes[i].proc, SIGTERM);
    }
    for (unsigned i = 1; i <= c->n; i++) {
        proc_stop(&c->nodes[i].proc, 10000);
        if (keep) {
            fprintf(stderr, "# node %u kept in %s\n", i, c->nodes[i].dir);
            free(c->nodes[i].dir);
        } else {
            test_rmdir(c->nodes[i].dir);
        }
        c->nodes[i].dir = NULL;
    }
    unwatch(c);
    free(c);
}

/******************************************************************************
 * Clients and calls
 *****************************************************************************/

static struct cairn_client *connect_to(const char *endpoints,
                                       unsigned attempts,
                                       unsigned timeout_ms,
                                       bool stale,
                                       struct cairn_error *err)
{
    struct cairn_client_options o;
    struct cairn_client *cl = NULL;

    cairn_client_options_default(&o);
    o.endpoints = endpoints;
    o.attempts = attempts;
    o.timeout_ms = timeout_ms;
    o.stale_reads = stale;
    if (cairn_client_connect(&o, &cl, err) != 0) {
        return NULL;
    }
    return cl;
}

struct cairn_client *cluster_client(struct cluster *c,
                                    uint64_t first,
                                    unsigned attempts,
                                    unsigned timeout_ms)
{
    struct cairn_error err;
    struct cairn_client *cl;
    char eps[sizeof(c->endpoints)];
    size_t len = 0;

    /* The same list, rotated to begin at node @p first. */
    eps[0] = '\0';
    for (unsigned k = 0; k < c->n; k++) {
        unsigned id = (unsigned)((first > 0 ? first - 1 : 0) + k) % c->n + 1;
        len += (size_t)snprintf(eps + len, sizeof(eps) - len, "%s%s",
                                k > 0 ? "," : "", c->nodes[id].api);
    }
    cl = connect_to(eps, attempts, timeout_ms, false, &err);
    if (cl == NULL) {
        fail_msg("connect %s: %s", eps, err.msg);
    }
    return cl;
}

struct cairn_client *cluster_node_client(struct cluster *c,
                                         uint64_t id,
                                         bool stale)
{
    struct cairn_error err;
    struct cairn_client *cl =
        connect_to(node(c, id)->api, 8, 10000, stale, &err);
    if (cl == NULL) {
        fail_msg("connect to node %llu at %s: %s", (unsigned long long)id,
                 c->nodes[id].api, err.msg);
    }
    return cl;
}

char *cluster_call_json(struct cairn_client *cl,
                        const char *method,
                        const char *req)
{
    struct cairn_error err;
    char *resp = NULL;
    if (cairn_call_json(cl, method, req, &resp, &err) != 0) {
        fail_msg("%s %s: %s %s: %s", method, req, cairn_status_name(err.code),
                 err.type, err.msg);
    }
    return resp;
}

static uint64_t get_u64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static void get_str(json_t *o, const char *key, char *out, size_t cap)
{
    json_t *v = json_object_get(o, key);
    snprintf(out, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int cluster_node_status(struct cluster *c,
                        uint64_t id,
                        bool digest,
                        int timeout_ms,
                        struct cluster_status *st)
{
    struct cairn_error err;
    struct cairn_client *cl;
    char *resp = NULL;
    json_t *j;
    int rv;

    memset(st, 0, sizeof(*st));
    if (!cluster_running(c, id)) {
        return CAIRN_UNAVAILABLE;
    }
    cl = connect_to(c->nodes[id].api, 1, (unsigned)timeout_ms, false, &err);
    if (cl == NULL) {
        return err.code != 0 ? err.code : CAIRN_UNAVAILABLE;
    }
    rv = cairn_call_json(cl, "Cairn.NodeStatus",
                         digest ? "{\"Digest\":true}" : "{}", &resp, &err);
    cairn_client_close(cl);
    if (rv != 0) {
        return rv;
    }
    j = json_loads(resp, 0, NULL);
    free(resp);
    if (j == NULL) {
        return CAIRN_INTERNAL;
    }
    st->id = get_u64(j, "Id");
    get_str(j, "State", st->state, sizeof(st->state));
    st->term = get_u64(j, "Term");
    st->commit_index = get_u64(j, "CommitIndex");
    st->applied_index = get_u64(j, "AppliedIndex");
    st->leader_id = get_u64(j, "LeaderId");
    st->store_index = get_u64(j, "StoreIndex");
    get_str(j, "Digest", st->digest, sizeof(st->digest));
    json_decref(j);
    return 0;
}

/******************************************************************************
 * Waiting
 *****************************************************************************/

/* One look: the leader every running node names and which says so itself,
 * or 0. */
static uint64_t agreed_leader(struct cluster *c)
{
    uint64_t leader = 0, term = 0;
    bool any = false;

    for (unsigned i = 1; i <= c->n; i++) {
        struct cluster_status st;
        if (!cluster_running(c, i)) {
            continue;
        }
        if (cluster_node_status(c, i, false, PROBE_MS, &st) != 0 ||
            st.leader_id == 0) {
            return 0;
        }
        if (any && (st.leader_id != leader || st.term != term)) {
            return 0;
        }
        any = true;
        leader = st.leader_id;
        term = st.term;
        if (st.leader_id == i && strcmp(st.state, "leader") != 0) {
            return 0;
        }
    }
    if (!any || !cluster_running(c, leader)) {
        return 0;
    }
    return leader;
}

uint64_t cluster_find_leader(struct cluster *c, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    for (;;) {
        uint64_t leader = agreed_leader(c);
        if (leader != 0 || proc_now_ms() > end) {
            return leader;
        }
        usleep(20 * 1000);
    }
}

uint64_t cluster_wait_leader(struct cluster *c, int timeout_ms)
{
    long long end = proc_now_ms() + timeout_ms;
    for (;;) {
        uint64_t leader;
        cluster_check_alive(c);
        leader = agreed_leader(c);
        if (leader != 0) {
            return leader;
        }
        if (proc_now_ms() > end) {
            cluster_dump_logs(c);
            fail_msg("no leader named by every running node within %d ms",
                     timeout_ms);
        }
        usleep(20 * 1000);
    }
}

uint64_t cluster_follower(struct cluster *c, uint64_t leader, uint64_t not )
{
    for (unsigned i = 1; i <= c->n; i++) {
        if (i != leader && i != not &&cluster_running(c, i)) {
            return i;
        }
    }
    fail_msg("no running follower");
    return 0;
}

void cluster_wait_converged(struct cluster *c, int timeout_ms, char *digest)
{
    long long end = proc_now_ms() + timeout_ms;
    struct cluster_status st[CLUSTER_MAX + 1];
    char report[4096];

    for (;;) {
        bool equal = true, answered = true;
        uint64_t first = 0;
        size_t len = 0;

        report[0] = '\0';
        for (unsigned i = 1; i <= c->n; i++) {
            check_alive(c, i);
            if (!cluster_running(c, i)) {
                continue;
            }
            if (cluster_node_status(c, i, true, 5000, &st[i]) != 0) {
                answered = false;
                len += (size_t)snprintf(report + len, sizeof(report) - len,
                                        "  node %u: no answer\n", i);
                continue;
            }
            len += (size_t)snprintf(
                report + len, sizeof(report) - len,
                "  node %u: %s term %llu commit %llu applied %llu store "
                "%llu digest %s\n",
                i, st[i].state, (unsigned long long)st[i].term,
                (unsigned long long)st[i].commit_index,
                (unsigned long long)st[i].applied_index,
                (unsigned long long)st[i].store_index, st[i].digest);
            if (first == 0) {
                first = i;
            } else if (st[i].applied_index != st[first].applied_index ||
                       st[i].store_index != st[first].store_index) {
                equal = false;
            }
        }
        if (answered && first != 0 && equal) {
            for (unsigned i = first + 1; i <= c->n; i++) {
                if (cluster_running(c, i) &&
                    strcmp(st[i].digest, st[first].digest) != 0) {
                    cluster_dump_logs(c);
                    fail_msg("digests differ at equal applied index:\n%s",
                             report);
                }
            }
            if (st[first].digest[0] == '\0') {
                fail_msg("Cairn.NodeStatus gave no Digest:\n%s", report);
            }
            if (digest != NULL) {
                memcpy(digest, st[first].digest, 65);
            }
            return;
        }
        if (proc_now_ms() > end) {
            cluster_dump_logs(c);
            fail_msg("nodes did not converge within %d ms:\n%s", timeout_ms,
                     report);
        }
        usleep(50 * 1000);
    }
}

/******************************************************************************
 * Logs
 *****************************************************************************/

char *cluster_log(struct cluster *c, uint64_t id)
{
    FILE *f = fopen(node(c, id)->log, "r");
    char *s;
    long n;

    if (f == NULL) {
        return strdup("");
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    if (s != NULL && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) {
        s[0] = '\0';
    }
    fclose(f);
    return s;
}

void cluster_dump_logs(struct cluster *c)
{
    for (unsigned i = 1; i <= c->n; i++) {
        char *log = cluster_log(c, i);
        const char *p = log + strlen(log);
        int lines = 0;
        while (p > log && lines < 40) {
            p--;
            if (*p == '\n' && p[1] != '\0') {
                lines++;
            }
        }
        fprintf(stderr, "# ---- node %u (%s), last lines of %s ----\n%s", i,
                cluster_running(c, i) ? "running" : "stopped", c->nodes[i].log,
                p == log ? p : p + 1);
        free(log);
    }
}
