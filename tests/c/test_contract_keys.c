/* Per-key interval limits (rate_key + rate_interval_ms) and the unique
 * family (unique-until-done, the default unique TTL), run against memory://
 * and a private redis-server like test_contract.c. Start times are the
 * backend's own lease times, never the test's clock; every check is a safety
 * property ("at least an interval apart") or an ordering. */
#include "support.h"

#include <pthread.h>

#include "job.h" /* lease_until_ms and unique_ttl_ms: the backend's own values */

#define LEASE_MS 30000

/* When the backend leased the job, by its own clock. */
static int64_t leased_at(const runq_job *job) {
    ASSERT_EQ(runq_job_leased_at(job), job->lease_until_ms - LEASE_MS); /* before any extend */
    return runq_job_leased_at(job);
}

static runq_enqueue_options keyed(const char *key, int64_t interval_ms) {
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.rate_key = key;
    o.rate_interval_ms = interval_ms;
    return o;
}

static runq_enqueue_options until_done(const char *key, int max_retries) {
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.unique_key = key;
    o.unique_until_done = 1;
    o.max_retries = max_retries;
    return o;
}

static runq_job *next_job(runq_worker *w, int timeout_ms) {
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, timeout_ms));
    return job;
}

static void ack_free(runq_job *job) {
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
}

/* ---- per-key interval limit ---- */

