/* The life-cycle contract of DESIGN.md section 3. CMake runs every test here
 * against memory:// and against a private redis-server: both backends must
 * give the same answers. */
#include "support.h"

/* ---- enqueue, fetch, ack ---- */

TEST(pull_fetch_fields_and_ack) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.priority = 7;
    o.max_retries = 5;
    t_enqueue(c, id, "add", 41, &o);
    ASSERT_EQ(strlen(id), RUNQ_ID_LEN);

    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 5000));
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_STR(runq_job_task(job), "add");
    ASSERT_STR(runq_job_queue(job), "default");
    ASSERT_EQ(t_args_get_int(job), 41);
    ASSERT_EQ(runq_job_attempt(job), 1);
    ASSERT_EQ(runq_job_max_retries(job), 5);
    ASSERT_EQ(runq_job_priority(job), 7);
    ASSERT_EQ(runq_job_state_get(job), RUNQ_STATE_ACTIVE);
    ASSERT_GT(runq_job_created_at(job), 0);

    unsigned char res[16];
    size_t rlen = t_args_int(res, 42);
    ASSERT_OK(runq_job_ack(job, res, rlen));
    ASSERT_EQ(runq_job_ack(job, res, rlen), RUNQ_ESTATE); /* settled once */
    runq_job_free(job);

    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    size_t got_len;
    const void *got = runq_job_result(snap, &got_len);
    ASSERT_EQ(got_len, rlen);
    ASSERT(memcmp(got, res, rlen) == 0);
    runq_job_free(snap);

    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending + st.scheduled + st.active + st.dead, 0);
    runq_worker_free(w);
    runq_client_close(c);
}

static atomic_int push_count;
static int add_handler(runq_job *job, void *ud) {
    (void)ud;
    unsigned char res[16];
    size_t n = t_args_int(res, t_args_get_int(job) + 1);
    runq_job_set_result(job, res, n);
    atomic_fetch_add(&push_count, 1);
    return 0;
}

TEST(push_mode_processes_every_job) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = add_handler;
    ASSERT_OK(runq_task_register(NULL, c, "add", &to));
    enum { N = 200 };
    static char ids[N][RUNQ_ID_SIZE];
    for (int i = 0; i < N; i++) t_enqueue(c, ids[i], "add", i, NULL);
    runq_worker *w = NULL;
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 4;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    for (int i = 0; i < N; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_wait(&snap, c, ids[i], 20000));
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        size_t len;
        const unsigned char *r = runq_job_result(snap, &len);
        unsigned char want[16];
        size_t wl = t_args_int(want, i + 1);
        ASSERT_EQ(len, wl);
        ASSERT(memcmp(r, want, wl) == 0);
        runq_job_free(snap);
    }
    ASSERT_OK(runq_worker_stop(w, 5000));
    ASSERT_EQ(atomic_load(&push_count), N); /* each exactly once */
    runq_worker_stats ws;
    runq_worker_stats_get(&ws, w);
    ASSERT_EQ(ws.processed, N);
    ASSERT_EQ(ws.failed, 0);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(enqueue_many_reports_each_item) {
    runq_client *c = t_client();
    enum { N = 50 };
    runq_enqueue_item items[N];
    unsigned char args[N][16];
    for (int i = 0; i < N; i++) {
        size_t len = t_args_int(args[i], i);
        items[i] = (runq_enqueue_item){"add", args[i], len, NULL, "", -99};
    }
    static const unsigned char bad[] = {0x92, 0x01}; /* array of 2 with 1 element */
    items[10].args = bad;
    items[10].args_len = sizeof bad;
    ASSERT_EQ(runq_enqueue_many(c, items, N), RUNQ_EINVAL);
    for (int i = 0; i < N; i++) {
        if (i == 10) {
            ASSERT_EQ(items[i].result, RUNQ_EINVAL);
            continue;
        }
        ASSERT_EQ(items[i].result, 0);
        ASSERT_EQ(strlen(items[i].id), RUNQ_ID_LEN);
    }
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending, N - 1);
    runq_client_close(c);
}

/* One batch mixing queues, a unique key taken earlier in the same batch, a
 * max_len reached mid-batch, a scheduled, a rate-keyed and a job with
 * metadata: every item keeps its own result (the Redis backend stores a run
 * of one queue's jobs in one script call). */
TEST(enqueue_many_batch_keeps_per_item_results) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.max_len = 4;
    ASSERT_OK(runq_queue_configure(c, "mb", &qo));
    runq_enqueue_options plain = RUNQ_ENQUEUE_OPTIONS_INIT, uniq = RUNQ_ENQUEUE_OPTIONS_INIT,
                         other = RUNQ_ENQUEUE_OPTIONS_INIT, later = RUNQ_ENQUEUE_OPTIONS_INIT,
                         keyed = RUNQ_ENQUEUE_OPTIONS_INIT, withmeta = RUNQ_ENQUEUE_OPTIONS_INIT;
    plain.queue = uniq.queue = later.queue = keyed.queue = withmeta.queue = "mb";
    other.queue = "mb2";
    uniq.unique_key = "u1";
    later.delay_ms = 60000;
    keyed.rate_key = "k";
    keyed.rate_interval_ms = 1000;
    runq_meta_entry me = {"m", "v"};
    withmeta.meta = &me;
    withmeta.nmeta = 1;
    const runq_enqueue_options *opts[] = {&uniq, &uniq, &other, &later, &keyed, &withmeta,
                                          &plain, &other};
    enum { N = 8 };
    runq_enqueue_item items[N];
    unsigned char args[N][16];
    for (int i = 0; i < N; i++) {
        size_t len = t_args_int(args[i], i);
        items[i] = (runq_enqueue_item){"t", args[i], len, opts[i], "", -99};
    }
    ASSERT_EQ(runq_enqueue_many(c, items, N), RUNQ_EDUPLICATE);
    const int want[N] = {0, RUNQ_EDUPLICATE, 0, 0, 0, 0, RUNQ_EFULL, 0};
    for (int i = 0; i < N; i++) ASSERT_EQ(items[i].result, want[i]);
    ASSERT_STR(items[1].id, items[0].id); /* the holder's id */
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "mb"));
    ASSERT_EQ(st.scheduled, 1);
    ASSERT_EQ(st.pending, 3); /* the keyed job waits behind its key: pending too */
    ASSERT_OK(runq_queue_stats_get(&st, c, "mb2"));
    ASSERT_EQ(st.pending, 2);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, items[3].id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_SCHEDULED);
    runq_job_free(snap);
    ASSERT_OK(runq_job_get(&snap, c, items[5].id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_PENDING);
    ASSERT_STR(runq_job_meta(snap, "m"), "v");
    runq_job_free(snap);
    runq_client_close(c);
}

