#include "envelope.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/******************************************************************************
 *
 * Formats (docs/encryption.md; all integers big-endian)
 *
 *****************************************************************************/

#define NONCE_LEN 12
#define TAG_LEN 16
#define FORMAT_VERSION 1

/* Wrapped key material: "CRNW" | 1 | fingerprint | nonce | ct | tag. */
#define W_MAGIC "CRNW"
#define W_VERSION 4
#define W_FP 5
#define W_NONCE (W_FP + ENV_FINGERPRINT_LEN)
#define W_CT (W_NONCE + NONCE_LEN)
#define W_TAG (W_CT + ENV_KEY_LEN)
#define W_END (W_TAG + TAG_LEN)

/* The header's length must be the sum of the documented fields, or callers
 * would store bytes this file never writes. */
_Static_assert(ENV_WRAPPED_LEN == W_END,
               "ENV_WRAPPED_LEN does not match the wrapped material format");

/* Sealed value: "CRNE" | 1 | key id length | key id | key version |
 * data key nonce, ct, tag | value nonce | value ct | value tag. */
#define S_MAGIC "CRNE"
#define S_HEAD 6 /* magic, format version, key id length */
#define S_AFTER_ID (4 + NONCE_LEN + ENV_KEY_LEN + TAG_LEN + NONCE_LEN)
#define S_FIXED (S_HEAD + S_AFTER_ID + TAG_LEN) /* without key id and value */

/* AAD labels; the terminating NUL is not part of the AAD. */
#define AAD_MATERIAL "cairn-kms-material"
#define AAD_DATA_KEY "cairn-data-key"
#define AAD_VALUE "cairn-value"
#define FP_LABEL "cairn root key fingerprint"
#define LABEL(s)         \
    {                    \
        s, sizeof(s) - 1 \
    }

#define ROOT_KEY_HEADER "cairn-root-key-v1 "
#define ROOT_KEY_HEADER_LEN (sizeof(ROOT_KEY_HEADER) - 1)
#define ROOT_KEY_HEX_LEN (2 * ENV_KEY_LEN)
#define ROOT_KEY_FILE_MAX (ROOT_KEY_HEADER_LEN + ROOT_KEY_HEX_LEN + 1)

#define VALUE_AUTH_FAILED                                                      \
    "SecureString value failed authentication: it was altered, or belongs to " \
    "another parameter or key"

/******************************************************************************
 *
 * Helpers
 *
 *****************************************************************************/

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

/* The value of hex digit @p c (either case), or -1. Not isxdigit(): that
 * depends on the locale. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* INTERNAL with @p what and OpenSSL's first queued error. The queue is
 * cleared: it is per thread, and a stale entry would be blamed on the next
 * OpenSSL call on the loop thread. */
static int openssl_error(struct cairn_error *err, const char *what)
{
    char detail[256] = "no detail";
    unsigned long e = ERR_get_error();
    if (e != 0) {
        ERR_error_string_n(e, detail, sizeof(detail));
    }
    ERR_clear_error();
    return cairn_error_set(err, CAIRN_INTERNAL, NULL, "%s: %s", what, detail);
}

/* A piece of additional authenticated data. */
struct piece
{
    const void *p;
    size_t n;
};

/* EVP takes int lengths; larger inputs go in chunks. */
#define CHUNK ((size_t)1 << 30)

/* One AES-256-GCM operation with a 12-byte @p nonce and a 16-byte @p tag:
 * encrypt (@p enc, the tag is written) or decrypt (the tag is checked) @p n
 * bytes of @p in into @p out, binding the concatenation of @p aad. Returns
 * 0, DATA_LOSS with @p auth_msg when the tag does not verify (@p out then
 * holds unauthenticated bytes: the caller wipes them), or INTERNAL. */
