/*
 * Integer convolution GEMM on 8-bit operands: unsigned activations times signed weights, summed into
 * exact int32 lanes. With AVX-512 VNNI, VPDPBUSD sums four products at a time (64 multiply-adds per
 * instruction, four times the float32 kernel's); with AVX2 alone, both operands are widened to 16 bits and
 * VPMADDWD sums them two at a time (16 per instruction; VPMADDUBSW would take 32 but saturates). Neither
 * saturates nor rounds anywhere (the caller bounds k): the sums are the same integers as the float32 GEMM's,
 * whatever the instructions, the blocking or the thread count.
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
 * (u as groups of four bytes per column: VPDPBUSD's layout; AVX2: pairs of rows as two 16-bit halves of a
 * word), sweeps its strips of A over the panels with an 8 x 32 register tile (AVX2: up to 3 x 32, A's
 * weights as 16-bit pairs), keeps the int32 sums in its block buffer and, after the last k block, hands
 * them to the epilogue.
 */
#define PY_SSIZE_T_CLEAN
#include "qgemm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

enum { MR = 8, NR = 32, PANELS = 8 };
/* k blocks: a KC x NR panel of bytes (VNNI) is 32 KiB; a KC_PAIRS x NR panel of 16-bit values (AVX2) 16 KiB, so that
 * it stays in a 32 KiB L1 with the rows of A that sweep it */
enum { KC = 1024, KC_PAIRS = 256 };
enum { DOT_COLUMNS = 2 }; /* AVX2: up to this many columns past a multiple of 8 go to dot products */

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
    int cm, cn, nkb, kcmax; /* the task grid; k blocks of kcmax rows (a multiple of 4) */
    ptrdiff_t npm, npn;
    int rows;          /* rows of u per word of a packed panel: 2 (AVX2's 16-bit pairs) or 4 (VNNI's bytes) */
    ptrdiff_t pstride; /* bytes per packed panel */
    uint8_t *packed;   /* when row chunks share columns: every panel of every k block, packed once (k block major) */
    int32_t *colsums;  /* and every column's sum (with row_d), else NULL */
    ptrdiff_t ntile;   /* the columns the tiles compute; the last chunk's task sums [ntile, n) as dot products */
    uint8_t *dots;     /* those columns' u (kp bytes each, zero past k) */
    uint32_t *dotsums; /* and their sums */
    qgemm_epilogue epilogue;
    void *ectx;
    atomic_int fail;
} qjob;

#if HAVE_X86_KERNELS
/* d[c] = (s0[c] | s1[c] << 8 | s2[c] << 16 | s3[c] << 24) ^ flip for the NR (32) columns of a full panel, and
 * cs[c] += the four bytes' sum when cs is not NULL: the four rows interleaved by byte then word unpacks (which
 * work within 128-bit lanes: the halves are put in column order last). */
AVX2 static void quads32(const uint8_t *const s[4], uint32_t flip, uint32_t *d, int32_t *cs)
{
    const __m256i r0 = _mm256_loadu_si256((const __m256i *)s[0]), r1 = _mm256_loadu_si256((const __m256i *)s[1]);
    const __m256i r2 = _mm256_loadu_si256((const __m256i *)s[2]), r3 = _mm256_loadu_si256((const __m256i *)s[3]);
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

/* d[c] = (s0[c] ^ f0) | (s1[c] ^ f1) << 16 for the NR (32) columns of a full panel (two rows as the 16-bit halves of
 * a word: kernel_pairs' layout), and cs[c] += the two values when cs is not NULL. */
AVX2 static void pairs32(const uint8_t *const s[2], uint32_t flip, uint32_t *d, int32_t *cs)
{
    const __m128i f0 = _mm_set1_epi8((char)(flip & 255)), f1 = _mm_set1_epi8((char)(flip >> 16 & 255));
    for (int h = 0; h < 2; h++) { /* columns 16h .. 16h + 15 */
        const __m256i w0 = _mm256_cvtepu8_epi16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s[0] + 16 * h)), f0));
        const __m256i w1 = _mm256_cvtepu8_epi16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s[1] + 16 * h)), f1));
        /* columns 0-3 | 8-11 and 4-7 | 12-15 of the sixteen */
        const __m256i lo = _mm256_unpacklo_epi16(w0, w1), hi = _mm256_unpackhi_epi16(w0, w1);
        const __m256i out[2] = {_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31)};
        for (int i = 0; i < 2; i++) {
            _mm256_storeu_si256((__m256i *)(d + 16 * h + 8 * i), out[i]);
            if (cs) {
                int32_t *c = cs + 16 * h + 8 * i;
                const __m256i sums = _mm256_madd_epi16(out[i], _mm256_set1_epi16(1));
                _mm256_storeu_si256((__m256i *)c, _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)c), sums));
            }
        }
    }
}
#endif

