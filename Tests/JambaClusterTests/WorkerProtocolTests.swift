// WorkerProtocolTests: a real jamba-worker against a test-controlled coordinator socket: assignment, bad requests, restarts.
import Foundation
import JambaCluster
import JambaLoader
import JambaMath
import JambaModel
import JambaWire
import XCTest
import ZeroMQ

final class WorkerProtocolTests: XCTestCase {
    static let model = ClusterHarness.fixture("tiny-b")

    /// Receives the next worker message (skipping heartbeats), within `seconds`.
    func next(_ s: Socket, seconds: Double = 10, skipHeartbeats: Bool = true) throws -> ([UInt8], Jamba_V1_WorkerToCoordinator) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard let frames = try s.receiveMultipart(), frames.count == 2 else { continue }
            let m = try Jamba_V1_WorkerToCoordinator.parse(frames[1])
            if skipHeartbeats, case .heartbeat = m.msg { continue }
            return (frames[0], m)
        }
        throw ClusterError.timeout(what: "worker message", seconds: seconds)
    }

    func send(_ s: Socket, _ id: [UInt8], _ msg: Jamba_V1_CoordinatorToWorker.OneOf_Msg) throws {
        var env = Jamba_V1_CoordinatorToWorker()
        env.msg = msg
        try s.send([id, try env.serialized()])
    }

    func testWorkerAnswersBadRequestsWithTypedErrorsAndKeepsServing() throws {
        let lone = try LoneWorker(model: Self.model, name: "solo")
        defer { lone.stop() }
        let router = lone.router

        let (id, first) = try next(router)
        guard case .register(let reg) = first.msg else { return XCTFail("first message must be Register") }
        XCTAssertEqual(reg.protocolVersion, jambaProtocolVersion)
        XCTAssertEqual(reg.workerName, "solo")
        // Where it runs: the coordinator groups workers that share cores by these.
        XCTAssertTrue(reg.hostID.hasPrefix("boot:") || reg.hostID.hasPrefix("name:"), "host id \(reg.hostID)")
        XCTAssertEqual(reg.cpus.map { Int($0) }, Kernels.allowedCPUs ?? [])
        var a = Jamba_V1_Assignment()
        a.epoch = 7
        var le = Jamba_V1_LayerExperts()
        le.layer = 1
        le.experts = [0, 3]
        a.layers = [le]
        try send(router, id, .assignment(a))
        let (_, ready) = try next(router)
        guard case .ready(let r) = ready.msg else { return XCTFail("expected AssignmentReady") }
        XCTAssertEqual(r.epoch, 7)
        XCTAssertEqual(r.held.first?.experts, [0, 3])
        XCTAssertGreaterThan(r.residentBytes, 0)

        // Garbage: a typed MALFORMED error, not a crash.
        try router.send([id, [0xde, 0xad, 0xbe, 0xef]])
        let (_, g) = try next(router)
        guard case .error(let ge) = g.msg else { return XCTFail("garbage must get an error") }
        XCTAssertEqual(ge.code, .malformed)

        // An expert it does not hold: that expert fails alone with UNKNOWN_EXPERT.
        let (m, ck) = try JambaModel.load(directory: URL(fileURLWithPath: Self.model))
        let rows = Matrix(rows: 3, cols: m.config.hiddenSize, storage: (0..<(3 * m.config.hiddenSize)).map { Float($0 % 17) / 17 - 0.5 })
        let gates: [Float] = [0.75, 0.5, 0.25]
        let whole = { (e: UInt32) in ExpertPart(expertID: e, tokenRows: [0, 1, 2], gates: gates, ranks: [0, 0, 0]) }
        let req = ExpertBatchCodec.makeRequest(requestID: 1, stepID: 1, layer: 1, tokens: rows, parts: [whole(3), whole(5)])
        try send(router, id, .request(req))
        let (_, rep) = try next(router)
        guard case .reply(let reply) = rep.msg else { return XCTFail("expected a reply") }
        let got = try ExpertBatchCodec.decodeReply(reply, requestID: 1, layer: 1, expected: [(3, 3, 0), (5, 3, 0)], tokens: 3,
                                                   hidden: m.config.hiddenSize)
        guard got.outcomes[0] == .combined, case .failed(let e5) = got.outcomes[1], let out3 = got.combined else {
            return XCTFail("expert 3 served, 5 refused")
        }
        XCTAssertEqual(e5.code, .unknownExpert)
        // The combined rows are expert 3's gated output (expert 5 failed and adds nothing), as the in-process
        // executor computes it on the same rows.
        let local = try ExpertStore.load([ExpertID(layer: 1, expert: 3)], from: ck, config: m.config)
        let ref = try XCTUnwrap(local.expert(layer: 1, expert: 3))(rows)
        var gatedRef = ref
        LocalExpertExecutor.scale(&gatedRef, by: gates)
        var expected = Matrix(zeros: 3, m.config.hiddenSize)
        MoECombine.add([gatedRef], tokens: [[0, 1, 2]], ranks: [[0, 0, 0]], into: &expected)
        let diff = zip(out3.storage, expected.storage).map { abs($0 - $1) }.max() ?? 1
        print("[worker] expert 3 remote vs local max |diff| \(diff)")
        XCTAssertEqual(diff, 0, "same kernel, same rows, same gate: bit-identical")

        // Slices: expert 3's two slices, asked for in one request each, sum to the whole expert bit for bit; a
        // slice the expert does not have fails alone with INVALID_ARGUMENT.
        var partials: [Matrix] = []
        for (n, slice) in [UInt32(1), 2].enumerated() {
            let sreq = ExpertBatchCodec.makeRequest(requestID: UInt64(10 + n), stepID: 1, layer: 1, tokens: rows,
                                                    parts: [ExpertPart(expertID: 3, slice: slice, tokenRows: [0, 1, 2])])
            try send(router, id, .request(sreq))
            let (_, srep) = try next(router)
            guard case .reply(let sr) = srep.msg else { return XCTFail("expected a reply") }
            let so = try ExpertBatchCodec.decodeReply(sr, requestID: UInt64(10 + n), layer: 1, expected: [(3, 3, slice)], tokens: 3,
                                                      hidden: m.config.hiddenSize)
            guard case .partial(let p) = so.outcomes[0] else { return XCTFail("slice \(slice) of expert 3 failed: \(so.outcomes[0])") }
            partials.append(p)
        }
        var summed = partials[0]
        MLP.accumulate(partials[1], into: &summed)
        XCTAssertEqual(summed.storage, ref.storage, "slice partials summed in order must equal the whole expert")
        let sreq = ExpertBatchCodec.makeRequest(requestID: 12, stepID: 1, layer: 1, tokens: rows,
                                                parts: [ExpertPart(expertID: 3, slice: 3, tokenRows: [0, 1, 2]), whole(0)])
        try send(router, id, .request(sreq))
        let (_, srep) = try next(router)
        guard case .reply(let sr) = srep.msg else { return XCTFail("expected a reply") }
        let so = try ExpertBatchCodec.decodeReply(sr, requestID: 12, layer: 1, expected: [(3, 3, 3), (0, 3, 0)], tokens: 3,
                                                  hidden: m.config.hiddenSize)
        guard case .failed(let se) = so.outcomes[0], so.outcomes[1] == .combined else { return XCTFail("slice 3 refused alone, expert 0 served") }
        XCTAssertEqual(se.code, .invalidArgument)
        print("[worker] bad slice: \(se.message)")

        // A tensor whose bytes disagree with its shape: the whole batch fails with BAD_TENSOR.
        var bad = req
        bad.tokens.rawData = Data(bad.tokens.rawData.prefix(10))
        try send(router, id, .request(bad))
        let (_, br) = try next(router)
        guard case .reply(let badReply) = br.msg else { return XCTFail("expected a reply") }
        XCTAssertTrue(badReply.hasError)
        XCTAssertEqual(badReply.error.code, .badTensor)
        print("[worker] bad tensor: \(badReply.error.message)")

        // An assignment naming a layer without experts is refused, and the worker keeps its experts.
        var wrong = Jamba_V1_Assignment()
        wrong.epoch = 8
        var l0 = Jamba_V1_LayerExperts()
        l0.layer = 0
        l0.experts = [1]
        wrong.layers = [l0]
        try send(router, id, .assignment(wrong))
        let (_, we) = try next(router)
        guard case .error(let wrongErr) = we.msg else { return XCTFail("bad assignment must be refused") }
        XCTAssertEqual(wrongErr.code, .invalidArgument)

        // Still serving after all of that.
        try send(router, id, .request(ExpertBatchCodec.makeRequest(requestID: 2, stepID: 2, layer: 1, tokens: rows, parts: [whole(0)])))
        let (_, ok) = try next(router)
        guard case .reply(let okReply) = ok.msg else { return XCTFail("expected a reply") }
        XCTAssertFalse(okReply.hasError)
        XCTAssertEqual(okReply.results.count, 1)
    }

    /// The coordinator restarts on the same endpoints: the worker notices, registers again, and serves.
    func testWorkerRejoinsARestartedCoordinator() throws {
        let expected = try Reference.greedy(model: Self.model, prompts: [testPrompts[1]], maxTokens: 10)[0]
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator()
        try h.startWorker("steady")
        try h.waitFor("worker") { $0.live.count == 1 && $0.allPlaced }
        let (client, worker) = (h.clientEndpoint, h.workerEndpoint)
        let old = try XCTUnwrap(h.coordinator)
        kill(old.processIdentifier, SIGTERM)
        old.waitUntilExit()
        XCTAssertEqual(old.terminationStatus, 0, "the coordinator stops cleanly on SIGTERM")
        let p = Process()
        p.executableURL = try ClusterHarness.executable("jamba-coordinator")
        p.arguments = ["--model", Self.model, "--client-endpoint", client, "--worker-endpoint", worker]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; p.waitUntilExit() }
        try h.waitFor("worker re-registered with the new coordinator", timeout: 30) { $0.live.count == 1 && $0.allPlaced }
        XCTAssertEqual(try h.client().generate(testPrompts[1], maxTokens: 10).tokens, expected)
    }
}

final class ReportedCPUsTests: XCTestCase {
    /// A worker's CPU list is a dispatch hint: kept as sent up to the limit, ignored (unknown) beyond it.
    func testCPUListsBeyondTheLimitCountAsUnknown() {
        XCTAssertEqual(WorkerRegistry.reportedCPUs([0, 1, 1, 3]), [0, 1, 3])
        XCTAssertEqual(WorkerRegistry.reportedCPUs([]), [])
        let tooMany = (0...UInt32(WorkerRegistry.maxReportedCPUs)).map { $0 }
        XCTAssertEqual(WorkerRegistry.reportedCPUs(Array(tooMany.dropLast())).count, WorkerRegistry.maxReportedCPUs)
        XCTAssertEqual(WorkerRegistry.reportedCPUs(tooMany), [], "\(tooMany.count) CPUs should count as unknown")
    }
}
