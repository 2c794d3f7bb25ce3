/* runq_bench -- throughput, latency, memory and command-count figures for
 * the runq C engine against a Redis server (or memory://).
 *
 *   runq_bench MODE [options]
 *
 * Modes:
 *   enqueue    T producer threads enqueue N jobs (runq_enqueue, or
 *              runq_enqueue_many when --batch > 1)
 *   process    pre-fill N jobs (not timed), then W push-mode workers with a
 *              no-op handler drain them
 *   e2e        producers and workers at once; time until N jobs are acked
 *   latency    one producer at a fixed offered load (--rate jobs/s for
 *              --seconds); the handler records enqueue->handler-start time,
 *              the enqueue time travels in the msgpack args; first, as a
 *              reference, the same load as a bare LPUSH -> BRPOP hand-off
 *              between two threads of this process (a Redis URL only)
 *   memory     Redis used_memory before/after N waiting jobs, against the
 *              same payloads in a plain Redis list
 *   commands   every command the server sees per job, by MONITOR, for
 *              enqueue (single and batched), and fetch+ack
 *   servercpu  Redis server CPU time per job for the same three phases
 *              (INFO cpu deltas), and per plain pipelined LPUSH, RPOP and
 *              EVALSHA 'return 1' on the same server: the server-side ceiling
 *
 * Options:
 *   --url URL          backend (default redis://127.0.0.1:6390)
 *   -n N               jobs (default 100000)
 *   --threads T        producer threads (default 1)
 *   --batch B          jobs per runq_enqueue_many call (default 1: runq_enqueue)
 *   --workers W        workers, each on its own client (default 1)
 *   --concurrency C    handler threads per worker (default 8)
 *   --rate R           latency: offered jobs/s (default 1000)
 *   --seconds S        latency: run time (default 5)
 *   --max-seconds S    give up on a throughput run after S seconds (default 60)
 *   --queue Q          queue name (default "bench")
 *   --result-ttl MS    how long done jobs are kept: -1 (the default here)
 *                      keeps nothing, as the peers are run (BullMQ
 *                      removeOnComplete, Celery and Dramatiq without a
 *                      result backend, RQ result_ttl=0); 0 the library's
 *                      default (1 h); process and e2e figures then end in
 *                      _keep
 *
 * Every figure is printed as one line:
 *   RESULT <name> <value> <unit>
 * so bench/run.sh can collect it. Other output is commentary. */
#include <runq.h>

#include <hiredis/hiredis.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Options and helpers                                                 */
/* ------------------------------------------------------------------ */

static const char *opt_url = "redis://127.0.0.1:6390";
static long opt_n = 100000;
static int opt_threads = 1;
static int opt_batch = 1;
static int opt_workers = 1;
static int opt_concurrency = 8;
static double opt_rate = 1000;
static double opt_seconds = 5;
static double opt_max_seconds = 60;
static const char *opt_queue = "bench";
static int64_t opt_result_ttl = RUNQ_RESULT_TTL_NONE;
static const char *opt_task = "bench.noop";

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double secs_since(int64_t t0) { return (double)(mono_ns() - t0) / 1e9; }

static void sleep_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void die_rc(int rc, const char *what) {
    fprintf(stderr, "runq_bench: %s: %s (%s)\n", what, runq_strerror(rc), runq_error_last());
    exit(1);
}

static void result(const char *name, double value, const char *unit) {
    printf("RESULT %s %.6g %s\n", name, value, unit);
    fflush(stdout);
}

static const char *keep_suffix(void) {
    return opt_result_ttl == RUNQ_RESULT_TTL_NONE ? "" : "_keep";
}

static runq_client *open_client(void) {
    runq_client *c = NULL;
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    co.command_timeout_ms = 30000;
    co.result_ttl_ms = opt_result_ttl;
    int rc = runq_client_open(&c, opt_url, &co);
    if (rc) die_rc(rc, "runq_client_open");
    /* A producer-only registration, so enqueue (opts NULL) goes to the bench
     * queue; workers_create replaces it with one that has a handler. */
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.queue = opt_queue;
    rc = runq_task_register(NULL, c, opt_task, &to);
    if (rc) die_rc(rc, "runq_task_register");
    return c;
}

/* A small msgpack payload: [uint64 i] (10 bytes), like a job id argument. */
static size_t make_args(unsigned char *buf, uint64_t v) {
    buf[0] = 0x91;
    buf[1] = 0xcf;
    for (int k = 0; k < 8; k++) buf[2 + k] = (unsigned char)(v >> (56 - 8 * k));
    return 10;
}

