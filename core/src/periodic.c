/* Periodic jobs. Each worker that carries a schedule enqueues the job at
 * every fire time with the unique key "periodic:<task>:<fire time ms>": the
 * backend refuses every enqueue but the first for a fire time, so the job
 * runs once per period however many workers carry the schedule. */
#include "periodic.h"
#include "thread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- cron ---- */

/* Parse one field ("*", "a", "a-b", with "/n", comma lists) into bits. */
static int cron_field(uint64_t *bits, const char *f, size_t len, int lo, int hi, const char *name) {
    *bits = 0;
    char buf[128];
    if (len == 0 || len >= sizeof buf) return rq_error(RUNQ_EINVAL, "cron %s field is empty or too long", name);
    memcpy(buf, f, len);
    buf[len] = '\0';
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        long a = lo, b = hi, step = 1;
        char *p = item, *end;
        if (*p == '*') {
            p++;
        } else {
            a = strtol(p, &end, 10);
            if (end == p) goto bad;
            b = a;
            p = end;
            if (*p == '-') {
                b = strtol(p + 1, &end, 10);
                if (end == p + 1) goto bad;
                p = end;
            }
        }
        if (*p == '/') {
            step = strtol(p + 1, &end, 10);
            if (end == p + 1 || step < 1) goto bad;
            p = end;
            if (a == b && item[0] != '*') b = hi; /* "5/15" means 5-hi/15 */
        }
        if (*p != '\0' || a < lo || b > hi || a > b) goto bad;
        for (long v = a; v <= b; v += step) *bits |= 1ULL << v;
    }
    return 0;
bad:
    return rq_error(RUNQ_EINVAL, "cron %s field \"%.*s\" is not valid (range %d-%d)", name, (int)len, f,
                    lo, hi);
}

int rq_cron_parse(rq_cron *c, const char *expr) {
    static const struct { const char *name; int lo, hi; } spec[5] = {
        {"minute", 0, 59}, {"hour", 0, 23}, {"day-of-month", 1, 31}, {"month", 1, 12},
        {"day-of-week", 0, 7}};
    memset(c, 0, sizeof *c);
    if (!expr) return rq_error(RUNQ_EINVAL, "cron expression is NULL");
    uint64_t bits[5];
    const char *p = expr;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t') p++;
        const char *start = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (p == start)
            return rq_error(RUNQ_EINVAL, "cron \"%s\" needs 5 fields: minute hour day-of-month "
                                         "month day-of-week", expr);
        int rc = cron_field(&bits[i], start, (size_t)(p - start), spec[i].lo, spec[i].hi, spec[i].name);
        if (rc) return rc;
        if (i == 2) c->mday_any = start[0] == '*';
        if (i == 4) c->wday_any = start[0] == '*';
    }
    while (*p == ' ' || *p == '\t') p++;
    if (*p) return rq_error(RUNQ_EINVAL, "cron \"%s\" has more than 5 fields", expr);
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->mdays = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    c->wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    return 0;
}

static bool cron_day_matches(const rq_cron *c, const struct tm *t) {
    bool md = c->mdays >> t->tm_mday & 1, wd = c->wdays >> t->tm_wday & 1;
    /* Classic cron: when both day fields are restricted, either may match. */
    if (c->mday_any || c->wday_any) return md && wd;
    return md || wd;
}

