/* Unit tests for api/envelope.c: the root key file, key material wrapped by
 * a root key, and sealed SecureString values. The byte formats are checked
 * against docs/encryption.md by decrypting with OpenSSL directly, and every
 * parser is fed flipped bits and truncations of real blobs, each copied to
 * an allocation of its exact size so that ASan sees any over-read. */
#include "test.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"

/******************************************************************************
 *
 * Fixture
 *
 *****************************************************************************/

struct fixture
{
    char *dir;
    struct env_root_key a; /* key bytes 0x00..0x1f */
    struct env_root_key b; /* key bytes 0x20..0x3f */
    uint8_t material[ENV_KEY_LEN];
    struct buf out;
    struct buf plain;
    struct cairn_error err;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    uint8_t k[ENV_KEY_LEN];

    if (f == NULL) {
        return -1;
    }
    f->dir = test_mkdtemp();
    for (int i = 0; i < ENV_KEY_LEN; i++) {
        k[i] = (uint8_t)i;
    }
    env_root_key_from_bytes(&f->a, k);
    for (int i = 0; i < ENV_KEY_LEN; i++) {
        k[i] = (uint8_t)(0x20 + i);
    }
    env_root_key_from_bytes(&f->b, k);
    for (int i = 0; i < ENV_KEY_LEN; i++) {
        f->material[i] = (uint8_t)(0xa0 ^ i);
    }
    buf_init(&f->out);
    buf_init(&f->plain);
    cairn_error_clear(&f->err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    env_wipe_buf(&f->plain);
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

#define KEY_ID "1234abcd-12ab-34cd-56ef-1234567890ab"
#define NAME "/app/db/password"
#define SEALED_FIXED 98 /* everything but the key id and the value */

/* DIR/@p name; the caller frees. */
static char *path_in(struct fixture *f, const char *name)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", f->dir, name) > 0);
    return p;
}

/* Write @p n bytes to DIR/@p name with @p mode; returns the path (freed by
 * the caller). */
static char *write_key_file(struct fixture *f,
                            const char *name,
                            const void *text,
                            size_t n,
                            mode_t mode)
{
    char *p = path_in(f, name);
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(p, mode), 0);
    return p;
}

/* A valid root key file's text for key bytes 0x00..0x1f (key a). */
#define KEY_A_HEX \
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_A_FILE "cairn-root-key-v1 " KEY_A_HEX "\n"

/* Load DIR/@p name written with @p text and mode 0600; returns the status. */
static int load_text(struct fixture *f,
                     const char *name,
                     const char *text,
                     struct env_root_key *rk)
{
    char *p = write_key_file(f, name, text, strlen(text), 0600);
    int rv = env_root_key_load(p, rk, &f->err);
    free(p);
    return rv;
}

/* AES-256-GCM decryption done here, independently of envelope.c, to check
 * the formats against the documentation. True when the tag verifies. */
static bool gcm_decrypt(const uint8_t *key,
                        const uint8_t *nonce,
                        const void *aad,
                        size_t aad_len,
                        const uint8_t *ct,
                        size_t n,
                        const uint8_t *tag,
                        uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t t[16];
    uint8_t last[16];
    int outl;
    bool ok;

    assert_non_null(ctx);
    memcpy(t, tag, 16);
    assert_int_equal(
        EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len), 1);
    if (n > 0) {
        assert_int_equal(EVP_DecryptUpdate(ctx, out, &outl, ct, (int)n), 1);
    }
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, t), 1);
    ok = EVP_DecryptFinal_ex(ctx, last, &outl) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* @p prefix | @p id | @p version (4 bytes big-endian) into @p aad; returns
 * the length. */
static size_t key_aad(uint8_t *aad,
                      const char *prefix,
                      const char *id,
                      uint32_t version)
{
    size_t n = 0;
    memcpy(aad, prefix, strlen(prefix));
    n += strlen(prefix);
    memcpy(aad + n, id, strlen(id));
    n += strlen(id);
    aad[n++] = (uint8_t)(version >> 24);
    aad[n++] = (uint8_t)(version >> 16);
    aad[n++] = (uint8_t)(version >> 8);
    aad[n++] = (uint8_t)version;
    return n;
}

/* A heap copy of @p n bytes of @p p, of exactly that size (ASan catches a
 * read past it). */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);
    assert_non_null(c);
    if (n > 0) {
        memcpy(c, p, n);
    }
    return c;
}

/* @p n bytes of a recognisable pattern. */
static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + i * 131 + (i >> 8));
    }
}

/* Seal @p n bytes of @p plain for NAME with the fixture's material into
 * f->out (reset first). */
static void seal(struct fixture *f, const void *plain, size_t n)
{
    buf_reset(&f->out);
    assert_int_equal(env_seal(f->material, KEY_ID, 7, NAME, strlen(NAME), plain,
                              n, &f->out, &f->err),
                     0);
}

/******************************************************************************
 *
 * Assertions
 *
 *****************************************************************************/

