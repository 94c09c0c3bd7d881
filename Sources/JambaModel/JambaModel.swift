// JambaModel: the non-expert weights of JambaForCausalLM and its forward pass over a ragged token batch.
import Foundation
import JambaLoader
import JambaMath

/// One decoder layer: pre-norm mixer then pre-norm feed-forward, each added to the residual stream.
/// Checkpoint tensors: `model.layers.{i}.input_layernorm.weight`, `model.layers.{i}.pre_ff_layernorm.weight`.
public struct DecoderLayer: Sendable {
    public enum Mixer: Sendable { case attention(Attention), mamba(MambaMixer) }
    /// A dense layer holds its MLP; an MoE layer holds only its router: experts live behind the ExpertExecutor.
    public enum FFN: Sendable { case dense(MLP), moe(Router) }

    public let index: Int
    public let inputNorm: RMSNorm
    public let mixer: Mixer
    public let preFFNorm: RMSNorm
    public let ffn: FFN
}

/// What a forward pass returns: logits for the requested rows, plus optional diagnostics for tests.
public struct ForwardResult: Sendable {
    /// [rows, V]: one row per sequence (its last token) or one per input token, as requested.
    public var logits: Matrix
    /// Residual stream after the embedding and after each layer, then the final-norm output (if collected).
    public var hiddenStates: [Matrix] = []
    /// Routing per MoE layer in layer order (if collected).
    public var routing: [Routing] = []
}

/// Options of a forward pass.
public struct ForwardOptions: Sendable {
    public var allLogits = false
    public var collectHiddenStates = false
    public var collectRouting = false

    public init(allLogits: Bool = false, collectHiddenStates: Bool = false, collectRouting: Bool = false) {
        self.allLogits = allLogits
        self.collectHiddenStates = collectHiddenStates
        self.collectRouting = collectRouting
    }
}

/// The model without its experts. Weights are immutable and shared; per-sequence state is passed in.
public struct JambaModel: Sendable {
    public let config: JambaConfig
    /// How the weight matrices are held (f32, or bf16 for half the memory and bytes per step).
    public let weightsDType: WeightDType
    /// model.embed_tokens.weight [V, H]
    public let embedTokens: Weights
    public let layers: [DecoderLayer]
    /// model.final_layernorm.weight [H]
    public let finalNorm: RMSNorm
    /// lm_head.weight [V, H], or embed_tokens.weight when tie_word_embeddings (shared storage, no copy).
    public let lmHead: Weights

    /// Loads config.json and every non-expert tensor of the model in `directory`.
    public static func load(directory: URL, weightsDType: WeightDType = .f32) throws -> (JambaModel, Checkpoint) {
        let config = try JambaConfig.load(directory: directory)
        let ck = try Checkpoint(directory: directory)
        return (try JambaModel(config: config, checkpoint: ck, weightsDType: weightsDType), ck)
    }

    public init(config c: JambaConfig, checkpoint ck: Checkpoint, weightsDType dt: WeightDType = .f32) throws {
        config = c
        weightsDType = dt
        embedTokens = try WeightLoading.weights("model.embed_tokens.weight", c.vocabSize, c.hiddenSize, ck, dt)
        layers = try c.layerPlan.enumerated().map { try WeightLoading.layer($0.offset, kind: $0.element, ck, c, dt) }
        finalNorm = try WeightLoading.norm("model.final_layernorm.weight", c.hiddenSize, ck, c)
        if c.tieWordEmbeddings && !ck.contains("lm_head.weight") {
            lmHead = embedTokens
        } else {
            lmHead = try WeightLoading.weights("lm_head.weight", c.vocabSize, c.hiddenSize, ck, dt)
        }
    }

