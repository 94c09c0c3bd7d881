// few_rows_avx512.c: the AVX-512 few-row product (f32 or bf16 weights), register tiles of x rows × weight rows.
#include "internal.h"

/* AVX-512 few-row kernel: a tile of R x rows × C weight rows keeps R·C accumulators in the 32 zmm registers, so
   each x vector loaded is used C times and each weight vector R times. The AVX2 kernel above (C = 1) reloads
   all R x vectors for every weight row; at 8 rows that made it bound by loads from L2 at ~7 GB/s per core,
   a quarter of what memory delivers. Every output element is the same sum in the same order whatever R and C
   are (16-lane partial sums over k, then one reduction), so how rows or columns are split between calls or
   threads never changes a result. */
#if JC_X86
#define JC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

int jc_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return cached;
}

JC_AVX512 static JC_INLINE __m512 load_w16(const int bf, const void *w, size_t i) {
    if (bf) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i))), 16));
    return _mm512_loadu_ps((const float *)w + i);
}

JC_AVX512 static JC_INLINE __m512 load_w16_tail(const int bf, const void *w, size_t i, __mmask16 m) {
    if (bf) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i)), 16));
    return _mm512_maskz_loadu_ps(m, (const float *)w + i);
}

/* Software prefetch of the weight rows 4 tiles ahead, into L2: the hardware prefetchers ramp up slowly on each
   short row stream. Measured at 8 rows: ~24 GB/s against ~21 with 2 tiles into L1 and ~18 without. */
#define JC_PF_TILES 4
/* s[r][c] = x[r, lo:hi] · w[c, lo:hi] for r < R, c < C: 16-lane partial sums from lo (a masked tail at hi), then
   the lanes reduced. */
JC_AVX512 static JC_INLINE void tile512_sums(const int bf, const int R, const int C, int lo, int hi, const float *x,
                                             int ldx, const void *w, int ldw, float s[8][6]) {
    __m512 acc[8][6];
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    int i = lo;
    const int k = hi;
    for (; i + 16 <= k; i += 16) {
        __m512 wv[6];
        for (int c = 0; c < C; c++) wv[c] = load_w16(bf, w, (size_t)c * ldw + i);
        for (int c = 0; c < C; c++) _mm_prefetch((const char *)w_row(bf, w, (size_t)(c + JC_PF_TILES * C) * ldw + i), _MM_HINT_T1);
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)r * ldx + i);
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    if (i < k) {
        const __mmask16 m = (__mmask16)((1u << (k - i)) - 1);
        __m512 wv[6];
        for (int c = 0; c < C; c++) wv[c] = load_w16_tail(bf, w, (size_t)c * ldw + i, m);
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)r * ldx + i);
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) s[r][c] = _mm512_reduce_add_ps(acc[r][c]);
}

/* y[r, c] = x[r, :] · w[c, :] for r < R, c < C. With 0 < k0 < k, the sum is taken in two segments, [0, k0) and
   [k0, k), each reduced on its own and then added: the same floats as two products over the segments added
   afterwards (an expert's two slices computed by two workers), but in one pass over the weights. */
JC_AVX512 static JC_INLINE void tile512(const int bf, const int R, const int C, int k0, int k, const float *x, int ldx,
                                        const void *w, int ldw, float *y, int ldy) {
    float s[8][6];
    const int split = k0 > 0 && k0 < k;
    tile512_sums(bf, R, C, 0, split ? k0 : k, x, ldx, w, ldw, s);
    if (split) {
        float t[8][6];
        tile512_sums(bf, R, C, k0, k, x, ldx, w, ldw, t);
        for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) s[r][c] += t[r][c];
    }
    for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = s[r][c];
}

/* Weight rows per tile for R x rows: R·C accumulators + C weight vectors + 1 x vector ≤ 32 registers. One or
   two rows are bound by memory, and there a single weight row at a time streams best (measured: 4 rows at once
   read ~30% slower, the prefetchers following 4 short streams poorly). */
#define JC_TILE_C(R) ((R) <= 2 ? 1 : (R) <= 4 ? 6 : (R) <= 6 ? 4 : 3)

/* Calls tile512 with compile-time R (1–8) and C (1, 3, or JC_TILE_C(R)). */
#define JC_TILE_R(R) case R: \
    if (C == 1) tile512(bf, R, 1, k0, k, x, ldx, w, ldw, y, ldy); \
    else if (C == 3) tile512(bf, R, 3, k0, k, x, ldx, w, ldw, y, ldy); \
    else tile512(bf, R, JC_TILE_C(R), k0, k, x, ldx, w, ldw, y, ldy); \
    break;

JC_AVX512 static JC_INLINE void tile_any(const int bf, int R, int C, int k0, int k, const float *x, int ldx, const void *w,
                                         int ldw, float *y, int ldy) {
    switch (R) {
        JC_TILE_R(1) JC_TILE_R(2) JC_TILE_R(3) JC_TILE_R(4) JC_TILE_R(5) JC_TILE_R(6) JC_TILE_R(7) JC_TILE_R(8)
    }
}

/* Column tiles outermost, then blocks of 8 x rows: a tile's weight rows come from memory once and from L1 for
   the later row blocks, so beyond 8 rows the cost grows in arithmetic only (up to 32 rows this beats sgemm,
   which packs the whole weight matrix first). */
JC_AVX512 static JC_INLINE void gemm_few_rows_avx512(const int bf, int m, int n0, int n1, int k0, int k, const float *x,
                                                     int ldx, const void *w, int ldw, float *y, int ldy) {
    const int C = m > 8 ? 3 : JC_TILE_C(m);
    int j = n0;
    for (; j + C <= n1; j += C) {
        const void *wt = w_row(bf, w, (size_t)j * ldw);
        for (int r0 = 0; r0 < m; r0 += 8)
            tile_any(bf, m - r0 < 8 ? m - r0 : 8, C, k0, k, x + (size_t)r0 * ldx, ldx, wt, ldw, y + (size_t)r0 * ldy + j, ldy);
    }
    for (; j < n1; j++) {
        const void *wt = w_row(bf, w, (size_t)j * ldw);
        for (int r0 = 0; r0 < m; r0 += 8)
            tile_any(bf, m - r0 < 8 ? m - r0 : 8, 1, k0, k, x + (size_t)r0 * ldx, ldx, wt, ldw, y + (size_t)r0 * ldy + j, ldy);
    }
}

JC_AVX512 void jc_few_rows_avx512_f32(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w,
                                               int ldw, float *y, int ldy) { gemm_few_rows_avx512(0, m, n0, n1, k0, k, x, ldx, w, ldw, y, ldy); }
JC_AVX512 void jc_few_rows_avx512_bf16(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w,
                                                int ldw, float *y, int ldy) { gemm_few_rows_avx512(1, m, n0, n1, k0, k, x, ldx, w, ldw, y, ldy); }
#else
int jc_has_avx512(void) { return 0; }
#endif
