// TokenizerFile: the Codable schema of a Hugging Face tokenizer.json, limited to the components we implement.
import Foundation

/// Raised from inside `init(from:)` when a component is recognised as well-formed JSON but not supported or not
/// coherent; converted to a `TokenizerError` with the file path once decoding unwinds.
struct SchemaError: Error {
    enum Kind { case unsupported(component: String, type: String), invalid(reason: String) }
    let kind: Kind
    let codingPath: [CodingKey]

    func tokenizerError(path: String) -> TokenizerError {
        switch kind {
        case let .unsupported(component, type):
            return .unsupportedComponent(path: path, component: component, type: type)
        case let .invalid(reason):
            return .invalidValue(path: path, field: TokenizerError.fieldPath(codingPath), reason: reason)
        }
    }
}

struct TokenizerFile: Decodable, Sendable {
    var addedTokens: [AddedTokenSpec]
    var normalizer: NormalizerSpec?
    var preTokenizer: PreTokenizerSpec?
    var model: BPESpec
    var postProcessor: PostProcessorSpec?
    var decoder: DecoderSpec?

    enum CodingKeys: String, CodingKey {
        case addedTokens = "added_tokens", normalizer, preTokenizer = "pre_tokenizer", model
        case postProcessor = "post_processor", decoder
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        addedTokens = try c.decodeIfPresent([AddedTokenSpec].self, forKey: .addedTokens) ?? []
        normalizer = try c.decodeIfPresent(NormalizerSpec.self, forKey: .normalizer)
        preTokenizer = try c.decodeIfPresent(PreTokenizerSpec.self, forKey: .preTokenizer)
        model = try c.decode(BPESpec.self, forKey: .model)
        postProcessor = try c.decodeIfPresent(PostProcessorSpec.self, forKey: .postProcessor)
        self.decoder = try c.decodeIfPresent(DecoderSpec.self, forKey: .decoder)
    }

    /// Decodes `data` read from `path`, mapping every failure to a `TokenizerError` that names the file and field.
    static func parse(_ data: Data, path: String) throws(TokenizerError) -> TokenizerFile {
        do {
            var file = try JSONDecoder().decode(TokenizerFile.self, from: data)
            file.model.vocab = try VocabReader.read(data, path: path)
            return file
        } catch let error as TokenizerError {
            throw error
        } catch let error as SchemaError {
            throw error.tokenizerError(path: path)
        } catch {
            throw TokenizerError.from(decodingError: error, path: path)
        }
    }
}

struct AddedTokenSpec: Decodable, Sendable {
    var id: Int
    var content: String
    var singleWord: Bool
    var lstrip: Bool
    var rstrip: Bool
    var normalized: Bool
    var special: Bool

    enum CodingKeys: String, CodingKey {
        case id, content, singleWord = "single_word", lstrip, rstrip, normalized, special
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        content = try c.decode(String.self, forKey: .content)
        singleWord = try c.decodeIfPresent(Bool.self, forKey: .singleWord) ?? false
        lstrip = try c.decodeIfPresent(Bool.self, forKey: .lstrip) ?? false
        rstrip = try c.decodeIfPresent(Bool.self, forKey: .rstrip) ?? false
        special = try c.decodeIfPresent(Bool.self, forKey: .special) ?? false
        // HF's default: special tokens are matched on raw text, others after normalization.
        normalized = try c.decodeIfPresent(Bool.self, forKey: .normalized) ?? !special
        if content.isEmpty {
            throw SchemaError(kind: .invalid(reason: "added token \(id) has empty content"), codingPath: c.codingPath)
        }
    }
}

struct BPESpec: Decodable, Sendable {
    /// Filled by `VocabReader` after decoding, because Codable would merge canonically equivalent keys.
    var vocab: [(token: [UInt8], id: Int)] = []
    /// Merges in rank order; both on-disk formats ("a b" and ["a","b"]) are normalised to pairs here.
    var merges: [(String, String)]
    var unkToken: String?
    var fuseUnk: Bool
    var byteFallback: Bool
    var ignoreMerges: Bool

