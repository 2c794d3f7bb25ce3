/* mpack.c -- a small msgpack codec over the Lua stack (see mpack.h). */
#include "mpack.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep structures are almost certainly mistakes, and each level costs C
 * stack and Lua stack slots. */
#define RQ_MP_MAX_DEPTH 64

void rq_buf_free(rq_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int buf_reserve(rq_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(rq_buf *b, const void *data, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int put_be(rq_buf *b, uint8_t tag, uint64_t v, int nbytes)
{
    uint8_t tmp[9];
    tmp[0] = tag;
    for (int i = 0; i < nbytes; i++)
        tmp[1 + i] = (uint8_t)(v >> (8 * (nbytes - 1 - i)));
    return put(b, tmp, (size_t)nbytes + 1);
}

static int put_int(rq_buf *b, int64_t v)
{
    if (v >= 0) {
        if (v < 128) {
            uint8_t c = (uint8_t)v;
            return put(b, &c, 1);
        }
        if (v <= 0xff) return put_be(b, 0xcc, (uint64_t)v, 1);
        if (v <= 0xffff) return put_be(b, 0xcd, (uint64_t)v, 2);
        if (v <= 0xffffffffLL) return put_be(b, 0xce, (uint64_t)v, 4);
        return put_be(b, 0xcf, (uint64_t)v, 8);
    }
    if (v >= -32) {
        uint8_t c = (uint8_t)(int8_t)v;
        return put(b, &c, 1);
    }
    if (v >= INT8_MIN) return put_be(b, 0xd0, (uint64_t)v & 0xff, 1);
    if (v >= INT16_MIN) return put_be(b, 0xd1, (uint64_t)v & 0xffff, 2);
    if (v >= INT32_MIN) return put_be(b, 0xd2, (uint64_t)v & 0xffffffff, 4);
    return put_be(b, 0xd3, (uint64_t)v, 8);
}

static int put_double(rq_buf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return put_be(b, 0xcb, u, 8);
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int is_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* Lua strings are bytes. Valid UTF-8 goes out as msgpack str; anything else
 * as bin, so that strict decoders elsewhere (Python's) see bytes rather
 * than failing on a "string" that is not text. */
static int put_str(rq_buf *b, const char *s, size_t n)
{
    int text = is_utf8((const unsigned char *)s, n);
    int r;
    if (text && n < 32) {
        uint8_t c = (uint8_t)(0xa0 | n);
        r = put(b, &c, 1);
    } else if (n <= 0xff) {
        r = put_be(b, text ? 0xd9 : 0xc4, n, 1);
    } else if (n <= 0xffff) {
        r = put_be(b, text ? 0xda : 0xc5, n, 2);
    } else if (n <= 0xffffffffULL) {
        r = put_be(b, text ? 0xdb : 0xc6, n, 4);
    } else {
        return -1;
    }
    return r != 0 ? r : put(b, s, n);
}

static int put_container(rq_buf *b, int is_map, size_t n)
{
    if (n < 16) {
        uint8_t c = (uint8_t)((is_map ? 0x80 : 0x90) | n);
        return put(b, &c, 1);
    }
    if (n <= 0xffff)
        return put_be(b, is_map ? 0xde : 0xdc, n, 2);
    return put_be(b, is_map ? 0xdf : 0xdd, n, 4);
}

typedef struct enc {
    lua_State *L;
    rq_buf *b;
    char *err;
    int seen; /* stack index of the table of tables being encoded */
} enc;

static int oom(enc *e)
{
    snprintf(e->err, RQ_ERR_SIZE, "out of memory while encoding msgpack");
    return -1;
}

static int encode_value(enc *e, int idx, int depth);

static int encode_number(enc *e, int idx)
{
    lua_State *L = e->L;
    if (lua_isinteger(L, idx))
        return put_int(e->b, RQ_TOINT64(L, idx)) ? oom(e) : 0;
    return put_double(e->b, (double)lua_tonumber(L, idx)) ? oom(e) : 0;
}

/* Count the keys and decide whether the table is a sequence 1..n. */
static size_t table_shape(lua_State *L, int idx, int *is_array)
{
    size_t count = 0;
    lua_Number max = 0;
    int array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (array && lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1)) {
            lua_Number k = lua_tonumber(L, -1);
            if (k < 1)
                array = 0;
            else if (k > max)
                max = k;
        } else {
            array = 0;
        }
    }
    *is_array = array && count > 0 && max == (lua_Number)count;
    return count;
}

static int encode_table(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > RQ_MP_MAX_DEPTH) {
        snprintf(e->err, RQ_ERR_SIZE, "cannot encode table: nested deeper than %d",
                 RQ_MP_MAX_DEPTH);
        return -1;
    }
    if (!lua_checkstack(L, 6))
        return oom(e);
    lua_pushvalue(L, idx);
    lua_rawget(L, e->seen);
    int cyclic = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (cyclic) {
        snprintf(e->err, RQ_ERR_SIZE, "cannot encode a cyclic table");
        return -1;
    }
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->seen);

    int is_array;
    size_t n = table_shape(L, idx, &is_array);
    int rc = put_container(e->b, !is_array, n) ? oom(e) : 0;
    if (rc == 0 && is_array) {
        for (size_t i = 1; i <= n && rc == 0; i++) {
            lua_rawgeti(L, idx, (int)i);
            rc = encode_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
    } else if (rc == 0) {
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            int top = lua_gettop(L);
            rc = encode_value(e, top - 1, depth + 1);
            if (rc == 0)
                rc = encode_value(e, top, depth + 1);
            lua_pop(L, 1);
            if (rc != 0) {
                lua_pop(L, 1);
                break;
            }
        }
    }
    /* Leaving the table: shared (non-cyclic) references are fine. */
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, e->seen);
    return rc;
}

