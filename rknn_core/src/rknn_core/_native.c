/* The simulator's compiled kernels and their Python bindings (module rknn_core._native):
 *   depthwise convolution, float (depthwise_conv2d) and integer (qdepthwise_conv2d);
 *   a pointwise convolution and the depthwise one that reads it, fused (pw_dw_conv, native/pwdw.c);
 *   the convolution GEMM of native/gemm.c, float (conv_gemm) and integer (qconv_gemm, requantized
 *   block by block), and on 8-bit operands (qconv_gemm_u8, native/qgemm.c, AVX-512 VNNI or AVX2);
 *   requantize, quantize, center, pad_planes, plane_sums, quantized_add, quantized_mul;
 *   the thread count of the pool in native/pool.c (set_threads, get_threads).
 * Each binding documents its arguments above its definition. Integer results equal the rules of
 * quant/fixedpoint.py bit for bit; AVX-512 and AVX2 paths (chosen at import) give the same results.
 *
 * depthwise_conv2d(x, w, bias, y, n, c, h, w_, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, lo, hi
 *                  [, residual, act, alpha, beta])
 *   x: float32 C-contiguous (N, C, H, W), unpadded; zero padding pt (top) / pl (left) is implicit
 *   w: float32 C-contiguous (C, KH, KW); bias: float32 (C,) or None
 *   y: float32 C-contiguous writable (N, C, OH, OW), overwritten with clamp(conv + bias, lo, hi), or
 *   with the epilogue of native/post.h (residual float32 laid out as y, act 1 HardSigmoid, 2 HardSwish).
 * Planes are computed by native/depthwise.c (16 planes at a time with their channels interleaved, or row
 * kernels for wide 3x3 rows), whole groups of planes per task, shared out over the thread pool
 * (native/pool.c).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "native/bytes.h"
#include "native/clones.h"
#include "native/depthwise.h"
#include "native/gemm.h"
#include "native/maxpool.h"
#include "native/pool.h"
#include "native/post.h"
#include "native/pwdw.h"
#include "native/qgemm.h"
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- Binding helpers ------------------------------------------------------------------------------ */

/* Run fn on the thread pool with the GIL released. */
static void run_tasks(int tasks, void (*fn)(void *, int), void *ctx)
{
    Py_BEGIN_ALLOW_THREADS
    pool_run(tasks, fn, ctx);
    Py_END_ALLOW_THREADS
}

/* Release `count` buffers; None, a ValueError with `message` when !ok (message NULL: an exception is
 * set already), or MemoryError when a kernel found no scratch memory (!memory). */
static PyObject *finish(int ok, int memory, const char *message, int count, ...)
{
    va_list buffers;
    va_start(buffers, count);
    for (int i = 0; i < count; i++)
        PyBuffer_Release(va_arg(buffers, Py_buffer *));
    va_end(buffers);
    if (!ok) {
        if (message) /* else the exception is set already */
            PyErr_SetString(PyExc_ValueError, message);
        return NULL;
    }
    if (!memory)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* How many pool tasks share `planes` planes of `work` multiply-adds each: one below ~200k in all. */
static int plane_tasks(Py_ssize_t planes, Py_ssize_t work)
{
    const int threads = pool_get_threads();
    if (threads <= 1 || planes * work < 200000)
        return 1;
    return planes < 4 * threads ? (int)planes : 4 * threads;
}

/* ---- Float depthwise convolution -------------------------------------------------------------------- */

/* The planes [*p0, *p1) of pool task t out of `tasks`: whole groups of DW_GROUP planes. */
static void task_planes(Py_ssize_t planes, int tasks, int t, Py_ssize_t *p0, Py_ssize_t *p1)
{
    const Py_ssize_t groups = (planes + DW_GROUP - 1) / DW_GROUP;
    *p0 = groups * t / tasks * DW_GROUP;
    *p1 = groups * (t + 1) / tasks * DW_GROUP;
    *p1 = *p1 < planes ? *p1 : planes;
}

typedef struct {
    const float *x, *w, *bias;
    float *y;
    Py_ssize_t c, planes;
    int tasks;
    int bands; /* tasks are bands of output rows over every plane (else shares of the planes) */
    geometry g;
    float_post post;
    int failed;
} dw_job;

/* One pool task, a group of planes at a time: the sums straight into y, then the epilogue in place. A task
 * is a band of output rows of every plane (a share of the image, as the GEMM's tasks are: the next layer's
 * task of the same number reads it where it was written), or, for planes of few rows, a share of the planes. */
static void dw_task(void *ctx, int t)
{
    dw_job *J = ctx;
    const geometry *g = &J->g;
    const Py_ssize_t out_plane = g->oh * g->ow;
    Py_ssize_t p0 = 0, p1 = J->planes, o0 = 0, o1 = g->oh, r0 = 0;
    if (J->bands) {
        o0 = g->oh * t / J->tasks;
        o1 = g->oh * (t + 1) / J->tasks;
    } else {
        task_planes(J->planes, J->tasks, t, &p0, &p1);
    }
    const geometry band = dw_band(g, o0, o1, &r0);
    float *scratch = scratch_get(dw_scratch_floats(&band));
    if (!scratch) {
        J->failed = 1;
        return;
    }
    dw_prepare(scratch, &band);
    for (Py_ssize_t p = p0; p < p1; p += DW_GROUP) {
        const int count = p1 - p < DW_GROUP ? (int)(p1 - p) : DW_GROUP;
        float *y = J->y + p * out_plane + o0 * g->ow;
        dw_sums(J->x + r0 * g->w, g->h * g->w, 'f', 0, J->w, J->bias, J->c, p, count, scratch, y, out_plane, &band);
        for (int i = 0; i < count; i++)
            post_apply(&J->post, y + i * out_plane, J->y, out_plane, p + i, o0 * g->ow, o1 * g->ow);
    }
}

/* depthwise_conv2d(x, w, bias, y, n, c, h, w_, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, lo, hi
 *                  [, residual, act, alpha, beta, slopes, post]) */
static PyObject *depthwise_conv2d(PyObject *self, PyObject *args)
{
    Py_buffer xb, wb, yb, bb = {0};
    post_buffers held;
    PyObject *bias_obj, *residual = NULL, *slopes = NULL, *post = NULL;
    Py_ssize_t n, c;
    geometry g;
    double lo, hi, alpha = 0.0, beta = 0.0;
    int act = ACT_CLAMP;
    if (!PyArg_ParseTuple(args, "y*y*Ow*nnnnnnnnnnnnnndd|OiddOO", &xb, &wb, &bias_obj, &yb, &n, &c, &g.h, &g.w, &g.kh,
                          &g.kw, &g.oh, &g.ow, &g.sh, &g.sw, &g.dh, &g.dw, &g.pt, &g.pl, &lo, &hi, &residual, &act,
                          &alpha, &beta, &slopes, &post))
        return NULL;
    dw_padded_size(&g);
    dw_job J = {0};
    int has_bias = bias_obj != Py_None;
    if (!parse_post(residual, act, lo, hi, alpha, beta, slopes, post, &held, n * c * g.oh * g.ow, &J.post))
        return finish(0, 1, NULL, 3, &xb, &wb, &yb);
    if (has_bias && PyObject_GetBuffer(bias_obj, &bb, PyBUF_SIMPLE) < 0) {
        release_post(&held);
        return finish(0, 1, NULL, 3, &xb, &wb, &yb);
    }
    int ok = xb.len >= (Py_ssize_t)sizeof(float) * n * c * g.h * g.w &&
             wb.len >= (Py_ssize_t)sizeof(float) * c * g.kh * g.kw &&
             yb.len >= (Py_ssize_t)sizeof(float) * n * c * g.oh * g.ow &&
             (!has_bias || bb.len >= (Py_ssize_t)sizeof(float) * c) && g.sh > 0 && g.sw > 0 && g.dh > 0 &&
             g.dw > 0 && g.oh > 0 && g.ow > 0;
    int done = 1;
    if (ok) {
        J.x = (const float *)xb.buf;
        J.w = (const float *)wb.buf;
        J.bias = has_bias ? (const float *)bb.buf : NULL;
        J.y = (float *)yb.buf;
        J.c = c;
        J.planes = n * c;
        J.g = g;
        J.tasks = plane_tasks(J.planes, g.oh * g.ow * g.kh * g.kw);
        J.bands = J.tasks > 1 && g.oh >= 4 * J.tasks; /* bands of at least 4 rows */
        run_tasks(J.tasks, dw_task, &J);
        done = !J.failed;
    }
    if (has_bias)
        PyBuffer_Release(&bb);
    release_post(&held);
    return finish(ok, done, "depthwise_conv2d: buffer sizes do not match the geometry", 3, &xb, &wb, &yb);
}

/* ---- Integer requantization: the rules of quant/fixedpoint.py, bit for bit -------------------------
 * fx_mul is ``multiply`` (int32-saturated accumulator, saturating left shift, rounding doubling high
 * multiply, rounding right shift); pot_shift is ``shift_by_power_of_two`` (64-bit accumulator). */
#include <stdint.h>

/* The integer kernels also get an AVX-512 clone: 64-bit lanes have native multiplies and shifts there. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HOT_INT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT_INT
#endif

/* Branch-free (signs of accumulators are unpredictable): min/max become conditional moves. */
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t clamp64(int64_t r, int64_t lo, int64_t hi) { return min64(max64(r, lo), hi); }
static inline int64_t sat32(int64_t v) { return clamp64(v, INT32_MIN, INT32_MAX); }

/* The fixed-point multiply by sign and magnitude, so that it vectorizes (unsigned 32x32->64 products,
 * logical shifts). With a = sat32(sat32(acc) << left) and p = |a| * mult: the doubling high multiply
 * rounds p / 2**31 half up (ties of negative products toward zero), the right shift rounds half away
 * from zero. left = min(max(shift, 0), 32), right = min(max(-shift, 0), 62), half = 2**right / 2. */
static inline int64_t fx_mul(int64_t acc, uint64_t mult, int64_t left, int64_t right, uint64_t half)
{
    const int64_t a = sat32(sat32(acc) * ((int64_t)1 << left));
    const uint64_t neg = (uint64_t)(a < 0);
    const uint64_t mag = (uint64_t)(uint32_t)(a < 0 ? -a : a);
    const uint64_t high = (mag * (uint64_t)(uint32_t)mult + ((uint64_t)1 << 30) - neg) >> 31;
    const uint64_t r = (high + half) >> right;
    return neg ? -(int64_t)r : (int64_t)r;
}

/* fx_mul when left == 0, in a form that vectorizes to 32x32->64 multiplies and arithmetic shifts: for
 * a = sat32(acc), the doubling high multiply (a * mult + 2**30 - [a < 0]) >> 31 (logical, on the
 * magnitude) equals floor((a * mult + 2**30) / 2**31), and rounding the magnitude's right shift half
 * away from zero equals (h + half - [h < 0]) >> right (arithmetic) when right > 0. */
static inline int64_t fx_mul_right(int64_t acc, int32_t mult, int64_t right, int64_t half, int64_t neg_fix)
{
    const int32_t a = (int32_t)sat32(acc);
    const int64_t h = ((int64_t)a * (int64_t)mult + ((int64_t)1 << 30)) >> 31;
    return (h + half - (neg_fix & -(int64_t)(h < 0))) >> right;
}

/* fx_mul_right on a = sum + bias when that cannot leave int32 (sums below 2**30, a bias of at most 2**30 in
 * magnitude), so that no saturation can occur: int32 lanes except for the 32x32->64 multiply. right > 0. */
static inline int32_t fx_mul_row(int32_t a, int32_t mult, int right, int32_t half)
{
    const int32_t h = (int32_t)(((int64_t)a * mult + ((int64_t)1 << 30)) >> 31);
    return (h + half - (h < 0)) >> right;
}

/* fx_mul with left == 0 on an int32 value (no saturation possible): the rounding right shift only when
 * right > 0. */
static inline int32_t fx32(int32_t a, int32_t mult, int right, int32_t half)
{
    const int32_t h = (int32_t)(((int64_t)a * mult + ((int64_t)1 << 30)) >> 31);
    return right > 0 ? (h + half - (h < 0)) >> right : h;
}

/* One row of fx_mul_row + zero point + clamp into storage of `size` bytes (1 signed/unsigned, 2), from
 * float32 sums (exact integers below 2**24) or int32 sums below 2**30 in magnitude: with the bias (at
 * most 2**30) the int32 lanes cannot overflow, so no saturation is needed. */
typedef struct {
    int32_t bias, mult, right, half, zp, lo, hi;
} row_params;

static inline int32_t int_of_f32(float v) { return (int32_t)v; }
static inline int32_t int_of_i32(int32_t v) { return v; }

#define DEFINE_RQ_ROW_SCALAR(NAME, T, TO_INT)                                                               \
    static void NAME(const T *src, void *dst, int size, Py_ssize_t n, const row_params *p)                  \
    {                                                                                                       \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                \
            int32_t v = fx_mul_row(TO_INT(src[i]) + p->bias, p->mult, p->right, p->half) + p->zp;           \
            v = v < p->lo ? p->lo : v > p->hi ? p->hi : v;                                                  \
            if (size == 1)                                                                                  \
                ((uint8_t *)dst)[i] = (uint8_t)v; /* the bounds lie inside the storage type */              \
            else                                                                                            \
                ((int16_t *)dst)[i] = (int16_t)v;                                                           \
        }                                                                                                   \
    }