#define assert_status(rv, code)                                               \
    do {                                                                      \
        int rv_ = (rv);                                                       \
        if (rv_ != (code)) {                                                  \
            fail_msg("%s: got %s (%s), want %s", #rv, cairn_status_name(rv_), \
                     f->err.msg, cairn_status_name(code));                    \
        }                                                                     \
    } while (0)

#define assert_msg_contains(s)                                        \
    do {                                                              \
        if (strstr(f->err.msg, (s)) == NULL) {                        \
            fail_msg("message \"%s\" lacks \"%s\"", f->err.msg, (s)); \
        }                                                             \
    } while (0)

/******************************************************************************
 *
 * Root keys
 *
 *****************************************************************************/

/* The fingerprint is the first 8 bytes of SHA-256("cairn root key
 * fingerprint" || key), as 16 lowercase hex digits (values from Python's
 * hashlib). */
static void fingerprint_known_answer(void **state)
{
    struct fixture *f = *state;
    struct env_root_key rk;
    uint8_t ff[ENV_KEY_LEN];

    assert_string_equal(f->a.fingerprint_hex, "a4c6aa70635dbe6b");
    assert_int_equal(f->a.fingerprint[0], 0xa4);
    assert_int_equal(f->a.fingerprint[7], 0x6b);
    memset(ff, 0xff, sizeof(ff));
    env_root_key_from_bytes(&rk, ff);
    assert_string_equal(rk.fingerprint_hex, "86410240c3c995ee");
    assert_memory_equal(rk.key, ff, ENV_KEY_LEN);

    env_root_key_wipe(&rk);
    memset(ff, 0, sizeof(ff));
    assert_memory_equal(rk.key, ff, ENV_KEY_LEN);
    assert_string_equal(rk.fingerprint_hex, "");
}

/* A created key file has mode 0600 and the documented text, loads back to
 * the same key and fingerprint, and is never overwritten. */
static void root_key_create_load(void **state)
{
    struct fixture *f = *state;
    char *p = path_in(f, "root.key");
    struct env_root_key made;
    struct env_root_key loaded;
    struct env_root_key again;
    char text[128];
    char hex[2 * ENV_KEY_LEN + 1];
    struct stat st;
    FILE *fp;
    size_t n;

    assert_status(env_root_key_create(p, &made, &f->err), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    fp = fopen(p, "rb");
    assert_non_null(fp);
    n = fread(text, 1, sizeof(text), fp);
    fclose(fp);
    assert_int_equal(n, 18 + 64 + 1);
    assert_memory_equal(text, "cairn-root-key-v1 ", 18);
    assert_int_equal(text[n - 1], '\n');
    for (int i = 0; i < ENV_KEY_LEN; i++) {
        snprintf(hex + 2 * i, 3, "%02x", made.key[i]);
    }
    assert_memory_equal(text + 18, hex, 64);

    assert_status(env_root_key_load(p, &loaded, &f->err), 0);
    assert_memory_equal(loaded.key, made.key, ENV_KEY_LEN);
    assert_string_equal(loaded.fingerprint_hex, made.fingerprint_hex);
    assert_status(env_root_key_load(p, &again, &f->err), 0);
    assert_string_equal(again.fingerprint_hex, made.fingerprint_hex);

    /* A second create refuses and leaves the file alone. */
    assert_status(env_root_key_create(p, NULL, &f->err), CAIRN_ALREADY_EXISTS);
    assert_status(env_root_key_load(p, &again, &f->err), 0);
    assert_memory_equal(again.key, made.key, ENV_KEY_LEN);

    /* Two new keys differ. */
    free(p);
    p = path_in(f, "other.key");
    assert_status(env_root_key_create(p, NULL, &f->err), 0);
    assert_status(env_root_key_load(p, &again, &f->err), 0);
    assert_memory_not_equal(again.key, made.key, ENV_KEY_LEN);
    assert_string_not_equal(again.fingerprint_hex, made.fingerprint_hex);
    free(p);
}

/* Creating in a directory that does not exist fails and creates nothing. */
static void root_key_create_no_dir(void **state)
{
    struct fixture *f = *state;
    char *p = path_in(f, "missing/root.key");

    assert_status(env_root_key_create(p, NULL, &f->err), CAIRN_INTERNAL);
    assert_msg_contains("missing/root.key");
    free(p);
}

/* A missing file is NOT_FOUND, naming the path. */
static void root_key_load_missing(void **state)
{
    struct fixture *f = *state;
    struct env_root_key rk;
    char *p = path_in(f, "nope.key");

    assert_status(env_root_key_load(p, &rk, &f->err), CAIRN_NOT_FOUND);
    assert_msg_contains("nope.key");
    free(p);
}

/* Any group or other access is refused with a message saying chmod 600;
 * 0600 and 0400 load. */
static void root_key_load_mode(void **state)
{
    struct fixture *f = *state;
    static const mode_t bad[] = {0644, 0640, 0604, 0620, 0602, 0610, 0601};
    struct env_root_key rk;
    char *p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = write_key_file(f, "k", KEY_A_FILE, strlen(KEY_A_FILE), bad[i]);
        assert_status(env_root_key_load(p, &rk, &f->err),
                      CAIRN_PERMISSION_DENIED);
        assert_msg_contains("chmod 600");
        free(p);
    }
    p = write_key_file(f, "k", KEY_A_FILE, strlen(KEY_A_FILE), 0400);
    assert_status(env_root_key_load(p, &rk, &f->err), 0);
    assert_memory_equal(rk.key, f->a.key, ENV_KEY_LEN);
    free(p);
    p = write_key_file(f, "k", KEY_A_FILE, strlen(KEY_A_FILE), 0600);
    assert_status(env_root_key_load(p, &rk, &f->err), 0);
    assert_string_equal(rk.fingerprint_hex, f->a.fingerprint_hex);
    free(p);
}

