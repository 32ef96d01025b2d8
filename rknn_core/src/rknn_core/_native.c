/* Compiled inner loops for the float simulator where numpy has no fast formulation.
 *
 * depthwise_conv2d(x, w, bias, y, n, c, h, w_, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, lo, hi)
 *   x: float32 C-contiguous (N, C, H, W), unpadded; zero padding pt (top) / pl (left) is implicit
 *   w: float32 C-contiguous (C, KH, KW); bias: float32 (C,) or None
 *   y: float32 C-contiguous writable (N, C, OH, OW), overwritten with clamp(conv + bias, lo, hi)
 * Single-threaded: on the 2-vCPU machines measured, threads gave nothing (the loops are memory bound).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    Py_ssize_t h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
    float lo, hi;
} geometry;

/* first and one-past-last output column whose input column ow*sw + off lies in [0, w) */
static void column_range(const geometry *g, Py_ssize_t off, Py_ssize_t *first, Py_ssize_t *last)
{
    Py_ssize_t a = off < 0 ? (-off + g->sw - 1) / g->sw : 0;
    Py_ssize_t b = g->w - 1 - off < 0 ? 0 : (g->w - 1 - off) / g->sw + 1;
    *first = a;
    *last = b < g->ow ? b : g->ow;
}

/* Hot loops get an AVX2+FMA clone where the CPU has it (chosen once at load time), else plain code. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HOT __attribute__((target_clones("arch=haswell", "default")))
#else
#define HOT
#endif

/* Written so x86 compiles it to MAXPS/MINPS: a NaN input stays NaN. */
static inline float clamp(float v, float lo, float hi)
{
    v = lo > v ? lo : v;
    return hi < v ? hi : v;
}

HOT static void clamp_row(float *restrict y, Py_ssize_t n, float lo, float hi)
{
    for (Py_ssize_t c = 0; c < n; c++)
        y[c] = clamp(y[c], lo, hi);
}

/* Rows r whose taps all fall inside the input, for a 3x3 kernel: one fused pass per output row. */
HOT static void dw_row3x3(const float *restrict x, const float *restrict k, float bias, float *restrict yrow,
                          const geometry *g, Py_ssize_t r, Py_ssize_t c_lo, Py_ssize_t c_hi)
{
    const Py_ssize_t w = g->w, sw = g->sw, dw = g->dw, base = r * g->sh - g->pt;
    const float *restrict r0 = x + base * w - g->pl;
    const float *restrict r1 = r0 + g->dh * w;
    const float *restrict r2 = r1 + g->dh * w;
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    const float lo = g->lo, hi = g->hi;
    for (Py_ssize_t c = c_lo; c < c_hi; c++) {
        const Py_ssize_t b = c * sw;
        float acc = bias;
        acc += k0 * r0[b];
        acc += k1 * r0[b + dw];
        acc += k2 * r0[b + 2 * dw];
        acc += k3 * r1[b];
        acc += k4 * r1[b + dw];
        acc += k5 * r1[b + 2 * dw];
        acc += k6 * r2[b];
        acc += k7 * r2[b + dw];
        acc += k8 * r2[b + 2 * dw];
        yrow[c] = clamp(acc, lo, hi);
    }
}

/* One output element with bounds checks (borders, any kernel size). */
static float dw_point(const float *x, const float *k, float bias, const geometry *g, Py_ssize_t r, Py_ssize_t c)
{
    float acc = bias;
    for (Py_ssize_t i = 0; i < g->kh; i++) {
        Py_ssize_t ih = r * g->sh + i * g->dh - g->pt;
        if (ih < 0 || ih >= g->h)
            continue;
        for (Py_ssize_t j = 0; j < g->kw; j++) {
            Py_ssize_t iw = c * g->sw + j * g->dw - g->pl;
            if (iw >= 0 && iw < g->w)
                acc += k[i * g->kw + j] * x[ih * g->w + iw];
        }
    }
    return clamp(acc, g->lo, g->hi);
}

/* Any kernel: accumulate tap by tap over the valid columns of each row. */
HOT static void dw_row_taps(const float *restrict x, const float *restrict k, float bias, float *restrict yrow,
                            const geometry *g, Py_ssize_t r)
{
    const Py_ssize_t ow = g->ow, sw = g->sw;
    for (Py_ssize_t c = 0; c < ow; c++)
        yrow[c] = bias;
    for (Py_ssize_t i = 0; i < g->kh; i++) {
        Py_ssize_t ih = r * g->sh + i * g->dh - g->pt;
        if (ih < 0 || ih >= g->h)
            continue;
        const float *restrict xrow = x + ih * g->w;
        for (Py_ssize_t j = 0; j < g->kw; j++) {
            const float wv = k[i * g->kw + j];
            Py_ssize_t off = j * g->dw - g->pl, first, last;
            column_range(g, off, &first, &last);
            for (Py_ssize_t c = first; c < last; c++)
                yrow[c] += wv * xrow[c * sw + off];
        }
    }
    clamp_row(yrow, ow, g->lo, g->hi);
}

