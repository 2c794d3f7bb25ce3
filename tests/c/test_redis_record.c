/* The Redis job record, version 2: one string per job in the queue's jobs
 * hash holding what enqueue knew (docs/protocol.md); a waiting job has no
 * lease or attempt entries; a priority-0 job waits in the ready list and a
 * prioritised one in the pending zset; a record whose header is not numbers
 * is dead-lettered. Runs against a private redis-server. */
#include "client.h"
#include "job.h"
#include "redis_support.h"

TEST(a_waiting_job_is_one_record_and_one_queue_entry) {
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
    t_rec ra, rb;
    t_rec_read(r, "rec", a, &ra);
    t_rec_read(r, "rec", b, &rb);
    ASSERT_EQ(ra.h[0], 2);
    ASSERT_EQ(ra.h[2], 0);         /* prio */
    ASSERT_EQ(ra.h[5], 0);         /* timeout */
    ASSERT_EQ(ra.h[6], 0);         /* deadline */
    ASSERT_EQ(ra.len[2], 0);       /* no unique key */
    ASSERT_STR(ra.s[0], "t");
    ASSERT_EQ(rb.h[2], 5);
    ASSERT_EQ(rb.h[5], 7000);
    ASSERT_GT(rb.h[6], rb.h[3]);   /* deadline after created */
    ASSERT_EQ(rb.h[7], 9000);
    ASSERT_STR(rb.s[2], "u");
    t_rec_free(&ra);
    t_rec_free(&rb);
    /* Where they wait; nothing leased, no attempt state yet. */
    ASSERT_EQ(t_cmd_int(r, "LLEN {runq:rec}:ready"), 1);
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:rec}:pending"), 1);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:rec}:lease {runq:rec}:att"), 0);
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
    /* Both run: the higher priority first, each with attempt 1, each leased
     * with a "token|attempt" entry while held. */
    runq_worker *w = t_pull_worker(c, "rec", 30000, 1);
    const char *order[2] = {b, a};
    for (int i = 0; i < 2; i++) {
        runq_job *j = NULL;
        ASSERT_OK(runq_worker_next(w, &j, 5000));
        ASSERT_STR(runq_job_id(j), order[i]);
        ASSERT_EQ(runq_job_attempt(j), 1);
        ASSERT_EQ(j->deadline_ms > 0, i == 0);
        char want[64];
        snprintf(want, sizeof want, "%llu|1", (unsigned long long)j->lease_token);
        redisReply *lv = t_cmd(r, "HGET {runq:rec}:lease %s", order[i]);
        ASSERT_EQ(lv->type, REDIS_REPLY_STRING);
        ASSERT_STR(lv->str, want);
        freeReplyObject(lv);
        ASSERT_OK(runq_job_ack(j, NULL, 0));
        runq_job_free(j);
    }
    /* Done: no lease, and each record became its kept result (the client's
     * default result TTL; docs/redis-backend.md, "Kept results"). */
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:rec}:lease"), 0);
    for (int i = 0; i < 2; i++) {
        redisReply *v = t_cmd(r, "HGET {runq:rec}:jobs %s", order[i]);
        ASSERT_EQ(v->type, REDIS_REPLY_STRING);
        ASSERT_EQ(memcmp(v->str, "4|", 2), 0);
        freeReplyObject(v);
    }
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST(a_record_header_that_is_not_numbers_is_dead_lettered) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "rec";
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &o);
    t_rec rec;
    t_rec_read(r, "rec", id, &rec);
    /* The deadline field (7th) as a word. */
    char raw[512];
    int n = snprintf(raw, sizeof raw, "2|%lld|%lld|%lld|%lld|%lld|soon|%lld|%lld|%lld|%zu|%zu|0|0|0|%s",
                     rec.h[1], rec.h[2], rec.h[3], rec.h[4], rec.h[5], rec.h[7], rec.h[8], rec.h[9],
                     rec.len[0], rec.len[1], rec.s[0]);
    ASSERT(n > 0 && (size_t)n + rec.len[1] < sizeof raw);
    memcpy(raw + n, rec.s[1], rec.len[1]);
    freeReplyObject(t_cmd(r, "HSET {runq:rec}:jobs %s %b", id, raw, (size_t)n + rec.len[1]));
    t_rec_free(&rec);
    /* A negative number where only the priority may be one (the timeout):
     * the client's parser refuses it as the scripts' parser does. */
    char neg[RUNQ_ID_SIZE];
    t_enqueue(c, neg, "t", 2, &o);
    t_rec_read(r, "rec", neg, &rec);
    rec.h[5] = -5;
    t_rec_write(r, "rec", neg, &rec);
    t_rec_free(&rec);
    runq_worker *w = t_pull_worker(c, "rec", 30000, 1);
    runq_job *j = NULL;
    ASSERT_EQ(runq_worker_next(w, &j, 500), RUNQ_ETIMEOUT);
    check_dead_with(c, id, "corrupt job: the job record is malformed");
    check_dead_with(c, neg, "corrupt job: the job record is malformed");
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

