// DecodeStreamingTests: golden decode cases, and the streaming decoder against `decode` on every golden case.
import Foundation
import XCTest
@testable import JambaTokenizer

final class DecodeStreamingTests: XCTestCase {
    func testEveryDecodeCaseMatchesGolden() throws {
        let golden = try TokenizerFixtures.golden()
        let tokenizer = try TokenizerFixtures.tokenizer()
        for c in golden.decode_cases {
            XCTAssertEqual(try tokenizer.decode(c.ids), c.decoded, c.name)
            XCTAssertEqual(try tokenizer.decode(c.ids, skipSpecialTokens: true), c.decoded, c.name)
            XCTAssertEqual(try tokenizer.decode(c.ids, skipSpecialTokens: false), c.decoded_keep_special, c.name)
        }
        XCTAssertEqual(golden.decode_cases.count, 10)
        print("JambaTokenizer: checked \(golden.decode_cases.count) golden decode cases (skip and keep specials)")
    }

    /// Streams `ids` one at a time; returns the chunks and checks, for every prefix, that the text released so
    /// far plus what `finish()` would release equals `decode(prefix)`: nothing is released early or held wrongly.
    private func streamAndCheckPrefixes(_ tokenizer: Tokenizer, _ ids: [Int], skip: Bool, eager: Bool = false,
                                        label: String) throws -> [String] {
        var decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skip,
                                       emitsCompleteCharactersEagerly: eager)
        var chunks: [String] = []
        for (k, id) in ids.enumerated() {
            chunks.append(try decoder.append(id))
            // Every prefix of short sequences; a sample of the long KJV one (each probe decodes the whole prefix).
            if !eager && (ids.count <= 200 || k % 53 == 0) {
                var probe = decoder
                let prefix = Array(ids[...k])
                XCTAssertEqual(chunks.joined() + probe.finish(), try tokenizer.decode(prefix, skipSpecialTokens: skip),
                               "\(label) prefix \(k + 1)")
            }
        }
        chunks.append(decoder.finish())
        return chunks
    }

    func testStreamingReproducesDecodeOnEveryGoldenCase() throws {
        let golden = try TokenizerFixtures.golden()
        let tokenizer = try TokenizerFixtures.tokenizer()
        var checked = 0
        for c in golden.encode_cases {
            let label = String(reflecting: c.text.prefix(40))
            for (ids, skip, expected) in [(c.ids, true, c.decoded), (c.ids_with_bos, true, c.decoded_with_bos_skip_special),
                                          (c.ids_with_bos, false, c.decoded_with_bos_keep_special)] {
                let chunks = try streamAndCheckPrefixes(tokenizer, ids, skip: skip, label: label)
                XCTAssertEqual(chunks.joined(), expected, label)
                let eager = try streamAndCheckPrefixes(tokenizer, ids, skip: skip, eager: true, label: label)
                XCTAssertEqual(eager.joined(), expected, "eager " + label)
                checked += 1
            }
        }
        for c in golden.decode_cases {
            for (skip, expected) in [(true, c.decoded), (false, c.decoded_keep_special)] {
                let chunks = try streamAndCheckPrefixes(tokenizer, c.ids, skip: skip, label: c.name)
                XCTAssertEqual(chunks.joined(), expected, c.name)
                let eager = try streamAndCheckPrefixes(tokenizer, c.ids, skip: skip, eager: true, label: c.name)
                XCTAssertEqual(eager.joined(), expected, "eager " + c.name)
                checked += 1
            }
        }
        print("JambaTokenizer: streaming decoder matched decode on \(checked) golden id sequences")
    }

    func testStreamingReleasesTextAsSoonAsItIsFinal() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        // "▁the" alone decodes to "the" (Strip drops the one leading space); the second one keeps its space.
        XCTAssertEqual(try decoder.append(370), "the")
        XCTAssertEqual(try decoder.append(370), " the")
        // 😀 = F0 9F 98 80 as byte tokens (id = 4 + byte): held until the run can no longer change.
        XCTAssertEqual(try decoder.append(366), " ")
        XCTAssertEqual(try decoder.append(4 + 0xF0), "")
        XCTAssertEqual(try decoder.append(4 + 0x9F), "")
        XCTAssertEqual(try decoder.append(4 + 0x98), "")
        XCTAssertEqual(try decoder.append(4 + 0x80), "")
        XCTAssertEqual(try decoder.append(370), "😀 the")
        // Specials are skipped without breaking anything; finish() resets, so Strip applies again.
        XCTAssertEqual(try decoder.append(2), "")
        XCTAssertEqual(decoder.finish(), "")
        XCTAssertEqual(try decoder.append(370), "the")

        var eager = StreamingDecoder(tokenizer: tokenizer, emitsCompleteCharactersEagerly: true)
        XCTAssertEqual(try eager.append(4 + 0xC3), "")
        XCTAssertEqual(try eager.append(4 + 0xA9), "é")
    }

    func testInvalidByteRunsBecomeReplacementCharacters() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        // A run is decoded as a whole: one bad byte turns every byte of the run into U+FFFD, as HF does.
        XCTAssertEqual(try tokenizer.decode([4 + 0xC3, 4 + 0xA9, 4 + 0x80]), "\u{FFFD}\u{FFFD}\u{FFFD}")
        XCTAssertEqual(try tokenizer.decode([4 + 0xC3, 4 + 0xA9, 370, 4 + 0x80]), "é the\u{FFFD}")
        // Surrogates and overlongs are invalid, as in Rust's from_utf8.
        XCTAssertEqual(try tokenizer.decode([4 + 0xED, 4 + 0xA0, 4 + 0x80]), "\u{FFFD}\u{FFFD}\u{FFFD}")
        XCTAssertEqual(try tokenizer.decode([4 + 0xC0, 4 + 0x80]), "\u{FFFD}\u{FFFD}")

        // Once a run is known to be invalid its bytes are released immediately.
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        XCTAssertEqual(try decoder.append(4 + 0xE6), "")
        XCTAssertEqual(try decoder.append(4 + 0x41), "\u{FFFD}\u{FFFD}")
        XCTAssertEqual(try decoder.append(4 + 0x41), "\u{FFFD}")
        XCTAssertEqual(decoder.finish(), "")

        // The documented cost of eager mode: valid characters already released cannot become U+FFFD later.
        var eager = StreamingDecoder(tokenizer: tokenizer, emitsCompleteCharactersEagerly: true)
        let eagerText = try eager.append(contentsOf: [4 + 0xC3, 4 + 0xA9, 4 + 0x80]) + eager.finish()
        XCTAssertEqual(eagerText, "é\u{FFFD}")
    }

    func testUTF8Validation() {
        XCTAssertEqual(UTF8Validation.check([]), .complete)
        XCTAssertEqual(UTF8Validation.check(Array("aé中😀".utf8)), .complete)
        XCTAssertEqual(UTF8Validation.check([0xF0, 0x9F, 0x98]), .incomplete)
        XCTAssertEqual(UTF8Validation.check([0xE0, 0x80]), .invalid)  // overlong
        XCTAssertEqual(UTF8Validation.check([0xF4, 0x90]), .invalid)  // above U+10FFFF
        XCTAssertEqual(UTF8Validation.check([0xF5]), .invalid)
        XCTAssertEqual(UTF8Validation.check([0x80]), .invalid)
        XCTAssertEqual(UTF8Validation.check([0xC3, 0x41]), .invalid)
    }
}
