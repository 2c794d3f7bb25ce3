/* Workers: fetch jobs, run handlers (push mode) or hand jobs to the caller
 * (pull mode), keep leases alive, settle, stop gracefully.
 *
 * Threads of a push-mode worker:
 *   fetcher   - asks the backend for as many jobs as there are free slots
 *               plus a prefetch sized by throughput (one round trip for all
 *               of them) and queues them as "ready"; with autoscaling it
 *               asks for more than it can run, and when more come back (a
 *               backlog) it grows the handler pool;
 *   handlers  - a pool (pool.c) of `concurrency` threads, or between min
 *               and max of them with autoscaling, that take ready jobs and
 *               run them; a surplus thread idle for idle_timeout_ms exits;
 *   keeper    - extends the leases of held jobs every lease/3 (auto_extend);
 *   acker     - acks, in batches, the jobs whose handlers succeeded, so a
 *               handler takes its next job without waiting for the ack
 *               (only without after_process hooks: see run_job).
 * A pull-mode worker has the keeper and, with auto_extend, the same fetcher:
 * it keeps a prefetch of ready jobs that runq_worker_next() takes without a
 * round trip (without auto_extend nothing would keep their leases, so next()
 * fetches on the caller's thread). All worker state is guarded by `lock`. */
#include "client.h"
#include "compress.h"
#include "periodic.h"
#include "pool.h"
#include "thread.h"

#include <stdio.h>
#include <string.h>

typedef struct job_list {
    runq_job *head, *tail;
    int count;
} job_list;

struct runq_worker {
    runq_client *client;
    runq_backend *backend;
    char **queues;
    size_t nqueues;
    unsigned int *weights; /* NULL: strict order */
    int concurrency;       /* push: max handler threads; pull: max jobs held */
    int min_threads;       /* push: the pool's floor (== concurrency: fixed) */
    int64_t idle_ms;
    runq_worker_mode mode;
    int64_t lease_ms;
    bool auto_extend;

    uv_mutex_t lock;
    /* Two conditions, not one: a finished handler used to wake every idle
     * handler and the fetcher, and the futex traffic bounded throughput. */
    uv_cond_t job_ready;   /* handlers: a job was queued (one handler is woken, and it
                            * wakes the next while jobs are left), or stop */
    uv_cond_t slot_free;   /* fetcher: ready fell below the low-water mark; stop:
                            * a handler finished; both: stop */
    uv_cond_t keeper_wake; /* wakes the keeper early to exit */
    bool started, keeper_exit;
    /* Set once, under lock, before the backend is interrupted; atomic so
     * that a fetch can read it without the lock (rq_fetch_request.stop). */
    atomic_bool stopping;
    job_list ready;        /* fetched, not yet started */
    job_list held;         /* running (push) or handed to the caller (pull) */
    int nrunning;
    /* Push mode: jobs whose handler succeeded, waiting for the acker, and
     * how many of those are queued or being acked. */
    job_list acks;
    int nacking;
    uv_cond_t ack_wake;    /* wakes the acker: acks queued, or exit */
    bool acker_exit;
    /* Pull mode with a fetcher: its last fetch error, handed to the next
     * runq_worker_next() that finds nothing ready (0: none). */
    int fetch_rc;
    char fetch_err[256];
    bool pull_fetcher;     /* pull mode: the fetcher runs (set once, under lock) */
    bool async_ack;        /* pull mode: runq_job_ack queues to the acker */
    job_list acked;        /* pull, async_ack: acked, not yet freed by the caller */
    /* The prefetch's sizing (prefetch_depth): jobs taken from `ready` so far,
     * and the fetcher's estimate of how many it takes per second. */
    uint64_t taken;
    uint64_t rate_taken;
    uint64_t rate_at_ns;
    double rate;
    runq_worker_stats stats;

    rq_scheduler *scheduler; /* periodic jobs (runq_worker_schedule) */
    uv_thread_t fetcher, keeper;
    bool have_fetcher, have_keeper, have_acker;
    uv_thread_t acker;
    rq_pool pool;            /* handler threads (push mode) */
};

/* The worker whose handler runs on this thread: lets runq_worker_stop detect
 * that it is called from inside a handler and must not wait for itself. */
static _Thread_local runq_worker *current_worker;

static void list_push(job_list *l, runq_job *j) {
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail) l->tail->next = j;
    else l->head = j;
    l->tail = j;
    l->count++;
}

static void list_remove(job_list *l, runq_job *j) {
    if (j->prev) j->prev->next = j->next;
    else l->head = j->next;
    if (j->next) j->next->prev = j->prev;
    else l->tail = j->prev;
    j->next = j->prev = NULL;
    l->count--;
}

static runq_job *list_pop(job_list *l) {
    runq_job *j = l->head;
    if (j) list_remove(l, j);
    return j;
}

static void worker_free_config(runq_worker *w) {
    for (size_t i = 0; i < w->nqueues; i++) rq_free(w->queues[i]);
    rq_free(w->queues);
    rq_free(w->weights);
    rq_pool_free(&w->pool);
    rq_scheduler_free(w->scheduler);
}

