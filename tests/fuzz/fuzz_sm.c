/* Fuzz target: the state machine and the read queries on untrusted bytes.
 *
 * One store lives in a temporary directory for the whole process (LMDB
 * allows one environment per file per process); it is created on the first
 * input and removed at exit. Each input is:
 * - applied as a command with sm_apply at the next Raft index: the return
 *   must be 0 (applied, with a well-formed outcome) or a clean status for a
 *   local fault;
 * - run as the request body of every read method: a clean status, or a
 *   well-formed msgpack response.
 * Every CHECK_EVERY inputs the store must still answer: the applied index
 * has advanced as expected, a replay of an old index is skipped, a listing
 * of "/" works and a parameter written then read comes back. */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mp.h"
#include "query.h"
#include "sm.h"
#include "status.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_sm: check failed at %s:%d: %s\n", __FILE__, \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define CHECK_EVERY 64
#define MAP_SIZE (1024u * 1024u * 1024u)
#define PROBE_NAME "/fuzz/probe"

static const char *const read_methods[] = {
    "GetParameter",        "GetParameters",
    "GetParametersByPath", "GetParameterHistory",
    "DescribeParameters",  "ListTagsForResource",
    "GetServiceSetting",   "GetChanges",
    "ListMembers",         "ListKeys",
    "DescribeKey",         "ListAliases",
    "GetKeyMaterial",
};

static struct store *store;
static char *dir;
static uint64_t next_index;
static uint64_t n_inputs;
static struct buf out;
static struct buf cmd;

static int rm_one(const char *p,
                  const struct stat *st,
                  int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void fuzz_finish(void);

/* After everything the inputs did, the store must still open and answer,
 * with every applied index kept. Called by the replay driver. */
void fuzz_finish(void)
{
    struct store_options opts;
    struct cairn_error err;
    uint64_t applied = 0;

    if (store == NULL) {
        return;
    }
    store_close(store);
    store = NULL;
    store_options_default(&opts);
    opts.map_size = MAP_SIZE;
    CHECK(store_open(dir, &opts, &store, &err) == 0);
    CHECK(store_applied_index(store, &applied, &err) == 0);
    CHECK(applied == next_index - 1);
    buf_reset(&out);
    CHECK(query_run(store, "GetParametersByPath",
                    "\x82\xa4Path\xa1/\xa9Recursive\xc3", 19, &out, &err) == 0);
    CHECK(out.len > 0);
    fprintf(stderr, "fuzz_sm: store reopened at index %llu and answers\n",
            (unsigned long long)applied);
}

static void teardown(void)
{
    store_close(store);
    store = NULL;
    if (dir != NULL) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
        dir = NULL;
    }
    buf_close(&out);
    buf_close(&cmd);
}

static void check_error(int rv, const struct cairn_error *err)
{
    CHECK(rv > CAIRN_OK && rv <= CAIRN_UNAUTHENTICATED);
    CHECK(err->code == rv);
    CHECK(memchr(err->msg, '\0', sizeof err->msg) != NULL);
    CHECK(memchr(err->type, '\0', sizeof err->type) != NULL);
}

/* A response body must be exactly one well-formed msgpack map. */
static void check_body(const void *body, size_t len)
{
    struct cairn_error err;
    CHECK(body != NULL && len > 0);
    CHECK(mp_check(body, len, &err) == 0);
    CHECK((((const uint8_t *)body)[0] & 0xf0) == 0x80 ||
          ((const uint8_t *)body)[0] == 0xde ||
          ((const uint8_t *)body)[0] == 0xdf);
}

/* Apply @p c at the next index. Returns the outcome, or NULL after a local
 * fault (which must be a clean status). */
static const struct sm_outcome *apply(const void *c, size_t len)
{
    const struct sm_outcome *o = NULL;
    int rv = sm_apply(store, next_index, c, len, &o);

    if (rv != 0) {
        /* Nothing was written: the index stays free for the next one. */
        CHECK(rv > CAIRN_OK && rv <= CAIRN_UNAUTHENTICATED);
        return NULL;
    }
    CHECK(o != NULL);
    CHECK(!o->skipped);
    next_index++;
    if (o->err.code == CAIRN_OK) {
        check_body(o->body, o->body_len);
    } else {
        check_error(o->err.code, &o->err);
        CHECK(o->body == NULL);
    }
    return o;
}

