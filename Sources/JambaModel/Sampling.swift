// Sampling: greedy, temperature, top-k and top-p sampling with a seeded generator, and its parameters.
import Foundation

/// How to pick tokens and when to stop. Validated before a request is accepted.
public struct SamplingParams: Sendable, Equatable {
    /// 0 means greedy (argmax).
    public var temperature: Float = 0
    /// 0 means no top-k cut.
    public var topK: Int = 0
    /// 1 means no nucleus cut; must be in (0, 1].
    public var topP: Float = 1
    /// Same seed, same output. nil: seeded from the system generator.
    public var seed: UInt64? = nil
    public var maxTokens: Int = 64
    /// Keep generating after EOS (benchmarks, golden comparisons).
    public var ignoreEOS = false
    /// More tokens that end generation like EOS (as vLLM's stop_token_ids); not affected by `ignoreEOS`.
    public var stopTokens: [Int] = []

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64? = nil, maxTokens: Int = 64, ignoreEOS: Bool = false,
                stopTokens: [Int] = []) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.maxTokens = maxTokens
        self.ignoreEOS = ignoreEOS
        self.stopTokens = stopTokens
    }

    public func validate() throws {
        guard temperature.isFinite, temperature >= 0 else {
            throw ModelError.badSampling(parameter: "temperature", detail: "must be a finite number ≥ 0, got \(temperature)")
        }
        guard topK >= 0 else { throw ModelError.badSampling(parameter: "top-k", detail: "must be ≥ 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw ModelError.badSampling(parameter: "top-p", detail: "must be in (0, 1], got \(topP)") }
        guard maxTokens > 0 else { throw ModelError.badSampling(parameter: "max-tokens", detail: "must be > 0, got \(maxTokens)") }
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast, and identical on every platform (the system generator
/// is not seedable).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits, enough for float probabilities.
    public mutating func unitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Picks the next token from a logits row according to `SamplingParams`.
public struct Sampler: Sendable {
    public let params: SamplingParams
    private var rng: SeededGenerator
    private var candidates: [(id: Int, p: Float)] = []

    public init(params: SamplingParams) {
        self.params = params
        rng = SeededGenerator(seed: params.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// First index of the largest value, like torch.argmax.
    public static func argmax(_ row: [Float]) -> Int {
        row.withUnsafeBufferPointer { argmax($0) }
    }

    public static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<row.count where row[i] > row[best] { best = i }
        return best
    }

    public mutating func sample(_ row: [Float]) -> Int {
        row.withUnsafeBufferPointer { sample($0) }
    }

    /// Greedy when temperature is 0; otherwise softmax(logits / T), cut to top-k, then to the smallest prefix
    /// whose mass reaches top-p (in descending order), renormalised, and drawn with the seeded generator.
    public mutating func sample(_ row: UnsafeBufferPointer<Float>) -> Int {
        if params.temperature == 0 { return Self.argmax(row) }
        let inv = 1 / params.temperature
        var m = -Float.infinity
        for v in row where v > m { m = v }
        candidates.removeAll(keepingCapacity: true)
        for (i, v) in row.enumerated() { candidates.append((i, Foundation.exp((v - m) * inv))) }
        // Sort descending by probability, ties by id, so the draw is deterministic for a seed.
        candidates.sort { $0.p != $1.p ? $0.p > $1.p : $0.id < $1.id }
        if params.topK > 0 && params.topK < candidates.count { candidates.removeLast(candidates.count - params.topK) }
        var total: Float = 0
        for c in candidates { total += c.p }
        if params.topP < 1 {
            var acc: Float = 0, keep = 0
            for c in candidates {
                acc += c.p
                keep += 1
                if acc >= params.topP * total { break }
            }
            candidates.removeLast(candidates.count - keep)
            total = acc
        }
        let target = rng.unitFloat() * total
        var acc: Float = 0
        for c in candidates {
            acc += c.p
            if acc > target { return c.id }
        }
        return candidates.last?.id ?? Self.argmax(row)
    }
}
