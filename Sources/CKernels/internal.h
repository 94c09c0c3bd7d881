// internal.h: what the kernel files share (CPU-feature macros, weight element access, the AVX-512 entry points).
#ifndef JC_INTERNAL_H
#define JC_INTERNAL_H
#include "ckernels.h"
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define JC_X86 1
#define JC_AVX2 __attribute__((target("avx2,fma")))
#else
#define JC_X86 0
#endif

/* Weight element i of a matrix stored as f32 (bf = 0) or bf16 (bf = 1), and the address of element i. */
static inline float w_at(const int bf, const void *w, size_t i) {
    if (bf) { uint32_t u = (uint32_t)((const uint16_t *)w)[i] << 16; float f; memcpy(&f, &u, 4); return f; }
    return ((const float *)w)[i];
}

static inline const void *w_row(const int bf, const void *w, size_t i) {
    return bf ? (const void *)((const uint16_t *)w + i) : (const void *)((const float *)w + i);
}

#define JC_INLINE __attribute__((always_inline)) inline

static inline float silu1(float v) { return v / (1.0f + expf(-v)); }

/* kernels.c: x rows (m × k, stride *ldx) at 64-byte boundaries: x itself when it is aligned, else a copy in this
   thread's buffer (valid until the thread's next call), *ldx set to its stride. A large Swift array's elements
   start 48 bytes past a boundary (glibc's 16-byte mmap chunk header, then the array's 32), so every 16-float load
   of x would span two cache lines; end to end the copy made f32 prefill faster (bench/kernels.md §9). */
const float *jc_aligned_rows(int m, int k, const float *x, int *ldx);
/* The buffer jc_aligned_rows copies into, grown for m × k, *ldx set to its stride; NULL when x is aligned already
   or no buffer could be had. */
float *jc_aligned_rows_buffer(int m, int k, const float *x, int *ldx);
/* rows_mt.c: jc_aligned_rows with the rows copied across the pool (a prompt's x is up to 1.4 MB). */
const float *jc_aligned_rows_mt(int threads, int m, int k, const float *x, int *ldx);

#if JC_X86
/* exp for 8 floats: n = round(x·log2 e); r = x − n·ln 2 (two-part constant); e^r by a degree-6 polynomial;
   scale by 2^n through the exponent bits. Max relative error ≈ 2 ulp over the clamped range, like Cephes' expf.
   The steps are written once (JC_EXP_STEPS) for 8 and 16 lanes, so that a lane of exp8 and of exp16 gives the same
   float: the scan's 8- and 16-channel kernels must agree. P: the intrinsics' prefix; T, TI: the float and integer
   vectors; BITS: their width; ROUND: to the nearest integer. */
