/* The hot batch walks in C; the pure-Python twins in iggy_batch.py / kafka_batch.py are the
 * reference (README, "C walks"). Each function only decides accept/reject and
 * returns what the Python twin would compute; on reject it returns None/False and the caller
 * re-runs the twin, which raises the exact error. Layouts: see the docstrings of
 * core/records/iggy_batch.py and core/records/kafka_batch.py. XXH3-64 comes from the system
 * libxxhash (Debian: libxxhash-dev), the same algorithm as the `xxhash` package. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#define BATCH_HEADER_SIZE 256
#define FRAME_HEADER_SIZE 48
#define MAX_PAYLOAD_SIZE 64000000u
#define MAX_USER_HEADERS_SIZE 100000u
/* walks over batches at least this big run without the GIL */
#define NOGIL_BYTES 65536

/* XXH3-64 at the widest vector unit of the CPU: Debian's libxxhash (built with DISPATCH=1)
 * exports XXH3_64bits_dispatch (xxh_x86dispatch.h), which picks AVX2/AVX-512 at run time,
 * while its XXH3_64bits is the SSE2 build (2-3x slower per byte here: BENCHMARKS.md, "The
 * classic consume path"). Same hash, same values; every walk of a sizeable buffer uses it.
 * A weak reference: a libxxhash without the dispatcher leaves it NULL and the plain
 * XXH3_64bits runs. */
extern XXH64_hash_t XXH3_64bits_dispatch(const void *input, size_t len) __attribute__((weak));
static XXH64_hash_t (*xxh3_fast)(const void *, size_t) = XXH3_64bits;

static inline uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* --- Iggy 0.11 batches ------------------------------------------------------------------- */

/* The frame loop of iggy_batch.validate_batch; 0 = reject. sums: 8 * count bytes, each
 * frame's checksum field, hashed and compared first when `verify`. */
static int iggy_frames(const uint8_t *b, uint64_t length, uint64_t count, uint64_t first_delta,
                       uint8_t *sums, int verify, uint64_t *max_ts_out)
{
    uint64_t pos = BATCH_HEADER_SIZE, max_ts = 0;
    for (uint64_t index = first_delta; index < first_delta + count; index++) {
        if (pos + FRAME_HEADER_SIZE > length)
            return 0;
        const uint8_t *f = b + pos;
        uint32_t delta = le32(f + 24), ts_delta = le32(f + 28);
        uint32_t uh_len = le32(f + 32), pl_len = le32(f + 36);
        uint64_t end = pos + FRAME_HEADER_SIZE + (uint64_t)pl_len + uh_len;
        if (le64(f + 40) || delta != index || end > length || pl_len == 0
                || pl_len > MAX_PAYLOAD_SIZE || uh_len > MAX_USER_HEADERS_SIZE)
            return 0;
        if (ts_delta > max_ts)
            max_ts = ts_delta;
        if (verify && xxh3_fast(f + 8, end - pos - 8) != le64(f))
            return 0;
        memcpy(sums + 8 * (index - first_delta), f, 8);
        pos = end;
    }
    *max_ts_out = max_ts;
    return pos == length;
}

static const uint8_t ZERO_RESERVED[BATCH_HEADER_SIZE - 52];

/* iggy_validate(buf, expected_count: int | None, verify: bool, allow_sliced: bool)
 *   -> (count, length, origin, max_ts_delta, first_delta, frame_sums) | None */