/* Batches whose jobs all get the same outcome (the Redis scripts then
 * reply it once for all, when it is a number): all stored, all refused by
 * one holder's unique key (a string, so one field each), all refused by a
 * full queue. Each item still gets its own result. */
TEST(enqueue_many_with_one_outcome_for_all_gives_each_item_its_own) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.max_len = 3;
    ASSERT_OK(runq_queue_configure(c, "one", &qo));
    runq_enqueue_options plain = RUNQ_ENQUEUE_OPTIONS_INIT, uniq = RUNQ_ENQUEUE_OPTIONS_INIT;
    plain.queue = uniq.queue = "one";
    uniq.unique_key = "held";
    char holder[RUNQ_ID_SIZE];
    t_enqueue(c, holder, "t", 0, &uniq);
    enum { N = 3 };
    runq_enqueue_item items[N];
    unsigned char args[N][16];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        len[i] = t_args_int(args[i], i);
        items[i] = (runq_enqueue_item){"t", args[i], len[i], &uniq, "", -99};
    }
    ASSERT_EQ(runq_enqueue_many(c, items, N), RUNQ_EDUPLICATE);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(items[i].result, RUNQ_EDUPLICATE);
        ASSERT_STR(items[i].id, holder);
    }
    for (int i = 0; i < 2; i++)
        items[i] = (runq_enqueue_item){"t", args[i], len[i], &plain, "", -99};
    ASSERT_OK(runq_enqueue_many(c, items, 2)); /* the queue is full now: 3 */
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(items[i].result, 0);
        ASSERT_EQ(strlen(items[i].id), RUNQ_ID_LEN);
    }
    for (int i = 0; i < N; i++)
        items[i] = (runq_enqueue_item){"t", args[i], len[i], &plain, "", -99};
    ASSERT_EQ(runq_enqueue_many(c, items, N), RUNQ_EFULL);
    for (int i = 0; i < N; i++) ASSERT_EQ(items[i].result, RUNQ_EFULL);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "one"));
    ASSERT_EQ(st.pending, 3);
    runq_client_close(c);
}

/* The Redis backend sends the first job's record head (retries, priority)
 * and timeout once per batch and a job's own after it where they differ:
 * every job must come back with its own. */
TEST(enqueue_many_mixed_retries_priorities_timeouts_keep_each_jobs_own) {
    runq_client *c = t_client();
    enum { N = 6 };
    runq_enqueue_options o[N];
    const int retries[N] = {2, 2, 9, 2, 0, 2};
    const int32_t prio[N] = {0, 0, 0, -4, 0, 0};
    const int64_t timeout[N] = {1500, 1500, 1500, 1500, 1500, 70000};
    runq_enqueue_item items[N];
    unsigned char args[N][16];
    for (int i = 0; i < N; i++) {
        o[i] = (runq_enqueue_options)RUNQ_ENQUEUE_OPTIONS_INIT;
        o[i].queue = "mix";
        o[i].max_retries = retries[i];
        o[i].priority = prio[i];
        o[i].timeout_ms = timeout[i];
        size_t len = t_args_int(args[i], i);
        items[i] = (runq_enqueue_item){"t", args[i], len, &o[i], "", -99};
    }
    o[1].delay_ms = 60000; /* the shared head and mid, with options */
    ASSERT_OK(runq_enqueue_many(c, items, N));
    for (int i = 0; i < N; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, items[i].id));
        ASSERT_EQ(runq_job_max_retries(snap), retries[i]);
        ASSERT_EQ(runq_job_priority(snap), prio[i]);
        ASSERT_EQ(runq_job_timeout(snap), timeout[i]);
        ASSERT_EQ(t_args_get_int(snap), i);
        ASSERT_EQ(runq_job_state_get(snap), i == 1 ? RUNQ_STATE_SCHEDULED : RUNQ_STATE_PENDING);
        runq_job_free(snap);
    }
    runq_client_close(c);
}

/* ---- delayed jobs and priorities ---- */

