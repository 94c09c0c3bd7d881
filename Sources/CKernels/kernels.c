// kernels.c: AVX2+FMA kernels selected at run time, with portable C fallbacks for other CPUs.
#include "internal.h"
#include <math.h>
#include <stdlib.h>

int jc_has_avx2(void) {
#if JC_X86
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
#else
    return 0;
#endif
}

static inline float softplus1(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

/* ---------------------------------------------------------------------------------------------------------------- */
#if JC_X86
/* ln for 8 floats > 0 (Cephes logf): x = m·2^e with m in [√½, √2); ln m by a degree-8 polynomial in m − 1. */
JC_AVX2 static inline __m256 log8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256i xi = _mm256_castps_si256(x);
    __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(127)));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(xi, _mm256_set1_epi32(0x007FFFFF)), _mm256_set1_epi32(0x3F800000)));
    __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
    e = _mm256_add_ps(e, _mm256_and_ps(big, one));
    __m256 f = _mm256_sub_ps(m, one), z = _mm256_mul_ps(f, f);
    __m256 p = _mm256_set1_ps(7.0376836292e-2f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.1514610310e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.1676998740e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.2420140846e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.4249322787e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.6668057665e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.0000714765e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-2.4999993993e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(3.3333331174e-1f));
    __m256 r = _mm256_mul_ps(_mm256_mul_ps(p, f), z);
    r = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), r);
    r = _mm256_add_ps(f, r);
    return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693147180559945f), r);
}

/* softplus(v) = max(v, 0) + log1p(exp(−|v|)), with log1p(y) = ln(1 + y) · y / ((1 + y) − 1) (Goldberg), which
   keeps full relative precision for tiny y where ln(1 + y) alone would round 1 + y away; torch's threshold 20
   returns v itself above it. */
JC_AVX2 static inline __m256 softplus8(__m256 v) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 y = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)));
    __m256 u = _mm256_add_ps(one, y), d = _mm256_sub_ps(u, one);
    __m256 exact = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ);
    __m256 l = _mm256_blendv_ps(_mm256_mul_ps(log8(u), _mm256_div_ps(y, d)), y, exact);
    __m256 r = _mm256_add_ps(_mm256_max_ps(v, _mm256_setzero_ps()), l);
    return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, _mm256_set1_ps(20.0f), _CMP_GT_OQ));
}

JC_AVX2 static void softplus_bias_avx2(int count, const float *x, const float *bias, float *out) {
    int i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, softplus8(_mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(bias + i))));
    for (; i < count; i++) out[i] = softplus1(x[i] + bias[i]);
}

/* Weight loads: f32 as stored, or bf16 widened to f32 exactly (bf16 is the top half of an f32, so a shift). */
JC_AVX2 static inline __m256 load_w8(const int bf, const void *w, size_t i) {
    if (bf) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))), 16));
    return _mm256_loadu_ps((const float *)w + i);
}

/* One weight row against R ≤ 8 x rows: R accumulators, the weight vector loaded once per 8 columns, so a
   matrix streams through exactly once. R is a compile-time constant at each call site (see the switch below):
   with a run-time row count the accumulators would live on the stack instead of in registers. */
JC_AVX2 static JC_INLINE void row_dot(const int bf, const int R, int k, const float *x, int ldx, const void *w, float *out) {
    __m256 acc[8];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 wv = load_w8(bf, w, i);
        for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)r * ldx + i), wv, acc[r]);
    }
    for (int r = 0; r < R; r++) {
        float s = hsum8(acc[r]);
        for (int t = i; t < k; t++) s += x[(size_t)r * ldx + t] * w_at(bf, w, t);
        out[r] = s;
    }
}

#define JC_ROWS_CASE(R) case R: for (int j = n0; j < n1; j++) { \
        row_dot(bf, R, k, xb, ldx, w_row(bf, w, (size_t)j * ldw), out); \
        for (int r = 0; r < R; r++) y[(size_t)(r0 + r) * ldy + j] = out[r]; } break;

JC_AVX2 static JC_INLINE void gemm_few_rows_avx2(const int bf, int m, int n0, int n1, int k, const float *x, int ldx,
                                                 const void *w, int ldw, float *y, int ldy) {
    float out[8];
    // Blocks of 8 x rows; within a block, weight rows outermost so each is read once per block.
    for (int r0 = 0; r0 < m; r0 += 8) {
        const float *xb = x + (size_t)r0 * ldx;
        switch (m - r0 < 8 ? m - r0 : 8) {
            JC_ROWS_CASE(1) JC_ROWS_CASE(2) JC_ROWS_CASE(3) JC_ROWS_CASE(4)
            JC_ROWS_CASE(5) JC_ROWS_CASE(6) JC_ROWS_CASE(7) JC_ROWS_CASE(8)
        }
    }
}

