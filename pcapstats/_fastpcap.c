/* pcapstats._fastpcap: the per-record loop of a classic pcap file, and the TCP fast
 * lane (further down), in C.
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

/* What Decoder.decode reads of a frame it decodes as IPv4 or IPv6 and TCP: where the
 * addresses are (``alen`` bytes each, source first) and the TCP header (d[tcp:]), where the
 * payload is (d[pstart:stop], ``missing`` bytes cut by the snaplen) and whether it keeps
 * the TCP options. */
struct fast_hdr {
    unsigned flags;
    Py_ssize_t addr, alen, tcp, pstart, stop, missing, oend;
    int want_opts;
};

/* Where the link layer of ``linktype`` says an IP packet starts in the frame, as
 * Decoder._decode and _ether_rest find it (Ethernet, 802.1Q/802.1ad tags, Linux cooked
 * v1 and v2, raw IP, BSD NULL and LOOP), with its version (4 or 6) in *version; -1 for
 * anything else (MPLS, PPPoE, other link types, a header cut short: the Python decoder
 * takes those). */
static Py_ssize_t ip_start(int linktype, const unsigned char *d, Py_ssize_t n, int *version)
{
    Py_ssize_t off;
    unsigned etype;
    switch (linktype) {
    case 1:                                 /* Ethernet */
        if (n < 14)
            return -1;
        etype = be16(d + 12);
        off = 14;
        break;
    case 276:                               /* Linux cooked v2: the protocol first */
        if (n < 20)
            return -1;
        etype = be16(d);
        off = 20;
        break;
    case 113:                               /* Linux cooked */
        if (n < 16)
            return -1;
        etype = be16(d + 14);
        off = 16;
        break;
    case 12: case 14: case 101: case 228: case 229:     /* raw IP: by the version */
        if (n < 1 || (d[0] >> 4 != 4 && d[0] >> 4 != 6))
            return -1;
        *version = d[0] >> 4;
        return 0;
    case 0: case 108: {                     /* NULL (host byte order), LOOP (big endian) */
        if (n < 4)
            return -1;
        uint32_t fam = linktype == 108 ? be32(d) : rd32(d, 0);
        if (linktype == 0 && fam > 0xFFFF)
            fam = be32(d);
        *version = fam == 2 ? 4 : 6;
        return fam == 2 || fam == 10 || fam == 24 || fam == 28 || fam == 30 ? 4 : -1;
    }
    default:
        return -1;
    }
    for (int depth = 0; etype == 0x8100 || etype == 0x88A8 || etype == 0x9100
                        || etype == 0x9200; depth++) {
        if (off + 4 > n || depth >= 8)
            return -1;
        etype = be16(d + off + 2);
        off += 4;
    }
    *version = etype == 0x0800 ? 4 : 6;
    return etype == 0x0800 || etype == 0x86DD ? off : -1;
}

/* 1 when the frame is IPv4 without options or fragmentation, or IPv6 without extension
 * headers, carrying TCP, at the start ip_start() gives for ``linktype``, with ``h``
 * filled; else 0 */
static int fast_header(int linktype, const unsigned char *d, Py_ssize_t n,
                       struct fast_hdr *h)
{
    int version = 0;
    Py_ssize_t ip = ip_start(linktype, d, n, &version), tcp, end;
    if (ip < 0)
        return 0;
    const unsigned char *p = d + ip;
    if (version == 4) {
        if (n - ip < 40)
            return 0;
        unsigned vihl = p[0], total = be16(p + 2), frag = be16(p + 6);
        if (!(vihl == 0x45 && p[9] == 6 && total >= 20 && !(frag & 0x3FFF)))
            return 0;
        tcp = ip + 20;
        end = ip + (Py_ssize_t)total;
        h->addr = ip + 12;
        h->alen = 4;
    } else {
        /* Decoder.ipv6 with TCP as the next header: the payload length, 0 for a
           jumbogram or TSO (to the end of the frame) */
        if (n - ip < 60 || p[0] >> 4 != 6 || p[6] != 6)
            return 0;
        unsigned plen = be16(p + 4);
        tcp = ip + 40;
        end = plen ? tcp + (Py_ssize_t)plen : n;
        h->addr = ip + 8;
        h->alen = 16;
    }
    unsigned flags = d[tcp + 13];
    Py_ssize_t hl = (Py_ssize_t)((d[tcp + 12] >> 4) << 2);
    if (hl < 20)
        return 0;
    Py_ssize_t pstart = tcp + hl, missing = 0, stop = end;
    if (end > n) {              /* cut by the snaplen */
        missing = end - (n > pstart ? n : pstart);
        if (missing < 0)
            missing = 0;
        stop = n;
    }
    h->flags = flags;
    h->tcp = tcp;
    h->pstart = pstart;
    h->stop = stop;
    h->missing = missing;
    h->oend = pstart < n ? pstart : n;      /* data[tcp + 20:pstart], clamped like a slice */
    h->want_opts = (flags & 0x02) && hl > 20 && h->oend > tcp + 20;
    return 1;
}

/* Decoder.decode's tuple for a frame fast_header() read into ``h`` (NULL: error set) */
static PyObject *fast_tuple(const unsigned char *d, const struct fast_hdr *h)
{
    Py_ssize_t pstart = h->pstart, stop = h->stop, missing = h->missing, oend = h->oend;
    int want_opts = h->want_opts;
    const unsigned char *a = d + h->addr, *p = d + h->tcp;
    unsigned flags = h->flags;
    PyObject *t = PyTuple_New(11);
    if (t == NULL)
        return NULL;
    PyTuple_SET_ITEM(t, 0, PyLong_FromLong(6));
    PyTuple_SET_ITEM(t, 1, PyBytes_FromStringAndSize((const char *)a, h->alen));
    PyTuple_SET_ITEM(t, 2, PyBytes_FromStringAndSize((const char *)a + h->alen, h->alen));
    PyTuple_SET_ITEM(t, 3, PyLong_FromLong((long)be16(p)));
    PyTuple_SET_ITEM(t, 4, PyLong_FromLong((long)be16(p + 2)));
    PyTuple_SET_ITEM(t, 5, PyLong_FromLong((long)flags));
    PyTuple_SET_ITEM(t, 6, PyLong_FromUnsignedLong(be32(p + 4)));
    PyTuple_SET_ITEM(t, 7, PyLong_FromUnsignedLong(be32(p + 8)));
    PyTuple_SET_ITEM(t, 8, PyBytes_FromStringAndSize(pstart < stop ? (const char *)d + pstart
                                                     : NULL, pstart < stop ? stop - pstart : 0));
    PyTuple_SET_ITEM(t, 9, PyLong_FromSsize_t(missing));
    PyTuple_SET_ITEM(t, 10, PyBytes_FromStringAndSize(want_opts ? (const char *)p + 20 : NULL,
                                                      want_opts ? oend - h->tcp - 20 : 0));
    for (int i = 0; i < 11; i++) {
        if (PyTuple_GET_ITEM(t, i) == NULL) {   /* a failed allocation; the error is set */
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

/* Decoder.decode's tuple for an IPv4 or IPv6 TCP frame fast_header() reads; NULL with no
 * error set for any other. */
static PyObject *decode_fast(int linktype, const unsigned char *d, Py_ssize_t n)
{
    struct fast_hdr h;
    return fast_header(linktype, d, n, &h) ? fast_tuple(d, &h) : NULL;
}

/* A record as the loops give it to Python: (ts, linktype, data, orig_len, decoded),
 * ``decoded`` (stolen) being decode_fast's tuple, or NULL for None. */
static PyObject *new_record(long long ts, PyObject *lt, const unsigned char *d, uint32_t incl,
                            uint32_t orig, PyObject *decoded)
{
    PyObject *data = PyBytes_FromStringAndSize((const char *)d, (Py_ssize_t)incl);
    if (data == NULL) {
        Py_XDECREF(decoded);
        return NULL;
    }
    if (decoded == NULL) {
        decoded = Py_None;
        Py_INCREF(decoded);
    }
    return Py_BuildValue("(LONkN)", ts, lt, data, (unsigned long)orig, decoded);
}

/* new_record() with decode_fast(), appended to ``out`` */
static int add_record(PyObject *out, long long ts, PyObject *lt, int linktype,
                      const unsigned char *d, uint32_t incl, uint32_t orig)
{
    PyObject *dec = decode_fast(linktype, d, (Py_ssize_t)incl);
    if (dec == NULL && PyErr_Occurred())
        return -1;
    PyObject *rec = new_record(ts, lt, d, incl, orig, dec);
    int err = rec == NULL || PyList_Append(out, rec) < 0;
    Py_XDECREF(rec);
    return err ? -1 : 0;
}

/* The record at buf[pos] when it is an ordinary one wholly in the window: its timestamp
 * (ns; sec < 2^32 and frac * mult < 2^62, so the sum fits in int64), captured and original
 * lengths. 0 where the Python loop must take over (see the module comment). */
static inline int ordinary_record(const unsigned char *buf, Py_ssize_t len, Py_ssize_t pos,
                                  Py_ssize_t rec_len, int big, long long mult,
                                  unsigned long limit, long long *ts, uint32_t *incl,
                                  uint32_t *orig)
{
    if (len - pos < rec_len)
        return 0;
    const unsigned char *h = buf + pos;
    *incl = rd32(h + 8, big);
    *orig = rd32(h + 12, big);
    if ((unsigned long)*incl > limit || (!*incl && !*orig)
        || (uint64_t)(len - pos - rec_len) < (uint64_t)*incl)
        return 0;
    *ts = (long long)rd32(h, big) * 1000000000LL + (long long)rd32(h + 4, big) * mult;
    return 1;
}

/* arguments both loops refuse (they then take no record) */
static inline int bad_window(Py_ssize_t pos, Py_ssize_t rec_len, long long mult)
{
    return pos < 0 || rec_len < 16 || mult < 0 || mult > 1000000000LL;
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
    if (!out || !lt)
        goto fail;
    if (bad_window(pos, rec_len, mult))
        goto done;
    long long ts;
    uint32_t incl, orig;
    while (PyList_GET_SIZE(out) < max_records && pos < stop
           && ordinary_record(buf, len, pos, rec_len, big, mult, limit, &ts, &incl, &orig)) {
        if (add_record(out, ts, lt, linktype, buf + pos + rec_len, incl, orig) < 0)
            goto fail;
        pos += rec_len + (Py_ssize_t)incl;
    }
done:
    PyBuffer_Release(&view);
    Py_DECREF(lt);
    return Py_BuildValue("(nN)", pos, out);
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    Py_XDECREF(lt);
    return NULL;
}


/* ------------------------------------------------------------------------------------
 * The TCP fast lane: ConnectionTable.packet for the commonest packet, without Python.
 *
 * lane(table, ts, decoded) handles a plain ACK segment (no SYN, FIN or RST) of a known
 * connection in the state where ConnectionTable.packet would only count it, move Zeek's
 * endpoint states (and record the segment's letter), complete the handshake (the
 * client's ACK after SYN and SYN/ACK) and, for in-order payload with nothing held, hand
 * the bytes on (making the consumer for a first payload): no FIN of the peer is being
 * acknowledged, the ACK tells nothing new and no sweep is due. It then does exactly what
 * packet() does (and, for the body of an HTTP message of known length that this segment
 * does not finish, what HttpStream.feed does) and returns True. On a closed connection
 * still lingering it does what packet() does before it returns there: the counts, Zeek,
 * and the pure ACK of the peer's FIN (teardown_acks); a packet after the linger time is
 * left to packet(), which starts a new connection. For anything else it changes
 * nothing and returns False, and the caller runs packet(). The objects' fields are read
 * and written through their __slots__ offsets, found once by setup_lane().
 */
#include "structmember.h"

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static PyTypeObject *T_conn, *T_half, *T_zeek, *T_app;
static Py_ssize_t c_client_ip, c_client_port, c_last_ts, c_last_pos, c_packets, c_packets_client,
    c_packets_server, c_cstream, c_sstream, c_zeek, c_done, c_hs_step, c_oriented, c_consumer,
    c_synack, c_syn, c_hs_ack, c_hs_complete, c_syn_ts, c_rtt, c_teardown_acks, c_isn_server,
    c_fin_client, c_fin_server, c_closed_by, c_close_ts, z_order_ok, z_synack_first, h_next_seq,
    h_offset, h_pending, h_fin_seq, h_fin_acked, h_from_client, z_orig, z_resp, z_hist,
    a_impl;
static PyObject *L_A, *L_D, *L_a, *L_d, *L_H, *L_h, *L_F, *L_f, *S_client, *S_server, *S_table, *S_now, *S_pos, *S_since, *S_data, *S_packet,
    *S_feed, *S_factory, *S_linger, *ONE;
static int lane_ready = 0;
/* the HTTP classes and their slots, found by setup_http() (further down); the lane takes
 * an HTTP body's bytes itself, and gives the common heads to http_req/http_resp */
static PyTypeObject *T_hstream, *T_dreader, *T_rreader, *T_pending, *T_exchange, *T_qreader;
static PyObject *F_info_of;    /* parser._request_info_of */
static Py_ssize_t hs_protocol, hs_responses, hs_req, hs_resp, hs_unanswered, dr_state,
    dr_last_ts, dr_msg_ts, dr_nl, dr_remaining, dr_body, dr_chunked, dr_gapped, dr_resynced,
    dr_pend, dr_max_hdr, p_ex, p_head, p_connect, p_req_done, p_resp_done, p_resolved,
    x_status, x_ts_response, x_response_head, x_resp_connection, x_set_cookie,
    x_ts_response_end, x_response_body_bytes, x_gap, hs_conn_id, hs_requests, hs_pipelined,
    hs_depth, hs_open, q_pipe, q_replaying, q_last_rest, q_last_info, x_ts_request_end,
    q_start_line, dr_buf, dr_scan, x_request_head, x_store;
static PyObject *H_http1, *H_close, *H_keepalive, *H_connection, *H_setcookie,
    *H_te, *H_cl, *H_popleft, *H_flush, *H_minus1, *H_append, *H_v11, *H_v10, *H_zero;
static int http_ready = 0;     /* http_req and http_resp on */

/* *p, made once: the interned string ``s``; nonzero (the error set) if it cannot be made */
static int interned(PyObject **p, const char *s)
{
    return *p == NULL && (*p = PyUnicode_InternFromString(s)) == NULL;
}

static int slot(PyTypeObject *t, const char *name, Py_ssize_t *out)
{
    PyObject *d = PyDict_GetItemString(t->tp_dict, name);
    if (d == NULL || !PyObject_TypeCheck(d, &PyMemberDescr_Type)
        || PyDescr_TYPE(d) != t
        || ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX
        || ((PyMemberDescrObject *)d)->d_member->offset < (Py_ssize_t)sizeof(PyObject)
        || ((PyMemberDescrObject *)d)->d_member->offset
               > t->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ field", t->tp_name, name);
        return -1;
    }
    *out = ((PyMemberDescrObject *)d)->d_member->offset;
    return 0;
}

PyDoc_STRVAR(setup_lane_doc,
"setup_lane(Connection, HalfStream, ZeekState, AppStream)\n\n"
"Find the slot offsets lane() uses; call once (after setup_http(), which finds the HTTP\n"
"classes' offsets: without it the lane hands every payload to AppStream.data).");

static PyObject *setup_lane(PyObject *self, PyObject *args)
{
    PyTypeObject *t[4];
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyType_Type, &t[0], &PyType_Type, &t[1],
                          &PyType_Type, &t[2], &PyType_Type, &t[3]))
        return NULL;
    lane_ready = 0;         /* the offsets below are rewritten one by one: no lane until all are */
    if (slot(t[0], "client_ip", &c_client_ip) || slot(t[0], "client_port", &c_client_port)
        || slot(t[0], "last_ts", &c_last_ts) || slot(t[0], "last_pos", &c_last_pos)
        || slot(t[0], "packets", &c_packets) || slot(t[0], "packets_client", &c_packets_client)
        || slot(t[0], "packets_server", &c_packets_server)
        || slot(t[0], "cstream", &c_cstream) || slot(t[0], "sstream", &c_sstream)
        || slot(t[0], "zeek", &c_zeek) || slot(t[0], "done", &c_done)
        || slot(t[0], "hs_step", &c_hs_step) || slot(t[0], "oriented", &c_oriented)
        || slot(t[0], "consumer", &c_consumer) || slot(t[0], "synack", &c_synack)
        || slot(t[0], "syn", &c_syn) || slot(t[0], "hs_ack", &c_hs_ack)
        || slot(t[0], "handshake_complete", &c_hs_complete) || slot(t[0], "syn_ts", &c_syn_ts)
        || slot(t[0], "handshake_rtt_ns", &c_rtt)
        || slot(t[0], "teardown_acks", &c_teardown_acks)
        || slot(t[0], "isn_server", &c_isn_server) || slot(t[0], "fin_client", &c_fin_client)
        || slot(t[0], "fin_server", &c_fin_server) || slot(t[0], "closed_by", &c_closed_by)
        || slot(t[0], "close_ts", &c_close_ts)
        || slot(t[2], "order_ok", &z_order_ok)
        || slot(t[2], "synack_before_syn", &z_synack_first)
        || slot(t[1], "next_seq", &h_next_seq) || slot(t[1], "offset", &h_offset)
        || slot(t[1], "pending", &h_pending) || slot(t[1], "fin_seq", &h_fin_seq)
        || slot(t[1], "from_client", &h_from_client) || slot(t[1], "fin_acked", &h_fin_acked)
        || slot(t[2], "orig", &z_orig) || slot(t[2], "resp", &z_resp)
        || slot(t[2], "hist", &z_hist)
        || slot(t[3], "impl", &a_impl))
        return NULL;
    /* each made once; a failure part-way leaves the rest to the next call */
    if (interned(&L_A, "A") || interned(&L_D, "D") || interned(&L_a, "a")
        || interned(&L_d, "d") || interned(&L_H, "H") || interned(&L_h, "h")
        || interned(&L_F, "F") || interned(&L_f, "f") || interned(&S_client, "client")
        || interned(&S_server, "server") || interned(&S_table, "table")
        || interned(&S_now, "now") || interned(&S_pos, "pos")
        || interned(&S_since, "_since_sweep") || interned(&S_data, "data")
        || interned(&S_packet, "packet") || interned(&S_feed, "feed")
        || interned(&S_factory, "factory") || interned(&S_linger, "linger_ns")
        || (!ONE && !(ONE = PyLong_FromLong(1))))
        return NULL;
    for (int i = 0; i < 4; i++)
        Py_INCREF(t[i]);
    Py_XDECREF(T_conn); Py_XDECREF(T_half); Py_XDECREF(T_zeek); Py_XDECREF(T_app);
    T_conn = t[0]; T_half = t[1]; T_zeek = t[2]; T_app = t[3];
    lane_ready = 1;
    Py_RETURN_NONE;
}

/* a set slot holding an exact int */
#define IS_SET_INT(v) ((v) != NULL && PyLong_CheckExact(v))

/* a slot's int value as a C long long; -1 with ok = 0 if it is not a small int */
static long long slot_ll(PyObject *v, int *ok)
{
    if (v == NULL || !PyLong_CheckExact(v)) {
        *ok = 0;
        return -1;
    }
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        *ok = 0;
        return -1;
    }
    return x;
}

