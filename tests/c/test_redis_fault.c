/* Fault tests with real processes: worker processes killed or stopped
 * mid-job, redis-server killed and restarted (AOF), SCRIPT FLUSH, replicas
 * going away. Worker processes are this same program re-executed with
 * RUNQ_CHILD_ROLE set (see child_main below). */
#include "redis_support.h"

#include <pthread.h>

/* ---- child processes ----------------------------------------------------- */

static redisContext *child_redis(void) { return t_redis_connect(t_redis_port()); }

/* Handler of the exclusivity test: flags any job seen running twice at once. */
static int exclusive_handler(runq_job *job, void *ud) {
    (void)ud;
    redisContext *r = child_redis();
    const char *id = runq_job_id(job);
    redisReply *rep = t_cmd(r, "SET excl:running:%s 1 NX PX 30000", id);
    if (rep->type == REDIS_REPLY_NIL) freeReplyObject(t_cmd(r, "INCR excl:violations"));
    freeReplyObject(rep);
    t_sleep_ms(5);
    freeReplyObject(t_cmd(r, "DEL excl:running:%s", id));
    freeReplyObject(t_cmd(r, "RPUSH excl:ran %s", id));
    redisFree(r);
    return 0;
}

static int child_exclusive(void) {
    runq_client *c = t_client();
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = exclusive_handler;
    ASSERT_OK(runq_task_register(NULL, c, "excl", &to));
    const char *qs[1] = {"excl"};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 1;
    wo.concurrency = 4;
    wo.lease_ms = 2000;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    for (;;) pause(); /* until the parent kills us */
    return 0;
}

/* Fetch one job, say so, then hang (killed or stopped by the parent). */
static int child_hold(const char *queue, int64_t lease_ms) {
    runq_client *c = t_client();
    runq_worker *w = t_pull_worker(c, queue, lease_ms, 0);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 10000));
    redisContext *r = child_redis();
    freeReplyObject(t_cmd(r, "RPUSH %s:fetched %s", queue, runq_job_id(j)));
    if (strcmp(queue, "hang") == 0)
        for (;;) pause();
    /* "stopped": after SIGCONT, wait for the parent's go, then try the ack. */
    while (t_cmd_int(r, "EXISTS stopped:go") == 0) t_sleep_ms(20);
    unsigned char res[16];
    size_t n = t_args_int(res, 111);
    int rc = runq_job_ack(j, res, n);
    freeReplyObject(t_cmd(r, "RPUSH stopped:ackrc %d", rc));
    redisFree(r);
    runq_job_free(j);
    runq_worker_free(w);
    runq_client_close(c);
    return 0;
}

__attribute__((constructor)) static void child_main(void) {
    const char *role = getenv("RUNQ_CHILD_ROLE");
    if (!role) return;
    int rc = 2;
    if (strcmp(role, "exclusive") == 0) rc = child_exclusive();
    else if (strcmp(role, "hang") == 0) rc = child_hold("hang", 1000);
    else if (strcmp(role, "stopped") == 0) rc = child_hold("stopped", 800);
    _exit(rc);
}