TEST(same_rate_key_starts_at_least_an_interval_apart) {
    runq_client *c = t_client();
    enum { N = 4, INTERVAL = 250 };
    runq_enqueue_options o = keyed("tenant:1", INTERVAL);
    char ids[N][RUNQ_ID_SIZE];
    for (int i = 0; i < N; i++) t_enqueue(c, ids[i], "call", i, &o);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending, N); /* waiting behind the key counts as pending */

    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);
    int64_t prev = 0;
    for (int i = 0; i < N; i++) {
        runq_job *job = next_job(w, 20000); /* an idle fetch wakes at the key's time */
        ASSERT_EQ(t_args_get_int(job), i); /* FIFO within the key */
        ASSERT_STR(runq_job_rate_key(job), "tenant:1");
        ASSERT_EQ(runq_job_rate_interval(job), INTERVAL);
        int64_t at = leased_at(job);
        if (i > 0) ASSERT_GE(at - prev, INTERVAL);
        prev = at;
        ack_free(job);
    }
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending + st.scheduled + st.active, 0);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(waiting_rate_key_blocks_no_other_key_nor_unkeyed_jobs) {
    runq_client *c = t_client();
    runq_enqueue_options a = keyed("A", 60000), b = keyed("B", 60000);
    char id[RUNQ_ID_SIZE], id_b[RUNQ_ID_SIZE], id_u[RUNQ_ID_SIZE];
    for (int i = 0; i < 5; i++) t_enqueue(c, id, "call", i, &a);
    t_enqueue(c, id_b, "call", 100, &b);   /* enqueued after the A backlog */
    t_enqueue(c, id_u, "call", 200, NULL); /* no key at all */

    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);
    int seen_a = 0, seen_b = 0, seen_u = 0;
    for (int i = 0; i < 3; i++) {
        runq_job *job = next_job(w, 5000);
        int64_t v = t_args_get_int(job);
        if (v == 0) seen_a++;
        else if (v == 100) seen_b++;
        else if (v == 200) seen_u++;
        else CHECK_FAIL("job %lld of key A started within its interval", (long long)v);
        ack_free(job);
    }
    ASSERT_EQ(seen_a, 1);
    ASSERT_EQ(seen_b, 1); /* B started before A's backlog drained */
    ASSERT_EQ(seen_u, 1);
    runq_job *none = NULL;
    ASSERT_EQ(runq_worker_next(w, &none, 300), RUNQ_ETIMEOUT); /* A waits out 60 s */
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending, 4);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(keyed_job_retry_release_lease_expiry_and_dead_keep_the_interval) {
    runq_client *c = t_client();
    enum { INTERVAL = 200 };
    runq_enqueue_options o = keyed("k", INTERVAL);
    o.max_retries = 2;
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "flaky", 1, &o);
    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);

    /* Released (unsettled free): back behind its key, attempt uncounted. */
    runq_job *job = next_job(w, 5000);
    int64_t prev = leased_at(job);
    runq_job_free(job);
    job = next_job(w, 5000);
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_EQ(runq_job_attempt(job), 1);
    ASSERT_GE(leased_at(job) - prev, INTERVAL);
    prev = leased_at(job);

    /* A retry with no delay still waits for the key. */
    ASSERT_OK(runq_job_fail(job, "boom", 0));
    runq_job_free(job);
    job = next_job(w, 5000);
    ASSERT_EQ(runq_job_attempt(job), 2);
    ASSERT_GE(leased_at(job) - prev, INTERVAL);
    prev = leased_at(job);
    runq_job_free(job); /* released again; fetched by a short-lease worker below */

    /* Lease expiry: the lost attempt counts and the key still holds. */
    runq_worker *shortw = t_pull_worker(c, "default", 150, 0);
    runq_job *lost = NULL;
    ASSERT_OK(runq_worker_next(shortw, &lost, 5000));
    ASSERT_GE(runq_job_leased_at(lost) - prev, INTERVAL);
    prev = runq_job_leased_at(lost);
    job = next_job(w, 5000); /* after the 150 ms lease lapses */
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_EQ(runq_job_attempt(job), 3);
    ASSERT_GE(leased_at(job) - prev, INTERVAL);
    ASSERT_EQ(runq_job_ack(lost, NULL, 0), RUNQ_ESTALE);
    runq_job_free(lost);
    prev = leased_at(job);

    /* Last attempt fails: dead; a dead retry goes behind its key again. */
    ASSERT_OK(runq_job_fail(job, "boom", 0));
    runq_job_free(job);
    char dead[4][RUNQ_ID_SIZE];
    size_t n = 0;
    ASSERT_OK(runq_dead_list(dead, &n, c, "default", 4));
    ASSERT_EQ(n, 1);
    ASSERT_STR(dead[0], id);
    ASSERT_OK(runq_dead_retry(c, id));
    job = next_job(w, 5000);
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_EQ(runq_job_attempt(job), 1);
    ASSERT_GE(leased_at(job) - prev, INTERVAL);
    ack_free(job);
    runq_worker_free(shortw);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(promoted_keyed_job_past_its_deadline_frees_the_key) {
    runq_client *c = t_client();
    runq_enqueue_options o = keyed("k", 60000);
    o.ttl_ms = 100;
    char late[RUNQ_ID_SIZE], next[RUNQ_ID_SIZE];
    t_enqueue(c, late, "t", 1, &o);
    t_sleep_ms(250); /* its ttl passes before any fetch */
    o.ttl_ms = 0;
    t_enqueue(c, next, "t", 2, &o);
    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);
    /* The first never started, so the key's next job need not wait 60 s. */
    runq_job *job = next_job(w, 5000);
    ASSERT_STR(runq_job_id(job), next);
    ack_free(job);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, late));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(rate_key_bad_input_and_older_option_versions) {
    runq_client *c = t_client();
    unsigned char args[16];
    size_t len = t_args_int(args, 1);
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = keyed("k", 0);
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "rate_interval") != NULL);
    o = keyed(NULL, 100);
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "rate_key") != NULL);
    o = keyed("", 100);
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    o = keyed("k", -5);
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    o = (runq_enqueue_options)RUNQ_ENQUEUE_OPTIONS_INIT;
    o.unique_until_done = 1;
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "unique_key") != NULL);
    o.unique_key = "u";
    o.unique_ttl_ms = 1000;
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "unique_ttl") != NULL);

    /* Callers built against version 1 or 2 of the struct still work: the
     * fields they lack (the rate key here) keep their INIT values. */
    for (unsigned v = 1; v <= 2; v++) {
        o = (runq_enqueue_options)RUNQ_ENQUEUE_OPTIONS_INIT;
        o.version = v;
        o.priority = 3;
        o.rate_key = "ignored"; /* beyond a v1/v2 struct: not read */
        ASSERT_OK(runq_enqueue(c, id, "t", args, len, &o));
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, id));
        ASSERT_EQ(runq_job_priority(snap), 3);
        ASSERT(runq_job_rate_key(snap) == NULL);
        runq_job_free(snap);
    }
    o.version = RUNQ_ENQUEUE_OPTIONS_VERSION + 1;
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EINVAL);
    runq_client_close(c);
}

/* ---- unique jobs ---- */

