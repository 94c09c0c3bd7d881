// Tokenizer: loads a Llama/Jamba-style tokenizer.json and encodes/decodes exactly like HF `tokenizers`.
import Foundation

/// A byte-fallback BPE tokenizer read from a Hugging Face `tokenizer.json`.
///
/// Encoding runs HF's pipeline in order: added/special tokens are found in the raw text first and split it into
/// sections; each section is normalized, pre-tokenized (Metaspace) and BPE-encoded; the post-processor template
/// adds BOS. Decoding runs the decoder chain (Replace, ByteFallback, Fuse, Strip). The value is immutable and
/// `Sendable`, so one instance can serve concurrent requests.
public struct Tokenizer: Sendable {
    var model: BPEModel
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let normalizer: NormalizerSpec?
    private let preTokenizer: PreTokenizerSpec?
    private let postProcessor: PostProcessorSpec?
    let decodeSteps: [DecodeStep]
    private let idToToken: [String?]
    /// Byte-keyed like the model vocab; see `BPEModel.vocab`.
    private let addedTokenIds: [[UInt8]: Int]
    /// By id; `decode(skipSpecialTokens: true)` drops exactly the added tokens flagged `special`.
    private let specialFlags: [Bool]

    public let bosTokenId: Int?
    public let eosTokenId: Int?

    /// Loads a `tokenizer.json` file. Throws `TokenizerError`.
    public init(contentsOf url: URL) throws {
        try self.init(file: url, config: nil)
    }

