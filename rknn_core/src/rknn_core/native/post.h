/* The float epilogue of the convolutions (post.c): a fused residual add and activation. */
#ifndef RKNN_NATIVE_POST_H
#define RKNN_NATIVE_POST_H

#include <Python.h>

/* y = act(sums + residual): the clamp [lo, hi] (none, Relu, Clip), or HardSigmoid clamp(alpha*v + beta,
 * 0, 1), or HardSwish v * HardSigmoid(v), or PRelu (v < 0 ? v * slope of the row's channel : v); then
 * the post ops in order (y * value, y + value), each rounded as the standalone numpy ops round them (a
 * product, then a sum: no fused multiply-add). */
enum { ACT_CLAMP, ACT_HARD_SIGMOID, ACT_HARD_SWISH, ACT_PRELU };
enum { POST_MUL, POST_ADD, POST_OPS_MAX = 4 };

typedef struct {
    const float *residual; /* laid out as y, or NULL */
    const float *slopes;   /* ACT_PRELU: row i of y uses slopes[i % channels] */
    Py_ssize_t channels;
    int act;
    float lo, hi, alpha, beta;
    int npost;
    int post_op[POST_OPS_MAX];
    float post_value[POST_OPS_MAX];
} float_post;

/* The buffers parse_post holds (obj NULL when none), released by release_post. */
typedef struct {
    Py_buffer residual, slopes;
} post_buffers;

/* The epilogue on elements [p0, p1) of row i of y (rows of length n), from sums[0 .. p1 - p0), which
 * may be those very elements of y (in place). */
void post_apply(const float_post *f, const float *sums, float *y, Py_ssize_t n, Py_ssize_t i, Py_ssize_t p0,
                Py_ssize_t p1);
/* The epilogue (no residual) in place on n sums of one channel. */
void post_in_place(const float_post *f, float *row, Py_ssize_t n, Py_ssize_t channel);
/* The optional arguments (residual, act, alpha, beta, slopes, post) of conv_gemm and depthwise_conv2d with
 * the clamp [lo, hi] into f; the residual (when given, at least `need` floats) and the slopes (float32,
 * one per channel, required by ACT_PRELU) are held in `held` for the caller's release_post; post is
 * None or float32 (code, value) pairs (POST_MUL / POST_ADD), at most POST_OPS_MAX. 0 with an exception
 * set (and nothing held) when they are wrong. */
int parse_post(PyObject *residual, int act, double lo, double hi, double alpha, double beta, PyObject *slopes,
               PyObject *post, post_buffers *held, Py_ssize_t need, float_post *f);
void release_post(post_buffers *held);

#endif