static int gcm(int enc,
               const uint8_t key[ENV_KEY_LEN],
               const uint8_t nonce[NONCE_LEN],
               const struct piece *aad,
               size_t naad,
               const uint8_t *in,
               size_t n,
               uint8_t *out,
               uint8_t tag[TAG_LEN],
               const char *auth_msg,
               struct cairn_error *err)
{
    EVP_CIPHER_CTX *ctx;
    uint8_t last[TAG_LEN]; /* GCM's final step writes no bytes */
    int outl;
    int rv = 0;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "no memory for a cipher context");
    }
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) !=
            1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1) {
        rv = openssl_error(err, "AES-256-GCM init");
        goto err_after_ctx;
    }
    for (size_t i = 0; i < naad; i++) {
        const uint8_t *p = aad[i].p;
        size_t left = aad[i].n;
        while (left > 0) {
            int chunk = (int)(left < CHUNK ? left : CHUNK);
            if (EVP_CipherUpdate(ctx, NULL, &outl, p, chunk) != 1) {
                rv = openssl_error(err, "AES-256-GCM AAD");
                goto err_after_ctx;
            }
            p += chunk;
            left -= (size_t)chunk;
        }
    }
    for (size_t done = 0; done < n;) {
        int chunk = (int)(n - done < CHUNK ? n - done : CHUNK);
        if (EVP_CipherUpdate(ctx, out + done, &outl, in + done, chunk) != 1 ||
            outl != chunk) {
            rv = openssl_error(err, "AES-256-GCM update");
            goto err_after_ctx;
        }
        done += (size_t)chunk;
    }
    if (enc) {
        if (EVP_CipherFinal_ex(ctx, last, &outl) != 1 || outl != 0 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1) {
            rv = openssl_error(err, "AES-256-GCM final");
        }
    } else {
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1) {
            rv = openssl_error(err, "AES-256-GCM set tag");
        } else if (EVP_CipherFinal_ex(ctx, last, &outl) != 1) {
            ERR_clear_error();
            rv = cairn_error_set(err, CAIRN_DATA_LOSS, NULL, "%s", auth_msg);
        }
    }

err_after_ctx:
    /* Frees the key schedule with OPENSSL_clear_free. */
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

static int seal_gcm(const uint8_t key[ENV_KEY_LEN],
                    const uint8_t nonce[NONCE_LEN],
                    const struct piece *aad,
                    size_t naad,
                    const uint8_t *in,
                    size_t n,
                    uint8_t *out,
                    uint8_t tag[TAG_LEN],
                    struct cairn_error *err)
{
    return gcm(1, key, nonce, aad, naad, in, n, out, tag, NULL, err);
}

static int open_gcm(const uint8_t key[ENV_KEY_LEN],
                    const uint8_t nonce[NONCE_LEN],
                    const struct piece *aad,
                    size_t naad,
                    const uint8_t *in,
                    size_t n,
                    const uint8_t tag[TAG_LEN],
                    uint8_t *out,
                    const char *auth_msg,
                    struct cairn_error *err)
{
    /* EVP's SET_TAG takes a non-const pointer. */
    uint8_t t[TAG_LEN];
    memcpy(t, tag, TAG_LEN);
    return gcm(0, key, nonce, aad, naad, in, n, out, t, auth_msg, err);
}

static int random_bytes(uint8_t *p, size_t n, struct cairn_error *err)
{
    if (RAND_bytes(p, (int)n) != 1) {
        return openssl_error(err, "no randomness (RAND_bytes)");
    }
    return 0;
}

/******************************************************************************
 *
 * Root keys
 *
 *****************************************************************************/

/* SHA-256("cairn root key fingerprint" || key), first 8 bytes. */
static int fingerprint(const uint8_t *key,
                       uint8_t fp[ENV_FINGERPRINT_LEN],
                       struct cairn_error *err)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rv = 0;

    if (ctx == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "no memory for a digest context");
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, FP_LABEL, sizeof(FP_LABEL) - 1) != 1 ||
        EVP_DigestUpdate(ctx, key, ENV_KEY_LEN) != 1 ||
        EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 ||
        dlen < ENV_FINGERPRINT_LEN) {
        rv = openssl_error(err, "root key fingerprint (SHA-256)");
    } else {
        memcpy(fp, digest, ENV_FINGERPRINT_LEN);
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    EVP_MD_CTX_free(ctx);
    return rv;
}

