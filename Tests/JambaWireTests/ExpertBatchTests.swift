// ExpertBatchTests: the coordinator/worker exchange through bytes, and replies that do not line up with their request.
import Foundation
import JambaMath
import XCTest
@testable import JambaWire

final class ExpertBatchTests: XCTestCase {
    private let hidden = 32

    private func rows(_ n: Int, _ seed: Float) -> Matrix {
        Matrix(rows: n, cols: hidden, storage: (0..<(n * hidden)).map { sinf(Float($0) + seed) })
    }

    /// What a worker would do: decode, "compute" (negate), answer in the requested dtype.
    private func serve(_ bytes: [UInt8], unknown: Set<UInt32> = []) throws -> [UInt8] {
        guard case .request(let request)? = try Jamba_V1_CoordinatorToWorker.parse(bytes).msg else {
            throw WireError.malformed("not a request")
        }
        let inputs = try ExpertBatchCodec.decodeRequest(request, hidden: hidden)
        let outcomes: [ExpertOutcome] = inputs.map { input in
            if unknown.contains(input.expertID) {
                return .failed(Jamba_V1_Error(code: .unknownExpert, message: "expert \(input.expertID) not resident",
                                              requestID: request.requestID))
            }
            var out = input.rows
            for i in out.storage.indices { out.storage[i] = -out.storage[i] }
            return .output(out)
        }
        var env = Jamba_V1_WorkerToCoordinator()
        env.reply = ExpertBatchCodec.makeReply(to: request, outcomes: outcomes, computeMicros: 321, queueMicros: 12,
                                               perExpertMicros: Array(repeating: 100, count: outcomes.count))
        return try env.serialized()
    }

