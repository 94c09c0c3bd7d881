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
    /// model.embed_tokens.weight [V, H]
    public let embedTokens: Matrix
    public let layers: [DecoderLayer]
    /// model.final_layernorm.weight [H]
    public let finalNorm: RMSNorm
    /// lm_head.weight [V, H], or embed_tokens.weight when tie_word_embeddings (shared storage, no copy).
    public let lmHead: Matrix

    /// Loads config.json and every non-expert tensor of the model in `directory`.
    public static func load(directory: URL) throws -> (JambaModel, Checkpoint) {
        let config = try JambaConfig.load(directory: directory)
        let ck = try Checkpoint(directory: directory)
        return (try JambaModel(config: config, checkpoint: ck), ck)
    }

    public init(config c: JambaConfig, checkpoint ck: Checkpoint) throws {
        config = c
        embedTokens = try ck.matrix("model.embed_tokens.weight", shape: [c.vocabSize, c.hiddenSize])
        layers = try c.layerPlan.enumerated().map { try WeightLoading.layer($0.offset, kind: $0.element, ck, c) }
        finalNorm = try WeightLoading.norm("model.final_layernorm.weight", c.hiddenSize, ck, c)
        if c.tieWordEmbeddings && !ck.contains("lm_head.weight") {
            lmHead = embedTokens
        } else {
            lmHead = try ck.matrix("lm_head.weight", shape: [c.vocabSize, c.hiddenSize])
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
    /// Bytes of f32 weights one decode token streams outside the experts: every layer's mixer, dense MLP,
    /// router and norms, the final norm and the LM head (the embedding is a row gather, not a stream).
    public var nonExpertBytesPerToken: Int {
        var floats = lmHead.count + finalNorm.weight.count
        for l in layers {
            floats += l.inputNorm.weight.count + l.preFFNorm.weight.count
            switch l.mixer {
            case let .attention(a): floats += a.qProj.count + a.kvProj.count + a.oProj.count
            case let .mamba(m):
                floats += m.inProj.count + m.xProj.count + m.dtProj.count + m.outProj.count + m.convWeight.count
                floats += m.a.count + m.d.count + m.dtBias.count + (m.convBias?.count ?? 0)
            }
            switch l.ffn {
            case let .dense(mlp): floats += mlp.gateUp.count + mlp.down.count
            case let .moe(r): floats += r.weight.count
            }
        }
        return 4 * floats
    }

    /// Bytes of one expert's f32 weights.
    public var expertBytes: Int { 4 * 3 * config.hiddenSize * config.intermediateSize }
}
