/* The I/O thread: a libuv loop owning the hiredis async context of one
 * backend's shared pipeline. See conn.h for the model; blocking requests
 * run on their callers' threads instead (blocking.c), and only their
 * interrupts pass through here. Everything below marked "I/O thread" runs
 * only there and needs no lock; the inbox, the interrupt generation and
 * each request's completion fields are guarded by conn->mu.
 *
 * Each request has its own condition variable, signalled by the I/O thread
 * when that request completes: with one shared condition, every reply woke
 * every waiting caller (16 handler threads waiting for their acks each woke
 * on each reply only to sleep again), which made the futex wake-ups, not
 * Redis, the bound on throughput. */
#include "redis/conn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis/uvev.h"
#include "thread.h"

#define TICK_MS 50           /* connect timeouts, retries, expired requests */
#define UNBLOCK_WAIT_MS 1000 /* a CLIENT UNBLOCK without effect by then: shut down instead */
#define UNBLOCK_AGAIN_MS 20  /* no effect yet: sent again (at the next tick or wake after) */

/* ---- requests ------------------------------------------------------ */

/* Timed waits use CLOCK_MONOTONIC (deadlines are mono_ms). */
static pthread_condattr_t cv_attr;
static pthread_once_t cv_attr_once = PTHREAD_ONCE_INIT;
static void cv_attr_init(void) {
    pthread_condattr_init(&cv_attr);
    pthread_condattr_setclock(&cv_attr, CLOCK_MONOTONIC);
}

rq_req *rq_req_new(size_t hint, int flags) {
    rq_req *req = rq_calloc(1, sizeof *req);
    if (!req) return NULL;
    req->cap = hint ? hint : 1;
    req->cmds = rq_calloc(req->cap, sizeof *req->cmds);
    if (!req->cmds) {
        rq_free(req);
        return NULL;
    }
    pthread_once(&cv_attr_once, cv_attr_init);
    if (pthread_cond_init(&req->cv, &cv_attr) != 0) {
        rq_free(req->cmds);
        rq_free(req);
        return NULL;
    }
    req->flags = flags;
    req->refs = 1;
    return req;
}

size_t rq_req_count(const rq_req *req) { return req->ncmd; }

void rq_req_set_gen(rq_req *req, unsigned gen) {
    req->gen = gen;
    req->gen_set = true;
}

static size_t dec_len(size_t v) {
    size_t n = 1;
    while (v >= 10) v /= 10, n++;
    return n;
}