TEST(delayed_job_waits_for_its_eta) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.delay_ms = 400;
    int64_t before = t_now_ms();
    t_enqueue(c, id, "later", 1, &o);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.scheduled, 1);
    ASSERT_EQ(st.pending, 0);

    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *job = NULL;
    ASSERT_EQ(runq_worker_next(w, &job, 0), RUNQ_ETIMEOUT); /* not due yet */
    ASSERT_OK(runq_worker_next(w, &job, 10000));           /* woken when due */
    int64_t got = t_now_ms();
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_GE(runq_job_eta(job), before + 400);
    ASSERT_GE(got, runq_job_eta(job)); /* never before its eta */
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(eta_in_the_past_runs_now) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.eta_ms = t_now_ms() - 60000;
    t_enqueue(c, id, "late", 1, &o);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 0));
    ASSERT_STR(runq_job_id(job), id);
    runq_job_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(higher_priority_first_then_fifo) {
    runq_client *c = t_client();
    int prios[] = {0, 10, 5, 10, 0};
    char ids[5][RUNQ_ID_SIZE];
    for (int i = 0; i < 5; i++) {
        runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
        o.priority = prios[i];
        t_enqueue(c, ids[i], "p", i, &o);
    }
    int want[] = {1, 3, 2, 0, 4};
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    for (int k = 0; k < 5; k++) {
        runq_job *job = NULL;
        ASSERT_OK(runq_worker_next(w, &job, 1000));
        ASSERT_STR(runq_job_id(job), ids[want[k]]);
        ASSERT_OK(runq_job_ack(job, NULL, 0));
        runq_job_free(job);
    }
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(strict_queue_order) {
    runq_client *c = t_client();
    char lo[RUNQ_ID_SIZE], hi[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "low";
    t_enqueue(c, lo, "t", 1, &o);
    o.queue = "high";
    t_enqueue(c, hi, "t", 2, &o);
    const char *qs[] = {"high", "low"};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 2;
    wo.mode = RUNQ_WORKER_PULL;
    wo.concurrency = 1;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 1000));
    ASSERT_STR(runq_job_id(job), hi);
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    ASSERT_OK(runq_worker_next(w, &job, 1000));
    ASSERT_STR(runq_job_id(job), lo);
    ASSERT_STR(runq_job_queue(job), "low");
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- unique jobs and max length ---- */

TEST(unique_key_refuses_duplicates_within_ttl) {
    runq_client *c = t_client();
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE] = "", d[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.unique_key = "report:42";
    o.unique_ttl_ms = 500;
    t_enqueue(c, a, "report", 1, &o);
    unsigned char args[16];
    size_t len = t_args_int(args, 2);
    ASSERT_EQ(runq_enqueue(c, b, "report", args, len, &o), RUNQ_EDUPLICATE);
    ASSERT_STR(b, a); /* the caller learns which job holds the key */
    ASSERT(strstr(runq_error_last(), "report:42") != NULL);
    o.unique_key = "report:43";
    t_enqueue(c, d, "report", 3, &o);
    ASSERT(strcmp(d, a) != 0);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending, 2);
    t_sleep_ms(700); /* the key's ttl passes */
    o.unique_key = "report:42";
    ASSERT_OK(runq_enqueue(c, b, "report", args, len, &o));
    ASSERT(strcmp(b, a) != 0);
    runq_client_close(c);
}

TEST(once_in_period_runs_once_per_bucket) {
    runq_client *c = t_client();
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.once_in_ms = 3600 * 1000;
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE], d[RUNQ_ID_SIZE];
    unsigned char args[16], other[16];
    size_t len = t_args_int(args, 7), olen = t_args_int(other, 8);
    ASSERT_OK(runq_enqueue(c, a, "digest", args, len, &o));
    ASSERT_EQ(runq_enqueue(c, b, "digest", args, len, &o), RUNQ_EDUPLICATE);
    ASSERT_STR(b, a);
    ASSERT_OK(runq_enqueue(c, d, "digest", other, olen, &o)); /* other args */
    ASSERT_OK(runq_enqueue(c, d, "summary", args, len, &o));  /* other task */
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, a));
    /* The derived key is the documented one, so other languages match it. */
    ASSERT(strncmp(runq_job_unique_key(snap), "once:digest:", 12) == 0);
    ASSERT_EQ(strlen(runq_job_unique_key(snap)), strlen("once:digest:") + 16 + 1 +
              (size_t)snprintf(NULL, 0, "%lld", (long long)(t_now_ms() / o.once_in_ms)));
    runq_job_free(snap);
    o.unique_key = "x";
    ASSERT_EQ(runq_enqueue(c, d, "digest", args, len, &o), RUNQ_EINVAL);
    runq_client_close(c);
}

TEST(max_len_refuses_with_clear_error) {
    runq_client *c = t_client();
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.max_len = 2;
    ASSERT_OK(runq_queue_configure(c, "small", &qo));
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "small";
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &o);
    t_enqueue(c, id, "t", 2, &o);
    unsigned char args[16];
    size_t len = t_args_int(args, 3);
    ASSERT_EQ(runq_enqueue(c, id, "t", args, len, &o), RUNQ_EFULL);
    ASSERT(strstr(runq_error_last(), "small") != NULL);
    runq_worker *w = t_pull_worker(c, "small", 30000, 1);
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 1000)); /* one leaves the queue */
    ASSERT_OK(runq_enqueue(c, id, "t", args, len, &o));
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- failure, backoff, dead letters ---- */

static atomic_int fallback_calls;
static char fallback_id[RUNQ_ID_SIZE];
static void count_fallback(runq_job *job, void *ud) {
    (void)ud;
    memcpy(fallback_id, runq_job_id(job), RUNQ_ID_SIZE);
    atomic_fetch_add(&fallback_calls, 1);
}

TEST(retries_back_off_then_dead_letter_with_fallback) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.max_retries = 2;
    to.backoff_min_ms = 150;
    to.backoff_max_ms = 10000;
    to.backoff_factor = 2.0;
    to.backoff_jitter = 0.0;
    to.fallback = count_fallback;
    ASSERT_OK(runq_task_register(NULL, c, "flaky", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "flaky", 1, NULL);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    int64_t want_gap[] = {0, 150, 300};
    int64_t failed_at = 0;
    for (int attempt = 1; attempt <= 3; attempt++) {
        runq_job *job = NULL;
        ASSERT_OK(runq_worker_next(w, &job, 10000));
        ASSERT_STR(runq_job_id(job), id);
        ASSERT_EQ(runq_job_attempt(job), attempt);
        if (attempt > 1) ASSERT_GE(t_now_ms() - failed_at, want_gap[attempt - 1]);
        failed_at = t_now_ms();
        ASSERT_OK(runq_job_fail(job, "boom", -1));
        ASSERT_EQ(runq_job_state_get(job), attempt < 3 ? RUNQ_STATE_SCHEDULED : RUNQ_STATE_DEAD);
        runq_job_free(job);
        runq_queue_stats st;
        ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
        ASSERT_EQ(st.scheduled, attempt < 3 ? 1 : 0);
        ASSERT_EQ(st.dead, attempt < 3 ? 0 : 1);
    }
    ASSERT_EQ(atomic_load(&fallback_calls), 1);
    ASSERT_STR(fallback_id, id);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT_STR(runq_job_error(snap), "boom");
    runq_job_free(snap);
    char dead[4][RUNQ_ID_SIZE];
    size_t n = 0;
    ASSERT_OK(runq_dead_list(dead, &n, c, "default", 4));
    ASSERT_EQ(n, 1);
    ASSERT_STR(dead[0], id);

    /* Dead letters are retryable with a fresh set of attempts. */
    ASSERT_OK(runq_dead_retry(c, id));
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 1000));
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_EQ(runq_job_attempt(job), 1);
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    ASSERT_EQ(runq_dead_retry(c, id), RUNQ_ESTATE);
    runq_worker_free(w);
    runq_client_close(c);
}

