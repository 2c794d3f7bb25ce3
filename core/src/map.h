/* A string-keyed hash map (chained, grows at load factor 1). Keys are
 * copied; values are not owned. */
#ifndef RUNQ_MAP_H
#define RUNQ_MAP_H

#include <stddef.h>

typedef struct rq_map_node {
    struct rq_map_node *next;
    void *value;
    char key[];
} rq_map_node;

typedef struct rq_map {
    rq_map_node **buckets;
    size_t nbuckets, count;
} rq_map;

void rq_map_init(rq_map *m);
/* Free the nodes; calls free_value on each value when not NULL. */
void rq_map_clear(rq_map *m, void (*free_value)(void *));
void *rq_map_get(const rq_map *m, const char *key);
int rq_map_put(rq_map *m, const char *key, void *value); /* replaces; 0 or RUNQ_ENOMEM */
void *rq_map_remove(rq_map *m, const char *key);         /* the value, or NULL */

#endif
