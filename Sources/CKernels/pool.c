// pool.c: a small spin-then-sleep thread pool for splitting one kernel call across cores.
//
// Decode runs ~50 matrix products per step, each a few hundred microseconds; handing half of each to a GCD
// thread costs a futex wake-up (10–20 µs) every time, about a tenth of a decode step measured here. Pool threads
// spin on a generation counter for a short while after each job, so back-to-back calls find them awake, then
// sleep on a condition variable so an idle daemon (or one waiting on the network) leaves the cores alone.
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE  /* sched_getcpu, cpu_set_t, pthread_setaffinity_np */
#endif
#include "internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <cblas.h>
#ifdef __linux__
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define JC_PAUSE() _mm_pause()
#else
#define JC_PAUSE() ((void)0)
#endif

#define JC_POOL_MAX 64
/* Spin iterations before sleeping: a pause is ~10–60 ns, so ~20–120 µs. Enough to bridge the glue between a
   decode step's kernels (a few µs); short enough that a coordinator waiting on its workers, on the same cores,
   gives the core back quickly. */
#define JC_SPIN 2048
/* Spin after jc_pool_prewake: long enough (~0.3–2 ms) to span the serial work between a message arriving and the
   first product it leads to. */
#define JC_PREWAKE_SPIN 32768

/* Work is handed out in this many chunks per thread. The caller ends a call by waiting for the last chunk another
   thread took, half a chunk on average: with 4 chunks per thread that wait was 1.9 ms of a 33 ms bf16 batch-8 step
   on 2 threads (perf, self time of jc_pool_run), with 8 0.7–1.1 ms, with 16 0.5–0.6 ms. A chunk of the smallest
   decode product (1024 × 2816) is still ~36 weight rows, 200 KB of bf16, a long enough stream. */
#define JC_CHUNKS_PER_THREAD 16

static pthread_mutex_t caller_lock = PTHREAD_MUTEX_INITIALIZER;  /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static _Atomic unsigned long generation;
static _Atomic unsigned long open_job;  /* the generation helpers may still join; 0 once its caller ran out of work */
static _Atomic int active;             /* helpers inside (or checking) a job */
static _Atomic int sleepers;
static _Atomic int park;  /* set by jc_pool_park: stop spinning; cleared by the next job */
static _Atomic unsigned long nudge;  /* bumped by jc_pool_prewake: sleeping helpers wake and spin for the next job */
static int started;  /* pool threads running; only grows, under caller_lock */
static int parts;
static jc_part_fn job_fn;
static void *job_ctx;
static pthread_t helpers[JC_POOL_MAX];
static int steered_from = -1;  /* the caller's CPU the helpers' masks exclude; -1: not set */

#ifdef __linux__
/* Keeping helpers off the caller's CPU. A helper that slept (the caller waited on the network, say) is woken by
   the caller, and Linux tends to wake it on the waker's CPU even when the other core is idle; the two threads
   then take turns on one core for every later call (seen with `perf sched timehist` in a coordinator between
   MoE round trips: a decode step ~30% slower). So each helper may run anywhere the process may, except where
   the caller runs now. The mask changes only when the caller has moved: one syscall per helper, rarely. */
static cpu_set_t allowed;
static int allowed_known;

static void steer_helpers(void) {
    if (!allowed_known) {
        allowed_known = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? 1 : -1;
    }
    const int cpu = sched_getcpu();
    if (allowed_known < 0 || cpu < 0 || cpu == steered_from || CPU_COUNT(&allowed) < 2 || !CPU_ISSET(cpu, &allowed)) return;
    cpu_set_t mask = allowed;
    CPU_CLR(cpu, &mask);
    for (int i = 0; i < started; i++) pthread_setaffinity_np(helpers[i], sizeof mask, &mask);
    steered_from = cpu;
}
#else
static void steer_helpers(void) {}
#endif

static void *pool_main(void *arg) {
    const int index = (int)(size_t)arg;  /* this thread is participant index + 1 */
    unsigned long seen = 0, nudged = atomic_load(&nudge);
    int budget = JC_SPIN;
    for (;;) {
        int spins = 0;
        while (atomic_load(&generation) == seen && spins < budget && !atomic_load_explicit(&park, memory_order_relaxed)) {
            JC_PAUSE();
            spins++;
        }
        budget = JC_SPIN;
        if (atomic_load(&generation) == seen) {
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&sleepers, 1);
            while (atomic_load(&generation) == seen && atomic_load(&nudge) == nudged) pthread_cond_wait(&wake, &sleep_lock);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
            if (atomic_load(&generation) == seen) {  /* woken early by jc_pool_prewake: spin for the coming job */
                nudged = atomic_load(&nudge);
                budget = JC_PREWAKE_SPIN;
                continue;
            }
        }
        seen = atomic_load(&generation);
        /* Join only a job that is still open. Announcing first (active) and checking second pairs with the caller,
           which closes first and then waits for active to drain (both seq_cst): a helper that sees the job open is
           one the caller waits for, so job_fn and job_ctx stay valid while it runs; a helper that woke late sees it
           closed and never touches it. */
        atomic_fetch_add(&active, 1);
        if (atomic_load(&open_job) == seen && index + 1 < parts) job_fn(job_ctx, index + 1);
        atomic_fetch_sub(&active, 1);
    }
    return NULL;
}

