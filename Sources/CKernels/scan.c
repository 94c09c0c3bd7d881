// scan.c: the Mamba selective scan, per token over all channels (decode) or 8 channels per vector over a prompt.
#include "internal.h"
#include <math.h>

/* Per token (decode, and any CPU): for each channel its state is n/8 vectors of 8 states, updated in place, and
   the output is their dot product with C, reduced across the lanes. */
#if JC_X86
/* Channel `ch`'s state updated for one token: h = exp(dt·A) ⊙ h + (dt·u)·B; returns h ⊙ C summed per lane (n a
   multiple of 8). */
JC_AVX2 static JC_INLINE __m256 scan_channel(int n, float dtc, float du, const float *ac, const float *b, const float *cm,
                                             float *hc) {
    const __m256 vdt = _mm256_set1_ps(dtc), vdu = _mm256_set1_ps(du);
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) {
        const __m256 hv = _mm256_fmadd_ps(exp8(_mm256_mul_ps(vdt, _mm256_loadu_ps(ac + j))), _mm256_loadu_ps(hc + j),
                                          _mm256_mul_ps(vdu, _mm256_loadu_ps(b + j)));
        _mm256_storeu_ps(hc + j, hv);
        acc = _mm256_fmadd_ps(hv, _mm256_loadu_ps(cm + j), acc);
    }
    return acc;
}

/* The sums of 8 vectors' lanes, as one vector: [Σv0, Σv1, ..., Σv7]. */
JC_AVX2 static JC_INLINE __m256 hsum8x8(const __m256 v[8]) {
    const __m256 ab = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));  // v0..v3: lanes 0–3 | 4–7
    const __m256 cd = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));  // v4..v7
    return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

/* 8 channels at a time: their reductions in one transpose-and-add (instead of one per channel) and SiLU
   vectorised (instead of libm's expf per channel), ~40% less time per token and channel than one channel at a time
   (bench/kernels.md §6). The state updates are the same operations either way. */
