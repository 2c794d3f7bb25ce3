/* Queue gates (manual and automatic pause, rate limit, concurrency limit),
 * run against memory:// and a private redis-server like test_contract.c.
 * Every check is a safety property (never more than the limit, nothing
 * leased while paused) or an ordering; a blocked fetch is given a bound far
 * longer than any wake-up, so "it returned" proves it was woken. */
#include "support.h"

#include <stdlib.h>
#include <uv.h>

static void configure(runq_client *c, const char *queue, const runq_queue_options *o) {
    ASSERT_OK(runq_queue_configure(c, queue, o));
}

/* A pull worker's next() on another thread, to see a blocked fetch wake. */
typedef struct {
    runq_worker *w;
    runq_job *job;
    int rc;
} next_call;

static void next_main(void *arg) {
    next_call *n = arg;
    n->rc = runq_worker_next(n->w, &n->job, 20000);
}

/* ---- manual pause ---- */

TEST(paused_queue_yields_nothing_and_resume_delivers) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE], other[RUNQ_ID_SIZE];
    ASSERT_OK(runq_queue_pause(c, "gated"));
    runq_enqueue_options eo = RUNQ_ENQUEUE_OPTIONS_INIT;
    eo.queue = "gated";
    t_enqueue(c, id, "t", 1, &eo); /* enqueue still works */
    eo.queue = "open";
    t_enqueue(c, other, "t", 2, &eo);

    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "gated"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_MANUAL);
    ASSERT_EQ(st.pending, 1);

    /* A worker on both queues gets only the open queue's job. */
    static const char *qs[] = {"gated", "open"};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 2;
    wo.mode = RUNQ_WORKER_PULL;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 5000));
    ASSERT_STR(runq_job_id(job), other);
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    ASSERT_EQ(runq_worker_next(w, &job, 300), RUNQ_ETIMEOUT);

    /* Block a fetch, then resume: it must wake well before its 20 s bound
     * (the Redis fetch blocks on the markers, memory on its condition). */
    next_call n = {w, NULL, 0};
    uv_thread_t th;
    ASSERT_OK(uv_thread_create(&th, next_main, &n));
    t_sleep_ms(200); /* let it block; the test holds either way */
    ASSERT_OK(runq_queue_resume(c, "gated"));
    uv_thread_join(&th);
    ASSERT_OK(n.rc);
    ASSERT_STR(runq_job_id(n.job), id);
    ASSERT_OK(runq_job_ack(n.job, NULL, 0));
    runq_job_free(n.job);
    ASSERT_OK(runq_queue_stats_get(&st, c, "gated"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_NONE);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- automatic pause ---- */

TEST(auto_pause_after_failures_lets_one_probe_through) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.pause_after_failures = 3;
    qo.pause_min_ms = 300;
    qo.pause_max_ms = 5000;
    configure(c, "flaky", &qo);
    runq_enqueue_options eo = RUNQ_ENQUEUE_OPTIONS_INIT;
    eo.queue = "flaky";
    eo.max_retries = 0;
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 3; i++) t_enqueue(c, id, "t", i, &eo);
    runq_worker *w = t_pull_worker(c, "flaky", 30000, 0);
    runq_job *jobs[3];
    for (int i = 0; i < 3; i++) ASSERT_OK(runq_worker_next(w, &jobs[i], 5000));
    runq_queue_stats st;
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(runq_queue_stats_get(&st, c, "flaky"));
        ASSERT_EQ(st.paused, RUNQ_PAUSE_NONE); /* fewer than 3 failures so far */
        ASSERT_OK(runq_job_fail(jobs[i], "boom", -1));
        runq_job_free(jobs[i]);
    }
    ASSERT_OK(runq_queue_stats_get(&st, c, "flaky"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_AUTO);
    ASSERT_GT(st.paused_until_ms, 0);

    /* Two jobs wait; after the interval exactly one (the probe) is leased. */
    for (int i = 0; i < 3; i++) t_enqueue(c, id, "t", 10 + i, &eo);
    runq_job *probe = NULL, *extra = NULL;
    ASSERT_OK(runq_worker_next(w, &probe, 20000));
    ASSERT_GE(runq_job_leased_at(probe), st.paused_until_ms);
    ASSERT_EQ(runq_worker_next(w, &extra, 500), RUNQ_ETIMEOUT);
    ASSERT_OK(runq_queue_stats_get(&st, c, "flaky"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_AUTO);
    ASSERT_EQ(st.paused_until_ms, 0); /* the probe is out */
    ASSERT_EQ(st.pending, 2);

    /* The probe fails: paused again, for twice the interval. */
    int64_t probe_at = runq_job_leased_at(probe);
    ASSERT_OK(runq_job_fail(probe, "boom", -1));
    runq_job_free(probe);
    ASSERT_OK(runq_queue_stats_get(&st, c, "flaky"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_AUTO);
    ASSERT_GE(st.paused_until_ms, probe_at + 600);

    /* The next probe succeeds: the queue is open again, both jobs flow. */
    ASSERT_OK(runq_worker_next(w, &probe, 20000));
    ASSERT_GE(runq_job_leased_at(probe), st.paused_until_ms);
    ASSERT_OK(runq_job_ack(probe, NULL, 0));
    runq_job_free(probe);
    ASSERT_OK(runq_queue_stats_get(&st, c, "flaky"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_NONE);
    ASSERT_OK(runq_worker_next(w, &extra, 20000));
    ASSERT_OK(runq_job_ack(extra, NULL, 0));
    runq_job_free(extra);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(manual_pause_is_not_lifted_by_a_probe) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.pause_after_failures = 1;
    qo.pause_min_ms = 100;
    configure(c, "both", &qo);
    runq_enqueue_options eo = RUNQ_ENQUEUE_OPTIONS_INIT;
    eo.queue = "both";
    eo.max_retries = 0;
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &eo);
    runq_worker *w = t_pull_worker(c, "both", 30000, 0);
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 5000));
    ASSERT_OK(runq_job_fail(job, "boom", -1));
    runq_job_free(job);
    ASSERT_OK(runq_queue_pause(c, "both"));
    t_enqueue(c, id, "t", 2, &eo);
    /* Well past the automatic interval: still nothing while paused by hand. */
    ASSERT_EQ(runq_worker_next(w, &job, 600), RUNQ_ETIMEOUT);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "both"));
    ASSERT_EQ(st.paused, RUNQ_PAUSE_MANUAL);
    ASSERT_OK(runq_queue_resume(c, "both"));
    ASSERT_OK(runq_worker_next(w, &job, 20000));
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- rate limit ---- */

