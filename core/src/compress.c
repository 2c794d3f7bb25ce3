/* zstd payload wrapping; compress.h says what and docs/protocol.md how. */
#include "compress.h"

#include <string.h>
#include <zstd.h>

/* zstd's default level: a good ratio on msgpack at a small cost per job. */
#define LEVEL 3

/* Bytes of the ext header for data of n bytes (ext 8/16/32; writers never
 * use fixext, readers accept it). */
static size_t ext_header(uint8_t *h, size_t n) {
    if (n <= 0xff) {
        h[0] = 0xc7;
        h[1] = (uint8_t)n;
        h[2] = RQ_EXT_WRAPPED;
        return 3;
    }
    if (n <= 0xffff) {
        h[0] = 0xc8;
        h[1] = (uint8_t)(n >> 8);
        h[2] = (uint8_t)n;
        h[3] = RQ_EXT_WRAPPED;
        return 4;
    }
    h[0] = 0xc9;
    for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(n >> (24 - 8 * i));
    h[5] = RQ_EXT_WRAPPED;
    return 6;
}

/* Locate the data of a wrapped payload: false when buf is not one ext
 * object of our type covering all of buf. */
static bool ext_data(const uint8_t *p, size_t len, const uint8_t **data, size_t *n) {
    size_t hl, dl;
    if (len < 2) return false;
    switch (p[0]) {
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        hl = 2, dl = (size_t)1 << (p[0] - 0xd4);
        break;
    case 0xc7:
        hl = 3, dl = len >= 3 ? p[1] : 0;
        break;
    case 0xc8:
        hl = 4, dl = len >= 4 ? ((size_t)p[1] << 8 | p[2]) : 0;
        break;
    case 0xc9:
        hl = 6, dl = len >= 6 ? ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4]) : 0;
        break;
    default:
        return false;
    }
    if (len < hl || p[hl - 1] != RQ_EXT_WRAPPED || len - hl != dl) return false;
    *data = p + hl;
    *n = dl;
    return true;
}

bool rq_payload_is_wrapped(const void *buf, size_t len) {
    const uint8_t *d;
    size_t n;
    return buf && ext_data(buf, len, &d, &n);
}

int rq_payload_wrap(uint8_t **out, size_t *out_len, const void *in, size_t len,
                    size_t threshold) {
    *out = NULL;
    *out_len = 0;
    if (threshold == 0 || len <= threshold) return 0;
    size_t bound = ZSTD_compressBound(len);
    uint8_t *buf = rq_malloc(6 + 1 + bound);
    if (!buf) return rq_error(RUNQ_ENOMEM, "out of memory");
    /* Compress behind the largest header, then move the frame down next to
     * the header it really needs. */
    size_t z = ZSTD_compress(buf + 7, bound, in, len, LEVEL);
    if (ZSTD_isError(z)) {
        rq_free(buf);
        return rq_error(RUNQ_EIO, "zstd compression failed: %s", ZSTD_getErrorName(z));
    }
    uint8_t h[6];
    size_t hl = ext_header(h, 1 + z);
    if (hl + 1 + z >= len) { /* no gain: store it as it is */
        rq_free(buf);
        return 0;
    }
    memmove(buf + hl + 1, buf + 7, z);
    memcpy(buf, h, hl);
    buf[hl] = RQ_CODEC_ZSTD;
    *out = buf;
    *out_len = hl + 1 + z;
    return 0;
}

int rq_payload_unwrap(uint8_t **buf, size_t *len, size_t max_len) {
    const uint8_t *d;
    size_t n;
    if (!*buf || !ext_data(*buf, *len, &d, &n)) return 0;
    if (n < 1 || d[0] != RQ_CODEC_ZSTD)
        return rq_error(RUNQ_EPROTO, "compressed payload: unknown codec %d", n ? d[0] : -1);
    d++, n--;
    unsigned long long size = ZSTD_getFrameContentSize(d, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
        return rq_error(RUNQ_EPROTO, "compressed payload: not a zstd frame with its content size");
    if (size > max_len)
        return rq_error(RUNQ_EPROTO,
                        "compressed payload: decompresses to %llu bytes, over the max payload %zu",
                        size, max_len);
    size_t fl = ZSTD_findFrameCompressedSize(d, n);
    if (ZSTD_isError(fl) || fl != n)
        return rq_error(RUNQ_EPROTO, "compressed payload: not exactly one zstd frame");
    uint8_t *plain = rq_malloc(size ? (size_t)size : 1);
    if (!plain) return rq_error(RUNQ_ENOMEM, "out of memory");
    size_t got = ZSTD_decompress(plain, (size_t)size, d, n);
    if (ZSTD_isError(got) || got != size) {
        rq_free(plain);
        return rq_error(RUNQ_EPROTO, "compressed payload: zstd: %s",
                        ZSTD_isError(got) ? ZSTD_getErrorName(got) : "size mismatch");
    }
    if (rq_msgpack_check(plain, got, "decompressed payload") != 0 ||
        rq_payload_is_wrapped(plain, got)) {
        rq_free(plain);
        return rq_error(RUNQ_EPROTO, "compressed payload: not one msgpack object inside");
    }
    rq_free(*buf);
    *buf = plain;
    *len = got;
    return 0;
}
