/*
 * runq.h -- the public C API of the runq task queue engine.
 *
 * Conventions (see docs/architecture.md):
 *  - Opaque handles; names are runq_<module>_<verb>.
 *  - Out-parameters come first.
 *  - Functions return 0 on success or a negative RUNQ_E* code; the detail of
 *    the last failure on the calling thread is in runq_error_last().
 *  - Options structs carry a `version` field: initialise them with their
 *    RUNQ_*_OPTIONS_INIT macro, then change the fields you need.
 *  - Times are milliseconds: absolute times are Unix-epoch milliseconds as
 *    seen by the backend's clock (Redis TIME for redis://), durations are
 *    plain milliseconds.
 *  - Every function says who owns what it returns.
 */
#ifndef RUNQ_H
#define RUNQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(RUNQ_SHARED_BUILD)
#define RUNQ_EXTERN __declspec(dllexport)
#elif defined(__GNUC__)
#define RUNQ_EXTERN __attribute__((visibility("default")))
#else
#define RUNQ_EXTERN
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

#define RUNQ_VERSION_MAJOR 0
#define RUNQ_VERSION_MINOR 1
#define RUNQ_VERSION_PATCH 0
#define RUNQ_VERSION_NUMBER \
    (RUNQ_VERSION_MAJOR * 10000 + RUNQ_VERSION_MINOR * 100 + RUNQ_VERSION_PATCH)
#define RUNQ_VERSION_STRING "0.1.0"

/* The version of the library actually loaded (RUNQ_VERSION_NUMBER form).
 * Bindings compare it with the RUNQ_VERSION_NUMBER they were compiled with. */
RUNQ_EXTERN int runq_version(void);
/* Static string, never freed. */
RUNQ_EXTERN const char *runq_version_string(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* Error numbers are pinned: they are part of the ABI and of the bindings. */
typedef enum runq_error_code {
    RUNQ_OK = 0,
    RUNQ_EINVAL = -1,       /* an argument is invalid */
    RUNQ_ENOMEM = -2,       /* out of memory */
    RUNQ_EURL = -3,         /* the backend URL cannot be parsed or is unsupported */
    RUNQ_ENOTASK = -4,      /* no task of that name is registered */
    RUNQ_ETOOBIG = -5,      /* the payload exceeds the client's max_payload */
    RUNQ_EDUPLICATE = -6,   /* a job with the same unique key exists */
    RUNQ_EFULL = -7,        /* the queue holds max_len jobs */
    RUNQ_ETIMEOUT = -8,     /* the wait ended before there was an answer */
    RUNQ_ESTALE = -9,       /* the lease is no longer ours (fencing) */
    RUNQ_ECLOSED = -10,     /* the client or worker is stopping or stopped */
    RUNQ_EIO = -11,         /* the backend could not be reached or failed */
    RUNQ_EDURABILITY = -12, /* written, but fewer replicas confirmed than asked */
    RUNQ_ENOTFOUND = -13,   /* no job with that id (or it expired) */
    RUNQ_EPROTO = -14,      /* malformed wire data (corrupt job, bad msgpack) */
    RUNQ_ESTATE = -15       /* the call is not valid in the object's state */
} runq_error_code;

/* Static description of an error code; never NULL, never freed. */
RUNQ_EXTERN const char *runq_strerror(int code);

/* Detail message of the last failing call on this thread (thread-local).
 * Owned by the library; valid until the next runq call on this thread.
 * Returns "" when there is none. */
RUNQ_EXTERN const char *runq_error_last(void);

/* ------------------------------------------------------------------ */
/* Allocator hooks                                                     */
/* ------------------------------------------------------------------ */

typedef struct runq_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*calloc_fn)(size_t count, size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} runq_allocator;

/* Replace the allocator used for everything the engine allocates. Call it
 * before any other runq function; NULL restores the C library allocator.
 * The struct is copied. */
RUNQ_EXTERN void runq_set_allocator(const runq_allocator *allocator);

/* Free memory the library handed to the caller with "free with runq_free". */
RUNQ_EXTERN void runq_free(void *ptr);

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

typedef struct runq_client runq_client;
typedef struct runq_task runq_task;
typedef struct runq_job runq_job;
typedef struct runq_worker runq_worker;

