// many_rows_tiles.c: the few-row kernel's register tiles at prefill's chunked shapes (BLAS.manyRowsChunk, tile_plan).
//
// Build and run from the repository root:
//   clang -O3 -ISources/CKernels/include tools/bench/many_rows_tiles.c Sources/CKernels/*.c -o /tmp/many_rows_tiles \
//         -lopenblas -lm -lpthread && /tmp/many_rows_tiles
// Each line is one f32 product y[M, N] = x[M, K] · w[N, K]ᵀ, 2 threads, in chunks of 64 rows when k ≤ 1024 (else
// 32) as BLAS.linear calls it, weights fresh from memory each call (6 copies in turn), best of 5, GFLOP/s for the
// plan (0x0) and for forced tiles of rows × weight rows. Every tile gives the same floats; only the speed differs.
#include "ckernels.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const int shapes[][3] = {{512, 5632, 1024}, {512, 1024, 2816}, {512, 4096, 1024}, {512, 1024, 2048}, {128, 1024, 2816}};
    const int tiles[][2] = {{0, 0}, {4, 4}, {4, 6}, {3, 6}, {4, 3}, {2, 6}};
    const int copies = 6;
    printf("GFLOP/s, 2 threads, best of 5, f32 weights\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], chunk = k <= 1024 ? 64 : 32;
        const size_t wn = (size_t)n * k * copies;
        float *w = malloc(sizeof(float) * wn), *x = malloc(sizeof(float) * m * k), *y = malloc(sizeof(float) * m * n);
        if (!w || !x || !y) { fprintf(stderr, "out of memory\n"); return 1; }
        for (size_t i = 0; i < wn; i++) w[i] = (float)(i % 7) * 0.01f;
        for (int i = 0; i < m * k; i++) x[i] = (float)(i % 5) * 0.1f;
        printf("%4d x %5d x %5d:", m, n, k);
        for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
            jc_set_few_rows_tile(tiles[t][0], tiles[t][1]);
            double best = 1e9;
            for (int r = 0; r < 5; r++) {
                const double t0 = now();
                for (int c = 0; c < copies; c++)
                    for (int q = 0; q < m; q += chunk)
                        jc_gemm_few_rows_mt(2, m - q < chunk ? m - q : chunk, n, k, x + (size_t)q * k, k,
                                            w + (size_t)c * n * k, 0, k, y + (size_t)q * n, n);
                const double e = (now() - t0) / copies;
                if (e < best) best = e;
            }
            printf(" %dx%d %5.1f", tiles[t][0], tiles[t][1], 2.0 * m * n * k / 1e9 / best);
        }
        printf("\n");
        free(w); free(x); free(y);
    }
    return 0;
}
