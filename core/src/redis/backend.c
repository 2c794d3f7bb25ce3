/* The redis:// and unix:// backend: each operation of rq_backend_ops is one
 * server script (or a plain read) sent through the I/O thread of conn.c.
 * docs/redis-backend.md describes the key layout and every script. */
#include "backend.h"

#include "redis/conn.h"
#include "redis/record.h"
#include "redis/scripts.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define KEY_MAX (RUNQ_NAME_MAX * 2 + 64)
/* Fetch reply fields per job (fetch.lua): id, record and attempt state, or
 * id and record alone when no job of the call has an attempt state. */
#define FETCH_FIELDS 3
#define BLOCK_SLICE_MS 30000 /* longest single BZPOPMIN; the loop re-arms it */
#define REDIS_TICK_MS 100    /* granularity of Redis's blocking timeouts (hz 10) */

enum { S_ENQUEUE, S_FETCH, S_ACK, S_FAIL, S_RELEASE, S_EXTEND, S_DEAD_RETRY,
       S_STATS, S_CONFIGURE, S_PAUSE, S_GET, S_COUNT };
static const char *const script_names[S_COUNT] = {
    "enqueue", "fetch", "ack", "fail", "release", "extend", "dead_retry",
    "stats", "configure", "pause", "get"};

typedef struct ack_waiter ack_waiter;

typedef struct rq_redis {
    runq_backend base;
    rq_conn *conn;
    int timeout_ms; /* command timeout */
    int script[S_COUNT];
    /* Acks from concurrent threads are combined (redis_ack): queued waiters,
     * and whether a leader is sending a batch. */
    uv_mutex_t ack_lock;
    ack_waiter *ack_head, *ack_tail;
    bool ack_busy;
} rq_redis;

#define RB(b) ((rq_redis *)(b))

/* ---- keys ------------------------------------------------------------ */

/* Every key of queue Q carries the hash tag {runq:Q}, so one queue lives in
 * one cluster slot and each script touches one slot (except the queue
 * registry runq:queues, see docs). */
static void qkey(char out[KEY_MAX], const char *queue, const char *suffix) {
    /* "{runq:<queue>}:<suffix>"; names are checked to fit (RUNQ_NAME_MAX),
     * anything longer is cut as snprintf would. */
    size_t ql = strlen(queue), sl = strlen(suffix);
    if (ql > RUNQ_NAME_MAX) ql = RUNQ_NAME_MAX;
    if (8 + ql + sl >= KEY_MAX) sl = KEY_MAX - 9 - ql;
    memcpy(out, "{runq:", 6);
    memcpy(out + 6, queue, ql);
    memcpy(out + 6 + ql, "}:", 2);
    memcpy(out + 8 + ql, suffix, sl);
    out[8 + ql + sl] = '\0';
}
/* The set of every queue name ever enqueued to: lookups by id search them. */
#define QUEUES_KEY "runq:queues"
/* Finish notice: a list pushed when a job someone waits for becomes done or
 * dead, so that runq_job_wait blocks instead of polling. Expires after a
 * minute. */
static void done_key(char out[KEY_MAX], const char *queue, const char *id) {
    snprintf(out, KEY_MAX, "{runq:%s}:done:%s", queue, id);
}
/* ARGV of most scripts: "{runq:Q}:", from which they build per-job and
 * per-name keys of the queue's slot. */
static void call_prefix(rq_call *c, const char *queue) {
    char k[KEY_MAX];
    qkey(k, queue, "");
    rq_call_str(c, k);
}
/* Declare the queue keys named in `names` (suffixes), in order. */
static void call_qkeys(rq_call *c, const char *queue, const char *const *names, size_t n) {
    char k[KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        qkey(k, queue, names[i]);
        rq_call_key(c, k);
    }
}
#define CALL_QKEYS(c, queue, ...)                                            \
    do {                                                                     \
        static const char *const names_[] = {__VA_ARGS__};                   \
        call_qkeys((c), (queue), names_, sizeof names_ / sizeof *names_);    \
    } while (0)
/* Declare {runq:Q}:<kind><name> in KEYS, where name is a unique key or a
 * rate key (up to 1024 bytes, so the key may be longer than KEY_MAX); with
 * name NULL, the bare prefix: a placeholder the script leaves alone. */
static void call_key_named(rq_call *c, const char *queue, const char *kind, const char *name) {
    char k[KEY_MAX];
    snprintf(k, KEY_MAX, "{runq:%s}:%s", queue, kind);
    if (!name) {
        rq_call_key(c, k);
        return;
    }
    size_t kl = strlen(k), nl = strlen(name);
    char *full = rq_malloc(kl + nl + 1);
    if (!full) {
        c->args.oom = true;
        return;
    }
    memcpy(full, k, kl);
    memcpy(full + kl, name, nl + 1);
    rq_call_key(c, full);
    rq_free(full);
}
static int call_rc(const rq_call *call, const char *what) {
    if (!call->reply) return rq_error(RUNQ_EIO, "redis gave no reply to %s", what);
    if (call->reply->type == RQ_REPLY_ERROR)
        return rq_error(RUNQ_EIO, "redis %s script failed: %s", what, call->reply->str);
    return 0;
}

/* A lost or timed-out round trip: name the operation in the detail. */
static int io_rc(int rc, const char *what) {
    if (rc == 0 || rc == RQ_INTERRUPTED) return rc;
    /* Copy first: the detail lives in the buffer rq_error rewrites. */
    char detail[512];
    snprintf(detail, sizeof detail, "%s", runq_error_last());
    if (strncmp(detail, "redis ", 6) == 0) return rc; /* already says which op */
    return rq_error(rc, "redis %s: %s", what, detail);
}

static int run1(rq_redis *rb, rq_call *call, const char *what) {
    int rc = rq_calls_run(rb->conn, call, 1, 0, rb->timeout_ms, 0, 0, NULL);
    if (rc) return io_rc(rc, what);
    return call_rc(call, what);
}

/* ---- enqueue ----------------------------------------------------------- */

/* Jobs per enqueue or ack script call: one call handles a run of jobs of one
 * queue (TIME and the queue-wide reads once), and this bounds how long one
 * call holds the server (~100 x 15 us). */
#define BATCH_MAX 100

/* The script calls of a batch operation: one per run of consecutive items of
 * one queue, at most BATCH_MAX items each; first[c] is call c's first item,
 * first[ncalls] = n. */
typedef struct rq_batch {
    rq_call *calls;
    size_t *first;
    size_t ncalls;
} rq_batch;

typedef struct batch_kind {
    const char *what;  /* the operation, for error details */
    const char *(*queue)(const void *items, size_t i);
    /* Build call c for items[at .. at + n). */
    void (*build)(rq_redis *rb, rq_call *c, const void *items, size_t at, size_t n);
    /* The result of items[at] from its reply field f. */
    int (*result)(const void *items, size_t at, const rq_reply *f);
} batch_kind;

/* Plan and build the calls for n items; on failure every results[i] holds
 * the error. */
static int batch_build(rq_batch *bt, const batch_kind *kind, rq_redis *rb, const void *items,
                       size_t n, int *results) {
    bt->calls = rq_calloc(n, sizeof *bt->calls);
    bt->first = rq_calloc(n + 1, sizeof *bt->first);
    bt->ncalls = 0;
    if (!bt->calls || !bt->first) {
        rq_free(bt->calls);
        rq_free(bt->first);
        for (size_t i = 0; i < n; i++) results[i] = RUNQ_ENOMEM;
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n;) {
        size_t e = i + 1;
        while (e < n && e - i < BATCH_MAX &&
               strcmp(kind->queue(items, e), kind->queue(items, i)) == 0)
            e++;
        bt->first[bt->ncalls] = i;
        kind->build(rb, &bt->calls[bt->ncalls++], items, i, e - i);
        i = e;
    }
    bt->first[bt->ncalls] = n;
    return 0;
}