static int encode_value(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: {
        uint8_t c = 0xc0;
        return put(e->b, &c, 1) ? oom(e) : 0;
    }
    case LUA_TBOOLEAN: {
        uint8_t c = lua_toboolean(L, idx) ? 0xc3 : 0xc2;
        return put(e->b, &c, 1) ? oom(e) : 0;
    }
    case LUA_TNUMBER:
        return encode_number(e, idx);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return put_str(e->b, s, n) ? oom(e) : 0;
    }
    case LUA_TTABLE:
        return encode_table(e, idx, depth);
    default:
        /* lightuserdata NULL is commonly used as a JSON-style null. */
        if (lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL) {
            uint8_t c = 0xc0;
            return put(e->b, &c, 1) ? oom(e) : 0;
        }
        snprintf(e->err, RQ_ERR_SIZE, "cannot encode a %s as msgpack",
                 luaL_typename(L, idx));
        return -1;
    }
}

static int abs_index(lua_State *L, int idx)
{
    return idx > 0 ? idx : lua_gettop(L) + idx + 1;
}

int rq_mp_encode(lua_State *L, int idx, rq_buf *b, char err[RQ_ERR_SIZE])
{
    idx = abs_index(L, idx);
    if (!lua_checkstack(L, 4)) {
        snprintf(err, RQ_ERR_SIZE, "out of memory while encoding msgpack");
        return -1;
    }
    lua_newtable(L);
    enc e = { L, b, err, lua_gettop(L) };
    int rc = encode_value(&e, idx, 0);
    lua_pop(L, 1);
    return rc;
}

