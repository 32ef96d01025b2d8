/*
 * Float32 convolution-as-GEMM with an implicit im2col and a fused
 * bias + clamp epilogue, run on the thread pool (pool.c).
 *
 *   y[i*n + p] = clamp(sum_j a[i*k + j] * b[koff[j] + poff[p]] + bias[i], lo, hi)
 *
 * Structure (BLIS-like, A is read in place, B is gathered and packed):
 *   - the (m, n) output is cut into a grid of tasks (row chunks x column
 *     chunks, in units of MR rows / NR columns) that run on the pool;
 *   - a task walks k in blocks of at most KC_MAX; for each block it gathers
 *     its column chunk of B (kc x NR micro-panels, through koff/poff) into a
 *     thread-local buffer that stays in L2, then sweeps MR-row strips of A
 *     (kept in L1) over the micro-panels with an MR x NR register-blocked
 *     micro-kernel;
 *   - the micro-kernel accumulates into y for later k blocks and applies the
 *     bias and clamp in the last k block; a last panel at most half full
 *     uses a half-width kernel, and a final sliver of fewer than NR/4
 *     columns (7x7 images: 49 = 32 + 16 + 1; fully connected: n = 1) is
 *     done as dot products instead of mostly-empty tiles.
 * The k blocking and the column split depend only on (n, k), so the
 * summation order of every output, hence the result, does not depend on the
 * thread count or on the task grid.
 *
 * Micro-kernels use GCC vector extensions and are compiled for x86-64-v4,
 * x86-64-v3 and baseline (target_clones); the tile shape is chosen once at
 * import: 8 x 32 (two 16-float vectors per row) with AVX-512, 6 x 16
 * otherwise.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "pool.h"
#include "post.h"
#include <math.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MULTIVERSION \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MULTIVERSION
#endif

/* ------------------------------------------------------------------------ */
/* Micro-kernels                                                            */
/* ------------------------------------------------------------------------ */

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));

enum { F_ACC = 1, F_LAST = 2 }; /* add to y / apply bias + clamp */

typedef void (*kernel_fn)(int kc, const float *a, ptrdiff_t lda, int mr,
                          const float *an, const float *pb, ptrdiff_t pbs, float *y, ptrdiff_t ldy, int nr,
                          int flags, const float *bias, float lo, float hi);

/*
 * DEFINE_KERNEL(NAME, V, VI, VU, MR, NV, BV, STEP): an MR x NR kernel, NR =
 * NV * lanes(V):
 *   y[r, j] (+)= sum_{kk < kc} a[r*lda + kk] * pb[kk*STEP + j]
 * for r < mr, j < nr; pb is a packed, 64-byte aligned kc x PBS panel (BV = V,
 * STEP = PBS: the half-width kernels read the first half of a full-width
 * panel) or, for B read in place, NR floats of each of kc rows pbs apart
 * (BV = VU, STEP = pbs).  Rows
 * r >= mr read row mr-1 of A (never out of bounds) and are discarded.
 * If an is not NULL, the MR x kc block of A at an (same lda) is prefetched,
 * one line per row every 16 steps: it is the strip the task needs next.
 * With F_LAST the bias (if any) is added and the result clamped to
 * [lo, hi] (NaN stays NaN).  Edge tiles go through a stack tile with
 * exactly the same arithmetic.
 */
