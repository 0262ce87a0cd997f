/* A main() for fuzz targets built without libFuzzer: it replays a corpus,
 * then deterministic mutations of it, through LLVMFuzzerTestOneInput.
 *
 * Usage: fuzz-<target> DIR|FILE...
 * Every regular file under the arguments (not recursive) runs first, in
 * name order. Then each one is mutated with a seeded PRNG: truncations,
 * bit flips, byte insertions, "interesting" bytes, huge msgpack length
 * headers, duplications and splices with the next file. The same seed
 * gives the same inputs, so a failure found in CI replays locally.
 *
 * Environment:
 *   FUZZ_REPLAY_SEED     PRNG seed (default 0x5eed)
 *   FUZZ_REPLAY_ROUNDS   mutation rounds per file (default 1)
 *   FUZZ_REPLAY_SECONDS  stop mutating after this long (default 45)
 *
 * Each input is passed in a heap block of exactly its size, so that
 * AddressSanitizer reports any read past its end. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Mutations of one file per round, roughly: 64 + 8 truncations, 32 bit
 * flips, 16 insertions, 16 interesting bytes, 24 headers, 5 duplications,
 * 4 splices. */
#define MAX_TRUNC 64
#define N_CUTS 8
#define N_FLIPS 32
#define N_INSERTS 16
#define N_BYTES 16
#define N_HEADER_POS 4
#define N_DUPS 4
#define N_SPLICES 4

struct input
{
    char *name;
    uint8_t *data;
    size_t len;
};

static struct input *inputs;
static size_t n_inputs;
static size_t cap_inputs;
static size_t n_run;
static uint64_t rng;

/* splitmix64: small, fast, and good enough to pick mutations. */
static uint64_t rng_next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        exit(1);
    }
    return p;
}

/* Run one input from an exact-size copy. */
static void run(const uint8_t *p, size_t n)
{
    uint8_t *copy = xmalloc(n);
    if (n > 0) {
        memcpy(copy, p, n);
    }
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    n_run++;
}

static int load_file(const char *path, const char *name)
{
    struct input *in;
    FILE *f;
    long len;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: %s: cannot size\n", path);
        fclose(f);
        return -1;
    }
    if (n_inputs == cap_inputs) {
        cap_inputs = cap_inputs == 0 ? 64 : cap_inputs * 2;
        inputs = realloc(inputs, cap_inputs * sizeof *inputs);
        if (inputs == NULL) {
            fprintf(stderr, "replay: out of memory\n");
            exit(1);
        }
    }
    in = &inputs[n_inputs];
    in->name = strdup(name);
    in->len = (size_t)len;
    in->data = xmalloc(in->len);
    if (in->name == NULL ||
        (in->len > 0 && fread(in->data, 1, in->len, f) != in->len)) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    n_inputs++;
    return 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int load_path(const char *path)
{
    struct dirent **names;
    struct stat st;
    int n, rv = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        return load_file(path, path);
    }
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char *full;
        if (names[i]->d_name[0] != '.' && rv == 0) {
            if (asprintf(&full, "%s/%s", path, names[i]->d_name) < 0) {
                exit(1);
            }
            if (is_regular(full)) {
                rv = load_file(full, names[i]->d_name);
            }
            free(full);
        }
        free(names[i]);
    }
    free(names);
    return rv;
}

/* Write a msgpack header with a huge length at @p pos of @p buf (size
 * *len, capacity >= *len + 5), growing the input if it runs past the end. */
