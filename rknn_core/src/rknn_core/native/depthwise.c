/*
 * Planes and depthwise sums for the compiled kernels.
 *
 * Planes are computed 16 at a time with their channels interleaved (group_sums): the 16 planes are
 * transposed into one zero-bordered grid of 16-float pixels, every tap of every output is then one
 * aligned vector multiply-add whatever the stride, dilation or plane width, and the sums are transposed
 * back. Small planes (7x7, 14x14) fill whole vectors that way, and strides cost no phase split. Wide
 * output rows of a 3x3 kernel keep row kernels over one plane (dw_plane_wide). Either way each output
 * adds its bias and then its taps in row-major order, so float results do not depend on the path. On CPUs
 * with AVX2 but no AVX-512 the group kernels are explicit AVX2 code (each 16-float pixel as two halves, 8x8
 * transposes) that computes the x86-64-v3 clones' floats bit for bit without their spills.
 */
#include "depthwise.h"

#include "clones.h"

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* The row kernels: 8-float vectors suit their rows (whole vectors at 56 and 112 columns). */
#define ROWS __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MULTIVERSION
#define ROWS
#endif

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64)));

void dw_padded_size(geometry *g)
{
    g->ph = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    g->pw = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define BYTES_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

/* 8-bit storage minus the zero point as float32, 16 at a time with a masked last block: short rows (a 56-wide
 * plane row) have no scalar tail, which took most of the conversion's time (same values as the plain loop). */
BYTES_AVX512 static void center_bytes_avx512(const void *src, int is_signed, ptrdiff_t count, float z,
                                             float *restrict out)
{
    const __m512 zero = _mm512_set1_ps(z);
    for (ptrdiff_t i = 0; i < count; i += 16) {
        const __mmask16 lanes = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        const __m128i b = _mm_maskz_loadu_epi8(lanes, (const char *)src + i);
        const __m512i v = is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
        _mm512_mask_storeu_ps(out + i, lanes, _mm512_sub_ps(_mm512_cvtepi32_ps(v), zero));
    }
}

static int bytes_avx512(void)
{
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl");
    }
    return known;
}
#else
static int bytes_avx512(void) { return 0; }
static void center_bytes_avx512(const void *src, int is_signed, ptrdiff_t count, float z, float *out)
{
    (void)src, (void)is_signed, (void)count, (void)z, (void)out;
}
#endif

MULTIVERSION void center_plane(const void *x, int kind, ptrdiff_t offset, ptrdiff_t count, long long zero,
                               float *restrict out)
{
    const float z = (float)zero;
    if (kind == 'f') {
        memcpy(out, (const float *)x + offset, sizeof(float) * (size_t)count);
    } else if ((kind == 'B' || kind == 'b') && bytes_avx512()) {
        center_bytes_avx512((const char *)x + offset, kind == 'b', count, z, out);
    } else if (kind == 'B') {
        const uint8_t *restrict src = (const uint8_t *)x + offset;
        for (ptrdiff_t i = 0; i < count; i++)
            out[i] = (float)src[i] - z;
    } else if (kind == 'b') {
        const int8_t *restrict src = (const int8_t *)x + offset;
        for (ptrdiff_t i = 0; i < count; i++)
            out[i] = (float)src[i] - z;
    } else {
        const int16_t *restrict src = (const int16_t *)x + offset;
        for (ptrdiff_t i = 0; i < count; i++)
            out[i] = (float)src[i] - z;
    }
}

void pad_plane(const void *x, int kind, ptrdiff_t offset, long long zero, float *p, const geometry *g)
{
    for (ptrdiff_t pr = 0; pr < g->ph; pr++) {
        float *row = p + pr * g->pw;
        const ptrdiff_t r = pr - g->pt;
        ptrdiff_t c0 = g->pl < 0 ? -g->pl : 0, c1 = g->w; /* the input columns that land in the row */
        if (c1 + g->pl > g->pw)
            c1 = g->pw - g->pl;
        if (r < 0 || r >= g->h || c1 <= c0) {
            memset(row, 0, sizeof(float) * (size_t)g->pw);
            continue;
        }
        memset(row, 0, sizeof(float) * (size_t)(c0 + g->pl));
        center_plane(x, kind, offset + r * g->w + c0, c1 - c0, zero, row + c0 + g->pl);
        memset(row + c1 + g->pl, 0, sizeof(float) * (size_t)(g->pw - c1 - g->pl));
    }
}

