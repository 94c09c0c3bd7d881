// DType: the element types of checkpoints and wire tensors, and their conversion to and from f32.

/// Element types the engine reads and sends. Compute is always f32.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case bf16 = "BF16"
    case f16 = "F16"

    public var byteSize: Int {
        switch self {
        case .f32: 4
        case .bf16, .f16: 2
        }
    }
}

/// Conversions between little-endian raw element bytes and `Float`.
///
/// bf16 is the top half of an f32, so widening is a shift. Narrowing rounds to nearest-even as torch does
/// (`x.to(torch.bfloat16)`), and keeps NaN a quiet NaN instead of letting the rounding carry into the exponent.
public enum DTypeConversion {
    @inline(__always)
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    @inline(__always)
    public static func floatToBF16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x0040) }
        let rounding = UInt32(0x7FFF) + ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: (u &+ rounding) >> 16)
    }

    @inline(__always)
    public static func f16ToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    @inline(__always)
    public static func floatToF16(_ x: Float) -> UInt16 {
        Float16(x).bitPattern
    }

    /// Decodes `count` little-endian elements of `dtype` from `src` into `dst` (f32).
    public static func decode(_ dtype: DType, from src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            // Unaligned-safe copy: mmap'd checkpoint data is only guaranteed byte-aligned by the format.
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .bf16:
            for i in 0..<count {
                dst[i] = bf16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .f16:
            for i in 0..<count {
                dst[i] = f16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        }
    }

    /// Decodes raw bytes of `dtype` to a new f32 array. `bytes.count` must be a multiple of the element size.
    public static func decode(_ dtype: DType, bytes: UnsafeRawBufferPointer) -> [Float] {
        let count = bytes.count / dtype.byteSize
        guard count > 0, let base = bytes.baseAddress else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { buf, n in
            decode(dtype, from: base, count: count, into: buf.baseAddress!)
            n = count
        }
    }

    /// Encodes f32 values as little-endian bytes of `dtype`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: DType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
        out.withUnsafeMutableBytes { raw in
            switch dtype {
            case .f32:
                for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .bf16:
                for (i, v) in values.enumerated() { raw.storeBytes(of: floatToBF16(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .f16:
                for (i, v) in values.enumerated() { raw.storeBytes(of: floatToF16(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        }
        return out
    }
}
