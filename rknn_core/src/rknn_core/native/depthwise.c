/*
 * Planes and depthwise sums for the compiled kernels.
 *
 * A depthwise plane is computed as whole-plane vector sweeps, one per kernel tap: the zero-bordered
 * input plane is split into its sh x sw stride phases (phase (a, b) holds padded rows a, a + sh, ...
 * and columns b, b + sw, ...), each qh x qw, so that tap (i, j) of output (r, c) reads phase
 * (i*dh % sh, j*dw % sw) at row r + i*dh / sh, column c + j*dw / sw. Laid out flat with row stride qw,
 * output r*qw + c then reads phase element r*qw + c + (constant per tap): every tap is one contiguous
 * multiply-add over the flat plane (the qw - ow extra columns per row are computed and dropped).
 * Chunks of up to 128 outputs stay in registers across all taps, so a small plane (7x7, 14x14) costs
 * a few vector instructions per tap instead of a loop per output row. The phases are built straight
 * from the input (any storage kind, centered), so the zero border costs no extra pass.
 */
#include "depthwise.h"

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

MULTIVERSION void center_plane(const void *x, int kind, ptrdiff_t offset, ptrdiff_t count, long long zero,
                               float *restrict out)
{
    const float z = (float)zero;
    if (kind == 'f') {
        memcpy(out, (const float *)x + offset, sizeof(float) * (size_t)count);
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

/* floor(a / b) for b > 0. */
static ptrdiff_t floor_div(ptrdiff_t a, ptrdiff_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The phases' shape: qh x qw each (phase floats apart: a row's overshoot fits), sh * sw of them, then a
 * zeroed tail of qw + 16 floats that reads past the last phase stay inside, then the flat sums
 * (rounded up to whole vectors). */
typedef struct {
    ptrdiff_t qh, qw, phase, flat, tail;
} phase_layout;

static phase_layout layout_of(const geometry *g)
{
    phase_layout l;
    l.qh = g->oh + (g->kh - 1) * g->dh / g->sh;
    l.qw = g->ow + (g->kw - 1) * g->dw / g->sw;
    l.phase = l.qh * l.qw + 16; /* room for the last row's overshoot (take_even) */
    l.tail = l.qw + 16;
    l.flat = (g->oh * l.qw + 15) / 16 * 16;
    return l;
}

/* Wide output rows of a 3x3 kernel (stride 1 or 2, no dilation) go through row kernels instead, whose
 * loads are contiguous along a row: the whole-plane sweep would spend more on building phases and on
 * per-row epilogues than on the taps. */
static int wide_3x3(const geometry *g)
{
    return g->kh == 3 && g->kw == 3 && g->ow >= 16 && g->dh == 1 && g->dw == 1 && g->sh == g->sw &&
           (g->sh == 1 || g->sh == 2);
}

size_t dw_scratch_floats(const geometry *g)
{
    if (wide_3x3(g))
        return (size_t)(g->ph * g->pw + g->h * g->w + g->oh * g->ow + 16);
    const phase_layout l = layout_of(g);
    return (size_t)(g->sh * g->sw * l.phase + l.tail + l.flat + g->w + 80);
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

/* 3x3, stride 2: each row of the padded plane is stored as its even then its odd columns (built
 * straight from the float32 input plane x), so that every load of the main loop is contiguous. */
ROWS static void dw_plane3x3s2(const float *restrict x, float *restrict split, const float *restrict k,
                                       float bias, float *restrict y, const geometry *g)
{
    const ptrdiff_t pw = g->pw, ow = g->ow, half = (pw + 1) / 2;
    for (ptrdiff_t pr = 0; pr < g->ph; pr++) {
        float *restrict even = split + pr * pw, *restrict odd = even + half;
        ptrdiff_t r = pr - g->pt;
        memset(even, 0, sizeof(float) * (size_t)pw);
        if (r < 0 || r >= g->h)
            continue;
        const float *restrict src = x + r * g->w;
        /* padded column q = 2c + parity reads input column q - pl when that lies in [0, w) */
        for (int parity = 0; parity < 2; parity++) {
            float *restrict dst = parity ? odd : even;
            ptrdiff_t span = g->w - 1 + g->pl - parity; /* last readable q - parity; may be negative */
            ptrdiff_t first = (g->pl - parity + 1) / 2, last = span < 0 ? 0 : span / 2 + 1;
            ptrdiff_t count = parity ? pw / 2 : half;
            first = first < 0 ? 0 : first;
            last = last > count ? count : last;
            const float *restrict s0 = src + parity - g->pl;
            for (ptrdiff_t c = first; c < last; c++)
                dst[c] = s0[2 * c];
        }
    }
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    for (ptrdiff_t r = 0; r < g->oh; r++) {
        const float *restrict e0 = split + 2 * r * pw, *restrict o0 = e0 + half;
        const float *restrict e1 = e0 + pw, *restrict o1 = e1 + half;
        const float *restrict e2 = e1 + pw, *restrict o2 = e2 + half;
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

/* dw_plane_sums for wide_3x3 geometries: the sums as rows of ow, into out (or scratch when NULL). */
static const float *dw_plane_wide(const void *x, int kind, ptrdiff_t offset, long long zero, const float *k,
                                  float bias, float *scratch, float *out, const geometry *g)
{
    float *padded = scratch, *centered = padded + g->ph * g->pw;
    out = out ? out : centered + g->h * g->w;
    if (g->sh == 1) {
        pad_plane(x, kind, offset, zero, padded, g);
        dw_plane3x3(padded, k, bias, out, g);
    } else {
        const float *plane = (const float *)x + offset;
        if (kind != 'f') {
            center_plane(x, kind, offset, g->h * g->w, zero, centered);
            plane = centered;
        }
        dw_plane3x3s2(plane, padded, k, bias, out, g);
    }
    return out;
}

/* d[i] = s[2i] for i < n rounded up to 16: reads up to s[2 * (that) + 31] and writes up to 15 floats past
 * d[n - 1] (callers leave room; what lands there is overwritten or unused). */
MULTIVERSION static void take_even(float *restrict d, const float *restrict s, ptrdiff_t n)
{
    const v16i pick = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    for (ptrdiff_t i = 0; i < n; i += 16)
        *(v16u *)(d + i) = __builtin_shuffle(*(const v16u *)(s + 2 * i), *(const v16u *)(s + 2 * i + 16), pick);
}

/* The phases of one plane: phase (a, b) element (r, c) is the padded plane's (r*sh + a, c*sw + b), i.e.
 * input (r*sh + a - pt, c*sw + b - pl) read as center_plane does, or zero outside the input. With
 * stride 1 each input row is centered straight into its phase row; with larger strides it is first
 * centered (or copied) into row (w + 64 floats), whose every sw-th column the phases take (stride 2:
 * 16 at a time, writing past the row's end into the next row or the phase's padding). Short rows:
 * the borders are written inline, not through memset calls. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
static void build_phases(const void *x, int kind, ptrdiff_t offset, long long zero, float *scratch, float *row,
                         const phase_layout *l, const geometry *g)
{
    const ptrdiff_t sw = g->sw;
    ptrdiff_t c0s[sw], c1s[sw]; /* the columns of phase b that lie on the input: [c0s[b], c1s[b]) */
    for (ptrdiff_t b = 0; b < sw; b++) {
        const ptrdiff_t first = floor_div(g->pl - b + sw - 1, sw), last = floor_div(g->w - 1 + g->pl - b, sw) + 1;
        c0s[b] = first < 0 ? 0 : first;
        c1s[b] = last > l->qw ? l->qw : last;
    }
    for (ptrdiff_t a = 0; a < g->sh; a++)
        for (ptrdiff_t r = 0; r < l->qh; r++) {
            const ptrdiff_t in_row = r * g->sh + a - g->pt;
            const int inside = in_row >= 0 && in_row < g->h;
            if (inside && sw > 1)
                center_plane(x, kind, offset + in_row * g->w, g->w, zero, row);
            for (ptrdiff_t b = 0; b < sw; b++) {
                float *dst = scratch + (a * sw + b) * l->phase + r * l->qw;
                const ptrdiff_t c0 = c0s[b], c1 = inside ? c1s[b] : c0;
                const ptrdiff_t j0 = b - g->pl; /* input column of phase column 0 */
                if (c1 > c0) {
                    if (sw == 1)
                        center_plane(x, kind, offset + in_row * g->w + c0 + j0, c1 - c0, zero, dst + c0);
                    else if (sw == 2)
                        take_even(dst + c0, row + 2 * c0 + j0, c1 - c0);
                    else
                        for (ptrdiff_t c = c0; c < c1; c++)
                            dst[c] = row[c * sw + j0];
                }
                for (ptrdiff_t c = 0; c < (c1 > c0 ? c0 : l->qw); c++)
                    dst[c] = 0.0f;
                for (ptrdiff_t c = c1 > c0 ? c1 : l->qw; c < l->qw; c++)
                    dst[c] = 0.0f;
            }
        }
}

/* U vectors of flat sums from `at`: bias, then every tap in order (one multiply-add each). */
#define DW_CHUNK(U)                                                                                   \
    {                                                                                                 \
        v16 acc[U];                                                                                   \
        for (int u = 0; u < (U); u++)                                                                 \
            acc[u] = (v16){0} + bias;                                                                 \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                        \
            const float *s = phases + off[t] + at;                                                    \
            const float wv = k[t];                                                                    \
            for (int u = 0; u < (U); u++)                                                             \
                acc[u] += wv * *(const v16u *)(s + 16 * u);                                           \
        }                                                                                             \
        for (int u = 0; u < (U); u++)                                                                 \
            *(v16u *)(flat + at + 16 * u) = acc[u];                                                   \
        at += 16 * (U);                                                                               \
    }

MULTIVERSION static void dw_flat(const float *phases, const ptrdiff_t *off, const float *k, ptrdiff_t taps,
                                 float bias, float *flat, ptrdiff_t count)
{
    ptrdiff_t at = 0;
    while (count - at >= 128)
        DW_CHUNK(8)
    switch ((count - at) / 16) { /* the rest in one chunk: independent accumulators hide the latency */
    case 7: DW_CHUNK(7) break;
    case 6: DW_CHUNK(6) break;
    case 5: DW_CHUNK(5) break;
    case 4: DW_CHUNK(4) break;
    case 3: DW_CHUNK(3) break;
    case 2: DW_CHUNK(2) break;
    case 1: DW_CHUNK(1) break;
    default: break;
    }
}

void dw_tap_offsets(const geometry *g, ptrdiff_t *off)
{
    const phase_layout l = layout_of(g);
    for (ptrdiff_t i = 0; i < g->kh; i++)
        for (ptrdiff_t j = 0; j < g->kw; j++) {
            const ptrdiff_t ti = i * g->dh, tj = j * g->dw;
            off[i * g->kw + j] = ((ti % g->sh) * g->sw + tj % g->sw) * l.phase + ti / g->sh * l.qw + tj / g->sw;
        }
}

const float *dw_plane_sums(const void *x, int kind, ptrdiff_t offset, long long zero, const float *k, float bias,
                           const ptrdiff_t *off, float *scratch, float *out, const geometry *g, ptrdiff_t *ld)
{
    if (wide_3x3(g)) {
        *ld = g->ow;
        return dw_plane_wide(x, kind, offset, zero, k, bias, scratch, out, g);
    }
    const phase_layout l = layout_of(g);
    const ptrdiff_t phases = g->sh * g->sw;
    float *flat = scratch + phases * l.phase + l.tail;
    build_phases(x, kind, offset, zero, scratch, flat + l.flat, &l, g);
    memset(scratch + phases * l.phase, 0, sizeof(float) * (size_t)l.tail);
    dw_flat(scratch, off, k, g->kh * g->kw, bias, flat, l.flat);
    *ld = l.qw;
    return flat;
}
