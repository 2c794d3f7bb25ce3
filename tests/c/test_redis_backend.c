/* Redis-only behaviour of the redis:// backend: key layout, scripts after
 * SCRIPT FLUSH, corrupt records, AUTH/SELECT, unix sockets, blocking fetch
 * wake-ups and interrupts, expiry of done jobs, errors when unreachable. */
#include "redis_support.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

TEST(keys_of_a_queue_share_one_hash_tag) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "mail";
    o.unique_key = "u1";
    t_enqueue(c, id, "send", 1, &o);
    redisContext *r = t_redis_connect(t_redis_port());
    redisReply *keys = t_cmd(r, "KEYS *");
    ASSERT_EQ(keys->type, REDIS_REPLY_ARRAY);
    ASSERT_GT(keys->elements, 0);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        /* The queue registry is the one documented exception. */
        if (strcmp(k, "runq:queues") == 0) continue;
        if (strncmp(k, "{runq:mail}:", 12) != 0) CHECK_FAIL("key %s is outside the queue's hash tag", k);
    }
    freeReplyObject(keys);
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:mail}:jobs %s", id), 1);
    ASSERT_EQ(t_cmd_int(r, "SISMEMBER runq:queues mail"), 1);
    ASSERT_GT(t_cmd_int(r, "PTTL {runq:mail}:unique:u1"), 0);
    redisFree(r);
    runq_client_close(c);
}

TEST(work_continues_after_script_flush) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    for (int round = 0; round < 3; round++) {
        char id[RUNQ_ID_SIZE];
        t_enqueue(c, id, "t", round, NULL);
        freeReplyObject(t_cmd(r, "SCRIPT FLUSH"));
        runq_job *j = NULL;
        ASSERT_OK(runq_worker_next(w, &j, 5000));
        ASSERT_STR(runq_job_id(j), id);
        freeReplyObject(t_cmd(r, "SCRIPT FLUSH"));
        ASSERT_OK(runq_job_ack(j, NULL, 0));
        runq_job_free(j);
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, id));
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        runq_job_free(snap);
    }
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST(corrupt_jobs_are_dead_lettered_not_crashed_on) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    char bad_num[RUNQ_ID_SIZE], bad_args[RUNQ_ID_SIZE], not_hash[RUNQ_ID_SIZE], good[RUNQ_ID_SIZE];
    t_enqueue(c, bad_num, "t", 1, NULL);
    t_enqueue(c, bad_args, "t", 2, NULL);
    t_enqueue(c, not_hash, "t", 3, NULL);
    t_enqueue(c, good, "t", 4, NULL);
    freeReplyObject(t_cmd(r, "HSET {runq:default}:att %s banana", bad_num));
    /* 0xc1 is never valid msgpack. */
    t_rec rec;
    t_rec_read(r, "default", bad_args, &rec);
    t_rec_set(&rec, 1, "\xc1\xc1", 2);
    t_rec_write(r, "default", bad_args, &rec);
    t_rec_free(&rec);
    freeReplyObject(t_cmd(r, "HSET {runq:default}:jobs %s garbage", not_hash));

    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_STR(runq_job_id(j), good);
    ASSERT_EQ(t_args_get_int(j), 4);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    runq_job *none = NULL;
    ASSERT_EQ(runq_worker_next(w, &none, 300), RUNQ_ETIMEOUT);

    check_dead_with(c, bad_num, "attempt");
    check_dead_with(c, bad_args, "msgpack");
    check_dead_with(c, not_hash, "corrupt");
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.dead, 3);
    ASSERT_EQ(st.pending + st.active + st.scheduled, 0);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

typedef struct fetch_arg {
    runq_worker *w;
    int rc;
    int64_t took_ms;
    runq_job *job;
} fetch_arg;

static void *fetch_thread(void *p) {
    fetch_arg *a = p;
    int64_t t0 = t_now_ms();
    a->rc = runq_worker_next(a->w, &a->job, 20000);
    a->took_ms = t_now_ms() - t0;
    return NULL;
}

/* A job enqueued while w's fetch blocks wakes it long before its 20 s
 * limit, and is the job it gets. */
static void enqueue_wakes_a_blocked_fetch(runq_client *c, runq_worker *w) {
    fetch_arg a = {w, 0, 0, NULL};
    pthread_t th;
    pthread_create(&th, NULL, fetch_thread, &a);
    t_sleep_ms(300);
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    pthread_join(th, NULL);
    ASSERT_OK(a.rc);
    ASSERT_STR(runq_job_id(a.job), id);
    ASSERT_LT(a.took_ms, 10000);
    ASSERT_OK(runq_job_ack(a.job, NULL, 0));
    runq_job_free(a.job);
}