static void pack_head(msgpack_packer *pk, const char *op, uint32_t n_fields)
{
    buf_reset(&cmd);
    mp_packer_init(pk, &cmd);
    msgpack_pack_map(pk, 4);
    mp_pack_kv_cstr(pk, "op", op);
    mp_pack_kv_i64(pk, "ts", 1700000000000 + (int64_t)n_inputs);
    mp_pack_kv_cstr(pk, "user", "arn:aws:iam::123456789012:user/fuzz");
    mp_pack_cstr(pk, "req");
    msgpack_pack_map(pk, n_fields);
}

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    struct store_options opts;
    struct cairn_error err;
    uint8_t key[32];
    msgpack_packer pk;
    int rv;

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    if (asprintf(&dir, "%s/cairn-fuzz-sm-XXXXXX", base) < 0 ||
        mkdtemp(dir) == NULL) {
        fprintf(stderr, "fuzz_sm: cannot create a directory in %s: %s\n", base,
                strerror(errno));
        abort();
    }
    atexit(teardown);
    store_options_default(&opts);
    opts.map_size = MAP_SIZE;
    opts.no_sync = true;
    rv = store_open(dir, &opts, &store, &err);
    if (rv != 0) {
        fprintf(stderr, "fuzz_sm: store_open %s: %s: %s\n", dir,
                cairn_status_name(rv), err.msg);
        abort();
    }
    buf_init(&out);
    buf_init(&cmd);
    CHECK(store_applied_index(store, &next_index, &err) == 0);
    CHECK(next_index == 0);
    next_index = 1;

    for (size_t i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)i;
    }
    pack_head(&pk, "Init", 1);
    mp_pack_cstr(&pk, "TokenKey");
    mp_pack_bin(&pk, key, sizeof key);
    CHECK(!cmd.oom);
    CHECK(apply(cmd.data, cmd.len) != NULL);

    /* An unknown method is refused cleanly. */
    rv = query_run(store, "NoSuchMethod", "\x80", 1, &out, &err);
    CHECK(rv == CAIRN_UNIMPLEMENTED);
    CHECK(out.len == 0);
}

/* Write a parameter, read it back, and list from "/": the store still
 * works after whatever the inputs did. */
static void check_store_answers(const uint8_t *data, size_t size)
{
    const struct sm_outcome *o = NULL;
    struct cairn_error err;
    msgpack_packer pk;
    struct buf req;
    uint64_t applied;
    char value[32];
    int rv;

    CHECK(store_applied_index(store, &applied, &err) == 0);
    CHECK(applied == next_index - 1);
    /* An index at or below the applied one is a no-op. */
    CHECK(sm_apply(store, 1, data, size, &o) == 0);
    CHECK(o != NULL && o->skipped);

    buf_init(&req);
    mp_packer_init(&pk, &req);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_cstr(&pk, "Path", "/");
    mp_pack_kv_bool(&pk, "Recursive", true);
    CHECK(!req.oom);
    buf_reset(&out);
    rv = query_run(store, "GetParametersByPath", req.data, req.len, &out, &err);
    CHECK(rv == 0);
    check_body(out.data, out.len);

    /* The inputs may have deleted or labelled the probe, filled the
     * parameter limit, or changed the default tier: a business error on
     * this put is fine, but a put that succeeded must read back. */
    snprintf(value, sizeof value, "probe-%llu", (unsigned long long)n_inputs);
    pack_head(&pk, "PutParameter", 4);
    mp_pack_kv_cstr(&pk, "Name", PROBE_NAME);
    mp_pack_kv_cstr(&pk, "Value", value);
    mp_pack_kv_cstr(&pk, "Type", "String");
    mp_pack_kv_bool(&pk, "Overwrite", true);
    CHECK(!cmd.oom);
    o = apply(cmd.data, cmd.len);
    if (o != NULL && o->err.code == CAIRN_OK) {
        struct mp_doc doc;
        const msgpack_object *param, *v;

        buf_reset(&req);
        mp_packer_init(&pk, &req);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_cstr(&pk, "Name", PROBE_NAME);
        CHECK(!req.oom);
        buf_reset(&out);
        rv = query_run(store, "GetParameter", req.data, req.len, &out, &err);
        CHECK(rv == 0);
        CHECK(mp_doc_parse(&doc, out.data, out.len, &err) == 0);
        param = mp_map_get(&doc.root, "Parameter");
        CHECK(param != NULL);
        v = mp_map_get(param, "Value");
        CHECK(v != NULL && mp_str_eq(v, value));
        mp_doc_close(&doc);
    }
    buf_close(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cairn_error err;

    if (store == NULL) {
        setup();
    }
    n_inputs++;

    apply(data, size);

    for (size_t i = 0; i < sizeof read_methods / sizeof read_methods[0]; i++) {
        int rv;
        buf_reset(&out);
        cairn_error_clear(&err);
        rv = query_run(store, read_methods[i], data, size, &out, &err);
        if (rv == 0) {
            check_body(out.data, out.len);
        } else {
            check_error(rv, &err);
            CHECK(out.len == 0);
        }
    }

    if (n_inputs % CHECK_EVERY == 0) {
        check_store_answers(data, size);
    }
    return 0;
}
