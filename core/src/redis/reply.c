/* Deep copies of hiredis replies; see reply.h for why. */
#include "redis/reply.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(RQ_REPLY_STRING == REDIS_REPLY_STRING && RQ_REPLY_ARRAY == REDIS_REPLY_ARRAY &&
                   RQ_REPLY_INTEGER == REDIS_REPLY_INTEGER && RQ_REPLY_NIL == REDIS_REPLY_NIL &&
                   RQ_REPLY_STATUS == REDIS_REPLY_STATUS && RQ_REPLY_ERROR == REDIS_REPLY_ERROR,
               "reply type numbers follow hiredis");

rq_reply *rq_reply_copy(const void *redis_reply) {
    const redisReply *src = redis_reply;
    rq_reply *r = rq_calloc(1, sizeof *r);
    if (!r) return NULL;
    r->type = src->type;
    r->integer = src->integer;
    switch (src->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        r->str = rq_malloc(src->len + 1);
        if (!r->str) goto fail;
        if (src->len) memcpy(r->str, src->str, src->len);
        r->str[src->len] = '\0';
        r->len = src->len;
        break;
    case REDIS_REPLY_ARRAY:
        if (src->elements) {
            r->element = rq_calloc(src->elements, sizeof *r->element);
            if (!r->element) goto fail;
            r->elements = src->elements;
            for (size_t i = 0; i < src->elements; i++) {
                r->element[i] = rq_reply_copy(src->element[i]);
                if (!r->element[i]) goto fail;
            }
        }
        break;
    default:
        /* Integers and nil carry no payload. Newer RESP3 types are not
         * requested by runq (it never sends HELLO 3). */
        break;
    }
    return r;
fail:
    rq_reply_free(r);
    return NULL;
}

void rq_reply_free(rq_reply *r) {
    if (!r) return;
    for (size_t i = 0; i < r->elements; i++) rq_reply_free(r->element[i]);
    rq_free(r->element);
    rq_free(r->str);
    rq_free(r);
}

const rq_reply *rq_reply_at(const rq_reply *r, size_t i) {
    if (!r || r->type != RQ_REPLY_ARRAY || i >= r->elements) return NULL;
    return r->element[i];
}

bool rq_reply_int(const rq_reply *r, long long *out) {
    if (!r) return false;
    if (r->type == RQ_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    if (r->type == RQ_REPLY_STRING && r->len > 0) {
        char *end;
        long long v = strtoll(r->str, &end, 10);
        if (*end != '\0') return false;
        *out = v;
        return true;
    }
    return false;
}

bool rq_reply_is_error(const rq_reply *r) {
    return r && r->type == RQ_REPLY_ERROR;
}
