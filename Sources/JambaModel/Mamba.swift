// Mamba: JambaMambaMixer, the selective state-space mixer with a causal depthwise conv and dt/B/C RMSNorms.
import Foundation
import JambaMath

/// The Mamba mixer of Jamba (transformers' `JambaMambaMixer`, see jamba-math.md §4).
///
/// Checkpoint tensors (prefix `model.layers.{i}.mamba.`): `in_proj.weight` [2Di, H] (+`.bias`),
/// `conv1d.weight` [Di, 1, K] and `conv1d.bias` [Di], `x_proj.weight` [R+2N, Di], `dt_layernorm.weight` [R],
/// `b_layernorm.weight` [N], `c_layernorm.weight` [N], `dt_proj.weight` [Di, R], `dt_proj.bias` [Di],
/// `A_log` [Di, N], `D` [Di], `out_proj.weight` [H, Di] (+`.bias`).
public struct MambaMixer: Sendable {
    public let inProj: Weights
    public let inProjBias: [Float]?
    /// conv1d.weight transposed to [K, Di] so each tap is a contiguous row: tap K-1 multiplies the current token.
    public let convWeight: [Float]
    public let convBias: [Float]?
    public let xProj: Weights
    public let dtNorm: RMSNorm
    public let bNorm: RMSNorm
    public let cNorm: RMSNorm
    public let dtProj: Weights
    /// dt_proj.weight widened and transposed to [R, Di], for prompts (`BLAS.takesTransposed`): a sum of only R
    /// terms per output, which the transposed layout computes without reducing across lanes.
    public let dtProjT: Matrix
    public let dtBias: [Float]
    /// A = -exp(A_log) [Di, N], computed once at load.
    public let a: [Float]
    public let d: [Float]
    public let outProj: Weights
    public let outProjBias: [Float]?
    public let dInner: Int, dState: Int, dConv: Int, dtRank: Int

    public init(inProj: Weights, inProjBias: [Float]?, convWeight: [Float], convBias: [Float]?, xProj: Weights,
                dtNorm: RMSNorm, bNorm: RMSNorm, cNorm: RMSNorm, dtProj: Weights, dtBias: [Float], aLog: [Float],
                d: [Float], outProj: Weights, outProjBias: [Float]?, dState: Int, dConv: Int) {
        self.inProj = inProj; self.inProjBias = inProjBias
        self.convWeight = convWeight; self.convBias = convBias
        self.xProj = xProj; self.dtNorm = dtNorm; self.bNorm = bNorm; self.cNorm = cNorm
        self.dtProj = dtProj; self.dtBias = dtBias
        self.dtProjT = dtProj.toMatrix().transposed()
        self.a = aLog.map { -Foundation.exp($0) }
        self.d = d; self.outProj = outProj; self.outProjBias = outProjBias
        self.dInner = dtProj.rows; self.dState = dState; self.dConv = dConv; self.dtRank = dtProj.cols
    }

    /// Runs the mixer over a ragged batch; `segments[s]` are sequence `states[s]`'s rows of `x`. out [T, H].
    public func callAsFunction(_ x: Matrix, segments: [Range<Int>], states: inout [MambaState],
                               into out: inout Matrix, scratch: inout MambaScratch) {
        let n = dState, r = dtRank, rows = x.rows
        BLAS.linear(x, inProj, into: &scratch.xz)  // x [T, H] · in_proj[2Di, H]ᵀ → xz [T, 2Di]; xs = [:, :Di], z = [:, Di:]
        if let b = inProjBias { addBias(&scratch.xz, b) }

        // Causal depthwise conv + SiLU per sequence, continuing from (and updating) its conv state.
        scratch.u.resize(rows: rows)
        for (s, seg) in segments.enumerated() where !seg.isEmpty {
            conv(segment: seg, state: &states[s].conv, scratch: &scratch)
        }

        BLAS.linear(scratch.u, xProj, into: &scratch.dbc)  // u [T, Di] · x_proj[R+2N, Di]ᵀ → dbc [T, R+2N] = dt | B | C
        scratch.dtr.resize(rows: rows)
        scratch.dbc.storage.withUnsafeMutableBufferPointer { p in
            scratch.dtr.storage.withUnsafeMutableBufferPointer { dp in
                for t in 0..<rows {
                    let row = p.baseAddress! + t * (r + 2 * n)
                    Self.norm(row, r, dtNorm)
                    Self.norm(row + r, n, bNorm)
                    Self.norm(row + r + n, n, cNorm)
                    (dp.baseAddress! + t * r).update(from: row, count: r)
                }
            }
        }
        if BLAS.takesTransposed(rows: rows) {
            BLAS.linear(scratch.dtr, transposed: dtProjT, into: &scratch.dt)  // dt_r [T, R] · dt_projᵀ [R, Di] → dt [T, Di]
        } else {
            BLAS.linear(scratch.dtr, dtProj, into: &scratch.dt)  // dt_r [T, R] · dt_proj[Di, R]ᵀ → dt [T, Di]
        }
        Kernels.softplusRows(&scratch.dt, bias: dtBias)  // dt = softplus(dt_proj(dt_r) + bias)

        scratch.y.resize(rows: rows)
        for (s, seg) in segments.enumerated() where !seg.isEmpty {
            scan(segment: seg, ssm: &states[s].ssm, scratch: &scratch)
        }
        BLAS.linear(scratch.y, outProj, into: &out)  // y [T, Di] · out_proj[H, Di]ᵀ → out [T, H]
        if let b = outProjBias { addBias(&out, b) }
    }

