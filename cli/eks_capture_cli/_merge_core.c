/* The merge of plain classic pcap and pcapng files into pcapng, in C: no per-packet Python.
 *
 * Why C: on 1 M packets the record-by-record merge spends 1.46 CPU s of Python (docs/design.md),
 * and numpy's import alone (0.16 s) was half of mergecap's whole run. This module reads each input
 * through its own buffer, parses records exactly as eks_capture.pcap.reader.CaptureReader does
 * (same stop reasons, same limits), and writes enhanced packet blocks into the caller's bytearray,
 * in the order of eks_capture_cli.merge.merge_records, which is its oracle byte for byte.
 * Interfaces and the name resolution block stay in Python (PcapngOutput), called back when
 * merge_records would call them.
 *
 * Untrusted input: every field is bounds-checked before it is read; lengths are unsigned and
 * compared before any subtraction; times are computed in 128 bits. Fields are read and written byte
 * by byte in their file's order, so the host's own byte order does not matter.
 *
 * Portability: GCC or Clang on a 64-bit target (unsigned __int128, __builtin_bswap32) and POSIX
 * open/read; Python.h comes first, as its pyconfig.h sets the feature macros (_POSIX_C_SOURCE
 * 200809L, _GNU_SOURCE) that declare O_CLOEXEC and ssize_t under -std=c11.
 *
 * Stable ABI: pyproject.toml builds it with Py_LIMITED_API = 3.11 (requires-python), so one build,
 * _merge_core.abi3.so, loads in every later CPython; objects are read through functions
 * (PyByteArray_Size, PyTuple_GetItem), never the macros that know their layout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifndef __SIZEOF_INT128__
#error "_merge_core needs a compiler with unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_PACKET 262144u
#define MAX_BLOCK (16u << 20)
#define PCAP_MAGIC_US 0xA1B2C3D4u
#define PCAP_MAGIC_NS 0xA1B23C4Du
#define PCAPNG_SHB 0x0A0D0D0Au
#define PCAPNG_BOM 0x1A2B3C4Du
#define BLOCK_IDB 1u
#define BLOCK_PB 2u
#define BLOCK_SPB 3u
#define BLOCK_EPB 6u
#define OPT_TSRESOL 9u
#define OPT_TSOFFSET 14u
#define EPB_HEAD 28u
#define REASON_SIZE 160
#define MAX_CHUNK (1u << 30) /* the largest read size and flush size a caller may ask for */

typedef __int128 i128;
typedef unsigned __int128 u128;

enum format { FORMAT_UNKNOWN, FORMAT_PCAP, FORMAT_PCAPNG };

/* What a pcapng interface description says that matters for its packets (reader.Interface). */
typedef struct {
    uint32_t link_type;
    uint32_t snaplen;
    uint32_t mult;      /* ns per unit before the division: 10^k or 10^9 */
    uint32_t div_shift; /* 2^-n s: divide by 2^n */
    uint32_t div_pow10; /* 10^-n s with n > 9: divide by 10^(n-9) */
    int64_t offset_s;   /* if_tsoffset, in seconds */
} Interface;

/* One link type of an input and its interface id in the output. */
typedef struct {
    uint32_t link;
    long long iface;
} Link;

typedef struct Output Output;
static PyObject *output_python(Output *out, PyObject *callable, PyObject *args);

typedef struct {
    Py_ssize_t index;
    PyObject *path; /* borrowed, for error messages */
    Output *out;    /* the merge's, synced before a signal handler runs in a read */
    int fd;
    unsigned char *buf;
    size_t cap, pos, end, chunk;
    int eof;
    enum format format;
    int big_endian;
    uint32_t unit, pcap_link, limit;             /* classic pcap */
    Interface *ifaces;                           /* pcapng: this section's interfaces */
    size_t nifaces, ifaces_cap;
    uint64_t last_ts;                            /* pcapng: for simple packet blocks */
    Link *links;                                 /* link types met, with their interface ids */
    size_t nlinks, links_cap;
    int opening;                                 /* before the first record: link types are noted */
    /* the current record */
    uint64_t ts;
    uint32_t link, caplen, wirelen;
    size_t data;
    long long cached_link, cached_iface;
    char reason[REASON_SIZE];
    int stopped;
} Input;