static atomic_int retry_in_calls;
static int retry_in_handler(runq_job *job, void *ud) {
    (void)ud;
    atomic_fetch_add(&retry_in_calls, 1);
    if (runq_job_attempt(job) == 1) {
        runq_job_set_error(job, "try again soon");
        runq_job_retry_in(job, 50); /* instead of the 1 h backoff below */
        return -1;
    }
    return 0;
}

TEST(handler_sets_its_own_retry_delay) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = retry_in_handler;
    to.backoff_min_ms = 3600 * 1000;
    ASSERT_OK(runq_task_register(NULL, c, "again", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "again", 1, NULL);
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, NULL));
    ASSERT_OK(runq_worker_start(w));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 20000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    ASSERT_EQ(runq_job_attempt(snap), 2);
    ASSERT_EQ(atomic_load(&retry_in_calls), 2);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

static int always_fail(runq_job *job, void *ud) {
    (void)ud;
    runq_job_set_error(job, "always fails");
    return 1;
}

TEST(push_mode_failures_reach_dead_letters) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = always_fail;
    to.fallback = count_fallback;
    to.max_retries = 2;
    to.backoff_min_ms = 10;
    to.backoff_max_ms = 20;
    ASSERT_OK(runq_task_register(NULL, c, "bad", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "bad", 1, NULL);
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, NULL));
    ASSERT_OK(runq_worker_start(w));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 20000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT_EQ(runq_job_attempt(snap), 3);
    ASSERT_STR(runq_job_error(snap), "always fails");
    runq_job_free(snap);
    WAIT_UNTIL(atomic_load(&fallback_calls) == 1);
    runq_worker_stats ws;
    runq_worker_stats_get(&ws, w);
    ASSERT_EQ(ws.failed, 3);
    ASSERT_EQ(ws.dead, 1);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(unknown_task_is_dead_lettered_with_reason) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.max_retries = 0;
    t_enqueue(c, id, "nobody_handles_this", 1, &o);
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, NULL));
    ASSERT_OK(runq_worker_start(w));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 20000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT(strstr(runq_job_error(snap), "unknown task") != NULL);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- leases ---- */

TEST(expired_lease_redelivers_and_fences_the_old_holder) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "slow", 1, NULL);
    runq_worker *a = t_pull_worker(c, "default", 200, 0); /* no extension */
    runq_job *ja = NULL;
    ASSERT_OK(runq_worker_next(a, &ja, 1000));
    ASSERT_EQ(runq_job_attempt(ja), 1);
    t_sleep_ms(400); /* a "hangs" past its lease */
    runq_worker *b = t_pull_worker(c, "default", 30000, 1);
    runq_job *jb = NULL;
    ASSERT_OK(runq_worker_next(b, &jb, 5000));
    ASSERT_STR(runq_job_id(jb), id);
    ASSERT_EQ(runq_job_attempt(jb), 2); /* the lost attempt counts */
    ASSERT_EQ(runq_job_ack(ja, NULL, 0), RUNQ_ESTALE);
    ASSERT_EQ(runq_job_fail(ja, "late", 0), RUNQ_ESTALE);
    ASSERT_OK(runq_job_ack(jb, NULL, 0));
    runq_job_free(ja);
    runq_job_free(jb);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    runq_job_free(snap);
    runq_worker_free(a);
    runq_worker_free(b);
    runq_client_close(c);
}

TEST(lease_expiry_past_last_attempt_is_dead) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.max_retries = 0;
    t_enqueue(c, id, "slow", 1, &o);
    runq_worker *a = t_pull_worker(c, "default", 150, 0);
    runq_job *ja = NULL;
    ASSERT_OK(runq_worker_next(a, &ja, 1000));
    t_sleep_ms(300);
    runq_job *none = NULL;
    ASSERT_EQ(runq_worker_next(a, &none, 200), RUNQ_ETIMEOUT);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT(strstr(runq_job_error(snap), "lease") != NULL);
    runq_job_free(snap);
    runq_job_free(ja);
    runq_worker_free(a);
    runq_client_close(c);
}

TEST(auto_extend_keeps_a_long_job_leased) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "long", 1, NULL);
    runq_worker *a = t_pull_worker(c, "default", 300, 1);
    runq_job *ja = NULL;
    ASSERT_OK(runq_worker_next(a, &ja, 1000));
    runq_worker *b = t_pull_worker(c, "default", 300, 1);
    runq_job *jb = NULL;
    /* Three lease lengths pass; the keeper extends every lease/3. */
    ASSERT_EQ(runq_worker_next(b, &jb, 1000), RUNQ_ETIMEOUT);
    ASSERT_OK(runq_job_ack(ja, NULL, 0));
    runq_job_free(ja);
    runq_worker_free(a);
    runq_worker_free(b);
    runq_client_close(c);
}

/* Pull mode with auto_extend prefetches: the jobs it holds ready are
 * leased and kept leased (another worker gets none of them), each reaches
 * the caller once and acks, and stop returns the unstarted ones to pending
 * at once; next() after stop is ECLOSED. */
