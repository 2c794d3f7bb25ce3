/* Helpers for the Redis-only tests: a direct hiredis connection to the test
 * server, and extra redis-server processes of our own (fork/exec, free
 * loopback ports, temporary directories) for replica, restart and AOF tests.
 * Never touches the server on 6379. */
#ifndef RUNQ_TEST_REDIS_SUPPORT_H
#define RUNQ_TEST_REDIS_SUPPORT_H

#include "support.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

static inline int t_redis_port(void) {
    const char *p = getenv("RUNQ_TEST_REDIS_PORT");
    if (!p || !*p) CHECK_FAIL("RUNQ_TEST_REDIS_PORT is not set: run under tests/support/with-redis.sh");
    int port = atoi(p);
    if (port == 6379) CHECK_FAIL("refusing to use the redis on 6379");
    return port;
}

static inline redisContext *t_redis_connect(int port) {
    struct timeval tv = {2, 0};
    redisContext *r = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!r || r->err) CHECK_FAIL("cannot connect to redis on %d", port);
    return r;
}

/* Run a command, abort on a transport error; the reply is the caller's. */
static inline redisReply *t_cmd(redisContext *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    if (!rep) CHECK_FAIL("redis command %s failed: %s", fmt, r->errstr);
    return rep;
}

static inline long long t_cmd_int(redisContext *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r, fmt, ap);
    va_end(ap);
    if (!rep) CHECK_FAIL("redis command %s failed: %s", fmt, r->errstr);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer
                  : rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : -1;
    freeReplyObject(rep);
    return v;
}

/* A job's stored record, version 2 (docs/protocol.md), split up: h[0] the
 * version, h[1..9] maxr prio created eta timeout deadline uttl rint uud;
 * s[0..4] task args ukey meta rkey (owned, len[i] bytes). */
typedef struct t_rec {
    long long h[10];
    char *s[5];
    size_t len[5];
} t_rec;

static inline void t_rec_read(redisContext *r, const char *queue, const char *id, t_rec *out) {
    memset(out, 0, sizeof *out);
    redisReply *rep = t_cmd(r, "HGET {runq:%s}:jobs %s", queue, id);
    if (rep->type != REDIS_REPLY_STRING) CHECK_FAIL("job %s has no record in %s", id, queue);
    const char *p = rep->str, *end = rep->str + rep->len;
    long long lens[5];
    for (int i = 0; i < 15; i++) {
        char *e;
        long long v = strtoll(p, &e, 10);
        if (e >= end || *e != '|') CHECK_FAIL("record of %s: bad header field %d", id, i);
        if (i < 10) out->h[i] = v;
        else lens[i - 10] = v;
        p = e + 1;
    }
    for (int i = 0; i < 5; i++) {
        if (lens[i] < 0 || lens[i] > end - p) CHECK_FAIL("record of %s: bad length", id);
        out->len[i] = (size_t)lens[i];
        out->s[i] = malloc(out->len[i] + 1);
        memcpy(out->s[i], p, out->len[i]);
        out->s[i][out->len[i]] = '\0';
        p += lens[i];
    }
    if (p != end) CHECK_FAIL("record of %s: trailing bytes", id);
    freeReplyObject(rep);
}

/* Store rec as the job's record (header from h and len, then the strings). */
static inline void t_rec_write(redisContext *r, const char *queue, const char *id, const t_rec *rec) {
    char head[512];
    int n = 0;
    for (int i = 0; i < 10; i++) n += snprintf(head + n, sizeof head - (size_t)n, "%lld|", rec->h[i]);
    for (int i = 0; i < 5; i++) n += snprintf(head + n, sizeof head - (size_t)n, "%zu|", rec->len[i]);
    size_t total = (size_t)n;
    for (int i = 0; i < 5; i++) total += rec->len[i];
    char *buf = malloc(total);
    memcpy(buf, head, (size_t)n);
    size_t at = (size_t)n;
    for (int i = 0; i < 5; i++) {
        memcpy(buf + at, rec->s[i], rec->len[i]);
        at += rec->len[i];
    }
    freeReplyObject(t_cmd(r, "HSET {runq:%s}:jobs %s %b", queue, id, buf, total));
    free(buf);
}

/* Replace string i of the record (freeing the old one). */
static inline void t_rec_set(t_rec *rec, int i, const void *v, size_t len) {
    free(rec->s[i]);
    rec->s[i] = malloc(len + 1);
    memcpy(rec->s[i], v, len);
    rec->s[i][len] = '\0';
    rec->len[i] = len;
}

static inline void t_rec_free(t_rec *rec) {
    for (int i = 0; i < 5; i++) free(rec->s[i]);
}

/* The job is dead and its error message contains `reason`. */
static inline void check_dead_with(runq_client *c, const char *id, const char *reason) {
    runq_job *snap = NULL;
    ASSERT_OK(runq_job_get(&snap, c, id));
    ASSERT_EQ(runq_job_state_get(snap), RUNQ_STATE_DEAD);
    ASSERT(runq_job_error(snap) != NULL);
    if (!strstr(runq_job_error(snap), reason))
        CHECK_FAIL("error \"%s\" does not say \"%s\"", runq_job_error(snap), reason);
    runq_job_free(snap);
}

static inline int t_free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        CHECK_FAIL("cannot find a free port");
    int port = ntohs(a.sin_port);
    close(s);
    return port;
}

/* A redis-server of our own. */
typedef struct t_server {
    pid_t pid;
    int port;
    char dir[256];
    char sock[300];
} t_server;

static inline bool t_ping(int port) {
    struct timeval tv = {0, 200000};
    redisContext *r = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (r && !r->err) {
        redisReply *rep = redisCommand(r, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
    }
    if (r) redisFree(r);
    return ok;
}

/* Start redis-server on s->port (0: pick one) in s->dir (created when
 * empty) with extra flags (NULL-terminated), and wait until it answers. */
static inline void t_server_start(t_server *s, const char *const *extra) {
    if (!s->port) s->port = t_free_port();
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "%s/runq-test.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(s->dir)) CHECK_FAIL("mkdtemp failed");
    }
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[64] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", s->dir,
                            "--save", "", "--unixsocket", s->sock, "--loglevel", "warning"};
    int n = 13;
    for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) CHECK_FAIL("fork failed");
    if (pid == 0) {
        /* Quiet child: its log goes to a file in its directory. */
        char log[320];
        snprintf(log, sizeof log, "%s/redis.log", s->dir);
        FILE *f = freopen(log, "a", stdout);
        f = freopen(log, "a", stderr);
        (void)f;
        /* Die with the test, so that a failed test leaves no server behind
         * holding ctest's output pipe. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 400 && !t_ping(s->port); i++) t_sleep_ms(25);
    if (!t_ping(s->port)) CHECK_FAIL("redis-server did not start on %d", s->port);
}

static inline void t_server_kill(t_server *s, int sig) {
    if (s->pid <= 0) return;
    kill(s->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Stop the server and remove its directory. */
static inline void t_server_destroy(t_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);
        t_server_kill(s, SIGKILL);
    }
    if (s->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", s->dir);
    }
}

static inline runq_client *t_client_at(const char *url) {
    runq_client *c = NULL;
    ASSERT_OK(runq_client_open(&c, url, NULL));
    return c;
}

#endif
