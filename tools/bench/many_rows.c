// many_rows.c: sgemm against the few-row kernel in row chunks, at the model's prefill shapes (BLAS.chunksFewRows).
//
// Build and run from the repository root:
//   clang -O3 -ISources/CKernels/include tools/bench/many_rows.c Sources/CKernels/*.c -o /tmp/many_rows \
//         -lopenblas -lm -lpthread && /tmp/many_rows
// Each line is one product y[M, N] = x[M, K] · w[N, K]ᵀ with 2 threads, the weights fresh from memory each call
// (6 copies in turn), best of 5: sgemm (f32), the few-row kernel over chunks of 16, 32 and 64 rows (f32), and
// chunks of 32 with the weights in bf16. Shapes: an expert's gate-up and down at the rows a 512-token prefill
// gives it (~128), a dense layer's at 512 rows, Mamba's in_proj, out_proj, x_proj and dt_proj.
#include "ckernels.h"
#include "bench_util.h"
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
    const int shapes[][3] = {{128, 5632, 1024}, {128, 1024, 2816}, {96, 5632, 1024}, {192, 1024, 2816}, {512, 5632, 1024},
                             {512, 1024, 2816}, {512, 4096, 1024}, {512, 1024, 2048}, {512, 96, 2048},   {512, 2048, 64}};
    const int copies = 6, chunks[] = {16, 32, 64};
    openblas_set_num_threads(2);
    printf("GFLOP/s, 2 threads, best of 5\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        operands o;
        if (!operands_alloc(&o, m, n, k, copies)) return 1;
        const float *w = o.w, *x = o.x;
        float *y = o.y;
        double best[5] = {1e9, 1e9, 1e9, 1e9, 1e9};
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            for (int c = 0; c < copies; c++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, x, k, w + (size_t)c * n * k, k, 0, y, n);
            double t = (now() - t0) / copies;
            if (t < best[0]) best[0] = t;
            for (int q = 0; q < 3; q++) {
                t = chunked_seconds(chunks[q], m, n, k, x, w, 0, copies, y);
                if (t < best[1 + q]) best[1 + q] = t;
            }
            t = chunked_seconds(32, m, n, k, x, o.wb, 1, copies, y);
            if (t < best[4]) best[4] = t;
        }
        const double f = 2.0 * m * n * k / 1e9;
        printf("%4d x %5d x %5d: sgemm %5.1f | few-row chunks of 16 %5.1f, 32 %5.1f, 64 %5.1f | bf16 chunks of 32 %5.1f\n", m, n, k,
               f / best[0], f / best[1], f / best[2], f / best[3], f / best[4]);
        operands_free(&o);
    }
    return 0;
}