/* Pull worker options on queue "default" (auto_extend on). */
static runq_worker_options pull_options(int concurrency) {
    static const char *qs[] = {"default"};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 1;
    wo.mode = RUNQ_WORKER_PULL;
    wo.concurrency = concurrency;
    return wo;
}

TEST(pull_prefetch_keeps_ready_jobs_leased_and_stop_releases_them) {
    runq_client *c = t_client();
    char ids[6][RUNQ_ID_SIZE];
    for (int i = 0; i < 6; i++) t_enqueue(c, ids[i], "t", i, NULL);
    runq_worker_options wo = pull_options(3); /* up to 3 held + 3 ready: all 6 */
    wo.lease_ms = 300;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    runq_job *job = NULL;
    runq_queue_stats st;
    runq_worker *b = t_pull_worker(c, "default", 300, 0);
    runq_job *other = NULL;
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(runq_worker_next(w, &job, 5000));
        ASSERT_STR(runq_job_id(job), ids[i]); /* in order, each once */
        ASSERT_EQ(runq_job_attempt(job), 1);
        if (i == 1) {
            /* The fetcher (from the second call on) leases the rest; three
             * lease lengths pass, the keeper extends the ready jobs too. */
            WAIT_UNTIL(runq_queue_stats_get(&st, c, "default") == 0 && st.pending == 0);
            ASSERT_EQ(runq_worker_next(b, &other, 1000), RUNQ_ETIMEOUT);
        }
        ASSERT_OK(runq_job_ack(job, NULL, 0)); /* not stale */
        runq_job_free(job);
    }
    ASSERT_OK(runq_worker_stop(w, 0));
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.active, 0);
    ASSERT_EQ(st.pending, 3); /* the unstarted ones, back at once */
    ASSERT_EQ(runq_worker_next(w, &job, 1000), RUNQ_ECLOSED);
    ASSERT_OK(runq_worker_next(b, &other, 1000));
    ASSERT_STR(runq_job_id(other), ids[3]);
    ASSERT_EQ(runq_job_attempt(other), 1); /* the release is not counted */
    ASSERT_OK(runq_job_ack(other, NULL, 0));
    runq_job_free(other);
    runq_worker_free(w);
    runq_worker_free(b);
    runq_client_close(c);
}

/* async_ack: runq_job_ack queues the ack and returns 0; stop waits for the
 * queued acks, each acked job is done and counted; an ack after a lost
 * lease is refused by the backend and not counted; a second ack is ESTATE;
 * a job freed before or after its ack went out is freed once. */
TEST(pull_async_ack_settles_by_stop_and_does_not_count_a_stale_ack) {
    runq_client *c = t_client();
    char ids[4][RUNQ_ID_SIZE];
    for (int i = 0; i < 4; i++) t_enqueue(c, ids[i], "t", i, NULL);
    runq_worker_options wo = pull_options(2);
    wo.async_ack = 1;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    runq_job *kept = NULL;
    for (int i = 0; i < 4; i++) {
        runq_job *job = NULL;
        ASSERT_OK(runq_worker_next(w, &job, 5000));
        ASSERT_OK(runq_job_ack(job, NULL, 0));
        ASSERT_EQ(runq_job_ack(job, NULL, 0), RUNQ_ESTATE);
        if (i == 3) kept = job; /* freed after the worker settled it */
        else runq_job_free(job);
    }
    ASSERT_OK(runq_worker_stop(w, 0));
    runq_worker_stats s;
    runq_worker_stats_get(&s, w);
    ASSERT_EQ(s.processed, 4);
    runq_job_free(kept);
    for (int i = 0; i < 4; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, ids[i]));
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        runq_job_free(snap);
    }
    runq_worker_free(w);

    /* A lease lost before the ack: the other holder's ack stands. */
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "slow", 1, NULL);
    wo.lease_ms = 200;
    wo.auto_extend = 0;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    runq_job *ja = NULL;
    ASSERT_OK(runq_worker_next(w, &ja, 1000));
    t_sleep_ms(400);
    runq_worker *b = t_pull_worker(c, "default", 30000, 1);
    runq_job *jb = NULL;
    ASSERT_OK(runq_worker_next(b, &jb, 5000));
    ASSERT_STR(runq_job_id(jb), id);
    ASSERT_OK(runq_job_ack(jb, NULL, 0));
    runq_job_free(jb);
    ASSERT_OK(runq_job_ack(ja, NULL, 0)); /* queued: the refusal goes to stats */
    runq_job_free(ja);
    ASSERT_OK(runq_worker_stop(w, 0));
    runq_worker_stats_get(&s, w);
    ASSERT_EQ(s.processed, 0);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    ASSERT_EQ(runq_job_attempt(snap), 2);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_worker_free(b);
    runq_client_close(c);
}

TEST(freeing_an_unsettled_pulled_job_releases_it) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 1000));
    runq_job_free(job);
    ASSERT_OK(runq_worker_next(w, &job, 1000)); /* back at once, not after 30 s */
    ASSERT_STR(runq_job_id(job), id);
    ASSERT_EQ(runq_job_attempt(job), 1);        /* the release is not counted */
    ASSERT_OK(runq_job_ack(job, NULL, 0));
    runq_job_free(job);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- deadlines ---- */

TEST(job_past_ttl_is_dead_never_run) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.ttl_ms = 100;
    t_enqueue(c, id, "t", 1, &o);
    t_sleep_ms(300);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *job = NULL;
    ASSERT_EQ(runq_worker_next(w, &job, 200), RUNQ_ETIMEOUT);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT_EQ(runq_job_attempt(snap), 0);
    ASSERT(strstr(runq_job_error(snap), "deadline") != NULL);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- concurrency and graceful stop ---- */