static uint64_t read_args(const unsigned char *buf, size_t len) {
    if (len < 10 || buf[0] != 0x91 || buf[1] != 0xcf) return 0;
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v = (v << 8) | buf[2 + k];
    return v;
}

/* ------------------------------------------------------------------ */
/* Hiredis side channel (INFO, FLUSHALL, MONITOR)                      */
/* ------------------------------------------------------------------ */

static void redis_addr(char *host, size_t hostsz, int *port) {
    /* redis://[user:pass@]host[:port][/db] -- the bench only needs host:port. */
    const char *p = strstr(opt_url, "://");
    p = p ? p + 3 : opt_url;
    const char *at = strchr(p, '@');
    if (at) p = at + 1;
    size_t n = strcspn(p, ":/?");
    if (n >= hostsz) n = hostsz - 1;
    memcpy(host, p, n);
    host[n] = 0;
    *port = 6379;
    if (p[n] == ':') *port = atoi(p + n + 1);
}

static redisContext *redis_side(void) {
    if (strncmp(opt_url, "redis://", 8) != 0) {
        fprintf(stderr, "runq_bench: this mode needs a redis:// URL\n");
        exit(2);
    }
    char host[256];
    int port;
    redis_addr(host, sizeof host, &port);
    redisContext *r = redisConnect(host, port);
    if (!r || r->err) {
        fprintf(stderr, "runq_bench: cannot connect to %s:%d\n", host, port);
        exit(1);
    }
    return r;
}

static void redis_cmd(redisContext *r, const char *cmd) {
    redisReply *rep = redisCommand(r, cmd);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "runq_bench: %s: %s\n", cmd, rep ? rep->str : r->errstr);
        exit(1);
    }
    freeReplyObject(rep);
}

/* A numeric field of INFO <section>. */
static double redis_info_num(redisContext *r, const char *section, const char *field) {
    redisReply *rep = redisCommand(r, "INFO %s", section);
    if (!rep || rep->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "runq_bench: INFO failed\n");
        exit(1);
    }
    double v = -1;
    size_t fl = strlen(field);
    for (const char *p = rep->str; p && *p;) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            v = strtod(p + fl + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    freeReplyObject(rep);
    return v;
}

static long long redis_int(redisContext *r, const char *cmd) {
    redisReply *rep = redisCommand(r, cmd);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep) freeReplyObject(rep);
    return v;
}

/* ------------------------------------------------------------------ */
/* Workers with a no-op handler                                        */
/* ------------------------------------------------------------------ */

static atomic_long handled;

/* Latency samples: enqueue->handler-start, ns. */
static int64_t *lat_samples;
static atomic_long lat_count;
static long lat_cap;

static int noop_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    return 0;
}

static int latency_handler(runq_job *job, void *ud) {
    (void)ud;
    int64_t now = mono_ns();
    size_t len = 0;
    const unsigned char *a = runq_job_args(job, &len);
    uint64_t sent = a ? read_args(a, len) : 0;
    long i = atomic_fetch_add(&lat_count, 1);
    if (sent && i < lat_cap) lat_samples[i] = now - (int64_t)sent;
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    return 0;
}

typedef struct workers {
    runq_client *clients[64];
    runq_worker *w[64];
    int n;
} workers;

static void workers_create(workers *ws, runq_handler_fn fn) {
    ws->n = opt_workers > 64 ? 64 : opt_workers;
    for (int i = 0; i < ws->n; i++) {
        ws->clients[i] = open_client();
        runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
        to.queue = opt_queue;
        to.handler = fn;
        int rc = runq_task_register(NULL, ws->clients[i], opt_task, &to);
        if (rc) die_rc(rc, "runq_task_register");
        runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
        const char *qs[1] = {opt_queue};
        wo.queues = qs;
        wo.nqueues = 1;
        wo.concurrency = opt_concurrency;
        rc = runq_worker_create(&ws->w[i], ws->clients[i], &wo);
        if (rc) die_rc(rc, "runq_worker_create");
    }
}

static void workers_start(workers *ws) {
    for (int i = 0; i < ws->n; i++) {
        int rc = runq_worker_start(ws->w[i]);
        if (rc) die_rc(rc, "runq_worker_start");
    }
}

