// bench_util.h: what the kernel micro-benchmarks in tools/bench share: a clock, their operands, a chunked product.
#ifndef JC_BENCH_UTIL_H
#define JC_BENCH_UTIL_H
#include "ckernels.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* y[m, n] = x[m, k] · w[n, k]ᵀ with `copies` copies of the weights, f32 (w) and bf16 (wb), so that each call can
   read its weights fresh from memory. */
typedef struct {
    float *w, *x, *y;
    uint16_t *wb;
} operands;

/* Filled with small repeating values; 0 when out of memory (the message printed). */
static inline int operands_alloc(operands *o, int m, int n, int k, int copies) {
    const size_t wn = (size_t)n * k * copies;
    o->w = malloc(sizeof(float) * wn), o->x = malloc(sizeof(float) * m * k), o->y = malloc(sizeof(float) * m * n);
    o->wb = malloc(sizeof(uint16_t) * wn);
    if (!o->w || !o->x || !o->y || !o->wb) { fprintf(stderr, "out of memory\n"); return 0; }
    for (size_t i = 0; i < wn; i++) { o->w[i] = (float)(i % 7) * 0.01f; o->wb[i] = (uint16_t)(0x3c00 + i % 7); }
    for (int i = 0; i < m * k; i++) o->x[i] = (float)(i % 5) * 0.1f;
    return 1;
}

static inline void operands_free(operands *o) { free(o->w); free(o->x); free(o->y); free(o->wb); }

/* Seconds for one product y = x · wᵀ through the few-row kernel on 2 threads in chunks of `chunk` rows (as
   BLAS.gemmFewRowsChunked), over `copies` weight copies in turn (weights fresh from memory). */
static inline double chunked_seconds(int chunk, int m, int n, int k, const float *x, const void *w, int bf16, int copies,
                                     float *y) {
    const size_t wsize = (size_t)n * k * (bf16 ? 2 : 4);
    const double t0 = now();
    for (int c = 0; c < copies; c++)
        for (int q = 0; q < m; q += chunk)
            jc_gemm_few_rows_mt(2, m - q < chunk ? m - q : chunk, n, k, x + (size_t)q * k, k,
                                (const char *)w + (size_t)c * wsize, bf16, k, y + (size_t)q * n, n);
    return (now() - t0) / copies;
}
#endif
