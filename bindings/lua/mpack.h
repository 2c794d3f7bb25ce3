/* mpack.h -- Lua values <-> msgpack, written for runq.core.
 *
 * Encoding never raises a Lua error (it reports through `err`) so the
 * caller can free its buffer on every path; decoding raises only on memory
 * errors from Lua itself. */
#ifndef RUNQ_LUA_MPACK_H
#define RUNQ_LUA_MPACK_H

#include <stddef.h>

#include "compat.h"

typedef struct rq_buf {
    char *p;
    size_t len;
    size_t cap;
} rq_buf;

#define RQ_ERR_SIZE 256

void rq_buf_free(rq_buf *b);

/* Append the value at `idx` to b. 0 on success, -1 with err set. Tables
 * whose keys are exactly 1..n become arrays, other tables maps (an empty
 * table is an empty map); functions, userdata, threads and cycles are
 * errors. */
int rq_mp_encode(lua_State *L, int idx, rq_buf *b, char err[RQ_ERR_SIZE]);

/* The runq argument convention: [positional_array, kwargs_map]. The array
 * part (1..#t) of the table at idx is positional, every other key a kwarg.
 * nil or an absent value encode as [[], {}]. */
int rq_mp_encode_args(lua_State *L, int idx, rq_buf *b, char err[RQ_ERR_SIZE]);

/* Push the single msgpack object in buf[0..len). 0, or -1 with err set and
 * nothing pushed. Trailing bytes are an error. */
int rq_mp_decode(lua_State *L, const char *buf, size_t len, char err[RQ_ERR_SIZE]);

/* Push a table built from [positional, kwargs]: positional values at 1..n,
 * kwargs under their keys. Anything else decodes as a plain value. */
int rq_mp_decode_args(lua_State *L, const char *buf, size_t len,
                      char err[RQ_ERR_SIZE]);

#endif
