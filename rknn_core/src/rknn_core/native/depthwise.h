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

/* `count` values from element `offset` of x as float32 minus the zero point: storage integers (kinds
 * B b h), or float32 (kind f) copied as they are. */
void center_plane(const void *x, int kind, ptrdiff_t offset, ptrdiff_t count, long long zero, float *out);
/* One input plane (at element `offset` of x, read as center_plane does) into a zero-bordered
 * ph x pw plane p: input (0, 0) lands at (pt, pl). */
void pad_plane(const void *x, int kind, ptrdiff_t offset, long long zero, float *p, const geometry *g);
/* Floats of scratch that dw_plane_sums needs for this geometry. */
size_t dw_scratch_floats(const geometry *g);
/* The sums bias + the taps of kernel k (kh x kw, row-major) over one input plane read as center_plane
 * does (zero outside it): output (r, c) at [r * *ld + c] of the returned array, which is out (when not
 * NULL: oh x ow floats) if the geometry's kernels write dense rows, else inside scratch. Each output
 * adds its taps in row-major order whatever the geometry, so float results do not depend on the
 * plane's size or the thread. */
const float *dw_plane_sums(const void *x, int kind, ptrdiff_t offset, long long zero, const float *k, float bias,
                           const ptrdiff_t *off, float *scratch, float *out, const geometry *g, ptrdiff_t *ld);
/* The kh * kw tap offsets that dw_plane_sums takes (off), worked out once per geometry. */
void dw_tap_offsets(const geometry *g, ptrdiff_t *off);

#endif