    func testRequestReplyThroughBytes() throws {
        let experts = [ExpertRows(expertID: 7, rows: rows(3, 0)), ExpertRows(expertID: 1, rows: rows(0, 1)),
                       ExpertRows(expertID: 4, rows: rows(5, 2), slice: 2)]
        for (dtype, replyDType) in [(DType.f32, nil), (.bf16, DType.f32), (.f16, nil)] {
            var env = Jamba_V1_CoordinatorToWorker()
            env.request = ExpertBatchCodec.makeRequest(requestID: 11, stepID: 3, layer: 5, experts: experts,
                                                       dtype: dtype, replyDType: replyDType)
            // The slice asked for reaches the worker's decoded inputs (0 = whole expert).
            let decoded = try ExpertBatchCodec.decodeRequest(Jamba_V1_CoordinatorToWorker.parse(try env.serialized()).request, hidden: hidden)
            XCTAssertEqual(decoded.map(\.slice), [0, 0, 2])
            let replyBytes = try serve(try env.serialized(), unknown: [1])
            guard case .reply(let reply)? = try Jamba_V1_WorkerToCoordinator.parse(replyBytes).msg else {
                return XCTFail("no reply")
            }
            XCTAssertEqual(reply.computeMicros, 321)
            XCTAssertEqual(reply.queueMicros, 12)
            XCTAssertEqual(reply.results.map(\.expertID), [7, 1, 4])
            XCTAssertEqual(reply.results[0].output.dtype, (replyDType ?? dtype).wire)
            let outcomes = try ExpertBatchCodec.decodeReply(reply, requestID: 11, layer: 5,
                                                            expected: experts.map { ($0.expertID, $0.rows.rows) },
                                                            hidden: hidden)
            XCTAssertEqual(outcomes.count, 3)
            guard case .failed(let e) = outcomes[1] else { return XCTFail("expert 1 should have failed") }
            XCTAssertEqual(e.code, .unknownExpert)
            for i in [0, 2] {
                guard case .output(let m) = outcomes[i] else { return XCTFail("expert \(i) failed") }
                XCTAssertEqual(m.rows, experts[i].rows.rows)
                // Both directions went through `dtype` (then reply dtype): compare within bf16 rounding.
                let maxDiff = zip(m.storage, experts[i].rows.storage).map { Swift.abs($0 + $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(maxDiff, dtype == .f32 ? 0 : 1.0 / 128, "\(dtype)")
            }
        }
    }

    func testRepliesThatDoNotLineUpAreRejected() throws {
        let experts = [ExpertRows(expertID: 2, rows: rows(2, 0)), ExpertRows(expertID: 9, rows: rows(1, 1))]
        let request = ExpertBatchCodec.makeRequest(requestID: 5, stepID: 1, layer: 3, experts: experts)
        let expected = experts.map { (expertID: $0.expertID, rows: $0.rows.rows) }
        let good = ExpertBatchCodec.makeReply(to: request, outcomes: experts.map { .output($0.rows) },
                                              computeMicros: 1, queueMicros: 0)
        XCTAssertNoThrow(try ExpertBatchCodec.decodeReply(good, requestID: 5, layer: 3, expected: expected, hidden: hidden))

        func rejects(_ reply: Jamba_V1_ExpertBatchReply, _ code: Jamba_V1_ErrorCode, line: UInt = #line) {
            XCTAssertThrowsError(try ExpertBatchCodec.decodeReply(reply, requestID: 5, layer: 3, expected: expected,
                                                                  hidden: hidden), line: line) { error in
                XCTAssertEqual((error as? WireError)?.code, code, "\(error)", line: line)
            }
        }
        var r = good; r.requestID = 6; rejects(r, .invalidArgument)
        r = good; r.layer = 4; rejects(r, .invalidArgument)
        r = good; r.results.swapAt(0, 1); rejects(r, .invalidArgument)
        r = good; r.results.removeLast(); rejects(r, .invalidArgument)
        r = good; r.results[0].output = TensorCodec.encode(rows(3, 0)); rejects(r, .badTensor)          // 3 rows, 2 sent
        r = good; r.results[1].output = TensorCodec.encode(Matrix(zeros: 1, hidden + 1)); rejects(r, .badTensor)
        r = good; r.results[1].output.rawData.removeLast(); rejects(r, .badTensor)
        r = good; r.results[1].result = nil; rejects(r, .malformed)
        // A whole-batch failure is re-thrown as the worker's own error.
        let busy = ExpertBatchCodec.makeErrorReply(requestID: 5, layer: 3,
                                                   error: Jamba_V1_Error(code: .overloaded, message: "queue full", retryAfterMs: 10))
        rejects(busy, .overloaded)
    }

    func testWorkerRejectsDuplicateExpertsAndBadTensors() throws {
        var request = ExpertBatchCodec.makeRequest(requestID: 1, stepID: 1, layer: 1,
                                                   experts: [ExpertRows(expertID: 3, rows: rows(1, 0)),
                                                             ExpertRows(expertID: 3, rows: rows(1, 1))])
        XCTAssertThrowsError(try ExpertBatchCodec.decodeRequest(request, hidden: hidden)) { error in
            XCTAssertEqual(error as? WireError, .invalid(field: "request.experts[1].expert_id", reason: "expert 3 appears twice"))
        }
        request.experts.removeLast()
        request.experts[0].rows.dtype = .unspecified
        XCTAssertThrowsError(try ExpertBatchCodec.decodeRequest(request, hidden: hidden)) { error in
            XCTAssertEqual(error as? WireError, .badDType(field: "request.experts[0].rows", rawValue: 0))
        }
        request.experts[0].clearRows()
        XCTAssertThrowsError(try ExpertBatchCodec.decodeRequest(request, hidden: hidden)) { error in
            XCTAssertEqual((error as? WireError)?.code, .malformed)
        }
        XCTAssertThrowsError(try ExpertBatchCodec.decodeRequest(
            ExpertBatchCodec.makeRequest(requestID: 1, stepID: 1, layer: 1, experts: [ExpertRows(expertID: 0, rows: rows(64, 0))]),
            hidden: hidden, maxTensorBytes: 1024)) { error in
            XCTAssertEqual((error as? WireError)?.code, .oversized)
        }
    }
}
