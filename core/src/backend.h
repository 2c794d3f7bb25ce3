/* The interface every backend implements (memory/, redis/).
 *
 * Queue semantics are decided here and in the engine, the same way for every
 * backend; docs/architecture.md lists each operation's atomicity guarantee.
 * Every operation is called from engine or user threads, concurrently: a
 * backend is thread-safe. Each returns 0 or a RUNQ_E* code with
 * rq_error() detail set. Time is the backend's clock. */
#ifndef RUNQ_BACKEND_H
#define RUNQ_BACKEND_H

#include "job.h"

#include <stdatomic.h>

typedef struct runq_backend runq_backend;

/* What one fetch leaves for its caller's next fetch of the same queues
 * (zero-initialised by the caller, then the backend's to read and write). */
typedef struct rq_fetch_hint {
    /* The last fetch ran without error and returned fewer jobs than asked
     * (but some): the queues were drained then. */
    bool drained;
    int64_t due_mono_ms; /* and then something falls due (rq_mono_ms), 0: nothing */
} rq_fetch_hint;

typedef struct rq_fetch_request {
    const char *const *queues;
    size_t nqueues;
    const unsigned int *weights; /* NULL: strict order */
    int64_t lease_ms;
    size_t max;                  /* up to this many jobs */
    int timeout_ms;              /* block this long when none is due; -1: forever */
    rq_fetch_hint *hint;         /* NULL: none (a backend may ignore it) */
    /* NULL, or the caller's stop flag, set before it calls interrupt(): a
     * fetch that finds it set returns RUNQ_ETIMEOUT at once. Read after the
     * fetch notes the interrupt count, so a stop that comes between the
     * caller's own check and the fetch is seen by one or the other, and
     * the fetch does not wait out its timeout. */
    const atomic_bool *stop;
} rq_fetch_request;

/* The order a fetch visits req->queues in, as indexes into it: as given
 * (strict), or a weighted random permutation, so that a heavier queue is
 * visited first more often. `order` holds req->nqueues entries. One rule for
 * every backend (fetch_order.c). */
void rq_fetch_order(const rq_fetch_request *req, size_t *order);

/* One job to settle as done, for ack_many. */
typedef struct rq_ack_item {
    const runq_job *job;
    const void *result;
    size_t result_len;
    int64_t result_ttl_ms;
} rq_ack_item;