int runq_worker_create(runq_worker **out, runq_client *c, const runq_worker_options *options) {
    rq_error_clear();
    if (!out || !c) return rq_error(RUNQ_EINVAL, "out or client is NULL");
    *out = NULL;
    runq_worker_options o = RUNQ_WORKER_OPTIONS_INIT;
    if (options) {
        /* A version 1 caller's struct ends before the autoscaling fields:
         * copy only that much and keep the defaults (a fixed pool). */
        if (options->version == 1) memcpy(&o, options, offsetof(runq_worker_options, min_concurrency));
        else if (options->version == 2) memcpy(&o, options, offsetof(runq_worker_options, async_ack));
        else if (options->version == RUNQ_WORKER_OPTIONS_VERSION) o = *options;
        else
            return rq_error(RUNQ_EINVAL, "runq_worker_options.version is %u; this library knows 1 to %d",
                            options->version, RUNQ_WORKER_OPTIONS_VERSION);
        o.version = RUNQ_WORKER_OPTIONS_VERSION;
    }
    static const char *const default_queues[] = {"default"};
    if (!o.queues || o.nqueues == 0) {
        o.queues = default_queues;
        o.nqueues = 1;
    }
    if (o.nqueues > 64) return rq_error(RUNQ_EINVAL, "a worker reads at most 64 queues");
    if (o.min_concurrency || o.max_concurrency) {
        if (o.max_concurrency < 1 || o.max_concurrency > 1024)
            return rq_error(RUNQ_EINVAL, "max_concurrency must be 1 to 1024 when min_concurrency is set");
        if (o.min_concurrency < 0 || o.min_concurrency > o.max_concurrency)
            return rq_error(RUNQ_EINVAL, "min_concurrency must be 0 to max_concurrency (%d), got %d",
                            o.max_concurrency, o.min_concurrency);
        if (o.idle_timeout_ms < 1)
            return rq_error(RUNQ_EINVAL, "idle_timeout_ms must be positive");
        /* At least one thread stays, so fetched jobs always have a taker
         * even when no thread can be started. */
        o.concurrency = o.max_concurrency;
        if (o.min_concurrency == 0) o.min_concurrency = 1;
    } else {
        if (o.concurrency < 1 || o.concurrency > 1024)
            return rq_error(RUNQ_EINVAL, "concurrency must be 1 to 1024");
        o.min_concurrency = o.concurrency;
    }
    if (o.lease_ms < 100) return rq_error(RUNQ_EINVAL, "lease must be at least 100 ms");
    if (o.mode != RUNQ_WORKER_PUSH && o.mode != RUNQ_WORKER_PULL)
        return rq_error(RUNQ_EINVAL, "unknown worker mode %d", (int)o.mode);
    int rc;
    for (size_t i = 0; i < o.nqueues; i++) {
        if ((rc = rq_name_check(o.queues[i], "queue"))) return rc;
        if (o.weights && o.weights[i] == 0)
            return rq_error(RUNQ_EINVAL, "queue weights must be positive");
    }
    runq_worker *w = rq_calloc(1, sizeof *w);
    if (!w) return rq_error(RUNQ_ENOMEM, "out of memory");
    w->client = c;
    w->backend = c->backend;
    w->concurrency = o.concurrency;
    w->min_threads = o.min_concurrency;
    w->idle_ms = o.idle_timeout_ms;
    w->mode = o.mode;
    w->lease_ms = o.lease_ms;
    w->auto_extend = o.auto_extend != 0;
    w->async_ack = o.async_ack != 0 && o.mode == RUNQ_WORKER_PULL;
    w->scheduler = rq_scheduler_new(c);
    w->queues = rq_calloc(o.nqueues, sizeof *w->queues);
    w->weights = o.weights ? rq_calloc(o.nqueues, sizeof *w->weights) : NULL;
    bool ok = w->scheduler && w->queues && (!o.weights || w->weights);
    for (size_t i = 0; ok && i < o.nqueues; i++, w->nqueues++) {
        ok = (w->queues[i] = rq_strdup(o.queues[i])) != NULL;
        if (o.weights) w->weights[i] = o.weights[i];
    }
    if (!ok) {
        worker_free_config(w);
        rq_free(w);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    uv_mutex_init(&w->lock);
    atomic_init(&w->stopping, false);
    uv_cond_init(&w->job_ready);
    uv_cond_init(&w->slot_free);
    uv_cond_init(&w->keeper_wake);
    uv_cond_init(&w->ack_wake);
    *out = w;
    return 0;
}

/* ---- fetching ---- */

/* Decompress the args of fetched jobs (compress.h), so that handlers and
 * pull callers only see plain msgpack. A job whose args cannot be read goes
 * to the dead letters at once: every retry would fail the same way. One that
 * hits out-of-memory goes back to pending. Returns how many jobs are left,
 * kept in order. */
static size_t jobs_unwrap(runq_worker *w, runq_job **jobs, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        runq_job *j = jobs[i];
        int rc = rq_payload_unwrap(&j->args, &j->args_len, w->client->options.max_payload);
        if (rc == 0) {
            jobs[k++] = j;
            continue;
        }
        if (rc == RUNQ_EPROTO) {
            char reason[320];
            snprintf(reason, sizeof reason, "corrupt job: args: %s", runq_error_last());
            w->backend->ops->bury(w->backend, j, reason);
        } else {
            w->backend->ops->release(w->backend, j);
        }
        rq_job_destroy(j);
    }
    return k;
}

/* Fetch up to `max` jobs, blocking up to timeout_ms; hint: the fetcher's,
 * carried from its last fetch (NULL elsewhere). */
static int worker_fetch(runq_worker *w, size_t max, int timeout_ms, rq_fetch_hint *hint,
                        runq_job ***jobs, size_t *n) {
    rq_fetch_request req = {(const char *const *)w->queues, w->nqueues, w->weights, w->lease_ms,
                            max, timeout_ms, hint, &w->stopping};
    int rc = w->backend->ops->fetch(w->backend, &req, jobs, n);
    if (rc == 0) *n = jobs_unwrap(w, *jobs, *n);
    for (size_t i = 0; rc == 0 && i < *n; i++) (*jobs)[i]->worker = w;
    return rc;
}

