/* Growable byte buffers. */
#ifndef CAIRN_COMMON_BUF_H
#define CAIRN_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A heap byte buffer. After an allocation failure `oom` stays set and every
 * later append is refused, so a sequence of appends can be checked once. */
struct buf
{
    uint8_t *data; /* NULL until the first append */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
    int oom;       /* non-zero once an allocation failed */
};

void buf_init(struct buf *b);
/** Free the memory; the buffer is empty and usable again. NULL is allowed. */
void buf_close(struct buf *b);
/** Forget the contents but keep the memory (and clear oom). */
void buf_reset(struct buf *b);
/** Make room for @p extra more bytes. 0, or CAIRN_RESOURCE_EXHAUSTED. */
int buf_reserve(struct buf *b, size_t extra);
/** Append @p n bytes. 0, or CAIRN_RESOURCE_EXHAUSTED. */
int buf_append_slow(struct buf *b, const void *p, size_t n);

/* Inline fast path: the msgpack packer appends a few bytes at a time. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->data != NULL && n > 0 && n < b->cap - b->len && !b->oom) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return buf_append_slow(b, p, n);
}
int buf_append_str(struct buf *b, const char *s);
int buf_append_u8(struct buf *b, uint8_t v);
/** Append @p v as 8 big-endian bytes (sorts as a number in LMDB). */
int buf_append_be64(struct buf *b, uint64_t v);
/** Append a printf-formatted string (no terminating NUL is counted). */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Ensure data[len] == '\0' without counting it. 0, or RESOURCE_EXHAUSTED. */
int buf_terminate(struct buf *b);
/** Detach the memory: the caller frees it with free(). The buffer is empty. */
uint8_t *buf_steal(struct buf *b, size_t *len);

void be64_put(uint8_t *p, uint64_t v);
uint64_t be64_get(const uint8_t *p);

#endif
