/* A connection row: a mutable mapping over one fixed list of keys.
 *
 * A run keeps one row per TCP connection. As a dict of its 52 keys a row is
 * 1.6 kB before its values; here the keys are shared by every row (the layout,
 * set once by pcapstats.pipeline) and a row holds only its values: 464 bytes.
 * It behaves as a dict of those keys, in that order: get, set, delete, keys
 * beyond the layout (kept in a dict of their own), iteration, ==, copy,
 * update, |, pickling. dict(row) gives a plain dict. One difference: a key of
 * the layout deleted and set again is back in its place (a dict puts it last).
 *
 * A row holds scalars (int, str, bool, None); like a dict of scalars it is not
 * tracked by the cyclic collector until something that may hold a reference
 * cycle is stored in it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

typedef struct {
    PyObject_VAR_HEAD
    PyObject *extra;        /* keys beyond the layout (a dict), or NULL */
    PyObject *v[1];         /* ob_size values; NULL: the key was deleted */
} RowObject;

static PyTypeObject RowType;
static PyObject *KEYS;      /* tuple of the layout's keys */
static PyObject *INDEX;     /* key -> int position */
static PyObject *DEFAULTS;  /* tuple: the values of a new row */

/* KeyError(key), as dict raises it (a tuple key stays one argument). */
static void key_error(PyObject *key)
{
    PyObject *args = PyTuple_Pack(1, key);
    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

/* Position of ``key`` in the layout; -1 when it is not one of its keys (no error
 * set), -2 on an error. */
static Py_ssize_t index_of(PyObject *key)
{
    PyObject *i = PyDict_GetItemWithError(INDEX, key);
    if (i == NULL)
        return PyErr_Occurred() ? -2 : -1;
    return PyLong_AsSsize_t(i);
}

static RowObject *row_alloc(Py_ssize_t n)
{
    RowObject *r = PyObject_GC_NewVar(RowObject, &RowType, n);
    if (r == NULL)
        return NULL;
    r->extra = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        r->v[i] = NULL;
    return r;
}

/* The cyclic collector needs to see a row only once it holds an object that can be
 * part of a cycle (dicts do the same for their values). */
static void maybe_track(RowObject *r, PyObject *value)
{
    if (!PyObject_GC_IsTracked((PyObject *)r) && PyObject_IS_GC(value)
            && !(PyTuple_CheckExact(value) && !PyObject_GC_IsTracked(value)))
        PyObject_GC_Track((PyObject *)r);
}

static int row_traverse(RowObject *r, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++)
        Py_VISIT(r->v[i]);
    Py_VISIT(r->extra);
    return 0;
}

static int row_clear(RowObject *r)
{
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++)
        Py_CLEAR(r->v[i]);
    Py_CLEAR(r->extra);
    return 0;
}

static void row_dealloc(RowObject *r)
{
    PyObject_GC_UnTrack(r);
    Py_TRASHCAN_BEGIN(r, row_dealloc)
    row_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
    Py_TRASHCAN_END
}

static Py_ssize_t row_length(RowObject *r)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++)
        n += r->v[i] != NULL;
    return n + (r->extra ? PyDict_GET_SIZE(r->extra) : 0);
}

/* A new reference to the value of ``key``, or NULL without an error set when the
 * row has no such key (NULL with an error set on an error). */
static PyObject *lookup(RowObject *r, PyObject *key)
{
    Py_ssize_t i = index_of(key);
    if (i == -2)
        return NULL;
    if (i >= 0 && i < Py_SIZE(r)) {
        Py_XINCREF(r->v[i]);
        return r->v[i];
    }
    if (r->extra == NULL)
        return NULL;
    PyObject *v = PyDict_GetItemWithError(r->extra, key);
    Py_XINCREF(v);
    return v;
}

static PyObject *row_subscript(RowObject *r, PyObject *key)
{
    PyObject *v = lookup(r, key);
    if (v == NULL && !PyErr_Occurred())
        key_error(key);
    return v;
}