static int root_key_init(struct env_root_key *rk,
                         const uint8_t *key,
                         struct cairn_error *err)
{
    int rv;

    memset(rk, 0, sizeof(*rk));
    rv = fingerprint(key, rk->fingerprint, err);
    if (rv != 0) {
        return rv;
    }
    memcpy(rk->key, key, ENV_KEY_LEN);
    hex_encode(rk->fingerprint, ENV_FINGERPRINT_LEN, rk->fingerprint_hex);
    return 0;
}

/* A root key whose fingerprint could not be computed (env_root_key_from_bytes
 * cannot report it) has an empty fingerprint_hex and is refused here, so
 * that material is never recorded under a wrong fingerprint. */
static int root_key_usable(const struct env_root_key *rk,
                           struct cairn_error *err)
{
    if (rk->fingerprint_hex[0] == '\0') {
        return cairn_error_set(err, CAIRN_INTERNAL, NULL,
                               "the root key has no fingerprint (SHA-256 "
                               "failed when it was loaded)");
    }
    return 0;
}

void env_root_key_from_bytes(struct env_root_key *rk, const uint8_t *key)
{
    if (root_key_init(rk, key, NULL) != 0) {
        /* Leave the key unusable rather than fingerprinted wrongly. */
        env_root_key_wipe(rk);
    }
}

void env_root_key_wipe(struct env_root_key *rk)
{
    OPENSSL_cleanse(rk, sizeof(*rk));
}

/* Parse the text of a root key file into @p key. */
static int parse_root_key(const char *path,
                          const char *text,
                          size_t len,
                          uint8_t key[ENV_KEY_LEN],
                          struct cairn_error *err)
{
    const char *hex = text + ROOT_KEY_HEADER_LEN;
    size_t rest;
    size_t i;

    if (len < ROOT_KEY_HEADER_LEN ||
        memcmp(text, ROOT_KEY_HEADER, ROOT_KEY_HEADER_LEN) != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "%s is not a Cairn root key file: it must start "
                               "with \"" ROOT_KEY_HEADER "\"",
                               path);
    }
    rest = len - ROOT_KEY_HEADER_LEN;
    for (i = 0; i < ROOT_KEY_HEX_LEN && i < rest; i++) {
        int hi;
        int lo;
        if (hex_value(hex[i]) < 0) {
            break;
        }
        if (i % 2 == 1) {
            hi = hex_value(hex[i - 1]);
            lo = hex_value(hex[i]);
            key[i / 2] = (uint8_t)(hi << 4 | lo);
        }
    }
    if (i < ROOT_KEY_HEX_LEN) {
        if (i == rest || hex[i] == '\n') {
            return cairn_error_set(
                err, CAIRN_INVALID_ARGUMENT, NULL,
                "root key file %s has %zu hex digits after the header; a "
                "root key is %d hex digits (32 bytes)",
                path, i, ROOT_KEY_HEX_LEN);
        }
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "root key file %s has a character that is not "
                               "a hex digit at byte %zu",
                               path, ROOT_KEY_HEADER_LEN + i);
    }
    rest -= ROOT_KEY_HEX_LEN;
    if (rest > 1 || (rest == 1 && hex[ROOT_KEY_HEX_LEN] != '\n')) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "root key file %s has unexpected bytes after "
                               "the %d hex digits (only one newline may "
                               "follow them)",
                               path, ROOT_KEY_HEX_LEN);
    }
    return 0;
}

