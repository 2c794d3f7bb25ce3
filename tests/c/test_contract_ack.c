/* Acking several jobs at once: the backend's ack_many (one script call per
 * run of one queue's jobs on Redis) and acks from many threads at once
 * (combined into batches by the Redis backend). Runs against memory:// and a
 * private redis-server like every test_contract*.c; jobs are leased through
 * the backend interface so that the test holds their lease tokens. */
#include "client.h"
#include "redis_support.h"

#include <pthread.h>

/* Lease every pending job of `queue` (n expected) straight from the backend. */
static size_t t_lease(runq_client *c, const char *queue, runq_job **out, size_t n) {
    const char *qs[1] = {queue};
    rq_fetch_request req = {qs, 1, NULL, 30000, n, 1000};
    runq_job **jobs = NULL;
    size_t got = 0;
    ASSERT_OK(c->backend->ops->fetch(c->backend, &req, &jobs, &got));
    ASSERT_EQ(got, n);
    for (size_t i = 0; i < got; i++) out[i] = jobs[i];
    rq_free(jobs);
    return got;
}

TEST(ack_many_settles_each_item_on_its_own) {
    runq_client *c = t_client();
    runq_enqueue_options qa = RUNQ_ENQUEUE_OPTIONS_INIT, qb = RUNQ_ENQUEUE_OPTIONS_INIT;
    qa.queue = "am";
    qb.queue = "am2";
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 4; i++) t_enqueue(c, id, "t", i, &qa);
    t_enqueue(c, id, "t", 9, &qb);
    runq_job *a[4], *b[1];
    t_lease(c, "am", a, 4);
    t_lease(c, "am2", b, 1);
    /* Queues interleaved, and one lease token that is not the job's. */
    static const unsigned char res[] = {0x2a}; /* msgpack 42 */
    rq_ack_item items[5] = {{a[0], res, 1, 60000}, {a[1], NULL, 0, 60000},
                            {b[0], res, 1, 60000}, {a[2], res, 1, 60000},
                            {a[3], res, 1, 60000}};
    a[2]->lease_token ^= 1;
    int results[5] = {-99, -99, -99, -99, -99};
    ASSERT_OK(c->backend->ops->ack_many(c->backend, items, results, 5));
    const int want[5] = {0, 0, 0, RUNQ_ESTALE, 0};
    for (int i = 0; i < 5; i++) ASSERT_EQ(results[i], want[i]);
    ASSERT_EQ(t_state(c, a[0]->id), RUNQ_STATE_DONE);
    ASSERT_EQ(t_state(c, a[1]->id), RUNQ_STATE_DONE);
    ASSERT_EQ(t_state(c, b[0]->id), RUNQ_STATE_DONE);
    ASSERT_EQ(t_state(c, a[2]->id), RUNQ_STATE_ACTIVE); /* the stale ack changed nothing */
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, a[0]->id));
    size_t len = 0;
    const unsigned char *r = runq_job_result(snap, &len);
    ASSERT_EQ(len, 1);
    ASSERT_EQ(r[0], 0x2a);
    runq_job_free(snap);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "am"));
    ASSERT_EQ(st.active, 1);
    ASSERT_OK(runq_queue_stats_get(&st, c, "am2"));
    ASSERT_EQ(st.active, 0);
    /* With its own token the job acks; a second ack of a settled job is stale. */
    a[2]->lease_token ^= 1;
    ASSERT_OK(c->backend->ops->ack_many(c->backend, &items[3], results, 1));
    ASSERT_EQ(results[0], 0);
    ASSERT_EQ(t_state(c, a[2]->id), RUNQ_STATE_DONE);
    ASSERT_OK(c->backend->ops->ack_many(c->backend, &items[0], results, 1));
    ASSERT_EQ(results[0], RUNQ_ESTALE);
    ASSERT_EQ(c->backend->ops->ack(c->backend, a[1], NULL, 0, 60000), RUNQ_ESTALE);
    for (int i = 0; i < 4; i++) rq_job_destroy(a[i]);
    rq_job_destroy(b[0]);
    runq_client_close(c);
}