DEFINE_RQ_ROW_SCALAR(rq_f32_row_scalar, float, int_of_f32)
DEFINE_RQ_ROW_SCALAR(rq_i32_row_scalar, int32_t, int_of_i32)

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw")))

/* fx32 on 16 lanes: the 32x32->64 products as two VPMULDQ (even and odd lanes). mult64 holds the
 * multiplier in every 64-bit lane; fix is all ones when right > 0, else zero. */
AVX512 static inline __m512i fx32_x16(__m512i a, __m512i mult64, __m128i right, __m512i half, __m512i fix)
{
    const __m512i round = _mm512_set1_epi64((int64_t)1 << 30);
    const __m512i even = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(a, mult64), round), 31);
    const __m512i odd = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(a, 32), mult64),
                                                            round), 31);
    const __m512i h = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    return _mm512_sra_epi32(_mm512_sub_epi32(_mm512_add_epi32(h, half), _mm512_and_si512(_mm512_srli_epi32(h, 31), fix)),
                            right);
}

AVX512 static inline __m512i load16_f32(const float *src) { return _mm512_cvttps_epi32(_mm512_loadu_ps(src)); }
AVX512 static inline __m512i load16_i32(const int32_t *src) { return _mm512_loadu_si512(src); }

/* The rows of the scalar forms, 16 lanes at a time. */
#define DEFINE_RQ_ROW_AVX512(NAME, T, LOAD16, SCALAR)                                                        \
    AVX512 static void NAME(const T *src, void *dst, int size, Py_ssize_t n, const row_params *p)            \
    {                                                                                                        \
        const __m512i bias = _mm512_set1_epi32(p->bias), mult = _mm512_set1_epi64(p->mult);                 \
        const __m512i half = _mm512_set1_epi32(p->half), fix = _mm512_set1_epi32(-1);                       \
        const __m512i zp = _mm512_set1_epi32(p->zp), lo = _mm512_set1_epi32(p->lo), hi = _mm512_set1_epi32(p->hi); \
        const __m128i right = _mm_cvtsi32_si128(p->right);                                                   \
        Py_ssize_t i = 0;                                                                                    \
        for (; i + 16 <= n; i += 16) {                                                                       \
            __m512i v = fx32_x16(_mm512_add_epi32(LOAD16(src + i), bias), mult, right, half, fix);           \
            v = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zp), lo), hi);                         \
            if (size == 1)                                                                                   \
                _mm_storeu_si128((__m128i *)((uint8_t *)dst + i), _mm512_cvtepi32_epi8(v));                  \
            else                                                                                             \
                _mm256_storeu_si256((__m256i *)((int16_t *)dst + i), _mm512_cvtepi32_epi16(v));              \
        }                                                                                                    \
        SCALAR(src + i, size == 1 ? (void *)((uint8_t *)dst + i) : (void *)((int16_t *)dst + i), size, n - i, p); \
    }
DEFINE_RQ_ROW_AVX512(rq_f32_row_avx512, float, load16_f32, rq_f32_row_scalar)
DEFINE_RQ_ROW_AVX512(rq_i32_row_avx512, int32_t, load16_i32, rq_i32_row_scalar)

#define AVX2 __attribute__((target("avx2")))

/* fx32 on 8 lanes: as fx32_x16, with the products' high halves taken by a logical shift (AVX2 has no 64-bit
 * arithmetic one): a product of an int32 and a 31-bit multiplier shifted right by 31 fits int32, so the low
 * 32 bits of the two shifts agree. */
AVX2 static inline __m256i fx32_x8(__m256i a, __m256i mult64, __m128i right, __m256i half, __m256i fix)
{
    const __m256i round = _mm256_set1_epi64x((int64_t)1 << 30);
    const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(a, mult64), round), 31);
    const __m256i odd = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), mult64),
                                                            round), 31);
    const __m256i h = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    return _mm256_sra_epi32(_mm256_sub_epi32(_mm256_add_epi32(h, half), _mm256_and_si256(_mm256_srli_epi32(h, 31), fix)),
                            right);
}

/* The low byte (size 1) or the low two bytes (size 2) of each of v's 8 lanes to dst, in order: gathered by a
 * byte shuffle within each 128-bit half, then the halves joined. */
AVX2 static inline void store8_low(void *dst, __m256i v, int size)
{
    const __m256i low = size == 1 ? _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                     0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
                                  : _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                                     0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    v = _mm256_shuffle_epi8(v, low);
    const __m128i lo128 = _mm256_castsi256_si128(v), hi128 = _mm256_extracti128_si256(v, 1);
    if (size == 1)
        _mm_storel_epi64((__m128i *)dst, _mm_unpacklo_epi32(lo128, hi128));
    else
        _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi64(lo128, hi128));
}

AVX2 static inline __m256i load8_f32(const float *src) { return _mm256_cvttps_epi32(_mm256_loadu_ps(src)); }
AVX2 static inline __m256i load8_i32(const int32_t *src) { return _mm256_loadu_si256((const __m256i *)src); }

/* The rows of the scalar forms: 8-bit storage 32 values at a time, packed to bytes by saturating packs (the
 * clamped values lie inside the storage type, so they saturate nothing; unsigned packs when no bound is
 * negative) and put back in order by one lane permutation; then 8 at a time (store8_low). */
#define DEFINE_RQ_ROW_AVX2(NAME, T, LOAD8, SCALAR)                                                          \
    AVX2 static void NAME(const T *src, void *dst, int size, Py_ssize_t n, const row_params *p)              \
    {                                                                                                        \
        const __m256i bias = _mm256_set1_epi32(p->bias), mult = _mm256_set1_epi64x(p->mult);                \
        const __m256i half = _mm256_set1_epi32(p->half);                                                     \
        const __m256i zp = _mm256_set1_epi32(p->zp), lo = _mm256_set1_epi32(p->lo), hi = _mm256_set1_epi32(p->hi); \
        const __m128i right = _mm_cvtsi32_si128(p->right);                                                   \
        const __m256i all = _mm256_set1_epi32(-1), order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);         \
        Py_ssize_t i = 0;                                                                                    \
        for (; size == 1 && i + 32 <= n; i += 32) {                                                          \
            __m256i v[4];                                                                                    \
            for (int q = 0; q < 4; q++)                                                                      \
                v[q] = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(fx32_x8(_mm256_add_epi32(          \
                           LOAD8(src + i + 8 * q), bias), mult, right, half, all), zp), lo), hi);            \
            const __m256i w01 = _mm256_packs_epi32(v[0], v[1]), w23 = _mm256_packs_epi32(v[2], v[3]);        \
            const __m256i b = p->lo >= 0 ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);     \
            _mm256_storeu_si256((__m256i *)((uint8_t *)dst + i), _mm256_permutevar8x32_epi32(b, order));     \
        }                                                                                                    \
        for (; i + 8 <= n; i += 8) {                                                                         \
            const __m256i v = fx32_x8(_mm256_add_epi32(LOAD8(src + i), bias), mult, right, half, all);       \
            store8_low((char *)dst + size * i, _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v, zp), lo), hi), \
                       size);                                                                                \
        }                                                                                                    \
        SCALAR(src + i, size == 1 ? (void *)((uint8_t *)dst + i) : (void *)((int16_t *)dst + i), size, n - i, p); \
    }
DEFINE_RQ_ROW_AVX2(rq_f32_row_avx2, float, load8_f32, rq_f32_row_scalar)
DEFINE_RQ_ROW_AVX2(rq_i32_row_avx2, int32_t, load8_i32, rq_i32_row_scalar)
#endif

typedef void (*rq_row_fn)(const float *, void *, int, Py_ssize_t, const row_params *);
typedef void (*rq_i32_row_fn)(const int32_t *, void *, int, Py_ssize_t, const row_params *);
/* the AVX-512 or AVX2 ones where the CPU has them (module init) */
static rq_row_fn rq_f32_row = rq_f32_row_scalar;
static rq_i32_row_fn rq_i32_row = rq_i32_row_scalar;

/* round(acc * 2**(left - right)) for 64-bit accumulators, ties away from zero. */
static inline int64_t pot_shift(int64_t acc, int64_t left, int64_t right, uint64_t half)
{
    const int64_t v = acc * ((int64_t)1 << left);
    const uint64_t r = ((uint64_t)(v < 0 ? -v : v) + half) >> right;
    return v < 0 ? -(int64_t)r : (int64_t)r;
}

/* Exact integer-valued accumulators to int64 in forms that vectorize: float32 sums are below 2**24
 * (int32 conversion); float64 ones below 2**51 (the 1.5 * 2**52 magic-number trick). */
static inline int64_t from_f32(float v) { return (int32_t)v; }
static inline int64_t from_f64(double v)
{
    double t = v + 6755399441055744.0;
    int64_t i;
    memcpy(&i, &t, sizeof i);
    return i - 0x4338000000000000LL;
}
static inline int64_t from_i32(int32_t v) { return v; }
static inline int64_t from_i64(int64_t v) { return v; }

typedef struct {
    const int64_t *bias, *mult, *shift;
    Py_ssize_t outer, c, inner, nm;
    long long zp, lo, hi;
    int pot;
} requant_args;

