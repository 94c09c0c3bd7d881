// MLP: the SwiGLU feed-forward (`JambaMLP`, and each MoE expert), whole or one slice of its intermediate size.
import JambaMath

/// SwiGLU feed-forward: down(SiLU(gate(x)) ⊙ up(x)).
///
/// The intermediate dimension I is cut into fixed slices (`sliceBounds`: two halves, on a multiple of 16, when
/// I ≥ 32). A slice is a self-contained piece of the expert: its gate and up rows, and the matching columns of
/// down, give a partial output [T, H], and the expert's output is the sum of its slices' partials in slice order.
/// This is the order the few-row path (decode) always sums in, in process too, so an expert whose two slices run
/// on two workers gives the same bits as the expert run whole; it lets the coordinator balance a decode layer's
/// expert work in half-experts instead of whole ones. Many rows (prefill) take one sgemm chain instead.
///
/// gate_proj and up_proj are stacked into one `[2I, H]` matrix at load time, slice by slice (slice s's gate rows,
/// then its up rows), so one slice, like the whole, costs one product for both (transformers v5 fuses them the
/// same way in memory as `gate_up_proj`).
public struct MLP: Sendable {
    /// Per slice s: gate_proj.weight rows bounds[s]..<bounds[s+1], then up_proj.weight's same rows; [2I, H].
    public let gateUp: Weights
    /// down_proj.weight [H, I]
    public let down: Weights
    /// Slice s is intermediate rows sliceBounds[s] ..< sliceBounds[s + 1].
    public let sliceBounds: [Int]

    /// gate and up are gate_proj.weight and up_proj.weight as stored, [I, H] each, row-major.
    public init(gate: [Float], up: [Float], down: Weights, dtype: WeightDType) {
        let (i, h) = (down.cols, down.rows)
        precondition(gate.count == i * h && up.count == i * h, "MLP: shapes disagree")
        let bounds = Self.sliceBounds(intermediate: i)
        var stacked: [Float] = []
        stacked.reserveCapacity(2 * i * h)
        for s in 0..<(bounds.count - 1) {
            let rows = bounds[s] * h ..< bounds[s + 1] * h
            stacked += gate[rows]
            stacked += up[rows]
        }
        gateUp = Weights(rows: 2 * i, cols: h, values: stacked, dtype: dtype)
        self.down = down
        sliceBounds = bounds
    }

    /// Two halves on a multiple of 16 (whole AVX-512 vectors) when I ≥ 32, else one slice.
    public static func sliceBounds(intermediate i: Int) -> [Int] {
        let half = i / 2 / 16 * 16
        return half > 0 ? [0, half, i] : [0, i]
    }

    public var intermediateSize: Int { down.cols }
    public var sliceCount: Int { sliceBounds.count - 1 }
    public var parameterBytes: Int { gateUp.byteCount + down.byteCount }

    /// out[T, H] = down(SiLU(x·gateᵀ) ⊙ x·upᵀ); `scratch` holds the intermediates between calls.
    public func callAsFunction(_ x: Matrix, into out: inout Matrix, scratch: inout MLPScratch) {
        BLAS.linear(x, gateUp, into: &scratch.gateUp)  // x [T, H] · gateUp[2I, H]ᵀ → gu [T, 2I], slice-stacked
        Kernels.swigluRows(scratch.gateUp, bounds: sliceBounds, into: &scratch.hidden)  // h [T, I] = SiLU(gate) ⊙ up
        let fewRowKernel = x.rows <= BLAS.fewRowsLimit
            || BLAS.chunksFewRows(m: x.rows, k: down.cols)
        guard fewRowKernel, sliceCount == 2 else {
            BLAS.linear(scratch.hidden, down, into: &out)  // h [T, I] · down[H, I]ᵀ → out [T, H]
            return
        }
        // Down summed per slice, then the two added (see the type's comment), in one pass over down, whenever the
        // few-row kernel takes the product (decode, and prefill-sized experts): a row's output is then the same
        // floats whatever batch it came in, or whichever worker computed which slice. The
        // gate/up product above is one call: each of its elements is the same sum as in a slice's own call.
        out.reshape(cols: down.rows)
        BLAS.linearSplit(scratch.hidden, down, splitAt: sliceBounds[1], into: &out, tmp: &scratch.partial)  // → [T, H]
    }

    /// Slice s's partial output: out[T, H] = down[:, slice](SiLU(x·gate[slice]ᵀ) ⊙ x·up[slice]ᵀ), through the
    /// few-row kernel for any T (a worker asked for one slice of an expert).
    public func partial(_ x: Matrix, slice s: Int, into out: inout Matrix, scratch: inout MLPScratch) {
        precondition(sliceBounds.indices.contains(s + 1) && s >= 0, "MLP: no slice \(s) of \(sliceCount)")
        let (lo, hi) = (sliceBounds[s], sliceBounds[s + 1])
        let width = hi - lo
        scratch.sliceGateUp.reshape(cols: 2 * width)
        BLAS.linearBlock(x, gateUp, rows: 2 * lo ..< 2 * hi, columns: 0..<gateUp.cols, into: &scratch.sliceGateUp,
                         xColumns: 0..<x.cols)  // [T, 2w]
        scratch.sliceHidden.reshape(cols: width)
        Kernels.swigluRows(scratch.sliceGateUp, bounds: [0, width], into: &scratch.sliceHidden)  // [T, w]
        out.reshape(cols: down.rows)
        BLAS.linearBlock(scratch.sliceHidden, down, rows: 0..<down.rows, columns: lo..<hi, into: &out,
                         xColumns: 0..<width)  // [T, w] → [T, H]
    }

    /// out += p, element by element: how slice partials are summed, here and by the cluster's coordinator.
    public static func accumulate(_ p: Matrix, into out: inout Matrix) {
        precondition(p.rows == out.rows && p.cols == out.cols, "MLP.accumulate: shapes differ")
        out.storage.withUnsafeMutableBufferPointer { o in
            p.storage.withUnsafeBufferPointer { q in
                for j in 0..<(p.rows * p.cols) { o[j] += q[j] }
            }
        }
    }

    public func callAsFunction(_ x: Matrix) -> Matrix {
        var out = Matrix(zeros: 0, down.rows)
        var scratch = MLPScratch(intermediate: intermediateSize)
        self(x, into: &out, scratch: &scratch)
        return out
    }
}

/// Reusable buffers of an MLP call, so the decode loop does not allocate per layer.
public struct MLPScratch: Sendable {
    public var gateUp: Matrix
    public var hidden: Matrix
    /// One slice's gate|up [T, 2w] and hidden [T, w], and a slice's partial output [T, H].
    public var sliceGateUp = Matrix(zeros: 0, 0)
    public var sliceHidden = Matrix(zeros: 0, 0)
    public var partial = Matrix(zeros: 0, 0)

    public init(intermediate: Int) {
        gateUp = Matrix(zeros: 0, 2 * intermediate)
        hidden = Matrix(zeros: 0, intermediate)
    }
}
