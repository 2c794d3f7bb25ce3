/* Server scripts: the embedded .lua sources (see cmake/embed_scripts.cmake),
 * their SHA-1 names, and running calls to them by EVALSHA, falling back to
 * EVAL for those the server answers NOSCRIPT (after SCRIPT FLUSH or a
 * restart). EVAL caches the script again, so the fallback costs one extra
 * round trip once per script per server. */
#ifndef RUNQ_REDIS_SCRIPTS_H
#define RUNQ_REDIS_SCRIPTS_H

#include "redis/conn.h"

/* Index of the script named `name` (file name without .lua), or -1. */
int rq_script_find(const char *name);

/* One script call: keys first, then arguments, copied as they are added,
 * already in the Redis protocol (conn.h: rq_resp). */
typedef struct rq_call {
    int script;
    int nkeys;
    rq_resp args;    /* keys, then arguments; args.oom: an append failed,
                      * reported by rq_calls_run */
    rq_reply *reply; /* set by rq_calls_run; owned by the call */
} rq_call;

void rq_call_init(rq_call *call, int script);
void rq_call_key(rq_call *call, const char *key); /* before any argument */
void rq_call_str(rq_call *call, const char *s);
void rq_call_bin(rq_call *call, const void *p, size_t n);
void rq_call_i64(rq_call *call, int64_t v);
/* One argument made of n parts (conn.h: rq_resp_argn). */
void rq_call_cat(rq_call *call, size_t n, const void *const *parts, const size_t *lens);
void rq_call_u64(rq_call *call, uint64_t v);
void rq_call_clear(rq_call *call);

/* Run n calls as one pipeline, then, when wait_replicas > 0, WAIT for that
 * many replicas up to wait_timeout_ms on the same connection (*acked gets
 * how many confirmed). Each call's reply lands in calls[i].reply (which may
 * be a Redis error reply: check it). Returns 0 or a RUNQ_E* code / positive
 * RQ_INTERRUPTED from rq_conn_exec. */
int rq_calls_run(rq_conn *conn, rq_call *calls, size_t n, int flags, int timeout_ms,
                 int wait_replicas, int wait_timeout_ms, long long *acked);

/* A plain command sent first, in the same pipeline as the calls: the server
 * runs the calls right after it on the same connection, without a round
 * trip in between (a blocking wait, then the work it waited for). */
typedef struct rq_call_head {
    int argc;
    const char *const *argv;
    unsigned gen;    /* the interrupt generation (conn.h) of an interruptible request */
    rq_reply *reply; /* out: its reply, the caller's to free; NULL when none came */
} rq_call_head;

/* rq_calls_run behind `head`, with `flags` for the pipeline that carries
 * it; calls the server did not know are sent again on their own by text. */
int rq_calls_run_after(rq_conn *conn, rq_call_head *head, rq_call *calls, size_t n, int flags,
                       int timeout_ms);

#endif
