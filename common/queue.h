/* An intrusive doubly linked queue (as in libuv and raft): embed a struct
 * cairn_queue in an element and link it into a list head. */
#ifndef CAIRN_COMMON_QUEUE_H
#define CAIRN_COMMON_QUEUE_H

#include <stddef.h>

struct cairn_queue
{
    struct cairn_queue *next;
    struct cairn_queue *prev;
};

static inline void cairn_queue_init(struct cairn_queue *q)
{
    q->next = q;
    q->prev = q;
}

static inline int cairn_queue_empty(const struct cairn_queue *q)
{
    return q->next == q;
}

static inline void cairn_queue_push(struct cairn_queue *head,
                                    struct cairn_queue *e)
{
    e->next = head;
    e->prev = head->prev;
    head->prev->next = e;
    head->prev = e;
}

static inline void cairn_queue_remove(struct cairn_queue *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e;
    e->prev = e;
}

static inline struct cairn_queue *cairn_queue_head(struct cairn_queue *q)
{
    return q->next;
}

#define cairn_queue_data(e, type, field) \
    ((type *)((char *)(e)-offsetof(type, field)))

#endif
