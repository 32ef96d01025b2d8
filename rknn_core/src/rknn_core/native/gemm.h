/* Convolution as GEMM (gemm.c). */
#ifndef RKNN_NATIVE_GEMM_H
#define RKNN_NATIVE_GEMM_H

#include <Python.h>

#include <stddef.h>
#include <stdint.h>

/* Called once per finished block of sums, rows [i0, i1) by columns [p0, p1), on the pool thread that
 * computed it: block points at element (i0, p0) of a thread-local buffer with row stride ld, so the
 * sums are consumed while in cache and y itself is not written. */
typedef void (*gemm_epilogue)(void *ctx, const float *block, ptrdiff_t ld, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t p0,
                              ptrdiff_t p1);

/* y[i*n+p] = clamp(sum_j a[i*k+j] * b[koff[j]+poff[p]] + bias[i], lo, hi) on the thread pool (GIL
 * released by the caller), or, with an epilogue, those values handed to it block by block (y unused,
 * may be NULL); returns -1 when scratch memory ran out. b holds float32 (b_kind 'f') or 8-bit storage
 * (b_kind 'B' or 'b'), read as its value minus b_zero. */
int gemm_run(const float *a, const void *b, int b_kind, float b_zero, const int64_t *koff, const int64_t *poff,
             const float *bias, float *y, ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, float lo, float hi,
             gemm_epilogue epilogue, void *ectx);
/* NULL when the buffers fit the shapes (a: m*k floats, unchecked when NULL; koff/poff: k/n int64
 * indexing inside b, whose elements are b_size bytes), else why not. */
const char *gemm_check(const Py_buffer *a, const Py_buffer *b, Py_ssize_t b_size, const Py_buffer *ko,
                       const Py_buffer *po, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n);

/* The columns [0, ntile) of a (k, n) GEMM that gemm_run computes as tiles; the rest (fewer than half a
 * panel) are dot products (gemm_dot_column). */
ptrdiff_t gemm_tiled_columns(ptrdiff_t k, ptrdiff_t n);
/* Serial blocks with gemm_run's arithmetic, for kernels that keep a GEMM's result in cache: gemm_pack lays
 * rows [0, k) of b (row j at b + j * ldb, n contiguous floats) out as the micro-kernels' panels into pb
 * (gemm_packed_floats(k, n) floats, 64-byte aligned); gemm_packed computes columns [0, tiled) of y (m x n, row
 * stride ldy) = clamp(a (m x k, row-major) x b + bias, lo, hi) from them on the calling thread as tiles,
 * prefetching the strips of a it reads next and then the MR rows of k floats at next (NULL: none). */
size_t gemm_packed_floats(ptrdiff_t k, ptrdiff_t n);
void gemm_pack(float *pb, const float *b, ptrdiff_t ldb, ptrdiff_t k, ptrdiff_t n);
void gemm_packed(const float *a, const float *pb, const float *bias, float *y, ptrdiff_t ldy, ptrdiff_t m,
                 ptrdiff_t k, ptrdiff_t n, ptrdiff_t tiled, float lo, float hi, const float *next);
/* y[i * ldy] = clamp(sum_j a[i*k + j] * col[j] + bias[i], lo, hi) for rows [0, m): gemm_run's dot-product
 * columns. */
void gemm_dot_column(const float *a, ptrdiff_t m, ptrdiff_t k, const float *col, const float *bias, float lo,
                     float hi, float *y, ptrdiff_t ldy);

/* conv_gemm(a, b, koff, poff, bias, y, m, k, n, lo, hi) for Python; its docstring. */
PyObject *py_conv_gemm(PyObject *self, PyObject *args);
extern const char conv_gemm_doc[];
/* Once, at module import: choose the micro-kernel tile for this CPU. */
void gemm_init(void);

#endif
