/*
 * Integer convolution GEMM on 8-bit operands: unsigned activations times signed weights, summed into
 * exact int32 lanes. With AVX-512 VNNI, VPDPBUSD sums four products at a time (64 multiply-adds per
 * instruction, four times the float32 kernel's); with AVX2 alone, the bytes are widened to 16 bits and
 * VPMADDWD sums them two at a time (16 per instruction, where onnxruntime's AVX2 kernels take VPMADDUBSW,
 * which saturates). Neither saturates nor rounds anywhere (the caller bounds k): the sums are the same
 * integers as the float32 GEMM's, whatever the instructions, the blocking or the thread count.
 *
 * The caller's centered weights and activations become bytes by constant shifts (qgemm.h): weights
 * w = a8 + d (a8 signed bytes, d per row), activations x = u - z (u unsigned bytes), so
 *     sum_j w x = sum_j a8 u + d * sum_j u - z * sum_j a8 - k d z;
 * the last two are the per-row row_terms, the column sums of u are taken while packing.
 *
 * Structure as gemm.c: the (m, n) output is cut into a grid of pool tasks (MR-row strips by
 * column chunks of at most PANELS NR-column panels); columns that are not one run of bytes (kernels
 * larger than 1x1) are first gathered once into an explicit im2col (runs copied whole, on the pool);
 * a task packs its columns of B for one k block
 * (u as groups of four bytes per column: VPDPBUSD's layout), sweeps its strips of A over the
 * panels with an 8 x 32 register tile (AVX2: 8 x 8 tiles, A's bytes as 16-bit pairs), keeps the int32
 * sums in its block buffer and, after the last k block, hands them to the epilogue.
 */
#define PY_SSIZE_T_CLEAN
#include "qgemm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

enum { MR = 8, NR = 32, PANELS = 8, KC = 1024 }; /* a KC x NR panel of bytes is 32 KiB */

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define AVX2 __attribute__((target("avx2")))
#define HAVE_X86_KERNELS 1
#else
#define HAVE_X86_KERNELS 0
#endif

enum { NONE, WIDENED, QUADS }; /* the kernels this CPU runs: none, AVX2's 16-bit pairs, AVX-512 VNNI */

static int kernels(void)
{
    static int level = -1;
    if (level < 0) {
        level = NONE;
#if HAVE_X86_KERNELS
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vnni"))
            level = QUADS;
        else if (__builtin_cpu_supports("avx2"))
            level = WIDENED;
#endif
    }
    return level;
}

int qgemm_available(void) { return kernels() != NONE; }

typedef struct {
    const int8_t *a8;
    const int32_t *a16; /* AVX2: a8 as 16-bit pairs (widen_rows), else NULL */
    const int32_t *row_terms, *row_d;
    const uint8_t *b;
    uint8_t flip; /* 0x80 for signed storage: u = b ^ 0x80 = b + 128 */
    const int64_t *koff, *poff;
    ptrdiff_t m, k, kp, n;
    int contiguous; /* poff[p] == poff[0] + p: every packed row is one run of bytes */
    uint8_t *cols;  /* else the gathered rows u[j, :] at cols + j * n (an explicit im2col), or NULL */
    const ptrdiff_t *runs; /* the columns as runs of offsets in equal steps: (start, length, step) triples */
    ptrdiff_t nruns;
    int cm, cn, nkb;
    ptrdiff_t npm, npn;
    qgemm_epilogue epilogue;
    void *ectx;
    atomic_int fail;
} qjob;

#if HAVE_X86_KERNELS
/* d[c] = (s0[c] | s1[c] << 8 | s2[c] << 16 | s3[c] << 24) ^ flip for the NR (32) columns of a full panel, and
 * cs[c] += the four bytes' sum when cs is not NULL: the four rows interleaved by byte then word unpacks (which
 * work within 128-bit lanes: the halves are put in column order last). */
