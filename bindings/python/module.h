/* Shared declarations of the runq._runq extension module.
 *
 * The module keeps everything in its state (heap types, exception classes),
 * so it can be loaded in several interpreters and torn down cleanly. Engine
 * threads never see the module object: a handler context carries strong
 * references to what a call needs. */
#ifndef RUNQ_PY_MODULE_H
#define RUNQ_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "runq.h"

/* Exception classes indexed by -code (RUNQ_EINVAL .. RUNQ_ESTATE). Index 0
 * holds the base class runq.Error. */
#define RQPY_NERRORS 16

struct rqpy_worker;

typedef struct rqpy_state {
    PyTypeObject *client_type;
    PyTypeObject *worker_type;
    PyTypeObject *job_type;
    PyObject *errors[RQPY_NERRORS];
    /* Live workers, so that the atexit hook can stop them before the
     * interpreter finalizes (their threads take the GIL). Touched with the
     * GIL held only. */
    struct rqpy_worker *workers;
} rqpy_state;

rqpy_state *rqpy_state_of(PyTypeObject *type);

/* gil.c: PyGILState_Ensure for engine threads that keeps their thread
 * state alive between calls; release with PyGILState_Release. */
PyGILState_STATE rqpy_gil_ensure(void);

/* errors.c */
int rqpy_errors_init(PyObject *module, rqpy_state *st);
/* Raise the exception for an engine code with runq_error_last() as detail.
 * Reads the detail first, so call it right after the failing call, on the
 * same thread. Returns NULL for `return rqpy_raise(...)`. */
PyObject *rqpy_raise(rqpy_state *st, int code);
/* Same with an explicit detail message, and the id of the job holding a
 * unique key for RUNQ_EDUPLICATE (may be NULL). */
PyObject *rqpy_raise_msg(rqpy_state *st, int code, const char *detail,
                         const char *job_id);
/* A new exception instance for the code (not raised), or NULL. */
PyObject *rqpy_error_new(rqpy_state *st, int code, const char *detail,
                         const char *job_id);

/* codec.c: msgpack <-> Python. */
PyObject *rqpy_packb(PyObject *module, PyObject *obj);
PyObject *rqpy_unpackb(PyObject *module, PyObject *data);
/* Decode a buffer into a new reference; NULL with an exception set. */
PyObject *rqpy_unpack_buf(const void *buf, size_t len);

/* job.c */
int rqpy_job_init_type(PyObject *module, rqpy_state *st);
/* A Job object borrowing an engine-owned job for a handler call. */
PyObject *rqpy_job_borrow(PyTypeObject *type, runq_job *job);
/* End the borrow: later accesses raise instead of touching freed memory. */
void rqpy_job_unborrow(PyObject *pyjob);
/* A Job object owning a snapshot (freed with runq_job_free). Steals job. */
PyObject *rqpy_job_own(PyTypeObject *type, runq_job *job);

/* client.c */
int rqpy_client_init_type(PyObject *module, rqpy_state *st);
runq_client *rqpy_client_handle(PyObject *client);
/* Count the workers alive on the client (close refuses while any is). */
void rqpy_client_worker_count(PyObject *client, int delta);
/* Take the first exception stored by a callback on the client's engine
 * threads; raise it and return -1, or return 0 when there is none. */
int rqpy_client_reraise(PyObject *client);

/* hooks.c: runq_client_add_hooks with Python callables (None: not set). */
int rqpy_hooks_add(runq_client *c, PyTypeObject *job_type, PyObject *before_enqueue,
                   PyObject *before_process, PyObject *after_process);
/* Bracket an enqueue call made with the GIL released; _end returns the
 * exception a before_enqueue callable raised during it (new reference), or
 * NULL. */
void rqpy_hooks_enqueue_begin(void);
PyObject *rqpy_hooks_enqueue_end(void);

/* worker.c */
int rqpy_worker_init_type(PyObject *module, rqpy_state *st);
/* Stop and free every live worker (atexit). GIL held on entry. */
void rqpy_workers_shutdown(rqpy_state *st);

#endif
