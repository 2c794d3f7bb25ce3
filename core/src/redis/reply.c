/* Deep copies of hiredis replies; see reply.h for why. */
#include "redis/reply.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(RQ_REPLY_STRING == REDIS_REPLY_STRING && RQ_REPLY_ARRAY == REDIS_REPLY_ARRAY &&
                   RQ_REPLY_INTEGER == REDIS_REPLY_INTEGER && RQ_REPLY_NIL == REDIS_REPLY_NIL &&
                   RQ_REPLY_STATUS == REDIS_REPLY_STATUS && RQ_REPLY_ERROR == REDIS_REPLY_ERROR,
               "reply type numbers follow hiredis");

/* One allocation per reply, however many elements: a fetch of 500 jobs
 * used to cost 5 000 mallocs here. The block holds every rq_reply first,
 * then the element arrays, then the strings (see reply_lay). */
typedef struct layout {
    size_t nodes, ptrs, bytes;
} layout;

static bool has_str(int type) {
    return type == REDIS_REPLY_STRING || type == REDIS_REPLY_STATUS || type == REDIS_REPLY_ERROR;
}

static void reply_measure(const redisReply *src, layout *l) {
    l->nodes++;
    if (has_str(src->type)) l->bytes += src->len + 1;
    if (src->type == REDIS_REPLY_ARRAY) {
        l->ptrs += src->elements;
        for (size_t i = 0; i < src->elements; i++) reply_measure(src->element[i], l);
    }
}

typedef struct cursor {
    rq_reply *node;
    rq_reply **ptr;
    char *byte;
} cursor;

static rq_reply *reply_lay(const redisReply *src, cursor *c) {
    rq_reply *r = c->node++;
    *r = (rq_reply){.type = src->type, .integer = src->integer};
    if (has_str(src->type)) {
        r->str = c->byte;
        r->len = src->len;
        if (src->len) memcpy(r->str, src->str, src->len);
        r->str[src->len] = '\0';
        c->byte += src->len + 1;
    } else if (src->type == REDIS_REPLY_ARRAY && src->elements) {
        r->element = c->ptr;
        r->elements = src->elements;
        c->ptr += src->elements;
        for (size_t i = 0; i < src->elements; i++) r->element[i] = reply_lay(src->element[i], c);
    }
    /* Integers and nil carry no payload. Newer RESP3 types are not
     * requested by runq (it never sends HELLO 3). */
    return r;
}

rq_reply *rq_reply_copy(const void *redis_reply) {
    const redisReply *src = redis_reply;
    layout l = {0};
    reply_measure(src, &l);
    size_t head = l.nodes * sizeof(rq_reply) + l.ptrs * sizeof(rq_reply *);
    char *block = rq_malloc(head + l.bytes);
    if (!block) return NULL;
    cursor c = {(rq_reply *)block, (rq_reply **)(block + l.nodes * sizeof(rq_reply)), block + head};
    return reply_lay(src, &c);
}

void rq_reply_free(rq_reply *r) { rq_free(r); }

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