TEST(idle_fetch_wakes_on_enqueue_and_on_due_job) {
    runq_client *c = t_client();
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    enqueue_wakes_a_blocked_fetch(c, w);

    /* A delayed job enqueued while a fetch already blocks. */
    pthread_t th;
    char id[RUNQ_ID_SIZE];
    fetch_arg b = {w, 0, 0, NULL};
    pthread_create(&th, NULL, fetch_thread, &b);
    t_sleep_ms(200);
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.delay_ms = 500;
    t_enqueue(c, id, "t", 2, &o);
    pthread_join(th, NULL);
    ASSERT_OK(b.rc);
    ASSERT_STR(runq_job_id(b.job), id);
    ASSERT_GE(runq_job_eta(b.job), runq_job_created_at(b.job) + 500);
    ASSERT_LT(b.took_ms, 10000);
    ASSERT_OK(runq_job_ack(b.job, NULL, 0));
    runq_job_free(b.job);
    runq_worker_free(w);
    runq_client_close(c);
}

/* A one-queue worker sends its next fetch behind its BZPOPMIN: when the
 * server forgot the scripts while it waited, that fetch is answered
 * NOSCRIPT and must be sent again by text, not lost. */
TEST(blocked_fetch_woken_after_script_flush_still_leases) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    for (int round = 0; round < 3; round++) {
        fetch_arg a = {w, 0, 0, NULL};
        pthread_t th;
        pthread_create(&th, NULL, fetch_thread, &a);
        t_sleep_ms(300); /* blocked by now, most likely; either way the job must come */
        freeReplyObject(t_cmd(r, "SCRIPT FLUSH"));
        char id[RUNQ_ID_SIZE];
        t_enqueue(c, id, "t", round, NULL);
        pthread_join(th, NULL);
        ASSERT_OK(a.rc);
        ASSERT_STR(runq_job_id(a.job), id);
        ASSERT_EQ(runq_job_attempt(a.job), 1);
        ASSERT_OK(runq_job_ack(a.job, NULL, 0));
        runq_job_free(a.job);
    }
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.active + st.pending, 0);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

/* A pull worker of c blocked in its fetch wait, stopped: the fetch ends
 * long before its 20 s wait would. */
static void stop_a_blocked_fetch(runq_client *c) {
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    fetch_arg a = {w, 0, 0, NULL};
    pthread_t th;
    pthread_create(&th, NULL, fetch_thread, &a);
    t_sleep_ms(300);
    int64_t t0 = t_now_ms();
    runq_worker_stop(w, 0);
    pthread_join(th, NULL);
    ASSERT_LT(t_now_ms() - t0, 5000);
    ASSERT(a.rc == RUNQ_ECLOSED || a.rc == RUNQ_ETIMEOUT);
    runq_worker_free(w);
}

TEST(stop_interrupts_a_blocked_fetch) {
    runq_client *c = t_client();
    stop_a_blocked_fetch(c);
    runq_client_close(c);
}

/* An interrupt ends a blocked wait by CLIENT UNBLOCK; a user the server
 * denies that command still gets its stop, by the socket being shut down,
 * and the client's next blocking fetch works on a new connection. */
TEST(stop_interrupts_a_blocked_fetch_where_client_unblock_is_denied) {
    int port = t_redis_port();
    redisContext *r = t_redis_connect(port);
    freeReplyObject(t_cmd(r, "ACL SETUSER bob on >builder ~* &* +@all -client|unblock"));
    char url[256];
    snprintf(url, sizeof url, "redis://bob:builder@127.0.0.1:%d/0", port);
    runq_client *c = t_client_at(url);
    stop_a_blocked_fetch(c);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    enqueue_wakes_a_blocked_fetch(c, w);
    runq_worker_free(w);
    runq_client_close(c);
    freeReplyObject(t_cmd(r, "ACL DELUSER bob"));
    redisFree(r);
}

/* The server's clock in ms. */
static long long server_ms(redisContext *r) {
    redisReply *t = t_cmd(r, "TIME");
    ASSERT_EQ(t->type, REDIS_REPLY_ARRAY);
    long long ms = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    return ms;
}

/* When the kept result of done job id of queue "default" expires: its field
 * in jobs is "4|expiry|..." (docs/redis-backend.md); 0 when it is no such
 * value. */
