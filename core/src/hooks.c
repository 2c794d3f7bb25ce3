/* Client hooks: see runq.h for the contract and the threads they run on.
 *
 * The list only grows, and a node is published with a release store after
 * it is complete, so enqueue and handler threads walk it with acquire loads
 * and no lock: hooks sit on the hot path of every job. */
#include "hooks.h"


void rq_hooks_init(rq_hook_list *l) {
    atomic_init(&l->head, NULL);
    l->tail = NULL;
    uv_mutex_init(&l->lock);
}

void rq_hooks_destroy(rq_hook_list *l) {
    rq_hook *h = atomic_load(&l->head);
    while (h) {
        rq_hook *next = atomic_load(&h->next);
        if (h->h.userdata_free) h->h.userdata_free(h->h.userdata);
        rq_free(h);
        h = next;
    }
    uv_mutex_destroy(&l->lock);
}

int rq_hooks_add(rq_hook_list *l, const runq_hooks *hooks) {
    if (!hooks) return rq_error(RUNQ_EINVAL, "hooks is NULL");
    if (hooks->version != RUNQ_HOOKS_VERSION)
        return rq_error(RUNQ_EINVAL, "runq_hooks.version is %u; this library knows %d",
                        hooks->version, RUNQ_HOOKS_VERSION);
    rq_hook *h = rq_calloc(1, sizeof *h);
    if (!h) return rq_error(RUNQ_ENOMEM, "out of memory");
    h->h = *hooks;
    atomic_init(&h->next, NULL);
    uv_mutex_lock(&l->lock);
    if (l->tail) atomic_store_explicit(&l->tail->next, h, memory_order_release);
    else atomic_store_explicit(&l->head, h, memory_order_release);
    l->tail = h;
    uv_mutex_unlock(&l->lock);
    return 0;
}

static rq_hook *first(rq_hook_list *l) {
    return atomic_load_explicit(&l->head, memory_order_acquire);
}
static rq_hook *next(rq_hook *h) {
    return atomic_load_explicit(&h->next, memory_order_acquire);
}

static int64_t mono_us(void) { return (int64_t)(uv_hrtime() / 1000); }

int rq_hooks_before_enqueue(rq_hook_list *l, runq_job *job) {
    int rc = 0;
    job->enqueuing = true;
    for (rq_hook *h = first(l); h && !rc; h = next(h)) {
        if (!h->h.before_enqueue) continue;
        rc = h->h.before_enqueue(job, h->h.userdata);
        if (!rc) continue;
        if (rc > 0 || rc < -64) rc = RUNQ_EINVAL; /* not a RUNQ_E* code */
        rq_error(rc, "enqueue of task %s refused by a hook%s%s", job->task,
                 job->error ? ": " : "", job->error ? job->error : "");
    }
    job->enqueuing = false;
    return rc;
}

void rq_hooks_before_process(rq_hook_list *l, runq_job *job) {
    job->started_us = mono_us();
    job->processed = true;
    for (rq_hook *h = first(l); h; h = next(h))
        if (h->h.before_process) h->h.before_process(job, h->h.userdata);
}

bool rq_hooks_have_after_process(rq_hook_list *l) {
    for (rq_hook *h = first(l); h; h = next(h))
        if (h->h.after_process) return true;
    return false;
}

void rq_hooks_after_process(rq_hook_list *l, runq_job *job, int settle_rc, bool released) {
    if (!job->processed) return;
    job->processed = false; /* once per delivery */
    runq_process_info info = {RUNQ_OUTCOME_LOST, NULL, mono_us() - job->started_us};
    if (settle_rc == 0) {
        if (released) info.outcome = RUNQ_OUTCOME_RELEASED;
        else if (job->state == RUNQ_STATE_DONE) info.outcome = RUNQ_OUTCOME_ACKED;
        else if (job->state == RUNQ_STATE_DEAD) info.outcome = RUNQ_OUTCOME_DEAD;
        else info.outcome = RUNQ_OUTCOME_RETRIED;
    }
    if (info.outcome == RUNQ_OUTCOME_RETRIED || info.outcome == RUNQ_OUTCOME_DEAD)
        info.error = job->error ? job->error : "failed";
    for (rq_hook *h = first(l); h; h = next(h))
        if (h->h.after_process) h->h.after_process(job, &info, h->h.userdata);
}
