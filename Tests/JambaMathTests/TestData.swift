// TestData: deterministic operands and the 1-thread reference product shared by the kernel tests.
import JambaMath

/// `n` values in [-1, 1) from a 64-bit LCG: the same operands on every machine and in every run.
func lcgFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 1000
    }
}

/// Random weights `[n, k]` held as `dtype` and random activations `[m, k]`.
func lcgOperands(m: Int, n: Int, k: Int, dtype: WeightDType = .f32, seeds: (UInt64, UInt64)) -> (x: Matrix, w: Weights) {
    (Matrix(rows: m, cols: k, storage: lcgFloats(m * k, seed: seeds.0)),
     Weights(Matrix(rows: n, cols: k, storage: lcgFloats(n * k, seed: seeds.1)), dtype: dtype))
}

/// `x · wᵀ` on one kernel thread: what every thread split must reproduce bit for bit. Leaves 2 threads set.
func oneThreadProduct(_ x: Matrix, _ w: Weights) -> Matrix {
    BLAS.kernelThreads = 1
    defer { BLAS.kernelThreads = 2 }
    var out = Matrix(zeros: 0, w.rows)
    BLAS.linear(x, w, into: &out)
    return out
}
