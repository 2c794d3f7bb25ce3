#include "map.h"

#include "common.h"

#include <string.h>

static uint64_t hash_key(const char *s) { return rq_fnv1a64(s, strlen(s)); }

void rq_map_init(rq_map *m) { memset(m, 0, sizeof *m); }

void rq_map_clear(rq_map *m, void (*free_value)(void *)) {
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (rq_map_node *n = m->buckets[i], *next; n; n = next) {
            next = n->next;
            if (free_value) free_value(n->value);
            rq_free(n);
        }
    }
    rq_free(m->buckets);
    rq_map_init(m);
}

static rq_map_node **slot(const rq_map *m, const char *key) {
    rq_map_node **p = &m->buckets[hash_key(key) & (m->nbuckets - 1)];
    while (*p && strcmp((*p)->key, key) != 0) p = &(*p)->next;
    return p;
}

void *rq_map_get(const rq_map *m, const char *key) {
    if (!m->nbuckets) return NULL;
    rq_map_node *n = *slot(m, key);
    return n ? n->value : NULL;
}

static int grow(rq_map *m) {
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
    rq_map_node **b = rq_calloc(nb, sizeof *b);
    if (!b) return RUNQ_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (rq_map_node *n = m->buckets[i], *next; n; n = next) {
            next = n->next;
            size_t j = hash_key(n->key) & (nb - 1);
            n->next = b[j];
            b[j] = n;
        }
    }
    rq_free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

int rq_map_put(rq_map *m, const char *key, void *value) {
    if (m->count >= m->nbuckets && grow(m) != 0) return rq_error(RUNQ_ENOMEM, "out of memory");
    rq_map_node **p = slot(m, key);
    if (*p) {
        (*p)->value = value;
        return 0;
    }
    size_t len = strlen(key) + 1;
    rq_map_node *n = rq_malloc(sizeof *n + len);
    if (!n) return rq_error(RUNQ_ENOMEM, "out of memory");
    memcpy(n->key, key, len);
    n->value = value;
    n->next = NULL;
    *p = n;
    m->count++;
    return 0;
}

void *rq_map_remove(rq_map *m, const char *key) {
    if (!m->nbuckets) return NULL;
    rq_map_node **p = slot(m, key), *n = *p;
    if (!n) return NULL;
    void *v = n->value;
    *p = n->next;
    rq_free(n);
    m->count--;
    return v;
}