/* Columns [q0, q0 + ncols) of u, rows [k0, k0 + kc) (zero past k), as ceil(ncols / NR) panels of groups of
 * `rows` (4: VPDPBUSD's bytes, 2: kernel_pairs' 16-bit halves) rows by NR columns, one 32-bit word per column
 * holding its rows' values, the lowest first; colsum (ncols) gains each column's sum when not NULL. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void pack_u8(const qjob *J, int rows, uint8_t *dst, ptrdiff_t pstride, ptrdiff_t k0, int kc, ptrdiff_t q0,
                    int ncols, int32_t *colsum)
{
    static const uint8_t zeros[NR];
    const int groups = (kc + rows - 1) / rows, bits = 32 / rows;
    const uint32_t field = rows == 4 ? 255 : 65535;
    for (int p = 0; p * NR < ncols; p++) {
        const int width = ncols - p * NR < NR ? ncols - p * NR : NR;
        const int64_t *po = J->poff + q0 + (ptrdiff_t)p * NR;
        int32_t *cs = colsum ? colsum + p * NR : NULL;
        for (int g = 0; g < groups; g++) {
            uint32_t *restrict d = (uint32_t *)(dst + p * pstride + (ptrdiff_t)g * NR * 4);
            const uint8_t *row[4];
            uint32_t flip = 0; /* the sign flip of signed storage, on the rows that exist */
            const int runs = J->contiguous || J->cols; /* rows as runs of bytes from row[t] */
            for (int t = 0; t < rows; t++) {
                const ptrdiff_t kk = k0 + rows * g + t;
                row[t] = rows * g + t >= kc ? NULL
                         : J->cols ? J->cols + kk * J->n + q0 + p * NR : J->b + J->koff[kk] + (runs ? po[0] : 0);
                flip |= rows * g + t < kc ? (uint32_t)J->flip << (bits * t) : 0;
            }
            if (runs) {
                const uint8_t *src[4];
                for (int t = 0; t < rows; t++)
                    src[t] = row[t] ? row[t] : zeros;
#if HAVE_X86_KERNELS
                if (width == NR) { /* pack_u8 runs only where AVX2 is */
                    (rows == 4 ? quads32 : pairs32)(src, flip, d, cs);
                    continue;
                }
#endif
                for (int c = 0; c < width; c++) {
                    uint32_t v = 0;
                    for (int t = 0; t < rows; t++)
                        v |= (uint32_t)src[t][c] << (bits * t);
                    d[c] = v ^ flip;
                }
            } else {
                for (int c = 0; c < width; c++) {
                    uint32_t v = 0;
                    for (int t = 0; t < rows; t++)
                        v |= row[t] ? (uint32_t)row[t][po[c]] << (bits * t) : 0;
                    d[c] = v ^ flip;
                }
            }
            for (int c = width; c < NR; c++)
                d[c] = 0;
            if (cs)
                for (int c = 0; c < width; c++)
                    for (int t = 0; t < rows; t++)
                        cs[c] += (int32_t)(d[c] >> (bits * t) & field);
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
/* kernel_vnni's sums for R (1 to 3) rows and V (1 to 4) vectors of 8 columns on AVX2: a16 holds each row's weights as
 * 16-bit pairs (widen_rows), pb a panel of pairs of rows (pack_u8 with rows = 2); VPMADDWD sums a pair of products
 * per lane, exactly (|a| <= 128, u <= 255). Each row's pair is broadcast once for the V vectors of columns, read from
 * memory: per 16 multiply-adds one VPMADDWD, one VPADDD and 1 / V broadcasts. Columns c >= nr are dropped; edge
 * tiles go through a stack tile (masked stores are slow on some CPUs). */
