// internal.h: what the kernel files share (CPU-feature macros, weight element access, the AVX-512 entry points).
#ifndef JC_INTERNAL_H
#define JC_INTERNAL_H
#include "ckernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define JC_X86 1
#define JC_AVX2 __attribute__((target("avx2,fma")))
#else
#define JC_X86 0
#endif

/* Weight element i of a matrix stored as f32 (bf = 0) or bf16 (bf = 1), and the address of element i. */
static inline float w_at(const int bf, const void *w, size_t i) {
    if (bf) { uint32_t u = (uint32_t)((const uint16_t *)w)[i] << 16; float f; memcpy(&f, &u, 4); return f; }
    return ((const float *)w)[i];
}

static inline const void *w_row(const int bf, const void *w, size_t i) {
    return bf ? (const void *)((const uint16_t *)w + i) : (const void *)((const float *)w + i);
}

#define JC_INLINE __attribute__((always_inline)) inline

#if JC_X86
/* few_rows_avx512.c: y[:, n0:n1] = x · w[n0:n1, :]ᵀ for up to 32 x rows, the sum split at k0 when 0 < k0 < k. */
void jc_few_rows_avx512_f32(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w, int ldw,
                            float *y, int ldy);
void jc_few_rows_avx512_bf16(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w, int ldw,
                             float *y, int ldy);
#endif

#endif