/* The file's text must be exactly the header, 64 hex digits and at most
 * one newline; uppercase hex is accepted. */
static void root_key_load_format(void **state)
{
    struct fixture *f = *state;
    static const struct
    {
        const char *text;
        const char *msg;
    } bad[] = {
        {"", "must start with"},
        {"cairn-root-key-v1", "must start with"},
        {"cairn-root-key-v2 " KEY_A_HEX "\n", "must start with"},
        {"cairn-root-key-v1" KEY_A_HEX "\n", "must start with"},
        {"Cairn-root-key-v1 " KEY_A_HEX "\n", "must start with"},
        {" cairn-root-key-v1 " KEY_A_HEX "\n", "must start with"},
        {"cairn-root-key-v1 ", "has 0 hex digits"},
        {"cairn-root-key-v1 \n", "has 0 hex digits"},
        {"cairn-root-key-v1 0001020304050607\n", "has 16 hex digits"},
        {"cairn-root-key-v1 "
         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n",
         "has 63 hex digits"},
        {"cairn-root-key-v1 "
         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
         "has 63 hex digits"},
        {"cairn-root-key-v1 "
         "000102030405060708090a0b0c0d0e0f1011121314151g1718191a1b1c1d1e1f\n",
         "not a hex digit at byte 63"},
        {"cairn-root-key-v1 "
         "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
         "not a hex digit at byte 19"},
        {"cairn-root-key-v1  " KEY_A_HEX "\n", "not a hex digit at byte 18"},
        {"cairn-root-key-v1 " KEY_A_HEX "\n\n", "unexpected bytes after"},
        {"cairn-root-key-v1 " KEY_A_HEX " \n", "unexpected bytes after"},
        {"cairn-root-key-v1 " KEY_A_HEX "\r\n", "unexpected bytes after"},
        {"cairn-root-key-v1 " KEY_A_HEX "0\n", "unexpected bytes after"},
        {"cairn-root-key-v1 " KEY_A_HEX "\nmore text\n",
         "unexpected bytes after"},
    };
    struct env_root_key rk;
    char *p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_status(load_text(f, "k", bad[i].text, &rk),
                      CAIRN_INVALID_ARGUMENT);
        assert_msg_contains(bad[i].msg);
    }

    /* An embedded NUL is not a hex digit. */
    {
        char text[] = KEY_A_FILE;
        text[30] = '\0';
        p = write_key_file(f, "k", text, sizeof(text) - 1, 0600);
        assert_status(env_root_key_load(p, &rk, &f->err),
                      CAIRN_INVALID_ARGUMENT);
        assert_msg_contains("not a hex digit at byte 30");
        free(p);
    }

    assert_status(load_text(f, "k", "cairn-root-key-v1 " KEY_A_HEX, &rk), 0);
    assert_memory_equal(rk.key, f->a.key, ENV_KEY_LEN);
    assert_status(load_text(f, "k",
                            "cairn-root-key-v1 "
                            "000102030405060708090A0B0C0D0E0F"
                            "101112131415161718191A1B1C1D1E1F\n",
                            &rk),
                  0);
    assert_memory_equal(rk.key, f->a.key, ENV_KEY_LEN);
    assert_string_equal(rk.fingerprint_hex, f->a.fingerprint_hex);
}

/* A directory is not a key file. */
static void root_key_load_directory(void **state)
{
    struct fixture *f = *state;
    struct env_root_key rk;
    char *p = path_in(f, "d");

    assert_int_equal(mkdir(p, 0700), 0);
    assert_status(env_root_key_load(p, &rk, &f->err), CAIRN_INVALID_ARGUMENT);
    assert_msg_contains("not a regular file");
    assert_int_equal(rmdir(p), 0);
    free(p);
}