static atomic_int running_now, running_max, slow_done;
static int slow_handler(runq_job *job, void *ud) {
    (void)job;
    int ms = *(int *)ud;
    int now = atomic_fetch_add(&running_now, 1) + 1;
    for (int m = atomic_load(&running_max); now > m && !atomic_compare_exchange_weak(&running_max, &m, now);) {}
    t_sleep_ms(ms);
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&slow_done, 1);
    return 0;
}

TEST(concurrency_bounds_running_handlers) {
    runq_client *c = t_client();
    static int ms = 50;
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = slow_handler;
    to.userdata = &ms;
    ASSERT_OK(runq_task_register(NULL, c, "slow", &to));
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 12; i++) t_enqueue(c, id, "slow", i, NULL);
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 3;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL(atomic_load(&slow_done) == 12);
    ASSERT_EQ(atomic_load(&running_max), 3);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(stop_lets_running_finish_and_returns_the_rest) {
    runq_client *c = t_client();
    static int ms = 300;
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = slow_handler;
    to.userdata = &ms;
    ASSERT_OK(runq_task_register(NULL, c, "slow", &to));
    char ids[10][RUNQ_ID_SIZE];
    for (int i = 0; i < 10; i++) t_enqueue(c, ids[i], "slow", i, NULL);
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 2;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL(atomic_load(&running_now) == 2);
    ASSERT_OK(runq_worker_stop(w, 10000)); /* both finish within the grace */
    ASSERT_EQ(atomic_load(&slow_done), 2);
    runq_worker_free(w);

    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.active, 0);
    ASSERT_EQ(st.pending, 8); /* nothing lost, nothing left leased */
    int done = 0;
    for (int i = 0; i < 10; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, ids[i]));
        if (runq_job_state_get(snap) == RUNQ_STATE_DONE) done++;
        else ASSERT_EQ(runq_job_attempt(snap), 0); /* returned unstarted */
        runq_job_free(snap);
    }
    ASSERT_EQ(done, 2);
    runq_client_close(c);
}

static int until_cancelled(runq_job *job, void *ud) {
    (void)ud;
    atomic_fetch_add(&running_now, 1);
    while (!runq_job_cancelled(job)) t_sleep_ms(5);
    runq_job_set_error(job, "cancelled");
    return 1;
}

TEST(stop_past_grace_cancels_handlers) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = until_cancelled;
    ASSERT_OK(runq_task_register(NULL, c, "forever", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "forever", 1, NULL);
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, NULL));
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL(atomic_load(&running_now) == 1);
    ASSERT_EQ(runq_worker_stop(w, 100), RUNQ_ETIMEOUT);
    runq_worker_free(w); /* waits for the handler, which saw the cancel */
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_SCHEDULED); /* retried later */
    ASSERT_STR(runq_job_error(snap), "cancelled");
    runq_job_free(snap);
    runq_client_close(c);
}

static runq_worker *self_stop_worker;
static int stop_from_inside(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    return runq_worker_stop(self_stop_worker, 0);
}

TEST(stop_from_inside_a_handler_does_not_deadlock) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = stop_from_inside;
    ASSERT_OK(runq_task_register(NULL, c, "quit", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "quit", 1, NULL);
    ASSERT_OK(runq_worker_create(&self_stop_worker, c, NULL));
    ASSERT_OK(runq_worker_start(self_stop_worker));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 20000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    runq_job_free(snap);
    runq_worker_free(self_stop_worker);
    runq_client_close(c);
}

TEST(wait_times_out_on_unfinished_job) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    runq_job *snap = NULL;
    ASSERT_EQ(runq_job_wait(&snap, c, id, 100), RUNQ_ETIMEOUT);
    ASSERT(snap == NULL);
    ASSERT_EQ(runq_job_get(&snap, c, "01ARZ3NDEKTSV4RRFFQ69G5FAV"), RUNQ_ENOTFOUND);
    runq_client_close(c);
}

/* ---- handler timeout ---- */

static atomic_int saw_cancel;
static int overrun(runq_job *job, void *ud) {
    (void)ud;
    int64_t until = t_now_ms() + 400;
    while (t_now_ms() < until && !runq_job_cancelled(job)) t_sleep_ms(5);
    if (runq_job_cancelled(job)) atomic_store(&saw_cancel, 1);
    t_sleep_ms(20); /* finish "late", and claim success */
    return 0;
}

TEST(handler_overrunning_its_timeout_fails) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = overrun;
    to.timeout_ms = 50;
    to.max_retries = 0;
    ASSERT_OK(runq_task_register(NULL, c, "overrun", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "overrun", 1, NULL);
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, NULL));
    ASSERT_OK(runq_worker_start(w));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 20000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT_EQ(runq_job_timeout(snap), 50);
    ASSERT(strstr(runq_job_error(snap), "timed out") != NULL);
    ASSERT_EQ(atomic_load(&saw_cancel), 1);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(pulled_job_acked_after_its_timeout_fails) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.timeout_ms = 50;
    o.max_retries = 1;
    t_enqueue(c, id, "t", 1, &o);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *job = NULL;
    ASSERT_OK(runq_worker_next(w, &job, 1000));
    ASSERT(!runq_job_cancelled(job));
    t_sleep_ms(120);
    ASSERT(runq_job_cancelled(job));
    ASSERT_OK(runq_job_ack(job, NULL, 0)); /* settles, as a failure */
    ASSERT_EQ(runq_job_state_get(job), RUNQ_STATE_SCHEDULED);
    runq_job_free(job);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT(strstr(runq_job_error(snap), "timed out") != NULL);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

/* runq_job_cancelled and the settle-time check share one boundary: an ack
 * the moment the flag turns true (the same millisecond, mostly) is already
 * a timeout failure, never a success. */