static long long kept_expiry(redisContext *r, const char *id) {
    redisReply *v = t_cmd(r, "HGET {runq:default}:jobs %s", id);
    long long at = v->type == REDIS_REPLY_STRING && v->len > 2 && !memcmp(v->str, "4|", 2)
                       ? atoll(v->str + 2) : 0;
    freeReplyObject(v);
    return at;
}

TEST(auth_and_select_db) {
    int port = t_redis_port();
    redisContext *r = t_redis_connect(port);
    freeReplyObject(t_cmd(r, "ACL SETUSER alice on >wonder ~* &* +@all"));
    freeReplyObject(t_cmd(r, "CONFIG SET requirepass sesame"));
    char url[256];
    /* Password only, database 3. */
    snprintf(url, sizeof url, "redis://:sesame@127.0.0.1:%d/3", port);
    runq_client *c = t_client_at(url);
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    runq_client_close(c);
    freeReplyObject(t_cmd(r, "AUTH sesame"));
    freeReplyObject(t_cmd(r, "SELECT 3"));
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:default}:jobs %s", id), 1);
    freeReplyObject(t_cmd(r, "SELECT 0"));
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:default}:jobs %s", id), 0);

    /* User and password. */
    snprintf(url, sizeof url, "redis://alice:wonder@127.0.0.1:%d/3", port);
    c = t_client_at(url);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    runq_job_free(snap);
    runq_client_close(c);

    /* Wrong password: a clear error, not a hang. */
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d/3", port);
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    co.command_timeout_ms = 1000;
    c = NULL;
    ASSERT_OK(runq_client_open(&c, url, &co));
    ASSERT_NE(runq_job_get(&snap, c, id), 0);
    ASSERT(strlen(runq_error_last()) > 0);
    runq_client_close(c);
    freeReplyObject(t_cmd(r, "CONFIG SET requirepass %s", ""));
    redisFree(r);
}

TEST(unix_socket_url) {
    t_server s = {0};
    t_server_start(&s, NULL);
    char url[400];
    snprintf(url, sizeof url, "unix://%s?db=2", s.sock);
    runq_client *c = t_client_at(url);
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 9, NULL);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_EQ(t_args_get_int(j), 9);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    runq_worker_free(w);
    runq_client_close(c);
    redisContext *r = t_redis_connect(s.port);
    freeReplyObject(t_cmd(r, "SELECT 2"));
    ASSERT(kept_expiry(r, id) > 0); /* done, result kept */
    redisFree(r);
    t_server_destroy(&s);
}

/* A client keeping results for ttl_ms on queue "default". */
static runq_client *client_keeping(int64_t ttl_ms) {
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    co.result_ttl_ms = ttl_ms;
    runq_client *c = NULL;
    ASSERT_OK(runq_client_open(&c, check_url(), &co));
    return c;
}

/* Enqueue a job through c, lease it with a pull worker of c and ack it. */
static void run_one(runq_client *c, char id[RUNQ_ID_SIZE], int64_t arg) {
    t_enqueue(c, id, "t", arg, NULL);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_STR(runq_job_id(j), id);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    runq_worker_free(w);
}

/* Whether runq_job_get finds no job id (any other error fails the test). */
static bool job_gone(runq_client *c, const char *id) {
    runq_job *snap = NULL;
    int rc = runq_job_get(&snap, c, id);
    if (rc == RUNQ_ENOTFOUND) return true;
    ASSERT_OK(rc);
    runq_job_free(snap);
    return false;
}

TEST(done_jobs_expire_with_their_result_ttl) {
    runq_client *c = client_keeping(400);
    char id[RUNQ_ID_SIZE];
    redisContext *r = t_redis_connect(t_redis_port());
    long long now = server_ms(r);
    run_one(c, id, 1);
    /* Kept in the job's own field, in place of its record, and listed
     * under its TTL (docs/redis-backend.md, "Kept results"). */
    long long expiry = kept_expiry(r, id);
    ASSERT_GT(expiry, now);
    ASSERT_LE(expiry, server_ms(r) + 400);
    ASSERT_EQ(t_cmd_int(r, "SISMEMBER {runq:default}:rttl 400"), 1);
    ASSERT_EQ(t_cmd_int(r, "LLEN {runq:default}:rexp:400"), 1);
    ASSERT_EQ(t_state(c, id), RUNQ_STATE_DONE);
    /* Past its time it is gone for get at once, though nothing swept it:
     * no worker of c is left to run a fetch or an ack. */
    WAIT_UNTIL(job_gone(c, id));
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:default}:jobs %s", id), 1);
    /* The next fetch that leases nothing sweeps it, its list and its TTL. */
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_EQ(runq_worker_next(w, &j, 100), RUNQ_ETIMEOUT);
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:default}:jobs %s", id), 0);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:rexp:400 {runq:default}:rttl"), 0);
    redisFree(r);
    runq_worker_free(w);
    runq_client_close(c);
}