/* replace a slot's value (a new reference is given) */
static void slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* set a slot to an int (-1 on error) */
static int slot_set_ll(PyObject *obj, Py_ssize_t off, long long v)
{
    PyObject *o = PyLong_FromLongLong(v);
    if (o == NULL)
        return -1;
    slot_set(obj, off, o);
    return 0;
}

static void slot_set_obj(PyObject *obj, Py_ssize_t off, PyObject *v)
{
    Py_INCREF(v);
    slot_set(obj, off, v);
}

static int slot_add(PyObject *obj, Py_ssize_t off, PyObject *amount)
{
    PyObject *cur = SLOT(obj, off);
    if (cur == NULL) {          /* unset meanwhile: what `obj.field += n` raises */
        PyErr_SetString(PyExc_AttributeError, "a __slots__ field is not set");
        return -1;
    }
    PyObject *v = PyNumber_Add(cur, amount);
    if (v == NULL)
        return -1;
    slot_set(obj, off, v);
    return 0;
}

PyDoc_STRVAR(lane_doc,
"lane(table, ts, decoded) -> bool\n\n"
"ConnectionTable.packet for a plain in-state ACK segment; False: call packet().");

/* The fields of a plain TCP segment the lane reads. */
struct seg {
    PyObject *src, *dst, *sport, *dport;    /* exact bytes and ints (borrowed) */
    int flags;                              /* of SYN, FIN, RST, ACK: ACK, SYN|ACK or FIN|ACK */
    long long seq, ack;
    const char *pl;                         /* the payload: n bytes */
    Py_ssize_t n;
    PyObject *payload;                      /* a bytes object of them (borrowed), or NULL:
                                               made when Python must be given them */
    PyObject *key;                          /* (src, sport, dst, dport) (borrowed), or NULL */
};

static int lane_seg(PyObject *table, PyObject *ts, struct seg *sg, PyObject *pos_in);
static int http_resp_fast(PyObject *st, PyObject *ts, const char *d, Py_ssize_t n);
static int http_req_fast(PyObject *st, PyObject *ts, const char *d, Py_ssize_t n);

/* the segments the lane may take: of the flags SYN, FIN, RST and ACK, an ACK alone, or
 * with SYN or FIN (those without payload) */
#define LANE_FLAGS(f) (((f) & 0x17) == 0x10 || ((f) & 0x17) == 0x12 || ((f) & 0x17) == 0x11)

/* 1: handled, 0: declined (nothing changed), -1: error. ``pos``: the record's position,
 * or NULL to read it from table.pos. */
static int lane_core(PyObject *table, PyObject *ts, PyObject *r, PyObject *pos_in)
{
    int ok = 1;
    if (!lane_ready || !PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 11 || !PyLong_CheckExact(ts))
        return 0;
    PyObject *src = PyTuple_GET_ITEM(r, 1), *dst = PyTuple_GET_ITEM(r, 2);
    PyObject *sport = PyTuple_GET_ITEM(r, 3), *dport = PyTuple_GET_ITEM(r, 4);
    PyObject *payload = PyTuple_GET_ITEM(r, 8);
    long long flags = slot_ll(PyTuple_GET_ITEM(r, 5), &ok);
    long long seq = slot_ll(PyTuple_GET_ITEM(r, 6), &ok);
    long long ack = slot_ll(PyTuple_GET_ITEM(r, 7), &ok);
    long long missing = slot_ll(PyTuple_GET_ITEM(r, 9), &ok);
    if (!ok || !LANE_FLAGS(flags) || missing != 0 || !PyBytes_CheckExact(payload)
        || !PyBytes_CheckExact(src) || !PyBytes_CheckExact(dst)
        || !PyLong_CheckExact(sport) || !PyLong_CheckExact(dport))
        return 0;
    struct seg sg = {src, dst, sport, dport, (int)(flags & 0x17), seq, ack,
                     PyBytes_AS_STRING(payload),
                     PyBytes_GET_SIZE(payload), payload, NULL};
    return lane_seg(table, ts, &sg, pos_in);
}

