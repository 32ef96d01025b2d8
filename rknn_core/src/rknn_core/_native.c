/* Compiled inner loops for the float simulator where numpy has no fast formulation.
 *
 * depthwise_conv2d(x, w, bias, y, n, c, h, w_, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, lo, hi)
 *   x: float32 C-contiguous (N, C, H, W), unpadded; zero padding pt (top) / pl (left) is implicit
 *   w: float32 C-contiguous (C, KH, KW); bias: float32 (C,) or None
 *   y: float32 C-contiguous writable (N, C, OH, OW), overwritten with clamp(conv + bias, lo, hi)
 * Each plane is first copied into a zero-bordered scratch plane (it stays in cache), so the inner
 * loops run without bounds checks. Single-threaded: on the 2-vCPU machines measured, two threads
 * gained about 20%.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    Py_ssize_t h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
    Py_ssize_t ph, pw; /* the padded plane's size: every tap of every output lies inside it */
    float lo, hi;
} geometry;

/* Hot loops get an AVX2+FMA clone where the CPU has it (chosen once at load time), else plain code. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
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

/* Copy one input plane into the scratch plane, zero outside the input. */
static void pad_plane(const float *x, float *p, const geometry *g)
{
    memset(p, 0, sizeof(float) * g->ph * g->pw);
    for (Py_ssize_t r = 0; r < g->h; r++) {
        Py_ssize_t pr = r + g->pt;
        if (pr < 0 || pr >= g->ph)
            continue;
        Py_ssize_t c0 = g->pl < 0 ? -g->pl : 0, c1 = g->w;
        if (c1 + g->pl > g->pw)
            c1 = g->pw - g->pl;
        if (c1 > c0)
            memcpy(p + pr * g->pw + c0 + g->pl, x + r * g->w + c0, sizeof(float) * (c1 - c0));
    }
}

/* 3x3 kernel, one fused pass per output row. */
HOT static void dw_plane3x3(const float *restrict p, const float *restrict k, float bias, float *restrict y,
                            const geometry *g)
{
    const Py_ssize_t pw = g->pw, sw = g->sw, dw = g->dw, ow = g->ow;
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    const float lo = g->lo, hi = g->hi;
    for (Py_ssize_t r = 0; r < g->oh; r++) {
        const float *restrict r0 = p + r * g->sh * pw;
        const float *restrict r1 = r0 + g->dh * pw;
        const float *restrict r2 = r1 + g->dh * pw;
        float *restrict yrow = y + r * ow;
        for (Py_ssize_t c = 0; c < ow; c++) {
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
}

/* 3x3, stride 2, no dilation: each row of the padded plane is stored as its even then its odd
 * columns (built straight from the input), so that every load of the main loop is contiguous. */
HOT static void dw_plane3x3s2(const float *restrict x, float *restrict split, const float *restrict k, float bias,
                              float *restrict y, const geometry *g)
{
    const Py_ssize_t pw = g->pw, ow = g->ow, half = (pw + 1) / 2;
    for (Py_ssize_t pr = 0; pr < g->ph; pr++) {
        float *restrict even = split + pr * pw, *restrict odd = even + half;
        Py_ssize_t r = pr - g->pt;
        if (r < 0 || r >= g->h) {
            memset(even, 0, sizeof(float) * pw);
            continue;
        }
        const float *restrict src = x + r * g->w;
        memset(even, 0, sizeof(float) * pw);
        /* padded column q = 2c + parity reads input column q - pl when that lies in [0, w) */
        for (int parity = 0; parity < 2; parity++) {
            float *restrict dst = parity ? odd : even;
            Py_ssize_t span = g->w - 1 + g->pl - parity; /* last readable q - parity; may be negative */
            Py_ssize_t first = (g->pl - parity + 1) / 2, last = span < 0 ? 0 : span / 2 + 1;
            Py_ssize_t count = parity ? pw / 2 : half;
            first = first < 0 ? 0 : first;
            last = last > count ? count : last;
            const float *restrict s0 = src + parity - g->pl;
            for (Py_ssize_t c = first; c < last; c++)
                dst[c] = s0[2 * c];
        }
    }
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    const float lo = g->lo, hi = g->hi;
    for (Py_ssize_t r = 0; r < g->oh; r++) {
        const float *restrict e0 = split + 2 * r * pw, *restrict o0 = e0 + half;
        const float *restrict e1 = e0 + pw, *restrict o1 = e1 + half;
        const float *restrict e2 = e1 + pw, *restrict o2 = e2 + half;
        float *restrict yrow = y + r * ow;
        for (Py_ssize_t c = 0; c < ow; c++) {
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
            yrow[c] = clamp(acc, lo, hi);
        }
    }
}

/* Any kernel size: accumulate tap by tap over whole output rows. */
HOT static void dw_plane_taps(const float *restrict p, const float *restrict k, float bias, float *restrict y,
                              const geometry *g)
{
    const Py_ssize_t pw = g->pw, sw = g->sw, ow = g->ow;
    for (Py_ssize_t r = 0; r < g->oh; r++) {
        float *restrict yrow = y + r * ow;
        for (Py_ssize_t c = 0; c < ow; c++)
            yrow[c] = bias;
        for (Py_ssize_t i = 0; i < g->kh; i++) {
            const float *restrict prow = p + (r * g->sh + i * g->dh) * pw;
            for (Py_ssize_t j = 0; j < g->kw; j++) {
                const float wv = k[i * g->kw + j];
                const float *restrict xs = prow + j * g->dw;
                for (Py_ssize_t c = 0; c < ow; c++)
                    yrow[c] += wv * xs[c * sw];
            }
        }
        clamp_row(yrow, ow, g->lo, g->hi);
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
    g.ph = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    g.pw = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
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
             (!has_bias || bb.len >= (Py_ssize_t)sizeof(float) * c) && g.sh > 0 && g.sw > 0 && g.dh > 0 &&
             g.dw > 0 && g.oh > 0 && g.ow > 0;
    float *scratch = ok ? PyMem_RawMalloc(sizeof(float) * g.ph * g.pw) : NULL;
    if (ok && scratch == NULL) {
        ok = 0;
        PyErr_NoMemory();
    }
    if (ok) {
        const float *x = (const float *)xb.buf, *w = (const float *)wb.buf;
        const float *bias = has_bias ? (const float *)bb.buf : NULL;
        float *y = (float *)yb.buf;
        const int is3x3 = g.kh == 3 && g.kw == 3;
        const int stride2 = is3x3 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t p = 0; p < n * c; p++) {
            const float *k = w + (p % c) * g.kh * g.kw;
            const float b = bias ? bias[p % c] : 0.0f;
            const float *plane = x + p * g.h * g.w;
            float *out = y + p * g.oh * g.ow;
            if (stride2) {
                dw_plane3x3s2(plane, scratch, k, b, out, &g);
                continue;
            }
            pad_plane(plane, scratch, &g);
            if (is3x3)
                dw_plane3x3(scratch, k, b, out, &g);
            else
                dw_plane_taps(scratch, k, b, out, &g);
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(scratch);
    if (has_bias)
        PyBuffer_Release(&bb);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&yb);
    if (!ok) {
        if (!PyErr_Occurred())
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
