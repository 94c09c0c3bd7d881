// FewRowsKernelTests: every few-row kernel (AVX-512, AVX2, C; f32 and bf16 weights) against a float64 reference.
import Foundation
import JambaMath
import XCTest

final class FewRowsKernelTests: XCTestCase {
    override func tearDown() {
        BLAS.setFewRowsLevel(nil)
        BLAS.setFewRowsTile(rowBlock: nil, columns: nil)
        BLAS.setFewRowsKBlock(nil)
        BLAS.kernelThreads = 2
    }

    /// y = x · wᵀ in float64 with the weights exactly as held (bf16-rounded when `bf16`).
    func reference(_ x: Matrix, _ w: Weights) -> [Double] {
        let wf = w.toMatrix()
        var out = [Double](repeating: 0, count: x.rows * w.rows)
        for r in 0..<x.rows {
            for j in 0..<w.rows {
                var s = 0.0
                for i in 0..<x.cols { s += Double(x[r, i]) * Double(wf[j, i]) }
                out[r * w.rows + j] = s
            }
        }
        return out
    }

    /// All row counts 1…40 (the few-row limit is 32 with AVX-512, 8 without, so both sides of it), odd n and k
    /// (masked tails, column tiles that do not divide n), each kernel level this CPU has, f32 and bf16.
    /// For f32 and bf16 weights [n, k] and x of each row count, x · wᵀ, plain and with the sum split at k0, must
    /// give the same floats under every kernel setting (`apply`) as under the baseline one.
    func assertSettingsGiveTheSameFloats<S>(_ what: String, n: Int, k: Int, k0: Int, rows: [Int], seed: UInt64,
                                            baseline: () -> Void, settings: [S], apply: (S) -> Void,
                                            line: UInt = #line) {
        for dtype in WeightDType.allCases {
            let w = Weights(Matrix(rows: n, cols: k, storage: lcgFloats(n * k, seed: seed)), dtype: dtype)
            var differing = 0, compared = 0
            for (i, m) in rows.enumerated() {
                let x = Matrix(rows: m, cols: k, storage: lcgFloats(m * k, seed: seed * 100 + UInt64(i)))
                baseline()
                var plain = Matrix(zeros: 0, n), split = Matrix(zeros: 0, n), tmp = Matrix(zeros: 0, n)
                BLAS.linear(x, w, into: &plain)
                BLAS.linearSplit(x, w, splitAt: k0, into: &split, tmp: &tmp)
                for setting in settings {
                    apply(setting)
                    var y = Matrix(zeros: 0, n), ys = Matrix(zeros: 0, n)
                    BLAS.linear(x, w, into: &y)
                    BLAS.linearSplit(x, w, splitAt: k0, into: &ys, tmp: &tmp)
                    differing += zip(y.storage, plain.storage).filter { $0 != $1 }.count
                    differing += zip(ys.storage, split.storage).filter { $0 != $1 }.count
                    compared += 2 * y.storage.count
                }
            }
            print("[kernel] \(dtype): elements differing between \(what): \(differing) of \(compared) (must be 0)")
            XCTAssertGreaterThan(compared, 0, line: line)
            XCTAssertEqual(differing, 0, "\(dtype): \(what)", line: line)
        }
    }

    func testAllLevelsAndDTypesAgainstFloat64() {
        let best = BLAS.fewRowsLevel
        print("[kernel] few-row kernel levels on this CPU: 0...\(best) (2 = AVX-512, 1 = AVX2, 0 = C)")
        XCTAssertGreaterThanOrEqual(best, 0)
        let (n, k) = (131, 1043)
        let wf = Matrix(rows: n, cols: k, storage: lcgFloats(n * k, seed: 2))
        for level in 0...best {
            BLAS.setFewRowsLevel(level)
            XCTAssertEqual(BLAS.fewRowsLevel, level)
            for dtype in WeightDType.allCases {
                let w = Weights(wf, dtype: dtype)
                var worst = 0.0
                for m in [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 24, 32, 33, 40] {
                    let x = Matrix(rows: m, cols: k, storage: lcgFloats(m * k, seed: UInt64(m)))
                    var y = Matrix(zeros: 0, n)
                    BLAS.linear(x, w, into: &y)
                    let ref = reference(x, w)
                    for (a, b) in zip(y.storage, ref) { worst = max(worst, abs(Double(a) - b)) }
                }
                print("[kernel] level \(level) \(dtype): max |diff| vs float64 over 1…40 rows: \(worst) (tol 5e-4: f32 sums of 1043 products; the scalar path sums sequentially)")
                XCTAssertLessThanOrEqual(worst, 5e-4, "level \(level) \(dtype)")
            }
        }
    }

