/* Integration tests of SecureString across real cairnd processes
 * (docs/encryption.md): no plaintext in any node's files or between nodes,
 * tampered values refused, a root key rolled out on a running cluster, and
 * a node refused when given the wrong root key. */
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "envelope.h"
#include "mp.h"
#include "sm.h"
#include "store.h"

/******************************************************************************
 * Loopback capture
 *
 * An AF_PACKET socket on "lo" records the TCP payload of every packet to or
 * from the chosen ports, reassembled per TCP flow (in arrival order, which
 * on loopback is the sending order), so that a canary split across two
 * segments is still found.
 *****************************************************************************/

#define CAPTURE_PORTS (2 * CLUSTER_MAX)
#define CAPTURE_SNAP (256 * 1024) /* above lo's largest (GSO) packet */

/* One direction of one TCP connection. */
struct flow
{
    uint32_t saddr, daddr;
    uint16_t sport, dport;
    bool started;
    uint32_t next; /* sequence number of the next byte expected */
    struct buf data;
};

struct capture
{
    int fd;
    bool running;
    pthread_t thread;
    atomic_bool stop;
    uint16_t ports[CAPTURE_PORTS]; /* recorded: to or from one of these */
    unsigned n_ports;
    uint16_t exclude; /* never recorded: the test client's plaintext */
    struct flow *flows;
    size_t n_flows, cap_flows;
    uint64_t packets, bytes;
    unsigned truncated, gaps, drops;
    bool oom;
};

static bool port_in(const struct capture *cp, uint16_t port)
{
    for (unsigned i = 0; i < cp->n_ports; i++) {
        if (cp->ports[i] == port) {
            return true;
        }
    }
    return false;
}

static struct flow *flow_of(struct capture *cp,
                            uint32_t saddr,
                            uint32_t daddr,
                            uint16_t sport,
                            uint16_t dport)
{
    struct flow *fl;
    for (size_t i = 0; i < cp->n_flows; i++) {
        fl = &cp->flows[i];
        if (fl->saddr == saddr && fl->daddr == daddr && fl->sport == sport &&
            fl->dport == dport) {
            return fl;
        }
    }
    if (cp->n_flows == cp->cap_flows) {
        size_t cap = cp->cap_flows ? 2 * cp->cap_flows : 64;
        struct flow *p = realloc(cp->flows, cap * sizeof(*p));
        if (p == NULL) {
            return NULL;
        }
        cp->flows = p;
        cp->cap_flows = cap;
    }
    fl = &cp->flows[cp->n_flows++];
    memset(fl, 0, sizeof(*fl));
    fl->saddr = saddr;
    fl->daddr = daddr;
    fl->sport = sport;
    fl->dport = dport;
    buf_init(&fl->data);
    return fl;
}

/* Record one IPv4 packet (@p n bytes from its IP header). */
static void capture_packet(struct capture *cp, const uint8_t *p, size_t n)
{
    const struct iphdr *ip = (const struct iphdr *)p;
    const struct tcphdr *th;
    size_t ihl, thl, total;
    uint16_t sport, dport;
    const uint8_t *payload;
    size_t len;
    uint32_t seq;
    struct flow *fl;
    int32_t d;

    if (n < sizeof(*ip) || ip->version != 4 || ip->protocol != IPPROTO_TCP) {
        return;
    }
    ihl = (size_t)ip->ihl * 4;
    total = ntohs(ip->tot_len);
    if (total == 0 || total > n) {
        total = n; /* a GSO packet may carry 0; a truncated one less */
    }
    if (ihl < sizeof(*ip) || total < ihl + sizeof(*th)) {
        return;
    }
    th = (const struct tcphdr *)(p + ihl);
    sport = ntohs(th->source);
    dport = ntohs(th->dest);
    if (sport == cp->exclude || dport == cp->exclude ||
        (!port_in(cp, sport) && !port_in(cp, dport))) {
        return;
    }
    thl = (size_t)th->doff * 4;
    if (thl < sizeof(*th) || total < ihl + thl) {
        return;
    }
    payload = p + ihl + thl;
    len = total - ihl - thl;
    seq = ntohl(th->seq);
    fl = flow_of(cp, ip->saddr, ip->daddr, sport, dport);
    if (fl == NULL) {
        cp->oom = true;
        return;
    }
    cp->packets++;
    if (th->syn) {
        fl->started = true;
        fl->next = seq + 1;
        return;
    }
    if (len == 0) {
        return;
    }
    if (!fl->started) {
        fl->started = true; /* the connection began before the capture */
        fl->next = seq;
    }
    d = (int32_t)(seq - fl->next);
    if (d > 0) {
        /* Bytes missed: a zero byte keeps the two sides of the hole from
         * forming a canary that was never sent. */
        cp->gaps++;
        buf_append_u8(&fl->data, 0);
    } else if ((size_t) - (int64_t)d >= len) {
        return; /* a retransmission of bytes already recorded */
    } else {
        payload += -(int64_t)d;
        len -= (size_t) - (int64_t)d;
        seq = fl->next;
    }
    buf_append(&fl->data, payload, len);
    cp->oom = cp->oom || fl->data.oom;
    cp->bytes += len;
    fl->next = seq + (uint32_t)len;
}

/* Read what is queued; false when nothing was. */
static bool capture_drain(struct capture *cp, uint8_t *pkt)
{
    struct sockaddr_ll from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(cp->fd, pkt, CAPTURE_SNAP, MSG_TRUNC | MSG_DONTWAIT,
                         (struct sockaddr *)&from, &fl);
    if (n < 0) {
        return false;
    }
    /* Loopback shows each packet leaving and arriving: keep the arrival. */
    if (from.sll_pkttype == PACKET_OUTGOING ||
        from.sll_protocol != htons(ETH_P_IP)) {
        return true;
    }
    if (n > CAPTURE_SNAP) {
        cp->truncated++;
        n = CAPTURE_SNAP;
    }
    capture_packet(cp, pkt, (size_t)n);
    return true;
}