int jc_pool_run(int nparts, jc_part_fn fn, void *ctx) {
    if (nparts <= 1) { fn(ctx, 0); return 1; }
    if (nparts > JC_POOL_MAX + 1) nparts = JC_POOL_MAX + 1;
    /* Another thread of this process holds the pool (a worker's loader, say): the caller does all the work. */
    if (pthread_mutex_trylock(&caller_lock) != 0) {
        fn(ctx, 0);
        return 1;
    }
    while (started < nparts - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &attr, pool_main, (void *)(size_t)started) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        helpers[started++] = t;
        steered_from = -1;
    }
    if (nparts > started + 1) nparts = started + 1;
    steer_helpers();
    job_fn = fn;
    job_ctx = ctx;
    parts = nparts;
    atomic_store(&park, 0);
    const unsigned long g = atomic_load(&generation) + 1;
    atomic_store(&open_job, g);
    atomic_store(&generation, g);  /* publishes job_fn, job_ctx, parts, open_job (seq_cst) */
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    /* The caller takes work until none is left, then waits only for helpers still inside the job. A helper still
       asleep or not yet scheduled (its core busy with another process, say) is not waited for: the call used to end
       only once every helper had checked in, so a slow wake-up (50–100 µs, more on a busy core) was paid by every
       call that found the helpers parked, such as a coordinator's first product after each expert round trip. */
    fn(ctx, 0);
    atomic_store(&open_job, 0);
    while (atomic_load(&active) > 0) JC_PAUSE();
    pthread_mutex_unlock(&caller_lock);
    return nparts;
}

void jc_pool_park(void) { atomic_store(&park, 1); }