    /// A row's result must not depend on how many other rows share the call or on the thread split: the remote
    /// expert executor relies on it to split an expert's rows between replicas without changing any bit.
    func testResultIndependentOfRowCountAndThreads() {
        let n = 1000
        for dtype in WeightDType.allCases {
            let (x, w) = lcgOperands(m: 8, n: n, k: 1024, dtype: dtype, seeds: (4, 3))
            let all = oneThreadProduct(x, w)
            var differing = 0
            for r in 0..<8 {
                var one = Matrix(zeros: 0, n)
                BLAS.linear(x.gatherRows([r]), w, into: &one)
                differing += zip(one.storage, all.row(r)).filter { $0 != $1 }.count
            }
            print("[kernel] \(dtype): elements differing between 8-row/1-thread and 1-row/2-thread calls: \(differing) (must be 0)")
            XCTAssertEqual(differing, 0)
        }
    }

    /// The AVX-512 kernel picks its register tile by row count and dtype (tile_plan, tuned by measurement). Every
    /// tile must give the same floats, plain and with the sum split at k0 (an expert's slices), or retuning the
    /// plan would change results and break the slices' bit-identity with the whole expert.
    func testEveryRegisterTileGivesTheSameFloats() {
        print("[kernel] kernel level \(BLAS.fewRowsLevel) (the forced tiles take effect at 2, AVX-512)")
        let tiles = (1...4).flatMap { rb in [1, 2, 3, 4, 6].map { (rb, $0) } }
        assertSettingsGiveTheSameFloats("forced tiles (1–4 rows × 1–6 columns) and the plan", n: 61, k: 300, k0: 112,
                                        rows: [1, 2, 3, 4, 5, 7, 8, 13, 32], seed: 9,
                                        baseline: { BLAS.setFewRowsTile(rowBlock: nil, columns: nil) },
                                        settings: tiles) { BLAS.setFewRowsTile(rowBlock: $0.0, columns: $0.1) }
    }

    /// Long sums are taken in k blocks, each row block's 16-lane partial sums kept between blocks: the same floats
    /// as one pass, plain and split at k0, whatever the block (the plan's, or forced down to one vector), row count
    /// (one row block, several, part of a 128-row chunk, beyond one chunk) or dtype. The plan's blocks (816 f32,
    /// 1168 bf16 at the 4 × 6 tile) must cut k = 2816, the experts' down projection.
    func testKBlocksGiveTheSameFloats() {
        print("[kernel] kernel level \(BLAS.fewRowsLevel) (the k blocks take effect at 2, AVX-512)")
        assertSettingsGiveTheSameFloats("k blocks (the plan, 16, 112, 1024) and one pass", n: 37, k: 2816, k0: 1408,
                                        rows: [3, 5, 8, 33, 70, 130], seed: 21, baseline: { BLAS.setFewRowsKBlock(0) },
                                        settings: [nil, 16, 112, 1024] as [Int?]) { BLAS.setFewRowsKBlock($0) }
    }

    /// Loaded weights start at a cache line (the kernel's vector loads then never span two), and x rows at any
    /// address or stride give the same floats as aligned ones (the kernel copies them to aligned rows).
    func testAlignmentOfWeightsAndXRows() {
        let (n, k) = (29, 1040)
        for dtype in WeightDType.allCases {
            let w = Weights(Matrix(rows: n, cols: k, storage: lcgFloats(n * k, seed: 31)), dtype: dtype)
            let address: Int
            switch w.storage {
            case let .f32(v): address = v.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
            case let .bf16(v): address = v.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
            }
            print("[kernel] \(dtype) weights start \(address % 64) bytes past a cache line (must be 0)")
            XCTAssertEqual(address % 64, 0)
            if dtype == .f32 { XCTAssertEqual(w.toMatrix().storage, lcgFloats(n * k, seed: 31), "f32 weights are copied as they are") }
            var differing = 0, compared = 0
            for m in [1, 4, 9, 64, 70] {
                let x = lcgFloats(m * k, seed: UInt64(300 + m))
                let aligned = AlignedBuffer(x)
                var yAligned = [Float](repeating: 0, count: m * n)
                // The same rows 4 bytes past alignment, with a stride of k + 3 floats.
                let ld = k + 3
                var padded = [Float](repeating: .nan, count: m * ld + 1)
                for r in 0..<m { for j in 0..<k { padded[1 + r * ld + j] = x[r * k + j] } }
                var yOffset = [Float](repeating: 0, count: m * n)
                let weights: UnsafeRawPointer
                switch w.storage {
                case let .f32(v): weights = v.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
                case let .bf16(v): weights = v.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
                }
                withExtendedLifetime(w) {
                    aligned.withUnsafeBufferPointer { xp in
                        yAligned.withUnsafeMutableBufferPointer { yp in
                            BLAS.gemmFewRows(m: m, n: n, k: k, x: xp.baseAddress!, ldx: k, w: weights, bf16: dtype == .bf16,
                                             ldw: k, y: yp.baseAddress!, ldy: n)
                        }
                    }
                    padded.withUnsafeBufferPointer { xp in
                        yOffset.withUnsafeMutableBufferPointer { yp in
                            BLAS.gemmFewRows(m: m, n: n, k: k, x: xp.baseAddress! + 1, ldx: ld, w: weights,
                                             bf16: dtype == .bf16, ldw: k, y: yp.baseAddress!, ldy: n)
                        }
                    }
                }
                differing += zip(yAligned, yOffset).filter { $0 != $1 }.count
                compared += yAligned.count
            }
            print("[kernel] \(dtype): elements differing between aligned and offset x rows: \(differing) of \(compared) (must be 0)")
            XCTAssertGreaterThan(compared, 0)
            XCTAssertEqual(differing, 0)
        }
    }

