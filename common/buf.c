#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

void buf_close(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->oom = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
    size_t need;
    size_t cap;
    uint8_t *p;

    if (b->oom) {
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    need = b->len + extra + 1; /* room for buf_terminate */
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap != 0 ? b->cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return CAIRN_RESOURCE_EXHAUSTED;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append_slow(struct buf *b, const void *p, size_t n)
{
    int rv = buf_reserve(b, n);
    if (rv != 0) {
        return rv;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_u8(struct buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int buf_append_be64(struct buf *b, uint64_t v)
{
    uint8_t tmp[8];
    be64_put(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    int rv;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return CAIRN_INTERNAL;
    }
    rv = buf_reserve(b, (size_t)n);
    if (rv != 0) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_terminate(struct buf *b)
{
    int rv = buf_reserve(b, 0);
    if (rv != 0) {
        return rv;
    }
    b->data[b->len] = '\0';
    return 0;
}

uint8_t *buf_steal(struct buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    buf_init(b);
    return p;
}
