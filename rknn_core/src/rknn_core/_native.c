/* Compiled inner loops for the float simulator where numpy has no fast formulation.
 *
 * depthwise_conv2d(x, w, y, stride_h, stride_w, dilation_h, dilation_w)
 *   x: float32 C-contiguous (N, C, Hp, Wp), already padded
 *   w: float32 C-contiguous (C, KH, KW)
 *   y: float32 C-contiguous writable (N, C, OH, OW); overwritten with the result (no bias)
 * Shapes are taken from the buffers' lengths plus the explicit sizes passed in.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static void dw_plane(const float *x, Py_ssize_t hp, Py_ssize_t wp, const float *w, Py_ssize_t kh,
                     Py_ssize_t kw, float *y, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw)
{
    for (Py_ssize_t r = 0; r < oh; r++) {
        float *yrow = y + r * ow;
        for (Py_ssize_t c = 0; c < ow; c++)
            yrow[c] = 0.0f;
        for (Py_ssize_t i = 0; i < kh; i++) {
            const float *xrow = x + (r * sh + i * dh) * wp;
            for (Py_ssize_t j = 0; j < kw; j++) {
                const float wv = w[i * kw + j];
                const float *xs = xrow + j * dw;
                if (sw == 1) {
                    for (Py_ssize_t c = 0; c < ow; c++)
                        yrow[c] += wv * xs[c];
                } else {
                    for (Py_ssize_t c = 0; c < ow; c++)
                        yrow[c] += wv * xs[c * sw];
                }
            }
        }
    }
    (void)hp;
}

static PyObject *depthwise_conv2d(PyObject *self, PyObject *args)
{
    Py_buffer xb, wb, yb;
    Py_ssize_t n, c, hp, wp, kh, kw, oh, ow, sh, sw, dh, dw;
    if (!PyArg_ParseTuple(args, "y*y*w*nnnnnnnnnnnn", &xb, &wb, &yb, &n, &c, &hp, &wp, &kh, &kw, &oh,
                          &ow, &sh, &sw, &dh, &dw))
        return NULL;
    int ok = xb.len >= (Py_ssize_t)sizeof(float) * n * c * hp * wp &&
             wb.len >= (Py_ssize_t)sizeof(float) * c * kh * kw &&
             yb.len >= (Py_ssize_t)sizeof(float) * n * c * oh * ow &&
             (oh - 1) * sh + (kh - 1) * dh < hp && (ow - 1) * sw + (kw - 1) * dw < wp;
    if (ok) {
        const float *x = (const float *)xb.buf, *w = (const float *)wb.buf;
        float *y = (float *)yb.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t p = 0; p < n * c; p++)
            dw_plane(x + p * hp * wp, hp, wp, w + (p % c) * kh * kw, kh, kw, y + p * oh * ow, oh, ow,
                     sh, sw, dh, dw);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&yb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "depthwise_conv2d: buffer sizes do not match the geometry");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"depthwise_conv2d", depthwise_conv2d, METH_VARARGS, "Depthwise 2-D convolution of a padded NCHW input."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Compiled simulator kernels.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