#define DEFINE_KERNEL(NAME, V, VI, VU, MR, NV, BV, STEP)                       \
    MULTIVERSION static void NAME(int kc, const float *a, ptrdiff_t lda,       \
                                  int mr, const float *an, const float *pb,    \
                                  ptrdiff_t pbs, float *y,                     \
                                  ptrdiff_t ldy, int nr, int flags,            \
                                  const float *bias, float lo, float hi)       \
    {                                                                          \
        enum { VL = sizeof(V) / sizeof(float), NR = VL * (NV) };               \
        const float *ar[MR];                                                   \
        V c[MR][NV];                                                           \
        for (int r = 0; r < MR; r++) {                                         \
            ar[r] = a + (ptrdiff_t)(r < mr ? r : mr - 1) * lda;                \
            for (int v = 0; v < NV; v++)                                       \
                c[r][v] = (V){0};                                              \
        }                                                                      \
        for (int k0 = 0; k0 < kc; k0 += 16) {                                  \
            if (an)                                                            \
                for (int r = 0; r < MR; r++)                                   \
                    __builtin_prefetch(an + r * lda + k0);                     \
            int k1 = k0 + 16 < kc ? k0 + 16 : kc;                              \
            _Pragma("GCC unroll 4") for (int kk = k0; kk < k1; kk++)           \
            {                                                                  \
                V bv[NV];                                                      \
                for (int v = 0; v < NV; v++)                                   \
                    bv[v] = *(const BV *)(pb + v * VL);                        \
                for (int r = 0; r < MR; r++) {                                 \
                    float s = ar[r][kk];                                       \
                    for (int v = 0; v < NV; v++)                               \
                        c[r][v] += bv[v] * s;                                  \
                }                                                              \
                pb += STEP;                                                    \
            }                                                                  \
        }                                                                      \
        if (mr == MR && nr == NR) {                                            \
            for (int r = 0; r < MR; r++)                                       \
                for (int v = 0; v < NV; v++) {                                 \
                    VU *yp = (VU *)(y + r * ldy + v * VL);                     \
                    V t = c[r][v];                                             \
                    if (flags & F_ACC)                                         \
                        t += *yp;                                              \
                    if (flags & F_LAST) {                                      \
                        if (bias)                                              \
                            t += bias[r];                                      \
                        VI lt = lo > t, gt = hi < t;                           \
                        t = (V)(((VI)t & ~lt) | ((VI)((V){0} + lo) & lt));     \
                        t = (V)(((VI)t & ~gt) | ((VI)((V){0} + hi) & gt));     \
                    }                                                          \
                    *yp = t;                                                   \
                }                                                              \
        } else {                                                               \
            V tile[MR][NV];                                                    \
            for (int r = 0; r < MR; r++)                                       \
                for (int v = 0; v < NV; v++)                                   \
                    tile[r][v] = c[r][v];                                      \
            for (int r = 0; r < mr; r++) {                                     \
                const float *tr = (const float *)tile[r];                      \
                for (int j = 0; j < nr; j++) {                                 \
                    float t = tr[j];                                           \
                    if (flags & F_ACC)                                         \
                        t += y[r * ldy + j];                                   \
                    if (flags & F_LAST) {                                      \
                        if (bias)                                              \
                            t += bias[r];                                      \
                        t = lo > t ? lo : t;                                   \
                        t = hi < t ? hi : t;                                   \
                    }                                                          \
                    y[r * ldy + j] = t;                                        \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }

DEFINE_KERNEL(kernel_8x32, v16, v16i, v16u, 8, 2, v16, 32)
DEFINE_KERNEL(kernel_8x16, v16, v16i, v16u, 8, 1, v16, 32)
DEFINE_KERNEL(kernel_6x16, v8, v8i, v8u, 6, 2, v8, 16)
DEFINE_KERNEL(kernel_6x8, v8, v8i, v8u, 6, 1, v8, 16)
DEFINE_KERNEL(rows_8x32, v16, v16i, v16u, 8, 2, v16u, pbs)
DEFINE_KERNEL(rows_8x16, v16, v16i, v16u, 8, 1, v16u, pbs)
DEFINE_KERNEL(rows_6x16, v8, v8i, v8u, 6, 2, v8u, pbs)
DEFINE_KERNEL(rows_6x8, v8, v8i, v8u, 6, 1, v8u, pbs)

static struct {
    int mr, nr;
    int wide; /* AVX-512: 16-float vectors for the dot products (dot4_f32, dot_f32_zmm); else 8-float ones */
    kernel_fn kern, kern_half; /* MR x NR and MR x NR/2 */
    kernel_fn rows, rows_half; /* the same on B rows in place */
} K;

void gemm_init(void)
{
    int wide = 1;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    wide = __builtin_cpu_supports("avx512f");
#endif
    K.wide = wide;
    if (wide) {
        K.mr = 8;
        K.nr = 32;
        K.kern = kernel_8x32;
        K.kern_half = kernel_8x16;
        K.rows = rows_8x32;
        K.rows_half = rows_8x16;
    } else {
        K.mr = 6;
        K.nr = 16;
        K.kern = kernel_6x16;
        K.kern_half = kernel_6x8;
        K.rows = rows_6x16;
        K.rows_half = rows_6x8;
    }
}

/* ------------------------------------------------------------------------ */
/* B packing (implicit im2col)                                              */
/* ------------------------------------------------------------------------ */

#define KC_MAX 256   /* k block: a kc x NR panel of B is 32 KiB */
#define PANELS_MAX 8 /* NR-column panels per task chunk: B chunk in L2 */
#define RUNS_MAX 8   /* contiguous runs per panel copied as runs (else gathered element by element) */
#define DIRECT_STRIPS 3 /* MR-row strips per task up to which B rows in place are read unpacked */

/* d[c] = s[2c] for c < len, never reading past s[2(len-1)]: 8 at a time (a two-input shuffle of 16-float
 * vectors has no AVX2 form and became a spill-heavy sequence there). */
static inline void copy_stride2(float *d, const float *s, int len)
{
    const v8i even = {0, 2, 4, 6, 8, 10, 12, 14};
    int c = 0;
    for (; c + 8 < len; c += 8) /* reads s[2c .. 2c+15] < s[2(c+8)] */
        *(v8u *)(d + c) = __builtin_shuffle(*(const v8u *)(s + 2 * c), *(const v8u *)(s + 2 * c + 8), even);
    for (; c < len; c++)
        d[c] = s[2 * c];
}

/*
 * Gather rows koff[0..kc) and columns poff[0..ncols) of B into dst as
 * ceil(ncols/NR) micro-panels of kc x NR floats (zero padded), panel p at
 * dst + p * pstride.  A chunk that is one contiguous run of columns (1x1
 * convs) is copied with vector moves.  Otherwise each panel is split once
 * into segments of constant offset stride (one per output-image row that the
 * panel touches); with at most RUNS_MAX segments they are copied with memcpy
 * (stride 1), shuffles (stride 2) or a strided loop, else the panel is
 * gathered element-wise (small images with many rows per panel).
 */
/* One element of an 8-bit storage source as float32 minus its zero point. */
static inline float storage_value(const void *b, int kind, ptrdiff_t i, float zero)
{
    return (kind == 'B' ? (float)((const uint8_t *)b)[i] : (float)((const int8_t *)b)[i]) - zero;
}

/* pack_b for an 8-bit storage source (kind B or b): whole contiguous chunks convert in one loop
   (1x1 convolutions), anything else gathers element by element. */
MULTIVERSION static void pack_b_storage(float *dst, ptrdiff_t pstride, int NR, const void *b, int kind, float zero,
                                        const int64_t *koff, int kc, const int64_t *poff, int ncols)
{
    int np = (ncols + NR - 1) / NR;
    int dense = ncols == np * NR;
    for (ptrdiff_t c = 1; c < ncols && dense; c++)
        dense = poff[c] == poff[0] + c;
    for (int kk = 0; kk < kc; kk++) {
        const ptrdiff_t base = koff[kk] + poff[0];
        for (int p = 0; p < np; p++) {
            float *d = dst + p * pstride + (ptrdiff_t)kk * NR;
            int w = ncols - p * NR < NR ? ncols - p * NR : NR;
            if (dense && kind == 'B') {
                const uint8_t *s = (const uint8_t *)b + base + (ptrdiff_t)p * NR;
                for (int c = 0; c < NR; c++)
                    d[c] = (float)s[c] - zero;
            } else if (dense) {
                const int8_t *s = (const int8_t *)b + base + (ptrdiff_t)p * NR;
                for (int c = 0; c < NR; c++)
                    d[c] = (float)s[c] - zero;
            } else {
                const int64_t *po = poff + (ptrdiff_t)p * NR;
                for (int c = 0; c < w; c++)
                    d[c] = storage_value(b, kind, koff[kk] + po[c], zero);
                for (int c = w; c < NR; c++)
                    d[c] = 0.0f;
            }
        }
    }
}

MULTIVERSION static void pack_b(float *dst, ptrdiff_t pstride, int NR,
                                const float *b, const int64_t *koff, int kc,
                                const int64_t *poff, int ncols)
{
    enum { PM = PANELS_MAX };
    int np = (ncols + NR - 1) / NR;
    int nseg[PM], width[PM];
    int scol[PM][RUNS_MAX], slen[PM][RUNS_MAX];
    int64_t sstep[PM][RUNS_MAX];

    for (int p = 0; p < np; p++) {
        const int64_t *po = poff + (ptrdiff_t)p * NR;
        int w = ncols - p * NR < NR ? ncols - p * NR : NR, ns = 0;
        width[p] = w;
        for (int c = 0; c < w; c++) {
            if (ns > 0 && slen[p][ns - 1] == 1 && c == scol[p][ns - 1] + 1) {
                sstep[p][ns - 1] = po[c] - po[c - 1]; /* second element */
                slen[p][ns - 1]++;
            } else if (ns > 0 && po[c] - po[c - 1] == sstep[p][ns - 1]) {
                slen[p][ns - 1]++;
            } else if (ns < RUNS_MAX) {
                scol[p][ns] = c;
                slen[p][ns] = 1;
                sstep[p][ns] = 1;
                ns++;
            } else {
                ns = RUNS_MAX + 1; /* too fragmented: gather */
                break;
            }
        }
        nseg[p] = ns;
    }
    int dense = 1; /* every panel full and the chunk one contiguous run */
    for (int p = 0; p < np; p++)
        dense &= nseg[p] == 1 && sstep[p][0] == 1 && width[p] == NR &&
                 poff[(ptrdiff_t)p * NR] == poff[0] + (ptrdiff_t)p * NR;
    if (dense) {
        for (int kk = 0; kk < kc; kk++) {
            const float *src = b + koff[kk] + poff[0];
            float *d = dst + (ptrdiff_t)kk * NR;
            for (int p = 0; p < np; p++, src += NR, d += pstride)
                for (int j = 0; j < NR; j += 16)
                    *(v16 *)(d + j) = *(const v16u *)(src + j);
        }
        return;
    }
    for (int kk = 0; kk < kc; kk++) {
        const float *src = b + koff[kk];
        for (int p = 0; p < np; p++) {
            float *d = dst + p * pstride + (ptrdiff_t)kk * NR;
            const int64_t *po = poff + (ptrdiff_t)p * NR;
            int w = width[p];
            if (nseg[p] <= RUNS_MAX) {
                for (int r = 0; r < nseg[p]; r++) {
                    int c0 = scol[p][r], len = slen[p][r];
                    const float *s = src + po[c0];
                    int64_t step = sstep[p][r];
                    if (step == 1) { /* a run within one panel (at most NR): inline vector copies, no call */
                        int c = 0;
                        for (; c + 8 <= len; c += 8)
                            *(v8u *)(d + c0 + c) = *(const v8u *)(s + c);
                        for (; c < len; c++)
                            d[c0 + c] = s[c];
                    } else if (step == 2)
                        copy_stride2(d + c0, s, len);
                    else
                        for (int c = 0; c < len; c++)
                            d[c0 + c] = s[c * step];
                }
            } else {
                for (int c = 0; c < w; c++)
                    d[c] = src[po[c]];
            }
            for (int c = w; c < NR; c++)
                d[c] = 0.0f;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    const float *a, *b, *bias;
    const void *bstore; /* with bkind B or b: B given as 8-bit storage minus bzero (b unused) */
    int bkind;
    float bzero;
    const int64_t *koff, *poff;
    float *y;
    ptrdiff_t m, k, n;
    float lo, hi;
    int kc, nkb;             /* k block size and count */
    ptrdiff_t ntile;         /* columns [0, ntile) tiled, the rest dots */
    ptrdiff_t bstep;         /* float B whose tiled columns lie in place as rows bstep apart, else 0 */
    ptrdiff_t npm, npn;      /* MR-row / NR-column panels */
    int cm, cn;              /* task grid */
    atomic_int fail;         /* scratch allocation failed */
    gemm_epilogue epilogue;  /* called on every finished block of y, or NULL */
    void *ectx;
} job_t;

/* Start of part i when splitting `total` into `parts` near-equal parts. */
static ptrdiff_t split(ptrdiff_t total, int parts, int i)
{
    return total * i / parts;
}

/* sum_j x[j] * z[j], in a fixed order that depends only on k. */
/*
 * DEFINE_DOT(NAME, V, VU): sum_j x[j] z[j] as four 16-float sums over blocks of 64 (then one over blocks of
 * 16), added pairwise and then lane by lane, then the tail one by one. Each 16-float sum is 16 / lanes(V)
 * vectors of V: with 8-float vectors on AVX2 (16-float ones became spills and inserts there), 16-float ones
 * with AVX-512; the same lanes in the same order, so the same value.
 */
#define DEFINE_DOT(NAME, V, VU)                                                                        \
    MULTIVERSION static float NAME(const float *x, const float *z, ptrdiff_t k)                        \
    {                                                                                                  \
        enum { VL = sizeof(V) / sizeof(float), H = 16 / VL };                                          \
        V s[4][H];                                                                                     \
        _Pragma("GCC unroll 8") for (int q = 0; q < 4 * H; q++) s[q / H][q % H] = (V){0};            \
        ptrdiff_t j = 0;                                                                               \
        for (; j + 64 <= k; j += 64)                                                                   \
            _Pragma("GCC unroll 8") for (int q = 0; q < 4 * H; q++)                                  \
                s[q / H][q % H] += *(const VU *)(x + j + VL * q) * *(const VU *)(z + j + VL * q);      \
        for (; j + 16 <= k; j += 16)                                                                   \
            _Pragma("GCC unroll 2") for (int h = 0; h < H; h++)                                       \
                s[0][h] += *(const VU *)(x + j + VL * h) * *(const VU *)(z + j + VL * h);              \
        float r = 0.0f;                                                                                \
        for (int h = 0; h < H; h++) {                                                                  \
            const V v = (s[0][h] + s[1][h]) + (s[2][h] + s[3][h]);                                     \
            for (int l = 0; l < VL; l++)                                                               \
                r += v[l];                                                                             \
        }                                                                                              \
        for (; j < k; j++)                                                                             \
            r += x[j] * z[j];                                                                          \
        return r;                                                                                      \
    }
DEFINE_DOT(dot_f32_zmm, v16, v16u)
DEFINE_DOT(dot_f32_ymm, v8, v8u)

/* dot_f32_zmm with AVX-512, else dot_f32_ymm: the same value. */
static float dot_f32(const float *x, const float *z, ptrdiff_t k)
{
    return K.wide ? dot_f32_zmm(x, z, k) : dot_f32_ymm(x, z, k);
}

/* dot_f32 of four rows x[0..3] with one z (loaded once for the four), each summed in dot_f32's order. */
MULTIVERSION static void dot4_f32(const float *const x[4], const float *z, ptrdiff_t k, float r[4])
{
    v16 s[4][4] = {{{0}}};
    ptrdiff_t j = 0;
    for (; j + 64 <= k; j += 64)
        for (int q = 0; q < 4; q++) {
            const v16 z0 = *(const v16u *)(z + j + 16 * q);
            for (int t = 0; t < 4; t++)
                s[t][q] += *(const v16u *)(x[t] + j + 16 * q) * z0;
        }
    for (; j + 16 <= k; j += 16) {
        const v16 z0 = *(const v16u *)(z + j);
        for (int t = 0; t < 4; t++)
            s[t][0] += *(const v16u *)(x[t] + j) * z0;
    }
    for (int t = 0; t < 4; t++) {
        const v16 v = (s[t][0] + s[t][1]) + (s[t][2] + s[t][3]);
        float sum = 0.0f;
        for (int l = 0; l < 16; l++)
            sum += v[l];
        for (ptrdiff_t i = j; i < k; i++)
            sum += x[t][i] * z[i];
        r[t] = sum;
    }
}

void gemm_dot_column(const float *a, ptrdiff_t m, ptrdiff_t k, const float *col, const float *bias, float lo,
                     float hi, float *y, ptrdiff_t ldy)
{
    for (ptrdiff_t i = 0; i < m; i += 4) {
        float v[4];
        if (i + 4 <= m && K.wide) {
            const float *const rows[4] = {a + i * k, a + (i + 1) * k, a + (i + 2) * k, a + (i + 3) * k};
            dot4_f32(rows, col, k, v);
        } else {
            for (ptrdiff_t t = 0; t < 4 && i + t < m; t++)
                v[t] = dot_f32(a + (i + t) * k, col, k);
        }
        for (ptrdiff_t t = 0; t < 4 && i + t < m; t++) {
            float w = v[t];
            if (bias)
                w += bias[i + t];
            w = lo > w ? lo : w;
            w = hi < w ? hi : w;
            y[(i + t) * ldy] = w;
        }
    }
}

/*
 * Columns [ntile, n) (fewer than half a panel: e.g. the 49th column of a 7x7
 * image, or all of a fully connected layer with n = 1) would waste most of a
 * tile, so for rows [i0, i1) each is computed as plain dot products of rows
 * of A with the gathered column (bc: scratch of k * (n - ntile) floats).
 */
static void dot_columns(const job_t *J, ptrdiff_t i0, ptrdiff_t i1, float *bc, float *y, ptrdiff_t ldy)
{
    ptrdiff_t k = J->k, nd = J->n - J->ntile;
    for (ptrdiff_t p = 0; p < nd; p++)
        for (ptrdiff_t j = 0; j < k; j++)
            bc[p * k + j] = J->bkind ? storage_value(J->bstore, J->bkind, J->koff[j] + J->poff[J->ntile + p], J->bzero)
                                     : J->b[J->koff[j] + J->poff[J->ntile + p]];
    for (ptrdiff_t p = 0; p < nd; p++)
        gemm_dot_column(J->a + i0 * k, i1 - i0, k, bc + p * k, J->bias ? J->bias + i0 : NULL, J->lo, J->hi,
                        y + i0 * ldy + p, ldy);
}

static void gemm_task(void *ctx, int t)
{
    job_t *J = ctx;
    const int MR = K.mr, NR = K.nr;
    int ti = t % J->cm, tj = t / J->cm; /* tasks in column order: the pool's shares are runs of columns */
    ptrdiff_t r0 = split(J->npm, J->cm, ti), r1 = split(J->npm, J->cm, ti + 1);
    ptrdiff_t c0 = split(J->npn, J->cn, tj), c1 = split(J->npn, J->cn, tj + 1);
    int dots = tj == J->cn - 1 && J->ntile < J->n;
    if (r0 == r1 || (c0 == c1 && !dots))
        return;
    ptrdiff_t q0 = c0 * NR;
    int ncols = (int)((c1 * NR < J->ntile ? c1 * NR : J->ntile) - q0);
    const ptrdiff_t i1 = r1 * MR < J->m ? r1 * MR : J->m;
    /* Panels are padded by one cache line so that they do not all map to the
       same L1 sets while being written. */
    ptrdiff_t pstride = (ptrdiff_t)J->kc * NR + 16;
    size_t pbsize = (size_t)pstride * (size_t)(c1 - c0);
    float *pb = scratch_get(pbsize + (dots ? (size_t)(J->k * (J->n - J->ntile)) : 0));
    /* With an epilogue the sums go to a block of this thread's own (cache-resident) buffer, rows
       [r0 * MR, i1) by the task's columns, and only the epilogue's result reaches memory; else to y. */
    const ptrdiff_t ndots = dots ? J->n - J->ntile : 0, ldy = J->epilogue ? ncols + ndots : J->n;
    float *block = J->epilogue ? scratch_slot(SCRATCH_TILE, (size_t)((i1 - r0 * MR) * ldy))
                               : J->y + r0 * MR * J->n + q0;
    if (!pb || !block) {
        atomic_store(&J->fail, 1);
        return;
    }
    /* A few strips read B where it lies rather than packed: packing would cost more than it saves. */
    const int direct = J->bstep > 0 && r1 - r0 <= DIRECT_STRIPS;
    const ptrdiff_t full = ncols / NR; /* whole panels of the chunk */
    for (int kb = 0; kb < J->nkb && c0 < c1; kb++) {
        ptrdiff_t k0 = (ptrdiff_t)kb * J->kc;
        int kc = (int)(J->k - k0 < J->kc ? J->k - k0 : J->kc);
        int flags = (kb > 0 ? F_ACC : 0) | (kb == J->nkb - 1 ? F_LAST : 0);
        if (J->bkind)
            pack_b_storage(pb, pstride, NR, J->bstore, J->bkind, J->bzero, J->koff + k0, kc, J->poff + q0, ncols);
        else if (!direct)
            pack_b(pb, pstride, NR, J->b, J->koff + k0, kc, J->poff + q0, ncols);
        else if (ncols > full * NR) /* in place but the last, partial panel */
            pack_b(pb, pstride, NR, J->b, J->koff + k0, kc, J->poff + q0 + full * NR, (int)(ncols - full * NR));
        for (ptrdiff_t ip = r0; ip < r1; ip++) {
            ptrdiff_t i = ip * MR;
            int mr = (int)(J->m - i < MR ? J->m - i : MR);
            const float *ai = J->a + i * J->k + k0;
            const float *bias = J->bias ? J->bias + i : NULL;
            /* A strip needed after this one (prefetched during the first
               panel): the next strip, else the first strip of the next
               k block. */
            const float *an = NULL;
            if (ip + 1 < r1 && (ip + 1) * MR + MR <= J->m)
                an = ai + MR * J->k;
            else if (ip + 1 == r1 && kb + 1 < J->nkb && r0 * MR + MR <= J->m)
                an = J->a + r0 * MR * J->k + k0 + kc;
            for (ptrdiff_t jp = c0; jp < c1; jp++) {
                ptrdiff_t q = jp * NR;
                int nr = (int)(J->ntile - q < NR ? J->ntile - q : NR);
                const int in_place = direct && jp - c0 < full;
                kernel_fn kern = in_place ? (nr <= NR / 2 ? K.rows_half : K.rows) : nr <= NR / 2 ? K.kern_half : K.kern;
                kern(kc, ai, J->k, mr, jp == c0 ? an : NULL,
                     in_place ? J->b + J->koff[k0] + J->poff[q] : direct ? pb : pb + (jp - c0) * pstride,
                     in_place ? J->bstep : NR, block + (i - r0 * MR) * ldy + (q - q0), ldy, nr, flags, bias, J->lo,
                     J->hi);
            }
        }
    }
    if (dots)
        dot_columns(J, r0 * MR, i1, pb + pbsize, block + ncols - r0 * MR * ldy, ldy);
    if (J->epilogue)
        J->epilogue(J->ectx, block, ldy, r0 * MR, i1, q0, q0 + ncols + ndots);
}

/* koff[j] = koff[0] + j * step and poff[p] = poff[0] + p for the tiled columns (a 1x1 convolution's B rows, read
   in place): the step (any positive value when k == 1), else 0. */
static ptrdiff_t in_place_step(const int64_t *koff, ptrdiff_t k, const int64_t *poff, ptrdiff_t ntile)
{
    const ptrdiff_t step = k > 1 ? koff[1] - koff[0] : 1;
    if (step <= 0)
        return 0;
    for (ptrdiff_t j = 2; j < k; j++)
        if (koff[j] - koff[j - 1] != step)
            return 0;
    for (ptrdiff_t p = 1; p < ntile; p++)
        if (poff[p] != poff[0] + p)
            return 0;
    return step;
}

/*
 * Choose the task grid (cm row chunks x cn column chunks) for nt threads.
 * Column chunks hold at most PANELS_MAX panels so the packed B chunk stays in
 * L2.  Cost model (in micro-kernel k-step units): a task costs its tiles,
 * plus gathering its B chunk (repeated for every row chunk), plus streaming
 * its rows of A (repeated for every column chunk), plus a fixed overhead; the span is estimated as
 * ceil(tasks / nt) * (largest task).  Ties keep the smaller grid.
 */
static void plan_grid(job_t *J, int nt)
{
    const double PACK = 0.5, AREAD = 0.5, TASK = 200.0;
    ptrdiff_t cn_min = (J->npn + PANELS_MAX - 1) / PANELS_MAX;
    J->cm = 1;
    J->cn = (int)cn_min;
    if (nt <= 1)
        return;
    int lim = 4 * nt < 64 ? 4 * nt : 64; /* bounds the search */
    ptrdiff_t cm_max = J->npm < lim ? J->npm : lim;
    ptrdiff_t cn_max = cn_min + lim < J->npn ? cn_min + lim : J->npn;
    double best = -1;
    for (ptrdiff_t cm = 1; cm <= cm_max; cm++) {
        for (ptrdiff_t cn = cn_min; cn <= cn_max; cn++) {
            double rows = (double)((J->npm + cm - 1) / cm);
            double cols = (double)((J->npn + cn - 1) / cn);
            double task =
                (rows * cols + cols * PACK + rows * AREAD) * (double)J->k + TASK;
            double span = (double)((cm * cn + nt - 1) / nt) * task;
            if (best < 0 || span < best * 0.999) {
                best = span;
                J->cm = (int)cm;
                J->cn = (int)cn;
            }
        }
    }
}

#define SERIAL_MACS 1000000.0 /* below this (about 20 us of work), run on the calling thread */

ptrdiff_t gemm_tiled_columns(ptrdiff_t k, ptrdiff_t n)
{
    /* Whole half-panels (NR/2) are tiled, the last partial one too unless its columns cost less as dot
       products (see dot_columns): per row, about k / 2 cycles for the tile (one FMA per k step) against
       rem * (k / (2 * 16) + 30) for the dots (16 lanes, then a 16-lane sum). */
    const ptrdiff_t H = K.nr / 2;
    ptrdiff_t nh = n / H, rem = n % H;
    if (2 * rem >= H || (double)rem * ((double)k / 32.0 + 30.0) >= (double)k / 2.0)
        nh++;
    return nh * H < n ? nh * H : n;
}

/* The k blocks of a GEMM: count and size (the last may be shorter); they depend on k alone. */
static void k_blocks(ptrdiff_t k, int *nkb, int *kc)
{
    *nkb = (int)((k + KC_MAX - 1) / KC_MAX);
    if (*nkb < 1)
        *nkb = 1;
    *kc = (int)((k + *nkb - 1) / *nkb);
}

size_t gemm_packed_floats(ptrdiff_t k, ptrdiff_t n)
{
    int nkb, kc;
    k_blocks(k, &nkb, &kc);
    return (size_t)nkb * (size_t)((n + K.nr - 1) / K.nr) * (size_t)((ptrdiff_t)kc * K.nr + 16);
}

MULTIVERSION void gemm_pack(float *pb, const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n)
{
    const int NR = K.nr;
    int nkb, kc;
    k_blocks(k, &nkb, &kc);
    const ptrdiff_t np = (n + NR - 1) / NR, pstride = (ptrdiff_t)kc * NR + 16;
    for (ptrdiff_t j = 0; j < k; j++) {
        const ptrdiff_t kb = j / kc;
        const float *src = b + j * ldb;
        float *d = pb + kb * np * pstride + (j - kb * kc) * NR;
        for (ptrdiff_t p = 0; p < np; p++, src += NR, d += pstride) {
            const ptrdiff_t w = n - p * NR < NR ? n - p * NR : NR;
            memcpy(d, src, sizeof(float) * (size_t)w);
            memset(d + w, 0, sizeof(float) * (size_t)(NR - w));
        }
    }
}

void gemm_packed(const float *a, const float *pb, const float *bias, float *y, ptrdiff_t ldy, ptrdiff_t m,
                 ptrdiff_t k, ptrdiff_t n, ptrdiff_t tiled, float lo, float hi, const float *next)
{
    const int MR = K.mr, NR = K.nr;
    int nkb, kc;
    k_blocks(k, &nkb, &kc);
    const ptrdiff_t np = (n + NR - 1) / NR, pstride = (ptrdiff_t)kc * NR + 16;
    for (int kb = 0; kb < nkb; kb++) {
        const ptrdiff_t k0 = (ptrdiff_t)kb * kc;
        const int kcb = (int)(k - k0 < kc ? k - k0 : kc);
        const int flags = (kb > 0 ? F_ACC : 0) | (kb == nkb - 1 ? F_LAST : 0);
        for (ptrdiff_t i = 0; i < m; i += MR) {
            const int mr = (int)(m - i < MR ? m - i : MR);
            /* the A strip needed next, prefetched during the first panel: the next strip of this k block, else
               the first of the next one, else the caller's next rows */
            const float *an = i + MR < m ? a + (i + MR) * k + k0 : kb + 1 < nkb ? a + k0 + kc : next;
            for (ptrdiff_t jp = 0; jp * NR < tiled; jp++) {
                const int nr = (int)(tiled - jp * NR < NR ? tiled - jp * NR : NR);
                kernel_fn kern = nr <= NR / 2 ? K.kern_half : K.kern;
                kern(kcb, a + i * k + k0, k, mr, jp == 0 ? an : NULL, pb + (kb * np + jp) * pstride, NR,
                     y + i * ldy + jp * NR, ldy, nr, flags, bias ? bias + i : NULL, lo, hi);
            }
        }
    }
}

static int job_run(job_t *J)
{
    J->ntile = gemm_tiled_columns(J->k, J->n);
    J->npm = (J->m + K.mr - 1) / K.mr;
    J->npn = (J->ntile + K.nr - 1) / K.nr;
    k_blocks(J->k, &J->nkb, &J->kc);
    atomic_store(&J->fail, 0);
    int nt = pool_get_threads();
    if ((double)J->m * (double)J->k * (double)J->n < SERIAL_MACS)
        nt = 1;
    if (J->npn == 0) { /* dot products only: split rows */
        J->cm = (int)(J->npm < 4 * nt ? J->npm : 4 * nt);
        J->cn = 1;
    } else {
        plan_grid(J, nt);
    }
    /* B in place only where some task has few enough strips to read it so (the check scans koff and poff) */
    J->bstep = J->bkind || J->npm / J->cm > DIRECT_STRIPS ? 0 : in_place_step(J->koff, J->k, J->poff, J->ntile);
    int tasks = J->cm * J->cn;
    if (nt == 1 || tasks == 1) {
        for (int t = 0; t < tasks; t++)
            gemm_task(J, t);
    } else {
        pool_run(tasks, gemm_task, J);
    }
    return atomic_load(&J->fail) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Python bindings                                                          */
/* ------------------------------------------------------------------------ */

int gemm_run(const float *a, const void *b, int b_kind, float b_zero, const int64_t *koff, const int64_t *poff,
             const float *bias, float *y, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, float lo, float hi,
             gemm_epilogue epilogue, void *ectx)
{
    if (m <= 0 || n <= 0)
        return 0;
    job_t J = {.a = a, .b = b_kind == 'f' ? b : NULL, .bstore = b, .bkind = b_kind == 'f' ? 0 : b_kind,
               .bzero = b_zero, .bias = bias, .koff = koff, .poff = poff, .y = y, .m = m, .k = k, .n = n,
               .lo = lo, .hi = hi, .epilogue = epilogue, .ectx = ectx};
    return job_run(&J);
}

static int min_max_i64(const int64_t *v, Py_ssize_t len, int64_t *mn,
                       int64_t *mx)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (Py_ssize_t i = 0; i < len; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    *mn = lo;
    *mx = hi;
    return len > 0;
}

const char *gemm_check(const Py_buffer *a, const Py_buffer *b, Py_ssize_t b_size, const Py_buffer *ko,
                       const Py_buffer *po, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n)
{
    Py_ssize_t mk, mn;
    if (m < 0 || k < 0 || n < 0)
        return "m, k, n must be >= 0";
    if (__builtin_mul_overflow(m, k, &mk) || __builtin_mul_overflow(m, n, &mn) || mk > PY_SSIZE_T_MAX / 4 ||
        mn > PY_SSIZE_T_MAX / 4)
        return "m*k or m*n too large";
    if (a && a->len < mk * 4)
        return "a is too small (need m*k float32)";
    if (ko->len < k * 8)
        return "koff is too small (need k int64)";
    if (po->len < n * 8)
        return "poff is too small (need n int64)";
    if (k > INT32_MAX || n > INT32_MAX)
        return "k and n must fit in 32 bits";
    if (k > 0 && n > 0 && m > 0) {
        int64_t kmin, kmax, pmin, pmax, smin, smax;
        min_max_i64(ko->buf, k, &kmin, &kmax);
        min_max_i64(po->buf, n, &pmin, &pmax);
        if (__builtin_add_overflow(kmin, pmin, &smin) || __builtin_add_overflow(kmax, pmax, &smax) || smin < 0 ||
            smax >= (int64_t)(b->len / b_size))
            return "koff/poff index out of range of b";
    }
    return NULL;
}

const char conv_gemm_doc[] =
"conv_gemm(a, b, koff, poff, bias, y, m, k, n, lo, hi[, residual, act, alpha, beta, slopes, post])\n\n"
"y[i*n+p] = clamp(sum_j a[i*k+j] * b[koff[j]+poff[p]] + bias[i], lo, hi)\n"
"a: float32 (m,k) C-contiguous; b: float32 buffer; koff: int64 (k,);\n"
"poff: int64 (n,); bias: float32 (m,) or None; y: writable float32 (m,n).\n"
"With residual (float32 (m,n)) it is added after the bias; act 1 (HardSigmoid alpha, beta),\n"
"2 (HardSwish) or 3 (PRelu: float32 slopes, row i uses slopes[i % len]) replaces the clamp\n"
"(native/post.h); post: float32 (code, value) pairs, 0 Mul / 1 Add, applied after it.\n"
"NaN propagates through the clamp.  Releases the GIL.";

/* The float epilogue on a finished block (see post.h). */
typedef struct {
    float_post post;
    float *y;
    ptrdiff_t n;
} post_ctx;

static void post_block(void *ctx, const float *block, ptrdiff_t ld, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t p0,
                       ptrdiff_t p1)
{
    const post_ctx *c = ctx;
    for (ptrdiff_t i = i0; i < i1; i++)
        post_apply(&c->post, block + (i - i0) * ld, c->y, c->n, i, p0, p1);
}

PyObject *py_conv_gemm(PyObject *self, PyObject *args)
{
    Py_buffer a, b, ko, po, y, bi = {0};
    post_buffers held;
    PyObject *bias_obj, *residual = NULL, *slopes = NULL, *post_ops = NULL;
    Py_ssize_t m, k, n;
    double lo, hi, alpha = 0.0, beta = 0.0;
    int act = ACT_CLAMP;
    post_ctx post;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*y*y*Ow*nnndd|OiddOO", &a, &b, &ko, &po, &bias_obj, &y, &m, &k, &n, &lo, &hi,
                          &residual, &act, &alpha, &beta, &slopes, &post_ops))
        return NULL;
    const char *err = NULL;
    int have_bias = bias_obj != Py_None;
    if (!parse_post(residual, act, lo, hi, alpha, beta, slopes, post_ops, &held, m * n, &post.post)) {
        have_bias = 0;
        err = "";
    } else if (have_bias && PyObject_GetBuffer(bias_obj, &bi, PyBUF_SIMPLE) < 0) {
        have_bias = 0;
        bi.obj = NULL;
        err = "";
    } else if ((err = gemm_check(&a, &b, 4, &ko, &po, m, k, n)) == NULL) {
        if (y.len / 4 < m * n)
            err = "y is too small (need m*n float32)";
        else if (have_bias && bi.len < m * 4)
            err = "bias is too small (need m float32)";
    }
    if (err) {
        if (*err)
            PyErr_SetString(PyExc_ValueError, err);
    } else if (m > 0 && n > 0) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        if (post.post.residual || post.post.act != ACT_CLAMP || post.post.npost) {
            post.y = y.buf;
            post.n = n;
            rc = gemm_run(a.buf, b.buf, 'f', 0.0f, ko.buf, po.buf, have_bias ? bi.buf : NULL, NULL, m, k, n, -INFINITY,
                          INFINITY, post_block, &post);
        } else {
            rc = gemm_run(a.buf, b.buf, 'f', 0.0f, ko.buf, po.buf, have_bias ? bi.buf : NULL, y.buf, m, k, n,
                          (float)lo, (float)hi, NULL, NULL);
        }
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            PyErr_NoMemory();
            err = "";
        }
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&ko);
    PyBuffer_Release(&po);
    PyBuffer_Release(&y);
    if (bi.obj)
        PyBuffer_Release(&bi);
    release_post(&held);
    if (err)
        return NULL;
    Py_RETURN_NONE;
}
