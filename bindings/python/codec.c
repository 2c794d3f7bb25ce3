/* msgpack <-> Python values, in C so that the package needs nothing from
 * PyPI at run time.
 *
 * Only the types every runq language shares are accepted: None, bool, int
 * (64-bit), float, str, bytes, list/tuple (arrays) and dict (maps). Anything
 * else is a TypeError whose .path attribute says where in the value it was,
 * so the caller can name the offending argument. */
#include "module.h"

#include <msgpack.h>

/* msgpack-c's unpacker has a fixed stack of 32 nested containers
 * (MSGPACK_EMBED_STACK_SIZE, in a header the public one does not include);
 * refuse deeper values when encoding so that whatever we write can be read
 * back by every engine and binding built on msgpack-c. */
#define RQPY_MAX_DEPTH 32

typedef struct packer {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    PyObject *path; /* list of keys/indexes, filled while unwinding an error */
} packer;

static int pack_fail_nomem(void)
{
    PyErr_NoMemory();
    return -1;
}

/* Record where the error happened; the innermost key ends up last. */
static int path_push(packer *p, PyObject *key)
{
    if (p->path == NULL && (p->path = PyList_New(0)) == NULL)
        return -1;
    return PyList_Insert(p->path, 0, key);
}

static int path_push_index(packer *p, Py_ssize_t i)
{
    PyObject *k = PyLong_FromSsize_t(i);
    if (k == NULL)
        return -1;
    int rc = path_push(p, k);
    Py_DECREF(k);
    return rc;
}

static int pack_obj(packer *p, PyObject *o, int depth);

static int pack_array(packer *p, PyObject *seq, int depth)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    if (msgpack_pack_array(&p->pk, (size_t)n) != 0)
        return pack_fail_nomem();
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pack_obj(p, items[i], depth + 1) < 0) {
            path_push_index(p, i);
            return -1;
        }
    }
    return 0;
}

static int pack_map(packer *p, PyObject *d, int depth)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    if (msgpack_pack_map(&p->pk, (size_t)PyDict_GET_SIZE(d)) != 0)
        return pack_fail_nomem();
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (pack_obj(p, k, depth + 1) < 0 || pack_obj(p, v, depth + 1) < 0) {
            path_push(p, k);
            return -1;
        }
    }
    return 0;
}

static int pack_int(packer *p, PyObject *o)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0)
        return msgpack_pack_int64(&p->pk, v) == 0 ? 0 : pack_fail_nomem();
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
            return msgpack_pack_uint64(&p->pk, u) == 0 ? 0 : pack_fail_nomem();
        PyErr_Clear();
    }
    PyErr_SetString(PyExc_TypeError, "cannot encode int outside the 64-bit range");
    return -1;
}

static int pack_obj(packer *p, PyObject *o, int depth)
{
    int rc;
    if (depth >= RQPY_MAX_DEPTH) {
        PyErr_Format(PyExc_TypeError, "cannot encode values nested deeper than %d levels",
                     RQPY_MAX_DEPTH);
        return -1;
    }
    if (o == Py_None)
        rc = msgpack_pack_nil(&p->pk);
    else if (o == Py_True)
        rc = msgpack_pack_true(&p->pk);
    else if (o == Py_False)
        rc = msgpack_pack_false(&p->pk);
    else if (PyLong_Check(o))
        return pack_int(p, o);
    else if (PyFloat_Check(o))
        rc = msgpack_pack_double(&p->pk, PyFloat_AS_DOUBLE(o));
    else if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL) {
            /* Lone surrogates: not text any other language can read. */
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "cannot encode str that is not valid UTF-8");
            return -1;
        }
        rc = msgpack_pack_str_with_body(&p->pk, s, (size_t)n);
    } else if (PyBytes_Check(o))
        rc = msgpack_pack_bin_with_body(&p->pk, PyBytes_AS_STRING(o),
                                        (size_t)PyBytes_GET_SIZE(o));
    else if (PyList_Check(o) || PyTuple_Check(o)) {
        /* No Python code runs while packing, so the sequence cannot change
         * size under us; PySequence_Fast just gives one code path. */
        PyObject *seq = PySequence_Fast(o, "");
        if (seq == NULL)
            return -1;
        rc = pack_array(p, seq, depth);
        Py_DECREF(seq);
        return rc;
    } else if (PyDict_Check(o))
        return pack_map(p, o, depth);
    else {
        PyErr_Format(PyExc_TypeError, "cannot encode value of type %.200s "
                     "(runq arguments are None, bool, int, float, str, bytes, "
                     "list, tuple or dict)", Py_TYPE(o)->tp_name);
        return -1;
    }
    return rc == 0 ? 0 : pack_fail_nomem();
}

