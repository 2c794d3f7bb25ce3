/* Taking the GIL on engine threads (handlers, fallbacks, hooks).
 *
 * PyGILState_Ensure on a thread Python does not know creates a thread
 * state, and the matching PyGILState_Release deletes it. Every job then
 * paid for a new thread state and its 16 KiB frame stack: an mmap, and a
 * munmap whose TLB shootdown interrupts every core. That was most of a
 * Python worker's CPU (bench/README.md). So the first acquire on such a
 * thread keeps one reference to its thread state for the thread's life,
 * and a thread-specific destructor gives it back when the thread exits.
 * Threads Python created (a producer calling enqueue, say) are left to
 * Python: it deletes their states itself when they end. */
#include "module.h"

#include <pthread.h>

static pthread_key_t keep_key;
static int keep_ok;
static pthread_once_t keep_once = PTHREAD_ONCE_INIT;

static int finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

static void keep_drop(void *p) {
    /* After finalization there is no interpreter to return it to. Workers
     * are stopped before that (rqpy_workers_shutdown at exit). */
    if (finalizing()) return;
    PyThreadState *ts = p;
    /* Not PyGILState_Release: the thread is exiting, and Python's own
     * thread-specific pointer to this state may already be cleared. */
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent(); /* and gives the GIL back */
}

static void keep_init(void) { keep_ok = pthread_key_create(&keep_key, keep_drop) == 0; }

PyGILState_STATE rqpy_gil_ensure(void) {
    if (PyGILState_GetThisThreadState() == NULL) {
        pthread_once(&keep_once, keep_init);
        PyGILState_STATE first = PyGILState_Ensure();
        if (!keep_ok || pthread_setspecific(keep_key, PyThreadState_Get()) != 0)
            return first; /* the caller's release deletes it, as before */
        PyEval_SaveThread(); /* keep the reference, give the GIL back */
    }
    return PyGILState_Ensure();
}
