// ckernels.h: hand-written CPU kernels for shapes BLAS handles poorly (few-row products, the selective scan).
#ifndef JAMBA_CKERNELS_H
#define JAMBA_CKERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the AVX2+FMA paths run on this CPU (checked once at run time), else 0 (portable C paths).
int jc_has_avx2(void);

/// y[m, n] = x[m, k] · w[n, k]ᵀ for a few rows (m ≤ 16 is the intended use): each row of w is read once and
/// dotted with every row of x, so the weights stream at memory speed instead of being packed as sgemm does.
/// Computes only output columns [n0, n1) so callers can split the work across threads.
void jc_gemm_few_rows(int m, int n0, int n1, int k, const float *x, int ldx, const float *w, int ldw,
                      float *y, int ldy);

/// The Mamba selective scan for one token over channels [c0, c1):
///   h[c, :] = exp(dt[c] · A[c, :]) ⊙ h[c, :] + (dt[c] · u[c]) · B
///   y[c]    = (h[c, :] · C + D[c] · u[c]) · silu(z[c])
/// with state size `n` (h, A are [channels, n] row-major).
void jc_scan_token(int c0, int c1, int n, const float *dt, const float *u, const float *z, const float *a,
                   const float *b, const float *c, const float *d, float *h, float *y);

/// out[i] = softplus(x[i] + bias[i]) (torch: beta 1, threshold 20), vectorised.
void jc_softplus_bias(int count, const float *x, const float *bias, float *out);

/// x[i] = silu(x[i]), vectorised.
void jc_silu_inplace(int count, float *x);

/// h[i] = silu(g[i]) · u[i], vectorised (SwiGLU).
void jc_swiglu(int count, const float *g, const float *u, float *h);

#ifdef __cplusplus
}
#endif
#endif