TEST(unique_key_without_ttl_holds_24_hours_by_default) {
    runq_client *c = t_client();
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.unique_key = "daily";
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &o);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, a));
    ASSERT_EQ(snap->unique_ttl_ms, 24LL * 3600 * 1000);
    ASSERT_EQ(runq_job_unique_until_done(snap), 0);
    ASSERT_EQ(runq_job_leased_at(snap), 0); /* a snapshot is no delivery */
    runq_job_free(snap);
    o.unique_key = "short";
    o.unique_ttl_ms = 5000; /* per job */
    t_enqueue(c, b, "t", 2, &o);
    ASSERT_OK(runq_job_get(&snap, c, b));
    ASSERT_EQ(snap->unique_ttl_ms, 5000);
    runq_job_free(snap);
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT; /* per task */
    to.unique_ttl_ms = 7000;
    ASSERT_OK(runq_task_register(NULL, c, "task7", &to));
    o.unique_key = "seven";
    o.unique_ttl_ms = -1;
    t_enqueue(c, b, "task7", 3, &o);
    ASSERT_OK(runq_job_get(&snap, c, b));
    ASSERT_EQ(snap->unique_ttl_ms, 7000);
    runq_job_free(snap);
    runq_client_close(c);
}

/* Threads enqueueing one job each at the same time (on Redis, their script
 * calls share one pipelined connection): every call gets its own outcome. Of each pair of
 * threads sharing a unique key exactly one stores its job, and the other
 * gets RUNQ_EDUPLICATE with the holder's id and a message naming its key. */
enum { PRODUCERS = 16 };

typedef struct producer {
    runq_client *c;
    pthread_barrier_t *go;
    char key[32], id[RUNQ_ID_SIZE], detail[256];
    int rc;
} producer;

static void *producer_main(void *arg) {
    producer *p = arg;
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "producers";
    o.unique_key = p->key;
    unsigned char args[16];
    size_t len = t_args_int(args, 1);
    pthread_barrier_wait(p->go);
    p->rc = runq_enqueue(p->c, p->id, "t", args, len, &o);
    snprintf(p->detail, sizeof p->detail, "%s", runq_error_last());
    return NULL;
}

TEST(concurrent_enqueues_each_get_their_own_outcome) {
    runq_client *c = t_client();
    for (int round = 0; round < 5; round++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, PRODUCERS);
        producer p[PRODUCERS];
        pthread_t th[PRODUCERS];
        for (int i = 0; i < PRODUCERS; i++) {
            p[i] = (producer){.c = c, .go = &go, .rc = -99};
            snprintf(p[i].key, sizeof p[i].key, "r%d-k%d", round, i / 2);
            ASSERT_EQ(pthread_create(&th[i], NULL, producer_main, &p[i]), 0);
        }
        for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < PRODUCERS; i += 2) {
            producer *won = p[i].rc == 0 ? &p[i] : &p[i + 1];
            producer *lost = won == &p[i] ? &p[i + 1] : &p[i];
            ASSERT_EQ(won->rc, 0);
            ASSERT_EQ(lost->rc, RUNQ_EDUPLICATE);
            ASSERT_STR(lost->id, won->id); /* the holder's id */
            ASSERT(strstr(lost->detail, lost->key) != NULL); /* its own key named */
            ASSERT_EQ(t_state(c, won->id), RUNQ_STATE_PENDING);
        }
    }
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "producers"));
    ASSERT_EQ(st.pending, 5 * PRODUCERS / 2);
    runq_client_close(c);
}

static void expect_duplicate_of(runq_client *c, const runq_enqueue_options *o, const char *holder) {
    unsigned char args[16];
    size_t len = t_args_int(args, 99);
    char got[RUNQ_ID_SIZE] = "";
    ASSERT_EQ(runq_enqueue(c, got, "t", args, len, o), RUNQ_EDUPLICATE);
    ASSERT_STR(got, holder);
}

