// attention.c: causal attention over a prompt's rows, heads split across the pool, blocks of queries through nn_avx512.c.
#include "internal.h"
#include <stdlib.h>

/* Per head, one sgemm for the scores of every query against every key and one for P·V computed the whole square
   of a prompt, though causal attention needs only its lower half, and OpenBLAS ran P·V (n = the head size) on one
   thread: ~3% of an f32 prefill's samples on the Intel VM, in its PRESCOTT sgemm. Here each thread takes a group
   of heads sharing a key/value head, transposes that head's keys once ([hd, tk], so q·kᵀ has no reductions), and
   walks the queries in blocks of ATT_QB rows: a block's scores reach only the keys its last query sees. */
#define ATT_QB 64

typedef struct {
    int heads, group, hd, tq, past, ldq, ldkv, ldo;
    float scale;
    const float *q, *k, *v;
    float *o;
    float *scratch;  // per part: the transposed keys [hd, tk], then the scores of a block [ATT_QB, tk]
    size_t per;
    jc_chunks work;
} att_job;

#if JC_X86
/* p[0:visible] = softmax(p[0:visible]) with exp16, p[visible:width] = 0. */
JC_AVX512 static void softmax_avx512(float *p, int visible, int width) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 vm = ninf;
    for (int i = 0; i < visible; i += 16) {
        const __mmask16 m = visible - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (visible - i)) - 1);
        vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, m, p + i));
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
    __m512 sum = _mm512_setzero_ps();
    for (int i = 0; i < visible; i += 16) {
        const __mmask16 m = visible - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (visible - i)) - 1);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + i), mx));
        _mm512_mask_storeu_ps(p + i, m, e);
        sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int i = 0; i < visible; i += 16) {
        const __mmask16 m = visible - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (visible - i)) - 1);
        _mm512_mask_storeu_ps(p + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + i), inv));
    }
    if (width > visible) memset(p + visible, 0, (size_t)(width - visible) * 4);
}
#endif

static void softmax_row(float *p, int visible, int width) {
#if JC_X86
    if (jc_few_rows_level() == 2) { softmax_avx512(p, visible, width); return; }
#endif
    float mx = -INFINITY, sum = 0;
    for (int i = 0; i < visible; i++) mx = p[i] > mx ? p[i] : mx;
    for (int i = 0; i < visible; i++) { p[i] = expf(p[i] - mx); sum += p[i]; }
    const float inv = 1.0f / sum;
    for (int i = 0; i < visible; i++) p[i] *= inv;
    if (width > visible) memset(p + visible, 0, (size_t)(width - visible) * 4);
}

/* Head h over all queries; kt holds the transposed keys of kv head *kt_group (-1: none yet). */
static void att_head(const att_job *j, int h, float *kt, float *s, int *kt_group) {
    const int g = h / j->group, hd = j->hd, tk = j->past + j->tq;
    if (*kt_group != g) {
        // kt [hd, tk] = K_g [tk, hd]ᵀ
        for (int t = 0; t < tk; t++)
            for (int d = 0; d < hd; d++) kt[(size_t)d * tk + t] = j->k[(size_t)t * j->ldkv + (size_t)g * hd + d];
        *kt_group = g;
    }
    for (int i0 = 0; i0 < j->tq; i0 += ATT_QB) {
        const int rows = j->tq - i0 < ATT_QB ? j->tq - i0 : ATT_QB, vis = j->past + i0 + rows;
        // S [rows, vis] = scale · q_h [rows, hd] · kt [hd, :vis]
        jc_gemm_nn(rows, 0, vis, hd, j->scale, j->q + (size_t)i0 * j->ldq + (size_t)h * hd, j->ldq, kt, tk, s, vis);
        for (int r = 0; r < rows; r++) softmax_row(s + (size_t)r * vis, j->past + i0 + r + 1, vis);  // causal
        // o_h [rows, hd] = P [rows, vis] · V_g [:vis, hd]
        jc_gemm_nn(rows, 0, hd, vis, 1.0f, s, vis, j->v + (size_t)g * hd, j->ldkv, j->o + (size_t)i0 * j->ldo + (size_t)h * hd,
                   j->ldo);
    }
}

static void att_part(void *ctx, int p) {
    att_job *j = (att_job *)ctx;
    float *kt = j->scratch + (size_t)p * j->per, *s = kt + (size_t)j->hd * (j->past + j->tq);
    int kt_group = -1, lo, hi;
    while (jc_chunks_take(&j->work, &lo, &hi))
        for (int h = lo; h < hi; h++) att_head(j, h, kt, s, &kt_group);
}

/* The caller's scratch, kept between calls (one buffer a calling thread, used by the parts of its job only). */
static _Thread_local float *att_buf;
static _Thread_local size_t att_cap;

int jc_attention_prompt(int threads, int heads, int kv_heads, int hd, int tq, int past, float scale, const float *q,
                        int ldq, const float *k, const float *v, int ldkv, float *o, int ldo) {
    if (tq <= 0 || heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0) return -1;
    const int group = heads / kv_heads, tk = past + tq;
    int nparts = threads < 1 ? 1 : threads;
    if (nparts > heads) nparts = heads;
    // Chunks of a group of heads, which share one transposed K, unless there are fewer groups than threads.
    const int align = kv_heads >= nparts ? group : 1;
    const size_t per = ((size_t)hd * tk + (size_t)ATT_QB * tk + 15) / 16 * 16, need = per * (size_t)nparts;
    if (need > att_cap) {
        float *b = aligned_alloc(64, need * 4);
        if (!b) return -1;
        free(att_buf);
        att_buf = b;
        att_cap = need;
    }
    att_job j = {heads, group, hd, tq, past, ldq, ldkv, ldo, scale, q, k, v, o, att_buf, per, {0}};
    jc_chunks_init(&j.work, heads, heads / align, align);
    jc_pool_run(nparts, att_part, &j);
    return 0;
}
