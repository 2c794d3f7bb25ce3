/* Client hooks (runq.h, "Hooks"): an append-only list read without locks,
 * because hooks run on every enqueue and every job. */
#ifndef RUNQ_HOOKS_H
#define RUNQ_HOOKS_H

#include "job.h"

#include <stdatomic.h>
#include <uv.h>

typedef struct rq_hook {
    runq_hooks h;
    _Atomic(struct rq_hook *) next;
} rq_hook;

typedef struct rq_hook_list {
    _Atomic(rq_hook *) head; /* readers walk head..next with acquire loads */
    rq_hook *tail;           /* guarded by lock (writers only) */
    uv_mutex_t lock;
} rq_hook_list;

void rq_hooks_init(rq_hook_list *l);
/* Call every userdata_free, free the list. No hook may be running. */
void rq_hooks_destroy(rq_hook_list *l);
int rq_hooks_add(rq_hook_list *l, const runq_hooks *hooks);

/* Run the before_enqueue hooks on a job being built; the first refusal
 * stops the walk and is returned with the detail set. */
int rq_hooks_before_enqueue(rq_hook_list *l, runq_job *job);
/* Stamp the job's start and run the before_process hooks. */
void rq_hooks_before_process(rq_hook_list *l, runq_job *job);
/* Whether any after_process hook is installed. */
bool rq_hooks_have_after_process(rq_hook_list *l);
/* Once per delivery that ran before_process: the outcome follows from the
 * settle's return code and the job's state after it. */
void rq_hooks_after_process(rq_hook_list *l, runq_job *job, int settle_rc, bool released);

#endif
