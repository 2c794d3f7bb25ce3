/* runq._runq.Client: one engine client, and the bridge that lets engine
 * threads call Python task handlers.
 *
 * Every call into the engine that can wait on the backend runs with the GIL
 * released. A `busy` count of such calls lets close() wait until none is
 * inside the engine before freeing the handle under them. */
#include "module.h"

#include <time.h>

/* What a registered task's C handler needs to call back into Python. It is
 * owned by the client object and freed (GIL held) only after the engine
 * client is closed, when no engine thread can use it any more. Replaced
 * tasks keep their context until then: a handler of the old registration
 * may still be running. */
typedef struct rqpy_handler {
    struct rqpy_handler *next;
    PyObject *handler;      /* callable(job) -> truthy for success */
    PyObject *fallback;     /* callable(job) or NULL */
    PyTypeObject *job_type; /* strong */
    PyObject *errors;       /* the client's list of stored exceptions */
} rqpy_handler;

typedef struct rqpy_client {
    PyObject_HEAD
    runq_client *client;
    rqpy_handler *handlers;
    PyObject *errors; /* exceptions raised by callbacks, re-raised later */
    int busy;         /* engine calls in progress with the GIL released */
    int closing;
    int nworkers;     /* live Worker objects on this client */
} rqpy_client;

#define RQPY_MAX_STORED_ERRORS 16

/* The raised exception as one normalized object with its traceback
 * (PyErr_GetRaisedException from 3.12 on). */
