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
