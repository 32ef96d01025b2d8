/*
 * Kernels on 8-bit codes and their Python bindings (see bytes.h): lookup8 (256-entry tables indexed
 * by the byte: every elementwise function of one 8-bit code), lookup8_pairs (65536-entry tables indexed by
 * two codes' bytes: every elementwise function of two), byte_sum and byte_histograms, upsample8 (nearest upsampling by whole
 * factors) and depth_to_space8 (the tap planes of a ConvTranspose whose kernel equals its stride,
 * woven into the output planes). They only move bytes, so any order gives the same results.
 * Work of at least BIG_WORK bytes is shared out over the thread pool (pool.h).
 */
#define PY_SSIZE_T_CLEAN
#include "bytes.h"

#include <stdint.h>
#include <string.h>

#include "pool.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define X86_KERNELS 1
/* The 16-byte kernels also built VEX-encoded: legacy SSE instructions after AVX-512 code that left the upper
 * register halves dirty run many times slower. */
#define VEX_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define WIDE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VEX_CLONES
#define WIDE_CLONES
#endif

enum { BIG_WORK = 1 << 18 }; /* bytes written from which the pool takes part (about 20 us of lookups) */
enum { PAIR_TABLE_BYTES = 65536 + 3 }; /* a pair table and the 3 bytes its last 32-bit gather reads past it */

/* ---- lookup8 ------------------------------------------------------------------------------------- */

typedef void (*lookup_fn)(const uint8_t *x, const uint8_t *table, uint8_t *out, ptrdiff_t n, uint8_t flip);

static void lookup_scalar(const uint8_t *x, const uint8_t *table, uint8_t *out, ptrdiff_t n, uint8_t flip)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = table[x[i] ^ flip];
}

#ifdef X86_KERNELS
/* 64 lookups at a time: two VPERMI2B pick from the table's halves (the byte's low 7 bits), its top bit
 * chooses between them; the tail through masked loads and stores. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static void lookup_vbmi(const uint8_t *x,
                                                                                 const uint8_t *table,
                                                                                 uint8_t *out, ptrdiff_t n,
                                                                                 uint8_t flip)
{
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    const __m512i f = _mm512_set1_epi8((char)flip);
    for (ptrdiff_t i = 0; i < n; i += 64) {
        const __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (n - i)) - 1;
        const __m512i idx = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i), f);
        const __m512i low = _mm512_permutex2var_epi8(t0, idx, t1), high = _mm512_permutex2var_epi8(t2, idx, t3);
        _mm512_mask_storeu_epi8(out + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high));
    }
}

/* 32 lookups at a time on AVX2 with sixteen VPSHUFB over 16-byte slices of the table: the slices of each
 * half xor-chained (slice c holds table slice c ^ slice c - 1), so that xoring the picks of slices 0..h gives
 * slice h; the index walks down by 16 with signed saturation, and VPSHUFB gives 0 once it is negative. The
 * upper half is the same with the top bit flipped. */
__attribute__((target("avx2"))) static void lookup_avx2(const uint8_t *x, const uint8_t *table, uint8_t *out,
                                                        ptrdiff_t n, uint8_t flip)
{
    __m256i slices[16];
    for (int c = 0; c < 16; c++) {
        const __m128i t = _mm_loadu_si128((const __m128i *)(table + 16 * c));
        const __m128i chained = c % 8 ? _mm_xor_si128(t, _mm_loadu_si128((const __m128i *)(table + 16 * c - 16))) : t;
        slices[c] = _mm256_broadcastsi128_si256(chained);
    }
    const __m256i f = _mm256_set1_epi8((char)flip), top = _mm256_set1_epi8((char)0x80), step = _mm256_set1_epi8(16);
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i idx = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i)), f);
        __m256i r = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            __m256i y = half ? _mm256_xor_si256(idx, top) : idx;
            for (int c = 0; c < 8; c++) {
                r = _mm256_xor_si256(r, _mm256_shuffle_epi8(slices[8 * half + c], y));
                y = _mm256_subs_epi8(y, step);
            }
        }
        _mm256_storeu_si256((__m256i *)(out + i), r);
    }
    lookup_scalar(x + i, table, out + i, n - i, flip);
}
#endif