int env_root_key_load(const char *path,
                      struct env_root_key *rk,
                      struct cairn_error *err)
{
    /* One byte more than the longest valid file, to see extra bytes. */
    char text[ROOT_KEY_FILE_MAX + 1];
    uint8_t key[ENV_KEY_LEN];
    size_t len = 0;
    struct stat st;
    int fd;
    int rv;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            return cairn_error_set(err, CAIRN_NOT_FOUND, NULL,
                                   "root key file %s does not exist", path);
        }
        return cairn_error_set(
            err, e == EACCES ? CAIRN_PERMISSION_DENIED : CAIRN_INTERNAL, NULL,
            "open root key file %s: %s", path, strerror(e));
    }
    if (fstat(fd, &st) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "stat %s: %s", path,
                             strerror(errno));
        goto err_after_open;
    }
    if (!S_ISREG(st.st_mode)) {
        rv = cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                             "root key file %s is not a regular file", path);
        goto err_after_open;
    }
    /* Checked on the open file, so the file read is the file checked. */
    if ((st.st_mode & 077) != 0) {
        rv = cairn_error_set(
            err, CAIRN_PERMISSION_DENIED, NULL,
            "root key file %s has mode %04o: group and others must have no "
            "access to it; run chmod 600 %s",
            path, (unsigned)(st.st_mode & 07777), path);
        goto err_after_open;
    }
    while (len < sizeof(text)) {
        ssize_t n = read(fd, text + len, sizeof(text) - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "read %s: %s", path,
                                 strerror(errno));
            goto err_after_read;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    rv = parse_root_key(path, text, len, key, err);
    if (rv == 0) {
        rv = root_key_init(rk, key, err);
    }

err_after_read:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(text, sizeof(text));
err_after_open:
    close(fd);
    return rv;
}

/* fsync the directory holding @p path, so that the new file's name is as
 * durable as its contents: a node that lost its fresh root.key in a crash
 * would make another one and could no longer unwrap its keyring. */
static int sync_parent(const char *path, struct cairn_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd;
    int rv = 0;

    if (slash == NULL) {
        dir = strdup(".");
    } else if (slash == path) {
        dir = strdup("/");
    } else {
        dir = strndup(path, (size_t)(slash - path));
    }
    if (dir == NULL) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "no memory for a directory name");
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                             "created %s but cannot open its directory: %s",
                             path, strerror(errno));
    } else {
        /* Some file systems cannot sync a directory (EINVAL). */
        if (fsync(fd) != 0 && errno != EINVAL) {
            rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                                 "created %s but cannot sync its directory: %s",
                                 path, strerror(errno));
        }
        close(fd);
    }
    free(dir);
    return rv;
}

int env_root_key_create(const char *path,
                        struct env_root_key *rk,
                        struct cairn_error *err)
{
    char text[ROOT_KEY_FILE_MAX + 1]; /* + NUL from hex_encode */
    size_t len = ROOT_KEY_FILE_MAX;
    uint8_t key[ENV_KEY_LEN];
    struct env_root_key made;
    size_t done = 0;
    int fd;
    int rv;

    rv = env_random_key(key, err);
    if (rv != 0) {
        return rv;
    }
    rv = root_key_init(&made, key, err);
    if (rv != 0) {
        goto wipe_key;
    }
    memcpy(text, ROOT_KEY_HEADER, ROOT_KEY_HEADER_LEN);
    hex_encode(key, ENV_KEY_LEN, text + ROOT_KEY_HEADER_LEN);
    text[len - 1] = '\n';

    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        rv = cairn_error_set(err, CAIRN_ALREADY_EXISTS, NULL,
                             "root key file %s already exists; it is never "
                             "overwritten",
                             path);
        goto wipe_text;
    }
    if (fd < 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL,
                             "create root key file %s: %s", path,
                             strerror(errno));
        goto wipe_text;
    }
    /* The umask could have taken the owner's bits too. */
    if (fchmod(fd, 0600) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "chmod %s: %s", path,
                             strerror(errno));
        goto err_after_open;
    }
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "write %s: %s",
                                 path, n < 0 ? strerror(errno) : "no progress");
            goto err_after_open;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "fsync %s: %s", path,
                             strerror(errno));
        goto err_after_open;
    }
    if (close(fd) != 0) {
        rv = cairn_error_set(err, CAIRN_INTERNAL, NULL, "close %s: %s", path,
                             strerror(errno));
        unlink(path);
        goto wipe_text;
    }
    rv = sync_parent(path, err);
    if (rv == 0 && rk != NULL) {
        *rk = made;
    }
    goto wipe_text;

err_after_open:
    /* A partial file would be refused at every later start, and would make
     * the next create fail with ALREADY_EXISTS. */
    close(fd);
    unlink(path);
