/* Kernels on 8-bit codes (bytes.c): code and code-pair tables, sums and histograms, nearest upsampling,
 * depth to space. */
#ifndef RKNN_NATIVE_BYTES_H
#define RKNN_NATIVE_BYTES_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

/* lookup8(x, tables, out, rows, inner, per_row): out[r, i] = table_r[x[r, i]] for bytes x (rows, inner);
 * tables holds one 256-entry byte table (per_row false) or one per row (rows, 256), indexed by the byte. */
PyObject *lookup8(PyObject *self, PyObject *args);

/* out[i] = table[x[i] ^ flip] for n bytes (flip 0x80: signed codes, the table ordered from -128), serially. */
void lookup8_codes(const uint8_t *x, const uint8_t *table, uint8_t *out, ptrdiff_t n, uint8_t flip);

/* planes8(x, tables, out, images, pixels, channels, size): channels-last bytes x (images, pixels, channels) to
 * planes, out[i, c, p] = tables[c][x[i, p, c]]: one 256-entry table per channel of bytes (size 1) or float32
 * (size 4). */
PyObject *planes8(PyObject *self, PyObject *args);

/* lookup8_pairs(a, b, table, out, n): out[i] = table[a[i] * 256 + b[i]] for bytes a, b; the table holds 65536
 * entries and 3 bytes more (read, not used). */
PyObject *lookup8_pairs(PyObject *self, PyObject *args);

/* The sum of n bytes read as uint8 (is_signed 0) or int8 (1). */
int64_t byte_sum(const uint8_t *x, Py_ssize_t n, int is_signed);

/* byte_histograms(x, out, rows, inner): out[r, b] (int64 (rows, 256)) = how many bytes of row r of x
 * (rows, inner) are b. */
PyObject *byte_histograms(PyObject *self, PyObject *args);

/* upsample8(x, out, planes, h, w, fy, fx[, size]): nearest upsampling of planes by whole factors,
 * out[p, y * fy + a, x * fx + b] = x[p, y, x] (out (planes, h * fy, w * fx)), of bytes (size 1, the default) or
 * 4-byte elements (size 4). */
PyObject *upsample8(PyObject *self, PyObject *args);

/* depth_to_space8(x, out, planes, kh, kw, h, w): out[p, y * kh + i, x * kw + j] = x[p, i, j, y, x] for byte
 * planes x (planes, kh, kw, h, w), out (planes, h * kh, w * kw). */
PyObject *depth_to_space8(PyObject *self, PyObject *args);

#endif
