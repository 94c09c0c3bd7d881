// JambaConfig: config.json of a JambaForCausalLM checkpoint, with transformers 5.24's defaults and validation.
import Foundation

/// Every JambaConfig field (camelCase of the HF key), defaulted as transformers does when the key is absent.
public struct JambaConfig: Sendable, Equatable {
    public var vocabSize = 65536
    public var tieWordEmbeddings = false
    public var hiddenSize = 4096
    public var intermediateSize = 14336
    public var numHiddenLayers = 32
    public var numAttentionHeads = 32
    public var numKeyValueHeads = 8
    public var hiddenAct = "silu"
    public var initializerRange = 0.02
    public var rmsNormEps: Float = 1e-6
    public var useCache = true
    public var outputRouterLogits = false
    public var routerAuxLossCoef = 0.001
    public var padTokenId: Int? = 0
    public var bosTokenId: Int? = 1
    public var eosTokenId: [Int] = [2]
    public var maxPositionEmbeddings = 262144
    public var attentionDropout = 0.0
    public var numExpertsPerTok = 2
    public var numExperts = 16
    public var expertLayerPeriod = 2
    public var expertLayerOffset = 1
    public var attnLayerPeriod = 8
    public var attnLayerOffset = 4
    public var useMambaKernels = true
    public var mambaDState = 16
    public var mambaDConv = 4
    public var mambaExpand = 2
    /// `"auto"` in config.json is resolved here to ceil(hidden / 16), as JambaConfig.__init__ does.
    public var mambaDtRank = 256
    public var mambaConvBias = true
    public var mambaProjBias = false
    public var useMambapy = false
    public var useAssociativeScan = true
    /// `dtype` (transformers 5) or `torch_dtype` (older checkpoints): the stored weight precision, informative only.
    public var dtype: String? = nil

    public init() {}

    // Derived sizes used throughout the model.
    public var headDim: Int { hiddenSize / numAttentionHeads }
    public var mambaInner: Int { mambaExpand * hiddenSize }

    public var layerPlan: [LayerKind] {
        (0..<numHiddenLayers).map { i in
            LayerKind(
                mixer: i % attnLayerPeriod == attnLayerOffset ? .attention : .mamba,
                ffn: (numExperts > 1 && i % expertLayerPeriod == expertLayerOffset) ? .moe : .dense)
        }
    }

    public var moeLayers: [Int] { layerPlan.indices.filter { layerPlan[$0].ffn == .moe } }

    /// Checks the invariants the forward pass relies on; `path` names the file in the error.
    public func validate(path: String = "config.json") throws {
        func bad(_ f: String, _ d: String) -> ModelError { .badConfig(path: path, field: f, detail: d) }
        let positives: [(String, Int)] = [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("num_experts", numExperts),
            ("num_experts_per_tok", numExpertsPerTok), ("expert_layer_period", expertLayerPeriod),
            ("attn_layer_period", attnLayerPeriod), ("mamba_d_state", mambaDState), ("mamba_d_conv", mambaDConv),
            ("mamba_expand", mambaExpand), ("mamba_dt_rank", mambaDtRank),
        ]
        for (f, v) in positives where v <= 0 { throw bad(f, "must be positive, got \(v)") }
        if expertLayerOffset < 0 || expertLayerOffset >= expertLayerPeriod {
            throw bad("expert_layer_offset", "must be in [0, expert_layer_period=\(expertLayerPeriod)), got \(expertLayerOffset)")
        }
        if attnLayerOffset < 0 || attnLayerOffset >= attnLayerPeriod {
            throw bad("attn_layer_offset", "must be in [0, attn_layer_period=\(attnLayerPeriod)), got \(attnLayerOffset)")
        }
        if hiddenSize % numAttentionHeads != 0 {
            throw bad("num_attention_heads", "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            throw bad("num_key_value_heads", "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        if numExpertsPerTok > numExperts {
            throw bad("num_experts_per_tok", "\(numExpertsPerTok) exceeds num_experts \(numExperts)")
        }
        if hiddenAct != "silu" && hiddenAct != "swish" {
            throw bad("hidden_act", "only silu is supported, got '\(hiddenAct)'")
        }
        if !(rmsNormEps > 0) { throw bad("rms_norm_eps", "must be positive") }
        for (f, id) in [("bos_token_id", bosTokenId), ("pad_token_id", padTokenId)] {
            if let id, id < 0 || id >= vocabSize { throw bad(f, "\(id) is outside the vocabulary") }
        }
    }
}

/// What kind of mixer and feed-forward a decoder layer has: data, built once from the config.
public struct LayerKind: Sendable, Equatable {
    public enum Mixer: Sendable, Equatable { case attention, mamba }
    public enum FFN: Sendable, Equatable { case dense, moe }
    public var mixer: Mixer
    public var ffn: FFN
}
