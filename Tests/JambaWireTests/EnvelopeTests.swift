// EnvelopeTests: every envelope arm round-trips through bytes; garbage and oversize are refused; expert batches line up.
import Foundation
import JambaMath
import SwiftProtobuf
import XCTest
@testable import JambaWire

final class EnvelopeTests: XCTestCase {
    private func matrix(_ rows: Int, _ cols: Int, _ offset: Float = 0) -> Matrix {
        Matrix(rows: rows, cols: cols, storage: (0..<(rows * cols)).map { Float($0) * 0.25 + offset })
    }

    private func roundTrip<M: SwiftProtobuf.Message & Equatable>(_ m: M, line: UInt = #line) throws -> M {
        let bytes = try WireCodec.serialize(m)
        let back = try WireCodec.parse(M.self, from: bytes)
        XCTAssertEqual(back, m, "\(M.protoMessageName) changed in a round trip", line: line)
        return back
    }

    func testWorkerToCoordinatorArmsRoundTrip() throws {
        var register = Jamba_V1_Register()
        register.protocolVersion = jambaProtocolVersion
        register.modelFingerprint = "sha256:abc"
        register.workerName = "w1"
        register.capacity.memoryBytes = 8 << 30
        register.capacity.threads = 2
        register.capacity.expertSlots = 16
        var hb = Jamba_V1_Heartbeat()
        (hb.queueDepth, hb.residentBytes, hb.rowsServed, hb.busyMicros, hb.epoch) = (3, 1 << 30, 123_456, 9_999_999, 7)
        var ready = Jamba_V1_AssignmentReady()
        ready.epoch = 7
        ready.held = [.with { $0.layer = 1; $0.experts = [0, 3, 5] }]
        let reply = ExpertBatchCodec.makeReply(
            to: ExpertBatchCodec.makeRequest(requestID: 9, stepID: 2, layer: 1, tokens: matrix(2, 8),
                                             parts: [ExpertPart(expertID: 3, tokenRows: [0, 1], gates: [0.5, 0.25], ranks: [0, 1]),
                                                     ExpertPart(expertID: 4, slice: 2, tokenRows: [1])]),
            combined: matrix(2, 8, 1), outcomes: [.combined, .partial(matrix(1, 8, 2))], computeMicros: 1500, queueMicros: 20)

        let arms: [Jamba_V1_WorkerToCoordinator.OneOf_Msg] = [
            .register(register), .heartbeat(hb), .ready(ready), .reply(reply),
            .error(Jamba_V1_Error(code: .notReady, message: "loading", retryAfterMs: 250)),
        ]
        for arm in arms {
            var env = Jamba_V1_WorkerToCoordinator()
            env.msg = arm
            let bytes = try env.serialized()
            XCTAssertEqual(try Jamba_V1_WorkerToCoordinator.parse(bytes), env)
        }
    }

    func testCoordinatorToWorkerArmsRoundTrip() throws {
        var assignment = Jamba_V1_Assignment()
        assignment.epoch = 4
        assignment.layers = [.with { $0.layer = 1; $0.experts = [0, 1] }, .with { $0.layer = 3; $0.experts = [15] }]
        let request = ExpertBatchCodec.makeRequest(
            requestID: 77, stepID: 5, layer: 3, tokens: matrix(4, 16),
            parts: [ExpertPart(expertID: 15, tokenRows: [0, 3], gates: [0.5, 0.25], ranks: [0, 1]), ExpertPart(expertID: 2, tokenRows: [])],
            dtype: .bf16, replyDType: .f16)
        let arms: [Jamba_V1_CoordinatorToWorker.OneOf_Msg] = [
            .assignment(assignment), .request(request),
            .error(Jamba_V1_Error(code: .fingerprintMismatch, message: "different checkpoint")),
            .shutdown(.with { $0.reason = "operator"; $0.drain = true }),
            .heartbeatAck(.with { $0.epoch = 4 }),
        ]
        for arm in arms {
            var env = Jamba_V1_CoordinatorToWorker()
            env.msg = arm
            XCTAssertEqual(try Jamba_V1_CoordinatorToWorker.parse(try env.serialized()), env)
        }
    }

