// GoldenEncodeTests: every encode case of golden_tokenizer.json, exact, plus vocabulary and special-id checks.
import Foundation
import XCTest
@testable import JambaTokenizer

final class GoldenEncodeTests: XCTestCase {
    func testEveryEncodeCaseMatchesGolden() throws {
        let golden = try TokenizerFixtures.golden()
        let tokenizer = try TokenizerFixtures.tokenizer()
        var checked = 0
        for c in golden.encode_cases {
            let label = "text \(String(reflecting: c.text.prefix(60)))"
            let ids = tokenizer.encode(c.text, addSpecialTokens: false)
            XCTAssertEqual(ids, c.ids, label)
            XCTAssertEqual(tokenizer.encode(c.text), c.ids_with_bos, label)
            XCTAssertEqual(tokenizer.encode(c.text, addSpecialTokens: true), c.ids_with_bos, label)
            XCTAssertEqual(ids.map { tokenizer.token(for: $0) ?? "<nil>" }, c.tokens, label)
            XCTAssertEqual(c.tokens.map { tokenizer.id(for: $0) ?? -1 }, c.ids, label)

            XCTAssertEqual(try tokenizer.decode(c.ids), c.decoded, label)
            XCTAssertEqual(try tokenizer.decode(c.ids_with_bos), c.decoded_with_bos_skip_special, label)
            XCTAssertEqual(try tokenizer.decode(c.ids_with_bos, skipSpecialTokens: false),
                           c.decoded_with_bos_keep_special, label)
            XCTAssertEqual(try tokenizer.decode(ids) == c.text, c.roundtrip_exact, label)
            checked += 1
        }
        XCTAssertEqual(checked, 44)
        print("JambaTokenizer: checked \(checked) golden encode cases (ids, ids_with_bos, tokens, 3 decodes each)")
    }

    /// The chunked fast path (BPE per ▁-started chunk, cached) must agree with one heap-driven BPE over the whole
    /// section, which is what HF does with Metaspace(split=false).
    func testChunkedAndWholeSectionBPEAgree() throws {
        let golden = try TokenizerFixtures.golden()
        let fast = try TokenizerFixtures.tokenizer()
        XCTAssertFalse(fast.model.chunkMarker.isEmpty, "the reference vocab should allow chunking")
        var slow = fast
        slow.model.chunkingEnabled = false
        var texts = golden.encode_cases.map(\.text)
        // A longer mixed text, so the whole-section heap sees thousands of symbols and stale candidates.
        texts.append(String(repeating: texts.joined(separator: " \n"), count: 5))
        for text in texts {
            XCTAssertEqual(fast.encode(text), slow.encode(text), String(reflecting: text.prefix(40)))
        }
    }

    func testVocabularyAndSpecialIds() throws {
        let golden = try TokenizerFixtures.golden()
        let tokenizer = try TokenizerFixtures.tokenizer()
        XCTAssertEqual(tokenizer.vocabSize, golden.vocab_size)
        for (token, id) in golden.special_ids {
            XCTAssertEqual(tokenizer.id(for: token), id)
            XCTAssertEqual(tokenizer.token(for: id), token)
        }
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertNil(tokenizer.token(for: -1))
        XCTAssertNil(tokenizer.token(for: tokenizer.vocabSize))
        XCTAssertNil(tokenizer.id(for: "definitely not a token"))
        XCTAssertEqual(tokenizer.id(for: "<0x0A>"), 14)
    }

    func testDirectoryLoadingReadsConfigFiles() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.directory)
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(tokenizer.encode("Hello world"), [1, 525, 694, 338, 1637])

        // The config's eos_token (here as an AddedToken object) takes precedence over the "</s>" default.
        let dir = try TokenizerFixtures.temporaryFile(Data(contentsOf: TokenizerFixtures.tokenizerURL))
            .deletingLastPathComponent()
        let config = #"{"bos_token": "<s>", "eos_token": {"content": "<pad>", "special": true}}"#
        try Data(config.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let custom = try Tokenizer(directory: dir)
        XCTAssertEqual(custom.eosTokenId, 3)
        XCTAssertEqual(custom.bosTokenId, 1)
    }

    func testEmptyAndSpecialOnlyInputs() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: false), [])
        XCTAssertEqual(tokenizer.encode(""), [1])
        XCTAssertEqual(tokenizer.encode("<s></s>", addSpecialTokens: false), [1, 2])
        // After a special token the section is not at offset 0, so prepend_scheme "first" adds no ▁.
        XCTAssertEqual(tokenizer.encode("<s>the", addSpecialTokens: false).first, 1)
        XCTAssertNotEqual(tokenizer.encode("<s>the", addSpecialTokens: false).dropFirst().first,
                          tokenizer.id(for: "▁the"))
    }

    /// One `Tokenizer` value shared by concurrent callers (it is immutable and Sendable) gives the same ids.
    func testConcurrentEncodingFromOneInstance() throws {
        let golden = try TokenizerFixtures.golden()
        let tokenizer = try TokenizerFixtures.tokenizer()
        let cases = golden.encode_cases
        let mismatches = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for c in cases where tokenizer.encode(c.text) != c.ids_with_bos { mismatches.increment() }
        }
        XCTAssertEqual(mismatches.value, 0)
    }

    func testBenchmarkCountsTheSameTokensAsEncode() throws {
        let golden = try TokenizerFixtures.golden()
        let text = golden.encode_cases.map(\.text).joined(separator: "\n")
        let tokenizer = try TokenizerFixtures.tokenizer()
        let result = try TokenizerBenchmark.run(tokenizerURL: TokenizerFixtures.tokenizerURL, text: text)
        XCTAssertEqual(result.tokens, tokenizer.encode(text, addSpecialTokens: false).count)
        XCTAssertGreaterThan(result.bytesPerSecond, 0)
    }
}

/// A counter shared by concurrent test workers (NSLock rather than `Mutex`, which needs macOS 15).
private final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
