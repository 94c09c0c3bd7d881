// rows_mt.c: a prompt's row-wise steps (SwiGLU, dt's softplus, Mamba's conv, x's aligned copy) split across the pool.
#include "internal.h"
#include <stdlib.h>

/* Between two products split across the pool, an elementwise step on one thread leaves the other core idle: over a
   512-token prompt SwiGLU, softplus, the conv and the aligned copy of x took ~3.5% of an f32 prefill's samples on
   the calling thread alone, ~7% of its time (perf, Intel VM). Rows go in chunks from the shared counter; each row gets the
   single-thread kernel's floats (the same function on the same row), whoever runs it. */

enum { ROWS_SWIGLU, ROWS_SOFTPLUS, ROWS_CONV, ROWS_COPY };

typedef struct {
    int kind, cols, lda, ldo, nbounds, taps;
    const int *bounds;
    const float *a, *bias, *state, *w;
    float *out;
} rows_job;

/* Mamba's causal depthwise conv for row t of a segment, then SiLU: o = bias + Σ_q w[q] ⊙ in(t − (K−1) + q), where
   in(s) is row s of the segment, or for s < 0 row K + s of the conv state (its newest K − 1 rows). Each product
   is rounded before it is added (no FMA), in tap order. */
#pragma clang fp contract(off)
static void conv_row(const rows_job *j, int t, float *o) {
    const int di = j->cols, k = j->taps;
    if (j->bias) memcpy(o, j->bias, (size_t)di * 4);
    else memset(o, 0, (size_t)di * 4);
    for (int q = 0; q < k; q++) {
        const int src = t - (k - 1) + q;
        const float *in = src >= 0 ? j->a + (size_t)src * j->lda : j->state + (size_t)(k + src) * di;
        const float *wq = j->w + (size_t)q * di;
        for (int c = 0; c < di; c++) {
            const float p = wq[c] * in[c];
            o[c] += p;
        }
    }
    jc_silu_inplace(di, o);
}

static void rows_range(void *ctx, int r0, int r1) {
    const rows_job *j = (const rows_job *)ctx;
    for (int t = r0; t < r1; t++) {
        const float *a = j->a + (size_t)t * j->lda;
        float *o = j->out + (size_t)t * j->ldo;
        switch (j->kind) {
        case ROWS_CONV: conv_row(j, t, o); break;
        case ROWS_SWIGLU:
            // Slice s: gate a[2·lo, 2·lo + w), up a[2·lo + w, 2·hi) → o[lo, hi)
            for (int s = 0; s + 1 < j->nbounds; s++) {
                const int lo = j->bounds[s], w = j->bounds[s + 1] - lo;
                jc_swiglu(w, a + 2 * lo, a + 2 * lo + w, o + lo);
            }
            break;
        case ROWS_SOFTPLUS: jc_softplus_bias(j->cols, a, j->bias, o); break;
        default: memcpy(o, a, (size_t)j->cols * 4); break;
        }
    }
}

/* Rows [0, rows) on `threads`, or on this one alone when the step is too small to pay a hand-off (~1 µs). */
static void rows_run(int threads, int rows, rows_job *f) {
    jc_range_job j = {.fn = rows_range, .ctx = f};
    int nparts = threads < 1 ? 1 : threads;
    if ((long)rows * f->cols < (1L << 14)) nparts = 1;
    jc_chunks_init(&j.work, rows, nparts <= 1 ? 1 : 4 * nparts, 1);
    jc_pool_run(nparts, jc_range_part, &j);
}

void jc_swiglu_rows_mt(int threads, int rows, int nbounds, const int *bounds, const float *gu, int ldgu, float *h,
                       int ldh) {
    if (rows <= 0 || nbounds < 2) return;
    rows_job f = {ROWS_SWIGLU, bounds[nbounds - 1], ldgu, ldh, nbounds, 0, bounds, gu, NULL, NULL, NULL, h};
    rows_run(threads, rows, &f);
}

void jc_softplus_bias_rows_mt(int threads, int rows, int cols, const float *x, int ldx, const float *bias, float *out,
                              int ldo) {
    if (rows <= 0) return;
    rows_job f = {ROWS_SOFTPLUS, cols, ldx, ldo, 0, 0, NULL, x, bias, NULL, NULL, out};
    rows_run(threads, rows, &f);
}

void jc_conv_silu_rows_mt(int threads, int rows, int channels, int taps, const float *x, int ldx, const float *state,
                          const float *w, const float *bias, float *u, int ldu) {
    if (rows <= 0 || taps <= 0) return;
    rows_job f = {ROWS_CONV, channels, ldx, ldu, 0, taps, NULL, x, bias, state, w, u};
    rows_run(threads, rows, &f);
}

const float *jc_aligned_rows_mt(int threads, int m, int k, const float *x, int *ldx) {
    int ld = *ldx;
    float *dst = jc_aligned_rows_buffer(m, k, x, &ld);
    if (!dst) return x;  // already aligned, or no buffer: the kernel's unaligned loads give the same floats
    rows_job f = {ROWS_COPY, k, *ldx, ld, 0, 0, NULL, x, NULL, NULL, NULL, dst};
    rows_run(threads, m, &f);
    *ldx = ld;
    return dst;
}
