// MoE: JambaSparseMoeBlock as Router → Dispatch → Experts (through the ExpertExecutor seam) → Combine.
import JambaMath

/// The rows routed to one expert of one layer, with each row's gate weight (its softmax probability).
public struct ExpertBatch: Sendable {
    public let expert: Int
    /// Token rows [n, H].
    public var rows: Matrix
    /// Gate weight per row [n]; the executor returns outputs already scaled by it, so local and remote
    /// execution do the same float operations and the combine is a plain sum in a fixed order.
    public var gates: [Float]

    public init(expert: Int, rows: Matrix, gates: [Float]) {
        self.expert = expert
        self.rows = rows
        self.gates = gates
    }
}

/// The seam between the model and wherever experts run. Per MoE layer the model hands over, for each expert
/// that received rows, its rows and gate weights, and gets back `gate ⊙ Expert(rows)` for each batch, same order.
/// The in-process implementation is the reference for the remote one.
public protocol ExpertExecutor {
    mutating func run(layer: Int, batches: [ExpertBatch]) throws -> [Matrix]
}

/// Runs experts in this process from loaded weights: one sgemm chain per expert over all of its rows.
public struct LocalExpertExecutor: ExpertExecutor, Sendable {
    public let experts: ExpertStore
    private var scratch: MLPScratch

    public init(experts: ExpertStore) {
        self.experts = experts
        scratch = MLPScratch(intermediate: experts.intermediateSize)
    }

    public mutating func run(layer: Int, batches: [ExpertBatch]) throws -> [Matrix] {
        try batches.map { b in
            guard let mlp = experts.expert(layer: layer, expert: b.expert) else {
                throw ModelError.expertFailure(layer: layer, detail: "expert \(b.expert) is not loaded in this process")
            }
            var out = Matrix(zeros: 0, mlp.down.rows)
            mlp(b.rows, into: &out, scratch: &scratch)
            Self.scale(&out, by: b.gates)
            return out
        }
    }

    /// out[r, :] *= gates[r]
    public static func scale(_ out: inout Matrix, by gates: [Float]) {
        let cols = out.cols
        out.storage.withUnsafeMutableBufferPointer { p in
            for (r, g) in gates.enumerated() { for c in 0..<cols { p[r * cols + c] *= g } }
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

/// Dispatch and combine around the executor: group rows per expert (ascending expert id), run, then add each
/// token's k scaled outputs in its top-k order. The order is fixed, so any executor that returns the same
/// per-expert outputs gives bit-identical results.
public enum MoEDispatch {
    public static func run(x: Matrix, routing: Routing, numExperts: Int, layer: Int,
                           executor: inout some ExpertExecutor, into out: inout Matrix) throws {
        var members = [[Int]](repeating: [], count: numExperts)   // expert → token rows
        var gates = [[Float]](repeating: [], count: numExperts)
        var slot = [[(batch: Int, row: Int)]](repeating: [], count: x.rows)
        for t in 0..<x.rows {
            for (j, e) in routing.topIds[t].enumerated() {
                members[e].append(t)
                gates[e].append(routing.topWeights[t][j])
            }
        }
        var batches: [ExpertBatch] = []
        var batchOf = [Int](repeating: -1, count: numExperts)
        for e in 0..<numExperts where !members[e].isEmpty {
            batchOf[e] = batches.count
            batches.append(ExpertBatch(expert: e, rows: x.gatherRows(members[e]), gates: gates[e]))
        }
        var position = [Int](repeating: 0, count: numExperts)
        for t in 0..<x.rows {
            slot[t] = routing.topIds[t].map { e in
                defer { position[e] += 1 }
                return (batchOf[e], position[e])
            }
        }
        let outputs = try executor.run(layer: layer, batches: batches)
        guard outputs.count == batches.count else {
            throw ModelError.expertFailure(layer: layer, detail: "executor returned \(outputs.count) outputs for \(batches.count) batches")
        }
        for (b, o) in zip(batches, outputs) where o.rows != b.rows.rows || o.cols != x.cols {
            throw ModelError.expertFailure(layer: layer, detail: "expert \(b.expert) returned [\(o.rows), \(o.cols)] for [\(b.rows.rows), \(x.cols)]")
        }
        let h = x.cols
        out = Matrix(zeros: x.rows, h)
        out.storage.withUnsafeMutableBufferPointer { op in
            for t in 0..<x.rows {
                let dst = op.baseAddress! + t * h
                for (bi, r) in slot[t] {
                    outputs[bi].storage.withUnsafeBufferPointer { src in
                        let s = src.baseAddress! + r * h
                        for c in 0..<h { dst[c] += s[c] }
                    }
                }
            }
        }
    }
}
