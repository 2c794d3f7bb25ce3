/* The client: backend selection by URL, task registry, enqueue and the
 * inspection calls. Queue semantics are the backend's (backend.h). */
#include "client.h"
#include "compress.h"

#include <stdio.h>
#include <string.h>

static const char *const DEFAULT_QUEUE = "default";

int runq_client_open(runq_client **out, const char *url, const runq_client_options *options) {
    rq_error_clear();
    if (!out) return rq_error(RUNQ_EINVAL, "out is NULL");
    *out = NULL;
    runq_client_options defaults = RUNQ_CLIENT_OPTIONS_INIT;
    if (options && options->version != 1 && options->version != RUNQ_CLIENT_OPTIONS_VERSION)
        return rq_error(RUNQ_EINVAL, "runq_client_options.version is %u; this library knows 1 to %d",
                        options->version, RUNQ_CLIENT_OPTIONS_VERSION);
    runq_client_options o = defaults;
    /* Version 1 ended with result_ttl_ms: copy only what the caller has. */
    if (options)
        memcpy(&o, options, options->version == 1 ? offsetof(runq_client_options, result_ttl_ms) +
                                                        sizeof(int64_t)
                                                  : sizeof o);
    o.version = RUNQ_CLIENT_OPTIONS_VERSION;
    if (o.max_payload == 0) o.max_payload = defaults.max_payload;
    if (o.connect_timeout_ms <= 0) o.connect_timeout_ms = defaults.connect_timeout_ms;
    if (o.command_timeout_ms <= 0) o.command_timeout_ms = defaults.command_timeout_ms;
    if (o.result_ttl_ms == 0) o.result_ttl_ms = defaults.result_ttl_ms;
    if (o.result_ttl_ms < 0 && o.result_ttl_ms != RUNQ_RESULT_TTL_NONE)
        return rq_error(RUNQ_EINVAL, "result_ttl_ms is %lld: use a positive TTL, 0 (the default) "
                        "or RUNQ_RESULT_TTL_NONE", (long long)o.result_ttl_ms);

    rq_url u;
    int rc = rq_url_parse(&u, url);
    if (rc) return rc;
    if (u.connect_timeout_ms >= 0) o.connect_timeout_ms = u.connect_timeout_ms;
    if (u.command_timeout_ms >= 0) o.command_timeout_ms = u.command_timeout_ms;

    runq_client *c = rq_calloc(1, sizeof *c);
    if (!c) {
        rq_url_clear(&u);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    c->options = o;
    rc = u.scheme == RQ_URL_MEMORY ? rq_memory_open(&c->backend, &u, &o)
                                   : rq_redis_open(&c->backend, &u, &o);
    rq_url_clear(&u);
    if (rc) {
        rq_free(c);
        return rc;
    }
    uv_mutex_init(&c->tasks_lock);
    rq_hooks_init(&c->hooks);
    *out = c;
    return 0;
}

int runq_client_add_hooks(runq_client *c, const runq_hooks *hooks) {
    rq_error_clear();
    if (!c) return rq_error(RUNQ_EINVAL, "client is NULL");
    return rq_hooks_add(&c->hooks, hooks);
}

void runq_client_close(runq_client *c) {
    if (!c) return;
    c->backend->ops->destroy(c->backend);
    rq_hooks_destroy(&c->hooks);
    for (runq_task *t = c->tasks, *next; t; t = next) {
        next = t->next;
        rq_free(t->name);
        rq_free((char *)t->options.queue);
        rq_free(t);
    }
    uv_mutex_destroy(&c->tasks_lock);
    rq_free(c);
}

const char *runq_client_backend(const runq_client *c) { return c->backend->ops->name; }

/* ---- tasks ---- */

static runq_task *task_find_locked(runq_client *c, const char *name) {
    for (runq_task *t = c->tasks; t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

runq_task *runq_task_find(runq_client *c, const char *name) {
    if (!c || !name) return NULL;
    uv_mutex_lock(&c->tasks_lock);
    runq_task *t = task_find_locked(c, name);
    uv_mutex_unlock(&c->tasks_lock);
    return t;
}

int runq_task_register(runq_task **out, runq_client *c, const char *name,
                       const runq_task_options *options) {
    rq_error_clear();
    if (out) *out = NULL;
    if (!c) return rq_error(RUNQ_EINVAL, "client is NULL");
    int rc = rq_name_check(name, "task");
    if (rc) return rc;
    runq_task_options o = RUNQ_TASK_OPTIONS_INIT;
    if (options) {
        if (options->version != RUNQ_TASK_OPTIONS_VERSION)
            return rq_error(RUNQ_EINVAL, "runq_task_options.version is %u; this library knows %d",
                            options->version, RUNQ_TASK_OPTIONS_VERSION);
        o = *options;
    }
    if (o.queue && (rc = rq_name_check(o.queue, "queue"))) return rc;
    if (o.max_retries < 0) return rq_error(RUNQ_EINVAL, "max_retries must be >= 0");
    if (o.backoff_min_ms < 0 || o.backoff_max_ms < o.backoff_min_ms)
        return rq_error(RUNQ_EINVAL, "backoff needs 0 <= min (%lld) <= max (%lld)",
                        (long long)o.backoff_min_ms, (long long)o.backoff_max_ms);
    if (!(o.backoff_factor >= 1.0) || !(o.backoff_jitter >= 0.0 && o.backoff_jitter <= 1.0))
        return rq_error(RUNQ_EINVAL, "backoff needs factor >= 1 and 0 <= jitter <= 1");
    if (o.timeout_ms < 0 || o.unique_ttl_ms <= 0)
        return rq_error(RUNQ_EINVAL, "timeout must be >= 0 and unique_ttl > 0");
    o.queue = rq_strdup(o.queue ? o.queue : DEFAULT_QUEUE);
    if (!o.queue) return rq_error(RUNQ_ENOMEM, "out of memory");

    uv_mutex_lock(&c->tasks_lock);
    runq_task *t = task_find_locked(c, name);
    if (t) { /* replace in place: pointers handed out stay valid */
        rq_free((char *)t->options.queue);
        t->options = o;
    } else if ((t = rq_calloc(1, sizeof *t)) && (t->name = rq_strdup(name))) {
        t->options = o;
        t->next = c->tasks;
        c->tasks = t;
    } else {
        rq_free(t);
        t = NULL;
    }
    uv_mutex_unlock(&c->tasks_lock);
    if (!t) {
        rq_free((char *)o.queue);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    if (out) *out = t;
    return 0;
}

/* ---- enqueue ---- */

/* Bytes of runq_enqueue_options in each published version; 0: unknown.
 * Version 1 ended with once_in_ms, version 2 with nmeta. */
static size_t enqueue_options_size(unsigned int version) {
    switch (version) {
    case 1: return offsetof(runq_enqueue_options, once_in_ms) + sizeof(int64_t);
    case 2: return offsetof(runq_enqueue_options, nmeta) + sizeof(size_t);
    case RUNQ_ENQUEUE_OPTIONS_VERSION: return sizeof(runq_enqueue_options);
    default: return 0;
    }
}

/* Per-key interval limit and unique-until-done (engineer B's block): the
 * options must make sense together. */
static int keys_options_check(const runq_enqueue_options *o) {
    if (o->rate_key && (!*o->rate_key || strlen(o->rate_key) > 1024))
        return rq_error(RUNQ_EINVAL, "rate_key must be 1 to 1024 bytes");
    if (o->rate_interval_ms < 0)
        return rq_error(RUNQ_EINVAL, "rate_interval must not be negative");
    if (o->rate_key && o->rate_interval_ms == 0)
        return rq_error(RUNQ_EINVAL, "rate_key \"%s\" needs a rate_interval > 0", o->rate_key);
    if (!o->rate_key && o->rate_interval_ms > 0)
        return rq_error(RUNQ_EINVAL, "rate_interval needs a rate_key");
    if (o->unique_until_done && !o->unique_key)
        return rq_error(RUNQ_EINVAL, "unique_until_done needs a unique_key (once_in excludes it)");
    if (o->unique_until_done && o->unique_ttl_ms > 0)
        return rq_error(RUNQ_EINVAL, "unique_until_done holds the key until the job is done or "
                                     "dead; it excludes unique_ttl");
    return 0;
}

/* The last steps of building a job (engineer C's block): record version,
 * metadata from the options, before_enqueue hooks (which see the plain
 * args and may add metadata), the metadata size limit, then compression,
 * last, so that nothing before it sees the wrapped bytes. */
static int job_finish(runq_client *c, runq_job *job, const runq_enqueue_options *o) {
    int rc;
    job->version = RQ_RECORD_VERSION;
    if (o->nmeta && !o->meta) return rq_error(RUNQ_EINVAL, "nmeta is %zu but meta is NULL", o->nmeta);
    for (size_t i = 0; i < o->nmeta; i++) {
        if (!o->meta[i].value)
            return rq_error(RUNQ_EINVAL, "metadata value of key \"%s\" is NULL",
                            o->meta[i].key ? o->meta[i].key : "(null)");
        if ((rc = rq_job_meta_put(job, o->meta[i].key, o->meta[i].value))) return rc;
    }
    if ((rc = rq_hooks_before_enqueue(&c->hooks, job))) return rc;
    rq_job_set_str(&job->error, NULL); /* a refusal message set by a hook that then agreed */
    uint8_t *buf;
    size_t len;
    if ((rc = rq_job_meta_encode(job, &buf, &len))) return rc;
    rq_free(buf);
    if (len > RUNQ_META_MAX)
        return rq_error(RUNQ_ETOOBIG, "metadata of task %s is %zu bytes encoded; the limit is %d",
                        job->task, len, RUNQ_META_MAX);
    if ((rc = rq_payload_wrap(&buf, &len, job->args, job->args_len,
                              c->options.compress_threshold)))
        return rc;
    if (buf) {
        rq_free(job->args);
        job->args = buf;
        job->args_len = len;
    }
    return 0;
}

/* Build the job record of one enqueue call: validate everything the caller
 * gave, fill in the task's defaults. */
static int job_build(runq_job **out, runq_client *c, const char *task, const void *args,
                     size_t args_len, const runq_enqueue_options *opts) {
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    int rc;
    *out = NULL;
    if (opts) {
        /* Older callers pass a shorter struct: copy only what they have,
         * the rest keeps its INIT value. */
        size_t have = enqueue_options_size(opts->version);
        if (!have)
            return rq_error(RUNQ_EINVAL, "runq_enqueue_options.version is %u; this library knows 1 to %d",
                            opts->version, RUNQ_ENQUEUE_OPTIONS_VERSION);
        memcpy(&o, opts, have);
        o.version = RUNQ_ENQUEUE_OPTIONS_VERSION;
    }
    if ((rc = rq_name_check(task, "task"))) return rc;
    if (args_len > c->options.max_payload)
        return rq_error(RUNQ_ETOOBIG, "arguments of task %s are %zu bytes; the limit is %zu",
                        task, args_len, c->options.max_payload);
    if ((rc = rq_msgpack_check(args, args_len, "arguments"))) return rc;
    if (o.delay_ms < 0 || o.eta_ms < 0 || o.ttl_ms < 0 || o.deadline_ms < 0)
        return rq_error(RUNQ_EINVAL, "delay, eta, ttl and deadline must not be negative");
    if (o.replicate < 0 || o.replicate_timeout_ms < 0)
        return rq_error(RUNQ_EINVAL, "replicate and replicate_timeout must not be negative");
    if (o.unique_key && (!*o.unique_key || strlen(o.unique_key) > 1024))
        return rq_error(RUNQ_EINVAL, "unique key must be 1 to 1024 bytes");
    if (o.once_in_ms < 0 || (o.once_in_ms > 0 && o.unique_key))
        return rq_error(RUNQ_EINVAL, "once_in must be positive and excludes unique_key");
    if ((rc = keys_options_check(&o))) return rc;

    runq_task *t = runq_task_find(c, task);
    runq_task_options defaults = RUNQ_TASK_OPTIONS_INIT;
    const runq_task_options *to = t ? &t->options : &defaults;
    const char *queue = o.queue ? o.queue : t ? to->queue : DEFAULT_QUEUE;
    if ((rc = rq_name_check(queue, "queue"))) return rc;

    runq_job *job = rq_job_new();
    if (!job) return rq_error(RUNQ_ENOMEM, "out of memory");
    rq_id_new(job->id);
    job->state = RUNQ_STATE_PENDING;
    job->max_retries = o.max_retries >= 0 ? o.max_retries : to->max_retries;
    job->priority = o.priority;
    job->eta_ms = o.eta_ms;
    job->delay_ms = o.delay_ms;
    job->ttl_ms = o.ttl_ms;
    job->deadline_ms = o.deadline_ms;
    job->timeout_ms = o.timeout_ms >= 0 ? o.timeout_ms : to->timeout_ms;
    job->unique_ttl_ms = o.unique_ttl_ms > 0 ? o.unique_ttl_ms : to->unique_ttl_ms;
    /* Once in a period: the unique key names task, args and the period's
     * bucket, so the next period gets a fresh key (docs/protocol.md). */
    char once_key[RUNQ_NAME_MAX + 64];
    if (o.once_in_ms > 0) {
        snprintf(once_key, sizeof once_key, "once:%s:%016llx:%lld", task,
                 (unsigned long long)rq_fnv1a64(args, args_len),
                 (long long)(rq_now_ms() / o.once_in_ms));
        o.unique_key = once_key;
        if (o.unique_ttl_ms <= 0) job->unique_ttl_ms = o.once_in_ms;
    }
    job->rate_interval_ms = o.rate_key ? o.rate_interval_ms : 0;
    job->unique_until_done = o.unique_until_done != 0;
    if (job->unique_until_done) job->unique_ttl_ms = 0; /* no TTL: held until done or dead */
    if (rq_job_set_str(&job->task, task) || rq_job_set_str(&job->queue, queue) ||
        rq_job_set_str(&job->unique_key, o.unique_key) ||
        rq_job_set_str(&job->rate_key, o.rate_key) ||
        rq_job_set_buf(&job->args, &job->args_len, args, args_len)) {
        rq_job_destroy(job);
        return RUNQ_ENOMEM;
    }
    if ((rc = job_finish(c, job, &o))) {
        rq_job_destroy(job);
        return rc;
    }
    *out = job;
    return 0;
}

int runq_enqueue_many(runq_client *c, runq_enqueue_item *items, size_t n) {
    rq_error_clear();
    if (!c || (!items && n)) return rq_error(RUNQ_EINVAL, "client or items is NULL");
    if (n == 0) return 0;
    runq_job **jobs = rq_calloc(n, sizeof *jobs);
    int *results = rq_calloc(n, sizeof *results);
    size_t *index = rq_calloc(n, sizeof *index); /* jobs[k] is items[index[k]] */
    int first_error = 0, rc = 0;
    char detail[512] = "";
    if (!jobs || !results || !index) {
        rc = rq_error(RUNQ_ENOMEM, "out of memory");
        goto out;
    }
    /* Build every job first; items that fail validation are reported and
     * left out, the rest go to the backend in one call (one round trip). */
    size_t nj = 0;
    int replicate = 0, replicate_timeout = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].id[0] = '\0';
        items[i].result = job_build(&jobs[nj], c, items[i].task, items[i].args, items[i].args_len,
                                    items[i].opts);
        if (items[i].result) {
            if (!first_error) {
                first_error = items[i].result;
                snprintf(detail, sizeof detail, "%s", runq_error_last());
            }
            continue;
        }
        if (items[i].opts && items[i].opts->replicate > replicate) {
            replicate = items[i].opts->replicate;
            replicate_timeout = items[i].opts->replicate_timeout_ms;
        }
        index[nj++] = i;
    }
    if (nj) {
        rc = c->backend->ops->enqueue(c->backend, jobs, results, nj, replicate, replicate_timeout);
        if (rc && rc != RUNQ_EDURABILITY) {
            for (size_t k = 0; k < nj; k++) items[index[k]].result = rc;
            goto out;
        }
        for (size_t k = 0; k < nj; k++) {
            runq_enqueue_item *it = &items[index[k]];
            it->result = results[k] ? results[k] : rc;
            if (it->result == 0 || it->result == RUNQ_EDURABILITY || it->result == RUNQ_EDUPLICATE)
                memcpy(it->id, jobs[k]->id, RUNQ_ID_SIZE);
            if (it->result && !first_error) {
                first_error = it->result;
                snprintf(detail, sizeof detail, "%s", runq_error_last());
            }
        }
    }
    rc = first_error;
    if (rc) rq_error(rc, "%s", detail);
out:
    if (jobs)
        for (size_t k = 0; k < n; k++) rq_job_destroy(jobs[k]);
    rq_free(jobs);
    rq_free(results);
    rq_free(index);
    return rc;
}

int runq_enqueue(runq_client *c, char out_id[RUNQ_ID_SIZE], const char *task, const void *args,
                 size_t args_len, const runq_enqueue_options *opts) {
    runq_enqueue_item item = {task, args, args_len, opts, "", 0};
    int rc = runq_enqueue_many(c, &item, 1);
    if (out_id) memcpy(out_id, item.id, RUNQ_ID_SIZE);
    return rc;
}

/* ---- queues and inspection ---- */

/* Version 1 of runq_queue_options ended after max_len. */
#define QUEUE_OPTIONS_V1_SIZE (offsetof(runq_queue_options, max_len) + sizeof(int64_t))

/* Queue gates: the limits must make sense together. */
static int queue_gates_check(const runq_queue_options *o) {
    if (o->rate_limit < 0 || o->concurrency_limit < 0 || o->pause_after_failures < 0)
        return rq_error(RUNQ_EINVAL, "rate_limit, concurrency_limit and pause_after_failures "
                                     "must not be negative");
    if (o->rate_limit > 0 && (o->rate_period_ms <= 0 || o->rate_burst < 0))
        return rq_error(RUNQ_EINVAL, "rate_limit needs rate_period_ms > 0 and rate_burst >= 0");
    /* The limiter works in microseconds per job: keep that at least 1. */
    if (o->rate_limit > 0 && (o->rate_period_ms > INT64_MAX / 1000 / 1024 ||
                              o->rate_limit > o->rate_period_ms * 1000 ||
                              o->rate_burst > 1000000))
        return rq_error(RUNQ_EINVAL, "rate_limit must be at most one job per microsecond of "
                                     "rate_period_ms, rate_burst at most 1000000");
    if (o->pause_after_failures > 0 &&
        (o->pause_min_ms < 1 || o->pause_max_ms < o->pause_min_ms))
        return rq_error(RUNQ_EINVAL, "pause_after_failures needs pause_min_ms >= 1 and "
                                     "pause_max_ms >= pause_min_ms");
    return 0;
}

int runq_queue_configure(runq_client *c, const char *queue, const runq_queue_options *options) {
    rq_error_clear();
    if (!c || !options) return rq_error(RUNQ_EINVAL, "client or options is NULL");
    runq_queue_options o = RUNQ_QUEUE_OPTIONS_INIT;
    if (options->version == 1) memcpy(&o, options, QUEUE_OPTIONS_V1_SIZE); /* gates off */
    else if (options->version == RUNQ_QUEUE_OPTIONS_VERSION) o = *options;
    else
        return rq_error(RUNQ_EINVAL, "runq_queue_options.version is %u; this library knows 1 to %d",
                        options->version, RUNQ_QUEUE_OPTIONS_VERSION);
    o.version = RUNQ_QUEUE_OPTIONS_VERSION;
    int rc = rq_name_check(queue, "queue");
    if (rc) return rc;
    if (o.max_len < 0) return rq_error(RUNQ_EINVAL, "max_len must not be negative");
    if ((rc = queue_gates_check(&o))) return rc;
    if (o.rate_limit > 0 && o.rate_burst == 0) /* automatic, see runq.h */
        o.rate_burst = o.rate_limit / 20 > 1 ? o.rate_limit / 20 : 1;
    return c->backend->ops->configure(c->backend, queue, &o);
}

static int queue_set_paused(runq_client *c, const char *queue, bool paused) {
    rq_error_clear();
    if (!c) return rq_error(RUNQ_EINVAL, "client is NULL");
    int rc = rq_name_check(queue, "queue");
    return rc ? rc : c->backend->ops->set_paused(c->backend, queue, paused);
}

int runq_queue_pause(runq_client *c, const char *queue) { return queue_set_paused(c, queue, true); }

int runq_queue_resume(runq_client *c, const char *queue) {
    return queue_set_paused(c, queue, false);
}

int runq_queue_stats_get(runq_queue_stats *out, runq_client *c, const char *queue) {
    rq_error_clear();
    if (!out || !c) return rq_error(RUNQ_EINVAL, "out or client is NULL");
    int rc = rq_name_check(queue, "queue");
    return rc ? rc : c->backend->ops->stats(c->backend, queue, out);
}

int runq_dead_list(char (*ids)[RUNQ_ID_SIZE], size_t *count, runq_client *c, const char *queue,
                   size_t cap) {
    rq_error_clear();
    if (!count || !c || (!ids && cap)) return rq_error(RUNQ_EINVAL, "NULL argument");
    *count = 0;
    int rc = rq_name_check(queue, "queue");
    return rc ? rc : c->backend->ops->dead_list(c->backend, queue, ids, cap, count);
}

static int id_check(const char *id) {
    if (!id || strlen(id) != RUNQ_ID_LEN)
        return rq_error(RUNQ_EINVAL, "job id must be %d characters", RUNQ_ID_LEN);
    return 0;
}

int runq_dead_retry(runq_client *c, const char *id) {
    rq_error_clear();
    if (!c) return rq_error(RUNQ_EINVAL, "client is NULL");
    int rc = id_check(id);
    return rc ? rc : c->backend->ops->dead_retry(c->backend, id);
}

/* Snapshots show plain args and results. One whose payload cannot be
 * decompressed keeps the stored bytes, so that a dead letter can still be
 * inspected (its error says why it died). */
static int snapshot_unwrap(runq_client *c, int rc, runq_job *job) {
    if (rc || !job) return rc;
    rq_payload_unwrap(&job->args, &job->args_len, c->options.max_payload);
    rq_payload_unwrap(&job->result, &job->result_len, c->options.max_payload);
    rq_error_clear();
    return 0;
}

int runq_job_get(runq_job **out, runq_client *c, const char *id) {
    rq_error_clear();
    if (!out || !c) return rq_error(RUNQ_EINVAL, "out or client is NULL");
    *out = NULL;
    int rc = id_check(id);
    if (!rc) rc = c->backend->ops->get(c->backend, id, out);
    return snapshot_unwrap(c, rc, *out);
}

int runq_job_wait(runq_job **out, runq_client *c, const char *id, int timeout_ms) {
    rq_error_clear();
    if (!out || !c) return rq_error(RUNQ_EINVAL, "out or client is NULL");
    *out = NULL;
    int rc = id_check(id);
    if (!rc) rc = c->backend->ops->wait(c->backend, id, timeout_ms, out);
    return snapshot_unwrap(c, rc, *out);
}
