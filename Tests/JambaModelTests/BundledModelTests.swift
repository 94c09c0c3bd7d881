// BundledModelTests: the shipped KJV model: perplexity and greedy text equal transformers' on held-out scripture.
import Foundation
import JambaLoader
import JambaMath
@testable import JambaModel
import JambaTokenizer
import XCTest

final class BundledModelTests: XCTestCase {
    static let modelDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/kjv-jamba-mini")
    static let heldout = Fixtures.model("kjv-heldout")

    /// `count` greedy tokens through the continuous-batching engine with every expert in process.
    static func greedy(model: JambaModel, experts: ExpertStore, prompt: [Int], count: Int) throws -> [Int] {
        var engine = Engine(model: model, executor: LocalExpertExecutor(experts: experts))
        try engine.submit(id: 0, prompt: prompt, params: SamplingParams(maxTokens: count, ignoreEOS: true))
        var got: [Int] = []
        while !engine.isIdle { for e in engine.step() { if case let .token(_, t) = e { got.append(t) } } }
        return got
    }

    func testHeldOutPerplexityAndGreedyTextMatchTransformers() throws {
        let ref = try XCTUnwrap(JSONValue.parse(try Data(contentsOf: Self.heldout.appendingPathComponent("reference.json"))))
        let ids = try XCTUnwrap(JSONValue.parse(try Data(contentsOf: Self.heldout.appendingPathComponent("heldout_ids.json")))?.array).compactMap(\.int)
        let text = try String(contentsOf: Self.heldout.appendingPathComponent("heldout.txt"), encoding: .utf8)
        let tokenizer = try Tokenizer(directory: Self.modelDir)
        XCTAssertEqual(tokenizer.encode(text.hasSuffix("\n") ? String(text.dropLast()) : text), ids, "our tokenizer gives transformers' ids")

        let (model, ck) = try JambaModel.load(directory: Self.modelDir)  // sharded bf16 checkpoint
        let experts = try ExpertStore.load(ExpertStore.allIDs(model.config), from: ck, config: model.config)
        let (nll, ppl) = try PerplexityMeter.measure(model: model, experts: experts, tokens: ids)
        let refPPL = try XCTUnwrap(ref["passage"]?["perplexity"]?.double)
        let rel = abs(ppl - refPPL) / refPPL
        print("[kjv] held-out perplexity ours \(ppl) vs transformers \(refPPL): relative diff \(rel) (tol 0.5%); mean NLL \(nll); vocab \(model.config.vocabSize)")
        XCTAssertLessThanOrEqual(rel, 0.005)
        XCTAssertLessThan(ppl, Double(model.config.vocabSize) / 50, "far below the vocabulary size: the model learned")

        let prompt = try XCTUnwrap(ref["greedy"]?["prompt_ids"]?.array).compactMap(\.int)
        let expected = try XCTUnwrap(ref["greedy"]?["new_ids"]?.array).compactMap(\.int)
        let got = try Self.greedy(model: model, experts: experts, prompt: prompt, count: expected.count)
        XCTAssertEqual(got, expected)
        var stream = StreamingDecoder(tokenizer: tokenizer)
        _ = try stream.append(contentsOf: prompt)
        let continuation = try stream.append(contentsOf: got) + stream.finish()
        print("[kjv] And God said\(continuation)")
        XCTAssertEqual(continuation, " " + (ref["greedy"]?["new_text"]?.string ?? ""))
    }

    /// The shipped checkpoint is bf16, so holding it as bf16 keeps every weight: the greedy continuation must be
    /// transformers' token for token, at half the resident memory.
    func testBF16ResidentGreedyTextMatchesTransformers() throws {
        let ref = try XCTUnwrap(JSONValue.parse(try Data(contentsOf: Self.heldout.appendingPathComponent("reference.json"))))
        let (model, ck) = try JambaModel.load(directory: Self.modelDir, weightsDType: .bf16)
        let experts = try ExpertStore.load(ExpertStore.allIDs(model.config), from: ck, config: model.config, dtype: .bf16)
        let (f32Model, _) = try JambaModel.load(directory: Self.modelDir)
        print("[kjv] bf16-resident: non-expert \(model.nonExpertBytesPerToken) B/token vs f32 \(f32Model.nonExpertBytesPerToken); experts \(experts.residentBytes) B")
        XCTAssertLessThan(Double(model.nonExpertBytesPerToken), 0.52 * Double(f32Model.nonExpertBytesPerToken))
        let prompt = try XCTUnwrap(ref["greedy"]?["prompt_ids"]?.array).compactMap(\.int)
        let expected = try XCTUnwrap(ref["greedy"]?["new_ids"]?.array).compactMap(\.int)
        let got = try Self.greedy(model: model, experts: experts, prompt: prompt, count: expected.count)
        XCTAssertEqual(got, expected)
    }
}