/* Enqueue n jobs (args 0..n-1) on queue. */
static void t_fill(runq_client *c, const char *queue, int n) {
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = queue;
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < n; i++) t_enqueue(c, id, "t", i, &o);
}

/* Done, kept or not (a job acked with RUNQ_RESULT_TTL_NONE is gone). */
static bool t_done_or_gone(runq_client *c, const char *id) {
    runq_job *snap = NULL;
    int rc = runq_job_get(&snap, c, id);
    if (rc == RUNQ_ENOTFOUND) return true;
    ASSERT_OK(rc);
    bool done = runq_job_state_get(snap) == RUNQ_STATE_DONE;
    runq_job_free(snap);
    return done;
}

/* Jobs of two fetch calls (two lease tokens) acked interleaved in one batch,
 * keeping nothing and keeping results: the Redis backend sends a token once
 * per run of jobs that share it, so each job must still be judged by its
 * own. */
TEST(ack_many_interleaving_the_jobs_of_two_fetches) {
    runq_client *c = t_client();
    for (int round = 0; round < 2; round++) {
        t_fill(c, "ai", 6);
        runq_job *x[3], *y[3];
        t_lease(c, "ai", x, 3);
        t_lease(c, "ai", y, 3);
        ASSERT(x[0]->lease_token != y[0]->lease_token);
        int64_t ttl = round == 0 ? RUNQ_RESULT_TTL_NONE : 60000;
        static const unsigned char res[] = {0x07};
        rq_ack_item items[6] = {{x[0], res, 1, ttl}, {y[0], res, 1, ttl}, {y[1], res, 1, ttl},
                                {x[1], res, 1, ttl}, {y[2], res, 1, ttl}, {x[2], res, 1, ttl}};
        uint64_t own = y[1]->lease_token;
        y[1]->lease_token = x[0]->lease_token; /* another fetch's token: stale */
        int results[6] = {-99, -99, -99, -99, -99, -99};
        ASSERT_OK(c->backend->ops->ack_many(c->backend, items, results, 6));
        for (int i = 0; i < 6; i++) ASSERT_EQ(results[i], i == 2 ? RUNQ_ESTALE : 0);
        for (int i = 0; i < 3; i++) {
            ASSERT(t_done_or_gone(c, x[i]->id));
            if (i == 1) ASSERT_EQ(t_state(c, y[i]->id), RUNQ_STATE_ACTIVE);
            else ASSERT(t_done_or_gone(c, y[i]->id));
        }
        if (round == 1) {
            runq_job *snap = NULL;
            ASSERT_OK(runq_job_get(&snap, c, y[2]->id));
            size_t len = 0;
            const unsigned char *r = runq_job_result(snap, &len);
            ASSERT(len == 1 && r[0] == 0x07);
            ASSERT_EQ(runq_job_attempt(snap), 1);
            runq_job_free(snap);
        }
        runq_queue_stats st;
        ASSERT_OK(runq_queue_stats_get(&st, c, "ai"));
        ASSERT_EQ(st.active, 1);
        /* The stale one, with its own token back, acks. */
        y[1]->lease_token = own;
        ASSERT_OK(c->backend->ops->ack_many(c->backend, &items[2], results, 1));
        ASSERT_EQ(results[0], 0);
        for (int i = 0; i < 3; i++) {
            rq_job_destroy(x[i]);
            rq_job_destroy(y[i]);
        }
    }
    runq_client_close(c);
}

/* Many threads ack at once, half of them with a token that is not theirs:
 * whatever batches the backend forms, each thread gets its own outcome and
 * exactly the right jobs are done. */
enum { ACKERS = 16 };
typedef struct {
    runq_client *c;
    runq_job *job;
    bool stale;
    pthread_barrier_t *go;
    int rc;
    char detail[128];
} acker;

