// ConfigLoading: reads config.json into JambaConfig, tolerating the key variants real Jamba checkpoints use.
import Foundation
import JambaLoader

extension JambaConfig {
    /// Reads and validates `config.json` in `directory`.
    public static func load(directory: URL) throws -> JambaConfig {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelError.configNotFound(path: url.path)
        }
        return try parse(data, path: url.path)
    }

    /// Parses config.json bytes. Unknown keys are ignored (older checkpoints carry extra ones); a present key of
    /// the wrong type is an error naming the key.
    public static func parse(_ data: Data, path: String = "config.json") throws -> JambaConfig {
        guard let j = JSONValue.parse(data)?.object else {
            throw ModelError.badConfig(path: path, field: "(file)", detail: "not a JSON object")
        }
        let r = FieldReader(json: j, path: path)
        var c = JambaConfig()
        try r.int("vocab_size", &c.vocabSize)
        try r.bool("tie_word_embeddings", &c.tieWordEmbeddings)
        try r.int("hidden_size", &c.hiddenSize)
        try r.int("intermediate_size", &c.intermediateSize)
        try r.int("num_hidden_layers", &c.numHiddenLayers)
        try r.int("num_attention_heads", &c.numAttentionHeads)
        // An explicit null means "same as num_attention_heads" (JambaConfig.__init__).
        if j["num_key_value_heads"]?.isNull == true { c.numKeyValueHeads = c.numAttentionHeads }
        try r.int("num_key_value_heads", &c.numKeyValueHeads)
        try r.string("hidden_act", &c.hiddenAct)
        try r.double("initializer_range", &c.initializerRange)
        var eps = Double(c.rmsNormEps)
        try r.double("rms_norm_eps", &eps)
        c.rmsNormEps = Float(eps)
        try r.bool("use_cache", &c.useCache)
        try r.bool("output_router_logits", &c.outputRouterLogits)
        try r.double("router_aux_loss_coef", &c.routerAuxLossCoef)
        try r.optionalInt("pad_token_id", &c.padTokenId)
        try r.optionalInt("bos_token_id", &c.bosTokenId)
        try r.intOrList("eos_token_id", &c.eosTokenId)
        try r.int("max_position_embeddings", &c.maxPositionEmbeddings)
        try r.double("attention_dropout", &c.attentionDropout)
        try r.int("num_experts_per_tok", &c.numExpertsPerTok)
        try r.int("num_local_experts", &c.numExperts)  // older alias; num_experts wins when both are present
        try r.int("num_experts", &c.numExperts)
        try r.int("expert_layer_period", &c.expertLayerPeriod)
        try r.int("expert_layer_offset", &c.expertLayerOffset)
        try r.int("attn_layer_period", &c.attnLayerPeriod)
        try r.int("attn_layer_offset", &c.attnLayerOffset)
        try r.bool("use_mamba_kernels", &c.useMambaKernels)
        try r.int("mamba_d_state", &c.mambaDState)
        try r.int("mamba_d_conv", &c.mambaDConv)
        try r.int("mamba_expand", &c.mambaExpand)
        c.mambaDtRank = (c.hiddenSize + 15) / 16
        if let s = j["mamba_dt_rank"]?.string {
            guard s == "auto" else { throw ModelError.badConfig(path: path, field: "mamba_dt_rank", detail: "expected an integer or \"auto\", got \"\(s)\"") }
        } else {
            try r.int("mamba_dt_rank", &c.mambaDtRank)
        }
        try r.bool("mamba_conv_bias", &c.mambaConvBias)
        try r.bool("mamba_proj_bias", &c.mambaProjBias)
        try r.bool("use_mambapy", &c.useMambapy)
        try r.bool("use_associative_scan", &c.useAssociativeScan)
        c.dtype = j["dtype"]?.string ?? j["torch_dtype"]?.string
        if let mt = j["model_type"]?.string, mt != "jamba" {
            throw ModelError.badConfig(path: path, field: "model_type", detail: "expected \"jamba\", got \"\(mt)\"")
        }
        try c.validate(path: path)
        return c
    }
}

/// Typed reads of optional JSON fields; a key that is present with the wrong type is an error, never a default.
private struct FieldReader {
    let json: [String: JSONValue]
    let path: String

    func fail(_ key: String, _ what: String) -> ModelError {
        .badConfig(path: path, field: key, detail: "expected \(what), got \(json[key]?.summary ?? "nothing")")
    }

    /// The value of `key`, or nil when absent or null (null keeps the default, as in JambaConfig).
    func value(_ key: String) -> JSONValue? {
        guard let v = json[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String, _ v: inout Int) throws {
        guard let x = value(key) else { return }
        guard let i = x.int else { throw fail(key, "an integer") }
        v = i
    }

    func optionalInt(_ key: String, _ v: inout Int?) throws {
        guard let x = json[key] else { return }
        if x.isNull { v = nil; return }
        guard let i = x.int else { throw fail(key, "an integer") }
        v = i
    }

    func intOrList(_ key: String, _ v: inout [Int]) throws {
        guard let x = value(key) else { return }
        if let list = x.array {
            v = try list.map { e in
                guard let i = e.int else { throw fail(key, "an integer or a list of integers") }
                return i
            }
        } else {
            guard let i = x.int else { throw fail(key, "an integer or a list of integers") }
            v = [i]
        }
    }

    func double(_ key: String, _ v: inout Double) throws {
        guard let x = value(key) else { return }
        guard let d = x.double else { throw fail(key, "a number") }
        v = d
    }

    func bool(_ key: String, _ v: inout Bool) throws {
        guard let x = value(key) else { return }
        guard let b = x.bool else { throw fail(key, "true or false") }
        v = b
    }

    func string(_ key: String, _ v: inout String) throws {
        guard let x = value(key) else { return }
        guard let s = x.string else { throw fail(key, "a string") }
        v = s
    }
}