AVX2 static void quads32(const uint8_t *s0, const uint8_t *s1, const uint8_t *s2, const uint8_t *s3, uint32_t flip,
                         uint32_t *d, int32_t *cs)
{
    const __m256i r0 = _mm256_loadu_si256((const __m256i *)s0), r1 = _mm256_loadu_si256((const __m256i *)s1);
    const __m256i r2 = _mm256_loadu_si256((const __m256i *)s2), r3 = _mm256_loadu_si256((const __m256i *)s3);
    const __m256i lo01 = _mm256_unpacklo_epi8(r0, r1), hi01 = _mm256_unpackhi_epi8(r0, r1);
    const __m256i lo23 = _mm256_unpacklo_epi8(r2, r3), hi23 = _mm256_unpackhi_epi8(r2, r3);
    const __m256i c0 = _mm256_unpacklo_epi16(lo01, lo23), c4 = _mm256_unpackhi_epi16(lo01, lo23); /* columns 0-3 and */
    const __m256i c8 = _mm256_unpacklo_epi16(hi01, hi23), c12 = _mm256_unpackhi_epi16(hi01, hi23); /* 16-19, ... */
    const __m256i f = _mm256_set1_epi32((int)flip);
    const __m256i out[4] = {_mm256_permute2x128_si256(c0, c4, 0x20), _mm256_permute2x128_si256(c8, c12, 0x20),
                            _mm256_permute2x128_si256(c0, c4, 0x31), _mm256_permute2x128_si256(c8, c12, 0x31)};
    for (int i = 0; i < 4; i++) {
        const __m256i v = _mm256_xor_si256(out[i], f);
        _mm256_storeu_si256((__m256i *)(d + 8 * i), v);
        if (cs) {
            const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(v, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
            _mm256_storeu_si256((__m256i *)(cs + 8 * i),
                                _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(cs + 8 * i)), sums));
        }
    }
}
#endif

/* Columns [q0, q0 + ncols) of u, rows [k0, k0 + kc) (zero past k), as ceil(ncols / NR) panels of
 * kc4 groups of NR columns x 4 bytes (one 32-bit word per column: its four rows, the lowest first);
 * colsum (ncols) gains each column's sum when not NULL. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void pack_u8(const qjob *J, uint8_t *dst, ptrdiff_t pstride, ptrdiff_t k0, int kc, ptrdiff_t q0, int ncols,
                    int32_t *colsum)
{
    static const uint8_t zeros[NR];
    const int kc4 = (kc + 3) / 4;
    for (int p = 0; p * NR < ncols; p++) {
        const int width = ncols - p * NR < NR ? ncols - p * NR : NR;
        const int64_t *po = J->poff + q0 + (ptrdiff_t)p * NR;
        int32_t *cs = colsum ? colsum + p * NR : NULL;
        for (int g = 0; g < kc4; g++) {
            uint32_t *restrict d = (uint32_t *)(dst + p * pstride + (ptrdiff_t)g * NR * 4);
            const uint8_t *row[4];
            uint32_t flip = 0; /* the sign flip of signed storage, on the rows that exist */
            const int runs = J->contiguous || J->cols; /* rows as runs of bytes from row[t] */
            for (int t = 0; t < 4; t++) {
                const ptrdiff_t kk = k0 + 4 * g + t;
                row[t] = 4 * g + t >= kc ? NULL
                         : J->cols ? J->cols + kk * J->n + q0 + p * NR : J->b + J->koff[kk] + (runs ? po[0] : 0);
                flip |= 4 * g + t < kc ? (uint32_t)J->flip << (8 * t) : 0;
            }
            if (runs) {
                const uint8_t *restrict s0 = row[0] ? row[0] : zeros, *restrict s1 = row[1] ? row[1] : zeros;
                const uint8_t *restrict s2 = row[2] ? row[2] : zeros, *restrict s3 = row[3] ? row[3] : zeros;
#if HAVE_X86_KERNELS
                if (width == NR) { /* pack_u8 runs only where AVX2 is */
                    quads32(s0, s1, s2, s3, flip, d, cs);
                    continue;
                }
#endif
                for (int c = 0; c < width; c++)
                    d[c] = ((uint32_t)s0[c] | (uint32_t)s1[c] << 8 | (uint32_t)s2[c] << 16 | (uint32_t)s3[c] << 24) ^ flip;
            } else {
                for (int c = 0; c < width; c++) {
                    uint32_t v = 0;
                    for (int t = 0; t < 4; t++)
                        v |= row[t] ? (uint32_t)row[t][po[c]] << (8 * t) : 0;
                    d[c] = v ^ flip;
                }
            }
            for (int c = width; c < NR; c++)
                d[c] = 0;
            if (cs)
                for (int c = 0; c < width; c++)
                    cs[c] += (int32_t)((d[c] & 255) + (d[c] >> 8 & 255) + (d[c] >> 16 & 255) + (d[c] >> 24));
        }
    }
}

