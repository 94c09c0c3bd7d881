// Golden: reads the transformers reference dumps (index.json + .npy) committed under Tests/Fixtures.
import Foundation
import JambaLoader

/// Fixture folders, found relative to this file so tests run from any working directory.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static func model(_ name: String) -> URL { root.appendingPathComponent(name) }
}

/// A float32 array from a golden .npy file with its shape.
struct GoldenArray {
    let shape: [Int]
    let values: [Float]

    /// Flat index of a multi-index.
    func at(_ idx: [Int]) -> Float {
        var flat = 0
        for (i, d) in zip(idx, shape) { flat = flat * d + i }
        return values[flat]
    }
}

/// One case of a model's golden/index.json.
struct GoldenCase {
    let name: String
    let json: [String: JSONValue]
    let dir: URL

    var inputIDs: [[Int]] { (json["input_ids"]?.array ?? []).map { ($0.array ?? []).compactMap(\.int) } }
    var attentionMask: [[Int]] { (json["attention_mask"]?.array ?? []).map { ($0.array ?? []).compactMap(\.int) } }
    var newTokens: [[Int]] { (json["gen_new_tokens"]?.array ?? []).map { ($0.array ?? []).compactMap(\.int) } }
    /// [n_moe][B][L][k]
    var routerTopIDs: [[[[Int]]]] {
        (json["router_topk_ids"]?.array ?? []).map { l in (l.array ?? []).map { b in (b.array ?? []).map { t in (t.array ?? []).compactMap(\.int) } } }
    }

    /// Each row's real (unpadded) tokens.
    var realTokens: [[Int]] {
        zip(inputIDs, attentionMask).map { ids, m in zip(ids, m).filter { $0.1 == 1 }.map(\.0) }
    }

    func array(_ key: String) throws -> GoldenArray? {
        guard let ref = json[key]?.object, let file = ref["file"]?.string, let off = ref["data_offset"]?.int,
              let shape = ref["shape"]?.array?.compactMap(\.int) else { return nil }
        let data = try Data(contentsOf: dir.appendingPathComponent(file))
        let count = shape.reduce(1, *)
        guard ref["dtype"]?.string == "float32", data.count >= off + 4 * count else {
            throw GoldenError.bad("\(file): not float32 or too short")
        }
        let values = data.withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: off + 4 * $0, as: UInt32.self))) }
        }
        return GoldenArray(shape: shape, values: values)
    }

    /// int64 .npy arrays (gen_top_ids).
    func intArray(_ key: String) throws -> (shape: [Int], values: [Int])? {
        guard let ref = json[key]?.object, let file = ref["file"]?.string, let off = ref["data_offset"]?.int,
              let shape = ref["shape"]?.array?.compactMap(\.int) else { return nil }
        let data = try Data(contentsOf: dir.appendingPathComponent(file))
        let count = shape.reduce(1, *)
        let values = data.withUnsafeBytes { raw in
            (0..<count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: off + 8 * $0, as: Int64.self))) }
        }
        return (shape, values)
    }
}

enum GoldenError: Error { case bad(String) }

/// All cases of a fixture model.
func goldenCases(_ model: String) throws -> [GoldenCase] {
    let dir = Fixtures.model(model).appendingPathComponent("golden")
    let data = try Data(contentsOf: dir.appendingPathComponent("index.json"))
    guard let cases = JSONValue.parse(data)?["cases"]?.array else { throw GoldenError.bad("no cases in \(model)") }
    return cases.compactMap { c in
        guard let o = c.object, let name = o["name"]?.string else { return nil }
        return GoldenCase(name: name, json: o, dir: dir)
    }
}