/* Wide output rows of a 3x3 kernel (stride 1 or 2, no dilation) go through row kernels instead, whose
 * loads are contiguous along a row: the whole-plane sweep would spend more on building phases and on
 * per-row epilogues than on the taps. */
static int wide_3x3(const geometry *g)
{
    return g->kh == 3 && g->kw == 3 && g->ow >= 16 && g->dh == 1 && g->dw == 1 && g->sh == g->sw &&
           (g->sh == 1 || g->sh == 2);
}

/* 3x3, stride 1, over a zero-bordered plane p (ph x pw): one fused pass per output row. */
ROWS static void dw_plane3x3(const float *restrict p, const float *restrict k, float bias, float *restrict y,
                                     const geometry *g)
{
    const ptrdiff_t pw = g->pw, ow = g->ow;
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    for (ptrdiff_t r = 0; r < g->oh; r++) {
        const float *restrict r0 = p + r * pw;
        const float *restrict r1 = r0 + pw;
        const float *restrict r2 = r1 + pw;
        float *restrict yrow = y + r * ow;
        for (ptrdiff_t c = 0; c < ow; c++) {
            const ptrdiff_t b = c;
            float acc = bias;
            acc += k0 * r0[b];
            acc += k1 * r0[b + 1];
            acc += k2 * r0[b + 2];
            acc += k3 * r1[b];
            acc += k4 * r1[b + 1];
            acc += k5 * r1[b + 2];
            acc += k6 * r2[b];
            acc += k7 * r2[b + 1];
            acc += k8 * r2[b + 2];
            yrow[c] = acc;
        }
    }
}

/* Padded row pr of a stride-2 plane (at element `offset` of x, read as center_plane does: 16-bit storage
 * through the row buffer `centered`, 8-bit storage centered while it is split) as its even then its odd
 * columns. */
static inline void split_row(const void *x, int kind, ptrdiff_t offset, long long zero, ptrdiff_t pr,
                             float *restrict centered, float *restrict even, const geometry *g)
{
    const ptrdiff_t pw = g->pw, half = (pw + 1) / 2, r = pr - g->pt;
    float *restrict odd = even + half;
    memset(even, 0, sizeof(float) * (size_t)pw);
    if (r < 0 || r >= g->h)
        return;
    const float *restrict src = (const float *)x + offset + r * g->w;
    if (kind == 'h') {
        center_plane(x, kind, offset + r * g->w, g->w, zero, centered);
        src = centered;
    }
    /* padded column q = 2c + parity reads input column q - pl when that lies in [0, w); 8-bit storage is
       centered on the way (as center_plane does it: the integer as a float, minus the zero point) */
    const float z = (float)zero;
    for (int parity = 0; parity < 2; parity++) {
        float *restrict dst = parity ? odd : even;
        ptrdiff_t span = g->w - 1 + g->pl - parity; /* last readable q - parity; may be negative */
        ptrdiff_t first = (g->pl - parity + 1) / 2, last = span < 0 ? 0 : span / 2 + 1;
        ptrdiff_t count = parity ? pw / 2 : half;
        first = first < 0 ? 0 : first;
        last = last > count ? count : last;
        const ptrdiff_t at = offset + r * g->w + parity - g->pl;
        if (kind == 'B') {
            const uint8_t *restrict s0 = (const uint8_t *)x + at;
            for (ptrdiff_t c = first; c < last; c++)
                dst[c] = (float)s0[2 * c] - z;
        } else if (kind == 'b') {
            const int8_t *restrict s0 = (const int8_t *)x + at;
            for (ptrdiff_t c = first; c < last; c++)
                dst[c] = (float)s0[2 * c] - z;
        } else {
            const float *restrict s0 = src + parity - g->pl;
            for (ptrdiff_t c = first; c < last; c++)
                dst[c] = s0[2 * c];
        }
    }
}

