// kernels.c: AVX2+FMA kernels selected at run time, with portable C fallbacks for other CPUs.
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

int jc_has_avx2(void) {
#if JC_X86
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
#else
    return 0;
#endif
}

static inline float silu1(float v) { return v / (1.0f + expf(-v)); }
static inline float softplus1(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

/* ---------------------------------------------------------------------------------------------------------------- */
/* exp for 8 floats: n = round(x·log2 e); r = x − n·ln 2 (two-part constant); e^r by a degree-6 polynomial;
   scale by 2^n through the exponent bits. Max relative error ≈ 2 ulp over the clamped range, like Cephes' expf. */
#if JC_X86
JC_AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

JC_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One weight row against R ≤ 8 x rows: R accumulators, the weight vector loaded once per 8 columns, so a
   matrix streams through exactly once. R is a compile-time constant at each call site (see the switch below):
   with a run-time row count the accumulators would live on the stack instead of in registers. */
#define JC_INLINE __attribute__((always_inline)) inline
JC_AVX2 static JC_INLINE void row_dot(const int R, int k, const float *x, int ldx, const float *w, float *out) {
    __m256 acc[8];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 wv = _mm256_loadu_ps(w + i);
        for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)r * ldx + i), wv, acc[r]);
    }
    for (int r = 0; r < R; r++) {
        float s = hsum8(acc[r]);
        for (int t = i; t < k; t++) s += x[(size_t)r * ldx + t] * w[t];
        out[r] = s;
    }
}

#define JC_ROWS_CASE(R) case R: for (int j = n0; j < n1; j++) { \
        row_dot(R, k, xb, ldx, w + (size_t)j * ldw, out); \
        for (int r = 0; r < R; r++) y[(size_t)(r0 + r) * ldy + j] = out[r]; } break;

JC_AVX2 static void gemm_few_rows_avx2(int m, int n0, int n1, int k, const float *x, int ldx, const float *w, int ldw,
                                       float *y, int ldy) {
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

JC_AVX2 static void scan_token_avx2(int c0, int c1, int n, const float *dt, const float *u, const float *z, const float *a,
                                    const float *b, const float *cm, const float *d, float *h, float *y) {
    for (int ch = c0; ch < c1; ch++) {
        const float dtc = dt[ch], uc = u[ch], du = dtc * uc;
        const __m256 vdt = _mm256_set1_ps(dtc), vdu = _mm256_set1_ps(du);
        float *hc = h + (size_t)ch * n;
        const float *ac = a + (size_t)ch * n;
        __m256 acc = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 hv = _mm256_fmadd_ps(exp8(_mm256_mul_ps(vdt, _mm256_loadu_ps(ac + j))), _mm256_loadu_ps(hc + j),
                                        _mm256_mul_ps(vdu, _mm256_loadu_ps(b + j)));
            _mm256_storeu_ps(hc + j, hv);
            acc = _mm256_fmadd_ps(hv, _mm256_loadu_ps(cm + j), acc);
        }
        float s = hsum8(acc);
        for (; j < n; j++) {
            float hv = expf(dtc * ac[j]) * hc[j] + du * b[j];
            hc[j] = hv;
            s += hv * cm[j];
        }
        y[ch] = (s + d[ch] * uc) * silu1(z[ch]);
    }
}

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
#endif

/* ---------------------------------------------------------------------------------------------------------------- */
/* Portable entry points: the AVX2 path when the CPU has it, otherwise plain C. */

void jc_gemm_few_rows(int m, int n0, int n1, int k, const float *x, int ldx, const float *w, int ldw, float *y, int ldy) {
#if JC_X86
    if (jc_has_avx2()) { gemm_few_rows_avx2(m, n0, n1, k, x, ldx, w, ldw, y, ldy); return; }
#endif
    for (int r = 0; r < m; r++)
        for (int j = n0; j < n1; j++) {
            float s = 0;
            for (int i = 0; i < k; i++) s += x[(size_t)r * ldx + i] * w[(size_t)j * ldw + i];
            y[(size_t)r * ldy + j] = s;
        }
}

void jc_scan_token(int c0, int c1, int n, const float *dt, const float *u, const float *z, const float *a,
                   const float *b, const float *c, const float *d, float *h, float *y) {
#if JC_X86
    if (jc_has_avx2()) { scan_token_avx2(c0, c1, n, dt, u, z, a, b, c, d, h, y); return; }
#endif
    for (int ch = c0; ch < c1; ch++) {
        float dtc = dt[ch], uc = u[ch], du = dtc * uc, s = 0;
        for (int j = 0; j < n; j++) {
            float hv = expf(dtc * a[(size_t)ch * n + j]) * h[(size_t)ch * n + j] + du * b[j];
            h[(size_t)ch * n + j] = hv;
            s += hv * c[j];
        }
        y[ch] = (s + d[ch] * uc) * silu1(z[ch]);
    }
}

void jc_softplus_bias(int count, const float *x, const float *bias, float *out) {
    // log1p needs full precision near 0; this runs once per channel per token, cheap next to the scan.
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