/* Job ids are 26-character Crockford base32 strings (a 48-bit millisecond
 * time then 80 bits of randomness), so they sort by creation time. */
#define RUNQ_ID_LEN 26
#define RUNQ_ID_SIZE (RUNQ_ID_LEN + 1)

/* Longest task or queue name, in bytes. Names are printable ASCII without
 * spaces or braces (braces are Redis hash tags). */
#define RUNQ_NAME_MAX 128

typedef enum runq_job_state {
    RUNQ_STATE_SCHEDULED = 1, /* waiting for its eta */
    RUNQ_STATE_PENDING = 2,   /* ready to be fetched */
    RUNQ_STATE_ACTIVE = 3,    /* leased by a worker */
    RUNQ_STATE_DONE = 4,      /* acked; result kept for result_ttl_ms */
    RUNQ_STATE_DEAD = 5       /* failed for good, or expired; kept, retryable */
} runq_job_state;

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

typedef struct runq_client_options {
    unsigned int version;
    size_t max_payload;        /* largest args or result, bytes */
    int connect_timeout_ms;    /* redis: time allowed to connect */
    int command_timeout_ms;    /* redis: time a synchronous call may wait */
    int64_t result_ttl_ms;     /* how long done jobs and results are kept; 0:
                                * the default (1 hour); RUNQ_RESULT_TTL_NONE:
                                * not kept, a job is gone at its ack (get and
                                * wait then report RUNQ_ENOTFOUND) */
    /* Version 2. Args and results larger than this many bytes are stored
     * zstd-compressed when that makes them smaller (docs/protocol.md,
     * "Compressed payloads"); 0: never compress. Reading compressed payloads
     * needs no option: every client decompresses, bounded by max_payload. */
    size_t compress_threshold;
} runq_client_options;

/* result_ttl_ms: keep nothing of done jobs (no result, no record), as
 * queues of fire-and-forget jobs want: an ack then costs the server less
 * and done jobs take no memory. */
#define RUNQ_RESULT_TTL_NONE (-1)

/* Version 1 callers (no compress_threshold) are accepted and get 1024. */
#define RUNQ_CLIENT_OPTIONS_VERSION 2
#define RUNQ_CLIENT_OPTIONS_INIT \
    { RUNQ_CLIENT_OPTIONS_VERSION, 1024 * 1024, 2000, 5000, 3600 * 1000, 1024 }

/* Open a client on a backend chosen by URL:
 *   memory://          a private in-process store
 *   memory://NAME      an in-process store shared by every client of this
 *                      process that opens the same NAME
 *   redis://[user:pass@]host[:port][/db][?connect_timeout=ms&timeout=ms]
 *   unix:///path/to/redis.sock[?db=N]
 * `options` may be NULL for the defaults. On success *out is owned by the
 * caller and freed with runq_client_close(). Thread-safe. */
RUNQ_EXTERN int runq_client_open(runq_client **out, const char *url,
                                 const runq_client_options *options);

/* Close the client and free every task registered on it. Workers created on
 * the client must be freed first. NULL is a no-op. */
RUNQ_EXTERN void runq_client_close(runq_client *client);

/* Name of the backend in use ("memory" or "redis"); static string. */
RUNQ_EXTERN const char *runq_client_backend(const runq_client *client);

/* ------------------------------------------------------------------ */
/* Tasks                                                               */
/* ------------------------------------------------------------------ */

/* A handler returns 0 for success (the job is acked with the result set by
 * runq_job_set_result) or any other value for failure (the job is retried
 * after backoff, or after the delay set with runq_job_retry_in, or goes to
 * the dead letters when no attempts are left). `job` is owned by the engine
 * and valid only during the call. Handlers run on engine worker threads in
 * push mode, never on the I/O thread. */
typedef int (*runq_handler_fn)(runq_job *job, void *userdata);

/* Called once when a job of the task goes to the dead letters after its last
 * failed attempt. `job` is valid only during the call. */
typedef void (*runq_fallback_fn)(runq_job *job, void *userdata);

