// KernelTests: the hand-written kernels agree with BLAS and with plain scalar math within stated tolerances.
import Foundation
import JambaMath
import XCTest

final class KernelTests: XCTestCase {
    /// The few-row kernel (2…8 rows) against sgemm on the same operands, odd sizes included.
    func testFewRowsMatchesSgemm() {
        for (m, n, k) in [(2, 37, 19), (3, 256, 1024), (8, 515, 130), (5, 4, 8)] {
            let x = Matrix(rows: m, cols: k, storage: lcgFloats(m * k, seed: 1))
            let w = Matrix(rows: n, cols: k, storage: lcgFloats(n * k, seed: 2))
            var few = Matrix(zeros: 0, n)
            BLAS.linear(x, w, into: &few)
            var ref = Matrix(zeros: m, n)
            x.storage.withUnsafeBufferPointer { xp in
                w.storage.withUnsafeBufferPointer { wp in
                    ref.storage.withUnsafeMutableBufferPointer { yp in
                        BLAS.cblasGemm(m: m, n: n, k: k, x: xp.baseAddress!, ldx: k, w: wp.baseAddress!, ldw: k, y: yp.baseAddress!, ldy: n)
                    }
                }
            }
            let diff = zip(few.storage, ref.storage).map { abs($0 - $1) }.max() ?? 0
            print("[kernel] few-rows \(m)×\(n)×\(k) vs sgemm: max |diff| \(diff) (tol 1e-4)")
            XCTAssertLessThanOrEqual(diff, 1e-4)
        }
    }

    func testVectorisedSiLUAndSwiGLU() {
        let g = lcgFloats(1003, seed: 3).map { $0 * 30 }, u = lcgFloats(1003, seed: 4)
        var x = g
        x.withUnsafeMutableBufferPointer { Kernels.silu($0.baseAddress!, $0.count) }
        var h = [Float](repeating: 0, count: g.count)
        g.withUnsafeBufferPointer { gp in u.withUnsafeBufferPointer { up in h.withUnsafeMutableBufferPointer { hp in
            Kernels.swiglu(gp.baseAddress!, up.baseAddress!, hp.baseAddress!, g.count)
        } } }
        var worst: Float = 0
        for i in g.indices {
            let ref = Double(g[i]) / (1 + Foundation.exp(-Double(g[i])))
            worst = max(worst, Float(abs(Double(x[i]) - ref) / max(1e-3, abs(ref))))
            worst = max(worst, Float(abs(Double(h[i]) - ref * Double(u[i])) / max(1e-3, abs(ref * Double(u[i])))))
        }
        print("[kernel] silu/swiglu max relative error \(worst) (tol 1e-5)")
        XCTAssertLessThanOrEqual(worst, 1e-5)
    }