JC_AVX2 static void scan_token_avx2(int c0, int c1, int n, const float *dt, const float *u, const float *z, const float *a,
                                    const float *b, const float *cm, const float *d, float *h, float *y) {
    int ch = c0;
    if (n % 8 == 0) {
        const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
        for (; ch + 8 <= c1; ch += 8) {
            __m256 acc[8];
            for (int c = 0; c < 8; c++) {
                const int k = ch + c;
                acc[c] = scan_channel(n, dt[k], dt[k] * u[k], a + (size_t)k * n, b, cm, h + (size_t)k * n);
            }
            // y = (h·C + D·u) ⊙ SiLU(z), 8 channels
            const __m256 vz = _mm256_loadu_ps(z + ch);
            const __m256 silu = _mm256_div_ps(vz, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, vz))));
            const __m256 s = _mm256_fmadd_ps(_mm256_loadu_ps(d + ch), _mm256_loadu_ps(u + ch), hsum8x8(acc));
            _mm256_storeu_ps(y + ch, _mm256_mul_ps(s, silu));
        }
    }
    for (; ch < c1; ch++) {  // the last channels, or a state size that is not a multiple of 8
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

/* Over a prompt, 8 channels per vector. Per channel the per-token work above is 16 state updates (two vectors),
   then a reduction across lanes and a scalar SiLU with libm's expf: ~15 ns per token and channel here, 6.7% of
   an f32 prefill's samples. With the state of 8 channels transposed to [n][8] (lane = channel), a token is n
   vertical updates and two accumulators, with no reduction, and SiLU is vectorised: ~10 ns (bench/kernels.md §6).
   The transposes in and out are paid once per block of channels and all its tokens; for one token alone they
   make it slower (17 ns against 15), so decode (one token per sequence) keeps the per-token kernel. The state updates are the same operations on
   the same values as the per-token kernel's; the outputs differ in summation order (and in SiLU's exp) only.

   Blocks are SCAN_GROUPS × 8 channels, walked in tiles of SCAN_TILE tokens with the next tile's rows
   prefetched: rows of dt, u, z and y are a prompt's width apart (8 KB at d_inner 2048), which the hardware
   prefetchers do not follow. Blocks of 128 channels measured 10.1 ns, 256 channels 9.4, 64 channels 13.5. */
#define SCAN_GROUPS 16
#define SCAN_TILE 16
#define SCAN_MAX_STATE 32

/* Tokens [0, tokens) of one group of 8 channels, its state hT and A in aT transposed ([n][8]). */
JC_AVX2 static void scan_group8(int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                                          const float *z, int ld_z, const float *aT, const float *bc, int ld_bc,
                                          const float *d, float *hT, float *y, int ld_y) {
    const __m256 vd = _mm256_loadu_ps(d), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (int t = 0; t < tokens; t++) {
        const __m256 vdt = _mm256_loadu_ps(dt + (size_t)t * ld_dt), vu = _mm256_loadu_ps(u + (size_t)t * ld_u);
        const __m256 vdu = _mm256_mul_ps(vdt, vu);
        const float *b = bc + (size_t)t * ld_bc, *c = b + n;
        __m256 acc0 = zero, acc1 = zero;  // even and odd state indices: two chains of FMAs instead of one
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            // h[j] = exp(dt·A[j]) ⊙ h[j] + (dt·u)·B[j]; acc += h[j]·C[j], for 8 channels at once
            const __m256 h0 = _mm256_fmadd_ps(exp8(_mm256_mul_ps(vdt, _mm256_load_ps(aT + 8 * j))), _mm256_load_ps(hT + 8 * j),
                                              _mm256_mul_ps(vdu, _mm256_set1_ps(b[j])));
            const __m256 h1 = _mm256_fmadd_ps(exp8(_mm256_mul_ps(vdt, _mm256_load_ps(aT + 8 * j + 8))), _mm256_load_ps(hT + 8 * j + 8),
                                              _mm256_mul_ps(vdu, _mm256_set1_ps(b[j + 1])));
            _mm256_store_ps(hT + 8 * j, h0);
            _mm256_store_ps(hT + 8 * j + 8, h1);
            acc0 = _mm256_fmadd_ps(h0, _mm256_set1_ps(c[j]), acc0);
            acc1 = _mm256_fmadd_ps(h1, _mm256_set1_ps(c[j + 1]), acc1);
        }
        if (j < n) {
            const __m256 h0 = _mm256_fmadd_ps(exp8(_mm256_mul_ps(vdt, _mm256_load_ps(aT + 8 * j))), _mm256_load_ps(hT + 8 * j),
                                              _mm256_mul_ps(vdu, _mm256_set1_ps(b[j])));
            _mm256_store_ps(hT + 8 * j, h0);
            acc0 = _mm256_fmadd_ps(h0, _mm256_set1_ps(c[j]), acc0);
        }
        // y = (h·C + D·u) ⊙ SiLU(z)
        const __m256 vz = _mm256_loadu_ps(z + (size_t)t * ld_z);
        const __m256 silu = _mm256_div_ps(vz, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, vz))));
        _mm256_storeu_ps(y + (size_t)t * ld_y, _mm256_mul_ps(_mm256_fmadd_ps(vd, vu, _mm256_add_ps(acc0, acc1)), silu));
    }
}

/* Channels [c0, c1), c1 − c0 a multiple of `lanes` (8: scan_group8, 16: jc_scan_group16), over all tokens; n ≤
   SCAN_MAX_STATE. Blocks of 128 channels: their states and A transposed to [n][lanes] per group of `lanes`
   channels, then every tile of tokens through `group`, then the states put back. */
