/* hiredis async contexts on a libuv loop: the event hooks hiredis calls to
 * ask for read and write readiness. Used by conn.c on the I/O thread only.
 *
 * Why not the adapter hiredis ships: each of its hooks calls uv_poll_start,
 * which on Linux removes the descriptor from epoll and adds it again, and
 * hiredis asks for read interest after every write: three to four epoll_ctl
 * calls and an extra loop turn per request. Here a hook only records the
 * interest; it is applied when it differs from what is in force, and while
 * the owner queues commands (`*defer` true) not at all: the owner then
 * writes at once with rq_ev_flush, so that only what the socket did not
 * take waits for a writable event. hiredis 0.14's adapter also ignored a
 * poll error, leaving a reset connection unnoticed; here the error is handed
 * to hiredis as the events it waits for, so its read or write fails and it
 * disconnects. */
#ifndef RQ_REDIS_UVEV_H
#define RQ_REDIS_UVEV_H

#include <stdbool.h>

#include <hiredis/async.h>
#include <uv.h>

/* Install the hooks on ac (a context not yet attached anywhere). defer
 * points at a flag of the owner's that outlives the context. The hooks'
 * state is freed by libuv's close callback after hiredis frees ac. 0 or -1
 * (out of memory, or libuv refused the socket). */
int rq_ev_attach(uv_loop_t *loop, redisAsyncContext *ac, const bool *defer);

/* Write what ac has queued now (when it asked to write and is connected:
 * before that, hiredis takes writability for a finished connect), then
 * apply its interest. ac may be freed by this call (a failed write disconnects it:
 * its disconnect callback runs first); the caller must look it up again.
 * Not from inside a hiredis callback. */
void rq_ev_flush(redisAsyncContext *ac, bool connected);

#endif