/* After the calls ran (rc: rq_calls_run's code): every item's result. */
static int batch_results(const rq_batch *bt, const batch_kind *kind, const void *items, size_t n,
                         int rc, int *results) {
    if (rc) {
        rc = io_rc(rc, kind->what);
        for (size_t i = 0; i < n; i++) results[i] = rc;
        return rc;
    }
    for (size_t c = 0; c < bt->ncalls; c++) {
        size_t count = bt->first[c + 1] - bt->first[c];
        const rq_reply *r = bt->calls[c].reply;
        int crc = call_rc(&bt->calls[c], kind->what);
        /* One field per item, or one integer for all of them when all got
         * the same (enqueue.lua, ack.lua: the common case). */
        bool one = !crc && r->type == RQ_REPLY_INTEGER;
        if (!crc && !one && (r->type != RQ_REPLY_ARRAY || r->elements != count))
            crc = rq_error(RUNQ_EPROTO, "redis %s: unexpected reply shape", kind->what);
        for (size_t i = 0; i < count; i++) {
            size_t at = bt->first[c] + i;
            results[at] = crc ? crc : kind->result(items, at, one ? r : rq_reply_at(r, i));
        }
    }
    return 0;
}

static void batch_clear(rq_batch *bt) {
    for (size_t c = 0; c < bt->ncalls; c++) rq_call_clear(&bt->calls[c]);
    rq_free(bt->calls);
    rq_free(bt->first);
}

static const char *job_queue_at(const void *items, size_t i) {
    return ((runq_job *const *)items)[i]->queue;
}

/* A job's record but for its metadata (rec.meta: empty). */
static rq_record job_record(const runq_job *j) {
    const char *ukey = j->unique_key ? j->unique_key : "";
    const char *rkey = j->rate_key ? j->rate_key : "";
    return (rq_record){.maxr = j->max_retries,
                       .prio = j->priority,
                       .timeout = j->timeout_ms,
                       .uttl = *ukey ? j->unique_ttl_ms : 0,
                       .rint = *rkey ? j->rate_interval_ms : 0,
                       .uud = *ukey && j->unique_until_done,
                       .task = {j->task, strlen(j->task)},
                       .args = {(const char *)j->args, j->args_len},
                       .ukey = {ukey, strlen(ukey)},
                       .rkey = {rkey, strlen(rkey)}};
}

/* A job's flag in the enqueue call, '0' + these bits (enqueue.lua). */
enum { FLAG_OPTIONS = 1, FLAG_OWN_HEAD = 2 };

/* Due now, priority 0, no unique key, rate key, deadline or TTL. */
static bool job_plain(const runq_job *j) {
    return !j->priority && !j->eta_ms && !j->delay_ms && !j->deadline_ms && !j->ttl_ms &&
           !(j->unique_key && *j->unique_key) && !(j->rate_key && *j->rate_key);
}

/* The enqueue script's KEYS (the queue's 11) and ARGV for jobs[0..n), all of
 * one queue (enqueue.lua): the queue name, the first job's record head and
 * mid, one flag character per job (options follow; own head and mid
 * follow), then per job its id, the rest of its record but for the times
 * (record.h: rq_record_parts), its own head and mid if they differ and, for
 * a job that is not plain, its 9 options. */
static void enqueue_call(rq_redis *rb, rq_call *c, const void *items, size_t at, size_t n) {
    runq_job *const *jobs = (runq_job *const *)items + at;
    const char *queue = jobs[0]->queue;
    rq_call_init(c, rb->script[S_ENQUEUE]);
    CALL_QKEYS(c, queue, "jobs", "scheduled", "pending", "marker", "config", "ready", "rkeys",
               "rkwait", "dl", "uud");
    rq_call_key(c, QUEUES_KEY);
    rq_call_str(c, queue);
    char *flags = rq_malloc(n);
    if (!flags) {
        c->args.oom = true;
        return;
    }
    /* HEAD holds the retries and the priority, MID the timeout. */
    const runq_job *j0 = jobs[0];
    for (size_t i = 0; i < n; i++) {
        const runq_job *j = jobs[i];
        bool own = j->max_retries != j0->max_retries || j->priority != j0->priority ||
                   j->timeout_ms != j0->timeout_ms;
        flags[i] = (char)('0' + (job_plain(j) ? 0 : FLAG_OPTIONS) + (own ? FLAG_OWN_HEAD : 0));
    }
    rq_record rec0 = job_record(j0);
    rq_record_parts parts;
    rq_record_parts_build(&parts, &rec0);
    rq_call_bin(c, parts.head, parts.head_len);
    rq_call_bin(c, parts.mid, parts.mid_len);
    rq_call_bin(c, flags, n);
    for (size_t i = 0; i < n; i++) {
        const runq_job *j = jobs[i];
        uint8_t *meta = NULL;
        size_t meta_len = 0;
        if (rq_job_meta_encode(j, &meta, &meta_len)) c->args.oom = true;
        rq_record rec = job_record(j);
        rec.meta = (rq_span){(const char *)meta, meta_len};
        rq_record_parts_build(&parts, &rec);
        const void *tail[] = {parts.tail, rec.task.p, rec.args.p, rec.ukey.p, rec.meta.p,
                              rec.rkey.p};
        const size_t tail_lens[] = {parts.tail_len, rec.task.len, rec.args.len,
                                    rec.ukey.len,   rec.meta.len, rec.rkey.len};
        rq_call_str(c, j->id);
        rq_call_cat(c, 6, tail, tail_lens);
        rq_free(meta);
        int flag = flags[i] - '0';
        if (flag & FLAG_OWN_HEAD) {
            rq_call_bin(c, parts.head, parts.head_len);
            rq_call_bin(c, parts.mid, parts.mid_len);
        }
        if (!(flag & FLAG_OPTIONS)) continue;
        rq_call_i64(c, j->priority);
        rq_call_i64(c, j->eta_ms);
        rq_call_i64(c, j->delay_ms);
        rq_call_i64(c, j->deadline_ms);
        rq_call_i64(c, j->ttl_ms);
        rq_call_str(c, rec.ukey.p);
        rq_call_i64(c, j->unique_ttl_ms);
        rq_call_str(c, j->unique_until_done ? "1" : "0");
        rq_call_str(c, rec.rkey.p);
    }
    rq_free(flags);
}

/* One job's reply field (enqueue.lua): stored (its state), or why not. The
 * caller reads only the id of a stored or duplicate job. */
static int enqueue_result(const void *items, size_t i, const rq_reply *f) {
    runq_job *j = ((runq_job *const *)items)[i];
    long long code = 0;
    if (f && f->type == RQ_REPLY_STRING) {
        if (f->len == RUNQ_ID_LEN) memcpy(j->id, f->str, RUNQ_ID_SIZE);
        return rq_error(RUNQ_EDUPLICATE, "unique key \"%s\" is held by job %s",
                        j->unique_key ? j->unique_key : "", j->id);
    }
    if (!rq_reply_int(f, &code)) return rq_error(RUNQ_EPROTO, "redis enqueue: unexpected reply");
    if (code == RUNQ_STATE_SCHEDULED || code == RUNQ_STATE_PENDING) return 0;
    if (code == RUNQ_EFULL)
        return rq_error(RUNQ_EFULL, "queue %s holds its max_len of jobs", j->queue);
    return rq_error(RUNQ_EPROTO, "redis enqueue: unexpected code %lld", code);
}