JC_AVX2 static void gemm_few_rows_avx2_f32(int m, int n0, int n1, int k, const float *x, int ldx, const void *w, int ldw,
                                           float *y, int ldy) { gemm_few_rows_avx2(0, m, n0, n1, k, x, ldx, w, ldw, y, ldy); }
JC_AVX2 static void gemm_few_rows_avx2_bf16(int m, int n0, int n1, int k, const float *x, int ldx, const void *w, int ldw,
                                            float *y, int ldy) { gemm_few_rows_avx2(1, m, n0, n1, k, x, ldx, w, ldw, y, ldy); }

JC_AVX2 static void silu_inplace_avx2(int count, float *x) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v)))));
    }
    for (; i < count; i++) x[i] = silu1(x[i]);
}

JC_AVX2 static void swiglu_avx2(int count, const float *g, const float *u, float *h) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v))));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < count; i++) h[i] = silu1(g[i]) * u[i];
}

/* y[m, n] = x[m, k] · w[k, n] for a few rows (attention's P · V in decode): per row, 32 output columns in
   4 accumulators, each x element broadcast against a row of w. */
JC_AVX2 static void gemm_nn_rows_avx2(int m, int n, int k, const float *x, int ldx, const float *w, int ldw, float *y, int ldy) {
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        float *yi = y + (size_t)i * ldy;
        int c = 0;
        for (; c + 32 <= n; c += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < k; j++) {
                const __m256 xv = _mm256_set1_ps(xi[j]);
                const float *wj = w + (size_t)j * ldw + c;
                a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wj), a0);
                a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wj + 8), a1);
                a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wj + 16), a2);
                a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wj + 24), a3);
            }
            _mm256_storeu_ps(yi + c, a0); _mm256_storeu_ps(yi + c + 8, a1);
            _mm256_storeu_ps(yi + c + 16, a2); _mm256_storeu_ps(yi + c + 24, a3);
        }
        for (; c + 8 <= n; c += 8) {
            __m256 a0 = _mm256_setzero_ps();
            for (int j = 0; j < k; j++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(xi[j]), _mm256_loadu_ps(w + (size_t)j * ldw + c), a0);
            _mm256_storeu_ps(yi + c, a0);
        }
        for (; c < n; c++) {
            float acc = 0;
            for (int j = 0; j < k; j++) acc += xi[j] * w[(size_t)j * ldw + c];
            yi[c] = acc;
        }
    }
}

JC_AVX2 static void bf16_to_f32_avx2(size_t count, const uint16_t *src, float *dst) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load_w8(1, src, i));
    for (; i < count; i++) dst[i] = w_at(1, src, i);
}
#endif


/* ---------------------------------------------------------------------------------------------------------------- */
/* Portable entry points: the AVX2 path when the CPU has it, otherwise plain C. */

/* Which few-row kernel runs: 2 = AVX-512, 1 = AVX2, 0 = portable C; the best the CPU has unless capped. */
static int few_rows_level = -1;

int jc_few_rows_level(void) {
    if (few_rows_level < 0) few_rows_level = jc_has_avx512() ? 2 : jc_has_avx2() ? 1 : 0;
    return few_rows_level;
}

void jc_set_few_rows_level(int level) {
    int best = jc_has_avx512() ? 2 : jc_has_avx2() ? 1 : 0;
    few_rows_level = level < 0 || level > best ? best : level;
}

static void gemm_few_rows_c(const int bf, int m, int n0, int n1, int k, const float *x, int ldx, const void *w, int ldw,
                            float *y, int ldy) {
    for (int r = 0; r < m; r++)
        for (int j = n0; j < n1; j++) {
            float s = 0;
            for (int i = 0; i < k; i++) s += x[(size_t)r * ldx + i] * w_at(bf, w, (size_t)j * ldw + i);
            y[(size_t)r * ldy + j] = s;
        }
}

/* The few-row product on the best kernel level allowed; w is float (bf = 0) or bf16 (bf = 1). */
static void gemm_few_rows_any(int bf, int m, int n0, int n1, int k, const float *x, int ldx, const void *w, int ldw,
                              float *y, int ldy) {
#if JC_X86
    switch (jc_few_rows_level()) {
    case 2:
        if (bf) jc_few_rows_avx512_bf16(m, n0, n1, 0, k, x, ldx, w, ldw, y, ldy);
        else jc_few_rows_avx512_f32(m, n0, n1, 0, k, x, ldx, w, ldw, y, ldy);
        return;
    case 1:
        if (bf) gemm_few_rows_avx2_bf16(m, n0, n1, k, x, ldx, w, ldw, y, ldy);
        else gemm_few_rows_avx2_f32(m, n0, n1, k, x, ldx, w, ldw, y, ldy);
        return;
    }
#endif
    gemm_few_rows_c(bf, m, n0, n1, k, x, ldx, w, ldw, y, ldy);
}

