/* Job records: life of the struct, public accessors, and the calls a handler
 * makes on its job. Settling (ack/fail/free) lives in worker.c with the
 * worker state it changes. */
#include "job.h"

#include <msgpack.h>
#include <string.h>

runq_job *rq_job_new(void) {
    runq_job *job = rq_calloc(1, sizeof *job);
    if (job) {
        job->retry_delay_ms = -1;
        atomic_init(&job->cancel, false);
    }
    return job;
}

static void meta_clear(runq_job *job) {
    for (size_t i = 0; i < job->nmeta; i++) {
        rq_free(job->meta_keys[i]);
        rq_free(job->meta_values[i]);
    }
    rq_free(job->meta_keys);
    rq_free(job->meta_values);
    job->meta_keys = job->meta_values = NULL;
    job->nmeta = 0;
}

void rq_job_destroy(runq_job *job) {
    if (!job) return;
    rq_free(job->task);
    rq_free(job->queue);
    rq_free(job->args);
    rq_free(job->unique_key);
    rq_free(job->rate_key);
    rq_free(job->result);
    rq_free(job->error);
    meta_clear(job);
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
    job->rate_interval_ms = src->rate_interval_ms;
    job->unique_until_done = src->unique_until_done;
    job->leased_ms = src->leased_ms;
    job->lease_token = src->lease_token;
    job->lease_until_ms = src->lease_until_ms;
    job->lease_own = src->lease_own;
    job->version = src->version;
    for (size_t i = 0; i < src->nmeta; i++)
        if (rq_job_meta_put(job, src->meta_keys[i], src->meta_values[i])) {
            rq_job_destroy(job);
            return NULL;
        }
    if (rq_job_set_str(&job->task, src->task) || rq_job_set_str(&job->queue, src->queue) ||
        rq_job_set_str(&job->unique_key, src->unique_key) ||
        rq_job_set_str(&job->rate_key, src->rate_key) ||
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
const char *runq_job_rate_key(const runq_job *job) { return job->rate_key; }
int64_t runq_job_rate_interval(const runq_job *job) { return job->rate_interval_ms; }
int runq_job_unique_until_done(const runq_job *job) { return job->unique_until_done; }
int64_t runq_job_leased_at(const runq_job *job) { return job->leased_ms; }
const void *runq_job_result(const runq_job *job, size_t *len) {
    if (len) *len = job->result_len;
    return job->result;
}
const char *runq_job_error(const runq_job *job) { return job->error; }

/* ---- metadata ---- */

static size_t meta_find(const runq_job *job, const char *key) {
    for (size_t i = 0; i < job->nmeta; i++)
        if (strcmp(job->meta_keys[i], key) == 0) return i;
    return job->nmeta;
}

int rq_job_meta_put(runq_job *job, const char *key, const char *value) {
    size_t kl = key ? strlen(key) : 0;
    if (kl == 0 || kl > 255) return rq_error(RUNQ_EINVAL, "metadata keys must be 1 to 255 bytes");
    size_t i = meta_find(job, key);
    if (!value) { /* remove, keeping the order of the rest */
        if (i == job->nmeta) return 0;
        rq_free(job->meta_keys[i]);
        rq_free(job->meta_values[i]);
        memmove(&job->meta_keys[i], &job->meta_keys[i + 1], (job->nmeta - i - 1) * sizeof(char *));
        memmove(&job->meta_values[i], &job->meta_values[i + 1],
                (job->nmeta - i - 1) * sizeof(char *));
        job->nmeta--;
        return 0;
    }
    if (i < job->nmeta) return rq_job_set_str(&job->meta_values[i], value);
    char *k = rq_strdup(key), *v = rq_strdup(value);
    char **ks = k && v ? rq_realloc(job->meta_keys, (job->nmeta + 1) * sizeof *ks) : NULL;
    if (ks) job->meta_keys = ks;
    char **vs = ks ? rq_realloc(job->meta_values, (job->nmeta + 1) * sizeof *vs) : NULL;
    if (!vs) {
        rq_free(k);
        rq_free(v);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    job->meta_values = vs;
    job->meta_keys[job->nmeta] = k;
    job->meta_values[job->nmeta++] = v;
    return 0;
}

int rq_job_meta_encode(const runq_job *job, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (job->nmeta == 0) return 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, job->nmeta);
    for (size_t i = 0; i < job->nmeta; i++) {
        size_t kl = strlen(job->meta_keys[i]), vl = strlen(job->meta_values[i]);
        msgpack_pack_str(&pk, kl);
        msgpack_pack_str_body(&pk, job->meta_keys[i], kl);
        msgpack_pack_str(&pk, vl);
        msgpack_pack_str_body(&pk, job->meta_values[i], vl);
    }
    /* The sbuffer uses the C allocator; hand out a copy from ours. */
    *out = rq_memdup(sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return *out ? 0 : rq_error(RUNQ_ENOMEM, "out of memory");
}

int rq_job_meta_decode(runq_job *job, const void *buf, size_t len) {
    meta_clear(job);
    if (len == 0) return 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = 0;
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        rc = rq_error(RUNQ_EPROTO, "metadata is not one msgpack map");
        goto out;
    }
    for (uint32_t i = 0; !rc && i < u.data.via.map.size; i++) {
        const msgpack_object *k = &u.data.via.map.ptr[i].key, *v = &u.data.via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR ||
            memchr(k->via.str.ptr, 0, k->via.str.size) || memchr(v->via.str.ptr, 0, v->via.str.size)) {
            rc = rq_error(RUNQ_EPROTO, "metadata keys and values must be strings without NUL");
            break;
        }
        char *ks = rq_malloc(k->via.str.size + 1), *vs = rq_malloc(v->via.str.size + 1);
        if (ks && vs) {
            memcpy(ks, k->via.str.ptr, k->via.str.size);
            ks[k->via.str.size] = '\0';
            memcpy(vs, v->via.str.ptr, v->via.str.size);
            vs[v->via.str.size] = '\0';
            rc = rq_job_meta_put(job, ks, vs);
            if (rc == RUNQ_EINVAL) rc = rq_error(RUNQ_EPROTO, "metadata key of a bad length");
        } else {
            rc = rq_error(RUNQ_ENOMEM, "out of memory");
        }
        rq_free(ks);
        rq_free(vs);
    }
out:
    msgpack_unpacked_destroy(&u);
    if (rc) meta_clear(job);
    return rc;
}

const char *runq_job_meta(const runq_job *job, const char *key) {
    if (!job || !key) return NULL;
    size_t i = meta_find(job, key);
    return i < job->nmeta ? job->meta_values[i] : NULL;
}

size_t runq_job_meta_count(const runq_job *job) { return job ? job->nmeta : 0; }

int runq_job_meta_at(const runq_job *job, size_t i, const char **key, const char **value) {
    rq_error_clear();
    if (!job || i >= job->nmeta)
        return rq_error(RUNQ_EINVAL, "no metadata pair %zu (the job has %zu)", i,
                        job ? job->nmeta : 0);
    if (key) *key = job->meta_keys[i];
    if (value) *value = job->meta_values[i];
    return 0;
}

int runq_job_meta_set(runq_job *job, const char *key, const char *value) {
    rq_error_clear();
    if (!job) return rq_error(RUNQ_EINVAL, "job is NULL");
    if (!job->enqueuing)
        return rq_error(RUNQ_ESTATE, "metadata is set at enqueue (options or a before_enqueue hook)");
    return rq_job_meta_put(job, key, value);
}

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
