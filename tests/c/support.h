/* Helpers for the C tests: clocks, msgpack args, a client on the backend
 * under test, and waiting for a condition without timing assertions. */
#ifndef RUNQ_TEST_SUPPORT_H
#define RUNQ_TEST_SUPPORT_H

#include "check.h"

#include <msgpack.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static inline int64_t t_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void t_sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

/* msgpack of [n]: the args of most test jobs. buf needs 10 bytes. */
static inline size_t t_args_int(unsigned char *buf, int64_t n) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, n);
    size_t len = sb.size;
    memcpy(buf, sb.data, len);
    msgpack_sbuffer_destroy(&sb);
    return len;
}

/* The integer inside [n]. */
static inline int64_t t_args_get_int(const runq_job *job) {
    size_t len;
    const void *p = runq_job_args(job, &len);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int64_t v = -1;
    if (msgpack_unpack_next(&u, p, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 1)
        v = u.data.via.array.ptr[0].via.i64;
    msgpack_unpacked_destroy(&u);
    return v;
}

static inline runq_client *t_client(void) {
    runq_client *c = NULL;
    ASSERT_OK(runq_client_open(&c, check_url(), NULL));
    return c;
}

/* Enqueue task with [n]; returns the id in `id`. */
static inline void t_enqueue(runq_client *c, char id[RUNQ_ID_SIZE], const char *task, int64_t n,
                             const runq_enqueue_options *o) {
    unsigned char buf[16];
    size_t len = t_args_int(buf, n);
    ASSERT_OK(runq_enqueue(c, id, task, buf, len, o));
}

/* A job's state, looked up by id. */
static inline runq_job_state t_state(runq_client *c, const char *id) {
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    runq_job_state st = runq_job_state_get(snap);
    runq_job_free(snap);
    return st;
}

static inline runq_worker *t_pull_worker(runq_client *c, const char *queue, int64_t lease_ms,
                                         int auto_extend) {
    static const char *qs[1];
    qs[0] = queue;
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 1;
    wo.mode = RUNQ_WORKER_PULL;
    wo.concurrency = 8;
    wo.lease_ms = lease_ms;
    wo.auto_extend = auto_extend;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    return w;
}

/* Wait (up to a generous bound, to fail rather than hang) for cond. */
#define WAIT_UNTIL(cond)                                                  \
    do {                                                                  \
        int64_t until_ = t_now_ms() + 20000;                              \
        while (!(cond)) {                                                 \
            if (t_now_ms() > until_) CHECK_FAIL("timed out waiting for %s", #cond); \
            t_sleep_ms(2);                                                \
        }                                                                 \
    } while (0)

#endif