wipe_text:
    OPENSSL_cleanse(text, sizeof(text));
    env_root_key_wipe(&made);
wipe_key:
    OPENSSL_cleanse(key, sizeof(key));
    return rv;
}

int env_random_key(uint8_t key[ENV_KEY_LEN], struct cairn_error *err)
{
    return random_bytes(key, ENV_KEY_LEN, err);
}

/******************************************************************************
 *
 * Wrapped key material
 *
 *****************************************************************************/

int env_wrap_material(const struct env_root_key *rk,
                      const char *key_id,
                      uint32_t version,
                      const uint8_t material[ENV_KEY_LEN],
                      uint8_t out[ENV_WRAPPED_LEN],
                      struct cairn_error *err)
{
    uint8_t ver[4];
    struct piece aad[] = {
        LABEL(AAD_MATERIAL), {key_id, strlen(key_id)}, {ver, sizeof(ver)}};
    int rv;

    rv = root_key_usable(rk, err);
    if (rv != 0) {
        return rv;
    }
    be32_put(ver, version);
    memcpy(out, W_MAGIC, 4);
    out[W_VERSION] = FORMAT_VERSION;
    memcpy(out + W_FP, rk->fingerprint, ENV_FINGERPRINT_LEN);
    rv = random_bytes(out + W_NONCE, NONCE_LEN, err);
    if (rv == 0) {
        rv = seal_gcm(rk->key, out + W_NONCE, aad, sizeof(aad) / sizeof(*aad),
                      material, ENV_KEY_LEN, out + W_CT, out + W_TAG, err);
    }
    if (rv != 0) {
        memset(out, 0, ENV_WRAPPED_LEN);
    }
    return rv;
}

static int check_wrapped(const uint8_t *wrapped,
                         size_t len,
                         struct cairn_error *err)
{
    if (len != ENV_WRAPPED_LEN) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "wrapped key material is %zu bytes, not %d", len,
                               ENV_WRAPPED_LEN);
    }
    if (memcmp(wrapped, W_MAGIC, 4) != 0) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "not wrapped key material (no " W_MAGIC
                               " header)");
    }
    if (wrapped[W_VERSION] != FORMAT_VERSION) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "wrapped key material has format version %u; "
                               "this node reads version %d",
                               wrapped[W_VERSION], FORMAT_VERSION);
    }
    return 0;
}

int env_wrapped_fingerprint(const uint8_t *wrapped,
                            size_t len,
                            uint8_t fingerprint_out[ENV_FINGERPRINT_LEN],
                            struct cairn_error *err)
{
    int rv = check_wrapped(wrapped, len, err);
    if (rv == 0) {
        memcpy(fingerprint_out, wrapped + W_FP, ENV_FINGERPRINT_LEN);
    }
    return rv;
}

int env_unwrap_material(const struct env_root_key *rk,
                        const char *key_id,
                        uint32_t version,
                        const uint8_t *wrapped,
                        size_t len,
                        uint8_t material[ENV_KEY_LEN],
                        struct cairn_error *err)
{
    uint8_t ver[4];
    struct piece aad[] = {
        LABEL(AAD_MATERIAL), {key_id, strlen(key_id)}, {ver, sizeof(ver)}};
    uint8_t plain[ENV_KEY_LEN];
    char fp_hex[2 * ENV_FINGERPRINT_LEN + 1];
    int rv;

