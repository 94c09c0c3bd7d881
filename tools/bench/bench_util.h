// bench_util.h: what the kernel micro-benchmarks in tools/bench share: a clock and their operands.
#ifndef JC_BENCH_UTIL_H
#define JC_BENCH_UTIL_H
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
#endif