static void release_jobs(runq_worker *w, job_list *l) {
    for (runq_job *j; (j = list_pop(l));) {
        w->backend->ops->release(w->backend, j);
        rq_job_destroy(j);
    }
}

/* Pause after a backend error so a dead Redis is not hammered. */
static void worker_backoff(runq_worker *w, int64_t ms) {
    uv_mutex_lock(&w->lock);
    if (!w->stopping) uv_cond_timedwait(&w->slot_free, &w->lock, (uint64_t)ms * 1000000);
    uv_mutex_unlock(&w->lock);
}

/* Prefetch: beyond the jobs its threads can take (push) or its caller may
 * hold (pull: `concurrency`), the worker keeps jobs ready, and the fetcher
 * refills only when fewer than half of those are left. The depth is what
 * the worker starts in PREFETCH_COVER_MS at its recent rate, at least one
 * job per slot and at most PREFETCH_MAX: slow jobs keep one per slot (a
 * worker does not hoard what another could start), fast ones bring a
 * hundred or more per fetch, so that the fixed cost of a fetch on the
 * server (about as much as 10 jobs' own work) is shared by many jobs, and
 * no handler waits for a round trip while the queue has work. Prefetched
 * jobs are leased: the keeper extends them and stop releases them
 * unstarted. Without auto_extend nothing would keep their leases, so there
 * is no prefetch and the fetcher asks for free slots only, as soon as one
 * frees. Lock held. */
enum { PREFETCH_COVER_MS = 4, PREFETCH_MAX = 512, RATE_WINDOW_MS = 10 };

static int worker_slots(const runq_worker *w) {
    if (w->mode == RUNQ_WORKER_PULL) return w->concurrency;
    return w->pool.threads;
}

static int prefetch_depth(const runq_worker *w) {
    if (!w->auto_extend) return 0;
    int slots = worker_slots(w);
    double cover = w->rate * PREFETCH_COVER_MS / 1000.0;
    int depth = cover > PREFETCH_MAX ? PREFETCH_MAX : (int)cover;
    return depth > slots ? depth : slots > 0 ? slots : 1;
}

/* The fetcher's rate estimate: jobs taken per second over the last window
 * of at least RATE_WINDOW_MS, averaged with the one before, so one quiet
 * window halves the prefetch rather than dropping it. Lock held. */
static void rate_update(runq_worker *w) {
    uint64_t now = uv_hrtime();
    uint64_t dt = now - w->rate_at_ns;
    if (dt < (uint64_t)RATE_WINDOW_MS * 1000000) return;
    double r = (double)(w->taken - w->rate_taken) * 1e9 / (double)dt;
    w->rate = w->rate_at_ns ? (w->rate + r) / 2 : r;
    w->rate_taken = w->taken;
    w->rate_at_ns = now;
}

static bool below_low_water(const runq_worker *w) {
    int depth = prefetch_depth(w);
    return !depth || w->ready.count < (depth + 1) / 2;
}

static void fetcher_main(void *arg) {
    runq_worker *w = arg;
    rq_fetch_hint hint = {false, 0}; /* this thread's fetches only */
    uv_mutex_lock(&w->lock);
    while (!w->stopping) {
        rq_pool_reap(&w->pool);
        rate_update(w);
        /* With autoscaling, ask for up to headroom jobs more than the
         * threads can take now: if the backend has them, that is a backlog
         * and the pool grows to run them (below). */
        int busy = w->mode == RUNQ_WORKER_PULL ? w->held.count + w->nacking : w->nrunning;
        int free_slots = worker_slots(w) + rq_pool_headroom(&w->pool) + prefetch_depth(w) -
                         w->ready.count - busy;
        if (free_slots <= 0 || !below_low_water(w)) {
            uv_cond_wait(&w->slot_free, &w->lock);
            continue;
        }
        uv_mutex_unlock(&w->lock);
        runq_job **jobs = NULL;
        size_t n = 0;
        /* Blocks in the backend until work is due; stop interrupts it. The
         * bound only limits how long a lost wake-up could cost. */
        int rc = worker_fetch(w, (size_t)free_slots, 5000, &hint, &jobs, &n);
        if (rc && rc != RUNQ_ETIMEOUT && w->mode == RUNQ_WORKER_PULL) {
            /* A pull caller sees the error, as when it fetched itself. */
            uv_mutex_lock(&w->lock);
            w->fetch_rc = rc;
            snprintf(w->fetch_err, sizeof w->fetch_err, "%s", runq_error_last());
            uv_cond_broadcast(&w->job_ready);
            uv_mutex_unlock(&w->lock);
        }
        if (rc && rc != RUNQ_ETIMEOUT) worker_backoff(w, 200);
        uv_mutex_lock(&w->lock);
        for (size_t i = 0; i < n; i++) list_push(&w->ready, jobs[i]);
        rq_free(jobs);
        int surplus = w->ready.count + w->nrunning - w->pool.threads;
        /* The pool still at most doubles per round trip, however many
         * jobs the prefetch brought. */
        int room = rq_pool_headroom(&w->pool);
        if (surplus > room) surplus = room;
        /* A thread that cannot start is not fatal: the jobs wait for the
         * threads there are, their leases kept by the keeper. */
        if (surplus > 0 && !w->stopping) rq_pool_grow(&w->pool, surplus);
        /* Push: wake one idle handler; it wakes the next while jobs are
         * left (handler_main). Waking one per job made each batch cost a
         * context switch per job, even when a busy handler could take the
         * next job itself. Pull callers are no pool threads: all of them
         * are woken. */
        if (n && w->mode == RUNQ_WORKER_PULL) uv_cond_broadcast(&w->job_ready);
        else if (n && w->pool.idle) uv_cond_signal(&w->job_ready);
    }
    uv_mutex_unlock(&w->lock);
}

