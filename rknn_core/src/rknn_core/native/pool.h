/* The kernels' thread pool (pool.c). */
#ifndef RKNN_NATIVE_POOL_H
#define RKNN_NATIVE_POOL_H

#include <stddef.h>

/* Run fn(ctx, t) for 0 <= t < tasks on the pool (the caller takes tasks too); returns when all are done. */
void pool_run(int tasks, void (*fn)(void *ctx, int task), void *ctx);
/* Use t threads in total (1: no pool threads); the workers are recreated lazily. */
void pool_set_threads(int t);
int pool_get_threads(void);
/* A 64-byte aligned buffer of at least nfloats floats owned by the calling thread (NULL when out of
 * memory), kept for reuse: slots SCRATCH_TASK and SCRATCH_TILE inside pool tasks (packing, output
 * blocks), SCRATCH_CALLER for a caller's temporaries that live across a pool_run.
 * scratch_get(n) is scratch_slot(SCRATCH_TASK, n). */
enum { SCRATCH_TASK, SCRATCH_TILE, SCRATCH_CALLER, SCRATCH_SLOTS };
float *scratch_get(size_t nfloats);
float *scratch_slot(int slot, size_t nfloats);
/* Once, at module import: thread-local storage and fork handlers; the default thread count. */
int pool_init(void);

#endif
