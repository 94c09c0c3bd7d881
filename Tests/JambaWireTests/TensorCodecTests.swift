// TensorCodecTests: Matrix <-> Tensor round trips for every dtype and shape, and every rejection path.
import Foundation
import JambaMath
import XCTest
@testable import JambaWire

final class TensorCodecTests: XCTestCase {
    /// Deterministic values spanning signs and magnitudes (including exact zeros and tiny values).
    private func sample(rows: Int, cols: Int, seed: UInt64 = 1) -> Matrix {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        var values = [Float](repeating: 0, count: rows * cols)
        for i in values.indices {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(state >> 40) / Float(1 << 24)             // [0, 1)
            let magnitude = powf(10, Float((state >> 20) % 7) - 4)   // 1e-4 ... 1e2
            values[i] = i % 17 == 0 ? 0 : (u - 0.5) * 2 * magnitude
        }
        return Matrix(rows: rows, cols: cols, storage: values)
    }

    private let shapes = [(0, 16), (1, 1), (3, 5), (17, 64), (256, 1024)]

    func testF32RoundTripIsExact() throws {
        for (r, c) in shapes {
            let m = sample(rows: r, cols: c)
            let t = TensorCodec.encode(m)
            XCTAssertEqual(t.dtype, .f32)
            XCTAssertEqual(t.shape, [Int64(r), Int64(c)])
            XCTAssertEqual(t.rawData.count, r * c * 4)
            let back = try TensorCodec.decodeMatrix(t, cols: c)
            XCTAssertEqual(back, m, "f32 [\(r), \(c)]")
        }
        // Special values survive bit for bit.
        let special = Matrix(rows: 1, cols: 5, storage: [.infinity, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude])
        let back = try TensorCodec.decodeMatrix(TensorCodec.encode(special))
        XCTAssertEqual(back.storage.map(\.bitPattern), special.storage.map(\.bitPattern))
        let nan = try TensorCodec.decodeMatrix(TensorCodec.encode(Matrix(rows: 1, cols: 1, storage: [.nan])))
        XCTAssertTrue(nan.storage[0].isNaN)
    }

    func testHalfPrecisionRoundTripsWithinTheirRounding() throws {
        // Relative error bound of round-to-nearest: half an ulp = 2^-(mantissa bits + 1).
        let cases: [(DType, Float)] = [(.bf16, 1.0 / 256), (.f16, 1.0 / 2048)]
        for (dtype, bound) in cases {
            var worstRel: Float = 0, worstAbs: Float = 0
            for (r, c) in shapes {
                let m = sample(rows: r, cols: c)
                let t = TensorCodec.encode(m, as: dtype)
                XCTAssertEqual(t.dtype, dtype.wire)
                XCTAssertEqual(t.rawData.count, r * c * 2)
                let back = try TensorCodec.decodeMatrix(t, cols: c)
                XCTAssertEqual(back.rows, r)
                for (x, y) in zip(m.storage, back.storage) {
                    // Exactly what the engine's own conversion gives, so wire and checkpoint agree.
                    let reference = dtype == .bf16
                        ? DTypeConversion.bf16ToFloat(DTypeConversion.floatToBF16(x))
                        : DTypeConversion.f16ToFloat(DTypeConversion.floatToF16(x))
                    XCTAssertEqual(y.bitPattern, reference.bitPattern)
                    let abs = Swift.abs(x - y)
                    worstAbs = max(worstAbs, abs)
                    // f16 subnormals (< 6.1e-5) only keep an absolute precision of 2^-24.
                    if Swift.abs(x) >= 6.2e-5 { worstRel = max(worstRel, abs / Swift.abs(x)) }
                    else { XCTAssertLessThanOrEqual(abs, dtype == .f16 ? 3.0e-8 : Swift.abs(x) * bound) }
                }
            }
            print("\(dtype.rawValue): max abs diff \(worstAbs), max rel diff \(worstRel) (bound \(bound))")
            XCTAssertLessThanOrEqual(worstRel, bound, "\(dtype)")
        }
    }