/* The few-row product with its sum split at k0 (see tile512): fused on AVX-512; on the other levels the two
   segments' products, the second into `tmp` [m, n1 - n0], then added. */
void jc_gemm_few_rows_split(int bf, int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w, int ldw,
                            float *y, int ldy, float *tmp) {
    if (k0 <= 0 || k0 >= k) { gemm_few_rows_any(bf, m, n0, n1, k, x, ldx, w, ldw, y, ldy); return; }
#if JC_X86
    if (jc_few_rows_level() == 2) {
        if (bf) jc_few_rows_avx512_bf16(m, n0, n1, k0, k, x, ldx, w, ldw, y, ldy);
        else jc_few_rows_avx512_f32(m, n0, n1, k0, k, x, ldx, w, ldw, y, ldy);
        return;
    }
#endif
    const int n = n1 - n0;
    gemm_few_rows_any(bf, m, n0, n1, k0, x, ldx, w, ldw, y, ldy);
    gemm_few_rows_any(bf, m, 0, n, k - k0, x + k0, ldx, w_row(bf, w, (size_t)n0 * ldw + k0), ldw, tmp, n);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) y[(size_t)r * ldy + n0 + j] += tmp[(size_t)r * n + j];
}

void jc_gemm_few_rows(int m, int n0, int n1, int k, const float *x, int ldx, const float *w, int ldw, float *y, int ldy) {
    gemm_few_rows_any(0, m, n0, n1, k, x, ldx, w, ldw, y, ldy);
}

void jc_gemm_few_rows_bf16(int m, int n0, int n1, int k, const float *x, int ldx, const uint16_t *w, int ldw,
                           float *y, int ldy) {
    gemm_few_rows_any(1, m, n0, n1, k, x, ldx, w, ldw, y, ldy);
}

void jc_gemm_nn_rows(int m, int n, int k, const float *x, int ldx, const float *w, int ldw, float *y, int ldy) {
#if JC_X86
    if (jc_has_avx2()) { gemm_nn_rows_avx2(m, n, k, x, ldx, w, ldw, y, ldy); return; }
#endif
    for (int i = 0; i < m; i++)
        for (int c = 0; c < n; c++) {
            float acc = 0;
            for (int j = 0; j < k; j++) acc += x[(size_t)i * ldx + j] * w[(size_t)j * ldw + c];
            y[(size_t)i * ldy + c] = acc;
        }
}

void jc_bf16_to_f32(size_t count, const uint16_t *src, float *dst) {
    size_t i = 0;
#if JC_X86
    if (jc_has_avx2()) { bf16_to_f32_avx2(count, src, dst); return; }
#endif
    for (; i < count; i++) dst[i] = w_at(1, src, i);
}

void jc_softplus_bias(int count, const float *x, const float *bias, float *out) {
#if JC_X86
    if (jc_has_avx2()) { softplus_bias_avx2(count, x, bias, out); return; }
#endif
    for (int i = 0; i < count; i++) out[i] = softplus1(x[i] + bias[i]);
}

void jc_silu_inplace(int count, float *x) {
#if JC_X86
    if (jc_has_avx2()) { silu_inplace_avx2(count, x); return; }
#endif
    for (int i = 0; i < count; i++) x[i] = silu1(x[i]);
}

void jc_swiglu(int count, const float *g, const float *u, float *h) {
#if JC_X86
    if (jc_has_avx2()) { swiglu_avx2(count, g, u, h); return; }
#endif
    for (int i = 0; i < count; i++) h[i] = silu1(g[i]) * u[i];
}

/* x rows copied to 64-byte boundaries (see internal.h), one buffer a thread, grown as needed and kept. */
static _Thread_local float *packed_x;
static _Thread_local size_t packed_cap;

float *jc_aligned_rows_buffer(int m, int k, const float *x, int *ldx) {
    if (((uintptr_t)x % 64 == 0 && (size_t)*ldx * 4 % 64 == 0) || m <= 0 || k <= 0) return NULL;
    const size_t ld = ((size_t)k + 15) / 16 * 16, need = ld * (size_t)m;
    if (need > packed_cap) {
        float *p = aligned_alloc(64, need * 4);
        if (!p) return NULL;
        free(packed_x);
        packed_x = p;
        packed_cap = need;
    }
    *ldx = (int)ld;
    return packed_x;
}

const float *jc_aligned_rows(int m, int k, const float *x, int *ldx) {
    const int lds = *ldx;
    float *dst = jc_aligned_rows_buffer(m, k, x, ldx);
    if (!dst) return x;  // unaligned loads give the same floats, only slower
    for (int r = 0; r < m; r++) memcpy(dst + (size_t)r * *ldx, x + (size_t)r * lds, (size_t)k * 4);
    return dst;
}
