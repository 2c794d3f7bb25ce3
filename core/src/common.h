/* Internal helpers shared by every engine module: allocation through the
 * user's hooks, error reporting, time, names. Not part of the public API. */
#ifndef RUNQ_COMMON_H
#define RUNQ_COMMON_H

#include "runq.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation: every engine allocation goes through these so that
 * runq_set_allocator() covers all of it. rq_calloc checks for overflow. */
void *rq_malloc(size_t size);
void *rq_calloc(size_t count, size_t size);
void *rq_realloc(void *ptr, size_t size);
void rq_free(void *ptr);
char *rq_strdup(const char *s);            /* NULL in, NULL out */
void *rq_memdup(const void *p, size_t n);  /* NULL when n == 0 */

/* Record the detail message for runq_error_last() and return `code`, so that
 * failures read `return rq_error(RUNQ_EINVAL, "queue name %s ...", name);`. */
int rq_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Forget the last error (called at the start of public entry points). */
void rq_error_clear(void);

/* Wall clock (Unix ms) and a monotonic clock (ms) for local waits. */
int64_t rq_now_ms(void);
int64_t rq_mono_ms(void);

/* FNV-1a, 64 bits: stable across platforms and languages (the once-in-period
 * key of docs/protocol.md uses it, so other languages must compute the same). */
uint64_t rq_fnv1a64(const void *data, size_t len);

/* Decimal digits of v (a '-' first for negatives) at out, which has room
 * for 21 bytes; returns how many were written (no NUL). snprintf's cost
 * showed in profiles: every script argument is a number or a key name. */
size_t rq_fmt_u64(char *out, uint64_t v);
size_t rq_fmt_i64(char *out, int64_t v);

/* Thread-safe random 64-bit value (seeded from the OS). */
uint64_t rq_random64(void);

/* Validate a task or queue name (see RUNQ_NAME_MAX). `what` names it in the
 * error message. Returns 0 or RUNQ_EINVAL with the detail set. */
int rq_name_check(const char *name, const char *what);

/* Fill id with a new time-sortable job id (RUNQ_ID_LEN chars + NUL). */
void rq_id_new(char id[RUNQ_ID_SIZE]);

/* Check that buf holds exactly one well-formed msgpack object. */
int rq_msgpack_check(const void *buf, size_t len, const char *what);

#endif