AVX2 static inline __attribute__((always_inline)) void pairs_tile(const int R, const int V, int kc2, const int32_t *a16,
                                                                  ptrdiff_t lda, const uint8_t *pb, int32_t *blk,
                                                                  ptrdiff_t ldy, int nr, int first, int last,
                                                                  const int32_t *terms, const int32_t *d,
                                                                  const int32_t *colsum)
{
    __m256i c[12];
#pragma GCC unroll 12
    for (int q = 0; q < R * V; q++)
        c[q] = _mm256_setzero_si256();
    const int32_t *a1 = a16 + (R > 1 ? lda : 0), *a2 = a16 + (R > 2 ? 2 * lda : 0);
    for (int g = 0; g < kc2; g++) {
        const __m256i *b = (const __m256i *)(pb + (ptrdiff_t)g * NR * 4);
        const __m256i x0 = _mm256_set1_epi32(a16[g]);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            c[v] = _mm256_add_epi32(c[v], _mm256_madd_epi16(x0, _mm256_loadu_si256(b + v)));
        if (R > 1) {
            const __m256i x1 = _mm256_set1_epi32(a1[g]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                c[V + v] = _mm256_add_epi32(c[V + v], _mm256_madd_epi16(x1, _mm256_loadu_si256(b + v)));
        }
        if (R > 2) {
            const __m256i x2 = _mm256_set1_epi32(a2[g]);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                c[2 * V + v] = _mm256_add_epi32(c[2 * V + v], _mm256_madd_epi16(x2, _mm256_loadu_si256(b + v)));
        }
    }
    const int full = nr == 8 * V;
    int32_t edge[NR], cs[NR];
    if (last && d && !full) {
        memset(cs, 0, sizeof cs);
        memcpy(cs, colsum, sizeof(int32_t) * (size_t)nr);
        colsum = cs;
    }
#pragma GCC unroll 3
    for (int r = 0; r < R; r++) {
        int32_t *y = full ? blk + r * ldy : edge;
        if (!full && !first)
            memcpy(edge, blk + r * ldy, sizeof(int32_t) * (size_t)nr);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m256i s = c[V * r + v];
            if (!first)
                s = _mm256_add_epi32(s, _mm256_loadu_si256((const __m256i *)(y + 8 * v)));
            if (last) {
                s = _mm256_add_epi32(s, _mm256_set1_epi32(terms[r]));
                if (d)
                    s = _mm256_add_epi32(s, _mm256_mullo_epi32(_mm256_set1_epi32(d[r]),
                                                               _mm256_loadu_si256((const __m256i *)(colsum + 8 * v))));
            }
            _mm256_storeu_si256((__m256i *)(y + 8 * v), s);
        }
        if (!full)
            memcpy(blk + r * ldy, edge, sizeof(int32_t) * (size_t)nr);
    }
}

typedef void (*pairs_kernel)(int, const int32_t *, ptrdiff_t, const uint8_t *, int32_t *, ptrdiff_t, int, int, int,
                             const int32_t *, const int32_t *, const int32_t *);

#define DEFINE_PAIRS_KERNEL(R, V)                                                                                    \
    AVX2 static void kernel_pairs##R##V(int kc2, const int32_t *a16, ptrdiff_t lda, const uint8_t *pb, int32_t *blk, \
                                        ptrdiff_t ldy, int nr, int first, int last, const int32_t *terms,            \
                                        const int32_t *d, const int32_t *colsum)                                     \
    {                                                                                                                \
        pairs_tile(R, V, kc2, a16, lda, pb, blk, ldy, nr, first, last, terms, d, colsum);                            \
    }
#define DEFINE_PAIRS_KERNELS(R) \
    DEFINE_PAIRS_KERNEL(R, 1) DEFINE_PAIRS_KERNEL(R, 2) DEFINE_PAIRS_KERNEL(R, 3) DEFINE_PAIRS_KERNEL(R, 4)
DEFINE_PAIRS_KERNELS(1)
DEFINE_PAIRS_KERNELS(2)
DEFINE_PAIRS_KERNELS(3)

