/* Payloads, metadata and hooks (record version, compression, meta, client
 * hooks): run against memory:// and a private redis-server like every
 * test_contract*.c. The stored form is read through the backend interface
 * (c->backend->ops->get), below the engine that unwraps payloads; on Redis
 * the record is also read and written raw with hiredis. */
#include "client.h"
#include "compress.h"
#include "redis_support.h"

#include <pthread.h>
#include <zstd.h>

static bool on_redis(runq_client *c) { return strcmp(runq_client_backend(c), "redis") == 0; }

/* msgpack ["xxxx...x"] with an n-byte string: compresses very well. */
static size_t t_args_text(unsigned char *buf, size_t n) {
    buf[0] = 0x91;
    buf[1] = 0xda; /* str 16 */
    buf[2] = (unsigned char)(n >> 8);
    buf[3] = (unsigned char)n;
    for (size_t i = 0; i < n; i++) buf[4 + i] = (unsigned char)('a' + i % 7);
    return 4 + n;
}

/* The job as the backend stores it (args and result not unwrapped). */
static runq_job *t_stored(runq_client *c, const char *id) {
    runq_job *j = NULL;
    ASSERT_OK(c->backend->ops->get(c->backend, id, &j));
    return j;
}

/* ---- compression ---- */

/* The next job carries exactly these (plain) args; ack it with `res`. */
static void t_next_has_args_ack(runq_worker *w, const void *args, size_t alen, const void *res,
                                size_t rlen) {
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    size_t n;
    const void *a = runq_job_args(j, &n);
    ASSERT_EQ(n, alen);
    ASSERT(memcmp(a, args, n) == 0);
    ASSERT_OK(runq_job_ack(j, res, rlen));
    runq_job_free(j);
}

TEST(big_args_and_results_are_stored_compressed_and_arrive_intact) {
    runq_client *c = t_client();
    static unsigned char args[8192], res[6000];
    size_t alen = t_args_text(args, 8000), rlen = t_args_text(res, 5000);
    char id[RUNQ_ID_SIZE];
    ASSERT_OK(runq_enqueue(c, id, "big", args, alen, NULL));

    runq_job *st = t_stored(c, id);
    size_t slen;
    const void *sargs = runq_job_args(st, &slen);
    ASSERT(rq_payload_is_wrapped(sargs, slen));
    ASSERT_LT(slen, alen / 4);
    runq_job_free(st);
    if (on_redis(c)) { /* the record itself: the ext header of type 82 */
        redisContext *r = t_redis_connect(t_redis_port());
        t_rec rec;
        t_rec_read(r, "default", id, &rec);
        ASSERT_EQ(rec.len[1], slen);
        ASSERT_EQ((unsigned char)rec.s[1][0], 0xc7); /* ext 8 */
        ASSERT_EQ((unsigned char)rec.s[1][2], RQ_EXT_WRAPPED);
        ASSERT_EQ((unsigned char)rec.s[1][3], RQ_CODEC_ZSTD);
        t_rec_free(&rec);
        redisFree(r);
    }

    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    t_next_has_args_ack(w, args, alen, res, rlen);
    size_t got_len;
    const void *got;

    st = t_stored(c, id);
    const void *sres = runq_job_result(st, &slen);
    ASSERT(rq_payload_is_wrapped(sres, slen));
    ASSERT_LT(slen, rlen / 4);
    runq_job_free(st);

    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 5000));
    got = runq_job_result(snap, &got_len);
    ASSERT_EQ(got_len, rlen);
    ASSERT(memcmp(got, res, rlen) == 0);
    got = runq_job_args(snap, &got_len);
    ASSERT_EQ(got_len, alen);
    ASSERT(memcmp(got, args, alen) == 0);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

/* msgpack bin 32 of n random bytes over 16 symbols: about 2:1 compressible,
 * so the wrapped form needs an ext 16 or ext 32 header. */
