/* Unit tests of engine pieces that need no backend: URLs, ids, backoff,
 * names, errors, allocator hooks. */
#include "support.h"

#include <msgpack.h>
#include <time.h>

#include "backend.h"
#include "client.h"
#include "redis/record.h"

TEST(url_parsing) {
    rq_url u;
    ASSERT_OK(rq_url_parse(&u, "redis://alice:p%40ss:w@db.example:6380/3?timeout=250&connect_timeout=90"));
    ASSERT_EQ(u.scheme, RQ_URL_REDIS);
    ASSERT_STR(u.user, "alice");
    ASSERT_STR(u.password, "p@ss:w");
    ASSERT_STR(u.host, "db.example");
    ASSERT_EQ(u.port, 6380);
    ASSERT_EQ(u.db, 3);
    ASSERT_EQ(u.command_timeout_ms, 250);
    ASSERT_EQ(u.connect_timeout_ms, 90);
    rq_url_clear(&u);
    ASSERT_OK(rq_url_parse(&u, "redis://:secret@[::1]"));
    ASSERT(u.user == NULL);
    ASSERT_STR(u.password, "secret");
    ASSERT_STR(u.host, "::1");
    ASSERT_EQ(u.port, 6379);
    ASSERT_EQ(u.db, 0);
    rq_url_clear(&u);
    ASSERT_OK(rq_url_parse(&u, "unix:///run/redis.sock?db=2"));
    ASSERT_EQ(u.scheme, RQ_URL_UNIX);
    ASSERT_STR(u.path, "/run/redis.sock");
    ASSERT_EQ(u.db, 2);
    rq_url_clear(&u);
    ASSERT_OK(rq_url_parse(&u, "memory://shared"));
    ASSERT_EQ(u.scheme, RQ_URL_MEMORY);
    ASSERT_STR(u.name, "shared");
    rq_url_clear(&u);
    ASSERT_EQ(rq_url_parse(&u, "redis://h:65536"), RUNQ_EURL);
    ASSERT_EQ(rq_url_parse(&u, "redis://h?timeout=abc"), RUNQ_EURL);
    ASSERT_EQ(rq_url_parse(&u, "http://h"), RUNQ_EURL);
    ASSERT(strstr(runq_error_last(), "http") != NULL);
}

TEST(ids_are_unique_and_sorted) {
    enum { N = 20000 };
    static char ids[N][RUNQ_ID_SIZE];
    for (int i = 0; i < N; i++) {
        rq_id_new(ids[i]);
        ASSERT_EQ(strlen(ids[i]), RUNQ_ID_LEN);
        if (i) ASSERT_LT(strcmp(ids[i - 1], ids[i]), 0);
    }
    /* The leading characters are the time: ids of now sort after the epoch. */
    ASSERT_GT(strcmp(ids[0], "0000000000"), 0);
}

TEST(integers_are_formatted_as_printf_would) {
    const int64_t vals[] = {0, 7, -7, 10, 1733000000000LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char got[24], want[24];
        size_t n = rq_fmt_i64(got, vals[i]);
        got[n] = '\0';
        snprintf(want, sizeof want, "%lld", (long long)vals[i]);
        ASSERT_STR(got, want);
    }
    char got[24];
    size_t n = rq_fmt_u64(got, UINT64_MAX);
    got[n] = '\0';
    ASSERT_STR(got, "18446744073709551615");
}

/* What a producer sends enqueue.lua, joined around the server's times as the
 * script joins it, is a record the reader takes back field for field, with
 * wide numbers. */