/* Random keys are not constant. */
static void random_key_fresh(void **state)
{
    struct fixture *f = *state;
    uint8_t k1[ENV_KEY_LEN];
    uint8_t k2[ENV_KEY_LEN];
    uint8_t zero[ENV_KEY_LEN] = {0};

    assert_status(env_random_key(k1, &f->err), 0);
    assert_status(env_random_key(k2, &f->err), 0);
    assert_memory_not_equal(k1, k2, ENV_KEY_LEN);
    assert_memory_not_equal(k1, zero, ENV_KEY_LEN);
}

/******************************************************************************
 *
 * Wrapped key material
 *
 *****************************************************************************/

/* Wrapping then unwrapping with the same root key, key id and version gives
 * the material back, and the fingerprint is readable from the blob. */
static void wrap_round_trip(void **state)
{
    struct fixture *f = *state;
    uint8_t w[ENV_WRAPPED_LEN];
    uint8_t m[ENV_KEY_LEN];
    uint8_t fp[ENV_FINGERPRINT_LEN];

    assert_status(env_wrap_material(&f->a, KEY_ID, 3, f->material, w, &f->err),
                  0);
    assert_status(env_wrapped_fingerprint(w, sizeof(w), fp, &f->err), 0);
    assert_memory_equal(fp, f->a.fingerprint, ENV_FINGERPRINT_LEN);
    memset(m, 0, sizeof(m));
    assert_status(
        env_unwrap_material(&f->a, KEY_ID, 3, w, sizeof(w), m, &f->err), 0);
    assert_memory_equal(m, f->material, ENV_KEY_LEN);
    assert_null(memmem(w, sizeof(w), f->material, ENV_KEY_LEN));
}

/* The wrapped blob is "CRNW" | 1 | fingerprint | nonce | ciphertext | tag,
 * 73 bytes, under the root key with AAD "cairn-kms-material" | key id |
 * version (4 bytes big-endian). */
static void wrap_format(void **state)
{
    struct fixture *f = *state;
    uint8_t w[ENV_WRAPPED_LEN];
    uint8_t w2[ENV_WRAPPED_LEN];
    uint8_t aad[128];
    uint8_t m[ENV_KEY_LEN];
    size_t aad_len;

    assert_int_equal(ENV_WRAPPED_LEN, 4 + 1 + 8 + 12 + 32 + 16);
    assert_status(
        env_wrap_material(&f->a, KEY_ID, 0x01020304, f->material, w, &f->err),
        0);
    assert_memory_equal(w, "CRNW", 4);
    assert_int_equal(w[4], 1);
    assert_memory_equal(w + 5, f->a.fingerprint, 8);
    aad_len = key_aad(aad, "cairn-kms-material", KEY_ID, 0x01020304);
    assert_true(
        gcm_decrypt(f->a.key, w + 13, aad, aad_len, w + 25, 32, w + 57, m));
    assert_memory_equal(m, f->material, ENV_KEY_LEN);
    /* The version is bound big-endian: little-endian does not verify. */
    aad_len = key_aad(aad, "cairn-kms-material", KEY_ID, 0x04030201);
    assert_false(
        gcm_decrypt(f->a.key, w + 13, aad, aad_len, w + 25, 32, w + 57, m));

    /* A fresh nonce each time. */
    assert_status(
        env_wrap_material(&f->a, KEY_ID, 0x01020304, f->material, w2, &f->err),
        0);
    assert_memory_not_equal(w + 13, w2 + 13, 12);
    assert_memory_not_equal(w + 25, w2 + 25, 32);
}

/* Material wrapped by one root key is refused by another with
 * FAILED_PRECONDITION naming both fingerprints. */
static void unwrap_other_root_key(void **state)
{
    struct fixture *f = *state;
    uint8_t w[ENV_WRAPPED_LEN];
    uint8_t m[ENV_KEY_LEN];

    assert_status(env_wrap_material(&f->a, KEY_ID, 1, f->material, w, &f->err),
                  0);
    assert_status(
        env_unwrap_material(&f->b, KEY_ID, 1, w, sizeof(w), m, &f->err),
        CAIRN_FAILED_PRECONDITION);
    assert_msg_contains(f->a.fingerprint_hex);
    assert_msg_contains(f->b.fingerprint_hex);
    assert_msg_contains(KEY_ID);
}

/* Another key id or version fails authentication (DATA_LOSS), and the
 * output is not written. */
