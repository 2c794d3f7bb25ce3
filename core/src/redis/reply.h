/* Replies copied out of hiredis. hiredis frees its redisReply as soon as an
 * async callback returns, on the I/O thread; callers wait on other threads,
 * so the I/O thread hands them a deep copy: one rq_malloc block holding
 * every element and string, freed as a whole by rq_reply_free. */
#ifndef RUNQ_REDIS_REPLY_H
#define RUNQ_REDIS_REPLY_H

#include "common.h"

/* Same type numbers as hiredis's REDIS_REPLY_* (checked in reply.c). */
enum {
    RQ_REPLY_STRING = 1,
    RQ_REPLY_ARRAY = 2,
    RQ_REPLY_INTEGER = 3,
    RQ_REPLY_NIL = 4,
    RQ_REPLY_STATUS = 5,
    RQ_REPLY_ERROR = 6
};

typedef struct rq_reply {
    int type;
    long long integer;
    char *str;             /* NUL-terminated; len excludes the NUL */
    size_t len;
    size_t elements;
    struct rq_reply **element;
} rq_reply;

/* Deep copy of a hiredis redisReply (passed as void * so that this header
 * does not pull in hiredis). NULL on allocation failure. */
rq_reply *rq_reply_copy(const void *redis_reply);
void rq_reply_free(rq_reply *r);

/* Convenience accessors for script replies: NULL / false when the shape
 * does not match, so callers can treat any surprise as a protocol error. */
const rq_reply *rq_reply_at(const rq_reply *r, size_t i);
bool rq_reply_int(const rq_reply *r, long long *out);
bool rq_reply_is_error(const rq_reply *r);

#endif