/* _record.lua's LEASE_PAD */
#define LEASE_PAD "~runq~lease~pad~" \
    "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"

/* The lease keys use hash tables from the first lease (LEASE_PAD in
 * _record.lua), the pad is never counted or due, and it leaves with the
 * last lease. */
static void t_encoding(redisContext *r, const char *key, const char *want) {
    redisReply *e = t_cmd(r, "OBJECT ENCODING %s", key);
    ASSERT_EQ(e->type, REDIS_REPLY_STRING);
    ASSERT_STR(e->str, want);
    freeReplyObject(e);
}

TEST(lease_keys_are_hash_tables_and_the_pad_leaves_with_the_last_lease) {
    runq_client *c = t_client();
    redisContext *r = t_redis_connect(t_redis_port());
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "pad";
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE];
    t_enqueue(c, a, "t", 1, &o);
    t_enqueue(c, b, "t", 2, &o);
    runq_worker *w = t_pull_worker(c, "pad", 30000, 0);
    runq_job *ja = NULL, *jb = NULL;
    ASSERT_OK(runq_worker_next(w, &ja, 5000));
    ASSERT_OK(runq_worker_next(w, &jb, 5000));
    t_encoding(r, "{runq:pad}:active", "skiplist");
    t_encoding(r, "{runq:pad}:lease", "hashtable");
    t_encoding(r, "{runq:pad}:lgroups", "hashtable");
    redisReply *pad = t_cmd(r, "ZSCORE {runq:pad}:active %s", LEASE_PAD);
    ASSERT_EQ(pad->type, REDIS_REPLY_STRING);
    ASSERT_STR(pad->str, "inf");
    freeReplyObject(pad);
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "pad"));
    ASSERT_EQ(st.active, 2);
    ASSERT_OK(runq_job_ack(ja, NULL, 0));
    runq_job_free(ja);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:pad}:active {runq:pad}:lease"), 2);
    ASSERT_OK(runq_job_fail(jb, "boom", 60000));
    runq_job_free(jb);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:pad}:active {runq:pad}:lease {runq:pad}:lgroups"), 0);
    ASSERT_OK(runq_queue_stats_get(&st, c, "pad"));
    ASSERT_EQ(st.active, 0);
    ASSERT_EQ(st.scheduled, 1);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

static long long t_group_count(redisContext *r, uint64_t token) {
    redisReply *v = t_cmd(r, "HGET {runq:grp}:lgroups #%llu", (unsigned long long)token);
    long long n = v->type == REDIS_REPLY_STRING ? atoll(v->str) : -1;
    freeReplyObject(v);
    return n;
}

/* Enqueue k jobs to queue "grp" (ids into id) and lease them with one
 * fetch call of lease_ms; returns the k jobs (the caller frees them). */
