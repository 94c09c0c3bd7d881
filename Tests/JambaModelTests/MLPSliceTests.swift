// MLPSliceTests: an expert's slices, computed apart and summed in slice order, equal the expert computed whole.
import Foundation
import JambaMath
@testable import JambaModel
import XCTest

final class MLPSliceTests: XCTestCase {
    override func tearDown() {
        BLAS.chunkedManyRows = true
        BLAS.setFewRowsLevel(nil)
        BLAS.kernelThreads = 2
    }

    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 1000
        }
    }

    /// The MLP in float64 from the weights as held (bf16-rounded when held in bf16).
    private func reference(_ mlp: MLP, gate: [Float], up: [Float], _ x: Matrix) -> [Double] {
        let (h, i) = (mlp.down.rows, mlp.intermediateSize)
        let d = mlp.down.toMatrix()
        let held = { (v: Float) -> Double in mlp.down.dtype == .bf16 ? Double(Weights(rows: 1, cols: 1, values: [v], dtype: .bf16).toMatrix()[0, 0]) : Double(v) }
        var out = [Double](repeating: 0, count: x.rows * h)
        for r in 0..<x.rows {
            var act = [Double](repeating: 0, count: i)
            for j in 0..<i {
                var g = 0.0, u = 0.0
                for c in 0..<h { g += Double(x[r, c]) * held(gate[j * h + c]); u += Double(x[r, c]) * held(up[j * h + c]) }
                act[j] = g / (1 + exp(-g)) * u
            }
            for c in 0..<h { out[r * h + c] = (0..<i).reduce(0.0) { $0 + act[$1] * Double(d[c, $1]) } }
        }
        return out
    }

    func testSlicesSummedInOrderEqualTheWholeExpertBitForBit() throws {
        let (h, i) = (48, 96)  // slices [0, 48, 96]
        let gate = random(i * h, seed: 1), up = random(i * h, seed: 2), downValues = random(h * i, seed: 3)
        XCTAssertEqual(MLP.sliceBounds(intermediate: i), [0, 48, 96])
        XCTAssertEqual(MLP.sliceBounds(intermediate: 2816), [0, 1408, 2816])
        XCTAssertEqual(MLP.sliceBounds(intermediate: 20), [0, 20], "below 32 the expert is one slice")
        var worst = 0.0
        for level in 0...BLAS.fewRowsLevel {
            BLAS.setFewRowsLevel(level)
            for dtype in [WeightDType.f32, .bf16] {
                let mlp = MLP(gate: gate, up: up, down: Weights(rows: h, cols: i, values: downValues, dtype: dtype), dtype: dtype)
                XCTAssertEqual(mlp.sliceCount, 2)
                for rows in [1, 2, 3, 5, 8, BLAS.fewRowsLimit] {
                    for threads in [1, 2] {
                        BLAS.kernelThreads = threads
                        let x = Matrix(rows: rows, cols: h, storage: random(rows * h, seed: UInt64(100 + rows)))
                        let whole = mlp(x)
                        var scratch = MLPScratch(intermediate: i)
                        var sum = Matrix(zeros: 0, h), p1 = Matrix(zeros: 0, h)
                        mlp.partial(x, slice: 0, into: &sum, scratch: &scratch)
                        mlp.partial(x, slice: 1, into: &p1, scratch: &scratch)
                        MLP.accumulate(p1, into: &sum)
                        XCTAssertEqual(whole.storage, sum.storage, "level \(level) \(dtype) rows \(rows) threads \(threads): slices differ from the whole")
                        let ref = reference(mlp, gate: gate, up: up, x)
                        for (a, b) in zip(whole.storage, ref) { worst = max(worst, abs(Double(a) - b) / max(1, abs(b))) }
                    }
                }
            }
        }
        print("[mlp slices] whole vs float64: max relative error \(worst) (tol 1e-4)")
        XCTAssertLessThan(worst, 1e-4)
    }

    /// Many rows take the sgemm chain; a slice asked of a worker for many rows still runs (in few-row chunks).
    func testManyRowsStillMatchTheReference() throws {
        let (h, i) = (32, 64)
        let gate = random(i * h, seed: 4), up = random(i * h, seed: 5)
        let mlp = MLP(gate: gate, up: up, down: Weights(rows: h, cols: i, values: random(h * i, seed: 6), dtype: .f32), dtype: .f32)
        let x = Matrix(rows: 70, cols: h, storage: random(70 * h, seed: 7))
        let ref = reference(mlp, gate: gate, up: up, x)
        var scratch = MLPScratch(intermediate: i)
        var p0 = Matrix(zeros: 0, h), p1 = Matrix(zeros: 0, h)
        mlp.partial(x, slice: 0, into: &p0, scratch: &scratch)
        mlp.partial(x, slice: 1, into: &p1, scratch: &scratch)
        MLP.accumulate(p1, into: &p0)
        var worst = 0.0
        for (a, b) in zip(mlp(x).storage, ref) { worst = max(worst, abs(Double(a) - b) / max(1, abs(b))) }
        for (a, b) in zip(p0.storage, ref) { worst = max(worst, abs(Double(a) - b) / max(1, abs(b))) }
        print("[mlp slices] 70 rows, whole and sliced vs float64: max relative error \(worst) (tol 1e-4)")
        XCTAssertLessThan(worst, 1e-4)
    }

    /// Prefill-sized expert batches (more rows than the few-row limit, k ≥ 256) go through the few-row kernel in
    /// chunks (BLAS.chunksFewRows), the down projection summed per slice: each row's output is then the same
    /// floats as the row computed alone (a decode step), and as the two slices summed (a worker each). With sgemm
    /// it is only close: the comparison run prints its difference.
    func testPrefillSizedBatchGivesEachRowTheFloatsOfTheRowAlone() throws {
        let (h, i, rows) = (256, 512, 77)
        for dtype in WeightDType.allCases {
            let gate = random(i * h, seed: 11), up = random(i * h, seed: 12)
            let mlp = MLP(gate: gate, up: up, down: Weights(rows: h, cols: i, values: random(h * i, seed: 13), dtype: dtype), dtype: dtype)
            let x = Matrix(rows: rows, cols: h, storage: random(rows * h, seed: 14))
            XCTAssertEqual(BLAS.chunksFewRows(m: rows, k: h), BLAS.fewRowsLevel == 2)
            var scratch = MLPScratch(intermediate: i)
            var whole = Matrix(zeros: 0, h)
            mlp(x, into: &whole, scratch: &scratch)
            var p0 = Matrix(zeros: 0, h), p1 = Matrix(zeros: 0, h)
            mlp.partial(x, slice: 0, into: &p0, scratch: &scratch)
            mlp.partial(x, slice: 1, into: &p1, scratch: &scratch)
            MLP.accumulate(p1, into: &p0)
            var aloneDiffer = 0, slicesDiffer = 0
            for r in 0..<rows {
                var one = Matrix(zeros: 0, h)
                mlp(x.gatherRows([r]), into: &one, scratch: &scratch)
                aloneDiffer += zip(one.storage, whole.row(r)).filter { $0 != $1 }.count
            }
            slicesDiffer = zip(p0.storage, whole.storage).filter { $0 != $1 }.count
            BLAS.chunkedManyRows = false
            var viaSgemm = Matrix(zeros: 0, h)
            mlp(x, into: &viaSgemm, scratch: &scratch)
            BLAS.chunkedManyRows = true
            let sgemmDiff = zip(viaSgemm.storage, whole.storage).map { abs($0 - $1) }.max() ?? 0
            print("[mlp slices] \(dtype) \(rows) rows, chunked few-row path: elements differing from the row alone \(aloneDiffer), from the slices summed \(slicesDiffer) (both must be 0); sgemm path max |diff| \(sgemmDiff) (tol 1e-3)")
            if BLAS.fewRowsLevel == 2 {
                XCTAssertEqual(aloneDiffer, 0)
                XCTAssertEqual(slicesDiffer, 0)
            }
            XCTAssertLessThan(sgemmDiff, 1e-3)
        }
    }
}
