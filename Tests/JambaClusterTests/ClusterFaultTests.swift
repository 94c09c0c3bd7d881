// ClusterFaultTests: garbage, bad jobs, wrong models and lost workers get clear errors; good jobs carry on.
import Foundation
import JambaCluster
import JambaWire
import XCTest
import ZeroMQ

final class ClusterFaultTests: XCTestCase {
    static let model = ClusterHarness.fixture("tiny-b")

    /// A raw DEALER that sends one frame and waits for the reply.
    func rawExchange(_ endpoint: String, _ payload: [UInt8], frames: Int = 1) throws -> [UInt8]? {
        let ctx = try ZMQContext()
        let s = try Socket(ctx, type: .dealer)
        defer { s.close(); ctx.shutdown() }
        try s.set(.receiveTimeout(milliseconds: 5000))
        try s.connect(endpoint)
        try s.send(Array(repeating: payload, count: frames))
        return try s.receiveMultipart()?.last
    }

    func testGarbageGetsErrorRepliesWhileAJobRuns() throws {
        let expected = try Reference.greedy(model: Self.model, prompts: [testPrompts[0]], maxTokens: 150)[0]
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator(["--max-request-mb", "1"])
        try h.startWorker("w")
        try h.waitFor("worker") { $0.live.count == 1 && $0.allPlaced }
        let endpoint = h.clientEndpoint
        let result = ResultBox(count: 1)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            result.set(0, (try? ClusterClient(endpoint: endpoint, timeout: 20).generate(testPrompts[0], maxTokens: 150).tokens) ?? [-1])
            done.signal()
        }
        let garbage: [UInt8] = [0xff, 0x13, 0x37, 0x00, 0x42, 0x99, 0x07]
        for (what, payload, frames) in [("garbage", garbage, 1), ("empty", [], 1), ("two frames", garbage, 2)] {
            let reply = try XCTUnwrap(try rawExchange(h.clientEndpoint, payload, frames: frames), "client endpoint answers \(what)")
            let r = try Jamba_V1_ClientReply.parse(reply)
            guard case .error(let e) = r.reply else { return XCTFail("expected an error reply to \(what)") }
            print("[fault] client endpoint, \(what): \(e.code) \(e.message)")
            XCTAssertEqual(e.code, .malformed)
            let wreply = try XCTUnwrap(try rawExchange(h.workerEndpoint, payload, frames: frames), "worker endpoint answers \(what)")
            let w = try Jamba_V1_CoordinatorToWorker.parse(wreply)
            guard case .error(let we) = w.msg else { return XCTFail("expected an error to \(what) on the worker endpoint") }
            print("[fault] worker endpoint, \(what): \(we.code) \(we.message)")
            XCTAssertTrue(we.code == .malformed || we.code == .notReady)
        }
        // A heartbeat from a peer that never registered is told to register, not trusted.
        var env = Jamba_V1_WorkerToCoordinator()
        env.heartbeat = Jamba_V1_Heartbeat()
        let hb = try Jamba_V1_CoordinatorToWorker.parse(try XCTUnwrap(try rawExchange(h.workerEndpoint, try env.serialized())))
        guard case .error(let he) = hb.msg else { return XCTFail("unknown heartbeat must be refused") }
        XCTAssertEqual(he.code, .notReady)
        // A worker speaking another protocol version is refused with UNSUPPORTED_VERSION.
        var reg = Jamba_V1_WorkerToCoordinator()
        var r = Jamba_V1_Register()
        r.protocolVersion = 99
        r.workerName = "future"
        reg.register = r
        let vr = try Jamba_V1_CoordinatorToWorker.parse(try XCTUnwrap(try rawExchange(h.workerEndpoint, try reg.serialized())))
        guard case .error(let ve) = vr.msg else { return XCTFail("version 99 must be refused") }
        XCTAssertEqual(ve.code, .unsupportedVersion)
        // A client request over the size limit gets OVERSIZED, not silence.
        let big = try XCTUnwrap(try rawExchange(h.clientEndpoint, [UInt8](repeating: 7, count: 2 << 20)))
        guard case .error(let oe) = try Jamba_V1_ClientReply.parse(big).reply else { return XCTFail("oversized must be refused") }
        print("[fault] oversized request: \(oe.code) \(oe.message)")
        XCTAssertEqual(oe.code, .oversized)
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(result.get(0), expected, "the job running meanwhile is unaffected")
    }

    func testBadJobsAreRefusedWithReasons() throws {
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator(["--max-context", "16"])
        try h.startWorker("w")
        try h.waitFor("worker") { $0.live.count == 1 && $0.allPlaced }
        let c = try h.client()
        func submit(_ configure: (inout Jamba_V1_SubmitJob) -> Void) -> String {
            var job = Jamba_V1_SubmitJob()
            var sp = Jamba_V1_SamplingParams()
            sp.maxTokens = 4
            job.sampling = sp
            configure(&job)
            do {
                try c.submit(job) { _ in }
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        let cases: [(String, String, (inout Jamba_V1_SubmitJob) -> Void)] = [
            ("empty text", "empty", { $0.text = "" }),
            ("no prompt", "no prompt", { _ in }),
            ("top-p 1.5", "top-p", { $0.text = "And God"; $0.sampling.topP = 1.5 }),
            ("negative temperature", "temperature", { $0.text = "And God"; $0.sampling.temperature = -1 }),
            ("token out of vocabulary", "5000", { var t = Jamba_V1_TokenIds(); t.ids = [1, 5000]; $0.tokens = t }),
            ("prompt over the context", "context limit", { var t = Jamba_V1_TokenIds(); t.ids = Array(repeating: 5, count: 20); $0.tokens = t }),
        ]
        for (what, word, configure) in cases {
            let msg = submit(configure)
            print("[fault] \(what): \(msg)")
            XCTAssertTrue(msg.contains(word) && msg.contains("INVALID_ARGUMENT") || msg.contains(word) && msg.contains("invalidArgument"), "\(what): \(msg)")
        }
        XCTAssertEqual(try c.generate([1, 2, 3], maxTokens: 4).tokens.count, 4, "a good job still runs")
    }

    func testWorkerWithAnotherModelIsRefused() throws {
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator()
        let other = Process()
        other.executableURL = try ClusterHarness.executable("jamba-worker")
        other.arguments = ["--model", ClusterHarness.fixture("tiny-a"), "--coordinator", h.workerEndpoint, "--name", "wrong"]
        let err = Pipe()
        other.standardError = err
        other.standardOutput = FileHandle.nullDevice
        try other.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        other.waitUntilExit()
        print("[fault] worker with another model exited \(other.terminationStatus)")
        XCTAssertNotEqual(other.terminationStatus, 0)
        XCTAssertTrue(text.contains("fingerprint"), text)
        XCTAssertEqual(StatusSnapshot(try h.client().status()).live.count, 0)
    }

    /// Without replicas, a killed worker's running job fails with a clear error (no hang) and status shows it lost.
    func testLostWorkerFailsRunningJobsClearly() throws {
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator(["--min-workers", "2", "--spare-slots", "0", "--heartbeat-timeout", "1.5", "--request-timeout", "5"])
        try h.startWorker("keep")
        try h.startWorker("doomed")
        try h.waitFor("2 workers") { $0.live.count == 2 && $0.allPlaced }
        let endpoint = h.clientEndpoint
        let outcome = ResultBox(count: 1)
        let messages = MessageBox()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                let r = try ClusterClient(endpoint: endpoint, timeout: 20).generate(testPrompts[0], maxTokens: 100_000)
                outcome.set(0, [Int(r.final.finishReason.rawValue)])
                messages.add(r.errors)
            } catch {
                messages.add(["\(error)"])
            }
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.5)
        let started = Date()
        if let p = h.worker("doomed") { kill(p.processIdentifier, SIGKILL) }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "the job ends instead of hanging")
        print("[fault] lost worker: job ended after \(String(format: "%.2f", Date().timeIntervalSince(started))) s with \(messages.all)")
        XCTAssertEqual(outcome.get(0), [Int(Jamba_V1_FinishReason.error.rawValue)])
        let text = messages.all.joined()
        XCTAssertTrue(text.contains("doomed") && text.contains("no other live worker holds"), "\(messages.all)")
        try h.waitFor("doomed shown lost", timeout: 10) { $0.worker("doomed")?.state == .lost }
    }

    /// With replicas of every expert, losing a worker mid-job re-sends its rows to the survivor: same tokens.
    func testReplicasTakeOverFromALostWorker() throws {
        let expected = try Reference.greedy(model: Self.model, prompts: [testPrompts[0]], maxTokens: 300)[0]
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator(["--min-workers", "2", "--spare-slots", "1.0", "--heartbeat-timeout", "1.5", "--request-timeout", "5"])
        try h.startWorker("a")
        try h.startWorker("b")
        try h.waitFor("2 workers, every expert on both") { $0.live.count == 2 && $0.experts(of: "a") == 32 && $0.experts(of: "b") == 32 }
        let endpoint = h.clientEndpoint
        let result = ResultBox(count: 1)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            result.set(0, (try? ClusterClient(endpoint: endpoint, timeout: 20).generate(testPrompts[0], maxTokens: 300).tokens) ?? [-1])
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.3)
        if let p = h.worker("b") { kill(p.processIdentifier, SIGKILL) }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(result.get(0), expected, "failover to the replica keeps every token")
        // Which way the loss was noticed depends on timing: a failed or unanswered request (its rows, or its expert
        // slices, re-sent whole to the replica) or the heartbeat timeout before the next send. Either keeps the tokens.
        let resent = h.log("coordinator").components(separatedBy: "re-sending rows of failed workers").count - 1
        print("[fault] replica takeover: \(result.get(0) == expected ? "all 300 tokens exact" : "MISMATCH"); layers re-sent: \(resent)")
    }

    func testWorkerStopsCleanlyOnSIGTERM() throws {
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator()
        try h.startWorker("w")
        try h.waitFor("worker") { $0.live.count == 1 }
        let p = try XCTUnwrap(h.worker("w"))
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertTrue(h.log("w").contains("stopping on signal"))
    }

    func testClientReportsUnreachableCoordinator() throws {
        let p = Process()
        p.executableURL = try ClusterHarness.executable("jamba")
        p.arguments = ["status", "--coordinator", "tcp://127.0.0.1:9", "--timeout", "1"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print("[fault] unreachable: exit \(p.terminationStatus): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.contains("did not answer"))
    }
}

final class MessageBox: @unchecked Sendable {
    // `items` only touched under `lock`.
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ m: [String]) { lock.lock(); items += m; lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}