static PyObject *rqpy_fetch_exception(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

static void rqpy_restore_exception(PyObject *exc)
{
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
}

#define ENGINE_CALL(self, stmt)   \
    do {                          \
        (self)->busy++;           \
        Py_BEGIN_ALLOW_THREADS    \
        stmt;                     \
        Py_END_ALLOW_THREADS      \
        (self)->busy--;           \
    } while (0)

static rqpy_state *client_state(rqpy_client *self)
{
    return rqpy_state_of(Py_TYPE(self));
}

static runq_client *client_get(rqpy_client *self)
{
    if (self->client == NULL || self->closing) {
        rqpy_raise_msg(client_state(self), RUNQ_ECLOSED, "the client is closed", NULL);
        return NULL;
    }
    return self->client;
}

runq_client *rqpy_client_handle(PyObject *client)
{
    return client_get((rqpy_client *)client);
}

void rqpy_client_worker_count(PyObject *client, int delta)
{
    ((rqpy_client *)client)->nworkers += delta;
}

int rqpy_client_reraise(PyObject *client)
{
    rqpy_client *self = (rqpy_client *)client;
    Py_ssize_t n = self->errors ? PyList_GET_SIZE(self->errors) : 0;
    if (n == 0)
        return 0;
    /* Raise the first; report the others now rather than one per call. */
    for (Py_ssize_t i = 1; i < n; i++) {
        rqpy_restore_exception(Py_NewRef(PyList_GET_ITEM(self->errors, i)));
        PyErr_WriteUnraisable(client);
    }
    PyObject *first = Py_NewRef(PyList_GET_ITEM(self->errors, 0));
    if (PyList_SetSlice(self->errors, 0, n, NULL) < 0) {
        Py_DECREF(first);
        return -1;
    }
    rqpy_restore_exception(first);
    return -1;
}

/* ---- engine-thread callbacks ------------------------------------------- */

/* The Python side of a handler is expected to catch everything a task
 * raises; an exception reaching here is a bug in the dispatch code or an
 * interpreter problem. It fails the job with its text and is kept on the
 * client so that the worker's stop/run raises it in the owning thread. */
static void store_callback_error(rqpy_handler *h, runq_job *job)
{
    PyObject *exc = rqpy_fetch_exception();
    if (exc == NULL)
        return;
    PyObject *text = PyObject_Repr(exc);
    const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
    runq_job_set_error(job, s ? s : "python handler dispatch failed");
    Py_XDECREF(text);
    PyErr_Clear();
    /* Keep the first few only: a dispatcher failing on every job must not
     * grow the list without bound; the others are reported right away. */
    if (PyList_GET_SIZE(h->errors) < RQPY_MAX_STORED_ERRORS &&
        PyList_Append(h->errors, exc) == 0) {
        Py_DECREF(exc);
        return;
    }
    PyErr_Clear();
    rqpy_restore_exception(exc); /* steals exc */
    PyErr_WriteUnraisable(NULL);
}

static int call_with_job(rqpy_handler *h, PyObject *fn, runq_job *job)
{
    int rc = 1;
    PyObject *pyjob = rqpy_job_borrow(h->job_type, job);
    if (pyjob == NULL) {
        store_callback_error(h, job);
        return rc;
    }
    PyObject *ret = PyObject_CallOneArg(fn, pyjob);
    if (ret != NULL) {
        int ok = PyObject_IsTrue(ret);
        Py_DECREF(ret);
        if (ok > 0)
            rc = 0;
    }
    if (PyErr_Occurred())
        store_callback_error(h, job);
    rqpy_job_unborrow(pyjob);
    Py_DECREF(pyjob);
    return rc;
}

static int handler_trampoline(runq_job *job, void *userdata)
{
    rqpy_handler *h = userdata;
    PyGILState_STATE g = rqpy_gil_ensure();
    int rc = call_with_job(h, h->handler, job);
    PyGILState_Release(g);
    return rc;
}

static void fallback_trampoline(runq_job *job, void *userdata)
{
    rqpy_handler *h = userdata;
    PyGILState_STATE g = rqpy_gil_ensure();
    call_with_job(h, h->fallback, job);
    PyGILState_Release(g);
}

static void handlers_free(rqpy_handler *h)
{
    while (h != NULL) {
        rqpy_handler *next = h->next;
        Py_XDECREF(h->handler);
        Py_XDECREF(h->fallback);
        Py_XDECREF(h->job_type);
        Py_XDECREF(h->errors);
        PyMem_Free(h);
        h = next;
    }
}

/* ---- life cycle ------------------------------------------------------- */

static int client_init(PyObject *op, PyObject *args, PyObject *kw)
{
    rqpy_client *self = (rqpy_client *)op;
    static char *kwlist[] = {"url", "max_payload", "connect_timeout_ms",
                             "command_timeout_ms", "result_ttl_ms", "compress_threshold", NULL};
    const char *url = NULL;
    runq_client_options o = RUNQ_CLIENT_OPTIONS_INIT;
    Py_ssize_t max_payload = (Py_ssize_t)o.max_payload;
    Py_ssize_t compress_threshold = (Py_ssize_t)o.compress_threshold;
    long long result_ttl = o.result_ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$niiLn:Client", kwlist, &url,
                                     &max_payload, &o.connect_timeout_ms,
                                     &o.command_timeout_ms, &result_ttl, &compress_threshold))
        return -1;
    if (compress_threshold < 0) {
        PyErr_SetString(PyExc_ValueError, "compress_threshold must be >= 0 (0: never compress)");
        return -1;
    }
    o.compress_threshold = (size_t)compress_threshold;
    if (self->client != NULL) {
        rqpy_raise_msg(client_state(self), RUNQ_ESTATE, "Client.__init__ called twice", NULL);
        return -1;
    }
    if (max_payload <= 0) {
        PyErr_SetString(PyExc_ValueError, "max_payload must be > 0");
        return -1;
    }
    o.max_payload = (size_t)max_payload;
    o.result_ttl_ms = result_ttl;
    if (self->errors == NULL && (self->errors = PyList_New(0)) == NULL)
        return -1;
    runq_client *c = NULL;
    int rc;
    const char *detail = "";
    Py_BEGIN_ALLOW_THREADS
    rc = runq_client_open(&c, url, &o);
    if (rc != 0)
        detail = runq_error_last();
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        rqpy_raise_msg(client_state(self), rc, detail, NULL);
        return -1;
    }
    self->client = c;
    return 0;
}

