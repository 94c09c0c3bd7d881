// MachineLimits: measures this machine's arithmetic throughput and memory read bandwidth, to quote ratios against.
import COpenBLAS
import Dispatch
import Foundation

/// Micro-benchmarks of the two ceilings an inference step can hit: arithmetic (sgemm FLOP/s) for prefill, and
/// memory bandwidth (GB/s read) for decode. Measured in the same run as the model so ratios survive a noisy machine.
public enum MachineLimits {
    /// Best-of-`repeats` GFLOP/s of C[m, n] = A[m, k] · B[n, k]ᵀ with `threads` of OpenBLAS's own threads.
    public static func sgemmGFLOPS(m: Int, n: Int, k: Int, threads: Int, repeats: Int = 5) -> Double {
        BLAS.withOpenBLASThreads(threads) { sgemmGFLOPS(m: m, n: n, k: k, repeats: repeats) }
    }

    private static func sgemmGFLOPS(m: Int, n: Int, k: Int, repeats: Int) -> Double {
        let a = [Float](repeating: 0.5, count: m * k)
        let b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        let best = bestNanoseconds(repeats: repeats) {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        BLAS.cblasGemm(m: m, n: n, k: k, x: ap.baseAddress!, ldx: k, w: bp.baseAddress!, ldw: k,
                                    y: cp.baseAddress!, ldy: n)
                    }
                }
            }
        }
        return 2 * Double(m) * Double(n) * Double(k) / best
    }

    /// The fastest of `repeats` timed runs of `body` after one untimed warm-up, in nanoseconds.
    private static func bestNanoseconds(repeats: Int, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return best
    }

    /// Best-of-`repeats` GFLOP/s of our few-row kernel at the row count prefill's chunks use (`BLAS.manyRowsChunk`,
    /// at least `BLAS.fewRowsLimit`) against f32 weights that stay in cache ([512, 1024], 2 MB, 64-byte aligned as
    /// loaded weights are), split over `threads`: the arithmetic ceiling of the products we run ourselves. Where
    /// OpenBLAS's sgemm is the slower of the two (Debian's 0.3.21 on an Intel Xeon with AMX: 62 GFLOP/s on 2
    /// threads, while our bf16 prefill ran at 125), a ratio against sgemm alone reads above 100%.
    public static func fewRowsGFLOPS(threads: Int, repeats: Int = 5) -> Double {
        let previous = BLAS.kernelThreads
        BLAS.kernelThreads = threads
        defer { BLAS.kernelThreads = previous }
        let (m, n, k, calls) = (max(BLAS.fewRowsLimit, BLAS.manyRowsChunk), 512, 1024, 16)
        let x = AlignedBuffer<Float>(repeating: 0.5, count: m * k), w = AlignedBuffer<Float>(repeating: 0.25, count: n * k)
        var y = [Float](repeating: 0, count: m * n)
        let best = x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    bestNanoseconds(repeats: repeats) {
                        for _ in 0..<calls {  // y[m, n] = x[m, k] · w[n, k]ᵀ
                            BLAS.gemmFewRows(m: m, n: n, k: k, x: xp.baseAddress!, ldx: k, w: wp.baseAddress!, bf16: false,
                                             ldw: k, y: yp.baseAddress!, ldy: n)
                        }
                    }
                }
            }
        }
        return 2 * Double(m * n * k * calls) / best
    }

    /// Best-of-`repeats` GB/s of summing a `bytes`-sized f32 array split over `threads` threads (plain reads,
    /// SIMD with several accumulators): the memory bandwidth decode can hope for.
    public static func memoryReadGBps(bytes: Int = 1 << 30, threads: Int, repeats: Int = 5) -> Double {
        let data = AlignedBuffer<Float>(repeating: 1, count: bytes / 4)
        return data.withUnsafeBufferPointer { sumGBps($0, threads: threads, repeats: repeats) }
    }

    /// Best-of-`repeats` GB/s of the few-row kernel streaming a `bytes`-sized f32 matrix against one row, split
    /// over `threads`: a second read ceiling. It can beat the plain sum above, because it prefetches several
    /// 4 KiB rows ahead and so keeps more reads in flight; decode cannot stream faster than the better of the two.
    public static func streamGBps(bytes: Int = 1 << 30, threads: Int, repeats: Int = 5) -> Double {
        let w = AlignedBuffer<Float>(repeating: 0.5, count: bytes / 4)
        return w.withUnsafeBufferPointer { streamGBps($0, threads: threads, repeats: repeats) }
    }

    /// `memoryReadGBps` over `data`.
    static func sumGBps(_ data: UnsafeBufferPointer<Float>, threads: Int, repeats: Int) -> Double {
        let count = data.count
        var best = Double.infinity
        let sink = Sink()
        // The address crosses into the worker threads as an integer: the caller keeps the buffer alive.
        let address = Int(bitPattern: data.baseAddress)
        for _ in 0..<(repeats + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                guard let base = UnsafePointer<Float>(bitPattern: address) else { return }
                let chunk = count / threads
                sink.add(Kernels.sumOfSquares(base + t * chunk, chunk))
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return Double(count * 4) / best
    }

    /// `streamGBps` over `w`, read as a [n, 1024] matrix.
    static func streamGBps(_ w: UnsafeBufferPointer<Float>, threads: Int, repeats: Int) -> Double {
        let previous = BLAS.kernelThreads
        BLAS.kernelThreads = threads
        defer { BLAS.kernelThreads = previous }
        return streamOneRow(w, k: 1024, repeats: repeats) { n, k, x, w, y in
            BLAS.gemmFewRows(m: 1, n: n, k: k, x: x, ldx: k, w: w, bf16: false, ldw: k, y: y, ldy: n)
        }
    }

    /// Best-of-`repeats` GB/s of y = W[n, k] · x streaming a matrix of `bytes` (sgemv, `threads` of OpenBLAS's own threads).
    public static func sgemvGBps(bytes: Int = 512 << 20, threads: Int, repeats: Int = 5) -> Double {
        let w = [Float](repeating: 0.5, count: bytes / 4)
        return BLAS.withOpenBLASThreads(threads) {
            w.withUnsafeBufferPointer { wp in
                streamOneRow(wp, k: 4096, repeats: repeats) { n, k, x, w, y in
                    BLAS.cblasGemm(m: 1, n: n, k: k, x: x, ldx: k, w: w, ldw: k, y: y, ldy: n)
                }
            }
        }
    }

    /// Best-of-`repeats` GB/s of `product(n, k, x, w, y)`, y[n] = w[n, k] · x[k], over the f32 matrix `w`.
    private static func streamOneRow(_ w: UnsafeBufferPointer<Float>, k: Int, repeats: Int,
                                     _ product: (Int, Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Double {
        let n = max(1, w.count / k)
        guard let wp = w.baseAddress, w.count >= n * k else { return 0 }
        let x = [Float](repeating: 1, count: k)
        var y = [Float](repeating: 0, count: n)
        var best = Double.infinity
        for _ in 0..<(repeats + 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in product(n, k, xp.baseAddress!, wp, yp.baseAddress!) }
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return Double(n * k * 4) / best
    }

    /// The memory read limit measured again and again in one run, on one buffer allocated (and touched) once, so
    /// that a decode figure can be set against the bandwidth of the minutes it ran in: this VM's drifts by 1.5×
    /// within a minute. The buffer stays resident for the probe's lifetime; callers that report peak memory
    /// subtract `bytes`.
    public final class ReadProbe {
        public let bytes: Int
        private let data: AlignedBuffer<Float>  // aligned as loaded weights are

        public init(bytes: Int = 512 << 20) {
            self.bytes = bytes / 4 * 4
            data = AlignedBuffer(repeating: 0.5, count: bytes / 4)  // written, so every page is resident from here on
        }

        /// The better of the SIMD sum and the few-row kernel over the buffer, each best of `repeats`, GB/s.
        public func readGBps(threads: Int, repeats: Int = 3) -> Double {
            data.withUnsafeBufferPointer { p in
                max(MachineLimits.sumGBps(p, threads: threads, repeats: repeats),
                    MachineLimits.streamGBps(p, threads: threads, repeats: repeats))
            }
        }
    }

    /// Keeps the sums alive so the reads are not optimised away.
    private final class Sink: @unchecked Sendable {
        // `total` only touched under `lock`.
        private let lock = NSLock()
        private var total: Float = 0
        func add(_ v: Float) { lock.lock(); total += v; lock.unlock() }
    }
}
