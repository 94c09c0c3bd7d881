// TensorCodec: Matrix <-> Jamba_V1_Tensor, with a decode that validates everything a peer could get wrong.
import Foundation
import JambaMath

/// Encoding and validating decoding of `Jamba_V1_Tensor`.
///
/// Decoding never trusts the peer: dtype, rank, every dimension, the byte length and the caller's size
/// limit are checked before anything is allocated, so a hostile or buggy message costs at most the
/// bytes it already occupies. Element conversion runs over the raw buffer in one pass
/// (`DTypeConversion.decode`, a memcpy for f32) straight into the result's storage.
public enum TensorCodec {
    /// Default per-tensor limit on wire bytes (`raw_data`): comfortably above a prefill chunk of one
    /// expert (4096 rows x 8192 hidden x f32 = 128 MiB), far below what would hurt the daemon.
    public static let defaultMaxTensorBytes = 256 << 20

    // MARK: Encode

    /// `matrix` as a `[rows, cols]` tensor of `dtype` (bf16/f16 round to nearest even).
    public static func encode(_ matrix: Matrix, as dtype: DType = .f32) -> Jamba_V1_Tensor {
        matrix.storage.withUnsafeBufferPointer { values in
            encode(values, shape: [matrix.rows, matrix.cols], as: dtype)
        }
    }

    /// `values` (row-major, `shape.reduce(1, *)` elements) as an N-D tensor of `dtype`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], as dtype: DType = .f32) -> Jamba_V1_Tensor {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == values.count,
                     "TensorCodec.encode: \(values.count) values do not fill shape \(shape)")
        var tensor = Jamba_V1_Tensor()
        tensor.dtype = dtype.wire
        tensor.shape = shape.map { Int64($0) }
        tensor.rawData = rawBytes(values, as: dtype)
        return tensor
    }

    /// Little-endian bytes of `values` as `dtype`, written straight into the `Data` that goes on the wire.
    static func rawBytes(_ values: UnsafeBufferPointer<Float>, as dtype: DType) -> Data {
        let count = values.count
        guard count > 0, let src = values.baseAddress else { return Data() }
        #if _endian(little)
        if dtype == .f32 { return Data(bytes: src, count: count * 4) }
        #endif
        var data = Data(count: count * dtype.byteSize)
        data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            switch dtype {
            case .f32:
                for i in 0..<count { raw.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .bf16:
                for i in 0..<count { raw.storeBytes(of: DTypeConversion.floatToBF16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .f16:
                for i in 0..<count { raw.storeBytes(of: DTypeConversion.floatToF16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        }
        return data
    }

    // MARK: Validate

    /// What a tensor claims, after every check that does not need the element bytes.
    public struct Layout: Equatable, Sendable {
        public var dtype: DType
        public var shape: [Int]
        public var count: Int       // product(shape)
        public var byteCount: Int   // count * dtype.byteSize, equal to raw_data.count
    }

    /// Checks dtype, rank (`rank == nil` accepts any), dimensions, the size limit and the byte length,
    /// in that order, throwing the first violation with `field` as context.
    public static func validate(_ tensor: Jamba_V1_Tensor, rank: Int? = nil, field: String = "tensor",
                                maxBytes: Int = defaultMaxTensorBytes) throws(WireError) -> Layout {
        guard let dtype = DType(wire: tensor.dtype) else {
            throw .badDType(field: field, rawValue: tensor.dtype.rawValue)
        }
        let wireShape = tensor.shape
        if let rank, wireShape.count != rank {
            throw .badShape(field: field, shape: wireShape, reason: "rank \(wireShape.count), expected \(rank)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(wireShape.count)
        var count = 1
        for (axis, dim) in wireShape.enumerated() {
            guard dim >= 0 else {
                throw .badShape(field: field, shape: wireShape, reason: "dimension \(axis) is negative")
            }
            guard let d = Int(exactly: dim) else {
                throw .badShape(field: field, shape: wireShape, reason: "dimension \(axis) does not fit Int")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw .badShape(field: field, shape: wireShape, reason: "element count overflows")
            }
            count = product
            shape.append(d)
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw .badShape(field: field, shape: wireShape, reason: "byte count overflows")
        }
        guard byteCount <= maxBytes else {
            throw .oversized(field: field, bytes: byteCount, limit: maxBytes)
        }
        guard tensor.rawData.count == byteCount else {
            throw .lengthMismatch(field: field, shape: wireShape, dtype: dtype,
                                  expectedBytes: byteCount, actualBytes: tensor.rawData.count)
        }
        return Layout(dtype: dtype, shape: shape, count: count, byteCount: byteCount)
    }

    // MARK: Decode

    /// A `[rows, cols]` tensor as a `Matrix`. `cols`, when given, must match (the model's hidden size), so
    /// that a tensor of the right byte length but the wrong width is rejected here and not deep in a matmul.
    public static func decodeMatrix(_ tensor: Jamba_V1_Tensor, cols: Int? = nil, field: String = "tensor",
                                    maxBytes: Int = defaultMaxTensorBytes) throws(WireError) -> Matrix {
        let layout = try validate2D(tensor, cols: cols, field: field, maxBytes: maxBytes)
        let storage = decodeElements(tensor, layout)
        return Matrix(rows: layout.shape[0], cols: layout.shape[1], storage: storage)
    }

    /// Decodes into an existing matrix of the same width, reusing its storage's capacity (no allocation
    /// once the scratch matrix has seen its largest batch). On error `matrix` is left unchanged.
    public static func decode(_ tensor: Jamba_V1_Tensor, into matrix: inout Matrix, field: String = "tensor",
                              maxBytes: Int = defaultMaxTensorBytes) throws(WireError) {
        let layout = try validate2D(tensor, cols: matrix.cols, field: field, maxBytes: maxBytes)
        matrix.resize(rows: layout.shape[0])
        guard layout.count > 0 else { return }
        matrix.storage.withUnsafeMutableBufferPointer { dst in
            tensor.rawData.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                DTypeConversion.decode(layout.dtype, from: s, count: layout.count, into: d)
            }
        }
    }

    /// An N-D tensor of any rank as its shape and row-major f32 values.
    public static func decodeND(_ tensor: Jamba_V1_Tensor, field: String = "tensor",
                                maxBytes: Int = defaultMaxTensorBytes) throws(WireError) -> (shape: [Int], values: [Float]) {
        let layout = try validate(tensor, rank: nil, field: field, maxBytes: maxBytes)
        return (layout.shape, decodeElements(tensor, layout))
    }

    private static func validate2D(_ tensor: Jamba_V1_Tensor, cols: Int?, field: String,
                                   maxBytes: Int) throws(WireError) -> Layout {
        let layout = try validate(tensor, rank: 2, field: field, maxBytes: maxBytes)
        if let cols, layout.shape[1] != cols {
            throw .badShape(field: field, shape: tensor.shape, reason: "\(layout.shape[1]) columns, expected \(cols)")
        }
        return layout
    }

    /// Converts validated raw bytes into a freshly allocated array, writing each element exactly once.
    private static func decodeElements(_ tensor: Jamba_V1_Tensor, _ layout: Layout) -> [Float] {
        let count = layout.count
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { dst, initialized in
            tensor.rawData.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                DTypeConversion.decode(layout.dtype, from: s, count: count, into: d)
                initialized = count
            }
        }
    }
}

extension Matrix {
    /// This matrix as a wire tensor (see `TensorCodec.encode`).
    public func wireTensor(as dtype: DType = .f32) -> Jamba_V1_Tensor {
        TensorCodec.encode(self, as: dtype)
    }
}