/* Close the engine client, then drop what its threads could have used. */
static int client_close_impl(rqpy_client *self)
{
    if (self->client == NULL)
        return 0;
    if (self->nworkers > 0) {
        rqpy_raise_msg(client_state(self), RUNQ_ESTATE,
                       "close the client's workers before the client", NULL);
        return -1;
    }
    self->closing = 1;
    /* Other Python threads may be inside the engine with the GIL released;
     * let them return before the handle goes away. */
    while (self->busy > 0) {
        Py_BEGIN_ALLOW_THREADS
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
    }
    runq_client *c = self->client;
    self->client = NULL;
    Py_BEGIN_ALLOW_THREADS
    runq_client_close(c);
    Py_END_ALLOW_THREADS
    rqpy_handler *h = self->handlers;
    self->handlers = NULL;
    handlers_free(h);
    return 0;
}

static PyObject *client_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    if (client_close_impl((rqpy_client *)op) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int client_traverse(PyObject *op, visitproc visit, void *arg)
{
    rqpy_client *self = (rqpy_client *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->errors);
    for (rqpy_handler *h = self->handlers; h != NULL; h = h->next) {
        Py_VISIT(h->handler);
        Py_VISIT(h->fallback);
    }
    return 0;
}

static void client_dealloc(PyObject *op)
{
    rqpy_client *self = (rqpy_client *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    /* Workers hold a reference to their client, so none is alive here. */
    if (client_close_impl(self) < 0)
        PyErr_WriteUnraisable(op);
    Py_CLEAR(self->errors);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* ---- tasks ------------------------------------------------------------ */

static PyObject *client_register(PyObject *op, PyObject *args, PyObject *kw)
{
    rqpy_client *self = (rqpy_client *)op;
    static char *kwlist[] = {"name", "handler", "queue", "max_retries",
                             "backoff_min_ms", "backoff_max_ms", "backoff_factor",
                             "backoff_jitter", "timeout_ms", "unique_ttl_ms",
                             "fallback", NULL};
    runq_task_options o = RUNQ_TASK_OPTIONS_INIT;
    const char *name;
    PyObject *handler = Py_None, *fallback = Py_None;
    long long bmin = o.backoff_min_ms, bmax = o.backoff_max_ms;
    long long timeout = o.timeout_ms, unique_ttl = o.unique_ttl_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O$ziLLddLLO:register", kwlist,
                                     &name, &handler, &o.queue, &o.max_retries,
                                     &bmin, &bmax, &o.backoff_factor,
                                     &o.backoff_jitter, &timeout, &unique_ttl,
                                     &fallback))
        return NULL;
    if ((handler != Py_None && !PyCallable_Check(handler)) ||
        (fallback != Py_None && !PyCallable_Check(fallback))) {
        PyErr_SetString(PyExc_TypeError, "handler and fallback must be callable or None");
        return NULL;
    }
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    o.backoff_min_ms = bmin;
    o.backoff_max_ms = bmax;
    o.timeout_ms = timeout;
    o.unique_ttl_ms = unique_ttl;
    rqpy_handler *h = NULL;
    if (handler != Py_None) {
        h = PyMem_Calloc(1, sizeof *h);
        if (h == NULL)
            return PyErr_NoMemory();
        h->handler = Py_NewRef(handler);
        h->fallback = fallback != Py_None ? Py_NewRef(fallback) : NULL;
        h->job_type = (PyTypeObject *)Py_NewRef(client_state(self)->job_type);
        h->errors = Py_NewRef(self->errors);
        o.handler = handler_trampoline;
        o.fallback = h->fallback ? fallback_trampoline : NULL;
        o.userdata = h;
    }
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = runq_task_register(NULL, c, name, &o);
                if (rc != 0) detail = runq_error_last());
    if (rc != 0) {
        handlers_free(h);
        return rqpy_raise_msg(client_state(self), rc, detail, NULL);
    }
    if (h != NULL) {
        h->next = self->handlers;
        self->handlers = h;
    }
    Py_RETURN_NONE;
}