    func testRawBytesAreLittleEndianRowMajor() throws {
        let m = Matrix(rows: 2, cols: 2, storage: [1, 2, -2, 0.5])
        XCTAssertEqual(Array(TensorCodec.encode(m).rawData.prefix(8)), [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x40])
        XCTAssertEqual(Array(TensorCodec.encode(m, as: .bf16).rawData), [0x80, 0x3F, 0x00, 0x40, 0x00, 0xC0, 0x00, 0x3F])
        XCTAssertEqual(Array(TensorCodec.encode(m, as: .f16).rawData), [0x00, 0x3C, 0x00, 0x40, 0x00, 0xC0, 0x00, 0x38])
    }

    func testDecodeIntoReusesTheScratchMatrix() throws {
        var scratch = Matrix(zeros: 0, 64)
        for rows in [8, 3, 0, 5] {
            let m = sample(rows: rows, cols: 64, seed: UInt64(rows))
            try TensorCodec.decode(TensorCodec.encode(m, as: .f32), into: &scratch)
            XCTAssertEqual(scratch, m)
        }
        // A rejected tensor leaves the scratch matrix as it was.
        let before = scratch
        XCTAssertThrowsError(try TensorCodec.decode(TensorCodec.encode(sample(rows: 2, cols: 8)), into: &scratch))
        XCTAssertEqual(scratch, before)
    }

