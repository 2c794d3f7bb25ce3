/* The leases of the jobs one fetch call took: each ends on its own, whatever
 * happens to the others (the Redis backend keeps them under one expiry per
 * fetch call until an extend gives a job its own). Jobs are leased through
 * the backend interface so that the test holds their leases and can extend
 * one of them. Runs against memory:// and a private redis-server. */
#include "client.h"
#include "job.h"
#include "support.h"

#include <string.h>

/* One fetch call on `queue` with `lease_ms`: up to `max` jobs into out. */
static size_t t_fetch(runq_client *c, const char *queue, int64_t lease_ms, runq_job **out,
                      size_t max, int timeout_ms) {
    const char *qs[1] = {queue};
    rq_fetch_request req = {qs, 1, NULL, lease_ms, max, timeout_ms};
    runq_job **jobs = NULL;
    size_t got = 0;
    int rc = c->backend->ops->fetch(c->backend, &req, &jobs, &got);
    if (rc == RUNQ_ETIMEOUT) return 0;
    ASSERT_OK(rc);
    for (size_t i = 0; i < got; i++) out[i] = jobs[i];
    rq_free(jobs);
    return got;
}

static runq_job *t_pick(runq_job **jobs, size_t n, const char *id) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(jobs[i]->id, id) == 0) return jobs[i];
    return NULL;
}

static void t_extend(runq_client *c, runq_job *job, int64_t lease_ms) {
    int result = -1;
    ASSERT_OK(c->backend->ops->extend(c->backend, &job, &result, 1, lease_ms, false));
    ASSERT_EQ(result, 0);
}

/* Of four jobs leased by one fetch: one acked, one released, one extended,
 * one left to expire. Only the expired one comes back as a new attempt, the
 * released one comes back uncounted, and the extended one stays with its
 * holder, whose lease still holds after the others' lapsed. */
TEST(each_lease_of_one_fetch_ends_on_its_own) {
    runq_client *c = t_client();
    runq_backend *b = c->backend;
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "lg";
    char id[4][RUNQ_ID_SIZE];
    for (int i = 0; i < 4; i++) t_enqueue(c, id[i], "t", i, &o);
    runq_job *j[4];
    /* The ack, release and extend below must land within the lease: a
     * margin for slow (sanitizer) builds, not a timing assertion. */
    ASSERT_EQ(t_fetch(c, "lg", 1500, j, 4, 5000), 4);
    for (int i = 0; i < 4; i++) ASSERT_STR(j[i]->id, id[i]); /* oldest first */
    ASSERT_OK(b->ops->ack(b, j[0], NULL, 0, 60000));
    ASSERT_OK(b->ops->release(b, j[1]));
    t_extend(c, j[2], 60000);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "lg"));
    ASSERT_EQ(st.active, 2);
    ASSERT_EQ(st.pending, 1);

    /* Take what comes back until the lapsed job did (after its 1.5 s). */
    runq_job *back[8], *rb = NULL, *rd = NULL;
    size_t nback = 0;
    int64_t until = t_now_ms() + 20000;
    while (!rd && t_now_ms() < until) {
        runq_job *got[4];
        size_t n = t_fetch(c, "lg", 30000, got, 4, 200);
        for (size_t i = 0; i < n; i++) {
            ASSERT(strcmp(got[i]->id, id[2]) != 0); /* the extended job stays leased */
            ASSERT(nback < 8);
            back[nback++] = got[i];
        }
        rb = rb ? rb : t_pick(back, nback, id[1]);
        rd = t_pick(back, nback, id[3]);
    }
    ASSERT(rd != NULL);
    ASSERT(rb != NULL);
    ASSERT_EQ(nback, 2);
    ASSERT_EQ(runq_job_attempt(rb), 1); /* released: the attempt uncounted */
    ASSERT_EQ(runq_job_attempt(rd), 2); /* expired: counted */
    ASSERT_EQ(b->ops->ack(b, j[3], NULL, 0, 60000), RUNQ_ESTALE); /* the lapsed holder */
    ASSERT_OK(b->ops->ack(b, j[2], NULL, 0, 60000)); /* the extended holder */
    for (size_t i = 0; i < nback; i++) {
        ASSERT_OK(b->ops->ack(b, back[i], NULL, 0, 60000));
        runq_job_free(back[i]);
    }
    ASSERT_EQ(t_state(c, id[0]), RUNQ_STATE_DONE);
    ASSERT_EQ(t_state(c, id[2]), RUNQ_STATE_DONE);
    ASSERT_OK(runq_queue_stats_get(&st, c, "lg"));
    ASSERT_EQ(st.active + st.pending + st.scheduled + st.dead, 0);
    for (int i = 0; i < 4; i++) runq_job_free(j[i]);
    runq_client_close(c);
}

