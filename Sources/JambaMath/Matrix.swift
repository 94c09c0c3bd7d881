// Matrix: the one activation/weight container of the engine, a row-major [rows, cols] block of f32.

/// A dense row-major `[rows, cols]` matrix of `Float`.
///
/// Activations are `[T, D]` (one row per token); weights keep PyTorch's `[out, in]` layout so a checkpoint
/// tensor is used as stored and `Linear(x) = x · Wᵀ` is one `sgemm(NoTrans, Trans)`.
/// Storage is a Swift array: copy-on-write, `Sendable`, and reusable across steps without reallocation
/// (see `resize(rows:)`, which keeps capacity).
public struct Matrix: Sendable, Equatable {
    public private(set) var rows: Int
    public private(set) var cols: Int
    public var storage: [Float]

    public init(rows: Int, cols: Int, storage: [Float]) {
        precondition(rows >= 0 && cols >= 0 && storage.count == rows * cols, "Matrix storage does not match shape")
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    /// A zero-filled matrix.
    public init(zeros rows: Int, _ cols: Int) {
        self.init(rows: rows, cols: cols, storage: [Float](repeating: 0, count: rows * cols))
    }

    /// A matrix every element of which the caller overwrites next (a product's output): no zero fill, which for
    /// the LM head's [8, 32000] logits was 1 MB written twice per decode step.
    public init(overwrittenRows rows: Int, _ cols: Int) {
        precondition(rows >= 0 && cols >= 0)
        self.rows = rows
        self.cols = cols
        storage = [Float](unsafeUninitializedCapacity: rows * cols) { _, count in count = rows * cols }
    }

    public var count: Int { rows * cols }
    public var shape: [Int] { [rows, cols] }

    /// Row `r` as a fresh array (for tests and small reads; kernels use pointers).
    public func row(_ r: Int) -> [Float] {
        Array(storage[(r * cols)..<((r + 1) * cols)])
    }

    public subscript(r: Int, c: Int) -> Float {
        get { storage[r * cols + c] }
        set { storage[r * cols + c] = newValue }
    }

    /// Changes the row count, keeping the array's capacity so that a scratch matrix reused every step
    /// does not reallocate. New rows are zero; existing rows keep their values.
    public mutating func resize(rows newRows: Int) {
        precondition(newRows >= 0)
        let n = newRows * cols
        if n < storage.count {
            storage.removeLast(storage.count - n)
        } else if n > storage.count {
            storage.append(contentsOf: repeatElement(0, count: n - storage.count))
        }
        rows = newRows
    }

    /// Gives a scratch matrix `newCols` columns, keeping the array's capacity. A change of width empties it
    /// (0 rows); the same width keeps it as it is.
    public mutating func reshape(cols newCols: Int) {
        precondition(newCols >= 0)
        guard newCols != cols else { return }
        storage.removeAll(keepingCapacity: true)
        rows = 0
        cols = newCols
    }

    /// Rows `idx` gathered into a new `[idx.count, cols]` matrix.
    public func gatherRows(_ idx: [Int]) -> Matrix {
        var out = Matrix(zeros: idx.count, cols)
        storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for (i, r) in idx.enumerated() {
                    let s = src.baseAddress! + r * cols
                    (dst.baseAddress! + i * cols).update(from: s, count: cols)
                }
            }
        }
        return out
    }

    /// The transpose, [cols, rows].
    public func transposed() -> Matrix {
        var out = Matrix(overwrittenRows: cols, rows)
        for r in 0..<rows {
            for c in 0..<cols { out.storage[c * rows + r] = storage[r * cols + c] }
        }
        return out
    }

    /// Rows stacked vertically; all parts must have `cols` columns.
    public static func vstack(_ parts: [Matrix], cols: Int) -> Matrix {
        var storage: [Float] = []
        storage.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        var rows = 0
        for p in parts {
            precondition(p.cols == cols, "vstack: column mismatch")
            storage.append(contentsOf: p.storage)
            rows += p.rows
        }
        return Matrix(rows: rows, cols: cols, storage: storage)
    }
}
