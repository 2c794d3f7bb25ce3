/* The runq demo: enqueue a few jobs, process them with a push-mode worker,
 * and print what happened: successes, a retry with its own delay, a job that
 * ends in the dead letters (with its fallback), a delayed job, a duplicate.
 *   demo [URL]     (default memory://) */
#include <runq.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t t0;
static void say(const char *what, const runq_job *job) {
    printf("[%5lld ms] %-8s %-7s attempt %d  %s\n", (long long)(now_ms() - t0),
           runq_job_task(job), what, runq_job_attempt(job), runq_job_id(job));
    fflush(stdout);
}

static int greet(runq_job *job, void *ud) {
    (void)ud;
    say("ran", job);
    static const unsigned char ok[] = {0xa2, 'o', 'k'}; /* msgpack "ok" */
    return runq_job_set_result(job, ok, sizeof ok);
}

static int flaky(runq_job *job, void *ud) {
    (void)ud;
    if (runq_job_attempt(job) < 3) {
        say("failed", job);
        runq_job_set_error(job, "upstream busy");
        runq_job_retry_in(job, 100); /* the handler picks its own delay */
        return 1;
    }
    say("ran", job);
    return 0;
}

static int doomed(runq_job *job, void *ud) {
    (void)ud;
    say("failed", job);
    runq_job_set_error(job, "the disk is on fire");
    return 1;
}

static void doomed_fallback(runq_job *job, void *ud) {
    (void)ud;
    say("dead", job);
}

static int check(int rc, const char *what) {
    if (rc != 0 && rc != RUNQ_EDUPLICATE)
        fprintf(stderr, "%s: %s (%s)\n", what, runq_strerror(rc), runq_error_last());
    return rc;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "memory://";
    runq_client *c = NULL;
    if (check(runq_client_open(&c, url, NULL), "open")) return 1;
    printf("runq %s on %s (%s backend)\n", runq_version_string(), url, runq_client_backend(c));
    t0 = now_ms();

    runq_task_options o = RUNQ_TASK_OPTIONS_INIT;
    o.handler = greet;
    check(runq_task_register(NULL, c, "greet", &o), "register");
    o.handler = flaky;
    check(runq_task_register(NULL, c, "flaky", &o), "register");
    o.handler = doomed;
    o.fallback = doomed_fallback;
    o.max_retries = 2;
    o.backoff_min_ms = 50;
    o.backoff_max_ms = 400;
    check(runq_task_register(NULL, c, "doomed", &o), "register");

    static const unsigned char args[] = {0x91, 0xa5, 'w', 'o', 'r', 'l', 'd'}; /* ["world"] */
    char ids[6][RUNQ_ID_SIZE];
    runq_enqueue_options e = RUNQ_ENQUEUE_OPTIONS_INIT;
    check(runq_enqueue(c, ids[0], "greet", args, sizeof args, NULL), "enqueue");
    check(runq_enqueue(c, ids[1], "flaky", args, sizeof args, NULL), "enqueue");
    check(runq_enqueue(c, ids[2], "doomed", args, sizeof args, NULL), "enqueue");
    e.delay_ms = 500;
    check(runq_enqueue(c, ids[3], "greet", args, sizeof args, &e), "enqueue");
    e = (runq_enqueue_options)RUNQ_ENQUEUE_OPTIONS_INIT;
    e.unique_key = "greet-once";
    check(runq_enqueue(c, ids[4], "greet", args, sizeof args, &e), "enqueue");
    int dup = runq_enqueue(c, ids[5], "greet", args, sizeof args, &e);
    printf("second enqueue with unique key greet-once: %s (held by %s)\n", runq_strerror(dup), ids[5]);

    runq_worker *w = NULL;
    if (check(runq_worker_create(&w, c, NULL), "worker") || check(runq_worker_start(w), "start"))
        return 1;
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        runq_job *snap = NULL;
        if (check(runq_job_wait(&snap, c, ids[i], 30000), "wait")) {
            bad = 1;
            continue;
        }
        runq_job_state st = runq_job_state_get(snap);
        printf("job %s %-7s -> %s after %d attempt(s)%s%s\n", ids[i], runq_job_task(snap),
               st == RUNQ_STATE_DONE ? "done" : "dead", runq_job_attempt(snap),
               runq_job_error(snap) ? ", last error: " : "",
               runq_job_error(snap) ? runq_job_error(snap) : "");
        runq_job_free(snap);
    }
    runq_worker_stats ws;
    runq_worker_stats_get(&ws, w);
    printf("worker: %lld processed, %lld failed attempts, %lld dead\n", (long long)ws.processed,
           (long long)ws.failed, (long long)ws.dead);
    runq_worker_stop(w, 5000);
    runq_worker_free(w);
    runq_client_close(c);
    return bad;
}
