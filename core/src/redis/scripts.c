/* Running server scripts by SHA with a NOSCRIPT fallback; see scripts.h. */
#include "redis/scripts.h"

#include "redis/sha1.h"
#include "redis_scripts.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

/* SHA-1 names are computed once, lazily, from the embedded sources. */
static char (*script_sha)[41];
static uv_once_t sha_once = UV_ONCE_INIT;

static void sha_init(void) {
    /* A static table: it lives as long as the process and is never freed,
     * so it stays out of the user's allocator hooks. */
    static char table[64][41];
    script_sha = table;
    for (size_t i = 0; i < rq_script_count && i < 64; i++)
        rq_sha1_hex(table[i], rq_script_sources[i].text, rq_script_sources[i].len);
}

int rq_script_find(const char *name) {
    uv_once(&sha_once, sha_init);
    for (size_t i = 0; i < rq_script_count && i < 64; i++)
        if (strcmp(rq_script_sources[i].name, name) == 0) return (int)i;
    return -1;
}

void rq_call_init(rq_call *call, int script) {
    memset(call, 0, sizeof *call);
    call->script = script;
}

void rq_call_key(rq_call *call, const char *key) {
    rq_resp_arg(&call->args, key, strlen(key));
    if (!call->args.oom) call->nkeys++;
}
void rq_call_str(rq_call *call, const char *s) { rq_resp_arg(&call->args, s ? s : "", s ? strlen(s) : 0); }
void rq_call_bin(rq_call *call, const void *p, size_t n) { rq_resp_arg(&call->args, p ? p : "", p ? n : 0); }
void rq_call_cat(rq_call *call, size_t n, const void *const *parts, const size_t *lens) {
    rq_resp_argn(&call->args, n, parts, lens);
}
void rq_call_i64(rq_call *call, int64_t v) {
    char b[24];
    rq_resp_arg(&call->args, b, rq_fmt_i64(b, v));
}
void rq_call_u64(rq_call *call, uint64_t v) {
    char b[24];
    rq_resp_arg(&call->args, b, rq_fmt_u64(b, v));
}

void rq_call_clear(rq_call *call) {
    rq_resp_clear(&call->args);
    rq_reply_free(call->reply);
    memset(call, 0, sizeof *call);
}

/* EVALSHA sha|EVAL text, numkeys, keys..., args... */
static int add_call(rq_req *req, const rq_call *call, bool by_text) {
    const rq_script_source *src = &rq_script_sources[call->script];
    char nk[24];
    size_t nkl = rq_fmt_i64(nk, call->nkeys);
    const char *argv[3] = {by_text ? "EVAL" : "EVALSHA", by_text ? src->text : script_sha[call->script],
                           nk};
    size_t lens[3] = {strlen(argv[0]), by_text ? src->len : 40, nkl};
    return rq_req_add(req, 3, argv, lens, &call->args);
}

static bool is_noscript(const rq_reply *r) {
    return r && r->type == RQ_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static int calls_run(rq_conn *conn, rq_call_head *head, rq_call *calls, size_t n, int flags,
                     int timeout_ms, int wait_replicas, int wait_timeout_ms, long long *acked) {
    uv_once(&sha_once, sha_init);
    for (size_t i = 0; i < n; i++)
        if (calls[i].args.oom) return rq_error(RUNQ_ENOMEM, "out of memory building a script call");
    /* Pass 0 by SHA, behind the head command if any; pass 1 by text for the
     * calls the server did not know, on their own (the head ran). */
    for (int pass = 0; pass < 2; pass++) {
        bool with_head = head && pass == 0;
        /* The head's flags (a blocking, interruptible wait) are not the
         * by-text pass's. */
        rq_req *req = rq_req_new(n + 2, head && pass == 1 ? 0 : flags);
        if (!req) return rq_error(RUNQ_ENOMEM, "out of memory building a redis request");
        size_t *which = rq_malloc((n ? n : 1) * sizeof *which);
        size_t m = 0, off = with_head ? 1 : 0;
        int rc = which ? 0 : rq_error(RUNQ_ENOMEM, "out of memory");
        if (rc == 0 && with_head) {
            rq_req_set_gen(req, head->gen);
            rc = rq_req_addv(req, head->argc, head->argv);
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (pass == 1 && !is_noscript(calls[i].reply)) continue;
            which[m++] = i;
            rc = add_call(req, &calls[i], pass == 1);
        }
        if (rc == 0 && wait_replicas > 0) {
            char nr[16], to[16];
            snprintf(nr, sizeof nr, "%d", wait_replicas);
            snprintf(to, sizeof to, "%d", wait_timeout_ms > 0 ? wait_timeout_ms : 1);
            const char *argv[3] = {"WAIT", nr, to};
            rc = rq_req_addv(req, 3, argv);
        }
        if (rc == 0 && m == 0 && pass == 1) {
            rq_free(which);
            rq_req_release(NULL, req);
            return 0;
        }
        if (rc == 0) rc = rq_conn_exec(conn, req, timeout_ms);
        if (rc == 0) {
            if (with_head) head->reply = rq_req_take_reply(req, 0);
            for (size_t j = 0; j < m; j++) {
                rq_reply_free(calls[which[j]].reply);
                calls[which[j]].reply = rq_req_take_reply(req, off + j);
            }
            if (wait_replicas > 0) {
                const rq_reply *w = rq_req_reply(req, off + m);
                long long v = 0;
                if (!rq_reply_int(w, &v)) v = -1;
                if (acked) *acked = v;
            }
        }
        rq_free(which);
        rq_req_release(conn, req);
        if (rc != 0) return rc;
        bool again = false;
        for (size_t i = 0; i < n; i++) again |= is_noscript(calls[i].reply);
        if (!again) return 0;
    }
    return 0;
}

int rq_calls_run(rq_conn *conn, rq_call *calls, size_t n, int flags, int timeout_ms,
                 int wait_replicas, int wait_timeout_ms, long long *acked) {
    return calls_run(conn, NULL, calls, n, flags, timeout_ms, wait_replicas, wait_timeout_ms,
                     acked);
}

int rq_calls_run_after(rq_conn *conn, rq_call_head *head, rq_call *calls, size_t n, int flags,
                       int timeout_ms) {
    head->reply = NULL;
    return calls_run(conn, head, calls, n, flags, timeout_ms, 0, 0, NULL);
}