void jc_pool_prewake(void) {
    if (started == 0) return;
    atomic_store(&park, 0);
    atomic_fetch_add(&nudge, 1);
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* The few-row product split over output columns. */

typedef struct {
    int m, k, ldx, ldw, ldy, bf16, k0;  /* k0 > 0: the sum split at k0 (jc_gemm_few_rows_split) */
    const float *x;
    const void *w;
    float *y, *tmp;
} few_rows_job;

/* Columns [n0, n1). Every output element is the same sum whichever thread computes its chunk of columns. */
static void few_rows_range(void *ctx, int n0, int n1) {
    few_rows_job *j = (few_rows_job *)ctx;
    if (j->k0 > 0) {
        jc_gemm_few_rows_split(j->bf16, j->m, n0, n1, j->k0, j->k, j->x, j->ldx, j->w, j->ldw, j->y, j->ldy,
                               j->tmp + (size_t)j->m * n0);
    } else if (j->bf16) {
        jc_gemm_few_rows_bf16(j->m, n0, n1, j->k, j->x, j->ldx, (const uint16_t *)j->w, j->ldw, j->y, j->ldy);
    } else {
        jc_gemm_few_rows(j->m, n0, n1, j->k, j->x, j->ldx, (const float *)j->w, j->ldw, j->y, j->ldy);
    }
}

void jc_gemm_few_rows_mt(int threads, int m, int n, int k, const float *x, int ldx, const void *w, int bf16, int ldw,
                         float *y, int ldy) {
    jc_gemm_few_rows_split_mt(threads, m, n, 0, k, x, ldx, w, bf16, ldw, y, ldy, NULL);
}

void jc_gemm_few_rows_split_mt(int threads, int m, int n, int k0, int k, const float *x, int ldx, const void *w, int bf16,
                               int ldw, float *y, int ldy, float *tmp) {
    // One aligned copy of x for every thread and chunk of columns, made here: copied inside the kernel, it was
    // made again for each of a product's chunks (bench/kernels.md §9).
    x = jc_aligned_rows_mt(threads, m, k, x, &ldx);
    few_rows_job f = {m, k, ldx, ldw, ldy, bf16, k0 > 0 && k0 < k ? k0 : 0, x, w, y, tmp};
    int nparts = threads < 1 ? 1 : threads;
    if (nparts > JC_POOL_MAX + 1) nparts = JC_POOL_MAX + 1;
    jc_range_job j = {.fn = few_rows_range, .ctx = &f};
    /* Chunks are a multiple of 12 weight rows (every kernel tile width, 1–4 or 6, divides it). */
    jc_chunks_init(&j.work, n, nparts <= 1 ? 1 : JC_CHUNKS_PER_THREAD * nparts, 12);
    jc_pool_run(nparts, jc_range_part, &j);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* The selective scan over a segment, channels split across the pool: each channel's state evolves on its own, so
   a chunk of channels runs all tokens. */

typedef struct {
    int tokens, n, ld_dt, ld_u, ld_z, ld_bc, ld_y;
    const float *dt, *u, *z, *a, *bc, *d;
    float *h, *y;
} scan_job;

/* Channels [c0, c1) over every token. */
static void scan_range(void *ctx, int c0, int c1) {
    scan_job *j = (scan_job *)ctx;
    jc_scan_channels(c0, c1, j->tokens, j->n, j->dt, j->ld_dt, j->u, j->ld_u, j->z, j->ld_z, j->a, j->bc, j->ld_bc, j->d,
                     j->h, j->y, j->ld_y);
}

void jc_scan_segment_mt(int threads, int tokens, int channels, int n, const float *dt, int ld_dt, const float *u, int ld_u,
                        const float *z, int ld_z, const float *a, const float *bc, int ld_bc, const float *d, float *h,
                        float *y, int ld_y) {
    scan_job sj = {tokens, n, ld_dt, ld_u, ld_z, ld_bc, ld_y, dt, u, z, a, bc, d, h, y};
    jc_range_job j = {.fn = scan_range, .ctx = &sj};
    int nparts = threads < 1 ? 1 : threads;
    /* Below ~16 K state updates (a few µs) the hand-off costs more than it saves. */
    if ((long)tokens * channels * n < (1L << 14)) nparts = 1;
    if (nparts > JC_POOL_MAX + 1) nparts = JC_POOL_MAX + 1;
    /* Chunks of whole 8-channel vectors; each channel's state evolves on its own, so a chunk runs all tokens for
       its channels and the result does not depend on who runs it. Over a prompt, 8 chunks per thread rather than
       16: scan.c's blocks of 128 channels scan faster than blocks of 64 (10.1 against 13.5 ns a token and channel). */
    if (tokens >= JC_SCAN_BLOCK_MIN_TOKENS) jc_chunks_init(&j.work, channels, nparts <= 1 ? 1 : 8 * nparts, 8);
    else jc_chunks_init(&j.work, channels, nparts <= 1 ? 1 : JC_CHUNKS_PER_THREAD * nparts, 8);
    jc_pool_run(nparts, jc_range_part, &j);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* sgemm split across the pool: OpenBLAS runs single-threaded inside each part. */

/* Chunks per thread. Each call packs all of x again, so few and wide: with 2 per thread a late helper costs at most
   half of one thread's share. */
#define JC_SGEMM_CHUNKS_PER_THREAD 2

typedef struct {
    int trans_w, m, k, ldx, ldw, ldy;
    float alpha, beta;
    const float *x, *w;
    float *y;
} sgemm_job;

/* Columns [a, b): rows [a, b) of w stored [n, k], or its columns [a, b) stored [k, n]. */
static void sgemm_range(void *ctx, int a, int b) {
    sgemm_job *j = (sgemm_job *)ctx;
    const float *wb = j->trans_w ? j->w + (size_t)a * j->ldw : j->w + a;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, j->trans_w ? CblasTrans : CblasNoTrans, j->m, b - a, j->k,
                j->alpha, j->x, j->ldx, wb, j->ldw, j->beta, j->y + a, j->ldy);
}

void jc_sgemm_mt(int threads, int trans_w, int m, int n, int k, float alpha, const float *x, int ldx, const float *w,
                 int ldw, float beta, float *y, int ldy) {
    if (m <= 0 || n <= 0) return;
    int nparts = threads < 1 ? 1 : threads;
    if (nparts > JC_POOL_MAX + 1) nparts = JC_POOL_MAX + 1;
    /* Column blocks of at least 128 columns and 4 M multiply-adds. Smaller ones would cost more in hand-offs than
       they save, and OpenBLAS takes blocks of up to 1 M multiply-adds through its "small matrix" kernel, whose sums
       differ in the last bit from its blocked kernel's: a split must never change which of the two runs. For the
       same reason rows are never split (a row block's floats differ from the whole's in OpenBLAS), so a narrow
       product (attention's P·V in prefill, n = head size) runs on one thread. */
    const double block = 4e6;
    int want = JC_SGEMM_CHUNKS_PER_THREAD * nparts;
    while (want > 1 && ((double)m * (n / want) * k < block || n / want < 128)) want--;
    if (want == 1) nparts = 1;
    sgemm_job sg = {trans_w, m, k, ldx, ldw, ldy, alpha, beta, x, w, y};
    jc_range_job j = {.fn = sgemm_range, .ctx = &sg};
    jc_chunks_init(&j.work, n, want, 64);
    jc_pool_run(nparts, jc_range_part, &j);
}
