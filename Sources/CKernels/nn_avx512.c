// nn_avx512.c: y = alpha · x · w with w stored [k, n], AVX-512 broadcast-and-FMA tiles, for short sums over many rows.
#include "internal.h"

/* The few-row kernel takes w in the Linear layout [n, k] and reduces 16-lane partial sums across lanes at the end
   of every output: at k = 64 (Mamba's dt_proj, attention's q·kᵀ) those reductions cost as much as the sum, and it
   ran at ~84 GFLOP/s on 2 threads; OpenBLAS 0.3.21's sgemm, on the Intel VM's PRESCOTT kernels, at ~56. With w
   stored [k, n] there is nothing to reduce: a tile of R rows × V·16 columns keeps R·V accumulators, and each step
   of k broadcasts R floats of x against V vectors of w. No packing: the products this serves have short sums
   (dt_rank, the head size, a prompt's keys), so a tile's w (k × 64 floats) stays in L1 or L2 across the rows. */
#if JC_X86
#define NN_MAX_R 6
#define NN_MAX_V 4

/* y[0:R, 0:16·V] = alpha · x[0:R, 0:k] · w[0:k, 0:16·V], the last vector's columns masked by `tail`. */
JC_AVX512 static JC_INLINE void nn_tile(const int R, const int V, int k, float alpha, const float *x, int ldx,
                                        const float *w, int ldw, float *y, int ldy, __mmask16 tail) {
    __m512 acc[NN_MAX_R][NN_MAX_V];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (int j = 0; j < k; j++) {
        const float *wj = w + (size_t)j * ldw;
        __m512 wv[NN_MAX_V];
        for (int v = 0; v < V; v++) wv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? tail : (__mmask16)0xFFFF, wj + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 xv = _mm512_set1_ps(x[(size_t)r * ldx + j]);
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(xv, wv[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++)
            _mm512_mask_storeu_ps(y + (size_t)r * ldy + 16 * v, v == V - 1 ? tail : (__mmask16)0xFFFF,
                                  _mm512_mul_ps(va, acc[r][v]));
}

/* One tile with R and V known at compile time, so its accumulators live in registers. */
#define NN_CASE(R, V) case (R) * 8 + (V): nn_tile(R, V, k, alpha, x, ldx, w, ldw, y, ldy, tail); return;
#define NN_CASES(R) NN_CASE(R, 1) NN_CASE(R, 2) NN_CASE(R, 3) NN_CASE(R, 4)

JC_AVX512 static void nn_tile_any(int R, int V, int k, float alpha, const float *x, int ldx, const float *w, int ldw,
                                  float *y, int ldy, __mmask16 tail) {
    switch (R * 8 + V) {
        NN_CASES(1) NN_CASES(2) NN_CASES(3) NN_CASES(4) NN_CASES(5) NN_CASES(6)
    default: return;
    }
}

/* Columns [n0, n1) of y = alpha · x · w, in column blocks of 64 and row blocks of 6. */
JC_AVX512 static void gemm_nn_avx512(int m, int n0, int n1, int k, float alpha, const float *x, int ldx, const float *w,
                                     int ldw, float *y, int ldy) {
    for (int c0 = n0; c0 < n1; c0 += 16 * NN_MAX_V) {
        const int cols = n1 - c0 < 16 * NN_MAX_V ? n1 - c0 : 16 * NN_MAX_V;
        const int V = (cols + 15) / 16;
        const __mmask16 tail = (__mmask16)(cols % 16 == 0 ? 0xFFFF : (1u << (cols % 16)) - 1);
        for (int r0 = 0; r0 < m; r0 += NN_MAX_R) {
            const int R = m - r0 < NN_MAX_R ? m - r0 : NN_MAX_R;
            nn_tile_any(R, V, k, alpha, x + (size_t)r0 * ldx, ldx, w + c0, ldw, y + (size_t)r0 * ldy + c0, ldy, tail);
        }
    }
}
#endif

void jc_gemm_nn(int m, int n0, int n1, int k, float alpha, const float *x, int ldx, const float *w, int ldw, float *y,
                int ldy) {
    if (m <= 0 || n1 <= n0) return;
#if JC_X86
    if (jc_few_rows_level() == 2) { gemm_nn_avx512(m, n0, n1, k, alpha, x, ldx, w, ldw, y, ldy); return; }
#endif
    jc_gemm_nn_rows(m, n1 - n0, k, x, ldx, w + n0, ldw, y + n0, ldy);
    if (alpha != 1.0f)
        for (int i = 0; i < m; i++)
            for (int c = n0; c < n1; c++) y[(size_t)i * ldy + c] *= alpha;
}

typedef struct {
    int m, k, ldx, ldw, ldy;
    float alpha;
    const float *x, *w;
    float *y;
} nn_job;

static void nn_range(void *ctx, int n0, int n1) {
    const nn_job *j = (const nn_job *)ctx;
    jc_gemm_nn(j->m, n0, n1, j->k, j->alpha, j->x, j->ldx, j->w, j->ldw, j->y, j->ldy);
}

void jc_gemm_nn_mt(int threads, int m, int n, int k, float alpha, const float *x, int ldx, const float *w, int ldw,
                   float *y, int ldy) {
    if (m <= 0 || n <= 0) return;
    nn_job f = {m, k, ldx, ldw, ldy, alpha, x, w, y};
    jc_range_job j = {.fn = nn_range, .ctx = &f};
    int nparts = threads < 1 ? 1 : threads;
    /* Below ~256 K multiply-adds the hand-off costs more than it saves. Columns go in blocks of 64 (a whole tile);
       each output is the same sum whoever computes it. */
    if ((long)m * n * k < (1L << 18)) nparts = 1;
    jc_chunks_init(&j.work, n, nparts <= 1 ? 1 : 4 * nparts, 16 * 4);
    jc_pool_run(nparts, jc_range_part, &j);
}