/* An extended lease that lapses brings its job back even after every other
 * job of its fetch was acked; a job extended and then failed is retried and
 * not recovered as well. */
TEST(an_extended_lease_lapses_on_its_own_and_a_failed_one_is_retried_once) {
    runq_client *c = t_client();
    runq_backend *b = c->backend;
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "lx";
    char x[RUNQ_ID_SIZE], y[RUNQ_ID_SIZE], z[RUNQ_ID_SIZE];
    t_enqueue(c, x, "t", 1, &o);
    t_enqueue(c, y, "t", 2, &o);
    t_enqueue(c, z, "t", 3, &o);
    runq_job *j[3];
    ASSERT_EQ(t_fetch(c, "lx", 60000, j, 3, 5000), 3);
    t_extend(c, j[0], 200); /* x: a short lease of its own */
    t_extend(c, j[2], 60000);
    ASSERT_OK(b->ops->ack(b, j[1], NULL, 0, 60000));
    bool dead = true;
    ASSERT_OK(b->ops->fail(b, j[2], "boom", 0, &dead)); /* z: retried at once */
    ASSERT(!dead);
    runq_job *got[3];
    size_t seen_x = 0, seen_z = 0;
    int64_t until = t_now_ms() + 20000;
    while (!(seen_x && seen_z) && t_now_ms() < until) {
        size_t n = t_fetch(c, "lx", 60000, got, 3, 200);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(got[i]->id, x) == 0) seen_x++;
            else if (strcmp(got[i]->id, z) == 0) seen_z++;
            else CHECK_FAIL("job %s came back", got[i]->id);
            ASSERT_EQ(runq_job_attempt(got[i]), 2);
            ASSERT_OK(b->ops->ack(b, got[i], NULL, 0, 60000));
            runq_job_free(got[i]);
        }
    }
    ASSERT_EQ(seen_x, 1);
    ASSERT_EQ(seen_z, 1);
    ASSERT_EQ(b->ops->ack(b, j[0], NULL, 0, 60000), RUNQ_ESTALE);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "lx"));
    ASSERT_EQ(st.active + st.pending + st.scheduled + st.dead, 0);
    for (int i = 0; i < 3; i++) runq_job_free(j[i]);
    runq_client_close(c);
}

/* A worker's stop sets its stop flag, then interrupts the backend. A fetch
 * that starts after the flag is set (the stop came between the worker's own
 * check and the fetch, after the interrupt) must neither lease a job nor
 * wait: before the flag, such a fetch waited out its timeout (the worker's
 * is 5 s) and leased what came meanwhile. */
TEST(a_fetch_whose_caller_is_stopping_leases_nothing_and_does_not_wait) {
    runq_client *c = t_client();
    runq_backend *b = c->backend;
    const char *qs[2] = {"lstop", "lstop_empty"};
    atomic_bool stop;
    atomic_init(&stop, true);
    runq_job **jobs = NULL;
    size_t got = 0;
    /* An empty queue, and a timeout that would outlast the test's. */
    rq_fetch_request req = {qs + 1, 1, NULL, 60000, 4, 600000, NULL, &stop};
    ASSERT_EQ(b->ops->fetch(b, &req, &jobs, &got), RUNQ_ETIMEOUT);
    ASSERT_EQ(got, 0);
    /* A queue with a job due. */
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "lstop";
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &o);
    req.queues = qs;
    ASSERT_EQ(b->ops->fetch(b, &req, &jobs, &got), RUNQ_ETIMEOUT);
    ASSERT_EQ(got, 0);
    ASSERT_EQ(t_state(c, id), RUNQ_STATE_PENDING);
    /* Without the flag the job is there, on its first attempt. */
    runq_job *j = NULL;
    ASSERT_EQ(t_fetch(c, "lstop", 60000, &j, 1, 5000), 1);
    ASSERT_STR(j->id, id);
    ASSERT_EQ(runq_job_attempt(j), 1);
    ASSERT_OK(b->ops->ack(b, j, NULL, 0, 60000));
    runq_job_free(j);
    runq_client_close(c);
}

TEST_MAIN()
