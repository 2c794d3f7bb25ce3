/* Small shared utilities: clocks, randomness, names, ids. */
#include "common.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uv.h>

int runq_version(void) { return RUNQ_VERSION_NUMBER; }
const char *runq_version_string(void) { return RUNQ_VERSION_STRING; }

int64_t rq_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rq_mono_ms(void) { return (int64_t)(uv_hrtime() / 1000000); }

size_t rq_fmt_u64(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

size_t rq_fmt_i64(char *out, int64_t v) {
    if (v >= 0) return rq_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + rq_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

uint64_t rq_fnv1a64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* splitmix64 per thread, seeded from the OS once per thread: cheap, no
 * locking, and good enough for ids, jitter and weighted choice. */
uint64_t rq_random64(void) {
    static _Thread_local uint64_t state;
    static _Thread_local int seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state)
            state = (uint64_t)rq_now_ms() ^ (uint64_t)(uintptr_t)&state;
        seeded = 1;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int rq_name_check(const char *name, const char *what) {
    if (name == NULL || *name == '\0')
        return rq_error(RUNQ_EINVAL, "%s name is empty", what);
    size_t n = strlen(name);
    if (n > RUNQ_NAME_MAX)
        return rq_error(RUNQ_EINVAL, "%s name is %zu bytes long; the limit is %d", what, n,
                        RUNQ_NAME_MAX);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p <= ' ' || *p >= 127 || *p == '{' || *p == '}')
            return rq_error(RUNQ_EINVAL,
                            "%s name \"%.*s\" has a forbidden character at byte %zu "
                            "(allowed: printable ASCII without spaces or braces)",
                            what, (int)n, name, (size_t)(p - (const unsigned char *)name));
    }
    return 0;
}

/* Ids: 48-bit ms time + 80 random bits in Crockford base32 (ULID layout).
 * Within one millisecond the random part is incremented, so the ids one
 * process makes are strictly increasing. */
static uv_mutex_t id_lock;
static uv_once_t id_once = UV_ONCE_INIT;
static void id_lock_init(void) { uv_mutex_init(&id_lock); }

void rq_id_new(char id[RUNQ_ID_SIZE]) {
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    static uint64_t last_ms, rand_hi, rand_lo; /* rand_hi holds 16 bits */
    uv_once(&id_once, id_lock_init);
    uint64_t ms = (uint64_t)rq_now_ms();
    uv_mutex_lock(&id_lock);
    if (ms <= last_ms) {
        ms = last_ms; /* the clock stood still or went back: keep order */
        if (++rand_lo == 0) rand_hi = (rand_hi + 1) & 0xffff;
    } else {
        last_ms = ms;
        rand_lo = rq_random64();
        rand_hi = rq_random64() & 0x7fff; /* headroom for increments */
    }
    uint64_t lo = rand_lo, hi = rand_hi;
    uv_mutex_unlock(&id_lock);
    /* 10 chars of time (50 bits, top 2 zero), 16 chars of randomness. */
    for (int i = 9; i >= 0; i--) { id[i] = b32[ms & 31]; ms >>= 5; }
    for (int i = 25; i >= 10; i--) {
        id[i] = b32[lo & 31];
        lo = (lo >> 5) | ((hi & 31) << 59);
        hi >>= 5;
    }
    id[RUNQ_ID_LEN] = '\0';
}
