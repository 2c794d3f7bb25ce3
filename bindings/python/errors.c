/* Engine error codes as Python exceptions.
 *
 * Codes are pinned in runq.h, so the table is indexed by -code. Where a
 * builtin exception means the same thing it is a second base, so callers
 * that know nothing of runq (except ValueError, except TimeoutError) still
 * catch the right errors. */
#include "module.h"

typedef struct rqpy_error_spec {
    int code;
    const char *name;    /* "runq.Name" */
    const char *doc;
    PyObject **builtin;  /* second base, or NULL */
    int parent;          /* index of the runq base (0: runq.Error) */
} rqpy_error_spec;

static const rqpy_error_spec specs[] = {
    {RUNQ_EINVAL, "runq.InvalidArgument", "An argument is invalid.", &PyExc_ValueError, 0},
    {RUNQ_ENOMEM, "runq.OutOfMemory", "The engine ran out of memory.", &PyExc_MemoryError, 0},
    {RUNQ_EURL, "runq.InvalidURL", "The backend URL cannot be parsed or is unsupported.", NULL, 1},
    {RUNQ_ENOTASK, "runq.UnknownTask", "No task of that name is registered.", &PyExc_LookupError, 0},
    {RUNQ_ETOOBIG, "runq.PayloadTooLarge", "The payload exceeds the client's max_payload.", NULL, 1},
    {RUNQ_EDUPLICATE, "runq.DuplicateJob", "A job with the same unique key exists; .job_id is its id.", NULL, 0},
    {RUNQ_EFULL, "runq.QueueFull", "The queue holds max_len jobs.", NULL, 0},
    {RUNQ_ETIMEOUT, "runq.Timeout", "The wait ended before there was an answer.", &PyExc_TimeoutError, 0},
    {RUNQ_ESTALE, "runq.LeaseLost", "The job's lease is no longer held by this worker.", NULL, 0},
    {RUNQ_ECLOSED, "runq.Closed", "The client or worker is stopping or stopped.", NULL, 0},
    {RUNQ_EIO, "runq.BackendError", "The backend could not be reached or failed.", &PyExc_ConnectionError, 0},
    {RUNQ_EDURABILITY, "runq.DurabilityUnknown", "Written, but fewer replicas confirmed than asked.", NULL, 0},
    {RUNQ_ENOTFOUND, "runq.NotFound", "No job with that id (or it expired).", &PyExc_LookupError, 0},
    {RUNQ_EPROTO, "runq.ProtocolError", "Malformed wire data.", NULL, 0},
    {RUNQ_ESTATE, "runq.InvalidState", "The call is not valid in the object's state.", NULL, 0},
};

int rqpy_errors_init(PyObject *module, rqpy_state *st)
{
    st->errors[0] = PyErr_NewExceptionWithDoc(
        "runq.Error", "Base class of every runq engine error; .code is the engine code.",
        NULL, NULL);
    if (st->errors[0] == NULL || PyModule_AddObjectRef(module, "Error", st->errors[0]) < 0)
        return -1;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const rqpy_error_spec *s = &specs[i];
        PyObject *parent = st->errors[s->parent];
        PyObject *bases = s->builtin ? PyTuple_Pack(2, parent, *s->builtin)
                                     : PyTuple_Pack(1, parent);
        if (bases == NULL)
            return -1;
        PyObject *cls = PyErr_NewExceptionWithDoc(s->name, s->doc, bases, NULL);
        Py_DECREF(bases);
        if (cls == NULL)
            return -1;
        st->errors[-s->code] = cls;
        if (PyModule_AddObjectRef(module, s->name + 5, cls) < 0)
            return -1;
    }
    return 0;
}

PyObject *rqpy_error_new(rqpy_state *st, int code, const char *detail,
                         const char *job_id)
{
    PyObject *cls = (code < 0 && -code < RQPY_NERRORS && st->errors[-code])
                        ? st->errors[-code] : st->errors[0];
    /* Take the detail before any other runq call can replace it. */
    PyObject *pydetail = (detail && *detail)
                             ? PyUnicode_DecodeUTF8(detail, (Py_ssize_t)strlen(detail), "replace")
                             : NULL;
    if (detail && *detail && pydetail == NULL)
        return NULL;
    const char *what = runq_strerror(code);
    PyObject *msg = pydetail ? PyUnicode_FromFormat("%s: %U", what, pydetail)
                             : PyUnicode_FromString(what);
    Py_XDECREF(pydetail);
    if (msg == NULL)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(cls, msg);
    Py_DECREF(msg);
    if (exc == NULL)
        return NULL;
    PyObject *pycode = PyLong_FromLong(code);
    PyObject *pyid = job_id ? PyUnicode_FromString(job_id) : Py_NewRef(Py_None);
    if (pycode == NULL || pyid == NULL ||
        PyObject_SetAttrString(exc, "code", pycode) < 0 ||
        PyObject_SetAttrString(exc, "job_id", pyid) < 0) {
        Py_XDECREF(pycode);
        Py_XDECREF(pyid);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(pycode);
    Py_DECREF(pyid);
    return exc;
}

PyObject *rqpy_raise_msg(rqpy_state *st, int code, const char *detail,
                         const char *job_id)
{
    PyObject *exc = rqpy_error_new(st, code, detail, job_id);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *rqpy_raise(rqpy_state *st, int code)
{
    return rqpy_raise_msg(st, code, runq_error_last(), NULL);
}
