#include "heap.h"

#include "common.h"

void rq_heap_init(rq_heap *h, rq_heap_cmp cmp) {
    h->items = NULL;
    h->count = h->cap = 0;
    h->cmp = cmp;
}

void rq_heap_clear(rq_heap *h) {
    rq_free(h->items);
    rq_heap_init(h, h->cmp);
}

bool rq_heap_push(rq_heap *h, void *item) {
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        void **items = rq_realloc(h->items, cap * sizeof *items);
        if (!items) return false;
        h->items = items;
        h->cap = cap;
    }
    size_t i = h->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->cmp(item, h->items[parent]) >= 0) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = item;
    return true;
}

void *rq_heap_peek(const rq_heap *h) { return h->count ? h->items[0] : NULL; }

void *rq_heap_pop(rq_heap *h) {
    if (!h->count) return NULL;
    void *top = h->items[0], *last = h->items[--h->count];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count) break;
        if (child + 1 < h->count && h->cmp(h->items[child + 1], h->items[child]) < 0) child++;
        if (h->cmp(last, h->items[child]) <= 0) break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->count) h->items[i] = last;
    return top;
}
