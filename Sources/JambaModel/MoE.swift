// MoE: JambaSparseMoeBlock as Router → Dispatch → Experts and Combine (through the ExpertExecutor seam).
import JambaMath

/// The tokens routed to one expert of one layer, with each one's gate weight and rank.
public struct ExpertBatch: Sendable, Equatable {
    public let expert: Int
    /// Rows of the layer's input routed to this expert, strictly ascending [n].
    public var tokens: [Int]
    /// Each row's gate weight (its softmax probability) [n].
    public var gates: [Float]
    /// Each row's position in its token's top-k (0 = most probable) [n]. The combine adds a token's experts in
    /// this order, so every executor does the same float operations as the in-process one.
    public var ranks: [Int]

    public init(expert: Int, tokens: [Int], gates: [Float], ranks: [Int]) {
        self.expert = expert
        self.tokens = tokens
        self.gates = gates
        self.ranks = ranks
    }
}

/// The seam between the model and wherever experts run. Per MoE layer the model hands over the layer's input and,
/// for each expert that received tokens, which ones with their gates and ranks; the executor writes
/// `out[t] = 0 + Σ gate · Expert(x[t])` over each token's experts in rank order (`MoECombine.add`). Taking the whole
/// layer lets a remote executor send each token once per worker and get back one sum per token.
/// The in-process implementation is the reference for the remote one.
public protocol ExpertExecutor {
    /// x [T, H] → out [T, H].
    mutating func run(layer: Int, x: Matrix, batches: [ExpertBatch], into out: inout Matrix) throws
}

/// Runs experts in this process from loaded weights: one sgemm chain per expert over all of its rows.
public struct LocalExpertExecutor: ExpertExecutor, Sendable {
    public let experts: ExpertStore
    private var scratch: MLPScratch

    public init(experts: ExpertStore) {
        self.experts = experts
        scratch = MLPScratch(intermediate: experts.intermediateSize)
    }

    public mutating func run(layer: Int, x: Matrix, batches: [ExpertBatch], into out: inout Matrix) throws {
        var gated: [Matrix] = []
        gated.reserveCapacity(batches.count)
        for b in batches {
            guard let mlp = experts.expert(layer: layer, expert: b.expert) else {
                throw ModelError.expertFailure(layer: layer, detail: "expert \(b.expert) is not loaded in this process")
            }
            // Every token routed here: the tokens are 0..<T in order, so x is the expert's input as it is.
            let rows = b.tokens.count == x.rows ? x : x.gatherRows(b.tokens)  // [n, H]
            var o = Matrix(zeros: 0, mlp.down.rows)
            mlp(rows, into: &o, scratch: &scratch)  // [n, H] → SwiGLU → [n, H]
            Self.scale(&o, by: b.gates)
            gated.append(o)
        }
        out = Matrix(zeros: x.rows, x.cols)
        MoECombine.add(gated, tokens: batches.map(\.tokens), ranks: batches.map(\.ranks), into: &out)
    }

    /// out[r, :] *= gates[r]
    public static func scale(_ out: inout Matrix, by gates: [Float]) {
        let cols = out.cols
        out.storage.withUnsafeMutableBufferPointer { p in
            for (r, g) in gates.enumerated() { for c in 0..<cols { p[r * cols + c] *= g } }
        }
    }
}

/// The combine step, shared by the in-process executor, the workers (over their own tokens) and the coordinator.
public enum MoECombine {
    /// out[tokens[b][i], :] += gated[b][i, :] for every part b, all rank-0 rows first, then rank 1, ...: each token
    /// gets its experts in top-k order, which fixes the float operations whoever computed the outputs.
    /// `gated[b]` is [tokens[b].count, H]; token indices are rows of `out`.
    public static func add(_ gated: [Matrix], tokens: [[Int]], ranks: [[Int]], into out: inout Matrix) {
        let h = out.cols
        let maxRank = ranks.lazy.compactMap { $0.max() }.max() ?? -1
        out.storage.withUnsafeMutableBufferPointer { op in
            for rank in 0...max(maxRank, 0) {
                for (b, m) in gated.enumerated() {
                    m.storage.withUnsafeBufferPointer { src in
                        for (i, t) in tokens[b].enumerated() where ranks[b][i] == rank {
                            let d = op.baseAddress! + t * h, s = src.baseAddress! + i * h
                            for c in 0..<h { d[c] += s[c] }
                        }
                    }
                }
            }
        }
    }
}

/// Routing of a token batch at one MoE layer.
public struct Routing: Sendable {
    /// Raw router logits [T, E] (before softmax).
    public var logits: Matrix
    /// Top-k expert ids per token, descending probability; [T][k].
    public var topIds: [[Int]]
    /// Their softmax probabilities (not renormalised over the k); [T][k].
    public var topWeights: [[Float]]
}

/// `feed_forward.router.weight` [E, H]: softmax over all experts, then top-k without renormalisation.
public struct Router: Sendable {
    public let weight: Weights
    public let topK: Int

    public init(weight: Weights, topK: Int) {
        self.weight = weight
        self.topK = topK
    }

    public var numExperts: Int { weight.rows }

    public func callAsFunction(_ x: Matrix) -> Routing {
        let logits = BLAS.linear(x, weight)  // x [T, H] · router[E, H]ᵀ → r [T, E]
        let e = numExperts
        var probs = logits
        var ids: [[Int]] = [], weights: [[Float]] = []
        ids.reserveCapacity(x.rows); weights.reserveCapacity(x.rows)
        probs.storage.withUnsafeMutableBufferPointer { p in
            for t in 0..<x.rows {
                let row = p.baseAddress! + t * e
                Kernels.softmax(row, e)
                // Top-k by selection; ties go to the lower expert id, which is what torch.topk gives on CPU.
                var chosen: [Int] = []
                for _ in 0..<topK {
                    var best = -1
                    for j in 0..<e where !chosen.contains(j) && (best < 0 || row[j] > row[best]) { best = j }
                    chosen.append(best)
                }
                ids.append(chosen)
                weights.append(chosen.map { row[$0] })
            }
        }
        return Routing(logits: logits, topIds: ids, topWeights: weights)
    }
}

/// Dispatch around the executor: group each expert's tokens (ascending expert id, tokens ascending) with their
/// gates and top-k ranks, then let the executor compute and combine.
public enum MoEDispatch {
    /// The layer's expert batches for `routing` of T tokens.
    public static func batches(routing: Routing, numExperts: Int) -> [ExpertBatch] {
        var members = [[Int]](repeating: [], count: numExperts)   // expert → token rows
        var gates = [[Float]](repeating: [], count: numExperts)
        var ranks = [[Int]](repeating: [], count: numExperts)
        for (t, ids) in routing.topIds.enumerated() {
            for (j, e) in ids.enumerated() {
                members[e].append(t)
                gates[e].append(routing.topWeights[t][j])
                ranks[e].append(j)
            }
        }
        return (0..<numExperts).filter { !members[$0].isEmpty }.map {
            ExpertBatch(expert: $0, tokens: members[$0], gates: gates[$0], ranks: ranks[$0])
        }
    }

    public static func run(x: Matrix, routing: Routing, numExperts: Int, layer: Int,
                           executor: inout some ExpertExecutor, into out: inout Matrix) throws {
        let batches = batches(routing: routing, numExperts: numExperts)
        try executor.run(layer: layer, x: x, batches: batches, into: &out)
        guard out.rows == x.rows, out.cols == x.cols else {
            throw ModelError.expertFailure(layer: layer, detail: "executor returned [\(out.rows), \(out.cols)] for [\(x.rows), \(x.cols)]")
        }
    }
}