#define DEFINE_REQUANT(NAME, ACC_T, OUT_T, LOAD, FLOAT32)                                                         \
    HOT_INT static void NAME(const void *acc_v, void *out_v, const requant_args *q)                             \
    {                                                                                                       \
        const ACC_T *restrict acc = acc_v;                                                                  \
        OUT_T *restrict out = out_v;                                                                        \
        const int64_t zp = q->zp, lo = q->lo, hi = q->hi, inner = q->inner;                                 \
        for (Py_ssize_t o = 0; o < q->outer; o++)                                                           \
            for (Py_ssize_t ch = 0; ch < q->c; ch++) {                                                      \
                const Py_ssize_t base = (o * q->c + ch) * inner, k = q->nm > 1 ? ch : 0;                    \
                const int64_t b = q->bias ? q->bias[ch] : 0, s = q->shift[k];                               \
                const uint64_t m = (uint64_t)q->mult[k];                                                    \
                const int64_t left = min64(max64(s, 0), q->pot ? 62 : 32), right = min64(max64(-s, 0), 62); \
                const uint64_t half = ((uint64_t)1 << right) >> 1;                                          \
                const ACC_T *restrict src = acc + base;                                                     \
                OUT_T *restrict dst = out + base;                                                           \
                if (q->pot)                                                                                 \
                    for (Py_ssize_t i = 0; i < inner; i++)                                                  \
                        dst[i] = (OUT_T)clamp64(pot_shift(LOAD(src[i]) + b, left, right, half) + zp, lo, hi); \
                else if (FLOAT32 && left == 0 && right > 0 && right < 31 && b >= -(1 << 30) && b <= (1 << 30)) { \
                    const row_params rp = {(int32_t)b, (int32_t)m, (int32_t)right, (int32_t)half,           \
                                           (int32_t)zp, (int32_t)lo, (int32_t)hi};                          \
                    rq_f32_row((const float *)(const void *)src, dst, (int)sizeof(OUT_T), inner, &rp);      \
                } else if (left == 0) {                                                                     \
                    const int32_t m32 = (int32_t)m;                                                         \
                    const int64_t h = (int64_t)half, fix = right > 0;                                       \
                    for (Py_ssize_t i = 0; i < inner; i++)                                                  \
                        dst[i] = (OUT_T)clamp64(fx_mul_right(LOAD(src[i]) + b, m32, right, h, fix) + zp, lo, hi); \
                } else                                                                                      \
                    for (Py_ssize_t i = 0; i < inner; i++)                                                  \
                        dst[i] = (OUT_T)clamp64(fx_mul(LOAD(src[i]) + b, m, left, right, half) + zp, lo, hi); \
            }                                                                                               \
    }
#define REQUANT_FOR(A, ACC_T, FLOAT32)                                                                      \
    DEFINE_REQUANT(rq_##A##_u8, ACC_T, uint8_t, from_##A, FLOAT32)                                          \
    DEFINE_REQUANT(rq_##A##_i8, ACC_T, int8_t, from_##A, FLOAT32)                                           \
    DEFINE_REQUANT(rq_##A##_i16, ACC_T, int16_t, from_##A, FLOAT32)
REQUANT_FOR(f32, float, 1)
REQUANT_FOR(f64, double, 0)
REQUANT_FOR(i32, int32_t, 0)
REQUANT_FOR(i64, int64_t, 0)

typedef void (*requant_fn)(const void *, void *, const requant_args *);

static int out_index(int kind) { return kind == 'B' ? 0 : kind == 'b' ? 1 : kind == 'h' ? 2 : -1; }
static int acc_index(int kind) { return kind == 'f' ? 0 : kind == 'd' ? 1 : kind == 'i' ? 2 : kind == 'q' ? 3 : -1; }
static Py_ssize_t kind_size(int kind)
{
    return kind == 'B' || kind == 'b' ? 1 : kind == 'h' ? 2 : kind == 'f' || kind == 'i' ? 4 : kind == 'd' || kind == 'q' ? 8 : 0;
}

static const requant_fn REQUANT[4][3] = {
    {rq_f32_u8, rq_f32_i8, rq_f32_i16}, {rq_f64_u8, rq_f64_i8, rq_f64_i16},
    {rq_i32_u8, rq_i32_i8, rq_i32_i16}, {rq_i64_u8, rq_i64_i8, rq_i64_i16}};

/* requantize(acc, acc_kind, bias, mult, shift, pot, out, out_kind, outer, c, inner, zp, lo, hi):
 * out[o, ch, i] = clamp(R(acc[o, ch, i] + bias[ch]) + zp, lo, hi), R the fixed-point multiply by
 * (mult, shift)[ch] (pot false) or the rounding shift by shift[ch] (pot true). acc kinds: f d
 * (exact integer values) i q; out kinds: B b h; bias int64 (c,) or None; mult/shift int64, 1 or c. */
static PyObject *requantize(PyObject *self, PyObject *args)
{
    Py_buffer ab, mb, sb, ob, bb = {0};
    PyObject *bias_obj;
    int acc_kind, out_kind, pot;
    requant_args q;
    if (!PyArg_ParseTuple(args, "y*COy*y*pw*CnnnLLL", &ab, &acc_kind, &bias_obj, &mb, &sb, &pot, &ob, &out_kind,
                          &q.outer, &q.c, &q.inner, &q.zp, &q.lo, &q.hi))
        return NULL;
    int has_bias = bias_obj != Py_None, ok = 1;
    if (has_bias && PyObject_GetBuffer(bias_obj, &bb, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        ok = 0;
    }
    const Py_ssize_t total = q.outer * q.c * q.inner;
    const int ai = acc_index(acc_kind), oi = out_index(out_kind);
    q.nm = mb.len / 8;
    q.pot = pot;
    ok = ok && ai >= 0 && oi >= 0 && ab.len >= total * kind_size(acc_kind) && ob.len >= total * kind_size(out_kind) &&
         (!has_bias || bb.len >= 8 * q.c) && sb.len == mb.len && (q.nm == 1 || q.nm == q.c);
    if (ok) {
        q.bias = has_bias ? (const int64_t *)bb.buf : NULL;
        q.mult = (const int64_t *)mb.buf;
        q.shift = (const int64_t *)sb.buf;
        Py_BEGIN_ALLOW_THREADS
        REQUANT[ai][oi](ab.buf, ob.buf, &q);
        Py_END_ALLOW_THREADS
    }
    if (has_bias && bb.obj)
        PyBuffer_Release(&bb);
    PyBuffer_Release(&ab);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&ob);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "requantize: unknown kinds or buffer sizes that do not match");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- Integer softmax (LUT form) ----------------------------------------------------------------- */

/* Storage code i of x (kind B b h). */
static inline int64_t code_of(const void *x, int kind, Py_ssize_t i)
{
    return kind == 'B' ? ((const uint8_t *)x)[i] : kind == 'b' ? ((const int8_t *)x)[i] : ((const int16_t *)x)[i];
}

/* softmax_lut(x, x_kind, table, mult, shift, pot, out, out_kind, outer, n, inner, zo, lo, hi):
 * the integer softmax of storage x (kind B b h) laid out (outer, n, inner), along its n axis: with
 * d = max - x in storage steps, e = table[d] (int64, one entry per distance), p = (e * 2**30 + sum(e) / 2) /
 * sum(e) (integer division), out = p requantized as requantize does (one multiplier) into storage of
 * out_kind: the steps of ops/nn.py's _softmax_quant. */
static PyObject *softmax_lut(PyObject *self, PyObject *args)
{
    Py_buffer xb, tb, mb, sb, ob;
    int x_kind, out_kind, pot;
    requant_args q = {0};
    Py_ssize_t outer, n, inner;
    if (!PyArg_ParseTuple(args, "y*Cy*y*y*pw*CnnnLLL", &xb, &x_kind, &tb, &mb, &sb, &pot, &ob, &out_kind, &outer, &n,
                          &inner, &q.zp, &q.lo, &q.hi))
        return NULL;
    const Py_ssize_t count = outer * n * inner, entries = x_kind == 'h' ? 65536 : 256;
    int ok = out_index(x_kind) >= 0 && out_index(out_kind) >= 0 && outer >= 0 && n > 0 && inner >= 0 &&
             xb.len >= count * kind_size(x_kind) && ob.len >= count * kind_size(out_kind) &&
             tb.len >= 8 * entries && mb.len == 8 && sb.len == 8;
    int64_t *p = ok ? malloc(sizeof(int64_t) * (size_t)(count ? count : 1)) : NULL;
    if (p) {
        const int64_t *table = tb.buf;
        for (Py_ssize_t o = 0; o < outer; o++)
            for (Py_ssize_t i = 0; i < inner; i++) {
                const Py_ssize_t base = o * n * inner + i;
                int64_t top = code_of(xb.buf, x_kind, base), total = 0;
                for (Py_ssize_t j = 1; j < n; j++) {
                    const int64_t v = code_of(xb.buf, x_kind, base + j * inner);
                    top = v > top ? v : top;
                }
                for (Py_ssize_t j = 0; j < n; j++) {
                    p[base + j * inner] = table[top - code_of(xb.buf, x_kind, base + j * inner)];
                    total += p[base + j * inner];
                }
                for (Py_ssize_t j = 0; j < n; j++)
                    p[base + j * inner] = ((p[base + j * inner] << 30) + total / 2) / total;
            }
        q.mult = mb.buf;
        q.shift = sb.buf;
        q.outer = q.c = q.nm = 1;
        q.inner = count;
        q.pot = pot;
        REQUANT[3][out_index(out_kind)](p, ob.buf, &q);
        free(p);
    }
    return finish(ok, p != NULL, "softmax_lut: unknown kinds or buffer sizes that do not match", 5, &xb, &tb, &mb, &sb,
                  &ob);
}

typedef struct {
    Py_ssize_t n;
    long long za, zb, left, ma, sa, mb, sb, sign, mo, so, zo, lo, hi;
    int pot;
} add_args;

#define DEFINE_ADD(NAME, T)                                                                                 \
    HOT_INT static void NAME(const void *a_v, const void *b_v, void *out_v, const add_args *q)                  \
    {                                                                                                       \
        const T *restrict a = a_v, *restrict b = b_v;                                                       \
        T *restrict out = out_v;                                                                            \
        const int64_t unit = (int64_t)1 << q->left, za = q->za, zb = q->zb, sign = q->sign;                 \
        const int64_t zo = q->zo, lo = q->lo, hi = q->hi, n = q->n;                                         \
        const uint64_t ma = (uint64_t)q->ma, mb = (uint64_t)q->mb, mo = (uint64_t)q->mo;                    \
        const int64_t la = min64(max64(q->sa, 0), 32), ra = min64(max64(-q->sa, 0), 62);                   \
        const int64_t lb = min64(max64(q->sb, 0), 32), rb = min64(max64(-q->sb, 0), 62);                   \
        const int64_t lo_ = min64(max64(q->so, 0), q->pot ? 62 : 32), ro = min64(max64(-q->so, 0), 62);    \
        const uint64_t ha = ((uint64_t)1 << ra) >> 1, hb = ((uint64_t)1 << rb) >> 1, ho = ((uint64_t)1 << ro) >> 1; \
        if (q->pot)                                                                                         \
            for (Py_ssize_t i = 0; i < n; i++) {                                                                 \
                const int64_t t = fx_mul(((int64_t)a[i] - za) * unit, ma, la, ra, ha) +                     \
                                  sign * fx_mul(((int64_t)b[i] - zb) * unit, mb, lb, rb, hb);               \
                out[i] = (T)clamp64(pot_shift(t, lo_, ro, ho) + zo, lo, hi);                                \
            }                                                                                               \
        else                                                                                                \
            for (Py_ssize_t i = 0; i < n; i++) {                                                                 \
                const int64_t t = fx_mul(((int64_t)a[i] - za) * unit, ma, la, ra, ha) +                     \
                                  sign * fx_mul(((int64_t)b[i] - zb) * unit, mb, lb, rb, hb);               \
                out[i] = (T)clamp64(fx_mul(t, mo, lo_, ro, ho) + zo, lo, hi);                               \
            }                                                                                               \
    }
DEFINE_ADD(add_u8, uint8_t)
DEFINE_ADD(add_i8, int8_t)
DEFINE_ADD(add_i16, int16_t)

/* The 8-bit ADD when every multiplier is below one (left shifts 0) and the scaled inputs fit int32:
 * the same arithmetic in int32 lanes (fx32). */
typedef struct {
    int32_t za, zb, left, ma, ra, ha, mb, rb, hb, sign, mo, ro, ho, zo, lo, hi;
} add8_params;

static inline int32_t add8_one(int32_t a, int32_t b, const add8_params *p)
{
    const int32_t t = fx32((a - p->za) * (1 << p->left), p->ma, p->ra, p->ha) +
                      p->sign * fx32((b - p->zb) * (1 << p->left), p->mb, p->rb, p->hb);
    const int32_t v = fx32(t, p->mo, p->ro, p->ho) + p->zo;
    return v < p->lo ? p->lo : v > p->hi ? p->hi : v;
}

static void add8_scalar(const void *a_v, const void *b_v, void *out_v, int is_signed, Py_ssize_t n,
                        const add8_params *p)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t a = is_signed ? ((const int8_t *)a_v)[i] : ((const uint8_t *)a_v)[i];
        const int32_t b = is_signed ? ((const int8_t *)b_v)[i] : ((const uint8_t *)b_v)[i];
        ((uint8_t *)out_v)[i] = (uint8_t)add8_one(a, b, p); /* the bounds lie inside the storage type */
    }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
AVX512 static void add8_avx512(const void *a_v, const void *b_v, void *out_v, int is_signed, Py_ssize_t n,
                               const add8_params *p)
{
    const __m512i za = _mm512_set1_epi32(p->za), zb = _mm512_set1_epi32(p->zb), zo = _mm512_set1_epi32(p->zo);
    const __m512i ma = _mm512_set1_epi64(p->ma), mb = _mm512_set1_epi64(p->mb), mo = _mm512_set1_epi64(p->mo);
    const __m512i ha = _mm512_set1_epi32(p->ha), hb = _mm512_set1_epi32(p->hb), ho = _mm512_set1_epi32(p->ho);
    const __m512i fa = _mm512_set1_epi32(p->ra > 0 ? -1 : 0), fb = _mm512_set1_epi32(p->rb > 0 ? -1 : 0);
    const __m512i fo = _mm512_set1_epi32(p->ro > 0 ? -1 : 0);
    const __m512i lo = _mm512_set1_epi32(p->lo), hi = _mm512_set1_epi32(p->hi);
    const __m128i ra = _mm_cvtsi32_si128(p->ra), rb = _mm_cvtsi32_si128(p->rb), ro = _mm_cvtsi32_si128(p->ro);
    const __m128i left = _mm_cvtsi32_si128(p->left);
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a8 = _mm_loadu_si128((const __m128i *)((const uint8_t *)a_v + i));
        const __m128i b8 = _mm_loadu_si128((const __m128i *)((const uint8_t *)b_v + i));
        const __m512i a = is_signed ? _mm512_cvtepi8_epi32(a8) : _mm512_cvtepu8_epi32(a8);
        const __m512i b = is_signed ? _mm512_cvtepi8_epi32(b8) : _mm512_cvtepu8_epi32(b8);
        const __m512i xa = fx32_x16(_mm512_sll_epi32(_mm512_sub_epi32(a, za), left), ma, ra, ha, fa);
        const __m512i xb = fx32_x16(_mm512_sll_epi32(_mm512_sub_epi32(b, zb), left), mb, rb, hb, fb);
        const __m512i t = p->sign > 0 ? _mm512_add_epi32(xa, xb) : _mm512_sub_epi32(xa, xb);
        __m512i v = _mm512_add_epi32(fx32_x16(t, mo, ro, ho, fo), zo);
        v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
        _mm_storeu_si128((__m128i *)((uint8_t *)out_v + i), _mm512_cvtepi32_epi8(v));
    }
    add8_scalar((const uint8_t *)a_v + i, (const uint8_t *)b_v + i, (uint8_t *)out_v + i, is_signed, n - i, p);
}

/* add8_avx512 on 8 lanes. */
AVX2 static void add8_avx2(const void *a_v, const void *b_v, void *out_v, int is_signed, Py_ssize_t n,
                           const add8_params *p)
{
    const __m256i za = _mm256_set1_epi32(p->za), zb = _mm256_set1_epi32(p->zb), zo = _mm256_set1_epi32(p->zo);
    const __m256i ma = _mm256_set1_epi64x(p->ma), mb = _mm256_set1_epi64x(p->mb), mo = _mm256_set1_epi64x(p->mo);
    const __m256i ha = _mm256_set1_epi32(p->ha), hb = _mm256_set1_epi32(p->hb), ho = _mm256_set1_epi32(p->ho);
    const __m256i fa = _mm256_set1_epi32(p->ra > 0 ? -1 : 0), fb = _mm256_set1_epi32(p->rb > 0 ? -1 : 0);
    const __m256i fo = _mm256_set1_epi32(p->ro > 0 ? -1 : 0);
    const __m256i lo = _mm256_set1_epi32(p->lo), hi = _mm256_set1_epi32(p->hi);
    const __m128i ra = _mm_cvtsi32_si128(p->ra), rb = _mm_cvtsi32_si128(p->rb), ro = _mm_cvtsi32_si128(p->ro);
    const __m128i left = _mm_cvtsi32_si128(p->left);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i a8 = _mm_loadl_epi64((const __m128i *)((const uint8_t *)a_v + i));
        const __m128i b8 = _mm_loadl_epi64((const __m128i *)((const uint8_t *)b_v + i));
        const __m256i a = is_signed ? _mm256_cvtepi8_epi32(a8) : _mm256_cvtepu8_epi32(a8);
        const __m256i b = is_signed ? _mm256_cvtepi8_epi32(b8) : _mm256_cvtepu8_epi32(b8);
        const __m256i xa = fx32_x8(_mm256_sll_epi32(_mm256_sub_epi32(a, za), left), ma, ra, ha, fa);
        const __m256i xb = fx32_x8(_mm256_sll_epi32(_mm256_sub_epi32(b, zb), left), mb, rb, hb, fb);
        const __m256i t = p->sign > 0 ? _mm256_add_epi32(xa, xb) : _mm256_sub_epi32(xa, xb);
        const __m256i v = _mm256_add_epi32(fx32_x8(t, mo, ro, ho, fo), zo);
        store8_low((uint8_t *)out_v + i, _mm256_min_epi32(_mm256_max_epi32(v, lo), hi), 1);
    }
    add8_scalar((const uint8_t *)a_v + i, (const uint8_t *)b_v + i, (uint8_t *)out_v + i, is_signed, n - i, p);
}
#endif

