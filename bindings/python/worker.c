/* runq._runq.Worker: a push-mode engine worker whose threads call the
 * Python handlers registered on its client.
 *
 * Live workers are listed in the module state so that an atexit hook can
 * stop them while the interpreter still runs: their threads take the GIL,
 * which must not happen once finalization has begun. */
#include "module.h"

typedef struct rqpy_worker {
    PyObject_HEAD
    runq_worker *worker;
    PyObject *client;  /* strong: the engine client must outlive the worker */
    long long grace_ms;
    struct rqpy_worker *next;
    struct rqpy_worker **pprev;
} rqpy_worker;

static rqpy_state *worker_state(rqpy_worker *self)
{
    return rqpy_state_of(Py_TYPE(self));
}

static runq_worker *worker_get(rqpy_worker *self)
{
    if (self->worker == NULL)
        rqpy_raise_msg(worker_state(self), RUNQ_ECLOSED, "the worker is closed", NULL);
    return self->worker;
}

static void worker_link(rqpy_state *st, rqpy_worker *self)
{
    self->next = st->workers;
    if (st->workers)
        st->workers->pprev = &self->next;
    st->workers = self;
    self->pprev = &st->workers;
}

static void worker_unlink(rqpy_worker *self)
{
    if (self->pprev == NULL)
        return;
    *self->pprev = self->next;
    if (self->next)
        self->next->pprev = self->pprev;
    self->next = NULL;
    self->pprev = NULL;
}

/* Stop (with the worker's grace), wait for the handler threads and free.
 * The GIL is released throughout: the handlers need it to finish. */
static void worker_close_impl(rqpy_worker *self)
{
    runq_worker *w = self->worker;
    if (w == NULL)
        return;
    self->worker = NULL;
    worker_unlink(self);
    int64_t grace = self->grace_ms;
    Py_BEGIN_ALLOW_THREADS
    runq_worker_stop(w, grace);
    runq_worker_free(w);
    Py_END_ALLOW_THREADS
    rqpy_client_worker_count(self->client, -1);
}

void rqpy_workers_shutdown(rqpy_state *st)
{
    while (st->workers != NULL)
        worker_close_impl(st->workers);
}

static int worker_init(PyObject *op, PyObject *args, PyObject *kw)
{
    rqpy_worker *self = (rqpy_worker *)op;
    static char *kwlist[] = {"client", "queues", "weights", "concurrency",
                             "lease_ms", "grace_ms", "min_concurrency",
                             "max_concurrency", "idle_timeout_ms", NULL};
    PyObject *client, *queues = Py_None, *weights = Py_None;
    runq_worker_options o = RUNQ_WORKER_OPTIONS_INIT;
    long long lease = o.lease_ms, grace = 30000, idle = o.idle_timeout_ms;
    rqpy_state *st = worker_state(self);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|O$OiLLiiL:Worker", kwlist,
                                     st->client_type, &client, &queues, &weights,
                                     &o.concurrency, &lease, &grace, &o.min_concurrency,
                                     &o.max_concurrency, &idle))
        return -1;
    o.idle_timeout_ms = idle;
    if (self->worker != NULL) {
        rqpy_raise_msg(st, RUNQ_ESTATE, "Worker.__init__ called twice", NULL);
        return -1;
    }
    if (grace < 0) {
        PyErr_SetString(PyExc_ValueError, "grace_ms must be >= 0");
        return -1;
    }
    o.lease_ms = lease;
    PyObject *qseq = queues == Py_None ? NULL : PySequence_Fast(queues, "queues must be a sequence of str");
    PyObject *wseq = weights == Py_None ? NULL : PySequence_Fast(weights, "weights must be a sequence of int");
    const char **names = NULL;
    unsigned int *w = NULL;
    int rc = -1;
    if ((queues != Py_None && qseq == NULL) || (weights != Py_None && wseq == NULL))
        goto done;
    if (qseq != NULL) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(qseq);
        if (n == 0) {
            PyErr_SetString(PyExc_ValueError, "queues must not be empty");
            goto done;
        }
        if (wseq != NULL && PySequence_Fast_GET_SIZE(wseq) != n) {
            PyErr_SetString(PyExc_ValueError, "weights needs one weight per queue");
            goto done;
        }
        names = PyMem_Calloc((size_t)n, sizeof *names);
        w = PyMem_Calloc((size_t)n, sizeof *w);
        if (names == NULL || w == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *q = PySequence_Fast_GET_ITEM(qseq, i);
            if (!PyUnicode_Check(q)) {
                PyErr_SetString(PyExc_TypeError, "queue names must be str");
                goto done;
            }
            if ((names[i] = PyUnicode_AsUTF8(q)) == NULL)
                goto done;
            if (wseq != NULL) {
                unsigned long v = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(wseq, i));
                if (v == (unsigned long)-1 && PyErr_Occurred())
                    goto done;
                w[i] = (unsigned int)v;
            }
        }
        o.queues = names;
        o.nqueues = (size_t)n;
        o.weights = wseq ? w : NULL;
    } else if (wseq != NULL) {
        PyErr_SetString(PyExc_ValueError, "weights need queues");
        goto done;
    }
    runq_client *c = rqpy_client_handle(client);
    if (c == NULL)
        goto done;
    runq_worker *worker = NULL;
    int erc;
    const char *detail = "";
    /* The queue names are copied by the engine; qseq keeps them alive until
     * then. */
    Py_BEGIN_ALLOW_THREADS
    erc = runq_worker_create(&worker, c, &o);
    if (erc != 0)
        detail = runq_error_last();
    Py_END_ALLOW_THREADS
    if (erc != 0) {
        rqpy_raise_msg(st, erc, detail, NULL);
        goto done;
    }
    self->worker = worker;
    self->client = Py_NewRef(client);
    self->grace_ms = grace;
    rqpy_client_worker_count(client, +1);
    worker_link(st, self);
    rc = 0;