    rv = root_key_usable(rk, err);
    if (rv == 0) {
        rv = check_wrapped(wrapped, len, err);
    }
    if (rv != 0) {
        return rv;
    }
    if (memcmp(wrapped + W_FP, rk->fingerprint, ENV_FINGERPRINT_LEN) != 0) {
        hex_encode(wrapped + W_FP, ENV_FINGERPRINT_LEN, fp_hex);
        return cairn_error_set(err, CAIRN_FAILED_PRECONDITION, NULL,
                               "key %s version %" PRIu32
                               " is wrapped by root key %s, not by root key %s",
                               key_id, version, fp_hex, rk->fingerprint_hex);
    }
    be32_put(ver, version);
    /* Decrypted into scratch: the caller's array never holds
     * unauthenticated bytes. */
    rv = open_gcm(rk->key, wrapped + W_NONCE, aad, sizeof(aad) / sizeof(*aad),
                  wrapped + W_CT, ENV_KEY_LEN, wrapped + W_TAG, plain,
                  "wrapped key material failed authentication: it was "
                  "altered, or belongs to another key or version",
                  err);
    if (rv == CAIRN_DATA_LOSS) {
        cairn_error_prefix(err, "key %s version %" PRIu32 ": ", key_id,
                           version);
    }
    if (rv == 0) {
        memcpy(material, plain, ENV_KEY_LEN);
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return rv;
}

/******************************************************************************
 *
 * Sealed values
 *
 *****************************************************************************/

/* A parsed sealed blob: pointers into it. */
struct sealed
{
    const uint8_t *key_id;
    size_t key_id_len;
    const uint8_t *version; /* 4 bytes, as in the blob (it is AAD) */
    const uint8_t *dk_nonce;
    const uint8_t *dk_ct;
    const uint8_t *dk_tag;
    const uint8_t *nonce;
    const uint8_t *ct;
    size_t n; /* value bytes */
    const uint8_t *tag;
};

/* Parse untrusted @p blob: every length is checked before it is used. */
static int parse_sealed(const uint8_t *blob,
                        size_t len,
                        struct sealed *s,
                        struct cairn_error *err)
{
    const char *what = NULL;
    const uint8_t *p;

    if (len < S_HEAD) {
        what = "too short";
    } else if (memcmp(blob, S_MAGIC, 4) != 0) {
        what = "no " S_MAGIC " header";
    } else if (blob[4] != FORMAT_VERSION) {
        cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                        "sealed SecureString value has format version %u; "
                        "this node reads version %d",
                        blob[4], FORMAT_VERSION);
        /* A constant, so the compiler sees that @p s is set on 0. */
        return CAIRN_INVALID_ARGUMENT;
    } else if (blob[5] == 0) {
        what = "empty key id";
    } else if (len - S_HEAD < (size_t)blob[5] + S_AFTER_ID + TAG_LEN) {
        what = "truncated";
    }
    if (what != NULL) {
        cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                        "not a sealed SecureString value (%s)", what);
        return CAIRN_INVALID_ARGUMENT;
    }
    s->key_id_len = blob[5];
    s->key_id = blob + S_HEAD;
    p = s->key_id + s->key_id_len;
    s->version = p;
    p += 4;
    s->dk_nonce = p;
    p += NONCE_LEN;
    s->dk_ct = p;
    p += ENV_KEY_LEN;
    s->dk_tag = p;
    p += TAG_LEN;
    s->nonce = p;
    p += NONCE_LEN;
    s->ct = p;
    s->n = len - S_FIXED - s->key_id_len;
    s->tag = s->ct + s->n;
    assert(s->tag + TAG_LEN == blob + len);
    return 0;
}

int env_seal(const uint8_t material[ENV_KEY_LEN],
             const char *key_id,
             uint32_t version,
             const char *name,
             size_t name_len,
             const void *plain,
             size_t n,
             struct buf *out,
             struct cairn_error *err)
{
    size_t kid_len = strlen(key_id);
    uint8_t dk[ENV_KEY_LEN];
    size_t total;
    uint8_t *p;
    uint8_t *ver;
    int rv;