typedef void (*add8_fn)(const void *, const void *, void *, int, Py_ssize_t, const add8_params *);
static add8_fn add8 = add8_scalar; /* the AVX-512 or AVX2 one where the CPU has it (module init) */

/* The int32 form applies: 8-bit storage, multipliers below one, shifts that fit, no power-of-two mode. */
static int add8_plan(int kind, const add_args *q, add8_params *p)
{
    if ((kind != 'B' && kind != 'b') || q->pot || q->sa > 0 || q->sb > 0 || q->so > 0 || q->sa < -30 ||
        q->sb < -30 || q->so < -30 || q->left < 0 || q->left > 22)
        return 0;
    const int32_t ra = (int32_t)-q->sa, rb = (int32_t)-q->sb, ro = (int32_t)-q->so;
    *p = (add8_params){(int32_t)q->za, (int32_t)q->zb, (int32_t)q->left, (int32_t)q->ma, ra, (1 << ra) >> 1,
                       (int32_t)q->mb, rb, (1 << rb) >> 1, (int32_t)q->sign, (int32_t)q->mo, ro, (1 << ro) >> 1,
                       (int32_t)q->zo, (int32_t)q->lo, (int32_t)q->hi};
    return 1;
}

/* add(a, b, out, kind, n, za, zb, left, ma, sa, mb, sb, sign, mo, so, pot, zo, lo, hi): the integer
 * ADD of ops/_quant.py quantized_add on equal-shape contiguous arrays of one storage kind (B b h). */
typedef struct {
    const char *a, *b;
    char *out;
    int kind, tasks, fast;
    add_args q;
    add8_params p;
} add_job;

static void add_task(void *ctx, int t)
{
    const add_job *J = ctx;
    const Py_ssize_t i0 = J->q.n * t / J->tasks, i1 = J->q.n * (t + 1) / J->tasks, size = kind_size(J->kind);
    add_args q = J->q;
    q.n = i1 - i0;
    const char *a = J->a + i0 * size, *b = J->b + i0 * size;
    char *out = J->out + i0 * size;
    if (J->fast)
        add8(a, b, out, J->kind == 'b', q.n, &J->p);
    else if (J->kind == 'B')
        add_u8(a, b, out, &q);
    else if (J->kind == 'b')
        add_i8(a, b, out, &q);
    else
        add_i16(a, b, out, &q);
}

static PyObject *quantized_add(PyObject *self, PyObject *args)
{
    Py_buffer xa, xb, ob;
    int kind;
    add_args q;
    if (!PyArg_ParseTuple(args, "y*y*w*CnLLLLLLLLLLpLLL", &xa, &xb, &ob, &kind, &q.n, &q.za, &q.zb, &q.left, &q.ma,
                          &q.sa, &q.mb, &q.sb, &q.sign, &q.mo, &q.so, &q.pot, &q.zo, &q.lo, &q.hi))
        return NULL;
    const Py_ssize_t size = kind_size(kind) * q.n;
    int ok = out_index(kind) >= 0 && xa.len >= size && xb.len >= size && ob.len >= size && q.left >= 0 && q.left < 32;
    if (ok) {
        add_job J = {xa.buf, xb.buf, ob.buf, kind, q.n < 16384 ? 1 : 2 * pool_get_threads(), 0, q, {0}};
        J.fast = add8_plan(kind, &q, &J.p);
        run_tasks(J.tasks, add_task, &J);
    }
    return finish(ok, 1, "quantized_add: unknown kind or buffer sizes that do not match", 3, &xa, &xb, &ob);
}

/* ---- Quantized epilogue: requantize; then the integer ADD of a residual, a lookup table ------------
 * Sums of one output channel are requantized into storage of `kind` (the grid of a fused residual's
 * ADD, or of a table's input, or the output's); with a residual the ADD of quantized_add follows (its
 * output bounds carry the activation); with a table, out = table[code - lowest code] (the channel's own
 * table when there is one per channel: PRelu's per-channel slopes). Each stage is the
 * kernel the unfused graph runs (requantize, quantized_add, the LUT), so results are identical. */
typedef struct {
    const int64_t *bias, *mult, *shift;
    Py_ssize_t nm;
    int pot, kind;
    long long zo, lo, hi;
    int int32; /* the sums are int32 (else float32) */
    const char *residual; /* storage of `kind` laid out as the output, or NULL */
    add_args add;
    add8_params add8p;
    int add_fast;
    const char *table; /* storage of `kind`, one entry per code of `kind` (per channel: table_stride), or NULL */
    long long table_lo;
    Py_ssize_t table_stride; /* entries between two channels' tables; 0: one table for all */
} quant_post;

#define POST_CHUNK 256

/* The int32 row form of channel ch's requantization (as DEFINE_REQUANT chooses it for float32 sums), or 0
 * when it does not apply. */
static int row_form(const quant_post *e, Py_ssize_t ch, row_params *rp)
{
    const Py_ssize_t k = e->nm > 1 ? ch : 0;
    const int64_t shift = e->shift[k], b = e->bias ? e->bias[ch] : 0;
    if (e->pot || shift >= 0 || shift <= -31 || b < -(1 << 30) || b > (1 << 30))
        return 0;
    *rp = (row_params){(int32_t)b, (int32_t)e->mult[k], (int32_t)-shift, (int32_t)((1u << -shift) >> 1),
                       (int32_t)e->zo, (int32_t)e->lo, (int32_t)e->hi};
    return 1;
}

/* The sums' requantization into dst: the row kernel (this runs once per row of every block) or the
 * general one; sums are float32, or int32 below 2**30 in magnitude with e->int32. */
HOT_EXACT static void requant_sums(const quant_post *e, const void *sums, Py_ssize_t ch, void *dst, requant_args *q)
{
    row_params rp;
    const int size = (int)kind_size(e->kind);
    const int short_row = q->inner < 16; /* no full vector: the scalar form (the vector one's tail) directly */
    if (!row_form(e, ch, &rp))
        REQUANT[e->int32 ? 2 : 0][out_index(e->kind)](sums, dst, q);
    else if (e->int32)
        (short_row ? rq_i32_row_scalar : rq_i32_row)(sums, dst, size, q->inner, &rp);
    else
        (short_row ? rq_f32_row_scalar : rq_f32_row)(sums, dst, size, q->inner, &rp);
}

