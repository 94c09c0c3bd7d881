// PerplexityMeter: mean negative log-likelihood of a token sequence under the model (teacher forcing).
import Foundation
import JambaMath

public enum PerplexityMeter {
    /// Mean NLL over positions 1..<n (each predicted from the ones before) and exp of it.
    public static func measure(model: JambaModel, experts: ExpertStore, tokens: [Int]) throws -> (meanNLL: Double, perplexity: Double) {
        var states = [SequenceState(config: model.config)]
        var exec = LocalExpertExecutor(experts: experts)
        var scratch = ForwardScratch(config: model.config)
        let r = try model.forward(tokens: [tokens], states: &states, executor: &exec,
                                  options: ForwardOptions(allLogits: true), scratch: &scratch)
        let v = model.config.vocabSize
        var total = 0.0
        r.logits.storage.withUnsafeBufferPointer { p in
            for i in 0..<(tokens.count - 1) {
                let row = UnsafeBufferPointer(rebasing: p[(i * v)..<((i + 1) * v)])
                total += Double(Kernels.logSumExp(row) - row[tokens[i + 1]])
            }
        }
        let mean = total / Double(tokens.count - 1)
        return (mean, Foundation.exp(mean))
    }
}