static unsigned char *t_args_halfrandom(size_t n, size_t *len) {
    unsigned char *b = malloc(n + 5);
    ASSERT(b != NULL);
    b[0] = 0xc6;
    for (int i = 0; i < 4; i++) b[1 + i] = (unsigned char)(n >> (24 - 8 * i));
    for (size_t i = 0; i < n; i++) b[5 + i] = (unsigned char)('A' + rq_random64() % 16);
    *len = n + 5;
    return b;
}

TEST(wrapped_payloads_of_every_header_size_round_trip) {
    runq_client *c = t_client();
    const size_t sizes[2] = {2000, 200000};
    const unsigned char headers[2] = {0xc8, 0xc9}; /* ext 16, ext 32 */
    for (int k = 0; k < 2; k++) {
        size_t alen;
        unsigned char *args = t_args_halfrandom(sizes[k], &alen);
        char id[RUNQ_ID_SIZE];
        ASSERT_OK(runq_enqueue(c, id, "t", args, alen, NULL));
        runq_job *st = t_stored(c, id);
        size_t slen;
        const unsigned char *sargs = runq_job_args(st, &slen);
        ASSERT(rq_payload_is_wrapped(sargs, slen));
        ASSERT_EQ(sargs[0], headers[k]);
        ASSERT_LT(slen, alen);
        runq_job_free(st);
        runq_worker *w = t_pull_worker(c, "default", 30000, 1);
        t_next_has_args_ack(w, args, alen, NULL, 0);
        runq_worker_free(w);
        free(args);
    }
    runq_client_close(c);
}

TEST(small_or_incompressible_payloads_and_threshold_zero_stay_plain) {
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    ASSERT_EQ(co.compress_threshold, 1024);
    /* Two clients on one store: one with the default, one with it off. */
    const char *url = strncmp(check_url(), "memory", 6) == 0 ? "memory://payload" : check_url();
    runq_client *c = NULL, *off = NULL;
    ASSERT_OK(runq_client_open(&c, url, NULL));
    co.compress_threshold = 0;
    ASSERT_OK(runq_client_open(&off, url, &co));
    static unsigned char small[1100], noise[3000], big[8192];
    size_t slen = t_args_text(small, 1000); /* 1004 bytes: not above the threshold */
    /* Random bytes in a bin 16: above the threshold, but zstd gains nothing. */
    noise[0] = 0xc5;
    noise[1] = (unsigned char)(2900 >> 8);
    noise[2] = (unsigned char)(2900 & 0xff);
    for (size_t i = 3; i < 2903; i++) noise[i] = (unsigned char)rq_random64();
    size_t blen = t_args_text(big, 8000);
    char id1[RUNQ_ID_SIZE], id2[RUNQ_ID_SIZE], id3[RUNQ_ID_SIZE];
    ASSERT_OK(runq_enqueue(c, id1, "t", small, slen, NULL));
    ASSERT_OK(runq_enqueue(c, id2, "t", noise, 2903, NULL));
    ASSERT_OK(runq_enqueue(off, id3, "t", big, blen, NULL));

    const char *ids[3] = {id1, id2, id3};
    const unsigned char *want[3] = {small, noise, big};
    size_t want_len[3] = {slen, 2903, blen};
    for (int i = 0; i < 3; i++) {
        runq_job *st = t_stored(c, ids[i]);
        size_t n;
        const void *a = runq_job_args(st, &n);
        ASSERT(!rq_payload_is_wrapped(a, n));
        ASSERT_EQ(n, want_len[i]);
        ASSERT(memcmp(a, want[i], n) == 0);
        runq_job_free(st);
    }
    runq_client_close(off);
    runq_client_close(c);
}

/* Store a job with hand-made args below the engine (the backend's enqueue),
 * as a producer in another language could. */
