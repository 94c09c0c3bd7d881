// PromptKernelTests: the prompt-only kernels (nn_avx512.c's x · w with w stored [k, n], attention.c) against float64.
import CKernels
import Foundation
import JambaMath
import XCTest

final class PromptKernelTests: XCTestCase {
    override func tearDown() {
        BLAS.setFewRowsLevel(nil)
        BLAS.kernelThreads = 2
    }

    /// The instruction sets to check here: AVX-512 and the AVX2 fallback on an AVX-512 CPU, else what there is.
    private var levels: [Int] { BLAS.fewRowsLevel == 2 ? [2, 1] : [BLAS.fewRowsLevel] }

    /// `linear(_:transposed:into:)` over odd shapes (column tails, row blocks that do not divide, k of 1) against a
    /// float64 product; the same floats with 1, 2 and 3 threads.
    func testTransposedProductMatchesFloat64AndThreadSplits() {
        for level in levels {
            BLAS.setFewRowsLevel(level)
            for (m, n, k) in [(45, 70, 13), (7, 16, 64), (64, 2048, 64), (100, 33, 300), (13, 200, 1)] {
                let x = Matrix(rows: m, cols: k, storage: lcgFloats(m * k, seed: 61))
                let wT = Matrix(rows: k, cols: n, storage: lcgFloats(k * n, seed: 62))
                var outs: [Matrix] = []
                for threads in [1, 2, 3] {
                    BLAS.kernelThreads = threads
                    var y = Matrix(zeros: 0, n)
                    BLAS.linear(x, transposed: wT, into: &y)
                    outs.append(y)
                }
                var worst = 0.0
                for i in 0..<m {
                    for c in 0..<n {
                        var s = 0.0
                        for j in 0..<k { s += Double(x[i, j]) * Double(wT[j, c]) }
                        worst = max(worst, abs(s - Double(outs[0][i, c])))
                    }
                }
                let splitDiffs = outs.dropFirst().map { o in zip(o.storage, outs[0].storage).filter { $0.bitPattern != $1.bitPattern }.count }
                print("[prompt] x·w level \(level), \(m)×\(n)×\(k): max |diff| vs float64 \(worst) (tol 1e-4); values differing with 2, 3 threads: \(splitDiffs) (must be 0)")
                XCTAssertLessThanOrEqual(worst, 1e-4, "level \(level), \(m)×\(n)×\(k)")
                XCTAssertEqual(splitDiffs, [0, 0], "level \(level), \(m)×\(n)×\(k)")
            }
        }
    }

    /// Causal attention over a prompt, continuing a cache (past > 0) or not, grouped query heads, head sizes that
    /// are not a multiple of 16, and more queries than one 64-row block, against float64.
    func testCausalAttentionPromptMatchesFloat64() {
        for level in levels {
            BLAS.setFewRowsLevel(level)
            for (heads, kvHeads, hd, tq, past, threads) in [(6, 2, 24, 45, 7, 2), (4, 4, 16, 130, 0, 3), (8, 1, 64, 70, 66, 2)] {
                BLAS.kernelThreads = threads
                let tk = past + tq, qd = heads * hd, kvd = kvHeads * hd
                let q = lcgFloats(tq * qd, seed: 71), k = lcgFloats(tk * kvd, seed: 72), v = lcgFloats(tk * kvd, seed: 73)
                let scale = 1 / Float(hd).squareRoot()
                var o = [Float](repeating: .nan, count: tq * qd)
                let rc = o.withUnsafeMutableBufferPointer { op in
                    jc_attention_prompt(Int32(threads), Int32(heads), Int32(kvHeads), Int32(hd), Int32(tq), Int32(past), scale,
                                        q, Int32(qd), k, v, Int32(kvd), op.baseAddress!, Int32(qd))
                }
                XCTAssertEqual(rc, 0)
                var worst = 0.0
                for h in 0..<heads {
                    let g = h / (heads / kvHeads)
                    for t in 0..<tq {
                        let visible = past + t + 1
                        var s = (0..<visible).map { j in
                            (0..<hd).reduce(0.0) { $0 + Double(q[t * qd + h * hd + $1]) * Double(k[j * kvd + g * hd + $1]) } * Double(scale)
                        }
                        let mx = s.max() ?? 0
                        s = s.map { Foundation.exp($0 - mx) }
                        let sum = s.reduce(0, +)
                        for d in 0..<hd {
                            let ref = (0..<visible).reduce(0.0) { $0 + s[$1] / sum * Double(v[$1 * kvd + g * hd + d]) }
                            worst = max(worst, abs(ref - Double(o[t * qd + h * hd + d])))
                        }
                    }
                }
                print("[prompt] attention level \(level), \(heads) heads / \(kvHeads) kv, hd \(hd), \(tq) queries after \(past), \(threads) threads: max |diff| vs float64 \(worst) (tol 1e-5)")
                XCTAssertLessThanOrEqual(worst, 1e-5, "level \(level), heads \(heads)/\(kvHeads), hd \(hd), tq \(tq), past \(past)")
            }
        }
    }

