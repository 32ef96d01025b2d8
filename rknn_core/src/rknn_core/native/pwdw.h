/* A pointwise convolution and the depthwise convolution that reads it, fused (pwdw.c). */
#ifndef RKNN_NATIVE_PWDW_H
#define RKNN_NATIVE_PWDW_H

#include <Python.h>

#include "depthwise.h"
#include "post.h"

/* y (cexp x g->oh x g->ow) = post2(depthwise(post1(w1 x + b1)) + b2) for one image x (cin x g->h x g->w):
 * w1 cexp x cin, w2 cexp x kh x kw, biases NULL or one per channel, the epilogues without residuals; the
 * values of conv_gemm then depthwise_conv2d bit for bit. On the thread pool (GIL released by the caller);
 * 1 when done, 0 (y untouched) when the expanded tensor has fewer than `least` floats (it would stay in cache
 * anyway) or its bands would expand too many rows twice, -1 when scratch memory ran out. */
int pwdw_run(const float *x, const float *w1, const float *b1, const float_post *post1, const float *w2,
             const float *b2, const float_post *post2, float *y, ptrdiff_t cin, ptrdiff_t cexp, const geometry *g,
             ptrdiff_t least);

/* pw_dw_conv(...) for Python; its docstring. */
PyObject *py_pw_dw_conv(PyObject *self, PyObject *args);
extern const char pw_dw_conv_doc[];

#endif
