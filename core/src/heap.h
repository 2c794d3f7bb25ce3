/* A binary min-heap of pointers ordered by a comparison function. */
#ifndef RUNQ_HEAP_H
#define RUNQ_HEAP_H

#include <stdbool.h>
#include <stddef.h>

typedef int (*rq_heap_cmp)(const void *a, const void *b); /* <0: a first */

typedef struct rq_heap {
    void **items;
    size_t count, cap;
    rq_heap_cmp cmp;
} rq_heap;

void rq_heap_init(rq_heap *h, rq_heap_cmp cmp);
void rq_heap_clear(rq_heap *h); /* frees the array, not the items */
bool rq_heap_push(rq_heap *h, void *item); /* false on allocation failure */
void *rq_heap_peek(const rq_heap *h);
void *rq_heap_pop(rq_heap *h);

#endif