static int row_ass_subscript(RowObject *r, PyObject *key, PyObject *value)
{
    Py_ssize_t i = index_of(key);
    if (i == -2)
        return -1;
    if (i >= 0 && i < Py_SIZE(r)) {
        if (value == NULL && r->v[i] == NULL) {
            key_error(key);
            return -1;
        }
        Py_XINCREF(value);
        Py_XSETREF(r->v[i], value);
        if (value != NULL)
            maybe_track(r, value);
        return 0;
    }
    if (value == NULL) {
        if (r->extra == NULL) {
            key_error(key);
            return -1;
        }
        return PyDict_DelItem(r->extra, key);
    }
    if (r->extra == NULL) {
        /* (check the key is hashable before making the dict) */
        if (PyObject_Hash(key) == -1)
            return -1;
        r->extra = PyDict_New();
        if (r->extra == NULL)
            return -1;
        if (!PyObject_GC_IsTracked((PyObject *)r))
            PyObject_GC_Track((PyObject *)r);
    }
    return PyDict_SetItem(r->extra, key, value);
}

static int row_contains(RowObject *r, PyObject *key)
{
    PyObject *v = lookup(r, key);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_DECREF(v);
    return 1;
}

/* The row as a new dict, keys in the row's order. */
static PyObject *as_dict(RowObject *r)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++) {
        if (r->v[i] != NULL && PyDict_SetItem(d, PyTuple_GET_ITEM(KEYS, i), r->v[i]) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    if (r->extra != NULL && PyDict_Update(d, r->extra) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* f(the row as a new dict): its iteration, its repr */
static PyObject *via_dict(RowObject *r, PyObject *(*f)(PyObject *))
{
    PyObject *d = as_dict(r);
    if (d == NULL)
        return NULL;
    PyObject *out = f(d);
    Py_DECREF(d);
    return out;
}

static PyObject *row_iter(RowObject *r) { return via_dict(r, PyObject_GetIter); }
static PyObject *row_repr(RowObject *r) { return via_dict(r, PyObject_Repr); }

static PyObject *dict_method(RowObject *r, const char *name)
{
    PyObject *d = as_dict(r);
    if (d == NULL)
        return NULL;
    PyObject *out = PyObject_CallMethod(d, name, NULL);
    Py_DECREF(d);
    return out;
}

static PyObject *row_keys(RowObject *r, PyObject *Py_UNUSED(a)) { return dict_method(r, "keys"); }
static PyObject *row_values(RowObject *r, PyObject *Py_UNUSED(a)) { return dict_method(r, "values"); }
static PyObject *row_items(RowObject *r, PyObject *Py_UNUSED(a)) { return dict_method(r, "items"); }

/* get(key, default=None); setdefault (``store``) also stores the default it returns */
static PyObject *get_or(RowObject *r, PyObject *const *args, Py_ssize_t nargs,
                        const char *name, int store)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s expected 1 or 2 arguments, got %zd", name, nargs);
        return NULL;
    }
    PyObject *v = lookup(r, args[0]);
    if (v != NULL || PyErr_Occurred())
        return v;
    v = nargs > 1 ? args[1] : Py_None;
    if (store && row_ass_subscript(r, args[0], v) < 0)
        return NULL;
    Py_INCREF(v);
    return v;
}

static PyObject *row_get(RowObject *r, PyObject *const *args, Py_ssize_t nargs)
{
    return get_or(r, args, nargs, "get", 0);
}

static PyObject *row_setdefault(RowObject *r, PyObject *const *args, Py_ssize_t nargs)
{
    return get_or(r, args, nargs, "setdefault", 1);
}

static PyObject *row_pop(RowObject *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "pop expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *v = lookup(r, args[0]);
    if (v == NULL) {
        if (PyErr_Occurred())
            return NULL;
        if (nargs > 1) {
            Py_INCREF(args[1]);
            return args[1];
        }
        key_error(args[0]);
        return NULL;
    }
    if (row_ass_subscript(r, args[0], NULL) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

static PyObject *row_copy(RowObject *r, PyObject *Py_UNUSED(a))
{
    RowObject *c = row_alloc(Py_SIZE(r));
    if (c == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++) {
        Py_XINCREF(r->v[i]);
        c->v[i] = r->v[i];
    }
    if (r->extra != NULL) {
        c->extra = PyDict_Copy(r->extra);
        if (c->extra == NULL) {
            Py_DECREF(c);
            return NULL;
        }
    }
    if (PyObject_GC_IsTracked((PyObject *)r))
        PyObject_GC_Track((PyObject *)c);
    return (PyObject *)c;
}

/* One element of update(): a key of ``mapping``, or (mapping NULL) a key, value pair. */
static int update_one(RowObject *r, PyObject *mapping, PyObject *item)
{
    int err = -1;
    if (mapping != NULL) {
        PyObject *v = PyObject_GetItem(mapping, item);
        if (v != NULL)
            err = row_ass_subscript(r, item, v);
        Py_XDECREF(v);
        return err;
    }
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2)
        return row_ass_subscript(r, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
    PyObject *pair = PySequence_Fast(item, "cannot convert an update element to a sequence");
    if (pair == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(pair) != 2)
        PyErr_Format(PyExc_ValueError, "an update element has length %zd; 2 is required",
                     PySequence_Fast_GET_SIZE(pair));
    else
        err = row_ass_subscript(r, PySequence_Fast_GET_ITEM(pair, 0),
                                PySequence_Fast_GET_ITEM(pair, 1));
    Py_DECREF(pair);
    return err;
}

/* update(other=(), **kw), as dict.update: a mapping (anything with keys()) or an
 * iterable of key, value pairs. */
static int update_from(RowObject *r, PyObject *other)
{
    if (PyDict_Check(other)) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(other, &pos, &k, &v)) {
            Py_INCREF(k);
            Py_INCREF(v);
            int err = row_ass_subscript(r, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (err < 0)
                return -1;
        }
        return 0;
    }
    PyObject *mapping = NULL, *it, *item;
    if (PyObject_HasAttrString(other, "keys")) {
        PyObject *keys = PyObject_CallMethod(other, "keys", NULL);
        if (keys == NULL)
            return -1;
        it = PyObject_GetIter(keys);
        Py_DECREF(keys);
        mapping = other;
    } else {
        it = PyObject_GetIter(other);
    }
    if (it == NULL)
        return -1;
    while ((item = PyIter_Next(it)) != NULL) {
        int err = update_one(r, mapping, item);
        Py_DECREF(item);
        if (err < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *row_update(RowObject *r, PyObject *args, PyObject *kw)
{
    PyObject *other = NULL;
    if (!PyArg_UnpackTuple(args, "update", 0, 1, &other))
        return NULL;
    if (other != NULL && update_from(r, other) < 0)
        return NULL;
    if (kw != NULL && update_from(r, kw) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *restore_fn;    /* this module's restore() */

/* Pickled as restore(keys, values, absent, extra): ``absent`` the positions of deleted
 * keys (none, as a rule). The keys come along, one copy per pickle (the pickler shares
 * the tuple), so a process that never set the layout reads rows back alike. */
static PyObject *row_reduce(RowObject *r, PyObject *Py_UNUSED(a))
{
    Py_ssize_t n = Py_SIZE(r);
    PyObject *values = PyTuple_New(n), *absent = PyList_New(0), *out = NULL;
    if (values == NULL || absent == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = r->v[i];
        if (v == NULL) {
            PyObject *pos = PyLong_FromSsize_t(i);
            int err = pos == NULL ? -1 : PyList_Append(absent, pos);
            Py_XDECREF(pos);
            if (err < 0)
                goto done;
            v = Py_None;
        }
        Py_INCREF(v);
        PyTuple_SET_ITEM(values, i, v);
    }
    PyObject *gone = PyList_AsTuple(absent);
    if (gone == NULL)
        goto done;
    out = Py_BuildValue("O(OONO)", restore_fn, KEYS, values, gone,
                        r->extra ? r->extra : Py_None);
done:
    Py_XDECREF(values);
    Py_XDECREF(absent);
    return out;
}

static PyObject *row_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(a, &RowType))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *da = NULL, *db = NULL, *out = NULL;
    da = as_dict((RowObject *)a);
    if (da == NULL)
        return NULL;
    if (PyObject_TypeCheck(b, &RowType)) {
        db = as_dict((RowObject *)b);
    } else if (PyDict_Check(b)) {
        db = b;
        Py_INCREF(db);
    } else {
        Py_DECREF(da);
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (db != NULL)
        out = PyObject_RichCompare(da, db, op);
    Py_DECREF(da);
    Py_XDECREF(db);
    return out;
}

static PyObject *row_clear_method(RowObject *r, PyObject *Py_UNUSED(a))
{
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++)
        Py_CLEAR(r->v[i]);
    if (r->extra != NULL)
        PyDict_Clear(r->extra);
    Py_RETURN_NONE;
}

/* popitem(): the last pair, removed (LIFO, as dict's); KeyError when empty */
static PyObject *row_popitem(RowObject *r, PyObject *Py_UNUSED(a))
{
    if (r->extra != NULL && PyDict_GET_SIZE(r->extra) > 0)
        return PyObject_CallMethod(r->extra, "popitem", NULL);
    for (Py_ssize_t i = Py_SIZE(r) - 1; i >= 0; i--) {
        if (r->v[i] != NULL) {
            PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(KEYS, i), r->v[i]);
            if (pair != NULL)
                Py_CLEAR(r->v[i]);
            return pair;
        }
    }
    PyErr_SetString(PyExc_KeyError, "popitem(): dictionary is empty");
    return NULL;
}

static PyObject *row_reversed(RowObject *r, PyObject *Py_UNUSED(a))
{
    PyObject *keys = row_keys(r, NULL);
    if (keys == NULL)
        return NULL;
    PyObject *out = PyObject_CallMethod(keys, "__reversed__", NULL);
    Py_DECREF(keys);
    return out;
}

/* row | other and other | row: a new dict, as dict | dict gives (either side a row or a
 * dict); row |= other updates the row, as dict |= does. */
static PyObject *as_plain(PyObject *o)
{
    if (PyObject_TypeCheck(o, &RowType))
        return as_dict((RowObject *)o);
    if (PyDict_Check(o)) {
        Py_INCREF(o);
        return o;
    }
    return NULL;
}

static PyObject *row_or(PyObject *a, PyObject *b)
{
    PyObject *da = as_plain(a), *db = NULL, *out = NULL;
    if (da == NULL && PyErr_Occurred())
        return NULL;
    if (da != NULL)
        db = as_plain(b);
    if (da == NULL || db == NULL) {
        Py_XDECREF(da);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NOTIMPLEMENTED;
    }
    out = PyNumber_Or(da, db);
    Py_DECREF(da);
    Py_DECREF(db);
    return out;
}

static PyObject *row_ior(RowObject *r, PyObject *other)
{
    if (update_from(r, other) < 0)
        return NULL;
    Py_INCREF(r);
    return (PyObject *)r;
}

static PyNumberMethods row_as_number = {
    .nb_or = row_or,
    .nb_inplace_or = (binaryfunc)row_ior,
};

static PyObject *row_sizeof(RowObject *r, PyObject *Py_UNUSED(a))
{
    return PyLong_FromSsize_t(offsetof(RowObject, v) + Py_SIZE(r) * sizeof(PyObject *));
}

static PyMethodDef row_methods[] = {
    {"get", (PyCFunction)(void (*)(void))row_get, METH_FASTCALL, "get(key, default=None)"},
    {"keys", (PyCFunction)row_keys, METH_NOARGS, "The keys, as a dict's keys view."},
    {"values", (PyCFunction)row_values, METH_NOARGS, "The values, as a dict's values view."},
    {"items", (PyCFunction)row_items, METH_NOARGS, "The pairs, as a dict's items view."},
    {"setdefault", (PyCFunction)(void (*)(void))row_setdefault, METH_FASTCALL,
     "setdefault(key, default=None)"},
    {"pop", (PyCFunction)(void (*)(void))row_pop, METH_FASTCALL, "pop(key[, default])"},
    {"copy", (PyCFunction)row_copy, METH_NOARGS, "A new row of the same keys and values."},
    {"__copy__", (PyCFunction)row_copy, METH_NOARGS, NULL},
    {"update", (PyCFunction)(void (*)(void))row_update, METH_VARARGS | METH_KEYWORDS,
     "update(other=(), **kw), as dict.update."},
    {"__reduce__", (PyCFunction)row_reduce, METH_NOARGS, NULL},
    {"__sizeof__", (PyCFunction)row_sizeof, METH_NOARGS, NULL},
    {"__reversed__", (PyCFunction)row_reversed, METH_NOARGS, NULL},
    {"clear", (PyCFunction)row_clear_method, METH_NOARGS, "Remove every key."},
    {"popitem", (PyCFunction)row_popitem, METH_NOARGS,
     "Remove and return the last (key, value) pair."},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods row_as_mapping = {
    (lenfunc)row_length, (binaryfunc)row_subscript, (objobjargproc)row_ass_subscript,
};

static PySequenceMethods row_as_sequence = {
    .sq_contains = (objobjproc)row_contains,
};

static PyTypeObject RowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pcapstats._row.Row",
    .tp_doc = PyDoc_STR("A connection row: a dict-like mapping over the run's row keys."),
    .tp_basicsize = offsetof(RowObject, v),
    .tp_itemsize = sizeof(PyObject *),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_MAPPING,
    .tp_dealloc = (destructor)row_dealloc,
    .tp_free = PyObject_GC_Del,
    .tp_traverse = (traverseproc)row_traverse,
    .tp_clear = (inquiry)row_clear,
    .tp_repr = (reprfunc)row_repr,
    .tp_as_mapping = &row_as_mapping,
    .tp_as_sequence = &row_as_sequence,
    .tp_as_number = &row_as_number,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_richcompare = row_richcompare,
    .tp_iter = (getiterfunc)row_iter,
    .tp_methods = row_methods,
};

static PyObject *set_layout(PyObject *keys, PyObject *defaults)
{
    if (!PyTuple_CheckExact(keys) || !PyTuple_CheckExact(defaults)
            || PyTuple_GET_SIZE(keys) != PyTuple_GET_SIZE(defaults)) {
        PyErr_SetString(PyExc_TypeError, "layout(keys, defaults): two tuples of one length");
        return NULL;
    }
    if (KEYS != NULL) {
        /* rows made under the layout read their values by position: it may get new
         * defaults, not other keys */
        int same = PyObject_RichCompareBool(keys, KEYS, Py_EQ);
        if (same < 0)
            return NULL;
        if (!same) {
            PyErr_SetString(PyExc_ValueError,
                            "layout(keys, defaults): rows exist under other keys");
            return NULL;
        }
    }
    PyObject *index = PyDict_New();
    if (index == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys); i++) {
        PyObject *pos = PyLong_FromSsize_t(i);
        if (pos == NULL || PyDict_SetItem(index, PyTuple_GET_ITEM(keys, i), pos) < 0) {
            Py_XDECREF(pos);
            Py_DECREF(index);
            return NULL;
        }
        Py_DECREF(pos);
    }
    if (PyDict_GET_SIZE(index) != PyTuple_GET_SIZE(keys)) {
        Py_DECREF(index);
        PyErr_SetString(PyExc_ValueError, "layout(keys, defaults): a key is repeated");
        return NULL;
    }
    Py_INCREF(keys);
    Py_INCREF(defaults);
    Py_XSETREF(KEYS, keys);
    Py_XSETREF(DEFAULTS, defaults);
    Py_XSETREF(INDEX, index);
    Py_RETURN_NONE;
}

static PyObject *layout(PyObject *self, PyObject *args)
{
    PyObject *keys, *defaults;
    if (!PyArg_ParseTuple(args, "OO:layout", &keys, &defaults))
        return NULL;
    return set_layout(keys, defaults);
}

/* A row of the values of ``values`` (a tuple of the layout's length), in order. */
static PyObject *row_of(PyObject *values)
{
    Py_ssize_t n = PyTuple_GET_SIZE(values);
    RowObject *r = row_alloc(n);
    if (r == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(values, i);
        Py_INCREF(v);
        r->v[i] = v;
        maybe_track(r, v);
    }
    return (PyObject *)r;
}

static PyObject *new_row(PyObject *self, PyObject *Py_UNUSED(a))
{
    if (DEFAULTS == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pcapstats._row: no layout set");
        return NULL;
    }
    return row_of(DEFAULTS);
}

static PyObject *restore(PyObject *self, PyObject *args)
{
    PyObject *keys, *values, *absent, *extra;
    if (!PyArg_ParseTuple(args, "O!O!O!O:restore", &PyTuple_Type, &keys, &PyTuple_Type, &values,
                          &PyTuple_Type, &absent, &extra))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(values);
    if (PyTuple_GET_SIZE(keys) != n) {
        PyErr_SetString(PyExc_ValueError, "restore: keys and values of different lengths");
        return NULL;
    }
    if (KEYS == NULL) {
        /* a process that reads rows before it set a layout (a Dask worker, say): theirs */
        PyObject *defaults = PyTuple_New(n);
        if (defaults == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_INCREF(Py_None);
            PyTuple_SET_ITEM(defaults, i, Py_None);
        }
        PyObject *ok = set_layout(keys, defaults);
        Py_DECREF(defaults);
        if (ok == NULL)
            return NULL;
        Py_DECREF(ok);
    }
    int same = keys == KEYS ? 1 : PyObject_RichCompareBool(keys, KEYS, Py_EQ);
    if (same < 0)
        return NULL;
    PyObject *out;
    if (same) {
        out = row_of(values);
        if (out == NULL)
            return NULL;
    } else {
        /* rows of another layout (another version of pcapstats): a plain dict of theirs */
        out = PyDict_New();
        for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
            if (PyDict_SetItem(out, PyTuple_GET_ITEM(keys, i), PyTuple_GET_ITEM(values, i)) < 0)
                Py_CLEAR(out);
        }
        if (out == NULL)
            return NULL;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(absent); k++) {
        Py_ssize_t i = PyNumber_AsSsize_t(PyTuple_GET_ITEM(absent, k), PyExc_IndexError);
        if (i == -1 && PyErr_Occurred())
            goto fail;
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_ValueError, "restore: an absent position out of range");
            goto fail;
        }
        if (same)
            Py_CLEAR(((RowObject *)out)->v[i]);
        else if (PyDict_DelItem(out, PyTuple_GET_ITEM(keys, i)) < 0)
            goto fail;
    }
    if (extra != Py_None) {
        int err = same ? update_from((RowObject *)out, extra) : PyDict_Update(out, extra);
        if (err < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"layout", layout, METH_VARARGS,
     "layout(keys, defaults): the keys of every row made from now on, and a new row's values."},
    {"new", new_row, METH_NOARGS, "new() -> Row with the layout's keys and default values."},
    {"restore", restore, METH_VARARGS, "restore(keys, values, absent, extra): a pickled row."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pcapstats._row",
    "Connection rows: dict-like mappings that share their keys.", -1, methods,
};

PyMODINIT_FUNC PyInit__row(void)
{
    if (PyType_Ready(&RowType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RowType);
    if (PyModule_AddObject(m, "Row", (PyObject *)&RowType) < 0) {
        Py_DECREF(&RowType);
        Py_DECREF(m);
        return NULL;
    }
    restore_fn = PyObject_GetAttrString(m, "restore");
    if (restore_fn == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
