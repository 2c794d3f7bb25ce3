/* The Redis connection layer: one I/O thread per backend runs a libuv loop
 * that owns every hiredis async context. Other threads build a request (one
 * or more commands), submit it and wait for the replies.
 *
 *  - Requests submitted between two wake-ups of the loop are written in one
 *    pipeline (uv_async_send coalesces, so each wake-up drains the queue).
 *  - Ordinary requests share one "main" connection. Requests flagged
 *    RQ_REQ_BLOCKING (BZPOPMIN, WAIT) never stall the shared pipeline: their
 *    caller runs each on a synchronous connection of its own, taken from a
 *    pool, without the I/O thread (blocking.c says why).
 *  - While Redis is unreachable, requests wait (in the I/O thread; blocking
 *    ones in their caller) until it reconnects (capped exponential backoff)
 *    or until their caller gives up.
 *    A request lost with its connection fails with RUNQ_EIO, except blocking
 *    reads flagged RQ_REQ_REISSUE, which are sent again after reconnecting.
 *  - rq_conn_interrupt() ends every waiting RQ_REQ_INTERRUPTIBLE request:
 *    one not sent yet returns RQ_INTERRUPTED at once; one blocked in Redis
 *    is ended by CLIENT UNBLOCK, so it returns its replies (the blocking
 *    command's as timed out, then those of the commands after it), or,
 *    where that cannot work (ACL, connection down), RQ_INTERRUPTED by
 *    shutting down the connection it blocks on. */
#ifndef RUNQ_REDIS_CONN_H
#define RUNQ_REDIS_CONN_H

#include "common.h"
#include "redis/reply.h"

typedef struct rq_conn rq_conn;
typedef struct rq_req rq_req;

typedef struct rq_conn_config {
    const char *host;      /* TCP, or NULL with path */
    int port;
    const char *path;      /* unix socket */
    const char *user;      /* NULL: AUTH password only */
    const char *password;  /* NULL: no AUTH */
    int db;
    int connect_timeout_ms;
} rq_conn_config;

enum {
    RQ_REQ_BLOCKING = 1,      /* run on a connection of its own */
    RQ_REQ_REISSUE = 2,       /* safe to send again after a reconnect */
    RQ_REQ_INTERRUPTIBLE = 4  /* ended early by rq_conn_interrupt (above) */
};

/* Positive status: the wait was cut short by rq_conn_interrupt(). */
#define RQ_INTERRUPTED 1

/* Start the I/O thread. Connecting happens in the background; the config
 * strings are copied. */
int rq_conn_open(rq_conn **out, const rq_conn_config *config);
/* Fail every outstanding request with RUNQ_ECLOSED, stop and join the I/O
 * thread, free everything. */
void rq_conn_close(rq_conn *c);

/* Arguments already in the Redis protocol (RESP bulk strings, back to back),
 * appended one at a time: a script call's keys and arguments are written
 * here once, and a request copies them once more into the command it sends,
 * instead of one allocation per argument at each of three layers. */
typedef struct rq_resp {
    char *p;
    size_t len, cap;
    int argc;
    bool oom; /* an append failed; the request that takes it fails */
} rq_resp;
void rq_resp_arg(rq_resp *b, const void *p, size_t n);
/* One argument made of n parts, back to back (parts[i] may be NULL when
 * lens[i] is 0). */
void rq_resp_argn(rq_resp *b, size_t n, const void *const *parts, const size_t *lens);
void rq_resp_clear(rq_resp *b);

/* A new request with room for `hint` commands (it grows as needed). */
rq_req *rq_req_new(size_t hint, int flags);
/* Append one command: argv[0..argc) (lens NULL: NUL-terminated), then the
 * arguments in `tail` (may be NULL). Everything is copied, into one buffer
 * in the Redis protocol. 0 or RUNQ_ENOMEM. */
int rq_req_add(rq_req *req, int argc, const char *const *argv, const size_t *lens,
               const rq_resp *tail);
/* Same with NUL-terminated strings and no tail. */
int rq_req_addv(rq_req *req, int argc, const char *const *argv);
size_t rq_req_count(const rq_req *req);

/* Submit and wait up to timeout_ms (-1: no limit) for every reply. Returns 0
 * when all replies came (some may be Redis errors: check them), RUNQ_ETIMEOUT
 * or RUNQ_EIO with rq_error() detail, RUNQ_ECLOSED, or RQ_INTERRUPTED. A
 * request runs at most once: submit a new one to retry. */
int rq_conn_exec(rq_conn *c, rq_req *req, int timeout_ms);
/* Reply i of an executed request (owned by the request). */
const rq_reply *rq_req_reply(const rq_req *req, size_t i);
/* Same, handing ownership to the caller (free with rq_reply_free). */
rq_reply *rq_req_take_reply(rq_req *req, size_t i);
/* Drop the caller's hold; the I/O thread may still hold it after a timeout,
 * so the memory goes when both let go. NULL is a no-op. */
void rq_req_release(rq_conn *c, rq_req *req);

/* Wake every interruptible request in flight. Requests submitted later are
 * not affected. */
void rq_conn_interrupt(rq_conn *c);
/* A counter bumped by every rq_conn_interrupt(): a caller that loops over
 * several blocking requests reads it first and stops when it moves. */
unsigned rq_conn_interrupt_gen(rq_conn *c);
/* Tie an interruptible request to the generation the caller read, so that an
 * interrupt landing between that read and the submit is not missed. */
void rq_req_set_gen(rq_req *req, unsigned gen);

#endif
