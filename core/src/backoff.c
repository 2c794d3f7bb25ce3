/* Exponential backoff with jitter. */
#include "client.h"

#include <math.h>

int64_t rq_backoff_delay(const runq_task_options *o, int attempt) {
    double min = (double)(o->backoff_min_ms > 0 ? o->backoff_min_ms : 0);
    double max = (double)(o->backoff_max_ms > 0 ? o->backoff_max_ms : min);
    double factor = o->backoff_factor >= 1.0 ? o->backoff_factor : 1.0;
    double d = min * pow(factor, attempt > 1 ? attempt - 1 : 0);
    if (d > max || !isfinite(d)) d = max;
    double jitter = o->backoff_jitter;
    if (jitter > 1.0) jitter = 1.0;
    if (jitter > 0) {
        /* Uniform in [d(1-j), d(1+j)]: spreads the retries of jobs that
         * failed together so they do not come back as one wave. */
        double r = (double)(rq_random64() >> 11) / (double)(1ULL << 53);
        d *= 1.0 + jitter * (2.0 * r - 1.0);
        if (d > max) d = max;
    }
    return d < 0 ? 0 : (int64_t)d;
}
