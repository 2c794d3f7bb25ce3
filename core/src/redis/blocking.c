/* Blocking requests (BZPOPMIN with the fetch behind it, BLPOP, WAIT) run on
 * their caller's thread, on a synchronous hiredis connection the caller
 * holds for the length of the request, taken from a pool.
 *
 * Why not on the I/O thread with the shared pipeline: the caller blocks
 * anyway, and an idle worker's wake-up is the latency path of every job
 * sent to it. Through the I/O thread, the reply woke the I/O thread, which
 * copied it and woke the caller: two thread wake-ups where one does, and
 * each can wait behind other work on a busy CPU (bench/README, "What bounds
 * latency p99"). Here the socket wakes the caller itself.
 *
 * What stays the same as on the pipeline: a request waits for a connection
 * (dialling with capped backoff) until its deadline; one lost before any
 * reply is sent again on a new connection if flagged RQ_REQ_REISSUE, and
 * fails with RUNQ_EIO otherwise. Interrupts and close reach a request
 * through conn->live: the I/O thread sends CLIENT UNBLOCK for it, or shuts
 * its socket down (conn.c, end_interrupted); one dialling or backing off is
 * woken through its condition variable and sees the new generation.
 *
 * SIGPIPE: the caller's thread may be an application's with SIGPIPE at its
 * default action, unlike the engine's threads (thread.c). It is safe here
 * without blocking it: a request's commands are small and go out in one
 * write, and the read after it reports a closed or reset connection, so no
 * second write meets the reset that raises SIGPIPE (tests/c/
 * test_redis_fault.c drops connections under a pull worker to check). */
#include "redis/conn_int.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#define MAX_IDLE 64 /* idle connections kept for the next request */

