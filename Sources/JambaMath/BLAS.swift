// BLAS: the engine's matrix products, the only place that calls OpenBLAS.
import CKernels
import COpenBLAS
import Dispatch

/// Matrix products over row-major f32 data.
///
/// `Linear(x) = x · Wᵀ` with `W` in PyTorch's `[out, in]` layout: sgemm(NoTrans, Trans) for several rows and
/// sgemv for one row, because sgemm with M = 1 streams the weights at about a third of sgemv's bandwidth here.
public enum BLAS {
    /// Sets the size of OpenBLAS's thread pool for this process.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
        kernelThreads = max(1, n)
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Up to this many rows, `linear` streams the weights once through a few-row kernel instead of sgemm, which
    /// packs (copies) the whole weight matrix first and so reads it at a third of the memory bandwidth. One row
    /// goes there too: measured here it streams at ~85% of the read limit against ~75% for OpenBLAS's sgemv, and
    /// it never wakes OpenBLAS's threads, whose spinning would take a core from the next kernel.
    nonisolated(unsafe) public static var fewRowsLimit = 8

    /// Threads the few-row kernel splits output columns over.
    nonisolated(unsafe) public static var kernelThreads = 2

    /// y[M, N] = x[M, K] · w[N, K]ᵀ with the few-row kernel, output columns split across `kernelThreads`.
    public static func gemmFewRows(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int,
                                   w: UnsafePointer<Float>, ldw: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        // Splitting costs a thread hand-off (~10 µs): worth it only for matrices of a megabyte or more.
        let parts = n * k >= 1 << 18 ? max(1, kernelThreads) : 1
        if parts == 1 {
            jc_gemm_few_rows(Int32(m), 0, Int32(n), Int32(k), x, Int32(ldx), w, Int32(ldw), y, Int32(ldy))
            return
        }
        // Pointers cross into the worker threads as integers; the buffers outlive concurrentPerform.
        let (xa, wa, ya) = (Int(bitPattern: x), Int(bitPattern: w), Int(bitPattern: y))
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let n0 = (n * p / parts) & ~1, n1 = p == parts - 1 ? n : (n * (p + 1) / parts) & ~1
            guard let xp = UnsafePointer<Float>(bitPattern: xa), let wp = UnsafePointer<Float>(bitPattern: wa),
                  let yp = UnsafeMutablePointer<Float>(bitPattern: ya) else { return }
            jc_gemm_few_rows(Int32(m), Int32(n0), Int32(n1), Int32(k), xp, Int32(ldx), wp, Int32(ldw), yp, Int32(ldy))
        }
    }

    /// y[M, N] = alpha · x[M, K] · w[N, K]ᵀ + beta · y, all row-major with leading dimensions given.
    @inline(__always)
    public static func gemmNT(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<Float>, ldw: Int,
        beta: Float = 0, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        guard m > 0, n > 0 else { return }
        if m == 1 {
            // y[N] = w[N, K] · x[K]
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, w, Int32(ldw), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                        alpha, x, Int32(ldx), w, Int32(ldw), beta, y, Int32(ldy))
        }
    }

    /// y[M, N] = alpha · x[M, K] · w[K, N] + beta · y (no transpose), row-major.
    @inline(__always)
    public static func gemmNN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<Float>, ldw: Int,
        beta: Float = 0, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        guard m > 0, n > 0 else { return }
        if m == 1 {
            // y[N] = w[K, N]ᵀ · x[K]
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, w, Int32(ldw), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                        alpha, x, Int32(ldx), w, Int32(ldw), beta, y, Int32(ldy))
        }
    }

    /// out[T, out] = x[T, in] · w[out, in]ᵀ; `out` is resized to T rows (capacity kept).
    public static func linear(_ x: Matrix, _ w: Matrix, into out: inout Matrix) {
        precondition(x.cols == w.cols && out.cols == w.rows, "linear: shape mismatch")
        out.resize(rows: x.rows)
        guard x.rows > 0 else { return }
        x.storage.withUnsafeBufferPointer { xp in
            w.storage.withUnsafeBufferPointer { wp in
                out.storage.withUnsafeMutableBufferPointer { yp in
                    if x.rows <= fewRowsLimit {
                        gemmFewRows(m: x.rows, n: w.rows, k: w.cols, x: xp.baseAddress!, ldx: x.cols,
                                    w: wp.baseAddress!, ldw: w.cols, y: yp.baseAddress!, ldy: out.cols)
                    } else {
                        gemmNT(m: x.rows, n: w.rows, k: w.cols, x: xp.baseAddress!, ldx: x.cols,
                               w: wp.baseAddress!, ldw: w.cols, y: yp.baseAddress!, ldy: out.cols)
                    }
                }
            }
        }
    }

    /// Convenience: returns x · wᵀ as a new matrix.
    public static func linear(_ x: Matrix, _ w: Matrix) -> Matrix {
        var out = Matrix(zeros: x.rows, w.rows)
        linear(x, w, into: &out)
        return out
    }
}