static lookup_fn lookup_kernel(void)
{
    static lookup_fn chosen;
    if (chosen)
        return chosen;
    chosen = lookup_scalar;
#ifdef X86_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vbmi"))
        chosen = lookup_vbmi;
    else if (__builtin_cpu_supports("avx2"))
        chosen = lookup_avx2;
#endif
    return chosen;
}

void lookup8_codes(const uint8_t *x, const uint8_t *table, uint8_t *out, ptrdiff_t n, uint8_t flip)
{
    (n < 16 ? lookup_scalar : lookup_kernel())(x, table, out, n, flip);
}

typedef struct {
    const uint8_t *x, *tables;
    uint8_t *out;
    Py_ssize_t rows, inner;
    int per_row, tasks;
    lookup_fn fn;
} lookup_job;

/* Task t's share of the flat range, row piece by row piece (each with its row's table). */
static void lookup_task(void *ctx, int t)
{
    const lookup_job *J = ctx;
    const Py_ssize_t n = J->rows * J->inner, i1 = n * (t + 1) / J->tasks;
    for (Py_ssize_t i = n * t / J->tasks; i < i1;) {
        const Py_ssize_t r = i / J->inner, stop = (r + 1) * J->inner < i1 ? (r + 1) * J->inner : i1;
        J->fn(J->x + i, J->tables + (J->per_row ? r * 256 : 0), J->out + i, stop - i, 0);
        i = stop;
    }
}

static int tasks_for(Py_ssize_t bytes, Py_ssize_t parts)
{
    const Py_ssize_t wanted = bytes < BIG_WORK ? 1 : pool_get_threads();
    return (int)(wanted < parts ? wanted : parts > 0 ? parts : 1);
}

PyObject *lookup8(PyObject *self, PyObject *args)
{
    Py_buffer xb, tb, ob;
    lookup_job J = {0};
    if (!PyArg_ParseTuple(args, "y*y*w*nnp", &xb, &tb, &ob, &J.rows, &J.inner, &J.per_row))
        return NULL;
    const Py_ssize_t n = J.rows * J.inner;
    const int ok = J.rows >= 0 && J.inner >= 0 && xb.len >= n && ob.len >= n && tb.len >= 256 * (J.per_row ? J.rows : 1);
    if (ok && n > 0) {
        J = (lookup_job){xb.buf, tb.buf, ob.buf, J.rows, J.inner, J.per_row, tasks_for(n, n), lookup_kernel()};
        Py_BEGIN_ALLOW_THREADS
        pool_run(J.tasks, lookup_task, &J);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "lookup8: buffer sizes that do not match rows, inner and the tables");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- planes8 ------------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *x;
    const char *tables;
    char *out;
    Py_ssize_t images, pixels, channels, size;
    int tasks;
} planes_job;

/* Pixels [p0, p1) of every image and channel: one strided pass over the bytes per channel. */
WIDE_CLONES static void planes_task(void *ctx, int t)
{
    const planes_job *J = ctx;
    const Py_ssize_t p0 = J->pixels * t / J->tasks, p1 = J->pixels * (t + 1) / J->tasks, C = J->channels;
    for (Py_ssize_t i = 0; i < J->images; i++)
        for (Py_ssize_t c = 0; c < C; c++) {
            const uint8_t *s = J->x + i * J->pixels * C + c;
            const Py_ssize_t plane = (i * C + c) * J->pixels;
            if (J->size == 4) {
                const float *table = (const float *)(const void *)J->tables + c * 256;
                float *d = (float *)(void *)J->out + plane;
                for (Py_ssize_t p = p0; p < p1; p++)
                    d[p] = table[s[p * C]];
            } else {
                const uint8_t *table = (const uint8_t *)J->tables + c * 256;
                uint8_t *d = (uint8_t *)J->out + plane;
                for (Py_ssize_t p = p0; p < p1; p++)
                    d[p] = table[s[p * C]];
            }
        }
}

