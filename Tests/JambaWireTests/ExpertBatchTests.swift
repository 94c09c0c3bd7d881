// ExpertBatchTests: the coordinator/worker exchange through bytes, and requests or replies that do not line up.
import Foundation
import JambaMath
import XCTest
@testable import JambaWire

final class ExpertBatchTests: XCTestCase {
    private let hidden = 32

    private func rows(_ n: Int, _ seed: Float) -> Matrix {
        Matrix(rows: n, cols: hidden, storage: (0..<(n * hidden)).map { sinf(Float($0) + seed) })
    }

    /// What a worker would do: decode, "compute" (negate the rows), add whole experts' gated rows per token in rank
    /// order into `combined`, answer slices apart, in the requested dtype.
    private func serve(_ bytes: [UInt8], unknown: Set<UInt32> = []) throws -> [UInt8] {
        guard case .request(let request)? = try Jamba_V1_CoordinatorToWorker.parse(bytes).msg else {
            throw WireError.malformed("not a request")
        }
        let work = try ExpertBatchCodec.decodeRequest(request, hidden: hidden, topK: 2)
        var combined = Matrix(zeros: work.tokens.rows, hidden)
        let outcomes: [ExpertOutcome] = work.parts.map { part in
            if unknown.contains(part.expertID) {
                return .failed(Jamba_V1_Error(code: .unknownExpert, message: "expert \(part.expertID) not resident",
                                              requestID: request.requestID))
            }
            var out = work.tokens.gatherRows(part.tokenRows)
            for i in out.storage.indices { out.storage[i] = -out.storage[i] }
            guard part.slice == 0 else { return .partial(out) }
            for rank in 0..<2 {
                for (i, t) in part.tokenRows.enumerated() where part.ranks[i] == rank {
                    for c in 0..<hidden { combined.storage[t * hidden + c] += part.gates[i] * out.storage[i * hidden + c] }
                }
            }
            return .combined
        }
        var env = Jamba_V1_WorkerToCoordinator()
        env.reply = ExpertBatchCodec.makeReply(to: request, combined: combined, outcomes: outcomes, computeMicros: 321,
                                               queueMicros: 12, perExpertMicros: Array(repeating: 100, count: outcomes.count))
        return try env.serialized()
    }

    /// Four tokens: expert 7 whole on tokens 0, 2, 3; expert 1 (unknown to the worker) on 1; slice 2 of expert 4 on
    /// tokens 1, 3; expert 5 whole on tokens 0, 3 at rank 1.
    private let parts = [
        ExpertPart(expertID: 7, tokenRows: [0, 2, 3], gates: [0.5, 1, 0.25], ranks: [0, 0, 0]),
        ExpertPart(expertID: 1, tokenRows: [1], gates: [0.75], ranks: [0]),
        ExpertPart(expertID: 4, slice: 2, tokenRows: [1, 3]),
        ExpertPart(expertID: 5, tokenRows: [0, 3], gates: [0.5, 0.125], ranks: [1, 1]),
    ]