/* lane_core for a segment already read (LANE_FLAGS; nothing cut by the snaplen) */
static int lane_seg(PyObject *table, PyObject *ts, struct seg *sg, PyObject *pos_in)
{
    int ok = 1;
    PyObject *src = sg->src, *dst = sg->dst, *sport = sg->sport, *dport = sg->dport;
    long long seq = sg->seq, ack = sg->ack;
    Py_ssize_t n = sg->n;
    int syn = sg->flags == 0x12, fin = sg->flags == 0x11;   /* else a plain ACK */
    if ((syn || fin) && n)
        return 0;

    /* -- every test first: nothing changes unless all pass -- */
    PyObject *tdict = PyObject_GetAttr(table, S_table);
    if (tdict == NULL)
        return -1;
    if (!PyDict_CheckExact(tdict)) {
        Py_DECREF(tdict);
        return 0;
    }
    PyObject *key = sg->key;
    if (key != NULL)
        Py_INCREF(key);
    else if ((key = PyTuple_Pack(4, src, sport, dst, dport)) == NULL) {
        Py_DECREF(tdict);
        return -1;
    }
    PyObject *conn = PyDict_GetItemWithError(tdict, key);
    Py_DECREF(key);
    Py_XINCREF(conn);
    Py_DECREF(tdict);
    if (conn == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int result = 0;
    PyObject *since = NULL, *now = NULL, *pos = NULL, *mine = NULL, *sink = NULL, *rd = NULL;
    PyObject *sink_b = NULL;
    long long sweep = 0, remaining = 0;
    PyObject *done = SLOT(conn, c_done);
    if (Py_TYPE(conn) != T_conn || (done != Py_False && done != Py_True))
        goto out;
    int is_done = done == Py_True;      /* closed, lingering: packet() counts and returns */
    if (is_done && (syn || fin))
        goto out;
    PyObject *cip = SLOT(conn, c_client_ip), *cport = SLOT(conn, c_client_port);
    if (cip == NULL || !PyBytes_CheckExact(cip) || cport == NULL || !PyLong_CheckExact(cport))
        goto out;
    int same_end = PyBytes_GET_SIZE(src) == PyBytes_GET_SIZE(dst)
        && memcmp(PyBytes_AS_STRING(src), PyBytes_AS_STRING(dst), PyBytes_GET_SIZE(src)) == 0;
    int port_eq = PyObject_RichCompareBool(sport, dport, Py_EQ);   /* exact ints: no code runs */
    if (port_eq < 0)
        goto fail;
    int c_port_eq = PyObject_RichCompareBool(sport, cport, Py_EQ);
    if (c_port_eq < 0)
        goto fail;
    if (same_end && port_eq)
        goto out;                           /* a connection to itself */
    int from_client = c_port_eq && PyBytes_GET_SIZE(src) == PyBytes_GET_SIZE(cip)
        && memcmp(PyBytes_AS_STRING(src), PyBytes_AS_STRING(cip), PyBytes_GET_SIZE(src)) == 0;
    mine = SLOT(conn, from_client ? c_cstream : c_sstream);
    PyObject *peer = SLOT(conn, from_client ? c_sstream : c_cstream);
    PyObject *zeek = SLOT(conn, c_zeek);
    if (mine == NULL || peer == NULL || zeek == NULL || Py_TYPE(mine) != T_half
        || Py_TYPE(peer) != T_half || Py_TYPE(zeek) != T_zeek) {
        mine = NULL;
        goto out;
    }
    Py_INCREF(mine);            /* packet()'s local: sink.data() may replace the slot */
    /* the fields written below: set, and ints (their old values are dropped: no code runs) */
    if (!IS_SET_INT(SLOT(conn, c_packets))
        || !IS_SET_INT(SLOT(conn, from_client ? c_packets_client : c_packets_server))
        || !IS_SET_INT(SLOT(mine, h_offset))
        || SLOT(conn, c_synack) == NULL || SLOT(conn, c_syn) == NULL
        || SLOT(mine, h_from_client) == NULL)
        goto out;
    /* Zeek (ZeekState.packet): the segment's letter is recorded below if new; for an ACK
     * (with a FIN too) an INACTIVE endpoint becomes PARTIAL, one in the handshake
     * (SYN_SENT, SYN_ACK_SENT) ESTABLISHED, and then so does its peer if in the handshake */
    long long zme = slot_ll(SLOT(zeek, from_client ? z_orig : z_resp), &ok);
    long long zpeer = slot_ll(SLOT(zeek, from_client ? z_resp : z_orig), &ok);
    if (!ok || zme < 0 || zme > 6 || zpeer < 0 || zpeer > 6)
        goto out;
    long long zme2 = zme == 0 ? 3 : (zme == 1 || zme == 2) ? 4 : zme;
    long long zpeer2 = (zme == 1 || zme == 2) && (zpeer == 1 || zpeer == 2) ? 4 : zpeer;
    if (fin && zme2 != 6)               /* a FIN closes the endpoint (unless it was reset) */
        zme2 = 5;
    /* a SYN/ACK: the endpoint (INACTIVE or PARTIAL) to SYN_ACK_SENT; from the responder,
     * the order of SYN and SYN/ACK (order_ok, synack_before_syn) */
    Py_ssize_t zflag = -1;              /* the slot of the flag set to True, if any */
    if (syn) {
        zme2 = zme == 0 || zme == 3 ? 2 : zme;
        zpeer2 = zpeer;
        if (!from_client)
            zflag = zpeer == 1 ? z_order_ok : zpeer == 0 ? z_synack_first : -1;
        if (zflag >= 0 && SLOT(zeek, zflag) == NULL)
            goto out;
    }
    PyObject *hist = SLOT(zeek, z_hist);
    if (hist == NULL || !PyList_CheckExact(hist))
        goto out;
    PyObject *letter = syn ? (from_client ? L_H : L_h) : fin ? (from_client ? L_F : L_f)
                       : from_client ? (n ? L_D : L_A) : (n ? L_d : L_a);
    int has = PySequence_Contains(hist, letter);    /* else ZeekState.packet records it */
    if (has < 0)
        goto fail;
    /* the client's ACK after SYN and SYN/ACK (hs_step 2) completes the handshake */
    long long hs = slot_ll(SLOT(conn, c_hs_step), &ok);
    if (!ok)
        goto out;
    int hs_now = hs == 2 && from_client && !syn;
    /* a SYN/ACK from the server: synack, hs_step 1 -> 2, isn_server (ConnectionTable._syn)
     * and its stream's first sequence number (HalfStream.start) */
    int synack_srv = syn && !from_client;
    if (synack_srv && (!IS_SET_INT(SLOT(conn, c_synack)) || SLOT(conn, c_isn_server) == NULL))
        goto out;
    if (syn && SLOT(mine, h_next_seq) == NULL)
        goto out;
    /* a FIN: the connection closes in packet() when the peer has sent one too */
    if (fin) {
        PyObject *cb = SLOT(conn, c_closed_by);
        if (!IS_SET_INT(SLOT(conn, from_client ? c_fin_client : c_fin_server))
            || slot_ll(SLOT(conn, from_client ? c_fin_server : c_fin_client), &ok) != 0 || !ok
            || cb == NULL || !PyUnicode_CheckExact(cb) || SLOT(conn, c_close_ts) == NULL
            || SLOT(mine, h_fin_seq) == NULL)
            goto out;
    }
    PyObject *syn_ts = SLOT(conn, c_syn_ts);
    if (hs_now && (is_done || syn_ts == NULL || (syn_ts != Py_None && !PyLong_CheckExact(syn_ts))
                   || SLOT(conn, c_hs_ack) == NULL || SLOT(conn, c_hs_complete) == NULL
                   || SLOT(conn, c_rtt) == NULL))
        goto out;
    /* the pure ACK of the peer's FIN is counted once (teardown_acks); on an open
     * connection packet() goes on after it, which is left to Python */
    PyObject *fin_seq = SLOT(peer, h_fin_seq);
    int teardown = 0;
    if (fin_seq == NULL || (fin_seq != Py_None && !is_done))
        goto out;
    if (fin_seq != Py_None && !n && !syn && !fin) {
        PyObject *fin_acked = SLOT(peer, h_fin_acked);
        if (fin_acked != Py_True && fin_acked != Py_False)
            goto out;
        if (fin_acked == Py_False) {
            long long fs = slot_ll(fin_seq, &ok);
            if (!ok)
                goto out;
            teardown = ack == fs;
            if (teardown && !IS_SET_INT(SLOT(conn, c_teardown_acks)))
                goto out;
        }
    }
    if (is_done) {
        /* a packet after the linger time starts a new connection: Python's */
        PyObject *linger = PyObject_GetAttr(table, S_linger);
        if (linger == NULL)
            goto fail;
        long long lg = slot_ll(linger, &ok), t = slot_ll(ts, &ok);
        long long last = slot_ll(SLOT(conn, c_last_ts), &ok), idle;
        Py_DECREF(linger);
        if (!ok || __builtin_sub_overflow(t, last, &idle) || idle > lg)
            goto out;
        goto apply;
    }
    sink_b = SLOT(conn, c_consumer);        /* borrowed until the INCREF below */
    if (n) {
        /* no consumer yet: the first payload, for which packet() makes it */
        if (SLOT(conn, c_oriented) != Py_True || sink_b == NULL)
            goto out;
        long long next = slot_ll(SLOT(mine, h_next_seq), &ok);
        PyObject *pending = SLOT(mine, h_pending);
        if (!ok || next != seq || pending == NULL || !PyDict_CheckExact(pending)
            || PyDict_GET_SIZE(pending) != 0)
            goto out;
    }
    PyObject *pnext = SLOT(peer, h_next_seq);
    if (pnext == NULL)
        goto out;
    if (pnext != Py_None) {
        long long pn = slot_ll(pnext, &ok);
        if (!ok)
            goto out;
        if (ack != pn) {
            int synack = synack_srv ? 1
                : PyObject_IsTrue(SLOT(conn, c_synack) ? SLOT(conn, c_synack) : Py_None);
            int syn = PyObject_IsTrue(SLOT(conn, c_syn) ? SLOT(conn, c_syn) : Py_None);
            if (synack < 0 || syn < 0)
                goto fail;
            if (synack || !syn) {
                /* HalfStream.acked acts only when the ACK is ahead of what was seen */
                long long rel = (long long)(uint32_t)((uint32_t)ack - (uint32_t)pn + 0x80000000u)
                                - 0x80000000LL;
                if (rel > 0 && rel <= 0x40000000)
                    goto out;
            }
        }
    }
    since = PyObject_GetAttr(table, S_since);
    if (since == NULL)
        goto fail;
    sweep = slot_ll(since, &ok);
    if (!ok || sweep >= 8191)
        goto out;
    sink = sink_b;
    Py_XINCREF(sink);          /* packet()'s local too */
    /* rd: the HTTP reader, when a body skips Python */
    if (n && Py_TYPE(sink) == T_app) {
        PyObject *impl = SLOT(sink, a_impl);
        PyObject *fc = SLOT(mine, h_from_client);
        if (impl != NULL && Py_TYPE(impl) == T_hstream && (fc == Py_True || fc == Py_False)) {
            rd = SLOT(impl, fc == Py_True ? hs_req : hs_resp);
            if (rd == NULL || !PyObject_TypeCheck(rd, T_dreader)
                || slot_ll(SLOT(rd, dr_state), &ok) != 2 || !ok)
                rd = NULL;
            else {
                remaining = slot_ll(SLOT(rd, dr_remaining), &ok);
                if (!ok || remaining <= n || SLOT(rd, dr_body) == NULL)
                    rd = NULL;
            }
            Py_XINCREF(rd);
        }
    }

    /* -- what ConnectionTable.packet does for it -- */
apply:
    now = PyObject_GetAttr(table, S_now);
    if (pos_in != NULL) {
        pos = pos_in;
        Py_INCREF(pos);
    } else
        pos = PyObject_GetAttr(table, S_pos);
    if (now == NULL || pos == NULL)
        goto fail;
    int later = PyObject_RichCompareBool(ts, now, Py_GT);
    if (later < 0 || (later && PyObject_SetAttr(table, S_now, ts) < 0))
        goto fail;
    slot_set_obj(conn, c_last_ts, ts);
    slot_set_obj(conn, c_last_pos, pos);
    if (slot_add(conn, c_packets, ONE) < 0
        || slot_add(conn, from_client ? c_packets_client : c_packets_server, ONE) < 0)
        goto fail;
    if (!has && PyList_Append(hist, letter) < 0)
        goto fail;
    if ((zme2 != zme || zpeer2 != zpeer)
        && (slot_set_ll(zeek, from_client ? z_orig : z_resp, zme2) < 0
            || slot_set_ll(zeek, from_client ? z_resp : z_orig, zpeer2) < 0))
        goto fail;
    if (hs_now) {               /* hs_ack, hs_step 3, handshake_complete, handshake_rtt_ns */
        if (syn_ts != Py_None) {
            PyObject *rtt = PyNumber_Subtract(ts, syn_ts);
            if (rtt == NULL)
                goto fail;
            slot_set(conn, c_rtt, rtt);
        }
        slot_set_obj(conn, c_hs_ack, Py_True);
        slot_set_obj(conn, c_hs_complete, Py_True);
        if (slot_set_ll(conn, c_hs_step, 3) < 0)
            goto fail;
    }
    if (teardown) {
        if (slot_add(conn, c_teardown_acks, ONE) < 0)
            goto fail;
        slot_set_obj(peer, h_fin_acked, Py_True);
    }
    if (zflag >= 0)
        slot_set_obj(zeek, zflag, Py_True);
    if (synack_srv && (slot_add(conn, c_synack, ONE) < 0
                       || (hs == 1 && slot_set_ll(conn, c_hs_step, 2) < 0)
                       || (SLOT(conn, c_isn_server) == Py_None
                           && slot_set_ll(conn, c_isn_server, seq) < 0)))
        goto fail;
    /* after a SYN/ACK the stream's first sequence number; after a FIN, its own */
    long long seq1 = (long long)(((uint64_t)seq + 1) & 0xFFFFFFFFu);
    if (syn && SLOT(mine, h_next_seq) == Py_None && slot_set_ll(mine, h_next_seq, seq1) < 0)
        goto fail;
    if (fin) {                  /* ConnectionTable._fin_rst for a FIN that does not close */
        if ((SLOT(mine, h_fin_seq) == Py_None && slot_set_ll(mine, h_fin_seq, seq1) < 0)
            || slot_add(conn, from_client ? c_fin_client : c_fin_server, ONE) < 0)
            goto fail;
        if (PyUnicode_GET_LENGTH(SLOT(conn, c_closed_by)) == 0) {
            slot_set_obj(conn, c_closed_by, from_client ? S_client : S_server);
            slot_set_obj(conn, c_close_ts, ts);
        }
    }
    if (is_done) {              /* packet() returns here for a closed connection */
        result = 1;
        goto out;
    }
    if (n && sink == Py_None) {             /* packet(): sink = conn.consumer = factory(conn) */
        PyObject *made = PyObject_CallMethodObjArgs(table, S_factory, conn, NULL);
        if (made == NULL)
            goto fail;
        Py_SETREF(sink, made);
        Py_INCREF(made);
        slot_set(conn, c_consumer, made);
    }
    if (n) {
        PyObject *nobj = PyLong_FromSsize_t(n);
        if (nobj == NULL)
            goto fail;
        if (rd != NULL) {                    /* HttpStream.feed: more of a body, not its end */
            PyObject *rem = PyLong_FromLongLong(remaining - n);
            if (rem == NULL || slot_add(rd, dr_body, nobj) < 0) {
                Py_XDECREF(rem);
                Py_DECREF(nobj);
                goto fail;
            }
            slot_set(rd, dr_remaining, rem);
            slot_set_obj(rd, dr_last_ts, ts);
        } else {
            PyObject *fc = SLOT(mine, h_from_client);
            /* AppStream.data(): to its HttpStream's feed() when it has one; the common
               segments without Python (http_resp_fast, http_req_fast) */
            PyObject *impl = Py_TYPE(sink) == T_app ? SLOT(sink, a_impl) : NULL;
            int http = impl != NULL && Py_TYPE(impl) == T_hstream;
            int done = 0;
            if (http && (fc == Py_False || fc == Py_True)) {
                Py_INCREF(impl);
                done = fc == Py_False ? http_resp_fast(impl, ts, sg->pl, n)
                                      : http_req_fast(impl, ts, sg->pl, n);
                Py_DECREF(impl);
                if (done < 0) {
                    Py_DECREF(nobj);
                    goto fail;
                }
            }
            PyObject *payload = done ? NULL : sg->payload;
            if (payload != NULL)
                Py_INCREF(payload);
            else if (!done && (payload = PyBytes_FromStringAndSize(sg->pl, n)) == NULL) {
                Py_DECREF(nobj);
                goto fail;
            }
            PyObject *res;
            if (done)
                res = Py_NewRef(Py_None);
            else if (http) {
                Py_INCREF(impl);
                res = PyObject_CallMethodObjArgs(impl, S_feed, fc ? fc : Py_None, ts, payload,
                                                 NULL);
                Py_DECREF(impl);
            } else
                res = PyObject_CallMethodObjArgs(sink, S_data, fc ? fc : Py_None, ts, payload,
                                                 NULL);
            Py_XDECREF(payload);
            if (res == NULL) {
                Py_DECREF(nobj);
                goto fail;
            }
            Py_DECREF(res);
        }
        PyObject *nseq = PyLong_FromUnsignedLong((unsigned long)(((uint64_t)seq + (uint64_t)n)
                                                                 & 0xFFFFFFFFu));
        if (nseq == NULL || slot_add(mine, h_offset, nobj) < 0) {
            Py_XDECREF(nseq);
            Py_DECREF(nobj);
            goto fail;
        }
        Py_DECREF(nobj);
        slot_set(mine, h_next_seq, nseq);
    }
    PyObject *since1 = PyLong_FromLongLong(sweep + 1);
    if (since1 == NULL || PyObject_SetAttr(table, S_since, since1) < 0) {
        Py_XDECREF(since1);
        goto fail;
    }
    Py_DECREF(since1);
    result = 1;
out:
    Py_XDECREF(since);
    Py_XDECREF(now);
    Py_XDECREF(pos);
    Py_XDECREF(mine);
    Py_XDECREF(sink);
    Py_XDECREF(rd);
    Py_DECREF(conn);
    return result;
fail:
    result = -1;
    goto out;
}

static PyObject *lane(PyObject *self, PyObject *args)
{
    PyObject *table, *ts, *r;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOO", &table, &ts, &r))
        return NULL;
    int done = lane_core(table, ts, r, NULL);
    if (done < 0)
        return NULL;
    return PyBool_FromLong(done);
}

/* A loop running the connection table: what it counts of the records it does. */
struct taken {
    long long n, n6, wire, cap, lo, hi, cur;    /* n6: IPv6 of n; cur: position of the last
                                                   record */
    PyObject *packet;                       /* table.packet */
};

/* The connection table's key (src, sport, dst, dport) of a frame's addresses and ports
 * (``a``: the source and destination addresses, ``alen`` bytes each, then the ports: as
 * they follow each other in an IPv4 header without options, or an IPv6 header, and TCP),
 * as a new reference. The keys of recent frames are kept (a direct-mapped cache by those
 * bytes): a connection's packets then share one key instead of making five objects each. */
#define KEY_CACHE 1024
static struct { unsigned char raw[36]; Py_ssize_t alen; PyObject *key; } key_cache[KEY_CACHE];

static PyObject *lane_key(const unsigned char *a, Py_ssize_t alen)
{
    Py_ssize_t len = 2 * alen + 4;
    uint32_t h = be32(a + len - 4) * 3266489917u;
    for (Py_ssize_t k = 0; k < 2 * alen; k += 4)
        h ^= be32(a + k) * (k & 4 ? 2246822519u : 2654435761u) + (uint32_t)k;
    unsigned i = (h ^ (h >> 15)) & (KEY_CACHE - 1);
    PyObject *key = key_cache[i].key;
    if (key != NULL && key_cache[i].alen == alen && memcmp(key_cache[i].raw, a, len) == 0) {
        Py_INCREF(key);
        return key;
    }
    PyObject *src = PyBytes_FromStringAndSize((const char *)a, alen);
    PyObject *dst = PyBytes_FromStringAndSize((const char *)a + alen, alen);
    PyObject *sport = PyLong_FromLong((long)be16(a + 2 * alen));
    PyObject *dport = PyLong_FromLong((long)be16(a + 2 * alen + 2));
    key = src && dst && sport && dport ? PyTuple_Pack(4, src, sport, dst, dport) : NULL;
    Py_XDECREF(src);
    Py_XDECREF(dst);
    Py_XDECREF(sport);
    Py_XDECREF(dport);
    if (key == NULL)
        return NULL;
    Py_XSETREF(key_cache[i].key, key);
    memcpy(key_cache[i].raw, a, len);
    key_cache[i].alen = alen;
    Py_INCREF(key);
    return key;
}

/* One record for a loop running the connection table. A TCP packet decode_fast() can
 * read, earlier than ``ts_limit``, is done here: by the fast lane, or else by
 * table.packet() (what consume() would do with it), and counted in *t (1). Any other
 * record is made into the one Python must take (*slow, 0). -1: error. */
static int lane_record(PyObject *table, const unsigned char *d, uint32_t incl, uint32_t orig,
                       long long ts, long long ts_limit, PyObject *lt, int linktype,
                       struct taken *t, PyObject **slow)
{
    struct fast_hdr h;
    if (ts >= ts_limit || !fast_header(linktype, d, (Py_ssize_t)incl, &h)) {
        *slow = new_record(ts, lt, d, incl, orig, NULL);
        return *slow != NULL ? 0 : -1;
    }
    PyObject *tsobj = PyLong_FromLongLong(ts), *posobj = PyLong_FromLongLong(t->cur + 1);
    int got = tsobj && posobj ? 0 : -1;
    if (!got && LANE_FLAGS(h.flags) && h.missing == 0) {
        /* the lane, from the frame itself: no decoded tuple, and the payload made into
           bytes only if Python is given it */
        const unsigned char *p = d + h.tcp;
        PyObject *key = lane_key(d + h.addr, h.alen);
        if (key != NULL) {
            struct seg sg = {PyTuple_GET_ITEM(key, 0), PyTuple_GET_ITEM(key, 2),
                             PyTuple_GET_ITEM(key, 1), PyTuple_GET_ITEM(key, 3),
                             (int)(h.flags & 0x17), (long long)be32(p + 4),
                             (long long)be32(p + 8),
                             (const char *)d + h.pstart,
                             h.pstart < h.stop ? h.stop - h.pstart : 0, NULL, key};
            got = lane_seg(table, tsobj, &sg, posobj);
            Py_DECREF(key);
        } else
            got = -1;
    }
    if (got == 0) {             /* declined: packet(ts, *decoded[1:]) with table.pos set */
        PyObject *dec = fast_tuple(d, &h);
        got = -1;
        if (dec != NULL && PyObject_SetAttr(table, S_pos, posobj) == 0) {
            PyObject *argv[11] = {tsobj};
            for (int i = 1; i < 11; i++)
                argv[i] = PyTuple_GET_ITEM(dec, i);
            PyObject *res = PyObject_Vectorcall(t->packet, argv, 11, NULL);
            if (res != NULL) {
                Py_DECREF(res);
                got = 1;
            }
        }
        Py_XDECREF(dec);
    }
    Py_XDECREF(tsobj);
    Py_XDECREF(posobj);
    if (got < 0)
        return -1;
    if (!t->n)
        t->lo = t->hi = ts;
    else if (ts > t->hi)
        t->hi = ts;
    else if (ts < t->lo)
        t->lo = ts;
    t->n++;
    t->n6 += h.alen == 16;
    t->cur++;
    t->wire += orig;
    t->cap += incl;
    return 1;
}

/* table.pos and table.packet, for a loop that runs the table (error set if the lane is
 * not set up) */
static int lane_start(PyObject *table, struct taken *t)
{
    if (!lane_ready) {
        PyErr_SetString(PyExc_RuntimeError, "setup_lane() has not succeeded");
        return -1;
    }
    PyObject *tpos = PyObject_GetAttr(table, S_pos);
    if (tpos == NULL)
        return -1;
    int ok = 1;
    t->cur = slot_ll(tpos, &ok);
    Py_DECREF(tpos);
    if (!ok) {
        PyErr_SetString(PyExc_TypeError, "table.pos is not an int");
        return -1;
    }
    t->packet = PyObject_GetAttr(table, S_packet);
    return t->packet != NULL ? 0 : -1;
}

/* table.pos after the records done (when ``ok``), and table.packet released */
static int lane_end(PyObject *table, struct taken *t, int ok)
{
    Py_CLEAR(t->packet);
    if (!ok || !t->n)
        return 0;
    PyObject *c = PyLong_FromLongLong(t->cur);
    int err = c == NULL || PyObject_SetAttr(table, S_pos, c) < 0;
    Py_XDECREF(c);
    return err ? -1 : 0;
}

PyDoc_STRVAR(scan_lane_doc,
"scan_lane(buf, pos, stop, big_endian, ts_mult, rec_len, limit, max_records, table,\n"
"          linktype, ts_limit)\n"
"-> (pos, done, wire, captured, first_ts, last_ts, record, done_ipv6)\n\n"
"scan() with the connection table: the TCP packets decode_fast()\n"
"reads are done here, by the fast lane or table.packet(), and only counted (``done`` of\n"
"them; ``table.pos`` is advanced); the loop stops after the first other record, returned\n"
"as scan() would return it (else None), or where scan() stops. A record at ``ts_limit``\n"
"or later is returned undecoded, not done (a merge of several files then decides when it\n"
"comes). ``table.pos`` must hold the last record's position.");

static PyObject *scan_lane(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, stop, rec_len, max_records;
    int big;
    long long mult;
    unsigned long limit;
    PyObject *table;
    int linktype;
    long long ts_limit = 0x7FFFFFFFFFFFFFFFLL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nniLnknOi|L", &view, &pos, &stop, &big, &mult, &rec_len,
                          &limit, &max_records, &table, &linktype, &ts_limit))
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len;
    struct taken t = {0, 0, 0, 0, 0, 0, 0, NULL};
    PyObject *slow = NULL, *lt = PyLong_FromLong(linktype);
    if (!lt || lane_start(table, &t) < 0)
        goto fail;
    long long ts;
    uint32_t incl, orig;
    while (!bad_window(pos, rec_len, mult) && t.n < max_records && pos < stop
           && ordinary_record(buf, len, pos, rec_len, big, mult, limit, &ts, &incl, &orig)) {
        int got = lane_record(table, buf + pos + rec_len, incl, orig, ts, ts_limit, lt,
                              linktype, &t, &slow);
        if (got < 0)
            goto fail;
        pos += rec_len + (Py_ssize_t)incl;
        if (!got)
            break;
    }
    if (lane_end(table, &t, 1) < 0)
        goto fail;
    PyBuffer_Release(&view);
    Py_DECREF(lt);
    if (slow == NULL) {
        slow = Py_None;
        Py_INCREF(slow);
    }
    return Py_BuildValue("(nLLLLLNL)", pos, t.n, t.wire, t.cap, t.lo, t.hi, slow, t.n6);