    enum CodingKeys: String, CodingKey {
        case type, vocab, merges, unkToken = "unk_token", fuseUnk = "fuse_unk", byteFallback = "byte_fallback"
        case ignoreMerges = "ignore_merges", continuingSubwordPrefix = "continuing_subword_prefix"
        case endOfWordSuffix = "end_of_word_suffix"
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Very old files omit "type"; HF then guesses from the fields present, and a merges list means BPE.
        let type = try c.decodeIfPresent(String.self, forKey: .type) ?? (c.contains(.merges) ? "BPE" : "<none>")
        guard type == "BPE" else {
            throw SchemaError(kind: .unsupported(component: "model", type: type), codingPath: c.codingPath)
        }
        for key in [CodingKeys.continuingSubwordPrefix, .endOfWordSuffix] {
            // These change how merged strings are spelled; Llama-family files never set them.
            if let value = try c.decodeIfPresent(String.self, forKey: key), !value.isEmpty {
                throw SchemaError(kind: .unsupported(component: "model option", type: "\(key.rawValue)=\(value)"),
                                  codingPath: c.codingPath + [key])
            }
        }
        guard c.contains(.vocab) else {
            throw DecodingError.keyNotFound(CodingKeys.vocab, .init(codingPath: c.codingPath, debugDescription: ""))
        }
        unkToken = try c.decodeIfPresent(String.self, forKey: .unkToken)
        fuseUnk = try c.decodeIfPresent(Bool.self, forKey: .fuseUnk) ?? false
        byteFallback = try c.decodeIfPresent(Bool.self, forKey: .byteFallback) ?? false
        ignoreMerges = try c.decodeIfPresent(Bool.self, forKey: .ignoreMerges) ?? false

        var list = try c.nestedUnkeyedContainer(forKey: .merges)
        var merges: [(String, String)] = []
        merges.reserveCapacity(list.count ?? 0)
        while !list.isAtEnd {
            let index = list.currentIndex
            let path = c.codingPath + [CodingKeys.merges, AnyCodingKey(intValue: index)]
            if let line = try? list.decode(String.self) {
                // The legacy format separates the two halves with exactly one space, so neither may contain one.
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw SchemaError(kind: .invalid(reason: "merge \"\(line)\" is not two tokens separated by one space"),
                                      codingPath: path)
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else {
                let pair = try list.decode([String].self)
                guard pair.count == 2 else {
                    throw SchemaError(kind: .invalid(reason: "merge has \(pair.count) elements, expected 2"),
                                      codingPath: path)
                }
                merges.append((pair[0], pair[1]))
            }
        }
        self.merges = merges
    }
}

/// `{"type": ...}` dispatch shared by the component enums below.
private struct TypeTag: Decodable { var type: String }

enum NormalizerSpec: Decodable, Sendable {
    case sequence([NormalizerSpec])
    case prepend(String)
    case replace(pattern: String, content: String)
    case nfc, nfd, nfkc, nfkd, lowercase
    case strip(left: Bool, right: Bool)

    enum CodingKeys: String, CodingKey {
        case normalizers, prepend, pattern, content, stripLeft = "strip_left", stripRight = "strip_right"
    }