static void *capture_main(void *arg)
{
    struct capture *cp = arg;
    uint8_t *pkt = malloc(CAPTURE_SNAP);

    if (pkt == NULL) {
        cp->oom = true;
        return NULL;
    }
    while (!atomic_load(&cp->stop)) {
        struct pollfd pfd = {cp->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) > 0) {
            while (capture_drain(cp, pkt)) {
            }
        }
    }
    /* What arrived before the stop. */
    while (capture_drain(cp, pkt)) {
    }
    free(pkt);
    return NULL;
}

static uint16_t port_of(const char *address)
{
    const char *colon = strrchr(address, ':');
    return colon != NULL ? (uint16_t)atoi(colon + 1) : 0;
}

/*
 * Start recording the traffic of every node's Raft port and of every API
 * port but node @p client's (the test client sends plaintext there). False
 * (with a note on stderr) when this process may not open a packet socket.
 */
static bool capture_start(struct capture *cp,
                          struct cluster *c,
                          uint64_t client)
{
    struct sockaddr_ll a;
    int size = 64 << 20;

    memset(cp, 0, sizeof(*cp));
    cp->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (cp->fd < 0) {
        fprintf(stderr,
                "# no loopback capture (%s: needs root or CAP_NET_RAW); "
                "files only\n",
                strerror(errno));
        return false;
    }
    if (setsockopt(cp->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) !=
        0) {
        setsockopt(cp->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    memset(&a, 0, sizeof(a));
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = (int)if_nametoindex("lo");
    if (a.sll_ifindex == 0 ||
        bind(cp->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(cp->fd);
        fail_msg("bind a packet socket to lo: %s", strerror(e));
    }
    for (unsigned i = 1; i <= c->n; i++) {
        cp->ports[cp->n_ports++] = port_of(c->nodes[i].raft);
        if (i != client) {
            cp->ports[cp->n_ports++] = port_of(c->nodes[i].api);
        }
    }
    cp->exclude = port_of(c->nodes[client].api);
    atomic_init(&cp->stop, false);
    if (pthread_create(&cp->thread, NULL, capture_main, cp) != 0) {
        close(cp->fd);
        fail_msg("pthread_create failed");
    }
    cp->running = true;
    return true;
}

/* Stop recording; the flows stay for scanning. */
static void capture_stop(struct capture *cp)
{
    struct tpacket_stats st;
    socklen_t len = sizeof(st);

    if (!cp->running) {
        return;
    }
    /* Let the last packets of a quiet cluster arrive in the queue. */
    usleep(200 * 1000);
    atomic_store(&cp->stop, true);
    pthread_join(cp->thread, NULL);
    cp->running = false;
    if (getsockopt(cp->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
        cp->drops = st.tp_drops;
    }
    close(cp->fd);
    cp->fd = -1;
}

static void capture_free(struct capture *cp)
{
    capture_stop(cp);
    for (size_t i = 0; i < cp->n_flows; i++) {
        buf_close(&cp->flows[i].data);
    }
    free(cp->flows);
    cp->flows = NULL;
    cp->n_flows = 0;
}

/******************************************************************************
 * Fixture
 *****************************************************************************/

struct fixture
{
    struct cluster *c;
    char *keys; /* a directory for root key files */
    struct capture cap;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->cap.fd = -1;
    *state = f;
    return 0;
}

/* Runs after a failed case too: the capture thread stops before the nodes
 * do, and every node is stopped by its PID. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    capture_free(&f->cap);
    cluster_destroy(f->c);
    test_rmdir(f->keys);
    free(f);
    return 0;
}

/******************************************************************************
 * Helpers
 *****************************************************************************/

/* A new root key file @p name in the fixture's key directory. */
static void new_root_key(struct fixture *f,
                         const char *name,
                         char *path,
                         size_t cap,
                         struct env_root_key *rk)
{
    struct cairn_error err;
    if (f->keys == NULL) {
        f->keys = test_mkdtemp();
    }
    snprintf(path, cap, "%s/%s", f->keys, name);
    if (env_root_key_create(path, rk, &err) != 0) {
        fail_msg("create root key %s: %s", path, err.msg);
    }
}

/* @p n random bytes as 2n hex digits in @p out. */
static void random_hex(char *out, size_t n)
{
    uint8_t b[32];
    assert_true(n <= sizeof(b));
    assert_int_equal(getrandom(b, n, 0), (ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
}

static json_t *call_ok(struct cairn_client *cl,
                       const char *method,
                       const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
static json_t *call_ok(struct cairn_client *cl,
                       const char *method,
                       const char *fmt,
                       ...)
{
    char *req = NULL, *resp;
    json_t *j;
    va_list ap;

    va_start(ap, fmt);
    assert_true(vasprintf(&req, fmt, ap) >= 0);
    va_end(ap);
    resp = cluster_call_json(cl, method, req);
    j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    free(req);
    free(resp);
    return j;
}

/* A SecureString (under @p key_id, NULL: the default key) or a String. */
static void put_ok(struct cairn_client *cl,
                   const char *name,
                   const char *value,
                   const char *type,
                   const char *key_id)
{
    struct cairn_error err;
    if (key_id != NULL) {
        json_decref(call_ok(cl, "PutParameter",
                            "{\"Name\":\"%s\",\"Value\":\"%s\",\"Type\":\"%s\","
                            "\"KeyId\":\"%s\",\"Overwrite\":true}",
                            name, value, type, key_id));
        return;
    }
    if (cairn_put_parameter(cl, name, value, type, true, NULL, &err) != 0) {
        fail_msg("put %s: %s %s: %s", name, cairn_status_name(err.code),
                 err.type, err.msg);
    }
}

/* GetParameter @p name (decrypted if @p decrypt) has @p value. */
static void get_ok(struct cairn_client *cl,
                   const char *name,
                   bool decrypt,
                   const char *value,
                   const char *where)
{
    struct cairn_parameter p;
    struct cairn_error err;
    if (cairn_get_parameter(cl, name, decrypt, &p, &err) != 0) {
        fail_msg("get %s from %s: %s %s: %s", name, where,
                 cairn_status_name(err.code), err.type, err.msg);
    }
    if (strcmp(p.value, value) != 0) {
        fail_msg("get %s from %s: value \"%s\", want \"%s\"", name, where,
                 p.value, value);
    }
    cairn_parameter_free(&p);
}

/* GetParameter @p name WithDecryption fails with @p code and @p type. */
static void get_fails(struct cairn_client *cl,
                      const char *name,
                      int code,
                      const char *type)
{
    struct cairn_parameter p;
    struct cairn_error err;
    int rv = cairn_get_parameter(cl, name, true, &p, &err);
    if (rv == 0) {
        fail_msg("get %s WithDecryption: got \"%s\", want %s %s", name, p.value,
                 cairn_status_name(code), type);
    }
    if (rv != code || strcmp(err.type, type) != 0) {
        fail_msg("get %s WithDecryption: %s %s (%s), want %s %s", name,
                 cairn_status_name(rv), err.type, err.msg,
                 cairn_status_name(code), type);
    }
    fprintf(stderr, "# %s: %s %s: %s\n", name, cairn_status_name(rv), err.type,
            err.msg);
}

/* @p method with the JSON request @p req fails with @p code and @p type. */
static void call_fails(struct cairn_client *cl,
                       const char *method,
                       const char *req,
                       int code,
                       const char *type)
{
    struct cairn_error err;
    char *resp = NULL;
    int rv = cairn_call_json(cl, method, req, &resp, &err);
    if (rv == 0) {
        fail_msg("%s %s: got %s, want %s %s", method, req, resp,
                 cairn_status_name(code), type);
    }
    if (rv != code || strcmp(err.type, type) != 0) {
        fail_msg("%s %s: %s %s (%s), want %s %s", method, req,
                 cairn_status_name(rv), err.type, err.msg,
                 cairn_status_name(code), type);
    }
}

/* The newest snapshot index in node @p id's log, 0 if none. */
static uint64_t snapshot_index(struct cluster *c, uint64_t id)
{
    char *log = cluster_log(c, id);
    const char *p = log;
    uint64_t last = 0;
    while ((p = strstr(p, "raft: snapshot at index ")) != NULL) {
        p += strlen("raft: snapshot at index ");
        last = strtoull(p, NULL, 10);
    }
    free(log);
    return last;
}

/* Whether node @p id's log so far contains @p s. */
static bool log_has(struct cluster *c, uint64_t id, const char *s)
{
    char *log = cluster_log(c, id);
    bool found = strstr(log, s) != NULL;
    free(log);
    return found;
}

/* Start node @p id and expect it to exit non-zero within 60 s; returns what
 * it logged during this start (the caller frees). */
static char *start_refused(struct cluster *c, uint64_t id)
{
    char *before = cluster_log(c, id), *log, *since;
    size_t offset = strlen(before);
    int status = 0;

    free(before);
    cluster_spawn(c, id);
    if (!cluster_wait_exit(c, id, 60000, &status)) {
        cluster_dump_logs(c);
        fail_msg("node %llu still runs 60 s after a start that must fail",
                 (unsigned long long)id);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0) {
        cluster_dump_logs(c);
        fail_msg("node %llu: wait status %#x, want a non-zero exit",
                 (unsigned long long)id, status);
    }
    fprintf(stderr, "# node %llu exited with status %d\n",
            (unsigned long long)id, WEXITSTATUS(status));
    log = cluster_log(c, id);
    since = strdup(strlen(log) >= offset ? log + offset : log);
    assert_non_null(since);
    free(log);
    return since;
}

/* The start-up error of a node given the wrong root key names the root
 * key that wrapped the keyring, @p wrapped_by, and the node's own,
 * @p given, in one line of @p log. */
static void assert_fingerprint_error(const char *log,
                                     const char *wrapped_by,
                                     const char *given)
{
    const char *hit = strstr(log, "is wrapped by root key");
    char line[1024];

    if (hit == NULL) {
        fail_msg("no root key error in the log:\n%s", log);
    }
    while (hit > log && hit[-1] != '\n') {
        hit--;
    }
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(hit, "\n"), hit);
    fprintf(stderr, "# log: %s\n", line);
    if (strstr(line, "error") == NULL || strstr(line, wrapped_by) == NULL ||
        strstr(line, given) == NULL) {
        fail_msg("the error does not name root keys %s and %s: %s", wrapped_by,
                 given, line);
    }
}

/* The last line of @p log that contains @p s, printed as a note; fails the
 * test if there is none. */
static void show_line(const char *log, const char *s)
{
    const char *p = log, *hit = NULL;
    while ((p = strstr(p, s)) != NULL) {
        hit = p++;
    }
    if (hit == NULL) {
        fail_msg("the log has no line with \"%s\"", s);
    }
    while (hit > log && hit[-1] != '\n') {
        hit--;
    }
    fprintf(stderr, "# log: %.*s\n", (int)strcspn(hit, "\n"), hit);
}

/******************************************************************************
 * Scanning
 *****************************************************************************/

/* Occurrences of @p needle in @p p. */
static size_t count_in(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle), hits = 0;
    const uint8_t *at = p, *end = p + n;
    while (at < end &&
           (at = memmem(at, (size_t)(end - at), needle, k)) != NULL) {
        hits++;
        at += k;
    }
    return hits;
}

struct scan
{
    const char *needles[4]; /* what is counted */
    unsigned n_needles;
    size_t hits[4];     /* per needle, all files */
    char where[4][512]; /* the first file each was found in */
    size_t files, bytes;
    unsigned raft_files_with[4]; /* files under raft/ holding needle i */
};

/* Scan every regular file under @p path (recursively). */
static void scan_tree(const char *path, struct scan *s)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (lstat(path, &st) != 0) {
        fail_msg("lstat %s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        d = opendir(path);
        if (d == NULL) {
            fail_msg("opendir %s: %s", path, strerror(errno));
        }
        while ((e = readdir(d)) != NULL) {
            char sub[4200];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            scan_tree(sub, s);
        }
        closedir(d);
        return;
    }
    if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t *data;
        size_t n = 0, need;
        off_t off = 0, from;

        if (fd < 0) {
            fail_msg("open %s: %s", path, strerror(errno));
        }
        /* The data regions only: a cluster store's data.mdb is a sparse
         * file as large as the LMDB map (docs/storage.md). A zero byte
         * between regions keeps a needle from spanning a hole. */
        need = 1;
        {
            while ((from = lseek(fd, off, SEEK_DATA)) >= 0) {
                off_t to = lseek(fd, from, SEEK_HOLE);
                to = to < 0 ? st.st_size : to;
                need += (size_t)(to - from) + 1;
                off = to;
            }
            data = malloc(need);
            assert_non_null(data);
            off = 0;
        }
        while ((from = lseek(fd, off, SEEK_DATA)) >= 0) {
            off_t to = lseek(fd, from, SEEK_HOLE);
            if (to < 0) {
                to = st.st_size;
            }
            if (n > 0 && n < need - 1) {
                data[n++] = 0;
            }
            /* A running node may grow the file between the passes: what
             * does not fit the first pass's size is left out. */
            for (off_t at = from; at < to && n < need - 1;) {
                size_t room = need - 1 - n;
                size_t want =
                    (size_t)(to - at) < room ? (size_t)(to - at) : room;
                ssize_t k = pread(fd, data + n, want, at);
                if (k <= 0) {
                    break;
                }
                n += (size_t)k;
                at += k;
            }
            off = to;
        }
        close(fd);
        s->files++;
        s->bytes += n;
        for (unsigned i = 0; i < s->n_needles; i++) {
            size_t h = count_in(data, n, s->needles[i]);
            if (h > 0 && s->hits[i] == 0) {
                snprintf(s->where[i], sizeof(s->where[i]), "%s", path);
            }
            s->hits[i] += h;
            s->raft_files_with[i] += h > 0 && strstr(path, "/raft/") != NULL;
        }
        free(data);
    }
}

/******************************************************************************
 * Cases
 *****************************************************************************/

#define N_SECURE 200
#define N_PLAIN 50

/* The canary test (the acceptance). A three-node cluster sharing
 * one root key, with snapshots every 64 entries, takes 200 SecureString
 * and 50 String parameters (some overwritten twice) through a follower,
 * which seals them and forwards the commands; a killed follower catches up
 * by snapshot. Then no file of any node and no byte between the nodes
 * (Raft links, forwarding and read-index calls) holds a SecureString
 * canary, while the same scan finds the String canary in every node's
 * files and in the traffic; and every node decrypts every value. */
static void no_plaintext_on_disk_or_wire(void **state)
{
    struct fixture *f = *state;
    struct cluster_options o;
    struct cluster *c;
    struct env_root_key rk;
    char key[4200], secure_hex[17], plain_hex[17];
    char secure_tag[64], plain_tag[64];
    static char secure_val[N_SECURE][96], plain_val[N_PLAIN][96];
    char name[64], key_id[64];
    uint64_t leader, fc, fv;
    struct cairn_client *cl;
    bool captured;
    json_t *j;

    new_root_key(f, "root.key", key, sizeof(key), &rk);
    random_hex(secure_hex, 8);
    random_hex(plain_hex, 8);
    snprintf(secure_tag, sizeof(secure_tag), "CANARY-SECURE-%s", secure_hex);
    snprintf(plain_tag, sizeof(plain_tag), "CANARY-PLAIN-%s", plain_hex);

    cluster_options_default(&o);
    o.snapshot_threshold = 64;
    o.snapshot_trailing = 16;
    o.root_key_file = key;
    f->c = c = cluster_create(&o);
    cluster_start(c);
    leader = cluster_wait_leader(c, 30000);
    fc = cluster_follower(c, leader, 0);
    fv = cluster_follower(c, leader, fc);
    fprintf(stderr,
            "# leader %llu; the client talks to node %llu only; node %llu "
            "is killed\n",
            (unsigned long long)leader, (unsigned long long)fc,
            (unsigned long long)fv);

    captured = capture_start(&f->cap, c, fc);
    cl = cluster_node_client(c, fc, false);

    /* A customer key with an alias, besides the default key. */
    j = call_ok(cl, "Kms.CreateKey", "{\"Description\":\"canary\"}");
    snprintf(key_id, sizeof(key_id), "%s",
             json_string_value(
                 json_object_get(json_object_get(j, "KeyMetadata"), "KeyId")));
    json_decref(j);
    assert_int_equal(strlen(key_id), 36);
    json_decref(call_ok(
        cl, "Kms.CreateAlias",
        "{\"AliasName\":\"alias/canary\",\"TargetKeyId\":\"%s\"}", key_id));

    /* First writes, with all three nodes up. */
    for (int i = 0; i < N_SECURE; i++) {
        snprintf(secure_val[i], sizeof(secure_val[i]), "%s-%d-v1", secure_tag,
                 i);
    }
    for (int i = 0; i < N_PLAIN; i++) {
        snprintf(plain_val[i], sizeof(plain_val[i]), "%s-%d-v1", plain_tag, i);
    }
    for (int i = 0; i < 150; i++) {
        snprintf(name, sizeof(name), "/canary/s/%03d", i);
        put_ok(cl, name, secure_val[i], "SecureString",
               i % 4 == 3 ? "alias/canary" : NULL);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "/canary/p/%03d", i);
        put_ok(cl, name, plain_val[i], "String", NULL);
    }

    /* A follower down while about 130 more entries are written: far past
     * the 16 entries kept behind a snapshot, so it catches up by one. */
    cluster_kill9(c, fv);
    for (int i = 150; i < N_SECURE; i++) {
        snprintf(name, sizeof(name), "/canary/s/%03d", i);
        put_ok(cl, name, secure_val[i], "SecureString",
               i % 4 == 3 ? key_id : NULL);
    }
    for (int i = 40; i < N_PLAIN; i++) {
        snprintf(name, sizeof(name), "/canary/p/%03d", i);
        put_ok(cl, name, plain_val[i], "String", NULL);
    }
    for (int v = 2; v <= 3; v++) {
        for (int i = 0; i < N_SECURE; i += v == 2 ? 5 : 10) {
            snprintf(secure_val[i], sizeof(secure_val[i]), "%s-%d-v%d",
                     secure_tag, i, v);
            snprintf(name, sizeof(name), "/canary/s/%03d", i);
            put_ok(cl, name, secure_val[i], "SecureString",
                   i % 4 == 3 ? "alias/canary" : NULL);
        }
    }
    for (int i = 0; i < N_PLAIN; i += 5) {
        snprintf(plain_val[i], sizeof(plain_val[i]), "%s-%d-v2", plain_tag, i);
        snprintf(name, sizeof(name), "/canary/p/%03d", i);
        put_ok(cl, name, plain_val[i], "String", NULL);
    }
    cairn_client_close(cl);

    cluster_restart(c, fv, 60000);
    {
        long long end = proc_now_ms() + 30000;
        for (unsigned id = 1; id <= 3; id++) {
            while (snapshot_index(c, id) == 0) {
                cluster_check_alive(c);
                if (proc_now_ms() > end) {
                    cluster_dump_logs(c);
                    fail_msg("node %u took no snapshot", id);
                }
                usleep(50 * 1000);
            }
        }
    }
    cluster_wait_converged(c, 60000, NULL);
    for (unsigned id = 1; id <= 3; id++) {
        fprintf(stderr, "# node %u: newest snapshot at index %llu\n", id,
                (unsigned long long)snapshot_index(c, id));
    }
    if (log_has(c, fv, "restored")) {
        char *log = cluster_log(c, fv);
        show_line(log, "restored");
        free(log);
    }
    capture_stop(&f->cap);

    /* Every file of every node: its data directory (store, Raft log
     * segments, snapshots) and its log. */
    for (unsigned id = 1; id <= 3; id++) {
        struct scan s;
        memset(&s, 0, sizeof(s));
        s.needles[0] = secure_tag;
        s.needles[1] = secure_hex;
        s.needles[2] = plain_tag;
        s.needles[3] = "/canary/s/";
        s.n_needles = 4;
        scan_tree(c->nodes[id].data, &s);
        fprintf(stderr,
                "# node %u data: %zu files, %zu bytes; String canary %zu "
                "times (first in %s; in %u Raft files), SecureString names "
                "%zu times, SecureString canary %zu times\n",
                id, s.files, s.bytes, s.hits[2], s.where[2],
                s.raft_files_with[2], s.hits[3], s.hits[0]);
        if (s.hits[0] != 0 || s.hits[1] != 0) {
            fail_msg("node %u: a SecureString canary is in %s", id,
                     s.hits[0] != 0 ? s.where[0] : s.where[1]);
        }
        /* The scan sees the values that are stored in the clear. */
        assert_true(s.hits[2] > 0);
        assert_true(s.raft_files_with[2] > 0);
        assert_true(s.hits[3] > 0);

        memset(s.hits, 0, sizeof(s.hits));
        scan_tree(c->nodes[id].log, &s);
        if (s.hits[0] != 0 || s.hits[1] != 0) {
            fail_msg("node %u: a SecureString canary is in its log %s", id,
                     c->nodes[id].log);
        }
    }

    /* The traffic between the nodes. */
    if (captured) {
        size_t secure = 0, hex = 0, plain = 0;
        size_t names[2] = {0, 0}, sealed[2] = {0, 0}, bytes[2] = {0, 0};
        for (size_t i = 0; i < f->cap.n_flows; i++) {
            const struct flow *fl = &f->cap.flows[i];
            const struct buf *b = &fl->data;
            /* 0: a Raft link; 1: forwarding and read-index calls. */
            int api = 0;
            for (unsigned id = 1; id <= 3; id++) {
                uint16_t port = port_of(c->nodes[id].api);
                api = api || fl->sport == port || fl->dport == port;
            }
            secure += count_in(b->data, b->len, secure_tag);
            hex += count_in(b->data, b->len, secure_hex);
            plain += count_in(b->data, b->len, plain_tag);
            names[api] += count_in(b->data, b->len, "/canary/s/");
            sealed[api] += count_in(b->data, b->len, "CRNE");
            bytes[api] += b->len;
        }
        fprintf(stderr,
                "# captured %llu packets in %zu flows (%u gaps, %u truncated, "
                "%u dropped): Raft links %zu bytes (%zu SecureString names, "
                "%zu sealed values), API calls between nodes %zu bytes (%zu "
                "names, %zu sealed values); String canary %zu times, "
                "SecureString canary %zu times\n",
                (unsigned long long)f->cap.packets, f->cap.n_flows, f->cap.gaps,
                f->cap.truncated, f->cap.drops, bytes[0], names[0], sealed[0],
                bytes[1], names[1], sealed[1], plain, secure);
        assert_false(f->cap.oom);
        /* A lost packet could have held a canary: the proof needs all. */
        assert_int_equal(f->cap.drops, 0);
        assert_int_equal(f->cap.truncated, 0);
        assert_int_equal(secure, 0);
        assert_int_equal(hex, 0);
        /* The capture saw the String values cross, and the SecureString
         * puts (by name, with their sealed values) on both paths: forwarded
         * by the follower and replicated by the leader. */
        assert_true(plain > 0);
        assert_true(names[0] > 0 && sealed[0] > 0);
        assert_true(names[1] > 0 && sealed[1] > 0);
    }

    /* Every node decrypts every value, with linearizable reads. */
    for (unsigned id = 1; id <= 3; id++) {
        char where[32];
        snprintf(where, sizeof(where), "node %u", id);
        cl = cluster_node_client(c, id, false);
        for (int i = 0; i < N_SECURE; i++) {
            snprintf(name, sizeof(name), "/canary/s/%03d", i);
            get_ok(cl, name, true, secure_val[i], where);
        }
        for (int i = 0; i < N_PLAIN; i++) {
            snprintf(name, sizeof(name), "/canary/p/%03d", i);
            get_ok(cl, name, false, plain_val[i], where);
        }
        cairn_client_close(cl);
    }
}

/* The sealed Value of @p name, read without decryption as msgpack (bin). */
static void sealed_value(struct cairn_client *cl,
                         const char *name,
                         const char *plain,
                         struct buf *out)
{
    struct cairn_error err;
    struct buf req;
    msgpack_packer pk;
    void *resp = NULL;
    size_t len = 0;
    struct mp_doc doc;
    const msgpack_object *p;
    struct mp_str v;
    bool is_bin = false;

    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_cstr(&pk, "Name", name);
    if (cairn_call(cl, "GetParameter", req.data, req.len, &resp, &len, &err) !=
        0) {
        fail_msg("GetParameter %s: %s", name, err.msg);
    }
    buf_close(&req);
    assert_int_equal(mp_doc_parse(&doc, resp, len, &err), 0);
    p = mp_map_get(&doc.root, "Parameter");
    assert_non_null(p);
    assert_int_equal(mp_get_bytes(p, "Value", &v, &is_bin, &err), 1);
    assert_true(is_bin);
    assert_true(v.n > 4 && memcmp(v.p, "CRNE", 4) == 0);
    assert_null(memmem(v.p, v.n, plain, strlen(plain)));
    buf_reset(out);
    buf_append(out, v.p, v.n);
    mp_doc_close(&doc);
    free(resp);
}

/* Apply a PutParameter of a SecureString with the sealed Value @p blob
 * straight to a stopped node's store, at store index @p index, as if the
 * log had held it. */
static void apply_sealed_put(struct store *s,
                             uint64_t index,
                             const char *name,
                             const struct buf *blob,
                             uint64_t chars)
{
    struct timespec now;
    struct buf cmd;
    msgpack_packer pk;
    const struct sm_outcome *o = NULL;
    int rv;

    clock_gettime(CLOCK_REALTIME, &now);
    buf_init(&cmd);
    mp_packer_init(&pk, &cmd);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_cstr(&pk, "op", "PutParameter");
    mp_pack_kv_i64(&pk, "ts",
                   (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    mp_pack_kv_cstr(&pk, "user", "arn:aws:iam::000000000000:root");
    mp_pack_cstr(&pk, "req");
    msgpack_pack_map(&pk, 5);
    mp_pack_kv_cstr(&pk, "Name", name);
    mp_pack_kv_cstr(&pk, "Type", "SecureString");
    mp_pack_cstr(&pk, "Value");
    mp_pack_bin(&pk, blob->data, blob->len);
    mp_pack_kv_u64(&pk, "ValueLength", chars);
    mp_pack_kv_bool(&pk, "Overwrite", true);
    assert_false(cmd.oom);
    rv = sm_apply(s, index, cmd.data, cmd.len, &o);
    buf_close(&cmd);
    if (rv != 0) {
        fail_msg("sm_apply at %llu: fault %d", (unsigned long long)index, rv);
    }
    assert_false(o->skipped);
    if (o->err.code != 0) {
        fail_msg("PutParameter %s at the store: %s %s", name, o->err.type,
                 o->err.msg);
    }
}

/* Tampering below the API. With the node stopped, its store is given a
 * SecureString whose sealed value was copied from another parameter
 * (/t/b <- /t/a's blob) and two whose own blobs have one byte flipped, in
 * the value's ciphertext (/t/c) and in the wrapped data key (/t/d). Each
 * fails to decrypt with InvalidCiphertextException (DATA_LOSS) after the
 * restart, while the node keeps serving: /t/a still decrypts, a String
 * reads, and the tampered values still read sealed (at version 2, so the
 * tampered commands were applied). */
static void tampered_values_refused(void **state)
{
    struct fixture *f = *state;
    struct cluster_options o;
    struct cluster *c;
    struct env_root_key rk;
    struct cairn_client *cl;
    struct cairn_error err;
    struct cairn_parameter p;
    struct store_options so;
    struct store *s = NULL;
    char key[4200], store_dir[4200];
    struct buf a, cc, dd;
    uint64_t applied = 0;
    size_t kid;

    new_root_key(f, "root.key", key, sizeof(key), &rk);
    cluster_options_default(&o);
    o.n = 1;
    o.root_key_file = key;
    f->c = c = cluster_create(&o);
    cluster_start(c);
    cl = cluster_node_client(c, 1, false);
    put_ok(cl, "/t/a", "secret-a", "SecureString", NULL);
    put_ok(cl, "/t/b", "secret-b", "SecureString", NULL);
    put_ok(cl, "/t/c", "secret-c", "SecureString", NULL);
    put_ok(cl, "/t/d", "secret-d", "SecureString", NULL);
    put_ok(cl, "/t/plain", "plain", "String", NULL);
    buf_init(&a);
    buf_init(&cc);
    buf_init(&dd);
    sealed_value(cl, "/t/a", "secret-a", &a);
    sealed_value(cl, "/t/c", "secret-c", &cc);
    sealed_value(cl, "/t/d", "secret-d", &dd);
    cairn_client_close(cl);
    /* "CRNE" 1 | id length | id | version (4) | data key nonce (12) ct (32)
     * tag (16) | value nonce (12) ct (n) tag (16) */
    kid = cc.data[5];
    assert_int_equal(cc.len, 4 + 1 + 1 + kid + 4 + 60 + 12 + 8 + 16);
    cc.data[cc.len - 16 - 1] ^= 0x01;          /* last value ciphertext byte */
    dd.data[4 + 1 + 1 + kid + 4 + 12] ^= 0x80; /* first data key byte */

    /* The stopped node's store takes the commands at the next store
     * indexes within the last Raft entry it applied: the log never holds
     * an entry there, so nothing replays over them. */
    cluster_stop(c, 1);
    snprintf(store_dir, sizeof(store_dir), "%s/store", c->nodes[1].data);
    store_options_default(&so);
    if (store_open(store_dir, &so, &s, &err) != 0) {
        fail_msg("store_open %s: %s", store_dir, err.msg);
    }
    assert_int_equal(store_applied_index(s, &applied, &err), 0);
    assert_true((applied & 0xffff) + 3 <= 0xffff);
    apply_sealed_put(s, applied + 1, "/t/b", &a, strlen("secret-a"));
    apply_sealed_put(s, applied + 2, "/t/c", &cc, strlen("secret-c"));
    apply_sealed_put(s, applied + 3, "/t/d", &dd, strlen("secret-d"));
    store_close(s);
    buf_close(&a);
    buf_close(&cc);
    buf_close(&dd);

    cluster_restart(c, 1, 60000);
    cl = cluster_node_client(c, 1, false);
    get_fails(cl, "/t/b", CAIRN_DATA_LOSS, "InvalidCiphertextException");
    get_fails(cl, "/t/c", CAIRN_DATA_LOSS, "InvalidCiphertextException");
    get_fails(cl, "/t/d", CAIRN_DATA_LOSS, "InvalidCiphertextException");
    cluster_check_alive(c);
    get_ok(cl, "/t/a", true, "secret-a", "node 1");
    get_ok(cl, "/t/plain", false, "plain", "node 1");
    for (int i = 0; i < 3; i++) {
        const char *names[] = {"/t/b", "/t/c", "/t/d"};
        assert_int_equal(cairn_get_parameter(cl, names[i], false, &p, &err), 0);
        assert_int_equal(p.version, 2);
        assert_string_equal(p.type, "SecureString");
        cairn_parameter_free(&p);
    }
    /* Reads of several values fail as a whole; the sealed history reads. */
    call_fails(cl, "GetParametersByPath",
               "{\"Path\":\"/t\",\"WithDecryption\":true}", CAIRN_DATA_LOSS,
               "InvalidCiphertextException");
    call_fails(cl, "GetParameters",
               "{\"Names\":[\"/t/a\",\"/t/b\"],\"WithDecryption\":true}",
               CAIRN_DATA_LOSS, "InvalidCiphertextException");
    call_fails(cl, "GetParameterHistory",
               "{\"Name\":\"/t/c\",\"WithDecryption\":true}", CAIRN_DATA_LOSS,
               "InvalidCiphertextException");
    {
        json_t *j = call_ok(cl, "GetParameterHistory", "{\"Name\":\"/t/c\"}");
        assert_int_equal(json_array_size(json_object_get(j, "Parameters")), 2);
        json_decref(j);
    }
    /* New SecureString writes still work. */
    put_ok(cl, "/t/e", "secret-e", "SecureString", NULL);
    get_ok(cl, "/t/e", true, "secret-e", "node 1");
    cairn_client_close(cl);
    cluster_check_alive(c);
}

/* Decrypted reads of @p n names from every running node, each alone, with
 * linearizable reads. */
static void assert_decrypts_everywhere(struct cluster *c,
                                       char names[][32],
                                       char values[][32],
                                       int n)
{
    for (unsigned id = 1; id <= c->n; id++) {
        struct cairn_client *cl;
        char where[32];
        if (!cluster_running(c, id)) {
            continue;
        }
        snprintf(where, sizeof(where), "node %u", id);
        cl = cluster_node_client(c, id, false);
        for (int i = 0; i < n; i++) {
            get_ok(cl, names[i], true, values[i], where);
        }
        cairn_client_close(cl);
    }
}

/* Restart every node, one at a time, with the root keys @p root and
 * @p previous (NULL: none), then wait until they converge. */
static void roll(struct cluster *c, const char *root, const char *previous)
{
    for (unsigned id = 1; id <= c->n; id++) {
        cluster_stop(c, id);
        cluster_set_root_keys(c, id, root, previous);
        cluster_restart(c, id, 60000);
    }
    cluster_wait_leader(c, 30000);
    cluster_wait_converged(c, 60000, NULL);
}

/* A root key rolled out on a running cluster (docs/encryption.md, "Rolling
 * out a new root key"): values under the default key and under a customer
 * key with two versions decrypt on every node at every step; after
 * Kms.RotateRootKey and a restart with the new key alone, a node given only
 * the old key refuses to start, naming both fingerprints; restarted with
 * the new key it serves again. */
static void root_key_rotation(void **state)
{
    enum { N = 9 };
    struct fixture *f = *state;
    struct cluster_options o;
    struct cluster *c;
    struct env_root_key ka, kb;
    char a[4200], b[4200], key_id[64];
    char names[N][32], values[N][32];
    struct cairn_client *cl;
    uint64_t victim;
    char *log;
    json_t *j;

    new_root_key(f, "a.key", a, sizeof(a), &ka);
    new_root_key(f, "b.key", b, sizeof(b), &kb);
    fprintf(stderr, "# root key A %s, B %s\n", ka.fingerprint_hex,
            kb.fingerprint_hex);
    cluster_options_default(&o);
    o.root_key_file = a;
    f->c = c = cluster_create(&o);
    cluster_start(c);

    cl = cluster_client(c, 0, 8, 10000);
    j = call_ok(cl, "Kms.CreateKey", "{\"Description\":\"rotated\"}");
    snprintf(key_id, sizeof(key_id), "%s",
             json_string_value(
                 json_object_get(json_object_get(j, "KeyMetadata"), "KeyId")));
    json_decref(j);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "/rot/p%d", i);
        snprintf(values[i], sizeof(values[i]), "rotation-secret-%d", i);
        /* 0-2 the default key, 3-5 key version 1, 6-8 key version 2. */
        if (i == 6) {
            json_decref(
                call_ok(cl, "Kms.RotateKey", "{\"KeyId\":\"%s\"}", key_id));
        }
        put_ok(cl, names[i], values[i], "SecureString", i < 3 ? NULL : key_id);
    }
    j = call_ok(cl, "Kms.DescribeKey", "{\"KeyId\":\"%s\"}", key_id);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(j, "KeyMetadata"), "CurrentVersion")),
                     2);
    json_decref(j);
    cairn_client_close(cl);
    cluster_wait_converged(c, 60000, NULL);
    assert_decrypts_everywhere(c, names, values, N);

    /* Step 2: every node holds both keys. */
    roll(c, b, a);
    assert_decrypts_everywhere(c, names, values, N);

    /* Step 3: the keyring re-wrapped by B. */
    cl = cluster_client(c, 0, 8, 10000);
    json_decref(call_ok(cl, "Kms.RotateRootKey", "{}"));
    cairn_client_close(cl);
    cluster_wait_converged(c, 60000, NULL);
    assert_decrypts_everywhere(c, names, values, N);

    /* Step 4: B alone. */
    roll(c, b, NULL);
    assert_decrypts_everywhere(c, names, values, N);
    /* Keys work after the rotation: a new version and a new value. */
    cl = cluster_client(c, 0, 8, 10000);
    json_decref(call_ok(cl, "Kms.RotateKey", "{\"KeyId\":\"%s\"}", key_id));
    put_ok(cl, "/rot/after", "after-rotation", "SecureString", key_id);
    get_ok(cl, "/rot/after", true, "after-rotation", "the cluster");
    cairn_client_close(cl);
    cluster_wait_converged(c, 60000, NULL);

    /* A node given only the old key refuses to start. */
    victim = cluster_follower(c, cluster_wait_leader(c, 30000), 0);
    cluster_stop(c, victim);
    cluster_set_root_keys(c, victim, a, NULL);
    log = start_refused(c, victim);
    assert_fingerprint_error(log, kb.fingerprint_hex, ka.fingerprint_hex);
    free(log);
    /* A cluster node given no root key at all refuses too: its store holds
     * key material it could not read. */
    cluster_set_root_keys(c, victim, NULL, NULL);
    log = start_refused(c, victim);
    assert_non_null(strstr(log, "no root key was given"));
    free(log);
    /* With the new key it serves again, the data intact. */
    cluster_set_root_keys(c, victim, b, NULL);
    cluster_restart(c, victim, 60000);
    cluster_wait_converged(c, 60000, NULL);
    assert_decrypts_everywhere(c, names, values, N);
}