typedef struct runq_task_options {
    unsigned int version;
    const char *queue;       /* default queue for enqueue (copied); NULL: "default" */
    int max_retries;         /* retries after the first attempt */
    int64_t backoff_min_ms;  /* delay before the first retry */
    int64_t backoff_max_ms;  /* cap on any retry delay */
    double backoff_factor;   /* growth per attempt (>= 1.0) */
    double backoff_jitter;   /* 0..1: the delay varies by +/- this fraction */
    int64_t timeout_ms;      /* handler time budget; 0: none */
    int64_t unique_ttl_ms;   /* how long a unique key holds */
    runq_handler_fn handler; /* may be NULL for producer-only or pull mode */
    runq_fallback_fn fallback;
    void *userdata;          /* passed to handler and fallback; not owned */
} runq_task_options;

#define RUNQ_TASK_OPTIONS_VERSION 1
#define RUNQ_TASK_OPTIONS_INIT                                                  \
    { RUNQ_TASK_OPTIONS_VERSION, NULL, 3, 1000, 3600 * 1000, 2.0, 0.2, 0,       \
      24 * 3600 * 1000, NULL, NULL, NULL }

/* Register (or replace) a task on the client. `out` may be NULL; otherwise
 * *out is owned by the client and valid until runq_client_close(). Register
 * tasks before creating workers. */
RUNQ_EXTERN int runq_task_register(runq_task **out, runq_client *client,
                                   const char *name,
                                   const runq_task_options *options);

/* The registered task of that name, or NULL (owned by the client). */
RUNQ_EXTERN runq_task *runq_task_find(runq_client *client, const char *name);

/* ------------------------------------------------------------------ */
/* Enqueue                                                             */
/* ------------------------------------------------------------------ */

/* One metadata pair: NUL-terminated UTF-8 strings, borrowed for the call. */
typedef struct runq_meta_entry {
    const char *key;
    const char *value;
} runq_meta_entry;

/* Largest metadata map of a job, msgpack-encoded, in bytes. */
#define RUNQ_META_MAX 65536

typedef struct runq_enqueue_options {
    unsigned int version;
    const char *queue;         /* NULL: the task's queue, else "default" */
    int64_t delay_ms;          /* run no earlier than now + delay */
    int64_t eta_ms;            /* absolute run time; nonzero wins over delay */
    int32_t priority;          /* higher runs first within a queue */
    int max_retries;           /* -1: the task's (or 3 if unregistered) */
    int64_t timeout_ms;        /* -1: the task's */
    int64_t ttl_ms;            /* 0: none; not started within ttl -> dead */
    int64_t deadline_ms;       /* 0: none; absolute time after which it never starts */
    const char *unique_key;    /* NULL: none; same key within its ttl -> EDUPLICATE */
    int64_t unique_ttl_ms;     /* -1: the task's (24 h if unregistered) */
    int replicate;             /* redis: replicas that must confirm; 0: none */
    int replicate_timeout_ms;  /* redis: how long to wait for them */
    int64_t once_in_ms;        /* 0: off; else at most one job of this task with
                                  these exact args per period (derives the unique
                                  key, see docs/protocol.md; excludes unique_key) */
    /* Version 2. Metadata ("headers"): nmeta key/value pairs carried with
     * the job to the worker (runq_job_meta); the place for trace context.
     * Strings are copied. Keys are 1 to 255 bytes, values may be empty; a
     * key given twice keeps its last value; the whole map, msgpack-encoded,
     * is at most RUNQ_META_MAX bytes (RUNQ_ETOOBIG). */
    const runq_meta_entry *meta;
    size_t nmeta;
    /* ---- version 3: per-key interval limit and unique-until-done ---- */
    const char *rate_key;      /* NULL: none; else jobs of this queue with the
                                  same rate_key start (are leased) at least
                                  rate_interval_ms apart; other keys and unkeyed
                                  jobs are never held up by it (1 to 1024 bytes;
                                  copied) */
    int64_t rate_interval_ms;  /* > 0 with rate_key, 0 without */
    int unique_until_done;     /* nonzero (needs unique_key): the unique key
                                  holds until the job is done or dead, not for a
                                  TTL; excludes an explicit unique_ttl_ms */
} runq_enqueue_options;