/* ---- settling ---- */

static const runq_task_options *job_task_options(runq_job *job, runq_task_options *fallback) {
    runq_task *t = runq_task_find(job->worker->client, job->task);
    if (t) return &t->options;
    runq_task_options d = RUNQ_TASK_OPTIONS_INIT;
    *fallback = d;
    return fallback;
}

/* Called with the worker unlocked; updates stats and the held list. */
static void job_settled(runq_job *job, bool failed, bool dead) {
    runq_worker *w = job->worker;
    uv_mutex_lock(&w->lock);
    job->settled = true;
    if (failed) w->stats.failed++;
    else w->stats.processed++;
    if (dead) w->stats.dead++;
    uv_mutex_unlock(&w->lock);
}

static int job_do_fail(runq_job *job, int64_t delay_ms);

/* A job whose handler overran its timeout fails, even if the handler
 * reports success late: the caller was promised an answer within the
 * timeout, and runq_job_cancelled() told the handler to give up. */
static bool job_timed_out(runq_job *job) {
    if (job->timeout_ms <= 0 || job->started_mono_ms <= 0) return false;
    int64_t took = rq_mono_ms() - job->started_mono_ms;
    if (took < job->timeout_ms) return false; /* the same boundary as runq_job_cancelled */
    char msg[128];
    snprintf(msg, sizeof msg, "timed out: the handler ran %lld ms, its timeout is %lld ms",
             (long long)took, (long long)job->timeout_ms);
    rq_job_set_str(&job->error, msg);
    return true;
}

/* The ack of a job as the backend takes it. Results are compressed like
 * args (compress.h); get/wait unwrap them. *wrapped (freed by the caller)
 * holds the compressed bytes the item points at, or NULL. A client that
 * keeps nothing of done jobs (RUNQ_RESULT_TTL_NONE) sends no result. */
static int ack_item_make(runq_worker *w, runq_job *job, rq_ack_item *item, uint8_t **wrapped) {
    int64_t ttl = w->client->options.result_ttl_ms;
    *wrapped = NULL;
    *item = (rq_ack_item){job, NULL, 0, ttl};
    if (ttl == RUNQ_RESULT_TTL_NONE) return 0;
    size_t wlen = 0;
    int rc = rq_payload_wrap(wrapped, &wlen, job->result, job->result_len,
                             w->client->options.compress_threshold);
    item->result = *wrapped ? *wrapped : job->result;
    item->result_len = *wrapped ? wlen : job->result_len;
    return rc;
}

/* An ack the backend accepted: the job is done. */
static void job_acked(runq_job *job) {
    job->state = RUNQ_STATE_DONE;
    job_settled(job, false, false);
}

static int job_do_ack(runq_job *job) {
    runq_worker *w = job->worker;
    if (job_timed_out(job)) return job_do_fail(job, job->retry_delay_ms);
    rq_ack_item item;
    uint8_t *wrapped = NULL;
    int rc = ack_item_make(w, job, &item, &wrapped);
    if (!rc)
        rc = w->backend->ops->ack(w->backend, job, item.result, item.result_len,
                                  item.result_ttl_ms);
    rq_free(wrapped);
    if (rc == 0) job_acked(job);
    return rc;
}

static int job_do_fail(runq_job *job, int64_t delay_ms) {
    runq_worker *w = job->worker;
    runq_task_options tmp;
    const runq_task_options *to = job_task_options(job, &tmp);
    if (delay_ms < 0) delay_ms = rq_backoff_delay(to, job->attempt);
    bool dead = false;
    int rc = w->backend->ops->fail(w->backend, job, job->error ? job->error : "failed", delay_ms, &dead);
    if (rc) return rc;
    /* The state tells pull-mode callers (bindings) whether it went dead. */
    job->state = dead ? RUNQ_STATE_DEAD : RUNQ_STATE_SCHEDULED;
    job_settled(job, true, dead);
    if (dead && to->fallback) to->fallback(job, to->userdata);
    return 0;
}

static int job_check_settle(runq_job *job) {
    if (!job || !job->worker) return rq_error(RUNQ_EINVAL, "not a fetched job");
    if (job->in_handler)
        return rq_error(RUNQ_ESTATE, "a handler settles its job by returning, not by ack/fail");
    if (job->ack_queued) return rq_error(RUNQ_ESTATE, "job %s is already acked", job->id);
    if (job->settled) return rq_error(RUNQ_ESTATE, "job %s is already settled", job->id);
    return 0;
}

/* Pull mode with async_ack: hand the job to the acker (as a push handler
 * does) unless an after_process hook must run here after the ack, or the
 * job overran its timeout (it fails here). Still leased while queued: the
 * keeper extends it. Returns whether it was queued. */
static bool pull_ack_queue(runq_job *job) {
    runq_worker *w = job->worker;
    if (!w->async_ack || rq_hooks_have_after_process(&w->client->hooks) || job_timed_out(job))
        return false;
    uv_mutex_lock(&w->lock);
    if (!w->have_acker) {
        uv_mutex_unlock(&w->lock);
        return false;
    }
    list_remove(&w->held, job);
    job->ack_queued = true;
    list_push(&w->acks, job);
    w->nacking++;
    uv_cond_signal(&w->ack_wake);
    uv_mutex_unlock(&w->lock);
    return true;
}