/* "<c><v>\r\n" at p; returns the end. */
static char *put_count(char *p, char c, size_t v) {
    *p++ = c;
    p += rq_fmt_u64(p, v);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static size_t bulk_size(size_t n) { return 1 + dec_len(n) + 2 + n + 2; }

/* One bulk string of the n parts at p, back to back; returns the end. */
static char *put_bulk(char *p, size_t n, const void *const *parts, const size_t *lens) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += lens[i];
    p = put_count(p, '$', total);
    for (size_t i = 0; i < n; i++) {
        if (lens[i]) memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

void rq_resp_argn(rq_resp *b, size_t n, const void *const *parts, const size_t *lens) {
    if (b->oom) return;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += lens[i];
    size_t need = b->len + bulk_size(total);
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *q = rq_realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    b->len = (size_t)(put_bulk(b->p + b->len, n, parts, lens) - b->p);
    b->argc++;
}

void rq_resp_arg(rq_resp *b, const void *p, size_t n) { rq_resp_argn(b, 1, &p, &n); }

void rq_resp_clear(rq_resp *b) {
    rq_free(b->p);
    memset(b, 0, sizeof *b);
}

int rq_req_add(rq_req *req, int argc, const char *const *argv, const size_t *lens,
               const rq_resp *tail) {
    if (tail && tail->oom) return rq_error(RUNQ_ENOMEM, "out of memory building a redis command");
    if (req->ncmd == req->cap) {
        rq_cmd *n = rq_realloc(req->cmds, req->cap * 2 * sizeof *n);
        if (!n) return rq_error(RUNQ_ENOMEM, "out of memory building a redis command");
        req->cmds = n;
        req->cap *= 2;
    }
    size_t total = (size_t)argc + (tail ? (size_t)tail->argc : 0);
    size_t size = 1 + dec_len(total) + 2 + (tail ? tail->len : 0);
    for (int i = 0; i < argc; i++) size += bulk_size(lens ? lens[i] : strlen(argv[i]));
    char *buf = rq_malloc(size);
    if (!buf) return rq_error(RUNQ_ENOMEM, "out of memory building a redis command");
    char *p = put_count(buf, '*', total);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        const void *part = argv[i];
        p = put_bulk(p, 1, &part, &n);
    }
    if (tail && tail->len) memcpy(p, tail->p, tail->len);
    req->cmds[req->ncmd++] = (rq_cmd){buf, size};
    return 0;
}

int rq_req_addv(rq_req *req, int argc, const char *const *argv) {
    return rq_req_add(req, argc, argv, NULL, NULL);
}

const rq_reply *rq_req_reply(const rq_req *req, size_t i) {
    return req->replies && i < req->nreplied ? req->replies[i] : NULL;
}

rq_reply *rq_req_take_reply(rq_req *req, size_t i) {
    if (!req->replies || i >= req->nreplied) return NULL;
    rq_reply *r = req->replies[i];
    req->replies[i] = NULL;
    return r;
}

static void req_free(rq_req *req) {
    for (size_t i = 0; i < req->ncmd; i++) rq_free(req->cmds[i].buf);
    rq_free(req->cmds);
    if (req->replies)
        for (size_t i = 0; i < req->nreplied; i++) rq_reply_free(req->replies[i]);
    rq_free(req->replies);
    pthread_cond_destroy(&req->cv);
    rq_free(req);
}

void rq_req_release(rq_conn *c, rq_req *req) {
    if (!req) return;
    if (!c) {
        req_free(req);
        return;
    }
    pthread_mutex_lock(&c->mu);
    bool last = --req->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) req_free(req);
}

/* ---- I/O thread helpers ------------------------------------------- */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RUNQ_REDIS_TRACE=1 prints connection state changes to stderr. Read once,
 * before any I/O thread starts reading it. */
static bool trace_flag;
static uv_once_t trace_once = UV_ONCE_INIT;
static void trace_init(void) { trace_flag = getenv("RUNQ_REDIS_TRACE") != NULL; }
bool rq_conn_trace(void) { return trace_flag; }

