// ExpertBatch: building and checking ExpertBatchRequest/Reply, so both daemons agree on what "well-formed" means.
import JambaMath

/// One expert's part of a request: which of the request's token rows it reads and, for a whole expert, their gates
/// and top-k ranks (`ExpertInput`).
public struct ExpertPart: Sendable, Equatable {
    public var expertID: UInt32
    /// 0: the whole expert; s + 1: slice s of its intermediate dimension (`ExpertInput.slice`).
    public var slice: UInt32
    /// Rows of the request's tokens, strictly ascending.
    public var tokenRows: [Int]
    /// Whole experts only, one per token row; empty for a slice.
    public var gates: [Float]
    public var ranks: [Int]

    public init(expertID: UInt32, slice: UInt32 = 0, tokenRows: [Int], gates: [Float] = [], ranks: [Int] = []) {
        self.expertID = expertID
        self.slice = slice
        self.tokenRows = tokenRows
        self.gates = gates
        self.ranks = ranks
    }
}

/// A request as the worker computes it: the distinct token rows [T, hidden] and each expert's part.
public struct ExpertWork: Sendable, Equatable {
    public var tokens: Matrix
    public var parts: [ExpertPart]
}

/// One expert's outcome in a reply.
public enum ExpertOutcome: Sendable, Equatable {
    /// A whole expert that ran: its gated output is in the reply's `combined`.
    case combined
    /// A slice's ungated partial output, [token rows, hidden].
    case partial(Matrix)
    /// The error the worker reported for this expert alone.
    case failed(Jamba_V1_Error)
}

/// A checked reply: the per-token sum of the whole experts (nil when the request had none) and each part's outcome.
public struct ExpertReply: Sendable, Equatable {
    public var combined: Matrix?
    public var outcomes: [ExpertOutcome]
}

/// The rules of the expert batch exchange (protocol version 3), in one place.
///
/// The coordinator builds requests with `makeRequest` and checks replies with `decodeReply`, which verifies that
/// the worker answered exactly the parts asked for, in order, with the right shapes, so the coordinator can place
/// results by position. The worker uses `decodeRequest` / `makeReply`.
public enum ExpertBatchCodec {
    // MARK: Coordinator side

    /// One request carrying every part this worker gets for `layer`; `tokens` [T, hidden] are the rows the parts
    /// index. `replyDType` nil = same as `dtype`.
    public static func makeRequest(requestID: UInt64, stepID: UInt64, layer: UInt32, tokens: Matrix, parts: [ExpertPart],
                                   dtype: DType = .f32, replyDType: DType? = nil) -> Jamba_V1_ExpertBatchRequest {
        var request = Jamba_V1_ExpertBatchRequest()
        request.requestID = requestID
        request.stepID = stepID
        request.layer = layer
        request.replyDtype = replyDType?.wire ?? .unspecified
        request.tokens = TensorCodec.encode(tokens, as: dtype)
        request.experts = parts.map { p in
            var input = Jamba_V1_ExpertInput()
            input.expertID = p.expertID
            input.slice = p.slice
            input.tokenRows = p.tokenRows.map { UInt32(truncatingIfNeeded: $0) }
            if p.slice == 0 {
                input.gates = p.gates
                input.ranks = p.ranks.map { UInt32(truncatingIfNeeded: $0) }
            }
            return input
        }
        return request
    }

    /// Checks `reply` against the request it answers and decodes it.
    ///
    /// `expected` lists each part (expert id, token rows, slice) exactly as sent, and `tokens` the request's token
    /// count. Throws `.remote` when the worker failed the whole batch, `.invalid` when the reply does not line up
    /// with the request, and tensor errors (with the field path) for a malformed tensor. A per-expert failure is
    /// not thrown: it comes back as `.failed` so the coordinator can retry that work elsewhere.
    public static func decodeReply(_ reply: Jamba_V1_ExpertBatchReply, requestID: UInt64, layer: UInt32,
                                   expected: [(expertID: UInt32, rows: Int, slice: UInt32)], tokens: Int, hidden: Int,
                                   maxTensorBytes: Int = TensorCodec.defaultMaxTensorBytes) throws(WireError) -> ExpertReply {
        guard reply.requestID == requestID else {
            throw .invalid(field: "reply.request_id", reason: "is \(reply.requestID), expected \(requestID)")
        }
        if reply.hasError { throw reply.error.asWireError }
        guard reply.layer == layer else {
            throw .invalid(field: "reply.layer", reason: "is \(reply.layer), expected \(layer)")
        }
        guard reply.results.count == expected.count else {
            throw .invalid(field: "reply.results", reason: "\(reply.results.count) results for \(expected.count) experts")
        }
        var outcomes: [ExpertOutcome] = []
        outcomes.reserveCapacity(expected.count)
        for (i, (result, want)) in zip(reply.results, expected).enumerated() {
            guard result.expertID == want.expertID else {
                throw .invalid(field: "reply.results[\(i)].expert_id", reason: "is \(result.expertID), expected \(want.expertID)")
            }
            let field = "reply.results[\(i)].output"
            switch result.result {
            case .output(let tensor) where want.slice != 0:
                let m = try TensorCodec.decodeMatrix(tensor, cols: hidden, field: field, maxBytes: maxTensorBytes)
                guard m.rows == want.rows else {
                    throw .badShape(field: field, shape: tensor.shape, reason: "\(m.rows) rows, expected \(want.rows)")
                }
                outcomes.append(.partial(m))
            case .output:
                throw .invalid(field: field, reason: "set for a whole expert, whose output belongs in reply.combined")
            case .error(let error):
                outcomes.append(.failed(error))
            case nil where want.slice == 0:
                outcomes.append(.combined)
            case nil:
                throw .malformed("reply.results[\(i)]: neither output nor error set for slice \(want.slice)")
            }
        }
        var combined: Matrix?
        if outcomes.contains(.combined) {
            guard reply.hasCombined else { throw .malformed("reply.combined: missing, and the reply ran a whole expert") }
            let m = try TensorCodec.decodeMatrix(reply.combined, cols: hidden, field: "reply.combined", maxBytes: maxTensorBytes)
            guard m.rows == tokens else {
                throw .badShape(field: "reply.combined", shape: reply.combined.shape, reason: "\(m.rows) rows, expected \(tokens)")
            }
            combined = m
        }
        return ExpertReply(combined: combined, outcomes: outcomes)
    }