static pid_t spawn_child(const char *role) {
    pid_t pid = fork();
    if (pid < 0) CHECK_FAIL("fork failed");
    if (pid == 0) {
        setenv("RUNQ_CHILD_ROLE", role, 1);
        execl("/proc/self/exe", "runq-test-child", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void kill_child(pid_t pid) {
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- tests ----------------------------------------------------------------- */

TEST(two_worker_processes_never_run_one_job_at_once) {
    enum { N = 200 };
    pid_t a = spawn_child("exclusive"), b = spawn_child("exclusive");
    runq_client *c = t_client();
    runq_enqueue_item items[N];
    unsigned char args[N][16];
    for (int i = 0; i < N; i++) {
        memset(&items[i], 0, sizeof items[i]);
        items[i].task = "excl";
        items[i].args = args[i];
        items[i].args_len = t_args_int(args[i], i);
        static runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
        o.queue = "excl";
        items[i].opts = &o;
    }
    ASSERT_OK(runq_enqueue_many(c, items, N));
    redisContext *r = t_redis_connect(t_redis_port());
    WAIT_UNTIL(t_cmd_int(r, "LLEN excl:ran") >= N);
    t_sleep_ms(200);
    kill_child(a);
    kill_child(b);
    ASSERT_EQ(t_cmd_int(r, "GET excl:violations"), -1); /* never set */
    ASSERT_EQ(t_cmd_int(r, "LLEN excl:ran"), N);
    for (int i = 0; i < N; i++) {
        runq_job *snap = NULL;
        ASSERT_OK(runq_job_get(&snap, c, items[i].id));
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        ASSERT_EQ(runq_job_attempt(snap), 1);
        runq_job_free(snap);
    }
    redisFree(r);
    runq_client_close(c);
}

TEST(killed_worker_job_is_redelivered_after_its_lease) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "hang";
    t_enqueue(c, id, "t", 5, &o);
    pid_t child = spawn_child("hang");
    redisContext *r = t_redis_connect(t_redis_port());
    WAIT_UNTIL(t_cmd_int(r, "LLEN hang:fetched") == 1);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    runq_worker *w = t_pull_worker(c, "hang", 30000, 1);
    runq_job *j = NULL;
    /* Blocks until the dead worker's lease lapses, then gets it. */
    ASSERT_OK(runq_worker_next(w, &j, 15000));
    ASSERT_STR(runq_job_id(j), id);
    ASSERT_EQ(runq_job_attempt(j), 2);
    ASSERT_STR(runq_job_error(j), "lease expired");
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 5000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    runq_job_free(snap);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

TEST(stopped_worker_past_its_lease_is_fenced) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = "stopped";
    t_enqueue(c, id, "t", 5, &o);
    pid_t child = spawn_child("stopped");
    redisContext *r = t_redis_connect(t_redis_port());
    WAIT_UNTIL(t_cmd_int(r, "LLEN stopped:fetched") == 1);
    kill(child, SIGSTOP);
    runq_worker *w = t_pull_worker(c, "stopped", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 15000));
    ASSERT_STR(runq_job_id(j), id);
    ASSERT_EQ(runq_job_attempt(j), 2);
    unsigned char res[16];
    size_t n = t_args_int(res, 222);
    ASSERT_OK(runq_job_ack(j, res, n));
    runq_job_free(j);
    kill(child, SIGCONT);
    freeReplyObject(t_cmd(r, "SET stopped:go 1"));
    WAIT_UNTIL(t_cmd_int(r, "LLEN stopped:ackrc") == 1);
    redisReply *rc = t_cmd(r, "LINDEX stopped:ackrc 0");
    ASSERT_EQ(atoi(rc->str), RUNQ_ESTALE);
    freeReplyObject(rc);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
    size_t len;
    const void *got = runq_job_result(snap, &len);
    ASSERT(len == n && memcmp(got, res, n) == 0); /* the second run's result stands */
    runq_job_free(snap);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

static const char *const aof_flags[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};

TEST(restart_with_aof_between_enqueue_and_fetch_loses_nothing) {
    enum { N = 50 };
    t_server s = {0};
    t_server_start(&s, aof_flags);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", s.port);
    runq_client *c = t_client_at(url);
    char ids[N][RUNQ_ID_SIZE];
    for (int i = 0; i < N; i++) {
        runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
        o.delay_ms = i % 5 == 0 ? 300 : 0;
        t_enqueue(c, ids[i], "t", i, &o);
    }
    t_server_kill(&s, SIGKILL); /* no shutdown save: only the AOF keeps it */
    t_server_start(&s, aof_flags);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    bool seen[N] = {false};
    for (int got = 0; got < N;) {
        runq_job *j = NULL;
        int rc = runq_worker_next(w, &j, 10000);
        if (rc == RUNQ_EIO || rc == RUNQ_ETIMEOUT) continue; /* still reconnecting */
        ASSERT_OK(rc);
        int64_t i = t_args_get_int(j);
        ASSERT(i >= 0 && i < N && !seen[i]);
        ASSERT_STR(runq_job_id(j), ids[i]);
        seen[i] = true;
        got++;
        ASSERT_OK(runq_job_ack(j, NULL, 0));
        runq_job_free(j);
    }
    runq_worker_free(w);
    runq_client_close(c);
    t_server_destroy(&s);
}

/* ---- restart under load ---- */

enum { LOAD_N = 150 };
static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static char load_ids[LOAD_N][RUNQ_ID_SIZE];
static atomic_int load_enqueued;
static atomic_int load_ran;

static int load_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    atomic_fetch_add(&load_ran, 1);
    t_sleep_ms(2);
    return 0;
}

/* Enqueue task with [n], retrying a failed enqueue as a new job, as a
 * producer would, for up to 15 s. */
static void enqueue_retrying(runq_client *c, char id[RUNQ_ID_SIZE], const char *task, int n) {
    unsigned char buf[16];
    size_t len = t_args_int(buf, n);
    int64_t give_up = t_now_ms() + 15000;
    int rc;
    while ((rc = runq_enqueue(c, id, task, buf, len, NULL)) != 0) {
        if (t_now_ms() > give_up) CHECK_FAIL("enqueue kept failing: %d", rc);
        t_sleep_ms(20);
    }
}

/* A push worker of concurrency 4 on the default queue, started, with
 * task's retries quick. */
static runq_worker *start_worker(runq_client *c, const char *task, runq_handler_fn handler,
                                 int64_t backoff_min_ms, int64_t backoff_max_ms) {
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = handler;
    to.backoff_min_ms = backoff_min_ms;
    to.backoff_max_ms = backoff_max_ms;
    ASSERT_OK(runq_task_register(NULL, c, task, &to));
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 4;
    wo.lease_ms = 1000;
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    return w;
}

static void *producer(void *p) {
    runq_client *c = p;
    for (int i = 0; i < LOAD_N; i++) {
        char id[RUNQ_ID_SIZE];
        enqueue_retrying(c, id, "load", i);
        pthread_mutex_lock(&load_mu);
        memcpy(load_ids[i], id, RUNQ_ID_SIZE);
        pthread_mutex_unlock(&load_mu);
        atomic_fetch_add(&load_enqueued, 1);
        t_sleep_ms(3);
    }
    return NULL;
}

TEST(redis_restart_under_load_reconnects_and_carries_on) {
    t_server s = {0};
    t_server_start(&s, aof_flags);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?timeout=1000", s.port);
    runq_client *c = t_client_at(url);
    runq_worker *w = start_worker(c, "load", load_handler, 50, 200);
    pthread_t th;
    pthread_create(&th, NULL, producer, c);
    WAIT_UNTIL(atomic_load(&load_enqueued) >= LOAD_N / 3);
    t_server_kill(&s, SIGKILL);
    t_sleep_ms(300);
    t_server_start(&s, aof_flags);
    pthread_join(th, NULL);
    ASSERT_EQ(atomic_load(&load_enqueued), LOAD_N);
    /* Every accepted job completes (at least once). */
    for (int i = 0; i < LOAD_N; i++) {
        runq_job *snap = NULL;
        int64_t until = t_now_ms() + 30000;
        int rc;
        while ((rc = runq_job_wait(&snap, c, load_ids[i], 2000)) != 0) {
            if (t_now_ms() > until) CHECK_FAIL("job %d (%s) never finished: %d", i, load_ids[i], rc);
        }
        ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DONE);
        runq_job_free(snap);
    }
    ASSERT_GE(atomic_load(&load_ran), LOAD_N);
    runq_worker_free(w);
    runq_client_close(c);
    t_server_destroy(&s);
}

TEST(replicate_confirms_with_a_replica_and_reports_unknown_durability_without) {
    t_server m = {0}, rs = {0};
    t_server_start(&m, NULL);
    char mport[16];
    snprintf(mport, sizeof mport, "%d", m.port);
    const char *rflags[] = {"--replicaof", "127.0.0.1", mport, NULL};
    t_server_start(&rs, rflags);
    redisContext *r = t_redis_connect(m.port);
    WAIT_UNTIL(t_cmd_int(r, "WAIT 1 100") == 1);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", m.port);
    runq_client *c = t_client_at(url);
    unsigned char buf[16];
    size_t len = t_args_int(buf, 1);
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.replicate = 1;
    o.replicate_timeout_ms = 2000;
    char id[RUNQ_ID_SIZE];
    ASSERT_OK(runq_enqueue(c, id, "t", buf, len, &o));

    t_server_kill(&rs, SIGSTOP); /* the replica stops acknowledging */
    o.replicate_timeout_ms = 300;
    char id2[RUNQ_ID_SIZE];
    ASSERT_EQ(runq_enqueue(c, id2, "t", buf, len, &o), RUNQ_EDURABILITY);
    if (!strstr(runq_error_last(), "unknown")) CHECK_FAIL("unclear: %s", runq_error_last());
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id2)); /* written on the primary all the same */
    runq_job_free(snap);
    runq_client_close(c);
    redisFree(r);
    t_server_destroy(&rs);
    t_server_destroy(&m);
}

