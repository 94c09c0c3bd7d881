// Engine: continuous batching over one model: requests join at the next step, share every decode step, leave when done.
import Foundation

/// Why a sequence stopped.
public enum FinishReason: String, Sendable, Equatable {
    case length, eos, cancelled, error
}

/// What a step produced for one request.
public enum GenerationEvent: Sendable, Equatable {
    case token(request: Int, token: Int)
    case finished(request: Int, reason: FinishReason, stats: GenerationStats)
    case failed(request: Int, message: String)
}

/// Token counts and timings of one request, in seconds.
public struct GenerationStats: Sendable, Equatable {
    public var promptTokens = 0
    public var completionTokens = 0
    public var queueSeconds = 0.0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0

    public init() {}
}

/// Limits of an engine.
public struct EngineLimits: Sendable {
    /// Longest prompt + generation a sequence may reach.
    public var maxContext: Int
    /// Most prompt tokens one step processes for one sequence; longer prompts are prefilled over several steps so
    /// running decodes are not stalled behind a long prompt (chunked prefill).
    public var prefillChunk: Int
    /// Most sequences in a step; the rest wait in arrival order.
    public var maxBatch: Int

    public init(maxContext: Int, prefillChunk: Int = 512, maxBatch: Int = 64) {
        self.maxContext = maxContext
        self.prefillChunk = prefillChunk
        self.maxBatch = maxBatch
    }
}

/// A batch of running sequences over one model and one expert executor (local or remote).
public struct Engine<Executor: ExpertExecutor> {
    public let model: JambaModel
    public var executor: Executor
    public let limits: EngineLimits
    private var scratch: ForwardScratch
    private var running: [Running] = []
    private var waiting: [Running] = []

    private struct Running {
        let id: Int
        let prompt: [Int]
        var consumed = 0  // prompt tokens already through the model
        var generated: [Int] = []
        var sampler: Sampler
        var state: SequenceState
        var stats = GenerationStats()
        let submitted: Date
        var started: Date?
        var firstToken: Date?
    }

    public init(model: JambaModel, executor: Executor, limits: EngineLimits? = nil) {
        self.model = model
        self.executor = executor
        self.limits = limits ?? EngineLimits(maxContext: model.config.maxPositionEmbeddings)
        scratch = ForwardScratch(config: model.config)
    }

    public var runningCount: Int { running.count }
    public var waitingCount: Int { waiting.count }
    public var isIdle: Bool { running.isEmpty && waiting.isEmpty }
    /// Rows (tokens) the last step ran, and whether each was a sequence's next token rather than a prompt chunk.
    public private(set) var lastStepRows = 0
    public private(set) var lastStepDecodeOnly = false

    /// Checks a request without queuing it: bad tokens, empty or over-long prompts and bad sampling are refused here,
    /// before anything runs, so one bad request never disturbs the others.
    public func validate(prompt: [Int], params: SamplingParams) throws {
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        try params.validate()
        for t in prompt + params.stopTokens where t < 0 || t >= model.config.vocabSize {
            throw ModelError.tokenOutOfRange(id: t, vocabSize: model.config.vocabSize)
        }
        guard prompt.count < limits.maxContext else {
            throw ModelError.promptTooLong(tokens: prompt.count, limit: limits.maxContext)
        }
    }

    /// Queues a request; it joins the running batch at the next step.
    public mutating func submit(id: Int, prompt: [Int], params: SamplingParams) throws {
        try validate(prompt: prompt, params: params)
        var r = Running(id: id, prompt: prompt, sampler: Sampler(params: params), state: SequenceState(config: model.config), submitted: Date())
        r.stats.promptTokens = prompt.count
        waiting.append(r)
    }

    /// Drops a request wherever it is. Returns whether it was known.
    public mutating func cancel(id: Int) -> Bool {
        if let i = waiting.firstIndex(where: { $0.id == id }) { waiting.remove(at: i); return true }
        if let i = running.firstIndex(where: { $0.id == id }) { running.remove(at: i); return true }
        return false
    }

    /// One forward pass over every running sequence (prompt chunks and single decode tokens mixed), then sampling.
    /// If the pass fails (an expert worker lost, say), every sequence of the step fails with the error: their
    /// caches may be half-updated, so they cannot continue.
    public mutating func step() -> [GenerationEvent] {
        let now = Date()
        while running.count < limits.maxBatch, !waiting.isEmpty {
            var r = waiting.removeFirst()
            r.started = now
            r.stats.queueSeconds = now.timeIntervalSince(r.submitted)
            running.append(r)
        }
        guard !running.isEmpty else { return [] }
        lastStepDecodeOnly = running.allSatisfy { $0.consumed >= $0.prompt.count }
        lastStepRows = 0
        let tokens: [[Int]] = running.map { r in
            if r.consumed < r.prompt.count {
                return Array(r.prompt[r.consumed..<min(r.prompt.count, r.consumed + limits.prefillChunk)])
            }
            return [r.generated.last ?? r.prompt[r.prompt.count - 1]]
        }
        lastStepRows = tokens.reduce(0) { $0 + $1.count }
        var states = running.map(\.state)
        for i in running.indices { running[i].state = SequenceState(config: JambaConfig.empty) }  // move out, no COW copy
        let result: ForwardResult
        do {
            result = try model.forward(tokens: tokens, states: &states, executor: &executor, scratch: &scratch)
        } catch {
            let events = running.map { GenerationEvent.failed(request: $0.id, message: "\(error)") }
            running.removeAll()
            return events
        }
        let done = Date()
        var events: [GenerationEvent] = []
        var keep: [Running] = []
        for (i, var r) in running.enumerated() {
            r.state = states[i]
            let wasPrefill = r.consumed < r.prompt.count
            if wasPrefill { r.consumed += tokens[i].count }
            if r.consumed < r.prompt.count { keep.append(r); continue }  // prompt not finished: no token yet
            let token = result.logits.storage.withUnsafeBufferPointer { p in
                r.sampler.sample(UnsafeBufferPointer(rebasing: p[(i * model.config.vocabSize)..<((i + 1) * model.config.vocabSize)]))
            }
            r.generated.append(token)
            if r.firstToken == nil {
                r.firstToken = done
                r.stats.prefillSeconds = done.timeIntervalSince(r.started ?? done)
            }
            events.append(.token(request: r.id, token: token))
            let params = r.sampler.params
            var reason: FinishReason?
            if (!params.ignoreEOS && model.config.eosTokenId.contains(token)) || params.stopTokens.contains(token) { reason = .eos }
            else if r.generated.count >= params.maxTokens { reason = .length }
            else if r.prompt.count + r.generated.count >= limits.maxContext { reason = .length }
            if let reason {
                r.stats.completionTokens = r.generated.count
                r.stats.decodeSeconds = done.timeIntervalSince(r.firstToken ?? done)
                events.append(.finished(request: r.id, reason: reason, stats: r.stats))
            } else {
                keep.append(r)
            }
        }
        running = keep
        return events
    }
}

extension JambaConfig {
    /// A config with no layers, for placeholder states that hold no memory.
    static var empty: JambaConfig {
        var c = JambaConfig()
        c.numHiddenLayers = 0
        return c
    }
}