PyObject *planes8(PyObject *self, PyObject *args)
{
    Py_buffer xb, tb, ob;
    planes_job J = {0};
    if (!PyArg_ParseTuple(args, "y*y*w*nnnn", &xb, &tb, &ob, &J.images, &J.pixels, &J.channels, &J.size))
        return NULL;
    const Py_ssize_t n = J.images * J.pixels * J.channels;
    const int ok = J.images >= 0 && J.pixels >= 0 && J.channels >= 0 && (J.size == 1 || J.size == 4) &&
                   xb.len >= n && ob.len >= n * J.size && tb.len >= 256 * J.size * J.channels;
    if (ok && n > 0) {
        J.x = xb.buf;
        J.tables = tb.buf;
        J.out = ob.buf;
        J.tasks = tasks_for(n * J.size, J.pixels);
        Py_BEGIN_ALLOW_THREADS
        pool_run(J.tasks, planes_task, &J);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "planes8: buffer sizes that do not match the images, pixels, channels and "
                                          "tables, or an entry size other than 1 or 4");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- lookup8_pairs -------------------------------------------------------------------------------- */

typedef void (*pairs_fn)(const uint8_t *a, const uint8_t *b, const uint8_t *table, uint8_t *out, ptrdiff_t n);

static void pairs_scalar(const uint8_t *a, const uint8_t *b, const uint8_t *table, uint8_t *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = table[(unsigned)a[i] << 8 | b[i]];
}

#ifdef X86_KERNELS
/* 16 lookups at a time by one 32-bit gather at byte offsets (the table is padded by 3 bytes), of which
 * the low byte is kept. */
__attribute__((target("avx512f,avx512bw"))) static void pairs_avx512(const uint8_t *a, const uint8_t *b,
                                                                     const uint8_t *table, uint8_t *out,
                                                                     ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i ia = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(a + i)));
        const __m512i ib = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + i)));
        const __m512i v = _mm512_i32gather_epi32(_mm512_or_si512(_mm512_slli_epi32(ia, 8), ib), (const void *)table, 1);
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(v));
    }
    pairs_scalar(a + i, b + i, table, out + i, n - i);
}
#endif

static pairs_fn pairs_kernel(void)
{
#ifdef X86_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        return pairs_avx512;
#endif
    return pairs_scalar;
}

typedef struct {
    const uint8_t *a, *b, *table;
    uint8_t *out;
    Py_ssize_t n;
    int tasks;
    pairs_fn fn;
} pairs_job;

static void pairs_task(void *ctx, int t)
{
    const pairs_job *J = ctx;
    const Py_ssize_t i0 = J->n * t / J->tasks, i1 = J->n * (t + 1) / J->tasks;
    J->fn(J->a + i0, J->b + i0, J->table, J->out + i0, i1 - i0);
}

PyObject *lookup8_pairs(PyObject *self, PyObject *args)
{
    Py_buffer ab, bb, tb, ob;
    pairs_job J = {0};
    if (!PyArg_ParseTuple(args, "y*y*y*w*n", &ab, &bb, &tb, &ob, &J.n))
        return NULL;
    const int ok = J.n >= 0 && ab.len >= J.n && bb.len >= J.n && ob.len >= J.n && tb.len >= PAIR_TABLE_BYTES;
    if (ok && J.n > 0) {
        J = (pairs_job){ab.buf, bb.buf, tb.buf, ob.buf, J.n, tasks_for(J.n, J.n), pairs_kernel()};
        Py_BEGIN_ALLOW_THREADS
        pool_run(J.tasks, pairs_task, &J);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&ab);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "lookup8_pairs: a table of fewer than 65539 bytes or buffers shorter than n");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- byte_sum ----------------------------------------------------------------------------------- */

