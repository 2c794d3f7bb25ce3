/* Error codes, their descriptions, and the thread-local detail message. */
#include "common.h"

#include <stdio.h>

static _Thread_local char rq_last_error[512];

const char *runq_strerror(int code) {
    switch (code) {
    case RUNQ_OK: return "success";
    case RUNQ_EINVAL: return "invalid argument";
    case RUNQ_ENOMEM: return "out of memory";
    case RUNQ_EURL: return "bad or unsupported backend URL";
    case RUNQ_ENOTASK: return "unknown task";
    case RUNQ_ETOOBIG: return "payload too large";
    case RUNQ_EDUPLICATE: return "duplicate unique key";
    case RUNQ_EFULL: return "queue is full";
    case RUNQ_ETIMEOUT: return "timed out";
    case RUNQ_ESTALE: return "lease lost";
    case RUNQ_ECLOSED: return "closed";
    case RUNQ_EIO: return "backend I/O error";
    case RUNQ_EDURABILITY: return "durability unknown: fewer replicas confirmed than requested";
    case RUNQ_ENOTFOUND: return "job not found";
    case RUNQ_EPROTO: return "malformed job data";
    case RUNQ_ESTATE: return "invalid in the current state";
    default: return "unknown error";
    }
}

const char *runq_error_last(void) { return rq_last_error; }

void rq_error_clear(void) { rq_last_error[0] = '\0'; }

int rq_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rq_last_error, sizeof rq_last_error, fmt, ap);
    va_end(ap);
    return code;
}