/* kernel_pairs for (rows - 1, vectors - 1): a panel's last columns take as few vectors as they fill */
static const pairs_kernel kernel_pairs[3][4] = {{kernel_pairs11, kernel_pairs12, kernel_pairs13, kernel_pairs14},
                                                {kernel_pairs21, kernel_pairs22, kernel_pairs23, kernel_pairs24},
                                                {kernel_pairs31, kernel_pairs32, kernel_pairs33, kernel_pairs34}};

/* a16 (m rows of kp / 2 words) from a8 (m rows of kp bytes): the weights sign-extended to 16 bits, so that each word
 * holds a pair of consecutive ones, the operands kernel_pairs multiplies with a panel's pairs of rows. */
AVX2 static void widen_rows(const int8_t *a8, ptrdiff_t m, ptrdiff_t kp, int32_t *a16)
{
    int16_t *w = (int16_t *)a16;
    ptrdiff_t j = 0;
    for (; j + 16 <= m * kp; j += 16)
        _mm256_storeu_si256((__m256i *)(w + j), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a8 + j))));
    for (; j < m * kp; j++)
        w[j] = a8[j];
}
#endif

/* One MR x NR tile (mr rows, nr columns) of the k block at k0 (`groups` groups of the panel's rows) on this CPU's
 * kernels. */
static void tile(const qjob *J, int groups, ptrdiff_t i, ptrdiff_t k0, int mr, const uint8_t *pb, int32_t *blk,
                 ptrdiff_t ldy, int nr, int first, int last, const int32_t *colsum)
{
    const int32_t *d = J->row_d ? J->row_d + i : NULL;
#if HAVE_X86_KERNELS
    if (!J->a16) {
        kernel_vnni(groups, J->a8 + i * J->kp + k0, J->kp, mr, pb, blk, ldy, nr, first, last, J->row_terms + i, d,
                    colsum);
        return;
    }
    for (int r = 0; r < mr; r += 3) { /* three rows at a time (the last one or two alone) */
        const int rows = mr - r < 3 ? mr - r : 3;
        kernel_pairs[rows - 1][(nr + 7) / 8 - 1](groups, J->a16 + (i + r) * (J->kp / 2) + k0 / 2, J->kp / 2, pb,
                                                 blk + r * ldy, ldy, nr, first, last, J->row_terms + i + r,
                                                 d ? d + r : NULL, colsum);
    }
#else
    (void)J, (void)groups, (void)i, (void)k0, (void)mr, (void)pb, (void)blk, (void)ldy, (void)nr, (void)first,
        (void)last, (void)colsum, (void)d;
#endif
}

/* Column p of u as kp bytes (flipped, zero past k) into col; returns their sum (wrapping, as the lanes). */
static uint32_t column_bytes(const qjob *J, ptrdiff_t p, uint8_t *col)
{
    uint32_t sum = 0;
    for (ptrdiff_t j = 0; j < J->kp; j++) {
        col[j] = j < J->k ? J->b[J->koff[j] + J->poff[p]] ^ J->flip : 0;
        sum += col[j];
    }
    return sum;
}

/* Row i's sum with a column from its dot product with the column's bytes and their sum: plus the row term and
 * row_d times the column sum, wrapping as the tiles' lanes do. */
static inline int32_t dot_sum(const qjob *J, ptrdiff_t i, uint32_t dot, uint32_t colsum)
{
    const uint32_t d = J->row_d ? (uint32_t)J->row_d[i] * colsum : 0;
    return (int32_t)(dot + (uint32_t)J->row_terms[i] + d);
}

#if HAVE_X86_KERNELS
/* sum_j a[j] u[j] over kp on AVX2 (dot_vnni's sum), in wrapping uint32 as the lanes: 16 products at a time by VPMADDWD,
 * the weights read widened (a16 not NULL: the rows the tiles have just read, rather than a second stream) or as the
 * bytes a8; the last kp % 16 one by one. */
AVX2 static uint32_t dot_avx2(const int8_t *a8, const int16_t *a16, const uint8_t *u, ptrdiff_t kp)
{
    const ptrdiff_t full = kp / 16 * 16;
    __m256i acc = _mm256_setzero_si256();
    for (ptrdiff_t j = 0; j < full; j += 16) {
        const __m256i w = a16 ? _mm256_loadu_si256((const __m256i *)(a16 + j))
                              : _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a8 + j)));
        const __m256i col = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(u + j)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(col, w));
    }
    const __m128i half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    const __m128i pairs = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4E));
    uint32_t sum = (uint32_t)_mm_cvtsi128_si32(_mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 0xB1)));
    for (ptrdiff_t j = full; j < kp; j++)
        sum += (uint32_t)((int32_t)(a16 ? a16[j] : a8[j]) * u[j]);
    return sum;
}
#endif

