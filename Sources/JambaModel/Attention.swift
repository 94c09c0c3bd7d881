// Attention: JambaAttention, grouped-query attention with a KV cache and no positional encoding.
import Foundation
import JambaMath

/// Grouped-query causal attention. Jamba has no RoPE: order reaches attention only through the Mamba layers.
///
/// Checkpoint tensors: `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`.
public struct Attention: Sendable {
    /// q_proj.weight [nh·hd, H]
    public let qProj: Weights
    /// k_proj.weight and v_proj.weight [nkv·hd, H], stacked into [2·nkv·hd, H] so K and V cost one sgemm.
    public let kvProj: Weights
    /// o_proj.weight [H, nh·hd]
    public let oProj: Weights
    public let numHeads: Int
    public let numKVHeads: Int
    public let headDim: Int

    public init(qProj: Weights, kvProj: Weights, oProj: Weights, numHeads: Int, numKVHeads: Int, headDim: Int) {
        self.qProj = qProj
        self.kvProj = kvProj
        self.oProj = oProj
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim
    }

    /// Runs attention over a ragged batch: `segments[s]` are the rows of `x` belonging to sequence `caches[s]`,
    /// whose cache is extended by those rows. out [T, H].
    public func callAsFunction(_ x: Matrix, segments: [Range<Int>], caches: inout [KVCache],
                               into out: inout Matrix, scratch: inout AttentionScratch) {
        let qd = numHeads * headDim, kvd = numKVHeads * headDim
        BLAS.linear(x, qProj, into: &scratch.q)    // x [T, H] · q_proj[nh·hd, H]ᵀ → q [T, nh·hd]
        BLAS.linear(x, kvProj, into: &scratch.kv)  // x [T, H] · kv[2·nkv·hd, H]ᵀ → kv [T, 2·nkv·hd]
        scratch.o.resize(rows: x.rows)
        let scale = 1 / Float(headDim).squareRoot()
        let group = numHeads / numKVHeads
        for (s, seg) in segments.enumerated() where !seg.isEmpty {
            let past = caches[s].count
            // Append this segment's keys and values to the cache.
            scratch.kv.storage.withUnsafeBufferPointer { kv in
                for t in seg {
                    let row = kv.baseAddress! + t * 2 * kvd
                    caches[s].keys.append(contentsOf: UnsafeBufferPointer(start: row, count: kvd))
                    caches[s].values.append(contentsOf: UnsafeBufferPointer(start: row + kvd, count: kvd))
                }
            }
            caches[s].count += seg.count
            let tk = caches[s].count, tq = seg.count
            // A prompt: only the causal half of the scores, heads split across the pool (attention.c).
            let done = caches[s].keys.withUnsafeBufferPointer { kp in
                caches[s].values.withUnsafeBufferPointer { vp in
                    scratch.q.storage.withUnsafeBufferPointer { qp in
                        scratch.o.storage.withUnsafeMutableBufferPointer { op in
                            Kernels.causalAttentionPrompt(
                                heads: numHeads, kvHeads: numKVHeads, headDim: headDim, queries: tq, past: past,
                                scale: scale, q: qp.baseAddress! + seg.lowerBound * qd, ldq: qd, k: kp.baseAddress!,
                                v: vp.baseAddress!, ldkv: kvd, o: op.baseAddress! + seg.lowerBound * qd, ldo: qd)
                        }
                    }
                }
            }
            if done { continue }
            scratch.scores.resize(rows: tq * tk)
            caches[s].keys.withUnsafeBufferPointer { kp in
                caches[s].values.withUnsafeBufferPointer { vp in
                    scratch.q.storage.withUnsafeBufferPointer { qp in
                        scratch.o.storage.withUnsafeMutableBufferPointer { op in
                            scratch.scores.storage.withUnsafeMutableBufferPointer { sp in
                                for h in 0..<numHeads {
                                    let g = h / group  // repeat_interleave mapping, not h % nkv
                                    let qh = qp.baseAddress! + seg.lowerBound * qd + h * headDim
                                    // S [tq, tk] = scale · q_h [tq, hd] · K_g [tk, hd]ᵀ
                                    BLAS.gemm(m: tq, n: tk, k: headDim, alpha: scale, x: qh, ldx: qd,
                                              w: kp.baseAddress! + g * headDim, ldw: kvd, y: sp.baseAddress!, ldy: tk)
                                    for i in 0..<tq {
                                        let row = sp.baseAddress! + i * tk
                                        let visible = past + i + 1  // causal: key j ≤ query position
                                        for j in visible..<tk { row[j] = 0 }
                                        Kernels.softmax(row, visible)
                                    }
                                    // o_h [tq, hd] = P [tq, tk] · V_g [tk, hd]
                                    BLAS.gemm(m: tq, n: headDim, k: tk, x: sp.baseAddress!, ldx: tk,
                                              w: vp.baseAddress! + g * headDim, ldw: kvd, transposeW: false,
                                              y: op.baseAddress! + seg.lowerBound * qd + h * headDim, ldy: qd)
                                }
                            }
                        }
                    }
                }
            }
        }
        BLAS.linear(scratch.o, oProj, into: &out)  // o [T, nh·hd] · o_proj[H, nh·hd]ᵀ → out [T, H]
    }
}

/// Reusable buffers of an attention call.
public struct AttentionScratch: Sendable {
    public var q: Matrix
    public var kv: Matrix
    public var o: Matrix
    /// Scores of one head, flattened [tq·tk] (cols 1) so it can grow with the context.
    public var scores: Matrix

    public init(numHeads: Int, numKVHeads: Int, headDim: Int) {
        q = Matrix(zeros: 0, numHeads * headDim)
        kv = Matrix(zeros: 0, 2 * numKVHeads * headDim)
        o = Matrix(zeros: 0, numHeads * headDim)
        scores = Matrix(zeros: 0, 1)
    }
}
