/* Periodic schedules of a worker: cron parsing, next fire times, and the
 * scheduler thread that enqueues each fire once (deduplicated by key). */
#ifndef RUNQ_PERIODIC_H
#define RUNQ_PERIODIC_H

#include "client.h"

typedef struct rq_cron {
    uint64_t minutes;    /* bit m: minute m (0-59) */
    uint32_t hours;      /* 0-23 */
    uint32_t mdays;      /* 1-31 */
    uint16_t months;     /* 1-12 */
    uint8_t wdays;       /* 0-6, Sunday = 0 */
    bool mday_any, wday_any;
} rq_cron;

/* Parse a 5-field cron expression; RUNQ_EINVAL with the detail on error. */
int rq_cron_parse(rq_cron *out, const char *expr);
/* The first fire time strictly after after_ms (UTC), or -1 within 5 years. */
int64_t rq_cron_next(const rq_cron *cron, int64_t after_ms);

typedef struct rq_scheduler rq_scheduler;

rq_scheduler *rq_scheduler_new(runq_client *client);
int rq_scheduler_add(rq_scheduler *s, const runq_periodic_options *options);
/* Start the thread if there is any schedule; idempotent. */
int rq_scheduler_start(rq_scheduler *s);
/* Stop and join the thread; idempotent. */
void rq_scheduler_stop(rq_scheduler *s);
void rq_scheduler_free(rq_scheduler *s);

#endif
