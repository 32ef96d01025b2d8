/* Integer convolution GEMM on 8-bit operands (qgemm.c). */
#ifndef RKNN_NATIVE_QGEMM_H
#define RKNN_NATIVE_QGEMM_H

#include <Python.h>

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

/* Whether this CPU has the instructions of the 8-bit kernels (AVX-512 VNNI, or AVX2), checked once at import;
 * without them the callers use the float32 GEMM, whose exact sums are the same numbers. */
int qgemm_available(void);

/* The m x kp weights a8 as this CPU's kernels read them, for qgemm_run's a16: on AVX2, sign-extended to 16 bits
 * (each word a pair of consecutive weights). Returns the words they take (m * kp / 2; 0 where the kernels read
 * a8 itself: VNNI, or none) and writes them to `out` unless it is NULL. */
ptrdiff_t qgemm_pairs(const int8_t *a8, ptrdiff_t m, ptrdiff_t kp, int32_t *out);

/* Called once per finished block of int32 sums, as gemm_epilogue (gemm.h). */
typedef void (*qgemm_epilogue)(void *ctx, const int32_t *block, ptrdiff_t ld, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t p0,
                               ptrdiff_t p1);

/* The exact integer sums
 *     s[i, p] = sum_j a8[i*kp + j] * u[j, p] + row_terms[i] + row_d[i] * sum_j u[j, p]
 * with u[j, p] = b[koff[j] + poff[p]] as unsigned bytes (b_kind 'B'), or as signed bytes plus 128
 * (b_kind 'b'); a8 holds m rows of kp = k rounded up to 4 signed bytes (zero past k), row_d may be
 * NULL (all zero); a16 is qgemm_pairs of a8, or NULL to make it on every call. Every sum must fit
 * int32 (the lanes wrap, so partial terms need not): the finished blocks reach the epilogue on the
 * pool thread that computed them, as in gemm_run. Returns -1 when scratch memory ran out. */
int qgemm_run(const int8_t *a8, const int32_t *a16, const int32_t *row_terms, const int32_t *row_d, const void *b,
              int b_kind, const int64_t *koff, const int64_t *poff, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n,
              qgemm_epilogue epilogue, void *ectx);

#endif