    /// The model's entry point takes the prompt kernel exactly when `BLAS.takesTransposed` says so: on AVX-512
    /// from `fewRowsLimit + 1` rows, never below.
    func testAttentionEntryPointTakesPromptsOnlyOnAVX512() {
        let (heads, hd, tk) = (2, 16, 40)
        let q = lcgFloats(tk * heads * hd, seed: 81), kv = lcgFloats(tk * heads * hd, seed: 82)
        var o = [Float](repeating: 0, count: tk * heads * hd)
        for tq in [BLAS.fewRowsLimit, BLAS.fewRowsLimit + 1] {
            let took = o.withUnsafeMutableBufferPointer { op in
                Kernels.causalAttentionPrompt(heads: heads, kvHeads: heads, headDim: hd, queries: tq, past: 0, scale: 0.25,
                                              q: q, ldq: heads * hd, k: kv, v: kv, ldkv: heads * hd, o: op.baseAddress!,
                                              ldo: heads * hd)
            }
            print("[prompt] \(tq) queries, kernel level \(BLAS.fewRowsLevel): prompt kernel taken \(took)")
            XCTAssertEqual(took, BLAS.fewRowsLevel == 2 && tq > BLAS.fewRowsLimit)
        }
    }

    /// SwiGLU and dt's softplus over a prompt's rows, split across 1–3 threads (rows_mt.c): every row the floats of
    /// the one-row kernels, slices included.
    func testRowSplitElementwiseStepsGiveTheOneRowFloats() {
        let (rows, bounds) = (200, [0, 48, 100])  // 20 000 values: above the size a split pays from
        let gu = Matrix(rows: rows, cols: 200, storage: lcgFloats(rows * 200, seed: 91).map { $0 * 8 })
        let bias = lcgFloats(100, seed: 92).map { $0 * 4 }
        var refH = [Float](repeating: 0, count: rows * 100), refSP = refH
        gu.storage.withUnsafeBufferPointer { g in
            refH.withUnsafeMutableBufferPointer { h in
                for t in 0..<rows {
                    for s in 0..<2 {
                        let (lo, w) = (bounds[s], bounds[s + 1] - bounds[s])
                        Kernels.swiglu(g.baseAddress! + t * 200 + 2 * lo, g.baseAddress! + t * 200 + 2 * lo + w, h.baseAddress! + t * 100 + lo, w)
                    }
                }
            }
            refSP.withUnsafeMutableBufferPointer { o in
                for t in 0..<rows { Kernels.softplus(g.baseAddress! + t * 200, bias: bias, o.baseAddress! + t * 100, 100) }
            }
        }
        for threads in [1, 2, 3] {
            BLAS.kernelThreads = threads
            var h = Matrix(zeros: 0, 100)
            Kernels.swigluRows(gu, bounds: bounds, into: &h)
            var sp = Matrix(rows: rows, cols: 100, storage: (0..<rows).flatMap { gu.storage[($0 * 200)..<($0 * 200 + 100)] })
            Kernels.softplusRows(&sp, bias: bias)
            let dh = zip(h.storage, refH).filter { $0.bitPattern != $1.bitPattern }.count
            let dsp = zip(sp.storage, refSP).filter { $0.bitPattern != $1.bitPattern }.count
            print("[prompt] \(threads) threads, \(rows) rows: SwiGLU values differing from the one-row kernel \(dh), softplus \(dsp) (must be 0)")
            XCTAssertEqual(h.rows, rows)
            XCTAssertEqual(dh, 0)
            XCTAssertEqual(dsp, 0)
        }
    }

    /// Mamba's conv and SiLU over a segment (rows_mt.c), with and without bias, segments shorter and longer than
    /// the taps (the first rows read the conv state), against float64; the same floats on 1–3 threads.
    func testConvRowsMatchFloat64AndThreadSplits() {
        let (channels, taps) = (96, 4)
        for (rows, withBias) in [(2, true), (200, true), (37, false)] {
            let ldx = 2 * channels  // x is xz's first half, as in the mixer
            let x = lcgFloats(rows * ldx, seed: 101), state = lcgFloats(taps * channels, seed: 102)
            let w = lcgFloats(taps * channels, seed: 103), bias = withBias ? lcgFloats(channels, seed: 104) : nil
            var outs: [[Float]] = []
            for threads in [1, 2, 3] {
                BLAS.kernelThreads = threads
                var u = Matrix(zeros: rows + 3, channels)  // the segment's rows start at row 3 of u
                x.withUnsafeBufferPointer { xp in
                    Kernels.convSiluRows(rows: rows, channels: channels, taps: taps, x: xp.baseAddress!, ldx: ldx,
                                         state: state, weight: w, bias: bias, u: &u, firstRow: 3)
                }
                XCTAssertEqual(Array(u.storage[0..<(3 * channels)]), [Float](repeating: 0, count: 3 * channels), "rows before firstRow untouched")
                outs.append(Array(u.storage[(3 * channels)...]))
            }
            var worst = 0.0
            for t in 0..<rows {
                for c in 0..<channels {
                    var s = Double(bias?[c] ?? 0)
                    for q in 0..<taps {
                        let src = t - (taps - 1) + q
                        s += Double(w[q * channels + c]) * Double(src >= 0 ? x[src * ldx + c] : state[(taps + src) * channels + c])
                    }
                    worst = max(worst, abs(s / (1 + Foundation.exp(-s)) - Double(outs[0][t * channels + c])))
                }
            }
            let splitDiffs = outs.dropFirst().map { o in zip(o, outs[0]).filter { $0.bitPattern != $1.bitPattern }.count }
            print("[prompt] conv \(rows) rows × \(channels), bias \(withBias): max |diff| vs float64 \(worst) (tol 1e-5); values differing with 2, 3 threads: \(splitDiffs) (must be 0)")
            XCTAssertLessThanOrEqual(worst, 1e-5)
            XCTAssertEqual(splitDiffs, [0, 0])
        }
    }
}