static uint32_t rd32(const Input *in, const unsigned char *p) {
    if (in->big_endian)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint16_t rd16(const Input *in, const unsigned char *p) {
    return in->big_endian ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t rd32le(const unsigned char *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static void wr32le(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* The input ends early for this reason (CaptureReader.stop; the first reason wins). */
static void stop(Input *in, const char *format, ...) {
    if (in->stopped)
        return;
    in->stopped = 1;
    va_list args;
    va_start(args, format);
    vsnprintf(in->reason, REASON_SIZE, format, args);
    va_end(args);
}

/* Make at least `need` unread bytes available if the file has them; -1 with OSError set. */
static int fill(Input *in, size_t need) {
    size_t have = in->end - in->pos;
    if (have >= need || in->eof)
        return 0;
    if (in->pos) {
        memmove(in->buf, in->buf + in->pos, have);
        in->pos = 0;
        in->end = have;
    }
    size_t want = need > in->chunk ? need : in->chunk;
    if (want > in->cap) {
        unsigned char *grown = PyMem_Realloc(in->buf, want);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        in->buf = grown;
        in->cap = want;
    }
    while (in->end < need && !in->eof) {
        size_t room = in->cap - in->end;
        if (room > in->chunk && in->end + in->chunk >= need)
            room = in->chunk;
        ssize_t got = read(in->fd, in->buf + in->end, room);
        if (got < 0) {
            if (errno == EINTR) {
                PyObject *handled = output_python(in->out, NULL, NULL);
                if (handled == NULL)
                    return -1;
                Py_DECREF(handled);
                continue;
            }
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, in->path);
            return -1;
        }
        if (got == 0)
            in->eof = 1;
        else
            in->end += (size_t)got;
    }
    return 0;
}

/* Note a link type met before the first record (CaptureReader.link_types); -1 on no memory. */
static int note_link(Input *in, uint32_t link) {
    for (size_t i = 0; i < in->nlinks; i++)
        if (in->links[i].link == link)
            return 0;
    if (in->nlinks == in->links_cap) {
        size_t cap = in->links_cap ? 2 * in->links_cap : 4;
        Link *grown = PyMem_Realloc(in->links, cap * sizeof(Link));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        in->links = grown;
        in->links_cap = cap;
    }
    in->links[in->nlinks].link = link;
    in->links[in->nlinks].iface = -1;
    in->nlinks++;
    return 0;
}

static void set_resolution(Interface *iface, unsigned code) {
    unsigned exponent = code & 0x7F;
    iface->div_shift = iface->div_pow10 = 0;
    if (code & 0x80) {
        iface->mult = 1000000000u;
        iface->div_shift = exponent;
    } else if (exponent <= 9) {
        iface->mult = 1;
        for (unsigned i = exponent; i < 9; i++)
            iface->mult *= 10;
    } else {
        iface->mult = 1;
        iface->div_pow10 = exponent - 9;
    }
}

/* raw * mult // div + offset, exactly; 0 with *ts set when it fits 64 unsigned bits. */
static int packet_time(const Interface *iface, uint64_t raw, uint64_t *ts) {
    u128 units = (u128)raw * iface->mult;
    if (iface->div_shift)
        units >>= iface->div_shift;
    if (iface->div_pow10) {
        if (iface->div_pow10 > 38) {
            units = 0;
        } else {
            u128 div = 1;
            for (unsigned i = 0; i < iface->div_pow10; i++)
                div *= 10;
            units /= div;
        }
    }
    i128 value = (i128)units + (i128)iface->offset_s * 1000000000;
    if (value < 0 || value > (i128)UINT64_MAX)
        return -1;
    *ts = (uint64_t)value;
    return 0;
}

/* reader.interface_of: the interface described by the block at `block`, or a stop. */
static int parse_interface(Input *in, const unsigned char *block, uint32_t length, Interface *iface) {
    if (length < 20) {
        stop(in, "corrupt interface description block of length %u", length);
        return -1;
    }
    const unsigned char *body = block + 8;
    iface->link_type = rd16(in, body);
    iface->snaplen = rd32(in, body + 4);
    iface->offset_s = 0;
    set_resolution(iface, 6);
    size_t opt = 8, opt_end = length - 12;
    while (opt + 4 <= opt_end) {
        unsigned code = rd16(in, body + opt), size = rd16(in, body + opt + 2);
        if (code == 0)
            break;
        size_t value = opt + 4;
        if (value + size > opt_end) {
            stop(in, "corrupt interface description block: option overruns the block");
            return -1;
        }
        if (code == OPT_TSRESOL && size >= 1) {
            set_resolution(iface, body[value]);
        } else if (code == OPT_TSOFFSET && size >= 8) {
            uint64_t hi = rd32(in, body + value), lo = rd32(in, body + value + 4);
            uint64_t bits = in->big_endian ? hi << 32 | lo : lo << 32 | hi;
            iface->offset_s = (int64_t)bits;
        }
        opt = value + ((size + 3) & ~(size_t)3);
    }
    return 0;
}

/* The next record of a classic pcap file: 1, 0 at its end (maybe stopped), -1 on an OSError. */
static int next_pcap(Input *in) {
    if (fill(in, 16) < 0)
        return -1;
    size_t have = in->end - in->pos;
    if (have < 16) {
        if (have)
            stop(in, "truncated record header (%zu of 16 bytes)", have);
        return 0;
    }
    const unsigned char *p = in->buf + in->pos;
    uint32_t sec = rd32(in, p), frac = rd32(in, p + 4), caplen = rd32(in, p + 8);
    in->wirelen = rd32(in, p + 12);
    if (caplen > in->limit) {
        stop(in, "corrupt record: captured length %u exceeds %u", caplen, in->limit);
        return 0;
    }
    size_t need = 16 + (size_t)caplen;
    if (fill(in, need) < 0)
        return -1;
    have = in->end - in->pos;
    if (have < need) {
        stop(in, "truncated packet data (%zu of %u bytes)", have - 16, caplen);
        return 0;
    }
    in->ts = (uint64_t)sec * 1000000000u + (uint64_t)frac * in->unit;
    in->link = in->pcap_link;
    in->caplen = caplen;
    in->data = in->pos + 16;
    in->pos += need;
    return 1;
}

/* A packet of a pcapng file from interface `id` at `raw` units; 0 when its time is out of range. */
static int pcapng_packet(Input *in, uint32_t id, uint64_t raw, size_t data, uint32_t caplen) {
    const Interface *iface = &in->ifaces[id];
    if (packet_time(iface, raw, &in->last_ts) < 0) {
        stop(in, "packet time out of range");
        return 0;
    }
    in->ts = in->last_ts;
    in->link = iface->link_type;
    in->data = data;
    in->caplen = caplen;
    return 1;
}

/* The next packet of a pcapng file, past other blocks: 1, 0 at its end (maybe stopped), -1 on error. */
static int next_pcapng(Input *in) {
    for (;;) {
        if (fill(in, 12) < 0)
            return -1;
        size_t have = in->end - in->pos;
        if (have < 12) {
            if (have)
                stop(in, "truncated block header (%zu of 12 bytes)", have);
            return 0;
        }
        const unsigned char *p = in->buf + in->pos;
        if (rd32le(p) == PCAPNG_SHB) {
            if (rd32le(p + 8) == PCAPNG_BOM) {
                in->big_endian = 0;
            } else if (rd32le(p + 8) == __builtin_bswap32(PCAPNG_BOM)) {
                in->big_endian = 1;
            } else {
                stop(in, "corrupt section header: bad byte-order magic");
                return 0;
            }
            in->nifaces = 0;
        }
        uint32_t type = rd32(in, p), length = rd32(in, p + 4);
        if (length < 12 || length % 4 || length > MAX_BLOCK) {
            stop(in, "corrupt block: type 0x%x with length %u", type, length);
            return 0;
        }
        if (fill(in, length) < 0)
            return -1;
        have = in->end - in->pos;
        if (have < length) {
            stop(in, "truncated block: type 0x%x, %zu of %u bytes", type, have, length);
            return 0;
        }
        size_t block = in->pos;
        p = in->buf + block;
        const unsigned char *body = p + 8;
        in->pos += length;
        if (type == BLOCK_EPB) {
            if (length < 32) {
                stop(in, "corrupt enhanced packet block of length %u", length);
                return 0;
            }
            uint32_t id = rd32(in, body), caplen = rd32(in, body + 12);
            if (id >= in->nifaces || caplen > length - 32) {
                stop(in, "corrupt enhanced packet block (interface %u, caplen %u)", id, caplen);
                return 0;
            }
            in->wirelen = rd32(in, body + 16);
            uint64_t raw = (uint64_t)rd32(in, body + 4) << 32 | rd32(in, body + 8);
            return pcapng_packet(in, id, raw, block + 28, caplen);
        } else if (type == BLOCK_IDB) {
            Interface iface;
            if (parse_interface(in, p, length, &iface) < 0)
                return 0;
            if (in->nifaces == in->ifaces_cap) {
                size_t cap = in->ifaces_cap ? 2 * in->ifaces_cap : 4;
                Interface *grown = PyMem_Realloc(in->ifaces, cap * sizeof(Interface));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    return -1;
                }
                in->ifaces = grown;
                in->ifaces_cap = cap;
            }
            in->ifaces[in->nifaces++] = iface;
            if (in->opening && note_link(in, iface.link_type) < 0)
                return -1;
        } else if (type == BLOCK_SPB) {
            if (in->nifaces == 0) {
                stop(in, "simple packet block before any interface description");
                return 0;
            }
            if (length < 16) {
                stop(in, "corrupt simple packet block of length %u", length);
                return 0;
            }
            const Interface *iface = &in->ifaces[0];
            uint32_t wirelen = rd32(in, body), caplen = wirelen;
            if (length - 16 < caplen)
                caplen = length - 16;
            if (iface->snaplen && iface->snaplen < caplen)
                caplen = iface->snaplen;
            in->ts = in->last_ts;
            in->link = iface->link_type;
            in->data = block + 12;
            in->caplen = caplen;
            in->wirelen = wirelen;
            return 1;
        } else if (type == BLOCK_PB) {
            if (length < 32) {
                stop(in, "corrupt packet block of length %u", length);
                return 0;
            }
            uint32_t id = rd16(in, body), caplen = rd32(in, body + 12);
            if (id >= in->nifaces || caplen > length - 32) {
                stop(in, "corrupt packet block (interface %u, caplen %u)", id, caplen);
                return 0;
            }
            in->wirelen = rd32(in, body + 16);
            uint64_t raw = (uint64_t)rd32(in, body + 4) << 32 | rd32(in, body + 8);
            return pcapng_packet(in, id, raw, block + 28, caplen);
        }
    }
}

static int next_record(Input *in) {
    if (in->stopped)
        return 0;
    return in->format == FORMAT_PCAP ? next_pcap(in) : next_pcapng(in);
}

/* Sniff the format (CaptureReader.__iter__) and read the first record, as opening an input does. */
static int first_record(Input *in) {
    if (fill(in, 24) < 0)
        return -1;
    size_t have = in->end;
    if (have < 4) {
        stop(in, have ? "truncated file header" : "empty file");
        return 0;
    }
    const unsigned char *p = in->buf;
    uint32_t magic = rd32le(p);
    if (magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS || __builtin_bswap32(magic) == PCAP_MAGIC_US ||
        __builtin_bswap32(magic) == PCAP_MAGIC_NS) {
        in->format = FORMAT_PCAP;
        in->big_endian = magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS;
        if (have < 24) {
            stop(in, "truncated file header");
            return 0;
        }
        uint32_t snaplen = rd32(in, p + 16);
        in->unit = rd32(in, p) == PCAP_MAGIC_NS ? 1 : 1000;
        in->pcap_link = rd32(in, p + 20) & 0x03FFFFFF;
        if (in->pcap_link > 0xFFFF) {
            stop(in, "unsupported link type 0x%x", in->pcap_link);
            return 0;
        }
        in->limit = snaplen < MAX_BLOCK ? snaplen : MAX_BLOCK;
        if (in->limit < MAX_PACKET)
            in->limit = MAX_PACKET;
        if (note_link(in, in->pcap_link) < 0)
            return -1;
        in->pos = 24;
    } else if (magic == PCAPNG_SHB) {
        in->format = FORMAT_PCAPNG;
    } else {
        stop(in, "not a pcap or pcapng file (magic %02x%02x%02x%02x)", p[0], p[1], p[2], p[3]);
        return 0;
    }
    return next_record(in);
}

static void close_input(Input *in) {
    if (in->fd >= 0)
        close(in->fd);
    in->fd = -1;
    PyMem_Free(in->buf);
    PyMem_Free(in->ifaces);
    PyMem_Free(in->links);
    in->buf = NULL;
    in->ifaces = NULL;
    in->links = NULL;
    in->cap = in->pos = in->end = 0;
}

/* The output: the caller's bytearray, of which `used` bytes hold blocks (it is longer in between). */
struct Output {
    PyObject *blocks;
    PyObject *write;
    Py_ssize_t used, flush;
};

/* The bytearray (of `size` bytes) is never shorter than its blocks, unless Python code (a signal
 * handler) shrank it while it was longer: then its blocks are lost, and writing at `used` would
 * overrun it. */
static int output_check(const Output *out, Py_ssize_t size) {
    if (size >= out->used)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "the merge's blocks were shortened while it wrote them");
    return -1;
}

/* Make the bytearray exactly the blocks, before Python code sees it. */
static int output_sync(Output *out) {
    Py_ssize_t size = PyByteArray_Size(out->blocks);
    if (output_check(out, size) < 0)
        return -1;
    if (size == out->used)
        return 0;
    return PyByteArray_Resize(out->blocks, out->used);
}

/* Run Python code: callable(*args) (args a tuple, or NULL for none), or with no callable the signal
 * handlers (PyErr_CheckSignals; Py_None then). Every place the merge lets Python code run mid-merge
 * comes here (write, which takes the blocks away, is output_flush's): it sees the bytearray exactly
 * the blocks, and what it leaves in it is the blocks from then on. A new reference, or NULL with an
 * exception set. */
static PyObject *output_python(Output *out, PyObject *callable, PyObject *args) {
    if (output_sync(out) < 0)
        return NULL;
    PyObject *result;
    if (callable != NULL)
        result = PyObject_CallObject(callable, args);
    else
        result = PyErr_CheckSignals() < 0 ? NULL : Py_NewRef(Py_None);
    out->used = PyByteArray_Size(out->blocks);
    return result;
}

static unsigned char *output_reserve(Output *out, size_t need) {
    Py_ssize_t size = PyByteArray_Size(out->blocks); /* read once a packet */
    if (output_check(out, size) < 0)
        return NULL;
    if ((size_t)(size - out->used) < need) {
        Py_ssize_t want = out->used + (Py_ssize_t)need;
        Py_ssize_t ample = out->flush + (out->flush >> 4);
        if (want < ample)
            want = ample;
        if (want < 2 * size)
            want = 2 * size;
        if (PyByteArray_Resize(out->blocks, want) < 0)
            return NULL;
    }
    return (unsigned char *)PyByteArray_AsString(out->blocks) + out->used;
}

/* write(blocks); the bytearray keeps its length (and memory) for the next blocks until synced. */
static int output_flush(Output *out) {
    if (output_sync(out) < 0)
        return -1;
    PyObject *done = PyObject_CallFunctionObjArgs(out->write, out->blocks, NULL);
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    out->used = 0;
    return 0;
}

/* A flush in the merge: also where a long merge answers Ctrl-C, once per flush, not per packet. A
 * signal handler is Python code: it sees the blocks synced, and what it leaves in them is kept. */
static int output_write(Output *out) {
    PyObject *handled = output_python(out, NULL, NULL);
    if (handled == NULL)
        return -1;
    Py_DECREF(handled);
    return output_flush(out);
}

/* interface(index, link) in Python; the id, or -1 with an exception set. */
static long long call_interface(Output *out, PyObject *interface, Input *in, uint32_t link) {
    PyObject *args = Py_BuildValue("(nk)", in->index, (unsigned long)link);
    if (args == NULL)
        return -1;
    PyObject *found = output_python(out, interface, args);
    Py_DECREF(args);
    if (found == NULL)
        return -1;
    long long id = PyLong_AsLongLong(found);
    Py_DECREF(found);
    if (id == -1 && PyErr_Occurred())
        return -1;
    if (id < 0 || id > (long long)UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "interface id %lld does not fit a packet block", id);
        return -1;
    }
    return id;
}