#if HAVE_X86_KERNELS
/* One MR x NR tile: block[r][c] (+)= sum over kc4 groups of a8 rows times the packed panel; with last,
 * plus the row terms and row_d times the column sums.
 * Rows r >= mr read row mr - 1 (never out of bounds) and are dropped, as are columns c >= nr. */
VNNI static void kernel_vnni(int kc4, const int8_t *a, ptrdiff_t lda, int mr, const uint8_t *pb, int32_t *blk,
                             ptrdiff_t ldy, int nr, int first, int last, const int32_t *terms, const int32_t *d,
                             const int32_t *colsum)
{
    __m512i c[MR][2];
    const int8_t *ar[MR];
    for (int r = 0; r < MR; r++) {
        ar[r] = a + (ptrdiff_t)(r < mr ? r : mr - 1) * lda;
        c[r][0] = c[r][1] = _mm512_setzero_si512();
    }
    for (int g = 0; g < kc4; g++) {
        const __m512i b0 = _mm512_loadu_si512(pb + (ptrdiff_t)g * NR * 4);
        const __m512i b1 = _mm512_loadu_si512(pb + (ptrdiff_t)g * NR * 4 + 64);
        for (int r = 0; r < MR; r++) {
            int32_t w4;
            memcpy(&w4, ar[r] + 4 * g, 4);
            const __m512i av = _mm512_set1_epi32(w4);
            c[r][0] = _mm512_dpbusd_epi32(c[r][0], b0, av);
            c[r][1] = _mm512_dpbusd_epi32(c[r][1], b1, av);
        }
    }
    const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    const __m512i cs0 = last && d ? _mm512_maskz_loadu_epi32(m0, colsum) : _mm512_setzero_si512();
    const __m512i cs1 = last && d ? _mm512_maskz_loadu_epi32(m1, colsum + 16) : _mm512_setzero_si512();
    for (int r = 0; r < mr; r++) {
        int32_t *y = blk + r * ldy;
        __m512i v0 = c[r][0], v1 = c[r][1];
        if (!first) {
            v0 = _mm512_add_epi32(v0, _mm512_maskz_loadu_epi32(m0, y));
            v1 = _mm512_add_epi32(v1, _mm512_maskz_loadu_epi32(m1, y + 16));
        }
        if (last) {
            const __m512i t = _mm512_set1_epi32(terms[r]);
            v0 = _mm512_add_epi32(v0, t);
            v1 = _mm512_add_epi32(v1, t);
            if (d) {
                const __m512i dr = _mm512_set1_epi32(d[r]);
                v0 = _mm512_add_epi32(v0, _mm512_mullo_epi32(dr, cs0));
                v1 = _mm512_add_epi32(v1, _mm512_mullo_epi32(dr, cs1));
            }
        }
        _mm512_mask_storeu_epi32(y, m0, v0);
        _mm512_mask_storeu_epi32(y + 16, m1, v1);
    }
}
#endif

#if HAVE_X86_KERNELS
/* One 8 x 8 tile of kernel_vnni's sums on AVX2: a16 holds each row's groups of four bytes as two words of
 * 16-bit pairs (bytes 0 and 2, then 1 and 3: widen_rows), pb a quarter of a packed panel (its 32 bytes of each
 * group); the panel's bytes are split into the same pairs (even and odd bytes of each word) and VPMADDWD sums a
 * pair of products per lane, exactly (|a| <= 128, u <= 255). One vector of columns keeps the eight rows' sums
 * and the operands in registers. Rows r >= mr read row mr - 1 and are dropped, as are columns c >= nr; edge
 * tiles go through a stack tile (masked stores are slow on some CPUs). */