/* 3x3, stride 2: each row of the padded plane is split into its even then its odd columns (a ring of
 * three such rows in `split`, each row split once), so that every load of the main loop is contiguous. */
ROWS static void dw_plane3x3s2(const void *x, int kind, ptrdiff_t offset, long long zero, float *restrict split,
                               const float *restrict k, float bias, float *restrict y, const geometry *g)
{
    float *restrict centered = split + 3 * g->pw;
    const ptrdiff_t pw = g->pw, ow = g->ow, half = (pw + 1) / 2;
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    split_row(x, kind, offset, zero, 0, centered, split, g);
    for (ptrdiff_t r = 0; r < g->oh; r++) {
        split_row(x, kind, offset, zero, 2 * r + 1, centered, split + (2 * r + 1) % 3 * pw, g);
        split_row(x, kind, offset, zero, 2 * r + 2, centered, split + (2 * r + 2) % 3 * pw, g);
        const float *restrict e0 = split + 2 * r % 3 * pw, *restrict o0 = e0 + half;
        const float *restrict e1 = split + (2 * r + 1) % 3 * pw, *restrict o1 = e1 + half;
        const float *restrict e2 = split + (2 * r + 2) % 3 * pw, *restrict o2 = e2 + half;
        float *restrict yrow = y + r * ow;
        for (ptrdiff_t c = 0; c < ow; c++) {
            float acc = bias;
            acc += k0 * e0[c];
            acc += k1 * o0[c];
            acc += k2 * e0[c + 1];
            acc += k3 * e1[c];
            acc += k4 * o1[c];
            acc += k5 * e1[c + 1];
            acc += k6 * e2[c];
            acc += k7 * o2[c];
            acc += k8 * e2[c + 1];
            yrow[c] = acc;
        }
    }
}

/* The sums of one plane of a wide_3x3 geometry as dense rows of ow, into out. */
static void dw_plane_wide(const void *x, int kind, ptrdiff_t offset, long long zero, const float *k, float bias,
                          float *scratch, float *out, const geometry *g)
{
    if (g->sh == 1) {
        pad_plane(x, kind, offset, zero, scratch, g);
        dw_plane3x3(scratch, k, bias, out, g);
    } else {
        dw_plane3x3s2(x, kind, offset, zero, scratch, k, bias, out, g);
    }
}

/* ---- 16 planes at a time, channels interleaved ----------------------------------------------------
 * The planes of a group are transposed into one zero-bordered ph x pw grid of 16-float pixels (lane i:
 * plane i), so that every tap of every output is one aligned vector load whatever the stride or the
 * plane's width: output (r, c) adds tap (i, j) from pixel (r*sh + i*dh, c*sw + j*dw). The sums go
 * through a grid of oh x ow pixels that is transposed back into dense planes. */

/* Scratch of a group: the input grid, the output grid, the lanes' taps and biases (16 floats each), the
 * centered planes of storage integers (16 planes), then the grid place of every input pixel (ptrdiff_t,
 * -1 when cropped) and the taps' offsets. */
typedef struct {
    float *in, *out, *taps, *bias, *centered;
    ptrdiff_t *place, *off;
} group_scratch;

static group_scratch group_layout(float *scratch, const geometry *g)
{
    group_scratch s;
    s.in = scratch;
    s.out = s.in + g->ph * g->pw * 16;
    s.taps = s.out + g->oh * g->ow * 16;
    s.bias = s.taps + g->kh * g->kw * 16;
    s.centered = s.bias + 16;
    s.place = (ptrdiff_t *)(s.centered + 16 * g->h * g->w);
    s.off = s.place + g->h * g->w;
    return s;
}

