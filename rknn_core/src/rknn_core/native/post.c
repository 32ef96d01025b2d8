/* The float epilogue of the convolutions: y = act(sums + residual), see post.h. */
#define PY_SSIZE_T_CLEAN
#include "post.h"

/* Written so x86 compiles it to MAXPS/MINPS: a NaN input stays NaN. */
static inline float clamp(float v, float lo, float hi)
{
    v = lo > v ? lo : v;
    return hi < v ? hi : v;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HOT_EXACT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                 optimize("fp-contract=off")))
#else
#define HOT_EXACT
#endif

HOT_EXACT static void post_row(const float *sums, const float *restrict residual, float *y, Py_ssize_t n, int act,
                               float lo, float hi, float alpha, float beta)
{
    if (act == ACT_CLAMP && !residual) {
        for (Py_ssize_t i = 0; i < n; i++)
            y[i] = clamp(sums[i], lo, hi);
    } else if (act == ACT_CLAMP) {
        for (Py_ssize_t i = 0; i < n; i++)
            y[i] = clamp(sums[i] + residual[i], lo, hi);
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            const float v = residual ? sums[i] + residual[i] : sums[i];
            const float t = clamp(alpha * v + beta, 0.0f, 1.0f); /* no FMA: see HOT_EXACT */
            y[i] = act == ACT_HARD_SWISH ? v * t : t;
        }
    }
}

void post_apply(const float_post *f, const float *sums, float *y, Py_ssize_t n, Py_ssize_t i, Py_ssize_t p0,
                Py_ssize_t p1)
{
    const Py_ssize_t at = i * n + p0;
    post_row(sums, f->residual ? f->residual + at : NULL, y + at, p1 - p0, f->act, f->lo, f->hi, f->alpha, f->beta);
}

int parse_post(PyObject *residual, int act, double lo, double hi, double alpha, double beta, Py_buffer *rb,
               Py_ssize_t need, float_post *f)
{
    *f = (float_post){NULL, act, (float)lo, (float)hi, (float)alpha, (float)beta};
    rb->obj = NULL;
    if (act < ACT_CLAMP || act > ACT_HARD_SWISH) {
        PyErr_SetString(PyExc_ValueError, "unknown activation code (0 clamp, 1 HardSigmoid, 2 HardSwish)");
        return 0;
    }
    if (residual == NULL || residual == Py_None)
        return 1;
    if (PyObject_GetBuffer(residual, rb, PyBUF_SIMPLE) < 0)
        return 0;
    if (rb->len < need * (Py_ssize_t)sizeof(float)) {
        PyBuffer_Release(rb);
        rb->obj = NULL;
        PyErr_SetString(PyExc_ValueError, "the residual is smaller than the output");
        return 0;
    }
    f->residual = rb->buf;
    return 1;
}

