/* Rate keys and unique keys as stored in Redis: key lifetimes (the default
 * 24 h TTL, unique-until-done keys without one, deleted with their job), the
 * rate-key structures draining to nothing, and a promoted keyed job whose
 * record is lost not holding its key forever. Run against a private
 * redis-server (tests/support/with-redis.sh). */
#include "redis_support.h"

static runq_worker *pull(runq_client *c) { return t_pull_worker(c, "default", 30000, 0); }

TEST(unique_key_lifetimes_in_redis) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE], d[RUNQ_ID_SIZE];
    o.unique_key = "plain";
    t_enqueue(c, a, "t", 1, &o);
    long long pttl = t_cmd_int(r, "PTTL {runq:default}:unique:plain");
    ASSERT_GT(pttl, 24LL * 3600 * 1000 - 60000); /* the 24 h default */
    ASSERT_LE(pttl, 24LL * 3600 * 1000);

    o.unique_key = "held";
    o.unique_until_done = 1;
    t_enqueue(c, b, "t", 2, &o);
    ASSERT_EQ(t_cmd_int(r, "PTTL {runq:default}:unique:held"), -1); /* no expiry */
    o.unique_key = "doomed";
    o.max_retries = 0;
    t_enqueue(c, d, "t", 3, &o);

    runq_worker *w = pull(c);
    for (int i = 0; i < 3; i++) {
        runq_job *job = NULL;
        ASSERT_OK(runq_worker_next(w, &job, 5000));
        if (strcmp(runq_job_id(job), d) == 0) ASSERT_OK(runq_job_fail(job, "fatal", 0));
        else ASSERT_OK(runq_job_ack(job, NULL, 0));
        runq_job_free(job);
    }
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:unique:held"), 0);   /* done */
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:unique:doomed"), 0); /* dead */
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:unique:plain"), 1);  /* TTL key stays */
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST(rate_key_structures_drain_to_nothing) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.rate_interval_ms = 100;
    char id[RUNQ_ID_SIZE];
    o.rate_key = "k";
    t_enqueue(c, id, "t", 1, &o);
    t_enqueue(c, id, "t", 2, &o);
    o.rate_key = "j";
    t_enqueue(c, id, "t", 3, &o);
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:default}:rkwait"), 3);
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:default}:rk:k"), 2);
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:default}:rkeys"), 2);

    runq_worker *w = pull(c);
    for (int i = 0; i < 3; i++) {
        runq_job *job = NULL;
        ASSERT_OK(runq_worker_next(w, &job, 5000));
        ASSERT_OK(runq_job_ack(job, NULL, 0));
        runq_job_free(job);
    }
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:default}:rkwait"), 0);
    ASSERT_EQ(t_cmd_int(r, "HLEN {runq:default}:rkflight"), 0);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:rk:k {runq:default}:rk:j"), 0);
    /* Once the intervals have passed, a fetch forgets both keys. */
    t_sleep_ms(150);
    runq_job *none = NULL;
    ASSERT_EQ(runq_worker_next(w, &none, 100), RUNQ_ETIMEOUT);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:rkeys"), 0);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST(promoted_keyed_job_with_a_lost_record_frees_its_key) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.rate_key = "k";
    o.rate_interval_ms = 60000;
    char lost[RUNQ_ID_SIZE], next[RUNQ_ID_SIZE];
    t_enqueue(c, lost, "t", 1, &o);
    t_enqueue(c, next, "t", 2, &o);
    /* Paused: a fetch promotes the key's head job into pending but leases
     * nothing; then its record disappears. */
    ASSERT_OK(runq_queue_pause(c, "default"));
    runq_worker *w = pull(c);
    runq_job *job = NULL;
    ASSERT_EQ(runq_worker_next(w, &job, 100), RUNQ_ETIMEOUT);
    ASSERT_EQ(t_cmd_int(r, "HLEN {runq:default}:rkflight"), 1);
    ASSERT_EQ(t_cmd_int(r, "HDEL {runq:default}:jobs %s", lost), 1);
    ASSERT_OK(runq_queue_resume(c, "default"));
    /* The lost job never started: the next one need not wait 60 s. */
    ASSERT_OK(runq_worker_next(w, &job, 5000));
    ASSERT_STR(runq_job_id(job), next);
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, lost));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT(strstr(runq_job_error(snap), "corrupt job") != NULL);
    runq_job_free(snap);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST_MAIN()
