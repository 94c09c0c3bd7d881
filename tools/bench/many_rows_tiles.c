// many_rows_tiles.c: the few-row kernel's register tiles at prefill's chunked shapes (BLAS.manyRowsChunk, tile_plan).
//
// Build and run from the repository root:
//   clang -O3 -ISources/CKernels/include tools/bench/many_rows_tiles.c Sources/CKernels/*.c -o /tmp/many_rows_tiles \
//         -lopenblas -lm -lpthread && /tmp/many_rows_tiles
// Each line is one f32 product y[M, N] = x[M, K] · w[N, K]ᵀ, 2 threads, in chunks of 64 rows when k ≤ 1024 (else
// 32) as BLAS.linear calls it, weights fresh from memory each call (6 copies in turn), best of 5, GFLOP/s for the
// plan (0x0) and for forced tiles of rows × weight rows. Every tile gives the same floats; only the speed differs.
// With the argument `kblock`: the plan's tile at k blocks of 0 (none), the plan's, 512, 768 and 1024, in chunks of
// 32 and of 64 rows, f32 and bf16 weights (jc_set_few_rows_kblock; again the same floats whatever the block).
// With the argument `align`: the weights and x at 64-byte boundaries or 48 bytes past one (where a large Swift
// array's elements start: glibc's mmap'd chunk header is 16 bytes, the array header 32), each of the four ways.
#include "ckernels.h"
#include "bench_util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The variants of one shape alternate within each of 9 rounds, and each keeps its best round: this VM's speed
   drifts by a third within minutes, so variants timed one after another compare the drift, not the code. */
static int kblocks(void) {
    const int shapes[][3] = {{512, 1024, 2816}, {128, 1024, 2816}, {512, 1024, 2048}, {512, 5632, 1024}, {512, 4096, 1024}};
    const int variants[][2] = {{0, 32}, {0, 64}, {-1, 64}, {512, 64}, {768, 64}, {1024, 64}};  // k block (-1: plan), chunk rows
    enum { nv = sizeof variants / sizeof variants[0] };
    const int copies = 6;
    printf("GFLOP/s, 2 threads, best of 9 alternated rounds, the plan's tile; kKB/C: k blocks of KB (0: none, -1: the plan), chunks of C rows\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        operands o;
        if (!operands_alloc(&o, m, n, k, copies)) return 1;
        for (int bf = 0; bf <= 1; bf++) {
            double best[nv];
            for (int v = 0; v < nv; v++) best[v] = 1e9;
            for (int round = 0; round < 9; round++)
                for (int v = 0; v < nv; v++) {
                    jc_set_few_rows_kblock(variants[v][0]);
                    const double t = chunked_seconds(variants[v][1], m, n, k, o.x, bf ? (const void *)o.wb : o.w, bf, copies, o.y);
                    if (t < best[v]) best[v] = t;
                }
            printf("%4d x %5d x %5d %s:", m, n, k, bf ? "bf16" : "f32 ");
            for (int v = 0; v < nv; v++)
                printf(" k%d/%d %5.1f", variants[v][0], variants[v][1], 2.0 * m * n * k / 1e9 / best[v]);
            printf("\n");
            fflush(stdout);
        }
        jc_set_few_rows_kblock(-1);
        operands_free(&o);
    }
    return 0;
}

/* A buffer of `bytes` starting `off` bytes past a 64-byte boundary; `*base` is what to free. */
static void *offset_alloc(size_t bytes, int off, void **base) {
    char *p = aligned_alloc(64, (bytes + 64 + 63) / 64 * 64);
    *base = p;
    return p ? p + off : NULL;
}

/* Weights and x 64-byte aligned or 48 bytes off, the four combinations alternated in 9 rounds; GFLOP/s and, for
   the weights, GB/s (each call reads them fresh from memory). */
static int alignments(void) {
    const int shapes[][3] = {{512, 1024, 2816}, {512, 5632, 1024}, {512, 1024, 2048}, {8, 5632, 1024}, {1, 5632, 1024}, {1, 1024, 2816}};
    const int offs[][2] = {{0, 0}, {48, 48}, {0, 48}, {48, 0}};  // weights, x: bytes past a 64-byte boundary
    enum { nv = 4 };
    const int copies = 6;
    printf("2 threads, best of 9 alternated rounds, chunks of 64 rows; wW/xX: weights W and x X bytes past 64-byte alignment\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int bf = 0; bf <= 1; bf++) {
            const size_t wsize = (size_t)n * k * (bf ? 2 : 4) * copies;
            void *wbase[nv], *xbase[nv], *ybase;
            char *w[nv];
            float *x[nv], *y = offset_alloc(sizeof(float) * m * n, 0, &ybase);
            for (int v = 0; v < nv; v++) {
                w[v] = offset_alloc(wsize, offs[v][0], &wbase[v]);
                x[v] = offset_alloc(sizeof(float) * m * k, offs[v][1], &xbase[v]);
                if (!w[v] || !x[v] || !y) { fprintf(stderr, "out of memory\n"); return 1; }
                for (size_t i = 0; i < wsize; i++) w[v][i] = (char)(bf ? (i & 1 ? 0x3c : i % 7) : (i % 4 == 3 ? 0x3c : 0));
                for (int i = 0; i < m * k; i++) x[v][i] = (float)(i % 5) * 0.1f;
            }
            double best[nv];
            for (int v = 0; v < nv; v++) best[v] = 1e9;
            for (int round = 0; round < 9; round++)
                for (int v = 0; v < nv; v++) {
                    const double t = chunked_seconds(64, m, n, k, x[v], w[v], bf, copies, y);
                    if (t < best[v]) best[v] = t;
                }
            printf("%4d x %5d x %5d %s:", m, n, k, bf ? "bf16" : "f32 ");
            for (int v = 0; v < nv; v++)
                printf("  w%d/x%d %6.1f GFLOP/s %5.1f GB/s", offs[v][0], offs[v][1], 2.0 * m * n * k / 1e9 / best[v],
                       wsize / copies / 1e9 / best[v]);
            printf("\n");
            fflush(stdout);
            for (int v = 0; v < nv; v++) { free(wbase[v]); free(xbase[v]); }
            free(ybase);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "kblock") == 0) return kblocks();
    if (argc > 1 && strcmp(argv[1], "align") == 0) return alignments();
    const int shapes[][3] = {{512, 5632, 1024}, {512, 1024, 2816}, {512, 4096, 1024}, {512, 1024, 2048}, {128, 1024, 2816}};
    const int tiles[][2] = {{0, 0}, {4, 4}, {4, 6}, {3, 6}, {4, 3}, {2, 6}};
    const int copies = 6;
    printf("GFLOP/s, 2 threads, best of 5, f32 weights\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], chunk = k <= 1024 ? 64 : 32;
        operands o;
        if (!operands_alloc(&o, m, n, k, copies)) return 1;
        printf("%4d x %5d x %5d:", m, n, k);
        for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
            jc_set_few_rows_tile(tiles[t][0], tiles[t][1]);
            double best = 1e9;
            for (int r = 0; r < 5; r++) {
                const double e = chunked_seconds(chunk, m, n, k, o.x, o.w, 0, copies, o.y);
                if (e < best) best = e;
            }
            printf(" %dx%d %5.1f", tiles[t][0], tiles[t][1], 2.0 * m * n * k / 1e9 / best);
        }
        printf("\n");
        operands_free(&o);
    }
    return 0;
}