fail:
    lane_end(table, &t, 0);
    PyBuffer_Release(&view);
    Py_XDECREF(lt);
    Py_XDECREF(slow);
    return NULL;
}

PyDoc_STRVAR(follow_scan_doc,
"follow_scan(buf, pos, stop, big_endian, ts_mult, rec_len, linktype, keys, index, max_records)\n"
"-> (pos, index, items, ended)\n\n"
"parallel._candidates' loop over the whole records of a window: ``items`` as it yields\n"
"them; ``ended``: a record header that ends the segment was reached.");

/* What follow mode filters a frame by (parallel._candidate does the same): the
 * addresses and ports (as they follow each other from the source address on) of an
 * unfragmented IPv4 TCP packet, or of an IPv6 TCP packet without extension headers,
 * behind any link layer ip_start() reads, with their length in *klen; NULL for any other
 * frame, which is always a candidate. */
static const unsigned char *follow_key(int linktype, const unsigned char *d, Py_ssize_t n,
                                       Py_ssize_t *klen)
{
    int version = 0;
    Py_ssize_t ip = ip_start(linktype, d, n, &version);
    if (ip < 0)
        return NULL;
    const unsigned char *p = d + ip;
    if (version == 6) {
        if (n - ip < 44 || p[6] != 6)
            return NULL;
        *klen = 36;
        return p + 8;
    }
    if (n - ip < 24 || p[0] != 0x45 || p[9] != 6 || (p[6] & 0x3F) || p[7])
        return NULL;
    *klen = 12;
    return p + 12;
}