static size_t group_floats(const geometry *g)
{
    const ptrdiff_t taps = g->kh * g->kw;
    const size_t longs = sizeof(ptrdiff_t) / sizeof(float);
    return (size_t)((g->ph * g->pw + g->oh * g->ow + taps + 1 + g->h * g->w) * 16) +
           longs * (size_t)(g->h * g->w + taps);
}

/* The pixels of the input grid that no input lands on, zeroed; the places and the tap offsets. */
static void group_prepare(float *scratch, const geometry *g)
{
    const group_scratch s = group_layout(scratch, g);
    for (ptrdiff_t pr = 0; pr < g->ph; pr++) {
        float *row = s.in + pr * g->pw * 16;
        const ptrdiff_t r = pr - g->pt, c0 = g->pl > 0 ? g->pl : 0, c1 = g->pl + g->w;
        if (r < 0 || r >= g->h || c1 <= 0 || c0 >= g->pw) {
            memset(row, 0, sizeof(float) * 16 * (size_t)g->pw);
            continue;
        }
        memset(row, 0, sizeof(float) * 16 * (size_t)c0);
        if (c1 < g->pw)
            memset(row + c1 * 16, 0, sizeof(float) * 16 * (size_t)(g->pw - c1));
    }
    for (ptrdiff_t r = 0; r < g->h; r++)
        for (ptrdiff_t c = 0; c < g->w; c++) {
            const ptrdiff_t pr = r + g->pt, pc = c + g->pl;
            s.place[r * g->w + c] = pr >= 0 && pr < g->ph && pc >= 0 && pc < g->pw ? (pr * g->pw + pc) * 16 : -1;
        }
    for (ptrdiff_t i = 0; i < g->kh; i++)
        for (ptrdiff_t j = 0; j < g->kw; j++)
            s.off[i * g->kw + j] = (i * g->dh * g->pw + j * g->dw) * 16;
}

/* r[i][l] and r[l][i] swapped: four rounds of two-input shuffles, round d swapping bit d of the row and
 * of the lane index. */
static inline __attribute__((always_inline)) void transpose16(v16 *r)
{
    static const v16i lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const v16i hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    static const v16i lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    static const v16i hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    static const v16i lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    static const v16i hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    static const v16i lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    static const v16i hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
#define TRANSPOSE_ROUND(D, LO, HI)                                                                    \
    for (int i = 0; i < 16; i++)                                                                      \
        if (!(i & (D))) {                                                                             \
            const v16 a = r[i], b = r[i + (D)];                                                       \
            r[i] = __builtin_shuffle(a, b, LO);                                                       \
            r[i + (D)] = __builtin_shuffle(a, b, HI);                                                  \
        }
    TRANSPOSE_ROUND(8, lo8, hi8)
    TRANSPOSE_ROUND(4, lo4, hi4)
    TRANSPOSE_ROUND(2, lo2, hi2)
    TRANSPOSE_ROUND(1, lo1, hi1)
#undef TRANSPOSE_ROUND
}

/* The `count` float32 planes from `planes` (`stride` floats apart) into the input grid (lanes past count:
   zeros). */
MULTIVERSION static void group_in(const float *planes, ptrdiff_t stride, int count, const group_scratch *s,
                                  const geometry *g)
{
    const ptrdiff_t hw = g->h * g->w;
    for (ptrdiff_t p0 = 0; p0 < hw; p0 += 16) {
        const ptrdiff_t n = hw - p0 < 16 ? hw - p0 : 16;
        v16 r[16];
        for (int i = 0; i < 16; i++) {
            r[i] = (v16){0};
            if (i < count && n == 16)
                r[i] = *(const v16u *)(planes + i * stride + p0);
            else if (i < count)
                memcpy(&r[i], planes + i * stride + p0, sizeof(float) * (size_t)n);
        }
        transpose16(r);
        for (int i = 0; i < 16; i++)
            if (i < n && s->place[p0 + i] >= 0)
                *(v16 *)(s->in + s->place[p0 + i]) = r[i];
    }
}

