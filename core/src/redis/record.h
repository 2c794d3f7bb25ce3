/* The Redis job record, version 2 (docs/protocol.md, "The job record"), and
 * the strings stored next to it: the attempt state of a job that is not
 * leased, and the kept value of a done job. Parsers point into the caller's
 * buffer; nothing here allocates except rq_record_to_job. */
#ifndef RUNQ_REDIS_RECORD_H
#define RUNQ_REDIS_RECORD_H

#include "job.h"

typedef struct rq_span {
    const char *p;
    size_t len;
} rq_span;

typedef struct rq_record {
    int version; /* the leading number, even when it is not 2 */
    int64_t maxr, prio, created, eta, timeout, deadline, uttl, rint;
    bool uud;
    rq_span task, args, ukey, meta, rkey;
} rq_record;

/* Parse s[0..len). NULL on success, else why the record cannot be read
 * ("unsupported record version N" names the version in rec->version). */
const char *rq_record_parse(rq_record *rec, const char *s, size_t len);

/* What a producer sends the enqueue script (enqueue.lua) of a record: all
 * but the three times the server fills in, as record = head .. created ..
 * '|' .. eta .. mid .. deadline .. tail .. the five strings, where head is
 * "2|maxr|prio|", mid "|timeout|" and tail
 * "|uttl|rint|uud|#task|#args|#ukey|#meta|#rkey|". Built from rec (its
 * times are not read). */
typedef struct rq_record_parts {
    char head[48], mid[24], tail[176]; /* room for any int64 fields */
    size_t head_len, mid_len, tail_len;
} rq_record_parts;
void rq_record_parts_build(rq_record_parts *out, const rq_record *rec);

/* Copy a parsed record into j (task, args, unique and rate keys, metadata,
 * numbers). RUNQ_ENOMEM, or RUNQ_EPROTO with *why set when a field the
 * engine relies on is malformed (args not one msgpack object, bad meta). */
int rq_record_to_job(runq_job *j, const rq_record *rec, const char **why);

/* The attempt state "attempt|eta|error" (absent or empty: 0, 0, no error). */
typedef struct rq_att {
    int attempt;
    int64_t eta; /* a retry's eta; 0: the record's */
    rq_span error;
} rq_att;
/* false when s is not of that shape. */
bool rq_att_parse(rq_att *att, const char *s, size_t len);

/* A done job's kept value "4|finished|attempt|#result|#att|" result att record. */
typedef struct rq_fin {
    int64_t finished;
    int attempt;
    rq_span result, att, record;
} rq_fin;
bool rq_fin_parse(rq_fin *fin, const char *s, size_t len);

#endif