static long workers_processed(workers *ws) {
    long sum = 0;
    for (int i = 0; i < ws->n; i++) {
        runq_worker_stats st;
        runq_worker_stats_get(&st, ws->w[i]);
        sum += (long)st.processed;
    }
    return sum;
}

static void workers_free(workers *ws) {
    for (int i = 0; i < ws->n; i++) runq_worker_stop(ws->w[i], 5000);
    for (int i = 0; i < ws->n; i++) {
        runq_worker_free(ws->w[i]);
        runq_client_close(ws->clients[i]);
    }
}

/* Wait until the workers have acked `target` jobs or the time is up.
 * Returns the acked count. */
static long wait_processed(workers *ws, long target, int64_t t0) {
    long done = 0;
    while ((done = workers_processed(ws)) < target && secs_since(t0) < opt_max_seconds)
        sleep_ns(200000);
    return done;
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */
/* ------------------------------------------------------------------ */

typedef struct producer {
    pthread_t th;
    runq_client *c;
    long from, count;
    int batch;
    int errors;
} producer;

static void *producer_main(void *arg) {
    producer *p = arg;
    int b = p->batch;
    runq_enqueue_item *items = calloc((size_t)b, sizeof *items);
    unsigned char (*bufs)[16] = calloc((size_t)b, 16);
    for (long i = 0; i < p->count;) {
        if (b <= 1) {
            unsigned char buf[16];
            size_t len = make_args(buf, (uint64_t)(p->from + i));
            int rc = runq_enqueue(p->c, NULL, opt_task, buf, len, NULL);
            if (rc && p->errors++ < 3)
                fprintf(stderr, "enqueue: %s (%s)\n", runq_strerror(rc), runq_error_last());
            i++;
            continue;
        }
        long k = p->count - i < b ? p->count - i : b;
        for (long j = 0; j < k; j++) {
            items[j].task = opt_task;
            items[j].args = bufs[j];
            items[j].args_len = make_args(bufs[j], (uint64_t)(p->from + i + j));
            items[j].opts = NULL;
        }
        int rc = runq_enqueue_many(p->c, items, (size_t)k);
        if (rc && p->errors++ < 3)
            fprintf(stderr, "enqueue_many: %s (%s)\n", runq_strerror(rc), runq_error_last());
        i += k;
    }
    free(items);
    free(bufs);
    return NULL;
}

/* Enqueue n jobs with `threads` producer threads sharing client c (the
 * normal case: one client per process, thread-safe). Returns seconds. */
static double produce(runq_client *c, long n, int threads, int batch) {
    producer *ps = calloc((size_t)threads, sizeof *ps);
    int64_t t0 = mono_ns();
    long from = 0;
    for (int t = 0; t < threads; t++) {
        ps[t].c = c;
        ps[t].from = from;
        ps[t].count = n / threads + (t < n % threads ? 1 : 0);
        ps[t].batch = batch;
        from += ps[t].count;
        pthread_create(&ps[t].th, NULL, producer_main, &ps[t]);
    }
    int errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ps[t].th, NULL);
        errors += ps[t].errors;
    }
    double s = secs_since(t0);
    free(ps);
    if (errors) fprintf(stderr, "runq_bench: %d enqueue errors\n", errors);
    return s;
}

/* ------------------------------------------------------------------ */
/* Modes                                                               */
/* ------------------------------------------------------------------ */

static void flush_if_redis(void) {
    if (strncmp(opt_url, "redis://", 8) != 0) return;
    redisContext *r = redis_side();
    redis_cmd(r, "FLUSHALL");
    redisFree(r);
}

static int mode_enqueue(void) {
    flush_if_redis();
    runq_client *c = open_client();
    double s = produce(c, opt_n, opt_threads, opt_batch);
    char name[96];
    snprintf(name, sizeof name, "enqueue_b%d_t%d", opt_batch, opt_threads);
    printf("enqueued %ld jobs in %.3f s (batch %d, %d threads)\n", opt_n, s, opt_batch, opt_threads);
    result(name, (double)opt_n / s, "jobs/s");
    runq_client_close(c);
    return 0;
}