#define JC_EXP_STEPS(P, T, TI, BITS, ROUND)                                                                    \
    x = P##_min_ps(P##_max_ps(x, P##_set1_ps(-87.3f)), P##_set1_ps(88.3f));                                    \
    const T n = ROUND(P##_mul_ps(x, P##_set1_ps(1.44269504088896341f)));                                       \
    T r = P##_fnmadd_ps(n, P##_set1_ps(0.693359375f), x);                                                      \
    r = P##_fnmadd_ps(n, P##_set1_ps(-2.12194440e-4f), r);                                                     \
    T p = P##_set1_ps(1.9875691500e-4f);                                                                       \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.3981999507e-3f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(8.3334519073e-3f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(4.1665795894e-2f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.6666665459e-1f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(5.0000001201e-1f));                                                     \
    p = P##_fmadd_ps(p, P##_mul_ps(r, r), P##_add_ps(r, P##_set1_ps(1.0f)));                                   \
    const TI e = P##_slli_epi32(P##_add_epi32(P##_cvtps_epi32(n), P##_set1_epi32(127)), 23);                   \
    return P##_mul_ps(p, P##_castsi##BITS##_ps(e));

#define JC_ROUND8(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
JC_AVX2 static inline __m256 exp8(__m256 x) { JC_EXP_STEPS(_mm256, __m256, __m256i, 256, JC_ROUND8) }

/* AVX-512 code (few_rows_avx512.c, scan_avx512.c, nn_avx512.c) is compiled for it and run only when
   jc_few_rows_level() is 2. */
#define JC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

/* exp8 on 16 lanes (JC_EXP_STEPS). */
#define JC_ROUND16(v) _mm512_roundscale_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
JC_AVX512 static inline __m512 exp16(__m512 x) { JC_EXP_STEPS(_mm512, __m512, __m512i, 512, JC_ROUND16) }

JC_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* few_rows_avx512.c: y[:, n0:n1] = x · w[n0:n1, :]ᵀ for up to 32 x rows, the sum split at k0 when 0 < k0 < k. */
void jc_few_rows_avx512_f32(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w, int ldw,
                            float *y, int ldy);
void jc_few_rows_avx512_bf16(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w, int ldw,
                             float *y, int ldy);
#endif

/* pool.c's work sharing. A job's range is handed out in chunks from a shared counter rather than in fixed parts: a
   thread that loses its core for a while (to another process on the same cores, or an I/O thread) then costs the
   call only its current chunk, because the others take the rest. */
typedef struct {
    _Atomic int next;
    int count, chunk, nchunks;
} jc_chunks;

/* [0, count) in about `want` chunks of a multiple of `align`. */
static inline void jc_chunks_init(jc_chunks *c, int count, int want, int align) {
    if (want < 1) want = 1;
    c->count = count;
    c->chunk = ((count + want - 1) / want + align - 1) / align * align;
    if (c->chunk < align) c->chunk = align;
    c->nchunks = (count + c->chunk - 1) / c->chunk;
    atomic_init(&c->next, 0);
}

/* The next chunk [lo, hi); 0 when none is left. */
static inline int jc_chunks_take(jc_chunks *c, int *lo, int *hi) {
    const int i = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
    if (i >= c->nchunks) return 0;
    *lo = i * c->chunk;
    *hi = *lo + c->chunk < c->count ? *lo + c->chunk : c->count;
    return 1;
}

/* A job of ranges for jc_pool_run(n, jc_range_part, &job): every participant calls fn(ctx, lo, hi) on chunks taken
   from `work` until none is left. */
typedef struct {
    jc_chunks work;
    void (*fn)(void *ctx, int lo, int hi);
    void *ctx;
} jc_range_job;

static inline void jc_range_part(void *ctx, int p) {
    (void)p;
    jc_range_job *j = (jc_range_job *)ctx;
    int lo, hi;
    while (jc_chunks_take(&j->work, &lo, &hi)) j->fn(j->ctx, lo, hi);
}

/* scan.c: the selective scan of jc_scan_segment_mt for channels [c0, c1) over all `tokens` (c0 a multiple of 8).
   From JC_SCAN_BLOCK_MIN_TOKENS tokens on, 8 channels per vector with the state transposed (see scan.c). */
#define JC_SCAN_BLOCK_MIN_TOKENS 4
/* One group of channels (8 or 16, one a lane) over `tokens` tokens, its state hT and A in aT transposed to [n][lanes]
   (scan.c's block driver). */
typedef void (*jc_scan_group_fn)(int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u, const float *z,
                                 int ld_z, const float *aT, const float *bc, int ld_bc, const float *d, float *hT,
                                 float *y, int ld_y);
/* scan_avx512.c: scan.c's scan_group8 with 16 channels a vector. */
void jc_scan_group16(int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u, const float *z, int ld_z,
                     const float *aT, const float *bc, int ld_bc, const float *d, float *hT, float *y, int ld_y);
void jc_scan_channels(int c0, int c1, int tokens, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                      const float *z, int ld_z, const float *a, const float *bc, int ld_bc, const float *d, float *h,
                      float *y, int ld_y);

#endif
