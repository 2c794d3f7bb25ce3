/* runq_lua.c -- runq.core, the C half of the Lua binding.
 *
 * Handles:
 *   runq.client  an engine client plus the Lua handlers of its tasks
 *   runq.worker  a PULL-mode worker: jobs are taken with runq_worker_next
 *                and handlers run on the calling Lua thread, so the engine
 *                never touches a lua_State from one of its threads
 *   runq.job     a job held by the worker while its handler runs
 *   runq.retry   the value a handler returns (or raises) to ask for a retry
 *
 * The engine objects live in small refcounted boxes outside Lua so the
 * order in which lua_close() runs finalizers cannot free a client before
 * the workers and jobs that still use it.
 *
 * Errors: every method returns nil, message, code_name on failure; the
 * raising variants are in lua/runq/init.lua. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"        /* rq_id_new, rq_fnv1a64: the engine's own */
#include "compat.h"
#include "mpack.h"
#include "redis_scripts.h" /* generated: the embedded Redis server scripts */
#include "runq.h"

#if defined(__GNUC__)
#define RUNQ_LUA_EXPORT __attribute__((visibility("default")))
#else
#define RUNQ_LUA_EXPORT
#endif

#define MT_CLIENT "runq.client"
#define MT_WORKER "runq.worker"
#define MT_JOB "runq.job"
#define MT_RETRY "runq.retry"

/* ---------------------------------------------------------------- */
/* Boxes                                                             */
/* ---------------------------------------------------------------- */

typedef struct handler_ref {
    char *name;
    int ref; /* registry ref to the Lua function */
} handler_ref;

typedef struct cl_box {
    runq_client *c;
    int refs;        /* the Lua userdata + every worker box */
    handler_ref *handlers;
    size_t nhandlers;
    /* Hooks (engineer C's block): registry refs of the Lua functions, per
     * kind (enqueue, before, after); an engine hook per kind, added with
     * the first Lua hook of that kind (c_hook). */
    int *hooks[3];
    size_t nhooks[3];
    int hooks_added; /* bit 1 << kind: its engine hook is added */
} cl_box;

typedef struct wk_box {
    runq_worker *w;
    cl_box *cl;
    int refs;        /* the Lua userdata + every live job */
    int stop;        /* stop requested (possibly from inside a handler) */
    int stop_sent;   /* runq_worker_stop has been called */
    int in_handler;  /* a Lua handler is running on this worker */
} wk_box;

typedef struct cl_ud { cl_box *box; } cl_ud;
typedef struct wk_ud { wk_box *box; int client_ref; } wk_ud;
typedef struct job_ud { runq_job *job; wk_box *wk; int in_handler; } job_ud;
typedef struct retry_ud { int64_t delay_ms; } retry_ud;

static void cl_unref(cl_box *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    runq_client_close(b->c);
    free(b->handlers);
    for (int k = 0; k < 3; k++)
        free(b->hooks[k]);
    free(b);
}

static void wk_unref(wk_box *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    runq_worker_free(b->w);
    cl_unref(b->cl);
    free(b);
}

/* ---------------------------------------------------------------- */
/* Helpers                                                           */
/* ---------------------------------------------------------------- */

static const char *code_name(int code)
{
    switch (code) {
    case RUNQ_EINVAL: return "EINVAL";
    case RUNQ_ENOMEM: return "ENOMEM";
    case RUNQ_EURL: return "EURL";
    case RUNQ_ENOTASK: return "ENOTASK";
    case RUNQ_ETOOBIG: return "ETOOBIG";
    case RUNQ_EDUPLICATE: return "EDUPLICATE";
    case RUNQ_EFULL: return "EFULL";
    case RUNQ_ETIMEOUT: return "ETIMEOUT";
    case RUNQ_ESTALE: return "ESTALE";
    case RUNQ_ECLOSED: return "ECLOSED";
    case RUNQ_EIO: return "EIO";
    case RUNQ_EDURABILITY: return "EDURABILITY";
    case RUNQ_ENOTFOUND: return "ENOTFOUND";
    case RUNQ_EPROTO: return "EPROTO";
    case RUNQ_ESTATE: return "ESTATE";
    default: return "EUNKNOWN";
    }
}

/* nil, "strerror: detail", "ECODE" */
static int push_rq_error(lua_State *L, int code)
{
    const char *detail = runq_error_last();
    lua_pushnil(L);
    if (detail != NULL && detail[0] != '\0')
        lua_pushfstring(L, "%s: %s", runq_strerror(code), detail);
    else
        lua_pushstring(L, runq_strerror(code));
    lua_pushstring(L, code_name(code));
    return 3;
}

static int push_msg_error(lua_State *L, const char *msg, const char *code)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

/* Seconds (Lua numbers) to milliseconds, rounded. */
static int64_t secs_to_ms(lua_Number s)
{
    return (int64_t)llround((double)s * 1000.0);
}

/* Option readers: field of the table at idx (0 means "no table"). Each
 * returns 0 when absent, 1 when read, -1 on a type error (message pushed
 * through errbuf). */
