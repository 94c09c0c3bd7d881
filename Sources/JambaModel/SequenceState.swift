// SequenceState: one request's per-layer caches (KV for attention layers, conv + SSM state for Mamba layers).

/// Keys and values of every processed token for one attention layer, `[n, nkv·hd]` each, appended per step.
public struct KVCache: Sendable {
    public var keys: [Float] = []
    public var values: [Float] = []
    public var count = 0

    public init() {}
}

/// The constant-size state of one Mamba layer for one sequence.
public struct MambaState: Sendable {
    /// The last K conv inputs (pre-conv `xs`), `[K, Di]`, newest last; zeros before the first token.
    public var conv: [Float]
    /// The SSM hidden state h of the last token, `[Di, N]`.
    public var ssm: [Float]

    public init(dInner: Int, dConv: Int, dState: Int) {
        conv = [Float](repeating: 0, count: dConv * dInner)
        ssm = [Float](repeating: 0, count: dInner * dState)
    }
}

/// All caches of one sequence. Weights never hold request state: this is passed `inout` to the forward pass.
public struct SequenceState: Sendable {
    /// One entry per attention layer, in layer order.
    public var kv: [KVCache]
    /// One entry per Mamba layer, in layer order.
    public var mamba: [MambaState]
    /// Tokens processed so far.
    public var length = 0

    public init(config: JambaConfig) {
        let plan = config.layerPlan
        kv = Array(repeating: KVCache(), count: plan.filter { $0.mixer == .attention }.count)
        mamba = Array(repeating: MambaState(dInner: config.mambaInner, dConv: config.mambaDConv, dState: config.mambaDState),
                      count: plan.filter { $0.mixer == .mamba }.count)
    }

    /// Bytes of state held (KV grows with length; Mamba state is constant).
    public var bytes: Int {
        4 * (kv.reduce(0) { $0 + $1.keys.count + $1.values.count } + mamba.reduce(0) { $0 + $1.conv.count + $1.ssm.count })
    }
}