/* A done job's value that cannot be read is reported as malformed, not as
 * a job that does not exist. */
TEST(an_unreadable_kept_result_is_an_error_not_a_missing_job) {
    runq_client *c = client_keeping(600000);
    char id[RUNQ_ID_SIZE];
    run_one(c, id, 1);
    redisContext *r = t_redis_connect(t_redis_port());
    freeReplyObject(t_cmd(r, "HSET {runq:default}:jobs %s 4|not-a-time|", id));
    runq_job *snap = NULL;
    ASSERT_EQ(runq_job_get(&snap, c, id), RUNQ_EPROTO);
    if (!strstr(runq_error_last(), "malformed")) CHECK_FAIL("unclear error: %s", runq_error_last());
    redisFree(r);
    runq_client_close(c);
}

/* Two clients keep results for different TTLs on one queue: an ack sweeps
 * the expired results of either TTL and leaves the others. */
TEST(an_ack_sweeps_expired_results_of_every_ttl) {
    runq_client *brief = client_keeping(300), *lasting = client_keeping(600000);
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE], later[RUNQ_ID_SIZE];
    run_one(brief, a, 1);
    run_one(lasting, b, 2);
    redisContext *r = t_redis_connect(t_redis_port());
    ASSERT_EQ(t_cmd_int(r, "SCARD {runq:default}:rttl"), 2);
    WAIT_UNTIL(job_gone(brief, a));
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:default}:jobs %s", a), 1);
    run_one(lasting, later, 3); /* its fetch took a job: the ack sweeps */
    ASSERT_EQ(t_cmd_int(r, "HEXISTS {runq:default}:jobs %s", a), 0);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:default}:rexp:300"), 0);
    ASSERT_EQ(t_cmd_int(r, "SISMEMBER {runq:default}:rttl 300"), 0);
    ASSERT_EQ(t_cmd_int(r, "LLEN {runq:default}:rexp:600000"), 2);
    ASSERT_EQ(t_state(lasting, b), RUNQ_STATE_DONE);
    ASSERT_EQ(t_state(brief, later), RUNQ_STATE_DONE);
    ASSERT(kept_expiry(r, b) <= kept_expiry(r, later));
    redisFree(r);
    runq_client_close(brief);
    runq_client_close(lasting);
}

TEST(unreachable_redis_fails_within_the_timeout) {
    int port = t_free_port(); /* nothing listens there */
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?connect_timeout=200&timeout=500", port);
    runq_client *c = t_client_at(url);
    unsigned char buf[16];
    size_t len = t_args_int(buf, 1);
    int64_t t0 = t_now_ms();
    int rc = runq_enqueue(c, NULL, "t", buf, len, NULL);
    ASSERT(rc == RUNQ_ETIMEOUT || rc == RUNQ_EIO);
    ASSERT_LT(t_now_ms() - t0, 3000);
    if (!strstr(runq_error_last(), "redis")) CHECK_FAIL("unclear error: %s", runq_error_last());
    runq_client_close(c);
}

typedef struct wait_arg {
    runq_client *c;
    const char *id;
    int rc;
    int64_t took_ms;
    runq_job *job;
} wait_arg;

static void *wait_thread(void *p) {
    wait_arg *a = p;
    int64_t t0 = t_now_ms();
    a->rc = runq_job_wait(&a->job, a->c, a->id, 20000);
    a->took_ms = t_now_ms() - t0;
    return NULL;
}

TEST(job_wait_blocks_on_a_finish_notice) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    wait_arg a = {c, id, 0, 0, NULL}, b = {c, id, 0, 0, NULL};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, wait_thread, &a);
    pthread_create(&tb, NULL, wait_thread, &b); /* two waiters: both wake */
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    t_sleep_ms(300);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_OK(a.rc);
    ASSERT_OK(b.rc);
    ASSERT_EQ(runq_job_state_get(a.job), RUNQ_STATE_DONE);
    ASSERT_EQ(runq_job_state_get(b.job), RUNQ_STATE_DONE);
    ASSERT_LT(a.took_ms, 5000);
    runq_job_free(a.job);
    runq_job_free(b.job);
    redisContext *r = t_redis_connect(t_redis_port());
    long long ttl = t_cmd_int(r, "PTTL {runq:default}:done:%s", id);
    ASSERT_GT(ttl, 0);
    ASSERT_LE(ttl, 60000);
    redisFree(r);
    runq_worker_free(w);
    runq_client_close(c);
}