/* The block's columns [tiled, ncols) of rows [i0, i1): the dot-product columns [ntile, n), each row's sum with the
 * column's bytes, its row term and row_d times the column's sum (wrapping as the tiles' lanes do). */
static void dot_columns(const qjob *J, int tiled, ptrdiff_t i0, ptrdiff_t i1, int32_t *blk, int ld)
{
#if HAVE_X86_KERNELS
    for (int c = tiled; c < ld; c++) {
        const ptrdiff_t e = c - tiled; /* dot column ntile + e */
        const uint8_t *u = J->dots + e * J->kp;
        for (ptrdiff_t i = i0; i < i1; i++) {
            const int16_t *a16 = (const int16_t *)(J->a16 + i * (J->kp / 2));
            blk[(i - i0) * ld + c] = dot_sum(J, i, dot_avx2(NULL, a16, u, J->kp), J->dotsums[e]);
        }
    }
#else
    (void)J, (void)tiled, (void)i0, (void)i1, (void)blk, (void)ld;
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
    const int tiled = (int)((c1 * NR < J->ntile ? c1 * NR : J->ntile) - q0); /* the chunk's columns in tiles */
    const int ncols = tiled + (tj == J->cn - 1 ? (int)(J->n - J->ntile) : 0); /* and the dot products' */
    const int rows = J->rows;
    const ptrdiff_t pstride = J->pstride, npanels = c1 - c0;
    /* scratch in floats: packed panels and the column sums (unless packed once for every task), then (other slot)
       the block */
    const size_t packed = J->packed ? 0 : ((size_t)(pstride * npanels) + 3) / 4;
    float *scratch = J->packed ? NULL : scratch_get(packed + (size_t)ncols + 16);
    int32_t *blk = (int32_t *)scratch_slot(SCRATCH_TILE, (size_t)((i1 - i0) * ncols));
    if ((!J->packed && !scratch) || !blk) {
        atomic_store(&J->fail, 1);
        return;
    }
    uint8_t *pb = (uint8_t *)scratch;
    int32_t *colsum = !J->row_d ? NULL : J->packed ? J->colsums + q0 : (int32_t *)(scratch + packed);
    if (colsum && !J->packed)
        memset(colsum, 0, sizeof(int32_t) * (size_t)ncols);
    for (int kb = 0; kb < J->nkb; kb++) {
        const ptrdiff_t k0 = (ptrdiff_t)kb * J->kcmax;
        const int kc = (int)(J->k - k0 < J->kcmax ? J->k - k0 : J->kcmax);
        if (J->packed)
            pb = J->packed + ((ptrdiff_t)kb * J->npn + c0) * pstride;
        else
            pack_u8(J, rows, pb, pstride, k0, kc, q0, tiled, colsum);
        for (ptrdiff_t i = i0; i < i1; i += MR) {
            const int mr = (int)(J->m - i < MR ? J->m - i : MR);
            for (ptrdiff_t jp = c0; jp < c1; jp++) {
                const ptrdiff_t q = jp * NR;
                const int nr = (int)(J->ntile - q < NR ? J->ntile - q : NR);
                tile(J, (kc + rows - 1) / rows, i, k0, mr, pb + (jp - c0) * pstride, blk + (i - i0) * ncols + (q - q0),
                     ncols, nr, kb == 0, kb == J->nkb - 1, colsum ? colsum + (q - q0) : NULL);
            }
        }
    }
    dot_columns(J, tiled, i0, i1, blk, ncols);
    J->epilogue(J->ectx, blk, ncols, i0, i1, q0, q0 + ncols);
}

/* The dot-product columns' bytes u (flipped, zero past k) and sums, gathered once for every task. 0 when out of
 * memory. */
static int gather_dot_columns(qjob *J)
{
    const ptrdiff_t count = J->n - J->ntile;
    J->dots = malloc((size_t)(count * J->kp));
    J->dotsums = malloc(sizeof(uint32_t) * (size_t)count);
    if (!J->dots || !J->dotsums)
        return 0;
    for (ptrdiff_t e = 0; e < count; e++)
        J->dotsums[e] = column_bytes(J, J->ntile + e, J->dots + e * J->kp);
    return 1;
}

