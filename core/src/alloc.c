/* Allocation through user-replaceable hooks (runq_set_allocator). */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static runq_allocator rq_alloc = {malloc, calloc, realloc, free};

void runq_set_allocator(const runq_allocator *allocator) {
    if (allocator == NULL) {
        rq_alloc = (runq_allocator){malloc, calloc, realloc, free};
        return;
    }
    rq_alloc = *allocator;
}

void *rq_malloc(size_t size) { return rq_alloc.malloc_fn(size ? size : 1); }

void *rq_calloc(size_t count, size_t size) {
    /* Some custom allocators do not check the product; do it for them. */
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    return rq_alloc.calloc_fn(count ? count : 1, size ? size : 1);
}

void *rq_realloc(void *ptr, size_t size) { return rq_alloc.realloc_fn(ptr, size ? size : 1); }

void rq_free(void *ptr) {
    /* free() must not clobber errno for callers that report it afterwards. */
    int saved = errno;
    if (ptr) rq_alloc.free_fn(ptr);
    errno = saved;
}

void runq_free(void *ptr) { rq_free(ptr); }

char *rq_strdup(const char *s) {
    if (s == NULL) return NULL;
    return rq_memdup(s, strlen(s) + 1);
}

void *rq_memdup(const void *p, size_t n) {
    if (n == 0) return NULL;
    void *q = rq_malloc(n);
    if (q) memcpy(q, p, n);
    return q;
}
