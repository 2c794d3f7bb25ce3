/* What conn.c (the I/O thread, the shared pipeline) and blocking.c (blocking
 * requests, run on their caller's thread) share: the request and connection
 * structs and the few helpers both use. Not used outside these two files. */
#ifndef RUNQ_REDIS_CONN_INT_H
#define RUNQ_REDIS_CONN_INT_H

#include <pthread.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis/conn.h"

typedef struct rq_cmd {
    char *buf; /* the command in the Redis protocol, sent as it is */
    size_t len;
} rq_cmd;

struct rq_req {
    rq_req *next;
    rq_cmd *cmds;
    size_t ncmd, cap;
    int flags;
    unsigned gen;
    bool gen_set;
    /* Filled by whoever does the I/O (the I/O thread, or the caller of a
     * blocking request) before `done`. */
    rq_reply **replies;
    size_t nreplied;
    bool lost;   /* a reply never came: the connection went away */
    bool oom;
    /* Guarded by conn->mu. */
    pthread_cond_t cv; /* the caller waits here; signalled once, on `done` */
    int status;
    char msg[256];
    bool done;
    bool abandoned; /* the caller stopped waiting */
    int refs;
    int64_t deadline; /* monotonic ms; 0: none */
};

/* A synchronous connection of blocking.c: idle in the pool, or owned by the
 * one caller running a request on it. */
typedef struct rq_sconn {
    struct rq_sconn *next;
    redisContext *ctx;
    long long client_id; /* its CLIENT ID (for CLIENT UNBLOCK), 0: unknown */
} rq_sconn;

/* A blocking request in flight, on its caller's stack, listed in conn->live
 * so that an interrupt or a close can reach it. Guarded by conn->mu. */
typedef struct rq_live {
    struct rq_live *next;
    rq_req *req;
    rq_sconn *s;          /* the connection it is sent on, NULL while dialling */
    bool past_wait;       /* its first reply came: nothing left blocks */
    bool cut;             /* its socket was shut down to end it */
    int64_t unblock_sent; /* mono ms the first CLIENT UNBLOCK went out for it, 0: none */
    int64_t unblock_last; /* mono ms the latest one did */
} rq_live;

/* Under mu, l->s set: end l's request by its socket. The caller's read
 * ends (EOF), and it sees `cut` and reports why. Reading only: a write the
 * caller is about to make still goes out, where a shut-down write side
 * would raise SIGPIPE. */
static inline void rq_live_cut(rq_live *l) {
    l->cut = true;
    shutdown(l->s->ctx->fd, SHUT_RD);
}

enum { CS_DOWN, CS_CONNECTING, CS_READY };

struct rq_conn {
    char *host, *path, *user, *password;
    int port, db, connect_timeout_ms;

    pthread_mutex_t mu;
    rq_req *inbox_head, *inbox_tail;
    bool stopping;
    unsigned gen;
    char last_err[200];

    /* blocking.c, guarded by mu. */
    rq_sconn *idle;
    size_t nidle;
    rq_live *live;
    pthread_cond_t live_gone; /* close waits here for `live` to empty */
    int sbackoff_ms;          /* dialling backoff shared by the callers */

    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;

    /* I/O thread only. */
    redisAsyncContext *ac;
    int state;
    int64_t connect_deadline;
    int64_t next_attempt;
    int backoff_ms;
    rq_req *wait_head, *wait_tail; /* main requests not yet sent */
    bool closing;
    bool no_unblock; /* CLIENT UNBLOCK was refused (ACL): interrupts close */
    /* dispatch is queueing commands: the contexts' event interest waits,
     * and they write at the end of it (uvev.h). */
    bool queuing;
};

#define RQ_BACKOFF_MIN_MS 25
#define RQ_BACKOFF_MAX_MS 1000

/* Record the connection state for error messages (and RUNQ_REDIS_TRACE). */
void rq_conn_set_err(rq_conn *c, const char *what, const char *detail);
bool rq_conn_trace(void);

/* What rq_conn_exec returns for req, from its done/status/msg (not done:
 * it timed out). Called with c->mu held; releases it. */
int rq_req_outcome(rq_conn *c, rq_req *req, int timeout_ms);

/* blocking.c: run a RQ_REQ_BLOCKING request on a connection of the
 * caller's own, on the caller's thread. Returns as rq_conn_exec does. */
int rq_blocking_exec(rq_conn *c, rq_req *req, int timeout_ms);
/* rq_conn_close, before the I/O thread stops: end every blocking request
 * (RUNQ_ECLOSED), wait for their callers to let go, free the pool. */
void rq_blocking_close(rq_conn *c);

#endif