static int opt_field(lua_State *L, int idx, const char *name, int type,
                     char err[RQ_ERR_SIZE])
{
    if (idx == 0)
        return 0;
    lua_getfield(L, idx, name);
    int t = lua_type(L, -1);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != type) {
        snprintf(err, RQ_ERR_SIZE, "option '%s' must be a %s (got %s)", name,
                 lua_typename(L, type), luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 1; /* value left on the stack */
}

static int opt_secs(lua_State *L, int idx, const char *name, int64_t *out,
                    char err[RQ_ERR_SIZE])
{
    int r = opt_field(L, idx, name, LUA_TNUMBER, err);
    if (r == 1) {
        lua_Number v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (!(v >= 0) || v > 9e15) {
            snprintf(err, RQ_ERR_SIZE, "option '%s' must be a non-negative number of seconds", name);
            return -1;
        }
        *out = secs_to_ms(v);
    }
    return r;
}

static int opt_int(lua_State *L, int idx, const char *name, long long lo,
                   long long hi, long long *out, char err[RQ_ERR_SIZE])
{
    int r = opt_field(L, idx, name, LUA_TNUMBER, err);
    if (r == 1) {
        int ok = lua_isinteger(L, -1);
        long long v = ok ? RQ_TOINT64(L, -1) : 0;
        lua_pop(L, 1);
        if (!ok || v < lo || v > hi) {
            snprintf(err, RQ_ERR_SIZE, "option '%s' must be an integer in [%lld, %lld]",
                     name, lo, hi);
            return -1;
        }
        *out = v;
    }
    return r;
}

static int opt_num(lua_State *L, int idx, const char *name, double *out,
                   char err[RQ_ERR_SIZE])
{
    int r = opt_field(L, idx, name, LUA_TNUMBER, err);
    if (r == 1) {
        *out = (double)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return r;
}

/* String options stay on the Lua stack (so the pointer stays valid) until
 * the caller's function returns. */
static int opt_str(lua_State *L, int idx, const char *name, const char **out,
                   char err[RQ_ERR_SIZE])
{
    int r = opt_field(L, idx, name, LUA_TSTRING, err);
    if (r == 1)
        *out = lua_tostring(L, -1);
    return r;
}

static int opt_table_index(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    return idx;
}

/* ---------------------------------------------------------------- */
/* Hooks and metadata                                                */
/* ---------------------------------------------------------------- */

/* Engine hooks call Lua only from inside a call this binding makes on the
 * Lua thread (enqueue, run_once): the binding sets these thread-locals
 * around such calls, and the trampolines do nothing when they are not set
 * or name another client. So a hook fired on any other thread (a worker's
 * periodic scheduler, the lease keeper) or during a GC finalizer never
 * touches a lua_State; Lua hooks run on the state that made the call. */
static _Thread_local lua_State *hook_L;
static _Thread_local cl_box *hook_box;

#define HOOKS_ON(L, b)                     \
    lua_State *hook_prev_L = hook_L;       \
    cl_box *hook_prev_box = hook_box;      \
    hook_L = (L);                          \
    hook_box = (b)
#define HOOKS_OFF()                        \
    do {                                   \
        hook_L = hook_prev_L;              \
        hook_box = hook_prev_box;          \
    } while (0)

enum { HOOK_ENQUEUE, HOOK_BEFORE, HOOK_AFTER };
static const char *const hook_kinds[] = { "before_enqueue", "before_process", "after_process", NULL };
static const char *const outcome_names[] = { "lost", "acked", "retried", "dead", "released", "lost" };

static int handler_msgh(lua_State *L);

/* The job's metadata as a new table. */
static void push_meta(lua_State *L, const runq_job *j)
{
    lua_newtable(L);
    for (size_t i = 0; i < runq_job_meta_count(j); i++) {
        const char *k, *v;
        runq_job_meta_at(j, i, &k, &v);
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

/* Run the Lua hooks of one kind on the job. before_enqueue: the first
 * error refuses the job (its message becomes the job's error). Others:
 * errors are reported on stderr and do not change the outcome. */
static int run_lua_hooks(cl_box *b, int kind, runq_job *job, const runq_process_info *info)
{
    lua_State *L = hook_L;
    if (L == NULL || hook_box != b)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < b->nhooks[kind] && rc == 0; i++) {
        lua_pushcfunction(L, handler_msgh);
        int mh = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, b->hooks[kind][i]);
        /* The job is lent for the call, like a handler's job. */
        job_ud *ud = lua_newuserdata(L, sizeof *ud);
        ud->job = job;
        ud->wk = NULL;
        ud->in_handler = 1;
        luaL_setmetatable(L, MT_JOB);
        lua_pushvalue(L, -1);
        int keep = luaL_ref(L, LUA_REGISTRYINDEX);
        int nargs = 1;
        if (kind == HOOK_AFTER) {
            int o = (int)info->outcome;
            lua_pushstring(L, outcome_names[o >= 1 && o <= 5 ? o : 0]);
            if (info->error != NULL) lua_pushstring(L, info->error); else lua_pushnil(L);
            lua_pushnumber(L, (lua_Number)info->duration_us / 1e6);
            nargs = 4;
        }
        int st = lua_pcall(L, nargs, 0, mh);
        lua_rawgeti(L, LUA_REGISTRYINDEX, keep);
        ((job_ud *)lua_touserdata(L, -1))->job = NULL; /* cut off: the engine owns it */
        lua_pop(L, 1);
        luaL_unref(L, LUA_REGISTRYINDEX, keep);
        if (st != 0) {
            const char *msg = lua_tostring(L, -1);
            if (kind == HOOK_ENQUEUE) {
                runq_job_set_error(job, msg != NULL ? msg : "a before_enqueue hook failed");
                rc = RUNQ_EINVAL;
            } else {
                fprintf(stderr, "runq: %s hook failed for job %s: %s\n", hook_kinds[kind],
                        runq_job_id(job), msg != NULL ? msg : "(no message)");
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* the message handler */
    }
    return rc;
}

static int hook_enqueue(runq_job *job, void *ud) { return run_lua_hooks(ud, HOOK_ENQUEUE, job, NULL); }
static void hook_before(runq_job *job, void *ud) { run_lua_hooks(ud, HOOK_BEFORE, job, NULL); }
static void hook_after(runq_job *job, const runq_process_info *info, void *ud)
{
    run_lua_hooks(ud, HOOK_AFTER, job, info);
}

/* client:hook(kind, fn): kind is "before_enqueue", "before_process" or
 * "after_process"; hooks of a kind run in the order added. */
static int c_hook(lua_State *L)
{
    cl_ud *cu = luaL_checkudata(L, 1, MT_CLIENT);
    if (cu->box == NULL)
        return luaL_error(L, "runq client is closed");
    cl_box *b = cu->box;
    int kind = luaL_checkoption(L, 2, NULL, hook_kinds);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    /* One engine hook per kind, added with the first Lua hook of that kind:
     * an after_process hook costs async acks (the engine then acks in
     * run_once), so it is only there when a Lua after_process hook is. */
    if (!(b->hooks_added & (1 << kind))) {
        runq_hooks h = RUNQ_HOOKS_INIT;
        if (kind == HOOK_ENQUEUE)
            h.before_enqueue = hook_enqueue;
        else if (kind == HOOK_BEFORE)
            h.before_process = hook_before;
        else
            h.after_process = hook_after;
        h.userdata = b;
        int rc = runq_client_add_hooks(b->c, &h);
        if (rc != 0)
            return push_rq_error(L, rc);
        b->hooks_added |= 1 << kind;
    }
    int *nh = realloc(b->hooks[kind], (b->nhooks[kind] + 1) * sizeof *nh);
    if (nh == NULL)
        return push_msg_error(L, "out of memory", "ENOMEM");
    b->hooks[kind] = nh;
    lua_pushvalue(L, 3);
    nh[b->nhooks[kind]++] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

/* The `meta` enqueue option: a table of string keys and values. The table
 * stays on the stack, so the strings outlive the enqueue call. *out is
 * malloc'd (the caller frees it). */
static int read_meta(lua_State *L, int o, runq_enqueue_options *e, runq_meta_entry **out,
                     char err[RQ_ERR_SIZE])
{
    *out = NULL;
    if (o == 0)
        return 0;
    lua_getfield(L, o, "meta");
    if (lua_isnil(L, -1))
        return 0;
    if (!lua_istable(L, -1)) {
        snprintf(err, RQ_ERR_SIZE, "option 'meta' must be a table of strings");
        return -1;
    }
    int t = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, t) != 0; lua_pop(L, 1))
        n++;
    *out = calloc(n ? n : 1, sizeof **out);
    if (*out == NULL) {
        snprintf(err, RQ_ERR_SIZE, "out of memory");
        return -1;
    }
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, t) != 0; lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            snprintf(err, RQ_ERR_SIZE, "option 'meta' must map strings to strings");
            return -1;
        }
        (*out)[i].key = lua_tostring(L, -2);
        (*out)[i++].value = lua_tostring(L, -1);
    }
    e->meta = *out;
    e->nmeta = n;
    return 0;
}

/* ---------------------------------------------------------------- */
/* Module functions                                                  */
/* ---------------------------------------------------------------- */