int runq_job_ack(runq_job *job, const void *result, size_t len) {
    rq_error_clear();
    int rc = job_check_settle(job);
    if (!rc && result && len) rc = runq_job_set_result(job, result, len);
    if (!rc && pull_ack_queue(job)) return 0;
    if (!rc && (rc = job_do_ack(job)) == 0)
        rq_hooks_after_process(&job->worker->client->hooks, job, 0, false);
    return rc;
}

int runq_job_fail(runq_job *job, const char *message, int64_t retry_delay_ms) {
    rq_error_clear();
    int rc = job_check_settle(job);
    if (!rc && message) rc = rq_job_set_str(&job->error, message);
    if (!rc && (rc = job_do_fail(job, retry_delay_ms)) == 0)
        rq_hooks_after_process(&job->worker->client->hooks, job, 0, false);
    return rc;
}

void runq_job_free(runq_job *job) {
    if (!job) return;
    runq_worker *w = job->worker;
    if (job->in_handler) {
        rq_error(RUNQ_ESTATE, "a job received by a handler is freed by the engine");
        return;
    }
    if (w && job->ack_queued) {
        /* The acker may still need it: the last of the two destroys it. */
        uv_mutex_lock(&w->lock);
        bool acked = job->ack_done;
        job->caller_freed = true;
        if (acked) list_remove(&w->acked, job);
        uv_mutex_unlock(&w->lock);
        if (acked) rq_job_destroy(job);
        return;
    }
    if (w) {
        uv_mutex_lock(&w->lock);
        list_remove(&w->held, job);
        uv_cond_broadcast(&w->slot_free);
        uv_mutex_unlock(&w->lock);
        /* Unsettled: give it back now rather than after the lease. */
        if (!job->settled) {
            int rc = w->backend->ops->release(w->backend, job);
            rq_hooks_after_process(&w->client->hooks, job, rc, true);
        }
    }
    rq_job_destroy(job);
}

/* ---- push mode ---- */

/* Runs the handler and settles the job, except a success that the acker can
 * take: then returns true and the caller queues the job for it. The handler
 * thread then takes its next job at once instead of waiting for the ack's
 * round trip. Only without after_process hooks, because those run on the
 * handler thread after the ack (runq.h); a timed-out job fails here. */
static bool run_job(runq_worker *w, runq_job *job) {
    runq_task *t = runq_task_find(w->client, job->task);
    int rc;
    job->in_handler = true;
    job->started_mono_ms = rq_mono_ms();
    rq_hooks_before_process(&w->client->hooks, job);
    if (!t || !t->options.handler) {
        rq_job_set_str(&job->error, t ? "task has no handler on this worker" : "unknown task");
        rc = -1;
    } else {
        current_worker = w;
        rc = t->options.handler(job, t->options.userdata);
        current_worker = NULL;
    }
    job->in_handler = false;
    if (rc == 0 && w->have_acker && !rq_hooks_have_after_process(&w->client->hooks) &&
        !job_timed_out(job))
        return true;
    /* A settle that fails (lease lost, backend down) leaves the job to the
     * lease: it will be delivered again, which is what at-least-once means. */
    int settle_rc = rc == 0 ? job_do_ack(job) : job_do_fail(job, job->retry_delay_ms);
    rq_hooks_after_process(&w->client->hooks, job, settle_rc, false);
    return false;
}

/* ---- the acker (push mode) ---- */

/* Acks per round trip of the acker (the Redis backend sends them as one
 * pipeline of script calls of up to 100 jobs). It bounds how fast a worker
 * can settle: at 64 per round trip the acker fell behind the handlers under
 * load, and the jobs waiting for their acks stayed leased, which made the
 * server's lease and job structures large and every script slower (C end
 * to end 89 k jobs/s at 64, 130-153 k at 512, in interleaved runs). */
enum { ACK_BATCH = 512 };

/* The acker is done with a job: a pull caller may not have freed it yet
 * (async_ack), then runq_job_free destroys it. */
static void ack_release(runq_worker *w, runq_job *job) {
    if (job->ack_queued) {
        uv_mutex_lock(&w->lock);
        bool freed = job->caller_freed;
        job->ack_done = true;
        if (!freed) list_push(&w->acked, job); /* detached if the worker goes first */
        uv_mutex_unlock(&w->lock);
        if (!freed) return;
    }
    rq_job_destroy(job);
}

/* Ack n jobs whose handlers succeeded with one backend call (one script
 * call per queue on Redis), then settle them as job_do_ack would. A failed
 * ack (ESTALE: the lease was lost) leaves the job to its lease, uncounted,
 * as on the handler thread. Worker unlocked. */