TEST(unique_until_done_refuses_while_pending_and_running_then_frees_on_ack) {
    runq_client *c = t_client();
    runq_enqueue_options o = until_done("sync:7", 3);
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &o);
    expect_duplicate_of(c, &o, a); /* pending */
    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);
    runq_job *job = next_job(w, 5000);
    ASSERT_EQ(runq_job_unique_until_done(job), 1);
    expect_duplicate_of(c, &o, a); /* running */
    ASSERT_OK(runq_job_fail(job, "again", 0));
    runq_job_free(job);
    expect_duplicate_of(c, &o, a); /* waiting for its retry */
    job = next_job(w, 5000);
    ack_free(job);
    t_enqueue(c, b, "t", 2, &o); /* done: the key is free at once */
    ASSERT(strcmp(a, b) != 0);
    expect_duplicate_of(c, &o, b);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(unique_until_done_frees_on_dead_and_dead_retry_takes_it_back) {
    runq_client *c = t_client();
    runq_enqueue_options o = until_done("sync:8", 0);
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &o);
    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);
    runq_job *job = next_job(w, 5000);
    ASSERT_OK(runq_job_fail(job, "fatal", 0));
    runq_job_free(job);
    t_enqueue(c, b, "t", 2, &o); /* dead: the key is free */
    /* While b holds the key, the dead job cannot come back. */
    ASSERT_EQ(runq_dead_retry(c, a), RUNQ_EDUPLICATE);
    ASSERT(strstr(runq_error_last(), b) != NULL);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, a));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    runq_job_free(snap);
    job = next_job(w, 5000);
    ASSERT_STR(runq_job_id(job), b);
    ack_free(job);
    ASSERT_OK(runq_dead_retry(c, a)); /* free again: a takes it back */
    expect_duplicate_of(c, &o, a);
    job = next_job(w, 5000);
    ASSERT_STR(runq_job_id(job), a);
    ack_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(unique_until_done_frees_when_a_lease_expires_into_the_dead_letters) {
    runq_client *c = t_client();
    runq_enqueue_options o = until_done("sync:9", 0);
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &o);
    runq_worker *w = t_pull_worker(c, "default", 150, 0);
    runq_job *lost = next_job(w, 5000);
    expect_duplicate_of(c, &o, a);
    t_sleep_ms(300); /* the worker "hangs" past its lease */
    runq_job *none = NULL;
    ASSERT_EQ(runq_worker_next(w, &none, 200), RUNQ_ETIMEOUT); /* recovery: dead */
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, a));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    runq_job_free(snap);
    t_enqueue(c, b, "t", 2, &o);
    ASSERT_EQ(runq_job_ack(lost, NULL, 0), RUNQ_ESTALE);
    runq_job_free(lost);
    expect_duplicate_of(c, &o, b); /* the stale ack freed nothing */
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(unique_ttl_key_survives_ack_unlike_until_done) {
    runq_client *c = t_client();
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.unique_key = "ttl";
    char a[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &o);
    runq_worker *w = t_pull_worker(c, "default", LEASE_MS, 0);
    ack_free(next_job(w, 5000));
    expect_duplicate_of(c, &o, a); /* a TTL key outlives the job */
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(once_in_accepts_again_in_the_next_period) {
    runq_client *c = t_client();
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.once_in_ms = 1000;
    unsigned char args[16];
    size_t len = t_args_int(args, 5);
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE], d[RUNQ_ID_SIZE];
    /* Start right after a bucket boundary, so the bucket cannot change
     * between the first two enqueues. */
    int64_t bucket = t_now_ms() / o.once_in_ms;
    while (t_now_ms() / o.once_in_ms == bucket) t_sleep_ms(2);
    ASSERT_OK(runq_enqueue(c, a, "digest", args, len, &o));
    ASSERT_EQ(runq_enqueue(c, b, "digest", args, len, &o), RUNQ_EDUPLICATE);
    ASSERT_STR(b, a);
    bucket = t_now_ms() / o.once_in_ms;
    while (t_now_ms() / o.once_in_ms == bucket) t_sleep_ms(2);
    ASSERT_OK(runq_enqueue(c, d, "digest", args, len, &o)); /* the next period */
    ASSERT(strcmp(d, a) != 0);
    runq_job *sa = NULL, *sd = NULL;
    ASSERT_OK(runq_job_get(&sa, c, a));
    ASSERT_OK(runq_job_get(&sd, c, d));
    ASSERT(strcmp(runq_job_unique_key(sa), runq_job_unique_key(sd)) != 0);
    ASSERT_EQ(sa->unique_ttl_ms, 1000); /* held for the period */
    runq_job_free(sa);
    runq_job_free(sd);
    runq_client_close(c);
}

TEST_MAIN()