/* The output interface of the current record's link type, described first if new. */
static long long record_interface(Output *out, PyObject *interface, Input *in) {
    if (in->cached_link == (long long)in->link)
        return in->cached_iface;
    long long id = -1;
    for (size_t i = 0; i < in->nlinks; i++)
        if (in->links[i].link == in->link)
            id = in->links[i].iface;
    if (id < 0) {
        id = call_interface(out, interface, in, in->link);
        if (id < 0 || note_link(in, in->link) < 0)
            return -1;
        in->links[in->nlinks - 1].iface = id;
    }
    in->cached_link = in->link;
    in->cached_iface = id;
    return id;
}

static int write_packet(Output *out, const Input *in, long long iface) {
    uint32_t caplen = in->caplen, pad = -caplen & 3, length = 32 + caplen + pad;
    unsigned char *p = output_reserve(out, length);
    if (p == NULL)
        return -1;
    wr32le(p, BLOCK_EPB);
    wr32le(p + 4, length);
    wr32le(p + 8, (uint32_t)iface);
    wr32le(p + 12, (uint32_t)(in->ts >> 32));
    wr32le(p + 16, (uint32_t)in->ts);
    wr32le(p + 20, caplen);
    wr32le(p + 24, in->wirelen);
    memcpy(p + EPB_HEAD, in->buf + in->data, caplen);
    memset(p + EPB_HEAD + caplen, 0, pad);
    wr32le(p + EPB_HEAD + caplen + pad, length);
    out->used += length;
    return out->used >= out->flush ? output_write(out) : 0;
}

