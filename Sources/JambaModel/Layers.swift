// Layers: the small building blocks shared by every Jamba layer (RMSNorm, SwiGLU MLP / expert).
import JambaMath

/// `JambaRMSNorm`: y = w ⊙ x / sqrt(mean(x²) + eps), plain `w` (not `1 + w`), eps inside the root.
public struct RMSNorm: Sendable {
    public let weight: [Float]
    public let eps: Float

    public init(weight: [Float], eps: Float) {
        self.weight = weight
        self.eps = eps
    }

    /// Normalises each row of `x` into `out` (resized to x's rows).
    public func callAsFunction(_ x: Matrix, into out: inout Matrix) {
        Kernels.rmsNorm(x, weight: weight, eps: eps, into: &out)
    }
}

/// SwiGLU feed-forward (`JambaMLP`, also each MoE expert): down(SiLU(gate(x)) ⊙ up(x)).
///
/// gate_proj and up_proj are stacked into one `[2I, H]` matrix at load time so a token batch costs one sgemm
/// for both (the same fusion transformers v5 does in memory as `gate_up_proj`).
public struct MLP: Sendable {
    /// rows 0..<I = gate_proj.weight [I, H], rows I..<2I = up_proj.weight [I, H]
    public let gateUp: Weights
    /// down_proj.weight [H, I]
    public let down: Weights

    public init(gateUp: Weights, down: Weights) {
        precondition(gateUp.rows == 2 * down.cols && gateUp.cols == down.rows, "MLP: shapes disagree")
        self.gateUp = gateUp
        self.down = down
    }

    public var intermediateSize: Int { down.cols }
    public var parameterBytes: Int { gateUp.byteCount + down.byteCount }

    /// out[T, H] = down(SiLU(x·gateᵀ) ⊙ x·upᵀ); `scratch` holds gu [T, 2I] and h [T, I] between calls.
    public func callAsFunction(_ x: Matrix, into out: inout Matrix, scratch: inout MLPScratch) {
        let i = intermediateSize
        BLAS.linear(x, gateUp, into: &scratch.gateUp)  // x [T, H] · gateUp[2I, H]ᵀ → gu [T, 2I]
        scratch.hidden.resize(rows: x.rows)
        scratch.gateUp.storage.withUnsafeBufferPointer { gu in
            scratch.hidden.storage.withUnsafeMutableBufferPointer { h in
                for t in 0..<x.rows {
                    let g = gu.baseAddress! + t * 2 * i
                    let hr = h.baseAddress! + t * i
                    Kernels.swiglu(g, g + i, hr, i)  // h = SiLU(gate) ⊙ up
                }
            }
        }
        BLAS.linear(scratch.hidden, down, into: &out)  // h [T, I] · down[H, I]ᵀ → out [T, H]
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

    public init(intermediate: Int) {
        gateUp = Matrix(zeros: 0, 2 * intermediate)
        hidden = Matrix(zeros: 0, intermediate)
    }
}