static void unwrap_wrong_id_or_version(void **state)
{
    struct fixture *f = *state;
    uint8_t w[ENV_WRAPPED_LEN];
    uint8_t m[ENV_KEY_LEN];
    uint8_t sentinel[ENV_KEY_LEN];

    memset(sentinel, 0x5a, sizeof(sentinel));
    assert_status(env_wrap_material(&f->a, KEY_ID, 2, f->material, w, &f->err),
                  0);

    memcpy(m, sentinel, sizeof(m));
    assert_status(
        env_unwrap_material(&f->a, "other-key", 2, w, sizeof(w), m, &f->err),
        CAIRN_DATA_LOSS);
    assert_msg_contains("failed authentication");
    assert_memory_equal(m, sentinel, ENV_KEY_LEN);

    assert_status(
        env_unwrap_material(&f->a, KEY_ID, 1, w, sizeof(w), m, &f->err),
        CAIRN_DATA_LOSS);
    assert_status(
        env_unwrap_material(&f->a, KEY_ID, 3, w, sizeof(w), m, &f->err),
        CAIRN_DATA_LOSS);
    assert_status(env_unwrap_material(&f->a, KEY_ID, 0x02000000, w, sizeof(w),
                                      m, &f->err),
                  CAIRN_DATA_LOSS);
    /* A key id that is a prefix of the real one. */
    assert_status(
        env_unwrap_material(&f->a, "1234abcd", 2, w, sizeof(w), m, &f->err),
        CAIRN_DATA_LOSS);
    assert_memory_equal(m, sentinel, ENV_KEY_LEN);
}

/* Every single flipped bit of a wrapped blob is an error: the header is
 * INVALID_ARGUMENT, the fingerprint FAILED_PRECONDITION, the rest
 * DATA_LOSS. */
static void unwrap_bit_flips(void **state)
{
    struct fixture *f = *state;
    uint8_t w[ENV_WRAPPED_LEN];
    uint8_t m[ENV_KEY_LEN];

    assert_status(env_wrap_material(&f->a, KEY_ID, 9, f->material, w, &f->err),
                  0);
    for (size_t i = 0; i < sizeof(w); i++) {
        int want = i < 5    ? CAIRN_INVALID_ARGUMENT
                   : i < 13 ? CAIRN_FAILED_PRECONDITION
                            : CAIRN_DATA_LOSS;
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *c = exact_copy(w, sizeof(w));
            c[i] ^= (uint8_t)(1u << bit);
            int rv =
                env_unwrap_material(&f->a, KEY_ID, 9, c, sizeof(w), m, &f->err);
            if (rv != want) {
                fail_msg("byte %zu bit %d: got %s, want %s", i, bit,
                         cairn_status_name(rv), cairn_status_name(want));
            }
            free(c);
        }
    }
    /* The untouched blob still unwraps. */
    assert_status(
        env_unwrap_material(&f->a, KEY_ID, 9, w, sizeof(w), m, &f->err), 0);
}

/* Blobs of any other length are INVALID_ARGUMENT and not read past. */
static void unwrap_lengths(void **state)
{
    struct fixture *f = *state;
    uint8_t w[ENV_WRAPPED_LEN + 1];
    uint8_t m[ENV_KEY_LEN];
    uint8_t fp[ENV_FINGERPRINT_LEN];

    assert_status(env_wrap_material(&f->a, KEY_ID, 1, f->material, w, &f->err),
                  0);
    w[ENV_WRAPPED_LEN] = 0;
    for (size_t n = 0; n <= sizeof(w); n++) {
        uint8_t *c;
        if (n == ENV_WRAPPED_LEN) {
            continue;
        }
        c = exact_copy(w, n);
        assert_status(env_unwrap_material(&f->a, KEY_ID, 1, c, n, m, &f->err),
                      CAIRN_INVALID_ARGUMENT);
        assert_status(env_wrapped_fingerprint(c, n, fp, &f->err),
                      CAIRN_INVALID_ARGUMENT);
        free(c);
    }
}

/******************************************************************************
 *
 * Sealed values
 *
 *****************************************************************************/

/* Values of 0, 1, 4096 and 8192 bytes seal and open back, and the blob is
 * exactly the documented size. */
static void seal_round_trip(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[] = {0, 1, 4096, 8192};
    uint8_t *v = malloc(8192);

    assert_non_null(v);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *blob;

        fill(v, n, (unsigned)i + 1);
        seal(f, v, n);
        assert_int_equal(f->out.len, SEALED_FIXED + strlen(KEY_ID) + n);
        blob = exact_copy(f->out.data, f->out.len);
        buf_reset(&f->plain);
        assert_status(env_open(f->material, NAME, strlen(NAME), blob,
                               f->out.len, &f->plain, &f->err),
                      0);
        assert_int_equal(f->plain.len, n);
        if (n > 0) {
            assert_memory_equal(f->plain.data, v, n);
        }
        free(blob);
    }
    free(v);
}

/* The sealed blob has the documented layout: the data key decrypts under
 * the material with AAD "cairn-data-key" | key id | version, and the value
 * under the data key with AAD "cairn-value" | name. */