/* U output pixels of the output grid from column c of row `src` (the input grid at the row's first tap):
 * the bias, then every tap in order (one multiply-add each). */
#define GROUP_CHUNK(U)                                                                                \
    {                                                                                                 \
        v16 acc[U];                                                                                   \
        for (int u = 0; u < (U); u++)                                                                 \
            acc[u] = (v16){0} + bias;                                                                 \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                        \
            const float *at = src + s->off[t] + c * step;                                             \
            const v16 wv = *(const v16 *)(s->taps + 16 * t);                                          \
            for (int u = 0; u < (U); u++)                                                             \
                acc[u] += wv * *(const v16 *)(at + u * step);                                         \
        }                                                                                             \
        for (int u = 0; u < (U); u++)                                                                 \
            *(v16 *)(dst + 16 * (c + u)) = acc[u];                                                    \
        c += (U);                                                                                     \
    }

MULTIVERSION static void group_taps(const group_scratch *s, const geometry *g)
{
    const ptrdiff_t taps = g->kh * g->kw, step = g->sw * 16;
    const v16 bias = *(const v16 *)s->bias;
    for (ptrdiff_t r = 0; r < g->oh; r++) {
        const float *src = s->in + r * g->sh * g->pw * 16;
        float *dst = s->out + r * g->ow * 16;
        ptrdiff_t c = 0;
        while (g->ow - c >= 8)
            GROUP_CHUNK(8)
        switch (g->ow - c) { /* the rest in one chunk: independent accumulators hide the latency */
        case 7: GROUP_CHUNK(7) break;
        case 6: GROUP_CHUNK(6) break;
        case 5: GROUP_CHUNK(5) break;
        case 4: GROUP_CHUNK(4) break;
        case 3: GROUP_CHUNK(3) break;
        case 2: GROUP_CHUNK(2) break;
        case 1: GROUP_CHUNK(1) break;
        default: break;
        }
    }
}

/* The output grid back into `count` dense oh x ow planes, plane i at out + i * ld. */
MULTIVERSION static void group_out(const group_scratch *s, int count, float *out, ptrdiff_t ld, const geometry *g)
{
    const ptrdiff_t ohw = g->oh * g->ow;
    for (ptrdiff_t p0 = 0; p0 < ohw; p0 += 16) {
        const ptrdiff_t n = ohw - p0 < 16 ? ohw - p0 : 16;
        v16 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < n ? *(const v16 *)(s->out + 16 * (p0 + i)) : (v16){0};
        transpose16(r);
        for (int i = 0; i < count; i++) {
            if (n == 16)
                *(v16u *)(out + i * ld + p0) = r[i];
            else
                memcpy(out + i * ld + p0, &r[i], sizeof(float) * (size_t)n);
        }
    }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
/* ---- The group kernels on CPUs with AVX2 and no AVX-512 -------------------------------------------
 * Their x86-64-v3 clones split every 16-float vector into halves that mostly live on the stack (the
 * two-input shuffles of transpose16 above all). These keep a pixel as two 8-float halves in registers and
 * transpose 8x8 blocks, on the same grids and with the same sums: 0 + the bias, then one fused multiply-add
 * per tap in row-major order, as the v3 clone contracts `acc += wv * x`. */
#define AVX2 __attribute__((target("avx2,fma")))

/* AVX2 and FMA but no AVX-512 (checked once): the CPUs that would otherwise run the v3 clones. */
static int group_avx2(void)
{
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = !__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
                __builtin_cpu_supports("fma");
    }
    return known;
}

