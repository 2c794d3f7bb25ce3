/* Is a buffer exactly one well-formed msgpack object? Checked by walking
 * the headers, without decoding: enqueue checks every job's args and fetch
 * every leased job's, and msgpack-c's unpacker allocates an 8 KiB zone per
 * call to answer, which was most of malloc's time on the producer and
 * fetcher threads. The verdicts are msgpack_unpack_next's, including its
 * bound of 32 open containers (msgpack-c's MSGPACK_EMBED_STACK_SIZE), so a
 * payload accepted here decodes in every binding; tests/c/test_engine.c
 * compares the two on generated input. */
#include "common.h"

#include <stdint.h>

#define MAX_OPEN 32

enum { MP_OK, MP_TRUNCATED, MP_MALFORMED };

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* The length of the object at p[0..len) in *end; MP_OK or why not. */
static int mp_walk(const uint8_t *p, size_t len, size_t *end) {
    /* left[d]: objects still to read at depth d; depth 0 is the top level
     * (one object), each deeper one an open, non-empty array or map. */
    uint64_t left[MAX_OPEN + 1];
    int depth = 0;
    size_t i = 0;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (i >= len) return MP_TRUNCATED;
        uint8_t b = p[i++];
        uint64_t skip = 0, items = 0; /* payload bytes; child objects */
        int hdr = 0;                  /* bytes of a big-endian length after b */
        enum { BYTES, ARRAY, MAP } kind = BYTES;
        if (b <= 0x7f || b >= 0xe0) { /* fixint */
        } else if (b <= 0x8f) {
            items = 2u * (b & 0x0fu);
            kind = MAP;
        } else if (b <= 0x9f) {
            items = b & 0x0fu;
            kind = ARRAY;
        } else if (b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc0: case 0xc2: case 0xc3: break;           /* nil, false, true */
            case 0xc4: case 0xd9: hdr = 1; break;             /* bin 8, str 8 */
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: hdr = 1; skip = 1; break;              /* ext 8: length, type */
            case 0xc8: hdr = 2; skip = 1; break;
            case 0xc9: hdr = 4; skip = 1; break;
            case 0xca: skip = 4; break;                       /* float 32 */
            case 0xcb: skip = 8; break;                       /* float 64 */
            case 0xcc: case 0xd0: skip = 1; break;            /* uint 8, int 8 */
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                       /* fixext 1: type, data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: hdr = 2; kind = ARRAY; break;
            case 0xdd: hdr = 4; kind = ARRAY; break;
            case 0xde: hdr = 2; kind = MAP; break;
            case 0xdf: hdr = 4; kind = MAP; break;
            default: return MP_MALFORMED;                     /* 0xc1: never used */
            }
        }
        if (hdr) {
            if (len - i < (size_t)hdr) return MP_TRUNCATED;
            uint64_t n = be(p + i, hdr);
            i += (size_t)hdr;
            if (kind == BYTES) skip += n;
            else items = kind == MAP ? 2 * n : n;
        }
        if (len - i < skip) return MP_TRUNCATED;
        i += (size_t)skip;
        if (kind != BYTES) {
            /* msgpack-c refuses a 33rd open container, an empty one too. */
            if (depth == MAX_OPEN) return MP_MALFORMED;
            /* Each child takes a byte at least: bounds the walk by len. */
            if (items > len - i) return MP_TRUNCATED;
            if (items) left[++depth] = items;
        }
    }
    *end = i;
    return MP_OK;
}

int rq_msgpack_check(const void *buf, size_t len, const char *what) {
    if (buf == NULL || len == 0) return rq_error(RUNQ_EINVAL, "%s is empty: pass one msgpack object", what);
    size_t end = 0;
    int v = mp_walk(buf, len, &end);
    if (v != MP_OK)
        return rq_error(RUNQ_EINVAL, "%s is not valid msgpack (%s)", what,
                        v == MP_TRUNCATED ? "truncated" : "malformed");
    if (end != len)
        return rq_error(RUNQ_EINVAL, "%s has %zu trailing bytes after its msgpack object", what,
                        len - end);
    return 0;
}
