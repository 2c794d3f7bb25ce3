/* The in-process backend (memory://). One store holds every queue; a mutex
 * makes each operation one atomic step, as a Lua script is on Redis, and a
 * condition variable wakes blocked fetches and waits. Named stores
 * (memory://NAME) are shared by the clients of a process, by refcount. */
#include "../backend.h"
#include "../heap.h"
#include "../map.h"

#include <string.h>
#include <uv.h>

typedef struct mrec {
    runq_job *job;
    uint64_t seq;             /* enqueue order: FIFO among equal priority */
    int64_t expires_ms;       /* done records: when they are dropped */
    struct mrec *prev, *next; /* active or dead list of its queue */
} mrec;

typedef struct mlist {
    mrec *head, *tail;
    int64_t count;
} mlist;

typedef struct mqueue {
    rq_heap pending;   /* priority desc, then seq */
    rq_heap scheduled; /* eta, then seq */
    mlist active;
    mlist dead;
    int64_t max_len;
    /* Queue gates (see "queue gates" below). */
    runq_queue_options opt;   /* as configured; zeroed: every gate off */
    bool paused;              /* manual pause */
    int64_t fails;            /* failed attempts in a row */
    int64_t level;            /* automatic pauses in a row; 0: none */
    int64_t pause_until_ms;   /* end of the current automatic pause */
    char probe[RUNQ_ID_SIZE]; /* the one job leased after it; "" none yet */
    int64_t tat_us;           /* rate limit: GCRA theoretical arrival time */
    /* Per-key interval limit (see "rate keys" below). */
    struct mstore *store;     /* for the unique keys of unique-until-done */
    rq_map rkeys;             /* rate key -> mrkey */
    rq_heap rkdue;            /* mrkeys not in flight, by next_ms */
    int64_t rk_waiting;       /* jobs waiting in some mrkey */
} mqueue;

/* One rate key of a queue. It is in its queue's rkdue heap exactly when it
 * is not in flight, so each key is there at most once. */
typedef struct mrkey {
    rq_heap waiting;  /* its jobs not yet promoted: priority desc, then seq */
    int64_t next_ms;  /* earliest time its next job may be promoted */
    bool in_flight;   /* its head job is in pending, not leased yet */
    char name[];
} mrkey;

typedef struct munique {
    char id[RUNQ_ID_SIZE];
    int64_t expires_ms;
    bool until_done; /* owned by the uniques map, not by unique_exp */
    char key[]; /* queue '\n' unique key */
} munique;

typedef struct mstore {
    char *name; /* NULL: private */
    int refs;
    uv_mutex_t lock;
    uv_cond_t changed;
    rq_map jobs;         /* id -> mrec */
    rq_map queues;       /* name -> mqueue */
    rq_map uniques;      /* key -> munique */
    rq_heap unique_exp;  /* every munique ever made, by expiry */
    rq_heap done;        /* done mrecs, by expiry */
    uint64_t seq, token, interrupts;
    struct mstore *next_named;
} mstore;

typedef struct mbackend {
    runq_backend base;
    mstore *store;
} mbackend;

#define STORE(b) (((mbackend *)(b))->store)

/* ---- ordering ---- */

