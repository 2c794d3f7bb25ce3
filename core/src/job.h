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

/* The record version this engine writes (docs/protocol.md, "The job
 * record"); the Redis fetch dead-letters every other. */
#define RQ_RECORD_VERSION 2

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
    /* Per-key interval limit and unique-until-done (engineer B's block):
     * jobs of one queue with the same rate_key are leased at least
     * rate_interval_ms apart; unique_until_done holds unique_key until the
     * job is done or dead instead of for unique_ttl_ms. */
    char *rate_key;          /* NULL: none */
    int64_t rate_interval_ms;
    bool unique_until_done;
    int64_t leased_ms;       /* when this delivery was leased (backend clock); 0: not leased */
    uint8_t *result;         /* msgpack, or NULL */
    size_t result_len;
    char *error;             /* last failure message, or NULL */
    int version;             /* record version (docs/protocol.md) */
    /* Metadata pairs in the order given; nmeta of each, strings owned. */
    char **meta_keys;
    char **meta_values;
    size_t nmeta;

    /* Lease, set by a backend's fetch: only the holder of this token may ack,
     * fail, extend or release the job. */
    uint64_t lease_token;
    int64_t lease_until_ms;
    /* Redis: an extend of this job alone gave its lease an active entry of
     * its own, so it no longer moves with its fetch's group (extend.lua). */
    bool lease_own;

    /* Engine-side bookkeeping for a fetched job (not stored by backends). */
    struct runq_worker *worker;  /* NULL for snapshots */
    int64_t retry_delay_ms;      /* <0: backoff; set by runq_job_retry_in */
    int64_t started_mono_ms;     /* when the handler started */
    bool in_handler;             /* owned by the engine during a handler call */
    bool settled;                /* acked, failed or released */
    /* Pull mode with async_ack: runq_job_ack queued it to the acker, which
     * and runq_job_free both must be done with it before it is destroyed
     * (both flags under the worker's lock). */
    bool ack_queued, ack_done, caller_freed;
    bool enqueuing;              /* in before_enqueue hooks: meta may change */
    bool processed;              /* before_process hooks ran: after_process is owed */
    int64_t started_us;          /* before_process time, for after_process */
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

/* Metadata: add or replace a pair (value NULL removes it), checking the key
 * and value. */
int rq_job_meta_put(runq_job *job, const char *key, const char *value);
/* The metadata as one msgpack map of str -> str. *out from rq_malloc (the
 * caller frees it), NULL with *len 0 when there is none. */
int rq_job_meta_encode(const runq_job *job, uint8_t **out, size_t *len);
/* Replace the metadata with a msgpack map of str -> str. RUNQ_EPROTO with
 * the detail set when the bytes are not one. Empty input: no metadata. */
int rq_job_meta_decode(runq_job *job, const void *buf, size_t len);


#endif
