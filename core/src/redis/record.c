/* Parsing the Redis job record, version 2, and its companion strings; see
 * record.h and docs/protocol.md. */
#include "redis/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal integer ending at a '|' (negative only where `signed_ok`, as
 * the scripts' parser takes it); advances *p past the '|'. */
static bool snum(const char **p, const char *end, int64_t *out, bool signed_ok) {
    const char *s = *p;
    bool neg = signed_ok && s < end && *s == '-';
    if (neg) s++;
    if (s >= end || *s < '0' || *s > '9') return false;
    int64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (*s++ - '0');
    }
    if (s >= end || *s != '|') return false;
    *out = neg ? -v : v;
    *p = s + 1;
    return true;
}

static bool num(const char **p, const char *end, int64_t *out) {
    return snum(p, end, out, false);
}

/* Take n bytes from *p as a span. */
static bool take(const char **p, const char *end, int64_t n, rq_span *out) {
    if (n < 0 || n > end - *p) return false;
    out->p = *p;
    out->len = (size_t)n;
    *p += n;
    return true;
}

const char *rq_record_parse(rq_record *rec, const char *s, size_t len) {
    static const char *const bad = "the job record is malformed";
    static _Thread_local char why[64];
    memset(rec, 0, sizeof *rec);
    const char *p = s, *end = s + len;
    int64_t v;
    if (!s || !num(&p, end, &v)) return bad;
    rec->version = (int)v;
    if (v != RQ_RECORD_VERSION) {
        snprintf(why, sizeof why, "unsupported record version %lld", (long long)v);
        return why;
    }
    int64_t *n[] = {&rec->maxr, &rec->prio, &rec->created, &rec->eta, &rec->timeout,
                    &rec->deadline, &rec->uttl, &rec->rint};
    for (size_t i = 0; i < sizeof n / sizeof *n; i++)
        if (!snum(&p, end, n[i], n[i] == &rec->prio)) return bad; /* only the priority is signed */
    int64_t uud, lens[5];
    if (!num(&p, end, &uud) || (uud != 0 && uud != 1)) return bad;
    rec->uud = uud == 1;
    for (size_t i = 0; i < 5; i++)
        if (!num(&p, end, &lens[i])) return bad;
    rq_span *f[] = {&rec->task, &rec->args, &rec->ukey, &rec->meta, &rec->rkey};
    for (size_t i = 0; i < 5; i++)
        if (!take(&p, end, lens[i], f[i])) return bad;
    if (p != end) return bad;
    if (rec->maxr > INT32_MAX || rec->prio < INT32_MIN || rec->prio > INT32_MAX) return bad;
    return NULL;
}

/* "|v[0]|v[1]|...|v[n-1]|" at out; returns its length. */
static size_t put_fields(char *out, const int64_t *v, size_t n) {
    char *p = out;
    *p++ = '|';
    for (size_t i = 0; i < n; i++) {
        p += rq_fmt_i64(p, v[i]);
        *p++ = '|';
    }
    return (size_t)(p - out);
}

void rq_record_parts_build(rq_record_parts *out, const rq_record *rec) {
    const int64_t head[] = {rec->maxr, rec->prio};
    const int64_t mid[] = {rec->timeout};
    const int64_t tail[] = {rec->uttl,
                            rec->rint,
                            rec->uud,
                            (int64_t)rec->task.len,
                            (int64_t)rec->args.len,
                            (int64_t)rec->ukey.len,
                            (int64_t)rec->meta.len,
                            (int64_t)rec->rkey.len};
    out->head[0] = '0' + RQ_RECORD_VERSION;
    out->head_len = 1 + put_fields(out->head + 1, head, 2);
    out->mid_len = put_fields(out->mid, mid, 1);
    out->tail_len = put_fields(out->tail, tail, 8);
}

/* A span as an owned NUL-terminated string; empty: NULL. */
static int span_str(char **field, rq_span s) {
    char *copy = NULL;
    if (s.len) {
        if (memchr(s.p, '\0', s.len)) return RUNQ_EPROTO;
        if (!(copy = rq_malloc(s.len + 1))) return rq_error(RUNQ_ENOMEM, "out of memory");
        memcpy(copy, s.p, s.len);
        copy[s.len] = '\0';
    }
    rq_free(*field);
    *field = copy;
    return 0;
}

int rq_record_to_job(runq_job *j, const rq_record *rec, const char **why) {
    int rc;
    *why = NULL;
    if (rec->task.len == 0 || (rc = span_str(&j->task, rec->task)) == RUNQ_EPROTO) {
        *why = "the task name is missing or not text";
        return RUNQ_EPROTO;
    }
    if (rc) return rc;
    if ((rc = span_str(&j->unique_key, rec->ukey)) || (rc = span_str(&j->rate_key, rec->rkey))) {
        if (rc == RUNQ_EPROTO) *why = "a unique or rate key is not text";
        return rc;
    }
    if (rq_msgpack_check(rec->args.p, rec->args.len, "job args") != 0) {
        *why = "args are not one well-formed msgpack object";
        return RUNQ_EPROTO;
    }
    if ((rc = rq_job_set_buf(&j->args, &j->args_len, rec->args.p, rec->args.len))) return rc;
    if ((rc = rq_job_meta_decode(j, rec->meta.p, rec->meta.len)) == RUNQ_EPROTO) {
        *why = "meta is not a msgpack map of strings";
        return rc;
    }
    if (rc) return rc;
    j->version = rec->version;
    j->max_retries = (int)rec->maxr;
    j->priority = (int32_t)rec->prio;
    j->created_ms = rec->created;
    j->eta_ms = rec->eta;
    j->timeout_ms = rec->timeout;
    j->deadline_ms = rec->deadline;
    j->unique_ttl_ms = rec->uttl;
    j->rate_interval_ms = rec->rint;
    j->unique_until_done = rec->uud;
    return 0;
}

bool rq_att_parse(rq_att *att, const char *s, size_t len) {
    memset(att, 0, sizeof *att);
    if (!s || len == 0) return true;
    const char *p = s, *end = s + len;
    int64_t a;
    if (!num(&p, end, &a) || a > INT32_MAX || !num(&p, end, &att->eta)) return false;
    att->attempt = (int)a;
    att->error.p = p;
    att->error.len = (size_t)(end - p);
    return true;
}

bool rq_fin_parse(rq_fin *fin, const char *s, size_t len) {
    memset(fin, 0, sizeof *fin);
    const char *p = s, *end = s + len;
    int64_t state, attempt, rl, al;
    if (!s || !num(&p, end, &state) || state != 4 || !num(&p, end, &fin->finished) ||
        !num(&p, end, &attempt) || attempt > INT32_MAX || !num(&p, end, &rl) ||
        !num(&p, end, &al) || !take(&p, end, rl, &fin->result) || !take(&p, end, al, &fin->att))
        return false;
    fin->attempt = (int)attempt;
    fin->record.p = p;
    fin->record.len = (size_t)(end - p);
    return true;
}