static int mode_process(void) {
    flush_if_redis();
    runq_client *c = open_client();
    double fs = produce(c, opt_n, 2, opt_batch > 1 ? opt_batch : 500);
    printf("pre-filled %ld jobs in %.3f s\n", opt_n, fs);
    workers ws;
    workers_create(&ws, noop_handler);
    int64_t t0 = mono_ns();
    workers_start(&ws);
    long done = wait_processed(&ws, opt_n, t0);
    double s = secs_since(t0);
    printf("processed %ld/%ld jobs in %.3f s (%d workers x %d)\n", done, opt_n, s, ws.n,
           opt_concurrency);
    char name[96];
    snprintf(name, sizeof name, "process_w%d_c%d%s", ws.n, opt_concurrency, keep_suffix());
    result(name, (double)done / s, "jobs/s");
    workers_free(&ws);
    runq_client_close(c);
    return done == opt_n ? 0 : 1;
}

static int mode_e2e(void) {
    flush_if_redis();
    runq_client *c = open_client();
    workers ws;
    workers_create(&ws, noop_handler);
    workers_start(&ws);
    sleep_ns(200000000); /* let the workers block on the empty queue */
    int64_t t0 = mono_ns();
    double ps = produce(c, opt_n, opt_threads, opt_batch);
    long done = wait_processed(&ws, opt_n, t0);
    double s = secs_since(t0);
    printf("end-to-end: %ld/%ld jobs acked in %.3f s (producers done after %.3f s; "
           "%d threads batch %d; %d workers x %d)\n",
           done, opt_n, s, ps, opt_threads, opt_batch, ws.n, opt_concurrency);
    char name[96];
    snprintf(name, sizeof name, "e2e_b%d_t%d_w%d_c%d%s", opt_batch, opt_threads, ws.n,
             opt_concurrency, keep_suffix());
    result(name, (double)done / s, "jobs/s");
    workers_free(&ws);
    runq_client_close(c);
    return done == opt_n ? 0 : 1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentiles of n samples (ns), sorted in place, reported in ms under
 * prefix: "<prefix>_p50" and so on. */
static void report_latency(const char *prefix, int64_t *v, long n, double *p50, double *p99,
                           double *p999, double *mx) {
    *p50 = *p99 = *p999 = *mx = 0;
    if (n > 0) {
        qsort(v, (size_t)n, sizeof *v, cmp_i64);
        *p50 = v[(long)(n * 0.50)] / 1e6;
        *p99 = v[(long)(n * 0.99)] / 1e6;
        *p999 = v[(long)(n * 0.999)] / 1e6;
        *mx = v[n - 1] / 1e6;
    }
    char name[64];
    snprintf(name, sizeof name, "%s_p50", prefix);
    result(name, *p50, "ms");
    snprintf(name, sizeof name, "%s_p99", prefix);
    result(name, *p99, "ms");
    snprintf(name, sizeof name, "%s_p999", prefix);
    result(name, *p999, "ms");
    snprintf(name, sizeof name, "%s_max", prefix);
    result(name, *mx, "ms");
}

typedef struct handoff {
    redisContext *r;
    int64_t *samples;
    long n, got;
} handoff;

/* The reference consumer: BRPOP until n items came or a wait found none. */
static void *handoff_consumer(void *arg) {
    handoff *h = arg;
    while (h->got < h->n) {
        redisReply *rep = redisCommand(h->r, "BRPOP runq_bench:handoff 2");
        int64_t now = mono_ns();
        bool item = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2;
        if (item) h->samples[h->got++] = now - strtoll(rep->element[1]->str, NULL, 10);
        if (rep) freeReplyObject(rep);
        if (!item) break;
    }
    return NULL;
}

/* What this Redis and this machine give the same offered load without
 * runq: one thread LPUSHes its send time, another BRPOPs it. The same two
 * hops (producer -> Redis -> consumer) as enqueue -> handler start, with
 * one thread to wake where runq's path wakes several. */
static void ref_handoff_latency(long n, int64_t period) {
    handoff h = {.r = redis_side(), .samples = calloc((size_t)n, sizeof(int64_t)), .n = n};
    redisContext *prod = redis_side(); /* the key is gone: flush_if_redis ran */
    pthread_t th;
    pthread_create(&th, NULL, handoff_consumer, &h);
    sleep_ns(100000000);
    int64_t t0 = mono_ns();
    for (long i = 0; i < n; i++) {
        int64_t due = t0 + i * period, now = mono_ns();
        if (due > now) sleep_ns(due - now);
        redisReply *rep = redisCommand(prod, "LPUSH runq_bench:handoff %lld", (long long)mono_ns());
        if (!rep) {
            fprintf(stderr, "runq_bench: LPUSH: %s\n", prod->errstr);
            exit(1);
        }
        freeReplyObject(rep);
    }
    pthread_join(th, NULL);
    double p50, p99, p999, mx;
    report_latency("ref_handoff_latency", h.samples, h.got, &p50, &p99, &p999, &mx);
    printf("reference LPUSH->BRPOP hand-off at the same load (%ld/%ld): p50 %.3f ms p99 %.3f ms "
           "p99.9 %.3f ms max %.3f ms\n", h.got, n, p50, p99, p999, mx);
    free(h.samples);
    redisFree(h.r);
    redisFree(prod);
}

static int mode_latency(void) {
    flush_if_redis();
    long n = (long)(opt_rate * opt_seconds);
    int64_t period = (int64_t)(1e9 / opt_rate);
    if (!strncmp(opt_url, "redis://", 8)) ref_handoff_latency(n, period);
    lat_cap = n;
    lat_samples = calloc((size_t)n, sizeof *lat_samples);
    runq_client *c = open_client();
    workers ws;
    workers_create(&ws, latency_handler);
    workers_start(&ws);
    sleep_ns(300000000);
    /* Warm-up: scripts loaded, connections up. */
    unsigned char buf[16];
    for (int i = 0; i < 50; i++) {
        size_t len = make_args(buf, 0);
        runq_enqueue(c, NULL, opt_task, buf, len, NULL);
    }
    sleep_ns(300000000);
    atomic_store(&lat_count, 0);
    atomic_store(&handled, 0);

    int64_t t0 = mono_ns();
    int64_t enq_max = 0, enq_sum = 0;
    for (long i = 0; i < n; i++) {
        int64_t due = t0 + i * period, now = mono_ns();
        if (due > now) sleep_ns(due - now);
        int64_t sent = mono_ns();
        size_t len = make_args(buf, (uint64_t)sent);
        int rc = runq_enqueue(c, NULL, opt_task, buf, len, NULL);
        if (rc) die_rc(rc, "enqueue");
        int64_t d = mono_ns() - sent;
        enq_sum += d;
        if (d > enq_max) enq_max = d;
    }
    double offered = (double)n / secs_since(t0);
    int64_t tw = mono_ns();
    while (atomic_load(&handled) < n && secs_since(tw) < 10) sleep_ns(1000000);
    long got = atomic_load(&lat_count);
    if (got > n) got = n;
    double p50, p99, p999, mx;
    report_latency("latency", lat_samples, got, &p50, &p99, &p999, &mx);
    printf("latency at %.0f jobs/s offered (%ld/%ld handled): p50 %.3f ms p99 %.3f ms "
           "p99.9 %.3f ms max %.3f ms; enqueue call mean %.3f ms max %.3f ms\n",
           offered, got, n, p50, p99, p999, mx, enq_sum / 1e6 / (double)n, enq_max / 1e6);
    result("latency_enqueue_call_mean", enq_sum / 1e6 / (double)n, "ms");
    workers_free(&ws);
    runq_client_close(c);
    free(lat_samples);
    return got == n ? 0 : 1;
}

static int mode_memory(void) {
    redisContext *r = redis_side();
    redis_cmd(r, "FLUSHALL");
    redis_cmd(r, "CONFIG SET activedefrag no");
    sleep_ns(200000000);
    runq_client *c = open_client();
    /* One job first so the queue's own keys (zsets, marker) exist. */
    unsigned char buf[16];
    size_t len = make_args(buf, 0);
    runq_enqueue(c, NULL, opt_task, buf, len, NULL);
    double before = redis_info_num(r, "memory", "used_memory");
    long long keys0 = redis_int(r, "DBSIZE");
    produce(c, opt_n, 1, 1000);
    double after = redis_info_num(r, "memory", "used_memory");
    long long keys1 = redis_int(r, "DBSIZE");
    double per = (after - before) / (double)opt_n;
    printf("runq: %ld waiting jobs: used_memory +%.0f bytes, %.1f bytes/job, %.2f keys/job; "
           "payload %zu bytes, task name %zu bytes\n",
           opt_n, after - before, per, (double)(keys1 - keys0) / (double)opt_n, len,
           strlen(opt_task));
    result("memory_per_job", per, "bytes");
    result("memory_per_job_beyond_payload", per - (double)len, "bytes");
    result("keys_per_job", (double)(keys1 - keys0) / (double)opt_n, "keys");
    runq_client_close(c);

    /* Reference: the same payloads as plain list elements. */
    redis_cmd(r, "FLUSHALL");
    sleep_ns(200000000);
    redisCommand(r, "RPUSH ref:list x");
    before = redis_info_num(r, "memory", "used_memory");
    for (long i = 0; i < opt_n; i++) {
        len = make_args(buf, (uint64_t)i + 1);
        redisAppendCommand(r, "RPUSH ref:list %b", buf, len);
        if (i % 1000 == 999 || i == opt_n - 1) {
            long k = i % 1000 + 1;
            for (long j = 0; j < k; j++) {
                redisReply *rep;
                if (redisGetReply(r, (void **)&rep) != REDIS_OK) exit(1);
                freeReplyObject(rep);
            }
        }
    }
    after = redis_info_num(r, "memory", "used_memory");
    per = (after - before) / (double)opt_n;
    printf("reference: %ld payloads in one Redis list: %.1f bytes each\n", opt_n, per);
    result("memory_ref_list_per_item", per, "bytes");
    redis_cmd(r, "FLUSHALL");
    redisFree(r);
    return 0;
}

/* MONITOR on a side connection: count what clients send and what scripts
 * call, per command name. */
typedef struct monitor {
    pthread_t th;
    atomic_int stop;
    redisContext *r;
    char names[64][32];
    long client_calls[64], script_calls[64];
    int n;
} monitor;

static void monitor_count(monitor *m, const char *name, int from_script) {
    int i;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->names[i], name) == 0) break;
    if (i == m->n) {
        if (m->n == 64) return;
        snprintf(m->names[i], sizeof m->names[i], "%s", name);
        m->client_calls[i] = m->script_calls[i] = 0;
        m->n++;
    }
    if (from_script)
        m->script_calls[i]++;
    else
        m->client_calls[i]++;
}

