// BLASBlock: x · w[rows, columns]ᵀ over a sub-block of a weight matrix, for the slices of an expert.
import CKernels

extension BLAS {
    /// out[T, rows.count] = x[T, xColumns] · w[rows, columns]ᵀ (xColumns.count == columns.count), through the
    /// few-row kernel only, in chunks of at most `manyRowsChunk` rows of x.
    ///
    /// The block is read in place (row stride w.cols), so a slice of an expert costs no copy. Each output element
    /// is the same sum the few-row kernel gives for any row count, chunking or thread split, which is what lets a
    /// worker compute one slice of an expert bit for bit as the in-process expert computes it.
    public static func linearBlock(_ x: Matrix, _ w: Weights, rows: Range<Int>, columns: Range<Int>, into out: inout Matrix,
                                   xColumns: Range<Int>) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= w.rows && columns.lowerBound >= 0 && columns.upperBound <= w.cols,
                     "linearBlock: block \(rows) × \(columns) outside [\(w.rows), \(w.cols)]")
        precondition(xColumns.count == columns.count && xColumns.lowerBound >= 0 && xColumns.upperBound <= x.cols
                     && out.cols == rows.count, "linearBlock: shape mismatch")
        out.resize(rows: x.rows)
        guard x.rows > 0, !rows.isEmpty else { return }
        let (n, k, ldw) = (rows.count, columns.count, w.cols)
        let offset = rows.lowerBound * ldw + columns.lowerBound
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { yp in
                let (xb, yb, ldx) = (xp.baseAddress! + xColumns.lowerBound, yp.baseAddress!, x.cols)
                func run(_ wb: UnsafeRawPointer, bf16: Bool) {
                    var r = 0
                    while r < x.rows {
                        let m = min(manyRowsChunk, x.rows - r)
                        gemmFewRows(m: m, n: n, k: k, x: xb + r * ldx, ldx: ldx, w: wb, bf16: bf16, ldw: ldw, y: yb + r * n, ldy: n)
                        r += m
                    }
                }
                switch w.storage {
                case let .f32(v): v.withUnsafeBufferPointer { run(UnsafeRawPointer($0.baseAddress! + offset), bf16: false) }
                case let .bf16(v): v.withUnsafeBufferPointer { run(UnsafeRawPointer($0.baseAddress! + offset), bf16: true) }
                }
            }
        }
    }
}

extension BLAS {
    /// out[T, N] = x[T, :k0] · w[:, :k0]ᵀ + x[T, k0:] · w[:, k0:]ᵀ, each output's two segment sums reduced apart and
    /// then added: bit for bit what two `linearBlock` calls over the segments give when the second is added to the
    /// first, in one pass over w (AVX-512). How an expert's down projection is taken in its slices' order.
    /// `tmp` is a scratch matrix (used by the AVX2 and C kernel levels).
    public static func linearSplit(_ x: Matrix, _ w: Weights, splitAt k0: Int, into out: inout Matrix, tmp: inout Matrix) {
        precondition(x.cols == w.cols && out.cols == w.rows && k0 >= 0 && k0 <= w.cols, "linearSplit: shape mismatch")
        out.resize(rows: x.rows)
        guard x.rows > 0, w.rows > 0 else { return }
        let (n, k) = (w.rows, w.cols)
        tmp.reshape(cols: n)
        let chunk = manyRowsChunk
        tmp.resize(rows: min(x.rows, chunk))
        let parts = n * k >= 1 << 16 ? max(1, kernelThreads) : 1
        x.storage.withUnsafeBufferPointer { xp in
            out.storage.withUnsafeMutableBufferPointer { yp in
                tmp.storage.withUnsafeMutableBufferPointer { tp in
                    let (xb, yb, tb) = (xp.baseAddress!, yp.baseAddress!, tp.baseAddress!)
                    func run(_ wb: UnsafeRawPointer, bf16: Bool) {
                        var r = 0
                        while r < x.rows {
                            let m = min(chunk, x.rows - r)
                            jc_gemm_few_rows_split_mt(Int32(parts), Int32(m), Int32(n), Int32(k0), Int32(k), xb + r * k, Int32(k),
                                                      wb, bf16 ? 1 : 0, Int32(k), yb + r * n, Int32(n), tb)
                            r += m
                        }
                    }
                    switch w.storage {
                    case let .f32(v): v.withUnsafeBufferPointer { run(UnsafeRawPointer($0.baseAddress!), bf16: false) }
                    case let .bf16(v): v.withUnsafeBufferPointer { run(UnsafeRawPointer($0.baseAddress!), bf16: true) }
                    }
                }
            }
        }
    }
}