/* A number in INFO <section>: the value after `prefix` (as "calls=" in
 * "cmdstat_evalsha:calls=3,..."), or 0 when the line is not there. */
static long long t_info_num(redisContext *r, const char *section, const char *line,
                            const char *prefix) {
    redisReply *rep = t_cmd(r, "INFO %s", section);
    long long v = 0;
    const char *p = strstr(rep->str, line);
    if (p) p = strstr(p, prefix);
    if (p) v = atoll(p + strlen(prefix));
    freeReplyObject(rep);
    return v;
}

static int noop(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    return 0;
}

static void register_noop(runq_client *c, const char *task) {
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = noop;
    ASSERT_OK(runq_task_register(NULL, c, task, &to));
}

static int64_t t_processed(runq_worker *w) {
    runq_worker_stats st;
    runq_worker_stats_get(&st, w);
    return st.processed;
}

/* A worker woken for one job at a time asks once per job: the fetch sent
 * behind its BZPOPMIN takes the job, and since that fetch came back short
 * (the queue drained) the worker waits again at once, without another fetch
 * that could only find nothing. So the scripts per job are one enqueue, one
 * fetch per wait and one ack. */
TEST(a_worker_fed_one_job_at_a_time_sends_one_fetch_per_wait) {
    runq_client *c = t_client();
    register_noop(c, "one");
    redisContext *r = t_redis_connect(t_redis_port());
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 4; /* each fetch asks for more than the one job there is */
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL(t_info_num(r, "clients", "blocked_clients", "blocked_clients:") == 1);
    t_cmd_int(r, "CONFIG RESETSTAT");
    enum { N = 10 };
    for (int i = 0; i < N; i++) {
        t_enqueue(c, NULL, "one", i, NULL);
        WAIT_UNTIL(t_processed(w) == i + 1);
        /* Acked (the last lease takes the key with it), and waiting again. */
        WAIT_UNTIL(t_cmd_int(r, "EXISTS {runq:default}:lease") == 0);
        WAIT_UNTIL(t_info_num(r, "clients", "blocked_clients", "blocked_clients:") == 1);
    }
    long long scripts = t_info_num(r, "commandstats", "cmdstat_evalsha:", "calls=");
    long long waits = t_info_num(r, "commandstats", "cmdstat_bzpopmin:", "calls=");
    ASSERT_GE(waits, N);
    /* Enqueues, acks, one fetch behind each wait; the first enqueue and ack
     * are sent again by text (EVAL) after the server answered NOSCRIPT. */
    long long noscript = t_info_num(r, "commandstats", "cmdstat_evalsha:", "failed_calls=");
    long long by_text = t_info_num(r, "commandstats", "cmdstat_eval:", "calls=");
    ASSERT_EQ(scripts - noscript + by_text, N + N + waits);
    ASSERT_OK(runq_worker_stop(w, 5000));
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

/* A stop right after a start: the fetcher's first wait has often not
 * reached the server when the interrupt's CLIENT UNBLOCK does, and an
 * UNBLOCK for a client not blocked yet does nothing. It is sent again until
 * the wait has ended; before, such a stop waited 1 s for the fallback, the
 * shutdown of the connection (about 1 stop in 500 of this loop). A shutdown
 * costs the connection, and a new fetch then dials a new one, so once the
 * first cycles have left an idle connection in the pool, the server must
 * see no new connection. */
TEST(stops_right_after_start_end_the_wait_by_unblock_not_by_shutdown) {
    runq_client *c = t_client();
    register_noop(c, "t");
    redisContext *r = t_redis_connect(t_redis_port());
    long long before = 0;
    for (int i = 0; i < 1520; i++) {
        if (i == 20)
            before = t_info_num(r, "stats", "total_connections_received:",
                                "total_connections_received:");
        runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
        wo.concurrency = 2;
        runq_worker *w = NULL;
        ASSERT_OK(runq_worker_create(&w, c, &wo));
        ASSERT_OK(runq_worker_start(w));
        usleep((useconds_t)(i % 20) * 50); /* the stop lands anywhere in the first ms */
        ASSERT_OK(runq_worker_stop(w, 1000));
        runq_worker_free(w);
    }
    long long after =
        t_info_num(r, "stats", "total_connections_received:", "total_connections_received:");
    ASSERT_EQ(after - before, 0);
    redisFree(r);
    runq_client_close(c);
}

TEST_MAIN()