/* One record of follow mode, as parallel._candidates yields it: (i, ts, lt, data, orig)
 * appended to ``out`` when the frame is a candidate (its follow_key is in ``keys``, or it
 * has none); else only every 8192nd record, with data None (the caller's clock). */
static int follow_item(PyObject *out, PyObject *keys, long long i, long long ts, PyObject *lt,
                       int linktype, const unsigned char *d, Py_ssize_t n, unsigned long orig)
{
    int candidate = 1;
    Py_ssize_t klen = 0;
    const unsigned char *k = follow_key(linktype, d, n, &klen);
    if (k != NULL) {
        PyObject *key = PyBytes_FromStringAndSize((const char *)k, klen);
        int in = key ? PySet_Contains(keys, key) : -1;
        Py_XDECREF(key);
        if (in < 0)
            return -1;
        candidate = in;
    }
    if (!candidate && (i & 0x1FFF))
        return 0;
    PyObject *data = candidate ? PyBytes_FromStringAndSize((const char *)d, n) : Py_None;
    if (data == NULL)
        return -1;
    if (data == Py_None)
        Py_INCREF(data);
    PyObject *item = Py_BuildValue("(LLONk)", i, ts, lt, data, orig);
    if (item == NULL)
        return -1;
    int err = PyList_Append(out, item);
    Py_DECREF(item);
    return err;
}

static PyObject *follow_scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, stop, rec_len, max_records;
    long long index, mult;
    int big, linktype;
    PyObject *keys;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nniLniOLn", &view, &pos, &stop, &big, &mult, &rec_len,
                          &linktype, &keys, &index, &max_records))
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len, done = 0;
    int ended = 0;
    PyObject *out = PyList_New(0), *lt = PyLong_FromLong(linktype);
    if (!out || !lt)
        goto fail;
    if (!PyAnySet_Check(keys) || bad_window(pos, rec_len, mult))
        goto done;
    while (done < max_records && pos < stop && len - pos >= rec_len) {
        const unsigned char *h = buf + pos;
        uint32_t incl = rd32(h + 8, big), orig = rd32(h + 12, big);
        if (incl > (1u << 24) || (!incl && !orig)) {
            ended = 1;
            break;
        }
        if ((uint64_t)(len - pos - rec_len) < (uint64_t)incl)
            break;
        long long ts = (long long)rd32(h, big) * 1000000000LL + (long long)rd32(h + 4, big) * mult;
        const unsigned char *d = h + rec_len;
        pos += rec_len + (Py_ssize_t)incl;
        done++;
        if (follow_item(out, keys, index++, ts, lt, linktype, d, (Py_ssize_t)incl, orig) < 0)
            goto fail;
    }
done:
    PyBuffer_Release(&view);
    Py_DECREF(lt);
    return Py_BuildValue("(nLNi)", pos, index, out, ended);
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    Py_XDECREF(lt);
    return NULL;
}

/* ------------------------------------------------------------------------------------
 * pcapng: the same loop over Enhanced Packet Blocks. It stops at any other block, at a
 * block it is not sure of (length, trailer, interface, captured length, a timestamp out
 * of int64 nanoseconds) and at the stop offset; readers._read_pcapng takes it from there.
 */
#define MAX_IFACES 64

PyDoc_STRVAR(scan_epb_doc,
"scan_epb(buf, pos, stop, big_endian, max_block, ifaces, max_records, table, ts_limit,\n"
"         keys=None, index=0)\n"
"-> (pos, records, last_ts, done, wire, captured, first_ts, last_ts_done, done_linktype,\n"
"    done_ipv6)\n\n"
"Records of the Enhanced Packet Blocks from ``pos``, as scan() gives them; ``ifaces``:\n"
"(linktype, mult, div, offset_ns) per interface (ts = raw * mult // div + offset_ns);\n"
"``last_ts``: the last record's timestamp (None if none). With a ``table`` (else None),\n"
"as scan_lane(): the TCP packets it decodes are done here and only counted (all of one\n"
"link type, ``done_linktype``: it stops before a record of another), and the loop stops\n"
"after the first other record (then the only one in ``records``), or a record at\n"
"``ts_limit`` or later (returned undecoded, not done). ``keys`` (a set, without a\n"
"table): follow mode; ``records`` are then follow_scan's items, the first record read\n"
"numbered ``index``, and the fourth value is how many records were read.");

static PyObject *scan_epb(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, stop, max_block, max_records;
    int big;
    PyObject *ifaces, *table, *keys = Py_None;
    struct taken t = {0, 0, 0, 0, 0, 0, 0, NULL};
    long long ts_limit = 0x7FFFFFFFFFFFFFFFLL, index = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nninO!nO|LOL", &view, &pos, &stop, &big, &max_block,
                          &PyTuple_Type, &ifaces, &max_records, &table, &ts_limit, &keys,
                          &index))
        return NULL;
    if (table == Py_None)
        table = NULL;
    if (keys == Py_None || table != NULL)
        keys = NULL;
    else if (!PyAnySet_Check(keys)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "scan_epb: keys must be a set");
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t len = view.len, nif = PyTuple_GET_SIZE(ifaces);
    long long lt_v[MAX_IFACES], mult_v[MAX_IFACES], div_v[MAX_IFACES], off_v[MAX_IFACES];
    PyObject *lt_o[MAX_IFACES];
    PyObject *out = PyList_New(0), *last = NULL;
    long long last_ts = 0, done_lt = -1;
    int any = 0, ok = 1;
    if (!out || (table != NULL && lane_start(table, &t) < 0))
        goto fail;
    if (nif > MAX_IFACES || pos < 0)
        goto done;
    for (Py_ssize_t i = 0; i < nif; i++) {
        PyObject *t = PyTuple_GET_ITEM(ifaces, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4)
            goto done;
        lt_o[i] = PyTuple_GET_ITEM(t, 0);
        lt_v[i] = slot_ll(lt_o[i], &ok);
        mult_v[i] = slot_ll(PyTuple_GET_ITEM(t, 1), &ok);
        div_v[i] = slot_ll(PyTuple_GET_ITEM(t, 2), &ok);
        off_v[i] = slot_ll(PyTuple_GET_ITEM(t, 3), &ok);
        if (!ok || mult_v[i] < 1 || div_v[i] < 1)
            goto done;
    }
    while ((keys != NULL ? t.n : PyList_GET_SIZE(out) + t.n) < max_records && pos < stop
           && len - pos >= 32) {
        const unsigned char *h = buf + pos;
        uint32_t btype = rd32(h, big), blen = rd32(h + 4, big);
        if (btype != 6 || blen < 32 || blen % 4 || (Py_ssize_t)blen > max_block
            || (uint64_t)(len - pos) < (uint64_t)blen || rd32(h + blen - 4, big) != blen)
            break;
        uint32_t ifid = rd32(h + 8, big), thi = rd32(h + 12, big), tlo = rd32(h + 16, big);
        uint32_t cap = rd32(h + 20, big), orig = rd32(h + 24, big);
        if ((Py_ssize_t)ifid >= nif || cap > blen - 32)
            break;
        __int128 raw = ((__int128)thi << 32) | tlo;
        __int128 t128 = raw * mult_v[ifid] / div_v[ifid] + off_v[ifid];
        if (t128 < 0 || t128 > (__int128)0x7FFFFFFFFFFFFFFFLL)
            break;                                   /* clamped and counted in Python */
        long long ts = (long long)t128;
        const unsigned char *d = h + 28;
        if (table != NULL && t.n && lt_v[ifid] != done_lt)
            break;                  /* the records done are counted as of one link type */
        last_ts = ts;
        any = 1;
        pos += blen;
        if (keys != NULL) {
            /* follow mode: follow_scan's items, numbered from ``index``; t.n counts the
             * records read */
            if (follow_item(out, keys, index++, ts, lt_o[ifid], (int)lt_v[ifid], d,
                            (Py_ssize_t)cap, orig) < 0)
                goto fail;
            t.n++;
            continue;
        }
        if (table == NULL) {
            if (add_record(out, ts, lt_o[ifid], (int)lt_v[ifid], d, cap, orig) < 0)
                goto fail;
            continue;
        }
        PyObject *slow = NULL;
        int got = lane_record(table, d, cap, orig, ts, ts_limit, lt_o[ifid], (int)lt_v[ifid],
                              &t, &slow);
        if (got < 0)
            goto fail;
        if (got) {
            done_lt = lt_v[ifid];
            continue;
        }
        int err = PyList_Append(out, slow);
        Py_DECREF(slow);
        if (err < 0)
            goto fail;
        break;
    }
