/* Elastic thread pool; see pool.h. */
#include "pool.h"
#include "thread.h"

enum {
    SLOT_FREE = 0, /* no thread */
    SLOT_RUN,      /* alive and counted in `threads` */
    SLOT_LEAVING,  /* timed out idle, returning from its body, not counted */
    SLOT_EXITED,   /* body returned: join it */
    SLOT_JOINING   /* rq_pool_join_all owns it */
};

struct rq_pool_slot {
    rq_pool *pool;
    uv_thread_t tid;
    int state;
    bool idle;         /* idle_since is set */
    int64_t idle_since;
};

/* The slot of the pool thread running here (NULL on other threads). */
static _Thread_local rq_pool_slot *self_slot;

/* Twice max: up to max threads counted plus up to max still on their way
 * out (leaving, or exited and not yet reaped), so growth never waits for a
 * leaving thread to finish. */
static int nslots(const rq_pool *p) { return 2 * p->max; }

int rq_pool_init(rq_pool *p, uv_mutex_t *lock, void (*body)(void *), void *arg, int min,
                 int max, int64_t idle_ms) {
    *p = (rq_pool){.lock = lock, .body = body, .arg = arg, .min = min, .max = max,
                   .idle_ms = idle_ms};
    p->slots = rq_calloc((size_t)nslots(p), sizeof *p->slots);
    if (!p->slots) return rq_error(RUNQ_ENOMEM, "out of memory");
    for (int i = 0; i < nslots(p); i++) p->slots[i].pool = p;
    return 0;
}

static void pool_main(void *arg) {
    rq_pool_slot *s = arg;
    rq_pool *p = s->pool;
    self_slot = s;
    p->body(p->arg);
    uv_mutex_lock(p->lock);
    if (s->state == SLOT_RUN) p->threads--; /* returned because the owner stops */
    if (s->state != SLOT_JOINING) {
        s->state = SLOT_EXITED;
        p->exited++;
    }
    uv_mutex_unlock(p->lock);
}

void rq_pool_reap(rq_pool *p) {
    /* Most calls find nothing: skip the scan of every slot under the lock
     * (a fixed pool's threads never exit on their own). */
    if (!p->exited) return;
    /* Joining under the lock is safe: an exited slot's thread has released
     * the lock for the last time and only has to return. */
    for (int i = 0; i < nslots(p); i++) {
        rq_pool_slot *s = &p->slots[i];
        if (s->state != SLOT_EXITED) continue;
        uv_thread_join(&s->tid);
        s->state = SLOT_FREE;
    }
    p->exited = 0;
}

int rq_pool_grow(rq_pool *p, int n) {
    rq_pool_reap(p);
    int started = 0;
    for (int i = 0; i < nslots(p) && started < n && p->threads < p->max; i++) {
        rq_pool_slot *s = &p->slots[i];
        if (s->state != SLOT_FREE) continue;
        s->state = SLOT_RUN;
        s->idle = false;
        if (rq_thread_start(&s->tid, pool_main, s) != 0) {
            s->state = SLOT_FREE;
            if (!started) return rq_error(RUNQ_ENOMEM, "cannot start a handler thread");
            break;
        }
        p->threads++;
        started++;
    }
    return started;
}

int rq_pool_headroom(const rq_pool *p) {
    int room = p->max - p->threads;
    int step = p->threads > 0 ? p->threads : 1;
    return room < step ? room : step;
}

bool rq_pool_idle(rq_pool *p, uv_cond_t *cond) {
    rq_pool_slot *s = self_slot;
    int64_t now = rq_mono_ms();
    if (!s->idle) {
        s->idle = true;
        s->idle_since = now;
    }
    p->idle++;
    if (p->threads > p->min && s->state == SLOT_RUN) {
        int64_t left = s->idle_since + p->idle_ms - now;
        if (left <= 0) {
            /* Decided under the lock, so concurrent timeouts never take
             * the pool below min. */
            p->idle--;
            p->threads--;
            s->state = SLOT_LEAVING;
            return true;
        }
        uv_cond_timedwait(cond, p->lock, (uint64_t)left * 1000000);
    } else {
        uv_cond_wait(cond, p->lock);
    }
    p->idle--;
    return false;
}

void rq_pool_busy(rq_pool *p) {
    (void)p;
    self_slot->idle = false;
}

void rq_pool_join_all(rq_pool *p) {
    if (!p->slots) return;
    uv_mutex_lock(p->lock);
    for (int i = 0; i < nslots(p); i++)
        if (p->slots[i].state != SLOT_FREE) p->slots[i].state = SLOT_JOINING;
    p->exited = 0;
    uv_mutex_unlock(p->lock);
    /* Only this thread writes a JOINING slot now; the threads themselves
     * may still need the lock to finish, so join without it. */
    for (int i = 0; i < nslots(p); i++) {
        rq_pool_slot *s = &p->slots[i];
        if (s->state != SLOT_JOINING) continue;
        uv_thread_join(&s->tid);
        s->state = SLOT_FREE;
    }
}

void rq_pool_free(rq_pool *p) {
    rq_free(p->slots);
    p->slots = NULL;
}