#define MONITOR_STOP_WORD "runq-bench-monitor-stop"

static void *monitor_main(void *arg) {
    monitor *m = arg;
    while (1) {
        redisReply *rep = NULL;
        if (redisGetReply(m->r, (void **)&rep) != REDIS_OK) break;
        if (rep->type == REDIS_REPLY_STATUS && strstr(rep->str, MONITOR_STOP_WORD)) {
            freeReplyObject(rep);
            break;
        }
        if (rep->type == REDIS_REPLY_STATUS && rep->str[0] != 'O') {
            /* 1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" ...
             * 1700000000.123456 [0 lua] "HSET" ...  (called by a script) */
            const char *br = strchr(rep->str, '[');
            const char *q = br ? strstr(br, "] \"") : NULL;
            if (br && q) {
                const char *sp = strchr(br, ' ');
                int from_script = sp && sp < q && strncmp(sp, " lua]", 5) == 0;
                char name[32];
                size_t k = strcspn(q + 3, "\"");
                if (k >= sizeof name) k = sizeof name - 1;
                for (size_t j = 0; j < k; j++) {
                    char ch = q[3 + j];
                    name[j] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
                }
                name[k] = 0;
                /* EVALSHA: name the script by its SHA1 when run.sh passed
                 * RUNQ_BENCH_SHAS="sha8=name,..." (from the script files). */
                const char *sha = !from_script && strcmp(name, "evalsha") == 0
                                      ? strstr(q + 3 + k, "\"") : NULL;
                const char *map = getenv("RUNQ_BENCH_SHAS");
                if (sha && map && strlen(sha) > 10) {
                    sha += 3; /* past: " "  */
                    char key[16];
                    snprintf(key, sizeof key, "%.8s=", sha);
                    const char *hit = strstr(map, key);
                    if (hit) {
                        hit += 9;
                        size_t nl = strcspn(hit, ",");
                        if (nl > 20) nl = 20;
                        snprintf(name, sizeof name, "evalsha:%.*s", (int)nl, hit);
                    }
                }
                monitor_count(m, name, from_script);
            }
        }
        freeReplyObject(rep);
    }
    return NULL;
}

