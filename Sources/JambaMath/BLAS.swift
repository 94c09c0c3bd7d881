// BLAS: the engine's matrix products, the only place that calls OpenBLAS.
import CKernels
import COpenBLAS
import Dispatch
import Foundation

/// Matrix products over row-major f32 data.
///
/// `Linear(x) = x · Wᵀ` with `W` in PyTorch's `[out, in]` layout: sgemm(NoTrans, Trans) for several rows and
/// sgemv for one row, because sgemm with M = 1 streams the weights at about a third of sgemv's bandwidth here.
public enum BLAS {
    /// Sets how many threads (this one and the pool's) every product and the scan split over.
    public static func setThreads(_ n: Int) {
        kernelThreads = max(1, n)
    }

    public static var threads: Int { kernelThreads }

    /// Runs `body` with OpenBLAS's own threads (`n` of them), then goes back to one: what the machine-limit
    /// benchmarks measure. The engine never uses them (see `jc_sgemm_mt`).
    public static func withOpenBLASThreads<T>(_ n: Int, _ body: () -> T) -> T {
        openblas_set_num_threads(Int32(max(1, n)))
        defer { openblas_set_num_threads(1) }
        return body()
    }

    /// OpenBLAS's thread count before we set it to one (its default: OPENBLAS_NUM_THREADS or the cores).
    private static func takeOverOpenBLASThreads() -> Int {
        let n = Int(openblas_get_num_threads())
        openblas_set_num_threads(1)
        return max(1, n)
    }

    /// Up to this many rows, `linear` streams the weights once through the few-row kernel instead of sgemm, which
    /// packs (copies) the whole weight matrix first. Measured here (2 threads, 1024 × 90112 weights): at 8 rows
    /// the AVX-512 kernel runs at 88 GFLOP/s against sgemm's 31, at 32 rows 118 against 92; the AVX2 kernel
    /// reuses nothing across weight rows and stops paying at 8. One row goes there too: it never wakes
    /// OpenBLAS's threads, whose spinning would take a core from the next kernel.
    nonisolated(unsafe) public static var fewRowsLimit = jc_few_rows_level() >= 2 ? 32 : 8

    /// Threads every product and the scan split over (our pool, pool.c). Read before any product runs, so
    /// OpenBLAS is single-threaded from then on: its threads would otherwise spin in sched_yield for ~0.1 s after
    /// each sgemm, taking turns on the cores with ours (3% of a prefill's CPU time in `perf`, plus the switches).
    nonisolated(unsafe) public static var kernelThreads = takeOverOpenBLASThreads()

    /// Caps the few-row kernel's instruction set (2 AVX-512, 1 AVX2, 0 portable C; nil: the best available),
    /// for tests and benchmarks that compare the paths.
    public static func setFewRowsLevel(_ level: Int?) {
        jc_set_few_rows_level(Int32(level ?? -1))
        fewRowsLimit = jc_few_rows_level() >= 2 ? 32 : 8
    }

    public static var fewRowsLevel: Int { Int(jc_few_rows_level()) }

    /// Forces the AVX-512 few-row kernel's register tile (`rowBlock` x rows 1–4 × `columns` weight rows 1, 2, 3,
    /// 4 or 6); nil restores the measured plan. Tests use it to check that every tile gives the same floats.
    public static func setFewRowsTile(rowBlock: Int?, columns: Int?) {
        jc_set_few_rows_tile(Int32(rowBlock ?? 0), Int32(columns ?? 0))
    }

    /// Forces the AVX-512 few-row kernel's k block (a multiple of 16; 0: sums in one pass); nil restores the plan
    /// (blocks that keep a weight tile in L1). Tests use it to check that every block gives the same floats.
    public static func setFewRowsKBlock(_ kBlock: Int?) {
        jc_set_few_rows_kblock(Int32(kBlock ?? -1))
    }

