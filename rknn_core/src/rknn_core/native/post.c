/* The float epilogue of the convolutions: y = act(sums + residual), see post.h. */
#define PY_SSIZE_T_CLEAN
#include "post.h"

#include "clones.h"

/* Written so x86 compiles it to MAXPS/MINPS: a NaN input stays NaN. */
static inline float clamp(float v, float lo, float hi)
{
    v = lo > v ? lo : v;
    return hi < v ? hi : v;
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* y = v < 0 ? v * slope : v for v = sums (+ residual), eight at a time as a select (the compiler keeps the
 * scalar loop's branch otherwise), then one by one; sums and y may be the same row. */
HOT_EXACT static void prelu_row(const float *sums, const float *restrict residual, float *y, Py_ssize_t n,
                                float slope)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 v = *(const v8u *)(sums + i);
        if (residual)
            v += *(const v8u *)(residual + i);
        const v8i negative = v < (v8){0};
        *(v8u *)(y + i) = (v8)(((v8i)(v * slope) & negative) | ((v8i)v & ~negative));
    }
    for (; i < n; i++) {
        const float v = residual ? sums[i] + residual[i] : sums[i];
        y[i] = v < 0.0f ? v * slope : v;
    }
}

/* sums and y may be the same row (post_in_place): each output reads only its own sum, so the loops carry no
 * dependence (ivdep), and they vectorize even then. */
HOT_EXACT static void post_row(const float *sums, const float *restrict residual, float *y, Py_ssize_t n, int act,
                               float lo, float hi, float alpha, float beta, float slope)
{
    if (act == ACT_PRELU) {
        prelu_row(sums, residual, y, n, slope);
    } else if (act == ACT_CLAMP && !residual) {
#pragma GCC ivdep
        for (Py_ssize_t i = 0; i < n; i++)
            y[i] = clamp(sums[i], lo, hi);
    } else if (act == ACT_CLAMP) {
#pragma GCC ivdep
        for (Py_ssize_t i = 0; i < n; i++)
            y[i] = clamp(sums[i] + residual[i], lo, hi);
    } else {
#pragma GCC ivdep
        for (Py_ssize_t i = 0; i < n; i++) {
            const float v = residual ? sums[i] + residual[i] : sums[i];
            const float t = clamp(alpha * v + beta, 0.0f, 1.0f); /* no FMA: see HOT_EXACT */
            y[i] = act == ACT_HARD_SWISH ? v * t : t;
        }
    }
}

HOT_EXACT static void post_ops_row(const float_post *f, float *y, Py_ssize_t n)
{
    for (int k = 0; k < f->npost; k++) {
        const float v = f->post_value[k];
        if (f->post_op[k] == POST_MUL)
            for (Py_ssize_t i = 0; i < n; i++)
                y[i] = y[i] * v;
        else
            for (Py_ssize_t i = 0; i < n; i++)
                y[i] = y[i] + v;
    }
}

void post_apply(const float_post *f, const float *sums, float *y, Py_ssize_t n, Py_ssize_t i, Py_ssize_t p0,
                Py_ssize_t p1)
{
    const Py_ssize_t at = i * n + p0;
    const float slope = f->slopes ? f->slopes[i % f->channels] : 0.0f;
    post_row(sums, f->residual ? f->residual + at : NULL, y + at, p1 - p0, f->act, f->lo, f->hi, f->alpha, f->beta,
             slope);
    post_ops_row(f, y + at, p1 - p0);
}

void post_in_place(const float_post *f, float *row, Py_ssize_t n, Py_ssize_t channel)
{
    const float slope = f->slopes ? f->slopes[channel % f->channels] : 0.0f;
    post_row(row, NULL, row, n, f->act, f->lo, f->hi, f->alpha, f->beta, slope);
    post_ops_row(f, row, n);
}

/* The post ops (None or float32 (code, value) pairs) into f; 0 with an exception set when wrong. */
static int parse_post_ops(PyObject *post, float_post *f)
{
    Py_buffer b;
    f->npost = 0;
    if (post == NULL || post == Py_None)
        return 1;
    if (PyObject_GetBuffer(post, &b, PyBUF_SIMPLE) < 0)
        return 0;
    const Py_ssize_t count = b.len / (Py_ssize_t)(2 * sizeof(float));
    const float *pairs = b.buf;
    int ok = b.len == count * (Py_ssize_t)(2 * sizeof(float)) && count <= POST_OPS_MAX;
    for (Py_ssize_t k = 0; ok && k < count; k++) {
        ok = pairs[2 * k] == (float)POST_MUL || pairs[2 * k] == (float)POST_ADD;
        f->post_op[k] = (int)pairs[2 * k];
        f->post_value[k] = pairs[2 * k + 1];
    }
    PyBuffer_Release(&b);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "post must be float32 (code, value) pairs, code 0 (Mul) or 1 (Add), at most 4");
        return 0;
    }
    f->npost = (int)count;
    return 1;
}

static int take_buffer(PyObject *obj, Py_buffer *b, Py_ssize_t need, const char *what)
{
    if (PyObject_GetBuffer(obj, b, PyBUF_SIMPLE) < 0) {
        b->obj = NULL;
        return 0;
    }
    if (b->len < need * (Py_ssize_t)sizeof(float)) {
        PyBuffer_Release(b);
        b->obj = NULL;
        PyErr_Format(PyExc_ValueError, "the %s is too small", what);
        return 0;
    }
    return 1;
}

int parse_post(PyObject *residual, int act, double lo, double hi, double alpha, double beta, PyObject *slopes,
               PyObject *post, post_buffers *held, Py_ssize_t need, float_post *f)
{
    *f = (float_post){NULL, NULL, 1, act, (float)lo, (float)hi, (float)alpha, (float)beta, 0, {0}, {0}};
    held->residual.obj = held->slopes.obj = NULL;
    if (!parse_post_ops(post, f))
        return 0;
    if (act < ACT_CLAMP || act > ACT_PRELU) {
        PyErr_SetString(PyExc_ValueError, "unknown activation code (0 clamp, 1 HardSigmoid, 2 HardSwish, 3 PRelu)");
        return 0;
    }
    int has_slopes = slopes != NULL && slopes != Py_None;
    if (act == ACT_PRELU && !has_slopes) {
        PyErr_SetString(PyExc_ValueError, "PRelu (activation 3) needs its slopes");
        return 0;
    }
    if (has_slopes) {
        if (!take_buffer(slopes, &held->slopes, 1, "slopes buffer"))
            return 0;
        f->slopes = held->slopes.buf;
        f->channels = held->slopes.len / (Py_ssize_t)sizeof(float);
    }
    if (residual != NULL && residual != Py_None) {
        if (!take_buffer(residual, &held->residual, need, "residual (it must hold the whole output)")) {
            release_post(held);
            return 0;
        }
        f->residual = held->residual.buf;
    }
    return 1;
}

void release_post(post_buffers *held)
{
    if (held->residual.obj)
        PyBuffer_Release(&held->residual);
    if (held->slopes.obj)
        PyBuffer_Release(&held->slopes);
    held->residual.obj = held->slopes.obj = NULL;
}
