/*
 * 2-D max pooling of NCHW planes, and its Python binding maxpool2d (see maxpool.h).
 *
 * Separable, as the numpy path of ops/pool.py: the maxima down the kh taps of each window column
 * first (in tap order), then across the kw taps of those (in tap order). Each combine is
 * np.maximum's: acc when acc is NaN, else the larger, the new value on a tie; so a window with a NaN
 * gives the first NaN met, and signed zeros come out as numpy gives them. Padding cells hold the
 * type's lowest value (-FLT_MAX for float32, as numpy pads) and take part in the max, so a window of
 * -inf and padding gives -FLT_MAX there too.
 *
 * Each stage is a few flat passes over whole planes, whatever the strides: the padded plane keeps its
 * rows grouped by row phase (padded row r * sh + a is row r of phase a), so tap i of every output row,
 * padded row r * sh + i * dh, is row r + i * dh / sh of phase i * dh % sh, and one pass per tap gives
 * the column maxima of all output rows (rows of ld). Those split into their sw column phases (rows of
 * qw), tap j of output column c, column c * sw + j * dw, is column c + j * dw / sw of phase
 * j * dw % sw: one pass per tap again; the qw - ow extra columns of each row are computed and dropped.
 * Planes are shared out over the thread pool (pool.h) when the work is large enough.
 */
#define PY_SSIZE_T_CLEAN
#include "maxpool.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

#include "depthwise.h"
#include "pool.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* np.maximum(a, b): a when it is NaN, else the larger, b on a tie (MAXPS plus a NaN blend). */
#define MAX_FLOAT(a, b) ((a) != (a) || (a) > (b) ? (a) : (b))
#define MAX_INT(a, b) ((a) > (b) ? (a) : (b))

/* Where a plane's stages live in a task's scratch, in elements (see the top of the file). */
typedef struct {
    ptrdiff_t qh, qw; /* rows per row phase ceil(ph / sh), columns per column phase ceil(pw / sw) */
    ptrdiff_t ld;     /* row stride of the padded plane and of the column maxima: qw * sw >= pw */
    ptrdiff_t r0, r1; /* the padded rows [r0, r1) hold input rows r0 - pt ... */
    ptrdiff_t c0, c1; /* the padded columns [c0, c1) hold input columns c0 - pl ... */
    ptrdiff_t tail;   /* elements the dropped columns of the last row read past the column maxima */
    ptrdiff_t padded; /* sh * qh * ld: the padded plane, rows grouped by row phase */
    ptrdiff_t maxima; /* oh * ld + tail: the column maxima */
    ptrdiff_t phase;  /* oh * qw + tail: one column phase of them (sw of them when sw > 1) */
    ptrdiff_t wide;   /* oh * qw: the outputs with their extra columns (when qw != ow) */
} plane_layout;

typedef struct maxpool_job maxpool_job;

/* The kernels of one element type (see MAXPOOL_KERNELS). */
typedef struct {
    int kind;
    ptrdiff_t size; /* bytes per element */
    void (*plane)(const maxpool_job *J, const void *x, void *y, void *scratch);
    void (*fill)(void *p, ptrdiff_t n);
} type_kernels;

struct maxpool_job {
    const type_kernels *k;
    const char *x;
    char *y;
    ptrdiff_t planes;
    int tasks, failed;
    geometry g;
    plane_layout l;
};

/* The kernels of element type T (suffix S):
 *   max2_S(dst, a, b, n): dst[i] = max(a[i], b[i]) (dst may be a);
 *   taps_S(dst, base, k, d, s, phase, unit, n): dst = the max over taps t < k, in order, of the n
 *       elements at base + (t * d % s) * phase + (t * d / s) * unit;
 *   split_S(m, phases, sw, count, phase): the count * sw elements of m as sw phases (stride phase):
 *       m[e] is element e / sw of phase e % sw; the stride 2 compiled apart so that it vectorizes;
 *   plane_S(J, x, y, scratch): one output plane from one input plane; scratch holds the padded plane
 *       (its padding cells the lowest value), then the column maxima, the phases, the wide outputs;
 *   fill_S(p, n): n lowest values. */