/* The stages after the requantization of `len` codes (conv, storage of e->kind) into dst: the ADD of the
 * residual's elements from `at`, then the table: channel ch's for all, or with `column` the channel ch + i of
 * element i (a column of consecutive channels) where every channel has its own. */
HOT_EXACT static void post_stages(const quant_post *e, const void *conv, Py_ssize_t at, Py_ssize_t ch, int column,
                                  char *dst, Py_ssize_t len)
{
    const Py_ssize_t size = kind_size(e->kind);
    int16_t added[POST_CHUNK]; /* room for 16-bit storage */
    const void *codes = conv;
    if (e->residual) {
        const char *r = e->residual + at * size;
        void *sum_to = e->table ? (void *)added : (void *)dst;
        add_args a = e->add;
        a.n = len;
        if (e->add_fast)
            (len < 16 ? add8_scalar : add8)(conv, r, sum_to, e->kind == 'b', len, &e->add8p);
        else if (e->kind == 'B')
            add_u8(conv, r, sum_to, &a);
        else if (e->kind == 'b')
            add_i8(conv, r, sum_to, &a);
        else
            add_i16(conv, r, sum_to, &a);
        codes = added;
    }
    if (!e->table)
        return;
    const Py_ssize_t stride = e->table_stride;
    if (column && stride && size == 1) {
        const uint8_t flip = e->kind == 'b' ? 0x80 : 0;
        for (Py_ssize_t i = 0; i < len; i++)
            ((uint8_t *)dst)[i] = ((const uint8_t *)e->table)[(ch + i) * stride + (((const uint8_t *)codes)[i] ^ flip)];
    } else if (column && stride) {
        for (Py_ssize_t i = 0; i < len; i++)
            ((int16_t *)dst)[i] =
                ((const int16_t *)e->table)[(ch + i) * stride + ((const int16_t *)codes)[i] - e->table_lo];
    } else {
        const char *table = e->table + ch * stride * size;
        if (size == 1)
            lookup8_codes(codes, (const uint8_t *)table, (uint8_t *)dst, len, e->kind == 'b' ? 0x80 : 0);
        else
            for (Py_ssize_t i = 0; i < len; i++)
                ((int16_t *)dst)[i] = ((const int16_t *)table)[((const int16_t *)codes)[i] - e->table_lo];
    }
}

/* `count` sums (4-byte elements, see requant_sums) of channel ch into output elements [at, at + count) of
 * out. */
HOT_EXACT static void quant_post_apply(const quant_post *e, const void *sums, Py_ssize_t ch, char *out, Py_ssize_t at,
                             Py_ssize_t count)
{
    const Py_ssize_t size = kind_size(e->kind), k = e->nm > 1 ? ch : 0;
    requant_args q = {e->bias ? e->bias + ch : NULL, e->mult + k, e->shift + k, 1, 1, count, 1, e->zo, e->lo, e->hi,
                      e->pot};
    if (!e->residual && !e->table) {
        requant_sums(e, sums, ch, out + at * size, &q);
        return;
    }
    int16_t conv[POST_CHUNK]; /* room for 16-bit storage */
    for (Py_ssize_t c0 = 0; c0 < count; c0 += POST_CHUNK) {
        const Py_ssize_t len = count - c0 < POST_CHUNK ? count - c0 : POST_CHUNK;
        q.inner = len;
        requant_sums(e, (const char *)sums + 4 * c0, ch, conv, &q);
        post_stages(e, conv, at + c0, ch, 0, out + (at + c0) * size, len);
    }
}

/* One sum of each of the channels [i0, i1) (4-byte elements, consecutive) into the output elements [i0, i1):
 * the output of a single pixel (a GEMV), the channels' stages in one pass instead of one per channel. */
HOT_EXACT static void quant_post_column(const quant_post *e, const void *sums, Py_ssize_t i0, Py_ssize_t i1, char *out)
{
    const Py_ssize_t size = kind_size(e->kind), per_channel = e->nm > 1;
    const requant_fn requant = REQUANT[e->int32 ? 2 : 0][out_index(e->kind)];
    const int direct = !e->residual && !e->table;
    int16_t conv[POST_CHUNK]; /* room for 16-bit storage */
    for (Py_ssize_t c0 = i0; c0 < i1; c0 += POST_CHUNK) {
        const Py_ssize_t len = i1 - c0 < POST_CHUNK ? i1 - c0 : POST_CHUNK, k = per_channel ? c0 : 0;
        const requant_args q = {e->bias ? e->bias + c0 : NULL, e->mult + k, e->shift + k, 1, len, 1,
                                per_channel ? len : 1, e->zo, e->lo, e->hi, e->pot};
        requant((const char *)sums + 4 * (c0 - i0), direct ? (void *)(out + c0 * size) : (void *)conv, &q);
        if (!direct)
            post_stages(e, conv, c0, c0, 1, out + c0 * size, len);
    }
}

/* Fill e from the arguments of qconv_gemm / qdepthwise_conv2d: bias (int64 or None), mult/shift, the
 * output grid, and the optional add tuple (residual, za, zb, left, ma, sa, mb, sb, mo, so, pot, zo, lo,
 * hi: quantized_add's constants, the residual being storage of out_kind with `count` elements) and
 * table (storage of out_kind, one entry per code, or one such table per channel). Buffers it takes are
 * listed in held (released by the caller); NULL when they fit, else why not. */
