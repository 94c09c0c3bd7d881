// ckernels.h: hand-written CPU kernels for shapes BLAS handles poorly (few-row products, the selective scan).
#ifndef JAMBA_CKERNELS_H
#define JAMBA_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

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

/// The same with the weights stored as bf16 (widened exactly to f32 in registers; compute stays f32).
void jc_gemm_few_rows_bf16(int m, int n0, int n1, int k, const float *x, int ldx, const uint16_t *w, int ldw,
                           float *y, int ldy);

/// jc_gemm_few_rows (bf16 = 0, w is float) or jc_gemm_few_rows_bf16 (bf16 = 1) over all n output columns, split
/// into `threads` parts run by this thread and the pool's threads.
void jc_gemm_few_rows_mt(int threads, int m, int n, int k, const float *x, int ldx, const void *w, int bf16, int ldw,
                         float *y, int ldy);

/// jc_gemm_few_rows(_bf16) over columns [n0, n1) with each output's sum taken in two segments, [0, k0) and
/// [k0, k), each reduced on its own and then added: bit for bit the two segments' products added afterwards (an
/// expert's two slices computed apart), in one pass over w on AVX-512. Other kernel levels compute the second
/// segment into tmp [m, n1 - n0] first. k0 outside (0, k): the plain product.
void jc_gemm_few_rows_split(int bf16, int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w,
                            int ldw, float *y, int ldy, float *tmp);

/// jc_gemm_few_rows_split over all n columns, split into `threads` parts like jc_gemm_few_rows_mt; tmp holds
/// [m, n] floats (may be NULL on AVX-512 or when k0 is outside (0, k)).
void jc_gemm_few_rows_split_mt(int threads, int m, int n, int k0, int k, const float *x, int ldx, const void *w, int bf16,
                               int ldw, float *y, int ldy, float *tmp);

/// y[m, n] = alpha · x[m, k] · op(w) + beta · y (row-major; op(w) = wᵀ for w stored [n, k] when trans_w, else w
/// stored [k, n]) through single-threaded OpenBLAS sgemm calls on this thread and the pool's, each on a block of
/// output columns; the floats do not depend on the split. OpenBLAS's own threads are then never used: they spin in
/// sched_yield for ~0.1 s after every call, taking turns on the cores with the pool's threads.
void jc_sgemm_mt(int threads, int trans_w, int m, int n, int k, float alpha, const float *x, int ldx, const float *w,
                 int ldw, float beta, float *y, int ldy);

/// y[m, n0:n1] = alpha · x[m, k] · w[k, n0:n1] for w stored [k, n] (row-major, leading dimensions given): register
/// tiles that broadcast x against rows of w, no packing and no reductions across lanes, for short sums over many
/// rows (Mamba's dt_proj against its transposed weights, attention over a prompt). Each output is one sum in k
/// order, whatever the tile or split. AVX-512 when jc_few_rows_level() is 2, else jc_gemm_nn_rows.
void jc_gemm_nn(int m, int n0, int n1, int k, float alpha, const float *x, int ldx, const float *w, int ldw, float *y,
                int ldy);

/// jc_gemm_nn over all n columns, split across `threads` (this one and the pool's) in blocks of 64 columns.
void jc_gemm_nn_mt(int threads, int m, int n, int k, float alpha, const float *x, int ldx, const float *w, int ldw,
                   float *y, int ldy);

/// Causal attention of `tq` queries at positions past ..< past + tq against the first past + tq keys and values:
/// o[t, h·hd:(h+1)·hd] = softmax(scale · q_h[t] · K_gᵀ, keys ≤ past + t) · V_g, with g = h / (heads / kv_heads)
/// (repeat_interleave). q [tq, ldq], o [tq, ldo]; k and v [past + tq, ldkv] with kv head g at columns g·hd.
/// Heads are split across `threads`. Returns 0, or -1 when the heads do not divide or scratch could not be had.
int jc_attention_prompt(int threads, int heads, int kv_heads, int hd, int tq, int past, float scale, const float *q,
                        int ldq, const float *k, const float *v, int ldkv, float *o, int ldo);

/// h = SiLU(gate) ⊙ up for `rows` rows split across `threads`: per row, slice s (bounds[s] ..< bounds[s + 1] of
/// h's bounds[nbounds - 1] columns) reads gate at gu[2·lo, 2·lo + w) and up at gu[2·lo + w, 2·hi) (an MLP's
/// slice-stacked gate/up output). Each row gets jc_swiglu's floats.
void jc_swiglu_rows_mt(int threads, int rows, int nbounds, const int *bounds, const float *gu, int ldgu, float *h,
                       int ldh);

/// out[r] = softplus(x[r] + bias) for `rows` rows of `cols`, split across `threads`; jc_softplus_bias's floats.
void jc_softplus_bias_rows_mt(int threads, int rows, int cols, const float *x, int ldx, const float *bias, float *out,
                              int ldo);

