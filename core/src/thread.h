#ifndef RQ_THREAD_H
#define RQ_THREAD_H

#include <uv.h>

/* uv_thread_create, with every signal blocked in the new thread (thread.c
 * says why). Returns 0, or nonzero when the thread did not start. */
int rq_thread_start(uv_thread_t *tid, void (*entry)(void *), void *arg);

#endif