done:
    PyMem_Free(names);
    PyMem_Free(w);
    Py_XDECREF(qseq);
    Py_XDECREF(wseq);
    return rc;
}

static PyObject *worker_start(PyObject *op, PyObject *unused)
{
    (void)unused;
    rqpy_worker *self = (rqpy_worker *)op;
    runq_worker *w = worker_get(self);
    if (w == NULL)
        return NULL;
    int rc;
    const char *detail = "";
    Py_BEGIN_ALLOW_THREADS
    rc = runq_worker_start(w);
    if (rc != 0)
        detail = runq_error_last();
    Py_END_ALLOW_THREADS
    if (rc != 0)
        return rqpy_raise_msg(worker_state(self), rc, detail, NULL);
    Py_RETURN_NONE;
}

/* stop(grace_ms=None) -> True when every handler finished in time. Then
 * raises what a callback stored, if anything. */
/* schedule(task, payload=None, *, every_ms=0, cron=None, queue=None):
 * a periodic job, added before start. */
static PyObject *worker_schedule(PyObject *op, PyObject *args, PyObject *kw)
{
    rqpy_worker *self = (rqpy_worker *)op;
    static char *kwlist[] = {"task", "payload", "every_ms", "cron", "queue", NULL};
    runq_periodic_options o = RUNQ_PERIODIC_OPTIONS_INIT;
    Py_buffer payload = {.buf = NULL};
    long long every = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|z*$Lzz:schedule", kwlist, &o.task,
                                     &payload, &every, &o.cron, &o.queue))
        return NULL;
    o.args = payload.buf;
    o.args_len = payload.buf ? (size_t)payload.len : 0;
    o.every_ms = every;
    runq_worker *w = worker_get(self);
    int rc = w ? runq_worker_schedule(w, &o) : 0;
    const char *detail = rc ? runq_error_last() : "";
    if (payload.buf)
        PyBuffer_Release(&payload);
    if (w == NULL)
        return NULL;
    if (rc != 0)
        return rqpy_raise_msg(worker_state(self), rc, detail, NULL);
    Py_RETURN_NONE;
}