PyObject *rqpy_packb(PyObject *module, PyObject *obj)
{
    (void)module;
    packer p = {.path = NULL};
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer_init(&p.pk, &p.sb, msgpack_sbuffer_write);
    PyObject *out = NULL;
    if (pack_obj(&p, obj, 0) == 0) {
        out = PyBytes_FromStringAndSize(p.sb.data, (Py_ssize_t)p.sb.size);
    } else if (p.path != NULL && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *path = PyList_AsTuple(p.path);
        if (path == NULL || PyObject_SetAttrString(value, "path", path) < 0)
            PyErr_Clear(); /* the TypeError without a path is still right */
        Py_XDECREF(path);
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(p.path);
    msgpack_sbuffer_destroy(&p.sb);
    return out;
}

static PyObject *from_object(const msgpack_object *o);

static PyObject *from_map(const msgpack_object_map *m)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (uint32_t i = 0; i < m->size; i++) {
        PyObject *k = from_object(&m->ptr[i].key);
        PyObject *v = k ? from_object(&m->ptr[i].val) : NULL;
        /* Arrays decode to lists, which cannot be keys: other languages
         * may write them, so make them tuples rather than fail. */
        if (v != NULL && PyList_Check(k)) {
            PyObject *t = PyList_AsTuple(k);
            Py_SETREF(k, t);
        }
        if (k == NULL || v == NULL || PyDict_SetItem(d, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return d;
}

static PyObject *from_object(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN:
        return PyBool_FromLong(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return PyLong_FromUnsignedLongLong(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return PyLong_FromLongLong(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return PyFloat_FromDouble(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return PyUnicode_DecodeUTF8(o->via.str.ptr, (Py_ssize_t)o->via.str.size, "strict");
    case MSGPACK_OBJECT_BIN:
        return PyBytes_FromStringAndSize(o->via.bin.ptr, (Py_ssize_t)o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        PyObject *l = PyList_New((Py_ssize_t)o->via.array.size);
        if (l == NULL)
            return NULL;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            PyObject *v = from_object(&o->via.array.ptr[i]);
            if (v == NULL) {
                Py_DECREF(l);
                return NULL;
            }
            PyList_SET_ITEM(l, (Py_ssize_t)i, v);
        }
        return l;
    }
    case MSGPACK_OBJECT_MAP:
        return from_map(&o->via.map);
    default:
        PyErr_Format(PyExc_ValueError, "cannot decode msgpack type %d (ext types are not used by runq)",
                     (int)o->type);
        return NULL;
    }
}

PyObject *rqpy_unpack_buf(const void *buf, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
    PyObject *out = NULL;
    if (r != MSGPACK_UNPACK_SUCCESS)
        PyErr_SetString(PyExc_ValueError, r == MSGPACK_UNPACK_NOMEM_ERROR
                                              ? "msgpack data nested too deeply or out of memory"
                                              : "malformed or truncated msgpack data");
    else if (off != len)
        PyErr_SetString(PyExc_ValueError, "extra bytes after the msgpack object");
    else
        out = from_object(&u.data);
    msgpack_unpacked_destroy(&u);
    return out;
}

PyObject *rqpy_unpackb(PyObject *module, PyObject *data)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = rqpy_unpack_buf(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return out;
}