/* ---- enqueue ---------------------------------------------------------- */

/* Metadata (engineer C's block): the `meta` keyword, a mapping of str to
 * str, is taken out of the keywords before they are parsed; its entries
 * point into a copy that is put back into `kw` (which the caller keeps alive
 * for the engine call) together with the entry array. */
static int take_meta(PyObject *kw, PyObject **meta)
{
    *meta = NULL;
    PyObject *m = PyDict_GetItemString(kw, "meta"); /* borrowed */
    if (m == NULL)
        return 0;
    if (m != Py_None && (*meta = PyDict_New()) == NULL)
        return -1;
    if (*meta != NULL && PyDict_Update(*meta, m) < 0) {
        Py_CLEAR(*meta);
        if (PyErr_ExceptionMatches(PyExc_AttributeError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "meta must be a mapping of str to str");
        }
        return -1;
    }
    return PyDict_DelItemString(kw, "meta");
}

static int meta_entries(PyObject *kw, PyObject *meta, runq_enqueue_options *o)
{
    Py_ssize_t n = PyDict_GET_SIZE(meta), pos = 0, i = 0;
    PyObject *holder = PyBytes_FromStringAndSize(NULL, (n ? n : 1) * (Py_ssize_t)sizeof(runq_meta_entry));
    if (holder == NULL)
        return -1;
    runq_meta_entry *e = (runq_meta_entry *)PyBytes_AS_STRING(holder);
    PyObject *k, *v;
    while (PyDict_Next(meta, &pos, &k, &v)) {
        if (!PyUnicode_Check(k) || !PyUnicode_Check(v)) {
            PyErr_Format(PyExc_TypeError, "meta must map str to str (got %.50s: %.50s)",
                         Py_TYPE(k)->tp_name, Py_TYPE(v)->tp_name);
            Py_DECREF(holder);
            return -1;
        }
        Py_ssize_t kl, vl;
        e[i].key = PyUnicode_AsUTF8AndSize(k, &kl);
        e[i].value = e[i].key ? PyUnicode_AsUTF8AndSize(v, &vl) : NULL;
        if (e[i].value == NULL || strlen(e[i].key) != (size_t)kl || strlen(e[i].value) != (size_t)vl) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "meta keys and values must not contain NUL");
            Py_DECREF(holder);
            return -1;
        }
        i++;
    }
    o->meta = e;
    o->nmeta = (size_t)n;
    PyObject *keep = PyTuple_Pack(2, meta, holder);
    Py_DECREF(holder);
    int rc = keep ? PyDict_SetItemString(kw, "meta", keep) : -1;
    Py_XDECREF(keep);
    return rc;
}

/* The options as keyword arguments: one parser for enqueue and for each
 * item of enqueue_many. Strings point into `kw`, which the caller keeps
 * alive (and unshared) for the duration of the engine call. */