/* ---- SIGPIPE ------------------------------------------------------------- */

/* A write to a socket that the server has closed and then reset raises
 * SIGPIPE on the writing thread, and its default action ends the process;
 * a C program keeps that default. Here the server drops every client
 * connection every millisecond or so while producers write batches and a
 * worker fetches and acks, with SIGPIPE at its default. */
static atomic_int pipe_ran;
static atomic_bool pipe_stop;

static int pipe_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    atomic_fetch_add(&pipe_ran, 1);
    return 0;
}

static void *pipe_producer(void *p) {
    runq_client *c = p;
    /* [bin of 2044 zero bytes]: big enough that writes fill socket buffers */
    unsigned char big[2048] = {0x91, 0xc5, 0x07, 0xfc};
    runq_enqueue_item items[64];
    for (size_t i = 0; i < 64; i++)
        items[i] = (runq_enqueue_item){.task = "pipe", .args = big, .args_len = sizeof big};
    while (!atomic_load(&pipe_stop)) runq_enqueue_many(c, items, 64); /* failures expected */
    return NULL;
}

/* A pull-mode worker without auto_extend fetches on its caller's thread:
 * this one, whose SIGPIPE is not blocked. It takes jobs from the same
 * queue as the push worker. */
static void *pipe_puller(void *p) {
    runq_worker *w = p;
    while (!atomic_load(&pipe_stop)) {
        runq_job *j = NULL;
        if (runq_worker_next(w, &j, 50) != 0 || !j) continue;
        pipe_handler(j, NULL);
        runq_job_ack(j, NULL, 0); /* may fail: the lease then lapses */
        runq_job_free(j);
    }
    return NULL;
}

TEST(server_dropping_connections_under_load_raises_no_sigpipe) {
    signal(SIGPIPE, SIG_DFL);
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?timeout=1000", t_redis_port());
    runq_client *c = t_client_at(url);
    runq_worker *w = start_worker(c, "pipe", pipe_handler, 1, 10);
    runq_worker *pw = t_pull_worker(c, "default", 2000, 0);
    pthread_t th[5];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, pipe_producer, c);
    pthread_create(&th[4], NULL, pipe_puller, pw);
    redisContext *r = t_redis_connect(t_redis_port());
    for (int i = 0; i < 3000; i++) {
        freeReplyObject(t_cmd(r, "CLIENT KILL TYPE normal SKIPME yes"));
        usleep(500);
    }
    atomic_store(&pipe_stop, true);
    for (int i = 0; i < 5; i++) pthread_join(th[i], NULL);
    runq_worker_free(pw);
    /* The process is alive, and the engine carries on. */
    int before = atomic_load(&pipe_ran);
    char id[RUNQ_ID_SIZE];
    enqueue_retrying(c, id, "pipe", 1);
    WAIT_UNTIL(atomic_load(&pipe_ran) > before);
    redisFree(r);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST_MAIN()