static void monitor_start(monitor *m) {
    memset(m, 0, sizeof *m);
    m->r = redis_side();
    redisReply *rep = redisCommand(m->r, "MONITOR");
    if (rep) freeReplyObject(rep);
    pthread_create(&m->th, NULL, monitor_main, m);
}

static void monitor_stop(monitor *m, const char *phase, long jobs) {
    /* The reader stops when it sees this ECHO, which the server logs after
     * everything before it. */
    redisContext *r = redis_side();
    redis_cmd(r, "ECHO " MONITOR_STOP_WORD);
    redisFree(r);
    atomic_store(&m->stop, 1);
    pthread_join(m->th, NULL);
    redisFree(m->r);
    long tot_client = 0, tot_script = 0;
    printf("commands per job, %s (%ld jobs):\n", phase, jobs);
    for (int i = 0; i < m->n; i++) {
        tot_client += m->client_calls[i];
        tot_script += m->script_calls[i];
        printf("  %-16s sent by client %8.3f   called in scripts %8.3f\n", m->names[i],
               (double)m->client_calls[i] / (double)jobs, (double)m->script_calls[i] / (double)jobs);
        if (strncmp(m->names[i], "evalsha:", 8) == 0) {
            char sname[96];
            snprintf(sname, sizeof sname, "calls_%s_%s", phase, m->names[i] + 8);
            result(sname, (double)m->client_calls[i] / (double)jobs, "calls/job");
        }
    }
    char name[96];
    snprintf(name, sizeof name, "cmds_client_%s", phase);
    result(name, (double)tot_client / (double)jobs, "cmds/job");
    snprintf(name, sizeof name, "cmds_script_%s", phase);
    result(name, (double)tot_script / (double)jobs, "cmds/job");
}