typedef struct rq_backend_ops {
    const char *name;

    /* Store n new jobs. The engine sets id, task, queue, args, options and
     * the relative inputs delay_ms / ttl_ms; the backend sets created_ms and
     * resolves eta_ms and deadline_ms with its own clock (see job.h). Unique
     * keys are scoped to the job's queue. Per job: results[i] = 0, or
     * RUNQ_EDUPLICATE (copy the holder's id into jobs[i]->id), RUNQ_EFULL,
     * or another error. Each job is stored atomically; the batch is not. With
     * replicate > 0, confirm the writes on that many replicas within
     * replicate_timeout_ms or return RUNQ_EDURABILITY for the batch. */
    int (*enqueue)(runq_backend *b, runq_job **jobs, int *results, size_t n,
                   int replicate, int replicate_timeout_ms);

    /* One atomic step per queue: promote due scheduled jobs, recover jobs
     * whose lease expired (attempt stays counted, error "lease expired"; a
     * job with attempt > max_retries goes to the dead letters instead),
     * drop jobs past their deadline to the dead letters, then lease up to
     * req->max pending jobs (highest priority, then oldest) to the caller,
     * incrementing attempt. Blocks up to req->timeout_ms when nothing is due,
     * waking at once on enqueue, on a scheduled job coming due, or on
     * interrupt(). *out receives an array of *n new jobs (array from
     * rq_malloc, jobs owned by the caller); returns RUNQ_ETIMEOUT with *n = 0
     * when none came. */
    int (*fetch)(runq_backend *b, const rq_fetch_request *req, runq_job ***out,
                 size_t *n);

    /* Settle a leased job; RUNQ_ESTALE when job->lease_token no longer holds. */
    int (*ack)(runq_backend *b, const runq_job *job, const void *result,
               size_t result_len, int64_t result_ttl_ms);
    /* Failed attempt: if attempt <= max_retries, schedule it at now +
     * retry_delay_ms; otherwise move it to the dead letters and set *dead. */
    int (*fail)(runq_backend *b, const runq_job *job, const char *error,
                int64_t retry_delay_ms, bool *dead);
    /* Return a leased, not started job to pending, uncounting the attempt. */
    int (*release)(runq_backend *b, const runq_job *job);
    /* Extend leases to now + lease_ms; results[i] = 0 or RUNQ_ESTALE.
     * whole_calls: the caller holds, in jobs, every unsettled job of each
     * fetch that leased any of them (the keeper's case), so a backend may
     * extend a fetch's jobs together; false: only these jobs' leases move. */
    int (*extend)(runq_backend *b, runq_job *const *jobs, int *results, size_t n,
                  int64_t lease_ms, bool whole_calls);
    /* Make every fetch blocked in this backend return now (used by stop). */
    void (*interrupt)(runq_backend *b);

    int (*get)(runq_backend *b, const char *id, runq_job **out);
    /* Block until the job is done or dead (or timeout_ms passes; -1 forever). */
    int (*wait)(runq_backend *b, const char *id, int timeout_ms, runq_job **out);
    int (*configure)(runq_backend *b, const char *queue,
                     const runq_queue_options *options);
    int (*stats)(runq_backend *b, const char *queue, runq_queue_stats *out);
    int (*dead_list)(runq_backend *b, const char *queue,
                     char (*ids)[RUNQ_ID_SIZE], size_t cap, size_t *count);
    int (*dead_retry)(runq_backend *b, const char *id);

    void (*destroy)(runq_backend *b);

    /* Manual pause (paused) or resume of a queue; resume also ends an
     * automatic pause and wakes blocked fetches at once. */
    int (*set_paused)(runq_backend *b, const char *queue, bool paused);

    /* Move a leased job straight to the dead letters with `reason`, whatever
     * attempts it has left: the engine found it unreadable (for example a
     * corrupt compressed payload), so a retry could only fail the same way.
     * RUNQ_ESTALE when the lease no longer holds. */
    int (*bury)(runq_backend *b, const runq_job *job, const char *reason);

    /* Settle n leased jobs as done, each exactly as ack would (atomically per
     * job, not for the batch): results[i] = 0, RUNQ_ESTALE or another code.
     * For jobs that finish together: the Redis backend sends one script call
     * per run of up to 100 jobs of one queue instead of one per job. Returns
     * 0, or an error that failed the whole batch (then in every results[i]). */
    int (*ack_many)(runq_backend *b, const rq_ack_item *items, int *results, size_t n);
} rq_backend_ops;

/* Backends embed this as their first member. */
struct runq_backend {
    const rq_backend_ops *ops;
};

/* Parsed backend URL. All strings are owned by the struct. */
typedef struct rq_url {
    enum { RQ_URL_MEMORY, RQ_URL_REDIS, RQ_URL_UNIX } scheme;
    char *name;      /* memory: store name or NULL */
    char *host;      /* redis */
    int port;        /* redis: default 6379 */
    char *path;      /* unix socket path */
    int db;
    char *user;      /* NULL: none */
    char *password;  /* NULL: none */
    int connect_timeout_ms; /* -1: not given in the URL */
    int command_timeout_ms; /* -1: not given in the URL */
} rq_url;

int rq_url_parse(rq_url *out, const char *url);
void rq_url_clear(rq_url *url);

/* Backend constructors. The options are the client's, defaults applied. */
int rq_memory_open(runq_backend **out, const rq_url *url,
                   const runq_client_options *options);
int rq_redis_open(runq_backend **out, const rq_url *url,
                  const runq_client_options *options);

#endif