AVX2 static void kernel_avx2(int kc4, const int32_t *a16, ptrdiff_t lda, int mr, const uint8_t *pb, int32_t *blk,
                             ptrdiff_t ldy, int nr, int first, int last, const int32_t *terms, const int32_t *d,
                             const int32_t *colsum)
{
    __m256i c[MR];
    const int32_t *ar[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        ar[r] = a16 + (ptrdiff_t)(r < mr ? r : mr - 1) * lda;
        c[r] = _mm256_setzero_si256();
    }
    const __m256i low = _mm256_set1_epi16(0xFF);
    for (int g = 0; g < kc4; g++) {
        const __m256i b = _mm256_loadu_si256((const __m256i *)(pb + (ptrdiff_t)g * NR * 4));
        const __m256i e = _mm256_and_si256(b, low), o = _mm256_srli_epi16(b, 8);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            c[r] = _mm256_add_epi32(c[r], _mm256_add_epi32(_mm256_madd_epi16(e, _mm256_set1_epi32(ar[r][2 * g])),
                                                           _mm256_madd_epi16(o, _mm256_set1_epi32(ar[r][2 * g + 1]))));
    }
    int32_t edge[MR][8], cs[8];
    const int full = mr == MR && nr == 8;
    if (!full)
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < 8; j++)
                edge[r][j] = j < nr && !first ? blk[r * ldy + j] : 0;
    __m256i sums = _mm256_setzero_si256();
    if (last && d && nr == 8) {
        sums = _mm256_loadu_si256((const __m256i *)colsum);
    } else if (last && d) {
        for (int j = 0; j < 8; j++)
            cs[j] = j < nr ? colsum[j] : 0;
        sums = _mm256_loadu_si256((const __m256i *)cs);
    }
    for (int r = 0; r < mr; r++) {
        int32_t *y = full ? blk + r * ldy : edge[r];
        __m256i v = c[r];
        if (!first || !full)
            v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)y));
        if (last) {
            v = _mm256_add_epi32(v, _mm256_set1_epi32(terms[r]));
            if (d)
                v = _mm256_add_epi32(v, _mm256_mullo_epi32(_mm256_set1_epi32(d[r]), sums));
        }
        _mm256_storeu_si256((__m256i *)y, v);
    }
    if (!full)
        for (int r = 0; r < mr; r++)
            memcpy(blk + r * ldy, edge[r], sizeof(int32_t) * (size_t)nr);
}

/* a16 (m rows of kp / 2 words) from a8 (m rows of kp bytes): each group of four bytes w0..w3 as the 16-bit
 * pairs (w0, w2) and (w1, w3), the operands kernel_avx2 multiplies with the panel's even and odd bytes. */
AVX2 static void widen_rows(const int8_t *a8, ptrdiff_t m, ptrdiff_t kp, int32_t *a16)
{
    const __m128i pairs = _mm_setr_epi8(0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15);
    ptrdiff_t i = 0; /* groups of four bytes: four at a time, shuffled into pair order and sign-extended */
    for (; 4 * i + 16 <= m * kp; i += 4)
        _mm256_storeu_si256((__m256i *)(a16 + 2 * i),
                            _mm256_cvtepi8_epi16(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(a8 + 4 * i)), pairs)));
    for (; i < m * kp / 4; i++) {
        const int8_t *w = a8 + 4 * i;
        a16[2 * i] = (int32_t)((uint32_t)(uint16_t)w[0] | (uint32_t)(uint16_t)w[2] << 16);
        a16[2 * i + 1] = (int32_t)((uint32_t)(uint16_t)w[1] | (uint32_t)(uint16_t)w[3] << 16);
    }
}
#endif