/* A node whose store holds keyring material, started with another root
 * key file, exits non-zero and names both fingerprints; without any root
 * key file (a single node then makes one in its data directory) it is
 * refused the same way; with the right key it starts and decrypts. */
static void wrong_root_key_at_start(void **state)
{
    struct fixture *f = *state;
    struct cluster_options o;
    struct cluster *c;
    struct env_root_key right, wrong;
    char rk[4200], wk[4200];
    struct cairn_client *cl;
    char *log;

    new_root_key(f, "right.key", rk, sizeof(rk), &right);
    new_root_key(f, "wrong.key", wk, sizeof(wk), &wrong);
    cluster_options_default(&o);
    o.n = 1;
    o.root_key_file = rk;
    f->c = c = cluster_create(&o);
    cluster_start(c);
    cl = cluster_node_client(c, 1, false);
    put_ok(cl, "/w/secret", "wrong-key-secret", "SecureString", NULL);
    cairn_client_close(cl);
    cluster_stop(c, 1);

    cluster_set_root_keys(c, 1, wk, NULL);
    log = start_refused(c, 1);
    assert_fingerprint_error(log, right.fingerprint_hex, wrong.fingerprint_hex);
    free(log);

    /* No root key file: the key the node makes in its data directory does
     * not open the keyring either. */
    cluster_set_root_keys(c, 1, NULL, NULL);
    log = start_refused(c, 1);
    assert_non_null(strstr(log, "created a root key in"));
    {
        const char *fp = strstr(log, "(fingerprint ");
        char own[17];
        assert_non_null(fp);
        snprintf(own, sizeof(own), "%s", fp + strlen("(fingerprint "));
        assert_fingerprint_error(log, right.fingerprint_hex, own);
    }
    free(log);

    cluster_set_root_keys(c, 1, rk, NULL);
    cluster_restart(c, 1, 60000);
    cl = cluster_node_client(c, 1, false);
    get_ok(cl, "/w/secret", true, "wrong-key-secret", "node 1");
    cairn_client_close(cl);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(no_plaintext_on_disk_or_wire),
        T(tampered_values_refused),
        T(root_key_rotation),
        T(wrong_root_key_at_start),
    };
#undef T
    /* One case by name (a glob), for reruns: CAIRN_TEST_FILTER=tamper*. */
    if (getenv("CAIRN_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("CAIRN_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
