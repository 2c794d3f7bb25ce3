/* rate_limit -- the achieved rate of a queue's global rate limit against the
 * limit, with several worker PROCESSES sharing it through one Redis.
 *
 *   rate_limit [--url URL] [--limit N] [--period-ms P] [--burst B]
 *              [--procs W] [--concurrency C] [--seconds S]
 *
 * The parent configures queue "ratebench" with rate_limit N per P ms, fills
 * it with more jobs than S seconds can drain, forks W worker processes (each
 * its own client and push-mode worker with C handler threads and a no-op
 * handler), waits one second for them to settle, then reads how many jobs
 * are still waiting at the start and at the end of S seconds (the queue's
 * stats, one consistent snapshot each: what left "pending" was leased). The
 * leases counted are the backend's, so the figure is the limiter's, not the
 * handlers'. Default: 200 jobs/s, burst 0 (the library's automatic burst,
 * limit / 20), 4 processes, 10 s.
 *
 * Prints  RESULT rate_limit_achieved <jobs/s> jobs/s  and the ratio to the
 * limit. Run it under tests/support/with-redis.sh (it reads RUNQ_TEST_URL). */
#include <runq.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QUEUE "ratebench"

static int noop(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    return 0;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "rate_limit: %s: %s (%s)\n", what, runq_strerror(rc), runq_error_last());
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
    for (double left; (left = t - now_s()) > 0;) {
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* One worker process: runs until killed by the parent. */
static void worker_proc(const char *url, int concurrency) {
    runq_client *c;
    int rc = runq_client_open(&c, url, NULL);
    if (rc) die("open", rc);
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = noop;
    to.queue = QUEUE;
    if ((rc = runq_task_register(NULL, c, "tick", &to))) die("register", rc);
    static const char *qs[] = {QUEUE};
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.queues = qs;
    wo.nqueues = 1;
    wo.concurrency = concurrency;
    runq_worker *w;
    if ((rc = runq_worker_create(&w, c, &wo)) || (rc = runq_worker_start(w))) die("worker", rc);
    for (;;) pause();
}

static int64_t waiting(runq_client *c) {
    runq_queue_stats st;
    int rc = runq_queue_stats_get(&st, c, QUEUE);
    if (rc) die("stats", rc);
    return st.pending + st.scheduled;
}

int main(int argc, char **argv) {
    const char *url = getenv("RUNQ_TEST_URL");
    long limit = 200, period = 1000, burst = 0, procs = 4, conc = 4, seconds = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--limit")) limit = v;
        else if (!strcmp(argv[i], "--period-ms")) period = v;
        else if (!strcmp(argv[i], "--burst")) burst = v;
        else if (!strcmp(argv[i], "--procs")) procs = v;
        else if (!strcmp(argv[i], "--concurrency")) conc = v;
        else if (!strcmp(argv[i], "--seconds")) seconds = v;
        else {
            fprintf(stderr, "rate_limit: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!url || limit < 1 || period < 1 || procs < 1 || procs > 64 || seconds < 1) {
        fprintf(stderr, "usage: rate_limit --url redis://... [--limit N] [--period-ms P] "
                        "[--burst B] [--procs W] [--concurrency C] [--seconds S]\n");
        return 2;
    }
    runq_client *c;
    int rc = runq_client_open(&c, url, NULL);
    if (rc) die("open", rc);
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    qo.rate_limit = limit;
    qo.rate_period_ms = period;
    qo.rate_burst = burst;
    if ((rc = runq_queue_configure(c, QUEUE, &qo))) die("configure", rc);

    /* Enough for the warm-up and the measured span, with a margin. */
    long jobs = (long)((double)limit * 1000.0 / (double)period * (double)(seconds + 3) * 1.5) + 100;
    static const unsigned char args[] = {0x92, 0x90, 0x80}; /* [[], {}] */
    runq_enqueue_options eo = RUNQ_ENQUEUE_OPTIONS_INIT;
    eo.queue = QUEUE;
    enum { BATCH = 500 };
    runq_enqueue_item items[BATCH];
    for (long done = 0; done < jobs;) {
        size_t n = (size_t)(jobs - done < BATCH ? jobs - done : BATCH);
        for (size_t i = 0; i < n; i++) items[i] = (runq_enqueue_item){"tick", args, sizeof args, &eo, "", 0};
        if ((rc = runq_enqueue_many(c, items, n))) die("enqueue", rc);
        done += (long)n;
    }

    pid_t pids[64];
    for (long i = 0; i < procs; i++) {
        fflush(NULL);
        if ((pids[i] = fork()) == 0) worker_proc(url, (int)conc);
        if (pids[i] < 0) die("fork", RUNQ_EIO);
    }
    double t0 = now_s() + 1.0; /* let every process connect and block */
    sleep_until(t0);
    int64_t before = waiting(c);
    sleep_until(t0 + (double)seconds);
    int64_t after = waiting(c);
    for (long i = 0; i < procs; i++) kill(pids[i], SIGKILL);
    for (long i = 0; i < procs; i++) waitpid(pids[i], NULL, 0);

    double want = (double)limit * 1000.0 / (double)period;
    double got = (double)(before - after) / (double)seconds;
    printf("limit %ld per %ld ms (burst %ld), %ld worker processes x %ld threads, %ld s\n", limit,
           period, burst, procs, conc, seconds);
    printf("RESULT rate_limit_target %.1f jobs/s\n", want);
    printf("RESULT rate_limit_achieved %.1f jobs/s\n", got);
    printf("RESULT rate_limit_ratio %.3f x\n", got / want);
    runq_client_close(c);
    return after == 0 ? 1 : 0; /* the queue ran dry: the figure would understate */
}