TEST(record_parts_join_into_a_record) {
    const int64_t wide = INT64_MAX / 10; /* the reader's limit is a little below INT64_MAX */
    rq_record in = {.maxr = INT32_MAX,
                    .prio = INT32_MIN,
                    .timeout = wide,
                    .uttl = wide,
                    .rint = wide,
                    .uud = true,
                    .task = {"send", 4},
                    .args = {"\x92\x91\x01\x80", 4},
                    .ukey = {"u|1", 3},
                    .meta = {"", 0},
                    .rkey = {"k", 1}};
    rq_record_parts p;
    rq_record_parts_build(&p, &in);
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%.*s%s|%s%.*s%s%.*s%s%s%s%s%s", (int)p.head_len, p.head,
                     "1764614400000", "1764614400001", (int)p.mid_len, p.mid, "1764614400002",
                     (int)p.tail_len, p.tail, "send", "\x92\x91\x01\x80", "u|1", "", "k");
    ASSERT(n > 0 && (size_t)n < sizeof buf);
    rq_record out;
    const char *why = rq_record_parse(&out, buf, (size_t)n);
    ASSERT(why == NULL);
    ASSERT_EQ(out.maxr, INT32_MAX);
    ASSERT_EQ(out.prio, INT32_MIN);
    ASSERT_EQ(out.created, 1764614400000);
    ASSERT_EQ(out.eta, 1764614400001);
    ASSERT_EQ(out.timeout, wide);
    ASSERT_EQ(out.deadline, 1764614400002);
    ASSERT_EQ(out.uttl, wide);
    ASSERT_EQ(out.rint, wide);
    ASSERT(out.uud);
    ASSERT(out.task.len == 4 && memcmp(out.task.p, "send", 4) == 0);
    ASSERT(out.args.len == 4 && memcmp(out.args.p, "\x92\x91\x01\x80", 4) == 0);
    ASSERT(out.ukey.len == 3 && memcmp(out.ukey.p, "u|1", 3) == 0);
    ASSERT_EQ(out.meta.len, 0);
    ASSERT(out.rkey.len == 1 && out.rkey.p[0] == 'k');
    /* The pieces have room for any numbers: the widest, written whole (an
     * overflow would also show in the ASan build). */
    rq_record widest = {.maxr = INT64_MIN, .prio = INT64_MIN, .timeout = INT64_MIN,
                        .uttl = INT64_MIN, .rint = INT64_MIN, .uud = true,
                        .task = {NULL, (size_t)INT64_MIN}, .args = {NULL, (size_t)INT64_MIN},
                        .ukey = {NULL, (size_t)INT64_MIN}, .meta = {NULL, (size_t)INT64_MIN},
                        .rkey = {NULL, (size_t)INT64_MIN}};
    rq_record_parts_build(&p, &widest);
#define MIN64 "-9223372036854775808"
    static const char head[] = "2|" MIN64 "|" MIN64 "|", mid[] = "|" MIN64 "|",
                      tail[] = "|" MIN64 "|" MIN64 "|1|" MIN64 "|" MIN64 "|" MIN64 "|" MIN64
                               "|" MIN64 "|";
#undef MIN64
    ASSERT(p.head_len == sizeof head - 1 && memcmp(p.head, head, p.head_len) == 0);
    ASSERT(p.mid_len == sizeof mid - 1 && memcmp(p.mid, mid, p.mid_len) == 0);
    ASSERT(p.tail_len == sizeof tail - 1 && memcmp(p.tail, tail, p.tail_len) == 0);
    /* The plain job of the protocol's example. */
    rq_record plain = {.maxr = 3, .task = {"send", 4}, .args = {"\x92\x91\x01\x80", 4}};
    rq_record_parts_build(&p, &plain);
    ASSERT(p.head_len == 6 && memcmp(p.head, "2|3|0|", 6) == 0);
    ASSERT(p.mid_len == 3 && memcmp(p.mid, "|0|", 3) == 0);
    ASSERT(p.tail_len == 17 && memcmp(p.tail, "|0|0|0|4|4|0|0|0|", 17) == 0);
}

