/* Job records: life of the struct, public accessors, and the calls a handler
 * makes on its job. Settling (ack/fail/free) lives in worker.c with the
 * worker state it changes. */
#include "job.h"

#include <string.h>

runq_job *rq_job_new(void) {
    runq_job *job = rq_calloc(1, sizeof *job);
    if (job) {
        job->retry_delay_ms = -1;
        atomic_init(&job->cancel, false);
    }
    return job;
}

void rq_job_destroy(runq_job *job) {
    if (!job) return;
    rq_free(job->task);
    rq_free(job->queue);
    rq_free(job->args);
    rq_free(job->unique_key);
    rq_free(job->result);
    rq_free(job->error);
    rq_free(job);
}

int rq_job_set_str(char **field, const char *value) {
    char *copy = NULL;
    if (value && !(copy = rq_strdup(value))) return rq_error(RUNQ_ENOMEM, "out of memory");
    rq_free(*field);
    *field = copy;
    return 0;
}

int rq_job_set_buf(uint8_t **field, size_t *len, const void *value, size_t n) {
    uint8_t *copy = NULL;
    if (value && n && !(copy = rq_memdup(value, n))) return rq_error(RUNQ_ENOMEM, "out of memory");
    rq_free(*field);
    *field = copy;
    *len = copy ? n : 0;
    return 0;
}

runq_job *rq_job_clone(const runq_job *src) {
    runq_job *job = rq_job_new();
    if (!job) return NULL;
    memcpy(job->id, src->id, sizeof job->id);
    job->state = src->state;
    job->attempt = src->attempt;
    job->max_retries = src->max_retries;
    job->priority = src->priority;
    job->created_ms = src->created_ms;
    job->eta_ms = src->eta_ms;
    job->timeout_ms = src->timeout_ms;
    job->deadline_ms = src->deadline_ms;
    job->delay_ms = src->delay_ms;
    job->ttl_ms = src->ttl_ms;
    job->unique_ttl_ms = src->unique_ttl_ms;
    job->lease_token = src->lease_token;
    job->lease_until_ms = src->lease_until_ms;
    if (rq_job_set_str(&job->task, src->task) || rq_job_set_str(&job->queue, src->queue) ||
        rq_job_set_str(&job->unique_key, src->unique_key) ||
        rq_job_set_str(&job->error, src->error) ||
        rq_job_set_buf(&job->args, &job->args_len, src->args, src->args_len) ||
        rq_job_set_buf(&job->result, &job->result_len, src->result, src->result_len)) {
        rq_job_destroy(job);
        return NULL;
    }
    return job;
}

const char *runq_job_id(const runq_job *job) { return job->id; }
const char *runq_job_task(const runq_job *job) { return job->task; }
const char *runq_job_queue(const runq_job *job) { return job->queue; }
const void *runq_job_args(const runq_job *job, size_t *len) {
    if (len) *len = job->args_len;
    return job->args;
}
runq_job_state runq_job_state_get(const runq_job *job) { return job->state; }
int runq_job_attempt(const runq_job *job) { return job->attempt; }
int runq_job_max_retries(const runq_job *job) { return job->max_retries; }
int32_t runq_job_priority(const runq_job *job) { return job->priority; }
int64_t runq_job_created_at(const runq_job *job) { return job->created_ms; }
int64_t runq_job_eta(const runq_job *job) { return job->eta_ms; }
int64_t runq_job_timeout(const runq_job *job) { return job->timeout_ms; }
int64_t runq_job_deadline(const runq_job *job) { return job->deadline_ms; }
const char *runq_job_unique_key(const runq_job *job) { return job->unique_key; }
const void *runq_job_result(const runq_job *job, size_t *len) {
    if (len) *len = job->result_len;
    return job->result;
}
const char *runq_job_error(const runq_job *job) { return job->error; }

int runq_job_set_result(runq_job *job, const void *result, size_t len) {
    rq_error_clear();
    if (!job) return rq_error(RUNQ_EINVAL, "job is NULL");
    if (result && len) {
        int rc = rq_msgpack_check(result, len, "result");
        if (rc) return rc;
    }
    return rq_job_set_buf(&job->result, &job->result_len, result, len);
}

int runq_job_set_error(runq_job *job, const char *message) {
    rq_error_clear();
    if (!job) return rq_error(RUNQ_EINVAL, "job is NULL");
    return rq_job_set_str(&job->error, message);
}

void runq_job_retry_in(runq_job *job, int64_t delay_ms) {
    if (job) job->retry_delay_ms = delay_ms < 0 ? 0 : delay_ms;
}

int runq_job_cancelled(const runq_job *job) {
    if (!job) return 0;
    if (atomic_load(&job->cancel)) return 1;
    return job->timeout_ms > 0 && job->started_mono_ms > 0 &&
           rq_mono_ms() - job->started_mono_ms >= job->timeout_ms;
}