/* Heap order: earliest time first, of equal times the input listed last (rank -index). */
static int earlier(const Input *a, const Input *b) {
    return a->ts < b->ts || (a->ts == b->ts && a->index > b->index);
}

static void sift_down(Input **heap, size_t size, size_t at) {
    Input *moving = heap[at];
    for (;;) {
        size_t child = 2 * at + 1;
        if (child >= size)
            break;
        if (child + 1 < size && earlier(heap[child + 1], heap[child]))
            child++;
        if (!earlier(heap[child], moving))
            break;
        heap[at] = heap[child];
        at = child;
    }
    heap[at] = moving;
}

static void sift_up(Input **heap, size_t at) {
    Input *moving = heap[at];
    while (at) {
        size_t parent = (at - 1) / 2;
        if (!earlier(moving, heap[parent]))
            break;
        heap[at] = heap[parent];
        at = parent;
    }
    heap[at] = moving;
}

/* A pending input's first time, clamped to [-1, 2^64]: compared with packet times only. */
static int first_time(PyObject *value, i128 *first) {
    PyObject *number = PyNumber_Index(value);
    if (number == NULL)
        return -1;
    int overflow;
    long long small = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (overflow > 0) {
        unsigned long long big = PyLong_AsUnsignedLongLong(number);
        if (big == (unsigned long long)-1 && PyErr_Occurred()) { /* 2^64 or more */
            PyErr_Clear();
            *first = (i128)1 << 64;
        } else {
            *first = (i128)big;
        }
    } else {
        *first = overflow < 0 || small < 0 ? -1 : (i128)small;
    }
    Py_DECREF(number);
    return 0;
}