static void put_header(uint8_t *buf,
                       size_t *len,
                       size_t pos,
                       uint8_t type,
                       int width,
                       int which)
{
    static const uint32_t lengths[] = {0xffffffffu, 0x7fffffffu, 0x10000u};
    uint32_t v = which < 3 ? lengths[which] : (uint32_t)rng_next();

    buf[pos] = type;
    for (int i = 0; i < width; i++) {
        buf[pos + 1 + i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    }
    if (pos + 1 + (size_t)width > *len) {
        *len = pos + 1 + (size_t)width;
    }
}

static void mutate(size_t idx)
{
    static const uint8_t interesting[] = {0x00, 0xff, 0x7f, 0x80, 0x90,
                                          0xa0, 0xc0, 0xc1, 0xc2, 0xc3,
                                          0xcf, 0xd3, 0xd9, 0xe0};
    static const struct
    {
        uint8_t type;
        int width;
    } headers[] = {{0xdc, 2}, {0xdd, 4}, {0xde, 2},
                   {0xdf, 4}, {0xdb, 4}, {0xc6, 4}};
    const struct input *in = &inputs[idx];
    const struct input *other = &inputs[(idx + 1) % n_inputs];
    size_t n = in->len;
    size_t cap = 2 * n + other->len + 16;
    uint8_t *buf = xmalloc(cap);
    size_t len, a, b;

    /* Every short prefix, then random cut points. */
    for (size_t t = 0; t < n && t <= MAX_TRUNC; t++) {
        run(in->data, t);
    }
    if (n > MAX_TRUNC + 1) {
        for (int i = 0; i < N_CUTS; i++) {
            run(in->data, MAX_TRUNC + 1 + rng_below(n - MAX_TRUNC - 1));
        }
    }
    if (n > 0) {
        for (int i = 0; i < N_FLIPS; i++) {
            size_t bit = rng_below(n * 8);
            memcpy(buf, in->data, n);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            run(buf, n);
        }
        for (int i = 0; i < N_BYTES; i++) {
            memcpy(buf, in->data, n);
            buf[rng_below(n)] = interesting[rng_below(sizeof interesting)];
            run(buf, n);
        }
    }
    for (int i = 0; i < N_INSERTS; i++) {
        a = rng_below(n + 1);
        memcpy(buf, in->data, a);
        buf[a] = (uint8_t)rng_next();
        memcpy(buf + a + 1, in->data + a, n - a);
        run(buf, n + 1);
    }
    for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
        for (int i = 0; i < N_HEADER_POS; i++) {
            memcpy(buf, in->data, n);
            len = n;
            put_header(buf, &len, i == 0 ? 0 : rng_below(n + 1),
                       headers[h].type, headers[h].width, i);
            run(buf, len);
        }
    }
    /* The whole input twice, then a slice repeated in place. */
    memcpy(buf, in->data, n);
    memcpy(buf + n, in->data, n);
    run(buf, 2 * n);
    for (int i = 0; i < N_DUPS && n > 0; i++) {
        a = rng_below(n);
        b = a + 1 + rng_below(n - a);
        memcpy(buf, in->data, b);
        memcpy(buf + b, in->data + a, b - a);
        memcpy(buf + b + (b - a), in->data + b, n - b);
        run(buf, n + (b - a));
    }
    /* A prefix of this file, then a suffix of the next one. */
    for (int i = 0; i < N_SPLICES; i++) {
        a = rng_below(n + 1);
        b = rng_below(other->len + 1);
        memcpy(buf, in->data, a);
        memcpy(buf + a, other->data + b, other->len - b);
        run(buf, a + other->len - b);
    }
    free(buf);
}

static unsigned long env_ulong(const char *name, unsigned long def)
{
    const char *v = getenv(name);
    char *end;
    unsigned long x;

    if (v == NULL || v[0] == '\0') {
        return def;
    }
    errno = 0;
    x = strtoul(v, &end, 0);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "replay: ignoring bad %s=%s\n", name, v);
        return def;
    }
    return x;
}

/* A target may define fuzz_finish() to check its state once every input has
 * run (fuzz_sm reopens its store); it is called before exit, while the
 * libraries are still initialised. */
void fuzz_finish(void) __attribute__((weak));

int main(int argc, char **argv)
{
    unsigned long seed = env_ulong("FUZZ_REPLAY_SEED", 0x5eed);
    unsigned long rounds = env_ulong("FUZZ_REPLAY_ROUNDS", 1);
    unsigned long budget = env_ulong("FUZZ_REPLAY_SECONDS", 45);
    size_t n_corpus;
    double start;
    int stopped = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (load_path(argv[i]) != 0) {
            return 1;
        }
    }
    if (n_inputs == 0) {
        fprintf(stderr, "replay: no corpus files found\n");
        return 1;
    }

    start = now();
    for (size_t i = 0; i < n_inputs; i++) {
        run(inputs[i].data, inputs[i].len);
    }
    n_corpus = n_run;
    rng = seed;
    for (unsigned long r = 0; r < rounds && !stopped; r++) {
        for (size_t i = 0; i < n_inputs; i++) {
            if (now() - start > (double)budget) {
                stopped = 1;
                break;
            }
            mutate(i);
        }
    }
    printf(
        "replay: %zu corpus files, %zu mutated inputs, %zu inputs in "
        "%.1f s (seed %#lx%s)\n",
        n_corpus, n_run - n_corpus, n_run, now() - start, seed,
        stopped ? ", time budget reached" : "");

    if (fuzz_finish != NULL) {
        fuzz_finish();
    }
    for (size_t i = 0; i < n_inputs; i++) {
        free(inputs[i].name);
        free(inputs[i].data);
    }
    free(inputs);
    return 0;
}