done:
    if (table != NULL && lane_end(table, &t, 1) < 0)
        goto fail;
    PyBuffer_Release(&view);
    if (any)
        last = PyLong_FromLongLong(last_ts);
    else {
        last = Py_None;
        Py_INCREF(last);
    }
    if (last == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    return Py_BuildValue("(nNNLLLLLLL)", pos, out, last, t.n, t.wire, t.cap, t.lo, t.hi,
                         done_lt, t.n6);
fail:
    if (table != NULL)
        lane_end(table, &t, 0);
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------------------------
 * headers.fields_of's common case: a header block with one field per line, each once.
 */

PyDoc_STRVAR(head_fields_doc,
"head_fields(text) -> dict | None\n\n"
"headers.parse_fields(text.split(\"\\n\")) for a header block (latin-1 text) whose field\n"
"names are ASCII without white space, each on one line with a colon and each once;\n"
"None for any other block (parse_fields then reads it).");

static PyObject *head_fields(PyObject *self, PyObject *text)
{
    (void)self;
    if (!PyUnicode_CheckExact(text)) {
        PyErr_SetString(PyExc_TypeError, "head_fields() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0)
        return NULL;
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    const unsigned char *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), lines = 1;
    for (const unsigned char *p = s; (p = memchr(p, '\n', (size_t)(s + n - p))) != NULL; p++)
        lines++;
    PyObject *fields = PyDict_New();
    if (fields == NULL)
        return NULL;
    /* the lines between the start line and the last two (the empty line, and after it) */
    const unsigned char *a = memchr(s, '\n', (size_t)n);
    char key[256];
    for (Py_ssize_t i = 1; i + 2 < lines; i++) {
        a++;
        const unsigned char *b = memchr(a, '\n', (size_t)(s + n - a));   /* there is one */
        const unsigned char *colon = memchr(a, ':', (size_t)(b - a));
        if (colon == NULL || colon - a > (Py_ssize_t)sizeof(key))
            goto lenient;
        Py_ssize_t klen = colon - a;
        for (Py_ssize_t k = 0; k < klen; k++) {
            unsigned char c = a[k];
            if (c >= 0x80 || c == ' ' || c == '\t')
                goto lenient;
            key[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        const unsigned char *v = colon + 1, *e = b;
        while (v < e && (*v == ' ' || *v == '\t' || *v == '\r'))
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        PyObject *k = PyUnicode_FromStringAndSize(key, klen);
        if (k == NULL)
            goto fail;
        int dup = PyDict_Contains(fields, k);       /* a repeated name: parse_fields joins */
        int err = dup < 0;
        if (dup == 0) {
            PyObject *val = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, v, e - v);
            err = val == NULL || PyDict_SetItem(fields, k, val) < 0;
            Py_XDECREF(val);
        }
        Py_DECREF(k);
        if (err)
            goto fail;
        if (dup)
            goto lenient;
        a = b;
    }
    return fields;
lenient:
    Py_DECREF(fields);
    Py_RETURN_NONE;
fail:
    Py_DECREF(fields);
    return NULL;
}

/* ------------------------------------------------------------------------------------
 * HTTP/1 responses: what HttpStream.feed does with the common response segments, in C.
 *
 * http_resp(stream, ts, bytes) handles the server's bytes in two cases and returns
 * True; for anything else it changes nothing and returns False (HttpStream.feed then
 * runs):
 * - a whole response head at the start of the segment, between messages: a status line
 *   of 200 or more (not 204 or 304), with Content-Length (decimal, not 0) and no
 *   Transfer-Encoding, a header block head_fields() reads, answering the oldest waiting
 *   request (not HEAD or CONNECT, while the client's bytes are not held), nothing missed
 *   or resynchronised on; then as much of its body as the segment holds, all of it at most;
 * - the bytes that end a body of known length (not chunked).
 * It does what DirectionReader.feed, ResponseReader._on_head and ResponseReader._end
 * do then; the exchanges that become complete are handed out by HttpStream._flush.
 * The lane calls it directly; HttpStream.feed calls it as parser._C_RESP.
 */


PyDoc_STRVAR(setup_http_doc,
"setup_http(HttpStream, DirectionReader, ResponseReader, Pending, HttpExchange,\n"
"           RequestReader, request_info_of)\n\n"
"Find the slot offsets http_resp() and http_req() use and turn them on; setup_http()\n"
"with no argument turns them off (tests compare both).");

static PyObject *setup_http(PyObject *self, PyObject *args)
{
    PyTypeObject *t[6];
    PyObject *info_of;
    (void)self;
    http_ready = 0;
    if (PyTuple_GET_SIZE(args) == 0)
        Py_RETURN_NONE;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O", &PyType_Type, &t[0], &PyType_Type, &t[1],
                          &PyType_Type, &t[2], &PyType_Type, &t[3], &PyType_Type, &t[4],
                          &PyType_Type, &t[5], &info_of))
        return NULL;
    if (slot(t[0], "protocol", &hs_protocol) || slot(t[0], "responses", &hs_responses)
        || slot(t[0], "_req", &hs_req) || slot(t[0], "_resp", &hs_resp)
        || slot(t[0], "_unanswered", &hs_unanswered)
        || slot(t[1], "state", &dr_state) || slot(t[1], "last_ts", &dr_last_ts)
        || slot(t[1], "msg_ts", &dr_msg_ts) || slot(t[1], "nl", &dr_nl)
        || slot(t[1], "remaining", &dr_remaining) || slot(t[1], "body", &dr_body)
        || slot(t[1], "chunked", &dr_chunked) || slot(t[1], "gapped", &dr_gapped)
        || slot(t[1], "resynced", &dr_resynced) || slot(t[1], "pend", &dr_pend)
        || slot(t[1], "max_hdr", &dr_max_hdr)
        || slot(t[3], "ex", &p_ex) || slot(t[3], "head", &p_head)
        || slot(t[3], "connect", &p_connect) || slot(t[3], "req_done", &p_req_done)
        || slot(t[3], "resp_done", &p_resp_done) || slot(t[3], "resolved", &p_resolved)
        || slot(t[4], "status", &x_status) || slot(t[4], "ts_response", &x_ts_response)
        || slot(t[4], "_raw_response_head", &x_response_head)
        || slot(t[4], "_raw_request_head", &x_request_head) || slot(t[4], "_store", &x_store)
        || slot(t[4], "resp_connection", &x_resp_connection)
        || slot(t[4], "set_cookie", &x_set_cookie)
        || slot(t[4], "ts_response_end", &x_ts_response_end)
        || slot(t[4], "response_body_bytes", &x_response_body_bytes)
        || slot(t[4], "gap", &x_gap) || slot(t[4], "ts_request_end", &x_ts_request_end)
        || slot(t[0], "conn_id", &hs_conn_id) || slot(t[0], "requests", &hs_requests)
        || slot(t[0], "pipelined", &hs_pipelined) || slot(t[0], "_depth", &hs_depth)
        || slot(t[0], "_open", &hs_open)
        || slot(t[5], "pipe", &q_pipe) || slot(t[5], "replaying", &q_replaying)
        || slot(t[5], "last_rest", &q_last_rest) || slot(t[5], "last_info", &q_last_info)
        || slot(t[5], "start_line", &q_start_line) || slot(t[1], "buf", &dr_buf)
        || slot(t[1], "scan", &dr_scan))
        return NULL;
    if (interned(&H_http1, "http/1") || interned(&H_close, "close")
        || interned(&H_keepalive, "keep-alive") || interned(&H_connection, "connection")
        || interned(&H_setcookie, "set-cookie") || interned(&H_te, "transfer-encoding")
        || interned(&H_cl, "content-length") || interned(&H_popleft, "popleft")
        || interned(&H_flush, "_flush")
        || (!H_minus1 && !(H_minus1 = PyLong_FromLong(-1)))
        || interned(&H_append, "append") || interned(&H_v11, "HTTP/1.1")
        || interned(&H_v10, "HTTP/1.0")
        || (!H_zero && !(H_zero = PyLong_FromLong(0))))
        return NULL;
    for (int i = 0; i < 6; i++)
        Py_INCREF(t[i]);
    Py_INCREF(info_of);
    Py_XDECREF(T_hstream); Py_XDECREF(T_dreader); Py_XDECREF(T_rreader);
    Py_XDECREF(T_pending); Py_XDECREF(T_exchange); Py_XDECREF(T_qreader);
    Py_XDECREF(F_info_of);
    T_hstream = t[0]; T_dreader = t[1]; T_rreader = t[2]; T_pending = t[3]; T_exchange = t[4];
    T_qreader = t[5];
    F_info_of = info_of;
    http_ready = 1;
    Py_RETURN_NONE;
}

/* ResponseReader._end(ts) for a reader in BODY whose body now has ``body`` bytes, with
 * ``pend`` (checked: a Pending with an HttpExchange, req_done a bool) or None */
static int resp_end(PyObject *st, PyObject *rd, PyObject *ts, long long body, PyObject *pend)
{
    PyObject *bodyobj = PyLong_FromLongLong(body);
    if (bodyobj == NULL)
        return -1;
    Py_INCREF(pend);                /* the reader's reference goes below */
    if (pend != Py_None) {
        PyObject *ex = SLOT(pend, p_ex);
        slot_set_obj(rd, dr_pend, Py_None);
        slot_set_obj(ex, x_ts_response_end, ts);
        slot_set_obj(ex, x_response_body_bytes, bodyobj);
        if (SLOT(rd, dr_gapped) == Py_True)
            slot_set_obj(ex, x_gap, Py_True);
        slot_set_obj(pend, p_resp_done, Py_True);
    }
    Py_DECREF(bodyobj);
    int err = slot_set_ll(rd, dr_state, 0) < 0 || slot_set_ll(rd, dr_body, 0) < 0
        || slot_set_ll(rd, dr_remaining, 0) < 0;
    if (!err) {
        slot_set_obj(rd, dr_gapped, Py_False);
        slot_set_obj(rd, dr_chunked, Py_False);
    }
    if (!err && pend != Py_None && SLOT(pend, p_req_done) == Py_True) {
        PyObject *r = PyObject_CallMethodNoArgs(st, H_flush);
        err = r == NULL;
        Py_XDECREF(r);
    }
    Py_DECREF(pend);
    return err ? -1 : 0;
}

/* a Pending with an HttpExchange and bool flags (the ones read here) */
static int plain_pending(PyObject *p)
{
    if (p == NULL || Py_TYPE(p) != T_pending)
        return 0;
    PyObject *ex = SLOT(p, p_ex), *rq = SLOT(p, p_req_done);
    return ex != NULL && Py_TYPE(ex) == T_exchange && (rq == Py_True || rq == Py_False)
        && SLOT(p, p_head) == Py_False && SLOT(p, p_connect) == Py_False
        && SLOT(p, p_resolved) != NULL && SLOT(p, p_resp_done) != NULL;
}

/* where the empty line ending a header block in d[0:lim] ends (HEAD_END), or -1 */
static Py_ssize_t find_head_end(const char *d, Py_ssize_t lim)
{
    for (const char *p = d; (p = memchr(p, '\n', (size_t)(d + lim - p))) != NULL; p++) {
        Py_ssize_t i = p - d;
        if (i + 1 < lim && d[i + 1] == '\n')
            return i + 2;
        if (i + 2 < lim && d[i + 1] == '\r' && d[i + 2] == '\n')
            return i + 3;
    }
    return -1;
}

/* STATUS_LINE on the line d[0:nl]: its status code, or -1 */
static int status_code(const char *d, Py_ssize_t nl)
{
    if (nl < 12 || memcmp(d, "HTTP/1.", 7) != 0 || d[7] < '0' || d[7] > '9'
        || (d[8] != ' ' && d[8] != '\t'))
        return -1;
    Py_ssize_t i = 8;
    while (i < nl && (d[i] == ' ' || d[i] == '\t'))
        i++;
    if (i + 3 > nl)
        return -1;
    for (int k = 0; k < 3; k++)
        if (d[i + k] < '0' || d[i + k] > '9')
            return -1;
    int code = (d[i] - '0') * 100 + (d[i + 1] - '0') * 10 + (d[i + 2] - '0');
    Py_ssize_t j = i + 3, end = nl;
    if (end > j && d[end - 1] == '\r')
        end--;                                  /* \r?\Z */
    if (j == end)
        return code;
    if (d[j] != ' ' && d[j] != '\t')
        return -1;
    return memchr(d + j, '\r', (size_t)(end - j)) == NULL ? code : -1;
}

/* 1: done, 0: not one of the common cases (nothing changed), -1: error */
static int http_resp_fast(PyObject *st, PyObject *ts, const char *d, Py_ssize_t n)
{
    int ok = 1;
    if (!http_ready || Py_TYPE(st) != T_hstream || n <= 0)
        return 0;
    PyObject *rd = SLOT(st, hs_resp);
    if (rd == NULL || Py_TYPE(rd) != T_rreader)
        return 0;
    long long state = slot_ll(SLOT(rd, dr_state), &ok);
    long long body = slot_ll(SLOT(rd, dr_body), &ok);
    PyObject *gapped = SLOT(rd, dr_gapped), *pend = SLOT(rd, dr_pend);
    if (!ok || (gapped != Py_True && gapped != Py_False) || SLOT(rd, dr_chunked) != Py_False
        || pend == NULL || (pend != Py_None && !plain_pending(pend)) || body < 0
        || body > ((long long)1 << 62))
        return 0;
    if (state == 2) {                           /* BODY: its last bytes */
        long long rem = slot_ll(SLOT(rd, dr_remaining), &ok);
        if (!ok || rem != n)
            return 0;
        slot_set_obj(rd, dr_last_ts, ts);
        return resp_end(st, rd, ts, body + n, pend) < 0 ? -1 : 1;
    }
    if (state != 0 || d[0] == '\r' || d[0] == '\n' || pend != Py_None || gapped != Py_False
        || SLOT(rd, dr_resynced) != Py_False)
        return 0;
    /* IDLE: a whole head, and a status line */
    long long max_hdr = slot_ll(SLOT(rd, dr_max_hdr), &ok);
    if (!ok || max_hdr < 1)
        return 0;
    Py_ssize_t e = find_head_end(d, n < max_hdr ? n : (Py_ssize_t)max_hdr);
    if (e < 0)
        return 0;
    const char *lf = memchr(d, '\n', (size_t)e);
    int code = status_code(d, lf - d);
    if (code < 200 || code == 204 || code == 304)
        return 0;
    /* the oldest waiting request; the client's bytes not held (HOLD) */
    PyObject *u = SLOT(st, hs_unanswered), *req = SLOT(st, hs_req);
    PyObject *proto = SLOT(st, hs_protocol), *resps = SLOT(st, hs_responses);
    if (u == NULL || req == NULL || !PyObject_TypeCheck(req, T_dreader) || proto == NULL
        || !PyUnicode_CheckExact(proto) || !IS_SET_INT(resps))
        return 0;
    long long rstate = slot_ll(SLOT(req, dr_state), &ok);
    if (!ok || rstate == 8)
        return 0;
    Py_ssize_t waiting = PyObject_Length(u);
    if (waiting < 0)
        return -1;
    if (waiting == 0)
        return 0;
    PyObject *p = PySequence_GetItem(u, 0);
    if (p == NULL)
        return -1;
    int result = 0;
    PyObject *text = NULL, *fields = NULL, *conn = NULL, *setc = NULL;
    if (!plain_pending(p))
        goto out;
    /* the header fields: Content-Length, no Transfer-Encoding */
    if ((text = PyUnicode_DecodeLatin1(d, e, NULL)) == NULL
        || (fields = head_fields(NULL, text)) == NULL)
        goto fail;
    if (fields == Py_None || PyDict_GetItemWithError(fields, H_te) != NULL)
        goto out;
    PyObject *cl = PyDict_GetItemWithError(fields, H_cl);
    if (PyErr_Occurred())
        goto fail;
    if (cl == NULL || PyUnicode_KIND(cl) != PyUnicode_1BYTE_KIND)
        goto out;
    Py_ssize_t cn = PyUnicode_GET_LENGTH(cl);
    const unsigned char *cd = PyUnicode_1BYTE_DATA(cl);
    long long size = 0;
    if (cn < 1 || cn >= 19)
        goto out;
    for (Py_ssize_t k = 0; k < cn; k++) {
        if (cd[k] < '0' || cd[k] > '9')
            goto out;
        size = size * 10 + (cd[k] - '0');
    }
    long long avail = n - e;
    if (size <= 0 || avail > size)
        goto out;
    /* Connection (else the version's default) and Set-Cookie, interned like _shared() */
    conn = PyDict_GetItemWithError(fields, H_connection);
    if (conn == NULL && PyErr_Occurred())
        goto fail;
    if (conn != NULL) {
        Py_INCREF(conn);
        PyUnicode_InternInPlace(&conn);
    } else {
        conn = d[7] == '0' ? H_close : H_keepalive;     /* "HTTP/1.0" or another 1.x */
        Py_INCREF(conn);
    }
    setc = PyDict_GetItemWithError(fields, H_setcookie);
    if (setc == NULL && PyErr_Occurred())
        goto fail;
    if (setc != NULL) {
        Py_INCREF(setc);
        PyUnicode_InternInPlace(&setc);
    }
    /* -- what DirectionReader.feed and ResponseReader._on_head do -- */
    PyObject *popped = PyObject_CallMethodNoArgs(u, H_popleft);
    if (popped == NULL)
        goto fail;
    Py_DECREF(popped);                          /* p, which we hold */
    if (PyUnicode_CompareWithASCIIString(proto, "unknown") == 0)
        slot_set_obj(st, hs_protocol, H_http1);
    if (slot_add(st, hs_responses, ONE) < 0)
        goto fail;
    slot_set_obj(rd, dr_last_ts, ts);
    slot_set_obj(rd, dr_msg_ts, ts);
    slot_set_obj(rd, dr_nl, H_minus1);
    PyObject *ex = SLOT(p, p_ex);
    if (slot_set_ll(ex, x_status, code) < 0)
        goto fail;
    slot_set_obj(ex, x_ts_response, ts);
    slot_set_obj(ex, x_response_head, text);
    slot_set_obj(ex, x_resp_connection, conn);
    slot_set_obj(ex, x_set_cookie, setc != NULL ? setc : Py_None);
    slot_set_obj(p, p_resolved, Py_True);
    slot_set_obj(rd, dr_resynced, Py_False);
    slot_set_obj(rd, dr_pend, p);
    if (avail == size)                          /* the body ends in this segment */
        result = resp_end(st, rd, ts, body + avail, p) < 0 ? -1 : 1;
    else if (slot_set_ll(rd, dr_state, 2) < 0 || slot_set_ll(rd, dr_remaining, size - avail) < 0
             || slot_set_ll(rd, dr_body, body + avail) < 0)
        result = -1;
    else
        result = 1;
    goto out;
fail:
    result = -1;
out:
    Py_DECREF(p);
    Py_XDECREF(text);
    Py_XDECREF(fields);
    Py_XDECREF(conn);
    Py_XDECREF(setc);
    return result;
}

PyDoc_STRVAR(http_resp_doc,
"http_resp(stream, ts, data) -> bool\n\n"
"HttpStream.feed(False, ts, data) for the common response segments (see the comment in\n"
"_fastpcap.c); False: nothing was done, call feed().");

/* http_resp() and http_req(): (stream, ts, data) to one of the functions above */
static PyObject *http_call(PyObject *args,
                           int (*fast)(PyObject *, PyObject *, const char *, Py_ssize_t))
{
    PyObject *st, *ts;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "OOy*", &st, &ts, &view))
        return NULL;
    int done = PyLong_CheckExact(ts) ? fast(st, ts, view.buf, view.len) : 0;
    PyBuffer_Release(&view);
    if (done < 0)
        return NULL;
    return PyBool_FromLong(done);
}

