// PoolTests: the kernel thread pool finishes every job, bit for bit, whether its helpers are awake, parked or late.
import Foundation
import JambaMath
import XCTest

/// The pool lets a helper that wakes after the caller has taken all the work skip the job (pool.c). These tests
/// drive that path on purpose: parking the helpers before each call (as a coordinator does before it waits on its
/// workers), asking for more threads than there are cores (helpers then often find their core busy), and sleeping
/// between calls. Every result must equal the 1-thread result exactly: who computes an element never changes it.
final class PoolTests: XCTestCase {
    override func tearDown() { BLAS.kernelThreads = 2 }

    func testProductsWithParkedAndLateHelpersMatchOneThread() {
        let n = 1536
        for dtype in WeightDType.allCases {
            let (x, w) = lcgOperands(m: 3, n: n, k: 512, dtype: dtype, seeds: (22, 21))
            let reference = oneThreadProduct(x, w)
            var differing = 0, calls = 0
            for threads in [2, 3, 8] {
                BLAS.kernelThreads = threads
                for i in 0..<60 {
                    // Park (the helpers stop spinning at once), park and wake them early, or sleep past the spin.
                    if i % 4 == 1 { Kernels.parkPool() }
                    if i % 4 == 2 { Kernels.parkPool(); usleep(300); Kernels.prewakePool() }  // parked, then woken early
                    if i % 4 == 3 { usleep(300) }
                    var out = Matrix(zeros: 0, n)
                    BLAS.linear(x, w, into: &out)
                    differing += zip(out.storage, reference.storage).filter { $0 != $1 }.count
                    calls += 1
                }
            }
            print("[pool] \(dtype): \(calls) products with 2, 3 and 8 threads, parked or idle helpers: \(differing) elements differ from 1 thread (must be 0)")
            XCTAssertEqual(differing, 0)
        }
    }

    /// Products long enough (~1 ms) that spinning helpers do join: the call must not return while a helper is
    /// still writing its last chunk. The output is copied the moment the call returns, so a late write shows.
    func testNoHelperWritesAfterTheCallReturns() {
        let n = 4096
        let (x, w) = lcgOperands(m: 2, n: n, k: 2048, seeds: (24, 23))
        let reference = oneThreadProduct(x, w)
        var differing = 0
        var out = Matrix(zeros: x.rows, n)
        for _ in 0..<40 {
            out.storage.withUnsafeMutableBufferPointer { $0.update(repeating: .nan) }
            BLAS.linear(x, w, into: &out)
            let snapshot = out.storage.withUnsafeBufferPointer { Array($0) }  // a real copy, taken at once
            differing += zip(snapshot, reference.storage).filter { $0 != $1 }.count
        }
        print("[pool] 40 products of 4096 x 2048 on 2 threads, copied on return: \(differing) elements differ from 1 thread (must be 0)")
        XCTAssertEqual(differing, 0)
    }

    func testScanSegmentWithParkedAndLateHelpersMatchesOneThread() {
        let (tokens, channels, n) = (5, 300, 16)  // 300 channels: a last chunk that is not a whole 8-channel vector
        let dt = lcgFloats(tokens * channels, seed: 31).map { abs($0) * 0.5 }, u = lcgFloats(tokens * channels, seed: 32)
        let z = lcgFloats(tokens * channels, seed: 33), a = lcgFloats(channels * n, seed: 34).map { -abs($0) * 4 }
        let bc = lcgFloats(tokens * 2 * n, seed: 35), d = lcgFloats(channels, seed: 36), h0 = lcgFloats(channels * n, seed: 37)
        func scan() -> (h: [Float], y: [Float]) {
            var h = h0, y = [Float](repeating: 0, count: tokens * channels)
            h.withUnsafeMutableBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in
                Kernels.scanSegment(tokens: tokens, channels: channels, state: n, dt: dt, ldDt: channels, u: u, ldU: channels,
                                    z: z, ldZ: channels, a: a, bc: bc, ldBC: 2 * n, d: d, h: hp.baseAddress!,
                                    y: yp.baseAddress!, ldY: channels)
            } }
            return (h, y)
        }
        BLAS.kernelThreads = 1
        let reference = scan()
        var differing = 0, calls = 0
        for threads in [2, 3, 8] {
            BLAS.kernelThreads = threads
            for i in 0..<40 {
                if i % 2 == 1 { Kernels.parkPool() }
                let r = scan()
                differing += zip(r.h, reference.h).filter { $0 != $1 }.count + zip(r.y, reference.y).filter { $0 != $1 }.count
                calls += 1
            }
        }
        print("[pool] scan: \(calls) segments with 2, 3 and 8 threads: \(differing) state or output values differ from 1 thread (must be 0)")
        XCTAssertEqual(differing, 0)
    }

    /// Products past the few-row limit (and any with beta ≠ 0) run as one-thread sgemm calls on blocks of columns,
    /// never of rows (jc_sgemm_mt). Every split must give the 1-thread floats exactly, and those
    /// must be the product: checked against a float64 sum.
    func testSgemmSplitOverThePoolMatchesOneThreadAndFloat64() {
        // (m, n, k, beta): column blocks, blocks at the smallest split (4 M multiply-adds), a narrow product
        // (attention's P·V; rows are not split), beta ≠ 0 with a few rows.
        for (m, n, k, beta) in [(100, 700, 300, Float(0)), (64, 512, 256, 0), (200, 64, 400, 0), (40, 1024, 400, 0.5)] {
            let ld = max(n, k) + 5
            let x = lcgFloats(m * ld, seed: 31), w = lcgFloats(max(n, k) * ld, seed: 32), y0 = lcgFloats(m * ld, seed: 33)
            for transposeW in [true, false] {
                func product(threads: Int) -> [Float] {
                    BLAS.kernelThreads = threads
                    var y = y0
                    x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
                        BLAS.gemm(m: m, n: n, k: k, alpha: 0.5, x: xp.baseAddress!, ldx: ld, w: wp.baseAddress!, ldw: ld,
                                  transposeW: transposeW, beta: beta, y: yp.baseAddress!, ldy: ld)
                    } } }
                    return y
                }
                let one = product(threads: 1)
                var differing = 0
                for threads in [2, 3] {
                    for i in 0..<6 {
                        if i % 2 == 1 { Kernels.parkPool() }
                        differing += zip(product(threads: threads), one).filter { $0 != $1 }.count
                    }
                }
                var worst = 0.0
                for r in 0..<m {
                    for c in 0..<n {
                        var s = 0.0
                        for j in 0..<k { s += Double(x[r * ld + j]) * Double(transposeW ? w[c * ld + j] : w[j * ld + c]) }
                        worst = max(worst, abs(Double(one[r * ld + c]) - (0.5 * s + Double(beta) * Double(y0[r * ld + c]))))
                    }
                }
                print("[pool] sgemm \(m)×\(n)×\(k) beta \(beta) transposeW=\(transposeW): \(differing) elements differ from 1 thread (must be 0); max |diff| vs float64 \(worst) (tol 1e-4)")
                XCTAssertEqual(differing, 0)
                XCTAssertLessThanOrEqual(worst, 1e-4)
            }
        }
    }
}