static void seal_format(void **state)
{
    struct fixture *f = *state;
    const char *v = "correct horse battery staple";
    size_t kid = strlen(KEY_ID);
    size_t n = strlen(v);
    uint8_t aad[256];
    size_t aad_len;
    uint8_t dk[32];
    uint8_t plain[64];
    const uint8_t *p;

    seal(f, v, n);
    p = f->out.data;
    assert_memory_equal(p, "CRNE", 4);
    assert_int_equal(p[4], 1);
    assert_int_equal(p[5], kid);
    assert_memory_equal(p + 6, KEY_ID, kid);
    p += 6 + kid;
    assert_memory_equal(p, "\0\0\0\7", 4);
    aad_len = key_aad(aad, "cairn-data-key", KEY_ID, 7);
    assert_true(
        gcm_decrypt(f->material, p + 4, aad, aad_len, p + 16, 32, p + 48, dk));
    p += 4 + 12 + 32 + 16;
    memcpy(aad, "cairn-value", 11);
    memcpy(aad + 11, NAME, strlen(NAME));
    assert_true(gcm_decrypt(dk, p, aad, 11 + strlen(NAME), p + 12, n,
                            p + 12 + n, plain));
    assert_memory_equal(plain, v, n);
    assert_ptr_equal(p + 12 + n + 16, f->out.data + f->out.len);
}

/* A blob opened under another name fails authentication (DATA_LOSS), and
 * nothing is appended. */
static void open_other_name(void **state)
{
    struct fixture *f = *state;
    static const char *names[] = {"/app/db/passwor", "/app/db/password2",
                                  "/app/db/Password", "app/db/password", ""};

    seal(f, "s3cret", 6);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_status(env_open(f->material, names[i], strlen(names[i]),
                               f->out.data, f->out.len, &f->plain, &f->err),
                      CAIRN_DATA_LOSS);
        assert_string_equal(f->err.msg,
                            "SecureString value failed authentication: it "
                            "was altered, or belongs to another parameter or "
                            "key");
        assert_int_equal(f->plain.len, 0);
    }
    /* The length, not a C string, bounds the name. */
    assert_status(env_open(f->material, NAME "XYZ", strlen(NAME), f->out.data,
                           f->out.len, &f->plain, &f->err),
                  0);
    assert_int_equal(f->plain.len, 6);
}

/* Every single flipped byte, and every single flipped bit, of a sealed blob
 * is an error, never a success, and appends nothing. */
static void open_flipped(void **state)
{
    struct fixture *f = *state;
    uint8_t v[100];
    size_t len;

    fill(v, sizeof(v), 3);
    seal(f, v, sizeof(v));
    len = f->out.len;
    for (size_t i = 0; i < len; i++) {
        for (int k = 0; k < 9; k++) {
            uint8_t *c = exact_copy(f->out.data, len);
            c[i] ^= k < 8 ? (uint8_t)(1u << k) : 0xff;
            int rv = env_open(f->material, NAME, strlen(NAME), c, len,
                              &f->plain, &f->err);
            if (rv != CAIRN_INVALID_ARGUMENT && rv != CAIRN_DATA_LOSS) {
                fail_msg("byte %zu flip %d: got %s", i, k,
                         cairn_status_name(rv));
            }
            assert_int_equal(f->plain.len, 0);
            free(c);
        }
    }
    assert_status(env_open(f->material, NAME, strlen(NAME), f->out.data, len,
                           &f->plain, &f->err),
                  0);
}

/* Every truncation of a sealed blob, and an appended byte, is an error and
 * is not read past (each copy is its exact size, under ASan). */
static void open_truncated(void **state)
{
    struct fixture *f = *state;
    uint8_t v[40];
    size_t len;

    fill(v, sizeof(v), 5);
    seal(f, v, sizeof(v));
    len = f->out.len;
    for (size_t n = 0; n < len; n++) {
        uint8_t *c = exact_copy(f->out.data, n);
        const char *kid;
        size_t kid_len;
        uint32_t ver;
        int rv =
            env_open(f->material, NAME, strlen(NAME), c, n, &f->plain, &f->err);
        if (rv != CAIRN_INVALID_ARGUMENT && rv != CAIRN_DATA_LOSS) {
            fail_msg("length %zu of %zu: got %s", n, len,
                     cairn_status_name(rv));
        }
        /* Too short to hold the fixed fields: refused before any crypto. */
        if (n < SEALED_FIXED + strlen(KEY_ID)) {
            assert_status(rv, CAIRN_INVALID_ARGUMENT);
            assert_status(env_sealed_key(c, n, &kid, &kid_len, &ver, &f->err),
                          CAIRN_INVALID_ARGUMENT);
        }
        assert_int_equal(f->plain.len, 0);
        free(c);
    }
    {
        uint8_t *c = malloc(len + 1);
        assert_non_null(c);
        memcpy(c, f->out.data, len);
        c[len] = 0;
        assert_status(env_open(f->material, NAME, strlen(NAME), c, len + 1,
                               &f->plain, &f->err),
                      CAIRN_DATA_LOSS);
        free(c);
    }
}

/* Garbage and hand-made headers are INVALID_ARGUMENT: wrong magic, format
 * version, an empty key id, a key id longer than the blob. */