    /// Runs the model over a ragged batch: `tokens[s]` are the new tokens of sequence `states[s]` (a whole prompt
    /// for prefill, one token for decode; mixed freely). Returns logits of each sequence's last new token, or of
    /// every token with `options.allLogits`.
    public func forward(tokens: [[Int]], states: inout [SequenceState], executor: inout some ExpertExecutor,
                        options: ForwardOptions = ForwardOptions(), scratch: inout ForwardScratch) throws -> ForwardResult {
        precondition(tokens.count == states.count, "one token list per sequence state")
        var segments: [Range<Int>] = []
        var flat: [Int] = []
        for t in tokens {
            for id in t where id < 0 || id >= config.vocabSize { throw ModelError.tokenOutOfRange(id: id, vocabSize: config.vocabSize) }
            segments.append(flat.count..<(flat.count + t.count))
            flat.append(contentsOf: t)
        }
        // x [T, H] = embed_tokens[ids] (no scaling)
        var x = embedTokens.gatherRows(flat)
        var result = ForwardResult(logits: Matrix(zeros: 0, config.vocabSize))
        if options.collectHiddenStates { result.hiddenStates.append(x) }

        var attnSlot = 0, mambaSlot = 0
        for layer in layers {
            layer.inputNorm(x, into: &scratch.normed)
            switch layer.mixer {
            case let .attention(attn):
                var caches = states.map { $0.kv[attnSlot] }
                for s in states.indices { states[s].kv[attnSlot] = KVCache() }  // move out: no copy-on-write
                attn(scratch.normed, segments: segments, caches: &caches, into: &scratch.mixed, scratch: &scratch.attention)
                for s in states.indices { states[s].kv[attnSlot] = caches[s] }
                attnSlot += 1
            case let .mamba(mixer):
                var ms = states.map { $0.mamba[mambaSlot] }
                for s in states.indices { states[s].mamba[mambaSlot] = MambaState(dInner: 0, dConv: 0, dState: 0) }
                mixer(scratch.normed, segments: segments, states: &ms, into: &scratch.mixed, scratch: &scratch.mamba)
                for s in states.indices { states[s].mamba[mambaSlot] = ms[s] }
                mambaSlot += 1
            }
            Kernels.add(&x, scratch.mixed)  // h = x + mixer(norm(x))
            layer.preFFNorm(x, into: &scratch.normed)
            switch layer.ffn {
            case let .dense(mlp):
                mlp(scratch.normed, into: &scratch.ffnOut, scratch: &scratch.mlp)
            case let .moe(router):
                let routing = router(scratch.normed)
                try MoEDispatch.run(x: scratch.normed, routing: routing, numExperts: router.numExperts,
                                    layer: layer.index, executor: &executor, into: &scratch.ffnOut)
                if options.collectRouting { result.routing.append(routing) }
            }
            Kernels.add(&x, scratch.ffnOut)  // x = h + ffn(norm(h))
            if options.collectHiddenStates { result.hiddenStates.append(x) }
        }
        for s in states.indices { states[s].length += tokens[s].count }

        // Final norm and LM head, only on the rows whose logits are wanted.
        let wanted = options.allLogits ? Array(0..<flat.count) : segments.compactMap { $0.isEmpty ? nil : $0.upperBound - 1 }
        var last = wanted.count == flat.count ? x : x.gatherRows(wanted)
        Kernels.rmsNorm(&last, weight: finalNorm.weight, eps: finalNorm.eps)
        if options.collectHiddenStates {
            var normed = x
            Kernels.rmsNorm(&normed, weight: finalNorm.weight, eps: finalNorm.eps)
            result.hiddenStates.append(normed)
        }
        result.logits = Matrix(overwrittenRows: last.rows, lmHead.rows)
        BLAS.linear(last, lmHead, into: &result.logits)  // [n, H] · lm_head[V, H]ᵀ → [n, V]
        return result
    }
}

/// Buffers reused across forward passes so a decode step does not allocate per layer.
public struct ForwardScratch: Sendable {
    var normed: Matrix
    var mixed: Matrix
    var ffnOut: Matrix
    var attention: AttentionScratch
    var mamba: MambaScratch
    var mlp: MLPScratch

    public init(config c: JambaConfig) {
        normed = Matrix(zeros: 0, c.hiddenSize)
        mixed = Matrix(zeros: 0, c.hiddenSize)
        ffnOut = Matrix(zeros: 0, c.hiddenSize)
        attention = AttentionScratch(numHeads: c.numAttentionHeads, numKVHeads: c.numKeyValueHeads, headDim: c.headDim)
        mamba = MambaScratch(config: c)
        mlp = MLPScratch(intermediate: c.intermediateSize)
    }
}

extension JambaModel {
    /// Bytes of weights one decode token streams outside the experts: every layer's mixer, dense MLP, router and
    /// norms, the final norm and the LM head (the embedding is a row gather, not a stream).
    public var nonExpertBytesPerToken: Int { streamedOutsideExperts(matrix: \.byteCount, f32Count: { 4 * $0 }) }

    /// Weights (elements) one token multiplies through outside the experts, LM head included.
    public var nonExpertParametersPerToken: Int { streamedOutsideExperts(matrix: \.count, f32Count: { $0 }) }

    /// Sums `matrix` over the weight matrices and `f32Count` over the f32 vectors one token streams.
    private func streamedOutsideExperts(matrix: (Weights) -> Int, f32Count: (Int) -> Int) -> Int {
        var total = matrix(lmHead) + f32Count(finalNorm.weight.count)
        for l in layers {
            total += f32Count(l.inputNorm.weight.count + l.preFFNorm.weight.count)
            switch l.mixer {
            case let .attention(a): total += matrix(a.qProj) + matrix(a.kvProj) + matrix(a.oProj)
            case let .mamba(m):
                total += matrix(m.inProj) + matrix(m.xProj) + matrix(m.dtProj) + matrix(m.outProj)
                total += f32Count(m.convWeight.count + m.a.count + m.d.count + m.dtBias.count + (m.convBias?.count ?? 0))
            }
            switch l.ffn {
            case let .dense(mlp): total += matrix(mlp.gateUp) + matrix(mlp.down)
            case let .moe(r): total += matrix(r.weight)
            }
        }
        return total
    }

    /// Weights (elements) of one expert.
    public var expertParameters: Int { 3 * config.hiddenSize * config.intermediateSize }

    /// Bytes of one expert's weights as this model holds them.
    public var expertBytes: Int { weightsDType.byteSize * expertParameters }
}