#define MAXPOOL_KERNELS(S, T, MAX, LOWEST)                                                                     \
    static inline void max2_##S(T *dst, const T *a, const T *restrict b, ptrdiff_t n)                          \
    {                                                                                                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                                                   \
            const T u = a[i], v = b[i]; /* both loaded: a load under a condition vectorizes poorly */         \
            dst[i] = MAX(u, v);                                                                               \
        }                                                                                                     \
    }                                                                                                         \
    static inline void taps_##S(T *dst, const T *base, ptrdiff_t k, ptrdiff_t d, ptrdiff_t s, ptrdiff_t phase, \
                                ptrdiff_t unit, ptrdiff_t n)                                                  \
    {                                                                                                         \
        if (k == 1)                                                                                           \
            memcpy(dst, base, sizeof(T) * (size_t)n);                                                         \
        for (ptrdiff_t t = 1; t < k; t++)                                                                     \
            max2_##S(dst, t == 1 ? base : dst, base + t * d % s * phase + t * d / s * unit, n);               \
    }                                                                                                         \
    static inline void split_##S(const T *restrict m, T *restrict phases, ptrdiff_t sw, ptrdiff_t count,      \
                                 ptrdiff_t phase)                                                             \
    {                                                                                                         \
        if (sw == 2) {                                                                                        \
            for (ptrdiff_t e = 0; e < count; e++) {                                                           \
                phases[e] = m[2 * e];                                                                         \
                phases[phase + e] = m[2 * e + 1];                                                             \
            }                                                                                                 \
        } else {                                                                                              \
            for (ptrdiff_t e = 0; e < count * sw; e++)                                                        \
                phases[e % sw * phase + e / sw] = m[e];                                                       \
        }                                                                                                     \
    }                                                                                                         \
    HOT static void plane_##S(const maxpool_job *J, const void *x_, void *y_, void *scratch)                  \
    {                                                                                                         \
        const geometry *g = &J->g;                                                                            \
        const plane_layout *l = &J->l;                                                                        \
        const T *x = x_;                                                                                      \
        T *y = y_, *padded = scratch, *maxima = padded + l->padded, *phases = maxima + l->maxima;             \
        T *wide = phases + (g->sw > 1 ? g->sw * l->phase : 0);                                                \
        for (ptrdiff_t r = l->r0; r < l->r1; r++)                                                             \
            memcpy(padded + (r % g->sh * l->qh + r / g->sh) * l->ld + l->c0,                                  \
                   x + (r - g->pt) * g->w + l->c0 - g->pl, sizeof(T) * (size_t)(l->c1 - l->c0));              \
        taps_##S(maxima, padded, g->kh, g->dh, g->sh, l->qh * l->ld, l->ld, g->oh * l->ld);                   \
        const T *columns = maxima;                                                                            \
        if (g->sw > 1) {                                                                                      \
            split_##S(maxima, phases, g->sw, g->oh * l->qw, l->phase);                                        \
            columns = phases;                                                                                 \
        }                                                                                                     \
        T *out = l->wide ? wide : y;                                                                          \
        taps_##S(out, columns, g->kw, g->dw, g->sw, l->phase, 1, g->oh * l->qw);                              \
        if (l->wide)                                                                                          \
            for (ptrdiff_t r = 0; r < g->oh; r++)                                                             \
                memcpy(y + r * g->ow, wide + r * l->qw, sizeof(T) * (size_t)g->ow);                           \
    }                                                                                                         \
    static void fill_##S(void *p_, ptrdiff_t n)                                                               \
    {                                                                                                         \
        T *p = p_;                                                                                            \
        for (ptrdiff_t i = 0; i < n; i++)                                                                     \
            p[i] = LOWEST;                                                                                    \
    }

MAXPOOL_KERNELS(f32, float, MAX_FLOAT, -FLT_MAX)
MAXPOOL_KERNELS(u8, uint8_t, MAX_INT, 0)
MAXPOOL_KERNELS(i8, int8_t, MAX_INT, INT8_MIN)
MAXPOOL_KERNELS(i16, int16_t, MAX_INT, INT16_MIN)

static const type_kernels KERNELS[] = {
    {'f', 4, plane_f32, fill_f32},
    {'B', 1, plane_u8, fill_u8},
    {'b', 1, plane_i8, fill_i8},
    {'h', 2, plane_i16, fill_i16},
};

static const type_kernels *kernels_of(int kind)
{
    for (size_t i = 0; i < sizeof(KERNELS) / sizeof(KERNELS[0]); i++)
        if (KERNELS[i].kind == kind)
            return &KERNELS[i];
    return NULL;
}