    /// y[M, N] = x[M, K] · w[N, K]ᵀ with the few-row kernel (w f32 or bf16), output columns split across
    /// `kernelThreads` (a spinning pool, see pool.c). Each output element is the same sum whatever the split, so
    /// results do not depend on it.
    public static func gemmFewRows(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int,
                                   w: UnsafeRawPointer, bf16: Bool, ldw: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        // Splitting costs a hand-off (~1 µs to a spinning thread): worth it from about 256 KiB of weights.
        let parts = n * k >= 1 << 16 ? max(1, kernelThreads) : 1
        jc_gemm_few_rows_mt(Int32(parts), Int32(m), Int32(n), Int32(k), x, Int32(ldx), w, bf16 ? 1 : 0, Int32(ldw), y, Int32(ldy))
    }

    /// Whether a product with more than `fewRowsLimit` rows goes through the few-row kernel in chunks
    /// (`manyRowsChunk`) rather than sgemm (f32) or widening and sgemm (bf16): on the AVX-512 kernel, whenever
    /// k ≥ 256. Measured with tools/bench/many_rows.c (2 threads, GFLOP/s, weights fresh from memory):
    /// - AMD EPYC (Zen 4), sgemm 128 GFLOP/s a core: chunks beat sgemm at an expert's ~128 rows (178 against
    ///   154; sgemm packs the whole weight matrix on every call) and tie it at 512 rows (±5% either way).
    /// - Intel Xeon (AVX-512 BF16), where OpenBLAS 0.3.21's sgemm runs at 33 GFLOP/s a core: chunks run 2.2–4.5×
    ///   sgemm at every shape, 512 rows included (152–174 against 38–63).
    /// - bf16: 175–215 at every shape with k ≥ 1024 on both, above f32 sgemm (half the bytes to load).
    /// - k = 64 (dt_proj, 2% of a prefill's FLOPs): sgemm 112 against 69 on the EPYC, so small k stays on sgemm.
    /// Taking the kernel at every row count also makes each row's output the same floats whatever batch it came
    /// in: a prompt's last row in prefill gives exactly what it gives in a decode step.
    /// `chunkedManyRows = false` turns it off (benchmarks compare the two).
    public static func chunksFewRows(m: Int, k: Int) -> Bool {
        chunkedManyRows && fewRowsLevel == 2 && m > fewRowsLimit && k >= 256
    }

    /// See `chunksFewRows`.
    nonisolated(unsafe) public static var chunkedManyRows = true

    /// Rows per call when `chunksFewRows`, and for the expert blocks (`linearBlock`, `linearSplit`) on the AVX-512
    /// kernel. Each chunk streams the weights once more, so wider chunks read them less often. The kernel takes
    /// long sums in k blocks that keep a weight tile in L1 (few_rows_avx512.c), so what has to stay in L2 between
    /// weight tiles is one k block of the chunk's x: 128 × 816 floats, 408 KiB, at any k (L2 is 2 MiB a core on
    /// the Intel VM, 1 MiB on the AMD one). f32 prefill, alternated end to end on the Intel VM: 128 rows +2% over
    /// 64 (medians of 6 pairs), 256 rows −6% (bench/kernels.md §10). Rows do not interact, so the floats are the
    /// same whatever the chunk.
    static var manyRowsChunk: Int { fewRowsLevel == 2 ? 128 : fewRowsLimit }

    /// y[M, N] = x[M, K] · w[N, K]ᵀ through the few-row kernel, `manyRowsChunk` rows at a time (dense x and y).
    static func gemmFewRowsChunked(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, w: UnsafeRawPointer, bf16: Bool,
                                   y: UnsafeMutablePointer<Float>) {
        let chunk = m <= fewRowsLimit ? m : manyRowsChunk
        var r = 0
        while r < m {
            let rows = min(chunk, m - r)
            gemmFewRows(m: rows, n: n, k: k, x: x + r * k, ldx: k, w: w, bf16: bf16, ldw: k, y: y + r * n, ldy: n)
            r += rows
        }
    }

