// Layers: the RMSNorm every Jamba layer uses (the SwiGLU MLP and expert is in MLP.swift).
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