/* One MR x NR tile (mr rows, nr columns) of the k block at k0 (kc4 groups) on this CPU's kernels. */
static void tile(const qjob *J, int kc4, ptrdiff_t i, ptrdiff_t k0, int mr, const uint8_t *pb, int32_t *blk,
                 ptrdiff_t ldy, int nr, int first, int last, const int32_t *colsum)
{
    const int32_t *d = J->row_d ? J->row_d + i : NULL;
#if HAVE_X86_KERNELS
    if (!J->a16) {
        kernel_vnni(kc4, J->a8 + i * J->kp + k0, J->kp, mr, pb, blk, ldy, nr, first, last, J->row_terms + i, d, colsum);
        return;
    }
    for (int h = 0; 8 * h < nr; h++)
        kernel_avx2(kc4, J->a16 + i * (J->kp / 2) + k0 / 2, J->kp / 2, mr, pb + 32 * h, blk + 8 * h, ldy,
                    nr - 8 * h < 8 ? nr - 8 * h : 8, first, last, J->row_terms + i, d, colsum ? colsum + 8 * h : NULL);
#else
    (void)J, (void)kc4, (void)i, (void)k0, (void)mr, (void)pb, (void)blk, (void)ldy, (void)nr, (void)first,
        (void)last, (void)colsum, (void)d;
#endif
}

static void qgemm_task(void *ctx, int t)
{
    qjob *J = ctx;
    const int ti = t % J->cm, tj = t / J->cm; /* tasks in column order: the pool's shares are runs of columns */
    const ptrdiff_t r0 = J->npm * ti / J->cm, r1 = J->npm * (ti + 1) / J->cm;
    const ptrdiff_t c0 = J->npn * tj / J->cn, c1 = J->npn * (tj + 1) / J->cn;
    if (r0 == r1 || c0 == c1)
        return;
    const ptrdiff_t q0 = c0 * NR, i0 = r0 * MR, i1 = r1 * MR < J->m ? r1 * MR : J->m;
    const int ncols = (int)((c1 * NR < J->n ? c1 * NR : J->n) - q0);
    const int kcmax = J->k < KC ? (int)((J->k + 3) / 4 * 4) : KC;
    const ptrdiff_t pstride = (ptrdiff_t)kcmax * NR + 64, npanels = c1 - c0;
    /* scratch in floats: packed panels, the column sums, then (other slot) the block */
    const size_t packed = ((size_t)(pstride * npanels) + 3) / 4;
    float *scratch = scratch_get(packed + (size_t)ncols + 16);
    int32_t *blk = (int32_t *)scratch_slot(SCRATCH_TILE, (size_t)((i1 - i0) * ncols));
    if (!scratch || !blk) {
        atomic_store(&J->fail, 1);
        return;
    }
    uint8_t *pb = (uint8_t *)scratch;
    int32_t *colsum = J->row_d ? (int32_t *)(scratch + packed) : NULL;
    if (colsum)
        memset(colsum, 0, sizeof(int32_t) * (size_t)ncols);
    for (int kb = 0; kb < J->nkb; kb++) {
        const ptrdiff_t k0 = (ptrdiff_t)kb * kcmax;
        const int kc = (int)(J->k - k0 < kcmax ? J->k - k0 : kcmax);
        pack_u8(J, pb, pstride, k0, kc, q0, ncols, colsum);
        for (ptrdiff_t i = i0; i < i1; i += MR) {
            const int mr = (int)(J->m - i < MR ? J->m - i : MR);
            for (ptrdiff_t jp = c0; jp < c1; jp++) {
                const ptrdiff_t q = jp * NR;
                const int nr = (int)(J->n - q < NR ? J->n - q : NR);
                tile(J, (kc + 3) / 4, i, k0, mr, pb + (jp - c0) * pstride, blk + (i - i0) * ncols + (q - q0), ncols,
                     nr, kb == 0, kb == J->nkb - 1, colsum ? colsum + (q - q0) : NULL);
            }
        }
    }
    J->epilogue(J->ectx, blk, ncols, i0, i1, q0, q0 + ncols);
}

