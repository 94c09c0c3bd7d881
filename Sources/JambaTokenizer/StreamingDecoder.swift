// StreamingDecoder: incremental detokenization for streaming generation, equal to `decode` once finished.
import Foundation

/// Turns ids into text one at a time, releasing text as soon as it can no longer change.
///
/// Concatenating every `append` result and the final `finish()` gives exactly `tokenizer.decode(ids)`. Text is
/// held back only where a later token could still change it:
/// - a run of byte-fallback tokens that is valid UTF-8 so far (HF decodes a run as a whole, and turns *every*
///   byte of a run into U+FFFD if any part is invalid, so valid characters cannot be released before the run
///   ends; once a run is known to be invalid, its bytes are released as U+FFFD immediately);
/// - Strip's leading space is dropped from the first text only, never from later tokens;
/// - trailing characters a right Strip (if the file has one) would remove.
///
/// Set `emitsCompleteCharactersEagerly` to release each complete character of a byte run at once: lower latency
/// for scripts the vocabulary lacks, at the cost that a run turning invalid later decodes its earlier, valid
/// characters as text where `decode` would give U+FFFD.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var stages: [DecodeStage]

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = true, emitsCompleteCharactersEagerly: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        stages = tokenizer.decodeSteps.map { DecodeStage(step: $0, eagerBytes: emitsCompleteCharactersEagerly) }
    }

    /// Feeds one id and returns the text it completes (often empty for byte tokens, or a whole word).
    /// Throws `TokenizerError.unknownTokenId` without changing the decoder's state.
    public mutating func append(_ id: Int) throws -> String {
        guard let token = tokenizer.token(for: id) else {
            throw TokenizerError.unknownTokenId(id: id, vocabSize: tokenizer.vocabSize)
        }
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        var pieces = [token]
        for index in stages.indices {
            var next: [String] = []
            for piece in pieces { stages[index].feed(piece, into: &next) }
            pieces = next
        }
        return pieces.joined()
    }

    /// Feeds several ids; the result is the concatenation of the individual `append` results.
    public mutating func append(contentsOf ids: [Int]) throws -> String {
        var text = ""
        for id in ids { text += try append(id) }
        return text
    }

    /// Releases the text still held back (an unfinished byte run becomes U+FFFD per byte, as in `decode`) and
    /// resets the decoder, so the next `append` starts a new sequence.
    public mutating func finish() -> String {
        var pieces: [String] = []
        for index in stages.indices {
            var next: [String] = []
            for piece in pieces { stages[index].feed(piece, into: &next) }
            stages[index].finish(into: &next)
            pieces = next
        }
        return pieces.joined()
    }
}

/// Strict UTF-8 validation (Unicode Table 3-7, the rules of Rust's `String::from_utf8`) that also tells a
/// truncated-but-so-far-valid sequence apart from an invalid one.
enum UTF8Validation {
    enum Result: Equatable {
        /// Valid and ends on a character boundary.
        case complete
        /// Valid so far; the last character needs more bytes.
        case incomplete
        /// No continuation can make it valid.
        case invalid
    }

    static func check(_ bytes: [UInt8]) -> Result { check(bytes[...]) }

    static func check(_ bytes: ArraySlice<UInt8>) -> Result {
        var i = bytes.startIndex
        let n = bytes.endIndex
        while i < n {
            let b0 = bytes[i]
            let length: Int
            var secondRange: ClosedRange<UInt8> = 0x80...0xBF
            switch b0 {
            case 0x00...0x7F: i += 1; continue
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; secondRange = 0xA0...0xBF
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; secondRange = 0x80...0x9F  // excludes UTF-16 surrogates
            case 0xF0: length = 4; secondRange = 0x90...0xBF
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; secondRange = 0x80...0x8F  // nothing above U+10FFFF
            default: return .invalid  // continuation byte without lead, C0/C1 overlongs, F5...FF
            }
            for k in 1..<length {
                guard i + k < n else { return .incomplete }
                let range: ClosedRange<UInt8> = k == 1 ? secondRange : 0x80...0xBF
                if !range.contains(bytes[i + k]) { return .invalid }
            }
            i += length
        }
        return .complete
    }
}

/// Encoding throughput, for `jamba bench` and for checking the tokenizer keeps up with generation.
public enum TokenizerBenchmark {
    /// Loads the tokenizer at `tokenizerURL`, encodes `text` once to warm up, then repeatedly for about a second
    /// (at most 100 times), and returns the UTF-8 bytes encoded per second of wall time and the number of tokens
    /// in `text` (without special tokens). Loading time is not included.
    public static func run(tokenizerURL: URL, text: String) throws -> (bytesPerSecond: Double, tokens: Int) {
        let tokenizer = try Tokenizer(contentsOf: tokenizerURL)
        return measure(tokenizer, text: text)
    }

    static func measure(_ tokenizer: Tokenizer, text: String, seconds: Double = 1,
                        maxRepetitions: Int = 100) -> (bytesPerSecond: Double, tokens: Int) {
        let tokens = tokenizer.encode(text, addSpecialTokens: false).count
        let clock = ContinuousClock()
        let start = clock.now
        var repetitions = 0
        var elapsed = 0.0
        var totalTokens = 0
        repeat {
            totalTokens &+= tokenizer.encode(text, addSpecialTokens: false).count
            repetitions += 1
            let duration = clock.now - start
            elapsed = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        } while elapsed < seconds && repetitions < maxRepetitions
        keepAlive(totalTokens)
        let bytes = Double(text.utf8.count * repetitions)
        return (elapsed > 0 ? bytes / elapsed : 0, tokens)
    }

    /// An opaque use of the results, so the optimizer cannot drop the timed work as unused.
    @inline(never)
    private static func keepAlive(_ value: Int) {
        withExtendedLifetime(value) {}
    }
}