static int redis_enqueue(runq_backend *b, runq_job **jobs, int *results, size_t n, int replicate,
                         int replicate_timeout_ms) {
    rq_redis *rb = RB(b);
    if (n == 0) return 0;
    static const batch_kind kind = {"enqueue", job_queue_at, enqueue_call, enqueue_result};
    rq_batch bt;
    if (batch_build(&bt, &kind, rb, jobs, n, results)) return RUNQ_ENOMEM;
    long long acked = 0;
    /* WAIT blocks its connection, so a replicated write takes a pool
     * connection of its own instead of stalling the shared pipeline. */
    int flags = replicate > 0 ? RQ_REQ_BLOCKING : 0;
    int timeout = rb->timeout_ms + (replicate > 0 ? replicate_timeout_ms : 0);
    int rc = rq_calls_run(rb->conn, bt.calls, bt.ncalls, flags, timeout, replicate,
                          replicate_timeout_ms, &acked);
    rc = batch_results(&bt, &kind, jobs, n, rc, results);
    if (!rc && replicate > 0 && acked < replicate) {
        rc = rq_error(RUNQ_EDURABILITY,
                      "written, but only %lld of %d replicas confirmed within %d ms: "
                      "the durability of the write is unknown",
                      acked < 0 ? 0 : acked, replicate, replicate_timeout_ms);
    }
    batch_clear(&bt);
    return rc;
}

/* ---- fetch ---------------------------------------------------------------- */

static bool reply_i64(const rq_reply *r, int64_t *out) {
    long long v;
    if (!rq_reply_int(r, &v)) return false;
    *out = v;
    return true;
}

static bool reply_u64(const rq_reply *r, uint64_t *out) {
    if (!r || r->type != RQ_REPLY_STRING || r->len == 0) return false;
    char *end;
    unsigned long long v = strtoull(r->str, &end, 10);
    if (*end) return false;
    *out = v;
    return true;
}

/* A reply string as a span (false: not a string). */
static bool reply_span(const rq_reply *r, rq_span *out) {
    if (!r || r->type != RQ_REPLY_STRING) return false;
    out->p = r->str;
    out->len = r->len;
    return true;
}

/* The error of earlier attempts and a retry's eta, from an attempt state. */
static int job_set_att(runq_job *j, const rq_att *att) {
    if (att->eta > 0) j->eta_ms = att->eta;
    if (!att->error.len) return 0;
    char *e = rq_malloc(att->error.len + 1);
    if (!e) return rq_error(RUNQ_ENOMEM, "out of memory");
    memcpy(e, att->error.p, att->error.len);
    e[att->error.len] = '\0';
    rq_free(j->error);
    j->error = e;
    return 0;
}

/* Build a leased job from `width` fetch fields (2 or FETCH_FIELDS: without
 * the third, no attempt state), leased with `token`. RUNQ_EPROTO with *why
 * set when the record is malformed in a way the script does not judge. */
static int job_from_fetch(runq_job **out, const rq_reply *r, size_t at, size_t width,
                          const char *queue, uint64_t token, int64_t expiry, const char **why) {
    const rq_reply *f[FETCH_FIELDS] = {NULL, NULL, NULL};
    for (size_t i = 0; i < width; i++) f[i] = rq_reply_at(r, at + i);
    rq_span rs = {0}, as = {0};
    rq_record rec;
    rq_att att;
    *why = NULL;
    if (!f[0] || f[0]->type != RQ_REPLY_STRING || f[0]->len != RUNQ_ID_LEN) *why = "bad id";
    else if (!reply_span(f[1], &rs) || (*why = rq_record_parse(&rec, rs.p, rs.len)) != NULL) {
        if (!*why) *why = "the job record is missing";
    } else if ((f[2] && !reply_span(f[2], &as)) || !rq_att_parse(&att, as.p, as.len) ||
               att.attempt == INT32_MAX)
        *why = "bad attempt state";
    if (*why) return RUNQ_EPROTO;
    runq_job *j = rq_job_new();
    if (!j) return rq_error(RUNQ_ENOMEM, "out of memory");
    memcpy(j->id, f[0]->str, RUNQ_ID_SIZE);
    j->lease_token = token;
    int rc = rq_record_to_job(j, &rec, why);
    if (!rc) rc = job_set_att(j, &att);
    if (!rc) rc = rq_job_set_str(&j->queue, queue);
    if (rc) {
        rq_job_destroy(j);
        return rc;
    }
    j->attempt = att.attempt + 1; /* the script counts this attempt the same way */
    j->lease_until_ms = expiry;
    j->state = RUNQ_STATE_ACTIVE;
    *out = j;
    return 0;
}

/* The fail script on a leased job (fail.lua): a failed attempt, retried
 * after delay_ms while attempts are left, else dead; with bury_reason, dead at
 * once with that reason (the client cannot read the job, so retrying cannot
 * help). Returns 0 (*dead set), RUNQ_ESTALE without a detail (the caller
 * names the job), or another error. */
static int fail_script(rq_redis *rb, const char *queue, const char *id, uint64_t token,
                       const char *error, int64_t delay_ms, const char *bury_reason, bool *dead) {
    *dead = false;
    rq_call c;
    rq_call_init(&c, rb->script[S_FAIL]);
    CALL_QKEYS(&c, queue, "jobs", "active", "lease", "att", "scheduled", "dead", "marker",
               "config", "gate", "pending", "ready", "uud", "waiters", "lgroups");
    call_prefix(&c, queue);
    rq_call_str(&c, id);
    rq_call_u64(&c, token);
    rq_call_str(&c, bury_reason ? bury_reason : error ? error : "failed");
    rq_call_i64(&c, bury_reason ? 0 : delay_ms);
    rq_call_str(&c, bury_reason ? "1" : "0");
    int rc = run1(rb, &c, bury_reason ? "bury" : "fail");
    long long code = 0, d = 0;
    if (rc == 0 && !rq_reply_int(rq_reply_at(c.reply, 0), &code))
        rc = rq_error(RUNQ_EPROTO, "redis %s: bad reply", bury_reason ? "bury" : "fail");
    if (rc == 0 && code == RUNQ_ESTALE) rc = RUNQ_ESTALE;
    if (rc == 0 && rq_reply_int(rq_reply_at(c.reply, 1), &d)) *dead = d != 0;
    rq_call_clear(&c);
    return rc;
}

/* Dead-letter a leased job the client cannot decode. Best effort: if this
 * fails, the lease expires and the next fetch meets the job again. */
static int bury_job(rq_redis *rb, const char *queue, const char *id, uint64_t token,
                    const char *reason) {
    bool dead;
    int rc = fail_script(rb, queue, id, token, NULL, 0, reason, &dead);
    if (rc == RUNQ_ESTALE)
        rc = rq_error(RUNQ_ESTALE, "job %s: the lease is no longer held by this worker", id);
    return rc;
}

static void bury(rq_redis *rb, const char *queue, const rq_reply *id, uint64_t token,
                 const char *why) {
    if (!id || id->type != RQ_REPLY_STRING) return;
    char reason[160];
    snprintf(reason, sizeof reason, "corrupt job: %s", why);
    (void)bury_job(rb, queue, id->str, token, reason);
}

/* The backend op: the engine found a leased job unreadable. */
static int redis_bury(runq_backend *b, const runq_job *job, const char *reason) {
    return bury_job(RB(b), job->queue, job->id, job->lease_token, reason);
}

/* The fetch script's call on one queue for up to `want` jobs; returns the
 * lease token it carries. */
static uint64_t fetch_build(rq_redis *rb, rq_call *c, const char *queue, int64_t lease_ms,
                            size_t want) {
    rq_call_init(c, rb->script[S_FETCH]);
    CALL_QKEYS(c, queue, "scheduled", "pending", "active", "dead", "marker", "config", "gate",
               "rkeys", "rkwait", "rkflight", "jobs", "ready", "lease", "att", "dl", "uud",
               "waiters", "lgroups", "rttl");
    call_prefix(c, queue);
    rq_call_i64(c, lease_ms);
    rq_call_i64(c, (int64_t)want);
    rq_call_str(c, queue);
    uint64_t token;
    do token = rq_random64();
    while (token == 0); /* 0 means "no lease" in snapshots */
    rq_call_u64(c, token);
    return token;
}

