// TextPipeline: the normalizer and pre-tokenizer stages of encoding, on UTF-8 bytes.
import Foundation

/// Pre-tokenized text: one byte buffer and the words (BPE inputs) within it.
struct PreTokenized {
    struct Word {
        var range: Range<Int>
        /// Starts at offset 0 of the original input: Metaspace's prepend_scheme "first" only prefixes such a word.
        var atOrigin: Bool
    }

    var bytes: [UInt8]
    var words: [Word]
}

enum Normalization {
    /// Applies a normalizer to one text section. Rare in Llama-family files (null in current ones), so clarity
    /// wins over speed here.
    static func apply(_ spec: NormalizerSpec, to bytes: [UInt8]) -> [UInt8] {
        switch spec {
        case let .sequence(steps):
            return steps.reduce(bytes) { apply($1, to: $0) }
        case let .prepend(prefix):
            return bytes.isEmpty ? bytes : Array(prefix.utf8) + bytes
        case let .replace(pattern, content):
            return UTF8Bytes.replacingAll(bytes, Array(pattern.utf8), with: Array(content.utf8))
        case .nfc:
            return Array(String(decoding: bytes, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        case .nfd:
            return Array(String(decoding: bytes, as: UTF8.self).decomposedStringWithCanonicalMapping.utf8)
        case .nfkc:
            return Array(String(decoding: bytes, as: UTF8.self).precomposedStringWithCompatibilityMapping.utf8)
        case .nfkd:
            return Array(String(decoding: bytes, as: UTF8.self).decomposedStringWithCompatibilityMapping.utf8)
        case .lowercase:
            // Per scalar, like HF (Rust's char::to_lowercase), so no context-dependent final-sigma rule.
            var out = String.UnicodeScalarView()
            for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
                out.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
            return Array(String(out).utf8)
        case let .strip(left, right):
            var scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            if left {
                let firstKept = scalars.firstIndex { !$0.properties.isWhitespace } ?? scalars.count
                scalars.removeFirst(firstKept)
            }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            return Array(String(view).utf8)
        }
    }
}

enum PreTokenization {
    /// Runs the pre-tokenizer over one section. Without a pre-tokenizer the section is a single word.
    static func apply(_ spec: PreTokenizerSpec?, to bytes: [UInt8], atOrigin: Bool) -> PreTokenized {
        let whole = PreTokenized(bytes: bytes, words: [.init(range: 0..<bytes.count, atOrigin: atOrigin)])
        guard let spec else { return whole }
        return apply(spec, to: whole)
    }

    private static func apply(_ spec: PreTokenizerSpec, to input: PreTokenized) -> PreTokenized {
        switch spec {
        case let .sequence(steps):
            return steps.reduce(input) { apply($1, to: $0) }
        case let .metaspace(options):
            return metaspace(options, input)
        case let .digits(individual):
            return digits(individual: individual, input)
        }
    }

    /// Every ' ' becomes the replacement; the replacement is prepended per `prepend_scheme` unless the word already
    /// starts with it; with `split` each replacement starts a new word (HF's MergedWithNext).
    private static func metaspace(_ options: MetaspaceOptions, _ input: PreTokenized) -> PreTokenized {
        let rep = Array(String(Character(options.replacement)).utf8)
        var out: [UInt8] = []
        out.reserveCapacity(input.bytes.count + input.bytes.count / 4 + rep.count)
        var words: [PreTokenized.Word] = []
        for word in input.words where !word.range.isEmpty {
            let start = out.count
            let first = input.bytes[word.range.lowerBound]
            // The check is on the text after replacement: a leading ' ' already became the replacement.
            let startsWithReplacement = first == 0x20
                || (input.bytes.count - word.range.lowerBound >= rep.count
                    && UTF8Bytes.matches(input.bytes, rep, at: word.range.lowerBound))
            let prepend: Bool
            switch options.prependScheme {
            case .always: prepend = !startsWithReplacement
            case .first: prepend = !startsWithReplacement && word.atOrigin
            case .never: prepend = false
            }
            if prepend { out.append(contentsOf: rep) }
            for i in word.range {
                let b = input.bytes[i]
                if b == 0x20 { out.append(contentsOf: rep) } else { out.append(b) }
            }
            if !options.split {
                words.append(.init(range: start..<out.count, atOrigin: word.atOrigin))
                continue
            }
            var wordStart = start
            var i = start
            while i < out.count {
                if i > wordStart, out[i] == rep[0], out.count - i >= rep.count, UTF8Bytes.matches(out, rep, at: i) {
                    words.append(.init(range: wordStart..<i, atOrigin: word.atOrigin && wordStart == start))
                    wordStart = i
                    i += rep.count
                } else {
                    i += 1
                }
            }
            words.append(.init(range: wordStart..<out.count, atOrigin: word.atOrigin && wordStart == start))
        }
        return PreTokenized(bytes: out, words: words)
    }

    /// HF's Digits: numeric characters (Unicode Nd/Nl/No, like Rust's `char::is_numeric`) are split off, each on
    /// its own when `individual`, else as runs.
    private static func digits(individual: Bool, _ input: PreTokenized) -> PreTokenized {
        var words: [PreTokenized.Word] = []
        input.bytes.withUnsafeBufferPointer { bytes in
            for word in input.words {
                var pieceStart = word.range.lowerBound
                var previousWasDigit = false
                var i = word.range.lowerBound
                while i < word.range.upperBound {
                    let (value, length) = BPEModel.decodeScalar(bytes, at: i)
                    let isDigit = Unicode.Scalar(value).map(isNumeric) ?? false
                    let boundary = i > pieceStart && (isDigit != previousWasDigit || (isDigit && individual))
                    if boundary {
                        words.append(.init(range: pieceStart..<i, atOrigin: word.atOrigin
                                           && pieceStart == word.range.lowerBound))
                        pieceStart = i
                    }
                    previousWasDigit = isDigit
                    i = min(i + length, word.range.upperBound)
                }
                if pieceStart < word.range.upperBound {
                    words.append(.init(range: pieceStart..<word.range.upperBound,
                                       atOrigin: word.atOrigin && pieceStart == word.range.lowerBound))
                }
            }
        }
        return PreTokenized(bytes: input.bytes, words: words)
    }

    private static func isNumeric(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
}