    /// y[M, N] = alpha · x[M, K] · op(w) + beta · y, row-major with leading dimensions given, where op(w) = wᵀ for
    /// w stored [N, K] (`transposeW`, the Linear layout) and w for w stored [K, N].
    ///
    /// Up to `fewRowsLimit` rows with beta 0 (attention in decode) this runs single-threaded in our kernels:
    /// OpenBLAS would hand even these small products to its threads, which then spin in sched_yield for
    /// milliseconds and take a core from the next kernel (measured: ~10% of a batch-8 decode step).
    @inline(__always)
    public static func gemm(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<Float>, ldw: Int, transposeW: Bool = true,
        beta: Float = 0, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard m > fewRowsLimit || beta != 0 else {
            if transposeW {
                jc_gemm_few_rows(Int32(m), 0, Int32(n), Int32(k), x, Int32(ldx), w, Int32(ldw), y, Int32(ldy))
            } else {
                jc_gemm_nn_rows(Int32(m), Int32(n), Int32(k), x, Int32(ldx), w, Int32(ldw), y, Int32(ldy))
            }
            if alpha != 1 { for r in 0..<m { for c in 0..<n { y[r * ldy + c] *= alpha } } }
            return
        }
        // y = alpha · x · op(w) + beta · y, in blocks of columns (or rows) over the pool, one-thread sgemm each.
        jc_sgemm_mt(Int32(kernelThreads), transposeW ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, x, Int32(ldx), w,
                    Int32(ldw), beta, y, Int32(ldy))
    }

    /// The same through OpenBLAS always, with its own threads (sgemv for one row): what the machine-limit
    /// benchmarks measure, inside `withOpenBLASThreads`.
    public static func cblasGemm(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<Float>, ldw: Int, transposeW: Bool = true,
        beta: Float = 0, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        guard m > 0, n > 0 else { return }
        if m == 1 {
            // y[N] = w[N, K] · x[K], or w[K, N]ᵀ · x[K]
            let (rows, cols) = transposeW ? (n, k) : (k, n)
            cblas_sgemv(CblasRowMajor, transposeW ? CblasNoTrans : CblasTrans, Int32(rows), Int32(cols), alpha, w,
                        Int32(ldw), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeW ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                        alpha, x, Int32(ldx), w, Int32(ldw), beta, y, Int32(ldy))
        }
    }

