// DTypeTests: bf16/f16 conversions round to nearest even like torch, and keep NaN and infinities.
import JambaMath
import XCTest

final class DTypeTests: XCTestCase {
    func testBF16RoundTripAndRounding() {
        XCTAssertEqual(DTypeConversion.bf16ToFloat(0x3F80), 1)
        XCTAssertEqual(DTypeConversion.floatToBF16(1), 0x3F80)
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
        XCTAssertEqual(DTypeConversion.floatToBF16(Float(1) + Float(1) / 256), 0x3F80)
        // 1 + 3·2^-8 is halfway between mantissas 0x01 and 0x02: ties go to the even one, 0x02.
        XCTAssertEqual(DTypeConversion.floatToBF16(Float(1) + Float(3) / 256), 0x3F82)
        XCTAssertTrue(DTypeConversion.bf16ToFloat(DTypeConversion.floatToBF16(.nan)).isNaN)
        XCTAssertEqual(DTypeConversion.bf16ToFloat(DTypeConversion.floatToBF16(.infinity)), .infinity)
    }

    func testEncodeDecodeEveryDType() {
        let values: [Float] = [0, -0.5, 1.5, 3.140625, -1000, 512]
        for dtype in DType.allCases {
            let bytes = values.withUnsafeBufferPointer { DTypeConversion.encode($0, as: dtype) }
            XCTAssertEqual(bytes.count, values.count * dtype.byteSize)
            let back = bytes.withUnsafeBytes { DTypeConversion.decode(dtype, bytes: $0) }
            XCTAssertEqual(back, values, "\(dtype) round trip of exactly representable values")
        }
    }
}