static void acks_send(runq_worker *w, runq_job **jobs, size_t n) {
    rq_ack_item items[ACK_BATCH];
    size_t at[ACK_BATCH];
    int rcs[ACK_BATCH], results[ACK_BATCH];
    uint8_t *wrapped[ACK_BATCH] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        rcs[i] = ack_item_make(w, jobs[i], &items[k], &wrapped[i]);
        if (!rcs[i]) at[k++] = i;
    }
    const rq_backend_ops *ops = w->backend->ops;
    if (k && ops->ack_many) {
        ops->ack_many(w->backend, items, results, k); /* a batch failure is in every result */
    } else {
        for (size_t i = 0; i < k; i++)
            results[i] = ops->ack(w->backend, items[i].job, items[i].result, items[i].result_len,
                                  items[i].result_ttl_ms);
    }
    for (size_t i = 0; i < k; i++) rcs[at[i]] = results[i];
    for (size_t i = 0; i < n; i++) {
        rq_free(wrapped[i]);
        if (rcs[i] == 0) job_acked(jobs[i]);
        /* None were installed when the job was queued; one added since
         * runs here, on the acker thread. */
        rq_hooks_after_process(&w->client->hooks, jobs[i], rcs[i], false);
        ack_release(w, jobs[i]);
    }
}

static void acker_main(void *arg) {
    runq_worker *w = arg;
    current_worker = w; /* a hook calling runq_worker_stop here must not wait for itself */
    uv_mutex_lock(&w->lock);
    for (;;) {
        while (!w->acks.count && !w->acker_exit) uv_cond_wait(&w->ack_wake, &w->lock);
        if (!w->acks.count) break; /* exits only once drained */
        runq_job *jobs[ACK_BATCH];
        size_t n = 0;
        while (n < ACK_BATCH && w->acks.count) jobs[n++] = list_pop(&w->acks);
        uv_mutex_unlock(&w->lock);
        acks_send(w, jobs, n);
        uv_mutex_lock(&w->lock);
        w->nacking -= (int)n;
        if (w->stopping) uv_cond_broadcast(&w->slot_free);
        else if (w->mode == RUNQ_WORKER_PULL) uv_cond_signal(&w->slot_free); /* the fetcher counts them */
    }
    uv_mutex_unlock(&w->lock);
}

static void handler_main(void *arg) {
    runq_worker *w = arg;
    uv_mutex_lock(&w->lock);
    for (;;) {
        bool leave = false;
        while (!w->ready.count && !w->stopping && !leave) leave = rq_pool_idle(&w->pool, &w->job_ready);
        if (w->stopping || leave) break;
        rq_pool_busy(&w->pool);
        runq_job *job = list_pop(&w->ready);
        list_push(&w->held, job);
        w->taken++;
        if (w->ready.count && w->pool.idle) uv_cond_signal(&w->job_ready);
        w->nrunning++;
        w->stats.running = w->nrunning;
        if (below_low_water(w)) uv_cond_signal(&w->slot_free);
        uv_mutex_unlock(&w->lock);
        bool deferred = run_job(w, job);
        uv_mutex_lock(&w->lock);
        list_remove(&w->held, job);
        w->nrunning--;
        w->stats.running = w->nrunning;
        if (deferred) {
            list_push(&w->acks, job); /* still leased: the keeper extends it */
            w->nacking++;
            uv_cond_signal(&w->ack_wake);
            job = NULL;
        }
        /* Only the fetcher waits for a slot, except while stop waits for
         * the last handlers. */
        if (w->stopping) uv_cond_broadcast(&w->slot_free);
        else if (below_low_water(w)) uv_cond_signal(&w->slot_free);
        if (job) { /* settled here: freed outside the lock */
            uv_mutex_unlock(&w->lock);
            rq_job_destroy(job);
            uv_mutex_lock(&w->lock);
        }
    }
    uv_mutex_unlock(&w->lock);
}

/* ---- lease keeper ---- */

static void keeper_main(void *arg) {
    runq_worker *w = arg;
    uint64_t period_ns = (uint64_t)(w->lease_ms / 3) * 1000000;
    uv_mutex_lock(&w->lock);
    while (!w->keeper_exit) {
        uv_cond_timedwait(&w->keeper_wake, &w->lock, period_ns);
        if (w->keeper_exit || (w->held.count + w->ready.count + w->acks.count) == 0) continue;
        /* The lists cannot change while we hold the lock, so the pointers
         * stay valid for the call; one extend covers every held job. Every
         * unsettled job of a fetch is in one of the three lists or being
         * settled (a pull caller's runq_job_free releases an unsettled one),
         * so the backend may extend them by fetch call. One whose ack or
         * release failed on I/O is left to its lease; by call, that lease
         * lasts while the worker holds another job of the same fetch. */
        size_t n = (size_t)(w->held.count + w->ready.count + w->acks.count), k = 0;
        runq_job **jobs = rq_calloc(n, sizeof *jobs);
        int *results = rq_calloc(n, sizeof *results);
        if (jobs && results) {
            for (runq_job *j = w->held.head; j; j = j->next) if (!j->settled) jobs[k++] = j;
            for (runq_job *j = w->ready.head; j; j = j->next) jobs[k++] = j;
            for (runq_job *j = w->acks.head; j; j = j->next) jobs[k++] = j;
            if (k && w->backend->ops->extend(w->backend, jobs, results, k, w->lease_ms, true) == 0)
                for (size_t i = 0; i < k; i++)
                    if (results[i] == RUNQ_ESTALE) atomic_store(&jobs[i]->cancel, true);
        }
        rq_free(jobs);
        rq_free(results);
    }
    uv_mutex_unlock(&w->lock);
}

static int start_keeper(runq_worker *w) {
    if (!w->auto_extend || w->have_keeper) return 0;
    if (rq_thread_start(&w->keeper, keeper_main, w) != 0)
        return rq_error(RUNQ_ENOMEM, "cannot start the lease keeper thread");
    w->have_keeper = true;
    return 0;
}