static struct timeval tv_ms(int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* A new connection with AUTH and SELECT done and its CLIENT ID known, or
 * NULL (the reason is in c->last_err). Bounded by the connect timeout and
 * the request's deadline (0: none). */
static rq_sconn *dial(rq_conn *c, int64_t deadline) {
    int64_t left = c->connect_timeout_ms;
    if (deadline && deadline - rq_mono_ms() < left) left = deadline - rq_mono_ms();
    if (left < 1) left = 1;
    struct timeval tv = tv_ms(left);
    rq_sconn *s = rq_calloc(1, sizeof *s);
    redisContext *ctx = NULL;
    if (s) ctx = c->path ? redisConnectUnixWithTimeout(c->path, tv)
                         : redisConnectWithTimeout(c->host, c->port, tv);
    if (!ctx) {
        rq_conn_set_err(c, "cannot connect to redis", "out of memory");
        rq_free(s);
        return NULL;
    }
    s->ctx = ctx;
    if (ctx->err || redisSetTimeout(ctx, tv) != REDIS_OK) goto fail;
    /* One round trip for the three. A rejected AUTH or SELECT is recorded
     * and the connection kept, as on the pipeline: the commands then fail
     * with the server's reason (NOAUTH), which says more than a refusal. */
    char db[16];
    snprintf(db, sizeof db, "%d", c->db);
    const char *auth[3] = {"AUTH", c->user ? c->user : c->password, c->password};
    const char *select[2] = {"SELECT", db};
    const char *id[2] = {"CLIENT", "ID"};
    int n = 0;
    if (c->password && redisAppendCommandArgv(ctx, c->user ? 3 : 2, auth, NULL) == REDIS_OK) n++;
    if (c->db && redisAppendCommandArgv(ctx, 2, select, NULL) == REDIS_OK) n++;
    if (redisAppendCommandArgv(ctx, 2, id, NULL) == REDIS_OK) n++;
    for (int i = 0; i < n; i++) {
        void *v = NULL;
        if (redisGetReply(ctx, &v) != REDIS_OK || !v) goto fail;
        redisReply *r = v;
        if (r->type == REDIS_REPLY_ERROR) rq_conn_set_err(c, "redis rejected the handshake", r->str);
        if (i == n - 1 && r->type == REDIS_REPLY_INTEGER) s->client_id = r->integer;
        freeReplyObject(r);
    }
    return s;
fail:
    rq_conn_set_err(c, "cannot connect to redis", ctx->errstr[0] ? ctx->errstr : "handshake failed");
    redisFree(ctx);
    rq_free(s);
    return NULL;
}

static void sconn_free(rq_sconn *s) {
    redisFree(s->ctx);
    rq_free(s);
}

/* Send every command of req on s and read every reply into req. False when
 * the connection failed (it is then unusable); a reply that could not be
 * copied sets req->oom and the rest are still read, so s stays in step. */
static bool run_on(rq_conn *c, rq_live *live, rq_sconn *s, rq_req *req) {
    redisContext *ctx = s->ctx;
    int64_t left = 0; /* no limit */
    if (req->deadline) {
        left = req->deadline - rq_mono_ms();
        if (left < 1) left = 1;
    }
    if (redisSetTimeout(ctx, tv_ms(left)) != REDIS_OK) return false;
    for (size_t i = 0; i < req->ncmd; i++)
        if (redisAppendFormattedCommand(ctx, req->cmds[i].buf, req->cmds[i].len) != REDIS_OK)
            return false;
    while (req->nreplied < req->ncmd) {
        void *r = NULL;
        if (redisGetReply(ctx, &r) != REDIS_OK || !r) return false;
        rq_reply *copy = rq_reply_copy(r);
        freeReplyObject(r);
        if (!copy) req->oom = true;
        req->replies[req->nreplied++] = copy;
        if (req->nreplied == 1) {
            pthread_mutex_lock(&c->mu);
            live->past_wait = true;
            pthread_mutex_unlock(&c->mu);
        }
    }
    return true;
}

/* Under mu. */
static void finish(rq_req *req, int status, const char *msg) {
    req->done = true;
    req->status = status;
    if (msg) snprintf(req->msg, sizeof req->msg, "%s", msg);
}

/* Under mu: whether the caller should stop before sending (and finish says
 * why). */
static bool ended(rq_conn *c, rq_req *req) {
    if (req->done) return true;
    if (c->stopping) finish(req, RUNQ_ECLOSED, "the redis client is closing");
    else if ((req->flags & RQ_REQ_INTERRUPTIBLE) && req->gen != c->gen)
        finish(req, RQ_INTERRUPTED, NULL);
    return req->done;
}

/* Under mu: wait out the dialling backoff (or less: an interrupt, a close,
 * the deadline). */
static void back_off(rq_conn *c, rq_req *req) {
    int64_t until = rq_mono_ms() + c->sbackoff_ms;
    if (req->deadline && req->deadline < until) until = req->deadline;
    c->sbackoff_ms = c->sbackoff_ms * 2 > RQ_BACKOFF_MAX_MS ? RQ_BACKOFF_MAX_MS : c->sbackoff_ms * 2;
    struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
    pthread_cond_timedwait(&req->cv, &c->mu, &ts);
}

int rq_blocking_exec(rq_conn *c, rq_req *req, int timeout_ms) {
    req->replies = rq_calloc(req->ncmd ? req->ncmd : 1, sizeof *req->replies);
    if (!req->replies) return rq_error(RUNQ_ENOMEM, "out of memory for redis replies");
    rq_live live = {.req = req};
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        return rq_error(RUNQ_ECLOSED, "the redis client is closing");
    }
    req->deadline = timeout_ms >= 0 ? rq_mono_ms() + timeout_ms : 0;
    if (!req->gen_set) req->gen = c->gen;
    live.next = c->live;
    c->live = &live;
    while (!ended(c, req)) {
        if (req->deadline && rq_mono_ms() >= req->deadline) break; /* timed out */
        rq_sconn *s = c->idle;
        if (s) {
            c->idle = s->next;
            c->nidle--;
        } else {
            pthread_mutex_unlock(&c->mu);
            s = dial(c, req->deadline);
            pthread_mutex_lock(&c->mu);
            if (!s) {
                back_off(c, req);
                continue;
            }
            c->sbackoff_ms = RQ_BACKOFF_MIN_MS;
        }
        if (ended(c, req)) {
            s->next = c->idle; /* unused: the next request takes it */
            c->idle = s;
            c->nidle++;
            break;
        }
        live.s = s;
        live.past_wait = live.cut = false;
        live.unblock_sent = 0;
        pthread_mutex_unlock(&c->mu);

        bool ok = run_on(c, &live, s, req);

        pthread_mutex_lock(&c->mu);
        live.s = NULL;
        if (ok) {
            bool keep = !c->stopping && c->nidle < MAX_IDLE;
            if (keep) {
                s->next = c->idle;
                c->idle = s;
                c->nidle++;
            }
            if (req->oom) finish(req, RUNQ_ENOMEM, "out of memory copying a redis reply");
            else finish(req, 0, NULL);
            if (!keep) {
                pthread_mutex_unlock(&c->mu);
                sconn_free(s);
                pthread_mutex_lock(&c->mu);
            }
            break;
        }
        bool cut = live.cut;
        pthread_mutex_unlock(&c->mu);
        if (!cut)
            rq_conn_set_err(c, "connection to redis lost",
                            s->ctx->errstr[0] ? s->ctx->errstr : NULL);
        sconn_free(s);
        pthread_mutex_lock(&c->mu);
        if (cut && req->nreplied == 0) {
            finish(req, c->stopping ? RUNQ_ECLOSED : RQ_INTERRUPTED,
                   c->stopping ? "the redis client is closing" : NULL);
            break;
        }
        if (req->deadline && rq_mono_ms() >= req->deadline) break; /* timed out */
        if (req->nreplied == 0 && (req->flags & RQ_REQ_REISSUE)) continue;
        if (!c->stopping)
            finish(req, RUNQ_EIO,
                   "the connection to redis was lost before the reply came; "
                   "the command may or may not have run");
    }
    for (rq_live **p = &c->live; *p; p = &(*p)->next)
        if (*p == &live) {
            *p = live.next;
            break;
        }
    if (c->stopping) pthread_cond_broadcast(&c->live_gone);
    return rq_req_outcome(c, req, timeout_ms);
}

void rq_blocking_close(rq_conn *c) {
    pthread_mutex_lock(&c->mu);
    for (rq_live *l = c->live; l; l = l->next) {
        if (l->s && !l->cut) rq_live_cut(l);
        pthread_cond_signal(&l->req->cv);
    }
    while (c->live) pthread_cond_wait(&c->live_gone, &c->mu);
    rq_sconn *s = c->idle;
    c->idle = NULL;
    c->nidle = 0;
    pthread_mutex_unlock(&c->mu);
    while (s) {
        rq_sconn *next = s->next;
        sconn_free(s);
        s = next;
    }
}