/* The leased jobs of a fetch call that ran (c->reply), appended to
 * out[*n...]; the server's time and next due time as the script saw them. */
static int fetch_take(rq_redis *rb, const rq_call *c, const char *queue,
                      const rq_fetch_request *req, uint64_t token, size_t want, runq_job **out,
                      size_t *n, int64_t *next_due, int64_t *server_now) {
    int rc = call_rc(c, "fetch");
    if (rc) return rc;
    const rq_reply *r = c->reply;
    int64_t now = 0, due = 0, got = 0, expiry = 0;
    if (!reply_i64(rq_reply_at(r, 0), &now) || !reply_i64(rq_reply_at(r, 1), &due) ||
        !reply_i64(rq_reply_at(r, 2), &got) || !reply_i64(rq_reply_at(r, 3), &expiry) ||
        got < 0 || (size_t)got > want)
        return rq_error(RUNQ_EPROTO, "redis fetch: unexpected reply shape");
    /* 4 + got * width elements: the width shows (one reading when got is 0) */
    size_t width = r->elements == 4 + (size_t)got * 2 ? 2 : FETCH_FIELDS;
    if (r->elements != 4 + (size_t)got * width)
        return rq_error(RUNQ_EPROTO, "redis fetch: unexpected reply shape");
    *server_now = now;
    if (due > 0 && (*next_due == 0 || due < *next_due)) *next_due = due;
    for (int64_t i = 0; i < got; i++) {
        size_t at = 4 + (size_t)i * width;
        const char *why = NULL;
        runq_job *j = NULL;
        int jrc = job_from_fetch(&j, r, at, width, queue, token, expiry, &why);
        if (jrc == RUNQ_EPROTO) {
            bury(rb, queue, rq_reply_at(r, at), token, why);
            continue;
        }
        if (jrc) {
            /* Out of memory: the lease lapses and the job comes back. */
            rc = jrc;
            continue;
        }
        j->leased_ms = expiry - req->lease_ms; /* the script's lease time */
        out[(*n)++] = j;
    }
    return *n ? 0 : rc;
}

/* One fetch script on one queue. Appends leased jobs to out[*n...]. */
static int fetch_queue(rq_redis *rb, const char *queue, const rq_fetch_request *req,
                       runq_job **out, size_t *n, int64_t *next_due, int64_t *server_now) {
    size_t want = req->max - *n;
    rq_call c;
    uint64_t token = fetch_build(rb, &c, queue, req->lease_ms, want);
    int rc = rq_calls_run(rb->conn, &c, 1, 0, rb->timeout_ms, 0, 0, NULL);
    if (rc) rc = io_rc(rc, "fetch");
    else rc = fetch_take(rb, &c, queue, req, token, want, out, n, next_due, server_now);
    rq_call_clear(&c);
    return rc;
}

/* Block until a marker of one of the queues is pushed or wait_ms passes;
 * then, on the same connection and without a round trip in between, run
 * `then` (a fetch call; may be NULL). 0, RQ_INTERRUPTED or an error. */
static int block_on_markers(rq_redis *rb, const rq_fetch_request *req, int64_t wait_ms,
                            unsigned gen, rq_call *then) {
    size_t argc = req->nqueues + 2;
    const char **argv = rq_calloc(argc, sizeof *argv);
    char (*keys)[KEY_MAX] = rq_calloc(req->nqueues, KEY_MAX);
    char secs[32];
    int rc;
    rq_call_head head = {(int)argc, argv, gen, NULL};
    if (!argv || !keys) {
        rc = rq_error(RUNQ_ENOMEM, "out of memory");
        goto out;
    }
    argv[0] = "BZPOPMIN";
    for (size_t i = 0; i < req->nqueues; i++) {
        qkey(keys[i], req->queues[i], "marker");
        argv[i + 1] = keys[i];
    }
    /* Redis >= 6 takes fractional seconds; 0 would mean forever. */
    if (wait_ms < 1) wait_ms = 1;
    snprintf(secs, sizeof secs, "%.3f", (double)wait_ms / 1000.0);
    argv[argc - 1] = secs;
    rc = rq_calls_run_after(rb->conn, &head, then, then ? 1 : 0,
                            RQ_REQ_BLOCKING | RQ_REQ_REISSUE | RQ_REQ_INTERRUPTIBLE,
                            (int)wait_ms + rb->timeout_ms);
    if (rc == 0 && rq_reply_is_error(head.reply))
        rc = rq_error(RUNQ_EIO, "redis BZPOPMIN failed: %s", head.reply->str);
out:
    rq_reply_free(head.reply);
    rq_free(argv);
    rq_free(keys);
    return rc;
}

/* A worker of one queue waits and fetches in one step: the fetch script
 * goes in the same pipeline as the wait, so a woken worker leases its jobs
 * without another round trip (the wake-up path of every idle worker), and
 * *fetched says so. With several queues the fetch order is chosen after
 * the wait. */
static int wait_and_fetch(rq_redis *rb, const rq_fetch_request *req, int64_t wait_ms, unsigned gen,
                          runq_job **out, size_t *n, int64_t *next_due, int64_t *server_now,
                          bool *fetched) {
    *fetched = false;
    if (req->nqueues != 1) return block_on_markers(rb, req, wait_ms, gen, NULL);
    size_t want = req->max - *n;
    rq_call c;
    uint64_t token = fetch_build(rb, &c, req->queues[0], req->lease_ms, want);
    int rc = block_on_markers(rb, req, wait_ms, gen, &c);
    *next_due = *server_now = 0;
    /* A fetch that ran leased its jobs, even when the wait itself failed
     * (a BZPOPMIN error): they are taken, not left to their leases. */
    if (c.reply) {
        int frc = fetch_take(rb, &c, req->queues[0], req, token, want, out, n, next_due,
                             server_now);
        if (rc == 0 || *n) rc = frc;
        *fetched = true;
    }
    rq_call_clear(&c);
    return rc;
}

