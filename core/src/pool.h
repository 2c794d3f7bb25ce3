/* An elastic pool of threads that runs between `min` and `max` threads: the
 * owner grows it while work waits, and a thread idle for `idle_ms` exits on
 * its own while the pool is above `min`. Every thread is joined exactly once:
 * threads that exited on their own are reaped by the next grow (or
 * rq_pool_reap), the rest by rq_pool_join_all.
 *
 * The pool has no lock of its own: every function except rq_pool_join_all
 * and rq_pool_free is called with the owner's lock (the one given to
 * rq_pool_init) held, so the pool's counts change atomically with the
 * owner's own state (its work list). */
#ifndef RUNQ_POOL_H
#define RUNQ_POOL_H

#include "common.h"

#include <uv.h>

typedef struct rq_pool_slot rq_pool_slot;

typedef struct rq_pool {
    uv_mutex_t *lock;     /* the owner's */
    void (*body)(void *); /* thread body; called and returns with the lock not held */
    void *arg;
    rq_pool_slot *slots;  /* `max` of them */
    int min, max;
    int64_t idle_ms;
    int threads;          /* alive, not yet exiting */
    int idle;             /* of which waiting in rq_pool_idle */
    int exited;           /* slots whose body returned, not yet joined */
} rq_pool;

/* min == max: a fixed pool whose threads never time out. */
int rq_pool_init(rq_pool *p, uv_mutex_t *lock, void (*body)(void *), void *arg, int min,
                 int max, int64_t idle_ms);
/* Lock held. Join threads that exited on their own. */
void rq_pool_reap(rq_pool *p);
/* Lock held. Start up to n more threads (never past max); returns how many
 * started, or RUNQ_ENOMEM (detail set) when none could start. */
int rq_pool_grow(rq_pool *p, int n);
/* How many jobs past the current threads the owner may take on so that a
 * backlog shows: 0 for a fixed pool or at max, else up to doubling. */
int rq_pool_headroom(const rq_pool *p);
/* Lock held, from a pool thread that found no work: waits once on cond (a
 * timed wait while the pool is above min). Returns true when this thread has
 * been idle for idle_ms in a row and must now return from its body; the
 * pool no longer counts it. The caller loops while it has no work. */
bool rq_pool_idle(rq_pool *p, uv_cond_t *cond);
/* Lock held, from a pool thread that took work: its idle time restarts. */
void rq_pool_busy(rq_pool *p);
/* Lock NOT held. Join every thread; the owner has told them to return
 * and nothing grows the pool any more. */
void rq_pool_join_all(rq_pool *p);
/* After rq_pool_join_all (or when nothing was started). */
void rq_pool_free(rq_pool *p);

#endif