TEST(backoff_grows_caps_and_jitters) {
    runq_task_options o = RUNQ_TASK_OPTIONS_INIT;
    o.backoff_min_ms = 100;
    o.backoff_max_ms = 1000;
    o.backoff_factor = 2.0;
    o.backoff_jitter = 0.0;
    ASSERT_EQ(rq_backoff_delay(&o, 1), 100);
    ASSERT_EQ(rq_backoff_delay(&o, 2), 200);
    ASSERT_EQ(rq_backoff_delay(&o, 4), 800);
    ASSERT_EQ(rq_backoff_delay(&o, 5), 1000);
    ASSERT_EQ(rq_backoff_delay(&o, 500), 1000);
    o.backoff_jitter = 0.5;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = rq_backoff_delay(&o, 2);
        ASSERT_GE(d, 100);
        ASSERT_LE(d, 300);
        if (d < lo) lo = d;
        if (d > hi) hi = d;
    }
    ASSERT_LT(lo, 150); /* the jitter really spreads the delays */
    ASSERT_GT(hi, 250);
}

TEST(names_and_errors) {
    ASSERT_OK(rq_name_check("emails.send-v2:high", "queue"));
    ASSERT_EQ(rq_name_check("a{b}", "queue"), RUNQ_EINVAL);
    ASSERT_EQ(rq_name_check("tab\there", "queue"), RUNQ_EINVAL);
    char longname[RUNQ_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ASSERT_EQ(rq_name_check(longname, "task"), RUNQ_EINVAL);
    for (int code = 0; code >= RUNQ_ESTATE; code--)
        ASSERT(strcmp(runq_strerror(code), "unknown error") != 0);
    ASSERT_STR(runq_strerror(-1000), "unknown error");
    ASSERT_EQ(runq_version(), RUNQ_VERSION_NUMBER);
    ASSERT_STR(runq_version_string(), RUNQ_VERSION_STRING);
}

/* Allocator hooks: every engine allocation goes through them and is freed. */
static atomic_long live_allocs;
static void *count_malloc(size_t n) { atomic_fetch_add(&live_allocs, 1); return malloc(n); }
static void *count_calloc(size_t a, size_t b) { atomic_fetch_add(&live_allocs, 1); return calloc(a, b); }
static void *count_realloc(void *p, size_t n) {
    if (!p) atomic_fetch_add(&live_allocs, 1);
    return realloc(p, n);
}
static void count_free(void *p) { if (p) atomic_fetch_sub(&live_allocs, 1); free(p); }

static int noop(runq_job *job, void *ud) { (void)job; (void)ud; return 0; }

TEST(allocator_hooks_see_every_allocation) {
    runq_allocator a = {count_malloc, count_calloc, count_realloc, count_free};
    runq_set_allocator(&a);
    runq_client *c = NULL;
    ASSERT_OK(runq_client_open(&c, "memory://", NULL));
    ASSERT_GT(atomic_load(&live_allocs), 0);
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = noop;
    ASSERT_OK(runq_task_register(NULL, c, "n", &to));
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 100; i++) t_enqueue(c, id, "n", i, NULL);
    runq_worker *w = NULL;
    ASSERT_OK(runq_worker_create(&w, c, NULL));
    ASSERT_OK(runq_worker_start(w));
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_wait(&snap, c, id, 20000));
    runq_job_free(snap);
    runq_worker_free(w);
    runq_client_close(c);
    ASSERT_EQ(atomic_load(&live_allocs), 0);
    runq_set_allocator(NULL);
}

TEST(named_memory_store_is_shared) {
    runq_client *a = NULL, *b = NULL, *other = NULL;
    ASSERT_OK(runq_client_open(&a, "memory://shared-test", NULL));
    ASSERT_OK(runq_client_open(&b, "memory://shared-test", NULL));
    ASSERT_OK(runq_client_open(&other, "memory://", NULL));
    ASSERT_STR(runq_client_backend(a), "memory");
    char id[RUNQ_ID_SIZE];
    t_enqueue(a, id, "t", 1, NULL);
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, b, id));
    runq_job_free(snap);
    ASSERT_EQ(runq_job_get(&snap, other, id), RUNQ_ENOTFOUND);
    runq_client_close(a);
    ASSERT_OK(runq_job_get(&snap, b, id)); /* b still holds the store */
    runq_job_free(snap);
    runq_client_close(b);
    runq_client_close(other);
}