static int redis_fetch(runq_backend *b, const rq_fetch_request *req, runq_job ***out, size_t *n) {
    rq_redis *rb = RB(b);
    size_t order[64];
    *out = NULL;
    *n = 0;
    if (req->nqueues == 0 || req->nqueues > 64 || req->max == 0)
        return rq_error(RUNQ_EINVAL, "fetch needs 1 to 64 queues and max > 0");
    runq_job **jobs = rq_calloc(req->max, sizeof *jobs);
    if (!jobs) return rq_error(RUNQ_ENOMEM, "out of memory");
    unsigned gen = rq_conn_interrupt_gen(rb->conn);
    if (req->stop && atomic_load(req->stop)) {
        rq_free(jobs);
        return rq_error(RUNQ_ETIMEOUT, "no job: the caller is stopping");
    }
    int64_t until = req->timeout_ms < 0 ? INT64_MAX : rq_mono_ms() + req->timeout_ms;
    int rc = 0;
    int64_t next_due = 0, server_now = 0;
    /* No fetch needed before the wait: the wait's own fetch ran, or the hint
     * says the queues were drained; next_due and server_now are theirs. */
    bool fetched = false;
    rq_fetch_hint *hint = req->hint;
    if (hint && hint->drained) {
        /* The caller's last fetch drained these queues. Since then every
         * change that makes a job leasable pushed a marker (enqueue,
         * release, a freed slot, a resume: the scripts' wake-ups) or falls
         * due by the time that fetch gave, so wait at once: asking first
         * would cost a round trip and a script call that find nothing, per
         * job of a lightly loaded queue. Its due time is in local time. */
        fetched = true;
        server_now = rq_mono_ms();
        next_due = hint->due_mono_ms;
    }
    if (hint) hint->drained = false;
    for (;;) {
        if (!fetched) {
            next_due = server_now = 0;
            rq_fetch_order(req, order);
            for (size_t i = 0; i < req->nqueues && *n < req->max; i++) {
                rc = fetch_queue(rb, req->queues[order[i]], req, jobs, n, &next_due, &server_now);
                if (rc) break;
            }
        }
        fetched = false;
        if (*n || rc) break;
        int64_t left = until - rq_mono_ms();
        if (rq_conn_interrupt_gen(rb->conn) != gen || left <= 0) {
            rc = rq_error(RUNQ_ETIMEOUT, "no job became due in time");
            break;
        }
        /* Sleep on the markers until the earliest of: the caller's limit, a
         * scheduled job coming due, a lease expiring (server clock). */
        bool due_bound = next_due > 0 && next_due - server_now < left;
        if (due_bound) left = next_due - server_now;
        if (left > BLOCK_SLICE_MS) left = BLOCK_SLICE_MS;
        /* Something is due already (a backlog past the script's batch
         * bound): block only a moment, to avoid a busy loop. */
        if (left < 1) left = 1;
        /* Redis fires BZPOPMIN timeouts on its cron tick (hz 10: up to 100 ms
         * late), which would stretch every wait for a known due time (a
         * rate-limit token, a retry) by up to a tick. So block on the markers
         * only for the part of the wait a tick cannot spoil, and sleep the
         * last tick here: the time is known, nothing is polled. */
        if (due_bound && left <= REDIS_TICK_MS) {
            uv_sleep((unsigned)left);
            continue;
        }
        if (due_bound && left < BLOCK_SLICE_MS) left -= REDIS_TICK_MS;
        rc = wait_and_fetch(rb, req, left, gen, jobs, n, &next_due, &server_now, &fetched);
        if (rc == RQ_INTERRUPTED) {
            rc = rq_error(RUNQ_ETIMEOUT, "no job became due in time (interrupted)");
            break;
        }
        if (rc) {
            rc = io_rc(rc == RUNQ_ETIMEOUT ? RUNQ_EIO : rc, "fetch wait");
            break;
        }
    }
    /* rc is still the first error of any queue's fetch here. */
    if (hint && rc == 0 && *n > 0 && *n < req->max) {
        hint->drained = true;
        hint->due_mono_ms = next_due > 0 ? rq_mono_ms() + (next_due - server_now) : 0;
    }
    if (*n) {
        rc = 0;
        *out = jobs;
    } else {
        rq_free(jobs);
    }
    return rc;
}

/* ---- settling a leased job --------------------------------------------------- */

static int stale(const runq_job *job) {
    return rq_error(RUNQ_ESTALE,
                    "job %s: the lease is no longer held by this worker (it expired and the job "
                    "was or will be delivered again)",
                    job->id);
}

#define ACK_BATCH_MAX BATCH_MAX

static const char *ack_queue_at(const void *items, size_t i) {
    return ((const rq_ack_item *)items)[i].job->queue;
}

/* The ack script's KEYS (the queue's, 14) and ARGV for items[0..n), all of
 * one queue: the key prefix, a flag, then the jobs in groups that share a
 * lease token (the token, the group's size), 4 arguments per job, or the id
 * alone when none keeps its result (ack.lua). */
static void ack_call(rq_redis *rb, rq_call *c, const void *all, size_t at, size_t n) {
    const rq_ack_item *items = (const rq_ack_item *)all + at;
    const char *queue = items[0].job->queue;
    rq_call_init(c, rb->script[S_ACK]);
    CALL_QKEYS(c, queue, "jobs", "active", "lease", "att", "config", "gate", "pending", "marker",
               "uud", "dl", "waiters", "ready", "lgroups", "rttl");
    call_prefix(c, queue);
    /* Results go only when some job keeps one (ack.lua: 'k'). */
    bool keep = false;
    for (size_t i = 0; i < n && !keep; i++) keep = items[i].result_ttl_ms > 0;
    rq_call_str(c, keep ? "k" : "n");
    for (size_t i = 0; i < n; i++) {
        /* Jobs leased by one fetch call share its token: one group each
         * run of them (ack.lua). */
        if (i == 0 || items[i].job->lease_token != items[i - 1].job->lease_token) {
            size_t run = 1;
            while (i + run < n && items[i + run].job->lease_token == items[i].job->lease_token) run++;
            rq_call_u64(c, items[i].job->lease_token);
            rq_call_u64(c, run);
        }
        rq_call_str(c, items[i].job->id);
        if (!keep) continue;
        /* "|attempt|#result|" of the kept value (ack.lua): the script then
         * formats no numbers. The attempt is the lease's (fetch.lua counts
         * it the same way). */
        size_t rlen = items[i].result ? items[i].result_len : 0;
        char part[48], *p = part;
        *p++ = '|';
        p += rq_fmt_i64(p, items[i].job->attempt);
        *p++ = '|';
        p += rq_fmt_u64(p, rlen);
        *p++ = '|';
        rq_call_bin(c, part, (size_t)(p - part));
        rq_call_bin(c, items[i].result, rlen);
        rq_call_i64(c, items[i].result_ttl_ms);
    }
}

/* One job's reply code (ack.lua); the ESTALE detail is set by the caller
 * (stale()), on the thread that reports it. */
static int ack_result(const void *items, size_t i, const rq_reply *f) {
    (void)items;
    (void)i;
    long long code = 0;
    if (!rq_reply_int(f, &code))
        return rq_error(RUNQ_EPROTO, "redis ack: bad reply");
    return code == RUNQ_ESTALE ? RUNQ_ESTALE : 0;
}

static int redis_ack_many(runq_backend *b, const rq_ack_item *items, int *results, size_t n) {
    rq_redis *rb = RB(b);
    if (n == 0) return 0;
    static const batch_kind kind = {"ack", ack_queue_at, ack_call, ack_result};
    rq_batch bt;
    if (batch_build(&bt, &kind, rb, items, n, results)) return RUNQ_ENOMEM;
    int rc = rq_calls_run(rb->conn, bt.calls, bt.ncalls, 0, rb->timeout_ms, 0, 0, NULL);
    rc = batch_results(&bt, &kind, items, n, rc, results);
    batch_clear(&bt);
    return rc;
}

/* Combining acks: handler threads that finish together would each send one
 * ack script call. Instead a thread queues its ack; if no batch is in flight
 * it leads: it sends every queued ack (up to ACK_BATCH_MAX) with one
 * redis_ack_many, hands each waiter its result, and, if more acks queued up
 * meanwhile, makes the oldest of those the next leader. A lone ack is sent at
 * once, as before; under load the server runs the script's fixed part (TIME,
 * the gate reads) once per batch. Each waiter blocks on its own condition,
 * as it would on its own reply. */
struct ack_waiter {
    rq_ack_item item;
    int result;
    bool done, lead;
    uv_cond_t cond;
    ack_waiter *next;
    char detail[256]; /* the error detail, copied from the leader's thread */
};

/* Lock held: the leader sends the queued acks and wakes their waiters. */
static void ack_lead(rq_redis *rb) {
    ack_waiter *batch[ACK_BATCH_MAX];
    rq_ack_item items[ACK_BATCH_MAX];
    int results[ACK_BATCH_MAX];
    size_t n = 0;
    while (rb->ack_head && n < ACK_BATCH_MAX) {
        ack_waiter *w = rb->ack_head;
        rb->ack_head = w->next;
        batch[n] = w;
        items[n++] = w->item;
    }
    if (!rb->ack_head) rb->ack_tail = NULL;
    uv_mutex_unlock(&rb->ack_lock);
    redis_ack_many(&rb->base, items, results, n);
    for (size_t i = 0; i < n; i++) {
        batch[i]->result = results[i];
        if (results[i] && results[i] != RUNQ_ESTALE)
            snprintf(batch[i]->detail, sizeof batch[i]->detail, "%s", runq_error_last());
    }
    uv_mutex_lock(&rb->ack_lock);
    for (size_t i = 0; i < n; i++) {
        batch[i]->done = true;
        uv_cond_signal(&batch[i]->cond);
    }
    if (rb->ack_head) {
        rb->ack_head->lead = true;
        uv_cond_signal(&rb->ack_head->cond);
    } else {
        rb->ack_busy = false;
    }
}

