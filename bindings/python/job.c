/* runq._runq.Job: a view of one engine job.
 *
 * Two kinds: a snapshot the object owns (from get/wait, freed with it), or a
 * job the engine lends to a handler call. A lent job is freed by the engine
 * when the call returns, so the object is cut off from it then; Python code
 * that kept a reference gets InvalidState instead of a dangling pointer. */
#include "module.h"

typedef struct rqpy_job {
    PyObject_HEAD
    runq_job *job;
    int owned;
} rqpy_job;

static runq_job *job_get(rqpy_job *self)
{
    if (self->job == NULL) {
        rqpy_raise_msg(rqpy_state_of(Py_TYPE(self)), RUNQ_ESTATE,
                       "a handler's job can only be used during the handler call", NULL);
    }
    return self->job;
}

static PyObject *str_or_none(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

static PyObject *buf_or_none(const void *buf, size_t len)
{
    if (buf == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
}

/* One getter per accessor; `closure` says which, to avoid a twin per field. */
enum job_field {
    F_ID, F_TASK, F_QUEUE, F_ARGS, F_STATE, F_ATTEMPT, F_MAX_RETRIES, F_PRIORITY,
    F_CREATED_AT, F_ETA, F_TIMEOUT, F_DEADLINE, F_UNIQUE_KEY, F_RESULT, F_ERROR,
    F_CANCELLED, F_RATE_KEY, F_RATE_INTERVAL, F_UNIQUE_UNTIL_DONE, F_LEASED_AT, F_META
};

/* The metadata as a new dict (a copy: the job may go away). */
static PyObject *meta_dict(runq_job *j)
{
    PyObject *d = PyDict_New();
    for (size_t i = 0; d != NULL && i < runq_job_meta_count(j); i++) {
        const char *k, *v;
        runq_job_meta_at(j, i, &k, &v);
        PyObject *pk = str_or_none(k), *pv = str_or_none(v);
        if (pk == NULL || pv == NULL || PyDict_SetItem(d, pk, pv) < 0)
            Py_CLEAR(d);
        Py_XDECREF(pk);
        Py_XDECREF(pv);
    }
    return d;
}

static PyObject *job_field(PyObject *op, void *closure)
{
    runq_job *j = job_get((rqpy_job *)op);
    size_t len = 0;
    const void *buf;
    if (j == NULL)
        return NULL;
    switch ((enum job_field)(intptr_t)closure) {
    case F_ID: return str_or_none(runq_job_id(j));
    case F_TASK: return str_or_none(runq_job_task(j));
    case F_QUEUE: return str_or_none(runq_job_queue(j));
    case F_ARGS:
        buf = runq_job_args(j, &len);
        return buf_or_none(buf, len);
    case F_STATE: return PyLong_FromLong((long)runq_job_state_get(j));
    case F_ATTEMPT: return PyLong_FromLong(runq_job_attempt(j));
    case F_MAX_RETRIES: return PyLong_FromLong(runq_job_max_retries(j));
    case F_PRIORITY: return PyLong_FromLong(runq_job_priority(j));
    case F_CREATED_AT: return PyLong_FromLongLong(runq_job_created_at(j));
    case F_ETA: return PyLong_FromLongLong(runq_job_eta(j));
    case F_TIMEOUT: return PyLong_FromLongLong(runq_job_timeout(j));
    case F_DEADLINE: return PyLong_FromLongLong(runq_job_deadline(j));
    case F_UNIQUE_KEY: return str_or_none(runq_job_unique_key(j));
    case F_RESULT:
        buf = runq_job_result(j, &len);
        return buf_or_none(buf, len);
    case F_ERROR: return str_or_none(runq_job_error(j));
    case F_CANCELLED: return PyBool_FromLong(runq_job_cancelled(j));
    case F_RATE_KEY: return str_or_none(runq_job_rate_key(j));
    case F_RATE_INTERVAL: return PyLong_FromLongLong(runq_job_rate_interval(j));
    case F_UNIQUE_UNTIL_DONE: return PyBool_FromLong(runq_job_unique_until_done(j));
    case F_LEASED_AT: return PyLong_FromLongLong(runq_job_leased_at(j));
    case F_META: return meta_dict(j);
    }
    Py_UNREACHABLE();
}

#define FIELD(name, f, doc) {name, job_field, NULL, doc, (void *)(intptr_t)(f)}
static PyGetSetDef job_getset[] = {
    FIELD("id", F_ID, "The job id (26 Crockford base32 characters)."),
    FIELD("task", F_TASK, "Task name."),
    FIELD("queue", F_QUEUE, "Queue name."),
    FIELD("args", F_ARGS, "The raw msgpack args."),
    FIELD("state", F_STATE, "RUNQ_STATE_* number."),
    FIELD("attempt", F_ATTEMPT, "Deliveries so far; 1 during the first run."),
    FIELD("max_retries", F_MAX_RETRIES, "Retries allowed after the first attempt."),
    FIELD("priority", F_PRIORITY, "Higher runs first."),
    FIELD("created_at", F_CREATED_AT, "Creation time, Unix ms (backend clock)."),
    FIELD("eta", F_ETA, "When it became or becomes due, Unix ms."),
    FIELD("timeout", F_TIMEOUT, "Handler time budget in ms; 0: none."),
    FIELD("deadline", F_DEADLINE, "Unix ms after which it never starts; 0: none."),
    FIELD("unique_key", F_UNIQUE_KEY, "Unique key or None."),
    FIELD("result", F_RESULT, "The raw msgpack result of a done job, or None."),
    FIELD("error", F_ERROR, "The last failure message, or None."),
    FIELD("cancelled", F_CANCELLED, "True once the handler should return soon."),
    FIELD("rate_key", F_RATE_KEY, "Rate key (per-key interval limit) or None."),
    FIELD("rate_interval", F_RATE_INTERVAL, "Least ms between starts of jobs of the rate key; 0: none."),
    FIELD("unique_until_done", F_UNIQUE_UNTIL_DONE, "True when the unique key holds until done or dead."),
    FIELD("leased_at", F_LEASED_AT, "When this delivery was leased, Unix ms (backend clock); 0 in snapshots."),
    FIELD("meta", F_META, "The job's metadata (str -> str), a copy."),
    {NULL, NULL, NULL, NULL, NULL},
};
#undef FIELD

static PyObject *job_set_result(PyObject *op, PyObject *arg)
{
    runq_job *j = job_get((rqpy_job *)op);
    Py_buffer view;
    if (j == NULL || PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = runq_job_set_result(j, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc != 0)
        return rqpy_raise(rqpy_state_of(Py_TYPE(op)), rc);
    Py_RETURN_NONE;
}

static PyObject *job_set_error(PyObject *op, PyObject *arg)
{
    runq_job *j = job_get((rqpy_job *)op);
    if (j == NULL)
        return NULL;
    const char *msg = PyUnicode_AsUTF8(arg);
    if (msg == NULL)
        return NULL;
    int rc = runq_job_set_error(j, msg);
    if (rc != 0)
        return rqpy_raise(rqpy_state_of(Py_TYPE(op)), rc);
    Py_RETURN_NONE;
}

static PyObject *job_retry_in(PyObject *op, PyObject *arg)
{
    runq_job *j = job_get((rqpy_job *)op);
    if (j == NULL)
        return NULL;
    long long ms = PyLong_AsLongLong(arg);
    if (ms == -1 && PyErr_Occurred())
        return NULL;
    if (ms < 0) {
        PyErr_SetString(PyExc_ValueError, "retry delay must be >= 0 ms");
        return NULL;
    }
    runq_job_retry_in(j, (int64_t)ms);
    Py_RETURN_NONE;
}

/* set_meta(key, value or None): only inside a before_enqueue hook. */
static PyObject *job_set_meta(PyObject *op, PyObject *args)
{
    const char *key, *value;
    if (!PyArg_ParseTuple(args, "sz:set_meta", &key, &value))
        return NULL;
    runq_job *j = job_get((rqpy_job *)op);
    if (j == NULL)
        return NULL;
    int rc = runq_job_meta_set(j, key, value);
    if (rc != 0)
        return rqpy_raise(rqpy_state_of(Py_TYPE(op)), rc);
    Py_RETURN_NONE;
}

static PyMethodDef job_methods[] = {
    {"set_meta", job_set_meta, METH_VARARGS,
     "set_meta(key, value): add metadata to a job being enqueued (None removes)."},
    {"set_result", job_set_result, METH_O, "Set the msgpack result the ack stores."},
    {"set_error", job_set_error, METH_O, "Set the failure message."},
    {"retry_in", job_retry_in, METH_O, "Retry a failure after this many ms instead of the backoff."},
    {NULL, NULL, 0, NULL},
};

static PyObject *job_repr(PyObject *op)
{
    rqpy_job *self = (rqpy_job *)op;
    if (self->job == NULL)
        return PyUnicode_FromString("<runq._runq.Job (released)>");
    return PyUnicode_FromFormat("<runq._runq.Job %s %s>", runq_job_id(self->job),
                                runq_job_task(self->job));
}

static void job_dealloc(PyObject *op)
{
    rqpy_job *self = (rqpy_job *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->owned)
        runq_job_free(self->job);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyType_Slot job_slots[] = {
    {Py_tp_doc, "A runq job: a snapshot, or the job a handler is running."},
    {Py_tp_getset, job_getset},
    {Py_tp_methods, job_methods},
    {Py_tp_repr, job_repr},
    {Py_tp_dealloc, job_dealloc},
    {0, NULL},
};

static PyType_Spec job_spec = {
    .name = "runq._runq.Job",
    .basicsize = sizeof(rqpy_job),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = job_slots,
};

int rqpy_job_init_type(PyObject *module, rqpy_state *st)
{
    st->job_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &job_spec, NULL);
    if (st->job_type == NULL)
        return -1;
    return PyModule_AddType(module, st->job_type);
}

static PyObject *job_wrap(PyTypeObject *type, runq_job *job, int owned)
{
    rqpy_job *self = PyObject_New(rqpy_job, type);
    if (self == NULL)
        return NULL;
    /* PyObject_New already took the reference an instance of a heap type
     * holds on its type; dealloc drops it. */
    self->job = job;
    self->owned = owned;
    return (PyObject *)self;
}

PyObject *rqpy_job_borrow(PyTypeObject *type, runq_job *job)
{
    return job_wrap(type, job, 0);
}

void rqpy_job_unborrow(PyObject *pyjob)
{
    ((rqpy_job *)pyjob)->job = NULL;
}

PyObject *rqpy_job_own(PyTypeObject *type, runq_job *job)
{
    PyObject *o = job_wrap(type, job, 1);
    if (o == NULL)
        runq_job_free(job);
    return o;
}
