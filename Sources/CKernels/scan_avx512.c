// scan_avx512.c: the selective scan over a prompt with 16 channels per AVX-512 vector (scan.c's blocks, twice as wide).
#include "internal.h"

/* scan.c's block scan keeps 8 channels in a vector, the state transposed to [n][8]. On an AVX-512 CPU the same
   updates run 16 channels to a vector: half the instructions per token and channel, the exp polynomial included,
   which is most of the scan's work (n exps per token and channel). Each lane does the operations of scan.c's
   scan_group8 on the same values in the same order (the same exp polynomial, the same two chains of FMAs over
   even and odd states), so a channel gets the same floats from either kernel (`ScanKernelTests`). */
#if JC_X86
#define SCAN16_GROUPS 8
#define SCAN16_TILE 16
#define SCAN16_MAX_STATE 32

/* One state update for 16 channels: h = exp(dt·A[j]) ⊙ h + (dt·u)·B[j]. */
JC_AVX512 static JC_INLINE __m512 update16(__m512 vdt, __m512 vdu, const float *aTj, float *hTj, float bj) {
    const __m512 h = _mm512_fmadd_ps(exp16(_mm512_mul_ps(vdt, _mm512_load_ps(aTj))), _mm512_load_ps(hTj),
                                     _mm512_mul_ps(vdu, _mm512_set1_ps(bj)));
    _mm512_store_ps(hTj, h);
    return h;
}

/* Tokens [0, tokens) of one group of 16 channels, its state hT and A in aT transposed ([n][16]). */
JC_AVX512 static JC_INLINE void scan_group16(int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                                             const float *z, int ld_z, const float *aT, const float *bc, int ld_bc,
                                             const float *d, float *hT, float *y, int ld_y) {
    const __m512 vd = _mm512_loadu_ps(d), one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (int t = 0; t < tokens; t++) {
        const __m512 vdt = _mm512_loadu_ps(dt + (size_t)t * ld_dt), vu = _mm512_loadu_ps(u + (size_t)t * ld_u);
        const __m512 vdu = _mm512_mul_ps(vdt, vu);
        const float *b = bc + (size_t)t * ld_bc, *c = b + n;
        __m512 acc0 = zero, acc1 = zero;  // even and odd state indices, as scan_group8
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            acc0 = _mm512_fmadd_ps(update16(vdt, vdu, aT + 16 * j, hT + 16 * j, b[j]), _mm512_set1_ps(c[j]), acc0);
            acc1 = _mm512_fmadd_ps(update16(vdt, vdu, aT + 16 * j + 16, hT + 16 * j + 16, b[j + 1]),
                                   _mm512_set1_ps(c[j + 1]), acc1);
        }
        if (j < n) acc0 = _mm512_fmadd_ps(update16(vdt, vdu, aT + 16 * j, hT + 16 * j, b[j]), _mm512_set1_ps(c[j]), acc0);
        // y = (h·C + D·u) ⊙ SiLU(z)
        const __m512 vz = _mm512_loadu_ps(z + (size_t)t * ld_z);
        const __m512 silu = _mm512_div_ps(vz, _mm512_add_ps(one, exp16(_mm512_sub_ps(zero, vz))));
        _mm512_storeu_ps(y + (size_t)t * ld_y, _mm512_mul_ps(_mm512_fmadd_ps(vd, vu, _mm512_add_ps(acc0, acc1)), silu));
    }
}

JC_AVX512 int jc_scan_blocks_avx512(int c0, int c1, int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                                    const float *z, int ld_z, const float *a, const float *bc, int ld_bc, const float *d, float *h,
                                    float *y, int ld_y) {
    if (n > SCAN16_MAX_STATE) return c0;
    float hT[SCAN16_GROUPS][SCAN16_MAX_STATE * 16] __attribute__((aligned(64)));
    float aT[SCAN16_GROUPS][SCAN16_MAX_STATE * 16] __attribute__((aligned(64)));
    const int c16 = c0 + (c1 - c0) / 16 * 16;
    for (int b0 = c0; b0 < c16; b0 += 16 * SCAN16_GROUPS) {
        const int groups = (c16 - b0) / 16 < SCAN16_GROUPS ? (c16 - b0) / 16 : SCAN16_GROUPS;
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < 16; c++)
                for (int j = 0; j < n; j++) {
                    hT[g][j * 16 + c] = h[(size_t)(b0 + 16 * g + c) * n + j];
                    aT[g][j * 16 + c] = a[(size_t)(b0 + 16 * g + c) * n + j];
                }
        for (int t0 = 0; t0 < tokens; t0 += SCAN16_TILE) {
            const int tt = tokens - t0 < SCAN16_TILE ? tokens - t0 : SCAN16_TILE;
            // The next tile's rows, which are a prompt's width apart: the hardware prefetchers do not follow them.
            for (int t = t0 + SCAN16_TILE; t < t0 + 2 * SCAN16_TILE && t < tokens; t++)
                for (int c = b0; c < b0 + 16 * groups; c += 16) {
                    _mm_prefetch((const char *)(dt + (size_t)t * ld_dt + c), _MM_HINT_T0);
                    _mm_prefetch((const char *)(u + (size_t)t * ld_u + c), _MM_HINT_T0);
                    _mm_prefetch((const char *)(z + (size_t)t * ld_z + c), _MM_HINT_T0);
                    _mm_prefetch((const char *)(y + (size_t)t * ld_y + c), _MM_HINT_T0);
                }
            for (int g = 0; g < groups; g++) {
                const int ch = b0 + 16 * g;
                scan_group16(tt, n, dt + (size_t)t0 * ld_dt + ch, ld_dt, u + (size_t)t0 * ld_u + ch, ld_u,
                             z + (size_t)t0 * ld_z + ch, ld_z, aT[g], bc + (size_t)t0 * ld_bc, ld_bc, d + ch, hT[g],
                             y + (size_t)t0 * ld_y + ch, ld_y);
            }
        }
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < 16; c++)
                for (int j = 0; j < n; j++) h[(size_t)(b0 + 16 * g + c) * n + j] = hT[g][j * 16 + c];
    }
    return c16;
}
#endif
