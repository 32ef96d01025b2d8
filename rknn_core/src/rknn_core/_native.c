/* Compiled inner loops for the float simulator where numpy has no fast formulation.
 *
 * depthwise_conv2d(x, w, bias, y, n, c, h, w_, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, lo, hi, threads)
 *   x: float32 C-contiguous (N, C, H, W), unpadded; zero padding pt (top) / pl (left) is implicit
 *   w: float32 C-contiguous (C, KH, KW); bias: float32 (C,) or None
 *   y: float32 C-contiguous writable (N, C, OH, OW), overwritten with clamp(conv + bias, lo, hi)
 * The planes are split over `threads` POSIX threads (the caller picks the count).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

#define MAX_THREADS 64

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

static void dw_plane(const float *x, const float *k, float bias, float *y, const geometry *g)
{
    for (Py_ssize_t r = 0; r < g->oh; r++) {
        float *yrow = y + r * g->ow;
        for (Py_ssize_t c = 0; c < g->ow; c++)
            yrow[c] = bias;
        for (Py_ssize_t i = 0; i < g->kh; i++) {
            Py_ssize_t ih = r * g->sh + i * g->dh - g->pt;
            if (ih < 0 || ih >= g->h)
                continue;
            const float *xrow = x + ih * g->w;
            for (Py_ssize_t j = 0; j < g->kw; j++) {
                const float wv = k[i * g->kw + j];
                Py_ssize_t off = j * g->dw - g->pl, first, last;
                column_range(g, off, &first, &last);
                const float *xs = xrow + off;
                if (g->sw == 1) {
                    for (Py_ssize_t c = first; c < last; c++)
                        yrow[c] += wv * xs[c];
                } else {
                    for (Py_ssize_t c = first; c < last; c++)
                        yrow[c] += wv * xs[c * g->sw];
                }
            }
        }
        for (Py_ssize_t c = 0; c < g->ow; c++)
            yrow[c] = yrow[c] < g->lo ? g->lo : (yrow[c] > g->hi ? g->hi : yrow[c]);
    }
}

typedef struct {
    const float *x, *w, *bias;
    float *y;
    Py_ssize_t c, begin, end;
    const geometry *g;
} dw_job;

static void *dw_run(void *arg)
{
    const dw_job *j = (const dw_job *)arg;
    const geometry *g = j->g;
    for (Py_ssize_t p = j->begin; p < j->end; p++)
        dw_plane(j->x + p * g->h * g->w, j->w + (p % j->c) * g->kh * g->kw, j->bias ? j->bias[p % j->c] : 0.0f,
                 j->y + p * g->oh * g->ow, g);
    return NULL;
}

/* Run planes [0, planes) on up to `threads` threads; falls back to this thread if one cannot start. */
static void dw_parallel(dw_job base, Py_ssize_t planes, Py_ssize_t threads)
{
    pthread_t ids[MAX_THREADS];
    dw_job jobs[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > planes)
        threads = planes;
    for (Py_ssize_t t = 0; t < threads; t++) {
        jobs[t] = base;
        jobs[t].begin = planes * t / threads;
        jobs[t].end = planes * (t + 1) / threads;
        if (t > 0)
            started[t] = pthread_create(&ids[t], NULL, dw_run, &jobs[t]) == 0;
    }
    dw_run(&jobs[0]);
    for (Py_ssize_t t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            dw_run(&jobs[t]);
    }
}

static PyObject *depthwise_conv2d(PyObject *self, PyObject *args)
{
    Py_buffer xb, wb, yb, bb = {0};
    PyObject *bias_obj;
    Py_ssize_t n, c, threads;
    geometry g;
    if (!PyArg_ParseTuple(args, "y*y*Ow*nnnnnnnnnnnnnnffn", &xb, &wb, &bias_obj, &yb, &n, &c, &g.h, &g.w,
                          &g.kh, &g.kw, &g.oh, &g.ow, &g.sh, &g.sw, &g.dh, &g.dw, &g.pt, &g.pl, &g.lo, &g.hi,
                          &threads))
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
        dw_job base = {(const float *)xb.buf, (const float *)wb.buf, has_bias ? (const float *)bb.buf : NULL,
                       (float *)yb.buf, c, 0, 0, &g};
        Py_BEGIN_ALLOW_THREADS
        dw_parallel(base, n * c, threads);
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

static PyMethodDef methods[] = {
    {"depthwise_conv2d", depthwise_conv2d, METH_VARARGS,
     "Depthwise 2-D convolution of an NCHW input with implicit zero padding, bias and clamp."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Compiled simulator kernels.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