    /// Resizes `out` to x's rows (capacity kept) and runs `body` on the two matrices' storage, unless x has no rows.
    @inline(__always)
    private static func withRows(_ x: Matrix, _ out: inout Matrix,
                                 _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        out.resize(rows: x.rows)
        guard x.rows > 0 else { return }
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { yp in body(xp.baseAddress!, yp.baseAddress!) }
        }
    }

    /// out[T, out] = x[T, in] · w[out, in]ᵀ; `out` is resized to T rows (capacity kept).
    public static func linear(_ x: Matrix, _ w: Weights, into out: inout Matrix) {
        precondition(x.cols == w.cols && out.cols == w.rows, "linear: shape mismatch")
        let (m, n, k) = (x.rows, w.rows, w.cols)
        let fewRowKernel = m <= fewRowsLimit || chunksFewRows(m: m, k: k)
        withRows(x, &out) { xb, yb in
            switch w.storage {
            case let .f32(v):
                v.withUnsafeBufferPointer { wp in
                    if fewRowKernel {
                        gemmFewRowsChunked(m: m, n: n, k: k, x: xb, w: wp.baseAddress!, bf16: false, y: yb)
                    } else {
                        gemm(m: m, n: n, k: k, x: xb, ldx: k, w: wp.baseAddress!, ldw: k, y: yb, ldy: n)
                    }
                }
            case let .bf16(v):
                v.withUnsafeBufferPointer { wp in
                    if fewRowKernel {
                        gemmFewRowsChunked(m: m, n: n, k: k, x: xb, w: wp.baseAddress!, bf16: true, y: yb)
                    } else {
                        gemmWidened(m: m, n: n, k: k, x: xb, w: wp.baseAddress!, y: yb)
                    }
                }
            }
        }
    }

    /// Whether `m` rows take `linear(_:transposed:into:)` (AVX-512 only): from `fewRowsLimit` rows on, where sgemm
    /// would run instead. Below that the few-row kernel streams the [out, in] weights, as decode has always done.
    public static func takesTransposed(rows m: Int) -> Bool {
        fewRowsLevel == 2 && m > fewRowsLimit
    }

    /// out[T, out] = x[T, in] · wT[in, out], for weights kept transposed: short sums (in = Mamba's dt_rank, 64 in
    /// the bench model) over many rows, where the few-row kernel spends as long reducing lanes as summing and
    /// OpenBLAS 0.3.21 runs ~56 GFLOP/s on the Intel VM (nn_avx512.c, bench/kernels.md §10).
    public static func linear(_ x: Matrix, transposed wT: Matrix, into out: inout Matrix) {
        precondition(x.cols == wT.rows && out.cols == wT.cols, "linear(transposed:): shape mismatch")
        let (m, n, k) = (x.rows, wT.cols, wT.rows)
        withRows(x, &out) { xb, yb in
            wT.storage.withUnsafeBufferPointer { wp in
                jc_gemm_nn_mt(Int32(kernelThreads), Int32(m), Int32(n), Int32(k), 1, xb, Int32(k), wp.baseAddress!,
                              Int32(n), yb, Int32(n))
            }
        }
    }

    /// Many rows against bf16 weights: widen the weights to f32 (whole, or in blocks of 32 MiB) and sgemm against
    /// them. Widening costs one pass over the weights, the product M passes; sgemm needs f32 operands, and
    /// smaller blocks would make it re-pack x for every block.
    static func gemmWidened(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, w: UnsafePointer<UInt16>,
                            y: UnsafeMutablePointer<Float>) {
        let block = max(1, min(n, (8 << 20) / max(1, k)))
        // A fresh 32 MiB allocation per call would be a fresh mmap: ~8000 page faults and zeroing, every call.
        let wide = WidenBuffer.shared.take(block * k)
        defer { WidenBuffer.shared.give(back: wide) }
        var j = 0
        while j < n {
            let nb = min(block, n - j)
            jc_bf16_to_f32(nb * k, w + j * k, wide)
            // y[:, j..<j+nb] = x · wide[nb, K]ᵀ
            gemm(m: m, n: nb, k: k, x: x, ldx: k, w: wide, ldw: k, y: y + j, ldy: n)
            j += nb
        }
    }

    /// out[T, out] = x[T, in] · w[out, in]ᵀ for an f32 matrix (tests and small products).
    public static func linear(_ x: Matrix, _ w: Matrix, into out: inout Matrix) {
        linear(x, Weights(w), into: &out)
    }

    /// Convenience: returns x · wᵀ as a new matrix.
    public static func linear(_ x: Matrix, _ w: Weights) -> Matrix {
        var out = Matrix(zeros: x.rows, w.rows)
        linear(x, w, into: &out)
        return out
    }

    /// Convenience: returns x · wᵀ as a new matrix.
    public static func linear(_ x: Matrix, _ w: Matrix) -> Matrix {
        linear(x, Weights(w))
    }
}

/// The f32 block `gemmWidened` widens bf16 weights into, kept between calls. Taken by one caller at a time; a
/// second concurrent caller gets a temporary buffer of its own.
final class WidenBuffer: @unchecked Sendable {
    static let shared = WidenBuffer()
    // `buffer`, `capacity` and `inUse` are guarded by `lock`.
    private let lock = NSLock()
    private var buffer: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var inUse = false

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        guard !inUse else { return .allocate(capacity: count) }
        inUse = true
        if let b = buffer, capacity >= count { return b }
        buffer?.deallocate()
        let b = UnsafeMutablePointer<Float>.allocate(capacity: count)
        buffer = b
        capacity = count
        return b
    }

    func give(back p: UnsafeMutablePointer<Float>) {
        lock.lock()
        defer { lock.unlock() }
        if p == buffer { inUse = false } else { p.deallocate() }
    }
}