/* len bytes from `from` to `to` without a call (a small image's row): fixed-size copies the compiler inlines. */
static inline void copy_short(uint8_t *to, const uint8_t *from, ptrdiff_t len)
{
    ptrdiff_t q = 0;
    for (; q + 8 <= len; q += 8)
        memcpy(to + q, from + q, 8);
    if (len - q >= 4) {
        memcpy(to + q, from + q, 4);
        q += 4;
    }
    if (len - q >= 2) {
        memcpy(to + q, from + q, 2);
        q += 2;
    }
    if (q < len)
        to[q] = from[q];
}

typedef uint16_t v32w __attribute__((vector_size(64), aligned(1)));
typedef uint8_t v32b __attribute__((vector_size(32), aligned(1)));

/* to[q] = from[2q] for q < len (a stride-2 window row), never reading past from[2(len-1)]: 32 at a time as
 * the low bytes of 16-bit lanes (one VPMOVWB on AVX-512). */
static inline void copy_stride2_bytes(uint8_t *to, const uint8_t *from, ptrdiff_t len)
{
    ptrdiff_t q = 0;
    for (; q + 33 <= len; q += 32) /* reads from[2q .. 2q+63] <= from[2(len-1) - 1] */
        *(v32b *)(to + q) = __builtin_convertvector(*(const v32w *)(from + 2 * q), v32b);
    for (; q < len; q++)
        to[q] = from[2 * q];
}

/* Rows [j0, j1) of the explicit im2col: u[j, p] = b[koff[j] + poff[p]] (unflipped: packing flips), run by
 * run (start, length and step of the offsets: a window row of a stride-1 or stride-2 kernel is one run). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void im2col_rows(const qjob *J, ptrdiff_t j0, ptrdiff_t j1)
{
    for (ptrdiff_t j = j0; j < j1; j++) {
        const uint8_t *src = J->b + J->koff[j];
        uint8_t *dst = J->cols + j * J->n;
        if (4 * J->nruns > J->n) { /* short runs: a plain gather */
            for (ptrdiff_t p = 0; p < J->n; p++)
                dst[p] = src[J->poff[p]];
            continue;
        }
        for (ptrdiff_t r = 0; r < J->nruns; r++) {
            const ptrdiff_t p0 = J->runs[3 * r], len = J->runs[3 * r + 1], step = J->runs[3 * r + 2];
            const uint8_t *from = src + J->poff[p0];
            if (step == 1 && len > 32)
                memcpy(dst + p0, from, (size_t)len);
            else if (step == 1)
                copy_short(dst + p0, from, len);
            else if (step == 2)
                copy_stride2_bytes(dst + p0, from, len);
            else
                for (ptrdiff_t q = 0; q < len; q++)
                    dst[p0 + q] = from[q * step];
        }
    }
}

typedef struct {
    const qjob *J;
    int tasks;
} im2col_job;

static void im2col_task(void *ctx, int t)
{
    const im2col_job *I = ctx;
    im2col_rows(I->J, I->J->k * t / I->tasks, I->J->k * (t + 1) / I->tasks);
}

/* The explicit im2col of a job whose columns are not one run (kernels larger than 1x1): gathered once
 * (runs of offsets in equal steps copied as runs), not once per task. 0 when out of memory. */
static int gather_columns(qjob *J, int nt)
{
    ptrdiff_t *runs = malloc(sizeof(ptrdiff_t) * 3 * (size_t)J->n);
    J->cols = malloc((size_t)(J->k * J->n));
    if (!runs || !J->cols) {
        free(runs);
        free(J->cols);
        J->cols = NULL;
        return 0;
    }
    ptrdiff_t nruns = 0; /* runs of offsets in steps of one size: (start, length, step) */
    for (ptrdiff_t p = 0; p < J->n; p++) {
        ptrdiff_t *last = runs + 3 * (nruns - 1);
        if (nruns && last[1] == 1 && J->poff[p] > J->poff[p - 1]) { /* a run's second element sets its step */
            last[1] = 2;
            last[2] = J->poff[p] - J->poff[p - 1];
        } else if (nruns && last[1] > 1 && J->poff[p] - J->poff[p - 1] == last[2]) {
            last[1]++;
        } else {
            runs[3 * nruns] = p;
            runs[3 * nruns + 1] = 1;
            runs[3 * nruns + 2] = 1;
            nruns++;
        }
    }
    J->runs = runs;
    J->nruns = nruns;
    im2col_job I = {J, nt > 1 && J->k >= 4 * nt ? 4 * nt : 1};
    if (I.tasks > 1)
        pool_run(I.tasks, im2col_task, &I);
    else
        im2col_rows(J, 0, J->k);
    return 1;
}

