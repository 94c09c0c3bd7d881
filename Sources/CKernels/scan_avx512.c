// scan_avx512.c: the selective scan over a prompt with 16 channels per AVX-512 vector (scan.c's blocks, twice as wide).
#include "internal.h"

/* scan.c's block scan keeps 8 channels in a vector, the state transposed to [n][8]. On an AVX-512 CPU the same
   updates run 16 channels to a vector: half the instructions per token and channel, the exp polynomial included,
   which is most of the scan's work (n exps per token and channel). Each lane does the operations of scan.c's
   scan_group8 on the same values in the same order (the same exp polynomial, the same two chains of FMAs over
   even and odd states), so a channel gets the same floats from either kernel
   (`KernelTests.testScanSixteenAndEightChannelBlocksGiveTheSameFloats`). */
#if JC_X86
/* One state update for 16 channels: h = exp(dt·A[j]) ⊙ h + (dt·u)·B[j]. */
JC_AVX512 static JC_INLINE __m512 update16(__m512 vdt, __m512 vdu, const float *aTj, float *hTj, float bj) {
    const __m512 h = _mm512_fmadd_ps(exp16(_mm512_mul_ps(vdt, _mm512_load_ps(aTj))), _mm512_load_ps(hTj),
                                     _mm512_mul_ps(vdu, _mm512_set1_ps(bj)));
    _mm512_store_ps(hTj, h);
    return h;
}

/* Tokens [0, tokens) of one group of 16 channels, its state hT and A in aT transposed ([n][16]); scan.c's block
   driver calls it. */
JC_AVX512 void jc_scan_group16(int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u, const float *z,
                               int ld_z, const float *aT, const float *bc, int ld_bc, const float *d, float *hT, float *y,
                               int ld_y) {
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

#endif