int runq_worker_start(runq_worker *w) {
    rq_error_clear();
    if (!w) return rq_error(RUNQ_EINVAL, "worker is NULL");
    if (w->mode != RUNQ_WORKER_PUSH)
        return rq_error(RUNQ_ESTATE, "a pull-mode worker is driven with runq_worker_next");
    if (w->started || w->stopping) return rq_error(RUNQ_ESTATE, "worker already started or stopped");
    int rc = rq_pool_init(&w->pool, &w->lock, handler_main, w, w->min_threads, w->concurrency,
                          w->idle_ms);
    if (rc) return rc;
    w->started = true;
    rc = start_keeper(w);
    if (!rc) rc = rq_scheduler_start(w->scheduler);
    /* Before the handlers start, which read have_acker. Without it, each
     * handler acks itself. */
    if (!rc && rq_thread_start(&w->acker, acker_main, w) == 0) w->have_acker = true;
    if (!rc) {
        uv_mutex_lock(&w->lock);
        int n = rq_pool_grow(&w->pool, w->min_threads);
        uv_mutex_unlock(&w->lock);
        if (n >= 0 && n < w->min_threads)
            rc = rq_error(RUNQ_ENOMEM, "started %d of %d handler threads", n, w->min_threads);
        else if (n < 0)
            rc = n;
    }
    if (!rc && rq_thread_start(&w->fetcher, fetcher_main, w) != 0)
        rc = rq_error(RUNQ_ENOMEM, "cannot start the fetcher thread");
    else if (!rc)
        w->have_fetcher = true;
    if (rc) runq_worker_stop(w, 0);
    return rc;
}

/* ---- pull mode ---- */

/* With a fetcher: take a prefetched job, or wait up to timeout_ms (-1:
 * until stopped) for the fetcher to bring one. A job taken below the
 * low-water mark wakes the fetcher to refill in the background. Timeout 0
 * with nothing ready returns ETIMEOUT with *job NULL and the caller polls
 * the backend itself (the fetcher may be blocked in a long fetch). Lock
 * held. */
static int pull_take_ready(runq_worker *w, runq_job **job, int timeout_ms) {
    int64_t until = timeout_ms > 0 ? rq_mono_ms() + timeout_ms : 0;
    for (;;) {
        if (w->stopping) return rq_error(RUNQ_ECLOSED, "worker is stopped");
        if ((*job = list_pop(&w->ready))) {
            w->taken++;
            if (below_low_water(w)) uv_cond_signal(&w->slot_free);
            return 0;
        }
        if (w->fetch_rc) {
            int rc = w->fetch_rc;
            w->fetch_rc = 0;
            return rq_error(rc, "%s", w->fetch_err);
        }
        if (timeout_ms == 0) return RUNQ_ETIMEOUT;
        if (timeout_ms < 0) {
            uv_cond_wait(&w->job_ready, &w->lock);
            continue;
        }
        int64_t left = until - rq_mono_ms();
        if (left <= 0) return rq_error(RUNQ_ETIMEOUT, "no job within %d ms", timeout_ms);
        uv_cond_timedwait(&w->job_ready, &w->lock, (uint64_t)left * 1000000);
    }
}

int runq_worker_next(runq_worker *w, runq_job **out, int timeout_ms) {
    rq_error_clear();
    if (!w || !out) return rq_error(RUNQ_EINVAL, "worker or out is NULL");
    *out = NULL;
    if (w->mode != RUNQ_WORKER_PULL)
        return rq_error(RUNQ_ESTATE, "a push-mode worker runs handlers itself");
    int rc = 0;
    uv_mutex_lock(&w->lock);
    if (w->stopping) rc = rq_error(RUNQ_ECLOSED, "worker is stopped");
    else if (w->held.count >= w->concurrency)
        rc = rq_error(RUNQ_ESTATE, "%d jobs are held (the concurrency); free one first", w->held.count);
    else if (!w->started) {
        w->started = true;
        rc = start_keeper(w);
        if (!rc) rc = rq_scheduler_start(w->scheduler);
        /* Without it, runq_job_ack acks synchronously. */
        if (!rc && w->async_ack && rq_thread_start(&w->acker, acker_main, w) == 0)
            w->have_acker = true;
    } else if (!w->pull_fetcher && prefetch_depth(w) > 0) {
        /* The prefetch needs auto_extend, as in push mode. It starts with
         * the second call: the first fetches on the caller's thread, so
         * that jobs already waiting are the caller's even with timeout 0
         * (a fetcher started now would race it for them). */
        if (rq_thread_start(&w->fetcher, fetcher_main, w) != 0)
            rc = rq_error(RUNQ_ENOMEM, "cannot start the fetcher thread");
        else
            w->have_fetcher = w->pull_fetcher = true;
    }
    bool fetcher = w->pull_fetcher;
    runq_job *job = NULL;
    bool poll = false;
    if (!rc && fetcher) {
        rc = pull_take_ready(w, &job, timeout_ms);
        poll = rc == RUNQ_ETIMEOUT && timeout_ms == 0;
        if (poll) rc = 0;
        /* Held before the lock drops, so the fetcher never counts it as a
         * free slot. */
        if (job) list_push(&w->held, job);
    } else if (!rc) {
        job = list_pop(&w->ready);
    }
    int room = fetcher ? 1 : w->concurrency - w->held.count - w->ready.count;
    uv_mutex_unlock(&w->lock);
    if (rc) return rc;
    bool prefetched = job != NULL && fetcher;
    if (!job && (poll || !fetcher)) {
        /* Take what fits in one round trip; extras wait in `ready`, their
         * leases kept alive by the keeper, and go back to pending on stop. */
        runq_job **jobs = NULL;
        size_t n = 0;
        rc = worker_fetch(w, (size_t)(room > 0 ? room : 1), timeout_ms, NULL, &jobs, &n);
        uv_mutex_lock(&w->lock);
        for (size_t i = 0; i < n; i++) {
            if (!job) job = jobs[i];
            else list_push(&w->ready, jobs[i]);
        }
        if (w->stopping && job) { /* stop came while we fetched */
            list_push(&w->ready, job);
            job = NULL;
            rc = rq_error(RUNQ_ECLOSED, "worker is stopped");
        }
        uv_mutex_unlock(&w->lock);
        rq_free(jobs);
        if (!job && !rc) rc = rq_error(RUNQ_ETIMEOUT, "no job within %d ms", timeout_ms);
        if (rc == RUNQ_ETIMEOUT && w->stopping) rc = rq_error(RUNQ_ECLOSED, "worker is stopped");
        if (rc) {
            if (w->stopping) {
                uv_mutex_lock(&w->lock);
                job_list rest = w->ready;
                w->ready = (job_list){0};
                uv_mutex_unlock(&w->lock);
                release_jobs(w, &rest);
            }
            return rc;
        }
    }
    job->started_mono_ms = rq_mono_ms(); /* the caller's handler starts now */
    if (!prefetched) {
        uv_mutex_lock(&w->lock);
        list_push(&w->held, job);
        uv_mutex_unlock(&w->lock);
    }
    rq_hooks_before_process(&w->client->hooks, job); /* on the caller's thread */
    *out = job;
    return 0;
}

