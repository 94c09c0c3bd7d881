// few_rows_tiles.c: times the AVX-512 few-row kernel's register tiles on expert-slice shapes, to tune tile_plan.
//
// Build and run (from the repository root; rows, threads, dtype and the tiles to compare on the command line):
//   clang -O3 -ISources/CKernels/include -ISources/CKernels tools/bench/few_rows_tiles.c Sources/CKernels/*.c \
//         -o /tmp/few_rows_tiles -lm -lpthread
//   /tmp/few_rows_tiles bf16 1 2   0 0  2 1  2 3  2 6      # bf16, 1 thread, 2 rows: the plan, then R×C tiles
// Each measurement is one decode layer's worth of expert slices (16 slices of 1024 × 1408: gate-up, then down),
// weights read from memory (224 MB f32 in all, so nothing stays in cache). The tiles are interleaved round by
// round and the median of 9 rounds printed, since this VM's memory bandwidth drifts within minutes.
#include "ckernels.h"
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 6 || (argc - 4) % 2 != 0 || (strcmp(argv[1], "f32") && strcmp(argv[1], "bf16"))) {
        fprintf(stderr, "usage: %s f32|bf16 THREADS ROWS RB C [RB C ...]   (RB C = 0 0: the built-in plan)\n", argv[0]);
        return 2;
    }
    const int bf = strcmp(argv[1], "bf16") == 0, threads = atoi(argv[2]), m = atoi(argv[3]);
    const int ntiles = (argc - 4) / 2 > 16 ? 16 : (argc - 4) / 2;
    if (threads < 1 || m < 1 || m > 32) { fprintf(stderr, "threads ≥ 1, rows 1…32\n"); return 2; }
    const int H = 1024, I = 1408, S = 16, rounds = 9;
    const size_t es = bf ? 2 : 4, per = (size_t)3 * I * H;  // one slice: gate-up [2I, H] then down [H, I]
    char *w = malloc(per * es * S);
    float *x = malloc(sizeof(float) * 32 * H), *h = malloc(sizeof(float) * 32 * 2 * I), *y = malloc(sizeof(float) * 32 * H);
    if (!w || !x || !h || !y) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < per * es * S; i++) w[i] = (char)((i * 7) & 0x3f);  // small finite values in either dtype
    for (int i = 0; i < 32 * H; i++) x[i] = 0.01f * (float)(i % 13);
    double t[16][9];
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < ntiles; c++) {
            jc_set_few_rows_tile(atoi(argv[4 + 2 * c]), atoi(argv[5 + 2 * c]));
            const double t0 = now();
            for (int s = 0; s < S; s++) {
                const char *g = w + per * es * s, *d = g + (size_t)2 * I * H * es;
                jc_gemm_few_rows_mt(threads, m, 2 * I, H, x, H, g, bf, H, h, 2 * I);
                jc_gemm_few_rows_mt(threads, m, H, I, h, 2 * I, d, bf, I, y, H);
            }
            t[c][r] = (now() - t0) / S * 1e3;
        }
    printf("%s, %d thread(s), %d rows, ms per slice (median of %d):", argv[1], threads, m, rounds);
    for (int c = 0; c < ntiles; c++) {
        qsort(t[c], rounds, sizeof(double), by_value);
        const int rb = atoi(argv[4 + 2 * c]), cc = atoi(argv[5 + 2 * c]);
        if (rb == 0) printf("  plan %.3f", t[c][rounds / 2]);
        else printf("  %dx%d %.3f", rb, cc, t[c][rounds / 2]);
    }
    printf("\n");
    return 0;
}