    /// One scan token against a float64 evaluation of the same recurrence.
    func testScanTokenMatchesScalar() {
        let di = 37, n = 16
        let dt = lcgFloats(di, seed: 5).map { abs($0) * 0.5 }, u = lcgFloats(di, seed: 6), z = lcgFloats(di, seed: 7)
        let a = lcgFloats(di * n, seed: 8).map { -abs($0) * 4 }, b = lcgFloats(n, seed: 9), c = lcgFloats(n, seed: 10), d = lcgFloats(di, seed: 11)
        var h = lcgFloats(di * n, seed: 12), y = [Float](repeating: 0, count: di)
        let h0 = h
        h.withUnsafeMutableBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in
            Kernels.scanToken(channels: 0..<di, state: n, dt: dt, u: u, z: z, a: a, b: b, c: c, d: d, h: hp.baseAddress!, y: yp.baseAddress!)
        } }
        var worst = 0.0
        for ch in 0..<di {
            var s = 0.0
            for j in 0..<n {
                let hv = Foundation.exp(Double(dt[ch]) * Double(a[ch * n + j])) * Double(h0[ch * n + j]) + Double(dt[ch]) * Double(u[ch]) * Double(b[j])
                worst = max(worst, abs(hv - Double(h[ch * n + j])))
                s += hv * Double(c[j])
            }
            let zz = Double(z[ch])
            let ref = (s + Double(d[ch]) * Double(u[ch])) * zz / (1 + Foundation.exp(-zz))
            worst = max(worst, abs(ref - Double(y[ch])))
        }
        print("[kernel] scan token max |diff| vs float64 \(worst) (tol 1e-5)")
        XCTAssertLessThanOrEqual(worst, 1e-5)
    }

    /// A prompt's scan (`Kernels.scanSegment`): from 4 tokens on, 8 channels per vector with the state transposed
    /// (scan.c), the tail channels and state sizes above 32 per token. Every case against a float64 evaluation
    /// of the recurrence, token by token.
    func testScanSegmentMatchesScalar() {
        // (tokens, channels, state): blocks plus a 4-channel tail; an odd state size; the per-token fallback for a
        // state above 32; 3 tokens (decode's per-token kernel).
        let threads = BLAS.kernelThreads
        defer { BLAS.kernelThreads = threads }
        BLAS.kernelThreads = 2
        for (tokens, di, n) in [(37, 300, 16), (9, 64, 5), (6, 24, 40), (3, 40, 16)] {
            let dt = lcgFloats(tokens * di, seed: 41).map { abs($0) * 0.5 }, u = lcgFloats(tokens * di, seed: 42)
            let z = lcgFloats(tokens * di, seed: 43), a = lcgFloats(di * n, seed: 44).map { -abs($0) * 4 }
            let bc = lcgFloats(tokens * 2 * n, seed: 45), d = lcgFloats(di, seed: 46), h0 = lcgFloats(di * n, seed: 47)
            var h = h0, y = [Float](repeating: 0, count: tokens * di)
            h.withUnsafeMutableBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in
                Kernels.scanSegment(tokens: tokens, channels: di, state: n, dt: dt, ldDt: di, u: u, ldU: di, z: z, ldZ: di,
                                    a: a, bc: bc, ldBC: 2 * n, d: d, h: hp.baseAddress!, y: yp.baseAddress!, ldY: di)
            } }
            var ref = h0.map(Double.init), worst = 0.0
            for t in 0..<tokens {
                for ch in 0..<di {
                    let (dtc, uc) = (Double(dt[t * di + ch]), Double(u[t * di + ch]))
                    var s = 0.0
                    for j in 0..<n {
                        ref[ch * n + j] = Foundation.exp(dtc * Double(a[ch * n + j])) * ref[ch * n + j] + dtc * uc * Double(bc[t * 2 * n + j])
                        s += ref[ch * n + j] * Double(bc[t * 2 * n + n + j])
                    }
                    let zz = Double(z[t * di + ch])
                    worst = max(worst, abs((s + Double(d[ch]) * uc) * zz / (1 + Foundation.exp(-zz)) - Double(y[t * di + ch])))
                }
            }
            for i in ref.indices { worst = max(worst, abs(ref[i] - Double(h[i]))) }
            print("[kernel] scan segment \(tokens) tokens × \(di) channels, state \(n): max |diff| vs float64 \(worst) (tol 1e-5)")
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(tokens) tokens, \(di) channels, state \(n)")
        }
    }

    /// On AVX-512, a prompt's scan runs 16 channels per vector (scan_avx512.c); each lane must give the floats the
    /// 8-channel AVX2 blocks give, so a channel's result does not depend on which kernel or split it got.
    func testScanSixteenAndEightChannelBlocksGiveTheSameFloats() {
        let (threads, level) = (BLAS.kernelThreads, BLAS.fewRowsLevel)
        defer { BLAS.kernelThreads = threads; BLAS.setFewRowsLevel(level) }
        BLAS.kernelThreads = 2
        for (tokens, di, n) in [(37, 312, 16), (20, 48, 7), (5, 128, 32)] {
            let dt = lcgFloats(tokens * di, seed: 51).map { abs($0) * 0.5 }, u = lcgFloats(tokens * di, seed: 52)
            let z = lcgFloats(tokens * di, seed: 53), a = lcgFloats(di * n, seed: 54).map { -abs($0) * 4 }
            let bc = lcgFloats(tokens * 2 * n, seed: 55), d = lcgFloats(di, seed: 56), h0 = lcgFloats(di * n, seed: 57)
            func scan(level: Int) -> [Float] {
                BLAS.setFewRowsLevel(level)
                var h = h0, y = [Float](repeating: 0, count: tokens * di)
                h.withUnsafeMutableBufferPointer { hp in y.withUnsafeMutableBufferPointer { yp in
                    Kernels.scanSegment(tokens: tokens, channels: di, state: n, dt: dt, ldDt: di, u: u, ldU: di, z: z,
                                        ldZ: di, a: a, bc: bc, ldBC: 2 * n, d: d, h: hp.baseAddress!, y: yp.baseAddress!, ldY: di)
                } }
                return h + y
            }
            let wide = scan(level: 2)
            let wideLevel = BLAS.fewRowsLevel
            let narrow = scan(level: 1)
            let differing = zip(wide, narrow).filter { $0.bitPattern != $1.bitPattern }.count
            print("[kernel] scan \(tokens) tokens × \(di) channels, state \(n), kernel level \(wideLevel == 2 ? "2 (AVX-512)" : "\(wideLevel) (no AVX-512 here: both runs take one kernel)") against 1: \(differing) of \(wide.count) state and output values differ (must be 0)")
            XCTAssertEqual(differing, 0, "\(tokens) tokens, \(di) channels, state \(n)")
        }
    }
}
