// decode_step_products.c: one bf16 batch-1 decode step's products on the bench model's shapes, against one product
// of the same bytes, to show what splitting a step into 61 products costs the few-row kernel's streaming rate.
//
// Build and run (from the repository root; the argument is the thread count):
//   clang -O3 -ISources/CKernels/include -ISources/CKernels tools/bench/decode_step_products.c Sources/CKernels/*.c \
//         -o /tmp/decode_step_products -lm -lpthread -lopenblas
//   /tmp/decode_step_products 2
// Shapes (hidden 1024, 8 layers, attention at layer 4, MoE on odd layers, top-2, intermediate 2816, d_inner 2048,
// dt_rank 64, d_state 16, vocab 32000) are those of tools/bench/make_bench_model.py; weights are distinct buffers
// (371 MB, far beyond the 32 MB L3), each product a pool job as in the engine. Medians are not taken: it prints 5
// rounds, each alternating the step and the single product, since this VM's bandwidth drifts within minutes.
#include "ckernels.h"
#include "bench_util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    int n, k, k0;  /* w [n, k]; k0 > 0: the sum split there (an expert's down_proj over its two slices) */
    uint16_t *w;
} product;

static uint16_t *bf16_buffer(size_t count) {
    uint16_t *w = malloc(count * 2);
    if (!w) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t j = 0; j < count; j++) w[j] = (uint16_t)(0x3f80 + j % 7);  /* around 1.0, touched once */
    return w;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    product p[64];
    int np = 0;
    for (int l = 0; l < 8; l++) {
        if (l == 4) {  /* attention: q, k, v, o */
            p[np++] = (product){1024, 1024, 0}; p[np++] = (product){256, 1024, 0};
            p[np++] = (product){256, 1024, 0}; p[np++] = (product){1024, 1024, 0};
        } else {  /* Mamba: in_proj, x_proj, dt_proj, out_proj */
            p[np++] = (product){4096, 1024, 0}; p[np++] = (product){96, 2048, 0};
            p[np++] = (product){2048, 64, 0}; p[np++] = (product){1024, 2048, 0};
        }
        if (l % 2 == 1) {  /* router, then two experts: gate|up stacked, down summed per slice */
            p[np++] = (product){8, 1024, 0};
            for (int e = 0; e < 2; e++) { p[np++] = (product){5632, 1024, 0}; p[np++] = (product){1024, 2816, 1408}; }
        } else {  /* dense MLP */
            p[np++] = (product){5632, 1024, 0}; p[np++] = (product){1024, 2816, 1408};
        }
    }
    p[np++] = (product){32000, 1024, 0};  /* LM head */
    double bytes = 0;
    int maxn = 0;
    for (int i = 0; i < np; i++) {
        p[i].w = bf16_buffer((size_t)p[i].n * p[i].k);
        bytes += 2.0 * p[i].n * p[i].k;
        if (p[i].n > maxn) maxn = p[i].n;
    }
    float *x = malloc(4096 * sizeof(float)), *y = malloc((size_t)maxn * sizeof(float)), *tmp = malloc((size_t)maxn * sizeof(float));
    for (int i = 0; i < 4096; i++) x[i] = 1.0f / (1 + i % 5);
    const int bign = (int)(bytes / 2 / 1024);
    uint16_t *big = bf16_buffer((size_t)bign * 1024);
    float *ybig = malloc((size_t)bign * sizeof(float));
    printf("%d products, %.0f MB per step, %d threads\n", np, bytes / 1e6, threads);
    for (int round = 0; round < 5; round++) {
        double t = now();
        for (int s = 0; s < 5; s++)
            for (int i = 0; i < np; i++)
                jc_gemm_few_rows_split_mt(threads, 1, p[i].n, p[i].k0, p[i].k, x, p[i].k, p[i].w, 1, p[i].k, y, p[i].n, tmp);
        const double step = (now() - t) / 5;
        t = now();
        for (int s = 0; s < 5; s++) jc_gemm_few_rows_mt(threads, 1, bign, 1024, x, 1024, big, 1, 1024, ybig, bign);
        const double one = (now() - t) / 5;
        printf("step: %.2f ms, %.1f GB/s   one product of the same bytes: %.2f ms, %.1f GB/s   ratio %.3f\n",
               step * 1e3, bytes / step / 1e9, one * 1e3, bytes / one / 1e9, one / step);
    }
    return 0;
}