static void open_garbage(void **state)
{
    struct fixture *f = *state;
    uint8_t g[300];
    const char *kid;
    size_t kid_len;
    uint32_t ver;

    fill(g, sizeof(g), 11);
    assert_status(env_open(f->material, NAME, strlen(NAME), g, sizeof(g),
                           &f->plain, &f->err),
                  CAIRN_INVALID_ARGUMENT);

    memcpy(g, "CRNE\2\1", 6);
    assert_status(env_sealed_key(g, sizeof(g), &kid, &kid_len, &ver, &f->err),
                  CAIRN_INVALID_ARGUMENT);
    assert_msg_contains("format version 2");

    memcpy(g, "CRNE\1\0", 6);
    assert_status(env_sealed_key(g, sizeof(g), &kid, &kid_len, &ver, &f->err),
                  CAIRN_INVALID_ARGUMENT);
    assert_msg_contains("empty key id");

    /* A 255-byte key id needs 98 + 255 bytes; 300 is too few. */
    memcpy(g, "CRNE\1\xff", 6);
    assert_status(env_open(f->material, NAME, strlen(NAME), g, sizeof(g),
                           &f->plain, &f->err),
                  CAIRN_INVALID_ARGUMENT);
    /* With exactly 98 + 1 bytes and a 1-byte key id it parses (an empty
     * value) and fails authentication. */
    memcpy(g, "CRNE\1\1", 6);
    assert_status(env_sealed_key(g, 99, &kid, &kid_len, &ver, &f->err), 0);
    assert_int_equal(kid_len, 1);
    assert_status(
        env_open(f->material, NAME, strlen(NAME), g, 99, &f->plain, &f->err),
        CAIRN_DATA_LOSS);
    assert_int_equal(f->plain.len, 0);
}

/* env_sealed_key names the key id (pointing into the blob) and version. */
static void sealed_key(void **state)
{
    struct fixture *f = *state;
    const char *kid;
    size_t kid_len;
    uint32_t ver;

    buf_reset(&f->out);
    assert_status(env_seal(f->material, "alias-free-id", 0xfedcba98, NAME,
                           strlen(NAME), "x", 1, &f->out, &f->err),
                  0);
    assert_status(
        env_sealed_key(f->out.data, f->out.len, &kid, &kid_len, &ver, &f->err),
        0);
    assert_int_equal(kid_len, strlen("alias-free-id"));
    assert_memory_equal(kid, "alias-free-id", kid_len);
    assert_ptr_equal(kid, f->out.data + 6);
    assert_int_equal(ver, 0xfedcba98);
}

/* Key ids of 1 and 255 bytes seal and open; empty and 256-byte ones are
 * INVALID_ARGUMENT and leave the output alone. */