static int redis_ack(runq_backend *b, const runq_job *job, const void *result, size_t result_len,
                     int64_t result_ttl_ms) {
    rq_redis *rb = RB(b);
    ack_waiter me = {.item = {job, result, result_len, result_ttl_ms}};
    uv_cond_init(&me.cond);
    uv_mutex_lock(&rb->ack_lock);
    if (rb->ack_tail) rb->ack_tail->next = &me;
    else rb->ack_head = &me;
    rb->ack_tail = &me;
    if (!rb->ack_busy) { /* no batch in flight: this thread sends */
        rb->ack_busy = true;
        me.lead = true;
    }
    while (!me.lead && !me.done) uv_cond_wait(&me.cond, &rb->ack_lock);
    /* A leader is at the head of the queue, so its own ack is in its batch. */
    if (!me.done) ack_lead(rb);
    uv_mutex_unlock(&rb->ack_lock);
    uv_cond_destroy(&me.cond);
    if (me.result == RUNQ_ESTALE) return stale(job);
    if (me.result) return rq_error(me.result, "%s", me.detail);
    return 0;
}

static int redis_fail(runq_backend *b, const runq_job *job, const char *error,
                      int64_t retry_delay_ms, bool *dead) {
    int rc = fail_script(RB(b), job->queue, job->id, job->lease_token, error, retry_delay_ms, NULL,
                         dead);
    return rc == RUNQ_ESTALE ? stale(job) : rc;
}

static int redis_release(runq_backend *b, const runq_job *job) {
    rq_redis *rb = RB(b);
    rq_call c;
    rq_call_init(&c, rb->script[S_RELEASE]);
    CALL_QKEYS(&c, job->queue, "jobs", "active", "lease", "att", "pending", "marker", "gate",
               "rkeys", "rkwait", "lgroups");
    call_prefix(&c, job->queue);
    rq_call_str(&c, job->id);
    rq_call_u64(&c, job->lease_token);
    int rc = run1(rb, &c, "release");
    long long code = 0;
    if (rc == 0 && !rq_reply_int(c.reply, &code))
        rc = rq_error(RUNQ_EPROTO, "redis release: bad reply");
    if (rc == 0 && code == RUNQ_ESTALE) rc = stale(job);
    rq_call_clear(&c);
    return rc;
}

/* The job a call extends: its first job, and whether the call covers the
 * job's whole fetch group (extend.lua without an id). */
typedef struct extend_target {
    const runq_job *job;
    bool group;
    int rc;        /* the call's outcome */
    int64_t until; /* the new expiry (0: none given) */
} extend_target;

/* Which call extends jobs[i]: with whole_calls, a job without an active
 * entry of its own goes with the first job of its fetch (same queue, same
 * token), one call per group; every other job has a call of its own. Fills
 * call_of[0..n) and targets, returns how many calls. */
static size_t extend_plan(runq_job *const *jobs, size_t n, bool whole_calls, size_t *call_of,
                          extend_target *targets) {
    size_t ncalls = 0;
    for (size_t i = 0; i < n; i++) {
        const runq_job *j = jobs[i];
        bool group = whole_calls && !j->lease_own;
        size_t k = ncalls;
        /* A keeper holds a few fetch groups: a linear search is enough. */
        if (group)
            for (k = 0; k < ncalls; k++)
                if (targets[k].group && targets[k].job->lease_token == j->lease_token &&
                    strcmp(targets[k].job->queue, j->queue) == 0)
                    break;
        if (k == ncalls) targets[ncalls++] = (extend_target){j, group, 0, 0};
        call_of[i] = k;
    }
    return ncalls;
}

static int redis_extend(runq_backend *b, runq_job *const *jobs, int *results, size_t n,
                        int64_t lease_ms, bool whole_calls) {
    rq_redis *rb = RB(b);
    if (n == 0) return 0;
    size_t *call_of = rq_calloc(n, sizeof *call_of);
    extend_target *targets = rq_calloc(n, sizeof *targets);
    rq_call *calls = rq_calloc(n, sizeof *calls);
    int rc = 0;
    if (!call_of || !targets || !calls) {
        rc = rq_error(RUNQ_ENOMEM, "out of memory");
        goto out;
    }
    size_t ncalls = extend_plan(jobs, n, whole_calls, call_of, targets);
    for (size_t k = 0; k < ncalls; k++) {
        const runq_job *j = targets[k].job;
        rq_call_init(&calls[k], rb->script[S_EXTEND]);
        CALL_QKEYS(&calls[k], j->queue, "lease", "active", "lgroups");
        rq_call_str(&calls[k], targets[k].group ? "" : j->id);
        rq_call_u64(&calls[k], j->lease_token);
        rq_call_i64(&calls[k], lease_ms);
    }
    /* All leases of a worker go out in one pipeline. */
    rc = io_rc(rq_calls_run(rb->conn, calls, ncalls, 0, rb->timeout_ms, 0, 0, NULL), "extend");
    for (size_t k = 0; k < ncalls; k++) {
        extend_target *t = &targets[k];
        long long code = 0;
        if ((t->rc = rc) != 0) {
        } else if ((t->rc = call_rc(&calls[k], "extend")) != 0) {
        } else if (!rq_reply_int(rq_reply_at(calls[k].reply, 0), &code)) {
            t->rc = rq_error(RUNQ_EPROTO, "redis extend: bad reply");
        } else if (code == RUNQ_ESTALE) {
            t->rc = stale(t->job);
        } else {
            reply_i64(rq_reply_at(calls[k].reply, 1), &t->until);
        }
        rq_call_clear(&calls[k]);
    }
    for (size_t i = 0; i < n; i++) {
        const extend_target *t = &targets[call_of[i]];
        results[i] = t->rc;
        if (t->rc) continue;
        if (t->until) jobs[i]->lease_until_ms = t->until;
        /* One job's extend gave it an active entry of its own. */
        if (!t->group) jobs[i]->lease_own = true;
    }
out:
    rq_free(call_of);
    rq_free(targets);
    rq_free(calls);
    return rc;
}

static void redis_interrupt(runq_backend *b) { rq_conn_interrupt(RB(b)->conn); }

/* ---- inspection ---------------------------------------------------------- */

/* Plain commands (no script): one request, one reply each. */
static int simple(rq_redis *rb, int argc, const char *const *argv, rq_reply **out,
                  const char *what) {
    rq_req *r = rq_req_new(1, 0);
    if (!r) return rq_error(RUNQ_ENOMEM, "out of memory");
    int rc = rq_req_addv(r, argc, argv);
    if (rc == 0) rc = io_rc(rq_conn_exec(rb->conn, r, rb->timeout_ms), what);
    if (rc == 0) {
        *out = rq_req_take_reply(r, 0);
        if (!*out) rc = rq_error(RUNQ_EIO, "redis %s: no reply", what);
        else if ((*out)->type == RQ_REPLY_ERROR) {
            rc = rq_error(RUNQ_EIO, "redis %s failed: %s", what, (*out)->str);
            rq_reply_free(*out);
            *out = NULL;
        }
    }
    rq_req_release(rb->conn, r);
    return rc;
}

/* A snapshot from get.lua's reply on `queue`. Lenient: a corrupt record
 * still reads as far as it can (the fetch script has dead-lettered it with
 * the reason in its attempt state). */