static int l_open(lua_State *L)
{
    const char *url = luaL_optstring(L, 1, "memory://");
    int o = opt_table_index(L, 2);
    char err[RQ_ERR_SIZE];
    runq_client_options copts = RUNQ_CLIENT_OPTIONS_INIT;
    long long iv = 0;
    int64_t ms = 0;
    int r;
    if ((r = opt_int(L, o, "max_payload", 1, INT32_MAX, &iv, err)) < 0) goto bad;
    if (r) copts.max_payload = (size_t)iv;
    if ((r = opt_secs(L, o, "connect_timeout", &ms, err)) < 0) goto bad;
    if (r) copts.connect_timeout_ms = (int)ms;
    if ((r = opt_secs(L, o, "command_timeout", &ms, err)) < 0) goto bad;
    if (r) copts.command_timeout_ms = (int)ms;
    if ((r = opt_secs(L, o, "result_ttl", &ms, err)) < 0) goto bad;
    if (r) copts.result_ttl_ms = ms ? ms : RUNQ_RESULT_TTL_NONE; /* 0: keep nothing */

    cl_box *box = calloc(1, sizeof *box);
    if (box == NULL)
        return push_msg_error(L, "out of memory", "ENOMEM");
    int rc = runq_client_open(&box->c, url, &copts);
    if (rc != 0) {
        free(box);
        return push_rq_error(L, rc);
    }
    box->refs = 1;
    cl_ud *ud = lua_newuserdata(L, sizeof *ud);
    ud->box = box;
    luaL_setmetatable(L, MT_CLIENT);
    return 1;
bad:
    return push_msg_error(L, err, "EINVAL");
}

static int l_pack(lua_State *L)
{
    luaL_checkany(L, 1);
    rq_buf b = { 0 };
    char err[RQ_ERR_SIZE];
    int rc = lua_toboolean(L, 2) ? rq_mp_encode_args(L, 1, &b, err)
                                 : rq_mp_encode(L, 1, &b, err);
    if (rc != 0) {
        rq_buf_free(&b);
        return push_msg_error(L, err, "EINVAL");
    }
    lua_pushlstring(L, b.p, b.len);
    rq_buf_free(&b);
    return 1;
}

static int l_unpack(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[RQ_ERR_SIZE];
    int rc = lua_toboolean(L, 2) ? rq_mp_decode_args(L, s, n, err)
                                 : rq_mp_decode(L, s, n, err);
    if (rc != 0)
        return push_msg_error(L, err, "EPROTO");
    return 1;
}

static int l_hash(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rq_fnv1a64(s, n));
    lua_pushstring(L, hex);
    return 1;
}

static int l_retry(lua_State *L)
{
    lua_Number d = luaL_optnumber(L, 1, -1);
    retry_ud *r = lua_newuserdata(L, sizeof *r);
    r->delay_ms = d < 0 ? -1 : secs_to_ms(d);
    luaL_setmetatable(L, MT_RETRY);
    return 1;
}

static int l_is_retry(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, MT_RETRY) != NULL);
    return 1;
}

static int retry_tostring(lua_State *L)
{
    retry_ud *r = luaL_checkudata(L, 1, MT_RETRY);
    lua_pushfstring(L, "runq.retry(%f)", (double)r->delay_ms / 1000.0);
    return 1;
}

/* core.new_id() -> a fresh job id, made exactly as the engine makes them
 * (used by the OpenResty producer, which writes jobs itself). */
static int l_new_id(lua_State *L)
{
    char id[RUNQ_ID_SIZE];
    rq_id_new(id);
    lua_pushstring(L, id);
    return 1;
}

/* core.script(name) -> the source of the Redis server script `name`, byte
 * for byte what the C backend loads, so EVALSHA hashes agree. */
static int l_script(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (size_t i = 0; i < rq_script_count; i++) {
        if (strcmp(rq_script_sources[i].name, name) == 0) {
            lua_pushlstring(L, rq_script_sources[i].text, rq_script_sources[i].len);
            return 1;
        }
    }
    return push_msg_error(L, "no such server script", "EINVAL");
}

static int l_version(lua_State *L)
{
    lua_pushstring(L, runq_version_string());
    lua_pushinteger(L, runq_version());
    return 2;
}

/* ---------------------------------------------------------------- */
/* Client                                                            */
/* ---------------------------------------------------------------- */

static cl_box *check_client(lua_State *L, int idx)
{
    cl_ud *ud = luaL_checkudata(L, idx, MT_CLIENT);
    if (ud->box == NULL)
        luaL_error(L, "runq client is closed");
    return ud->box;
}

static handler_ref *find_handler(cl_box *b, const char *name)
{
    for (size_t i = 0; i < b->nhandlers; i++)
        if (strcmp(b->handlers[i].name, name) == 0)
            return &b->handlers[i];
    return NULL;
}

static void release_handlers(lua_State *L, cl_box *b)
{
    for (size_t i = 0; i < b->nhandlers; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, b->handlers[i].ref);
        free(b->handlers[i].name);
    }
    b->nhandlers = 0;
    /* Hooks too: the engine may still call them for a worker that outlives
     * the client userdata; with no refs left they do nothing. */
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < b->nhooks[k]; i++)
            luaL_unref(L, LUA_REGISTRYINDEX, b->hooks[k][i]);
        b->nhooks[k] = 0;
    }
}

static int c_gc(lua_State *L)
{
    cl_ud *ud = luaL_checkudata(L, 1, MT_CLIENT);
    if (ud->box != NULL) {
        release_handlers(L, ud->box);
        cl_unref(ud->box);
        ud->box = NULL;
    }
    return 0;
}

/* Explicit close refuses while workers use the client: closing would drop
 * the handlers they dispatch to. */