    init(from decoder: Decoder) throws {
        let type = try TypeTag(from: decoder).type
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch type {
        case "Sequence": self = .sequence(try c.decode([NormalizerSpec].self, forKey: .normalizers))
        case "Prepend": self = .prepend(try c.decode(String.self, forKey: .prepend))
        case "Replace":
            let pattern = try ReplacePattern(from: c.superDecoder(forKey: .pattern), component: "normalizer")
            self = .replace(pattern: pattern.string, content: try c.decode(String.self, forKey: .content))
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Strip":
            self = .strip(left: try c.decodeIfPresent(Bool.self, forKey: .stripLeft) ?? true,
                          right: try c.decodeIfPresent(Bool.self, forKey: .stripRight) ?? true)
        default:
            throw SchemaError(kind: .unsupported(component: "normalizer", type: type), codingPath: decoder.codingPath)
        }
    }
}

/// The `{"String": "▁"}` / `{"Regex": "..."}` pattern object of Replace; only literal strings are supported.
struct ReplacePattern {
    var string: String
    init(from decoder: Decoder, component: String) throws {
        let c = try decoder.container(keyedBy: AnyCodingKey.self)
        if let s = try c.decodeIfPresent(String.self, forKey: AnyCodingKey(stringValue: "String")) {
            guard !s.isEmpty else {
                throw SchemaError(kind: .invalid(reason: "empty Replace pattern"), codingPath: decoder.codingPath)
            }
            string = s
        } else {
            let kind = c.allKeys.first?.stringValue ?? "<empty pattern>"
            throw SchemaError(kind: .unsupported(component: "\(component) Replace pattern", type: kind),
                              codingPath: decoder.codingPath)
        }
    }
}

enum PrependScheme: String, Sendable { case first, always, never }

/// Reads Metaspace's options, accepting the pre-0.15 spelling (`add_prefix_space`) that older Llama files use.
struct MetaspaceOptions: Sendable {
    var replacement: Unicode.Scalar
    var prependScheme: PrependScheme
    var split: Bool

    enum CodingKeys: String, CodingKey {
        case replacement, prependScheme = "prepend_scheme", split, addPrefixSpace = "add_prefix_space"
    }

    init(from decoder: Decoder, component: String) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let rep = try c.decodeIfPresent(String.self, forKey: .replacement) ?? "\u{2581}"
        guard rep.unicodeScalars.count == 1, let scalar = rep.unicodeScalars.first else {
            throw SchemaError(kind: .invalid(reason: "\(component) replacement must be one character, got \"\(rep)\""),
                              codingPath: c.codingPath + [CodingKeys.replacement])
        }
        replacement = scalar
        if let scheme = try c.decodeIfPresent(String.self, forKey: .prependScheme) {
            guard let parsed = PrependScheme(rawValue: scheme) else {
                throw SchemaError(kind: .unsupported(component: "\(component) prepend_scheme", type: scheme),
                                  codingPath: c.codingPath + [CodingKeys.prependScheme])
            }
            prependScheme = parsed
        } else {
            prependScheme = (try c.decodeIfPresent(Bool.self, forKey: .addPrefixSpace) ?? true) ? .always : .never
        }
        split = try c.decodeIfPresent(Bool.self, forKey: .split) ?? true
    }
}

enum PreTokenizerSpec: Decodable, Sendable {
    case sequence([PreTokenizerSpec])
    case metaspace(MetaspaceOptions)
    case digits(individual: Bool)

    enum CodingKeys: String, CodingKey { case pretokenizers, individualDigits = "individual_digits" }

    init(from decoder: Decoder) throws {
        let type = try TypeTag(from: decoder).type
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch type {
        case "Sequence": self = .sequence(try c.decode([PreTokenizerSpec].self, forKey: .pretokenizers))
        case "Metaspace": self = .metaspace(try MetaspaceOptions(from: decoder, component: "pre_tokenizer Metaspace"))
        case "Digits": self = .digits(individual: try c.decodeIfPresent(Bool.self, forKey: .individualDigits) ?? false)
        default:
            throw SchemaError(kind: .unsupported(component: "pre_tokenizer", type: type), codingPath: decoder.codingPath)
        }
    }
}

enum PostProcessorSpec: Decodable, Sendable {
    /// `single` template resolved to ids: specials become their ids, `nil` marks where the sequence goes.
    case template(single: [[Int]?])
    case sequence([PostProcessorSpec])
    /// ByteLevel's post-processing only adjusts offsets, which we do not produce, so it leaves ids unchanged.
    case passthrough

    enum CodingKeys: String, CodingKey { case single, specialTokens = "special_tokens", processors }

