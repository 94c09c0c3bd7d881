// VariantTests: pipeline variants (merge formats, prepend schemes, split, legacy normalizer, unk, added-token
// options, decoders) against outputs recorded from HF `tokenizers` by tools/tokenizer-bench/make_variant_cases.py.
import Foundation
import XCTest
@testable import JambaTokenizer

final class VariantTests: XCTestCase {
    func testEveryVariantMatchesHuggingFace() throws {
        let recorded = try TokenizerFixtures.variants()
        var checked = 0
        for variant in recorded.variants {
            let json = try TokenizerFixtures.variantJSON(named: variant.name)
            let tokenizer = try TokenizerFixtures.tokenizer(json: json, path: variant.name)
            var slow = tokenizer
            slow.model.chunkingEnabled = false
            for c in variant.cases {
                let label = "\(variant.name): \(String(reflecting: c.text.prefix(40)))"
                XCTAssertEqual(tokenizer.encode(c.text, addSpecialTokens: false), c.ids, label)
                XCTAssertEqual(tokenizer.encode(c.text), c.ids_with_special, label)
                XCTAssertEqual(slow.encode(c.text), c.ids_with_special, "whole-section BPE " + label)
                for (skip, expected) in [(true, c.decoded), (false, c.decoded_keep_special)] {
                    guard let expected else { continue }
                    XCTAssertEqual(try tokenizer.decode(c.ids_with_special, skipSpecialTokens: skip), expected, label)
                    var stream = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skip)
                    let streamed = try stream.append(contentsOf: c.ids_with_special) + stream.finish()
                    XCTAssertEqual(streamed, expected, "streaming " + label)
                }
                checked += 1
            }
        }
        XCTAssertEqual(recorded.variants.count, 15)
        print("JambaTokenizer: checked \(checked) variant cases across \(recorded.variants.count) pipeline variants")
    }

    /// Both merge formats must yield the same merge table; the string form is what older files use.
    func testMergeFormatsAreEquivalent() throws {
        let pairs = try TokenizerFixtures.tokenizer()
        let strings = try TokenizerFixtures.tokenizer(json: TokenizerFixtures.variantJSON(named: "merges_as_strings"))
        for c in try TokenizerFixtures.golden().encode_cases {
            XCTAssertEqual(pairs.encode(c.text), strings.encode(c.text))
        }
    }

    /// Merges whose right half starts with ▁ (Llama's whitespace runs "▁" + "▁", or a made-up "▁the" + "▁the")
    /// may cross word starts; chunking must then keep those places inside one chunk and still give exactly what
    /// one BPE over the whole section gives.
    func testMergesAcrossMetaspaceAreHonoured() throws {
        var json = try TokenizerFixtures.baseJSON()
        var model = try XCTUnwrap(json["model"] as? [String: Any])
        var vocab = try XCTUnwrap(model["vocab"] as? [String: Int])
        var merges = try XCTUnwrap(model["merges"] as? [[String]])
        let theId = try XCTUnwrap(vocab["▁the"])
        vocab["▁the▁the"] = 4096
        vocab["▁▁"] = 4097
        vocab["▁▁▁▁"] = 4098
        merges.insert(["▁", "▁"], at: 0)
        merges.insert(["▁▁", "▁▁"], at: 1)
        merges.append(["▁the", "▁the"])
        model["vocab"] = vocab
        model["merges"] = merges
        json["model"] = model
        let tokenizer = try TokenizerFixtures.tokenizer(json: json)
        XCTAssertFalse(tokenizer.model.chunkMarker.isEmpty)
        XCTAssertEqual(tokenizer.encode("the the the", addSpecialTokens: false), [4096, theId])
        XCTAssertEqual(try tokenizer.decode([4096, theId]), "the the the")
        XCTAssertEqual(tokenizer.encode("     the", addSpecialTokens: false), [4098, theId])  // ▁▁ ▁▁ first (leftmost), then ▁▁▁▁
        // Recorded from HF `tokenizers` with the same three merges added.
        XCTAssertEqual(tokenizer.encode("def f(x):\n        return  the   the    the", addSpecialTokens: false),
                       [1742, 386, 267, 347, 268, 285, 14, 4098, 4098, 1193, 607, 4097, 368, 328, 4097, 370, 4098, 368, 328])

        var slow = tokenizer
        slow.model.chunkingEnabled = false
        var texts = try TokenizerFixtures.golden().encode_cases.map(\.text)
        texts += ["def f(x):\n        return  the   the    the", "the the", " the  the", "x\u{301} the é the"]
        texts.append(texts.joined(separator: "  "))
        for text in texts {
            XCTAssertEqual(tokenizer.encode(text), slow.encode(text), String(reflecting: text.prefix(40)))
        }
    }

    /// "é" (U+00E9) and "e\u{301}" are equal as Swift Strings but distinct tokens; a vocab holding both must keep
    /// both, as HF does (expected ids recorded from HF `tokenizers` with the same patched file).
    func testCanonicallyEquivalentTokensStayDistinct() throws {
        var text = try String(contentsOf: TokenizerFixtures.tokenizerURL, encoding: .utf8)
        // Written with JSON \u escapes on purpose: the vocab reader must resolve them byte-exactly too.
        let vocabPatch = #""vocab":{"e\u0301":4096,"\u0301":4097,"#
        let mergePatch = #""merges":[["e","\u0301"],"#
        text = try XCTUnwrap(text.range(of: #""vocab":{"#).map { text.replacingCharacters(in: $0, with: vocabPatch) })
        text = try XCTUnwrap(text.range(of: #""merges":["#).map { text.replacingCharacters(in: $0, with: mergePatch) })
        let tokenizer = try TokenizerFixtures.tokenizer(data: Data(text.utf8))
        XCTAssertEqual(tokenizer.vocabSize, 4098)
        XCTAssertEqual(tokenizer.encode("caf\u{E9}", addSpecialTokens: false), [585, 329, 357])
        XCTAssertEqual(tokenizer.encode("cafe\u{301}", addSpecialTokens: false), [585, 329, 4096])
        XCTAssertEqual(tokenizer.encode("e\u{301}\u{E9}", addSpecialTokens: false), [366, 4096, 357])
        XCTAssertEqual(tokenizer.id(for: "e\u{301}"), 4096)
        XCTAssertEqual(tokenizer.id(for: "\u{E9}"), 357)
        XCTAssertEqual(tokenizer.token(for: 4096).map { Array($0.unicodeScalars) }, ["e", "\u{301}"])
        XCTAssertEqual(try tokenizer.decode([4096, 357]).unicodeScalars.map(\.value), [0x65, 0x301, 0xE9])
    }

    /// Rank order, not left-to-right order, decides overlapping merges; and stale heap entries must be skipped.
    func testMergePriorityOnASmallHandWrittenModel() throws {
        let json: [String: Any] = [
            "model": [
                "type": "BPE",
                "vocab": ["a": 0, "b": 1, "c": 2, "bc": 3, "ab": 4, "abc": 5, "<unk>": 6, "aa": 7, "aaaa": 8],
                "merges": ["b c", "a b", "a bc", "a a", "aa aa"],
                "unk_token": "<unk>",
            ] as [String: Any],
        ]
        let tokenizer = try TokenizerFixtures.tokenizer(json: json)
        // "b c" (rank 0) beats "a b" (rank 1), then "a bc" makes "abc".
        XCTAssertEqual(tokenizer.encode("abc"), [5])
        XCTAssertEqual(tokenizer.encode("abab"), [4, 4])
        // Equal ranks go leftmost first: aaaaa -> aa aa a -> aaaa a.
        XCTAssertEqual(tokenizer.encode("aaaaa"), [8, 0])
        // Without byte_fallback, unknown characters become <unk> (fuse_unk is false here: one per character).
        XCTAssertEqual(tokenizer.encode("axyb"), [0, 6, 6, 1])
        XCTAssertEqual(tokenizer.vocabSize, 9)
        XCTAssertNil(tokenizer.bosTokenId)
        XCTAssertEqual(try tokenizer.decode([5, 8]), "abcaaaa")
    }
}