    private static func norm(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ norm: RMSNorm) {
        let scale = 1 / (Kernels.sumOfSquares(p, count) / Float(count) + norm.eps).squareRoot()
        for i in 0..<count { p[i] = norm.weight[i] * (p[i] * scale) }
    }

    private func addBias(_ m: inout Matrix, _ b: [Float]) {
        let cols = m.cols
        m.storage.withUnsafeMutableBufferPointer { p in
            for t in 0..<m.rows { for c in 0..<cols { p[t * cols + c] += b[c] } }
        }
    }

    /// u[t, c] = SiLU(bias[c] + Σ_j w[j, c] · xs[t-K+1+j, c]), where inputs before the segment come from the
    /// conv state (its newest K-1 rows). Afterwards the state holds the last K inputs.
    private func conv(segment seg: Range<Int>, state: inout [Float], scratch: inout MambaScratch) {
        let di = dInner, k = dConv, stride = 2 * di
        scratch.xz.storage.withUnsafeBufferPointer { xz in
            // u [len, Di] = SiLU(conv(xs)), rows split across the pool (rows_mt.c)
            Kernels.convSiluRows(rows: seg.count, channels: di, taps: k, x: xz.baseAddress! + seg.lowerBound * stride,
                                 ldx: stride, state: state, weight: convWeight, bias: convBias, u: &scratch.u,
                                 firstRow: seg.lowerBound)
            // New state: the last K inputs of (old state ++ segment inputs).
            let len = seg.count
            state.withUnsafeMutableBufferPointer { st in
                if len >= k {
                    for j in 0..<k {
                        (st.baseAddress! + j * di).update(from: xz.baseAddress! + (seg.upperBound - k + j) * stride, count: di)
                    }
                } else {
                    // Shift the old rows up by len, then append the segment's rows.
                    for j in 0..<(k - len) { (st.baseAddress! + j * di).update(from: st.baseAddress! + (j + len) * di, count: di) }
                    for j in 0..<len {
                        (st.baseAddress! + (k - len + j) * di).update(from: xz.baseAddress! + (seg.lowerBound + j) * stride, count: di)
                    }
                }
            }
        }
    }

    /// Selective scan: h = exp(dt·A) ⊙ h + (dt·u) B; y = h·C + D·u; y ⊙= SiLU(z). Continues from `ssm`.
    private func scan(segment seg: Range<Int>, ssm: inout [Float], scratch: inout MambaScratch) {
        let di = dInner, n = dState, r = dtRank, dbcStride = r + 2 * n
        ssm.withUnsafeMutableBufferPointer { h in
            scratch.dt.storage.withUnsafeBufferPointer { dtp in
                scratch.u.storage.withUnsafeBufferPointer { up in
                    scratch.dbc.storage.withUnsafeBufferPointer { dbc in
                        scratch.xz.storage.withUnsafeBufferPointer { xz in
                            scratch.y.storage.withUnsafeMutableBufferPointer { yp in
                                a.withUnsafeBufferPointer { ap in
                                    d.withUnsafeBufferPointer { dp in
                                        let t = seg.lowerBound
                                        Kernels.scanSegment(tokens: seg.count, channels: di, state: n,
                                                            dt: dtp.baseAddress! + t * di, ldDt: di,
                                                            u: up.baseAddress! + t * di, ldU: di,
                                                            z: xz.baseAddress! + t * 2 * di + di, ldZ: 2 * di,
                                                            a: ap.baseAddress!, bc: dbc.baseAddress! + t * dbcStride + r, ldBC: dbcStride,
                                                            d: dp.baseAddress!, h: h.baseAddress!, y: yp.baseAddress! + t * di, ldY: di)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Reusable buffers of a Mamba mixer call.
public struct MambaScratch: Sendable {
    public var xz, u, dbc, dtr, dt, y: Matrix

    public init(config: JambaConfig) {
        let di = config.mambaInner, n = config.mambaDState, r = config.mambaDtRank
        xz = Matrix(zeros: 0, 2 * di)
        u = Matrix(zeros: 0, di)
        dbc = Matrix(zeros: 0, r + 2 * n)
        dtr = Matrix(zeros: 0, r)
        dt = Matrix(zeros: 0, di)
        y = Matrix(zeros: 0, di)
    }
}