    // MARK: Worker side

    /// Decodes and checks a request: `tokens` [T, hidden] within `maxTensorBytes`; no expert twice (a duplicate
    /// would make the positional reply ambiguous); token rows strictly ascending and below T; for a whole expert,
    /// one finite gate and one rank below `topK` per row. Unknown experts are not checked here: that is a
    /// per-expert `UNKNOWN_EXPERT` in the reply, not a malformed request.
    public static func decodeRequest(_ request: Jamba_V1_ExpertBatchRequest, hidden: Int, topK: Int,
                                     maxTensorBytes: Int = TensorCodec.defaultMaxTensorBytes) throws(WireError) -> ExpertWork {
        guard request.hasTokens else { throw .malformed("request.tokens: missing") }
        let tokens = try TensorCodec.decodeMatrix(request.tokens, cols: hidden, field: "request.tokens", maxBytes: maxTensorBytes)
        var seen = Set<UInt32>()
        var parts: [ExpertPart] = []
        parts.reserveCapacity(request.experts.count)
        for (i, input) in request.experts.enumerated() {
            let at = "request.experts[\(i)]"
            guard seen.insert(input.expertID).inserted else {
                throw .invalid(field: "\(at).expert_id", reason: "expert \(input.expertID) appears twice")
            }
            var rows: [Int] = []
            rows.reserveCapacity(input.tokenRows.count)
            for r in input.tokenRows {
                guard Int(r) < tokens.rows else {
                    throw .invalid(field: "\(at).token_rows", reason: "row \(r) of \(tokens.rows) tokens")
                }
                guard rows.last.map({ $0 < Int(r) }) ?? true else {
                    throw .invalid(field: "\(at).token_rows", reason: "not strictly ascending at row \(r)")
                }
                rows.append(Int(r))
            }
            var part = ExpertPart(expertID: input.expertID, slice: input.slice, tokenRows: rows)
            if input.slice == 0 {
                guard input.gates.count == rows.count, input.ranks.count == rows.count else {
                    throw .invalid(field: "\(at).gates", reason: "\(input.gates.count) gates and \(input.ranks.count) ranks for \(rows.count) token rows")
                }
                guard input.gates.allSatisfy(\.isFinite) else { throw .invalid(field: "\(at).gates", reason: "not finite") }
                if let bad = input.ranks.first(where: { Int($0) >= topK }) {
                    throw .invalid(field: "\(at).ranks", reason: "rank \(bad) with top-k \(topK)")
                }
                part.gates = input.gates
                part.ranks = input.ranks.map { Int($0) }
            }
            parts.append(part)
        }
        return ExpertWork(tokens: tokens, parts: parts)
    }

    /// The dtype the worker should answer in: the request's `reply_dtype`, else its tokens'.
    public static func replyDType(for request: Jamba_V1_ExpertBatchRequest) -> DType {
        DType(wire: request.replyDtype) ?? DType(wire: request.tokens.dtype) ?? .f32
    }

    /// A reply answering `request`; `outcomes` must be in request order (one per expert), and `combined` set when
    /// any of them is `.combined`.
    public static func makeReply(to request: Jamba_V1_ExpertBatchRequest, combined: Matrix?, outcomes: [ExpertOutcome],
                                 computeMicros: UInt64, queueMicros: UInt64,
                                 perExpertMicros: [UInt64]? = nil) -> Jamba_V1_ExpertBatchReply {
        precondition(outcomes.count == request.experts.count, "makeReply: one outcome per requested expert")
        let dtype = replyDType(for: request)
        var reply = Jamba_V1_ExpertBatchReply()
        reply.requestID = request.requestID
        reply.layer = request.layer
        reply.computeMicros = computeMicros
        reply.queueMicros = queueMicros
        if let combined { reply.combined = TensorCodec.encode(combined, as: dtype) }
        reply.results = outcomes.enumerated().map { i, outcome in
            var result = Jamba_V1_ExpertResult()
            result.expertID = request.experts[i].expertID
            switch outcome {
            case .combined: break
            case .partial(let m): result.output = TensorCodec.encode(m, as: dtype)
            case .failed(let e): result.error = e
            }
            if let perExpertMicros, perExpertMicros.indices.contains(i) { result.computeMicros = perExpertMicros[i] }
            return result
        }
        return reply
    }

    /// A reply failing the whole batch (e.g. NOT_READY, OVERLOADED, or the request did not decode).
    public static func makeErrorReply(requestID: UInt64, layer: UInt32, error: Jamba_V1_Error) -> Jamba_V1_ExpertBatchReply {
        var reply = Jamba_V1_ExpertBatchReply()
        reply.requestID = requestID
        reply.layer = layer
        reply.error = error
        return reply
    }
}
