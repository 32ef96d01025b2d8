/*
 * A pointwise (1x1, stride 1, one group) float convolution and the depthwise convolution that alone reads
 * it, as one kernel: the expand and depthwise layers of MobileNetV2 / EfficientNet inverted residual blocks,
 * whose expanded tensor (up to 6x the block's input) would otherwise go out to memory and back.
 *
 * The output is cut into bands of rows, and the channels into ranges of DW_GROUP-channel groups; a pool
 * task takes one band and one range. It packs the input rows its band reads once (gemm_pack), then for each
 * group computes the group's expanded rows into a buffer that stays in L2 (gemm_packed: the tiles of
 * conv_gemm; the plane's last columns that conv_gemm sums as dot products, gemm_dot_column) and runs the
 * depthwise sums over that band (dw_sums: bias, then the taps in row-major order). Each value is computed
 * by the same arithmetic as the two convolutions one after the other, so the results are equal bit for bit;
 * bands overlap by the depthwise kernel's halo, whose expanded rows are computed twice.
 */
#define PY_SSIZE_T_CLEAN
#include "pwdw.h"

#include "depthwise.h"
#include "gemm.h"
#include "pool.h"
#include "post.h"

#include <math.h>
#include <stdatomic.h>
#include <unistd.h>

/* Floats that a task's packed input rows and one group's expanded rows may take: half of this core's L2 (1 MB
   assumed where the system does not say). */
static ptrdiff_t band_floats(void)
{
    static ptrdiff_t floats;
    if (!floats) {
        long bytes = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
        bytes = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        floats = (bytes > 0 ? bytes : 1024 * 1024) / 2 / (long)sizeof(float);
    }
    return floats;
}
/* Expanded tensors of fewer floats stay in L2 between the two kernels anyway: nothing to gain there (the
   default of pw_dw_conv's `least`). */
#define EXPANDED_FLOATS (256 * 1024)

typedef struct {
    const float *x, *w1, *b1, *w2, *b2;
    float *y;
    ptrdiff_t cin, cexp;
    geometry g; /* the depthwise over the whole expanded plane */
    float_post post1, post2;
    int plain1;       /* post1 is a bare clamp, applied in the tiles as conv_gemm does */
    ptrdiff_t ntile;  /* the plane's columns that conv_gemm tiles (the rest: dot products) */
    ptrdiff_t band;   /* output rows per band */
    int splits;       /* channel ranges per band */
    ptrdiff_t least;  /* the expanded tensor's floats below which the chain declines */
    atomic_int failed;
} pwdw_job;

static size_t round16(size_t floats)
{
    return (floats + 15) / 16 * 16;
}

/* One group's expanded rows of the band into e (count x n): conv_gemm's tiles on columns [0, tiled) and its dot
 * products on the rest, whose input columns are gathered in `columns` (cin floats each), then its epilogue; the
 * weights at next (or NULL) are prefetched at the end. */
static void expand_group(const pwdw_job *J, const float *packed, ptrdiff_t c0, int count, ptrdiff_t n,
                         ptrdiff_t tiled, const float *columns, const float *next, float *e)
{
    const ptrdiff_t cin = J->cin;
    const float *a = J->w1 + c0 * cin, *bias = J->b1 ? J->b1 + c0 : NULL;
    const float lo = J->plain1 ? J->post1.lo : -INFINITY, hi = J->plain1 ? J->post1.hi : INFINITY;
    gemm_packed(a, packed, bias, e, n, count, cin, n, tiled, lo, hi, next);
    for (ptrdiff_t p = tiled; p < n; p++)
        gemm_dot_column(a, count, cin, columns + (p - tiled) * cin, bias, lo, hi, e + p, n);
    if (!J->plain1)
        for (int i = 0; i < count; i++)
            post_in_place(&J->post1, e + i * n, n, c0 + i);
}