#include "periodic.h"

static int64_t utc_ms(int y, int mo, int d, int h, int mi) {
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm(&tm) * 1000;
}

TEST(cron_next_fire_times) {
    rq_cron c;
    ASSERT_OK(rq_cron_parse(&c, "*/15 * * * *"));
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 11, 22, 10, 7)), utc_ms(2026, 11, 22, 10, 15));
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 11, 22, 10, 15)), utc_ms(2026, 11, 22, 10, 30));
    ASSERT_OK(rq_cron_parse(&c, "30 2 * * 1-5")); /* 02:30 on weekdays */
    /* 2026-11-21 is a Saturday: the next weekday is Monday the 23rd. */
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 11, 21, 12, 0)), utc_ms(2026, 11, 23, 2, 30));
    ASSERT_OK(rq_cron_parse(&c, "0 0 29 2 *")); /* leap days only */
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 11, 22, 0, 0)), utc_ms(2028, 2, 29, 0, 0));
    ASSERT_OK(rq_cron_parse(&c, "0 12 1 * 0")); /* the 1st, or any Sunday (classic OR) */
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 11, 23, 0, 0)), utc_ms(2026, 11, 29, 12, 0));
    ASSERT_OK(rq_cron_parse(&c, "0 0 * * 7")); /* 7 is Sunday too */
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 11, 23, 0, 0)), utc_ms(2026, 11, 29, 0, 0));
    ASSERT_OK(rq_cron_parse(&c, "5,10-12/2 * * * *"));
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 1, 1, 0, 5)), utc_ms(2026, 1, 1, 0, 10));
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 1, 1, 0, 10)), utc_ms(2026, 1, 1, 0, 12));
    const char *bad[] = {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
                         "* * * 13 *", "* * * * 8", "*/0 * * * *", "a * * * *", "5-1 * * * *"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_EQ(rq_cron_parse(&c, bad[i]), RUNQ_EINVAL);
        ASSERT(strstr(runq_error_last(), "cron") != NULL);
    }
    ASSERT_OK(rq_cron_parse(&c, "0 0 31 2 *")); /* never fires */
    ASSERT_EQ(rq_cron_next(&c, utc_ms(2026, 1, 1, 0, 0)), -1);
}

static int noop_handler(runq_job *job, void *ud) {
    (void)job;
    (void)ud;
    return 0;
}

