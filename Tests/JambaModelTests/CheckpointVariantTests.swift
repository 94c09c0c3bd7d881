// CheckpointVariantTests: bf16, f16 and sharded checkpoints load and give transformers' logits on those weights.
import Foundation
import JambaLoader
import JambaMath
@testable import JambaModel
import XCTest

final class CheckpointVariantTests: XCTestCase {
    /// Logits of the `reference.json` prompt for a fixture folder, with all experts local.
    func logits(_ name: String) throws -> (ours: Matrix, reference: [[Float]]) {
        let dir = Fixtures.model(name)
        let (model, ck) = try JambaModel.load(directory: dir)
        var exec = LocalExpertExecutor(experts: try ExpertStore.load(ExpertStore.allIDs(model.config), from: ck, config: model.config))
        let refJSON = try XCTUnwrap(JSONValue.parse(try Data(contentsOf: dir.appendingPathComponent("reference.json"))))
        let tokens = try XCTUnwrap(refJSON["tokens"]?.array).compactMap(\.int)
        let reference = try XCTUnwrap(refJSON["logits"]?.array).map { ($0.array ?? []).compactMap { $0.double.map(Float.init) } }
        var states = [SequenceState(config: model.config)]
        var scratch = ForwardScratch(config: model.config)
        let r = try model.forward(tokens: [tokens], states: &states, executor: &exec,
                                  options: ForwardOptions(allLogits: true), scratch: &scratch)
        return (r.logits, reference)
    }

    func testHalfPrecisionAndShardedCheckpoints() throws {
        for name in ["tiny-a-bf16", "tiny-a-f16", "tiny-a-sharded"] {
            let (ours, reference) = try logits(name)
            XCTAssertEqual(ours.rows, reference.count)
            var maxDiff: Float = 0
            for (r, row) in reference.enumerated() {
                XCTAssertEqual(row.count, ours.cols)
                for (c, v) in row.enumerated() { maxDiff = max(maxDiff, abs(ours[r, c] - v)) }
            }
            print("[variant] \(name): max |logit diff| vs transformers \(maxDiff) (tol 2e-3)")
            XCTAssertLessThanOrEqual(maxDiff, 2e-3, name)
        }
    }

    func testShardedEqualsSingleFileBitForBit() throws {
        let single = try Checkpoint(directory: Fixtures.model("tiny-a"))
        let sharded = try Checkpoint(directory: Fixtures.model("tiny-a-sharded"))
        XCTAssertEqual(single.tensorNames, sharded.tensorNames)
        for name in single.tensorNames {
            let info = try single.info(name)
            XCTAssertEqual(try single.floats(name, shape: info.shape), try sharded.floats(name, shape: info.shape), name)
        }
    }

    func testConfigErrorsNameTheField() throws {
        let base = try String(contentsOf: Fixtures.model("tiny-a").appendingPathComponent("config.json"), encoding: .utf8)
        let cases: [(String, String, String)] = [
            ("\"attn_layer_offset\": 2", "\"attn_layer_offset\": 4", "attn_layer_offset"),
            ("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "num_key_value_heads"),
            ("\"num_experts_per_tok\": 2", "\"num_experts_per_tok\": 5", "num_experts_per_tok"),
            ("\"hidden_size\": 64", "\"hidden_size\": \"big\"", "hidden_size"),
            ("\"num_attention_heads\": 4", "\"num_attention_heads\": 5", "num_attention_heads"),
            ("\"mamba_dt_rank\": 4", "\"mamba_dt_rank\": \"huge\"", "mamba_dt_rank"),
        ]
        for (from, to, field) in cases {
            XCTAssertTrue(base.contains(from), from)
            let text = base.replacingOccurrences(of: from, with: to)
            XCTAssertThrowsError(try JambaConfig.parse(Data(text.utf8))) { e in
                print("[config] \(to): \(e)")
                XCTAssertTrue("\(e)".contains(field), "\(e)")
            }
        }
        // "auto" resolves to ceil(hidden / 16).
        let auto = try JambaConfig.parse(Data(base.replacingOccurrences(of: "\"mamba_dt_rank\": 4", with: "\"mamba_dt_rank\": \"auto\"").utf8))
        XCTAssertEqual(auto.mambaDtRank, 4)
        XCTAssertEqual(try JambaConfig.parse(Data("{}".utf8)).mambaDtRank, 256)
    }

    func testWrongTensorShapeNamesTensorAndFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jamba-shape-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = Fixtures.model("tiny-a")
        try FileManager.default.copyItem(at: src.appendingPathComponent("model.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        let cfg = try String(contentsOf: src.appendingPathComponent("config.json"), encoding: .utf8)
            .replacingOccurrences(of: "\"intermediate_size\": 128", with: "\"intermediate_size\": 96")
        try Data(cfg.utf8).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try JambaModel.load(directory: dir)) { e in
            print("[loader] \(e)")
            XCTAssertTrue("\(e)".contains("model.safetensors") && "\(e)".contains("[96, 64]"), "\(e)")
        }
    }
}