enum { RATE_JOBS = 24, RATE_LIMIT = 4, RATE_PERIOD = 400, RATE_BURST = 2 };
static int64_t rate_starts[RATE_JOBS];
static atomic_int rate_count;

static int rate_handler(runq_job *job, void *ud) {
    (void)ud;
    int i = atomic_fetch_add(&rate_count, 1);
    if (i < RATE_JOBS) rate_starts[i] = runq_job_leased_at(job);
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

TEST(rate_limit_holds_in_every_window_across_workers) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.rate_limit = RATE_LIMIT;
    qo.rate_period_ms = RATE_PERIOD;
    qo.rate_burst = RATE_BURST;
    configure(c, "limited", &qo);
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = rate_handler;
    to.queue = "limited";
    ASSERT_OK(runq_task_register(NULL, c, "r", &to));
    char ids[RATE_JOBS][RUNQ_ID_SIZE];
    for (int i = 0; i < RATE_JOBS; i++) t_enqueue(c, ids[i], "r", i, NULL);

    static const char *qs[] = {"limited"};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 1;
    wo.concurrency = 4;
    runq_worker *w[2];
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(runq_worker_create(&w[k], c, &wo));
        ASSERT_OK(runq_worker_start(w[k]));
    }
    for (int i = 0; i < RATE_JOBS; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_wait(&snap, c, ids[i], 30000));
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        runq_job_free(snap);
    }
    ASSERT_EQ(atomic_load(&rate_count), RATE_JOBS);
    /* In any window [t, t + period): at most limit + burst - 1 leases. */
    qsort(rate_starts, RATE_JOBS, sizeof rate_starts[0], cmp_i64);
    int worst = 0;
    for (int i = 0; i < RATE_JOBS; i++) {
        int k = 0;
        for (int j = i; j < RATE_JOBS && rate_starts[j] < rate_starts[i] + RATE_PERIOD; j++) k++;
        if (k > worst) worst = k;
    }
    ASSERT_LE(worst, RATE_LIMIT + RATE_BURST - 1);
    for (int k = 0; k < 2; k++) runq_worker_free(w[k]);
    runq_client_close(c);
}

/* ---- concurrency limit ---- */

static atomic_int cl_running, cl_max, cl_done;
static int cl_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    int now = atomic_fetch_add(&cl_running, 1) + 1;
    for (int m = atomic_load(&cl_max); now > m && !atomic_compare_exchange_weak(&cl_max, &m, now);) {}
    t_sleep_ms(30);
    atomic_fetch_sub(&cl_running, 1);
    atomic_fetch_add(&cl_done, 1);
    return 0;
}

TEST(concurrency_limit_holds_across_workers) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.concurrency_limit = 2;
    configure(c, "narrow", &qo);
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = cl_handler;
    to.queue = "narrow";
    ASSERT_OK(runq_task_register(NULL, c, "n", &to));
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 16; i++) t_enqueue(c, id, "n", i, NULL);
    static const char *qs[] = {"narrow"};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 1;
    wo.concurrency = 4;
    runq_worker *w[2];
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(runq_worker_create(&w[k], c, &wo));
        ASSERT_OK(runq_worker_start(w[k]));
    }
    WAIT_UNTIL(atomic_load(&cl_done) == 16);
    ASSERT_LE(atomic_load(&cl_max), 2);
    ASSERT_GE(atomic_load(&cl_max), 1);
    for (int k = 0; k < 2; k++) runq_worker_free(w[k]);
    runq_client_close(c);
}