    init(from decoder: Decoder) throws {
        let type = try TypeTag(from: decoder).type
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch type {
        case "TemplateProcessing":
            let specials = try c.decodeIfPresent([String: SpecialTokenSpec].self, forKey: .specialTokens) ?? [:]
            let items = try TemplatePiece.decodeList(c.superDecoder(forKey: .single))
            self = .template(single: try items.map { item in
                switch item {
                case .sequence: return nil
                case let .special(name):
                    guard let spec = specials[name] else {
                        throw SchemaError(kind: .invalid(reason: "template names special token \"\(name)\" "
                                                        + "that is not in special_tokens"),
                                          codingPath: c.codingPath + [CodingKeys.single])
                    }
                    return spec.ids
                }
            })
        case "Sequence": self = .sequence(try c.decode([PostProcessorSpec].self, forKey: .processors))
        case "ByteLevel": self = .passthrough
        default:
            throw SchemaError(kind: .unsupported(component: "post_processor", type: type),
                              codingPath: decoder.codingPath)
        }
    }

    struct SpecialTokenSpec: Decodable, Sendable { var ids: [Int] }

    enum TemplatePiece {
        case special(String), sequence

        /// Accepts both the serialized list form and the "<s> $A" string shorthand some exporters write.
        static func decodeList(_ decoder: Decoder) throws -> [TemplatePiece] {
            if let text = try? String(from: decoder) {
                return text.split(separator: " ").map { word in
                    if word.hasPrefix("$") { return .sequence }
                    let name = word.split(separator: ":", maxSplits: 1).first.map(String.init) ?? String(word)
                    return .special(name)
                }
            }
            var list = try decoder.unkeyedContainer()
            var out: [TemplatePiece] = []
            while !list.isAtEnd {
                let item = try list.nestedContainer(keyedBy: AnyCodingKey.self)
                if item.contains(AnyCodingKey(stringValue: "Sequence")) {
                    out.append(.sequence)
                } else if item.contains(AnyCodingKey(stringValue: "SpecialToken")) {
                    let inner = try item.nestedContainer(keyedBy: AnyCodingKey.self,
                                                         forKey: AnyCodingKey(stringValue: "SpecialToken"))
                    out.append(.special(try inner.decode(String.self, forKey: AnyCodingKey(stringValue: "id"))))
                } else {
                    throw SchemaError(kind: .invalid(reason: "template item is neither Sequence nor SpecialToken"),
                                      codingPath: item.codingPath)
                }
            }
            return out
        }
    }
}

enum DecoderSpec: Decodable, Sendable {
    case sequence([DecoderSpec])
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)

    enum CodingKeys: String, CodingKey { case decoders, pattern, content, start, stop }

    init(from decoder: Decoder) throws {
        let type = try TypeTag(from: decoder).type
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch type {
        case "Sequence": self = .sequence(try c.decode([DecoderSpec].self, forKey: .decoders))
        case "Replace":
            let pattern = try ReplacePattern(from: c.superDecoder(forKey: .pattern), component: "decoder")
            self = .replace(pattern: pattern.string, content: try c.decode(String.self, forKey: .content))
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            let content = try c.decode(String.self, forKey: .content)
            // Scalars, not Characters: HF compares Rust chars, and a Swift Character may fuse a combining mark.
            guard content.unicodeScalars.count == 1, let char = content.unicodeScalars.first else {
                throw SchemaError(kind: .invalid(reason: "Strip content must be one character"),
                                  codingPath: c.codingPath + [CodingKeys.content])
            }
            let start = try c.decodeIfPresent(Int.self, forKey: .start) ?? 0
            let stop = try c.decodeIfPresent(Int.self, forKey: .stop) ?? 0
            guard start >= 0, stop >= 0 else {
                throw SchemaError(kind: .invalid(reason: "Strip start/stop must be non-negative"),
                                  codingPath: c.codingPath)
            }
            self = .strip(content: char, start: start, stop: stop)
        case "Metaspace":
            let options = try MetaspaceOptions(from: decoder, component: "decoder Metaspace")
            self = .metaspace(replacement: options.replacement, prependScheme: options.prependScheme)
        default:
            throw SchemaError(kind: .unsupported(component: "decoder", type: type), codingPath: decoder.codingPath)
        }
    }
}