typedef struct {
    Input *inputs;
    Py_ssize_t count;
    Py_ssize_t *order; /* indices in opening order */
    i128 *first;       /* first times, by index */
    Input **heap;
    size_t heap_size;
    Py_ssize_t next_pending;
    Output out;
    PyObject *interface;
} Merge;

static int open_next(Merge *m) {
    Input *in = &m->inputs[m->order[m->next_pending++]];
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(in->path, &encoded))
        return -1;
    const char *name = PyBytes_AsString(encoded);
    if (name == NULL) {
        Py_DECREF(encoded);
        return -1;
    }
    in->fd = open(name, O_RDONLY | O_CLOEXEC);
    Py_DECREF(encoded);
    if (in->fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, in->path);
        return -1;
    }
    in->opening = 1;
    int found = first_record(in);
    in->opening = 0;
    if (found < 0)
        return -1;
    for (size_t i = 0; i < in->nlinks; i++) {
        long long id = call_interface(&m->out, m->interface, in, in->links[i].link);
        if (id < 0)
            return -1;
        in->links[i].iface = id;
    }
    if (found) {
        m->heap[m->heap_size] = in;
        sift_up(m->heap, m->heap_size++);
    } else {
        close_input(in);
    }
    return 0;
}

/* merge_records' loop: open inputs as their time comes, then copy runs of packets from the earliest. */
static int run(Merge *m, PyObject *names_once, unsigned long long *packets) {
    int named = 0;
    const Py_ssize_t last_rank = -m->count;
    while (m->next_pending < m->count || m->heap_size) {
        if (m->next_pending < m->count) {
            while (m->next_pending < m->count &&
                   (!m->heap_size || m->first[m->order[m->next_pending]] <= (i128)m->heap[0]->ts))
                if (open_next(m) < 0)
                    return -1;
            if (!m->heap_size)
                continue;
            if (!named) {
                named = 1;
                PyObject *done = output_python(&m->out, names_once, NULL);
                if (done == NULL)
                    return -1;
                Py_DECREF(done);
            }
        }
        Input *in = m->heap[0];
        i128 bound_ts = (i128)1 << 100; /* later than any packet */
        Py_ssize_t bound_rank = 0;
        if (m->heap_size > 1) {
            const Input *second = m->heap[1];
            if (m->heap_size > 2 && earlier(m->heap[2], second))
                second = m->heap[2];
            bound_ts = second->ts;
            bound_rank = -second->index;
        }
        if (m->next_pending < m->count && m->first[m->order[m->next_pending]] <= bound_ts) {
            bound_ts = m->first[m->order[m->next_pending]];
            bound_rank = last_rank;
        }
        const Py_ssize_t rank = -in->index;
        for (;;) {
            long long iface = record_interface(&m->out, m->interface, in);
            if (iface < 0 || write_packet(&m->out, in, iface) < 0)
                return -1;
            ++*packets;
            int found = next_record(in);
            if (found < 0)
                return -1;
            if (!found) {
                m->heap[0] = m->heap[--m->heap_size];
                if (m->heap_size)
                    sift_down(m->heap, m->heap_size, 0);
                close_input(in);
                break;
            }
            i128 ts = in->ts;
            if (ts < bound_ts || (ts == bound_ts && rank < bound_rank))
                continue;
            sift_down(m->heap, m->heap_size, 0);
            break;
        }
    }
    return 0;
}