    func testRequestReplyThroughBytes() throws {
        let tokens = rows(4, 0)
        for (dtype, replyDType) in [(DType.f32, nil), (.bf16, DType.f32), (.f16, nil)] {
            var env = Jamba_V1_CoordinatorToWorker()
            env.request = ExpertBatchCodec.makeRequest(requestID: 11, stepID: 3, layer: 5, tokens: tokens, parts: parts,
                                                       dtype: dtype, replyDType: replyDType)
            // Each token travels once, whatever number of experts reads it.
            XCTAssertEqual(env.request.tokens.shape, [4, Int64(hidden)])
            let decoded = try ExpertBatchCodec.decodeRequest(Jamba_V1_CoordinatorToWorker.parse(try env.serialized()).request,
                                                             hidden: hidden, topK: 2)
            XCTAssertEqual(decoded.parts, parts, "parts survive the bytes as sent; a slice carries no gates")
            let replyBytes = try serve(try env.serialized(), unknown: [1])
            guard case .reply(let reply)? = try Jamba_V1_WorkerToCoordinator.parse(replyBytes).msg else {
                return XCTFail("no reply")
            }
            XCTAssertEqual(reply.computeMicros, 321)
            XCTAssertEqual(reply.queueMicros, 12)
            XCTAssertEqual(reply.results.map(\.expertID), [7, 1, 4, 5])
            XCTAssertEqual(reply.combined.dtype, (replyDType ?? dtype).wire)
            let got = try ExpertBatchCodec.decodeReply(reply, requestID: 11, layer: 5,
                                                       expected: parts.map { ($0.expertID, $0.tokenRows.count, $0.slice) },
                                                       tokens: 4, hidden: hidden)
            XCTAssertEqual(got.outcomes.count, 4)
            guard case .failed(let e) = got.outcomes[1] else { return XCTFail("expert 1 should have failed") }
            XCTAssertEqual(e.code, .unknownExpert)
            XCTAssertEqual(got.outcomes[0], .combined)
            XCTAssertEqual(got.outcomes[3], .combined)
            guard case .partial(let p) = got.outcomes[2], let sum = got.combined else { return XCTFail("slice or sum missing") }
            // Both directions went through `dtype` (then the reply dtype): compare within its rounding.
            let tol: Float = dtype == .f32 ? 0 : 1.0 / 64
            let slice = tokens.gatherRows([1, 3])
            let partialDiff = zip(p.storage, slice.storage).map { Swift.abs($0 + $1) }.max() ?? 1
            // Token 0: 0.5·(−x0) + 0.5·(−x0); token 1: nothing (its only whole expert failed); token 2: −x2;
            // token 3: 0.25·(−x3) + 0.125·(−x3).
            let factor: [Float] = [1, 0, 1, 0.375]
            var sumDiff: Float = 0
            for t in 0..<4 { for c in 0..<hidden { sumDiff = max(sumDiff, Swift.abs(sum.storage[t * hidden + c] + factor[t] * tokens.storage[t * hidden + c])) } }
            print("[expert batch] \(dtype): max |diff| partial \(partialDiff), combined \(sumDiff) (tol \(tol))")
            XCTAssertLessThanOrEqual(partialDiff, tol, "\(dtype)")
            XCTAssertLessThanOrEqual(sumDiff, tol, "\(dtype)")
        }
    }

    func testRepliesThatDoNotLineUpAreRejected() throws {
        let whole = [ExpertPart(expertID: 2, tokenRows: [0, 1], gates: [1, 1], ranks: [0, 0]), ExpertPart(expertID: 9, slice: 1, tokenRows: [1])]
        let request = ExpertBatchCodec.makeRequest(requestID: 5, stepID: 1, layer: 3, tokens: rows(2, 0), parts: whole)
        let expected = whole.map { (expertID: $0.expertID, rows: $0.tokenRows.count, slice: $0.slice) }
        let good = ExpertBatchCodec.makeReply(to: request, combined: rows(2, 1), outcomes: [.combined, .partial(rows(1, 2))],
                                              computeMicros: 1, queueMicros: 0)
        XCTAssertNoThrow(try ExpertBatchCodec.decodeReply(good, requestID: 5, layer: 3, expected: expected, tokens: 2, hidden: hidden))

        func rejects(_ reply: Jamba_V1_ExpertBatchReply, _ code: Jamba_V1_ErrorCode, line: UInt = #line) {
            XCTAssertThrowsError(try ExpertBatchCodec.decodeReply(reply, requestID: 5, layer: 3, expected: expected,
                                                                  tokens: 2, hidden: hidden), line: line) { error in
                XCTAssertEqual((error as? WireError)?.code, code, "\(error)", line: line)
            }
        }
        var r = good; r.requestID = 6; rejects(r, .invalidArgument)
        r = good; r.layer = 4; rejects(r, .invalidArgument)
        r = good; r.results.swapAt(0, 1); rejects(r, .invalidArgument)
        r = good; r.results.removeLast(); rejects(r, .invalidArgument)
        r = good; r.results[1].output = TensorCodec.encode(rows(3, 0)); rejects(r, .badTensor)          // 3 rows, 1 sent
        r = good; r.results[1].output = TensorCodec.encode(Matrix(zeros: 1, hidden + 1)); rejects(r, .badTensor)
        r = good; r.results[1].output.rawData.removeLast(); rejects(r, .badTensor)
        r = good; r.results[1].result = nil; rejects(r, .malformed)                                     // a slice needs its output
        r = good; r.results[0].output = TensorCodec.encode(rows(2, 0)); rejects(r, .invalidArgument)    // a whole expert's goes in combined
        r = good; r.clearCombined(); rejects(r, .malformed)
        r = good; r.combined = TensorCodec.encode(rows(3, 1)); rejects(r, .badTensor)                   // 3 rows for 2 tokens
        // A whole-batch failure is re-thrown as the worker's own error.
        let busy = ExpertBatchCodec.makeErrorReply(requestID: 5, layer: 3,
                                                   error: Jamba_V1_Error(code: .overloaded, message: "queue full", retryAfterMs: 10))
        rejects(busy, .overloaded)
    }