static int parse_enqueue_options(PyObject *kw, runq_enqueue_options *o)
{
    static char *kwlist[] = {"queue", "delay_ms", "eta_ms", "priority",
                             "max_retries", "timeout_ms", "ttl_ms", "deadline_ms",
                             "unique_key", "unique_ttl_ms", "replicate",
                             "replicate_timeout_ms", "once_in_ms",
                             /* rate key and unique-until-done */
                             "rate_key", "rate_interval_ms", "unique_until_done", NULL};
    static const runq_enqueue_options init = RUNQ_ENQUEUE_OPTIONS_INIT;
    *o = init;
    long long delay = o->delay_ms, eta = o->eta_ms, timeout = o->timeout_ms;
    long long ttl = o->ttl_ms, deadline = o->deadline_ms, uttl = o->unique_ttl_ms;
    long long once_in = o->once_in_ms;
    long long rate_interval = o->rate_interval_ms;
    int until_done = o->unique_until_done;
    PyObject *meta = NULL;
    if (kw != NULL && take_meta(kw, &meta) < 0)
        return -1;
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL) {
        Py_XDECREF(meta);
        return -1;
    }
    int ok = PyArg_ParseTupleAndKeywords(empty, kw, "|$zLLiiLLLzLiiLzLp:enqueue options",
                                         kwlist, &o->queue, &delay, &eta,
                                         &o->priority, &o->max_retries, &timeout,
                                         &ttl, &deadline, &o->unique_key, &uttl,
                                         &o->replicate, &o->replicate_timeout_ms,
                                         &once_in, &o->rate_key, &rate_interval,
                                         &until_done);
    Py_DECREF(empty);
    if (!ok || (meta != NULL && meta_entries(kw, meta, o) < 0)) {
        Py_XDECREF(meta);
        return -1;
    }
    Py_XDECREF(meta);
    o->delay_ms = delay;
    o->eta_ms = eta;
    o->timeout_ms = timeout;
    o->ttl_ms = ttl;
    o->deadline_ms = deadline;
    o->unique_ttl_ms = uttl;
    o->once_in_ms = once_in;
    o->rate_interval_ms = rate_interval;
    o->unique_until_done = until_done;
    return 0;
}

static PyObject *client_enqueue(PyObject *op, PyObject *args, PyObject *kw)
{
    rqpy_client *self = (rqpy_client *)op;
    const char *task;
    Py_buffer payload;
    if (!PyArg_ParseTuple(args, "sy*:enqueue", &task, &payload))
        return NULL;
    runq_enqueue_options o;
    /* Own a copy of the keywords so no other thread can change them while
     * the engine reads their strings without the GIL. */
    PyObject *kwcopy = kw ? PyDict_Copy(kw) : NULL;
    runq_client *c = NULL;
    if ((kw != NULL && kwcopy == NULL) || parse_enqueue_options(kwcopy, &o) < 0 ||
        (c = client_get(self)) == NULL) {
        Py_XDECREF(kwcopy);
        PyBuffer_Release(&payload);
        return NULL;
    }
    char id[RUNQ_ID_SIZE] = "";
    int rc;
    const char *detail = "";
    rqpy_hooks_enqueue_begin();
    ENGINE_CALL(self, rc = runq_enqueue(c, id, task, payload.buf, (size_t)payload.len, &o);
                if (rc != 0) detail = runq_error_last());
    Py_XDECREF(kwcopy);
    PyBuffer_Release(&payload);
    PyObject *hook_error = rqpy_hooks_enqueue_end();
    if (rc != 0 && hook_error != NULL) { /* a before_enqueue hook refused it */
        rqpy_restore_exception(hook_error); /* steals it, keeps its traceback */
        return NULL;
    }
    Py_XDECREF(hook_error);
    if (rc != 0) {
        int has_id = rc == RUNQ_EDUPLICATE || rc == RUNQ_EDURABILITY;
        return rqpy_raise_msg(client_state(self), rc, detail, has_id && id[0] ? id : NULL);
    }
    return PyUnicode_FromString(id);
}

/* items: a sequence of (task, payload, options dict or None). Returns a list
 * of (code, id, detail) per item, id None when there is none; the Python
 * side turns codes into exceptions. detail is the same for every failed
 * item (the engine keeps the last message only). */