    func testClientMessagesRoundTripAndSeedPresence() throws {
        var submit = Jamba_V1_SubmitJob()
        submit.tokens = .with { $0.ids = [1, 42, 7] }
        submit.sampling.temperature = 0.7
        submit.sampling.topK = 40
        submit.sampling.topP = 0.9
        submit.sampling.maxTokens = 64
        submit.stream = true
        XCTAssertFalse(submit.sampling.hasSeed)
        var request = Jamba_V1_ClientRequest()
        request.clientSeq = 1
        request.submit = submit
        var back = try Jamba_V1_ClientRequest.parse(try request.serialized())
        XCTAssertEqual(back, request)
        XCTAssertFalse(back.submit.sampling.hasSeed, "absent seed must stay absent")

        // Seed 0 is a real seed: `optional` keeps its presence through the wire.
        request.submit.sampling.seed = 0
        back = try Jamba_V1_ClientRequest.parse(try request.serialized())
        XCTAssertTrue(back.submit.sampling.hasSeed)
        XCTAssertEqual(back.submit.sampling.seed, 0)

        for arm: Jamba_V1_ClientRequest.OneOf_Request in [.status(.with { $0.includeExperts = true }),
                                                          .rebalance(.with { $0.dryRun = true }),
                                                          .cancel(.with { $0.jobID = 5 })] {
            request.request = arm
            _ = try roundTrip(request)
        }
    }

    func testClientRepliesRoundTrip() throws {
        var status = Jamba_V1_StatusReply()
        status.workers = [.with {
            $0.name = "w1"; $0.address = "10.0.0.2:1234"; $0.state = .live
            $0.experts = [.with { $0.layer = 1; $0.experts = [0, 2] }]
            $0.residentBytes = 1 << 30; $0.queueDepth = 2; $0.msSinceHeartbeat = 120
            $0.rowsServed = 1000; $0.busyMicros = 50_000
        }]
        status.layers = [.with { $0.layer = 1; $0.experts = [.with { $0.expert = 0; $0.holders = ["w1", "w2"]; $0.tokensRouted = 99 }] }]
        (status.jobsRunning, status.jobsQueued, status.tokensPerSecond) = (1, 3, 12.5)
        status.imbalance = .with { $0.maxOverMean = 1.4; $0.worstLayer = 1; $0.perLayer = [.with { $0.layer = 1; $0.maxOverMean = 1.4 }] }
        status.modelName = "jamba-tiny"
        status.modelFingerprint = "sha256:abc"

        var final = Jamba_V1_JobFinal()
        (final.promptTokens, final.completionTokens, final.finishReason) = (3, 64, .length)
        (final.queueMs, final.prefillMs, final.decodeMs) = (1.5, 20.25, 800)

        let replies: [Jamba_V1_ClientReply.OneOf_Reply] = [
            .event(.with { $0.jobID = 5; $0.accepted = .with { $0.promptTokens = 3; $0.queuePosition = 0 } }),
            .event(.with { $0.jobID = 5; $0.tokens = .with { $0.tokenIds = [10, 11]; $0.text = "hé" } }),
            .event(.with { $0.jobID = 5; $0.final = final }),
            .event(.with { $0.jobID = 5; $0.error = Jamba_V1_Error(code: .internal, message: "worker lost") }),
            .status(status),
            .rebalance(.with {
                $0.imbalanceBefore = 1.8; $0.imbalanceAfter = 1.1; $0.applied = false; $0.epoch = 4
                $0.moves = [.with { $0.layer = 1; $0.expert = 2; $0.fromWorker = "w1"; $0.toWorker = "w2"; $0.kind = .add },
                            .with { $0.layer = 1; $0.expert = 2; $0.fromWorker = "w1"; $0.kind = .drop }]
            }),
            .error(Jamba_V1_Error(code: .invalidArgument, message: "top_p > 1")),
        ]
        for arm in replies {
            var reply = Jamba_V1_ClientReply()
            reply.clientSeq = 42
            reply.reply = arm
            XCTAssertEqual(try Jamba_V1_ClientReply.parse(try reply.serialized()), reply)
        }
    }