static void seal_key_id_limits(void **state)
{
    struct fixture *f = *state;
    char id[ENV_KEY_ID_MAX + 2];
    const char *kid;
    size_t kid_len;
    uint32_t ver;

    memset(id, 'k', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    buf_reset(&f->out);
    assert_status(env_seal(f->material, id, 1, NAME, strlen(NAME), "v", 1,
                           &f->out, &f->err),
                  CAIRN_INVALID_ARGUMENT);
    assert_status(env_seal(f->material, "", 1, NAME, strlen(NAME), "v", 1,
                           &f->out, &f->err),
                  CAIRN_INVALID_ARGUMENT);
    assert_int_equal(f->out.len, 0);

    id[ENV_KEY_ID_MAX] = '\0';
    assert_status(env_seal(f->material, id, 1, NAME, strlen(NAME), "v", 1,
                           &f->out, &f->err),
                  0);
    assert_status(
        env_sealed_key(f->out.data, f->out.len, &kid, &kid_len, &ver, &f->err),
        0);
    assert_int_equal(kid_len, ENV_KEY_ID_MAX);
    assert_status(env_open(f->material, NAME, strlen(NAME), f->out.data,
                           f->out.len, &f->plain, &f->err),
                  0);
    assert_memory_equal(f->plain.data, "v", 1);

    buf_reset(&f->out);
    assert_status(env_seal(f->material, "k", 1, NAME, strlen(NAME), "v", 1,
                           &f->out, &f->err),
                  0);
    assert_int_equal(f->out.len, SEALED_FIXED + 1 + 1);
}

/* Two seals of the same value differ everywhere a fresh data key and fresh
 * nonces reach: data key nonce and ciphertext, value nonce, ciphertext and
 * tag. */
static void seal_fresh(void **state)
{
    struct fixture *f = *state;
    const char *v = "same value, sealed twice";
    size_t n = strlen(v);
    size_t off = 6 + strlen(KEY_ID) + 4;
    uint8_t *first;
    size_t len;

    seal(f, v, n);
    len = f->out.len;
    first = exact_copy(f->out.data, len);
    seal(f, v, n);
    assert_int_equal(f->out.len, len);
    assert_memory_equal(first, f->out.data, off); /* the header */
    assert_memory_not_equal(first + off, f->out.data + off, 12);
    assert_memory_not_equal(first + off + 12, f->out.data + off + 12, 32);
    off += 12 + 32 + 16;
    assert_memory_not_equal(first + off, f->out.data + off, 12);
    assert_memory_not_equal(first + off + 12, f->out.data + off + 12, n);
    assert_memory_not_equal(first + len - 16, f->out.data + len - 16, 16);
    free(first);
}

/* Material of one key version cannot open a value sealed with another
 * version's material, even with the version field rewritten to match. */
static void open_other_material(void **state)
{
    struct fixture *f = *state;
    uint8_t m1[ENV_KEY_LEN];
    uint8_t m2[ENV_KEY_LEN];
    uint8_t *c;
    size_t ver_at = 6 + strlen(KEY_ID);

    assert_status(env_random_key(m1, &f->err), 0);
    assert_status(env_random_key(m2, &f->err), 0);
    buf_reset(&f->out);
    assert_status(env_seal(m2, KEY_ID, 2, NAME, strlen(NAME), "v2 secret", 9,
                           &f->out, &f->err),
                  0);
    assert_status(env_open(m1, NAME, strlen(NAME), f->out.data, f->out.len,
                           &f->plain, &f->err),
                  CAIRN_DATA_LOSS);
    assert_msg_contains("failed authentication");

    c = exact_copy(f->out.data, f->out.len);
    assert_int_equal(c[ver_at + 3], 2);
    c[ver_at + 3] = 1;
    assert_status(
        env_open(m1, NAME, strlen(NAME), c, f->out.len, &f->plain, &f->err),
        CAIRN_DATA_LOSS);
    /* And the right material no longer accepts the rewritten version. */
    assert_status(
        env_open(m2, NAME, strlen(NAME), c, f->out.len, &f->plain, &f->err),
        CAIRN_DATA_LOSS);
    assert_int_equal(f->plain.len, 0);
    free(c);

    assert_status(env_open(m2, NAME, strlen(NAME), f->out.data, f->out.len,
                           &f->plain, &f->err),
                  0);
    assert_memory_equal(f->plain.data, "v2 secret", 9);
}

/* Neither the plaintext nor the material appears in a sealed blob. */
static void seal_hides_plaintext(void **state)
{
    struct fixture *f = *state;
    const char *v = "postgres://admin:hunter2@db.internal:5432/production";

    seal(f, v, strlen(v));
    assert_null(memmem(f->out.data, f->out.len, v, strlen(v)));
    assert_null(memmem(f->out.data, f->out.len, "hunter2", 7));
    assert_null(memmem(f->out.data, f->out.len, f->material, ENV_KEY_LEN));
}

/* Seal and open append after what the buffers already hold. */
static void seal_open_append(void **state)
{
    struct fixture *f = *state;
    const char *kid;
    size_t kid_len;
    uint32_t ver;

    buf_reset(&f->out);
    assert_int_equal(buf_append(&f->out, "head", 4), 0);
    assert_status(env_seal(f->material, KEY_ID, 1, NAME, strlen(NAME), "abc", 3,
                           &f->out, &f->err),
                  0);
    assert_memory_equal(f->out.data, "head", 4);
    assert_status(env_sealed_key(f->out.data + 4, f->out.len - 4, &kid,
                                 &kid_len, &ver, &f->err),
                  0);
    assert_int_equal(buf_append(&f->plain, "pre:", 4), 0);
    assert_status(env_open(f->material, NAME, strlen(NAME), f->out.data + 4,
                           f->out.len - 4, &f->plain, &f->err),
                  0);
    assert_int_equal(f->plain.len, 7);
    assert_memory_equal(f->plain.data, "pre:abc", 7);
}

/* env_wipe_buf closes the buffer (and accepts an empty one and NULL). */
static void wipe_buf(void **state)
{
    struct fixture *f = *state;
    struct buf b;

    (void)f;
    buf_init(&b);
    env_wipe_buf(&b);
    env_wipe_buf(NULL);
    assert_int_equal(buf_append(&b, "secret", 6), 0);
    buf_reset(&b);
    env_wipe_buf(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

#define CASE(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(fingerprint_known_answer),
        CASE(root_key_create_load),
        CASE(root_key_create_no_dir),
        CASE(root_key_load_missing),
        CASE(root_key_load_mode),
        CASE(root_key_load_format),
        CASE(root_key_load_directory),
        CASE(random_key_fresh),
        CASE(wrap_round_trip),
        CASE(wrap_format),
        CASE(unwrap_other_root_key),
        CASE(unwrap_wrong_id_or_version),
        CASE(unwrap_bit_flips),
        CASE(unwrap_lengths),
        CASE(seal_round_trip),
        CASE(seal_format),
        CASE(open_other_name),
        CASE(open_flipped),
        CASE(open_truncated),
        CASE(open_garbage),
        CASE(sealed_key),
        CASE(seal_key_id_limits),
        CASE(seal_fresh),
        CASE(open_other_material),
        CASE(seal_hides_plaintext),
        CASE(seal_open_append),
        CASE(wipe_buf),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