static PyObject *client_enqueue_many(PyObject *op, PyObject *arg)
{
    rqpy_client *self = (rqpy_client *)op;
    PyObject *seq = PySequence_Fast(arg, "enqueue_many takes a sequence of (task, payload, options)");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    runq_enqueue_item *items = PyMem_Calloc((size_t)(n ? n : 1), sizeof *items);
    runq_enqueue_options *opts = PyMem_Calloc((size_t)(n ? n : 1), sizeof *opts);
    Py_buffer *views = PyMem_Calloc((size_t)(n ? n : 1), sizeof *views);
    PyObject *keep = PyList_New(0); /* option dict copies and task strings */
    PyObject *out = NULL;
    Py_ssize_t nviews = 0;
    if (items == NULL || opts == NULL || views == NULL || keep == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *task, *payload, *kw = Py_None;
        if (!PyArg_ParseTuple(it, "UO|O:enqueue_many item", &task, &payload, &kw))
            goto done;
        PyObject *kwcopy = kw == Py_None ? NULL : PyDict_Copy(kw);
        if ((kw != Py_None && kwcopy == NULL) ||
            (kwcopy && PyList_Append(keep, kwcopy) < 0) ||
            PyList_Append(keep, task) < 0) {
            Py_XDECREF(kwcopy);
            goto done;
        }
        Py_XDECREF(kwcopy); /* `keep` holds it */
        if (parse_enqueue_options(kwcopy, &opts[i]) < 0 ||
            PyObject_GetBuffer(payload, &views[i], PyBUF_SIMPLE) < 0)
            goto done;
        nviews = i + 1;
        if ((items[i].task = PyUnicode_AsUTF8(task)) == NULL)
            goto done;
        items[i].args = views[i].buf;
        items[i].args_len = (size_t)views[i].len;
        items[i].opts = &opts[i];
    }
    runq_client *c = client_get(self);
    if (c == NULL)
        goto done;
    const char *detail = "";
    int rc;
    rqpy_hooks_enqueue_begin();
    ENGINE_CALL(self, rc = runq_enqueue_many(c, items, (size_t)n);
                if (rc != 0) detail = runq_error_last());
    /* Hook refusals are per item, with the exception's repr as detail. */
    Py_XDECREF(rqpy_hooks_enqueue_end());
    out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *t = Py_BuildValue("(iss)", items[i].result,
                                    items[i].id[0] ? items[i].id : NULL,
                                    items[i].result ? detail : "");
        if (t == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, t);
    }
done:
    for (Py_ssize_t i = 0; i < nviews; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(items);
    PyMem_Free(opts);
    PyMem_Free(views);
    Py_XDECREF(keep);
    Py_DECREF(seq);
    return out;
}

/* ---- inspection ------------------------------------------------------- */

/* get and wait differ only in the engine call: timeout_ms < -1 means get. */
static PyObject *job_snapshot(rqpy_client *self, const char *id, int timeout_ms)
{
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    runq_job *job = NULL;
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = timeout_ms < -1 ? runq_job_get(&job, c, id)
                                          : runq_job_wait(&job, c, id, timeout_ms);
                if (rc != 0) detail = runq_error_last());
    if (rc != 0)
        return rqpy_raise_msg(client_state(self), rc, detail, NULL);
    return rqpy_job_own(client_state(self)->job_type, job);
}

static PyObject *client_get_job(PyObject *op, PyObject *args)
{
    const char *id;
    if (!PyArg_ParseTuple(args, "s:get", &id))
        return NULL;
    return job_snapshot((rqpy_client *)op, id, -2);
}

static PyObject *client_wait(PyObject *op, PyObject *args)
{
    const char *id;
    int timeout_ms = -1;
    if (!PyArg_ParseTuple(args, "s|i:wait", &id, &timeout_ms))
        return NULL;
    if (timeout_ms < -1) {
        PyErr_SetString(PyExc_ValueError, "timeout_ms must be >= -1");
        return NULL;
    }
    return job_snapshot((rqpy_client *)op, id, timeout_ms);
}

static PyObject *client_queue_configure(PyObject *op, PyObject *args, PyObject *kw)
{
    rqpy_client *self = (rqpy_client *)op;
    static char *kwlist[] = {"queue", "max_len", "rate_limit", "rate_period_ms", "rate_burst",
                             "concurrency_limit", "pause_after_failures", "pause_min_ms",
                             "pause_max_ms", NULL};
    const char *queue;
    runq_queue_options o = RUNQ_QUEUE_OPTIONS_INIT;
    long long v[8] = {o.max_len, o.rate_limit, o.rate_period_ms, o.rate_burst,
                      o.concurrency_limit, o.pause_after_failures, o.pause_min_ms,
                      o.pause_max_ms};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$LLLLLLLL:queue_configure", kwlist, &queue,
                                     &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]))
        return NULL;
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    o.max_len = v[0];
    o.rate_limit = v[1];
    o.rate_period_ms = v[2];
    o.rate_burst = v[3];
    o.concurrency_limit = v[4];
    o.pause_after_failures = v[5];
    o.pause_min_ms = v[6];
    o.pause_max_ms = v[7];
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = runq_queue_configure(c, queue, &o); if (rc != 0) detail = runq_error_last());
    if (rc != 0)
        return rqpy_raise_msg(client_state(self), rc, detail, NULL);
    Py_RETURN_NONE;
}