TEST(worker_pool_options_checked_and_version_1_accepted) {
    runq_client *c = NULL;
    ASSERT_OK(runq_client_open(&c, "memory://", NULL));
    runq_task_options to = RUNQ_TASK_OPTIONS_INIT;
    to.handler = noop_handler;
    ASSERT_OK(runq_task_register(NULL, c, "noop", &to));
    runq_worker *w = NULL;
    struct { int min, max; int64_t idle; const char *detail; } bad[] = {
        {2, 0, 1000, "max_concurrency"}, {0, 2000, 1000, "max_concurrency"},
        {5, 4, 1000, "min_concurrency"}, {-1, 4, 1000, "min_concurrency"},
        {1, 4, 0, "idle_timeout_ms"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        runq_worker_options o = RUNQ_WORKER_OPTIONS_INIT;
        o.min_concurrency = bad[i].min;
        o.max_concurrency = bad[i].max;
        o.idle_timeout_ms = bad[i].idle;
        ASSERT_EQ(runq_worker_create(&w, c, &o), RUNQ_EINVAL);
        ASSERT(w == NULL);
        ASSERT(strstr(runq_error_last(), bad[i].detail) != NULL);
    }
    runq_worker_options o = RUNQ_WORKER_OPTIONS_INIT;
    o.version = RUNQ_WORKER_OPTIONS_VERSION + 1;
    ASSERT_EQ(runq_worker_create(&w, c, &o), RUNQ_EINVAL);

    /* A version 1 caller's struct ends before the autoscaling fields: what
     * lies there is not read, and `concurrency` is a fixed pool. */
    o = (runq_worker_options)RUNQ_WORKER_OPTIONS_INIT;
    o.version = 1;
    o.concurrency = 3;
    o.min_concurrency = -7;
    o.max_concurrency = 99999;
    o.idle_timeout_ms = -1;
    ASSERT_OK(runq_worker_create(&w, c, &o));
    ASSERT_OK(runq_worker_start(w));
    runq_worker_stats s;
    runq_worker_stats_get(&s, w);
    ASSERT_EQ(s.threads, 3);
    runq_worker_free(w);

    /* Only max given: min defaults to 1. */
    o = (runq_worker_options)RUNQ_WORKER_OPTIONS_INIT;
    o.max_concurrency = 4;
    ASSERT_OK(runq_worker_create(&w, c, &o));
    ASSERT_OK(runq_worker_start(w));
    WAIT_UNTIL((runq_worker_stats_get(&s, w), s.idle == 1));
    ASSERT_EQ(s.threads, 1);
    runq_worker_free(w);

    /* Pull mode: max_concurrency is the number of jobs held at once. */
    o = (runq_worker_options)RUNQ_WORKER_OPTIONS_INIT;
    o.mode = RUNQ_WORKER_PULL;
    o.max_concurrency = 2;
    ASSERT_OK(runq_worker_create(&w, c, &o));
    char id[RUNQ_ID_SIZE];
    for (int i = 0; i < 3; i++) t_enqueue(c, id, "noop", i, NULL);
    runq_job *a = NULL, *b = NULL, *x = NULL;
    ASSERT_OK(runq_worker_next(w, &a, 5000));
    ASSERT_OK(runq_worker_next(w, &b, 5000));
    ASSERT_EQ(runq_worker_next(w, &x, 5000), RUNQ_ESTATE);
    runq_job_free(a);
    runq_job_free(b);
    runq_worker_free(w);
    runq_client_close(c);
}

/* ---- the msgpack check against msgpack-c's unpacker ---- */

static uint64_t mp_rng = 0x9e3779b97f4a7c15u;
static uint32_t mp_rand(uint32_t n) {
    mp_rng ^= mp_rng << 13;
    mp_rng ^= mp_rng >> 7;
    mp_rng ^= mp_rng << 17;
    return (uint32_t)(mp_rng % n);
}

/* msgpack-c's verdict: exactly one object. */
static bool mp_ref_ok(const void *b, size_t n) {
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return r = msgpack_unpack_next(&u, b, n, &off);
    msgpack_unpacked_destroy(&u);
    return r == MSGPACK_UNPACK_SUCCESS && off == n;
}

static int mp_agree(const void *b, size_t n) {
    bool ours = rq_msgpack_check(b, n, "x") == 0, ref = mp_ref_ok(b, n);
    if (ours != ref) {
        fprintf(stderr, "msgpack check says %s, msgpack-c %s, for", ours ? "ok" : "bad",
                ref ? "ok" : "bad");
        for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %02x", ((const uint8_t *)b)[i]);
        fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
    }
    return ours == ref;
}

/* A random object of every kind and size class, nested up to `depth`. */
static void mp_gen(msgpack_packer *pk, int depth) {
    static const uint32_t lens[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536};
    static const char fill[65536 + 1];
    uint32_t kinds = depth > 0 ? 11 : 9;
    switch (mp_rand(kinds)) {
    case 0: msgpack_pack_nil(pk); break;
    case 1: mp_rand(2) ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case 2: msgpack_pack_uint64(pk, (uint64_t)1 << mp_rand(64)); break;
    case 3: msgpack_pack_int64(pk, -((int64_t)1 << mp_rand(63))); break;
    case 4: mp_rand(2) ? msgpack_pack_float(pk, 1.5f) : msgpack_pack_double(pk, -2.25); break;
    case 5: {
        uint32_t n = lens[mp_rand(10)];
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, fill, n);
        break;
    }
    case 6: {
        uint32_t n = lens[mp_rand(10)];
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, fill, n);
        break;
    }
    case 7: case 8: {
        static const uint32_t ext[] = {1, 2, 4, 8, 16, 0, 3, 17, 255, 256, 70000};
        uint32_t n = ext[mp_rand(11)];
        if (n > 65536) n = 65536;
        msgpack_pack_ext(pk, n, (int8_t)mp_rand(128));
        msgpack_pack_ext_body(pk, fill, n);
        break;
    }
    case 9: {
        static const uint32_t counts[] = {0, 1, 2, 15, 16, 17};
        uint32_t n = counts[mp_rand(6)];
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) mp_gen(pk, depth - 1);
        break;
    }
    default: {
        uint32_t n = mp_rand(4) == 0 ? 16 : mp_rand(3);
        msgpack_pack_map(pk, n);
        for (uint32_t i = 0; i < 2 * n; i++) mp_gen(pk, depth - 1);
        break;
    }
    }
}