/* ---- stop and free ---- */

int runq_worker_stop(runq_worker *w, int64_t grace_ms) {
    rq_error_clear();
    if (!w) return rq_error(RUNQ_EINVAL, "worker is NULL");
    uv_mutex_lock(&w->lock);
    w->stopping = true; /* before the interrupt: rq_fetch_request.stop */
    uv_cond_broadcast(&w->job_ready);
    uv_cond_broadcast(&w->slot_free);
    uv_mutex_unlock(&w->lock);
    w->backend->ops->interrupt(w->backend);
    if (current_worker == w) return 0; /* inside a handler: never wait for ourselves */
    rq_scheduler_stop(w->scheduler);

    if (w->have_fetcher) {
        uv_thread_join(&w->fetcher);
        w->have_fetcher = false;
    }
    uv_mutex_lock(&w->lock);
    job_list unstarted = w->ready;
    w->ready = (job_list){0};
    uv_mutex_unlock(&w->lock);
    release_jobs(w, &unstarted);

    int64_t until = rq_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
    int rc = 0;
    uv_mutex_lock(&w->lock);
    while (w->nrunning > 0) {
        int64_t left = until - rq_mono_ms();
        if (left <= 0) break;
        uv_cond_timedwait(&w->slot_free, &w->lock, (uint64_t)left * 1000000);
    }
    if (w->nrunning > 0) {
        for (runq_job *j = w->held.head; j; j = j->next) atomic_store(&j->cancel, true);
        rc = rq_error(RUNQ_ETIMEOUT, "%d handlers still running after the grace period", w->nrunning);
    } else {
        /* Finished handlers' acks in flight: stop returns with every
         * finished job settled, as when handlers acked themselves. Each
         * ack ends within the backend's timeout. */
        while (w->nacking > 0) uv_cond_wait(&w->slot_free, &w->lock);
    }
    uv_mutex_unlock(&w->lock);
    return rc;
}

int runq_worker_schedule(runq_worker *w, const runq_periodic_options *options) {
    rq_error_clear();
    if (!w) return rq_error(RUNQ_EINVAL, "worker is NULL");
    if (w->started || w->stopping)
        return rq_error(RUNQ_ESTATE, "add schedules before the worker starts");
    return rq_scheduler_add(w->scheduler, options);
}

void runq_worker_stats_get(runq_worker_stats *out, const runq_worker *w) {
    runq_worker *mw = (runq_worker *)w; /* the lock is not part of the value */
    uv_mutex_lock(&mw->lock);
    *out = w->stats;
    out->threads = w->pool.threads;
    out->idle = w->pool.idle;
    uv_mutex_unlock(&mw->lock);
}

void runq_worker_free(runq_worker *w) {
    if (!w) return;
    runq_worker_stop(w, 0);
    rq_pool_join_all(&w->pool); /* the fetcher, the only one to grow it, is gone */
    uv_mutex_lock(&w->lock);
    w->acker_exit = true; /* no handler is left to queue an ack; it drains first */
    uv_cond_signal(&w->ack_wake);
    uv_mutex_unlock(&w->lock);
    if (w->have_acker) uv_thread_join(&w->acker);
    uv_mutex_lock(&w->lock);
    w->keeper_exit = true;
    uv_cond_signal(&w->keeper_wake);
    uv_mutex_unlock(&w->lock);
    if (w->have_keeper) uv_thread_join(&w->keeper);
    /* Pulled jobs the caller never freed: their leases lapse and they are
     * delivered again; detach them so a later runq_job_free stays safe. */
    for (runq_job *j; (j = list_pop(&w->held));) j->worker = NULL;
    for (runq_job *j; (j = list_pop(&w->acked));) j->worker = NULL;
    uv_cond_destroy(&w->job_ready);
    uv_cond_destroy(&w->slot_free);
    uv_cond_destroy(&w->keeper_wake);
    uv_cond_destroy(&w->ack_wake);
    uv_mutex_destroy(&w->lock);
    worker_free_config(w);
    rq_free(w);
}