/// Mamba's causal depthwise conv and SiLU over a segment's `rows` rows, split across `threads`:
/// u[t, c] = SiLU(bias[c] + Σ_q w[q, c] · in(t − (taps − 1) + q)[c]), where in(s) is x's row s (stride ldx), or for
/// s < 0 row taps + s of `state` ([taps, channels], the last inputs before the segment). bias may be NULL.
void jc_conv_silu_rows_mt(int threads, int rows, int channels, int taps, const float *x, int ldx, const float *state,
                          const float *w, const float *bias, float *u, int ldu);

/// One part of a job split across the pool.
typedef void (*jc_part_fn)(void *ctx, int part);

/// Runs fn(ctx, 0) on the calling thread and fn(ctx, p), p in [1, nparts), on pool threads that spin briefly between
/// jobs and then sleep. fn must take its work from a shared counter in ctx until none is left: the caller's call
/// alone finishes the job when no helper joins in time, and a helper that wakes after the caller ran out of work
/// does not join at all. Returns once the work is done and no helper is inside fn. If another thread is using the
/// pool, the caller does all the work. Returns the number of threads that could take part.
int jc_pool_run(int nparts, jc_part_fn fn, void *ctx);

/// Tells the pool's spinning threads to sleep now rather than at the end of their spin: for a caller about to
/// block (on the network, say) whose cores other processes need meanwhile. The next jc_pool_run wakes them.
void jc_pool_park(void);

/// Wakes sleeping (or parked) helpers to spin for a while (~0.3–2 ms) without a job: for a caller that has just
/// received the message its next products depend on, so the helpers' wake-up overlaps its serial work instead of
/// delaying its first product.
void jc_pool_prewake(void);

/// off_this_cpu = 1: restricts this process's threads whose name starts with `name_prefix` to every CPU the caller
/// may use except the one it runs on now; 0: gives them all of the caller's CPUs back (Linux; elsewhere a no-op).
/// Threads are looked up on the first call with a given prefix; call from one thread. Returns how many threads are
/// steered.
int jc_steer_named_threads(const char *name_prefix, int off_this_cpu);

/// Restricts every thread of this process, and the threads it starts later, to the `count` CPUs listed (Linux).
/// Returns 0, or -1 when a CPU is invalid or not allowed (or off Linux).
int jc_restrict_process_cpus(const int *cpus, int count);
/// Writes the CPUs this thread may run on into `cpus` (at most `capacity`) and returns how many, or -1 (off Linux).
int jc_allowed_cpus(int *cpus, int capacity);
/// The CPU this thread runs on, this thread's kernel id, and naming this thread (Linux; -1 / no-op elsewhere).
int jc_current_cpu(void);
int jc_thread_id(void);
void jc_set_thread_name(const char *name);

/// 1 when the AVX-512 (F, BW, VL, DQ) paths run on this CPU, else 0.
int jc_has_avx512(void);

/// The few-row kernel in use: 2 = AVX-512, 1 = AVX2, 0 = portable C.
int jc_few_rows_level(void);

/// Caps the few-row kernel at `level` (a negative value or one above what the CPU has restores the best), so
/// tests and benchmarks can compare the paths on one machine.
void jc_set_few_rows_level(int level);

/// Forces the AVX-512 few-row kernel's register tile: blocks of `rb` x rows (1–4) × `c` weight rows (1, 2, 3, 4
/// or 6); anything else restores the measured per-row-count plan. For tests (every tile gives the same floats) and
/// tools/bench/few_rows_tiles.c. Not thread-safe: set it while no product runs.
void jc_set_few_rows_tile(int rb, int c);

/// Sets the AVX-512 few-row kernel's k block (a multiple of 16; 0: never block; negative: the default), for tests
/// (every block gives the same floats) and tools/bench/many_rows_tiles.c. Not thread-safe, like the tile.
void jc_set_few_rows_kblock(int kc);
/// y[m, n] = x[m, k] · w[k, n] (no transpose) for a few rows, single-threaded: attention's P · V in decode,
/// which OpenBLAS would hand to its thread pool, whose spinning then takes a core from the next kernel.
void jc_gemm_nn_rows(int m, int n, int k, const float *x, int ldx, const float *w, int ldw, float *y, int ldy);

/// dst[i] = the bf16 src[i] widened to f32 (exact).
void jc_bf16_to_f32(size_t count, const uint16_t *src, float *dst);

/// The Mamba selective scan for one token over channels [c0, c1):
///   h[c, :] = exp(dt[c] · A[c, :]) ⊙ h[c, :] + (dt[c] · u[c]) · B
///   y[c]    = (h[c, :] · C + D[c] · u[c]) · silu(z[c])
/// with state size `n` (h, A are [channels, n] row-major).
void jc_scan_token(int c0, int c1, int n, const float *dt, const float *u, const float *z, const float *a,
                   const float *b, const float *c, const float *d, float *h, float *y);

/// The selective scan (jc_scan_token) over `tokens` consecutive tokens of one sequence, channels split across
/// `threads` (the pool). Token t reads dt + t·ld_dt, u + t·ld_u, z + t·ld_z, B = bc + t·ld_bc, C = B + n and
/// writes y + t·ld_y; h [channels, n] carries the state through the tokens.
void jc_scan_segment_mt(int threads, int tokens, int channels, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                        const float *z, int ld_z, const float *a, const float *bc, int ld_bc, const float *d, float *h,
                        float *y, int ld_y);

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
