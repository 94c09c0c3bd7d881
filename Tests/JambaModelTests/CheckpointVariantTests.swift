// CheckpointVariantTests: bf16, f16 and sharded checkpoints load and give transformers' logits on those weights.
import Foundation
import JambaLoader
import JambaMath
@testable import JambaModel
import XCTest

final class CheckpointVariantTests: XCTestCase {
    /// Logits of the `reference.json` prompt for a fixture folder, with all experts local.
    func logits(_ name: String, weights dtype: WeightDType = .f32, referenceFrom: String? = nil) throws -> (ours: Matrix, reference: [[Float]]) {
        let dir = Fixtures.model(name)
        let (model, ck) = try JambaModel.load(directory: dir, weightsDType: dtype)
        XCTAssertEqual(model.weightsDType, dtype)
        var exec = LocalExpertExecutor(experts: try ExpertStore.load(ExpertStore.allIDs(model.config), from: ck, config: model.config, dtype: dtype))
        let refDir = Fixtures.model(referenceFrom ?? name)
        let refJSON = try XCTUnwrap(JSONValue.parse(try Data(contentsOf: refDir.appendingPathComponent("reference.json"))))
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

    /// bf16-resident weights on a bf16 checkpoint hold exactly the checkpoint's values, so they must give
    /// transformers' logits like the f32-resident path, and differ from it only by summation order.
    func testBF16ResidentWeightsOnBF16Checkpoint() throws {
        let (bf16, reference) = try logits("tiny-a-bf16", weights: .bf16)
        let (f32, _) = try logits("tiny-a-bf16", weights: .f32)
        var vsReference: Float = 0, vsF32: Float = 0
        for (r, row) in reference.enumerated() {
            for (c, v) in row.enumerated() {
                vsReference = max(vsReference, abs(bf16[r, c] - v))
                vsF32 = max(vsF32, abs(bf16[r, c] - f32[r, c]))
            }
        }
        print("[variant] tiny-a-bf16 held as bf16: max |logit diff| vs transformers \(vsReference) (tol 2e-3), vs f32-resident \(vsF32) (tol 1e-4)")
        XCTAssertLessThanOrEqual(vsReference, 2e-3)
        XCTAssertLessThanOrEqual(vsF32, 1e-4)
    }

    /// An f32 checkpoint held as bf16 is rounded: the logits move by about bf16's precision, no more.
    func testBF16ResidentWeightsOnF32Checkpoint() throws {
        // tiny-a-sharded holds tiny-a's f32 weights bit for bit (tested below), with transformers' f32 logits.
        let (bf16, reference) = try logits("tiny-a", weights: .bf16, referenceFrom: "tiny-a-sharded")
        var maxDiff: Float = 0, scale: Float = 0
        for (r, row) in reference.enumerated() {
            for (c, v) in row.enumerated() { maxDiff = max(maxDiff, abs(bf16[r, c] - v)); scale = max(scale, abs(v)) }
        }
        print("[variant] tiny-a (f32) held as bf16: max |logit diff| vs transformers f32 \(maxDiff), logit scale \(scale) (tol 3% of scale)")
        XCTAssertGreaterThan(maxDiff, 0, "rounding to bf16 must change something")
        XCTAssertLessThanOrEqual(maxDiff, 0.03 * scale)
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