    func testNDRoundTrip() throws {
        let values = (0..<24).map { Float($0) - 11.5 }
        let t = values.withUnsafeBufferPointer { TensorCodec.encode($0, shape: [2, 3, 4], as: .bf16) }
        let (shape, back) = try TensorCodec.decodeND(t)
        XCTAssertEqual(shape, [2, 3, 4])
        XCTAssertEqual(back, values)  // all exactly representable in bf16
        // A scalar (rank 0) has one element; a rank-1 tensor with a zero dimension has none.
        let scalar = [Float(3)].withUnsafeBufferPointer { TensorCodec.encode($0, shape: [], as: .f32) }
        XCTAssertEqual(try TensorCodec.decodeND(scalar).values, [3])
        let empty = [Float]().withUnsafeBufferPointer { TensorCodec.encode($0, shape: [0], as: .f16) }
        XCTAssertEqual(try TensorCodec.decodeND(empty).values, [])
        XCTAssertThrowsError(try TensorCodec.decodeMatrix(t, field: "x")) { error in
            guard case .badShape(let field, let s, _)? = error as? WireError else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "x")
            XCTAssertEqual(s, [2, 3, 4])
        }
    }

    // MARK: Rejections

    private func tensor(_ dtype: Jamba_V1_DType, _ shape: [Int64], bytes: Int) -> Jamba_V1_Tensor {
        var t = Jamba_V1_Tensor()
        t.dtype = dtype
        t.shape = shape
        t.rawData = Data(count: bytes)
        return t
    }

    private func expect(_ t: Jamba_V1_Tensor, cols: Int? = nil, maxBytes: Int = TensorCodec.defaultMaxTensorBytes,
                        _ check: (WireError) -> Void, line: UInt = #line) {
        do {
            _ = try TensorCodec.decodeMatrix(t, cols: cols, field: "experts[2].rows", maxBytes: maxBytes)
            XCTFail("accepted a bad tensor", line: line)
        } catch {
            XCTAssertTrue(error.description.contains("experts[2].rows"), error.description, line: line)
            check(error)
        }
    }

    func testBadDTypeIsRejected() {
        expect(tensor(.unspecified, [1, 1], bytes: 4)) { XCTAssertEqual($0, .badDType(field: "experts[2].rows", rawValue: 0)) }
        expect(tensor(.UNRECOGNIZED(9), [1, 1], bytes: 4)) { XCTAssertEqual($0, .badDType(field: "experts[2].rows", rawValue: 9)) }
        // An unknown dtype value arriving off the wire is kept by protobuf and still rejected.
        var t = tensor(.f32, [1, 1], bytes: 4)
        t.dtype = .UNRECOGNIZED(42)
        let parsed = try? Jamba_V1_Tensor(serializedBytes: try t.serializedBytes() as [UInt8])
        XCTAssertEqual(parsed?.dtype, .UNRECOGNIZED(42))
        if let parsed { expect(parsed) { XCTAssertEqual($0.code, .badTensor) } }
    }

    func testBadShapesAreRejected() {
        let reasons: [([Int64], String)] = [
            ([], "rank 0, expected 2"),
            ([4], "rank 1, expected 2"),
            ([1, 2, 3], "rank 3, expected 2"),
            ([-1, 4], "dimension 0 is negative"),
            ([4, -4], "dimension 1 is negative"),
            ([Int64.max, 2], "element count overflows"),
            ([Int64.max / 2, 1], "byte count overflows"),
        ]
        for (shape, reason) in reasons {
            expect(tensor(.f32, shape, bytes: 16)) { error in
                XCTAssertEqual(error, .badShape(field: "experts[2].rows", shape: shape, reason: reason))
                XCTAssertEqual(error.code, .badTensor)
            }
        }
        expect(tensor(.f32, [2, 2], bytes: 16), cols: 4) {
            XCTAssertEqual($0, .badShape(field: "experts[2].rows", shape: [2, 2], reason: "2 columns, expected 4"))
        }
    }

    func testBadLengthsAreRejectedWithExpectedAndActual() {
        for (dtype, size) in [(DType.f32, 4), (.bf16, 2), (.f16, 2)] {
            for delta in [-1, 1, -size * 6] {
                let actual = 3 * 4 * size + delta
                expect(tensor(dtype.wire, [3, 4], bytes: actual)) { error in
                    XCTAssertEqual(error, .lengthMismatch(field: "experts[2].rows", shape: [3, 4], dtype: dtype,
                                                          expectedBytes: 3 * 4 * size, actualBytes: actual))
                    XCTAssertEqual(error.code, .badTensor)
                }
            }
        }
        // Zero rows with stray bytes is still a mismatch.
        expect(tensor(.f32, [0, 8], bytes: 4)) {
            XCTAssertEqual($0, .lengthMismatch(field: "experts[2].rows", shape: [0, 8], dtype: .f32, expectedBytes: 0, actualBytes: 4))
        }
    }

    func testOversizedIsRejectedBeforeLengthIsTrusted() {
        // The claim alone is over the limit: rejected as oversized even though raw_data is tiny.
        expect(tensor(.f32, [1 << 20, 1 << 10], bytes: 8), maxBytes: 1 << 20) {
            XCTAssertEqual($0, .oversized(field: "experts[2].rows", bytes: 1 << 32, limit: 1 << 20))
            XCTAssertEqual($0.code, .oversized)
        }
        let ok = tensor(.bf16, [16, 32], bytes: 1024)
        XCTAssertNoThrow(try TensorCodec.decodeMatrix(ok, maxBytes: 1024))
        expect(ok, maxBytes: 1023) { XCTAssertEqual($0, .oversized(field: "experts[2].rows", bytes: 1024, limit: 1023)) }
    }

    func testDecodeSpeed() throws {
        // Not a benchmark (debug build, shared machine); prints the rate and catches an accidental
        // per-element Data access, which would be ~100x slower than this bound.
        let m = sample(rows: 512, cols: 4096)
        for dtype in DType.allCases {
            let t = TensorCodec.encode(m, as: dtype)
            let start = Date()
            for _ in 0..<5 { _ = try TensorCodec.decodeMatrix(t) }
            let seconds = Date().timeIntervalSince(start) / 5
            let mb = Double(t.rawData.count) / 1e6
            print("decode \(dtype.rawValue) [512, 4096]: \(String(format: "%.2f", seconds * 1000)) ms, \(String(format: "%.0f", mb / seconds)) MB/s")
            XCTAssertLessThan(seconds, 2.0)
        }
    }
}