static void pwdw_task(void *ctx, int t)
{
    pwdw_job *J = ctx;
    const geometry *g = &J->g;
    const ptrdiff_t o0 = t / J->splits * J->band, o1 = o0 + J->band < g->oh ? o0 + J->band : g->oh;
    const ptrdiff_t groups = (J->cexp + DW_GROUP - 1) / DW_GROUP, split = t % J->splits;
    const ptrdiff_t g0 = groups * split / J->splits, g1 = groups * (split + 1) / J->splits;
    if (o0 >= o1 || g0 >= g1)
        return;
    ptrdiff_t r0;
    const geometry bg = dw_band(g, o0, o1, &r0); /* the band: its input rows as a plane, its output rows */
    const ptrdiff_t n = bg.h * g->w, ohw = g->oh * g->ow, taps = g->kh * g->kw, hw = g->h * g->w, first = r0 * g->w;
    /* the band's columns that conv_gemm tiles over the whole plane: the rest are its dot-product columns */
    const ptrdiff_t tiled = J->ntile <= first ? 0 : J->ntile - first < n ? J->ntile - first : n;
    const size_t dw = round16(dw_scratch_floats(&bg)), pack = round16(gemm_packed_floats(J->cin, n));
    float *scratch = scratch_get(dw + pack + round16((size_t)(DW_GROUP * n)) + (size_t)((n - tiled) * J->cin));
    if (!scratch) {
        atomic_store(&J->failed, 1);
        return;
    }
    float *packed = scratch + dw, *e = packed + pack, *columns = e + round16((size_t)(DW_GROUP * n));
    dw_prepare(scratch, &bg);
    if (n > 0)
        gemm_pack(packed, J->x + first, hw, J->cin, n);
    for (ptrdiff_t p = tiled; p < n; p++) /* the dot-product columns' inputs, once for every group */
        for (ptrdiff_t j = 0; j < J->cin; j++)
            columns[(p - tiled) * J->cin + j] = J->x[j * hw + first + p];
    for (ptrdiff_t gi = g0; gi < g1; gi++) {
        const ptrdiff_t c0 = gi * DW_GROUP;
        const int count = J->cexp - c0 < DW_GROUP ? (int)(J->cexp - c0) : DW_GROUP;
        if (n > 0)
            expand_group(J, packed, c0, count, n, tiled, columns,
                         gi + 1 < g1 ? J->w1 + (c0 + DW_GROUP) * J->cin : NULL, e);
        float *out = J->y + c0 * ohw + o0 * g->ow;
        dw_sums(e, n, 'f', 0, J->w2 + c0 * taps, J->b2 ? J->b2 + c0 : NULL, J->cexp, 0, count, scratch, out, ohw, &bg);
        for (int i = 0; i < count; i++)
            post_apply(&J->post2, out + i * ohw, J->y, ohw, c0 + i, o0 * g->ow, o1 * g->ow);
    }
}

/* Whether bands of `rows` output rows (all of them: the whole plane) expand at most an eighth more input rows
 * than they advance over: a middle band's rows with their halo. */
static int small_halo(const geometry *g, ptrdiff_t rows)
{
    ptrdiff_t read = (rows - 1) * g->sh + (g->kh - 1) * g->dh + 1, r0, r1;
    if (rows == g->oh) {
        dw_band_rows(g, 0, rows, &r0, &r1);
        read = r1 - r0;
    }
    return 8 * read <= 9 * rows * g->sh;
}

/* Bands and channel ranges: bands as tall as band_floats() allows; with several threads, more bands while
 * their halo stays small, then channel ranges, for two tasks per thread. 0 when the expanded tensor would stay
 * in cache anyway, or when even the tallest bands would expand too many rows twice (wide planes of many input
 * channels): the two kernels cost less then. */
static int plan_tasks(pwdw_job *J)
{
    const geometry *g = &J->g;
    if (J->cexp * g->h * g->w < J->least)
        return 0;
    const ptrdiff_t per_row = g->w * (J->cin + DW_GROUP), groups = (J->cexp + DW_GROUP - 1) / DW_GROUP;
    ptrdiff_t band = g->oh, r0, r1;
    for (dw_band_rows(g, 0, band, &r0, &r1); band > 1 && (r1 - r0) * per_row > band_floats();
         dw_band_rows(g, 0, band, &r0, &r1))
        band = (band + 1) / 2;
    if (!small_halo(g, band))
        return 0;
    ptrdiff_t bands = (g->oh + band - 1) / band;
    const int threads = pool_get_threads(), want = threads > 1 ? 2 * threads : 1;
    for (ptrdiff_t more = bands + 1; more <= want && more <= g->oh && small_halo(g, (g->oh + more - 1) / more);
         more++)
        bands = more;
    J->band = (g->oh + bands - 1) / bands;
    bands = (g->oh + J->band - 1) / J->band;
    const ptrdiff_t splits = (want + bands - 1) / bands;
    J->splits = (int)(splits < groups ? splits : groups);
    return 1;
}

int pwdw_run(const float *x, const float *w1, const float *b1, const float_post *post1, const float *w2,
             const float *b2, const float_post *post2, float *y, ptrdiff_t cin, ptrdiff_t cexp, const geometry *g,
             ptrdiff_t least)
{
    pwdw_job J = {.x = x, .w1 = w1, .b1 = b1, .w2 = w2, .b2 = b2, .y = y, .cin = cin, .cexp = cexp, .g = *g,
                  .post1 = *post1, .post2 = *post2, .least = least};
    J.plain1 = post1->act == ACT_CLAMP && !post1->residual && !post1->npost;
    J.ntile = gemm_tiled_columns(cin, g->h * g->w);
    atomic_store(&J.failed, 0);
    if (!plan_tasks(&J))
        return 0;
    const int tasks = (int)((g->oh + J.band - 1) / J.band) * J.splits;
    if (tasks == 1)
        pwdw_task(&J, 0);
    else
        pool_run(tasks, pwdw_task, &J);
    return atomic_load(&J.failed) ? -1 : 1;
}