static runq_job **t_fetch_grp(runq_client *c, char (*id)[RUNQ_ID_SIZE], size_t k,
                              int64_t lease_ms) {
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "grp";
    for (size_t i = 0; i < k; i++) t_enqueue(c, id[i], "t", (int)i, &o);
    const char *qs[1] = {"grp"};
    rq_fetch_request req = {qs, 1, NULL, lease_ms, k, 5000};
    runq_job **j = NULL;
    size_t n = 0;
    ASSERT_OK(c->backend->ops->fetch(c->backend, &req, &j, &n));
    ASSERT_EQ(n, k);
    return j;
}

/* A fetch call's leases share one entry in active ("@token") and one group
 * in lgroups (the ids, and how many are still leased under it); an extend
 * gives a job an entry of its own; the group goes with its last job, and
 * the keys with the last lease (docs/redis-backend.md, "Leases"). */
TEST(one_active_entry_per_fetch_call_until_its_last_job_settles) {
    runq_client *c = t_client();
    runq_backend *b = c->backend;
    redisContext *r = t_redis_connect(t_redis_port());
    char id[3][RUNQ_ID_SIZE];
    size_t n = 3;
    runq_job **j = t_fetch_grp(c, id, n, 30000);
    uint64_t token = j[0]->lease_token;
    ASSERT_EQ(j[1]->lease_token, token);
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:grp}:active"), 2); /* the pad and the group */
    redisReply *e = t_cmd(r, "ZSCORE {runq:grp}:active @%llu", (unsigned long long)token);
    ASSERT_EQ(e->type, REDIS_REPLY_STRING);
    ASSERT_EQ(atoll(e->str), j[0]->lease_until_ms);
    freeReplyObject(e);
    redisReply *ids = t_cmd(r, "HGET {runq:grp}:lgroups %llu", (unsigned long long)token);
    ASSERT_EQ(ids->type, REDIS_REPLY_STRING);
    char want[3 * RUNQ_ID_LEN + 1];
    snprintf(want, sizeof want, "%s%s%s", id[0], id[1], id[2]);
    ASSERT_STR(ids->str, want);
    freeReplyObject(ids);
    ASSERT_EQ(t_group_count(r, token), 3);

    ASSERT_OK(b->ops->ack(b, j[0], NULL, 0, 60000));
    ASSERT_EQ(t_group_count(r, token), 2);
    int result = -1;
    ASSERT_OK(b->ops->extend(b, &j[1], &result, 1, 60000, false));
    ASSERT_EQ(result, 0);
    ASSERT_EQ(t_group_count(r, token), 1);
    e = t_cmd(r, "ZSCORE {runq:grp}:active %s", id[1]);
    ASSERT_EQ(e->type, REDIS_REPLY_STRING);
    ASSERT_EQ(atoll(e->str), j[1]->lease_until_ms);
    freeReplyObject(e);
    redisReply *lv = t_cmd(r, "HGET {runq:grp}:lease %s", id[1]);
    ASSERT_EQ(lv->type, REDIS_REPLY_STRING);
    char own[64];
    snprintf(own, sizeof own, "%llu|1|x", (unsigned long long)token);
    ASSERT_STR(lv->str, own);
    freeReplyObject(lv);
    runq_job *snap = NULL; /* a snapshot reads the job's own expiry */
    ASSERT_OK(runq_job_get(&snap, c, id[1]));
    ASSERT_EQ(snap->lease_until_ms, j[1]->lease_until_ms);
    runq_job_free(snap);

    ASSERT_OK(b->ops->ack(b, j[2], NULL, 0, 60000)); /* the group's last job */
    ASSERT_EQ(t_cmd_int(r, "HLEN {runq:grp}:lgroups"), 1); /* the pad */
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:grp}:active"), 2); /* the pad and id[1]'s own */
    ASSERT_OK(b->ops->ack(b, j[1], NULL, 0, 60000));
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:grp}:active {runq:grp}:lease {runq:grp}:lgroups"), 0);
    for (size_t i = 0; i < n; i++) runq_job_free(j[i]);
    rq_free(j);
    redisFree(r);
    runq_client_close(c);
}

