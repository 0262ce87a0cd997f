#include "keys.h"

#include <openssl/sha.h>
#include <string.h>

#include "buf.h"

size_t keys_param(const char *name, size_t n, uint8_t *out)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];

    if (n <= KEYS_INLINE) {
        memcpy(out, name, n);
        return n;
    }
    memcpy(out, name, KEYS_INLINE);
    out[KEYS_INLINE] = KEYS_LONG_MARK;
    SHA256((const unsigned char *)name, n, digest);
    memcpy(out + KEYS_INLINE + 1, digest, KEYS_HASH);
    return KEYS_PARAM_MAX;
}

bool keys_param_is_long(const uint8_t *key, size_t n)
{
    return n == KEYS_PARAM_MAX && key[KEYS_INLINE] == KEYS_LONG_MARK;
}

void keys_version(uint64_t id, uint64_t version, uint8_t out[16])
{
    be64_put(out, id);
    be64_put(out + 8, version);
}

size_t keys_label(uint64_t id, const char *label, size_t n, uint8_t *out)
{
    be64_put(out, id);
    memcpy(out + 8, label, n);
    return 8 + n;
}

bool keys_prefix_end(uint8_t *p, size_t n)
{
    while (n > 0) {
        if (p[n - 1] != 0xff) {
            p[n - 1]++;
            return true;
        }
        n--;
    }
    return false;
}