    func testWorkerRejectsMalformedRequests() throws {
        let good = ExpertBatchCodec.makeRequest(requestID: 1, stepID: 1, layer: 1, tokens: rows(3, 0), parts: [
            ExpertPart(expertID: 3, tokenRows: [0, 2], gates: [0.5, 0.5], ranks: [0, 1]),
            ExpertPart(expertID: 4, slice: 1, tokenRows: [1]),
        ])
        XCTAssertNoThrow(try ExpertBatchCodec.decodeRequest(good, hidden: hidden, topK: 2))
        func rejects(_ request: Jamba_V1_ExpertBatchRequest, _ want: WireError, line: UInt = #line) {
            XCTAssertThrowsError(try ExpertBatchCodec.decodeRequest(request, hidden: hidden, topK: 2), line: line) { error in
                XCTAssertEqual(error as? WireError, want, line: line)
            }
        }
        var r = good; r.experts[1].expertID = 3
        rejects(r, .invalid(field: "request.experts[1].expert_id", reason: "expert 3 appears twice"))
        r = good; r.experts[0].tokenRows = [0, 3]
        rejects(r, .invalid(field: "request.experts[0].token_rows", reason: "row 3 of 3 tokens"))
        r = good; r.experts[0].tokenRows = [2, 0]
        rejects(r, .invalid(field: "request.experts[0].token_rows", reason: "not strictly ascending at row 0"))
        r = good; r.experts[0].tokenRows = [2, 2]
        rejects(r, .invalid(field: "request.experts[0].token_rows", reason: "not strictly ascending at row 2"))
        r = good; r.experts[0].gates = [0.5]
        rejects(r, .invalid(field: "request.experts[0].gates", reason: "1 gates and 2 ranks for 2 token rows"))
        r = good; r.experts[0].gates = [0.5, .nan]
        rejects(r, .invalid(field: "request.experts[0].gates", reason: "not finite"))
        // A rank at or above top-k would make the worker's rank loop run away: refused.
        r = good; r.experts[0].ranks = [0, 4_000_000_000]
        rejects(r, .invalid(field: "request.experts[0].ranks", reason: "rank 4000000000 with top-k 2"))
        r = good; r.tokens.dtype = .unspecified
        rejects(r, .badDType(field: "request.tokens", rawValue: 0))
        r = good; r.clearTokens()
        rejects(r, .malformed("request.tokens: missing"))
        XCTAssertThrowsError(try ExpertBatchCodec.decodeRequest(
            ExpertBatchCodec.makeRequest(requestID: 1, stepID: 1, layer: 1, tokens: rows(64, 0), parts: []),
            hidden: hidden, topK: 2, maxTensorBytes: 1024)) { error in
            XCTAssertEqual((error as? WireError)?.code, .oversized)
        }
    }
}