TEST(concurrency_slot_freed_by_ack_and_by_lease_expiry) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.concurrency_limit = 1;
    configure(c, "one", &qo);
    runq_enqueue_options eo = RUNQ_ENQUEUE_OPTIONS_INIT;
    eo.queue = "one";
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 3; i++) t_enqueue(c, id, "t", i, &eo);

    /* Ack frees the slot and wakes a fetch blocked on it. */
    runq_worker *a = t_pull_worker(c, "one", 30000, 0);
    runq_worker *b = t_pull_worker(c, "one", 30000, 0);
    runq_job *held = NULL, *got = NULL;
    ASSERT_OK(runq_worker_next(a, &held, 5000));
    ASSERT_EQ(runq_worker_next(b, &got, 300), RUNQ_ETIMEOUT);
    next_call n = {b, NULL, 0};
    uv_thread_t th;
    ASSERT_OK(uv_thread_create(&th, next_main, &n));
    t_sleep_ms(200);
    ASSERT_OK(runq_job_ack(held, NULL, 0));
    runq_job_free(held);
    uv_thread_join(&th);
    ASSERT_OK(n.rc);
    ASSERT_OK(runq_job_ack(n.job, NULL, 0));
    runq_job_free(n.job);

    /* A worker that leaks its job (dies) holds the slot only until its
     * lease expires; then the job comes back and the slot is free. */
    runq_worker *leaky = t_pull_worker(c, "one", 300, 0);
    ASSERT_OK(runq_worker_next(leaky, &held, 5000));
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "one"));
    ASSERT_EQ(st.active, 1);
    ASSERT_OK(runq_worker_next(b, &got, 20000));
    ASSERT_EQ(runq_job_ack(held, NULL, 0), RUNQ_ESTALE); /* its lease was taken away */
    runq_job_free(held);
    ASSERT_OK(runq_job_ack(got, NULL, 0));
    runq_job_free(got);
    runq_worker_free(leaky);
    runq_worker_free(a);
    runq_worker_free(b);
    runq_client_close(c);
}

/* rate_burst 0 is automatic: rate_limit / 20. At one job per 90 s nothing
 * more comes during the test, so exactly the burst is leased, however slow
 * the machine (40 per hour -> burst 2; an explicit 1 -> 1). */
static int64_t leased_at_once(const char *queue, int64_t burst) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.rate_limit = 40;
    qo.rate_period_ms = 3600 * 1000;
    qo.rate_burst = burst;
    configure(c, queue, &qo);
    runq_enqueue_options eo = RUNQ_ENQUEUE_OPTIONS_INIT;
    eo.queue = queue;
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 5; i++) t_enqueue(c, id, "t", i, &eo);
    runq_worker *w = t_pull_worker(c, queue, 30000, 1);
    runq_job *jobs[5];
    int got = 0;
    while (got < 5 && runq_worker_next(w, &jobs[got], 1000) == 0) got++;
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, queue));
    ASSERT_EQ(st.active, got);
    ASSERT_EQ(st.pending, 5 - got);
    for (int i = 0; i < got; i++) {
        ASSERT_OK(runq_job_ack(jobs[i], NULL, 0));
        runq_job_free(jobs[i]);
    }
    runq_worker_free(w);
    runq_client_close(c);
    return got;
}

TEST(rate_burst_zero_is_automatic) {
    ASSERT_EQ(leased_at_once("slow-auto", 0), 2);
    ASSERT_EQ(leased_at_once("slow-strict", 1), 1);
}

TEST(queue_options_are_checked) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.rate_limit = 5;
    qo.rate_period_ms = 0;
    ASSERT_EQ(runq_queue_configure(c, "q", &qo), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "rate_period_ms") != NULL);
    qo = (runq_queue_options)RUNQ_QUEUE_OPTIONS_INIT;
    qo.concurrency_limit = -1;
    ASSERT_EQ(runq_queue_configure(c, "q", &qo), RUNQ_EINVAL);
    qo = (runq_queue_options)RUNQ_QUEUE_OPTIONS_INIT;
    qo.pause_after_failures = 2;
    qo.pause_max_ms = 10;
    qo.pause_min_ms = 100;
    ASSERT_EQ(runq_queue_configure(c, "q", &qo), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "pause_max_ms") != NULL);
    /* A version 1 caller (max_len only) is still accepted, gates off. */
    struct { unsigned int version; int64_t max_len; } v1 = {1, 3};
    ASSERT_OK(runq_queue_configure(c, "q", (const runq_queue_options *)(const void *)&v1));
    qo.version = 99;
    ASSERT_EQ(runq_queue_configure(c, "q", &qo), RUNQ_EINVAL);
    ASSERT_EQ(runq_queue_pause(c, "bad{name}"), RUNQ_EINVAL);
    runq_client_close(c);
}

TEST_MAIN()
