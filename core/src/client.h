/* Client and task internals shared with the worker. */
#ifndef RUNQ_CLIENT_H
#define RUNQ_CLIENT_H

#include "backend.h"
#include "hooks.h"

#include <uv.h>

struct runq_task {
    char *name;
    runq_task_options options; /* options.queue is an owned copy */
    struct runq_task *next;
};

struct runq_client {
    runq_backend *backend;
    runq_client_options options;
    uv_mutex_t tasks_lock; /* guards the task list */
    runq_task *tasks;
    rq_hook_list hooks;    /* runq_client_add_hooks */
};

/* The delay before the retry that follows failed attempt `attempt` (1-based):
 * min * factor^(attempt-1), capped at max, varied by +/- jitter. */
int64_t rq_backoff_delay(const runq_task_options *options, int attempt);

#endif