static PyObject *iggy_validate(PyObject *self, PyObject *args)
{
    Py_buffer view;
    PyObject *expected, *result = NULL;
    int verify, sliced;
    if (!PyArg_ParseTuple(args, "y*Opp", &view, &expected, &verify, &sliced))
        return NULL;
    const uint8_t *b = view.buf;
    uint64_t size = (uint64_t)view.len, length, count, first_delta = 0, max_ts = 0;
    uint8_t *scratch = NULL;
    if (size < BATCH_HEADER_SIZE || memcmp(b + 52, ZERO_RESERVED, sizeof ZERO_RESERVED)
            || (length = le64(b + 32)) != size || (count = le32(b + 48)) == 0)
        goto reject;
    if (expected != Py_None) {
        int overflow;
        long long want = PyLong_AsLongLongAndOverflow(expected, &overflow);
        if (want == -1 && PyErr_Occurred())
            goto done;
        if (overflow || want != (long long)count)
            goto reject;
    }
    /* every frame takes at least 49 bytes: a count beyond that cannot tile (and the frame
     * sums below are then bounded by the buffer) */
    if (count > (length - BATCH_HEADER_SIZE) / (FRAME_HEADER_SIZE + 1))
        goto reject;
    if (sliced && length >= BATCH_HEADER_SIZE + FRAME_HEADER_SIZE)
        first_delta = le32(b + BATCH_HEADER_SIZE + 24);
    /* header[0:40] ‖ header[48:52] ‖ the frames' checksum fields: the batch checksum input;
     * the fields are returned unverified too, so stamping reseals without a second walk */
    scratch = PyMem_Malloc(44 + 8 * count);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(scratch, b, 40);
    memcpy(scratch + 40, b + 48, 4);
    int ok;
    if (size >= NOGIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        ok = iggy_frames(b, length, count, first_delta, scratch + 44, verify, &max_ts);
        if (ok && verify)
            ok = xxh3_fast(scratch, 44 + 8 * count) == le64(b + 40);
        Py_END_ALLOW_THREADS
    } else {
        ok = iggy_frames(b, length, count, first_delta, scratch + 44, verify, &max_ts);
        if (ok && verify)
            ok = xxh3_fast(scratch, 44 + 8 * count) == le64(b + 40);
    }
    if (!ok)
        goto reject;
    result = Py_BuildValue("KKKKKy#", (unsigned long long)count, (unsigned long long)length,
                           (unsigned long long)le64(b + 24), (unsigned long long)max_ts,
                           (unsigned long long)first_delta,
                           (const char *)scratch + 44, (Py_ssize_t)(8 * count));
    goto done;
reject:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(scratch);
    PyBuffer_Release(&view);
    return result;
}

/* iggy_frame_sums(buf, start, end) -> the checksum fields of the frames tiling buf[start:end]
 * (8 bytes each, in order) | None when they do not tile it (iggy_batch._frame_sums_py). */
static PyObject *iggy_frame_sums(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, end;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &start, &end))
        return NULL;
    const uint8_t *b = view.buf;
    if (start < 0 || end > view.len || start > end) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* pass 1: count the frames (each at least 48 bytes), pass 2: copy their checksums */
    Py_ssize_t frames = 0;
    for (uint64_t pos = (uint64_t)start; pos < (uint64_t)end; frames++) {
        if ((uint64_t)end - pos < FRAME_HEADER_SIZE) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        pos += FRAME_HEADER_SIZE + (uint64_t)le32(b + pos + 32) + le32(b + pos + 36);
        if (pos > (uint64_t)end) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, 8 * frames);
    if (result == NULL)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    for (Py_ssize_t pos = start; pos < end; out += 8) {
        memcpy(out, b + pos, 8);
        pos += FRAME_HEADER_SIZE + (Py_ssize_t)le32(b + pos + 32) + le32(b + pos + 36);
    }
done:
    PyBuffer_Release(&view);
    return result;
}

/* iggy_stamp(buf, partition_id, base_offset, base_timestamp, frame_sums) -> bool: write the
 * three fields into a writable batch and reseal its checksum from frame_sums (the frames'
 * checksum fields, as iggy_validate returns them), as iggy_batch.stamp_batch does. False,
 * with nothing written: a header the Python twin rejects, or frame_sums not 8 bytes per
 * message (the twin then walks the frames). The fields must fit in 64 bits (the caller
 * checks). */