const char pw_dw_conv_doc[] =
"pw_dw_conv(x, w1, b1, w2, b2, y, cin, cexp, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, epilogue1, epilogue2\n"
"           [, least])\n\n"
"A pointwise convolution (w1: float32 (cexp, cin), b1 (cexp,) or None) of one image x (float32 (cin, h, w))\n"
"and the depthwise convolution (w2: float32 (cexp, kh, kw), b2 or None; strides, dilations, top/left pads as\n"
"depthwise_conv2d) of its result, into y (float32 (cexp, oh, ow)), without writing the pointwise result out.\n"
"Each epilogue is (lo, hi, act, alpha, beta, slopes, post) as conv_gemm's and depthwise_conv2d's (no residual).\n"
"The values of conv_gemm then depthwise_conv2d, bit for bit.  Returns False, y untouched, where the expanded\n"
"tensor would stay in cache anyway (fewer than `least` floats, default 262144: 1 MB) or bands of output rows would compute too many expanded rows\n"
"twice (the two kernels cost less there), else True.\n"
"Releases the GIL.";

/* One epilogue tuple into f (its buffers in held); 0 with an exception set when wrong. */
static int parse_epilogue(PyObject *tuple, post_buffers *held, float_post *f)
{
    double lo, hi, alpha, beta;
    int act;
    PyObject *slopes, *post;
    if (!PyArg_ParseTuple(tuple, "ddiddOO", &lo, &hi, &act, &alpha, &beta, &slopes, &post))
        return 0;
    return parse_post(NULL, act, lo, hi, alpha, beta, slopes, post, held, 0, f);
}

/* A float32 buffer of at least `floats` floats, or None (obj NULL) when allowed; 0 with an exception set. */
static int float_buffer(PyObject *obj, int optional, Py_ssize_t floats, Py_buffer *b, int writable)
{
    b->obj = NULL;
    if (optional && obj == Py_None)
        return 1;
    if (PyObject_GetBuffer(obj, b, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
        b->obj = NULL;
        return 0;
    }
    if (b->len < floats * (Py_ssize_t)sizeof(float)) {
        PyBuffer_Release(b);
        b->obj = NULL;
        PyErr_SetString(PyExc_ValueError, "pw_dw_conv: buffer sizes do not match the shapes");
        return 0;
    }
    return 1;
}

PyObject *py_pw_dw_conv(PyObject *self, PyObject *args)
{
    PyObject *obj[6], *epilogue[2];
    Py_buffer b[6] = {{0}};
    post_buffers held[2] = {{{0}}};
    float_post post[2];
    Py_ssize_t cin, cexp, least = EXPANDED_FLOATS;
    geometry g;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOOnnnnnnnnnnnnnnOO|n", &obj[0], &obj[1], &obj[2], &obj[3], &obj[4], &obj[5], &cin,
                          &cexp, &g.h, &g.w, &g.kh, &g.kw, &g.oh, &g.ow, &g.sh, &g.sw, &g.dh, &g.dw, &g.pt, &g.pl,
                          &epilogue[0], &epilogue[1], &least))
        return NULL;
    if (cin <= 0 || cexp <= 0 || g.h <= 0 || g.w <= 0 || g.kh <= 0 || g.kw <= 0 || g.oh <= 0 || g.ow <= 0 ||
        g.sh <= 0 || g.sw <= 0 || g.dh <= 0 || g.dw <= 0) {
        PyErr_SetString(PyExc_ValueError, "pw_dw_conv: shapes, strides and dilations must be positive");
        return NULL;
    }
    dw_padded_size(&g);
    const Py_ssize_t floats[6] = {cin * g.h * g.w, cexp * cin, cexp, cexp * g.kh * g.kw, cexp, cexp * g.oh * g.ow};
    int ok = 1, rc = 0;
    for (int i = 0; i < 6; i++)
        ok = ok && float_buffer(obj[i], i == 2 || i == 4, floats[i], &b[i], i == 5);
    for (int i = 0; i < 2; i++)
        ok = ok && parse_epilogue(epilogue[i], &held[i], &post[i]);
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        rc = pwdw_run(b[0].buf, b[1].buf, b[2].obj ? b[2].buf : NULL, &post[0], b[3].buf, b[4].obj ? b[4].buf : NULL,
                      &post[1], b[5].buf, cin, cexp, &g, least);
        Py_END_ALLOW_THREADS
    }
    for (int i = 0; i < 6; i++)
        if (b[i].obj)
            PyBuffer_Release(&b[i]);
    for (int i = 0; i < 2; i++)
        release_post(&held[i]);
    if (!ok)
        return NULL;
    if (rc < 0)
        return PyErr_NoMemory();
    return PyBool_FromLong(rc);
}