static PyObject *client_queue_stats(PyObject *op, PyObject *args)
{
    rqpy_client *self = (rqpy_client *)op;
    const char *queue;
    if (!PyArg_ParseTuple(args, "s:queue_stats", &queue))
        return NULL;
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    runq_queue_stats s = {0};
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = runq_queue_stats_get(&s, c, queue); if (rc != 0) detail = runq_error_last());
    if (rc != 0)
        return rqpy_raise_msg(client_state(self), rc, detail, NULL);
    return Py_BuildValue("{sLsLsLsLsLsL}", "scheduled", (long long)s.scheduled, "pending",
                         (long long)s.pending, "active", (long long)s.active, "dead",
                         (long long)s.dead, "paused", (long long)s.paused, "paused_until_ms",
                         (long long)s.paused_until_ms);
}

/* queue_pause(queue) / queue_resume(queue): the engine's manual pause. */
static PyObject *queue_set_paused(PyObject *op, PyObject *args, int paused)
{
    rqpy_client *self = (rqpy_client *)op;
    const char *queue;
    if (!PyArg_ParseTuple(args, paused ? "s:queue_pause" : "s:queue_resume", &queue))
        return NULL;
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = paused ? runq_queue_pause(c, queue) : runq_queue_resume(c, queue);
                if (rc != 0) detail = runq_error_last());
    if (rc != 0)
        return rqpy_raise_msg(client_state(self), rc, detail, NULL);
    Py_RETURN_NONE;
}

static PyObject *client_queue_pause(PyObject *op, PyObject *args)
{
    return queue_set_paused(op, args, 1);
}

static PyObject *client_queue_resume(PyObject *op, PyObject *args)
{
    return queue_set_paused(op, args, 0);
}

static PyObject *client_dead_list(PyObject *op, PyObject *args)
{
    rqpy_client *self = (rqpy_client *)op;
    const char *queue;
    Py_ssize_t cap = 100;
    if (!PyArg_ParseTuple(args, "s|n:dead_list", &queue, &cap))
        return NULL;
    if (cap <= 0 || cap > 1000000) {
        PyErr_SetString(PyExc_ValueError, "cap must be in 1..1000000");
        return NULL;
    }
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    char (*ids)[RUNQ_ID_SIZE] = PyMem_Calloc((size_t)cap, RUNQ_ID_SIZE);
    if (ids == NULL)
        return PyErr_NoMemory();
    size_t count = 0;
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = runq_dead_list(ids, &count, c, queue, (size_t)cap);
                if (rc != 0) detail = runq_error_last());
    PyObject *out = NULL;
    if (rc != 0) {
        rqpy_raise_msg(client_state(self), rc, detail, NULL);
    } else if ((out = PyList_New((Py_ssize_t)count)) != NULL) {
        for (size_t i = 0; i < count; i++) {
            PyObject *s = PyUnicode_FromString(ids[i]);
            if (s == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, s);
        }
    }
    PyMem_Free(ids);
    return out;
}

static PyObject *client_dead_retry(PyObject *op, PyObject *args)
{
    rqpy_client *self = (rqpy_client *)op;
    const char *id;
    if (!PyArg_ParseTuple(args, "s:dead_retry", &id))
        return NULL;
    runq_client *c = client_get(self);
    if (c == NULL)
        return NULL;
    int rc;
    const char *detail = "";
    ENGINE_CALL(self, rc = runq_dead_retry(c, id); if (rc != 0) detail = runq_error_last());
    if (rc != 0)
        return rqpy_raise_msg(client_state(self), rc, detail, NULL);
    Py_RETURN_NONE;
}

