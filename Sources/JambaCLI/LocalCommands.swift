// LocalCommands: `generate`, `logits`, `tokenize`, `detokenize`, `perplexity` on a model loaded in this process.
import ArgumentParser
import Foundation
import JambaLoader
import JambaMath
import JambaModel
import JambaTokenizer

/// A model with all its experts in this process, and its tokenizer when the folder has one.
struct LocalModel {
    let model: JambaModel
    let experts: ExpertStore
    let tokenizer: Tokenizer?

    init(_ options: ModelOptions, weightsDType: WeightDType? = nil) throws {
        if let t = options.threads { BLAS.setThreads(t) }
        let dtype = weightsDType ?? options.weightsDtype
        let (model, ck) = try JambaModel.load(directory: options.url, weightsDType: dtype)
        self.model = model
        experts = try ExpertStore.load(ExpertStore.allIDs(model.config), from: ck, config: model.config, dtype: dtype)
        let tokURL = options.url.appendingPathComponent("tokenizer.json")
        tokenizer = FileManager.default.fileExists(atPath: tokURL.path) ? try Tokenizer(directory: options.url) : nil
    }

    func promptIDs(_ p: PromptOptions) throws -> [Int] {
        if let t = p.tokens { return try parseTokenList(t) }
        guard let tokenizer else { throw ValidationError("this model folder has no tokenizer.json: give --tokens instead of --prompt") }
        return tokenizer.encode(p.prompt ?? "")
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text with a model in this process.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @OptionGroup var sampling: SamplingOptions
    @Flag(name: .long, help: "Print one JSON object at the end instead of streaming text.")
    var json = false

    struct Output: Encodable {
        let tokens: [Int]
        let text: String?
        let finish_reason: String
        let prompt_tokens: Int
        let prefill_seconds: Double
        let decode_seconds: Double
        let decode_tokens_per_second: Double
    }

    func run() throws {
        try reportingErrors {
            let local = try LocalModel(modelOptions)
            let prompt = try local.promptIDs(promptOptions)
            var engine = Engine(model: local.model, executor: LocalExpertExecutor(experts: local.experts))
            try engine.submit(id: 0, prompt: prompt, params: sampling.params)
            // Primed with the prompt: the continuation keeps its leading space (the tokenizer strips one only at
            // the start of a whole text).
            var stream = local.tokenizer.map { StreamingDecoder(tokenizer: $0) }
            _ = try stream?.append(contentsOf: prompt)
            var tokens: [Int] = []
            var text = ""
            var final: (FinishReason, GenerationStats)?
            while final == nil && !engine.isIdle {
                for event in engine.step() {
                    switch event {
                    case let .token(_, t):
                        tokens.append(t)
                        if var s = stream {
                            let piece = try s.append(t)
                            stream = s
                            text += piece
                            if !json { emit(piece) }
                        }
                    case let .finished(_, reason, stats):
                        final = (reason, stats)
                    case let .failed(_, message):
                        throw ModelError.expertFailure(layer: -1, detail: message)
                    }
                }
            }
            if var s = stream {
                let rest = s.finish()
                text += rest
                if !json { emit(rest + "\n") }
            }
            if !json, stream == nil { emit(tokens.map(String.init).joined(separator: ",") + "\n") }
            if json, let (reason, stats) = final {
                let decodeRate = stats.decodeSeconds > 0 ? Double(max(0, stats.completionTokens - 1)) / stats.decodeSeconds : 0
                try printJSON(Output(tokens: tokens, text: local.tokenizer == nil ? nil : text, finish_reason: reason.rawValue,
                                     prompt_tokens: stats.promptTokens, prefill_seconds: stats.prefillSeconds,
                                     decode_seconds: stats.decodeSeconds, decode_tokens_per_second: decodeRate))
            }
        }
    }
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One full forward pass; prints the logits of every position as JSON.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Comma-separated token ids.")
    var tokens: String

    func run() throws {
        try reportingErrors {
            let ids = try parseTokenList(tokens)
            let local = try LocalModel(modelOptions)
            var states = [SequenceState(config: local.model.config)]
            var exec = LocalExpertExecutor(experts: local.experts)
            var scratch = ForwardScratch(config: local.model.config)
            let r = try local.model.forward(tokens: [ids], states: &states, executor: &exec,
                                            options: ForwardOptions(allLogits: true), scratch: &scratch)
            try printJSON(["logits": (0..<r.logits.rows).map { r.logits.row($0) }])
        }
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Token ids of a text, BOS included, as transformers' tokenizer(text).")

    @Option(name: .long, help: "Model folder with tokenizer.json.")
    var model: String
    @Option(name: .long, help: "Text to encode.")
    var text: String
    @Flag(name: .long, help: "Print {\"ids\": [...]}.")
    var json = false

    func run() throws {
        try reportingErrors {
            let ids = try Tokenizer(directory: URL(fileURLWithPath: model)).encode(text)
            if json { try printJSON(["ids": ids]) } else { print(ids.map(String.init).joined(separator: ",")) }
        }
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Text of comma-separated token ids.")

    @Option(name: .long, help: "Model folder with tokenizer.json.")
    var model: String
    @Option(name: .long, help: "Comma-separated token ids.")
    var tokens: String

    func run() throws {
        try reportingErrors {
            let ids = try parseTokenList(tokens)
            print(try Tokenizer(directory: URL(fileURLWithPath: model)).decode(ids))
        }
    }
}

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Perplexity of a text or token ids under the model (teacher forcing).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @Flag(name: .long) var json = false

    func run() throws {
        try reportingErrors {
            let local = try LocalModel(modelOptions)
            let ids = try local.promptIDs(promptOptions)
            guard ids.count >= 2 else { throw ValidationError("need at least 2 tokens to score") }
            let (nll, ppl) = try PerplexityMeter.measure(model: local.model, experts: local.experts, tokens: ids)
            if json { try printJSON(["tokens": Double(ids.count), "mean_nll": nll, "perplexity": ppl]) } else {
                print(String(format: "%d tokens, mean NLL %.5f, perplexity %.4f", ids.count, nll, ppl))
            }
        }
    }
}
