/* pcapstats._fastpcap: the per-record loop of a classic pcap file, in C.
 *
 * scan() walks the records of a window of a pcap file and returns them as
 * (ts_ns, linktype, data, orig_len, decoded) tuples, where `decoded` is what
 * Decoder.decode returns on its fast path (Ethernet, IPv4 without options or
 * fragmentation, TCP) and None for every other packet (the Python decoder
 * takes those). It stops, without an error, at the first record it is not
 * sure of: one not wholly in the window, a length over the limit, a record of
 * no bytes, or the stop offset. readers._read_pcap then handles that record
 * (refill, fault, end) in Python, exactly as it does without this module.
 * tests/test_fastpcap.py checks that both paths give the same records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static inline uint32_t rd32(const unsigned char *p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static inline unsigned be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }

static inline uint32_t be32(const unsigned char *p) { return rd32(p, 1); }

/* Decoder.decode's fast path; NULL with no error set when it does not apply. */
static PyObject *decode_fast(const unsigned char *d, Py_ssize_t n, PyObject *six)
{
    if (n < 54)
        return NULL;
    unsigned etype = be16(d + 12), vihl = d[14], total = be16(d + 16), frag = be16(d + 20);
    unsigned proto = d[23], doff = d[46], flags = d[47];
    Py_ssize_t hl = (Py_ssize_t)((doff >> 4) << 2);
    if (!(etype == 0x0800 && vihl == 0x45 && proto == 6 && total >= 20 && !(frag & 0x3FFF)
          && hl >= 20))
        return NULL;
    Py_ssize_t end = 14 + (Py_ssize_t)total, pstart = 34 + hl, missing = 0, a, b;
    if (end > n) {
        missing = end - (n > pstart ? n : pstart);
        if (missing < 0)
            missing = 0;
        a = pstart;
        b = n;
    } else {
        a = pstart;
        b = end;
    }
    Py_ssize_t oend = pstart < n ? pstart : n;      /* data[54:pstart], clamped like a slice */
    int want_opts = (flags & 0x02) && hl > 20 && oend > 54;
    PyObject *src = PyBytes_FromStringAndSize((const char *)d + 26, 4);
    PyObject *dst = PyBytes_FromStringAndSize((const char *)d + 30, 4);
    PyObject *payload = PyBytes_FromStringAndSize(a < b ? (const char *)d + a : NULL,
                                                  a < b ? b - a : 0);
    PyObject *opts = PyBytes_FromStringAndSize(want_opts ? (const char *)d + 54 : NULL,
                                               want_opts ? oend - 54 : 0);
    if (!src || !dst || !payload || !opts) {
        Py_XDECREF(src);
        Py_XDECREF(dst);
        Py_XDECREF(payload);
        Py_XDECREF(opts);
        return NULL;
    }
    PyObject *t = PyTuple_New(11);
    if (!t) {
        Py_DECREF(src);
        Py_DECREF(dst);
        Py_DECREF(payload);
        Py_DECREF(opts);
        return NULL;
    }
    Py_INCREF(six);
    PyTuple_SET_ITEM(t, 0, six);
    PyTuple_SET_ITEM(t, 1, src);
    PyTuple_SET_ITEM(t, 2, dst);
    PyTuple_SET_ITEM(t, 3, PyLong_FromLong((long)be16(d + 34)));
    PyTuple_SET_ITEM(t, 4, PyLong_FromLong((long)be16(d + 36)));
    PyTuple_SET_ITEM(t, 5, PyLong_FromLong((long)flags));
    PyTuple_SET_ITEM(t, 6, PyLong_FromUnsignedLong(be32(d + 38)));
    PyTuple_SET_ITEM(t, 7, PyLong_FromUnsignedLong(be32(d + 42)));
    PyTuple_SET_ITEM(t, 8, payload);
    PyTuple_SET_ITEM(t, 9, PyLong_FromSsize_t(missing));
    PyTuple_SET_ITEM(t, 10, opts);
    for (int i = 3; i < 10; i++) {
        if (PyTuple_GET_ITEM(t, i) == NULL) {
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

PyDoc_STRVAR(scan_doc,
"scan(buf, pos, stop, big_endian, ts_mult, rec_len, linktype, limit, max_records)\n"
"-> (pos, records)\n\n"
"Records of a pcap window from ``pos`` (see the module comment).");

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, stop, rec_len, max_records;
    int big, linktype;
    long long mult;
    unsigned long limit;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nniLnikn", &view, &pos, &stop, &big, &mult, &rec_len,
                          &linktype, &limit, &max_records))
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len;
    PyObject *out = PyList_New(0);
    PyObject *lt = PyLong_FromLong(linktype);
    PyObject *six = PyLong_FromLong(6);
    if (!out || !lt || !six)
        goto fail;
    if (pos < 0 || rec_len < 16 || mult < 0 || mult > 1000000000LL)
        goto done;
    while (PyList_GET_SIZE(out) < max_records && pos < stop && len - pos >= rec_len) {
        const unsigned char *h = buf + pos;
        uint32_t sec = rd32(h, big), frac = rd32(h + 4, big);
        uint32_t incl = rd32(h + 8, big), orig = rd32(h + 12, big);
        if ((unsigned long)incl > limit || (!incl && !orig) || len - pos - rec_len < (Py_ssize_t)incl)
            break;
        const unsigned char *d = h + rec_len;
        /* sec < 2^32 and frac * mult < 2^62: the sum fits in int64 */
        long long ts = (long long)sec * 1000000000LL + (long long)frac * mult;
        PyObject *data = PyBytes_FromStringAndSize((const char *)d, (Py_ssize_t)incl);
        if (!data)
            goto fail;
        PyObject *dec = NULL;
        if (linktype == 1) {
            dec = decode_fast(d, (Py_ssize_t)incl, six);
            if (!dec && PyErr_Occurred()) {
                Py_DECREF(data);
                goto fail;
            }
        }
        if (!dec) {
            dec = Py_None;
            Py_INCREF(dec);
        }
        PyObject *tsobj = PyLong_FromLongLong(ts);
        PyObject *origobj = PyLong_FromUnsignedLong(orig);
        PyObject *rec = PyTuple_New(5);
        if (!tsobj || !origobj || !rec) {
            Py_XDECREF(tsobj);
            Py_XDECREF(origobj);
            Py_XDECREF(rec);
            Py_DECREF(data);
            Py_DECREF(dec);
            goto fail;
        }
        Py_INCREF(lt);
        PyTuple_SET_ITEM(rec, 0, tsobj);
        PyTuple_SET_ITEM(rec, 1, lt);
        PyTuple_SET_ITEM(rec, 2, data);
        PyTuple_SET_ITEM(rec, 3, origobj);
        PyTuple_SET_ITEM(rec, 4, dec);
        int err = PyList_Append(out, rec);
        Py_DECREF(rec);
        if (err)
            goto fail;
        pos += rec_len + (Py_ssize_t)incl;
    }
done:
    PyBuffer_Release(&view);
    Py_DECREF(lt);
    Py_DECREF(six);
    return Py_BuildValue("(nN)", pos, out);
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    Py_XDECREF(lt);
    Py_XDECREF(six);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pcapstats._fastpcap",
    "The per-record loop of classic pcap files, in C (optional; see readers.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastpcap(void) { return PyModule_Create(&module); }