static int mode_commands(void) {
    long n = opt_n;
    flush_if_redis();
    runq_client *c = open_client();
    unsigned char buf[16];
    size_t len = make_args(buf, 0);
    runq_enqueue(c, NULL, opt_task, buf, len, NULL); /* scripts loaded */
    redisContext *r = redis_side();

    monitor m;
    monitor_start(&m);
    sleep_ns(100000000);
    produce(c, n, 1, 1);
    monitor_stop(&m, "enqueue", n);

    monitor_start(&m);
    sleep_ns(100000000);
    produce(c, n, 1, 100);
    monitor_stop(&m, "enqueue_many100", n);

    /* 2n + 1 waiting now; process them all. */
    long total = 2 * n + 1;
    workers ws;
    workers_create(&ws, noop_handler);
    monitor_start(&m);
    sleep_ns(100000000);
    int64_t t0 = mono_ns();
    workers_start(&ws);
    long done = wait_processed(&ws, total, t0);
    workers_free(&ws);
    monitor_stop(&m, "fetch_ack", done);
    redisFree(r);
    runq_client_close(c);
    return 0;
}

/* Redis CPU (user+sys of the server process, INFO cpu) and EVALSHA time
 * (INFO commandstats) per job, phase by phase; and the same for plain
 * pipelined commands, so the server-side ceiling of each path is known. */
static double redis_cpu_s(redisContext *r) {
    return redis_info_num(r, "cpu", "used_cpu_user") + redis_info_num(r, "cpu", "used_cpu_sys");
}

static double redis_cmd_usec(redisContext *r, const char *cmd) {
    char field[64];
    snprintf(field, sizeof field, "cmdstat_%s", cmd);
    redisReply *rep = redisCommand(r, "INFO commandstats");
    double v = 0;
    const char *p = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, field) : NULL;
    if (p && (p = strstr(p, "usec="))) v = strtod(p + 5, NULL);
    if (rep) freeReplyObject(rep);
    return v;
}

typedef struct cpu_mark {
    double cpu, usec;
} cpu_mark;

static cpu_mark cpu_mark_now(redisContext *r) {
    cpu_mark m = {redis_cpu_s(r), redis_cmd_usec(r, "evalsha")};
    return m;
}

static void cpu_report(redisContext *r, cpu_mark m0, const char *phase, long jobs) {
    cpu_mark m1 = cpu_mark_now(r);
    double cpu_us = (m1.cpu - m0.cpu) * 1e6 / (double)jobs;
    double scr_us = (m1.usec - m0.usec) / (double)jobs;
    printf("redis server CPU per job, %s: %.1f us (of which inside EVALSHA %.1f us)\n", phase,
           cpu_us, scr_us);
    char name[96];
    snprintf(name, sizeof name, "redis_cpu_us_%s", phase);
    result(name, cpu_us, "us/job");
    snprintf(name, sizeof name, "redis_script_us_%s", phase);
    result(name, scr_us, "us/job");
}