static PyObject *client_backend(PyObject *op, void *closure)
{
    (void)closure;
    runq_client *c = client_get((rqpy_client *)op);
    return c ? PyUnicode_FromString(runq_client_backend(c)) : NULL;
}

static PyObject *client_closed(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((rqpy_client *)op)->client == NULL);
}

static PyObject *client_add_hooks(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"before_enqueue", "before_process", "after_process", NULL};
    PyObject *fns[3] = {Py_None, Py_None, Py_None};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOO:add_hooks", kwlist, &fns[0], &fns[1], &fns[2]))
        return NULL;
    runq_client *c = client_get((rqpy_client *)op);
    if (c == NULL ||
        rqpy_hooks_add(c, client_state((rqpy_client *)op)->job_type, fns[0], fns[1], fns[2]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef client_methods[] = {
    {"add_hooks", (PyCFunction)(void (*)(void))client_add_hooks, METH_VARARGS | METH_KEYWORDS,
     "add_hooks(*, before_enqueue=None, before_process=None, after_process=None)"},
    {"register", (PyCFunction)(void (*)(void))client_register, METH_VARARGS | METH_KEYWORDS,
     "Register a task: handler(job) returns truthy for success."},
    {"enqueue", (PyCFunction)(void (*)(void))client_enqueue, METH_VARARGS | METH_KEYWORDS,
     "enqueue(task, payload, **options) -> id"},
    {"enqueue_many", client_enqueue_many, METH_O,
     "enqueue_many([(task, payload, options), ...]) -> [(code, id, detail), ...]"},
    {"get", client_get_job, METH_VARARGS, "get(id) -> Job snapshot"},
    {"wait", client_wait, METH_VARARGS, "wait(id, timeout_ms=-1) -> Job snapshot"},
    {"queue_configure", (PyCFunction)(void (*)(void))client_queue_configure,
     METH_VARARGS | METH_KEYWORDS,
     "queue_configure(queue, *, max_len=0, rate_limit=0, rate_period_ms=1000, rate_burst=0, "
     "concurrency_limit=0, pause_after_failures=0, pause_min_ms=1000, pause_max_ms=300000)"},
    {"queue_pause", client_queue_pause, METH_VARARGS, "queue_pause(queue): no job is leased"},
    {"queue_resume", client_queue_resume, METH_VARARGS, "queue_resume(queue)"},
    {"queue_stats", client_queue_stats, METH_VARARGS, "queue_stats(queue) -> dict"},
    {"dead_list", client_dead_list, METH_VARARGS, "dead_list(queue, cap=100) -> [id]"},
    {"dead_retry", client_dead_retry, METH_VARARGS, "dead_retry(id)"},
    {"close", client_close, METH_NOARGS, "Close the client (its workers first)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef client_getset[] = {
    {"backend", client_backend, NULL, "Backend name: memory or redis.", NULL},
    {"closed", client_closed, NULL, "True once closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot client_slots[] = {
    {Py_tp_doc, "Client(url, *, max_payload=1 MiB, connect_timeout_ms=2000, "
                "command_timeout_ms=5000, result_ttl_ms=3600000)"},
    {Py_tp_init, client_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, client_dealloc},
    {Py_tp_traverse, client_traverse},
    {Py_tp_methods, client_methods},
    {Py_tp_getset, client_getset},
    {0, NULL},
};

static PyType_Spec client_spec = {
    .name = "runq._runq.Client",
    .basicsize = sizeof(rqpy_client),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = client_slots,
};

int rqpy_client_init_type(PyObject *module, rqpy_state *st)
{
    st->client_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &client_spec, NULL);
    if (st->client_type == NULL)
        return -1;
    return PyModule_AddType(module, st->client_type);
}
