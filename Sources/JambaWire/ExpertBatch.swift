// ExpertBatch: building and checking ExpertBatchRequest/Reply, so both daemons agree on what "well-formed" means.
import JambaMath

/// One expert's token rows (request side) or outputs (reply side).
public struct ExpertRows: Sendable, Equatable {
    public var expertID: UInt32
    public var rows: Matrix
    /// 0: the whole expert; s + 1: slice s of its intermediate dimension (`ExpertInput.slice`).
    public var slice: UInt32

    public init(expertID: UInt32, rows: Matrix, slice: UInt32 = 0) {
        self.expertID = expertID
        self.rows = rows
        self.slice = slice
    }
}

/// One expert's outcome in a reply: its output rows, or the error the worker reported for it alone.
public enum ExpertOutcome: Sendable, Equatable {
    case output(Matrix)
    case failed(Jamba_V1_Error)
}

/// The rules of the expert batch exchange, in one place.
///
/// The coordinator builds requests with `makeRequest` and checks replies with `decodeReply`, which
/// verifies that the worker answered exactly the experts asked for, in order, with the right row counts,
/// so the coordinator can scatter results by position. The worker uses `decodeRequest` / `makeReply`.
public enum ExpertBatchCodec {
    // MARK: Coordinator side

    /// One request carrying every expert this worker gets for `layer`. `replyDType` nil = same as `dtype`.
    public static func makeRequest(requestID: UInt64, stepID: UInt64, layer: UInt32, experts: [ExpertRows],
                                   dtype: DType = .f32, replyDType: DType? = nil) -> Jamba_V1_ExpertBatchRequest {
        var request = Jamba_V1_ExpertBatchRequest()
        request.requestID = requestID
        request.stepID = stepID
        request.layer = layer
        request.replyDtype = replyDType?.wire ?? .unspecified
        request.experts = experts.map { e in
            var input = Jamba_V1_ExpertInput()
            input.expertID = e.expertID
            input.rows = TensorCodec.encode(e.rows, as: dtype)
            input.slice = e.slice
            return input
        }
        return request
    }

    /// Checks `reply` against the request it answers and decodes the outputs, in request order.
    ///
    /// `expected` lists (expert id, row count) exactly as sent. Throws `.remote` when the worker failed
    /// the whole batch, `.invalid` when the reply does not line up with the request, and tensor errors
    /// (with the field path `results[i].output`) for a malformed output. A per-expert failure is not
    /// thrown: it comes back as `.failed` so the coordinator can retry just that expert elsewhere.
    public static func decodeReply(_ reply: Jamba_V1_ExpertBatchReply, requestID: UInt64, layer: UInt32,
                                   expected: [(expertID: UInt32, rows: Int)], hidden: Int,
                                   maxTensorBytes: Int = TensorCodec.defaultMaxTensorBytes) throws(WireError) -> [ExpertOutcome] {
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
            switch result.result {
            case .output(let tensor):
                let field = "reply.results[\(i)].output"
                let m = try TensorCodec.decodeMatrix(tensor, cols: hidden, field: field, maxBytes: maxTensorBytes)
                guard m.rows == want.rows else {
                    throw .badShape(field: field, shape: tensor.shape, reason: "\(m.rows) rows, expected \(want.rows)")
                }
                outcomes.append(.output(m))
            case .error(let error):
                outcomes.append(.failed(error))
            case nil:
                throw .malformed("reply.results[\(i)]: neither output nor error set")
            }
        }
        return outcomes
    }

    // MARK: Worker side

    /// Decodes and checks a request: every tensor `[rows, hidden]` within `maxTensorBytes`, no expert
    /// twice (a duplicate would make the positional reply ambiguous). Unknown experts are not checked
    /// here: that is a per-expert `UNKNOWN_EXPERT` in the reply, not a malformed request.
    public static func decodeRequest(_ request: Jamba_V1_ExpertBatchRequest, hidden: Int,
                                     maxTensorBytes: Int = TensorCodec.defaultMaxTensorBytes) throws(WireError) -> [ExpertRows] {
        var seen = Set<UInt32>()
        var out: [ExpertRows] = []
        out.reserveCapacity(request.experts.count)
        for (i, input) in request.experts.enumerated() {
            guard seen.insert(input.expertID).inserted else {
                throw .invalid(field: "request.experts[\(i)].expert_id", reason: "expert \(input.expertID) appears twice")
            }
            guard input.hasRows else {
                throw .malformed("request.experts[\(i)].rows: missing")
            }
            let rows = try TensorCodec.decodeMatrix(input.rows, cols: hidden, field: "request.experts[\(i)].rows",
                                                    maxBytes: maxTensorBytes)
            out.append(ExpertRows(expertID: input.expertID, rows: rows, slice: input.slice))
        }
        return out
    }

    /// The dtype the worker should answer expert `index` in: the request's `reply_dtype`, else the input's.
    public static func replyDType(for request: Jamba_V1_ExpertBatchRequest, index: Int) -> DType {
        if let d = DType(wire: request.replyDtype) { return d }
        if request.experts.indices.contains(index), let d = DType(wire: request.experts[index].rows.dtype) { return d }
        return .f32
    }

    /// A reply answering `request`; `outcomes` must be in request order (one per expert).
    public static func makeReply(to request: Jamba_V1_ExpertBatchRequest, outcomes: [ExpertOutcome],
                                 computeMicros: UInt64, queueMicros: UInt64,
                                 perExpertMicros: [UInt64]? = nil) -> Jamba_V1_ExpertBatchReply {
        precondition(outcomes.count == request.experts.count, "makeReply: one outcome per requested expert")
        var reply = Jamba_V1_ExpertBatchReply()
        reply.requestID = request.requestID
        reply.layer = request.layer
        reply.computeMicros = computeMicros
        reply.queueMicros = queueMicros
        reply.results = outcomes.enumerated().map { i, outcome in
            var result = Jamba_V1_ExpertResult()
            result.expertID = request.experts[i].expertID
            switch outcome {
            case .output(let m): result.output = TensorCodec.encode(m, as: replyDType(for: request, index: i))
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
