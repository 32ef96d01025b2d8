/* Function clones chosen at load time by the CPU (x86-64-v4: AVX-512, v3: AVX2, the baseline), with no
 * floating-point contraction (no FMA), so a clone computes the baseline code's floats bit for bit.
 *
 * HOT_EXACT goes on the kernels' row loops (post.c) and on the drivers that call the AVX-512 kernels row
 * after row (the quantized epilogue, the depthwise groups): baseline code between two AVX-512 calls uses
 * legacy SSE encodings, and switching between those and AVX-512 code costs a state transition each time on
 * the CPUs measured here (a per-row epilogue ran twice as long); a VEX-encoded clone has none. */
#ifndef RKNN_NATIVE_CLONES_H
#define RKNN_NATIVE_CLONES_H

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HOT_EXACT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                                 optimize("fp-contract=off")))
#else
#define HOT_EXACT
#endif

#endif