static PyObject *http_resp(PyObject *self, PyObject *args)
{
    (void)self;
    return http_call(args, http_resp_fast);
}


/* ------------------------------------------------------------------------------------
 * HTTP/1 requests: what HttpStream.feed does with the commonest request segments, in C.
 *
 * http_req(stream, ts, bytes) takes, of a request without a body (no Transfer-Encoding,
 * Content-Length absent or 0), no Upgrade and not CONNECT:
 * - a segment that is exactly its whole head, between messages, with a request line
 *   parse_request_line's split path reads (three parts, a letters-only method, HTTP/1.0
 *   or 1.1): what DirectionReader.feed, RequestReader._start, ._on_head and ._request do;
 * - the segment that ends a head whose request line came in an earlier one (and was read
 *   then, in Python): what DirectionReader._head, ._on_head and ._request do.
 * One HttpExchange and its Pending are made by calling their classes; the header fields
 * are read by parser._request_info_of unless they are those of the previous request.
 * True when done; else nothing changed, False.
 */

/* the method, target and version of a request line d[0:nl] (parse_request_line's split
 * path: exactly two spaces, letters-only ASCII method of at most 32, a target without tab,
 * HTTP/1.1 or HTTP/1.0 with an optional CR); 0 if not that */
static int split_request_line(const char *d, Py_ssize_t nl, Py_ssize_t *sp1, Py_ssize_t *sp2,
                              int *v10)
{
    const char *a = memchr(d, ' ', (size_t)nl);
    if (a == NULL)
        return 0;
    const char *b = memchr(a + 1, ' ', (size_t)(d + nl - a - 1));
    if (b == NULL || memchr(b + 1, ' ', (size_t)(d + nl - b - 1)) != NULL)
        return 0;
    Py_ssize_t m = a - d, t = b - a - 1, v = nl - (b + 1 - d);
    if (m < 1 || m > 32 || t < 1 || memchr(a + 1, '\t', (size_t)t) != NULL)
        return 0;
    for (Py_ssize_t i = 0; i < m; i++)
        if (!((d[i] >= 'A' && d[i] <= 'Z') || (d[i] >= 'a' && d[i] <= 'z')))
            return 0;
    if (v == 9 && b[9] == '\r')
        v = 8;
    if (v != 8 || memcmp(b + 1, "HTTP/1.", 7) != 0 || (b[8] != '1' && b[8] != '0'))
        return 0;
    *sp1 = m;
    *sp2 = b - d;
    *v10 = b[8] == '0';
    return 1;
}

/* The fields of a request reader both request cases read, checked. */
struct reqctx {
    PyObject *rd, *gapped, *resynced, *rest, *info, *u, *op, *proto, *cid;
    long long state, max_hdr;
};

static int req_ctx(PyObject *st, struct reqctx *c)
{
    int ok = 1;
    if (!http_ready || Py_TYPE(st) != T_hstream)
        return 0;
    PyObject *rd = c->rd = SLOT(st, hs_req);
    if (rd == NULL || Py_TYPE(rd) != T_qreader)
        return 0;
    c->state = slot_ll(SLOT(rd, dr_state), &ok);
    c->max_hdr = slot_ll(SLOT(rd, dr_max_hdr), &ok);
    c->gapped = SLOT(rd, dr_gapped);
    c->resynced = SLOT(rd, dr_resynced);
    c->rest = SLOT(rd, q_last_rest);
    c->info = SLOT(rd, q_last_info);
    c->u = SLOT(st, hs_unanswered);
    c->op = SLOT(st, hs_open);
    c->proto = SLOT(st, hs_protocol);
    c->cid = SLOT(st, hs_conn_id);
    return ok && c->max_hdr >= 1 && (c->gapped == Py_True || c->gapped == Py_False)
        && (c->resynced == Py_True || c->resynced == Py_False) && c->rest != NULL
        && PyUnicode_CheckExact(c->rest) && PyUnicode_KIND(c->rest) == PyUnicode_1BYTE_KIND
        && c->info != NULL && c->u != NULL && c->op != NULL && c->proto != NULL
        && PyUnicode_CheckExact(c->proto) && c->cid != NULL && SLOT(rd, dr_pend) != NULL
        && IS_SET_INT(SLOT(st, hs_requests)) && IS_SET_INT(SLOT(st, hs_pipelined))
        && IS_SET_INT(SLOT(st, hs_depth));
}

/* RequestReader._on_head and ._request for the whole head ``d`` (n bytes, the request
 * line ending at nl), the request line read into method, uri and version (new
 * references, taken), sent at msg_ts: 1 done, 0 declined (nothing changed), -1 error */
static int req_finish(PyObject *st, struct reqctx *c, PyObject *ts, const char *d,
                      Py_ssize_t n, Py_ssize_t nl, PyObject *method, PyObject *uri,
                      PyObject *version, int pipe, PyObject *msg_ts)
{
    PyObject *rd = c->rd, *info = c->info, *text = NULL, *ex = NULL, *pend = NULL;
    PyObject *newrest = NULL;
    int result = 0;
    Py_INCREF(info);
    if (method == NULL || uri == NULL || version == NULL)
        goto fail;
    PyUnicode_InternInPlace(&method);
    PyUnicode_InternInPlace(&version);
    if (PyUnicode_CompareWithASCIIString(method, "CONNECT") == 0)
        goto out;
    int v10 = PyUnicode_CompareWithASCIIString(version, "HTTP/1.0") == 0;
    if ((text = PyUnicode_DecodeLatin1(d, n, NULL)) == NULL)
        goto fail;
    /* the fields: those of the previous request when the text after the request line is
       the same (parse_fields reads nothing before the first "\n"), else read */
    Py_ssize_t rlen = PyUnicode_GET_LENGTH(c->rest);
    if (rlen != n - nl || memcmp(PyUnicode_1BYTE_DATA(c->rest), d + nl, (size_t)rlen) != 0) {
        Py_SETREF(info, PyObject_CallOneArg(F_info_of, text));
        if (info == NULL || (newrest = PyUnicode_Substring(text, nl, n)) == NULL)
            goto fail;
    }
    if (!PyTuple_CheckExact(info) || PyTuple_GET_SIZE(info) != 8)
        goto out;
    /* host, cookie, xff, user_agent, connection, upgrade, transfer-encoding, length */
    PyObject *upgrade = PyTuple_GET_ITEM(info, 5), *te = PyTuple_GET_ITEM(info, 6);
    PyObject *cl = PyTuple_GET_ITEM(info, 7), *conn = PyTuple_GET_ITEM(info, 4);
    if (te != Py_None || !PyUnicode_CheckExact(upgrade) || PyUnicode_GET_LENGTH(upgrade) != 0)
        goto out;
    if (cl != Py_None) {            /* only a length of 0 (in decimal digits) */
        if (!PyUnicode_CheckExact(cl) || PyUnicode_KIND(cl) != PyUnicode_1BYTE_KIND)
            goto out;
        Py_ssize_t cn = PyUnicode_GET_LENGTH(cl);
        const unsigned char *cd = PyUnicode_1BYTE_DATA(cl);
        if (cn < 1 || cn >= 19)
            goto out;
        for (Py_ssize_t k = 0; k < cn; k++)
            if (cd[k] != '0')
                goto out;
    }
    if (conn == Py_None)
        conn = v10 ? H_close : H_keepalive;
    /* -- what RequestReader._request does -- */
    PyObject *depth = PyNumber_Add(SLOT(st, hs_depth), ONE);
    if (depth == NULL)
        goto fail;
    PyObject *argv[23] = {c->cid, depth, method, uri, version, PyTuple_GET_ITEM(info, 0),
                          msg_ts, Py_None, Py_None, Py_None, Py_None, H_zero, H_zero, conn,
                          Py_None, PyTuple_GET_ITEM(info, 1), Py_None,
                          PyTuple_GET_ITEM(info, 2), PyTuple_GET_ITEM(info, 3),
                          pipe ? Py_True : Py_False, H_zero,
                          c->gapped == Py_True || c->resynced == Py_True ? Py_True : Py_False,
                          text};
    ex = PyObject_Vectorcall((PyObject *)T_exchange, argv, 23, NULL);
    PyObject *pargs[3] = {ex, method, upgrade};
    if (ex != NULL)
        pend = PyObject_Vectorcall((PyObject *)T_pending, pargs, 3, NULL);
    PyObject *r1 = pend != NULL ? PyObject_CallMethodOneArg(c->op, H_append, pend) : NULL;
    PyObject *r2 = r1 != NULL ? PyObject_CallMethodOneArg(c->u, H_append, pend) : NULL;
    Py_XDECREF(r1);
    Py_XDECREF(r2);
    if (r2 == NULL || Py_TYPE(pend) != T_pending || Py_TYPE(ex) != T_exchange) {
        Py_DECREF(depth);
        goto fail;
    }
    slot_set(st, hs_depth, depth);
    if (slot_add(st, hs_requests, ONE) < 0 || (pipe && slot_add(st, hs_pipelined, ONE) < 0))
        goto fail;
    if (PyUnicode_CompareWithASCIIString(c->proto, "unknown") == 0)
        slot_set_obj(st, hs_protocol, H_http1);
    if (newrest != NULL) {
        slot_set_obj(rd, q_last_info, info);
        slot_set_obj(rd, q_last_rest, newrest);
    }
    if (slot_set_ll(rd, dr_state, 0) < 0)         /* IDLE: the request is whole */
        goto fail;
    slot_set_obj(rd, dr_last_ts, ts);
    slot_set_obj(rd, dr_resynced, Py_False);
    slot_set_obj(rd, dr_gapped, Py_False);
    slot_set_obj(rd, dr_pend, Py_None);
    slot_set_obj(ex, x_ts_request_end, ts);
    slot_set_obj(pend, p_req_done, Py_True);
    result = 1;
    goto out;
fail:
    result = -1;
out:
    Py_XDECREF(method);
    Py_XDECREF(uri);
    Py_XDECREF(version);
    Py_XDECREF(text);
    Py_XDECREF(info);
    Py_XDECREF(newrest);
    Py_XDECREF(ex);
    Py_XDECREF(pend);
    return result;
}