VEX_CLONES int64_t byte_sum(const uint8_t *x, Py_ssize_t n, int is_signed)
{
    int64_t total = 0;
    Py_ssize_t i = 0;
#ifdef X86_KERNELS
    const __m128i flip = _mm_set1_epi8(is_signed ? (char)0x80 : 0), zero = _mm_setzero_si128();
    __m128i acc = zero; /* two 64-bit lanes of PSADBW sums: at most 255 * 8 per step, no overflow */
    for (; i + 16 <= n; i += 16)
        acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(x + i)), flip), zero));
    total = _mm_cvtsi128_si64(acc) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
    if (is_signed)
        total -= 128 * (int64_t)i; /* the bytes were read plus 128 */
#endif
    for (; i < n; i++)
        total += is_signed ? (int8_t)x[i] : x[i];
    return total;
}

/* ---- byte_histograms ------------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *x;
    int64_t *out;
    Py_ssize_t rows, inner;
    int tasks;
} histogram_job;

/* The rows of task t, each counted into four interleaved partial histograms (so that runs of one byte do
 * not wait on one counter). */
static void histogram_task(void *ctx, int t)
{
    const histogram_job *J = ctx;
    for (Py_ssize_t r = J->rows * t / J->tasks; r < J->rows * (t + 1) / J->tasks; r++) {
        uint32_t part[4][256] = {{0}};
        const uint8_t *x = J->x + r * J->inner;
        Py_ssize_t i = 0;
        for (; i + 4 <= J->inner; i += 4) {
            part[0][x[i]]++;
            part[1][x[i + 1]]++;
            part[2][x[i + 2]]++;
            part[3][x[i + 3]]++;
        }
        for (; i < J->inner; i++)
            part[0][x[i]]++;
        int64_t *out = J->out + r * 256;
        for (int b = 0; b < 256; b++)
            out[b] = (int64_t)part[0][b] + part[1][b] + part[2][b] + part[3][b];
    }
}