void rq_conn_set_err(rq_conn *c, const char *what, const char *detail) {
    if (trace_flag) fprintf(stderr, "runq redis: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    pthread_mutex_lock(&c->mu);
    snprintf(c->last_err, sizeof c->last_err, "%s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
    pthread_mutex_unlock(&c->mu);
}

/* Hand the result to the waiting caller (or free it if the caller left). */
static void req_complete(rq_conn *c, rq_req *req, int status, const char *msg) {
    pthread_mutex_lock(&c->mu);
    req->status = status;
    if (msg) snprintf(req->msg, sizeof req->msg, "%s", msg);
    req->done = true;
    bool last = --req->refs == 0;
    /* Under the lock: once it is released the caller may free the request.
     * Only its caller waits on req->cv, so one signal is enough. */
    pthread_cond_signal(&req->cv);
    pthread_mutex_unlock(&c->mu);
    if (last) req_free(req);
}

static bool req_abandoned(rq_conn *c, rq_req *req) {
    pthread_mutex_lock(&c->mu);
    bool a = req->abandoned;
    pthread_mutex_unlock(&c->mu);
    return a;
}

static void list_push(rq_req **head, rq_req **tail, rq_req *req) {
    req->next = NULL;
    if (*tail) (*tail)->next = req;
    else *head = req;
    *tail = req;
}

static rq_req *list_pop(rq_req **head, rq_req **tail) {
    rq_req *req = *head;
    if (req) {
        *head = req->next;
        if (!*head) *tail = NULL;
        req->next = NULL;
    }
    return req;
}

/* Account one reply (NULL: lost with the connection). True once complete. */
static bool req_take_reply(rq_req *req, redisReply *r) {
    if (!req->replies) {
        req->replies = rq_calloc(req->ncmd, sizeof *req->replies);
        if (!req->replies) req->oom = true;
    }
    rq_reply *copy = NULL;
    if (!r) req->lost = true;
    else if (!(copy = rq_reply_copy(r))) req->oom = true;
    if (req->replies) req->replies[req->nreplied] = copy;
    else rq_reply_free(copy);
    req->nreplied++;
    return req->nreplied == req->ncmd;
}

static void req_finish(rq_conn *c, rq_req *req) {
    if (c->closing) req_complete(c, req, RUNQ_ECLOSED, "the redis client is closing");
    else if (req->oom) req_complete(c, req, RUNQ_ENOMEM, "out of memory copying a redis reply");
    else if (req->lost)
        req_complete(c, req, RUNQ_EIO,
                     "the connection to redis was lost before the reply came; "
                     "the command may or may not have run");
    else req_complete(c, req, 0, NULL);
}

/* Queue the commands of req on ac; returns how many hiredis took (fewer
 * when the context is going away). Those taken will each call back. */
static size_t send_cmds(redisAsyncContext *ac, rq_req *req, redisCallbackFn *fn, void *priv) {
    for (size_t i = 0; i < req->ncmd; i++) {
        if (redisAsyncFormattedCommand(ac, fn, priv, req->cmds[i].buf, req->cmds[i].len) !=
            REDIS_OK)
            return i;
    }
    return req->ncmd;
}

static void handshake_cb(redisAsyncContext *ac, void *reply, void *priv) {
    rq_conn *c = priv;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR) rq_conn_set_err(c, "redis rejected the handshake", r->str);
}

/* AUTH and SELECT go first on every new connection; later commands queue
 * behind them on the same socket, so nothing has to wait for their replies. */
static void send_handshake(rq_conn *c, redisAsyncContext *ac) {
    if (c->password) {
        const char *argv[3] = {"AUTH", c->user ? c->user : c->password, c->password};
        redisAsyncCommandArgv(ac, handshake_cb, c, c->user ? 3 : 2, argv, NULL);
    }
    if (c->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->db);
        const char *argv[2] = {"SELECT", db};
        redisAsyncCommandArgv(ac, handshake_cb, c, 2, argv, NULL);
    }
}