/* Item i of what PySequence_Fast returned, a list or a tuple; borrowed, as PySequence_Fast_GET_ITEM's,
 * which the limited API leaves out (it reads the object's layout). */
static PyObject *fast_item(PyObject *fast, Py_ssize_t i) {
    return PyList_Check(fast) ? PyList_GetItem(fast, i) : PyTuple_GetItem(fast, i);
}

static PyObject *merge(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *keywords[] = {"paths", "order", "first_ns", "interface", "names_once", "blocks", "write",
                               "chunk", "flush", NULL};
    PyObject *paths, *order, *first_ns, *interface, *names_once, *blocks, *write;
    Py_ssize_t chunk = 1 << 20, flush = 1 << 20;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOYO|$nn:merge", keywords, &paths, &order, &first_ns,
                                     &interface, &names_once, &blocks, &write, &chunk, &flush))
        return NULL;
    if (chunk < 16 || flush < 1 || chunk > (Py_ssize_t)MAX_CHUNK || flush > (Py_ssize_t)MAX_CHUNK) {
        PyErr_Format(PyExc_ValueError, "chunk must be 16 to %u bytes and flush 1 to %u", MAX_CHUNK, MAX_CHUNK);
        return NULL;
    }
    /* A tuple, which owns the path strings: a callback changing the caller's list changes nothing. */
    PyObject *path_list = PySequence_Tuple(paths);
    PyObject *order_list = path_list ? PySequence_Fast(order, "order must be a sequence") : NULL;
    PyObject *first_list = order_list ? PySequence_Fast(first_ns, "first_ns must be a sequence") : NULL;
    PyObject *result = NULL;
    Merge m = {0};
    m.out = (Output){blocks, write, PyByteArray_Size(blocks), flush};
    m.interface = interface;
    unsigned long long packets = 0;
    char *listed = NULL;
    int started = 0, failed = 1;
    if (first_list == NULL)
        goto done;
    m.count = PyTuple_Size(path_list);
    if (PySequence_Size(order_list) != m.count || PySequence_Size(first_list) != m.count) {
        PyErr_SetString(PyExc_ValueError, "paths, order and first_ns differ in length");
        goto done;
    }
    m.inputs = PyMem_Calloc((size_t)m.count + 1, sizeof(Input));
    for (Py_ssize_t i = 0; m.inputs != NULL && i < m.count; i++) { /* closable from here on */
        Input *in = &m.inputs[i];
        in->index = i;
        in->fd = -1;
        in->out = &m.out;
        in->chunk = (size_t)chunk;
        in->cached_link = -1;
        in->path = PyTuple_GetItem(path_list, i);
    }
    m.order = PyMem_Calloc((size_t)m.count + 1, sizeof(Py_ssize_t));
    m.first = PyMem_Calloc((size_t)m.count + 1, sizeof(i128));
    m.heap = PyMem_Calloc((size_t)m.count + 1, sizeof(Input *));
    listed = PyMem_Calloc((size_t)m.count + 1, 1);
    if (!m.inputs || !m.order || !m.first || !m.heap || !listed) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < m.count; i++) {
        if (!PyUnicode_Check(m.inputs[i].path)) {
            PyErr_SetString(PyExc_TypeError, "paths must be str");
            goto done;
        }
        if (first_time(fast_item(first_list, i), &m.first[i]) < 0)
            goto done;
        Py_ssize_t index = PyLong_AsSsize_t(fast_item(order_list, i));
        if (index == -1 && PyErr_Occurred())
            goto done;
        if (index < 0 || index >= m.count || listed[index]) {
            PyErr_SetString(PyExc_ValueError, "order must list every input index once");
            goto done;
        }
        listed[index] = 1;
        m.order[i] = index;
    }
    started = 1;
    failed = run(&m, names_once, &packets) < 0;