TEST(ack_as_soon_as_cancelled_turns_true_is_timed_out) {
    runq_client *c = t_client();
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    for (int i = 0; i < 10; i++) {
        char id[RUNQ_ID_SIZE];
        runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
        o.timeout_ms = 20;
        o.max_retries = 0;
        t_enqueue(c, id, "t", i, &o);
        runq_job *job = NULL;
        ASSERT_OK(runq_worker_next(w, &job, 5000));
        int64_t until = t_now_ms() + 20000;
        while (!runq_job_cancelled(job)) ASSERT_LT(t_now_ms(), until); /* spin: no sleep */
        ASSERT_OK(runq_job_ack(job, NULL, 0));
        ASSERT_EQ(runq_job_state_get(job), RUNQ_STATE_DEAD);
        runq_job_free(job);
    }
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- periodic jobs ---- */

static atomic_int periodic_runs;
static char periodic_keys[256][64];
static int periodic_handler(runq_job *job, void *ud) {
    (void)ud;
    int i = atomic_fetch_add(&periodic_runs, 1);
    if (i < 256) snprintf(periodic_keys[i], sizeof periodic_keys[i], "%s", runq_job_unique_key(job));
    return 0;
}

TEST(periodic_job_runs_once_per_period_across_workers) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = periodic_handler;
    ASSERT_OK(runq_task_register(NULL, c, "tick", &to));
    runq_periodic_options po = RUNQ_PERIODIC_OPTIONS_INIT;
    po.task = "tick";
    po.every_ms = 100;
    runq_worker *w[3];
    for (int i = 0; i < 3; i++) { /* three workers carry the same schedule */
        ASSERT_OK(runq_worker_create(&w[i], c, NULL));
        ASSERT_OK(runq_worker_schedule(w[i], &po));
        ASSERT_OK(runq_worker_start(w[i]));
    }
    WAIT_UNTIL(atomic_load(&periodic_runs) >= 4);
    for (int i = 0; i < 3; i++) runq_worker_stop(w[i], 5000);
    int n = atomic_load(&periodic_runs);
    for (int i = 0; i < n && i < 256; i++) {
        ASSERT(strncmp(periodic_keys[i], "periodic:tick:", 14) == 0);
        long long at = atoll(periodic_keys[i] + 14);
        ASSERT_EQ(at % 100, 0); /* fire times are aligned */
        for (int k = 0; k < i; k++) ASSERT(strcmp(periodic_keys[i], periodic_keys[k]) != 0);
    }
    for (int i = 0; i < 3; i++) runq_worker_free(w[i]);
    runq_periodic_options bad = RUNQ_PERIODIC_OPTIONS_INIT;
    bad.task = "tick";
    bad.cron = "61 * * * *";
    runq_worker *x = NULL;
    ASSERT_OK(runq_worker_create(&x, c, NULL));
    ASSERT_EQ(runq_worker_schedule(x, &bad), RUNQ_EINVAL);
    bad.every_ms = 10; /* both given */
    bad.cron = "* * * * *";
    ASSERT_EQ(runq_worker_schedule(x, &bad), RUNQ_EINVAL);
    runq_worker_free(x);
    runq_client_close(c);
}

/* ---- autoscaling ---- */

static runq_worker *scaling_worker;
static atomic_int threads_max;
/* Holds until a second handler runs at the same time, which with
 * min_concurrency 1 only a grown pool can provide (bounded, to fail rather
 * than hang), then stays slow so a backlog builds. */
static int overlap_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    int now = atomic_fetch_add(&running_now, 1) + 1;
    for (int m = atomic_load(&running_max); now > m && !atomic_compare_exchange_weak(&running_max, &m, now);) {}
    runq_worker_stats s;
    runq_worker_stats_get(&s, scaling_worker);
    for (int m = atomic_load(&threads_max); s.threads > m &&
         !atomic_compare_exchange_weak(&threads_max, &m, (int)s.threads);) {}
    int64_t until = t_now_ms() + 20000;
    while (atomic_load(&running_max) < 2 && t_now_ms() < until) t_sleep_ms(2);
    t_sleep_ms(20);
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&slow_done, 1);
    return 0;
}

static runq_worker *t_scaling_worker(runq_client *c, int min, int max, int64_t idle_ms) {
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.min_concurrency = min;
    wo.max_concurrency = max;
    wo.idle_timeout_ms = idle_ms;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    return w;
}

TEST(autoscaling_pool_grows_with_backlog_and_shrinks_to_min) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = overlap_handler;
    ASSERT_OK(runq_task_register(NULL, c, "slow", &to));
    enum { N = 40 };
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < N; i++) t_enqueue(c, id, "slow", i, NULL);
    scaling_worker = t_scaling_worker(c, 1, 8, 200);
    runq_worker_stats s;
    runq_worker_stats_get(&s, scaling_worker);
    ASSERT_EQ(s.threads, 0); /* nothing runs before start */
    ASSERT_OK(runq_worker_start(scaling_worker));
    WAIT_UNTIL(atomic_load(&slow_done) == N);
    ASSERT_GT(atomic_load(&running_max), 1); /* handlers overlapped */
    ASSERT_LE(atomic_load(&running_max), 8);
    ASSERT_GT(atomic_load(&threads_max), 1); /* the stats saw the pool grow */
    ASSERT_LE(atomic_load(&threads_max), 8);
    /* No more work: every thread above min times out and exits. */
    WAIT_UNTIL((runq_worker_stats_get(&s, scaling_worker), s.threads == 1));
    runq_worker_stats_get(&s, scaling_worker);
    ASSERT_EQ(s.threads, 1);
    ASSERT_EQ(s.running, 0);
    ASSERT_EQ(s.processed, N);
    /* The pool at min still works, and grows again for a new backlog. */
    atomic_store(&running_max, 0);
    for (int i = 0; i < 4; i++) t_enqueue(c, id, "slow", i, NULL);
    WAIT_UNTIL(atomic_load(&slow_done) == N + 4);
    ASSERT_GT(atomic_load(&running_max), 1);
    runq_worker_free(scaling_worker); /* joins every thread, exited or not */
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending + st.active + st.scheduled, 0);
    runq_client_close(c);
}