static void schedule_retry(rq_conn *c) {
    c->next_attempt = mono_ms() + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > RQ_BACKOFF_MAX_MS ? RQ_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static redisAsyncContext *start_connect(rq_conn *c) {
    redisAsyncContext *ac = c->path ? redisAsyncConnectUnix(c->path)
                                    : redisAsyncConnect(c->host, c->port);
    if (!ac) {
        rq_conn_set_err(c, "cannot connect to redis", "out of memory");
        return NULL;
    }
    if (ac->err) {
        rq_conn_set_err(c, "cannot connect to redis", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    if (rq_ev_attach(&c->loop, ac, &c->queuing) != 0) {
        rq_conn_set_err(c, "cannot connect to redis", "event loop attach failed");
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* ---- the main (pipelined) connection ------------------------------ */

static void main_cb(redisAsyncContext *ac, void *reply, void *priv) {
    rq_conn *c = ac->data;
    rq_req *req = priv;
    if (req_take_reply(req, reply)) req_finish(c, req);
}

static void main_flush(rq_conn *c) {
    rq_req *req;
    while (c->state == CS_READY && (req = list_pop(&c->wait_head, &c->wait_tail))) {
        if (req_abandoned(c, req)) {
            req_complete(c, req, RUNQ_ETIMEOUT, NULL);
            continue;
        }
        size_t sent = send_cmds(c->ac, req, main_cb, req);
        /* Commands hiredis refused (the context is going away) will never
         * call back: count them as lost now. */
        bool complete = false;
        for (size_t i = sent; i < req->ncmd; i++) complete = req_take_reply(req, NULL);
        if (complete) req_finish(c, req);
    }
}

static void main_on_connect(const redisAsyncContext *cac, int status) {
    rq_conn *c = cac->data;
    if (c->ac != cac) return;
    if (status != REDIS_OK) {
        rq_conn_set_err(c, "cannot connect to redis", cac->errstr);
        c->ac = NULL; /* hiredis frees it after this callback */
        c->state = CS_DOWN;
        schedule_retry(c);
        return;
    }
    c->state = CS_READY;
    c->backoff_ms = RQ_BACKOFF_MIN_MS;
    if (rq_conn_trace()) fprintf(stderr, "runq redis: connected\n");
    send_handshake(c, c->ac);
    main_flush(c);
}

static void main_on_disconnect(const redisAsyncContext *cac, int status) {
    rq_conn *c = cac->data;
    (void)status;
    if (c->ac != cac) return;
    c->ac = NULL;
    c->state = CS_DOWN;
    if (!c->closing) {
        rq_conn_set_err(c, "connection to redis lost", cac->errstr[0] ? cac->errstr : NULL);
        /* The first attempt after losing an established link is quick. */
        c->next_attempt = mono_ms();
    }
}

static void main_connect(rq_conn *c) {
    redisAsyncContext *ac = start_connect(c);
    if (!ac) {
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = CS_CONNECTING;
    if (rq_conn_trace()) fprintf(stderr, "runq redis: connecting (fd %d)\n", ac->c.fd);
    c->connect_deadline = mono_ms() + c->connect_timeout_ms;
    redisAsyncSetConnectCallback(ac, main_on_connect);
    redisAsyncSetDisconnectCallback(ac, main_on_disconnect);
}

/* ---- the loop ------------------------------------------------------ */

static void shutdown_all(rq_conn *c) {
    c->closing = true;
    rq_req *req;
    while ((req = list_pop(&c->wait_head, &c->wait_tail)))
        req_complete(c, req, RUNQ_ECLOSED, "the redis client is closing");
    /* Freeing the context runs its pending callbacks with a NULL reply,
     * which completes their requests with RUNQ_ECLOSED. */
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        redisAsyncFree(ac);
        c->ac = NULL;
    }
    uv_close((uv_handle_t *)&c->wake, NULL);
    uv_close((uv_handle_t *)&c->tick, NULL);
}

static void drop_expired(rq_conn *c, rq_req **head, rq_req **tail, int64_t now) {
    rq_req *keep_h = NULL, *keep_t = NULL, *req;
    while ((req = list_pop(head, tail))) {
        if (req_abandoned(c, req) || (req->deadline && now > req->deadline))
            req_complete(c, req, RUNQ_ETIMEOUT, NULL);
        else list_push(&keep_h, &keep_t, req);
    }
    *head = keep_h;
    *tail = keep_t;
}

static void unblock_cb(redisAsyncContext *ac, void *reply, void *priv) {
    rq_conn *c = priv;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR) c->no_unblock = true;
}

/* Interrupts of blocking requests (blocking.c runs them on their callers'
 * threads). One whose first reply came is past its wait: what follows it
 * (a fetch) does not block, and its reply must not be lost, so it finishes.
 * One still blocked is ended by CLIENT UNBLOCK on the main connection: the
 * wait then returns as timed out and the rest of the request runs and
 * replies, so a fetch the server ran meanwhile hands its jobs to the
 * caller. Shutting the socket down would drop that reply: a fetch that ran
 * just before would lease jobs nobody takes until their leases expire. The
 * shutdown stays the fallback when the id is unknown, the main connection
 * is down, the server refuses the command (ACL), or it had no effect within
 * UNBLOCK_WAIT_MS. A caller still dialling or backing off sees the new
 * generation itself (rq_conn_interrupt wakes it).
 *
 * The UNBLOCK is sent again, UNBLOCK_AGAIN_MS or more after the last (at
 * the next tick or wake-up of this thread), until the request is past its
 * wait: it can reach the server before the command it is meant to
 * end. The caller checks the generation, then writes on its own connection,
 * and Redis reads two connections in no fixed order; an UNBLOCK that finds
 * the client not blocked yet does nothing. With one UNBLOCK, that stop
 * waited out UNBLOCK_WAIT_MS for the shutdown: about 1 stop in 500 in a
 * loop of worker starts and stops. A late repeat that finds the connection
 * already serving the caller's next request ends that wait early, which
 * the fetch loop takes as a timed-out wait. */
static void end_interrupted(rq_conn *c, unsigned gen, int64_t now) {
    pthread_mutex_lock(&c->mu);
    for (rq_live *l = c->live; l; l = l->next) {
        rq_req *req = l->req;
        if (!(req->flags & RQ_REQ_INTERRUPTIBLE) || req->gen == gen || !l->s || l->past_wait ||
            l->cut)
            continue;
        if (!c->no_unblock && l->s->client_id && c->state == CS_READY && c->ac) {
            if (!l->unblock_sent || now - l->unblock_last >= UNBLOCK_AGAIN_MS) {
                redisAsyncCommand(c->ac, unblock_cb, c, "CLIENT UNBLOCK %lld", l->s->client_id);
                if (!l->unblock_sent) l->unblock_sent = now;
                l->unblock_last = now;
            }
            if (now - l->unblock_sent < UNBLOCK_WAIT_MS) continue;
        }
        rq_live_cut(l);
    }
    pthread_mutex_unlock(&c->mu);
}

static void dispatch_queue(rq_conn *c) {
    pthread_mutex_lock(&c->mu);
    rq_req *in = c->inbox_head;
    c->inbox_head = c->inbox_tail = NULL;
    bool stopping = c->stopping;
    unsigned gen = c->gen;
    pthread_mutex_unlock(&c->mu);

    while (in) {
        rq_req *next = in->next;
        list_push(&c->wait_head, &c->wait_tail, in);
        in = next;
    }
    if (stopping) {
        if (!c->closing) shutdown_all(c);
        return;
    }

    int64_t now = mono_ms();
    end_interrupted(c, gen, now);
    if (c->state != CS_READY) drop_expired(c, &c->wait_head, &c->wait_tail, now);

    /* Connection timeouts (hiredis 0.14 has no async connect timeout). */
    if (c->state == CS_CONNECTING && now > c->connect_deadline) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        c->state = CS_DOWN;
        rq_conn_set_err(c, "cannot connect to redis", "connect timeout");
        redisAsyncFree(ac);
        schedule_retry(c);
    }
    if (c->state == CS_DOWN && now >= c->next_attempt) main_connect(c);
    main_flush(c);
}

/* Take the inbox, queue its commands, then write them in the same turn of
 * the loop: a request costs no epoll_ctl and no wait for a writable event
 * unless the socket is full. A write that fails frees its context (its
 * disconnect callback clears the pointer, so the next one is read after). */
static void dispatch(rq_conn *c) {
    c->queuing = true;
    dispatch_queue(c);
    c->queuing = false;
    if (c->ac) rq_ev_flush(c->ac, c->state == CS_READY);
}

static void on_wake(uv_async_t *h) { dispatch(h->data); }
static void on_tick(uv_timer_t *h) { dispatch(h->data); }

static void io_thread(void *arg) {
    rq_conn *c = arg;
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

/* ---- public -------------------------------------------------------- */

static void conn_free(rq_conn *c) {
    pthread_cond_destroy(&c->live_gone);
    pthread_mutex_destroy(&c->mu);
    rq_free(c->host);
    rq_free(c->path);
    rq_free(c->user);
    rq_free(c->password);
    rq_free(c);
}

int rq_conn_open(rq_conn **out, const rq_conn_config *cfg) {
    uv_once(&trace_once, trace_init);
    rq_conn *c = rq_calloc(1, sizeof *c);
    if (!c) return rq_error(RUNQ_ENOMEM, "out of memory opening redis");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->live_gone, NULL);
    c->host = rq_strdup(cfg->host);
    c->path = rq_strdup(cfg->path);
    c->user = rq_strdup(cfg->user);
    c->password = rq_strdup(cfg->password);
    if ((cfg->host && !c->host) || (cfg->path && !c->path) || (cfg->user && !c->user) ||
        (cfg->password && !c->password)) {
        conn_free(c);
        return rq_error(RUNQ_ENOMEM, "out of memory opening redis");
    }
    c->port = cfg->port;
    c->db = cfg->db;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 2000;
    c->backoff_ms = c->sbackoff_ms = RQ_BACKOFF_MIN_MS;
    snprintf(c->last_err, sizeof c->last_err, "not connected yet");

    int rc = uv_loop_init(&c->loop);
    if (rc == 0 && (rc = uv_async_init(&c->loop, &c->wake, on_wake)) != 0) uv_loop_close(&c->loop);
    if (rc != 0) {
        conn_free(c);
        return rq_error(RUNQ_EIO, "cannot start the redis event loop: %s", uv_strerror(rc));
    }
    c->wake.data = c;
    uv_timer_init(&c->loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    /* Connect eagerly so that the first call does not pay for it. */
    main_connect(c);
    rc = rq_thread_start(&c->thread, io_thread, c);
    if (rc != 0) {
        /* The loop never ran: close what was opened and spin it down. */
        shutdown_all(c);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        conn_free(c);
        return rq_error(RUNQ_EIO, "cannot start the redis I/O thread: %s", uv_strerror(rc));
    }
    *out = c;
    return 0;
}

void rq_conn_close(rq_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    uv_async_send(&c->wake);
    pthread_mutex_unlock(&c->mu);
    rq_blocking_close(c);
    uv_thread_join(&c->thread);
    uv_loop_close(&c->loop);
    conn_free(c);
}

int rq_req_outcome(rq_conn *c, rq_req *req, int timeout_ms) {
    int status;
    char msg[sizeof req->msg + sizeof c->last_err + 64];
    msg[0] = '\0';
    if (req->done) {
        status = req->status;
        if (status < 0) {
            if (req->msg[0]) snprintf(msg, sizeof msg, "%s", req->msg);
            else snprintf(msg, sizeof msg, "no reply from redis within %d ms (%s)", timeout_ms,
                          c->last_err);
        }
    } else {
        req->abandoned = true;
        status = RUNQ_ETIMEOUT;
        snprintf(msg, sizeof msg, "no reply from redis within %d ms (last connection state: %s)",
                 timeout_ms, c->last_err);
    }
    pthread_mutex_unlock(&c->mu);
    if (status < 0) return rq_error(status, "%s", msg);
    return status;
}

int rq_conn_exec(rq_conn *c, rq_req *req, int timeout_ms) {
    if (req->flags & RQ_REQ_BLOCKING) return rq_blocking_exec(c, req, timeout_ms);
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        return rq_error(RUNQ_ECLOSED, "the redis client is closing");
    }
    int64_t start = mono_ms();
    req->deadline = timeout_ms >= 0 ? start + timeout_ms : 0;
    if (!req->gen_set) req->gen = c->gen;
    req->refs++; /* the I/O thread's hold */
    req->next = NULL;
    if (c->inbox_tail) c->inbox_tail->next = req;
    else c->inbox_head = req;
    c->inbox_tail = req;
    /* Sent under the lock so that close cannot tear the handle down between
     * our check of `stopping` and this call. */
    uv_async_send(&c->wake);

    while (!req->done) {
        if (!req->deadline) {
            pthread_cond_wait(&req->cv, &c->mu);
            continue;
        }
        struct timespec ts = {(time_t)(req->deadline / 1000), (long)(req->deadline % 1000) * 1000000L};
        if (pthread_cond_timedwait(&req->cv, &c->mu, &ts) == ETIMEDOUT && !req->done) break;
    }
    return rq_req_outcome(c, req, timeout_ms);
}

void rq_conn_interrupt(rq_conn *c) {
    pthread_mutex_lock(&c->mu);
    c->gen++;
    /* Blocking requests dialling or backing off check the generation. */
    for (rq_live *l = c->live; l; l = l->next) pthread_cond_signal(&l->req->cv);
    if (!c->stopping) uv_async_send(&c->wake);
    pthread_mutex_unlock(&c->mu);
}

unsigned rq_conn_interrupt_gen(rq_conn *c) {
    pthread_mutex_lock(&c->mu);
    unsigned g = c->gen;
    pthread_mutex_unlock(&c->mu);
    return g;
}