done:
    if (started) { /* merge_records' finally: what is held is written, even after an error */
        PyObject *error_type, *error, *trace;
        PyErr_Fetch(&error_type, &error, &trace);
        if (output_flush(&m.out) < 0 || output_sync(&m.out) < 0) { /* empty once written */
            failed = 1;
            if (error_type != NULL)
                PyErr_Clear();
        }
        if (error_type != NULL)
            PyErr_Restore(error_type, error, trace);
    }
    for (Py_ssize_t i = 0; m.inputs != NULL && i < m.count; i++)
        close_input(&m.inputs[i]);
    PyObject *partial = failed ? NULL : PyDict_New();
    for (Py_ssize_t k = 0; partial != NULL && k < m.count; k++) { /* in opening order, as merge_records */
        const Input *in = &m.inputs[m.order[k]];
        if (!in->stopped)
            continue;
        PyObject *key = PyLong_FromSsize_t(in->index), *reason = PyUnicode_FromString(in->reason);
        if (key == NULL || reason == NULL || PyDict_SetItem(partial, key, reason) < 0)
            Py_CLEAR(partial);
        Py_XDECREF(key);
        Py_XDECREF(reason);
    }
    if (partial != NULL)
        result = Py_BuildValue("(KN)", packets, partial);
    PyMem_Free(m.inputs);
    PyMem_Free(m.order);
    PyMem_Free(m.first);
    PyMem_Free(m.heap);
    PyMem_Free(listed);
    Py_XDECREF(path_list);
    Py_XDECREF(order_list);
    Py_XDECREF(first_list);
    return result;
}

static PyMethodDef methods[] = {
    {"merge", (PyCFunction)(void (*)(void))merge, METH_VARARGS | METH_KEYWORDS,
     "Merge plain pcap/pcapng files into pcapng blocks; (packets written, stop reason by input index)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_merge_core", "The merge of plain pcap and pcapng files, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__merge_core(void) { return PyModule_Create(&module); }
