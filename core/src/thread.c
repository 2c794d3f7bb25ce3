/* Threads the engine starts, with every signal blocked.
 *
 * Why: the engine's threads (the Redis client's I/O thread, fetchers,
 * keepers, ackers, handler threads, the scheduler) must not take signals
 * meant for the application, and must not die of SIGPIPE. hiredis writes
 * with write(), and a second write to a socket the server has reset raises
 * SIGPIPE on the writing thread; its default action ends the process, and
 * a C or standalone Lua program keeps that default (Python and nginx
 * ignore it). Blocked, the write fails with EPIPE, which the connection
 * handles as a lost connection. A blocked thread-directed SIGPIPE stays
 * pending on that thread, unseen. Signals the kernel forces on a fault
 * (SIGSEGV, SIGBUS, SIGFPE) still arrive. */
#include "thread.h"

#include <pthread.h>
#include <signal.h>

int rq_thread_start(uv_thread_t *tid, void (*entry)(void *), void *arg) {
    /* A new thread inherits its creator's mask: block all here, start it,
     * and put the caller's mask back. */
    sigset_t all, old;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0) return -1;
    int rc = uv_thread_create(tid, entry, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