int rq_mp_encode_args(lua_State *L, int idx, rq_buf *b, char err[RQ_ERR_SIZE])
{
    idx = abs_index(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TNIL || t == LUA_TNONE) {
        static const uint8_t empty[] = { 0x92, 0x90, 0x80 };
        return put(b, empty, sizeof empty) ? (snprintf(err, RQ_ERR_SIZE, "out of memory"), -1) : 0;
    }
    if (t != LUA_TTABLE) {
        snprintf(err, RQ_ERR_SIZE, "args must be a table (got %s)", luaL_typename(L, idx));
        return -1;
    }
    if (!lua_checkstack(L, 8)) {
        snprintf(err, RQ_ERR_SIZE, "out of memory while encoding msgpack");
        return -1;
    }
    lua_newtable(L);
    enc e = { L, b, err, lua_gettop(L) };
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e.seen);

    size_t n = lua_rawlen(L, idx);
    size_t nkw = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!(lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1) &&
              lua_tonumber(L, -1) >= 1 && lua_tonumber(L, -1) <= (lua_Number)n))
            nkw++;
    }
    int rc = (put_container(b, 0, 2) || put_container(b, 0, n)) ? oom(&e) : 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        lua_rawgeti(L, idx, (int)i);
        rc = encode_value(&e, lua_gettop(L), 1);
        lua_pop(L, 1);
    }
    if (rc == 0)
        rc = put_container(b, 1, nkw) ? oom(&e) : 0;
    if (rc == 0) {
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            int top = lua_gettop(L);
            if (lua_type(L, top - 1) == LUA_TNUMBER && lua_isinteger(L, top - 1) &&
                lua_tonumber(L, top - 1) >= 1 && lua_tonumber(L, top - 1) <= (lua_Number)n) {
                lua_pop(L, 1);
                continue;
            }
            rc = encode_value(&e, top - 1, 1);
            if (rc == 0)
                rc = encode_value(&e, top, 1);
            lua_pop(L, 1);
            if (rc != 0) {
                lua_pop(L, 1);
                break;
            }
        }
    }
    lua_pop(L, 1);
    return rc;
}

/* ---------------------------------------------------------------- */

typedef struct dec {
    lua_State *L;
    const uint8_t *p;
    const uint8_t *end;
    char *err;
} dec;

static int short_input(dec *d)
{
    snprintf(d->err, RQ_ERR_SIZE, "malformed msgpack: truncated input");
    return -1;
}

static int take(dec *d, size_t n, const uint8_t **out)
{
    if ((size_t)(d->end - d->p) < n)
        return short_input(d);
    *out = d->p;
    d->p += n;
    return 0;
}

static int read_be(dec *d, int nbytes, uint64_t *v)
{
    const uint8_t *q = NULL;
    if (take(d, (size_t)nbytes, &q) != 0)
        return -1;
    uint64_t r = 0;
    for (int i = 0; i < nbytes; i++)
        r = (r << 8) | q[i];
    *v = r;
    return 0;
}

static int decode_value(dec *d, int depth);

static int decode_str(dec *d, size_t n)
{
    const uint8_t *q = NULL;
    if (take(d, n, &q) != 0)
        return -1;
    lua_pushlstring(d->L, (const char *)q, n);
    return 0;
}

static int decode_array(dec *d, size_t n, int depth)
{
    lua_State *L = d->L;
    /* Each element takes at least one byte: reject absurd counts early. */
    if (n > (size_t)(d->end - d->p))
        return short_input(d);
    lua_createtable(L, n > 0x7fffffff ? 0 : (int)n, 0);
    for (size_t i = 1; i <= n; i++) {
        if (decode_value(d, depth + 1) != 0) {
            lua_pop(L, 1);
            return -1;
        }
        lua_rawseti(L, -2, (int)i);
    }
    return 0;
}