/* Version 1 (up to once_in_ms) and version 2 (up to nmeta) callers are still
 * accepted; the fields they lack take their INIT values. */
#define RUNQ_ENQUEUE_OPTIONS_VERSION 3
#define RUNQ_ENQUEUE_OPTIONS_INIT                                                       \
    { RUNQ_ENQUEUE_OPTIONS_VERSION, NULL, 0, 0, 0, -1, -1, 0, 0, NULL, -1, 0, 1000, 0, NULL, 0, \
      NULL, 0, 0 }

/* Enqueue one job of `task` (registered or not: producers need not know the
 * handler) with `args`, a single msgpack object of args_len bytes (copied;
 * checked to be well-formed). `opts` may be NULL. On success, and on
 * RUNQ_EDUPLICATE (then it is the id of the job holding the unique key),
 * out_id receives the NUL-terminated id; out_id may be NULL. On
 * RUNQ_EDURABILITY the job was written but its durability is unknown. */
RUNQ_EXTERN int runq_enqueue(runq_client *client, char out_id[RUNQ_ID_SIZE],
                             const char *task, const void *args,
                             size_t args_len, const runq_enqueue_options *opts);

typedef struct runq_enqueue_item {
    const char *task;                 /* in */
    const void *args;                 /* in: msgpack, copied */
    size_t args_len;                  /* in */
    const runq_enqueue_options *opts; /* in, may be NULL */
    char id[RUNQ_ID_SIZE];            /* out: as for runq_enqueue */
    int result;                       /* out: 0 or a RUNQ_E* code */
} runq_enqueue_item;

/* Enqueue n jobs in one round trip. Each item gets its own result; the call
 * returns 0 if every item succeeded, else the first failing item's code. */
RUNQ_EXTERN int runq_enqueue_many(runq_client *client, runq_enqueue_item *items,
                                  size_t n);

/* ------------------------------------------------------------------ */
/* Queues and inspection                                               */
/* ------------------------------------------------------------------ */

typedef struct runq_queue_options {
    unsigned int version;
    int64_t max_len; /* 0: unbounded; else enqueue fails with RUNQ_EFULL when
                        scheduled + pending jobs reach it */
    /* ---- version 2: queue gates (docs/architecture.md, "Queue gates") ---- */
    int64_t rate_limit;      /* 0: none; else at most this many jobs leased per
                                rate_period_ms, by every worker of every process */
    int64_t rate_period_ms;  /* the rate limit's period (> 0 with rate_limit) */
    int64_t rate_burst;      /* jobs that may be leased at once after an idle
                                spell; any window of rate_period_ms sees at
                                most rate_limit + rate_burst - 1 leases.
                                0: automatic, rate_limit / 20 (at least 1),
                                so that a worker waking a little late still
                                gets its slot and the achieved rate meets the
                                limit; 1 spaces leases strictly but loses the
                                slots of late wake-ups (bench/README.md) */
    int64_t concurrency_limit; /* 0: none; else at most this many jobs of the
                                  queue leased at once, across all workers */
    int64_t pause_after_failures; /* 0: off; else N failed attempts in a row
                                     pause the queue automatically */
    int64_t pause_min_ms;    /* first automatic pause; doubles each time */
    int64_t pause_max_ms;    /* cap on an automatic pause */
} runq_queue_options;

/* Version 1 callers (max_len only) are still accepted: the gates are then off. */
#define RUNQ_QUEUE_OPTIONS_VERSION 2
#define RUNQ_QUEUE_OPTIONS_INIT \
    { RUNQ_QUEUE_OPTIONS_VERSION, 0, 0, 1000, 0, 0, 0, 1000, 5 * 60 * 1000 }

/* Set a queue's options (every field: a field left at its INIT value turns
 * that feature off); they are stored in the backend and seen by every client
 * of it. RUNQ_EINVAL with the detail in runq_error_last() for bad values. */
RUNQ_EXTERN int runq_queue_configure(runq_client *client, const char *queue,
                                     const runq_queue_options *options);

/* Pause a queue: no worker of any process leases its jobs until
 * runq_queue_resume (enqueue still works; running jobs finish). A manual
 * pause is never lifted automatically. Resume wakes blocked fetches at once
 * and also ends an automatic pause (see pause_after_failures). */