/* r[i][l] and r[l][i] swapped, 8x8: pairs of rows, then pairs of pairs, then the 128-bit halves. */
AVX2 static inline void transpose8(__m256 *r)
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* The lanes below n (of 8) as a mask. */
AVX2 static inline __m256i first_lanes(ptrdiff_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* group_in: 8 pixels at a time, the 16 planes as two 8x8 blocks. */
AVX2 static void group_in_avx2(const float *planes, ptrdiff_t stride, int count, const group_scratch *s,
                               const geometry *g)
{
    const ptrdiff_t hw = g->h * g->w;
    for (ptrdiff_t p0 = 0; p0 < hw; p0 += 8) {
        const ptrdiff_t n = hw - p0 < 8 ? hw - p0 : 8;
        for (int q = 0; q < 16; q += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const float *at = planes + (q + i) * stride + p0;
                r[i] = q + i >= count ? _mm256_setzero_ps()
                       : n == 8       ? _mm256_loadu_ps(at)
                                      : _mm256_maskload_ps(at, first_lanes(n));
            }
            transpose8(r);
            for (int i = 0; i < 8; i++)
                if (i < n && s->place[p0 + i] >= 0)
                    _mm256_store_ps(s->in + s->place[p0 + i] + q, r[i]);
        }
    }
}

/* U output pixels from column c of row src (as GROUP_CHUNK), each as two halves: 2U accumulators. */
AVX2 static inline __attribute__((always_inline)) void chunk_avx2(const group_scratch *s, const float *src,
                                                                  float *dst, ptrdiff_t c, ptrdiff_t step,
                                                                  ptrdiff_t taps, const __m256 *bias, int U)
{
    __m256 acc[8];
    for (int u = 0; u < 2 * U; u++)
        acc[u] = bias[u & 1];
    for (ptrdiff_t t = 0; t < taps; t++) {
        const float *at = src + s->off[t] + c * step;
        const __m256 w0 = _mm256_load_ps(s->taps + 16 * t), w1 = _mm256_load_ps(s->taps + 16 * t + 8);
        for (int u = 0; u < U; u++) {
            acc[2 * u] = _mm256_fmadd_ps(w0, _mm256_load_ps(at + u * step), acc[2 * u]);
            acc[2 * u + 1] = _mm256_fmadd_ps(w1, _mm256_load_ps(at + u * step + 8), acc[2 * u + 1]);
        }
    }
    for (int u = 0; u < 2 * U; u++)
        _mm256_store_ps(dst + 16 * c + 8 * u, acc[u]);
}

AVX2 static void group_taps_avx2(const group_scratch *s, const geometry *g)
{
    const ptrdiff_t taps = g->kh * g->kw, step = g->sw * 16;
    const __m256 zero = _mm256_setzero_ps(); /* 0 + bias, as GROUP_CHUNK starts: a bias of -0 becomes +0 */
    const __m256 bias[2] = {_mm256_add_ps(zero, _mm256_load_ps(s->bias)),
                            _mm256_add_ps(zero, _mm256_load_ps(s->bias + 8))};
    for (ptrdiff_t r = 0; r < g->oh; r++) {
        const float *src = s->in + r * g->sh * g->pw * 16;
        float *dst = s->out + r * g->ow * 16;
        ptrdiff_t c = 0;
        for (; g->ow - c >= 4; c += 4)
            chunk_avx2(s, src, dst, c, step, taps, bias, 4);
        switch (g->ow - c) {
        case 3: chunk_avx2(s, src, dst, c, step, taps, bias, 3); break;
        case 2: chunk_avx2(s, src, dst, c, step, taps, bias, 2); break;
        case 1: chunk_avx2(s, src, dst, c, step, taps, bias, 1); break;
        default: break;
        }
    }
}

/* group_out: 8 pixels at a time, the planes as one or two 8x8 blocks. */
AVX2 static void group_out_avx2(const group_scratch *s, int count, float *out, ptrdiff_t ld, const geometry *g)
{
    const ptrdiff_t ohw = g->oh * g->ow;
    for (ptrdiff_t p0 = 0; p0 < ohw; p0 += 8) {
        const ptrdiff_t n = ohw - p0 < 8 ? ohw - p0 : 8;
        for (int q = 0; q < count; q += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i < n ? _mm256_load_ps(s->out + 16 * (p0 + i) + q) : _mm256_setzero_ps();
            transpose8(r);
            for (int i = 0; i < 8; i++) {
                float *at = out + (q + i) * ld + p0;
                if (q + i < count && n == 8)
                    _mm256_storeu_ps(at, r[i]);
                else if (q + i < count)
                    _mm256_maskstore_ps(at, first_lanes(n), r[i]);
            }
        }
    }
}
#endif