static PyObject *worker_stop(PyObject *op, PyObject *args)
{
    rqpy_worker *self = (rqpy_worker *)op;
    PyObject *pygrace = Py_None;
    if (!PyArg_ParseTuple(args, "|O:stop", &pygrace))
        return NULL;
    long long grace = self->grace_ms;
    if (pygrace != Py_None && (grace = PyLong_AsLongLong(pygrace)) == -1 && PyErr_Occurred())
        return NULL;
    runq_worker *w = worker_get(self);
    if (w == NULL)
        return NULL;
    int rc;
    const char *detail = "";
    Py_BEGIN_ALLOW_THREADS
    rc = runq_worker_stop(w, grace);
    if (rc != 0 && rc != RUNQ_ETIMEOUT)
        detail = runq_error_last();
    Py_END_ALLOW_THREADS
    if (rqpy_client_reraise(self->client) < 0)
        return NULL;
    if (rc != 0 && rc != RUNQ_ETIMEOUT)
        return rqpy_raise_msg(worker_state(self), rc, detail, NULL);
    return PyBool_FromLong(rc == 0);
}

static PyObject *worker_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    rqpy_worker *self = (rqpy_worker *)op;
    worker_close_impl(self);
    if (self->client && rqpy_client_reraise(self->client) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *worker_stats(PyObject *op, PyObject *unused)
{
    (void)unused;
    runq_worker *w = worker_get((rqpy_worker *)op);
    if (w == NULL)
        return NULL;
    runq_worker_stats s = {0};
    runq_worker_stats_get(&s, w);
    return Py_BuildValue("{sLsLsLsLsLsL}", "processed", (long long)s.processed, "failed",
                         (long long)s.failed, "dead", (long long)s.dead, "running",
                         (long long)s.running, "threads", (long long)s.threads, "idle",
                         (long long)s.idle);
}

static PyObject *worker_check(PyObject *op, PyObject *unused)
{
    (void)unused;
    rqpy_worker *self = (rqpy_worker *)op;
    if (self->client && rqpy_client_reraise(self->client) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int worker_traverse(PyObject *op, visitproc visit, void *arg)
{
    rqpy_worker *self = (rqpy_worker *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->client);
    return 0;
}

static void worker_dealloc(PyObject *op)
{
    rqpy_worker *self = (rqpy_worker *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    worker_close_impl(self);
    Py_CLEAR(self->client);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef worker_methods[] = {
    {"start", worker_start, METH_NOARGS, "Start fetching and running handlers."},
    {"schedule", (PyCFunction)(void (*)(void))worker_schedule, METH_VARARGS | METH_KEYWORDS,
     "schedule(task, payload=None, *, every_ms=0, cron=None, queue=None): add a periodic job."},
    {"stop", worker_stop, METH_VARARGS,
     "stop(grace_ms=None) -> bool: stop fetching, let handlers finish for grace_ms."},
    {"close", worker_close, METH_NOARGS, "Stop, wait for the handler threads, free."},
    {"stats", worker_stats, METH_NOARGS,
     "Counters: processed, failed, dead, running; pool size: threads, idle."},
    {"check", worker_check, METH_NOARGS, "Raise an exception a handler callback stored."},
    {NULL, NULL, 0, NULL},
};

static PyObject *worker_closed(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((rqpy_worker *)op)->worker == NULL);
}

static PyGetSetDef worker_getset[] = {
    {"closed", worker_closed, NULL, "True once closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot worker_slots[] = {
    {Py_tp_doc, "Worker(client, queues=None, *, weights=None, concurrency=4, "
                "lease_ms=30000, grace_ms=30000, min_concurrency=0, max_concurrency=0, "
                "idle_timeout_ms=10000)"},
    {Py_tp_init, worker_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, worker_dealloc},
    {Py_tp_traverse, worker_traverse},
    {Py_tp_methods, worker_methods},
    {Py_tp_getset, worker_getset},
    {0, NULL},
};

static PyType_Spec worker_spec = {
    .name = "runq._runq.Worker",
    .basicsize = sizeof(rqpy_worker),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = worker_slots,
};

int rqpy_worker_init_type(PyObject *module, rqpy_state *st)
{
    st->worker_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &worker_spec, NULL);
    if (st->worker_type == NULL)
        return -1;
    return PyModule_AddType(module, st->worker_type);
}