/* Panel t of every k block into J->packed (and its columns' sums into J->colsums): one pool task per panel. */
static void pack_once_task(void *ctx, int t)
{
    qjob *J = ctx;
    const ptrdiff_t q0 = (ptrdiff_t)t * NR;
    const int width = (int)(J->ntile - q0 < NR ? J->ntile - q0 : NR);
    for (int kb = 0; kb < J->nkb; kb++) {
        const ptrdiff_t k0 = (ptrdiff_t)kb * J->kcmax;
        const int kc = (int)(J->k - k0 < J->kcmax ? J->k - k0 : J->kcmax);
        pack_u8(J, J->rows, J->packed + ((ptrdiff_t)kb * J->npn + t) * J->pstride, J->pstride, k0, kc, q0, width,
                J->colsums ? J->colsums + q0 : NULL);
    }
}

/* Every panel of every k block packed once, on the pool, for a grid whose row chunks would each pack the same
 * columns again (few columns, many rows: a 7x7 image's layers, a classifier's few tokens). 0 when out of memory. */
static int pack_once(qjob *J)
{
    J->packed = malloc((size_t)(J->pstride * J->npn * J->nkb));
    J->colsums = J->row_d ? calloc((size_t)(J->npn * NR), sizeof(int32_t)) : NULL;
    if (!J->packed || (J->row_d && !J->colsums)) {
        free(J->packed);
        free(J->colsums);
        J->packed = NULL;
        J->colsums = NULL;
        return 0;
    }
    pool_run((int)J->npn, pack_once_task, J);
    return 1;
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
        const uint32_t dot = kernels() == QUADS ? dot_vnni(a, G->u, kp) : dot_avx2(a, NULL, G->u, kp);
        sums[i - i0] = dot_sum(J, i, dot, G->colsum);
    }
    if (i1 > i0)
        J->epilogue(J->ectx, sums, 1, i0, i1, 0, 1);
}

static int qgemv(const qjob *J, int nt)
{
    uint8_t *u = (uint8_t *)scratch_slot(SCRATCH_CALLER, (size_t)(J->kp + 63) / 4 + 16);
    if (!u)
        return 0;
    gemv_job G = {.J = J, .u = u, .colsum = column_bytes(J, 0, u), .tasks = nt > 1 ? 2 * nt : 1};
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
    /* AVX2: one or two columns past a multiple of 8 (a 7x7 image's 49th) as dot products rather than a vector of 8 */
    J.ntile = kernels() == WIDENED && n > 8 && n % 8 <= DOT_COLUMNS ? n - n % 8 : n;
    J.npn = (J.ntile + NR - 1) / NR;
    const int kc = J.a16 ? KC_PAIRS : KC;
    J.kcmax = J.kp < kc ? (int)J.kp : kc;
    J.nkb = k <= 0 ? 1 : (int)((k + J.kcmax - 1) / J.kcmax);
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
    while (J.cm == 1 && J.cn % nt && 2 * (J.cn + 1) <= J.npn) /* as many column chunks for every thread */
        J.cn++;
    atomic_store(&J.fail, 0);
    J.rows = J.a16 ? 2 : 4;
    J.pstride = (ptrdiff_t)J.kcmax / J.rows * NR * 4 + 64;
    if (!J.contiguous && !gather_columns(&J, nt))
        return -1;
    const int tasks = J.cm * J.cn;
    if ((J.ntile < n && !gather_dot_columns(&J)) || (nt > 1 && tasks > 1 && J.cm > 1 && !pack_once(&J))) {
        free(J.cols);
        free((void *)J.runs);
        free(J.dots);
        free(J.dotsums);
        return -1;
    }
    if (nt == 1 || tasks == 1)
        for (int t = 0; t < tasks; t++)
            qgemm_task(&J, t);
    else
        pool_run(tasks, qgemm_task, &J);
    free(J.cols);
    free((void *)J.runs);
    free(J.packed);
    free(J.colsums);
    free(J.dots);
    free(J.dotsums);
    return atomic_load(&J.fail) ? -1 : 0;
}
