// Weights: a resident weight matrix in PyTorch's [out, in] layout, kept as f32 or as bf16 (compute stays f32).

/// How weight matrices are held in memory. Activations, norms, biases and the SSM parameters are always f32.
public enum WeightDType: String, Sendable, CaseIterable, CustomStringConvertible {
    /// 4 bytes per weight; bf16/f16 checkpoints are widened on load.
    case f32
    /// 2 bytes per weight: half the memory and half the bytes a decode step streams. A bf16 checkpoint is kept
    /// bit for bit; an f32 one is rounded to nearest-even, as `tensor.to(torch.bfloat16)` does.
    case bf16

    public var byteSize: Int { self == .f32 ? 4 : 2 }
    public var description: String { rawValue }
}

/// A weight matrix `[rows, cols]` (row-major, `[out, in]`), read only through `BLAS.linear` and row gathers.
///
/// bf16 weights are widened to f32 inside the kernels, in registers, so products are f32 × f32 with f32
/// accumulation: the only difference from f32 weights is the rounding of the weights themselves.
public struct Weights: Sendable {
    /// Rows start at 64-byte boundaries when `cols` × the element size is a multiple of 64 (see `AlignedBuffer`).
    public enum Storage: Sendable {
        case f32(AlignedBuffer<Float>)
        case bf16(AlignedBuffer<UInt16>)
    }

    public let rows: Int
    public let cols: Int
    public let storage: Storage

    /// Copies f32 values to aligned storage or rounds them to bf16.
    public init(_ m: Matrix, dtype: WeightDType = .f32) {
        self.init(rows: m.rows, cols: m.cols, values: m.storage, dtype: dtype)
    }

    public init(rows: Int, cols: Int, values: [Float], dtype: WeightDType = .f32) {
        precondition(rows >= 0 && cols >= 0 && values.count == rows * cols, "Weights: storage does not match shape")
        self.rows = rows
        self.cols = cols
        switch dtype {
        case .f32: storage = .f32(AlignedBuffer(values))
        case .bf16:
            storage = .bf16(AlignedBuffer(count: values.count) { dst in
                for (i, v) in values.enumerated() { dst[i] = DTypeConversion.floatToBF16(v) }
            })
        }
    }

    public var dtype: WeightDType {
        if case .f32 = storage { return .f32 }
        return .bf16
    }

    public var count: Int { rows * cols }
    public var shape: [Int] { [rows, cols] }
    /// Bytes held (and streamed by one pass over the matrix).
    public var byteCount: Int { count * dtype.byteSize }

    /// Row `r` widened to f32.
    public func row(_ r: Int) -> [Float] {
        gatherRows([r]).storage
    }

    /// Rows `idx` widened to f32 into a new `[idx.count, cols]` matrix (the embedding lookup).
    public func gatherRows(_ idx: [Int]) -> Matrix {
        switch storage {
        case let .f32(v):
            var out = Matrix(zeros: idx.count, cols)
            let c = cols
            v.withUnsafeBufferPointer { src in
                out.storage.withUnsafeMutableBufferPointer { dst in
                    for (i, r) in idx.enumerated() {
                        for j in 0..<c { dst[i * c + j] = src[r * c + j] }
                    }
                }
            }
            return out
        case let .bf16(v):
            var out = Matrix(zeros: idx.count, cols)
            let c = cols
            v.withUnsafeBufferPointer { src in
                out.storage.withUnsafeMutableBufferPointer { dst in
                    for (i, r) in idx.enumerated() {
                        for j in 0..<c { dst[i * c + j] = DTypeConversion.bf16ToFloat(src[r * c + j]) }
                    }
                }
            }
            return out
        }
    }

    /// All values widened to f32.
    public func toMatrix() -> Matrix {
        if case let .f32(v) = storage { return Matrix(rows: rows, cols: cols, storage: v.array) }
        return gatherRows(Array(0..<rows))
    }
}