PyObject *byte_histograms(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    histogram_job J = {0};
    if (!PyArg_ParseTuple(args, "y*w*nn", &xb, &ob, &J.rows, &J.inner))
        return NULL;
    const int ok = J.rows >= 0 && J.inner >= 0 && J.inner < ((Py_ssize_t)1 << 32) && xb.len >= J.rows * J.inner &&
                   ob.len >= J.rows * 256 * 8;
    if (ok && J.rows > 0) {
        J.x = xb.buf;
        J.out = ob.buf;
        J.tasks = tasks_for(J.rows * J.inner, J.rows);
        Py_BEGIN_ALLOW_THREADS
        pool_run(J.tasks, histogram_task, &J);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "byte_histograms: buffer sizes that do not match rows and inner");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- Weaving rows: upsample8, depth_to_space8 ---------------------------------------------------- */

/* out[x * k + j] = src[j][x] for x < w, j < k: two rows interleaved 16 bytes at a time (a tail of fewer
 * through local blocks). */
VEX_CLONES static void weave(uint8_t *out, const uint8_t *const *src, Py_ssize_t w, int k)
{
    Py_ssize_t x = 0;
#ifdef X86_KERNELS
    if (k == 2)
        for (; x + 16 <= w; x += 16) {
            const __m128i a = _mm_loadu_si128((const __m128i *)(src[0] + x));
            const __m128i b = _mm_loadu_si128((const __m128i *)(src[1] + x));
            _mm_storeu_si128((__m128i *)(out + 2 * x), _mm_unpacklo_epi8(a, b));
            _mm_storeu_si128((__m128i *)(out + 2 * x + 16), _mm_unpackhi_epi8(a, b));
        }
    if (k == 2 && x < w) {
        uint8_t a[16] = {0}, b[16] = {0}, wide[32];
        memcpy(a, src[0] + x, (size_t)(w - x));
        memcpy(b, src[1] + x, (size_t)(w - x));
        const __m128i va = _mm_loadu_si128((const __m128i *)a), vb = _mm_loadu_si128((const __m128i *)b);
        _mm_storeu_si128((__m128i *)wide, _mm_unpacklo_epi8(va, vb));
        _mm_storeu_si128((__m128i *)(wide + 16), _mm_unpackhi_epi8(va, vb));
        memcpy(out + 2 * x, wide, (size_t)(2 * (w - x)));
        return;
    }
#endif
    for (; x < w; x++)
        for (int j = 0; j < k; j++)
            out[x * k + j] = src[j][x];
}

#ifdef X86_KERNELS
/* The 16 bytes of v, each f times (f 2, 4 or 8: a constant where inlined), at dst: v unpacked with itself
 * log2(f) times. */
static inline __attribute__((always_inline)) void repeat16(uint8_t *dst, __m128i v0, const int f)
{
    __m128i v[8] = {v0};
    for (int count = 1; count < f; count *= 2)
        for (int j = count - 1; j >= 0; j--) {
            v[2 * j + 1] = _mm_unpackhi_epi8(v[j], v[j]);
            v[2 * j] = _mm_unpacklo_epi8(v[j], v[j]);
        }
    for (int j = 0; j < f; j++)
        _mm_storeu_si128((__m128i *)(dst + 16 * j), v[j]);
}

/* repeat_row for f 2, 4 or 8 (a constant where inlined); a tail of fewer than 16 pixels through local blocks. */
static inline __attribute__((always_inline)) void repeat_row_by(uint8_t *out, const uint8_t *src, Py_ssize_t w,
                                                                const int f)
{
    Py_ssize_t x = 0;
    for (; x + 16 <= w; x += 16)
        repeat16(out + x * f, _mm_loadu_si128((const __m128i *)(src + x)), f);
    if (x < w) {
        uint8_t part[16] = {0}, wide[16 * 8];
        memcpy(part, src + x, (size_t)(w - x));
        repeat16(wide, _mm_loadu_si128((const __m128i *)part), f);
        memcpy(out + x * f, wide, (size_t)((w - x) * f));
    }
}

/* The 4 elements at src, each twice, at dst (unpacks of 4 floats with themselves). */
static inline __attribute__((always_inline)) void repeat4x2(uint32_t *dst, const uint32_t *src)
{
    const __m128 v = _mm_loadu_ps((const float *)(const void *)src);
    _mm_storeu_ps((float *)(void *)dst, _mm_unpacklo_ps(v, v));
    _mm_storeu_ps((float *)(void *)(dst + 4), _mm_unpackhi_ps(v, v));
}
#endif

/* out[x * f + j] = src[x] for x < w, j < f, of 4-byte elements; f 2 by unpacks of 4 elements with themselves. */
VEX_CLONES static void repeat_row32(uint32_t *out, const uint32_t *src, Py_ssize_t w, int f)
{
    Py_ssize_t x = 0;
#ifdef X86_KERNELS
    if (f == 2)
        for (; x + 4 <= w; x += 4)
            repeat4x2(out + 2 * x, src + x);
#endif
    for (; x < w; x++)
        for (int j = 0; j < f; j++)
            out[x * f + j] = src[x];
}

/* out[x * f + j] = src[x] for x < w, j < f. */
VEX_CLONES static void repeat_row(uint8_t *out, const uint8_t *src, Py_ssize_t w, int f)
{
    if (f == 1) {
        memcpy(out, src, (size_t)w);
        return;
    }
#ifdef X86_KERNELS
    if (f == 2)
        return repeat_row_by(out, src, w, 2);
    if (f == 4)
        return repeat_row_by(out, src, w, 4);
    if (f == 8)
        return repeat_row_by(out, src, w, 8);
#endif
    for (Py_ssize_t x = 0; x < w; x++)
        for (int j = 0; j < f; j++)
            out[x * f + j] = src[x];
}

typedef struct {
    const uint8_t *x;
    uint8_t *out;
    Py_ssize_t planes, h, w, size; /* size: bytes per element (upsampling: 1 or 4; depth_to_space8: 1) */
    int fy, fx, tasks, depth; /* depth: depth_to_space8 (kh fy, kw fx), else upsample8 */
} weave_job;

/* The planes of task t: each output row woven once; upsampling copies it to the fy - 1 rows below. */
static void weave_task(void *ctx, int t)
{
    const weave_job *J = ctx;
    const Py_ssize_t ow = J->w * J->fx, plane = J->h * J->w;
    for (Py_ssize_t p = J->planes * t / J->tasks; p < J->planes * (t + 1) / J->tasks; p++) {
        uint8_t *out = J->out + p * plane * J->fy * J->fx * J->size;
        for (Py_ssize_t y = 0; y < J->h; y++) {
            if (!J->depth) {
                uint8_t *row = out + y * J->fy * ow * J->size;
                const uint8_t *src = J->x + (p * plane + y * J->w) * J->size;
                if (J->size == 4)
                    repeat_row32((uint32_t *)(void *)row, (const uint32_t *)(const void *)src, J->w, J->fx);
                else
                    repeat_row(row, src, J->w, J->fx);
                for (int i = 1; i < J->fy; i++)
                    memcpy(row + i * ow * J->size, row, (size_t)(ow * J->size));
                continue;
            }
            for (int i = 0; i < J->fy; i++) {
                const uint8_t *src[64];
                for (int j = 0; j < J->fx; j++)
                    src[j] = J->x + ((p * J->fy + i) * J->fx + j) * plane + y * J->w;
                weave(out + (y * J->fy + i) * ow, src, J->w, J->fx);
            }
        }
    }
}

/* Run a parsed job (xb and ob released here); message: the ValueError of arguments that do not match. */
static PyObject *run_weave(weave_job J, Py_buffer *xb, Py_buffer *ob, const char *message)
{
    const Py_ssize_t n = J.planes * J.h * J.w * J.fy * J.fx;
    const int ok = J.planes >= 0 && J.h >= 0 && J.w >= 0 && J.fy >= 1 && J.fx >= 1 && J.fx <= 64 &&
                   (J.size == 1 || (J.size == 4 && !J.depth)) &&
                   xb->len >= (J.depth ? n : n / (J.fy * J.fx)) * J.size && ob->len >= n * J.size;
    if (ok && n > 0) {
        J.x = xb->buf;
        J.out = ob->buf;
        J.tasks = tasks_for(n * J.size, J.planes);
        Py_BEGIN_ALLOW_THREADS
        pool_run(J.tasks, weave_task, &J);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(xb);
    PyBuffer_Release(ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, message);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyObject *upsample8(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    weave_job J = {.size = 1};
    if (!PyArg_ParseTuple(args, "y*w*nnnii|n", &xb, &ob, &J.planes, &J.h, &J.w, &J.fy, &J.fx, &J.size))
        return NULL;
    return run_weave(J, &xb, &ob, "upsample8: factors below 1 (or fx above 64), an element size other than 1 or 4, "
                                  "or buffer sizes that do not match");
}

PyObject *depth_to_space8(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    weave_job J = {.depth = 1, .size = 1};
    if (!PyArg_ParseTuple(args, "y*w*niinn", &xb, &ob, &J.planes, &J.fy, &J.fx, &J.h, &J.w))
        return NULL;
    return run_weave(J, &xb, &ob, "depth_to_space8: kernel below 1 (or kw above 64) or buffer sizes that do not match");
}
