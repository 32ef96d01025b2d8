/* 2-D max pooling of NCHW planes (maxpool.c). */
#ifndef RKNN_NATIVE_MAXPOOL_H
#define RKNN_NATIVE_MAXPOOL_H

#include <Python.h>

/* maxpool2d(x, kind, y, planes, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl): y (planes, oh, ow) gets
 * the max of every kh x kw window (strides sh, sw; dilations dh, dw) of the (planes, h, w) planes of x,
 * input (0, 0) at padded (pt, pl) and the type's lowest value everywhere else; kinds f (float32), B, b,
 * h (uint8, int8, int16); results equal numpy's separable pooling bit for bit (see maxpool.c). */
PyObject *maxpool2d(PyObject *self, PyObject *args);

#endif