    func testGarbageBytesAreMalformed() {
        let garbage: [[UInt8]] = [
            [0xFF, 0xFF, 0xFF],            // truncated varint tag
            [0x0F],                        // wire type 7 does not exist
            [0x0A, 0x50, 0x01],            // field 1 claims 80 bytes, 1 follows
            [0x12, 0x02, 0x0A, 0x80],      // nested message with a truncated length
            Array("hello, world".utf8),
        ]
        for bytes in garbage {
            XCTAssertThrowsError(try Jamba_V1_WorkerToCoordinator.parse(bytes)) { error in
                guard case .malformed(let what)? = error as? WireError else { return XCTFail("\(error)") }
                XCTAssertTrue(what.contains("jamba.v1.WorkerToCoordinator"), what)
                XCTAssertEqual((error as? WireError)?.code, .malformed)
            }
        }
        // Well-formed protobuf with no arm set (e.g. an empty frame) is malformed for an envelope.
        XCTAssertThrowsError(try Jamba_V1_CoordinatorToWorker.parse([UInt8]())) { error in
            XCTAssertEqual(error as? WireError, .malformed("jamba.v1.CoordinatorToWorker: no message set"))
        }
        XCTAssertThrowsError(try Jamba_V1_ClientRequest.parse([0x08, 0x01])) { error in  // client_seq only
            XCTAssertEqual((error as? WireError)?.code, .malformed)
        }
    }

    func testSizeLimitsOnSerializeAndParse() throws {
        var env = Jamba_V1_CoordinatorToWorker()
        env.request = ExpertBatchCodec.makeRequest(requestID: 1, stepID: 1, layer: 1, tokens: matrix(64, 64),
                                                   parts: [ExpertPart(expertID: 0, tokenRows: [0], gates: [1], ranks: [0])])
        let bytes = try env.serialized()
        XCTAssertGreaterThan(bytes.count, 64 * 64 * 4)
        XCTAssertThrowsError(try env.serialized(maxBytes: 1000)) { error in
            XCTAssertEqual(error as? WireError, .oversized(field: "jamba.v1.CoordinatorToWorker", bytes: bytes.count, limit: 1000))
        }
        XCTAssertThrowsError(try Jamba_V1_CoordinatorToWorker.parse(bytes, maxBytes: bytes.count - 1)) { error in
            XCTAssertEqual((error as? WireError)?.code, .oversized)
        }
        XCTAssertEqual(try Jamba_V1_CoordinatorToWorker.parse(bytes, maxBytes: bytes.count), env)
        XCTAssertEqual(try Jamba_V1_CoordinatorToWorker.parse(Data(bytes)), env, "Data works as well as [UInt8]")
    }

    func testWireErrorMapsToProtoCodes() {
        XCTAssertEqual(WireError.malformed("x").asProto(requestID: 3).code, .malformed)
        XCTAssertEqual(WireError.malformed("x").asProto(requestID: 3).requestID, 3)
        XCTAssertEqual(WireError.oversized(field: "f", bytes: 2, limit: 1).asProto().code, .oversized)
        XCTAssertEqual(WireError.badDType(field: "f", rawValue: 0).asProto().code, .badTensor)
        XCTAssertEqual(WireError.invalid(field: "f", reason: "r").asProto().code, .invalidArgument)
        let remote = Jamba_V1_Error(code: .unknownExpert, message: "layer 3 expert 9")
        XCTAssertEqual(remote.asWireError.asProto().code, .unknownExpert)
        XCTAssertEqual(remote.asWireError.asProto().message, "layer 3 expert 9")
        XCTAssertEqual(jambaProtocolVersion, 3, "version 3 sends each token once per worker and returns per-token sums")
    }
}