static int short_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    t_sleep_ms(5);
    atomic_fetch_add(&slow_done, 1);
    return 0;
}

/* Stops land while the pool grows (a backlog just arrived) and while it
 * shrinks (threads timing out): every job ends done or back in pending
 * unstarted, none is lost or left leased. */
TEST(stop_while_the_pool_grows_or_shrinks_loses_no_job) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = short_handler;
    ASSERT_OK(runq_task_register(NULL, c, "short", &to));
    enum { ROUNDS = 6, N = 30 };
    static char ids[ROUNDS * N][RUNQ_ID_SIZE];
    int total = 0;
    for (int r = 0; r < ROUNDS; r++) {
        runq_worker *w = t_scaling_worker(c, 1, 8, 5 + r * 5);
        ASSERT_OK(runq_worker_start(w));
        for (int i = 0; i < N; i++) t_enqueue(c, ids[total++], "short", i, NULL);
        if (r % 2) { /* shrinking: the backlog drained, idle threads leave */
            WAIT_UNTIL(atomic_load(&slow_done) >= total);
        } else { /* growing: stop as soon as a second thread exists */
            runq_worker_stats s;
            WAIT_UNTIL((runq_worker_stats_get(&s, w), s.threads > 1 || atomic_load(&slow_done) >= total));
        }
        ASSERT_OK(runq_worker_stop(w, 10000));
        runq_worker_free(w);
        runq_queue_stats st;
        ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
        ASSERT_EQ(st.active, 0);
        ASSERT_EQ(st.pending + atomic_load(&slow_done), total);
    }
    /* A last worker drains what the stops returned. */
    runq_worker *w = t_scaling_worker(c, 1, 8, 50);
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL(atomic_load(&slow_done) >= total);
    runq_worker_free(w);
    ASSERT_EQ(atomic_load(&slow_done), total); /* each ran once: none twice */
    for (int i = 0; i < total; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, ids[i]));
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        runq_job_free(snap);
    }
    runq_client_close(c);
}

/* ---- push-mode acks ---- */

/* The first delivery outlives its lease (no auto_extend), so the job is
 * delivered again while it runs; the second delivery returns at once. */
static atomic_int outlive_runs;
static int outlive_lease_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    if (atomic_fetch_add(&outlive_runs, 1) == 0) {
        while (atomic_load(&outlive_runs) < 2) t_sleep_ms(5);
        t_sleep_ms(50);
    }
    return 0;
}

/* A push handler's ack (sent by the worker's acker when no after_process
 * hook is installed) that the backend refuses because the lease was lost
 * is not counted: stats count only the delivery whose ack held. */
TEST(push_ack_after_a_lost_lease_is_not_counted) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = outlive_lease_handler;
    ASSERT_OK(runq_task_register(NULL, c, "outlive", &to));
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "outlive", 1, NULL);
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 2;
    wo.lease_ms = 200;
    wo.auto_extend = 0;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL(atomic_load(&outlive_runs) >= 2);
    ASSERT_OK(runq_worker_stop(w, 20000)); /* both handlers and their acks are done */
    runq_worker_stats s;
    runq_worker_stats_get(&s, w);
    ASSERT_EQ(s.processed, 1);
    ASSERT_EQ(s.failed, 0);
    ASSERT_EQ(s.running, 0);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    runq_job_free(snap);
    runq_worker_free(w);
    ASSERT_EQ(atomic_load(&outlive_runs), 2);
    runq_client_close(c);
}

/* ---- bad input ---- */

TEST(bad_input_gets_clear_errors) {
    runq_client *c = NULL;
    const char *bad_urls[] = {"", "nothing", "ftp://x", "redis://", "redis://h:0",
                              "redis://h:99999", "redis://h:6379/x", "unix://relative",
                              "memory://{x}", "redis://h?bogus=1"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
        ASSERT_EQ(runq_client_open(&c, bad_urls[i], NULL), RUNQ_EURL);
        ASSERT(c == NULL);
        ASSERT(strlen(runq_error_last()) > 0);
    }
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    co.max_payload = 64;
    ASSERT_OK(runq_client_open(&c, check_url(), &co));
    unsigned char big[200];
    big[0] = 0xc4; /* bin8 */
    big[1] = 198;
    memset(big + 2, 'x', 198);
    char id[RUNQ_ID_SIZE];
    ASSERT_EQ(runq_enqueue(c, id, "t", big, sizeof big, NULL), RUNQ_ETOOBIG);
    ASSERT(strstr(runq_error_last(), "64") != NULL);
    static const unsigned char trunc[] = {0x93, 0x01};
    ASSERT_EQ(runq_enqueue(c, id, "t", trunc, sizeof trunc, NULL), RUNQ_EINVAL);
    static const unsigned char two[] = {0x01, 0x02};
    ASSERT_EQ(runq_enqueue(c, id, "t", two, sizeof two, NULL), RUNQ_EINVAL);
    static const unsigned char ok[] = {0x90};
    ASSERT_EQ(runq_enqueue(c, id, "bad{name}", ok, 1, NULL), RUNQ_EINVAL);
    ASSERT_EQ(runq_enqueue(c, id, "", ok, 1, NULL), RUNQ_EINVAL);
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "has space";
    ASSERT_EQ(runq_enqueue(c, id, "t", ok, 1, &o), RUNQ_EINVAL);
    o = (runq_enqueue_options)RUNQ_ENQUEUE_OPTIONS_INIT;
    o.version = 99;
    ASSERT_EQ(runq_enqueue(c, id, "t", ok, 1, &o), RUNQ_EINVAL);
    runq_job *snap = NULL;
    ASSERT_EQ(runq_job_get(&snap, c, "short"), RUNQ_EINVAL);
    /* Nothing of the refused calls was stored. */
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.pending, 0);
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 0;
    runq_worker *w = NULL;
    ASSERT_EQ(runq_worker_create(&w, c, &wo), RUNQ_EINVAL);
    runq_client_close(c);
}

TEST_MAIN()