static void scan_blocks(int lanes, jc_scan_group_fn group, int c0, int c1, int tokens, int n, const float *dt, int ld_dt,
                        const float *u, int ld_u, const float *z, int ld_z, const float *a, const float *bc, int ld_bc,
                        const float *d, float *h, float *y, int ld_y) {
    const int groups_max = 8 * SCAN_GROUPS / lanes;
    float hT[SCAN_GROUPS * SCAN_MAX_STATE * 8] __attribute__((aligned(64)));
    float aT[SCAN_GROUPS * SCAN_MAX_STATE * 8] __attribute__((aligned(64)));
    const size_t gs = (size_t)SCAN_MAX_STATE * lanes;  // floats per group
    for (int b0 = c0; b0 < c1; b0 += lanes * groups_max) {
        const int groups = (c1 - b0) / lanes < groups_max ? (c1 - b0) / lanes : groups_max;
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < lanes; c++)
                for (int j = 0; j < n; j++) {
                    hT[g * gs + j * lanes + c] = h[(size_t)(b0 + lanes * g + c) * n + j];
                    aT[g * gs + j * lanes + c] = a[(size_t)(b0 + lanes * g + c) * n + j];
                }
        for (int t0 = 0; t0 < tokens; t0 += SCAN_TILE) {
            const int tt = tokens - t0 < SCAN_TILE ? tokens - t0 : SCAN_TILE;
            for (int t = t0 + SCAN_TILE; t < t0 + 2 * SCAN_TILE && t < tokens; t++)
                for (int c = b0; c < b0 + lanes * groups; c += 16) {
                    _mm_prefetch((const char *)(dt + (size_t)t * ld_dt + c), _MM_HINT_T0);
                    _mm_prefetch((const char *)(u + (size_t)t * ld_u + c), _MM_HINT_T0);
                    _mm_prefetch((const char *)(z + (size_t)t * ld_z + c), _MM_HINT_T0);
                    _mm_prefetch((const char *)(y + (size_t)t * ld_y + c), _MM_HINT_T0);
                }
            for (int g = 0; g < groups; g++) {
                const int ch = b0 + lanes * g;
                group(tt, n, dt + (size_t)t0 * ld_dt + ch, ld_dt, u + (size_t)t0 * ld_u + ch, ld_u,
                      z + (size_t)t0 * ld_z + ch, ld_z, aT + g * gs, bc + (size_t)t0 * ld_bc, ld_bc, d + ch, hT + g * gs,
                      y + (size_t)t0 * ld_y + ch, ld_y);
            }
        }
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < lanes; c++)
                for (int j = 0; j < n; j++) h[(size_t)(b0 + lanes * g + c) * n + j] = hT[g * gs + j * lanes + c];
    }
}
#endif

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

void jc_scan_channels(int c0, int c1, int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                      const float *z, int ld_z, const float *a, const float *bc, int ld_bc, const float *d, float *h,
                      float *y, int ld_y) {
#if JC_X86
    // Whole groups of 8 from c0 (a multiple of 8: jc_scan_segment_mt's chunks), so which kernel a channel gets
    // does not depend on how the channels were split between threads.
    const int blocks = tokens >= JC_SCAN_BLOCK_MIN_TOKENS && n <= SCAN_MAX_STATE;
    // On AVX-512, whole groups of 16 first (scan_avx512.c; a lane gives the same floats as one of 8 here).
    if (blocks && jc_few_rows_level() == 2 && c1 - c0 >= 16) {
        const int c16 = c0 + (c1 - c0) / 16 * 16;
        scan_blocks(16, jc_scan_group16, c0, c16, tokens, n, dt, ld_dt, u, ld_u, z, ld_z, a, bc, ld_bc, d, h, y, ld_y);
        c0 = c16;
    }
    const int c8 = c0 + (c1 - c0) / 8 * 8;
    if (blocks && jc_has_avx2() && c8 > c0) {
        scan_blocks(8, scan_group8, c0, c8, tokens, n, dt, ld_dt, u, ld_u, z, ld_z, a, bc, ld_bc, d, h, y, ld_y);
        c0 = c8;
    }
    if (c0 == c1) return;
#endif
    for (int t = 0; t < tokens; t++) {
        const float *b = bc + (size_t)t * ld_bc;
        jc_scan_token(c0, c1, n, dt + (size_t)t * ld_dt, u + (size_t)t * ld_u, z + (size_t)t * ld_z, a, b, b + n, d, h,
                      y + (size_t)t * ld_y);
    }
}
