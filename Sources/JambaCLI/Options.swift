// Options: argument groups shared by the local and cluster commands (model folder, prompt, sampling).
import ArgumentParser
import Foundation
import JambaMath
import JambaModel

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model folder (config.json, safetensors, optional tokenizer.json).")
    var model: String

    @Option(name: .long, help: "BLAS threads for this process (default: OpenBLAS's choice).")
    var threads: Int?

    @Option(name: .long, help: "How weight matrices are held: f32, or bf16 (half the memory and bytes per step; compute stays f32).")
    var weightsDtype: WeightDType = .f32

    var url: URL { URL(fileURLWithPath: model) }

    func validate() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("model folder '\(model)' does not exist")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }
}

struct PromptOptions: ParsableArguments {
    @Option(name: .long, help: "Prompt text (needs tokenizer.json).")
    var prompt: String?

    @Option(name: .long, help: "Prompt as comma-separated token ids, e.g. 1,2,3.")
    var tokens: String?

    func validate() throws {
        guard (prompt == nil) != (tokens == nil) else { throw ValidationError("give exactly one of --prompt or --tokens") }
        if let tokens { _ = try parseTokenList(tokens) }
    }
}

struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Most new tokens to generate.")
    var maxTokens: Int = 64

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Keep only the K most likely tokens (0: all).")
    var topK: Int = 0

    @Option(name: .long, help: "Keep the smallest set of tokens whose probability reaches P, in (0, 1].")
    var topP: Float = 1

    @Option(name: .long, help: "Random seed; the same seed gives the same output.")
    var seed: UInt64?

    @Flag(name: .long, help: "Do not stop at the end-of-sequence token.")
    var ignoreEos = false

    var params: SamplingParams {
        SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed, maxTokens: maxTokens, ignoreEOS: ignoreEos)
    }

    func validate() throws {
        do { try params.validate() } catch { throw ValidationError("\(error)") }
    }
}

extension WeightDType: ExpressibleByArgument {}
