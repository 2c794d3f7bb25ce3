/* runq._runq: module definition, state and import-time checks.
 *
 * Multi-phase initialization (PEP 489) with all types and exceptions in the
 * module state: nothing here is a process-wide global except the engine
 * itself. */
#include "module.h"

static struct PyModuleDef rqpy_module;

rqpy_state *rqpy_state_of(PyTypeObject *type)
{
    return PyType_GetModuleState(type);
}

static PyObject *mod_packb(PyObject *module, PyObject *obj)
{
    return rqpy_packb(module, obj);
}

static PyObject *mod_unpackb(PyObject *module, PyObject *data)
{
    return rqpy_unpackb(module, data);
}

static PyObject *mod_make_error(PyObject *module, PyObject *args)
{
    int code;
    const char *detail = NULL, *job_id = NULL;
    if (!PyArg_ParseTuple(args, "i|zz:make_error", &code, &detail, &job_id))
        return NULL;
    return rqpy_error_new(PyModule_GetState(module), code, detail, job_id);
}

static PyObject *mod_strerror(PyObject *module, PyObject *arg)
{
    (void)module;
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(runq_strerror((int)code));
}

/* Registered with atexit: stop every worker while handlers can still run. */
static PyObject *mod_shutdown(PyObject *module, PyObject *unused)
{
    (void)unused;
    rqpy_workers_shutdown(PyModule_GetState(module));
    Py_RETURN_NONE;
}

static PyMethodDef rqpy_methods[] = {
    {"packb", mod_packb, METH_O, "Encode a value as msgpack (runq's argument types only)."},
    {"unpackb", mod_unpackb, METH_O, "Decode one msgpack object."},
    {"make_error", mod_make_error, METH_VARARGS,
     "make_error(code, detail=None, job_id=None) -> the runq exception for an engine code."},
    {"strerror", mod_strerror, METH_O, "Engine description of an error code."},
    {"_shutdown", mod_shutdown, METH_NOARGS, "Stop and free every live worker."},
    {NULL, NULL, 0, NULL},
};

static int add_constants(PyObject *m)
{
    static const struct { const char *name; long value; } consts[] = {
        {"VERSION_NUMBER", RUNQ_VERSION_NUMBER},
        {"ID_LEN", RUNQ_ID_LEN},
        {"NAME_MAX", RUNQ_NAME_MAX},
        {"STATE_SCHEDULED", RUNQ_STATE_SCHEDULED},
        {"STATE_PENDING", RUNQ_STATE_PENDING},
        {"STATE_ACTIVE", RUNQ_STATE_ACTIVE},
        {"STATE_DONE", RUNQ_STATE_DONE},
        {"STATE_DEAD", RUNQ_STATE_DEAD},
        {"EINVAL", RUNQ_EINVAL}, {"ENOMEM", RUNQ_ENOMEM}, {"EURL", RUNQ_EURL},
        {"ENOTASK", RUNQ_ENOTASK}, {"ETOOBIG", RUNQ_ETOOBIG},
        {"EDUPLICATE", RUNQ_EDUPLICATE}, {"EFULL", RUNQ_EFULL},
        {"ETIMEOUT", RUNQ_ETIMEOUT}, {"ESTALE", RUNQ_ESTALE},
        {"ECLOSED", RUNQ_ECLOSED}, {"EIO", RUNQ_EIO},
        {"EDURABILITY", RUNQ_EDURABILITY}, {"ENOTFOUND", RUNQ_ENOTFOUND},
        {"EPROTO", RUNQ_EPROTO}, {"ESTATE", RUNQ_ESTATE},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
            return -1;
    if (PyModule_AddStringConstant(m, "VERSION", RUNQ_VERSION_STRING) < 0)
        return -1;
    return 0;
}

static int register_atexit(PyObject *m)
{
    PyObject *atexit = PyImport_ImportModule("atexit");
    if (atexit == NULL)
        return -1;
    PyObject *fn = PyObject_GetAttrString(m, "_shutdown");
    PyObject *r = fn ? PyObject_CallMethod(atexit, "register", "O", fn) : NULL;
    Py_XDECREF(fn);
    Py_DECREF(atexit);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int rqpy_exec(PyObject *m)
{
    /* Statically linked today, but the check keeps a future shared build
     * from running against an engine of another version. */
    if (runq_version() != RUNQ_VERSION_NUMBER) {
        PyErr_Format(PyExc_ImportError,
                     "runq._runq was compiled for engine %d but loaded engine %d (%s)",
                     RUNQ_VERSION_NUMBER, runq_version(), runq_version_string());
        return -1;
    }
    rqpy_state *st = PyModule_GetState(m);
    if (rqpy_errors_init(m, st) < 0 || rqpy_job_init_type(m, st) < 0 ||
        rqpy_client_init_type(m, st) < 0 || rqpy_worker_init_type(m, st) < 0 ||
        add_constants(m) < 0 || register_atexit(m) < 0)
        return -1;
    return 0;
}

static int rqpy_traverse(PyObject *m, visitproc visit, void *arg)
{
    rqpy_state *st = PyModule_GetState(m);
    if (st == NULL)
        return 0;
    Py_VISIT(st->client_type);
    Py_VISIT(st->worker_type);
    Py_VISIT(st->job_type);
    for (int i = 0; i < RQPY_NERRORS; i++)
        Py_VISIT(st->errors[i]);
    return 0;
}

static int rqpy_clear(PyObject *m)
{
    rqpy_state *st = PyModule_GetState(m);
    if (st == NULL)
        return 0;
    Py_CLEAR(st->client_type);
    Py_CLEAR(st->worker_type);
    Py_CLEAR(st->job_type);
    for (int i = 0; i < RQPY_NERRORS; i++)
        Py_CLEAR(st->errors[i]);
    return 0;
}

static void rqpy_free(void *m)
{
    rqpy_clear((PyObject *)m);
}

static PyModuleDef_Slot rqpy_slots[] = {
    {Py_mod_exec, rqpy_exec},
    {0, NULL},
};

static struct PyModuleDef rqpy_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "runq._runq",
    .m_doc = "C glue between Python and the runq engine (use the runq package).",
    .m_size = sizeof(rqpy_state),
    .m_methods = rqpy_methods,
    .m_slots = rqpy_slots,
    .m_traverse = rqpy_traverse,
    .m_clear = rqpy_clear,
    .m_free = rqpy_free,
};

PyMODINIT_FUNC PyInit__runq(void)
{
    return PyModuleDef_Init(&rqpy_module);
}
