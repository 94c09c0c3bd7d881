// AddedTokens: finds added/special tokens in text (leftmost-longest, as HF's aho-corasick) and splits around them.
import Foundation

/// A run of input either left for the model or already resolved to an added token.
enum Segment: Equatable {
    case text(Range<Int>)
    case token(Int)
}

/// Matches one set of added tokens (HF keeps two: those matched on raw text and those matched after
/// normalization) in UTF-8 bytes.
///
/// Matching bytes is exact for valid UTF-8: a token's first byte is a lead byte, so it can only match at a
/// scalar boundary, and then its last byte ends one. The number of added tokens is small (tens to a few
/// thousand), so candidates are bucketed by first byte and tried longest first, which is leftmost-longest.
struct AddedTokenMatcher: Sendable {
    private struct Entry: Sendable {
        var bytes: [UInt8]
        var id: Int
        var lstrip: Bool
        var rstrip: Bool
        var singleWord: Bool
    }

    private let entries: [Entry]
    /// Entry indices by first byte, longest content first.
    private let buckets: [[Int]]

    var isEmpty: Bool { entries.isEmpty }

    init(_ specs: [AddedTokenSpec]) {
        let entries = specs.map {
            Entry(bytes: Array($0.content.utf8), id: $0.id, lstrip: $0.lstrip, rstrip: $0.rstrip,
                  singleWord: $0.singleWord)
        }
        var buckets = [[Int]](repeating: [], count: 256)
        for (index, entry) in entries.enumerated() {
            guard let first = entry.bytes.first else { continue }
            buckets[Int(first)].append(index)
        }
        for b in 0..<256 {
            buckets[b].sort { entries[$0].bytes.count > entries[$1].bytes.count }
        }
        self.entries = entries
        self.buckets = buckets
    }

    /// Splits `bytes` into text and token segments, following HF's `AddedVocabulary::find_matches`.
    func split(_ bytes: UnsafeBufferPointer<UInt8>) -> [Segment] {
        let n = bytes.count
        if entries.isEmpty || n == 0 { return n == 0 ? [] : [.text(0..<n)] }
        var segments: [Segment] = []
        var textStart = 0
        var i = 0
        while i < n {
            guard let entry = longestMatch(bytes, at: i) else { i += 1; continue }
            var start = i
            var stop = i + entry.bytes.count
            i = stop  // matches never overlap, even when single_word rejects one (as in aho-corasick's find_iter)
            if start < textStart { continue }  // swallowed by a previous token's rstrip
            if entry.singleWord {
                let wordBefore = start > 0 && Self.isWordScalar(Self.scalar(endingAt: start, in: bytes))
                let wordAfter = stop < n && Self.isWordScalar(Self.scalar(startingAt: stop, in: bytes))
                if wordBefore || wordAfter { continue }
            }
            if entry.lstrip {
                while start > textStart, Self.scalar(endingAt: start, in: bytes).properties.isWhitespace {
                    start -= Self.scalarLength(endingAt: start, in: bytes)
                }
            }
            if entry.rstrip {
                while stop < n, Self.scalar(startingAt: stop, in: bytes).properties.isWhitespace {
                    stop += Self.scalarLength(startingAt: stop, in: bytes)
                }
                i = max(i, stop)
            }
            if textStart < start { segments.append(.text(textStart..<start)) }
            segments.append(.token(entry.id))
            textStart = stop
        }
        if textStart < n { segments.append(.text(textStart..<n)) }
        return segments
    }

    private func longestMatch(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> Entry? {
        let bucket = buckets[Int(bytes[i])]
        if bucket.isEmpty { return nil }
        let remaining = bytes.count - i
        candidates: for index in bucket {
            let candidate = entries[index].bytes
            if candidate.count > remaining { continue }
            for k in 1..<candidate.count where bytes[i + k] != candidate[k] { continue candidates }
            return entries[index]
        }
        return nil
    }

    /// HF's notion of a word character for `single_word`: alphanumeric or underscore.
    private static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        if s == "_" || s.properties.isAlphabetic { return true }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    private static func scalarLength(startingAt i: Int, in b: UnsafeBufferPointer<UInt8>) -> Int {
        min(BPEModel.decodeScalar(b, at: i).1, b.count - i)
    }

    private static func scalar(startingAt i: Int, in b: UnsafeBufferPointer<UInt8>) -> Unicode.Scalar {
        Unicode.Scalar(BPEModel.decodeScalar(b, at: i).0) ?? "\u{FFFD}"
    }

    private static func scalarLength(endingAt end: Int, in b: UnsafeBufferPointer<UInt8>) -> Int {
        var start = end - 1
        while start > 0 && b[start] & 0xC0 == 0x80 { start -= 1 }
        return end - start
    }

    private static func scalar(endingAt end: Int, in b: UnsafeBufferPointer<UInt8>) -> Unicode.Scalar {
        scalar(startingAt: end - scalarLength(endingAt: end, in: b), in: b)
    }
}

/// Byte-level helpers shared by normalizers, the pre-tokenizer and decoders.
enum UTF8Bytes {
    /// Replaces every non-overlapping occurrence of `pattern`, scanning left to right like Rust's `str::replace`.
    /// Working on bytes avoids Foundation's Unicode-aware matching, which could treat "▁" followed by a combining
    /// mark as a different character than "▁".
    static func replacingAll(_ input: [UInt8], _ pattern: [UInt8], with content: [UInt8]) -> [UInt8] {
        guard let first = pattern.first, input.count >= pattern.count else { return input }
        var out: [UInt8] = []
        out.reserveCapacity(input.count + input.count / 4)
        var i = 0
        let n = input.count
        let m = pattern.count
        while i < n {
            if input[i] == first, i + m <= n, matches(input, pattern, at: i) {
                out.append(contentsOf: content)
                i += m
            } else {
                out.append(input[i])
                i += 1
            }
        }
        return out
    }

    @inline(__always)
    static func matches(_ input: [UInt8], _ pattern: [UInt8], at i: Int) -> Bool {
        for k in 0..<pattern.count where input[i + k] != pattern[k] { return false }
        return true
    }

    static func replacingAll(_ input: String, _ pattern: String, with content: String) -> String {
        let bytes = Array(input.utf8)
        let p = Array(pattern.utf8)
        guard let first = p.first, bytes.contains(first) else { return input }
        return String(decoding: replacingAll(bytes, p, with: Array(content.utf8)), as: UTF8.self)
    }
}