static void t_store_raw(runq_client *c, char id[RUNQ_ID_SIZE], const void *args, size_t len,
                        int max_retries) {
    runq_job *j = rq_job_new();
    rq_id_new(j->id);
    ASSERT_OK(rq_job_set_str(&j->task, "t"));
    ASSERT_OK(rq_job_set_str(&j->queue, "default"));
    ASSERT_OK(rq_job_set_buf(&j->args, &j->args_len, args, len));
    j->state = RUNQ_STATE_PENDING;
    j->max_retries = max_retries;
    j->unique_ttl_ms = 1000;
    j->version = 1;
    int result = 0;
    ASSERT_OK(c->backend->ops->enqueue(c->backend, &j, &result, 1, 0, 0));
    ASSERT_OK(result);
    memcpy(id, j->id, RUNQ_ID_SIZE);
    rq_job_destroy(j);
}

TEST(corrupt_or_oversized_compressed_args_are_dead_lettered) {
    runq_client_options co = RUNQ_CLIENT_OPTIONS_INIT;
    co.max_payload = 4096;
    runq_client *c = NULL;
    ASSERT_OK(runq_client_open(&c, check_url(), &co));
    /* 1. garbage where the zstd frame should be */
    static const unsigned char garbage[] = {0xc7, 0x05, RQ_EXT_WRAPPED, RQ_CODEC_ZSTD,
                                            0x28, 0xb5, 0x2f, 0x00};
    /* 2. an unknown codec byte */
    static const unsigned char codec[] = {0xc7, 0x02, RQ_EXT_WRAPPED, 0x07, 0x00};
    /* 3. a real frame whose content (8000 bytes) exceeds max_payload */
    static unsigned char plain[8192], bomb[600];
    size_t plen = t_args_text(plain, 8000);
    size_t z = ZSTD_compress(bomb + 4, sizeof bomb - 4, plain, plen, 3);
    ASSERT(!ZSTD_isError(z));
    bomb[0] = 0xc7;
    bomb[1] = (unsigned char)(z + 1);
    bomb[2] = RQ_EXT_WRAPPED;
    bomb[3] = RQ_CODEC_ZSTD;
    /* 4. a frame holding something that is not one msgpack object */
    static const unsigned char notmp[] = {0xc1, 0xc1};
    unsigned char inner[64];
    size_t z2 = ZSTD_compress(inner + 4, sizeof inner - 4, notmp, sizeof notmp, 3);
    ASSERT(!ZSTD_isError(z2));
    inner[0] = 0xc7;
    inner[1] = (unsigned char)(z2 + 1);
    inner[2] = RQ_EXT_WRAPPED;
    inner[3] = RQ_CODEC_ZSTD;

    char ids[5][RUNQ_ID_SIZE];
    t_store_raw(c, ids[0], garbage, sizeof garbage, 5);
    t_store_raw(c, ids[1], codec, sizeof codec, 5);
    t_store_raw(c, ids[2], bomb, 4 + z, 5);
    t_store_raw(c, ids[3], inner, 4 + z2, 5);
    unsigned char ok[16];
    size_t oklen = t_args_int(ok, 7);
    t_store_raw(c, ids[4], ok, oklen, 5);

    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_STR(runq_job_id(j), ids[4]); /* the one good job, the rest buried */
    ASSERT_EQ(t_args_get_int(j), 7);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    ASSERT_EQ(runq_worker_next(w, &j, 300), RUNQ_ETIMEOUT);

    check_dead_with(c, ids[0], "corrupt job: args: compressed payload");
    check_dead_with(c, ids[1], "unknown codec 7");
    check_dead_with(c, ids[2], "over the max payload 4096");
    check_dead_with(c, ids[3], "not one msgpack object");
    runq_queue_stats st;
    ASSERT_OK(runq_queue_stats_get(&st, c, "default"));
    ASSERT_EQ(st.dead, 4); /* at once, with attempts left: a retry cannot help */
    ASSERT_EQ(st.pending + st.scheduled + st.active, 0);
    /* The dead letter can still be inspected: its stored bytes are kept. */
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, ids[0]));
    size_t n;
    const void *a = runq_job_args(snap, &n);
    ASSERT_EQ(n, sizeof garbage);
    ASSERT(memcmp(a, garbage, n) == 0);
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(corrupt_compressed_args_written_in_redis_are_dead_lettered) {
    runq_client *c = t_client();
    static unsigned char args[4096];
    size_t alen = t_args_text(args, 4000);
    uint8_t *bad = NULL;
    size_t blen = 0;
    ASSERT_OK(rq_payload_wrap(&bad, &blen, args, alen, 1024));
    ASSERT(bad != NULL);
    bad[blen - 3] ^= 0xff; /* flip bits inside the zstd frame */
    bad[blen - 5] ^= 0x5a;
    char id[RUNQ_ID_SIZE];
    if (on_redis(c)) { /* a real job whose record is then damaged */
        ASSERT_OK(runq_enqueue(c, id, "t", args, alen, NULL));
        redisContext *r = t_redis_connect(t_redis_port());
        t_rec rec;
        t_rec_read(r, "default", id, &rec);
        t_rec_set(&rec, 1, bad, blen);
        t_rec_write(r, "default", id, &rec);
        t_rec_free(&rec);
        redisFree(r);
    } else { /* memory: the same bytes stored below the engine */
        t_store_raw(c, id, bad, blen, 3);
    }
    rq_free(bad);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_EQ(runq_worker_next(w, &j, 500), RUNQ_ETIMEOUT);
    check_dead_with(c, id, "corrupt job: args: compressed payload");
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- record version ---- */

TEST(record_version_is_written_and_unknown_versions_are_dead_lettered) {
    runq_client *c = t_client();
    char id[RUNQ_ID_SIZE], future[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    t_enqueue(c, future, "t", 2, NULL);
    runq_job *st = t_stored(c, id);
    ASSERT_EQ(st->version, RQ_RECORD_VERSION);
    runq_job_free(st);
    if (!on_redis(c)) { /* memory keeps the version through fetch clones */
        runq_worker *w = t_pull_worker(c, "default", 30000, 1);
        runq_job *j = NULL;
        ASSERT_OK(runq_worker_next(w, &j, 5000));
        ASSERT_EQ(j->version, RQ_RECORD_VERSION);
        runq_job_free(j);
        runq_worker_free(w);
        runq_client_close(c);
        return;
    }
    redisContext *r = t_redis_connect(t_redis_port());
    t_rec rec;
    t_rec_read(r, "default", id, &rec);
    ASSERT_EQ(rec.h[0], 2);
    t_rec_free(&rec);
    t_rec_read(r, "default", future, &rec);
    rec.h[0] = 99;
    t_rec_write(r, "default", future, &rec);
    t_rec_free(&rec);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_STR(runq_job_id(j), id);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    ASSERT_EQ(runq_worker_next(w, &j, 300), RUNQ_ETIMEOUT);
    check_dead_with(c, future, "unsupported record version 99");
    runq_queue_stats qs;
    ASSERT_OK(runq_queue_stats_get(&qs, c, "default"));
    ASSERT_EQ(qs.dead, 1);
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

/* ---- metadata ---- */

TEST(metadata_round_trips_and_is_checked) {
    runq_client *c = t_client();
    runq_meta_entry meta[] = {{"traceparent", "00-abc-def-01"}, {"tenant", "acme"},
                              {"empty", ""}, {"tenant", "acme2"}};
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.meta = meta;
    o.nmeta = 4;
    char id[RUNQ_ID_SIZE], plain[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, &o);
    t_enqueue(c, plain, "t", 2, NULL);
    if (on_redis(c)) { /* field meta: a msgpack map of 3 */
        redisContext *r = t_redis_connect(t_redis_port());
        t_rec rec;
        t_rec_read(r, "default", id, &rec);
        ASSERT_GT(rec.len[3], 0);
        ASSERT_EQ((unsigned char)rec.s[3][0], 0x83);
        t_rec_free(&rec);
        redisFree(r);
    }
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_STR(runq_job_id(j), id);
    ASSERT_EQ(runq_job_meta_count(j), 3);
    ASSERT_STR(runq_job_meta(j, "traceparent"), "00-abc-def-01");
    ASSERT_STR(runq_job_meta(j, "tenant"), "acme2");
    ASSERT_STR(runq_job_meta(j, "empty"), "");
    ASSERT(runq_job_meta(j, "nope") == NULL);
    const char *k, *v;
    ASSERT_OK(runq_job_meta_at(j, 1, &k, &v));
    ASSERT_STR(k, "tenant");
    ASSERT_STR(v, "acme2");
    ASSERT_EQ(runq_job_meta_at(j, 3, &k, &v), RUNQ_EINVAL);
    ASSERT_EQ(runq_job_meta_set(j, "x", "y"), RUNQ_ESTATE); /* only at enqueue */
    runq_job *copy = rq_job_clone(j);
    ASSERT_STR(runq_job_meta(copy, "traceparent"), "00-abc-def-01");
    rq_job_destroy(copy);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_STR(runq_job_id(j), plain);
    ASSERT_EQ(runq_job_meta_count(j), 0);
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    runq_job_free(j);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_STR(runq_job_meta(snap, "tenant"), "acme2");
    runq_job_free(snap);

    /* bad metadata: clear errors, nothing stored */
    runq_meta_entry bad_key[] = {{"", "v"}};
    o.meta = bad_key;
    o.nmeta = 1;
    unsigned char a[16];
    size_t alen = t_args_int(a, 3);
    ASSERT_EQ(runq_enqueue(c, NULL, "t", a, alen, &o), RUNQ_EINVAL);
    ASSERT(strstr(runq_error_last(), "metadata keys") != NULL);
    runq_meta_entry null_value[] = {{"k", NULL}};
    o.meta = null_value;
    ASSERT_EQ(runq_enqueue(c, NULL, "t", a, alen, &o), RUNQ_EINVAL);
    o.meta = NULL;
    ASSERT_EQ(runq_enqueue(c, NULL, "t", a, alen, &o), RUNQ_EINVAL);
    static char huge[RUNQ_META_MAX];
    memset(huge, 'v', sizeof huge - 1);
    runq_meta_entry too_big[] = {{"k", huge}};
    o.meta = too_big;
    ASSERT_EQ(runq_enqueue(c, NULL, "t", a, alen, &o), RUNQ_ETOOBIG);
    ASSERT(strstr(runq_error_last(), "metadata") != NULL);
    runq_queue_stats qs;
    ASSERT_OK(runq_queue_stats_get(&qs, c, "default"));
    ASSERT_EQ(qs.pending + qs.scheduled, 0);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST(corrupt_metadata_in_redis_is_dead_lettered) {
    runq_client *c = t_client();
    if (!on_redis(c)) { /* memory records are the engine's own: checked at enqueue */
        runq_job *j = rq_job_new();
        ASSERT_EQ(rq_job_meta_decode(j, "\x81\x01\x02", 3), RUNQ_EPROTO); /* {1: 2} */
        ASSERT_EQ(rq_job_meta_decode(j, "\x91\xa1x", 3), RUNQ_EPROTO);    /* ["x"] */
        ASSERT_OK(rq_job_meta_decode(j, "\x81\xa1k\xa1v", 5));
        ASSERT_STR(runq_job_meta(j, "k"), "v");
        rq_job_destroy(j);
        runq_client_close(c);
        return;
    }
    char id[RUNQ_ID_SIZE];
    t_enqueue(c, id, "t", 1, NULL);
    redisContext *r = t_redis_connect(t_redis_port());
    t_rec rec;
    t_rec_read(r, "default", id, &rec);
    t_rec_set(&rec, 3, "\x81\x01\x02", 3);
    t_rec_write(r, "default", id, &rec);
    t_rec_free(&rec);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_EQ(runq_worker_next(w, &j, 500), RUNQ_ETIMEOUT);
    check_dead_with(c, id, "meta is not a msgpack map of strings");
    runq_worker_free(w);
    redisFree(r);
    runq_client_close(c);
}

/* ---- hooks ---- */

enum { EV_MAX = 64 };
typedef struct ev {
    char kind;   /* 'e' enqueue, 'b' before, 'a' after */
    char id[RUNQ_ID_SIZE];
    int tag;     /* which hook set */
    int attempt;
    runq_outcome outcome;
    char error[64];
    int64_t duration_us;
    char trace[32];
} ev;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static ev evs[EV_MAX];
static atomic_int nevs;
static atomic_int freed_userdata;

static void ev_add(char kind, runq_job *job, int tag, const runq_process_info *info) {
    pthread_mutex_lock(&ev_lock);
    int i = atomic_load(&nevs);
    if (i < EV_MAX) {
        ev *e = &evs[i];
        e->kind = kind;
        snprintf(e->id, sizeof e->id, "%s", runq_job_id(job));
        e->tag = tag;
        e->attempt = runq_job_attempt(job);
        const char *t = runq_job_meta(job, "trace");
        snprintf(e->trace, sizeof e->trace, "%s", t ? t : "");
        if (info) {
            e->outcome = info->outcome;
            snprintf(e->error, sizeof e->error, "%s", info->error ? info->error : "");
            e->duration_us = info->duration_us;
        }
        atomic_store(&nevs, i + 1);
    }
    pthread_mutex_unlock(&ev_lock);
}

static int h_enqueue(runq_job *job, void *ud) {
    /* Trace context: what the producer side of a tracer does. */
    char trace[32];
    snprintf(trace, sizeof trace, "t-%s", runq_job_task(job));
    ASSERT_OK(runq_job_meta_set(job, "trace", trace));
    ev_add('e', job, (int)(intptr_t)ud, NULL);
    return 0;
}
static void h_before(runq_job *job, void *ud) { ev_add('b', job, (int)(intptr_t)ud, NULL); }
static void h_after(runq_job *job, const runq_process_info *info, void *ud) {
    ev_add('a', job, (int)(intptr_t)ud, info);
}
static void h_free(void *ud) {
    (void)ud;
    atomic_fetch_add(&freed_userdata, 1);
}

static int flaky_handler(runq_job *job, void *ud) {
    (void)ud;
    if (t_args_get_int(job) == 1) return 0;
    t_sleep_ms(5); /* a duration well above zero */
    runq_job_set_error(job, "boom");
    runq_job_retry_in(job, 0);
    return 1;
}

/* The events of job `id` at `attempt` (0: enqueue), in order, as kind + set
 * number pairs. */
static void ev_seq(char *out, size_t cap, const char *id, int attempt) {
    size_t k = 0;
    for (int i = 0; i < atomic_load(&nevs) && k + 2 < cap; i++)
        if (strcmp(evs[i].id, id) == 0 && evs[i].attempt == attempt) {
            out[k++] = evs[i].kind;
            out[k++] = (char)('0' + evs[i].tag);
        }
    out[k] = '\0';
}

/* The set-1 event of that kind for delivery n + 1 of the job. */
static const ev *ev_nth(const char *id, char kind, int n) {
    for (int i = 0; i < atomic_load(&nevs); i++)
        if (strcmp(evs[i].id, id) == 0 && evs[i].kind == kind && evs[i].tag == 1 &&
            evs[i].attempt == n + 1)
            return &evs[i];
    CHECK_FAIL("no event %c of attempt %d for %s", kind, n + 1, id);
    return NULL;
}

TEST(hooks_fire_in_order_with_outcomes_and_durations) {
    runq_client *c = t_client();
    runq_hooks h = RUNQ_HOOKS_INIT;
    h.before_enqueue = h_enqueue;
    h.before_process = h_before;
    h.after_process = h_after;
    h.userdata = (void *)(intptr_t)1;
    h.userdata_free = h_free;
    ASSERT_OK(runq_client_add_hooks(c, &h));
    runq_hooks h2 = RUNQ_HOOKS_INIT; /* a second set runs after the first */
    h2.before_process = h_before;
    h2.after_process = h_after;
    h2.userdata = (void *)(intptr_t)2;
    ASSERT_OK(runq_client_add_hooks(c, &h2));
    runq_hooks bad = RUNQ_HOOKS_INIT;
    bad.version = 99;
    ASSERT_EQ(runq_client_add_hooks(c, &bad), RUNQ_EINVAL);

    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = flaky_handler;
    to.max_retries = 1;
    ASSERT_OK(runq_task_register(NULL, c, "flaky", &to));
    char ok[RUNQ_ID_SIZE], doomed[RUNQ_ID_SIZE];
    t_enqueue(c, ok, "flaky", 1, NULL);
    t_enqueue(c, doomed, "flaky", 2, NULL);
    runq_worker *w = NULL;
    runq_worker_options wo = RUNQ_WORKER_OPTIONS_INIT;
    wo.concurrency = 2;
    ASSERT_OK(runq_worker_create(&w, c, &wo));
    ASSERT_OK(runq_worker_start(w));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, doomed, 20000));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    runq_job_free(snap);
    ASSERT_OK(runq_job_wait(&snap, c, ok, 20000));
    ASSERT_STR(runq_job_meta(snap, "trace"), "t-flaky"); /* stored with the job */
    runq_job_free(snap);
    /* after_process runs after the settle that wait saw: wait for it */
    WAIT_UNTIL(atomic_load(&nevs) >= 2 + 3 * 2 * 2);
    ASSERT_OK(runq_worker_stop(w, 5000));
    runq_worker_free(w);

    /* Per delivery, in order: set 1 before set 2, before before after. (The
     * next delivery may start before the last one's after_process hooks:
     * they run after the settle that made it due.) */
    char seq[64];
    ev_seq(seq, sizeof seq, ok, 0);
    ASSERT_STR(seq, "e1");
    ev_seq(seq, sizeof seq, ok, 1);
    ASSERT_STR(seq, "b1b2a1a2");
    ev_seq(seq, sizeof seq, doomed, 0);
    ASSERT_STR(seq, "e1");
    ev_seq(seq, sizeof seq, doomed, 1);
    ASSERT_STR(seq, "b1b2a1a2");
    ev_seq(seq, sizeof seq, doomed, 2);
    ASSERT_STR(seq, "b1b2a1a2");
    ASSERT_EQ(atomic_load(&nevs), 14); /* nothing else fired */

    const ev *e = ev_nth(ok, 'a', 0);
    ASSERT_EQ(e->outcome, RUNQ_OUTCOME_ACKED);
    ASSERT_STR(e->error, "");
    ASSERT_GE(e->duration_us, 0);
    ASSERT_STR(e->trace, "t-flaky"); /* the worker sees what the hook added */
    ASSERT_STR(ev_nth(ok, 'b', 0)->trace, "t-flaky");
    e = ev_nth(doomed, 'a', 0);
    ASSERT_EQ(e->outcome, RUNQ_OUTCOME_RETRIED);
    ASSERT_STR(e->error, "boom");
    ASSERT_GE(e->duration_us, 5000);
    e = ev_nth(doomed, 'a', 1);
    ASSERT_EQ(e->outcome, RUNQ_OUTCOME_DEAD);
    ASSERT_STR(e->error, "boom");
    ASSERT_GE(e->duration_us, 5000);
    ASSERT_EQ(atomic_load(&freed_userdata), 0);
    runq_client_close(c);
    ASSERT_EQ(atomic_load(&freed_userdata), 1); /* set 1 had a free function */
}

static int h_veto(runq_job *job, void *ud) {
    (void)ud;
    if (t_args_get_int(job) < 0) {
        runq_job_set_error(job, "negative numbers are not allowed");
        return RUNQ_EFULL;
    }
    return t_args_get_int(job) == 13 ? 1 : 0;
}

TEST(before_enqueue_hook_may_refuse_a_job) {
    runq_client *c = t_client();
    runq_hooks h = RUNQ_HOOKS_INIT;
    h.before_enqueue = h_veto;
    ASSERT_OK(runq_client_add_hooks(c, &h));
    unsigned char a[16];
    size_t alen = t_args_int(a, -1);
    ASSERT_EQ(runq_enqueue(c, NULL, "t", a, alen, NULL), RUNQ_EFULL);
    ASSERT(strstr(runq_error_last(), "refused by a hook: negative numbers") != NULL);
    alen = t_args_int(a, 13);
    ASSERT_EQ(runq_enqueue(c, NULL, "t", a, alen, NULL), RUNQ_EINVAL);
    runq_enqueue_item items[3];
    unsigned char args[3][16];
    int64_t vals[3] = {1, 13, 2};
    for (int i = 0; i < 3; i++) {
        size_t n = t_args_int(args[i], vals[i]);
        items[i] = (runq_enqueue_item){"t", args[i], n, NULL, "", -99};
    }
    ASSERT_EQ(runq_enqueue_many(c, items, 3), RUNQ_EINVAL);
    ASSERT_EQ(items[0].result, 0);
    ASSERT_EQ(items[1].result, RUNQ_EINVAL);
    ASSERT_EQ(items[2].result, 0);
    runq_queue_stats qs;
    ASSERT_OK(runq_queue_stats_get(&qs, c, "default"));
    ASSERT_EQ(qs.pending, 2);
    runq_client_close(c);
}

TEST(pull_mode_hooks_run_on_the_caller_thread) {
    runq_client *c = t_client();
    runq_hooks h = RUNQ_HOOKS_INIT;
    h.before_process = h_before;
    h.after_process = h_after;
    h.userdata = (void *)(intptr_t)1;
    ASSERT_OK(runq_client_add_hooks(c, &h));
    char a[RUNQ_ID_SIZE], b[RUNQ_ID_SIZE], d[RUNQ_ID_SIZE];
    runq_enqueue_options o = RUNQ_ENQUEUE_OPTIONS_INIT;
    o.max_retries = 0;
    t_enqueue(c, a, "t", 1, &o);
    t_enqueue(c, b, "t", 2, &o);
    t_enqueue(c, d, "t", 3, &o);
    runq_worker *w = t_pull_worker(c, "default", 30000, 1);
    runq_job *j = NULL;
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_EQ(atomic_load(&nevs), 1); /* before_process, synchronously */
    ASSERT_OK(runq_job_ack(j, NULL, 0));
    ASSERT_EQ(atomic_load(&nevs), 2);
    runq_job_free(j);
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    ASSERT_OK(runq_job_fail(j, "no", -1));
    runq_job_free(j);
    ASSERT_OK(runq_worker_next(w, &j, 5000));
    runq_job_free(j); /* unsettled: released */
    ASSERT_EQ(atomic_load(&nevs), 6);
    ASSERT_EQ(ev_nth(a, 'a', 0)->outcome, RUNQ_OUTCOME_ACKED);
    ASSERT_EQ(ev_nth(b, 'a', 0)->outcome, RUNQ_OUTCOME_DEAD);
    ASSERT_STR(ev_nth(b, 'a', 0)->error, "no");
    ASSERT_EQ(ev_nth(d, 'a', 0)->outcome, RUNQ_OUTCOME_RELEASED);
    runq_worker_free(w);
    runq_client_close(c);
}

TEST_MAIN()