static void dw_plane(const float *x, const float *k, float bias, float *y, const geometry *g)
{
    Py_ssize_t c_lo = 0, c_hi = g->ow;
    for (Py_ssize_t j = 0; j < g->kw; j++) {
        Py_ssize_t first, last;
        column_range(g, j * g->dw - g->pl, &first, &last);
        c_lo = first > c_lo ? first : c_lo;
        c_hi = last < c_hi ? last : c_hi;
    }
    if (c_hi < c_lo)
        c_hi = c_lo;
    const int is3x3 = g->kh == 3 && g->kw == 3;
    for (Py_ssize_t r = 0; r < g->oh; r++) {
        float *yrow = y + r * g->ow;
        Py_ssize_t top = r * g->sh - g->pt, bottom = top + (g->kh - 1) * g->dh;
        if (is3x3 && top >= 0 && bottom < g->h) {
            dw_row3x3(x, k, bias, yrow, g, r, c_lo, c_hi);
            for (Py_ssize_t c = 0; c < c_lo; c++)
                yrow[c] = dw_point(x, k, bias, g, r, c);
            for (Py_ssize_t c = c_hi; c < g->ow; c++)
                yrow[c] = dw_point(x, k, bias, g, r, c);
        } else {
            dw_row_taps(x, k, bias, yrow, g, r);
        }
    }
}

static PyObject *depthwise_conv2d(PyObject *self, PyObject *args)
{
    Py_buffer xb, wb, yb, bb = {0};
    PyObject *bias_obj;
    Py_ssize_t n, c;
    geometry g;
    if (!PyArg_ParseTuple(args, "y*y*Ow*nnnnnnnnnnnnnnff", &xb, &wb, &bias_obj, &yb, &n, &c, &g.h, &g.w,
                          &g.kh, &g.kw, &g.oh, &g.ow, &g.sh, &g.sw, &g.dh, &g.dw, &g.pt, &g.pl, &g.lo, &g.hi))
        return NULL;
    int has_bias = bias_obj != Py_None;
    if (has_bias && PyObject_GetBuffer(bias_obj, &bb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&xb);
        PyBuffer_Release(&wb);
        PyBuffer_Release(&yb);
        return NULL;
    }
    int ok = xb.len >= (Py_ssize_t)sizeof(float) * n * c * g.h * g.w &&
             wb.len >= (Py_ssize_t)sizeof(float) * c * g.kh * g.kw &&
             yb.len >= (Py_ssize_t)sizeof(float) * n * c * g.oh * g.ow &&
             (!has_bias || bb.len >= (Py_ssize_t)sizeof(float) * c) && g.sh > 0 && g.sw > 0;
    if (ok) {
        const float *x = (const float *)xb.buf, *w = (const float *)wb.buf;
        const float *bias = has_bias ? (const float *)bb.buf : NULL;
        float *y = (float *)yb.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t p = 0; p < n * c; p++)
            dw_plane(x + p * g.h * g.w, w + (p % c) * g.kh * g.kw, bias ? bias[p % c] : 0.0f, y + p * g.oh * g.ow, &g);
        Py_END_ALLOW_THREADS
    }
    if (has_bias)
        PyBuffer_Release(&bb);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&yb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "depthwise_conv2d: buffer sizes do not match the geometry");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* bias_clamp(y, bias, n, c, plane, lo, hi): y[n, c, :] = clamp(y + bias[c], lo, hi) in place. */
static PyObject *bias_clamp(PyObject *self, PyObject *args)
{
    Py_buffer yb, bb = {0};
    PyObject *bias_obj;
    Py_ssize_t n, c, plane;
    float lo, hi;
    if (!PyArg_ParseTuple(args, "w*Onnnff", &yb, &bias_obj, &n, &c, &plane, &lo, &hi))
        return NULL;
    int has_bias = bias_obj != Py_None;
    if (has_bias && PyObject_GetBuffer(bias_obj, &bb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&yb);
        return NULL;
    }
    int ok = yb.len >= (Py_ssize_t)sizeof(float) * n * c * plane && (!has_bias || bb.len >= (Py_ssize_t)sizeof(float) * c);
    if (ok) {
        float *y = (float *)yb.buf;
        const float *bias = has_bias ? (const float *)bb.buf : NULL;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t p = 0; p < n * c; p++) {
            float *restrict row = y + p * plane;
            if (bias) {
                const float b = bias[p % c];
                for (Py_ssize_t i = 0; i < plane; i++)
                    row[i] += b;
            }
            clamp_row(row, plane, lo, hi);
        }
        Py_END_ALLOW_THREADS
    }
    if (has_bias)
        PyBuffer_Release(&bb);
    PyBuffer_Release(&yb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "bias_clamp: buffer sizes do not match");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bias_clamp", bias_clamp, METH_VARARGS, "Add a per-channel bias and clamp an NCHW float32 array in place."},
    {"depthwise_conv2d", depthwise_conv2d, METH_VARARGS,
     "Depthwise 2-D convolution of an NCHW input with implicit zero padding, bias and clamp."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Compiled simulator kernels.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
