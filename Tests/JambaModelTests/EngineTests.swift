// EngineTests: continuous batching gives each request the tokens it gets alone; validation; seeded sampling.
import Foundation
@testable import JambaModel
import XCTest

final class EngineTests: XCTestCase {
    static let prompts: [[Int]] = [
        [1, 409, 501, 625, 1080, 496, 407, 1179, 285, 379, 496],
        [1, 804, 2871, 271, 379],
        [1],
        [1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200],
    ]

    func makeEngine(_ limits: EngineLimits? = nil) throws -> Engine<LocalExpertExecutor> {
        let (model, exec) = try GoldenForwardTests.load("tiny-b")
        return Engine(model: model, executor: exec, limits: limits)
    }

    /// Runs the engine until idle; requests in `late` are submitted after `joinAfter` steps.
    func run(_ engine: inout Engine<LocalExpertExecutor>, _ requests: [(Int, [Int], SamplingParams)],
             late: [(Int, [Int], SamplingParams)] = [], joinAfter: Int = 0) throws -> [Int: [Int]] {
        for (id, p, s) in requests { try engine.submit(id: id, prompt: p, params: s) }
        var out: [Int: [Int]] = [:]
        var steps = 0
        var pending = late
        while !engine.isIdle || !pending.isEmpty {
            if steps == joinAfter { for (id, p, s) in pending { try engine.submit(id: id, prompt: p, params: s) }; pending = [] }
            for e in engine.step() {
                if case let .token(id, t) = e { out[id, default: []].append(t) }
                if case let .failed(id, m) = e { XCTFail("request \(id) failed: \(m)") }
            }
            steps += 1
        }
        return out
    }

    func testBatchedEqualsAlone() throws {
        let greedy = SamplingParams(maxTokens: 12, ignoreEOS: true)
        var alone: [Int: [Int]] = [:]
        for (i, p) in Self.prompts.enumerated() {
            var e = try makeEngine()
            alone[i] = try run(&e, [(i, p, greedy)])[i]
        }
        // Two start together, two join three steps later (their prefill shares a step with the others' decodes).
        var e = try makeEngine(EngineLimits(maxContext: 1000, prefillChunk: 4))
        let together = try run(&e, [(0, Self.prompts[0], greedy), (1, Self.prompts[1], greedy)],
                               late: [(2, Self.prompts[2], greedy), (3, Self.prompts[3], greedy)], joinAfter: 3)
        for i in Self.prompts.indices {
            XCTAssertEqual(together[i], alone[i], "request \(i): batched with chunked prefill vs alone")
            XCTAssertEqual(together[i]?.count, 12)
        }
        print("[engine] 4 requests, continuous batching with chunked prefill: tokens equal to each run alone")
    }

    func testSeededSamplingIsReproducible() throws {
        let p = SamplingParams(temperature: 0.9, topK: 50, topP: 0.9, seed: 42, maxTokens: 16, ignoreEOS: true)
        var a = try makeEngine(), b = try makeEngine(), c = try makeEngine()
        let ra = try run(&a, [(0, Self.prompts[0], p)])[0]
        let rb = try run(&b, [(0, Self.prompts[0], p)])[0]
        var p2 = p
        p2.seed = 7
        let rc = try run(&c, [(0, Self.prompts[0], p2)])[0]
        XCTAssertEqual(ra, rb, "same seed, same tokens")
        XCTAssertNotEqual(ra, rc, "another seed gives other tokens (16 tokens at T=0.9)")
    }

    func testTopKOneIsGreedy() throws {
        var a = try makeEngine(), b = try makeEngine()
        let greedy = try run(&a, [(0, Self.prompts[1], SamplingParams(maxTokens: 10, ignoreEOS: true))])[0]
        let k1 = try run(&b, [(0, Self.prompts[1], SamplingParams(temperature: 1.5, topK: 1, seed: 3, maxTokens: 10, ignoreEOS: true))])[0]
        XCTAssertEqual(greedy, k1)
    }

    func testBadRequestsAreRefusedWithReasons() throws {
        var e = try makeEngine(EngineLimits(maxContext: 8))
        let cases: [([Int], SamplingParams, String)] = [
            ([], SamplingParams(), "empty"),
            ([1, 2], SamplingParams(maxTokens: 0), "max-tokens"),
            ([1, 2], SamplingParams(topP: 1.5), "top-p"),
            ([1, 2], SamplingParams(topP: 0), "top-p"),
            ([1, 2], SamplingParams(temperature: -1), "temperature"),
            ([1, 5000], SamplingParams(), "5000"),
            (Array(repeating: 1, count: 9), SamplingParams(), "context limit"),
        ]
        for (prompt, params, word) in cases {
            XCTAssertThrowsError(try e.submit(id: 1, prompt: prompt, params: params)) { err in
                XCTAssertTrue("\(err)".contains(word), "'\(err)' should mention \(word)")
            }
        }
        XCTAssertTrue(e.isIdle)
        // Generation stops at the context limit with reason "length".
        try e.submit(id: 2, prompt: [1, 2, 3], params: SamplingParams(maxTokens: 100, ignoreEOS: true))
        var finished: FinishReason?
        var count = 0
        while !e.isIdle {
            for ev in e.step() {
                if case .token = ev { count += 1 }
                if case let .finished(_, r, _) = ev { finished = r }
            }
        }
        XCTAssertEqual(finished, .length)
        XCTAssertEqual(count, 5)
    }

    /// Generation ends right after a stop token (EOS or an extra stop id) with reason eos, and not before.
    func testStopsAtStopToken() throws {
        var a = try makeEngine()
        let free = try run(&a, [(0, Self.prompts[0], SamplingParams(maxTokens: 12, ignoreEOS: true))])[0] ?? []
        let stop = try XCTUnwrap(free.dropFirst(2).first { !free.prefix(2).contains($0) }, "a token not seen earlier")
        let at = try XCTUnwrap(free.firstIndex(of: stop))
        var e = try makeEngine()
        try e.submit(id: 0, prompt: Self.prompts[0], params: SamplingParams(maxTokens: 12, stopTokens: [stop]))
        var tokens: [Int] = []
        var reason: FinishReason?
        while !e.isIdle {
            for ev in e.step() {
                if case let .token(_, t) = ev { tokens.append(t) }
                if case let .finished(_, r, _) = ev { reason = r }
            }
        }
        XCTAssertEqual(tokens, Array(free[...at]))
        XCTAssertEqual(reason, .eos)
    }
}