#if HAVE_X86_KERNELS
/* One column (n == 1: a fully connected layer on one row): u gathered once (zero past k), then each row's
 * products with it, 64 (VNNI) or 16 (AVX2) at a time in the int32 lanes, summed across the lanes (exact: the
 * same integers as the tiles); rows split over the pool for large layers, each task's sums reaching the
 * epilogue as one block. */
typedef struct {
    const qjob *J;
    const uint8_t *u;
    uint32_t colsum;
    int tasks;
    atomic_int fail;
} gemv_job;

/* sum_j a[j] u[j] over kp (a multiple of 4) on VNNI, in wrapping uint32 as the lanes. */
VNNI static uint32_t dot_vnni(const int8_t *a, const uint8_t *u, ptrdiff_t kp)
{
    const ptrdiff_t full = kp / 64 * 64;
    const __mmask16 tail = (__mmask16)((1u << ((kp - full) / 4)) - 1);
    __m512i acc = _mm512_setzero_si512();
    for (ptrdiff_t j = 0; j < full; j += 64)
        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(u + j), _mm512_loadu_si512(a + j));
    if (tail)
        acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi32(tail, u + full), _mm512_maskz_loadu_epi32(tail, a + full));
    return (uint32_t)_mm512_reduce_add_epi32(acc);
}

/* dot_vnni on AVX2: 16 bytes of each widened to 16 bits, VPMADDWD; the last kp % 16 one by one. */
AVX2 static uint32_t dot_avx2(const int8_t *a, const uint8_t *u, ptrdiff_t kp)
{
    const ptrdiff_t full = kp / 16 * 16;
    __m256i acc = _mm256_setzero_si256();
    for (ptrdiff_t j = 0; j < full; j += 16)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(u + j))),
                                                      _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + j)))));
    const __m128i half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    const __m128i pairs = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4E));
    uint32_t sum = (uint32_t)_mm_cvtsi128_si32(_mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 0xB1)));
    for (ptrdiff_t j = full; j < kp; j++)
        sum += (uint32_t)((int32_t)a[j] * u[j]);
    return sum;
}

static void gemv_task(void *ctx, int t)
{
    gemv_job *G = ctx;
    const qjob *J = G->J;
    const ptrdiff_t kp = J->kp, i0 = J->m * t / G->tasks, i1 = J->m * (t + 1) / G->tasks;
    int32_t *sums = (int32_t *)scratch_slot(SCRATCH_TILE, (size_t)(i1 - i0) + 1);
    if (!sums) {
        atomic_store(&G->fail, 1);
        return;
    }
    for (ptrdiff_t i = i0; i < i1; i++) {
        const int8_t *a = J->a8 + i * kp;
        const uint32_t dot = kernels() == QUADS ? dot_vnni(a, G->u, kp) : dot_avx2(a, G->u, kp);
        const uint32_t d = J->row_d ? (uint32_t)J->row_d[i] * G->colsum : 0; /* wrapping, as the lanes */
        sums[i - i0] = (int32_t)(dot + (uint32_t)J->row_terms[i] + d);
    }
    if (i1 > i0)
        J->epilogue(J->ectx, sums, 1, i0, i1, 0, 1);
}

