// VocabReader: reads `model.vocab` from tokenizer.json with every key byte-exact, which Foundation cannot.
import Foundation

/// Extracts the `model.vocab` object of a tokenizer.json as (UTF-8 key, id) pairs.
///
/// Why not `JSONDecoder`/`JSONSerialization`: both key objects by Swift `String`, whose equality is Unicode
/// canonical equivalence, so "é" (U+00E9) and "e\u{301}" collapse into one entry and a token silently
/// disappears. Multilingual vocabularies do contain such pairs, and HF (Rust, byte-wise strings) keeps both.
/// The rest of the file is small and goes through `Codable`; this reader only walks to the one object.
struct VocabReader {
    private let bytes: [UInt8]
    private let path: String
    private var i = 0

    static func read(_ data: Data, path: String) throws(TokenizerError) -> [(token: [UInt8], id: Int)] {
        var reader = VocabReader(bytes: [UInt8](data), path: path)
        return try reader.findVocab()
    }

    private init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
    }

    private mutating func findVocab() throws(TokenizerError) -> [(token: [UInt8], id: Int)] {
        var found: [(token: [UInt8], id: Int)]?
        try forEachMember(field: "<root>") { (reader: inout VocabReader, key: [UInt8]) throws(TokenizerError) in
            guard key == Array("model".utf8), found == nil else { return try reader.skipValue(field: "<root>") }
            try reader.forEachMember(field: "model") { (reader: inout VocabReader, key: [UInt8]) throws(TokenizerError) in
                guard key == Array("vocab".utf8) else { return try reader.skipValue(field: "model") }
                found = try reader.readVocabObject()
            }
        }
        guard let found else { throw .missingField(path: path, field: "model.vocab") }
        return found
    }

    private mutating func readVocabObject() throws(TokenizerError) -> [(token: [UInt8], id: Int)] {
        var pairs: [(token: [UInt8], id: Int)] = []
        try forEachMember(field: "model.vocab") { (reader: inout VocabReader, key: [UInt8]) throws(TokenizerError) in
            pairs.append((key, try reader.readInteger(field: "model.vocab[\"\(String(decoding: key, as: UTF8.self))\"]")))
        }
        return pairs
    }

    // MARK: JSON primitives

    private func fail(_ field: String, _ reason: String) -> TokenizerError {
        .malformedFile(path: path, field: field, reason: "\(reason) at byte \(i)")
    }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func peek(field: String) throws(TokenizerError) -> UInt8 {
        skipWhitespace()
        guard i < bytes.count else { throw fail(field, "unexpected end of file") }
        return bytes[i]
    }

    /// Calls `body` with each key of the object at the cursor; `body` must consume the member's value.
    private mutating func forEachMember(
        field: String, _ body: (inout VocabReader, [UInt8]) throws(TokenizerError) -> Void
    ) throws(TokenizerError) {
        guard try peek(field: field) == UInt8(ascii: "{") else { throw fail(field, "expected an object") }
        i += 1
        if try peek(field: field) == UInt8(ascii: "}") { i += 1; return }
        while true {
            guard try peek(field: field) == UInt8(ascii: "\"") else { throw fail(field, "expected a key") }
            let key = try readString(field: field)
            guard try peek(field: field) == UInt8(ascii: ":") else { throw fail(field, "expected ':'") }
            i += 1
            try body(&self, key)
            let next = try peek(field: field)
            i += 1
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { throw fail(field, "expected ',' or '}'") }
        }
    }

    private mutating func readInteger(field: String) throws(TokenizerError) -> Int {
        _ = try peek(field: field)
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
        guard let value = Int(String(decoding: bytes[start..<i], as: UTF8.self)) else {
            throw fail(field, "expected an integer id")
        }
        return value
    }

    /// Reads a JSON string at the cursor into UTF-8 bytes, resolving escapes (including surrogate pairs).
    private mutating func readString(field: String) throws(TokenizerError) -> [UInt8] {
        i += 1  // opening quote, checked by the caller
        var out: [UInt8] = []
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if b == UInt8(ascii: "\"") { return out }
            guard b == UInt8(ascii: "\\") else { out.append(b); continue }
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try readHex4(field: field)
                if (0xD800...0xDBFF).contains(code) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail(field, "lone surrogate in string")
                    }
                    i += 2
                    let low = try readHex4(field: field)
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail(field, "invalid surrogate pair") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail(field, "lone surrogate in string") }
                out.append(contentsOf: String(Character(scalar)).utf8)
            default:
                throw fail(field, "invalid escape")
            }
        }
        throw fail(field, "unterminated string")
    }

    private mutating func readHex4(field: String) throws(TokenizerError) -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
            throw fail(field, "invalid \\u escape")
        }
        i += 4
        return v
    }

    /// Skips any JSON value; the document was already validated by `JSONDecoder`, so this can be lenient.
    private mutating func skipValue(field: String) throws(TokenizerError) {
        switch try peek(field: field) {
        case UInt8(ascii: "\""):
            _ = try readString(field: field)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { _ = try readString(field: field); continue }
                i += 1
                if b == UInt8(ascii: "{") || b == UInt8(ascii: "[") { depth += 1 }
                if b == UInt8(ascii: "}") || b == UInt8(ascii: "]") {
                    depth -= 1
                    if depth == 0 { return }
                }
            }
            throw fail(field, "unterminated container")
        default:
            // number, true, false, null
            while i < bytes.count, !",}] \n\r\t".utf8.contains(bytes[i]) { i += 1 }
        }
    }
}