    /// bf16 with many rows (widen + sgemm) against the few-row path on the same bf16 weights.
    func testBF16ManyRowsMatchesFewRows() {
        let (n, k, m) = (300, 520, 96)
        let w = Weights(Matrix(rows: n, cols: k, storage: lcgFloats(n * k, seed: 5)), dtype: .bf16)
        let x = Matrix(rows: m, cols: k, storage: lcgFloats(m * k, seed: 6))
        var many = Matrix(zeros: 0, n)
        BLAS.linear(x, w, into: &many)  // m > fewRowsLimit: sgemm on widened weights
        var worst: Float = 0
        for r0 in stride(from: 0, to: m, by: 8) {
            var few = Matrix(zeros: 0, n)
            BLAS.linear(x.gatherRows(Array(r0..<(r0 + 8))), w, into: &few)
            for r in 0..<8 { for j in 0..<n { worst = max(worst, abs(few[r, j] - many[r0 + r, j])) } }
        }
        print("[kernel] bf16 \(m) rows (widened sgemm) vs 8-row blocks (few-row kernel): max |diff| \(worst) (tol 1e-4)")
        XCTAssertLessThanOrEqual(worst, 1e-4)
    }

    /// bf16 storage rounds to nearest-even like torch, and widening gives back exactly the rounded value.
    func testBF16RoundingMatchesTorchRule() {
        let values: [Float] = [1.0, 1.00390625, 1.005859375, -3.14159, 65504, 1e-30, .infinity, -0.0]
        let w = Weights(rows: 1, cols: values.count, values: values, dtype: .bf16)
        let back = w.row(0)
        // From torch: torch.tensor(values).to(torch.bfloat16).float()
        let expected: [Float] = [1.0, 1.0, 1.0078125, -3.140625, 65536, Float(bitPattern: 0x0DA2 << 16), .infinity, -0.0]
        for (b, e) in zip(back, expected) { XCTAssertEqual(b, e, "bf16 of \(values)") }
        XCTAssertEqual(w.byteCount, 2 * values.count)
    }

    /// Small products inside `BLAS.gemm` (attention in decode) run in our kernels, not OpenBLAS: both layouts,
    /// with alpha, against OpenBLAS on the same operands, through strided views as attention uses them.
    func testSmallGemmBothLayoutsMatchOpenBLAS() {
        for (m, n, k) in [(1, 64, 37), (3, 70, 64), (8, 5, 200), (32, 64, 129)] {
            let ld = max(n, k) + 3
            let x = lcgFloats(m * ld, seed: 7), w = lcgFloats(max(n, k) * ld, seed: 8)
            for transposeW in [true, false] {
                var ours = [Float](repeating: 0, count: m * ld), ref = ours
                x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in
                    ours.withUnsafeMutableBufferPointer { yp in
                        BLAS.gemm(m: m, n: n, k: k, alpha: 0.125, x: xp.baseAddress!, ldx: ld, w: wp.baseAddress!, ldw: ld,
                                  transposeW: transposeW, y: yp.baseAddress!, ldy: ld)
                    }
                    ref.withUnsafeMutableBufferPointer { yp in
                        BLAS.cblasGemm(m: m, n: n, k: k, alpha: 0.125, x: xp.baseAddress!, ldx: ld, w: wp.baseAddress!, ldw: ld,
                                       transposeW: transposeW, y: yp.baseAddress!, ldy: ld)
                    }
                } }
                var worst: Float = 0
                for r in 0..<m { for c in 0..<n { worst = max(worst, abs(ours[r * ld + c] - ref[r * ld + c])) } }
                print("[kernel] small gemm \(m)×\(n)×\(k) transposeW=\(transposeW) vs OpenBLAS: max |diff| \(worst) (tol 1e-5)")
                XCTAssertLessThanOrEqual(worst, 1e-5)
            }
        }
    }
}