    /// Loads `tokenizer.json` from a model folder; `tokenizer_config.json` and `special_tokens_map.json`, when
    /// present, name the BOS/EOS tokens. Throws `TokenizerError`.
    public init(directory: URL) throws {
        let file = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw TokenizerError.unreadableFile(path: directory.path, reason: "no tokenizer.json in this directory")
        }
        let config = try SpecialTokenConfig(directory: directory)
        try self.init(file: file, config: config)
    }

    private init(file url: URL, config: SpecialTokenConfig?) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .unreadableFile(path: url.path, reason: error.localizedDescription)
        }
        try self.init(data: data, path: url.path, config: config)
    }

    init(data: Data, path: String, config: SpecialTokenConfig? = nil) throws(TokenizerError) {
        let file = try TokenizerFile.parse(data, path: path)
        var boundary: Unicode.Scalar = "\u{2581}"
        if case let .metaspace(options)? = file.preTokenizer { boundary = options.replacement }
        model = try BPEModel(spec: file.model, path: path, boundaryScalar: boundary)
        normalizer = file.normalizer
        preTokenizer = file.preTokenizer
        postProcessor = file.postProcessor
        decodeSteps = try DecodeStep.plan(file.decoder, path: path)

        // HF matches non-normalized added tokens in the raw text and the others only after normalization; with
        // no normalizer both happen on the same text, but the two passes can still pick different overlaps.
        rawMatcher = AddedTokenMatcher(file.addedTokens.filter { !$0.normalized || file.normalizer == nil })
        // HF also normalizes the content of such tokens, so with a Prepend("▁") normalizer "hello" is looked for
        // as "▁hello" (and decodes as "▁hello" too, see below).
        let normalizedAdded = file.addedTokens.compactMap { token -> AddedTokenSpec? in
            guard token.normalized, let normalizer = file.normalizer else { return nil }
            var copy = token
            copy.content = String(decoding: Normalization.apply(normalizer, to: Array(token.content.utf8)),
                                  as: UTF8.self)
            return copy.content.isEmpty ? nil : copy
        }
        normalizedMatcher = AddedTokenMatcher(normalizedAdded)

        let maxId = max(file.model.vocab.map(\.id).max() ?? -1, file.addedTokens.map(\.id).max() ?? -1)
        var tokens = [String?](repeating: nil, count: maxId + 1)
        var added: [[UInt8]: Int] = [:]
        var special = [Bool](repeating: false, count: maxId + 1)
        for (bytes, id) in model.vocab { tokens[Int(id)] = String(decoding: bytes, as: UTF8.self) }
        for token in file.addedTokens {
            guard token.id >= 0 else {
                throw .invalidValue(path: path, field: "added_tokens", reason: "token \"\(token.content)\" has id \(token.id)")
            }
            // Added tokens win over the model vocab in both directions, as in HF's id_to_token/token_to_id.
            tokens[token.id] = token.content
            added[Array(token.content.utf8)] = token.id
            special[token.id] = token.special
        }
        // HF maps the id of a normalized added token back to its *normalized* content, which is what decode
        // shows, while token_to_id still takes the content as written.
        for token in normalizedAdded { tokens[token.id] = token.content }
        idToToken = tokens
        addedTokenIds = added
        specialFlags = special

        var templateBos: Int?
        if case let .template(single)? = file.postProcessor, let first = single.first, let ids = first {
            templateBos = ids.first
        }
        let vocab = model.vocab
        let lookup = { (name: String) -> Int? in added[Array(name.utf8)] ?? vocab[Array(name.utf8)].map(Int.init) }
        bosTokenId = config?.bosToken.flatMap(lookup) ?? templateBos ?? lookup("<s>")
        eosTokenId = config?.eosToken.flatMap(lookup) ?? lookup("</s>")
    }

    // MARK: Vocabulary

    /// Number of ids, i.e. one more than the largest id in the vocab or the added tokens.
    public var vocabSize: Int { idToToken.count }

    public func token(for id: Int) -> String? {
        id >= 0 && id < idToToken.count ? idToToken[id] : nil
    }

    /// The id of `token`, compared byte for byte (no Unicode normalization), as HF does.
    public func id(for token: String) -> Int? {
        let bytes = Array(token.utf8)
        return addedTokenIds[bytes] ?? model.vocab[bytes].map(Int.init)
    }

    func isSpecial(_ id: Int) -> Bool { id >= 0 && id < specialFlags.count && specialFlags[id] }

    // MARK: Encoding

    /// Token ids for `text`; with `addSpecialTokens` the post-processor template (BOS for Llama) is applied.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var output: [Int] = []
        output.reserveCapacity(text.utf8.count / 3 + 4)
        var scratch = BPEScratch()
        let bytes = Array(text.utf8)
        let segments = bytes.withUnsafeBufferPointer { rawMatcher.split($0) }
        for segment in segments {
            switch segment {
            case let .token(id):
                output.append(id)
            case let .text(range):
                encodeSection(Array(bytes[range]), atOrigin: range.lowerBound == 0, into: &output, scratch: &scratch)
            }
        }
        guard addSpecialTokens, let postProcessor else { return output }
        return Self.postProcess(output, postProcessor)
    }

    private func encodeSection(_ raw: [UInt8], atOrigin: Bool, into output: inout [Int], scratch: inout BPEScratch) {
        let normalized = normalizer.map { Normalization.apply($0, to: raw) } ?? raw
        let segments = normalized.withUnsafeBufferPointer { normalizedMatcher.split($0) }
        for segment in segments {
            switch segment {
            case let .token(id):
                output.append(id)
            case let .text(range):
                let piece = range.count == normalized.count ? normalized : Array(normalized[range])
                let pre = PreTokenization.apply(preTokenizer, to: piece, atOrigin: atOrigin && range.lowerBound == 0)
                pre.bytes.withUnsafeBufferPointer { buffer in
                    for word in pre.words {
                        model.encode(word: UnsafeBufferPointer(rebasing: buffer[word.range]), into: &output,
                                     scratch: &scratch)
                    }
                }
            }
        }
    }

    private static func postProcess(_ ids: [Int], _ spec: PostProcessorSpec) -> [Int] {
        switch spec {
        case let .template(single):
            return single.flatMap { $0 ?? ids }
        case let .sequence(steps):
            return steps.reduce(ids) { postProcess($0, $1) }
        case .passthrough:
            return ids
        }
    }

    // MARK: Decoding

    /// Text for `ids`, through the decoder chain. Throws `TokenizerError.unknownTokenId` for an id with no token.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) throws -> String {
        for id in ids where token(for: id) == nil {
            throw TokenizerError.unknownTokenId(id: id, vocabSize: vocabSize)
        }
        var decoder = StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
        var text = try decoder.append(contentsOf: ids)
        text += decoder.finish()
        return text
    }
}

/// BOS/EOS names from the optional `tokenizer_config.json` and `special_tokens_map.json` of a model folder.
struct SpecialTokenConfig: Sendable {
    var bosToken: String?
    var eosToken: String?

    init(directory: URL) throws(TokenizerError) {
        // tokenizer_config.json takes precedence, as in transformers.
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
            } catch {
                throw .malformedFile(path: url.path, field: "<root>", reason: error.localizedDescription)
            }
            guard let dict = object as? [String: Any] else {
                throw .malformedFile(path: url.path, field: "<root>", reason: "expected a JSON object")
            }
            bosToken = Self.tokenName(dict["bos_token"]) ?? bosToken
            eosToken = Self.tokenName(dict["eos_token"]) ?? eosToken
        }
    }

    /// A token is written either as a plain string or as an AddedToken object with a "content" field.
    private static func tokenName(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let d = value as? [String: Any] { return d["content"] as? String }
        return nil
    }
}
