// TokenizerErrorTests: broken or unsupported tokenizer files and bad ids throw errors that name the problem.
import Foundation
import XCTest
@testable import JambaTokenizer

final class TokenizerErrorTests: XCTestCase {
    /// Loads `json` through the public file initializer and returns the error's description.
    private func loadError(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws -> TokenizerError {
        let url = try TokenizerFixtures.temporaryFile(data)
        do {
            _ = try Tokenizer(contentsOf: url)
        } catch let error as TokenizerError {
            XCTAssertTrue(error.description.contains(url.path), "\(error) should name the file", file: file, line: line)
            return error
        }
        XCTFail("loading should have thrown", file: file, line: line)
        throw XCTSkip("no error")
    }

    private func loadError(patching patch: (inout [String: Any]) throws -> Void,
                           file: StaticString = #filePath, line: UInt = #line) throws -> TokenizerError {
        var json = try TokenizerFixtures.baseJSON()
        try patch(&json)
        return try loadError(JSONSerialization.data(withJSONObject: json), file: file, line: line)
    }

    private func assertDescription(_ error: TokenizerError, contains parts: [String],
                                   file: StaticString = #filePath, line: UInt = #line) {
        for part in parts {
            XCTAssertTrue(error.description.contains(part), "'\(error.description)' should mention '\(part)'",
                          file: file, line: line)
        }
    }

    func testMalformedJSON() throws {
        let error = try loadError(Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [}"#.utf8))
        guard case .malformedFile = error else { return XCTFail("\(error)") }
        assertDescription(error, contains: ["malformed"])
    }

    func testWrongFieldTypeNamesTheField() throws {
        let error = try loadError { json in
            var model = try XCTUnwrap(json["model"] as? [String: Any])
            model["vocab"] = ["a", "b"]
            json["model"] = model
        }
        assertDescription(error, contains: ["model.vocab", "object"])
    }

    func testMissingModelAndVocab() throws {
        assertDescription(try loadError { $0["model"] = nil }, contains: ["missing", "'model'"])
        let error = try loadError { json in
            var model = try XCTUnwrap(json["model"] as? [String: Any])
            model["vocab"] = nil
            json["model"] = model
        }
        assertDescription(error, contains: ["missing", "model.vocab"])
    }

    func testUnsupportedModelType() throws {
        let error = try loadError { json in
            var model = try XCTUnwrap(json["model"] as? [String: Any])
            model["type"] = "Unigram"
            json["model"] = model
        }
        XCTAssertEqual(error, .unsupportedComponent(path: error.pathForTest, component: "model", type: "Unigram"))
        assertDescription(error, contains: ["unsupported model type 'Unigram'"])
    }

    func testUnsupportedPipelineComponents() throws {
        assertDescription(try loadError { $0["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": false] },
                          contains: ["pre_tokenizer", "ByteLevel"])
        assertDescription(try loadError { $0["decoder"] = ["type": "WordPiece", "prefix": "##"] },
                          contains: ["decoder", "WordPiece"])
        assertDescription(try loadError { $0["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": ""] },
                          contains: ["normalizer", "Precompiled"])
        assertDescription(try loadError { $0["post_processor"] = ["type": "BertProcessing"] },
                          contains: ["post_processor", "BertProcessing"])
        let regex: [String: Any] = ["type": "Replace", "pattern": ["Regex": " +"], "content": " "]
        assertDescription(try loadError { $0["normalizer"] = regex }, contains: ["Regex"])
        // Inside a Sequence too.
        let nested: [String: Any] = ["type": "Sequence", "decoders": [["type": "Fuse"], ["type": "CTC"]]]
        assertDescription(try loadError { $0["decoder"] = nested }, contains: ["decoder", "CTC"])
    }

    func testMalformedConfigInModelDirectory() throws {
        let dir = try TokenizerFixtures.temporaryFile(Data(contentsOf: TokenizerFixtures.tokenizerURL))
            .deletingLastPathComponent()
        let config = dir.appendingPathComponent("tokenizer_config.json")
        try Data("{not json".utf8).write(to: config)
        XCTAssertThrowsError(try Tokenizer(directory: dir)) { error in
            XCTAssertTrue(String(describing: error).contains(config.path), "\(error)")
        }
    }

    func testMergeWithUnknownTokenNamesTheMerge() throws {
        let error = try loadError { json in
            var model = try XCTUnwrap(json["model"] as? [String: Any])
            var merges = try XCTUnwrap(model["merges"] as? [[String]])
            merges[5] = ["th", "zzqq"]
            model["merges"] = merges
            json["model"] = model
        }
        assertDescription(error, contains: ["model.merges[5]", "zzqq"])
        let bad = try loadError { json in
            var model = try XCTUnwrap(json["model"] as? [String: Any])
            model["merges"] = ["t h", "no-space-here"]
            json["model"] = model
        }
        assertDescription(bad, contains: ["model.merges[1]", "no-space-here"])
    }

    func testTemplateNamingUnknownSpecialToken() throws {
        let error = try loadError { json in
            json["post_processor"] = [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": "<bos>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "special_tokens": [String: Any](),
            ]
        }
        assertDescription(error, contains: ["<bos>", "post_processor"])
    }

    func testUnreadableFileAndDirectory() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/jamba/tokenizer.json")
        XCTAssertThrowsError(try Tokenizer(contentsOf: missing)) { error in
            XCTAssertTrue(String(describing: error).contains("/nonexistent/jamba/tokenizer.json"), "\(error)")
        }
        let emptyDir = try TokenizerFixtures.temporaryFile(Data(), name: "unrelated.txt").deletingLastPathComponent()
        XCTAssertThrowsError(try Tokenizer(directory: emptyDir)) { error in
            XCTAssertTrue(String(describing: error).contains("no tokenizer.json"), "\(error)")
        }
    }

    func testUnknownIdThrowsFromDecodeAndStreaming() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        for bad in [-1, 4096, 1_000_000] {
            XCTAssertThrowsError(try tokenizer.decode([370, bad])) { error in
                XCTAssertEqual(error as? TokenizerError, .unknownTokenId(id: bad, vocabSize: 4096))
                XCTAssertTrue(String(describing: error).contains("unknown token id \(bad)"), "\(error)")
            }
        }
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        XCTAssertEqual(try decoder.append(370), "the")
        XCTAssertThrowsError(try decoder.append(99_999))
        // The failed append left the state alone: the stream continues as if it never happened.
        XCTAssertEqual(try decoder.append(370), " the")
    }
}

extension TokenizerError {
    /// The file path carried by a load error, so tests can compare whole values.
    var pathForTest: String {
        switch self {
        case let .unreadableFile(path, _), let .malformedFile(path, _, _), let .missingField(path, _),
             let .invalidValue(path, _, _), let .unsupportedComponent(path, _, _):
            return path
        case .unknownTokenId:
            return ""
        }
    }
}
