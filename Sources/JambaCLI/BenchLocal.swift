// BenchLocal: the single-process benchmark scenarios (prefill, batched greedy decode) on a loaded model.
import Dispatch
import Foundation
import JambaMath
import JambaModel

/// Counts the distinct experts each MoE layer runs per forward pass: the expert bytes a decode step streams.
struct CountingExecutor: ExpertExecutor {
    var inner: LocalExpertExecutor
    var expertsRun = 0
    /// Seconds spent running experts and combining their outputs (the part a cluster moves to its workers).
    var expertSeconds = 0.0

    mutating func run(layer: Int, x: Matrix, batches: [ExpertBatch], into out: inout Matrix) throws {
        expertsRun += batches.count
        let t0 = LocalBench.now()
        defer { expertSeconds += LocalBench.now() - t0 }
        try inner.run(layer: layer, x: x, batches: batches, into: &out)
    }
}

struct LocalBench {
    let model: JambaModel
    var executor: CountingExecutor
    var scratch: ForwardScratch

    init(model: JambaModel, experts: ExpertStore) {
        self.model = model
        executor = CountingExecutor(inner: LocalExpertExecutor(experts: experts))
        scratch = ForwardScratch(config: model.config)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Deterministic pseudo-random prompt tokens (ids 4... to skip the special tokens).
    static func prompt(_ n: Int, seed: UInt64, vocab: Int) -> [Int] {
        var g = SeededGenerator(seed: seed)
        return (0..<n).map { _ in 4 + Int(g.next() % UInt64(max(1, vocab - 4))) }
    }

    /// Seconds of one prefill over `tokens` (logits of the last position only), per repeat.
    mutating func prefill(_ tokens: [Int], repeats: Int) throws -> [Double] {
        var times: [Double] = []
        for r in 0..<(repeats + 1) {
            var states = [SequenceState(config: model.config)]
            let t0 = Self.now()
            _ = try model.forward(tokens: [tokens], states: &states, executor: &executor, scratch: &scratch)
            if r > 0 { times.append(Self.now() - t0) }  // the first run warms caches and page-ins
        }
        return times
    }

    struct DecodeRun {
        var ttft: Double
        var stepSeconds: [Double]
        var expertsPerStep: [Int]
        var expertSecondsPerStep: [Double] = []
    }

    /// Greedy decode of `batch` prompts of `promptLen` tokens for `newTokens` tokens, all rows in every step.
    mutating func decode(batch: Int, promptLen: Int, newTokens: Int, seed: UInt64) throws -> DecodeRun {
        let prompts = (0..<batch).map { Self.prompt(promptLen, seed: seed + UInt64($0), vocab: model.config.vocabSize) }
        var states = prompts.map { _ in SequenceState(config: model.config) }
        let t0 = Self.now()
        var r = try model.forward(tokens: prompts, states: &states, executor: &executor, scratch: &scratch)
        var run = DecodeRun(ttft: Self.now() - t0, stepSeconds: [], expertsPerStep: [])
        for _ in 1..<newTokens {
            let next = (0..<batch).map { b in [Sampler.argmax(r.logits.row(b))] }
            executor.expertsRun = 0
            executor.expertSeconds = 0
            let s0 = Self.now()
            r = try model.forward(tokens: next, states: &states, executor: &executor, scratch: &scratch)
            run.stepSeconds.append(Self.now() - s0)
            run.expertsPerStep.append(executor.expertsRun)
            run.expertSecondsPerStep.append(executor.expertSeconds)
        }
        return run
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Peak resident set of this process, bytes.
func peakRSS() -> Int {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return u.ru_maxrss * 1024
}