static PyObject *iggy_stamp(PyObject *self, PyObject *args)
{
    Py_buffer view, sums;
    unsigned long long pid, base, ts;
    if (!PyArg_ParseTuple(args, "w*KKKy*", &view, &pid, &base, &ts, &sums))
        return NULL;
    uint8_t *b = view.buf;
    uint64_t size = (uint64_t)view.len;
    int ok = size >= BATCH_HEADER_SIZE && !memcmp(b + 52, ZERO_RESERVED, sizeof ZERO_RESERVED)
             && le64(b + 32) == size && (uint64_t)sums.len == 8 * (uint64_t)le32(b + 48);
    XXH3_state_t *state = ok ? XXH3_createState() : NULL;
    if (ok && state == NULL) {
        PyBuffer_Release(&sums);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (ok) {
        uint64_t fields[3] = {pid, base, ts};
        memcpy(b, fields, 24);
        XXH3_64bits_reset(state);
        XXH3_64bits_update(state, b, 40);
        XXH3_64bits_update(state, b + 48, 4);
        XXH3_64bits_update(state, sums.buf, (size_t)sums.len);
        uint64_t sum = XXH3_64bits_digest(state);
        memcpy(b + 40, &sum, 8);
        XXH3_freeState(state);
    }
    PyBuffer_Release(&sums);
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

/* iggy_batch.select_frames: the byte range [*start, *end) of a batch's frames with offset >=
 * first, at most max_count > 0 of them, and their number (none: *start = *end = length and
 * *count = 0). 0: a header or frame the Python twin rejects. */
static int select_frames(const uint8_t *b, uint64_t length, uint64_t first,
                         Py_ssize_t max_count, uint64_t *start, uint64_t *end, uint64_t *count)
{
    if (length < BATCH_HEADER_SIZE || memcmp(b + 52, ZERO_RESERVED, sizeof ZERO_RESERVED)
            || le64(b + 32) != length || max_count <= 0)
        return 0;
    uint64_t base = le64(b + 8), pos = BATCH_HEADER_SIZE, n = 0;
    int started = 0;
    *start = 0;
    while (pos < length && n < (uint64_t)max_count) {
        if (length - pos < FRAME_HEADER_SIZE)
            return 0;
        uint64_t next = pos + FRAME_HEADER_SIZE + (uint64_t)le32(b + pos + 32)
                        + le32(b + pos + 36);
        if (next > length)
            return 0;
        uint64_t offset = base + le32(b + pos + 24);
        /* a wrapped sum is beyond 64 bits: above any first offset */
        if (started || offset < base || offset >= first) {
            if (!started)
                *start = pos;
            started = 1;
            n++;
        }
        pos = next;
    }
    if (!started)
        *start = pos = length;
    *end = pos;
    *count = n;
    return 1;
}

/* iggy_select(buf, first_offset, max_count) -> (start, end, count) | None: select_frames. */
static PyObject *iggy_select(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long first;
    Py_ssize_t max_count;
    uint64_t start, end, count;
    PyObject *result;
    if (!PyArg_ParseTuple(args, "y*Kn", &view, &first, &max_count))
        return NULL;
    if (select_frames(view.buf, (uint64_t)view.len, first, max_count, &start, &end, &count))
        result = Py_BuildValue("(KKK)", (unsigned long long)start, (unsigned long long)end,
                               (unsigned long long)count);
    else
        result = Py_NewRef(Py_None);
    PyBuffer_Release(&view);
    return result;
}

/* --- classic (0.8) SendMessages bodies -------------------------------------------------------- */

#define CLASSIC_HEADER_SIZE 64
#define CLASSIC_INDEX_SIZE 16

/* frames converted before they are hashed (classic_write, classic_poll): at most this many,
 * and no more once this many bytes are written (the group stays in the first-level cache) */
#define CLASSIC_GROUP 16
#define CLASSIC_GROUP_BYTES 24576

/* Pass 1 of iggy_batch.classic_frames_to_batch_py: framing, index entries, limits; the
 * smallest origin timestamp into *origin, the number of messages whose id is 0 into *zero_ids.
 * 0 = reject. */
static int classic_check(const uint8_t *b, uint64_t total, uint64_t count, uint64_t *origin,
                         uint64_t *zero_ids)
{
    uint64_t frames_at = count * CLASSIC_INDEX_SIZE, pos = frames_at, low = UINT64_MAX, zeros = 0;
    uint64_t high = 0;
    for (uint64_t index = 0; index < count; index++) {
        if (total - pos < CLASSIC_HEADER_SIZE)
            return 0;
        const uint8_t *f = b + pos, *entry = b + index * CLASSIC_INDEX_SIZE;
        uint32_t uh_len = le32(f + 48), pl_len = le32(f + 52);
        if (pl_len == 0 || pl_len > MAX_PAYLOAD_SIZE || uh_len > MAX_USER_HEADERS_SIZE)
            return 0;
        pos += CLASSIC_HEADER_SIZE + (uint64_t)pl_len + uh_len;
        if (pos > total || le32(entry) || le64(entry + 8) || le32(entry + 4) != pos - frames_at)
            return 0;
        if (le64(f + 40) < low)
            low = le64(f + 40);
        if (le64(f + 40) > high)
            high = le64(f + 40);
        zeros += (le64(f + 8) | le64(f + 16)) == 0;
    }
    *origin = low;
    *zero_ids = zeros;
    /* every timestamp delta fits 32 bits: pass 2 then rejects nothing pass 1 accepted (an
     * in-place conversion cannot go back once it has written) */
    return pos == total && high - low <= 0xFFFFFFFFu;
}

/* Pass 2: the 0.11 frames at out + 256 (timestamp deltas checked here), then the header.
 * ids: 16 random bytes for each message whose id is 0, in order (ids_left of them), or NULL.
 * Every length is bounded again against the input and output: pass 1's answers are not
 * trusted across the GIL release. `out` may be `b` itself (in place, count >= 16): the
 * batch is then no longer than what it has read so far (each frame shrinks by 16 bytes and
 * the 16 * count bytes of index entries make room for the 256-byte header), so a frame is
 * written only over bytes already read: its header fields are read before it is written and
 * its payload moves with memmove. */
/* The checksums of k frames just written, a group (frame j ends where frame j + 1 starts,
 * group[k] is the last one's end): each into its frame's first 8 bytes and, with sums, into
 * the batch checksum's input from index first on (classic_write). */
static void hash_group(uint8_t **group, int k, uint8_t *sums, uint64_t first)
{
    for (int j = 0; j < k; j++) {
        uint64_t sum = xxh3_fast(group[j] + 8, (size_t)(group[j + 1] - group[j] - 8));
        memcpy(group[j], &sum, 8);
        if (sums != NULL)
            memcpy(sums + 44 + 8 * (first + (uint64_t)j), &sum, 8);
    }
}

static int classic_write(const uint8_t *b, uint64_t total, uint64_t count, uint64_t origin,
                         const uint8_t *ids, uint64_t ids_left, uint8_t *out, uint64_t out_len,
                         uint8_t *sums)
{
    uint64_t pos = count * CLASSIC_INDEX_SIZE, opos = BATCH_HEADER_SIZE;
    /* frames written, not yet hashed (a group, as in classic_poll: a hash reading a frame just
     * written waits for the writes' stores; a group later they are in the cache) */
    uint8_t *group[CLASSIC_GROUP + 1];
    uint64_t first = 0;
    int k = 0;
    for (uint64_t index = 0; index < count; index++) {
        if (k == CLASSIC_GROUP || (k && out + opos - group[0] >= CLASSIC_GROUP_BYTES)) {
            group[k] = out + opos;
            hash_group(group, k, sums, first);
            first = index;
            k = 0;
        }
        if (total - pos < CLASSIC_HEADER_SIZE || out_len - opos < FRAME_HEADER_SIZE)
            return 0;
        const uint8_t *f = b + pos;
        uint64_t ts_delta = le64(f + 40) - origin;
        if (ts_delta > 0xFFFFFFFFu)
            return 0;
        uint32_t uh_len = le32(f + 48), pl_len = le32(f + 52), delta = (uint32_t)index;
        uint32_t ts32 = (uint32_t)ts_delta;
        uint64_t size = (uint64_t)pl_len + uh_len;
        if (total - pos - CLASSIC_HEADER_SIZE < size || out_len - opos - FRAME_HEADER_SIZE < size
                || (out == b && opos + FRAME_HEADER_SIZE > pos + CLASSIC_HEADER_SIZE))
            return 0;
        uint8_t *o = out + opos, id[16];
        memcpy(id, f + 8, 16);
        if (ids != NULL && le64(id) == 0 && le64(id + 8) == 0) {
            /* a UUIDv4 from 16 random bytes (uuid.UUID(bytes=..., version=4)), stored as the
             * little-endian u128 of its big-endian integer */
            uint8_t r[16];
            if (ids_left-- == 0)
                return 0;
            memcpy(r, ids, 16);
            ids += 16;
            r[6] = (uint8_t)((r[6] & 0x0F) | 0x40);
            r[8] = (uint8_t)((r[8] & 0x3F) | 0x80);
            for (int i = 0; i < 16; i++)
                id[i] = r[15 - i];
        }
        memcpy(o + 8, id, 16);
        memcpy(o + 24, &delta, 4);
        memcpy(o + 28, &ts32, 4);
        memcpy(o + 32, &uh_len, 4);
        memcpy(o + 36, &pl_len, 4);
        memset(o + 40, 0, 8);
        memmove(o + FRAME_HEADER_SIZE, f + CLASSIC_HEADER_SIZE, size);
        group[k++] = o;
        pos += CLASSIC_HEADER_SIZE + size;
        opos += FRAME_HEADER_SIZE + size;
    }
    group[k] = out + opos;
    hash_group(group, k, sums, first);
    if (pos != total || opos != out_len)
        return 0;
    uint32_t count32 = (uint32_t)count;
    memset(out, 0, BATCH_HEADER_SIZE);
    memcpy(out + 24, &origin, 8);
    memcpy(out + 32, &out_len, 8);
    memcpy(out + 48, &count32, 4);
    memcpy(sums, out, 40);
    memcpy(sums + 40, out + 48, 4);
    uint64_t batch_sum = xxh3_fast(sums, 44 + 8 * count);
    memcpy(out + 40, &batch_sum, 8);
    return 1;
}

/* classic_convert(body, count, random_ids: Callable[[int], bytes] | None, in_place=False)
 *   -> bytearray | int | None:
 * the unstamped 0.11 batch of iggy_batch.classic_frames_to_batch_py. random_ids is called once,
 * with 16 * (messages whose id is 0), and only if there are any. None: rejected (or
 * random_ids returned too few bytes), with the body untouched; an exception random_ids raises
 * is raised. in_place (a writable body, count >= 16): the batch is written over the body's
 * start and its length returned (no second buffer: iggy_batch.classic_frames_to_batch_in_place). */
static PyObject *classic_convert(PyObject *self, PyObject *args)
{
    Py_buffer view = {0}, ids = {0};
    long long count;
    int in_place = 0;
    PyObject *body, *random_ids, *ids_obj = NULL, *result = NULL;
    if (!PyArg_ParseTuple(args, "OLO|p", &body, &count, &random_ids, &in_place))
        return NULL;
    if (PyObject_GetBuffer(body, &view, in_place ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *b = view.buf;
    uint64_t total = (uint64_t)view.len, origin = 0, zeros = 0;
    uint8_t *sums = NULL;
    if (in_place && count < BATCH_HEADER_SIZE / CLASSIC_INDEX_SIZE) {
        PyErr_SetString(PyExc_ValueError, "an in-place conversion needs at least 16 messages");
        goto done;
    }
    if (count <= 0 || (uint64_t)count > total / CLASSIC_INDEX_SIZE
            || !classic_check(b, total, (uint64_t)count, &origin, &zeros))
        goto reject;
    if (random_ids != Py_None && zeros > 0) {
        ids_obj = PyObject_CallFunction(random_ids, "K", (unsigned long long)(16 * zeros));
        if (ids_obj == NULL || PyObject_GetBuffer(ids_obj, &ids, PyBUF_SIMPLE) < 0)
            goto done;
        if ((uint64_t)ids.len < 16 * zeros)
            goto reject;
    }
    uint64_t out_len = BATCH_HEADER_SIZE + total - 32 * (uint64_t)count;
    uint8_t *out;
    if (in_place) {
        out = (uint8_t *)view.buf;
    } else {
        result = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)out_len);  /* not zeroed */
        if (result == NULL)
            goto done;
        out = (uint8_t *)PyByteArray_AS_STRING(result);
    }
    sums = PyMem_Malloc(44 + 8 * (uint64_t)count);
    if (sums == NULL) {
        Py_CLEAR(result);
        PyErr_NoMemory();
        goto done;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = classic_write(b, total, (uint64_t)count, origin, ids.buf, zeros, out, out_len, sums);
    Py_END_ALLOW_THREADS
    if (ok) {
        if (in_place)
            result = PyLong_FromUnsignedLongLong(out_len);
        goto done;
    }
    Py_CLEAR(result);
    if (in_place) {  /* unreachable unless the body changed under us: it is half written */
        PyErr_SetString(PyExc_RuntimeError, "classic body changed during its conversion");
        goto done;
    }
reject:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(sums);
    if (ids.buf != NULL)
        PyBuffer_Release(&ids);
    Py_XDECREF(ids_obj);
    PyBuffer_Release(&view);
    return result;
}

/* classic_poll(batch, first_offset, max_count) -> (frames, count) | None: the classic poll
 * reply frames of iggy_batch.classic_frames_and_count_py (messages with offset >= first_offset,
 * at most max_count > 0). None: a header or frame the Python twin rejects, or an offset or
 * origin timestamp beyond 64 bits. */
static PyObject *classic_poll(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long first;
    Py_ssize_t max_count;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*Kn", &view, &first, &max_count))
        return NULL;
    const uint8_t *b = view.buf;
    uint64_t start, end, count, pos;
    if (!select_frames(b, (uint64_t)view.len, first, max_count, &start, &end, &count))
        goto reject;
    if (count == 0) {
        result = Py_BuildValue("(y#i)", "", (Py_ssize_t)0, 0);
        goto done;
    }
    uint64_t base = le64(b + 8), ts = le64(b + 16), origin = le64(b + 24);
    PyObject *frames = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(end - start + 16 * count));
    if (frames == NULL)
        goto done;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(frames);
    /* A group of frames is written, then hashed: a hash that reads a frame just copied loads
     * across the copy's still-buffered stores at another alignment (the header is 64 bytes,
     * the hash starts at 8) and waits for each; a group later they are in the cache. About
     * half the time per 1000-byte message here (BENCHMARKS.md, "Classic consume, third pass"). */
    uint8_t *group[CLASSIC_GROUP + 1];
    for (pos = start; pos < end;) {
        int k = 0;
        const uint8_t *g0 = o;
        for (; k < CLASSIC_GROUP && pos < end && o - g0 < CLASSIC_GROUP_BYTES; k++) {
            const uint8_t *f = b + pos;
            uint64_t offset = base + le32(f + 24), when = origin + le32(f + 28), zero = 0;
            if (offset < base || when < origin) {  /* beyond 64 bits: the twin's struct.error */
                Py_DECREF(frames);
                goto reject;
            }
            uint32_t uh_len = le32(f + 32), pl_len = le32(f + 36);
            uint64_t size = (uint64_t)pl_len + uh_len;
            memcpy(o + 8, f + 8, 16);  /* id */
            memcpy(o + 24, &offset, 8);
            memcpy(o + 32, &ts, 8);
            memcpy(o + 40, &when, 8);
            memcpy(o + 48, &uh_len, 4);
            memcpy(o + 52, &pl_len, 4);
            memcpy(o + 56, &zero, 8);
            memcpy(o + CLASSIC_HEADER_SIZE, f + FRAME_HEADER_SIZE, size);
            group[k] = o;
            pos += FRAME_HEADER_SIZE + size;
            o += CLASSIC_HEADER_SIZE + size;
        }
        group[k] = o;
        hash_group(group, k, NULL, 0);
    }
    result = Py_BuildValue("(NK)", frames, (unsigned long long)count);
    goto done;
reject:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

/* --- Kafka record batch v2 ----------------------------------------------------------------- */

/* A zig-zag varint/varlong at *pos (at most 10 bytes); 0 = reject: cut by end, longer than 10
 * bytes, or beyond 64 bits (every use of such a value fails the Python walk too: a length or
 * offset delta out of range, or a skip past the end). */
static inline int varint(const uint8_t *b, Py_ssize_t end, Py_ssize_t *pos, int64_t *out)
{
    Py_ssize_t p = *pos;
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        if (shift > 63 || p >= end)
            return 0;
        uint8_t c = b[p++];
        if (shift == 63 && (c & 0x7F) > 1)
            return 0;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (c < 0x80)
            break;
    }
    *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
    *pos = p;
    return 1;
}

/* The loop of kafka_batch._walk over b[pos:end] with end = the buffer's length; 0 = reject. */
static int kafka_records(const uint8_t *b, Py_ssize_t pos, Py_ssize_t end, int64_t count)
{
    int64_t n = 0, length, delta, size, headers, hk, hv;
    while (pos < end) {
        if (n == count || !varint(b, end, &pos, &length))
            return 0;
        if (length < 6 || length > end - pos)
            return 0;
        Py_ssize_t stop = pos + (Py_ssize_t)length;
        pos += 1;  /* attributes */
        while (pos < end && b[pos] >= 0x80)  /* timestampDelta, skipped unread */
            pos++;
        pos += 1;
        if (pos > end || !varint(b, end, &pos, &delta) || delta != n)
            return 0;
        for (int field = 0; field < 2; field++) {  /* key, value */
            if (!varint(b, end, &pos, &size) || size < -1)
                return 0;
            if (size > 0) {
                if (size >= end - pos)  /* the next read would be past the end */
                    return 0;
                pos += (Py_ssize_t)size;
            }
        }
        if (pos >= end)
            return 0;
        if (b[pos]) {
            if (!varint(b, end, &pos, &headers) || headers < 0)
                return 0;
            for (int64_t h = 0; h < headers; h++) {
                if (pos >= stop || !varint(b, end, &pos, &hk) || hk < 0 || hk >= end - pos)
                    return 0;
                pos += (Py_ssize_t)hk;
                if (!varint(b, end, &pos, &hv) || hv < -1)
                    return 0;
                if (hv > 0) {
                    if (hv > end - pos)
                        return 0;
                    pos += (Py_ssize_t)hv;
                }
            }
        } else {
            pos += 1;
        }
        if (pos != stop)
            return 0;
        n++;
    }
    return n == count;
}

/* kafka_walk(buf, pos, count) -> bool: kafka_batch._walk(buf, pos, len(buf), count) passes */
static PyObject *kafka_walk(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    long long count;
    if (!PyArg_ParseTuple(args, "y*nL", &view, &pos, &count))
        return NULL;
    int ok = 0;
    if (pos >= 0) {
        if (view.len >= NOGIL_BYTES) {
            Py_BEGIN_ALLOW_THREADS
            ok = kafka_records(view.buf, pos, view.len, count);
            Py_END_ALLOW_THREADS
        } else {
            ok = kafka_records(view.buf, pos, view.len, count);
        }
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

/* --- buffers ------------------------------------------------------------------------------ */

/* uninitialised_bytearray(n) -> bytearray: n bytes left as the allocator gave them, for a
 * buffer the caller overwrites before reading (bytearray(n) zeroes them first: a memset of
 * every received megabyte, transport/framing.py). */
static PyObject *uninitialised_bytearray(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    return PyByteArray_FromStringAndSize(NULL, n);
}

static PyMethodDef methods[] = {
    {"iggy_validate", iggy_validate, METH_VARARGS, "iggy_batch.validate_batch's walk"},
    {"iggy_frame_sums", iggy_frame_sums, METH_VARARGS, "the frames' checksum fields"},
    {"iggy_stamp", iggy_stamp, METH_VARARGS, "iggy_batch.stamp_batch with frame sums"},
    {"iggy_select", iggy_select, METH_VARARGS, "iggy_batch.select_frames"},
    {"classic_convert", classic_convert, METH_VARARGS, "classic frames to a 0.11 batch"},
    {"classic_poll", classic_poll, METH_VARARGS, "a batch's classic poll-reply frames"},
    {"kafka_walk", kafka_walk, METH_VARARGS, "kafka_batch._walk"},
    {"uninitialised_bytearray", uninitialised_bytearray, METH_O, "bytearray(n), not zeroed"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walks", "The hot batch walks in C (pure-Python twins in "
    "iggy_batch / kafka_batch).", -1, methods,
};

PyMODINIT_FUNC PyInit__walks(void)
{
    if (XXH3_64bits_dispatch != NULL)
        xxh3_fast = XXH3_64bits_dispatch;
    return PyModule_Create(&module);
}
