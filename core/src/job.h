/* The job record shared by the engine and every backend.
 *
 * A runq_job is both the public handle (accessors in job.c) and the record a
 * backend reads and fills. Every pointer field is owned by the job and freed
 * by rq_job_destroy(). */
#ifndef RUNQ_JOB_H
#define RUNQ_JOB_H

#include "common.h"

#include <stdatomic.h>

struct runq_worker;

struct runq_job {
    char id[RUNQ_ID_SIZE];
    char *task;
    char *queue;
    uint8_t *args;           /* one msgpack object */
    size_t args_len;
    runq_job_state state;
    int attempt;             /* deliveries so far; 1 during the first run */
    int max_retries;
    int32_t priority;
    int64_t created_ms;
    int64_t eta_ms;          /* when it became / becomes due */
    int64_t timeout_ms;      /* 0: none */
    int64_t deadline_ms;     /* 0: none; ttl is folded in at enqueue */
    /* Enqueue inputs resolved by the backend against its own clock (the
     * server's, never the producer's): eta = eta_ms ? eta_ms : now + delay_ms;
     * deadline = min(deadline_ms, now + ttl_ms) when ttl_ms > 0. */
    int64_t delay_ms;
    int64_t ttl_ms;
    char *unique_key;        /* NULL: none */
    int64_t unique_ttl_ms;
    uint8_t *result;         /* msgpack, or NULL */
    size_t result_len;
    char *error;             /* last failure message, or NULL */

    /* Lease, set by a backend's fetch: only the holder of this token may ack,
     * fail, extend or release the job. */
    uint64_t lease_token;
    int64_t lease_until_ms;

    /* Engine-side bookkeeping for a fetched job (not stored by backends). */
    struct runq_worker *worker;  /* NULL for snapshots */
    int64_t retry_delay_ms;      /* <0: backoff; set by runq_job_retry_in */
    int64_t started_mono_ms;     /* when the handler started */
    bool in_handler;             /* owned by the engine during a handler call */
    bool settled;                /* acked, failed or released */
    atomic_bool cancel;          /* set by worker stop past grace */
    struct runq_job *next;       /* intrusive list link for the worker */
    struct runq_job *prev;
};

/* A zeroed job with retry_delay_ms = -1. NULL on allocation failure. */
runq_job *rq_job_new(void);
/* Deep copy of the stored fields (not the engine bookkeeping). */
runq_job *rq_job_clone(const runq_job *job);
void rq_job_destroy(runq_job *job);
/* Replace a string/buffer field, freeing the old value. */
int rq_job_set_str(char **field, const char *value);
int rq_job_set_buf(uint8_t **field, size_t *len, const void *value, size_t n);


#endif