static int c_close(lua_State *L)
{
    cl_ud *ud = luaL_checkudata(L, 1, MT_CLIENT);
    if (ud->box != NULL && ud->box->refs > 1)
        return push_msg_error(L, "close the workers of this client first", "ESTATE");
    if (ud->box != NULL) {
        release_handlers(L, ud->box);
        cl_unref(ud->box);
        ud->box = NULL;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int c_backend(lua_State *L)
{
    lua_pushstring(L, runq_client_backend(check_client(L, 1)->c));
    return 1;
}

/* client:task(name, handler_or_nil, opts) */
static int c_task(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *name = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    int o = opt_table_index(L, 4);
    char err[RQ_ERR_SIZE];
    runq_task_options t = RUNQ_TASK_OPTIONS_INIT;
    long long iv = 0;
    int64_t ms = 0;
    double d = 0;
    int r;
    if ((r = opt_str(L, o, "queue", &t.queue, err)) < 0) goto bad;
    if ((r = opt_int(L, o, "max_retries", 0, INT32_MAX, &iv, err)) < 0) goto bad;
    if (r) t.max_retries = (int)iv;
    if ((r = opt_secs(L, o, "backoff_min", &ms, err)) < 0) goto bad;
    if (r) t.backoff_min_ms = ms;
    if ((r = opt_secs(L, o, "backoff_max", &ms, err)) < 0) goto bad;
    if (r) t.backoff_max_ms = ms;
    if ((r = opt_num(L, o, "backoff_factor", &d, err)) < 0) goto bad;
    if (r) t.backoff_factor = d;
    if ((r = opt_num(L, o, "backoff_jitter", &d, err)) < 0) goto bad;
    if (r) t.backoff_jitter = d;
    if ((r = opt_secs(L, o, "timeout", &ms, err)) < 0) goto bad;
    if (r) t.timeout_ms = ms;
    if ((r = opt_secs(L, o, "unique_ttl", &ms, err)) < 0) goto bad;
    if (r) t.unique_ttl_ms = ms;

    /* The engine never calls back into Lua: handler stays NULL and the
     * worker dispatches in pull mode. */
    int rc = runq_task_register(NULL, b->c, name, &t);
    if (rc != 0)
        return push_rq_error(L, rc);

    handler_ref *h = find_handler(b, name);
    if (h == NULL && !lua_isnoneornil(L, 3)) {
        handler_ref *nh = realloc(b->handlers, (b->nhandlers + 1) * sizeof *nh);
        if (nh == NULL)
            return push_msg_error(L, "out of memory", "ENOMEM");
        b->handlers = nh;
        h = &nh[b->nhandlers];
        h->name = strdup(name);
        if (h->name == NULL)
            return push_msg_error(L, "out of memory", "ENOMEM");
        h->ref = LUA_NOREF;
        b->nhandlers++;
    }
    if (h != NULL) {
        /* Replacing a handler unpins the old function. */
        luaL_unref(L, LUA_REGISTRYINDEX, h->ref);
        h->ref = LUA_NOREF;
        if (!lua_isnoneornil(L, 3)) {
            lua_pushvalue(L, 3);
            h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
bad:
    return push_msg_error(L, err, "EINVAL");
}

/* Read enqueue options; string fields stay referenced from the stack. */
static int read_enqueue_opts(lua_State *L, int o, runq_enqueue_options *e,
                             int64_t *once_ms, char err[RQ_ERR_SIZE])
{
    long long iv = 0;
    int64_t ms = 0;
    int r;
    if (opt_str(L, o, "queue", &e->queue, err) < 0) return -1;
    if ((r = opt_secs(L, o, "delay", &ms, err)) < 0) return -1;
    if (r) e->delay_ms = ms;
    if ((r = opt_secs(L, o, "eta", &ms, err)) < 0) return -1;
    if (r) e->eta_ms = ms;
    if ((r = opt_int(L, o, "priority", INT32_MIN, INT32_MAX, &iv, err)) < 0) return -1;
    if (r) e->priority = (int32_t)iv;
    if ((r = opt_int(L, o, "max_retries", 0, INT32_MAX, &iv, err)) < 0) return -1;
    if (r) e->max_retries = (int)iv;
    if ((r = opt_secs(L, o, "timeout", &ms, err)) < 0) return -1;
    if (r) e->timeout_ms = ms;
    if ((r = opt_secs(L, o, "ttl", &ms, err)) < 0) return -1;
    if (r) e->ttl_ms = ms;
    if ((r = opt_secs(L, o, "deadline", &ms, err)) < 0) return -1;
    if (r) e->deadline_ms = ms;
    if (opt_str(L, o, "unique_key", &e->unique_key, err) < 0) return -1;
    if ((r = opt_secs(L, o, "unique_ttl", &ms, err)) < 0) return -1;
    if (r) e->unique_ttl_ms = ms;
    if ((r = opt_int(L, o, "replicate", 0, 64, &iv, err)) < 0) return -1;
    if (r) e->replicate = (int)iv;
    if ((r = opt_secs(L, o, "replicate_timeout", &ms, err)) < 0) return -1;
    if (r) e->replicate_timeout_ms = (int)ms;
    if ((r = opt_secs(L, o, "once_in", &ms, err)) < 0) return -1;
    *once_ms = r ? ms : 0;
    if (r && ms <= 0) {
        snprintf(err, RQ_ERR_SIZE, "option 'once_in' must be positive");
        return -1;
    }
    if (*once_ms > 0 && e->unique_key != NULL) {
        snprintf(err, RQ_ERR_SIZE, "options 'once_in' and 'unique_key' are exclusive");
        return -1;
    }
    /* Per-key interval limit and unique-until-done (the engine checks that
     * they come together). */
    if (opt_str(L, o, "rate_key", &e->rate_key, err) < 0) return -1;
    if ((r = opt_secs(L, o, "rate_interval", &ms, err)) < 0) return -1;
    if (r) e->rate_interval_ms = ms;
    if ((r = opt_field(L, o, "unique_until_done", LUA_TBOOLEAN, err)) < 0) return -1;
    if (r) {
        e->unique_until_done = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    return 0;
}

/* client:enqueue(task, args, opts) -> id | nil, err, code[, existing_id] */
static int c_enqueue(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *task = luaL_checkstring(L, 2);
    int o = opt_table_index(L, 4);
    char err[RQ_ERR_SIZE];
    runq_enqueue_options e = RUNQ_ENQUEUE_OPTIONS_INIT;
    int64_t once_ms = 0;
    if (read_enqueue_opts(L, o, &e, &once_ms, err) != 0)
        return push_msg_error(L, err, "EINVAL");
    runq_meta_entry *meta = NULL;
    if (read_meta(L, o, &e, &meta, err) != 0) {
        free(meta);
        return push_msg_error(L, err, "EINVAL");
    }

    rq_buf buf = { 0 };
    if (rq_mp_encode_args(L, 3, &buf, err) != 0) {
        rq_buf_free(&buf);
        free(meta);
        return push_msg_error(L, err, "EINVAL");
    }
    /* once_in: the engine derives the unique key (docs/protocol.md). */
    e.once_in_ms = once_ms;
    char id[RUNQ_ID_SIZE] = { 0 };
    HOOKS_ON(L, b);
    int rc = runq_enqueue(b->c, id, task, buf.p, buf.len, &e);
    HOOKS_OFF();
    rq_buf_free(&buf);
    free(meta);
    if (rc != 0) {
        int n = push_rq_error(L, rc);
        if (rc == RUNQ_EDUPLICATE && id[0] != '\0') {
            lua_pushstring(L, id);
            n++;
        }
        return n;
    }
    lua_pushstring(L, id);
    return 1;
}

/* Per-item storage of client:enqueue_many (freed together). */
typedef struct {
    runq_enqueue_item *items;
    runq_enqueue_options *opts;
    rq_buf *bufs;
    runq_meta_entry **metas;
    size_t n;
} batch_mem;

static void batch_free(batch_mem *m)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->bufs != NULL)
            rq_buf_free(&m->bufs[i]);
        if (m->metas != NULL)
            free(m->metas[i]);
    }
    free(m->items);
    free(m->opts);
    free(m->bufs);
    free(m->metas);
}

/* Read item i ({task, args, opts}, at the stack top) into m. The strings it
 * points to stay referenced by the items table (argument 2). */
static int read_batch_item(lua_State *L, batch_mem *m, size_t i, char err[RQ_ERR_SIZE])
{
    int it = lua_gettop(L);
    if (!lua_istable(L, it)) {
        snprintf(err, RQ_ERR_SIZE, "item %zu must be a table {task, args, opts}", i + 1);
        return -1;
    }
    lua_rawgeti(L, it, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
        snprintf(err, RQ_ERR_SIZE, "item %zu: task name must be a string", i + 1);
        return -1;
    }
    m->items[i].task = lua_tostring(L, -1);
    lua_rawgeti(L, it, 2);
    char detail[RQ_ERR_SIZE];
    if (!lua_isnil(L, -1) && !lua_istable(L, -1)) {
        snprintf(err, RQ_ERR_SIZE, "item %zu: args must be a table (got %s)", i + 1,
                 luaL_typename(L, -1));
        return -1;
    }
    if (rq_mp_encode_args(L, lua_gettop(L), &m->bufs[i], detail) != 0) {
        snprintf(err, RQ_ERR_SIZE, "item %zu: %.200s", i + 1, detail);
        return -1;
    }
    lua_rawgeti(L, it, 3);
    int o = lua_gettop(L);
    if (lua_isnil(L, o))
        o = 0;
    else if (!lua_istable(L, o)) {
        snprintf(err, RQ_ERR_SIZE, "item %zu: enqueue options must be a table", i + 1);
        return -1;
    }
    runq_enqueue_options *e = &m->opts[i];
    *e = (runq_enqueue_options)RUNQ_ENQUEUE_OPTIONS_INIT;
    int64_t once_ms = 0;
    if (read_enqueue_opts(L, o, e, &once_ms, detail) != 0 ||
        read_meta(L, o, e, &m->metas[i], detail) != 0) {
        snprintf(err, RQ_ERR_SIZE, "item %zu: %.200s", i + 1, detail);
        return -1;
    }
    e->once_in_ms = once_ms;
    m->items[i].args = m->bufs[i].p;
    m->items[i].args_len = m->bufs[i].len;
    m->items[i].opts = e;
    return 0;
}

/* client:enqueue_many({ {task, args, opts}, ... }) -> ids, errs, codes |
 * nil, err, code. One round trip for the batch (runq_enqueue_many). ids[i]
 * is the new job's id, or false when item i failed; then errs[i] and
 * codes[i] say why (EDUPLICATE: errs[i] names the job holding the key).
 * errs and codes are nil when every item was enqueued. A malformed item
 * (not a table, bad task, args or option) fails the whole call with nil,
 * err, "EINVAL" and nothing is enqueued. */
static int c_enqueue_many(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = (size_t)lua_rawlen(L, 2);
    if (n > 100000)
        return push_msg_error(L, "enqueue_many takes at most 100000 items", "EINVAL");
    batch_mem m = { 0 };
    size_t cap = n ? n : 1;
    m.items = calloc(cap, sizeof *m.items);
    m.opts = calloc(cap, sizeof *m.opts);
    m.bufs = calloc(cap, sizeof *m.bufs);
    m.metas = calloc(cap, sizeof *m.metas);
    if (m.items == NULL || m.opts == NULL || m.bufs == NULL || m.metas == NULL) {
        batch_free(&m);
        return push_msg_error(L, "out of memory", "ENOMEM");
    }
    char err[RQ_ERR_SIZE];
    int base = lua_gettop(L);
    for (size_t i = 0; i < n; i++, m.n++) {
        lua_rawgeti(L, 2, (lua_Integer)(i + 1));
        int bad = read_batch_item(L, &m, i, err);
        lua_settop(L, base);
        if (bad) {
            m.n++;
            batch_free(&m);
            return push_msg_error(L, err, "EINVAL");
        }
    }
    int rc = 0;
    if (n > 0) {
        HOOKS_ON(L, b);
        rc = runq_enqueue_many(b->c, m.items, n);
        HOOKS_OFF();
    }
    lua_createtable(L, (int)n, 0);
    int ids = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        if (m.items[i].result == 0)
            lua_pushstring(L, m.items[i].id);
        else
            lua_pushboolean(L, 0);
        lua_rawseti(L, ids, (lua_Integer)(i + 1));
    }
    if (rc == 0) {
        batch_free(&m);
        return 1;
    }
    lua_newtable(L);
    lua_newtable(L);
    for (size_t i = 0; i < n; i++) {
        int r = m.items[i].result;
        if (r == 0)
            continue;
        if (r == RUNQ_EDUPLICATE && m.items[i].id[0] != '\0')
            lua_pushfstring(L, "%s: job %s holds the unique key", runq_strerror(r), m.items[i].id);
        else
            lua_pushstring(L, runq_strerror(r));
        lua_rawseti(L, ids + 1, (lua_Integer)(i + 1));
        lua_pushstring(L, code_name(r));
        lua_rawseti(L, ids + 2, (lua_Integer)(i + 1));
    }
    batch_free(&m);
    return 3;
}

static const char *state_name(runq_job_state s)
{
    switch (s) {
    case RUNQ_STATE_SCHEDULED: return "scheduled";
    case RUNQ_STATE_PENDING: return "pending";
    case RUNQ_STATE_ACTIVE: return "active";
    case RUNQ_STATE_DONE: return "done";
    case RUNQ_STATE_DEAD: return "dead";
    default: return "unknown";
    }
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v == NULL)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_time(lua_State *L, const char *k, int64_t ms)
{
    if (ms == 0)
        return;
    lua_pushnumber(L, (lua_Number)ms / 1000.0);
    lua_setfield(L, -2, k);
}

/* A snapshot as a plain table (times in seconds). */
static void push_snapshot(lua_State *L, const runq_job *j)
{
    char err[RQ_ERR_SIZE];
    size_t n;
    const void *p;
    lua_newtable(L);
    set_str(L, "id", runq_job_id(j));
    set_str(L, "task", runq_job_task(j));
    set_str(L, "queue", runq_job_queue(j));
    set_str(L, "state", state_name(runq_job_state_get(j)));
    set_str(L, "unique_key", runq_job_unique_key(j));
    set_str(L, "rate_key", runq_job_rate_key(j));
    set_time(L, "rate_interval", runq_job_rate_interval(j));
    lua_pushboolean(L, runq_job_unique_until_done(j));
    lua_setfield(L, -2, "unique_until_done");
    set_str(L, "error", runq_job_error(j));
    lua_pushinteger(L, runq_job_attempt(j));
    lua_setfield(L, -2, "attempt");
    lua_pushinteger(L, runq_job_max_retries(j));
    lua_setfield(L, -2, "max_retries");
    lua_pushinteger(L, runq_job_priority(j));
    lua_setfield(L, -2, "priority");
    set_time(L, "created_at", runq_job_created_at(j));
    set_time(L, "eta", runq_job_eta(j));
    set_time(L, "deadline", runq_job_deadline(j));
    p = runq_job_args(j, &n);
    if (p != NULL && rq_mp_decode_args(L, p, n, err) == 0)
        lua_setfield(L, -2, "args");
    p = runq_job_result(j, &n);
    if (p != NULL && rq_mp_decode(L, p, n, err) == 0)
        lua_setfield(L, -2, "result");
    push_meta(L, j);
    lua_setfield(L, -2, "meta");
}

static int c_get(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *id = luaL_checkstring(L, 2);
    runq_job *j = NULL;
    int rc = runq_job_get(&j, b->c, id);
    if (rc != 0)
        return push_rq_error(L, rc);
    push_snapshot(L, j);
    runq_job_free(j);
    return 1;
}

/* client:wait(id, timeout_seconds_or_nil) -- nil waits without limit. */
static int c_wait(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *id = luaL_checkstring(L, 2);
    int tmo = lua_isnoneornil(L, 3) ? -1 : (int)secs_to_ms(luaL_checknumber(L, 3));
    runq_job *j = NULL;
    int rc = runq_job_wait(&j, b->c, id, tmo);
    if (rc != 0)
        return push_rq_error(L, rc);
    push_snapshot(L, j);
    runq_job_free(j);
    return 1;
}

static int c_stats(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *q = luaL_optstring(L, 2, "default");
    runq_queue_stats s;
    int rc = runq_queue_stats_get(&s, b->c, q);
    if (rc != 0)
        return push_rq_error(L, rc);
    lua_newtable(L);
    lua_pushnumber(L, (lua_Number)s.scheduled); lua_setfield(L, -2, "scheduled");
    lua_pushnumber(L, (lua_Number)s.pending); lua_setfield(L, -2, "pending");
    lua_pushnumber(L, (lua_Number)s.active); lua_setfield(L, -2, "active");
    lua_pushnumber(L, (lua_Number)s.dead); lua_setfield(L, -2, "dead");
    static const char *const paused[] = { "none", "manual", "auto" };
    lua_pushstring(L, paused[s.paused >= 0 && s.paused <= 2 ? s.paused : 0]);
    lua_setfield(L, -2, "paused");
    set_time(L, "paused_until", s.paused_until_ms);
    return 1;
}

/* client:pause(queue) / client:resume(queue): the engine's manual pause. */
static int c_set_paused(lua_State *L, int paused)
{
    cl_box *b = check_client(L, 1);
    const char *q = luaL_checkstring(L, 2);
    int rc = paused ? runq_queue_pause(b->c, q) : runq_queue_resume(b->c, q);
    if (rc != 0)
        return push_rq_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int c_pause(lua_State *L) { return c_set_paused(L, 1); }
static int c_resume(lua_State *L) { return c_set_paused(L, 0); }

static int c_dead(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *q = luaL_optstring(L, 2, "default");
    lua_Integer cap = luaL_optinteger(L, 3, 100);
    if (cap < 1 || cap > 100000)
        return push_msg_error(L, "cap must be in [1, 100000]", "EINVAL");
    char (*ids)[RUNQ_ID_SIZE] = calloc((size_t)cap, RUNQ_ID_SIZE);
    if (ids == NULL)
        return push_msg_error(L, "out of memory", "ENOMEM");
    size_t count = 0;
    int rc = runq_dead_list(ids, &count, b->c, q, (size_t)cap);
    if (rc != 0) {
        free(ids);
        return push_rq_error(L, rc);
    }
    lua_createtable(L, (int)count, 0);
    for (size_t i = 0; i < count; i++) {
        lua_pushstring(L, ids[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    free(ids);
    return 1;
}

static int c_retry_dead(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    int rc = runq_dead_retry(b->c, luaL_checkstring(L, 2));
    if (rc != 0)
        return push_rq_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int c_configure(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    const char *q = luaL_checkstring(L, 2);
    int o = opt_table_index(L, 3);
    char err[RQ_ERR_SIZE];
    runq_queue_options qo = RUNQ_QUEUE_OPTIONS_INIT;
    long long iv = 0;
    int r = opt_int(L, o, "max_len", 0, INT64_MAX / 2, &iv, err);
    if (r < 0)
        return push_msg_error(L, err, "EINVAL");
    if (r)
        qo.max_len = iv;
    /* Queue gates: counts are integers, periods seconds (engine checks the rest). */
    static const struct { const char *name; size_t off; int secs; } gates[] = {
        { "rate_limit", offsetof(runq_queue_options, rate_limit), 0 },
        { "rate_period", offsetof(runq_queue_options, rate_period_ms), 1 },
        { "rate_burst", offsetof(runq_queue_options, rate_burst), 0 },
        { "concurrency_limit", offsetof(runq_queue_options, concurrency_limit), 0 },
        { "pause_after_failures", offsetof(runq_queue_options, pause_after_failures), 0 },
        { "pause_min", offsetof(runq_queue_options, pause_min_ms), 1 },
        { "pause_max", offsetof(runq_queue_options, pause_max_ms), 1 },
    };
    for (size_t i = 0; i < sizeof gates / sizeof gates[0]; i++) {
        int64_t v = 0;
        if (gates[i].secs)
            r = opt_secs(L, o, gates[i].name, &v, err);
        else if ((r = opt_int(L, o, gates[i].name, 0, INT64_MAX / 2, &iv, err)) > 0)
            v = iv;
        if (r < 0)
            return push_msg_error(L, err, "EINVAL");
        if (r)
            memcpy((char *)&qo + gates[i].off, &v, sizeof v);
    }
    int rc = runq_queue_configure(b->c, q, &qo);
    if (rc != 0)
        return push_rq_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:worker{queues=..., weights=..., concurrency=..., lease=..., auto_extend=...} */
static int c_worker(lua_State *L)
{
    cl_box *b = check_client(L, 1);
    int o = opt_table_index(L, 2);
    char err[RQ_ERR_SIZE];
    runq_worker_options w = RUNQ_WORKER_OPTIONS_INIT;
    w.mode = RUNQ_WORKER_PULL;
    /* Pull mode runs one handler at a time on this thread; more held jobs
     * would only wait while their leases run down. */
    w.concurrency = 1;
    long long iv = 0;
    int64_t ms = 0;
    int r;
    const char *qs[64];
    unsigned int weights[64];
    size_t nq = 0, nw = 0;
    if (o != 0) {
        lua_getfield(L, o, "queues");
        if (lua_type(L, -1) == LUA_TSTRING) {
            qs[nq++] = lua_tostring(L, -1);
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            size_t n = lua_rawlen(L, -1);
            if (n > 64)
                return push_msg_error(L, "at most 64 queues", "EINVAL");
            for (size_t i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, (int)i);
                if (lua_type(L, -1) != LUA_TSTRING)
                    return push_msg_error(L, "queues must be strings", "EINVAL");
                qs[nq++] = lua_tostring(L, -1);
                lua_pop(L, 1); /* still referenced by the queues table */
            }
        } else if (!lua_isnil(L, -1)) {
            return push_msg_error(L, "option 'queues' must be a string or a list", "EINVAL");
        }
        lua_getfield(L, o, "weights");
        if (lua_type(L, -1) == LUA_TTABLE) {
            nw = lua_rawlen(L, -1);
            if (nw != nq)
                return push_msg_error(L, "need one weight per queue", "EINVAL");
            for (size_t i = 1; i <= nw; i++) {
                lua_rawgeti(L, -1, (int)i);
                lua_Number v = lua_tonumber(L, -1);
                lua_pop(L, 1);
                if (!(v >= 1) || v > 1e6)
                    return push_msg_error(L, "weights must be positive integers", "EINVAL");
                weights[i - 1] = (unsigned int)v;
            }
        } else if (!lua_isnil(L, -1)) {
            return push_msg_error(L, "option 'weights' must be a list", "EINVAL");
        }
    }
    if (nq > 0) {
        w.queues = qs;
        w.nqueues = nq;
    }
    if (nw > 0)
        w.weights = weights;
    if ((r = opt_int(L, o, "concurrency", 1, 1024, &iv, err)) < 0) goto bad;
    if (r) w.concurrency = (int)iv;
    if ((r = opt_secs(L, o, "lease", &ms, err)) < 0) goto bad;
    if (r) w.lease_ms = ms;
    if (o != 0) {
        lua_getfield(L, o, "auto_extend");
        if (!lua_isnil(L, -1))
            w.auto_extend = lua_toboolean(L, -1);
        lua_pop(L, 1);
        /* Acks queued to an engine thread: run_once returns "done" without
         * waiting, a lost lease shows only in stats (docs/lua.md). */
        lua_getfield(L, o, "async_ack");
        if (!lua_isnil(L, -1))
            w.async_ack = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }

    wk_box *wb = calloc(1, sizeof *wb);
    if (wb == NULL)
        return push_msg_error(L, "out of memory", "ENOMEM");
    int rc = runq_worker_create(&wb->w, b->c, &w);
    if (rc != 0) {
        free(wb);
        return push_rq_error(L, rc);
    }
    wb->cl = b;
    b->refs++;
    wb->refs = 1;
    wk_ud *ud = lua_newuserdata(L, sizeof *ud);
    ud->box = wb;
    ud->client_ref = LUA_NOREF;
    luaL_setmetatable(L, MT_WORKER);
    /* Pin the client userdata so its handlers live as long as the worker. */
    lua_pushvalue(L, 1);
    ud->client_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
bad:
    return push_msg_error(L, err, "EINVAL");
}

static int c_tostring(lua_State *L)
{
    cl_ud *ud = luaL_checkudata(L, 1, MT_CLIENT);
    if (ud->box == NULL)
        lua_pushstring(L, "runq.client (closed)");
    else
        lua_pushfstring(L, "runq.client (%s): %p", runq_client_backend(ud->box->c),
                        (void *)ud->box);
    return 1;
}

/* ---------------------------------------------------------------- */
/* Jobs (inside a handler)                                           */
/* ---------------------------------------------------------------- */

static runq_job *check_job(lua_State *L)
{
    job_ud *ud = luaL_checkudata(L, 1, MT_JOB);
    if (ud->job == NULL)
        luaL_error(L, "runq job is no longer valid (its handler returned)");
    return ud->job;
}

static void job_release(job_ud *ud)
{
    if (ud->job != NULL) {
        runq_job_free(ud->job);
        ud->job = NULL;
    }
    if (ud->wk != NULL) {
        wk_box *wk = ud->wk;
        ud->wk = NULL;
        wk_unref(wk);
    }
}

static int j_gc(lua_State *L)
{
    /* A finalizer may run inside any call: no Lua hook from here. */
    lua_State *prev_L = hook_L;
    hook_L = NULL;
    job_release(luaL_checkudata(L, 1, MT_JOB));
    hook_L = prev_L;
    return 0;
}

/* job:meta() -> a table of the job's metadata (a copy). */
static int j_meta(lua_State *L)
{
    push_meta(L, check_job(L));
    return 1;
}

/* job:set_meta(key, value_or_nil): only in a before_enqueue hook. */
static int j_set_meta(lua_State *L)
{
    runq_job *j = check_job(L);
    int rc = runq_job_meta_set(j, luaL_checkstring(L, 2), luaL_optstring(L, 3, NULL));
    if (rc != 0)
        return push_rq_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int j_id(lua_State *L) { lua_pushstring(L, runq_job_id(check_job(L))); return 1; }
static int j_task(lua_State *L) { lua_pushstring(L, runq_job_task(check_job(L))); return 1; }
static int j_queue(lua_State *L) { lua_pushstring(L, runq_job_queue(check_job(L))); return 1; }
static int j_attempt(lua_State *L) { lua_pushinteger(L, runq_job_attempt(check_job(L))); return 1; }
static int j_max_retries(lua_State *L) { lua_pushinteger(L, runq_job_max_retries(check_job(L))); return 1; }
static int j_priority(lua_State *L) { lua_pushinteger(L, runq_job_priority(check_job(L))); return 1; }
static int j_cancelled(lua_State *L) { lua_pushboolean(L, runq_job_cancelled(check_job(L))); return 1; }
static int j_unique_key(lua_State *L)
{
    const char *k = runq_job_unique_key(check_job(L));
    if (k == NULL) lua_pushnil(L); else lua_pushstring(L, k);
    return 1;
}
static int j_rate_key(lua_State *L)
{
    const char *k = runq_job_rate_key(check_job(L));
    if (k == NULL) lua_pushnil(L); else lua_pushstring(L, k);
    return 1;
}
/* Seconds, like every Lua time; leased_at: this delivery's lease time. */
static int j_rate_interval(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)runq_job_rate_interval(check_job(L)) / 1000.0);
    return 1;
}
static int j_leased_at(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)runq_job_leased_at(check_job(L)) / 1000.0);
    return 1;
}
static int j_unique_until_done(lua_State *L)
{
    lua_pushboolean(L, runq_job_unique_until_done(check_job(L)));
    return 1;
}
static int j_args(lua_State *L)
{
    size_t n;
    const void *p = runq_job_args(check_job(L), &n);
    char err[RQ_ERR_SIZE];
    if (rq_mp_decode_args(L, p, n, err) != 0)
        return push_msg_error(L, err, "EPROTO");
    return 1;
}

/* ---------------------------------------------------------------- */
/* Worker                                                            */
/* ---------------------------------------------------------------- */

static wk_box *check_worker(lua_State *L, int idx)
{
    wk_ud *ud = luaL_checkudata(L, idx, MT_WORKER);
    if (ud->box == NULL)
        luaL_error(L, "runq worker is closed");
    return ud->box;
}

/* Message handler: keep retry requests intact, add a traceback to errors. */
static int handler_msgh(lua_State *L)
{
    if (luaL_testudata(L, 1, MT_RETRY) != NULL)
        return 1;
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Settle the job according to the handler's outcome at the top of the
 * stack. *outcome names it; returns the engine's code for the settlement
 * (0, RUNQ_ESTALE when the lease was lost, or another failure). */
static int settle(lua_State *L, runq_job *job, int ok, const char **outcome)
{
    char err[RQ_ERR_SIZE];
    retry_ud *rr = luaL_testudata(L, -1, MT_RETRY);
    if (rr != NULL) {
        *outcome = "retry";
        return runq_job_fail(job, "retry requested by the handler", rr->delay_ms);
    }
    *outcome = "failed";
    if (!ok) {
        const char *msg = lua_tostring(L, -1);
        return runq_job_fail(job, msg != NULL ? msg : "handler failed", -1);
    }
    rq_buf b = { 0 };
    if (rq_mp_encode(L, -1, &b, err) != 0) {
        rq_buf_free(&b);
        char msg[RQ_ERR_SIZE + 64];
        snprintf(msg, sizeof msg, "handler result: %s", err);
        return runq_job_fail(job, msg, -1);
    }
    *outcome = "done";
    int rc = runq_job_ack(job, b.p, b.len);
    rq_buf_free(&b);
    return rc;
}

/* worker:run_once(timeout_seconds) -> outcome | false (nothing came) |
 * nil, err, code. Outcome: "done", "failed", "retry", or "stale" when the
 * lease was lost before the outcome could be recorded (the job will be
 * delivered again). Other settlement failures (e.g. EIO) are nil, err,
 * code; the job then goes back to pending or is recovered at lease expiry. */
static int w_run_once_hooked(lua_State *L);

/* Lua hooks may run inside the engine calls of run_once (before_process in
 * runq_worker_next, after_process in the settle or the free). */
static int w_run_once(lua_State *L)
{
    wk_box *wk = check_worker(L, 1);
    HOOKS_ON(L, wk->cl);
    int n = w_run_once_hooked(L);
    HOOKS_OFF();
    return n;
}

static int w_run_once_hooked(lua_State *L)
{
    wk_box *wk = check_worker(L, 1);
    lua_Number t = luaL_optnumber(L, 2, 1.0);
    int tmo = t < 0 ? -1 : (int)secs_to_ms(t);
    if (wk->stop)
        return push_msg_error(L, "worker stopped", "ECLOSED");

    /* The job userdata exists before anything can raise, so its __gc frees
     * (and thereby releases) the job on every path. */
    job_ud *ud = lua_newuserdata(L, sizeof *ud);
    ud->job = NULL;
    ud->wk = NULL;
    ud->in_handler = 0;
    luaL_setmetatable(L, MT_JOB);
    int ji = lua_gettop(L);

    runq_job *job = NULL;
    int rc = runq_worker_next(wk->w, &job, tmo);
    if (rc == RUNQ_ETIMEOUT) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (rc != 0)
        return push_rq_error(L, rc);
    ud->job = job;
    ud->wk = wk;
    wk->refs++;

    char err[RQ_ERR_SIZE];
    handler_ref *h = find_handler(wk->cl, runq_job_task(job));
    const char *outcome = "failed";
    int src;
    if (h == NULL || h->ref == LUA_NOREF) {
        char msg[RUNQ_NAME_MAX + 64];
        snprintf(msg, sizeof msg, "no Lua handler for task '%s'", runq_job_task(job));
        src = runq_job_fail(job, msg, -1);
    } else {
        lua_pushcfunction(L, handler_msgh);
        int mh = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
        size_t n;
        const void *p = runq_job_args(job, &n);
        if (rq_mp_decode_args(L, p, n, err) != 0) {
            char msg[RQ_ERR_SIZE + 32];
            snprintf(msg, sizeof msg, "bad job args: %s", err);
            src = runq_job_fail(job, msg, -1);
        } else {
            lua_pushvalue(L, ji);
            ud->in_handler = 1;
            wk->in_handler++;
            int st = lua_pcall(L, 2, 1, mh);
            wk->in_handler--;
            ud->in_handler = 0;
            src = settle(L, job, st == 0, &outcome);
        }
    }
    /* Report a failed settlement before later calls replace the detail. */
    int nret = 0;
    if (src != 0 && src != RUNQ_ESTALE)
        nret = push_rq_error(L, src);
    /* A stop requested by the handler: the job is settled, so the engine's
     * stop cannot hand it back. Done before the release below, which may
     * drop the last reference to the worker (if the handler closed it). */
    if (wk->stop && !wk->stop_sent && wk->in_handler == 0) {
        wk->stop_sent = 1;
        runq_worker_stop(wk->w, 0);
    }
    /* Settled: free it now rather than at the next GC cycle. */
    job_release(ud);
    if (nret > 0)
        return nret;
    lua_pushstring(L, src == RUNQ_ESTALE ? "stale" : outcome);
    return 1;
}

static int w_stop(lua_State *L)
{
    wk_box *wk = check_worker(L, 1);
    lua_Number g = luaL_optnumber(L, 2, 0);
    wk->stop = 1;
    /* From inside a handler the engine stop waits until the held job is
     * settled (run_once does it), so it cannot release that job. */
    if (wk->in_handler == 0 && !wk->stop_sent) {
        wk->stop_sent = 1;
        runq_worker_stop(wk->w, secs_to_ms(g));
    }
    return 0;
}

static int w_stopped(lua_State *L)
{
    lua_pushboolean(L, check_worker(L, 1)->stop);
    return 1;
}

static int w_stats(lua_State *L)
{
    wk_box *wk = check_worker(L, 1);
    runq_worker_stats s;
    runq_worker_stats_get(&s, wk->w);
    lua_newtable(L);
    lua_pushnumber(L, (lua_Number)s.processed); lua_setfield(L, -2, "processed");
    lua_pushnumber(L, (lua_Number)s.failed); lua_setfield(L, -2, "failed");
    lua_pushnumber(L, (lua_Number)s.dead); lua_setfield(L, -2, "dead");
    lua_pushnumber(L, (lua_Number)s.running); lua_setfield(L, -2, "running");
    return 1;
}

/* worker:schedule{task=..., every=seconds | cron="m h dom mon dow", args=...,
 * queue=...} -> true | nil, err, code. Before the first run_once: the
 * engine's scheduler thread enqueues each fire time once across workers;
 * it never touches this lua_State. */
static int w_schedule(lua_State *L)
{
    wk_box *wk = check_worker(L, 1);
    int o = opt_table_index(L, 2);
    if (o == 0)
        return push_msg_error(L, "schedule needs an options table", "EINVAL");
    char err[RQ_ERR_SIZE];
    runq_periodic_options p = RUNQ_PERIODIC_OPTIONS_INIT;
    int64_t every = 0;
    int r;
    if ((r = opt_str(L, o, "task", &p.task, err)) < 0) goto bad;
    if (r == 0)
        return push_msg_error(L, "schedule needs option 'task'", "EINVAL");
    if ((r = opt_secs(L, o, "every", &every, err)) < 0) goto bad;
    if (r && every == 0)
        return push_msg_error(L, "option 'every' must be > 0 seconds", "EINVAL");
    p.every_ms = every;
    if ((r = opt_str(L, o, "cron", &p.cron, err)) < 0) goto bad;
    if ((p.every_ms > 0) == (p.cron != NULL))
        return push_msg_error(L, "give exactly one of 'every' and 'cron'", "EINVAL");
    if ((r = opt_str(L, o, "queue", &p.queue, err)) < 0) goto bad;
    rq_buf buf = { 0 };
    if ((r = opt_field(L, o, "args", LUA_TTABLE, err)) < 0) goto bad;
    if (r && rq_mp_encode_args(L, lua_gettop(L), &buf, err) != 0) {
        rq_buf_free(&buf);
        goto bad;
    }
    p.args = buf.p;
    p.args_len = buf.len;
    int rc = runq_worker_schedule(wk->w, &p);
    rq_buf_free(&buf);
    if (rc != 0)
        return push_rq_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
bad:
    return push_msg_error(L, err, "EINVAL");
}

static int w_close(lua_State *L)
{
    wk_ud *ud = luaL_checkudata(L, 1, MT_WORKER);
    if (ud->box != NULL) {
        ud->box->stop = 1;
        wk_unref(ud->box);
        ud->box = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, ud->client_ref);
    ud->client_ref = LUA_NOREF;
    return 0;
}

/* ---------------------------------------------------------------- */
/* Registration                                                      */
/* ---------------------------------------------------------------- */

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction gc, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    if (gc != NULL) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
#endif
    }
    if (tostring != NULL) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

RUNQ_LUA_EXPORT int luaopen_runq_core(lua_State *L);

int luaopen_runq_core(lua_State *L)
{
    static const luaL_Reg client_m[] = {
        { "close", c_close }, { "backend", c_backend }, { "task", c_task },
        { "enqueue", c_enqueue }, { "enqueue_many", c_enqueue_many }, { "get", c_get }, { "wait", c_wait },
        { "stats", c_stats }, { "dead", c_dead }, { "retry_dead", c_retry_dead },
        { "configure", c_configure }, { "worker", c_worker },
        { "pause", c_pause }, { "resume", c_resume }, { "hook", c_hook }, { NULL, NULL }
    };
    static const luaL_Reg worker_m[] = {
        { "run_once", w_run_once }, { "stop", w_stop }, { "stopped", w_stopped },
        { "stats", w_stats }, { "close", w_close }, { "schedule", w_schedule },
        { NULL, NULL }
    };
    static const luaL_Reg job_m[] = {
        { "id", j_id }, { "task", j_task }, { "queue", j_queue },
        { "attempt", j_attempt }, { "max_retries", j_max_retries },
        { "priority", j_priority }, { "cancelled", j_cancelled },
        { "unique_key", j_unique_key }, { "args", j_args },
        { "rate_key", j_rate_key }, { "rate_interval", j_rate_interval },
        { "leased_at", j_leased_at }, { "unique_until_done", j_unique_until_done },
        { "meta", j_meta }, { "set_meta", j_set_meta },
        { NULL, NULL }
    };
    static const luaL_Reg retry_m[] = { { NULL, NULL } };
    static const luaL_Reg mod[] = {
        { "open", l_open }, { "pack", l_pack }, { "unpack", l_unpack },
        { "hash", l_hash }, { "retry", l_retry }, { "is_retry", l_is_retry },
        { "version", l_version }, { "new_id", l_new_id }, { "script", l_script },
        { NULL, NULL }
    };

    /* Refuse to run against an engine with another ABI. */
    if (runq_version() / 100 != RUNQ_VERSION_NUMBER / 100)
        return luaL_error(L, "runq.core was built for runq %s but the engine is %s",
                          RUNQ_VERSION_STRING, runq_version_string());

    new_class(L, MT_CLIENT, client_m, c_gc, c_tostring);
    new_class(L, MT_WORKER, worker_m, w_close, NULL);
    new_class(L, MT_JOB, job_m, j_gc, NULL);
    new_class(L, MT_RETRY, retry_m, NULL, retry_tostring);

    luaL_newlib(L, mod);
    lua_pushstring(L, RUNQ_VERSION_STRING);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
