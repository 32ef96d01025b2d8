/* Convolution as GEMM (gemm.c). */
#ifndef RKNN_NATIVE_GEMM_H
#define RKNN_NATIVE_GEMM_H

#include <Python.h>

/* conv_gemm(a, b, koff, poff, bias, y, m, k, n, lo, hi) for Python; its docstring. */
PyObject *py_conv_gemm(PyObject *self, PyObject *args);
extern const char conv_gemm_doc[];
/* Once, at module import: choose the micro-kernel tile for this CPU. */
void gemm_init(void);

#endif