static int qgemv(const qjob *J, int nt)
{
    uint8_t *u = (uint8_t *)scratch_slot(SCRATCH_CALLER, (size_t)(J->kp + 63) / 4 + 16);
    if (!u)
        return 0;
    uint32_t colsum = 0;
    for (ptrdiff_t j = 0; j < J->kp; j++) {
        u[j] = j < J->k ? J->b[J->koff[j] + J->poff[0]] ^ J->flip : 0;
        colsum += u[j];
    }
    gemv_job G = {.J = J, .u = u, .colsum = colsum, .tasks = nt > 1 ? 2 * nt : 1};
    atomic_store(&G.fail, 0);
    if (G.tasks > 1)
        pool_run(G.tasks, gemv_task, &G);
    else
        gemv_task(&G, 0);
    return !atomic_load(&G.fail);
}
#endif

ptrdiff_t qgemm_pairs(const int8_t *a8, ptrdiff_t m, ptrdiff_t kp, int32_t *out)
{
#if HAVE_X86_KERNELS
    if (kernels() == WIDENED) {
        if (out)
            widen_rows(a8, m, kp, out);
        return m * kp / 2;
    }
#endif
    (void)a8, (void)m, (void)kp, (void)out;
    return 0;
}

/* Below this many multiply-adds (about 20 us of work), run on the calling thread: VNNI runs four times the float
 * rate, the AVX2 kernels about the float rate. */
#define SERIAL_MACS(level) ((level) == QUADS ? 4000000.0 : 1000000.0)

int qgemm_run(const int8_t *a8, const int32_t *a16, const int32_t *row_terms, const int32_t *row_d, const void *b,
              int b_kind, const int64_t *koff, const int64_t *poff, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
              qgemm_epilogue epilogue, void *ectx)
{
    if (m <= 0 || n <= 0)
        return 0;
    qjob J = {.a8 = a8, .row_terms = row_terms, .row_d = row_d, .b = b, .flip = b_kind == 'b' ? 0x80 : 0,
              .koff = koff, .poff = poff, .m = m, .k = k, .kp = (k + 3) / 4 * 4, .n = n, .epilogue = epilogue,
              .ectx = ectx};
    int nt = pool_get_threads();
    if ((double)m * (double)k * (double)n < SERIAL_MACS(kernels()))
        nt = 1;
#if HAVE_X86_KERNELS
    if (n == 1)
        return qgemv(&J, nt) ? 0 : -1;
    if (kernels() == WIDENED && !a16) { /* made here, in the calling thread's scratch (no fresh pages per call) */
        int32_t *made = (int32_t *)scratch_slot(SCRATCH_CALLER, (size_t)(m * J.kp / 2));
        if (!made)
            return -1;
        widen_rows(a8, m, J.kp, made);
        a16 = made;
    }
    J.a16 = kernels() == WIDENED ? a16 : NULL;
#endif
    J.contiguous = 1;
    for (ptrdiff_t p = 1; p < n && J.contiguous; p++)
        J.contiguous = poff[p] == poff[0] + p;
    J.npm = (m + MR - 1) / MR;
    J.npn = (n + NR - 1) / NR;
    J.nkb = k <= 0 ? 1 : (int)((k + KC - 1) / KC);
    /* column chunks of at most PANELS panels, split further until every thread has two tasks: columns first
       (a task packs only its own columns; a split of rows packs the same columns in every task), then rows */
    J.cn = (int)((J.npn + PANELS - 1) / PANELS);
    J.cm = 1;
    while (nt > 1 && J.cm * J.cn < 2 * nt && (2 * (J.cn + 1) <= J.npn || J.cm < J.npm)) {
        if (2 * (J.cn + 1) <= J.npn) /* chunks of two panels or more: a short last panel is a small part of one */
            J.cn++;
        else
            J.cm++;
    }
    atomic_store(&J.fail, 0);
    if (!J.contiguous && !gather_columns(&J, nt))
        return -1;
    const int tasks = J.cm * J.cn;
    if (nt == 1 || tasks == 1)
        for (int t = 0; t < tasks; t++)
            qgemm_task(&J, t);
    else
        pool_run(tasks, qgemm_task, &J);
    free(J.cols);
    free((void *)J.runs);
    return atomic_load(&J.fail) ? -1 : 0;
}
