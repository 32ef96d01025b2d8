/* Planes and depthwise sums (depthwise.c). */
#ifndef RKNN_NATIVE_DEPTHWISE_H
#define RKNN_NATIVE_DEPTHWISE_H

#include <stddef.h>

/* Where one plane's windows lie: input h x w, kernel kh x kw, output oh x ow, strides, dilations, the
 * top/left pads (may be negative: cropping) and the zero-bordered plane ph x pw that holds every tap. */
typedef struct {
    ptrdiff_t h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
    ptrdiff_t ph, pw;
} geometry;

/* ph and pw of g from its output size, strides, kernel and dilations: every tap of every output lies inside. */
void dw_padded_size(geometry *g);
/* `count` values from element `offset` of x as float32 minus the zero point: storage integers (kinds
 * B b h), or float32 (kind f) copied as they are. */
void center_plane(const void *x, int kind, ptrdiff_t offset, ptrdiff_t count, long long zero, float *out);
/* One input plane (at element `offset` of x, read as center_plane does) into a zero-bordered
 * ph x pw plane p: input (0, 0) lands at (pt, pl). */
void pad_plane(const void *x, int kind, ptrdiff_t offset, long long zero, float *p, const geometry *g);
/* Floats of scratch (one per thread) that dw_prepare and dw_sums need for this geometry. */
size_t dw_scratch_floats(const geometry *g);
/* Once per scratch and geometry, before dw_sums. */
void dw_prepare(float *scratch, const geometry *g);
/* The sums bias + the taps over planes p0 .. p0 + count - 1 (count <= DW_GROUP) of x, `plane` elements
 * apart (h x w each, rows w apart), read as center_plane does (zero outside them): plane p takes channel
 * p % channels of the kernels w (channels x kh x kw, row-major) and of bias (NULL: zeros), and its dense
 * oh x ow sums go to out + (p - p0) * ld. Each output starts from its bias and adds its taps in row-major
 * order whatever the geometry, so float results do not depend on the plane's size, its group, a band of
 * its rows or the thread. */
void dw_sums(const void *x, ptrdiff_t plane, int kind, long long zero, const float *w, const float *bias,
             ptrdiff_t channels, ptrdiff_t p0, int count, float *scratch, float *out, ptrdiff_t ld,
             const geometry *g);
/* Input rows [*r0, *r1) that output rows [o0, o1) of g read (clipped to the plane). */
void dw_band_rows(const geometry *g, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t *r0, ptrdiff_t *r1);
/* Output rows [o0, o1) of g as a geometry of their own over input rows [*r0, ...) (set here): the plane
 * starts *r0 rows further, whole planes stay g->h * g->w apart. */
geometry dw_band(const geometry *g, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t *r0);
/* Planes per dw_sums call: the tasks' shares of the planes are whole groups. */
#define DW_GROUP 16

#endif