int64_t rq_cron_next(const rq_cron *c, int64_t after_ms) {
    time_t t = (time_t)(after_ms / 1000 / 60 + 1) * 60; /* next whole minute */
    time_t limit = t + (time_t)5 * 366 * 24 * 3600;
    struct tm tm;
    while (t < limit) {
        gmtime_r(&t, &tm);
        if (!(c->months >> (tm.tm_mon + 1) & 1) || !cron_day_matches(c, &tm)) {
            t += (time_t)(24 - tm.tm_hour) * 3600 - tm.tm_min * 60; /* next day 00:00 */
            continue;
        }
        if (!(c->hours >> tm.tm_hour & 1)) {
            t += (time_t)(60 - tm.tm_min) * 60; /* next hour */
            continue;
        }
        if (!(c->minutes >> tm.tm_min & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t * 1000;
    }
    return -1;
}

/* ---- schedules ---- */

typedef struct rq_periodic {
    char *task, *queue;
    uint8_t *args;
    size_t args_len;
    int64_t every_ms;    /* 0: cron */
    rq_cron cron;
    int64_t next_ms;     /* next fire time */
    struct rq_periodic *next;
} rq_periodic;

struct rq_scheduler {
    runq_client *client;
    rq_periodic *list;
    uv_mutex_t lock;
    uv_cond_t wake;
    uv_thread_t thread;
    bool running, quit;
};

static int64_t periodic_next(const rq_periodic *p, int64_t after_ms) {
    if (p->every_ms) return (after_ms / p->every_ms + 1) * p->every_ms;
    return rq_cron_next(&p->cron, after_ms);
}

static void periodic_free(rq_periodic *p) {
    rq_free(p->task);
    rq_free(p->queue);
    rq_free(p->args);
    rq_free(p);
}

rq_scheduler *rq_scheduler_new(runq_client *client) {
    rq_scheduler *s = rq_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->client = client;
    uv_mutex_init(&s->lock);
    uv_cond_init(&s->wake);
    return s;
}

int rq_scheduler_add(rq_scheduler *s, const runq_periodic_options *o) {
    static const uint8_t no_args[] = {0x92, 0x90, 0x80}; /* [[], {}] */
    if (!o || o->version != RUNQ_PERIODIC_OPTIONS_VERSION)
        return rq_error(RUNQ_EINVAL, "runq_periodic_options missing or of an unknown version");
    int rc = rq_name_check(o->task, "task");
    if (rc || (o->queue && (rc = rq_name_check(o->queue, "queue")))) return rc;
    if ((o->every_ms > 0) == (o->cron != NULL) || o->every_ms < 0)
        return rq_error(RUNQ_EINVAL, "a schedule needs exactly one of every_ms > 0 and cron");
    const void *args = o->args ? o->args : no_args;
    size_t args_len = o->args ? o->args_len : sizeof no_args;
    if ((rc = rq_msgpack_check(args, args_len, "periodic arguments"))) return rc;
    rq_periodic *p = rq_calloc(1, sizeof *p);
    if (!p) return rq_error(RUNQ_ENOMEM, "out of memory");
    p->every_ms = o->every_ms;
    if (o->cron && (rc = rq_cron_parse(&p->cron, o->cron))) {
        rq_free(p);
        return rc;
    }
    if (!(p->task = rq_strdup(o->task)) || (o->queue && !(p->queue = rq_strdup(o->queue))) ||
        !(p->args = rq_memdup(args, args_len))) {
        periodic_free(p);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    p->args_len = args_len;
    p->next_ms = periodic_next(p, rq_now_ms());
    uv_mutex_lock(&s->lock);
    p->next = s->list;
    s->list = p;
    uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->lock);
    return 0;
}

/* Enqueue one fire; a duplicate means another worker fired it first. */
static void periodic_fire(runq_client *c, rq_periodic *p, int64_t at_ms) {
    char key[RUNQ_NAME_MAX + 40];
    snprintf(key, sizeof key, "periodic:%s:%lld", p->task, (long long)at_ms);
    int64_t period = periodic_next(p, at_ms) - at_ms;
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.queue = p->queue;
    o.unique_key = key;
    /* The key must outlive the spread between workers' fires, and need not
     * live much longer than a period. */
    o.unique_ttl_ms = period < 60000 ? 60000 : period > 86400000 ? 86400000 : period;
    runq_enqueue(c, NULL, p->task, p->args, p->args_len, &o);
}

static void scheduler_main(void *arg) {
    rq_scheduler *s = arg;
    uv_mutex_lock(&s->lock);
    while (!s->quit) {
        int64_t now = rq_now_ms(), soonest = INT64_MAX;
        for (rq_periodic *p = s->list; p; p = p->next) {
            if (p->next_ms >= 0 && p->next_ms <= now) {
                int64_t at = p->next_ms;
                p->next_ms = periodic_next(p, now); /* missed fires are skipped */
                uv_mutex_unlock(&s->lock);
                periodic_fire(s->client, p, at);
                uv_mutex_lock(&s->lock);
            }
            if (p->next_ms >= 0 && p->next_ms < soonest) soonest = p->next_ms;
        }
        if (s->quit) break;
        int64_t wait = soonest == INT64_MAX ? 60000 : soonest - rq_now_ms();
        if (wait > 0) uv_cond_timedwait(&s->wake, &s->lock, (uint64_t)wait * 1000000);
    }
    uv_mutex_unlock(&s->lock);
}

int rq_scheduler_start(rq_scheduler *s) {
    uv_mutex_lock(&s->lock);
    bool start = s->list && !s->running && !s->quit;
    if (start) s->running = true;
    uv_mutex_unlock(&s->lock);
    if (start && rq_thread_start(&s->thread, scheduler_main, s) != 0) {
        s->running = false;
        return rq_error(RUNQ_ENOMEM, "cannot start the scheduler thread");
    }
    return 0;
}

void rq_scheduler_stop(rq_scheduler *s) {
    uv_mutex_lock(&s->lock);
    s->quit = true;
    bool join = s->running;
    s->running = false;
    uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->lock);
    if (join) uv_thread_join(&s->thread);
}

void rq_scheduler_free(rq_scheduler *s) {
    if (!s) return;
    rq_scheduler_stop(s);
    for (rq_periodic *p = s->list, *next; p; p = next) {
        next = p->next;
        periodic_free(p);
    }
    uv_cond_destroy(&s->wake);
    uv_mutex_destroy(&s->lock);
    rq_free(s);
}