/* where the empty line ending a header block in d[start:lim] ends, or -1 */
static Py_ssize_t head_end_from(const char *d, Py_ssize_t start, Py_ssize_t lim)
{
    Py_ssize_t e = find_head_end(d + start, lim - start);
    return e < 0 ? -1 : start + e;
}

/* The first segment of a request head that ends in a later one, its request line whole
 * (d[:nl], read into sp1, sp2 and v10): RequestReader._start, then DirectionReader._head
 * and _first_line_ok keep it in ``buf`` in state HEAD. 1 done, 0 declined, -1 error. */
static int req_start(PyObject *st, struct reqctx *c, PyObject *ts, const char *d,
                     Py_ssize_t n, Py_ssize_t nl, Py_ssize_t sp1, Py_ssize_t sp2, int v10,
                     int pipe)
{
    PyObject *rd = c->rd, *buf = SLOT(rd, dr_buf);
    if (buf == NULL || !PyByteArray_CheckExact(buf) || PyByteArray_GET_SIZE(buf) != 0)
        return 0;
    PyObject *method = PyUnicode_DecodeLatin1(d, sp1, NULL);
    PyObject *uri = method ? PyUnicode_DecodeLatin1(d + sp1 + 1, sp2 - sp1 - 1, NULL) : NULL;
    PyObject *line = uri ? PyTuple_Pack(3, method, uri, v10 ? H_v10 : H_v11) : NULL;
    PyObject *nlo = line ? PyLong_FromSsize_t(nl) : NULL;
    PyObject *scan = nlo ? PyLong_FromSsize_t(n) : NULL;
    Py_XDECREF(method);
    Py_XDECREF(uri);
    if (scan == NULL || PyByteArray_Resize(buf, n) < 0) {
        Py_XDECREF(line);
        Py_XDECREF(nlo);
        Py_XDECREF(scan);
        return -1;
    }
    memcpy(PyByteArray_AS_STRING(buf), d, (size_t)n);
    slot_set(rd, q_start_line, line);
    slot_set(rd, dr_nl, nlo);
    slot_set(rd, dr_scan, scan);
    slot_set_obj(rd, q_pipe, pipe ? Py_True : Py_False);
    slot_set_obj(rd, dr_msg_ts, ts);
    slot_set_obj(rd, dr_last_ts, ts);
    if (PyUnicode_CompareWithASCIIString(c->proto, "unknown") == 0)
        slot_set_obj(st, hs_protocol, H_http1);
    return slot_set_ll(rd, dr_state, 1) < 0 ? -1 : 1;     /* HEAD */
}

static int http_req_fast(PyObject *st, PyObject *ts, const char *d, Py_ssize_t n)
{
    struct reqctx c;
    if (n <= 0 || !req_ctx(st, &c))
        return 0;
    PyObject *rd = c.rd;
    if (c.state == 0) {
        /* IDLE: the segment is exactly one whole head, or the start of one with its whole
           request line (RequestReader._start first) */
        PyObject *resp = SLOT(st, hs_resp), *replaying = SLOT(rd, q_replaying);
        PyObject *rpend = resp != NULL && Py_TYPE(resp) == T_rreader ? SLOT(resp, dr_pend)
                          : NULL;
        if (rpend == NULL || (replaying != Py_True && replaying != Py_False)
            || d[0] == '\r' || d[0] == '\n')
            return 0;
        Py_ssize_t end = find_head_end(d, n < c.max_hdr ? n : (Py_ssize_t)c.max_hdr);
        if (end != n && (end >= 0 || n >= c.max_hdr))
            return 0;
        const char *lf = memchr(d, '\n', (size_t)n);
        if (lf == NULL)
            return 0;
        Py_ssize_t nl = lf - d, sp1, sp2;
        int v10;
        if (!split_request_line(d, nl, &sp1, &sp2, &v10))
            return 0;
        Py_ssize_t waiting = PyObject_Length(c.u);
        if (waiting < 0)
            return -1;
        int pipe = replaying == Py_True || waiting > 0 || rpend != Py_None;
        if (end < 0)
            return req_start(st, &c, ts, d, n, nl, sp1, sp2, v10, pipe);
        int done = req_finish(st, &c, ts, d, n, nl, PyUnicode_DecodeLatin1(d, sp1, NULL),
                              PyUnicode_DecodeLatin1(d + sp1 + 1, sp2 - sp1 - 1, NULL),
                              Py_NewRef(v10 ? H_v10 : H_v11), pipe, ts);
        if (done == 1) {        /* _start's fields */
            slot_set_obj(rd, q_pipe, pipe ? Py_True : Py_False);
            slot_set_obj(rd, dr_msg_ts, ts);
            slot_set_obj(rd, dr_nl, H_minus1);
        }
        return done;
    }
    if (c.state != 1)
        return 0;
    /* HEAD: the rest of a head whose request line came before (DirectionReader._head,
       then _on_head with the start line read then); the segment must end the head */
    PyObject *buf = SLOT(rd, dr_buf), *sl = SLOT(rd, q_start_line);
    PyObject *pipe = SLOT(rd, q_pipe), *msg_ts = SLOT(rd, dr_msg_ts);
    int ok = 1;
    long long nlv = slot_ll(SLOT(rd, dr_nl), &ok), scan = slot_ll(SLOT(rd, dr_scan), &ok);
    if (!ok || buf == NULL || !PyByteArray_CheckExact(buf) || nlv < 0 || sl == NULL
        || !PyTuple_CheckExact(sl) || PyTuple_GET_SIZE(sl) != 3 || msg_ts == NULL
        || (pipe != Py_True && pipe != Py_False))
        return 0;
    for (int i = 0; i < 3; i++)
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(sl, i)))
            return 0;
    Py_ssize_t old = PyByteArray_GET_SIZE(buf), total = old + n;
    if (old < 1 || total > c.max_hdr || nlv >= old)
        return 0;
    char *all = PyMem_Malloc((size_t)total);
    if (all == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(all, PyByteArray_AS_STRING(buf), (size_t)old);
    memcpy(all + old, d, (size_t)n);
    int done = 0;
    if (head_end_from(all, scan > 2 ? (scan - 2 < old ? scan - 2 : old) : 0, total) == total) {
        Py_INCREF(msg_ts);          /* the slot may be replaced while it is read */
        done = req_finish(st, &c, ts, all, total, (Py_ssize_t)nlv,
                          Py_NewRef(PyTuple_GET_ITEM(sl, 0)), Py_NewRef(PyTuple_GET_ITEM(sl, 1)),
                          Py_NewRef(PyTuple_GET_ITEM(sl, 2)), pipe == Py_True, msg_ts);
        Py_DECREF(msg_ts);
        if (done == 1 && PyByteArray_Resize(buf, 0) < 0)
            done = -1;
    }
    PyMem_Free(all);
    return done;
}

PyDoc_STRVAR(http_req_doc,
"http_req(stream, ts, data) -> bool\n\n"
"HttpStream.feed(True, ts, data) for the commonest request segment (see the comment in\n"
"_fastpcap.c); False: nothing was done, call feed().");

static PyObject *http_req(PyObject *self, PyObject *args)
{
    (void)self;
    return http_call(args, http_req_fast);
}

PyDoc_STRVAR(spill_heads_doc,
"spill_heads(exchanges, buf, base, store)\n\n"
"heads.spill's pass, in C (after setup_http): for each HttpExchange of the list whose\n"
"_store is None, append each head held as 1-byte text shorter than 16 MB to the bytearray\n"
"``buf`` and put its handle (offset from ``base`` << 24 | length) in its slot; then set\n"
"its _store to ``store``.");

static PyObject *spill_heads(PyObject *self, PyObject *args)
{
    PyObject *list, *buf, *store;
    long long base;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!LO", &PyList_Type, &list, &PyByteArray_Type, &buf,
                          &base, &store))
        return NULL;
    if (!http_ready) {
        PyErr_SetString(PyExc_RuntimeError, "setup_http() was not called");
        return NULL;
    }
    const Py_ssize_t slots[2] = {x_request_head, x_response_head};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *ex = PyList_GET_ITEM(list, i);
        if (Py_TYPE(ex) != T_exchange) {
            PyErr_SetString(PyExc_TypeError, "spill_heads: not an HttpExchange");
            return NULL;
        }
        if (SLOT(ex, x_store) != Py_None)
            continue;
        slot_set_obj(ex, x_store, store);      /* first: a failure below leaves no handle
                                                  without its store */
        for (int k = 0; k < 2; k++) {
            PyObject *text = SLOT(ex, slots[k]);
            if (text == NULL || !PyUnicode_CheckExact(text)
                || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
                continue;
            Py_ssize_t n = PyUnicode_GET_LENGTH(text);
            Py_ssize_t at = PyByteArray_GET_SIZE(buf);
            if (n >= (1 << 24) || base + at >= (1LL << 39))    /* the handle fits 63 bits */
                continue;
            PyObject *h = PyLong_FromLongLong(((base + at) << 24) | n);
            if (h == NULL || PyByteArray_Resize(buf, at + n) < 0) {
                Py_XDECREF(h);
                return NULL;
            }
            memcpy(PyByteArray_AS_STRING(buf) + at, PyUnicode_1BYTE_DATA(text), (size_t)n);
            slot_set(ex, slots[k], h);
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"head_fields", head_fields, METH_O, head_fields_doc},
    {"scan", scan, METH_VARARGS, scan_doc},
    {"setup_lane", setup_lane, METH_VARARGS, setup_lane_doc},
    {"lane", lane, METH_VARARGS, lane_doc},
    {"scan_lane", scan_lane, METH_VARARGS, scan_lane_doc},
    {"follow_scan", follow_scan, METH_VARARGS, follow_scan_doc},
    {"scan_epb", scan_epb, METH_VARARGS, scan_epb_doc},
    {"setup_http", setup_http, METH_VARARGS, setup_http_doc},
    {"http_resp", http_resp, METH_VARARGS, http_resp_doc},
    {"http_req", http_req, METH_VARARGS, http_req_doc},
    {"spill_heads", spill_heads, METH_VARARGS, spill_heads_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pcapstats._fastpcap",
    "The per-record loop of classic pcap files and the TCP fast lane, in C (optional; see\n"
    "readers.py and pipeline.py).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpcap(void) { return PyModule_Create(&module); }
