// ClusterIntegrationTests: real coordinator and worker processes on loopback give the in-process tokens.
import Foundation
import JambaCluster
import JambaModel
import JambaWire
import XCTest

final class ClusterIntegrationTests: XCTestCase {
    static let model = ClusterHarness.fixture("tiny-b")

    /// Greedy tokens from `jamba generate` (the real CLI, in its own process).
    static func jambaGenerate(_ prompt: [Int], maxTokens: Int, extra: [String] = []) throws -> [Int] {
        let gen = Process()
        gen.executableURL = try ClusterHarness.executable("jamba")
        gen.arguments = ["generate", "--model", model, "--tokens", prompt.map(String.init).joined(separator: ","),
                         "--max-tokens", "\(maxTokens)", "--ignore-eos", "--json"] + extra
        let out = Pipe()
        gen.standardOutput = out
        try gen.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        gen.waitUntilExit()
        XCTAssertEqual(gen.terminationStatus, 0)
        let tokens = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["tokens"] as? [Int])
        XCTAssertEqual(tokens.count, maxTokens)
        return tokens
    }

    /// 1, 2 and 3 workers: the same greedy tokens as `jamba generate` (the real CLI, in its own process).
    func testWorkerCountsGiveLocalTokens() throws {
        let prompt = testPrompts[0]
        let expected = try Self.jambaGenerate(prompt, maxTokens: 20)
        for n in 1...3 {
            let h = try ClusterHarness(model: Self.model)
            try h.startCoordinator(["--min-workers", "\(n)"])
            for i in 0..<n { try h.startWorker("w\(i)") }
            try h.waitFor("\(n) live workers with every expert placed") { $0.live.count == n && $0.allPlaced }
            let r = try h.client().generate(prompt, maxTokens: 20)
            print("[cluster] \(n) worker(s): \(r.tokens.count) tokens, equal to jamba generate: \(r.tokens == expected)")
            XCTAssertEqual(r.tokens, expected, "\(n) workers")
            XCTAssertEqual(r.final.finishReason, .length)
            let s = StatusSnapshot(try h.client().status())
            // One job of 20 tokens: a prompt step (which gives the first token), then 19 steps of one decode row.
            let t = s.reply.timings
            print("[cluster] \(n) worker(s): steps \(t.steps), decode-only steps \(t.decodeSteps) with \(t.decodeRows) rows, \(String(format: "%.1f", t.decodeStepMs)) of \(String(format: "%.1f", t.stepMs)) ms")
            XCTAssertEqual(t.steps, 20)
            XCTAssertEqual(t.decodeSteps, 19)
            XCTAssertEqual(t.decodeRows, 19)
            XCTAssertTrue(t.decodeStepMs > 0 && t.decodeStepMs < t.stepMs, "decode-only time is a part of the step time")
            XCTAssertTrue(t.decodeExpertMs > 0 && t.decodeExpertMs < t.decodeStepMs && t.decodeExpertMs < t.expertMs,
                          "decode-only expert time \(t.decodeExpertMs) ms is a part of both")
            let held = (0..<n).map { s.experts(of: "w\($0)") }
            print("[cluster] \(n) worker(s): experts held per worker \(held), resident bytes \(s.reply.workers.map(\.residentBytes))")
            if n > 1 { XCTAssertTrue(held.allSatisfy { $0 < 32 }, "each worker holds a share, not every expert: \(held)") }
            h.stopAll()
        }
    }

    /// bf16-resident weights end to end: a coordinator and 2 workers started with `--weights-dtype bf16` give the
    /// tokens of `jamba generate --weights-dtype bf16`, and each worker holds its experts in 2 bytes per weight.
    func testBF16ClusterGivesLocalBF16Tokens() throws {
        let prompt = testPrompts[1]
        let expected = try Self.jambaGenerate(prompt, maxTokens: 16, extra: ["--weights-dtype", "bf16"])

        let config = try JambaConfig.load(directory: URL(fileURLWithPath: Self.model))
        let h = try ClusterHarness(model: Self.model)
        defer { h.stopAll() }
        try h.startCoordinator(["--min-workers", "2", "--weights-dtype", "bf16"])
        for i in 0..<2 { try h.startWorker("w\(i)", ["--weights-dtype", "bf16"]) }
        try h.waitFor("2 live workers with every expert placed") { $0.live.count == 2 && $0.allPlaced }
        let r = try h.client().generate(prompt, maxTokens: 16)
        print("[cluster] bf16 weights, 2 workers: equal to jamba generate --weights-dtype bf16: \(r.tokens == expected)")
        XCTAssertEqual(r.tokens, expected)
        let s = StatusSnapshot(try h.client().status())
        for name in ["w0", "w1"] {
            let w = try XCTUnwrap(s.worker(name))
            let bf16Bytes = UInt64(s.experts(of: name) * 3 * config.hiddenSize * config.intermediateSize * 2)
            print("[cluster] \(name): \(s.experts(of: name)) experts, resident \(w.residentBytes) B, expected in bf16 \(bf16Bytes) B")
            XCTAssertEqual(w.residentBytes, bf16Bytes)
        }
    }

    /// 8 clients at once, each with its own prompt, each gets exactly its own in-process answer.
    func testConcurrentClientsGetTheirOwnAnswers() throws {
        let expected = try Reference.greedy(model: Self.model, prompts: testPrompts, maxTokens: 16)
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator(["--min-workers", "2"])
        try h.startWorker("a")
        try h.startWorker("b")
        try h.waitFor("2 live workers") { $0.live.count == 2 && $0.allPlaced }
        let endpoint = h.clientEndpoint
        let results = ResultBox(count: testPrompts.count)
        runOnThreads(testPrompts.count) { i in
            do {
                let c = try ClusterClient(endpoint: endpoint, timeout: 20)
                results.set(i, try c.generate(testPrompts[i], maxTokens: 16).tokens)
            } catch {
                results.set(i, [-1])
            }
        }
        for i in testPrompts.indices {
            XCTAssertEqual(results.get(i), expected[i], "client \(i)")
        }
        print("[cluster] 8 concurrent clients: \(testPrompts.indices.filter { results.get($0) == expected[$0] }.count) of 8 exact")
    }

    /// A worker that joins after the coordinator started gets experts and serves rows; answers stay exact.
    func testLateWorkerIsTakenIntoService() throws {
        let expected = try Reference.greedy(model: Self.model, prompts: [testPrompts[3]], maxTokens: 12)[0]
        let h = try ClusterHarness(model: Self.model)
        try h.startCoordinator()
        try h.startWorker("first")
        try h.waitFor("first worker") { $0.live.count == 1 && $0.allPlaced }
        XCTAssertEqual(try h.client().generate(testPrompts[3], maxTokens: 12).tokens, expected)
        try h.startWorker("late")
        try h.waitFor("late worker holding experts") { $0.worker("late")?.state == .live && $0.experts(of: "late") > 0 }
        // Experts moved: the first worker no longer holds everything once the late one is serving.
        try h.waitFor("first worker dropping copies") { $0.experts(of: "first") < 32 }
        XCTAssertEqual(try h.client().generate(testPrompts[3], maxTokens: 12).tokens, expected)
        let s = StatusSnapshot(try h.client().status())
        print("[cluster] late join: experts first=\(s.experts(of: "first")) late=\(s.experts(of: "late")), rows served late=\(s.worker("late")?.rowsServed ?? 0)")
        XCTAssertGreaterThan(s.worker("late")?.rowsServed ?? 0, 0, "the late worker computed expert rows")
    }
}

/// Results written from concurrent threads.
final class ResultBox: @unchecked Sendable {
    // `values` only touched under `lock`.
    private let lock = NSLock()
    private var values: [[Int]]
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Int]) { lock.lock(); values[i] = v; lock.unlock() }
    func get(_ i: Int) -> [Int] { lock.lock(); defer { lock.unlock() }; return values[i] }
}