RUNQ_EXTERN int runq_queue_pause(runq_client *client, const char *queue);
RUNQ_EXTERN int runq_queue_resume(runq_client *client, const char *queue);

typedef enum runq_pause_state {
    RUNQ_PAUSE_NONE = 0,   /* jobs are leased */
    RUNQ_PAUSE_MANUAL = 1, /* runq_queue_pause */
    RUNQ_PAUSE_AUTO = 2    /* pause_after_failures: waiting out the interval,
                              or for the one probe job's outcome */
} runq_pause_state;

typedef struct runq_queue_stats {
    int64_t scheduled;
    int64_t pending;
    int64_t active;
    int64_t dead;
    /* Added in 0.1 with the queue gates (the struct is caller-allocated:
     * rebuild against this header). */
    int64_t paused;          /* a runq_pause_state */
    int64_t paused_until_ms; /* RUNQ_PAUSE_AUTO: end of the interval (0: its
                                probe job is out or may go) */
} runq_queue_stats;

RUNQ_EXTERN int runq_queue_stats_get(runq_queue_stats *out, runq_client *client,
                                     const char *queue);

/* Fill ids (an array of `cap` ids) with up to `cap` dead jobs of the queue,
 * oldest first; *count receives how many. */
RUNQ_EXTERN int runq_dead_list(char (*ids)[RUNQ_ID_SIZE], size_t *count,
                               runq_client *client, const char *queue,
                               size_t cap);

/* Move a dead job back to pending with a fresh set of attempts. */
RUNQ_EXTERN int runq_dead_retry(runq_client *client, const char *id);

/* A snapshot of the job with that id. *out is owned by the caller; free it
 * with runq_job_free(). RUNQ_ENOTFOUND when unknown or expired. */
RUNQ_EXTERN int runq_job_get(runq_job **out, runq_client *client, const char *id);

/* Wait until the job is done or dead, up to timeout_ms (-1: no limit), then
 * return its snapshot as runq_job_get does. RUNQ_ETIMEOUT otherwise. */