/* dw_sums of a group: each lane's taps and bias (plane p0 + i takes channel (p0 + i) % channels), the
 * planes centered when they are storage integers, then the grid in, the taps, the grid out. */
HOT_EXACT static void group_sums(const void *x, ptrdiff_t plane, int kind, long long zero, const float *w,
                                 const float *bias, ptrdiff_t channels, ptrdiff_t p0, int count, float *scratch,
                                 float *out, ptrdiff_t ld, const geometry *g)
{
    const group_scratch s = group_layout(scratch, g);
    const ptrdiff_t taps = g->kh * g->kw;
    for (int i = 0; i < 16; i++) {
        const ptrdiff_t ch = (p0 + i) % channels;
        for (ptrdiff_t t = 0; t < taps; t++)
            s.taps[16 * t + i] = i < count ? w[ch * taps + t] : 0.0f;
        s.bias[i] = i < count && bias ? bias[ch] : 0.0f;
    }
    const ptrdiff_t hw = g->h * g->w;
    const float *planes = (const float *)x + p0 * plane;
    ptrdiff_t stride = plane;
    if (kind != 'f') {
        for (int i = 0; i < count; i++)
            center_plane(x, kind, (p0 + i) * plane, hw, zero, s.centered + i * hw);
        planes = s.centered;
        stride = hw;
    }
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
    if (group_avx2()) {
        group_in_avx2(planes, stride, count, &s, g);
        group_taps_avx2(&s, g);
        group_out_avx2(&s, count, out, ld, g);
        return;
    }
#endif
    group_in(planes, stride, count, &s, g);
    group_taps(&s, g);
    group_out(&s, count, out, ld, g);
}

/* ---- Entry points ---------------------------------------------------------------------------------- */

size_t dw_scratch_floats(const geometry *g)
{
    if (wide_3x3(g)) /* the padded plane (stride 1), or three split rows and one centered row (stride 2) */
        return (size_t)(g->ph * g->pw + g->w);
    return group_floats(g);
}

void dw_prepare(float *scratch, const geometry *g)
{
    if (!wide_3x3(g))
        group_prepare(scratch, g);
}

HOT_EXACT void dw_sums(const void *x, ptrdiff_t plane, int kind, long long zero, const float *w, const float *bias,
                       ptrdiff_t channels, ptrdiff_t p0, int count, float *scratch, float *out, ptrdiff_t ld,
                       const geometry *g)
{
    if (!wide_3x3(g)) {
        group_sums(x, plane, kind, zero, w, bias, channels, p0, count, scratch, out, ld, g);
        return;
    }
    const ptrdiff_t taps = g->kh * g->kw;
    for (int i = 0; i < count; i++) {
        const ptrdiff_t ch = (p0 + i) % channels;
        dw_plane_wide(x, kind, (p0 + i) * plane, zero, w + ch * taps, bias ? bias[ch] : 0.0f, scratch,
                      out + i * ld, g);
    }
}

void dw_band_rows(const geometry *g, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t *r0, ptrdiff_t *r1)
{
    *r0 = o0 * g->sh - g->pt;
    *r1 = (o1 - 1) * g->sh - g->pt + (g->kh - 1) * g->dh + 1;
    *r0 = *r0 < 0 ? 0 : *r0;
    *r1 = *r1 > g->h ? g->h : *r1;
    *r1 = *r1 < *r0 ? *r0 : *r1;
}

geometry dw_band(const geometry *g, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t *r0)
{
    ptrdiff_t r1;
    dw_band_rows(g, o0, o1, r0, &r1);
    geometry band = *g;
    band.h = r1 - *r0;
    band.oh = o1 - o0;
    band.pt = g->pt - o0 * g->sh + *r0;
    dw_padded_size(&band);
    return band;
}
