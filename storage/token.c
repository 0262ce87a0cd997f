#include "token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

#define TOKEN_VERSION 1
#define TOKEN_MAC 16
/* version, kind, query hash (8), position length (2) */
#define TOKEN_HEADER 12

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* OpenSSL 3 looks an algorithm up by name on every one-shot call (SHA256(),
 * HMAC()), which cost more than the hashing of these few bytes: fetch each
 * once. Fetched algorithms may be shared between threads. */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;
static EVP_MAC *hmac;

static void fetch_algs(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

uint64_t token_hash(const void *p, size_t n)
{
    uint8_t d[EVP_MAX_MD_SIZE];

    pthread_once(&algs_once, fetch_algs);
    if (sha256 == NULL || EVP_Digest(p, n, d, NULL, sha256, NULL) != 1) {
        SHA256(p, n, d); /* the slow way, if the fetch failed */
    }
    return be64_get(d);
}

/* An HMAC context keyed with the last key used, copied for each MAC: the
 * key schedule and the digest lookup are done once per key, not per token.
 * Under a mutex: queries may run on several threads. */
static pthread_mutex_t keyed_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t keyed_key[TOKEN_KEY_LEN];
static EVP_MAC_CTX *keyed;

static EVP_MAC_CTX *keyed_ctx(const uint8_t key[TOKEN_KEY_LEN])
{
    EVP_MAC_CTX *ctx = NULL;

    pthread_once(&algs_once, fetch_algs);
    if (hmac == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&keyed_mu);
    if (keyed == NULL || memcmp(keyed_key, key, TOKEN_KEY_LEN) != 0) {
        OSSL_PARAM params[2];
        EVP_MAC_CTX *fresh = EVP_MAC_CTX_new(hmac);

        params[0] = OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();
        if (fresh != NULL &&
            EVP_MAC_init(fresh, key, TOKEN_KEY_LEN, params) == 1) {
            EVP_MAC_CTX_free(keyed);
            keyed = fresh;
            memcpy(keyed_key, key, TOKEN_KEY_LEN);
        } else {
            EVP_MAC_CTX_free(fresh);
            pthread_mutex_unlock(&keyed_mu);
            return NULL;
        }
    }
    ctx = EVP_MAC_CTX_dup(keyed);
    pthread_mutex_unlock(&keyed_mu);
    return ctx;
}

static void mac(const uint8_t key[TOKEN_KEY_LEN],
                const uint8_t *p,
                size_t n,
                uint8_t out[TOKEN_MAC])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    size_t flen = 0;
    EVP_MAC_CTX *ctx = keyed_ctx(key);
    int ok = 0;

    if (ctx != NULL) {
        ok = EVP_MAC_update(ctx, p, n) == 1 &&
             EVP_MAC_final(ctx, full, &flen, sizeof(full)) == 1 &&
             flen >= TOKEN_MAC;
        EVP_MAC_CTX_free(ctx);
    }
    if (!ok) {
        HMAC(EVP_sha256(), key, TOKEN_KEY_LEN, p, n, full, &len);
    }
    memcpy(out, full, TOKEN_MAC);
}

int token_encode(const uint8_t key[TOKEN_KEY_LEN],
                 uint8_t kind,
                 uint64_t query_hash,
                 const void *pos,
                 size_t pos_len,
                 struct buf *out)
{
    uint8_t raw[TOKEN_HEADER + TOKEN_POS_MAX + TOKEN_MAC];
    size_t n = TOKEN_HEADER + pos_len + TOKEN_MAC;
    uint32_t acc = 0;
    int bits = 0;
    int rv;

    if (pos_len > TOKEN_POS_MAX) {
        return CAIRN_INTERNAL;
    }
    raw[0] = TOKEN_VERSION;
    raw[1] = kind;
    be64_put(raw + 2, query_hash);
    raw[10] = (uint8_t)(pos_len >> 8);
    raw[11] = (uint8_t)pos_len;
    memcpy(raw + TOKEN_HEADER, pos, pos_len);
    mac(key, raw, TOKEN_HEADER + pos_len, raw + TOKEN_HEADER + pos_len);

    rv = buf_reserve(out, (n * 4 + 2) / 3);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out->data[out->len++] = (uint8_t)b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out->data[out->len++] = (uint8_t)b64url[(acc << (6 - bits)) & 63];
    }
    return 0;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

static int invalid(struct cairn_error *err)
{
    return cairn_error_set(err, CAIRN_INVALID_ARGUMENT, "InvalidNextToken",
                           "The specified token is not valid.");
}

int token_decode(const uint8_t key[TOKEN_KEY_LEN],
                 uint8_t kind,
                 uint64_t query_hash,
                 const char *tok,
                 size_t n,
                 uint8_t *pos,
                 size_t *pos_len,
                 struct cairn_error *err)
{
    uint8_t raw[TOKEN_HEADER + TOKEN_POS_MAX + TOKEN_MAC];
    uint8_t want[TOKEN_MAC];
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t plen;

    if (n == 0 || n > ((sizeof(raw) * 4) + 2) / 3) {
        return invalid(err);
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64val(tok[i]);
        if (v < 0) {
            return invalid(err);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[len++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero padding, or two encodings would decode the
     * same. */
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0) {
        return invalid(err);
    }
    if (len < TOKEN_HEADER + TOKEN_MAC) {
        return invalid(err);
    }
    plen = ((size_t)raw[10] << 8) | raw[11];
    if (plen > TOKEN_POS_MAX || len != TOKEN_HEADER + plen + TOKEN_MAC) {
        return invalid(err);
    }
    mac(key, raw, TOKEN_HEADER + plen, want);
    if (CRYPTO_memcmp(want, raw + TOKEN_HEADER + plen, TOKEN_MAC) != 0) {
        return invalid(err);
    }
    if (raw[0] != TOKEN_VERSION || raw[1] != kind ||
        be64_get(raw + 2) != query_hash) {
        return invalid(err);
    }
    memcpy(pos, raw + TOKEN_HEADER, plen);
    *pos_len = plen;
    return 0;
}