static int job_from_get(runq_job **out, const rq_reply *r, const char *id, const char *queue) {
    long long state = 0;
    rq_reply_int(rq_reply_at(r, 0), &state);
    rq_span rs = {0}, as = {0}, res = {0};
    int64_t lease_until = 0, time = 0, lease_attempt = 0;
    uint64_t token = 0;
    int attempt = -1;
    if (state == RUNQ_STATE_DONE) {
        rq_span fs;
        rq_fin fin;
        if (!reply_span(rq_reply_at(r, 1), &fs) || !rq_fin_parse(&fin, fs.p, fs.len))
            return rq_error(RUNQ_EPROTO, "job %s: its kept result is malformed", id);
        rs = fin.record;
        as = fin.att;
        res = fin.result;
        attempt = fin.attempt;
    } else {
        reply_span(rq_reply_at(r, 1), &rs);
        reply_span(rq_reply_at(r, 2), &as);
        reply_u64(rq_reply_at(r, 3), &token);
        reply_i64(rq_reply_at(r, 4), &lease_until);
        reply_i64(rq_reply_at(r, 5), &time);
        reply_i64(rq_reply_at(r, 6), &lease_attempt);
    }
    runq_job *j = rq_job_new();
    if (!j) return rq_error(RUNQ_ENOMEM, "out of memory");
    snprintf(j->id, RUNQ_ID_SIZE, "%s", id);
    int rc = rq_job_set_str(&j->queue, queue);
    rq_record rec;
    const char *why;
    if (!rc && rq_record_parse(&rec, rs.p, rs.len) == NULL) {
        rc = rq_record_to_job(j, &rec, &why);
        if (rc == RUNQ_EPROTO) rc = 0;
    }
    rq_att att;
    if (!rc && rq_att_parse(&att, as.p, as.len)) {
        rc = job_set_att(j, &att);
        j->attempt = att.attempt;
    }
    if (!rc && res.len) rc = rq_job_set_buf(&j->result, &j->result_len, res.p, res.len);
    if (rc) {
        rq_job_destroy(j);
        return rc;
    }
    j->state = state >= RUNQ_STATE_SCHEDULED && state <= RUNQ_STATE_DEAD ? (runq_job_state)state
                                                                           : RUNQ_STATE_DEAD;
    if (attempt >= 0) j->attempt = attempt;
    if (token) {
        j->lease_token = token;
        j->attempt = (int)lease_attempt;
        j->lease_until_ms = lease_until;
    }
    if (j->state == RUNQ_STATE_SCHEDULED && time > 0) j->eta_ms = time;
    *out = j;
    return 0;
}

/* Find job `id` in every known queue (one pipelined get.lua per queue) and
 * snapshot it; with `watch`, also register a wait for it. *queue_out (if
 * not NULL) receives its queue. */