static int cmp_pending(const void *a, const void *b) {
    const mrec *x = a, *y = b;
    if (x->job->priority != y->job->priority) return x->job->priority > y->job->priority ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_scheduled(const void *a, const void *b) {
    const mrec *x = a, *y = b;
    if (x->job->eta_ms != y->job->eta_ms) return x->job->eta_ms < y->job->eta_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_expiry(const void *a, const void *b) {
    int64_t x = ((const mrec *)a)->expires_ms, y = ((const mrec *)b)->expires_ms;
    return x < y ? -1 : x > y;
}

static int cmp_unique(const void *a, const void *b) {
    int64_t x = ((const munique *)a)->expires_ms, y = ((const munique *)b)->expires_ms;
    return x < y ? -1 : x > y;
}

static int cmp_rkey(const void *a, const void *b) {
    int64_t x = ((const mrkey *)a)->next_ms, y = ((const mrkey *)b)->next_ms;
    return x < y ? -1 : x > y;
}

static void mlist_push(mlist *l, mrec *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    l->count++;
}

static void mlist_remove(mlist *l, mrec *r) {
    if (r->prev) r->prev->next = r->next;
    else l->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->tail = r->prev;
    r->prev = r->next = NULL;
    l->count--;
}

/* ---- stores ---- */

static uv_once_t registry_once = UV_ONCE_INIT;
static uv_mutex_t registry_lock;
static mstore *named_stores;
static void registry_init(void) { uv_mutex_init(&registry_lock); }

static mqueue *queue_get(mstore *s, const char *name) {
    mqueue *q = rq_map_get(&s->queues, name);
    if (q) return q;
    q = rq_calloc(1, sizeof *q);
    if (!q) return NULL;
    rq_heap_init(&q->pending, cmp_pending);
    rq_heap_init(&q->scheduled, cmp_scheduled);
    q->store = s;
    rq_map_init(&q->rkeys);
    rq_heap_init(&q->rkdue, cmp_rkey);
    if (rq_map_put(&s->queues, name, q) != 0) {
        rq_free(q);
        return NULL;
    }
    return q;
}

static void rec_free(void *p) {
    mrec *r = p;
    rq_job_destroy(r->job);
    rq_free(r);
}

static void rkey_free(void *p) {
    mrkey *k = p;
    rq_heap_clear(&k->waiting); /* its records are in the id map */
    rq_free(k);
}

static void queue_free(void *p) {
    mqueue *q = p;
    rq_map_clear(&q->rkeys, rkey_free);
    rq_heap_clear(&q->rkdue);
    rq_heap_clear(&q->pending);
    rq_heap_clear(&q->scheduled);
    rq_free(q);
}

static void unique_free_held(void *p) {
    munique *u = p;
    if (u->until_done) rq_free(u);
}

static void store_free(mstore *s) {
    rq_map_clear(&s->jobs, rec_free); /* every record is in the id map */
    rq_map_clear(&s->queues, queue_free);
    rq_map_clear(&s->uniques, unique_free_held); /* the rest are owned by unique_exp */
    for (void *u; (u = rq_heap_pop(&s->unique_exp));) rq_free(u);
    rq_heap_clear(&s->unique_exp);
    rq_heap_clear(&s->done);
    uv_cond_destroy(&s->changed);
    uv_mutex_destroy(&s->lock);
    rq_free(s->name);
    rq_free(s);
}

static mstore *store_new(const char *name) {
    mstore *s = rq_calloc(1, sizeof *s);
    if (!s) return NULL;
    if (name && !(s->name = rq_strdup(name))) {
        rq_free(s);
        return NULL;
    }
    s->refs = 1;
    uv_mutex_init(&s->lock);
    uv_cond_init(&s->changed);
    rq_map_init(&s->jobs);
    rq_map_init(&s->queues);
    rq_map_init(&s->uniques);
    rq_heap_init(&s->unique_exp, cmp_unique);
    rq_heap_init(&s->done, cmp_expiry);
    return s;
}

/* ---- state changes (store locked) ---- */

/* ---- unique-until-done (engineer B's block): the key is bound to the
 * job's life instead of a TTL; it is let go when the job is done or dead,
 * in the same step. Store locked. ---- */

static munique *unique_find(mstore *s, const char *queue, const char *ukey) {
    char k[RUNQ_NAME_MAX + 1024 + 3];
    snprintf(k, sizeof k, "%s\n%s", queue, ukey);
    return rq_map_get(&s->uniques, k);
}

/* The job is done or dead: let its key go, if this job still holds it. */
static void unique_release(mstore *s, const runq_job *j) {
    if (!j->unique_until_done || !j->unique_key) return;
    munique *u = unique_find(s, j->queue, j->unique_key);
    if (!u || !u->until_done || strcmp(u->id, j->id) != 0) return;
    rq_map_remove(&s->uniques, u->key);
    rq_free(u);
}

/* A dead job comes back (dead_retry): it takes its key again, unless
 * another job took it meanwhile (then the retry is refused, so that two
 * live jobs never share the key). */
static int unique_reacquire(mstore *s, const runq_job *j, int64_t now) {
    if (!j->unique_until_done || !j->unique_key) return 0;
    munique *u = unique_find(s, j->queue, j->unique_key);
    if (u && u->expires_ms > now) {
        if (strcmp(u->id, j->id) == 0) return 0;
        return rq_error(RUNQ_EDUPLICATE, "job %s: its unique key \"%s\" is held by job %s",
                        j->id, j->unique_key, u->id);
    }
    size_t qn = strlen(j->queue), kn = strlen(j->unique_key);
    munique *n = rq_malloc(sizeof *n + qn + kn + 2);
    if (!n) return rq_error(RUNQ_ENOMEM, "out of memory");
    memcpy(n->id, j->id, RUNQ_ID_SIZE);
    n->expires_ms = INT64_MAX;
    n->until_done = true;
    memcpy(n->key, j->queue, qn);
    n->key[qn] = '\n';
    memcpy(n->key + qn + 1, j->unique_key, kn + 1);
    /* An expired TTL entry it replaces stays owned by unique_exp. */
    if (rq_map_put(&s->uniques, n->key, n) != 0) {
        rq_free(n);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    return 0;
}

static void to_dead(mqueue *q, mrec *r, const char *reason) {
    r->job->state = RUNQ_STATE_DEAD;
    if (reason) rq_job_set_str(&r->job->error, reason);
    mlist_push(&q->dead, r);
    unique_release(q->store, r->job);
}

static void to_pending(mqueue *q, mrec *r) {
    r->job->state = RUNQ_STATE_PENDING;
    r->job->lease_token = 0;
    r->job->lease_until_ms = 0;
    rq_heap_push(&q->pending, r);
}

/* ---- rate keys: the per-key interval limit (engineer B's block). A ready
 * job with a rate key waits in its key's heap, not in pending. When the
 * key's time has come its head job is promoted into pending, where it
 * competes with every other job by priority; the key is then "in flight"
 * and promotes nothing else. When that job is leased the key's next time is
 * the lease time + the job's interval. So jobs of one key start at least an
 * interval apart, and a waiting key never holds up other keys or unkeyed
 * jobs. The same rules as the rate-key blocks of the Redis scripts
 * (docs/architecture.md, "Per-key interval limit"). Store locked. ---- */

/* A job became ready (enqueued, due, recovered, released, retried). */
static void to_ready(mqueue *q, mrec *r) {
    const char *name = r->job->rate_key;
    mrkey *k = name ? rq_map_get(&q->rkeys, name) : NULL;
    if (name && !k && (k = rq_calloc(1, sizeof *k + strlen(name) + 1))) {
        memcpy(k->name, name, strlen(name) + 1);
        rq_heap_init(&k->waiting, cmp_pending);
        if (rq_map_put(&q->rkeys, k->name, k) != 0) {
            rq_free(k);
            k = NULL;
        } else {
            k->next_ms = 0; /* a new key: its first job may go at once */
            rq_heap_push(&q->rkdue, k);
        }
    }
    if (!k) { /* no rate key (or out of memory: run it unlimited, never lose it) */
        to_pending(q, r);
        return;
    }
    r->job->state = RUNQ_STATE_PENDING;
    r->job->lease_token = 0;
    r->job->lease_until_ms = 0;
    rq_heap_push(&k->waiting, r);
    q->rk_waiting++;
}

/* Promote the head job of every key whose time has come; forget keys whose
 * interval has passed with nothing waiting. */
static void rk_promote(mqueue *q, int64_t now) {
    for (mrkey *k; (k = rq_heap_peek(&q->rkdue)) && k->next_ms <= now;) {
        rq_heap_pop(&q->rkdue);
        mrec *r = rq_heap_pop(&k->waiting);
        if (!r) {
            rq_map_remove(&q->rkeys, k->name);
            rkey_free(k);
            continue;
        }
        q->rk_waiting--;
        k->in_flight = true;
        to_pending(q, r);
    }
}

/* A promoted job left pending: leased (the key's next job may be promoted
 * at next_ms = now + interval) or dead-lettered unstarted (next_ms = now). */
static void rk_left_pending(mqueue *q, const runq_job *j, int64_t next_ms) {
    mrkey *k = j->rate_key ? rq_map_get(&q->rkeys, j->rate_key) : NULL;
    if (!k || !k->in_flight) return;
    k->in_flight = false;
    k->next_ms = next_ms;
    rq_heap_push(&q->rkdue, k);
}

/* ---- queue gates: manual and automatic pause, rate and concurrency limits.
 * The same rules as the gate block of redis/scripts/fetch.lua; described in
 * docs/architecture.md ("Queue gates"). Store locked. ---- */

static bool gate_auto(const mqueue *q) { return q->opt.pause_after_failures > 0 && q->level > 0; }

/* Rate limit: microseconds between leases, rounded up so the limit holds. */
static int64_t gate_emission_us(const mqueue *q) {
    return (q->opt.rate_period_ms * 1000 + q->opt.rate_limit - 1) / q->opt.rate_limit;
}

/* How many jobs the gates let a fetch lease from q now, up to `want`. When
 * a gate is closed until a known time, *due is lowered to it (ms). */
static size_t gate_allow(const mqueue *q, int64_t now, size_t want, int64_t *due) {
    if (q->paused) return 0; /* resume wakes the fetch */
    if (gate_auto(q)) {
        if (now < q->pause_until_ms) {
            if (q->pause_until_ms < *due) *due = q->pause_until_ms;
            return 0;
        }
        if (q->probe[0]) return 0; /* its ack or fail wakes the fetch */
        want = 1;
    }
    if (q->opt.concurrency_limit > 0) {
        /* The active list is the lease set: expired leases were recovered
         * by queue_maintain, so a dead worker's slots are free again. */
        if (q->active.count >= q->opt.concurrency_limit) return 0;
        if ((uint64_t)(q->opt.concurrency_limit - q->active.count) < want)
            want = (size_t)(q->opt.concurrency_limit - q->active.count);
    }
    if (q->opt.rate_limit > 0) {
        int64_t t = gate_emission_us(q), tau = (q->opt.rate_burst - 1) * t;
        int64_t now_us = now * 1000, tat = q->tat_us > now_us ? q->tat_us : now_us;
        if (tat - tau > now_us) {
            int64_t at = (tat - tau + 999) / 1000;
            if (at < *due) *due = at;
            return 0;
        }
        int64_t k = (now_us + tau - tat) / t + 1;
        if ((uint64_t)k < want) want = (size_t)k;
    }
    return want;
}

/* A job of q was leased through the gates. */
static void gate_took(mqueue *q, const runq_job *j, int64_t now) {
    if (gate_auto(q)) memcpy(q->probe, j->id, RUNQ_ID_SIZE);
    if (q->opt.rate_limit > 0) {
        int64_t now_us = now * 1000;
        q->tat_us = (q->tat_us > now_us ? q->tat_us : now_us) + gate_emission_us(q);
    }
}

/* A leased job went back without an outcome (lease expired, released): if
 * it was the probe, let another job be the probe. */
static void gate_returned(mqueue *q, const runq_job *j) {
    if (q->probe[0] && strcmp(q->probe, j->id) == 0) q->probe[0] = '\0';
}

/* An attempt finished: the automatic pause's bookkeeping. Any success ends
 * it; failures count, and once the interval has passed any failure (the
 * probe's, or a late one) pauses again for twice as long, up to the cap. */
static void gate_finished(mqueue *q, bool failed, int64_t now) {
    if (!failed || q->opt.pause_after_failures <= 0) {
        q->fails = 0;
        q->level = 0;
        q->pause_until_ms = 0;
        q->probe[0] = '\0';
        return;
    }
    if (q->level > 0) {
        if (now < q->pause_until_ms) return; /* ran before the pause began */
    } else if (++q->fails < q->opt.pause_after_failures) {
        return;
    }
    q->level++;
    int64_t d = q->opt.pause_min_ms;
    for (int64_t i = 1; i < q->level && d < q->opt.pause_max_ms; i++) d *= 2;
    q->pause_until_ms = now + (d < q->opt.pause_max_ms ? d : q->opt.pause_max_ms);
    q->fails = 0;
    q->probe[0] = '\0';
}

/* Promote due scheduled jobs and recover expired leases of one queue. */
static void queue_maintain(mqueue *q, int64_t now) {
    for (mrec *r; (r = rq_heap_peek(&q->scheduled)) && r->job->eta_ms <= now;) {
        rq_heap_pop(&q->scheduled);
        to_ready(q, r);
    }
    for (mrec *r = q->active.head, *next; r; r = next) {
        next = r->next;
        if (r->job->lease_until_ms > now) continue;
        mlist_remove(&q->active, r);
        gate_returned(q, r->job);
        if (r->job->attempt > r->job->max_retries) to_dead(q, r, "lease expired");
        else {
            rq_job_set_str(&r->job->error, "lease expired");
            to_ready(q, r);
        }
    }
    rk_promote(q, now);
}

/* Drop done jobs and unique keys whose time is up. */
static void store_sweep(mstore *s, int64_t now) {
    for (mrec *r; (r = rq_heap_peek(&s->done)) && r->expires_ms <= now;) {
        rq_heap_pop(&s->done);
        rq_map_remove(&s->jobs, r->job->id);
        rec_free(r);
    }
    for (munique *u; (u = rq_heap_peek(&s->unique_exp)) && u->expires_ms <= now;) {
        rq_heap_pop(&s->unique_exp);
        if (rq_map_get(&s->uniques, u->key) == u) rq_map_remove(&s->uniques, u->key);
        rq_free(u);
    }
}

/* The record of a leased job if `job` still holds its lease. */
static mrec *leased(mstore *s, const runq_job *job, mqueue **q) {
    mrec *r = rq_map_get(&s->jobs, job->id);
    if (!r || r->job->state != RUNQ_STATE_ACTIVE || r->job->lease_token != job->lease_token) {
        rq_error(RUNQ_ESTALE, "job %s: the lease is no longer held by this worker", job->id);
        return NULL;
    }
    *q = rq_map_get(&s->queues, r->job->queue);
    return r;
}

/* ---- operations ---- */

static int mem_enqueue_one(mstore *s, runq_job *job, int64_t now) {
    mqueue *q = queue_get(s, job->queue);
    if (!q) return rq_error(RUNQ_ENOMEM, "out of memory");
    munique *u = NULL;
    if (job->unique_key) {
        size_t qn = strlen(job->queue), kn = strlen(job->unique_key);
        u = rq_malloc(sizeof *u + qn + kn + 2);
        if (!u) return rq_error(RUNQ_ENOMEM, "out of memory");
        memcpy(u->key, job->queue, qn);
        u->key[qn] = '\n';
        memcpy(u->key + qn + 1, job->unique_key, kn + 1);
        munique *held = rq_map_get(&s->uniques, u->key);
        if (held && held->expires_ms > now) {
            memcpy(job->id, held->id, RUNQ_ID_SIZE);
            rq_free(u);
            return rq_error(RUNQ_EDUPLICATE, "unique key \"%s\" is held by job %s", job->unique_key,
                            held->id);
        }
    }
    /* Jobs waiting behind their rate key wait too: they count. */
    if (q->max_len &&
        (int64_t)(q->pending.count + q->scheduled.count) + q->rk_waiting >= q->max_len) {
        rq_free(u);
        return rq_error(RUNQ_EFULL, "queue %s holds %lld jobs, its max_len", job->queue,
                        (long long)q->max_len);
    }
    mrec *r = rq_calloc(1, sizeof *r);
    if (!r || !(r->job = rq_job_clone(job))) {
        rq_free(r);
        rq_free(u);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    runq_job *j = r->job;
    j->created_ms = now;
    j->eta_ms = job->eta_ms ? job->eta_ms : now + job->delay_ms;
    if (job->ttl_ms > 0 && (!j->deadline_ms || now + job->ttl_ms < j->deadline_ms))
        j->deadline_ms = now + job->ttl_ms;
    j->attempt = 0;
    r->seq = ++s->seq;
    if (rq_map_put(&s->jobs, j->id, r) != 0) {
        rec_free(r);
        rq_free(u);
        return RUNQ_ENOMEM;
    }
    if (j->eta_ms > now) {
        j->state = RUNQ_STATE_SCHEDULED;
        rq_heap_push(&q->scheduled, r);
    } else {
        to_ready(q, r);
    }
    if (u) {
        memcpy(u->id, j->id, RUNQ_ID_SIZE);
        /* unique-until-done: no expiry; the map owns it until the job is
         * done or dead (unique_release). */
        u->until_done = j->unique_until_done;
        u->expires_ms = u->until_done ? INT64_MAX : now + j->unique_ttl_ms;
        rq_map_put(&s->uniques, u->key, u);
        if (!u->until_done) rq_heap_push(&s->unique_exp, u);
    }
    return 0;
}

static int mem_enqueue(runq_backend *b, runq_job **jobs, int *results, size_t n, int replicate,
                       int replicate_timeout_ms) {
    (void)replicate_timeout_ms;
    mstore *s = STORE(b);
    uv_mutex_lock(&s->lock);
    int64_t now = rq_now_ms();
    for (size_t i = 0; i < n; i++) results[i] = mem_enqueue_one(s, jobs[i], now);
    uv_cond_broadcast(&s->changed);
    uv_mutex_unlock(&s->lock);
    /* An in-process store has no replicas: asking for any cannot be met. */
    if (replicate > 0)
        return rq_error(RUNQ_EDURABILITY, "memory:// has no replicas; %d requested", replicate);
    return 0;
}

static int mem_fetch(runq_backend *b, const rq_fetch_request *req, runq_job ***out, size_t *n) {
    mstore *s = STORE(b);
    size_t order[64];
    *out = NULL;
    *n = 0;
    if (req->nqueues == 0 || req->nqueues > 64 || req->max == 0)
        return rq_error(RUNQ_EINVAL, "fetch needs 1 to 64 queues and max > 0");
    runq_job **jobs = rq_calloc(req->max, sizeof *jobs);
    if (!jobs) return rq_error(RUNQ_ENOMEM, "out of memory");
    int64_t until = req->timeout_ms < 0 ? INT64_MAX : rq_mono_ms() + req->timeout_ms;
    int rc = 0;
    uv_mutex_lock(&s->lock);
    uint64_t gen = s->interrupts;
    if (req->stop && atomic_load(req->stop)) {
        uv_mutex_unlock(&s->lock);
        rq_free(jobs);
        return rq_error(RUNQ_ETIMEOUT, "no job: the caller is stopping");
    }
    for (;;) {
        int64_t now = rq_now_ms(), next_due = INT64_MAX;
        store_sweep(s, now);
        rq_fetch_order(req, order);
        for (size_t i = 0; i < req->nqueues && *n < req->max && rc == 0; i++) {
            mqueue *q = queue_get(s, req->queues[order[i]]);
            if (!q) {
                rc = rq_error(RUNQ_ENOMEM, "out of memory");
                break;
            }
            queue_maintain(q, now);
            /* Queue gates: how many of this queue's jobs may be leased now. */
            size_t allow = q->pending.count ? gate_allow(q, now, req->max - *n, &next_due) : 0;
            for (mrec *r; allow > 0 && *n < req->max && (r = rq_heap_pop(&q->pending));) {
                runq_job *j = r->job;
                if (j->deadline_ms && now > j->deadline_ms) {
                    to_dead(q, r, "deadline passed");
                    rk_left_pending(q, j, now); /* rate key: it never started */
                    continue;
                }
                j->state = RUNQ_STATE_ACTIVE;
                j->attempt++;
                j->lease_token = ++s->token;
                j->lease_until_ms = now + req->lease_ms;
                j->leased_ms = now;
                mlist_push(&q->active, r);
                rk_left_pending(q, j, now + j->rate_interval_ms); /* rate key: started */
                if (!(jobs[*n] = rq_job_clone(j))) {
                    /* Nobody holds it: let the lease lapse back at once. */
                    j->lease_until_ms = now;
                    rc = rq_error(RUNQ_ENOMEM, "out of memory");
                    break;
                }
                (*n)++;
                gate_took(q, j, now);
                allow--;
            }
            mrec *sch = rq_heap_peek(&q->scheduled);
            if (sch && sch->job->eta_ms < next_due) next_due = sch->job->eta_ms;
            mrkey *rk = rq_heap_peek(&q->rkdue); /* rate key: its next job's time */
            if (rk && rk->next_ms < next_due) next_due = rk->next_ms;
            for (mrec *r = q->active.head; r; r = r->next)
                if (r->job->lease_until_ms < next_due) next_due = r->job->lease_until_ms;
        }
        if (*n || rc) break;
        int64_t left = until - rq_mono_ms();
        if (s->interrupts != gen || left <= 0) {
            rc = rq_error(RUNQ_ETIMEOUT, "no job became due in time");
            break;
        }
        /* Sleep until the earliest of: the caller's limit, a scheduled job
         * coming due, a lease expiring. Enqueue and interrupt signal us. */
        if (next_due != INT64_MAX && next_due - now < left) left = next_due - now;
        if (left < 1) left = 1;
        uv_cond_timedwait(&s->changed, &s->lock, (uint64_t)left * 1000000);
    }
    uv_mutex_unlock(&s->lock);
    if (*n) rc = 0;
    if (*n == 0) rq_free(jobs);
    else *out = jobs;
    return rc;
}

static int mem_ack(runq_backend *b, const runq_job *job, const void *result, size_t len,
                   int64_t result_ttl_ms) {
    mstore *s = STORE(b);
    mqueue *q;
    int rc = 0;
    uv_mutex_lock(&s->lock);
    mrec *r = leased(s, job, &q);
    if (!r) rc = RUNQ_ESTALE;
    else if (result_ttl_ms <= 0 ||
             (rc = rq_job_set_buf(&r->job->result, &r->job->result_len, result, len)) == 0) {
        mlist_remove(&q->active, r);
        r->job->state = RUNQ_STATE_DONE;
        r->job->lease_token = 0;
        gate_finished(q, false, rq_now_ms());
        unique_release(s, r->job); /* unique-until-done: done lets the key go */
        if (result_ttl_ms > 0) {
            r->expires_ms = rq_now_ms() + result_ttl_ms;
            rq_heap_push(&s->done, r);
        } else { /* RUNQ_RESULT_TTL_NONE: nothing is kept */
            rq_map_remove(&s->jobs, r->job->id);
            rec_free(r);
        }
        uv_cond_broadcast(&s->changed);
    }
    uv_mutex_unlock(&s->lock);
    return rc;
}

/* Nothing to amortise in memory: each item is one ack. */
static int mem_ack_many(runq_backend *b, const rq_ack_item *items, int *results, size_t n) {
    for (size_t i = 0; i < n; i++)
        results[i] = mem_ack(b, items[i].job, items[i].result, items[i].result_len,
                             items[i].result_ttl_ms);
    return 0;
}

/* A failed attempt: retried after delay_ms while attempts are left, else
 * dead. With bury_reason the job is dead at once, with that reason (the
 * engine could not read it, so retrying cannot help). */
static int fail_or_bury(runq_backend *b, const runq_job *job, const char *error,
                        int64_t delay_ms, const char *bury_reason, bool *dead) {
    mstore *s = STORE(b);
    mqueue *q;
    int rc = 0;
    *dead = false;
    uv_mutex_lock(&s->lock);
    mrec *r = leased(s, job, &q);
    if (!r) rc = RUNQ_ESTALE;
    else {
        mlist_remove(&q->active, r);
        if (!bury_reason) rq_job_set_str(&r->job->error, error);
        r->job->lease_token = 0;
        gate_finished(q, true, rq_now_ms());
        if (!bury_reason && r->job->attempt <= r->job->max_retries) {
            r->job->eta_ms = rq_now_ms() + delay_ms;
            r->job->state = RUNQ_STATE_SCHEDULED;
            rq_heap_push(&q->scheduled, r);
        } else {
            to_dead(q, r, bury_reason);
            *dead = true;
        }
        uv_cond_broadcast(&s->changed);
    }
    uv_mutex_unlock(&s->lock);
    return rc;
}

static int mem_fail(runq_backend *b, const runq_job *job, const char *error, int64_t delay_ms,
                    bool *dead) {
    return fail_or_bury(b, job, error, delay_ms, NULL, dead);
}

static int mem_bury(runq_backend *b, const runq_job *job, const char *reason) {
    bool dead;
    return fail_or_bury(b, job, NULL, 0, reason, &dead);
}

static int mem_release(runq_backend *b, const runq_job *job) {
    mstore *s = STORE(b);
    mqueue *q;
    int rc = 0;
    uv_mutex_lock(&s->lock);
    mrec *r = leased(s, job, &q);
    if (!r) rc = RUNQ_ESTALE;
    else {
        mlist_remove(&q->active, r);
        gate_returned(q, r->job);
        r->job->attempt--;
        to_ready(q, r);
        uv_cond_broadcast(&s->changed);
    }
    uv_mutex_unlock(&s->lock);
    return rc;
}

/* Leases are per job here, so whole_calls changes nothing. */
static int mem_extend(runq_backend *b, runq_job *const *jobs, int *results, size_t n,
                      int64_t lease_ms, bool whole_calls) {
    (void)whole_calls;
    mstore *s = STORE(b);
    mqueue *q;
    uv_mutex_lock(&s->lock);
    int64_t now = rq_now_ms();
    for (size_t i = 0; i < n; i++) {
        mrec *r = leased(s, jobs[i], &q);
        results[i] = r ? 0 : RUNQ_ESTALE;
        if (r) r->job->lease_until_ms = now + lease_ms;
    }
    uv_mutex_unlock(&s->lock);
    return 0;
}

static void mem_interrupt(runq_backend *b) {
    mstore *s = STORE(b);
    uv_mutex_lock(&s->lock);
    s->interrupts++;
    uv_cond_broadcast(&s->changed);
    uv_mutex_unlock(&s->lock);
}

static int snapshot(mstore *s, const char *id, runq_job **out) {
    mrec *r = rq_map_get(&s->jobs, id);
    if (!r) return rq_error(RUNQ_ENOTFOUND, "no job %s (never enqueued, or expired)", id);
    *out = rq_job_clone(r->job);
    if (*out) (*out)->leased_ms = 0; /* a snapshot is no delivery (as on Redis) */
    return *out ? 0 : rq_error(RUNQ_ENOMEM, "out of memory");
}

static int mem_get(runq_backend *b, const char *id, runq_job **out) {
    mstore *s = STORE(b);
    uv_mutex_lock(&s->lock);
    store_sweep(s, rq_now_ms());
    int rc = snapshot(s, id, out);
    uv_mutex_unlock(&s->lock);
    return rc;
}

static int mem_wait(runq_backend *b, const char *id, int timeout_ms, runq_job **out) {
    mstore *s = STORE(b);
    int64_t until = timeout_ms < 0 ? INT64_MAX : rq_mono_ms() + timeout_ms;
    int rc;
    uv_mutex_lock(&s->lock);
    for (;;) {
        mrec *r = rq_map_get(&s->jobs, id);
        if (!r || r->job->state == RUNQ_STATE_DONE || r->job->state == RUNQ_STATE_DEAD) {
            rc = snapshot(s, id, out);
            break;
        }
        int64_t left = until - rq_mono_ms();
        if (left <= 0) {
            rc = rq_error(RUNQ_ETIMEOUT, "job %s did not finish within %d ms", id, timeout_ms);
            break;
        }
        if (left > 1000) left = 1000; /* bounded so scheduled and leased jobs progress */
        uv_cond_timedwait(&s->changed, &s->lock, (uint64_t)left * 1000000);
    }
    uv_mutex_unlock(&s->lock);
    return rc;
}

static int mem_configure(runq_backend *b, const char *queue, const runq_queue_options *o) {
    mstore *s = STORE(b);
    uv_mutex_lock(&s->lock);
    mqueue *q = queue_get(s, queue);
    if (q) {
        q->max_len = o->max_len;
        q->opt = *o;
        uv_cond_broadcast(&s->changed); /* a gate may have opened */
    }
    uv_mutex_unlock(&s->lock);
    return q ? 0 : rq_error(RUNQ_ENOMEM, "out of memory");
}

static int mem_set_paused(runq_backend *b, const char *queue, bool paused) {
    mstore *s = STORE(b);
    uv_mutex_lock(&s->lock);
    mqueue *q = queue_get(s, queue);
    if (q) {
        q->paused = paused;
        if (!paused) gate_finished(q, false, 0); /* resume ends an automatic pause too */
        uv_cond_broadcast(&s->changed);
    }
    uv_mutex_unlock(&s->lock);
    return q ? 0 : rq_error(RUNQ_ENOMEM, "out of memory");
}

static int mem_stats(runq_backend *b, const char *queue, runq_queue_stats *out) {
    mstore *s = STORE(b);
    memset(out, 0, sizeof *out);
    uv_mutex_lock(&s->lock);
    mqueue *q = rq_map_get(&s->queues, queue);
    if (q) {
        queue_maintain(q, rq_now_ms());
        out->scheduled = (int64_t)q->scheduled.count;
        out->pending = (int64_t)q->pending.count + q->rk_waiting; /* + behind a rate key */
        out->active = q->active.count;
        out->dead = q->dead.count;
        int64_t now = rq_now_ms();
        out->paused = q->paused ? RUNQ_PAUSE_MANUAL : gate_auto(q) ? RUNQ_PAUSE_AUTO : RUNQ_PAUSE_NONE;
        if (out->paused == RUNQ_PAUSE_AUTO && now < q->pause_until_ms)
            out->paused_until_ms = q->pause_until_ms;
    }
    uv_mutex_unlock(&s->lock);
    return 0;
}

static int mem_dead_list(runq_backend *b, const char *queue, char (*ids)[RUNQ_ID_SIZE], size_t cap,
                         size_t *count) {
    mstore *s = STORE(b);
    *count = 0;
    uv_mutex_lock(&s->lock);
    mqueue *q = rq_map_get(&s->queues, queue);
    for (mrec *r = q ? q->dead.head : NULL; r && *count < cap; r = r->next)
        memcpy(ids[(*count)++], r->job->id, RUNQ_ID_SIZE);
    uv_mutex_unlock(&s->lock);
    return 0;
}

static int mem_dead_retry(runq_backend *b, const char *id) {
    mstore *s = STORE(b);
    int rc = 0;
    uv_mutex_lock(&s->lock);
    mrec *r = rq_map_get(&s->jobs, id);
    if (!r) rc = rq_error(RUNQ_ENOTFOUND, "no job %s", id);
    else if (r->job->state != RUNQ_STATE_DEAD) rc = rq_error(RUNQ_ESTATE, "job %s is not dead", id);
    /* unique-until-done: it takes its key again, or stays dead. */
    else if ((rc = unique_reacquire(s, r->job, rq_now_ms())) == 0) {
        mqueue *q = rq_map_get(&s->queues, r->job->queue);
        mlist_remove(&q->dead, r);
        r->job->attempt = 0; /* a fresh set of attempts */
        to_ready(q, r);
        uv_cond_broadcast(&s->changed);
    }
    uv_mutex_unlock(&s->lock);
    return rc;
}

static void mem_destroy(runq_backend *b) {
    mstore *s = STORE(b);
    uv_mutex_lock(&registry_lock);
    bool last = --s->refs == 0;
    if (last && s->name) {
        for (mstore **p = &named_stores; *p; p = &(*p)->next_named)
            if (*p == s) {
                *p = s->next_named;
                break;
            }
    }
    uv_mutex_unlock(&registry_lock);
    if (last) store_free(s);
    rq_free(b);
}

static const rq_backend_ops memory_ops = {
    "memory",     mem_enqueue, mem_fetch, mem_ack,    mem_fail,      mem_release,
    mem_extend,   mem_interrupt, mem_get, mem_wait,   mem_configure, mem_stats,
    mem_dead_list, mem_dead_retry, mem_destroy, mem_set_paused, mem_bury, mem_ack_many,
};

int rq_memory_open(runq_backend **out, const rq_url *url, const runq_client_options *options) {
    (void)options;
    uv_once(&registry_once, registry_init);
    mbackend *b = rq_calloc(1, sizeof *b);
    if (!b) return rq_error(RUNQ_ENOMEM, "out of memory");
    b->base.ops = &memory_ops;
    uv_mutex_lock(&registry_lock);
    mstore *s = NULL;
    if (url->name) {
        for (s = named_stores; s && strcmp(s->name, url->name) != 0; s = s->next_named) {}
        if (s) s->refs++;
    }
    if (!s && (s = store_new(url->name)) && url->name) {
        s->next_named = named_stores;
        named_stores = s;
    }
    uv_mutex_unlock(&registry_lock);
    if (!s) {
        rq_free(b);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    b->store = s;
    *out = &b->base;
    return 0;
}