static const char *parse_quant_post(quant_post *e, PyObject *bias_obj, Py_buffer *mb, Py_buffer *sb, int out_kind,
                                    Py_ssize_t channels, Py_ssize_t count, PyObject *add, PyObject *table,
                                    Py_buffer held[3])
{
    for (int i = 0; i < 3; i++)
        held[i].obj = NULL;
    e->kind = out_kind;
    e->nm = mb->len / 8;
    if (out_index(out_kind) < 0)
        return "unknown output kind";
    e->mult = mb->buf;
    e->shift = sb->buf;
    if (sb->len != mb->len || (e->nm != 1 && e->nm != channels))
        return "multipliers, shifts or bias do not match the output channels";
    e->bias = NULL;
    if (bias_obj != Py_None) {
        if (PyObject_GetBuffer(bias_obj, &held[0], PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            held[0].obj = NULL;
            return "the bias is not a buffer";
        }
        if (held[0].len < 8 * channels)
            return "multipliers, shifts or bias do not match the output channels";
        e->bias = held[0].buf;
    }
    const Py_ssize_t size = kind_size(out_kind);
    e->residual = NULL;
    if (add && add != Py_None) {
        add_args *q = &e->add;
        q->sign = 1;
        if (!PyArg_ParseTuple(add, "y*LLLLLLLLLpLLL", &held[1], &q->za, &q->zb, &q->left, &q->ma, &q->sa, &q->mb,
                              &q->sb, &q->mo, &q->so, &q->pot, &q->zo, &q->lo, &q->hi)) {
            PyErr_Clear();
            held[1].obj = NULL;
            return "add must be (residual, za, zb, left, ma, sa, mb, sb, mo, so, pot, zo, lo, hi)";
        }
        if (held[1].len < count * size || q->left < 0 || q->left >= 32)
            return "the residual is smaller than the output, or the ADD's left shift is outside [0, 32)";
        e->residual = held[1].buf;
        e->add_fast = add8_plan(out_kind, q, &e->add8p);
    }
    e->table = NULL;
    if (table && table != Py_None) {
        if (PyObject_GetBuffer(table, &held[2], PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            held[2].obj = NULL;
            return "the table is not a buffer";
        }
        e->table_lo = out_kind == 'B' ? 0 : out_kind == 'b' ? -128 : -32768;
        const Py_ssize_t entries = out_kind == 'h' ? 65536 : 256;
        if (held[2].len < entries * size)
            return "the table needs one entry per storage code";
        e->table_stride = channels > 1 && held[2].len >= channels * entries * size ? entries : 0;
        e->table = held[2].buf;
    }
    return NULL;
}

static void release_held(Py_buffer held[3])
{
    for (int i = 0; i < 3; i++)
        if (held[i].obj)
            PyBuffer_Release(&held[i]);
}

/* ---- Integer MUL: products of centered 8-bit codes, requantized --------------------------------- */

typedef struct {
    const char *a, *b;
    char *out;
    Py_ssize_t rows, inner;
    int b_step; /* b: one value (0), one per row (1), laid out as a (2) */
    int32_t za, zb;
    quant_post post;
    int prelu;         /* PRelu: where a - za >= 0 the output is a - za requantized by pos instead */
    quant_post pos;
    int tasks;
} mul_job;

/* acc[i] = (a[at + i] - za) * (b - zb) for i < len, b one value, the row's or laid out as a. */
#define MUL_CHUNK(T)                                                                                         \
    {                                                                                                        \
        const T *restrict pa = (const T *)J->a + at, *restrict pb = (const T *)J->b;                         \
        if (J->b_step == 2) {                                                                                \
            for (Py_ssize_t i = 0; i < len; i++)                                                             \
                acc[i] = ((int32_t)pa[i] - J->za) * ((int32_t)pb[at + i] - J->zb);                           \
        } else {                                                                                             \
            const int32_t bv = (int32_t)pb[J->b_step ? r : 0] - J->zb;                                        \
            for (Py_ssize_t i = 0; i < len; i++)                                                             \
                acc[i] = ((int32_t)pa[i] - J->za) * bv;                                                      \
        }                                                                                                    \
    }

HOT_INT static void mul_task(void *ctx, int t)
{
    const mul_job *J = ctx;
    int32_t acc[POST_CHUNK];
    for (Py_ssize_t r = J->rows * t / J->tasks; r < J->rows * (t + 1) / J->tasks; r++)
        for (Py_ssize_t c0 = 0; c0 < J->inner; c0 += POST_CHUNK) {
            const Py_ssize_t len = J->inner - c0 < POST_CHUNK ? J->inner - c0 : POST_CHUNK, at = r * J->inner + c0;
            if (J->post.kind == 'b')
                MUL_CHUNK(int8_t)
            else
                MUL_CHUNK(uint8_t)
            quant_post_apply(&J->post, acc, 0, J->out, at, len);
            if (J->prelu) {
                uint8_t pos[POST_CHUNK];
                const int is_signed = J->post.kind == 'b';
                for (Py_ssize_t i = 0; i < len; i++)
                    acc[i] = (is_signed ? ((const int8_t *)J->a)[at + i] : ((const uint8_t *)J->a)[at + i]) - J->za;
                quant_post_apply(&J->pos, acc, 0, (char *)pos, 0, len);
                for (Py_ssize_t i = 0; i < len; i++)
                    J->out[at + i] = acc[i] >= 0 ? (char)pos[i] : J->out[at + i];
            }
        }
}

/* quantized_mul(a, b, out, kind, rows, inner, b_step, za, zb, mult, shift, pot, zo, lo, hi[, pos_mult,
 * pos_shift, pos_pot]): 8-bit storage (kind B or b) out[r, i] = clamp(R((a[r, i] - za) * (b - zb)) + zo, lo,
 * hi), R the requantization of requantize by (mult, shift) (int64 arrays of one value, pot as there); b
 * one value (b_step 0), one per row (1) or laid out as a (2). Products of 8-bit codes fit int32, so no
 * bound is needed. With pos_mult/pos_shift (PRelu, b the slope): where a - za >= 0 the output is
 * clamp(R'(a - za) + zo, lo, hi) with R' by those. */
static PyObject *quantized_mul(PyObject *self, PyObject *args)
{
    Py_buffer xa, xb, ob, mb, sb, held[3], pm = {0}, ps = {0}, pos_held[3];
    mul_job J = {0};
    long long za, zb;
    if (!PyArg_ParseTuple(args, "y*y*w*CnniLLy*y*pLLL|y*y*p", &xa, &xb, &ob, &J.post.kind, &J.rows, &J.inner,
                          &J.b_step, &za, &zb, &mb, &sb, &J.post.pot, &J.post.zo, &J.post.lo, &J.post.hi, &pm, &ps,
                          &J.pos.pot))
        return NULL;
    const Py_ssize_t n = J.rows * J.inner, nb = J.b_step == 0 ? 1 : J.b_step == 1 ? J.rows : n;
    const char *err = parse_quant_post(&J.post, Py_None, &mb, &sb, J.post.kind, 1, n, NULL, NULL, held);
    for (int i = 0; i < 3; i++)
        pos_held[i].obj = NULL;
    J.prelu = pm.obj != NULL;
    if (!err && J.prelu) {
        J.pos.zo = J.post.zo;
        J.pos.lo = J.post.lo;
        J.pos.hi = J.post.hi;
        err = ps.obj ? parse_quant_post(&J.pos, Py_None, &pm, &ps, J.post.kind, 1, n, NULL, NULL, pos_held)
                     : "pos_mult needs pos_shift";
        J.pos.int32 = 1;
    }
    int ok = !err && (J.post.kind == 'B' || J.post.kind == 'b') && J.rows >= 0 && J.inner >= 0 && J.b_step >= 0 &&
             J.b_step <= 2 && xa.len >= n && xb.len >= nb && ob.len >= n && za >= -128 && za <= 255 && zb >= -128 &&
             zb <= 255;
    if (ok && n > 0) {
        J.a = xa.buf;
        J.b = xb.buf;
        J.out = ob.buf;
        J.za = (int32_t)za;
        J.zb = (int32_t)zb;
        J.post.int32 = 1;
        J.tasks = n < 65536 ? 1 : (J.rows < 4 * pool_get_threads() ? (int)J.rows : 4 * pool_get_threads());
        run_tasks(J.tasks, mul_task, &J);
    }
    release_held(held);
    release_held(pos_held);
    if (pm.obj)
        PyBuffer_Release(&pm);
    if (ps.obj)
        PyBuffer_Release(&ps);
    return finish(ok, 1, "quantized_mul: 8-bit kinds only, buffer sizes or zero points that do not match", 5, &xa,
                  &xb, &ob, &mb, &sb);
}

/* ---- Integer depthwise convolution: center, accumulate (exactly, in float32), requantize ---------- */

typedef struct {
    const void *x;
    int x_kind;
    long long zx;
    const float *w;
    char *y;
    Py_ssize_t c, planes;
    int tasks;
    geometry g;
    quant_post post;
    int failed;
} qdw_args;

/* Planes of one pool task, a group at a time: every partial sum is an integer below 2**24 (the caller
 * checks the weights' bound), so the float32 accumulators are exact and the requantization sees the
 * true integer sums. */
static void qdw_task(void *ctx, int t)
{
    qdw_args *a = ctx;
    const geometry *g = &a->g;
    const Py_ssize_t out_plane = g->oh * g->ow;
    float *scratch = scratch_get(dw_scratch_floats(g) + (size_t)(DW_GROUP * out_plane));
    if (!scratch) {
        a->failed = 1;
        return;
    }
    float *dense = scratch + dw_scratch_floats(g);
    dw_prepare(scratch, g);
    Py_ssize_t p0, p1;
    task_planes(a->planes, a->tasks, t, &p0, &p1);
    for (Py_ssize_t p = p0; p < p1; p += DW_GROUP) {
        const int count = p1 - p < DW_GROUP ? (int)(p1 - p) : DW_GROUP;
        dw_sums(a->x, g->h * g->w, a->x_kind, a->zx, a->w, NULL, a->c, p, count, scratch, dense, out_plane, g);
        for (int i = 0; i < count; i++) /* one requantization per plane: whole vectors */
            quant_post_apply(&a->post, dense + i * out_plane, (p + i) % a->c, a->y, (p + i) * out_plane, out_plane);
    }
}

/* qdepthwise_conv2d(x, x_kind, zx, w, bias, mult, shift, pot, y, out_kind, zo, lo, hi,
 *                   n, c, h, w_, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl[, add, table])
 *   x: storage integers (kind B b h), NCHW; w: float32 (C, KH, KW) centered weights; bias int64 (C,) or
 *   None; mult/shift int64 (1 or C); y: storage (kind B b h) NCHW, overwritten with
 *   clamp(R(sum + bias) + zo, lo, hi), R as in requantize; add and table as in qconv_gemm. */
static PyObject *qdepthwise_conv2d(PyObject *self, PyObject *args)
{
    Py_buffer xb, wb, mb, sb, yb, held[3];
    PyObject *bias_obj, *add = NULL, *table = NULL;
    qdw_args a = {0};
    Py_ssize_t n;
    geometry *g = &a.g;
    quant_post *e = &a.post;
    if (!PyArg_ParseTuple(args, "y*CLy*Oy*y*pw*CLLLnnnnnnnnnnnnnn|OO", &xb, &a.x_kind, &a.zx, &wb, &bias_obj, &mb,
                          &sb, &e->pot, &yb, &e->kind, &e->zo, &e->lo, &e->hi, &n, &a.c, &g->h, &g->w, &g->kh,
                          &g->kw, &g->oh, &g->ow, &g->sh, &g->sw, &g->dh, &g->dw, &g->pt, &g->pl, &add, &table))
        return NULL;
    dw_padded_size(g);
    const Py_ssize_t count = n * a.c * g->oh * g->ow;
    const char *err = parse_quant_post(e, bias_obj, &mb, &sb, e->kind, a.c, count, add, table, held);
    int ok = !err && out_index(a.x_kind) >= 0 && g->sh > 0 && g->sw > 0 && g->dh > 0 && g->dw > 0 && g->oh > 0 &&
             g->ow > 0 && xb.len >= kind_size(a.x_kind) * n * a.c * g->h * g->w &&
             wb.len >= (Py_ssize_t)sizeof(float) * a.c * g->kh * g->kw && yb.len >= kind_size(e->kind) * count;
    int done = 0;
    if (ok) {
        a.x = xb.buf;
        a.w = (const float *)wb.buf;
        a.y = yb.buf;
        a.planes = n * a.c;
        a.tasks = plane_tasks(a.planes, g->oh * g->ow * g->kh * g->kw);
        run_tasks(a.tasks, qdw_task, &a);
        done = !a.failed;
    }
    release_held(held);
    return finish(ok, done, "qdepthwise_conv2d: unknown kinds or buffer sizes that do not match", 5, &xb, &wb, &mb, &sb,
                  &yb);
}

/* ---- Integer convolution on the GEMM: centered inputs, exact float32 sums, requantized per block ---- */

typedef struct {
    const void *x;
    int kind;
    long long zero;
    float *out;
    Py_ssize_t count;
    int tasks;
} center_job;

static void center_task(void *ctx, int t)
{
    const center_job *J = ctx;
    const Py_ssize_t i0 = J->count * t / J->tasks, i1 = J->count * (t + 1) / J->tasks;
    center_plane(J->x, J->kind, i0, i1 - i0, J->zero, J->out + i0);
}

/* center(x, kind, zero, out): out = float32(x - zero) for storage integers x (kind B b h). */
static PyObject *center(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    center_job J;
    if (!PyArg_ParseTuple(args, "y*CLw*", &xb, &J.kind, &J.zero, &ob))
        return NULL;
    J.count = ob.len / (Py_ssize_t)sizeof(float);
    int ok = out_index(J.kind) >= 0 && xb.len >= J.count * kind_size(J.kind);
    if (ok) {
        J.x = xb.buf;
        J.out = (float *)ob.buf;
        J.tasks = J.count < 65536 ? 1 : 4 * pool_get_threads();
        run_tasks(J.tasks, center_task, &J);
    }
    return finish(ok, 1, "center: unknown kind or buffer sizes that do not match", 2, &xb, &ob);
}

typedef struct {
    quant_post post;
    Py_ssize_t n;
    char *out;
} requant_epilogue_args;

/* Requantize a finished block of float sums (rows are output channels) into the output storage. */
HOT_EXACT static void requant_block(void *ctx, const float *block, ptrdiff_t ld, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t p0,
                          ptrdiff_t p1)
{
    const requant_epilogue_args *e = ctx;
    if (e->n == 1 && ld == 1 && p1 - p0 == 1) {
        quant_post_column(&e->post, block, i0, i1, e->out);
        return;
    }
    for (ptrdiff_t i = i0; i < i1; i++)
        quant_post_apply(&e->post, block + (i - i0) * ld, i, e->out, i * e->n + p0, p1 - p0);
}

/* requant_block for the int32 sums of native/qgemm.c. */
HOT_EXACT static void requant_block_i32(void *ctx, const int32_t *block, ptrdiff_t ld, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t p0,
                              ptrdiff_t p1)
{
    const requant_epilogue_args *e = ctx;
    if (e->n == 1 && ld == 1 && p1 - p0 == 1) {
        quant_post_column(&e->post, block, i0, i1, e->out);
        return;
    }
    for (ptrdiff_t i = i0; i < i1; i++)
        quant_post_apply(&e->post, block + (i - i0) * ld, i, e->out, i * e->n + p0, p1 - p0);
}

/* qconv_gemm(a, b, b_kind, b_zero, koff, poff, bias, mult, shift, pot, out, out_kind, zo, lo, hi, m, k, n
 *            [, add, table]):
 * the sums of conv_gemm (a: float32 centered weights; b: float32 centered integers (b_kind f) or 8-bit
 * storage (B, b) read minus b_zero; every partial sum below 2**24, so they are exact) requantized as
 * in requantize, block by block on the pool threads, into out (m, n) storage; then, with add (a tuple
 * (residual, za, zb, left, ma, sa, mb, sb, mo, so, pot, zo, lo, hi)), quantized_add of the result and
 * the residual (storage of out_kind laid out as out); then, with table, out = table[code - lowest]
 * (row i's own table when table holds m of them). */
static PyObject *qconv_gemm(PyObject *self, PyObject *args)
{
    Py_buffer a, b, ko, po, mb, sb, ob, held[3];
    PyObject *bias_obj, *add = NULL, *table = NULL;
    requant_epilogue_args e = {0};
    Py_ssize_t m, k, n;
    int out_kind, b_kind;
    long long b_zero;
    if (!PyArg_ParseTuple(args, "y*y*CLy*y*Oy*y*pw*CLLLnnn|OO", &a, &b, &b_kind, &b_zero, &ko, &po, &bias_obj, &mb,
                          &sb, &e.post.pot, &ob, &out_kind, &e.post.zo, &e.post.lo, &e.post.hi, &m, &k, &n, &add,
                          &table))
        return NULL;
    const char *err = parse_quant_post(&e.post, bias_obj, &mb, &sb, out_kind, m, m * n, add, table, held);
    if (err) {
    } else if (b_kind != 'f' && b_kind != 'B' && b_kind != 'b') {
        err = "b must be float32 (f) or 8-bit storage (B, b)";
    } else if ((err = gemm_check(&a, &b, b_kind == 'f' ? 4 : 1, &ko, &po, m, k, n)) == NULL) {
        if (ob.len < m * n * kind_size(out_kind))
            err = "unknown output kind or output buffer too small";
    }
    if (!err && m > 0 && n > 0) {
        e.out = ob.buf;
        e.n = n;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = gemm_run(a.buf, b.buf, b_kind, (float)b_zero, ko.buf, po.buf, NULL, NULL, m, k, n, -INFINITY, INFINITY,
                      requant_block, &e);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            PyErr_NoMemory();
            err = "";
        }
    }
    release_held(held);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&ko);
    PyBuffer_Release(&po);
    PyBuffer_Release(&mb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&ob);
    if (err) {
        if (*err)
            PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* qconv_gemm_u8(a8, row_terms, row_d, b, b_kind, koff, poff, bias, mult, shift, pot, out, out_kind, zo, lo, hi,
 *               m, k, n[, add, table, pairs]):
 * qconv_gemm's result from 8-bit operands on the integer kernels of native/qgemm.c (AVX-512 VNNI or AVX2; only
 * where int8_gemm() is true): the sums sum_j a8[i, j] u[j, p] + row_terms[i] + row_d[i] sum_j u[j, p],
 * a8 int8 (m, k rounded up to 4, zero past k), row_terms and row_d int32 (m,) (row_d may be None),
 * u the storage b (kind B, or b read plus 128) through koff/poff; every sum below 2**30 in magnitude
 * (int32 sums reach the requantization: no float32 bound). pairs: int8_pairs(a8, m, kp), made once, or None to
 * make it on every call where the kernels need it. */
static PyObject *qconv_gemm_u8(PyObject *self, PyObject *args)
{
    Py_buffer a, t, b, ko, po, mb, sb, ob, held[3], db = {0}, pb = {0};
    PyObject *d_obj, *bias_obj, *add = NULL, *table = NULL, *pairs = NULL;
    requant_epilogue_args e = {0};
    Py_ssize_t m, k, n;
    int out_kind, b_kind;
    if (!PyArg_ParseTuple(args, "y*y*Oy*Cy*y*Oy*y*pw*CLLLnnn|OOO", &a, &t, &d_obj, &b, &b_kind, &ko, &po, &bias_obj,
                          &mb, &sb, &e.post.pot, &ob, &out_kind, &e.post.zo, &e.post.lo, &e.post.hi, &m, &k, &n, &add,
                          &table, &pairs))
        return NULL;
    const char *err = parse_quant_post(&e.post, bias_obj, &mb, &sb, out_kind, m, m * n, add, table, held);
    if (!err && d_obj != Py_None && PyObject_GetBuffer(d_obj, &db, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        db.obj = NULL;
        err = "row_d must be an int32 buffer or None";
    }
    if (!err && pairs && pairs != Py_None && PyObject_GetBuffer(pairs, &pb, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        pb.obj = NULL;
        err = "pairs must be int8_pairs(a8) or None";
    }
    if (err) {
    } else if (!qgemm_available()) {
        err = "the 8-bit GEMM needs AVX-512 VNNI or AVX2 (see int8_gemm())";
    } else if (b_kind != 'B' && b_kind != 'b') {
        err = "b must be 8-bit storage (B, b)";
    } else if ((err = gemm_check(NULL, &b, 1, &ko, &po, m, k, n)) == NULL) {
        if (a.len < m * ((k + 3) / 4 * 4) || t.len < 4 * m || (db.obj && db.len < 4 * m) ||
            (pb.obj && pb.len < 2 * m * ((k + 3) / 4 * 4)))
            err = "a8, row_terms, row_d or pairs do not match m and k";
        else if (ob.len < m * n * kind_size(out_kind))
            err = "output buffer too small";
    }
    if (!err && m > 0 && n > 0) {
        e.out = ob.buf;
        e.n = n;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        e.post.int32 = 1;
        rc = qgemm_run(a.buf, pb.obj ? pb.buf : NULL, t.buf, db.obj ? db.buf : NULL, b.buf, b_kind, ko.buf, po.buf, m, k,
                       n, requant_block_i32, &e);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            PyErr_NoMemory();
            err = "";
        }
    }
    release_held(held);
    if (db.obj)
        PyBuffer_Release(&db);
    if (pb.obj)
        PyBuffer_Release(&pb);
    Py_buffer *buffers[] = {&a, &t, &b, &ko, &po, &mb, &sb, &ob};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++)
        PyBuffer_Release(buffers[i]);
    if (err) {
        if (*err)
            PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *int8_gemm(PyObject *self, PyObject *unused) { return PyBool_FromLong(qgemm_available()); }

/* int8_pairs(a8, m, kp) -> bytearray or None: qconv_gemm_u8's `pairs`, the weights as this CPU's kernels read
 * them (AVX2: 16-bit pairs), made once instead of on every call; None where the kernels read a8 itself. */
static PyObject *int8_pairs(PyObject *self, PyObject *args)
{
    Py_buffer a;
    Py_ssize_t m, kp;
    if (!PyArg_ParseTuple(args, "y*nn", &a, &m, &kp))
        return NULL;
    PyObject *out = NULL;
    const ptrdiff_t words = m < 0 || kp < 0 || kp % 4 || a.len < m * kp ? -1 : qgemm_pairs(a.buf, m, kp, NULL);
    if (words < 0) {
        PyErr_SetString(PyExc_ValueError, "int8_pairs: a8 must hold m rows of kp (a multiple of 4) bytes");
    } else if (words == 0) {
        out = Py_NewRef(Py_None);
    } else if ((out = PyByteArray_FromStringAndSize(NULL, 4 * words)) != NULL) {
        qgemm_pairs(a.buf, m, kp, (int32_t *)PyByteArray_AS_STRING(out));
    }
    PyBuffer_Release(&a);
    return out;
}

/* ---- Quantize: real values to storage ---------------------------------------------------------- */

typedef struct {
    const void *x;
    int x_kind, out_kind;
    double scale;
    long long zero, lo, hi;
    void *out;
    Py_ssize_t count;
    int tasks;
} quantize_job;

/* round(v) with ties away from zero, + zero point, saturated; NaN gives the zero point. Written without
 * branches so that the loops below vectorize. */
static inline int32_t quantize_one(double v, double zero, double lo, double hi)
{
    const double r = (v >= 0 ? floor(v + 0.5) : ceil(v - 0.5)) + zero;
    const double c = r < lo ? lo : r > hi ? hi : r;
    return (int32_t)(v == v ? c : (zero < lo ? lo : zero > hi ? hi : zero)); /* within 16-bit storage */
}

/* v = x / scale, as a product by `inverse` when that is exactly 1 / scale (scale a power of two: both
 * round the same real number, so the same v) - a true division per value costs most of the time. */
#define DEFINE_QUANTIZE(NAME, IN_T, OUT_T)                                                                  \
    HOT_INT static void NAME(const void *x_v, void *out_v, Py_ssize_t n, double scale, double inverse,      \
                             double zero, double lo, double hi)                                             \
    {                                                                                                       \
        const IN_T *restrict x = x_v;                                                                       \
        OUT_T *restrict out = out_v;                                                                        \
        if (inverse != 0.0)                                                                                 \
            for (Py_ssize_t i = 0; i < n; i++)                                                              \
                out[i] = (OUT_T)quantize_one((double)x[i] * inverse, zero, lo, hi);                        \
        else                                                                                                \
            for (Py_ssize_t i = 0; i < n; i++)                                                              \
                out[i] = (OUT_T)quantize_one((double)x[i] / scale, zero, lo, hi);                          \
    }
DEFINE_QUANTIZE(quantize_f_u8, float, uint8_t)
DEFINE_QUANTIZE(quantize_f_i8, float, int8_t)
DEFINE_QUANTIZE(quantize_f_i16, float, int16_t)
DEFINE_QUANTIZE(quantize_d_u8, double, uint8_t)
DEFINE_QUANTIZE(quantize_d_i8, double, int8_t)
DEFINE_QUANTIZE(quantize_d_i16, double, int16_t)

typedef void (*quantize_fn)(const void *, void *, Py_ssize_t, double, double, double, double, double);
static const quantize_fn QUANTIZE[2][3] = {{quantize_f_u8, quantize_f_i8, quantize_f_i16},
                                           {quantize_d_u8, quantize_d_i8, quantize_d_i16}};

/* 1 / scale when it is exact (scale a power of two, its inverse a normal double), else 0. */
static double exact_inverse(double scale)
{
    int e;
    const double m = frexp(scale, &e), inverse = ldexp(1.0, 1 - e);
    return m == 0.5 && isnormal(inverse) ? inverse : 0.0;
}

static void quantize_task(void *ctx, int t)
{
    const quantize_job *J = ctx;
    const Py_ssize_t i0 = J->count * t / J->tasks, i1 = J->count * (t + 1) / J->tasks;
    const Py_ssize_t in_size = kind_size(J->x_kind), out_size = kind_size(J->out_kind);
    QUANTIZE[J->x_kind == 'd'][out_index(J->out_kind)]((const char *)J->x + i0 * in_size,
                                                      (char *)J->out + i0 * out_size, i1 - i0, J->scale,
                                                      exact_inverse(J->scale), (double)J->zero, (double)J->lo,
                                                      (double)J->hi);
}

/* quantize(x, x_kind, scale, zero, out, out_kind, lo, hi): per-tensor quantization of float32/float64
 * (kinds f d) values into storage (kinds B b h), as quant.params.quantize computes it. */
static PyObject *quantize(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    quantize_job J;
    if (!PyArg_ParseTuple(args, "y*CdLw*CLL", &xb, &J.x_kind, &J.scale, &J.zero, &ob, &J.out_kind, &J.lo, &J.hi))
        return NULL;
    const Py_ssize_t out_size = kind_size(J.out_kind);
    J.count = out_size ? ob.len / out_size : 0;
    int ok = out_index(J.out_kind) >= 0 && (J.x_kind == 'f' || J.x_kind == 'd') &&
             xb.len >= J.count * kind_size(J.x_kind) && J.scale > 0;
    if (ok) {
        J.x = xb.buf;
        J.out = ob.buf;
        J.tasks = J.count < 65536 ? 1 : 4 * pool_get_threads();
        run_tasks(J.tasks, quantize_task, &J);
    }
    return finish(ok, 1, "quantize: unknown kinds, a non-positive scale or buffer sizes that do not match", 2, &xb, &ob);
}

/* ---- Padded planes for the GEMM: centered storage or float32, zero borders ------------------------ */

typedef struct {
    const void *x;
    int kind;
    long long zero;
    float *out;
    Py_ssize_t planes;
    int tasks;
    geometry g; /* h, w, pt, pl, ph, pw */
} pad_job;

static void pad_task(void *ctx, int t)
{
    const pad_job *J = ctx;
    const geometry *g = &J->g;
    for (Py_ssize_t p = J->planes * t / J->tasks; p < J->planes * (t + 1) / J->tasks; p++)
        pad_plane(J->x, J->kind, p * g->h * g->w, J->zero, J->out + p * g->ph * g->pw, g);
}

/* pad_planes(x, kind, zero, out, planes, h, w, pt, pl, ph, pw): out (planes, ph, pw) float32 holds each
 * (h, w) plane of x at row pt, column pl, zeros elsewhere; x is float32 (kind f) or storage integers
 * (kinds B b h) given minus their zero point. */
static PyObject *pad_planes(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    pad_job J = {0};
    geometry *g = &J.g;
    if (!PyArg_ParseTuple(args, "y*CLw*nnnnnnn", &xb, &J.kind, &J.zero, &ob, &J.planes, &g->h, &g->w, &g->pt, &g->pl,
                          &g->ph, &g->pw))
        return NULL;
    const Py_ssize_t size = J.kind == 'f' ? 4 : kind_size(J.kind);
    int ok = (J.kind == 'f' || out_index(J.kind) >= 0) && g->pt >= 0 && g->pl >= 0 && g->pt + g->h <= g->ph &&
             g->pl + g->w <= g->pw && xb.len >= J.planes * g->h * g->w * size &&
             ob.len >= (Py_ssize_t)sizeof(float) * J.planes * g->ph * g->pw;
    if (ok) {
        J.x = xb.buf;
        J.out = (float *)ob.buf;
        J.tasks = plane_tasks(J.planes, g->ph * g->pw / 8);
        run_tasks(J.tasks, pad_task, &J);
    }
    return finish(ok, 1, "pad_planes: unknown kind, pads outside the plane or buffer sizes that do not match", 2, &xb,
                  &ob);
}

/* ---- Stride phases of zero-bordered float32 planes: the strided convolutions' GEMM input ---------- */

typedef struct {
    const float *x;
    float *out;
    Py_ssize_t planes, h, w, pt, pl, qh, qw, sh, sw;
    int tasks;
} phase_job;

/* Task t's band of padded rows [r0, r1) in every plane (a share of the image, as the GEMM that reads the
 * phases takes it): padded row pr of plane p is row pr / sh of its phase rows pr % sh, and its column pc goes
 * to column pc / sw of phase pc % sw; cells outside the input are zero. */
HOT_EXACT static void phase_task(void *ctx, int t)
{
    const phase_job *J = ctx;
    const Py_ssize_t plane_rows = J->qh * J->sh, r0 = plane_rows * t / J->tasks, r1 = plane_rows * (t + 1) / J->tasks;
    const Py_ssize_t phase = J->qh * J->qw;
    for (Py_ssize_t p = 0; p < J->planes; p++) {
        for (Py_ssize_t pr = r0; pr < r1; pr++) {
            const Py_ssize_t r = pr - J->pt, a = pr % J->sh, y = pr / J->sh;
            for (Py_ssize_t b = 0; b < J->sw; b++) {
                float *dst = J->out + ((p * J->sh + a) * J->sw + b) * phase + y * J->qw;
                if (r < 0 || r >= J->h) {
                    memset(dst, 0, sizeof(float) * (size_t)J->qw);
                    continue;
                }
                /* columns xq read input column xq * sw + b - pl: inside the row for xq in [x0, x1) */
                const Py_ssize_t lead = J->pl - b, x0 = lead > 0 ? (lead + J->sw - 1) / J->sw : 0;
                Py_ssize_t x1 = (J->w + lead + J->sw - 1) / J->sw;
                x1 = x1 < J->qw ? x1 : J->qw;
                const float *s = J->x + (p * J->h + r) * J->w - lead; /* s[xq * sw] is column xq of this phase */
                memset(dst, 0, sizeof(float) * (size_t)x0);
                if (J->sw == 2)
                    for (Py_ssize_t xq = x0; xq < x1; xq++)
                        dst[xq] = s[2 * xq];
                else
                    for (Py_ssize_t xq = x0; xq < x1; xq++)
                        dst[xq] = s[xq * J->sw];
                const Py_ssize_t tail = x1 > x0 ? x1 : x0;
                memset(dst + tail, 0, sizeof(float) * (size_t)(J->qw - tail));
            }
        }
    }
}

/* phase_planes(x, out, planes, h, w, pt, pl, qh, qw, sh, sw): x float32 (planes, h, w) placed at row pt,
 * column pl of zero-bordered planes of qh * sh rows and qw * sw columns, split into their stride phases:
 * out (planes, sh, sw, qh, qw), out[p, a, b, y, x] = padded[p, y * sh + a, x * sw + b]. */
static PyObject *phase_planes(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    phase_job J = {0};
    if (!PyArg_ParseTuple(args, "y*w*nnnnnnnnn", &xb, &ob, &J.planes, &J.h, &J.w, &J.pt, &J.pl, &J.qh, &J.qw, &J.sh,
                          &J.sw))
        return NULL;
    const int ok = J.planes >= 0 && J.h >= 0 && J.w >= 0 && J.pt >= 0 && J.pl >= 0 && J.qh >= 0 && J.qw >= 0 &&
                   J.sh >= 1 && J.sw >= 1 && xb.len >= (Py_ssize_t)sizeof(float) * J.planes * J.h * J.w &&
                   ob.len >= (Py_ssize_t)sizeof(float) * J.planes * J.sh * J.sw * J.qh * J.qw;
    if (ok) {
        J.x = xb.buf;
        J.out = ob.buf;
        J.tasks = J.planes * J.qh * J.sh * J.qw * J.sw < 65536 ? 1 : 4 * pool_get_threads();
        J.tasks = J.tasks < J.qh * J.sh ? J.tasks : 1;
        run_tasks(J.tasks, phase_task, &J);
    }
    return finish(ok, 1, "phase_planes: negative sizes, strides below 1 or buffer sizes that do not match", 2, &xb,
                  &ob);
}

/* out[p] = the float64 sum of the n float32 values of plane p, added one after the other (a numpy twin is
 * np.add.accumulate in float64); eight planes at a time, so that their chains of additions overlap. */
static void float_sums(const float *x, Py_ssize_t planes, Py_ssize_t n, double *out)
{
    Py_ssize_t p = 0;
    for (; p + 8 <= planes; p += 8) {
        double total[8] = {0};
        for (Py_ssize_t i = 0; i < n; i++)
            for (int q = 0; q < 8; q++)
                total[q] += (double)x[(p + q) * n + i];
        memcpy(out + p, total, sizeof(total));
    }
    for (; p < planes; p++) {
        double total = 0.0;
        for (Py_ssize_t i = 0; i < n; i++)
            total += (double)x[p * n + i];
        out[p] = total;
    }
}

/* plane_sums(x, kind, out, planes, size): out[p] = sum of the size storage integers of plane p (int64), or with
 * kind f of the float32 values of plane p (float64, in order). */
static PyObject *plane_sums(PyObject *self, PyObject *args)
{
    Py_buffer xb, ob;
    int kind;
    Py_ssize_t planes, size;
    if (!PyArg_ParseTuple(args, "y*Cw*nn", &xb, &kind, &ob, &planes, &size))
        return NULL;
    int ok = (out_index(kind) >= 0 || kind == 'f') && planes >= 0 && size >= 0 &&
             xb.len >= planes * size * kind_size(kind) && ob.len >= planes * 8;
    if (ok && kind == 'f') {
        Py_BEGIN_ALLOW_THREADS
        float_sums((const float *)xb.buf, planes, size, (double *)ob.buf);
        Py_END_ALLOW_THREADS
    } else if (ok) {
        int64_t *out = (int64_t *)ob.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t p = 0; p < planes; p++) {
            int64_t total = 0;
            if (kind == 'B' || kind == 'b')
                total = byte_sum((const uint8_t *)xb.buf + p * size, size, kind == 'b');
            else
                for (Py_ssize_t i = 0; i < size; i++)
                    total += ((const int16_t *)xb.buf)[p * size + i];
            out[p] = total;
        }
        Py_END_ALLOW_THREADS
    }
    return finish(ok, 1, "plane_sums: unknown kind or buffer sizes that do not match", 2, &xb, &ob);
}

/* ---- Threads ------------------------------------------------------------------------------------ */

static PyObject *set_threads(PyObject *self, PyObject *arg)
{
    long t = PyLong_AsLong(arg);
    if (t == -1 && PyErr_Occurred())
        return NULL;
    if (t < 1) {
        PyErr_SetString(PyExc_ValueError, "set_threads: the thread count must be at least 1");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    pool_set_threads(t > 256 ? 256 : (int)t);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *get_threads(PyObject *self, PyObject *unused) { return PyLong_FromLong(pool_get_threads()); }

static PyMethodDef methods[] = {
    {"conv_gemm", py_conv_gemm, METH_VARARGS, conv_gemm_doc},
    {"pw_dw_conv", py_pw_dw_conv, METH_VARARGS, pw_dw_conv_doc},
    {"qconv_gemm", qconv_gemm, METH_VARARGS,
     "conv_gemm on centered integers, requantized (fixed point, per output channel) into 8/16-bit storage."},
    {"qconv_gemm_u8", qconv_gemm_u8, METH_VARARGS,
     "qconv_gemm from int8 weights and 8-bit storage on the AVX-512 VNNI or AVX2 kernels (where int8_gemm() is true)."},
    {"int8_pairs", int8_pairs, METH_VARARGS,
     "int8_pairs(a8, m, kp) -> bytearray or None: the 8-bit GEMM's weights as this CPU's kernels read them (AVX2: "
     "16-bit pairs), qconv_gemm_u8's optional last argument; None where they read a8 itself."},
    {"int8_gemm", int8_gemm, METH_NOARGS, "int8_gemm() -> whether qconv_gemm_u8 runs on this CPU (AVX-512 VNNI or AVX2)."},
    {"quantize", quantize, METH_VARARGS, "Per-tensor quantization of float32/float64 values into 8/16-bit storage."},
    {"pad_planes", pad_planes, METH_VARARGS, "Planes into zero-bordered float32 planes (storage kinds centered)."},
    {"plane_sums", plane_sums, METH_VARARGS, "Sums of the storage integers of each plane (int64)."},
    {"center", center, METH_VARARGS, "center(x, kind, zero, out): out = float32(x - zero) for storage integers."},
    {"set_threads", set_threads, METH_O, "set_threads(t): the compiled kernels use t threads (1: no pool threads)."},
    {"get_threads", get_threads, METH_NOARGS, "get_threads() -> the compiled kernels' thread count."},
    {"depthwise_conv2d", depthwise_conv2d, METH_VARARGS,
     "Depthwise 2-D convolution of an NCHW input with implicit zero padding, bias and clamp."},
    {"requantize", requantize, METH_VARARGS,
     "Integer accumulators (+ int64 bias) to 8/16-bit storage with per-channel fixed-point multipliers."},
    {"softmax_lut", softmax_lut, METH_VARARGS, "The integer (LUT) softmax of storage codes along one axis."},
    {"quantized_add", quantized_add, METH_VARARGS, "TFLite-style integer ADD/SUB of two storage arrays."},
    {"quantized_mul", quantized_mul, METH_VARARGS,
     "Integer MUL of 8-bit storage: products of centered codes requantized (b one value, per row or full)."},
    {"qdepthwise_conv2d", qdepthwise_conv2d, METH_VARARGS,
     "Integer depthwise 2-D convolution: storage in, exact float32 sums, fixed-point requantization, storage out."},
    {"maxpool2d", maxpool2d, METH_VARARGS, "2-D max pooling of NCHW planes (float32, uint8, int8, int16)."},
    {"phase_planes", phase_planes, METH_VARARGS, "Zero-bordered float32 planes split into their stride phases."},
    {"lookup8", lookup8, METH_VARARGS, "8-bit codes through 256-entry byte tables (one, or one per row)."},
    {"planes8", planes8, METH_VARARGS, "Channels-last bytes to planes through a 256-entry table per channel."},
    {"lookup8_pairs", lookup8_pairs, METH_VARARGS, "Two 8-bit codes through a 65536-entry byte table."},
    {"upsample8", upsample8, METH_VARARGS, "Nearest upsampling of byte planes by whole factors."},
    {"byte_histograms", byte_histograms, METH_VARARGS, "How many times each byte occurs in each row (int64)."},
    {"depth_to_space8", depth_to_space8, METH_VARARGS, "Byte tap planes (kh, kw, h, w) woven into (h*kh, w*kw)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Compiled simulator kernels.", -1, methods};

/* Keep the run's tensors on the heap. numpy takes its arrays from malloc, and glibc serves blocks over its
 * mmap threshold (128 KB, raised only as large blocks are freed) as fresh mappings and trims the top of the
 * heap when much of it is free: either way a tensor's pages are faulted in again on every inference (about
 * 1000 faults per EfficientNet-Lite0 inference, 15-25% of its time). Blocks up to 32 MB come from the heap
 * and up to 256 MB of free heap is kept, unless the user tunes malloc through the environment. */
static void keep_tensors_on_heap(void)
{
#if defined(__GLIBC__)
    if (getenv("GLIBC_TUNABLES") || getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_"))
        return;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif
}

PyMODINIT_FUNC PyInit__native(void)
{
    static int initialized;
    if (!initialized) {
        if (pool_init() != 0) {
            PyErr_SetString(PyExc_RuntimeError, "_native: thread pool setup failed");
            return NULL;
        }
        gemm_init();
        keep_tensors_on_heap();
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
            rq_f32_row = rq_f32_row_avx512;
            rq_i32_row = rq_i32_row_avx512;
            add8 = add8_avx512;
        } else if (__builtin_cpu_supports("avx2")) {
            rq_f32_row = rq_f32_row_avx2;
            rq_i32_row = rq_i32_row_avx2;
            add8 = add8_avx2;
        }
#endif
        initialized = 1;
    }
    return PyModule_Create(&module);
}
