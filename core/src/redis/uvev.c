/* hiredis event hooks on a libuv poll handle; see uvev.h for why. */
#include "redis/uvev.h"

#include "common.h"

typedef struct rq_ev {
    redisAsyncContext *ac; /* NULL once hiredis has freed it */
    uv_poll_t handle;
    int want;              /* UV_READABLE | UV_WRITABLE, as hiredis asked */
    int applied;           /* what the poll handle watches */
    const bool *defer;
} rq_ev;

static void ev_poll(uv_poll_t *handle, int status, int events) {
    rq_ev *e = handle->data;
    int ev = status ? e->want : events;
    if (e->ac && (ev & UV_READABLE)) redisAsyncHandleRead(e->ac);
    if (e->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

static void ev_apply(rq_ev *e) {
    if (e->want == e->applied) return;
    int rc = e->want ? uv_poll_start(&e->handle, e->want, ev_poll) : uv_poll_stop(&e->handle);
    if (rc == 0) e->applied = e->want;
}

static void ev_set(void *data, int events, bool on) {
    rq_ev *e = data;
    if (on) e->want |= events;
    else e->want &= ~events;
    if (!*e->defer) ev_apply(e);
}

static void ev_add_read(void *data) { ev_set(data, UV_READABLE, true); }
static void ev_del_read(void *data) { ev_set(data, UV_READABLE, false); }
static void ev_add_write(void *data) { ev_set(data, UV_WRITABLE, true); }
static void ev_del_write(void *data) { ev_set(data, UV_WRITABLE, false); }

static void ev_closed(uv_handle_t *handle) { rq_free(handle->data); }

/* hiredis frees the context after this. */
static void ev_cleanup(void *data) {
    rq_ev *e = data;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->handle, ev_closed);
}

int rq_ev_attach(uv_loop_t *loop, redisAsyncContext *ac, const bool *defer) {
    if (ac->ev.data) return -1;
    rq_ev *e = rq_calloc(1, sizeof *e);
    if (!e) return -1;
    if (uv_poll_init(loop, &e->handle, ac->c.fd) != 0) {
        rq_free(e);
        return -1;
    }
    e->handle.data = e;
    e->ac = ac;
    e->defer = defer;
    ac->ev.data = e;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

void rq_ev_flush(redisAsyncContext *ac, bool connected) {
    rq_ev *e = ac->ev.data;
    if (connected && (e->want & UV_WRITABLE)) {
        redisAsyncHandleWrite(ac);
        if (!e->ac) return; /* the write failed and hiredis freed ac */
    }
    ev_apply(e);
}
