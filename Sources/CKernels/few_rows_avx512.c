// few_rows_avx512.c: the AVX-512 few-row product (f32 or bf16 weights), register tiles of x rows × weight rows.
#include "internal.h"
#include <stdlib.h>

/* AVX-512 few-row kernel: a tile of R x rows × C weight rows keeps R·C accumulators in the 32 zmm registers, so
   each x vector loaded is used C times and each weight vector R times. The AVX2 kernel above (C = 1) reloads
   all R x vectors for every weight row; at 8 rows that made it bound by loads from L2 at ~7 GB/s per core,
   a quarter of what memory delivers. Every output element is the same sum in the same order whatever R and C
   are (16-lane partial sums over k, then one reduction), so how rows or columns are split between calls or
   threads never changes a result. */
#if JC_X86

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
/* Most x rows per register tile (see tile_plan). */
#define JC_MAX_RB 4
/* Adds x[r, lo:hi] · w[c, lo:hi] for r < R, c < C to 16-lane partial sums: started at zero when `first`, else
   taken from `spill`; when `last`, a masked tail at hi and the lanes reduced into s, else the partial sums put
   back in `spill`. Cutting [lo, hi) into blocks of whole vectors this way adds the same floats in the same order
   as one pass over it. */
JC_AVX512 static JC_INLINE void tile512_sums(const int bf, const int R, const int C, int lo, int hi, const int first,
                                             const int last, const float *x, int ldx, const void *w, int ldw,
                                             __m512 *spill, float s[JC_MAX_RB][6]) {
    __m512 acc[JC_MAX_RB][6];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = first ? _mm512_setzero_ps() : _mm512_load_ps((const float *)&spill[r * 6 + c]);
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
    if (!last) {
        for (int r = 0; r < R; r++) for (int c = 0; c < C; c++) _mm512_store_ps((float *)&spill[r * 6 + c], acc[r][c]);
        return;
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

/* One block [lo, hi) of a tile's sum segment (tile512_sums). On the segment's last block the tile's outputs are
   written: y = s for the first segment, y += s for the second. With 0 < k0 < k a sum is taken in two segments,
   [0, k0) and [k0, k), each reduced on its own and then added: the same floats as two products over the segments
   added afterwards (an expert's two slices computed by two workers), but in one pass over the weights. */
JC_AVX512 static JC_INLINE void tile512(const int bf, const int R, const int C, int lo, int hi, int first, int last,
                                        int add, const float *x, int ldx, const void *w, int ldw, __m512 *spill,
                                        float *y, int ldy) {
    float s[JC_MAX_RB][6];
    tile512_sums(bf, R, C, lo, hi, first, last, x, ldx, w, ldw, spill, s);
    if (!last) return;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float *o = y + (size_t)r * ldy + c;
            *o = add ? *o + s[r][c] : s[r][c];
        }
}

/* The register tile for m x rows: blocks of up to RB x rows × C weight rows (RB·C accumulators + C weight vectors
   + 1 x vector ≤ 32 registers). Measured one thread per core and two (expert slices, 1024 × 1408, weights from
   memory; tools/bench/few_rows_tiles.c):
   - 1–2 rows: one weight row at a time leaves one or two FMA chains, each waiting on the last (4 cycles), and
     a single thread then reads bf16 at 2 rows at 21 GB/s, where 3 weight rows reach the core's 28 (0.42 → 0.31
     ms); f32 at 1 row 0.81 → 0.67 ms with 6. With two threads both cores share the memory limit and every C
     measures the same, so the plan is set by the one-thread case (an expert worker).
   - 5 rows and up: blocks of 4 x rows, not 8. Eight rows of x (32 KB at k = 1024) fill L1 by themselves, so x
     came from L2 on every tile; in blocks of 4 the second block reads the weight tile from L1/L2 instead, and
     is faster: f32 8 rows 1.32 → 1.06 ms per slice on one thread, 32 rows 2.21 → 1.79 ms on two.
   - f32 weight vectors are twice bf16's bytes, so f32 takes narrower tiles (C = 4) than bf16 (C = 6) in decode.
     From 32 rows (prefill's chunks, BLAS.manyRowsChunk, and batch-32 decode) f32 takes C = 6 too: each weight
     tile then serves 8–16 row blocks. On the Intel Xeon VM f32 prefill rose from 347 to 371 tok/s (medians of 4
     alternated runs; tools/bench/many_rows_tiles.c: 4 × 6 ran 5–15% above 4 × 4 at prefill's shapes). */
static int forced_rb, forced_c;

void jc_set_few_rows_tile(int rb, int c) {
    const int ok = rb >= 1 && rb <= JC_MAX_RB && (c == 1 || c == 2 || c == 3 || c == 4 || c == 6);
    forced_rb = ok ? rb : 0;
    forced_c = ok ? c : 0;
}

static JC_INLINE void tile_plan(const int bf, int m, int *rb, int *c) {
    if (forced_rb) { *rb = forced_rb < m ? forced_rb : m; *c = forced_c; return; }
    if (m >= 5) { *rb = 4; *c = bf || m >= 32 ? 6 : 4; return; }
    *rb = m;
    if (bf) *c = m <= 2 ? 3 : 6;
    else *c = m <= 2 ? 6 : m == 3 ? 4 : 2;
}

/* Calls tile512 with compile-time R (1–4) and C (1, 2, 3, 4 or 6). */
#define JC_TILE_ARGS lo, hi, first, last, add, x, ldx, w, ldw, spill, y, ldy
#define JC_TILE_R(R) case R: \
    switch (C) { \
    case 1: tile512(bf, R, 1, JC_TILE_ARGS); break; \
    case 2: tile512(bf, R, 2, JC_TILE_ARGS); break; \
    case 3: tile512(bf, R, 3, JC_TILE_ARGS); break; \
    case 4: tile512(bf, R, 4, JC_TILE_ARGS); break; \
    default: tile512(bf, R, 6, JC_TILE_ARGS); break; \
    } \
    break;

JC_AVX512 static JC_INLINE void tile_any(const int bf, int R, int C, int lo, int hi, int first, int last, int add,
                                         const float *x, int ldx, const void *w, int ldw, __m512 *spill, float *y,
                                         int ldy) {
    switch (R) {
        JC_TILE_R(1) JC_TILE_R(2) JC_TILE_R(3) JC_TILE_R(4)
    }
}

/* The k block (see gemm_rows_avx512) fills this much of L1 (48 KiB on the Xeon, 32 on the AMD VM) with a tile's
   weight rows and one row block's x: 816 at f32's 4 × 6 tile, 1168 at bf16's. */
#define JC_KBLOCK_BYTES (32 * 1024)
static int forced_kblock = -1;

void jc_set_few_rows_kblock(int kc) { forced_kblock = kc < 0 ? -1 : kc / 16 * 16; }

/* Most x rows gemm_rows_avx512 takes at once: the 16-lane partial sums it keeps between k blocks for every row
   block of a column tile (at most 32 blocks × 4 × 6 vectors, 48 KiB on the stack). */
#define JC_KB_ROWS 128

/* Column tiles outermost, then (for long sums) blocks of k, then blocks of x rows: a tile's weight rows come from
   memory once and from L1/L2 for the later row blocks, so beyond one block the cost grows in arithmetic only (up
   to 32 rows this beats sgemm, which packs the whole weight matrix first). A tile of 6 f32 weight rows at k = 2816
   is 66 KiB, more than L1 (48 KiB), so without k blocks every row block read it from L2 again with its x rows:
   such products ran at 115–145 GFLOP/s on 2 threads against 180–200 at k = 1024. In blocks of k the weight
   block stays in L1 across the row blocks, and each row block's partial sums wait in `spill` meanwhile. */
JC_AVX512 static JC_INLINE void gemm_rows_avx512(const int bf, int m, int n0, int n1, int k0, int k, const float *x,
                                                 int ldx, const void *w, int ldw, float *y, int ldy) {
    __m512 spill[JC_KB_ROWS / 4 * JC_MAX_RB * 6];
    int RB, C;
    tile_plan(bf, m, &RB, &C);
    const int split = k0 > 0 && k0 < k;
    // Blocks only help when a tile serves more than one row block; 0 never blocks.
    const int kb = m <= RB ? 0 : forced_kblock >= 0 ? forced_kblock : JC_KBLOCK_BYTES / (C * (bf ? 2 : 4) + RB * 4) / 16 * 16;
    if (k <= 0) {
        for (int r = 0; r < m; r++) for (int j = n0; j < n1; j++) y[(size_t)r * ldy + j] = 0;
        return;
    }
    for (int j = n0; j < n1; j += C) {
        if (j + C > n1) C = 1;  // the last few columns one at a time
        const void *wt = w_row(bf, w, (size_t)j * ldw);
        for (int seg = 0; seg <= split; seg++) {
            const int s0 = seg ? k0 : 0, s1 = split && !seg ? k0 : k;
            // Blocks of equal size (whole vectors), so that no short block pays a row-block loop of its own.
            const int nb = kb > 0 ? (s1 - s0 + kb - 1) / kb : 1;
            const int step = ((s1 - s0 + nb - 1) / nb + 15) / 16 * 16;
            for (int lo = s0; lo < s1; lo += step) {
                const int hi = s1 - lo > step ? lo + step : s1, first = lo == s0, last = hi == s1;
                for (int r0 = 0; r0 < m; r0 += RB)
                    tile_any(bf, m - r0 < RB ? m - r0 : RB, C, lo, hi, first, last, seg, x + (size_t)r0 * ldx, ldx,
                             wt, ldw, spill + (size_t)(r0 / RB) * JC_MAX_RB * 6, y + (size_t)r0 * ldy + j, ldy);
            }
        }
    }
}

JC_AVX512 static JC_INLINE void gemm_few_rows_avx512(const int bf, int m, int n0, int n1, int k0, int k, const float *x,
                                                     int ldx, const void *w, int ldw, float *y, int ldy) {
    for (int r = 0; r < m; r += JC_KB_ROWS) {
        const int rows = m - r < JC_KB_ROWS ? m - r : JC_KB_ROWS;
        int ld = ldx;
        const float *xa = jc_aligned_rows(rows, k, x + (size_t)r * ldx, &ld);
        gemm_rows_avx512(bf, rows, n0, n1, k0, k, xa, ld, w, ldw, y + (size_t)r * ldy, ldy);
    }
}

JC_AVX512 void jc_few_rows_avx512_f32(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w,
                                               int ldw, float *y, int ldy) { gemm_few_rows_avx512(0, m, n0, n1, k0, k, x, ldx, w, ldw, y, ldy); }
JC_AVX512 void jc_few_rows_avx512_bf16(int m, int n0, int n1, int k0, int k, const float *x, int ldx, const void *w,
                                                int ldw, float *y, int ldy) { gemm_few_rows_avx512(1, m, n0, n1, k0, k, x, ldx, w, ldw, y, ldy); }
#else
int jc_has_avx512(void) { return 0; }
void jc_set_few_rows_tile(int rb, int c) { (void)rb; (void)c; }
void jc_set_few_rows_kblock(int kc) { (void)kc; }
#endif