static int decode_map(dec *d, size_t n, int depth)
{
    lua_State *L = d->L;
    if (n > (size_t)(d->end - d->p) / 2)
        return short_input(d);
    lua_createtable(L, 0, n > 0x7fffffff ? 0 : (int)n);
    for (size_t i = 0; i < n; i++) {
        if (decode_value(d, depth + 1) != 0) {
            lua_pop(L, 1);
            return -1;
        }
        if (decode_value(d, depth + 1) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        int kt = lua_type(L, -2);
        if (kt == LUA_TNIL || (kt == LUA_TNUMBER && isnan((double)lua_tonumber(L, -2)))) {
            snprintf(d->err, RQ_ERR_SIZE, "msgpack map key is nil or NaN: no Lua equivalent");
            lua_pop(L, 3);
            return -1;
        }
        lua_rawset(L, -3);
    }
    return 0;
}

static int decode_value(dec *d, int depth)
{
    lua_State *L = d->L;
    const uint8_t *q = NULL;
    uint64_t v = 0;
    if (depth > RQ_MP_MAX_DEPTH) {
        snprintf(d->err, RQ_ERR_SIZE, "msgpack nested deeper than %d", RQ_MP_MAX_DEPTH);
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(d->err, RQ_ERR_SIZE, "out of Lua stack while decoding");
        return -1;
    }
    if (take(d, 1, &q) != 0)
        return -1;
    uint8_t c = *q;
    if (c <= 0x7f) { RQ_PUSHINT64(L, c); return 0; }
    if (c >= 0xe0) { RQ_PUSHINT64(L, (int8_t)c); return 0; }
    if ((c & 0xe0) == 0xa0) return decode_str(d, c & 0x1f);
    if ((c & 0xf0) == 0x90) return decode_array(d, c & 0x0f, depth);
    if ((c & 0xf0) == 0x80) return decode_map(d, c & 0x0f, depth);
    switch (c) {
    case 0xc0: lua_pushnil(L); return 0;
    case 0xc2: lua_pushboolean(L, 0); return 0;
    case 0xc3: lua_pushboolean(L, 1); return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (read_be(d, 1 << (c - 0xcc), &v) != 0) return -1;
        if (v > (uint64_t)INT64_MAX)
            lua_pushnumber(L, (lua_Number)v); /* no exact Lua integer for it */
        else
            RQ_PUSHINT64(L, (int64_t)v);
        return 0;
    case 0xd0: if (read_be(d, 1, &v)) return -1; RQ_PUSHINT64(L, (int8_t)v); return 0;
    case 0xd1: if (read_be(d, 2, &v)) return -1; RQ_PUSHINT64(L, (int16_t)v); return 0;
    case 0xd2: if (read_be(d, 4, &v)) return -1; RQ_PUSHINT64(L, (int32_t)v); return 0;
    case 0xd3: if (read_be(d, 8, &v)) return -1; RQ_PUSHINT64(L, (int64_t)v); return 0;
    case 0xca: {
        float f;
        uint32_t u;
        if (read_be(d, 4, &v)) return -1;
        u = (uint32_t)v;
        memcpy(&f, &u, sizeof f);
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case 0xcb: {
        double f;
        if (read_be(d, 8, &v)) return -1;
        memcpy(&f, &v, sizeof f);
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case 0xd9: case 0xc4: if (read_be(d, 1, &v)) return -1; return decode_str(d, v);
    case 0xda: case 0xc5: if (read_be(d, 2, &v)) return -1; return decode_str(d, v);
    case 0xdb: case 0xc6: if (read_be(d, 4, &v)) return -1; return decode_str(d, v);
    case 0xdc: if (read_be(d, 2, &v)) return -1; return decode_array(d, v, depth);
    case 0xdd: if (read_be(d, 4, &v)) return -1; return decode_array(d, v, depth);
    case 0xde: if (read_be(d, 2, &v)) return -1; return decode_map(d, v, depth);
    case 0xdf: if (read_be(d, 4, &v)) return -1; return decode_map(d, v, depth);
    default:
        snprintf(d->err, RQ_ERR_SIZE, "unsupported msgpack type 0x%02x (ext types have no Lua value)", c);
        return -1;
    }
}

int rq_mp_decode(lua_State *L, const char *buf, size_t len, char err[RQ_ERR_SIZE])
{
    dec d = { L, (const uint8_t *)buf, (const uint8_t *)buf + len, err };
    if (decode_value(&d, 0) != 0)
        return -1;
    if (d.p != d.end) {
        lua_pop(L, 1);
        snprintf(err, RQ_ERR_SIZE, "malformed msgpack: %zu trailing bytes",
                 (size_t)(d.end - d.p));
        return -1;
    }
    return 0;
}

int rq_mp_decode_args(lua_State *L, const char *buf, size_t len, char err[RQ_ERR_SIZE])
{
    if (rq_mp_decode(L, buf, len, err) != 0)
        return -1;
    int top = lua_gettop(L);
    /* Only the [array, map] convention is reshaped; anything else (another
     * producer's payload) is passed through untouched. */
    if (lua_type(L, top) != LUA_TTABLE || lua_rawlen(L, top) != 2)
        return 0;
    lua_rawgeti(L, top, 1);
    lua_rawgeti(L, top, 2);
    if (lua_type(L, -2) != LUA_TTABLE || lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 2);
        return 0;
    }
    /* stack: payload, pos, kw -> build into kw (a fresh table of ours). */
    size_t n = lua_rawlen(L, -2);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, (int)i);
        lua_rawseti(L, -2, (int)i);
    }
    lua_replace(L, top);
    lua_pop(L, 1);
    return 0;
}