RUNQ_EXTERN int runq_job_wait(runq_job **out, runq_client *client,
                              const char *id, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Jobs: accessors                                                     */
/* ------------------------------------------------------------------ */

/* Strings and buffers returned below are owned by the job and valid while it
 * is. Absent optional values are NULL (strings) or 0 (times). */
RUNQ_EXTERN const char *runq_job_id(const runq_job *job);
RUNQ_EXTERN const char *runq_job_task(const runq_job *job);
RUNQ_EXTERN const char *runq_job_queue(const runq_job *job);
RUNQ_EXTERN const void *runq_job_args(const runq_job *job, size_t *len);
RUNQ_EXTERN runq_job_state runq_job_state_get(const runq_job *job);
RUNQ_EXTERN int runq_job_attempt(const runq_job *job);     /* 1 on first delivery */
RUNQ_EXTERN int runq_job_max_retries(const runq_job *job);
RUNQ_EXTERN int32_t runq_job_priority(const runq_job *job);
RUNQ_EXTERN int64_t runq_job_created_at(const runq_job *job);
RUNQ_EXTERN int64_t runq_job_eta(const runq_job *job);
RUNQ_EXTERN int64_t runq_job_timeout(const runq_job *job);
RUNQ_EXTERN int64_t runq_job_deadline(const runq_job *job); /* ttl folded in */
RUNQ_EXTERN const char *runq_job_unique_key(const runq_job *job);
/* The job's rate key (NULL: none) and its interval in ms (0: none). */
RUNQ_EXTERN const char *runq_job_rate_key(const runq_job *job);
RUNQ_EXTERN int64_t runq_job_rate_interval(const runq_job *job);
/* Nonzero when the job holds its unique key until it is done or dead. */
RUNQ_EXTERN int runq_job_unique_until_done(const runq_job *job);
/* When this delivery was leased (its start), Unix ms by the backend's clock,
 * for a job from a worker; 0 in snapshots (runq_job_get, runq_job_wait). */
RUNQ_EXTERN int64_t runq_job_leased_at(const runq_job *job);
/* The result of a done job (msgpack), or NULL. */
RUNQ_EXTERN const void *runq_job_result(const runq_job *job, size_t *len);
/* The last failure message (a handler's error, "lease expired", "ttl
 * expired", ...), or NULL. */
RUNQ_EXTERN const char *runq_job_error(const runq_job *job);

/* Metadata (see runq_enqueue_options.meta). The value of `key`, or NULL when
 * absent; owned by the job. Pairs keep the order they were given in. */
RUNQ_EXTERN const char *runq_job_meta(const runq_job *job, const char *key);
RUNQ_EXTERN size_t runq_job_meta_count(const runq_job *job);
/* Pair i (0-based) of the job's metadata; both strings owned by the job.
 * RUNQ_EINVAL when i >= runq_job_meta_count(). */
RUNQ_EXTERN int runq_job_meta_at(const runq_job *job, size_t i, const char **key,
                                 const char **value);
/* Add or replace (value NULL: remove) a pair of a job being enqueued: only
 * valid inside a before_enqueue hook (see runq_hooks), else RUNQ_ESTATE.
 * Strings are copied. */
RUNQ_EXTERN int runq_job_meta_set(runq_job *job, const char *key, const char *value);

/* ------------------------------------------------------------------ */
/* Jobs: inside a handler, or held in pull mode                        */
/* ------------------------------------------------------------------ */

/* Set the result the ack will store (msgpack; copied). */
RUNQ_EXTERN int runq_job_set_result(runq_job *job, const void *result, size_t len);
/* Set the failure message (copied). */
RUNQ_EXTERN int runq_job_set_error(runq_job *job, const char *message);
/* Ask that a failure be retried after delay_ms instead of the backoff. */
RUNQ_EXTERN void runq_job_retry_in(runq_job *job, int64_t delay_ms);
/* Nonzero once the worker is stopping past its grace period or the job's
 * timeout has passed: a long handler should return soon. */
RUNQ_EXTERN int runq_job_cancelled(const runq_job *job);

/* Pull mode: settle a job returned by runq_worker_next(). After ack or fail
 * the job must still be freed with runq_job_free(). RUNQ_ESTALE when the
 * lease was lost (the job was or will be delivered again); a worker with
 * async_ack queues the ack and returns 0 (runq_worker_options). */
RUNQ_EXTERN int runq_job_ack(runq_job *job, const void *result, size_t len);
/* retry_delay_ms < 0: the task's backoff. */
RUNQ_EXTERN int runq_job_fail(runq_job *job, const char *message,
                              int64_t retry_delay_ms);

/* Free a job owned by the caller (from runq_worker_next, runq_job_get or
 * runq_job_wait). A pulled job freed unsettled is released back to pending
 * at once without counting the attempt. Calling it on a job a handler
 * received is an error that does nothing. NULL is a no-op. */
RUNQ_EXTERN void runq_job_free(runq_job *job);

/* ------------------------------------------------------------------ */
/* Hooks                                                               */
/* ------------------------------------------------------------------ */

/* How a delivery of a job ended, as seen by the worker that ran it. */
typedef enum runq_outcome {
    RUNQ_OUTCOME_ACKED = 1,    /* done */
    RUNQ_OUTCOME_RETRIED = 2,  /* failed, scheduled again */
    RUNQ_OUTCOME_DEAD = 3,     /* failed, moved to the dead letters */
    RUNQ_OUTCOME_RELEASED = 4, /* returned unsettled (pulled job freed, stop) */
    RUNQ_OUTCOME_LOST = 5      /* the settle was refused (lease lost) or did not
                                  reach the backend: delivered again later */
} runq_outcome;

typedef struct runq_process_info {
    runq_outcome outcome;
    const char *error;   /* the failure message (retried, dead), else NULL;
                            owned by the engine, valid during the call */
    int64_t duration_us; /* from before_process to the end of the settle */
} runq_process_info;

/* Hooks see every job a client enqueues and every job its workers process.
 * All three are optional. `job` is owned by the engine, valid during the
 * call; hooks must not settle or free it.
 *
 *  before_enqueue: on the thread calling runq_enqueue / runq_enqueue_many
 *    (or a worker's periodic scheduler thread), once per job, after the job
 *    is validated and before it is compressed and stored. It may add
 *    metadata with runq_job_meta_set (trace context) and read everything
 *    else. Returning nonzero refuses the job: its result is that value when
 *    it is a RUNQ_E* code, else RUNQ_EINVAL, and runq_error_last() carries
 *    the message set with runq_job_set_error, if any.
 *  before_process: right before the handler runs. Push mode: on the engine
 *    handler thread that then runs the handler. Pull mode: inside
 *    runq_worker_next, on the caller's thread, before it returns the job.
 *  after_process: once per delivery, after the job is settled. Push mode:
 *    on the handler thread after the ack or fail (and after a fallback);
 *    for a job whose ack was already queued to the worker's acker thread
 *    when the hook was added (a worker without after_process hooks acks
 *    there), on that thread. Pull mode: on the caller's thread, inside the
 *    runq_job_ack / runq_job_fail that settled it, or inside runq_job_free
 *    for a job freed unsettled (RELEASED, or LOST when the release fails).
 *    Because it runs after the settle, the job's next delivery (a retry) may
 *    already have started elsewhere.
 *
 * Hooks of one client run in the order they were added, the before_enqueue
 * ones of each runq_hooks first to last. They run concurrently on several
 * threads when several threads enqueue or handle jobs: make them
 * thread-safe. Adding is thread-safe at any time and takes effect for
 * later calls; hooks cannot be removed. */
typedef struct runq_hooks {
    unsigned int version;
    int (*before_enqueue)(runq_job *job, void *userdata);
    void (*before_process)(runq_job *job, void *userdata);
    void (*after_process)(runq_job *job, const runq_process_info *info, void *userdata);
    void *userdata;                       /* passed to each hook; not owned */
    void (*userdata_free)(void *userdata); /* NULL, or called once at
                                              runq_client_close */
} runq_hooks;

#define RUNQ_HOOKS_VERSION 1
#define RUNQ_HOOKS_INIT { RUNQ_HOOKS_VERSION, NULL, NULL, NULL, NULL, NULL }

/* Add a set of hooks to the client (the struct is copied). */
RUNQ_EXTERN int runq_client_add_hooks(runq_client *client, const runq_hooks *hooks);

/* ------------------------------------------------------------------ */
/* Workers                                                             */
/* ------------------------------------------------------------------ */

typedef enum runq_worker_mode {
    RUNQ_WORKER_PUSH = 0, /* engine threads call the task handlers */
    RUNQ_WORKER_PULL = 1  /* the caller's thread takes jobs with runq_worker_next */
} runq_worker_mode;

typedef struct runq_worker_options {
    unsigned int version;
    const char *const *queues; /* queue names (copied); NULL: {"default"} */
    size_t nqueues;
    const unsigned int *weights; /* NULL: strict order, else one weight per queue */
    int concurrency;             /* push: handler threads; pull: jobs held at once */
    runq_worker_mode mode;
    int64_t lease_ms;            /* visibility timeout of a fetched job */
    int auto_extend;             /* nonzero: extend leases of held jobs on a timer;
                                  * it also enables the prefetch: jobs fetched
                                  * ahead and kept leased (push: at least one
                                  * per thread; pull: at least `concurrency`
                                  * beyond those held, from the second
                                  * runq_worker_next; more at a high rate: what
                                  * the worker starts in 4 ms, at most 512),
                                  * released unstarted at stop */
    /* Version 2. Autoscaling: when max_concurrency > 0 the push-mode pool
     * runs between min_concurrency (0: 1) and max_concurrency handler
     * threads and `concurrency` is ignored: it grows while every handler is
     * busy and fetches still find jobs, and a thread idle for
     * idle_timeout_ms exits, down to min_concurrency. Both 0: a fixed pool
     * of `concurrency`. Pull mode: max_concurrency, when set, is the number
     * of jobs held at once. */
    int min_concurrency;
    int max_concurrency;
    int64_t idle_timeout_ms;     /* autoscaling only; > 0 */
    /* Version 3. Pull mode: nonzero makes runq_job_ack asynchronous while
     * the client has no after_process hook: the ack is queued to a worker
     * thread that sends acks in batches, and runq_job_ack returns 0 at once.
     * Its outcome goes to runq_worker_stats only (processed; an ack refused
     * because the lease was lost is not counted, and the job is delivered
     * again). After such an ack the job may only be freed. runq_worker_stop
     * waits for queued acks. Push mode ignores it. */
    int async_ack;
} runq_worker_options;

/* Version 1 and 2 callers (no autoscaling fields, no async_ack) are still
 * accepted. */
#define RUNQ_WORKER_OPTIONS_VERSION 3
#define RUNQ_WORKER_OPTIONS_INIT \
    { RUNQ_WORKER_OPTIONS_VERSION, NULL, 0, NULL, 4, RUNQ_WORKER_PUSH, 30000, 1, 0, 0, 10000, 0 }

/* Create a worker on the client; *out is owned by the caller and freed with
 * runq_worker_free(). Nothing is fetched before start (push) or next (pull). */
RUNQ_EXTERN int runq_worker_create(runq_worker **out, runq_client *client,
                                   const runq_worker_options *options);

/* Push mode: start fetching and running handlers on engine threads. */
RUNQ_EXTERN int runq_worker_start(runq_worker *worker);

/* Stop gracefully: stop fetching, return fetched-but-unstarted jobs to
 * pending at once, let running handlers finish for up to grace_ms, then mark
 * them cancelled. Returns 0 when every handler finished, RUNQ_ETIMEOUT when
 * some still run (runq_worker_free waits for them). When every handler
 * finished it also waits for their acks (push mode acks off the handler
 * thread), so every job they finished is settled. Called from inside a
 * handler it only requests the stop and returns 0. */
RUNQ_EXTERN int runq_worker_stop(runq_worker *worker, int64_t grace_ms);

/* Pull mode: wait up to timeout_ms (-1: until stopped) for a job. On success
 * *out is owned by the caller: settle it with runq_job_ack/runq_job_fail and
 * free it with runq_job_free. RUNQ_ETIMEOUT when none came, RUNQ_ECLOSED
 * once stopped. */
RUNQ_EXTERN int runq_worker_next(runq_worker *worker, runq_job **out,
                                 int timeout_ms);

/* Periodic jobs: the worker enqueues `task` at each fire time. Every worker
 * that carries the same schedule tries; a unique key per fire time lets one
 * of them win, so the job runs once per period however many workers run. */
typedef struct runq_periodic_options {
    unsigned int version;
    const char *task;      /* required */
    const void *args;      /* msgpack (copied); NULL: [[], {}] */
    size_t args_len;
    int64_t every_ms;      /* fixed interval, fire times aligned to multiples of it; or */
    const char *cron;      /* "min hour day-of-month month day-of-week", UTC, with
                              *, a-b, a-b/n, lists, and steps over the whole
                              range; exactly one of every_ms and cron */
    const char *queue;     /* NULL: the task's queue, else "default" */
} runq_periodic_options;

#define RUNQ_PERIODIC_OPTIONS_VERSION 1
#define RUNQ_PERIODIC_OPTIONS_INIT { RUNQ_PERIODIC_OPTIONS_VERSION, NULL, NULL, 0, 0, NULL, NULL }

/* Add a schedule to the worker before it starts (push) or before its first
 * runq_worker_next (pull). The options are copied. RUNQ_EINVAL for a bad
 * cron expression, with the detail in runq_error_last(). */
RUNQ_EXTERN int runq_worker_schedule(runq_worker *worker, const runq_periodic_options *options);

typedef struct runq_worker_stats {
    int64_t processed; /* acked */
    int64_t failed;    /* failures, retried or dead */
    int64_t dead;      /* of which went to the dead letters */
    int64_t running;   /* handlers running now */
    int64_t threads;   /* push mode: handler threads alive now (the pool size) */
    int64_t idle;      /* push mode: of which waiting for a job */
} runq_worker_stats;

RUNQ_EXTERN void runq_worker_stats_get(runq_worker_stats *out,
                                       const runq_worker *worker);

/* Stop (grace 0 if still running), wait for handler threads, free. */
RUNQ_EXTERN void runq_worker_free(runq_worker *worker);

#ifdef __cplusplus
}
#endif
#endif /* RUNQ_H */