static void pipeline_plain(redisContext *r, long n, const char *fmt, const char *sha) {
    for (long i = 0; i < n; i++) {
        if (sha) redisAppendCommand(r, fmt, sha);
        else redisAppendCommand(r, fmt);
        if (i % 256 == 255 || i == n - 1) {
            long k = i % 256 + 1;
            for (long j = 0; j < k; j++) {
                redisReply *rep;
                if (redisGetReply(r, (void **)&rep) != REDIS_OK) exit(1);
                freeReplyObject(rep);
            }
        }
    }
}

static int mode_servercpu(void) {
    long n = opt_n;
    flush_if_redis();
    redisContext *r = redis_side();
    runq_client *c = open_client();
    unsigned char buf[16];
    size_t len = make_args(buf, 0);
    runq_enqueue(c, NULL, opt_task, buf, len, NULL);
    sleep_ns(100000000);

    cpu_mark m = cpu_mark_now(r);
    produce(c, n, 1, 1);
    cpu_report(r, m, "enqueue", n);

    m = cpu_mark_now(r);
    produce(c, n, 1, 100);
    cpu_report(r, m, "enqueue_many100", n);

    long total = 2 * n + 1;
    workers ws;
    workers_create(&ws, noop_handler);
    m = cpu_mark_now(r);
    int64_t t0 = mono_ns();
    workers_start(&ws);
    long done = wait_processed(&ws, total, t0);
    cpu_report(r, m, "fetch_ack", done);
    workers_free(&ws);
    runq_client_close(c);

    /* References on the same server: pipelined plain commands. */
    redisReply *rep = redisCommand(r, "SCRIPT LOAD %s", "return 1");
    char sha[64] = "";
    if (rep && rep->type == REDIS_REPLY_STRING) snprintf(sha, sizeof sha, "%s", rep->str);
    if (rep) freeReplyObject(rep);
    long rn = 200000;
    double c0 = redis_cpu_s(r);
    pipeline_plain(r, rn, "LPUSH ref:q 0123456789", NULL);
    double c1 = redis_cpu_s(r);
    pipeline_plain(r, rn, "RPOP ref:q", NULL);
    double c2 = redis_cpu_s(r);
    pipeline_plain(r, rn, "EVALSHA %s 0", sha);
    double c3 = redis_cpu_s(r);
    result("redis_cpu_us_ref_lpush", (c1 - c0) * 1e6 / (double)rn, "us/op");
    result("redis_cpu_us_ref_rpop", (c2 - c1) * 1e6 / (double)rn, "us/op");
    result("redis_cpu_us_ref_evalsha_return1", (c3 - c2) * 1e6 / (double)rn, "us/op");
    redisFree(r);
    return 0;
}

/* ------------------------------------------------------------------ */

static void usage(void) {
    fprintf(stderr,
            "usage: runq_bench enqueue|process|e2e|latency|memory|commands|servercpu [--url URL]\n"
            "       [-n N]"
            "       [--threads T] [--batch B] [--workers W] [--concurrency C] [--rate R]\n"
            "       [--seconds S] [--max-seconds S] [--queue Q] [--result-ttl MS]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--url")) opt_url = v;
        else if (!strcmp(a, "-n")) opt_n = atol(v);
        else if (!strcmp(a, "--threads")) opt_threads = atoi(v);
        else if (!strcmp(a, "--batch")) opt_batch = atoi(v);
        else if (!strcmp(a, "--workers")) opt_workers = atoi(v);
        else if (!strcmp(a, "--concurrency")) opt_concurrency = atoi(v);
        else if (!strcmp(a, "--rate")) opt_rate = atof(v);
        else if (!strcmp(a, "--seconds")) opt_seconds = atof(v);
        else if (!strcmp(a, "--max-seconds")) opt_max_seconds = atof(v);
        else if (!strcmp(a, "--queue")) opt_queue = v;
        else if (!strcmp(a, "--result-ttl")) opt_result_ttl = atoll(v);
        else usage();
        i++;
    }
    if (opt_n < 1 || opt_threads < 1 || opt_batch < 1 || opt_workers < 1 ||
        opt_concurrency < 1 || opt_rate <= 0 || opt_seconds <= 0)
        usage();
    if (!strcmp(mode, "enqueue")) return mode_enqueue();
    if (!strcmp(mode, "process")) return mode_process();
    if (!strcmp(mode, "e2e")) return mode_e2e();
    if (!strcmp(mode, "latency")) return mode_latency();
    if (!strcmp(mode, "memory")) return mode_memory();
    if (!strcmp(mode, "commands")) return mode_commands();
    if (!strcmp(mode, "servercpu")) return mode_servercpu();
    usage();
    return 2;
}
