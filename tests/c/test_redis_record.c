/* The Redis job record leaves out fields that hold their default (attempt,
 * token, lease, priority, timeout and deadline 0, no unique key), readers
 * take an absent field as its default, and a present field that is not a
 * number still dead-letters the job. Runs against a private redis-server. */
#include "job.h"
#include "redis_support.h"

static bool t_has_field(redisContext *r, const char *id, const char *field) {
    return t_cmd_int(r, "HEXISTS {runq:rec}:job:%s %s", id, field) == 1;
}

TEST(default_fields_are_not_written_and_read_as_defaults) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options plain = RUNQ_ENQUEUE_OPTIONS_INIT, full = RUNQ_ENQUEUE_OPTIONS_INIT;
    plain.queue = full.queue = "rec";
    full.priority = 5;
    full.timeout_ms = 7000;
    full.ttl_ms = 600000;
    full.unique_key = "u";
    full.unique_ttl_ms = 9000;
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &plain);
    t_enqueue(c, b, "t", 2, &full);
    static const char *const defaults[] = {"attempt", "token", "lease", "prio", "timeout",
                                           "deadline", "ukey", "uttl"};
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
        ASSERT(!t_has_field(r, a, defaults[i]));
        if (strcmp(defaults[i], "attempt") && strcmp(defaults[i], "token") &&
            strcmp(defaults[i], "lease"))
            ASSERT(t_has_field(r, b, defaults[i])); /* set: written */
    }
    static const char *const always[] = {"v", "id", "task", "queue", "args", "state", "maxr",
                                         "created", "eta"};
    for (size_t i = 0; i < sizeof always / sizeof *always; i++) ASSERT(t_has_field(r, a, always[i]));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, a));
    ASSERT_EQ(runq_job_attempt(snap), 0);
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_PENDING);
    ASSERT(snap->unique_key == NULL);
    ASSERT_EQ(snap->priority, 0);
    ASSERT_EQ(snap->deadline_ms, 0);
    ASSERT_EQ(snap->lease_token, 0);
    runq_job_free(snap);
    ASSERT_OK(runq_job_get(&snap, c, b));
    ASSERT_EQ(snap->priority, 5);
    ASSERT_EQ(snap->timeout_ms, 7000);
    ASSERT_STR(snap->unique_key, "u");
    ASSERT_EQ(snap->unique_ttl_ms, 9000);
    ASSERT(snap->deadline_ms > snap->created_ms);
    runq_job_free(snap);
    /* Both run: the higher priority first, each with attempt 1. */
    runq_worker *w = t_pull_worker(c, "rec", 30000, 1);
    const char *order[2] = {b, a};
    for (int i = 0; i < 2; i++) {
        runq_job *j = NULL;
        ASSERT_OK(runq_worker_next(w, &j, 5000));
        ASSERT_STR(runq_job_id(j), order[i]);
        ASSERT_EQ(runq_job_attempt(j), 1);
        ASSERT_EQ(j->deadline_ms > 0, i == 0);
        ASSERT_OK(runq_job_ack(j, NULL, 0));
        runq_job_free(j);
    }
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST(a_present_optional_field_that_is_not_a_number_is_dead_lettered) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "rec";
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &o);
    freeReplyObject(t_cmd(r, "HSET {runq:rec}:job:%s deadline soon", id));
    runq_worker *w = t_pull_worker(c, "rec", 30000, 1);
    runq_job *j = NULL;
    ASSERT_EQ(runq_worker_next(w, &j, 500), RUNQ_ETIMEOUT);
    check_dead_with(c, id, "corrupt job: field deadline is not a number");
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

/* The C client stores rate_burst resolved, but another writer may store 0
 * (runq.h: automatic). fetch.lua must read it as rate_limit / 20, not as a
 * negative allowance that never leases. At 40 per hour nothing more comes
 * during the test: exactly the burst (2) is leased. */
TEST(a_stored_rate_burst_of_zero_is_automatic) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.rate_limit = 40;
    qo.rate_period_ms = 3600 * 1000;
    ASSERT_OK(runq_queue_configure(c, "rb0", &qo));
    freeReplyObject(t_cmd(r, "HSET {runq:rb0}:config rate_burst 0"));
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "rb0";
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 4; i++) t_enqueue(c, id, "t", i, &o);
    runq_worker *w = t_pull_worker(c, "rb0", 30000, 1);
    runq_job *jobs[4];
    int got = 0;
    while (got < 4 && runq_worker_next(w, &jobs[got], 1000) == 0) got++;
    ASSERT_EQ(got, 2);
    for (int i = 0; i < got; i++) {
        ASSERT_OK(runq_job_ack(jobs[i], NULL, 0));
        runq_job_free(jobs[i]);
    }
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST_MAIN()
