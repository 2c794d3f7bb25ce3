/* Client hooks (runq_client_add_hooks) calling Python callables.
 *
 * The engine calls hooks on whatever thread enqueues or handles a job, with
 * the GIL released (enqueue runs inside Py_BEGIN_ALLOW_THREADS, handlers on
 * engine threads), so each trampoline takes the GIL around the call, like
 * the handler trampoline of client.c. The context holds strong references
 * and is freed by the engine at runq_client_close, from a thread without the
 * GIL: its destructor takes the GIL before dropping them.
 *
 * Exceptions: one raised by a before_enqueue callable refuses the job; it is
 * kept in a thread-local slot and re-raised by Client.enqueue on the same
 * thread (the enqueue call runs on the thread that called it). Exceptions of
 * the process hooks cannot change the job's outcome: they are reported with
 * sys.unraisablehook (the pure-Python wrappers log them first). */
#include "module.h"

typedef struct rqpy_hooks {
    PyObject *before_enqueue; /* callable(job) or NULL */
    PyObject *before_process; /* callable(job) or NULL */
    PyObject *after_process;  /* callable(job, outcome, error, duration_us) or NULL */
    PyTypeObject *job_type;   /* strong */
} rqpy_hooks;

/* Set while Client.enqueue / enqueue_many is inside the engine on this
 * thread; the exception of a refused enqueue waits here until taken. A hook
 * that fails on a thread with no such call (a worker's periodic scheduler)
 * is reported with sys.unraisablehook instead of being kept. */
static _Thread_local int enqueue_active;
static _Thread_local PyObject *enqueue_error;

void rqpy_hooks_enqueue_begin(void)
{
    enqueue_active = 1;
}

PyObject *rqpy_hooks_enqueue_end(void)
{
    PyObject *e = enqueue_error;
    enqueue_error = NULL;
    enqueue_active = 0;
    return e;
}

static const char *const OUTCOMES[] = {"", "acked", "retried", "dead", "released", "lost"};

/* Call fn(job, *extra) with the job lent for the call. 0, or -1 with the
 * exception set. */
static int call_hook(rqpy_hooks *h, PyObject *fn, runq_job *job, PyObject *extra)
{
    PyObject *pyjob = rqpy_job_borrow(h->job_type, job);
    if (pyjob == NULL)
        return -1;
    PyObject *ret = NULL;
    if (extra == NULL) {
        ret = PyObject_CallOneArg(fn, pyjob);
    } else {
        PyObject *args = PyTuple_New(1 + PyTuple_GET_SIZE(extra));
        if (args != NULL) {
            PyTuple_SET_ITEM(args, 0, Py_NewRef(pyjob));
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(extra); i++)
                PyTuple_SET_ITEM(args, i + 1, Py_NewRef(PyTuple_GET_ITEM(extra, i)));
            ret = PyObject_Call(fn, args, NULL);
            Py_DECREF(args);
        }
    }
    rqpy_job_unborrow(pyjob);
    Py_DECREF(pyjob);
    Py_XDECREF(ret);
    return ret == NULL ? -1 : 0;
}

static int before_enqueue_trampoline(runq_job *job, void *userdata)
{
    rqpy_hooks *h = userdata;
    int rc = 0;
    PyGILState_STATE g = rqpy_gil_ensure();
    if (call_hook(h, h->before_enqueue, job, NULL) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        PyObject *text = value ? PyObject_Repr(value) : NULL;
        const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
        runq_job_set_error(job, s ? s : "a before_enqueue hook raised");
        Py_XDECREF(text);
        PyErr_Clear();
        rc = RUNQ_EINVAL;
        if (enqueue_active && enqueue_error == NULL) {
            /* Keep the first of a batch; enqueue_many reports per item. */
            enqueue_error = value;
            Py_XDECREF(type);
            Py_XDECREF(tb);
        } else if (!enqueue_active) {
            PyErr_Restore(type, value, tb);
            PyErr_WriteUnraisable(h->before_enqueue);
        } else {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
    }
    PyGILState_Release(g);
    return rc;
}

static void before_process_trampoline(runq_job *job, void *userdata)
{
    rqpy_hooks *h = userdata;
    PyGILState_STATE g = rqpy_gil_ensure();
    if (call_hook(h, h->before_process, job, NULL) < 0)
        PyErr_WriteUnraisable(h->before_process);
    PyGILState_Release(g);
}

static void after_process_trampoline(runq_job *job, const runq_process_info *info, void *userdata)
{
    rqpy_hooks *h = userdata;
    PyGILState_STATE g = rqpy_gil_ensure();
    int o = (int)info->outcome;
    PyObject *extra = Py_BuildValue("(szL)", o >= 1 && o <= 5 ? OUTCOMES[o] : "lost",
                                    info->error, (long long)info->duration_us);
    if (extra == NULL || call_hook(h, h->after_process, job, extra) < 0)
        PyErr_WriteUnraisable(h->after_process);
    Py_XDECREF(extra);
    PyGILState_Release(g);
}

static void hooks_free(void *userdata)
{
    rqpy_hooks *h = userdata;
    PyGILState_STATE g = rqpy_gil_ensure();
    Py_XDECREF(h->before_enqueue);
    Py_XDECREF(h->before_process);
    Py_XDECREF(h->after_process);
    Py_XDECREF(h->job_type);
    PyMem_RawFree(h);
    PyGILState_Release(g);
}

int rqpy_hooks_add(runq_client *c, PyTypeObject *job_type, PyObject *before_enqueue,
                   PyObject *before_process, PyObject *after_process)
{
    PyObject *fns[3] = {before_enqueue, before_process, after_process};
    for (int i = 0; i < 3; i++) {
        if (fns[i] == Py_None)
            fns[i] = NULL;
        if (fns[i] != NULL && !PyCallable_Check(fns[i])) {
            PyErr_SetString(PyExc_TypeError, "hooks must be callables or None");
            return -1;
        }
    }
    rqpy_hooks *h = PyMem_RawCalloc(1, sizeof *h);
    if (h == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    h->before_enqueue = Py_XNewRef(fns[0]);
    h->before_process = Py_XNewRef(fns[1]);
    h->after_process = Py_XNewRef(fns[2]);
    h->job_type = (PyTypeObject *)Py_NewRef((PyObject *)job_type);
    runq_hooks rh = RUNQ_HOOKS_INIT;
    rh.before_enqueue = fns[0] ? before_enqueue_trampoline : NULL;
    rh.before_process = fns[1] ? before_process_trampoline : NULL;
    rh.after_process = fns[2] ? after_process_trampoline : NULL;
    rh.userdata = h;
    rh.userdata_free = hooks_free;
    int rc = runq_client_add_hooks(c, &rh);
    if (rc != 0) {
        Py_XDECREF(h->before_enqueue);
        Py_XDECREF(h->before_process);
        Py_XDECREF(h->after_process);
        Py_DECREF(h->job_type);
        PyMem_RawFree(h);
        rqpy_raise(rqpy_state_of(job_type), rc);
        return -1;
    }
    return 0;
}
