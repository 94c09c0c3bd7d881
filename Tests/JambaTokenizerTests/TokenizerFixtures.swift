// TokenizerFixtures: locates Tests/Fixtures/tokenizer and decodes the golden and variant case files.
import Foundation
import XCTest
@testable import JambaTokenizer

enum TokenizerFixtures {
    /// Tests/Fixtures/tokenizer, found from this source file so it works from any working directory.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizer")

    static var tokenizerURL: URL { directory.appendingPathComponent("tokenizer.json") }

    struct Golden: Decodable {
        struct EncodeCase: Decodable {
            var text: String
            var ids: [Int]
            var tokens: [String]
            var ids_with_bos: [Int]
            var decoded: String
            var decoded_with_bos_skip_special: String
            var decoded_with_bos_keep_special: String
            var roundtrip_exact: Bool
        }

        struct DecodeCase: Decodable {
            var name: String
            var ids: [Int]
            var decoded: String
            var decoded_keep_special: String
        }

        var vocab_size: Int
        var special_ids: [String: Int]
        var encode_cases: [EncodeCase]
        var decode_cases: [DecodeCase]
    }

    struct Variants: Decodable {
        struct Case: Decodable {
            var text: String
            var ids: [Int]
            var ids_with_special: [Int]
            /// nil where HF itself panics (its Strip decoder with crossing cuts).
            var decoded: String?
            var decoded_keep_special: String?
        }

        struct Variant: Decodable {
            var name: String
            var cases: [Case]
        }

        var variants: [Variant]
    }

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden_tokenizer.json")))
    }

    static func variants() throws -> Variants {
        try JSONDecoder().decode(Variants.self,
                                 from: Data(contentsOf: directory.appendingPathComponent("variant_golden.json")))
    }

    static func tokenizer() throws -> Tokenizer { try Tokenizer(contentsOf: tokenizerURL) }

    /// The reference tokenizer.json as a mutable JSON object, for building variants and broken files.
    static func baseJSON() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: tokenizerURL))
        return try XCTUnwrap(object as? [String: Any])
    }

    /// Applies a patch in the format written by tools/tokenizer-bench/make_variant_cases.py.
    static func variantJSON(named name: String) throws -> [String: Any] {
        let raw = try JSONSerialization.jsonObject(
            with: Data(contentsOf: directory.appendingPathComponent("variant_golden.json")))
        let variants = try XCTUnwrap((raw as? [String: Any])?["variants"] as? [[String: Any]])
        let variant = try XCTUnwrap(variants.first { $0["name"] as? String == name }, "no variant \(name)")
        let patch = try XCTUnwrap(variant["patch"] as? [String: Any])
        var json = try baseJSON()
        var model = try XCTUnwrap(json["model"] as? [String: Any])
        for (key, value) in patch {
            switch key {
            case "merges_format":
                let merges = try XCTUnwrap(model["merges"] as? [[String]])
                model["merges"] = merges.map { $0.joined(separator: " ") }
            case "added_tokens_extra":
                let base = try XCTUnwrap(json["added_tokens"] as? [Any])
                json["added_tokens"] = base + (try XCTUnwrap(value as? [Any]))
            case "model":
                for (k, v) in try XCTUnwrap(value as? [String: Any]) { model[k] = v }
            default:
                json[key] = value
            }
        }
        json["model"] = model
        return json
    }

    /// Builds a tokenizer from an in-memory JSON object; `path` only labels errors.
    static func tokenizer(json: [String: Any], path: String = "<test>") throws -> Tokenizer {
        try Tokenizer(data: JSONSerialization.data(withJSONObject: json), path: path)
    }

    /// Builds a tokenizer from raw tokenizer.json bytes.
    static func tokenizer(data: Data, path: String = "<test>") throws -> Tokenizer {
        try Tokenizer(data: data, path: path)
    }

    /// Writes `data` to a fresh temporary file and returns its URL.
    static func temporaryFile(_ data: Data, name: String = "tokenizer.json") throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("jamba-tokenizer-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }
}