static int find_job(rq_redis *rb, const char *id, bool watch, runq_job **out,
                    char queue_out[RUNQ_NAME_MAX + 1]) {
    const char *argv[2] = {"SMEMBERS", QUEUES_KEY};
    rq_reply *qs = NULL;
    int rc = simple(rb, 2, argv, &qs, "get");
    if (rc) return rc;
    size_t nq = qs->type == RQ_REPLY_ARRAY ? qs->elements : 0;
    rq_call *calls = nq ? rq_calloc(nq, sizeof *calls) : NULL;
    if (nq && !calls) {
        rq_reply_free(qs);
        return rq_error(RUNQ_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nq; i++) {
        const char *q = qs->element[i]->str;
        rq_call_init(&calls[i], rb->script[S_GET]);
        CALL_QKEYS(&calls[i], q, "jobs", "active", "lease", "att", "scheduled", "dead", "waiters");
        rq_call_str(&calls[i], id);
        rq_call_str(&calls[i], watch ? "1" : "0");
    }
    rc = nq ? rq_calls_run(rb->conn, calls, nq, 0, rb->timeout_ms, 0, 0, NULL) : 0;
    if (rc) rc = io_rc(rc, "get");
    bool found = false;
    for (size_t i = 0; i < nq; i++) {
        long long code = 0;
        if (!rc && !found && (rc = call_rc(&calls[i], "get")) == 0 &&
            rq_reply_int(rq_reply_at(calls[i].reply, 0), &code) && code != 0) {
            found = true;
            const char *q = qs->element[i]->str;
            rc = job_from_get(out, calls[i].reply, id, q);
            if (queue_out) snprintf(queue_out, RUNQ_NAME_MAX + 1, "%s", q);
        }
        rq_call_clear(&calls[i]);
    }
    rq_free(calls);
    rq_reply_free(qs);
    if (!rc && !found) rc = rq_error(RUNQ_ENOTFOUND, "no job %s (never enqueued, or expired)", id);
    return rc;
}

static int redis_get(runq_backend *b, const char *id, runq_job **out) {
    return find_job(RB(b), id, false, out, NULL);
}

/* Block on the job's finish notice (BRPOPLPUSH onto itself: the notice
 * stays, so every waiter sees it) between reads of the record. A slice
 * bound re-reads the record now and then in case a notice was missed
 * (for example across a Redis restart). */
#define WAIT_SLICE_MS 5000

static int wait_notice(rq_redis *rb, const char *key, int64_t wait_ms, bool *woke) {
    rq_req *r = rq_req_new(1, RQ_REQ_BLOCKING | RQ_REQ_REISSUE);
    if (!r) return rq_error(RUNQ_ENOMEM, "out of memory");
    char secs[32];
    if (wait_ms < 1) wait_ms = 1;
    snprintf(secs, sizeof secs, "%.3f", (double)wait_ms / 1000.0);
    const char *argv[4] = {"BRPOPLPUSH", key, key, secs};
    int rc = rq_req_addv(r, 4, argv);
    if (rc == 0) rc = rq_conn_exec(rb->conn, r, (int)wait_ms + rb->timeout_ms);
    if (rc == 0) {
        const rq_reply *rep = rq_req_reply(r, 0);
        if (rq_reply_is_error(rep)) rc = rq_error(RUNQ_EIO, "redis BRPOPLPUSH failed: %s", rep->str);
        else *woke = rep && rep->type == RQ_REPLY_STRING;
    }
    rq_req_release(rb->conn, r);
    return rc;
}

static int redis_wait(runq_backend *b, const char *id, int timeout_ms, runq_job **out) {
    rq_redis *rb = RB(b);
    int64_t until = timeout_ms < 0 ? INT64_MAX : rq_mono_ms() + timeout_ms;
    bool woke_before = false;
    for (;;) {
        runq_job *j = NULL;
        /* Registering the wait and reading the state are one step, so a
         * finish after it always pushes the notice. */
        int rc = find_job(rb, id, true, &j, NULL);
        if (rc) return rc;
        if (j->state == RUNQ_STATE_DONE || j->state == RUNQ_STATE_DEAD) {
            *out = j;
            return 0;
        }
        char k[KEY_MAX];
        done_key(k, j->queue, id);
        rq_job_destroy(j);
        int64_t left = until - rq_mono_ms();
        if (left <= 0)
            return rq_error(RUNQ_ETIMEOUT, "job %s did not finish within %d ms", id, timeout_ms);
        bool woke = false;
        rc = wait_notice(rb, k, left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS, &woke);
        /* A lost connection is retried until the caller's limit; a notice
         * that did not change the record twice in a row (a stale one) must
         * not turn this into a busy loop. */
        if (rc || (woke && woke_before)) uv_sleep(rc ? 100 : 20);
        woke_before = woke;
    }
}

static int redis_configure(runq_backend *b, const char *queue, const runq_queue_options *o) {
    rq_redis *rb = RB(b);
    char k[KEY_MAX];
    rq_call c;
    rq_call_init(&c, rb->script[S_CONFIGURE]);
    qkey(k, queue, "config");
    rq_call_key(&c, k);
    qkey(k, queue, "marker");
    rq_call_key(&c, k);
    rq_call_i64(&c, o->max_len);
    rq_call_i64(&c, o->rate_limit);
    rq_call_i64(&c, o->rate_period_ms);
    rq_call_i64(&c, o->rate_burst);
    rq_call_i64(&c, o->concurrency_limit);
    rq_call_i64(&c, o->pause_after_failures);
    rq_call_i64(&c, o->pause_min_ms);
    rq_call_i64(&c, o->pause_max_ms);
    int rc = run1(rb, &c, "configure");
    rq_call_clear(&c);
    return rc;
}

static int redis_set_paused(runq_backend *b, const char *queue, bool paused) {
    rq_redis *rb = RB(b);
    char k[KEY_MAX];
    rq_call c;
    rq_call_init(&c, rb->script[S_PAUSE]);
    qkey(k, queue, "gate");
    rq_call_key(&c, k);
    qkey(k, queue, "marker");
    rq_call_key(&c, k);
    rq_call_str(&c, paused ? "1" : "0");
    int rc = run1(rb, &c, paused ? "pause" : "resume");
    rq_call_clear(&c);
    return rc;
}

static int redis_stats(runq_backend *b, const char *queue, runq_queue_stats *out) {
    rq_redis *rb = RB(b);
    memset(out, 0, sizeof *out);
    rq_call c;
    rq_call_init(&c, rb->script[S_STATS]);
    CALL_QKEYS(&c, queue, "scheduled", "pending", "lease", "dead", "config", "gate", "rkwait",
               "ready");
    int rc = run1(rb, &c, "stats");
    int64_t v[6] = {0};
    for (size_t i = 0; rc == 0 && i < 6; i++)
        if (!reply_i64(rq_reply_at(c.reply, i), &v[i]))
            rc = rq_error(RUNQ_EPROTO, "redis stats: bad reply");
    if (rc == 0) {
        out->scheduled = v[0];
        out->pending = v[1];
        out->active = v[2];
        out->dead = v[3];
        out->paused = v[4];
        out->paused_until_ms = v[5];
    }
    rq_call_clear(&c);
    return rc;
}

static int redis_dead_list(runq_backend *b, const char *queue, char (*ids)[RUNQ_ID_SIZE],
                           size_t cap, size_t *count) {
    rq_redis *rb = RB(b);
    char k[KEY_MAX], stop[24];
    *count = 0;
    if (cap == 0) return 0;
    qkey(k, queue, "dead");
    snprintf(stop, sizeof stop, "%zu", cap - 1);
    const char *argv[4] = {"ZRANGE", k, "0", stop};
    rq_reply *r = NULL;
    int rc = simple(rb, 4, argv, &r, "dead_list");
    if (rc) return rc;
    for (size_t i = 0; i < r->elements && *count < cap; i++) {
        const rq_reply *e = r->element[i];
        if (e->type == RQ_REPLY_STRING && e->len == RUNQ_ID_LEN)
            memcpy(ids[(*count)++], e->str, RUNQ_ID_SIZE);
    }
    rq_reply_free(r);
    return 0;
}

static int redis_dead_retry(runq_backend *b, const char *id) {
    rq_redis *rb = RB(b);
    char queue[RUNQ_NAME_MAX + 1], k[KEY_MAX];
    /* The job's unique and rate keys name keys the script must declare:
     * read them first (the script checks they are still the record's). */
    runq_job *snap = NULL;
    int rc = find_job(rb, id, false, &snap, queue);
    if (rc) return rc;
    rq_call c;
    rq_call_init(&c, rb->script[S_DEAD_RETRY]);
    CALL_QKEYS(&c, queue, "jobs", "dead", "pending", "marker", "att");
    done_key(k, queue, id);
    rq_call_key(&c, k);
    CALL_QKEYS(&c, queue, "uud", "rkeys", "rkwait");
    call_key_named(&c, queue, "unique:", snap->unique_key); /* KEYS[10..11] */
    call_key_named(&c, queue, "rk:", snap->rate_key);
    call_prefix(&c, queue);
    rq_call_str(&c, id);
    rq_call_str(&c, snap->unique_key ? snap->unique_key : "");
    rq_call_str(&c, snap->rate_key ? snap->rate_key : "");
    rq_job_destroy(snap);
    rc = run1(rb, &c, "dead_retry");
    long long code = 0;
    const rq_reply *holder = NULL;
    if (rc == 0 && c.reply->type == RQ_REPLY_ARRAY) { /* {-6, holder} */
        rq_reply_int(rq_reply_at(c.reply, 0), &code);
        holder = rq_reply_at(c.reply, 1);
    } else if (rc == 0 && !rq_reply_int(c.reply, &code)) {
        rc = rq_error(RUNQ_EPROTO, "redis dead_retry: bad reply");
    }
    if (rc == 0 && code == RUNQ_EDUPLICATE)
        rc = rq_error(RUNQ_EDUPLICATE, "job %s: its unique key is held by job %s", id,
                      holder && holder->type == RQ_REPLY_STRING ? holder->str : "?");
    if (rc == 0 && code == RUNQ_EPROTO)
        rc = rq_error(RUNQ_EPROTO, "job %s: its unique or rate key changed during the retry", id);
    if (rc == 0 && code == RUNQ_ENOTFOUND) rc = rq_error(RUNQ_ENOTFOUND, "no job %s", id);
    if (rc == 0 && code == RUNQ_ESTATE) rc = rq_error(RUNQ_ESTATE, "job %s is not dead", id);
    rq_call_clear(&c);
    return rc;
}

static void redis_destroy(runq_backend *b) {
    rq_redis *rb = RB(b);
    rq_conn_close(rb->conn);
    uv_mutex_destroy(&rb->ack_lock);
    rq_free(rb);
}

static const rq_backend_ops redis_ops = {
    "redis",         redis_enqueue,   redis_fetch, redis_ack,       redis_fail,
    redis_release,   redis_extend,    redis_interrupt, redis_get,   redis_wait,
    redis_configure, redis_stats,     redis_dead_list, redis_dead_retry, redis_destroy,
    redis_set_paused, redis_bury, redis_ack_many,
};

int rq_redis_open(runq_backend **out, const rq_url *url, const runq_client_options *options) {
    if (url->scheme != RQ_URL_REDIS && url->scheme != RQ_URL_UNIX)
        return rq_error(RUNQ_EURL, "not a redis:// or unix:// URL");
    rq_redis *rb = rq_calloc(1, sizeof *rb);
    if (!rb) return rq_error(RUNQ_ENOMEM, "out of memory");
    rb->base.ops = &redis_ops;
    for (int i = 0; i < S_COUNT; i++) {
        if ((rb->script[i] = rq_script_find(script_names[i])) < 0) {
            rq_free(rb);
            return rq_error(RUNQ_EPROTO, "redis script %s.lua is not built in", script_names[i]);
        }
    }
    int ct = url->connect_timeout_ms >= 0 ? url->connect_timeout_ms
             : options ? options->connect_timeout_ms : 2000;
    rb->timeout_ms = url->command_timeout_ms >= 0 ? url->command_timeout_ms
                     : options ? options->command_timeout_ms : 5000;
    if (rb->timeout_ms <= 0) rb->timeout_ms = 5000;
    rq_conn_config cfg = {
        url->scheme == RQ_URL_REDIS ? url->host : NULL,
        url->port ? url->port : 6379,
        url->scheme == RQ_URL_UNIX ? url->path : NULL,
        url->user, url->password, url->db, ct};
    int rc = rq_conn_open(&rb->conn, &cfg);
    if (rc) {
        rq_free(rb);
        return rc;
    }
    uv_mutex_init(&rb->ack_lock);
    *out = &rb->base;
    return 0;
}