TEST(msgpack_check_agrees_with_msgpack_c) {
    int agree = 1;
    /* Well-formed objects, each cut short, with a byte changed, with a
     * byte more. */
    for (int round = 0; round < 400 && agree; round++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        mp_gen(&pk, (int)mp_rand(5));
        uint8_t *b = (uint8_t *)sb.data;
        size_t n = sb.size;
        ASSERT(rq_msgpack_check(b, n, "x") == 0);
        agree &= mp_agree(b, n);
        for (size_t cut = 1; cut < n && agree; cut += 1 + n / 64) agree &= mp_agree(b, cut);
        for (int k = 0; k < 8 && agree; k++) {
            size_t at = mp_rand((uint32_t)n);
            uint8_t was = b[at];
            b[at] = (uint8_t)mp_rand(256);
            /* Not a count of a 16- or 32-bit array or map: msgpack-c
             * allocates for the count it reads before it finds the bytes
             * missing, and a random one can ask for gigabytes. */
            if (b[at] < 0xdc || b[at] > 0xdf) agree &= mp_agree(b, n);
            b[at] = was;
        }
        uint8_t *more = rq_malloc(n + 1);
        memcpy(more, b, n);
        more[n] = 0xc0;
        agree &= mp_agree(more, n + 1);
        ASSERT(rq_msgpack_check(more, n + 1, "x") == RUNQ_EINVAL);
        rq_free(more);
        msgpack_sbuffer_destroy(&sb);
    }
    ASSERT(agree);
    /* Short random bytes (big array and map headers left out, as above). */
    for (int round = 0; round < 50000 && agree; round++) {
        uint8_t b[12];
        size_t n = 1 + mp_rand(sizeof b);
        for (size_t i = 0; i < n; i++) {
            b[i] = (uint8_t)mp_rand(256);
            if (b[i] >= 0xdc && b[i] <= 0xdf) b[i] = 0x91;
        }
        agree &= mp_agree(b, n);
    }
    ASSERT(agree);
    /* Nesting: msgpack-c holds 32 open containers, and refuses a 33rd even
     * when it is empty. */
    for (int levels = 30; levels <= 34; levels++) {
        uint8_t b[80];
        size_t n = 0;
        for (int i = 0; i < levels; i++) b[n++] = 0x91; /* [ */
        b[n++] = 0xc0;
        ASSERT(mp_agree(b, n));
        ASSERT((rq_msgpack_check(b, n, "x") == 0) == (levels <= 32));
        b[n - 1] = 0x90; /* one more, empty */
        ASSERT(mp_agree(b, n));
        ASSERT((rq_msgpack_check(b, n, "x") == 0) == (levels <= 31));
        b[levels - 1] = 0x81; /* a map holding [] -> nil */
        b[n++] = 0xc0;
        ASSERT(mp_agree(b, n));
    }
    ASSERT(strstr(rq_msgpack_check("\xc1", 1, "args") ? runq_error_last() : "", "malformed"));
    ASSERT(strstr(rq_msgpack_check("\x92\x01", 2, "args") ? runq_error_last() : "", "truncated"));
}

TEST_MAIN()