    if (kid_len == 0 || kid_len > ENV_KEY_ID_MAX) {
        return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, NULL,
                               "key id must be 1 to %d bytes, not %zu",
                               ENV_KEY_ID_MAX, kid_len);
    }
    if (n > SIZE_MAX - S_FIXED - kid_len) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "SecureString value too large to seal");
    }
    total = S_FIXED + kid_len + n;
    if (buf_reserve(out, total) != 0) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "no memory to seal a %zu-byte value", n);
    }
    /* Written in place; out->len moves only when the blob is complete. */
    p = out->data + out->len;
    memcpy(p, S_MAGIC, 4);
    p[4] = FORMAT_VERSION;
    p[5] = (uint8_t)kid_len;
    memcpy(p + S_HEAD, key_id, kid_len);
    ver = p + S_HEAD + kid_len;
    be32_put(ver, version);

    {
        struct piece dk_aad[] = {
            LABEL(AAD_DATA_KEY), {key_id, kid_len}, {ver, 4}};
        struct piece v_aad[] = {LABEL(AAD_VALUE), {name, name_len}};
        uint8_t *dk_nonce = ver + 4;
        uint8_t *dk_ct = dk_nonce + NONCE_LEN;
        uint8_t *dk_tag = dk_ct + ENV_KEY_LEN;
        uint8_t *nonce = dk_tag + TAG_LEN;
        uint8_t *ct = nonce + NONCE_LEN;

        rv = env_random_key(dk, err);
        if (rv == 0) {
            rv = random_bytes(dk_nonce, NONCE_LEN, err);
        }
        if (rv == 0) {
            rv = random_bytes(nonce, NONCE_LEN, err);
        }
        if (rv == 0) {
            rv = seal_gcm(material, dk_nonce, dk_aad,
                          sizeof(dk_aad) / sizeof(*dk_aad), dk, ENV_KEY_LEN,
                          dk_ct, dk_tag, err);
        }
        if (rv == 0) {
            rv = seal_gcm(dk, nonce, v_aad, sizeof(v_aad) / sizeof(*v_aad),
                          plain, n, ct, ct + n, err);
        }
    }
    OPENSSL_cleanse(dk, sizeof(dk));
    if (rv == 0) {
        out->len += total;
    }
    return rv;
}

int env_sealed_key(const uint8_t *blob,
                   size_t len,
                   const char **key_id,
                   size_t *key_id_len,
                   uint32_t *version,
                   struct cairn_error *err)
{
    struct sealed s;
    int rv = parse_sealed(blob, len, &s, err);
    if (rv != 0) {
        return rv;
    }
    *key_id = (const char *)s.key_id;
    *key_id_len = s.key_id_len;
    *version = be32_get(s.version);
    return 0;
}

int env_open(const uint8_t material[ENV_KEY_LEN],
             const char *name,
             size_t name_len,
             const uint8_t *blob,
             size_t len,
             struct buf *out,
             struct cairn_error *err)
{
    struct sealed s;
    uint8_t dk[ENV_KEY_LEN];
    uint8_t *plain;
    int rv;

    rv = parse_sealed(blob, len, &s, err);
    if (rv != 0) {
        return rv;
    }
    if (buf_reserve(out, s.n) != 0) {
        return cairn_error_set(err, CAIRN_RESOURCE_EXHAUSTED, NULL,
                               "no memory to open a %zu-byte value", s.n);
    }
    {
        struct piece dk_aad[] = {
            LABEL(AAD_DATA_KEY), {s.key_id, s.key_id_len}, {s.version, 4}};
        struct piece v_aad[] = {LABEL(AAD_VALUE), {name, name_len}};

        plain = out->data + out->len;
        rv = open_gcm(material, s.dk_nonce, dk_aad,
                      sizeof(dk_aad) / sizeof(*dk_aad), s.dk_ct, ENV_KEY_LEN,
                      s.dk_tag, dk, VALUE_AUTH_FAILED, err);
        if (rv == 0) {
            rv = open_gcm(dk, s.nonce, v_aad, sizeof(v_aad) / sizeof(*v_aad),
                          s.ct, s.n, s.tag, plain, VALUE_AUTH_FAILED, err);
        }
    }
    OPENSSL_cleanse(dk, sizeof(dk));
    if (rv != 0) {
        /* Unauthenticated plaintext was written past out->len. */
        OPENSSL_cleanse(plain, s.n);
        return rv;
    }
    out->len += s.n;
    return 0;
}

void env_wipe_buf(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    /* The whole allocation: bytes past len may hold plaintext that was
     * written and then dropped by a reset. */
    if (b->data != NULL) {
        OPENSSL_cleanse(b->data, b->cap);
    }
    buf_close(b);
}