static void *acker_main(void *arg) {
    acker *k = arg;
    if (k->stale) k->job->lease_token ^= 1;
    pthread_barrier_wait(k->go);
    k->rc = k->c->backend->ops->ack(k->c->backend, k->job, NULL, 0, 60000);
    snprintf(k->detail, sizeof k->detail, "%s", runq_error_last());
    return NULL;
}

TEST(concurrent_acks_each_get_their_own_outcome) {
    runq_client *c = t_client();
    for (int round = 0; round < 5; round++) {
        t_fill(c, "acks", ACKERS);
        runq_job *jobs[ACKERS];
        t_lease(c, "acks", jobs, ACKERS);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, ACKERS);
        acker k[ACKERS];
        pthread_t th[ACKERS];
        for (int i = 0; i < ACKERS; i++) {
            k[i] = (acker){c, jobs[i], i % 2 == 1, &go, -99, ""};
            ASSERT_EQ(pthread_create(&th[i], NULL, acker_main, &k[i]), 0);
        }
        for (int i = 0; i < ACKERS; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < ACKERS; i++) {
            ASSERT_EQ(k[i].rc, k[i].stale ? RUNQ_ESTALE : 0);
            if (k[i].stale && strcmp(runq_client_backend(c), "redis") == 0)
                ASSERT(strstr(k[i].detail, jobs[i]->id) != NULL); /* its own job named */
            ASSERT_EQ(t_state(c, jobs[i]->id), k[i].stale ? RUNQ_STATE_ACTIVE : RUNQ_STATE_DONE);
        }
        /* The stale half, with their own tokens again, ack too. */
        for (int i = 1; i < ACKERS; i += 2) {
            jobs[i]->lease_token ^= 1;
            ASSERT_OK(c->backend->ops->ack(c->backend, jobs[i], NULL, 0, 60000));
        }
        runq_queue_stats st;
        ASSERT_OK(runq_queue_stats_get(&st, c, "acks"));
        ASSERT_EQ(st.active, 0);
        ASSERT_EQ(st.pending, 0);
        for (int i = 0; i < ACKERS; i++) rq_job_destroy(jobs[i]);
    }
    runq_client_close(c);
}

/* A job acked by a client that keeps nothing: gone at once, for a lookup
 * and for a wait that began before the ack; the queue holds nothing. */
typedef struct wait_arg {
    runq_client *c;
    const char *id;
    int rc;
} wait_arg;

static void *wait_thread(void *p) {
    wait_arg *a = p;
    runq_job *j = NULL;
    a->rc = runq_job_wait(&j, a->c, a->id, 10000);
    runq_job_free(j);
    return NULL;
}

TEST(result_ttl_none_keeps_nothing_of_done_jobs) {
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    runq_client *c = NULL;
    co.result_ttl_ms = -2;
    ASSERT_EQ(runq_client_open(&c, check_url(), &co), RUNQ_EINVAL);
    co.result_ttl_ms = RUNQ_RESULT_TTL_NONE;
    ASSERT_OK(runq_client_open(&c, check_url(), &co));
    runq_enqueue_options q = RUNQ_ENQUEUE_OPTIONS_INIT;
    q.queue = "nokeep";
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &q);
    runq_worker *w = t_pull_worker(c, "nokeep", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    wait_arg wa = {c, id, -99};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, wait_thread, &wa), 0);
    static const unsigned char res[] = {0x2a};
    ASSERT_OK(runq_job_ack(j, res, 1));
    runq_job_free(j);
    pthread_join(th, NULL);
    ASSERT_EQ(wa.rc, RUNQ_ENOTFOUND);
    runq_job *snap = NULL;
    ASSERT_EQ(runq_job_get(&snap, c, id), RUNQ_ENOTFOUND);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "nokeep"));
    ASSERT_EQ(st.pending + st.active + st.scheduled + st.dead, 0);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST_MAIN()