static ptrdiff_t clamp_index(ptrdiff_t v, ptrdiff_t lo, ptrdiff_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The layout of a valid geometry with a non-empty output (ph and pw are set too). */
static plane_layout layout_of(geometry *g)
{
    plane_layout l;
    g->ph = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    g->pw = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    l.qh = (g->ph + g->sh - 1) / g->sh;
    l.qw = (g->pw + g->sw - 1) / g->sw;
    l.ld = l.qw * g->sw;
    l.r0 = clamp_index(g->pt, 0, g->ph);
    l.r1 = clamp_index(g->pt + g->h, l.r0, g->ph);
    l.c0 = clamp_index(g->pl, 0, g->pw);
    l.c1 = clamp_index(g->pl + g->w, l.c0, g->pw);
    l.tail = (g->kw - 1) * g->dw / g->sw;
    l.padded = g->sh * l.qh * l.ld;
    l.maxima = g->oh * l.ld + l.tail;
    l.phase = g->oh * l.qw + l.tail;
    l.wide = l.qw == g->ow ? 0 : g->oh * l.qw;
    return l;
}

/* The lowest value into the cells no plane writes: the padding of the padded plane (rows outside
 * [r0, r1), columns outside [c0, c1)) and the tails of the column maxima and of their phases. */
static void fill_padding(const maxpool_job *J, char *scratch)
{
    const geometry *g = &J->g;
    const plane_layout *l = &J->l;
    const ptrdiff_t size = J->k->size;
    for (ptrdiff_t r = 0; r < g->ph; r++) {
        char *row = scratch + (r % g->sh * l->qh + r / g->sh) * l->ld * size;
        if (r < l->r0 || r >= l->r1) {
            J->k->fill(row, l->ld);
        } else {
            J->k->fill(row, l->c0);
            J->k->fill(row + l->c1 * size, l->ld - l->c1);
        }
    }
    char *maxima = scratch + l->padded * size;
    J->k->fill(maxima + (l->maxima - l->tail) * size, l->tail);
    for (ptrdiff_t b = 0; g->sw > 1 && b < g->sw; b++)
        J->k->fill(maxima + (l->maxima + b * l->phase + l->phase - l->tail) * size, l->tail);
}

static void maxpool_task(void *ctx, int t)
{
    maxpool_job *J = ctx;
    const geometry *g = &J->g;
    const plane_layout *l = &J->l;
    const ptrdiff_t size = J->k->size;
    const ptrdiff_t count = l->padded + l->maxima + (g->sw > 1 ? g->sw * l->phase : 0) + l->wide;
    char *scratch = (char *)scratch_get((size_t)((count * size + 3) / 4));
    if (!scratch) {
        J->failed = 1;
        return;
    }
    fill_padding(J, scratch);
    for (ptrdiff_t p = J->planes * t / J->tasks; p < J->planes * (t + 1) / J->tasks; p++)
        J->k->plane(J, J->x + p * g->h * g->w * size, J->y + p * g->oh * g->ow * size, scratch);
}

/* Pool tasks for the job: one below ~800 kB of element operations (about 20 us: less than that loses
 * more to the pool's hand-off than it gains; bytes, as narrow types take as many per vector), else up to
 * four per thread. */
static int maxpool_tasks(const maxpool_job *J)
{
    const geometry *g = &J->g;
    const ptrdiff_t bytes = J->planes * g->oh * (g->kh * J->l.ld + g->kw * J->l.qw) * J->k->size;
    const int threads = pool_get_threads();
    if (threads <= 1 || bytes < 800000)
        return 1;
    return J->planes < 4 * threads ? (int)J->planes : 4 * threads;
}

/* A buffer of len bytes holds planes * rows * cols elements of size bytes (no product overflows). */
static int holds(Py_ssize_t len, ptrdiff_t planes, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t size)
{
    ptrdiff_t n;
    return !__builtin_mul_overflow(planes, rows, &n) && !__builtin_mul_overflow(n, cols, &n) &&
           !__builtin_mul_overflow(n, size, &n) && len >= n;
}

/* The geometry's sizes are usable and the buffers hold planes of them. */
static int maxpool_valid(const maxpool_job *J, Py_ssize_t x_len, Py_ssize_t y_len)
{
    const geometry *g = &J->g;
    return J->k && J->planes >= 0 && g->h >= 0 && g->w >= 0 && g->oh >= 0 && g->ow >= 0 && g->kh > 0 &&
           g->kw > 0 && g->sh > 0 && g->sw > 0 && g->dh > 0 && g->dw > 0 &&
           holds(x_len, J->planes, g->h, g->w, J->k->size) && holds(y_len, J->planes, g->oh, g->ow, J->k->size);
}

PyObject *maxpool2d(PyObject *self, PyObject *args)
{
    Py_buffer xb, yb;
    int kind;
    maxpool_job J = {0};
    geometry *g = &J.g;
    if (!PyArg_ParseTuple(args, "y*Cw*nnnnnnnnnnnnn", &xb, &kind, &yb, &J.planes, &g->h, &g->w, &g->kh, &g->kw,
                          &g->oh, &g->ow, &g->sh, &g->sw, &g->dh, &g->dw, &g->pt, &g->pl))
        return NULL;
    J.k = kernels_of(kind);
    const int ok = maxpool_valid(&J, xb.len, yb.len);
    if (ok && J.planes * g->oh * g->ow > 0) {
        J.l = layout_of(g);
        J.x = xb.buf;
        J.y = yb.buf;
        J.tasks = maxpool_tasks(&J);
        Py_BEGIN_ALLOW_THREADS
        pool_run(J.tasks, maxpool_task, &J);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&xb);
    PyBuffer_Release(&yb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "maxpool2d: unknown kind, bad geometry or buffer sizes that do not match");
        return NULL;
    }
    if (J.failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}