/* The keeper holds every unsettled job of a fetch, so its extend moves the
 * fetch's group entry and gives no job an entry of its own; a job extended
 * alone before keeps its own. Once the group was recovered by another
 * fetch, the old holder's extend finds every job of it stale. */
TEST(the_keepers_extend_moves_the_group_entry_and_finds_a_recovered_group_stale) {
    runq_client *c = t_client();
    char id[3][RUNQ_ID_SIZE];
    size_t n = 3;
    runq_job **j = t_fetch_grp(c, id, n, 30000);
    runq_backend *b = c->backend;
    uint64_t token = j[0]->lease_token;
    int results[3] = {-1, -1, -1};
    redisContext *r = t_redis_connect(t_redis_port());
    ASSERT_OK(b->ops->extend(b, &j[2], results, 1, 30000, false)); /* its own entry */
    ASSERT_EQ(results[0], 0);
    int64_t before = j[0]->lease_until_ms;
    results[0] = -1;
    ASSERT_OK(b->ops->extend(b, j, results, 3, 90000, true));
    for (int i = 0; i < 3; i++) ASSERT_EQ(results[i], 0);
    ASSERT(j[0]->lease_until_ms > before);
    ASSERT_EQ(j[1]->lease_until_ms, j[0]->lease_until_ms);
    ASSERT_EQ(t_cmd_int(r, "ZCARD {runq:grp}:active"), 3); /* the pad, the group, id[2]'s own */
    redisReply *e = t_cmd(r, "ZSCORE {runq:grp}:active @%llu", (unsigned long long)token);
    ASSERT_EQ(e->type, REDIS_REPLY_STRING);
    ASSERT_EQ(atoll(e->str), j[0]->lease_until_ms);
    freeReplyObject(e);
    e = t_cmd(r, "ZSCORE {runq:grp}:active %s", id[2]);
    ASSERT_EQ(e->type, REDIS_REPLY_STRING);
    ASSERT_EQ(atoll(e->str), j[2]->lease_until_ms);
    freeReplyObject(e);
    redisReply *lv = t_cmd(r, "HGET {runq:grp}:lease %s", id[0]);
    char plain[64];
    snprintf(plain, sizeof plain, "%llu|1", (unsigned long long)token);
    ASSERT_STR(lv->str, plain); /* no mark: it still expires with its group */
    freeReplyObject(lv);
    ASSERT_EQ(t_group_count(r, token), 2);
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(b->ops->ack(b, j[i], NULL, 0, 60000));
        runq_job_free(j[i]);
    }
    rq_free(j);
    ASSERT_EQ(t_cmd_int(r, "EXISTS {runq:grp}:active {runq:grp}:lease {runq:grp}:lgroups"), 0);

    /* A group that lapsed and was recovered: its jobs are another's now. */
    n = 2;
    j = t_fetch_grp(c, id, n, 200);
    t_sleep_ms(400);
    const char *qs[1] = {"grp"};
    rq_fetch_request req = {qs, 1, NULL, 30000, 2, 5000};
    runq_job **again = NULL;
    size_t m = 0;
    ASSERT_OK(b->ops->fetch(b, &req, &again, &m));
    ASSERT_EQ(m, 2);
    results[0] = results[1] = -1;
    ASSERT_OK(b->ops->extend(b, j, results, 2, 30000, true));
    ASSERT_EQ(results[0], RUNQ_ESTALE);
    ASSERT_EQ(results[1], RUNQ_ESTALE);
    ASSERT_OK(b->ops->extend(b, again, results, 2, 30000, true)); /* the new holder's */
    ASSERT_EQ(results[0], 0);
    ASSERT_EQ(results[1], 0);
    for (size_t i = 0; i < n; i++) runq_job_free(j[i]);
    for (size_t i = 0; i < m; i++) runq_job_free(again[i]);
    rq_free(j);
    rq_free(again);
    redisFree(r);
    runq_client_close(c);
}

TEST_MAIN()
