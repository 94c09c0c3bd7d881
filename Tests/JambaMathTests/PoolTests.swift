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
                    // Park (the helpers stop spinning at once) or sleep past the spin, every other call.
                    if i % 4 == 1 { Kernels.parkPool() }
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
}
