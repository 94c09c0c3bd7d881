// WeightLoading: builds each layer from its checkpoint tensors, named verbatim as in the HF checkpoint.
import JambaLoader
import JambaMath

/// Reads the non-expert weights of a Jamba checkpoint, checking every shape against the config.
/// Weight matrices are held as `dtype`; norms, biases, the conv kernel and the SSM parameters stay f32.
enum WeightLoading {
    /// A `[rows, cols]` weight matrix held as `dtype`.
    static func weights(_ name: String, _ rows: Int, _ cols: Int, _ ck: Checkpoint, _ dtype: WeightDType) throws -> Weights {
        Weights(rows: rows, cols: cols, values: try ck.floats(name, shape: [rows, cols]), dtype: dtype)
    }

    static func mlp(prefix p: String, checkpoint ck: Checkpoint, config c: JambaConfig, dtype: WeightDType) throws -> MLP {
        let h = c.hiddenSize, i = c.intermediateSize
        let gate = try ck.floats(p + "gate_proj.weight", shape: [i, h])
        let up = try ck.floats(p + "up_proj.weight", shape: [i, h])
        return MLP(gate: gate, up: up, down: try weights(p + "down_proj.weight", h, i, ck, dtype), dtype: dtype)
    }

    static func norm(_ name: String, _ size: Int, _ ck: Checkpoint, _ c: JambaConfig) throws -> RMSNorm {
        RMSNorm(weight: try ck.floats(name, shape: [size]), eps: c.rmsNormEps)
    }

    static func attention(layer i: Int, _ ck: Checkpoint, _ c: JambaConfig, _ dt: WeightDType) throws -> Attention {
        let p = "model.layers.\(i).self_attn.", h = c.hiddenSize, hd = c.headDim
        let q = try weights(p + "q_proj.weight", c.numAttentionHeads * hd, h, ck, dt)
        let k = try ck.floats(p + "k_proj.weight", shape: [c.numKeyValueHeads * hd, h])
        let v = try ck.floats(p + "v_proj.weight", shape: [c.numKeyValueHeads * hd, h])
        let o = try weights(p + "o_proj.weight", h, c.numAttentionHeads * hd, ck, dt)
        return Attention(qProj: q, kvProj: Weights(rows: 2 * c.numKeyValueHeads * hd, cols: h, values: k + v, dtype: dt), oProj: o,
                         numHeads: c.numAttentionHeads, numKVHeads: c.numKeyValueHeads, headDim: hd)
    }

    static func mamba(layer i: Int, _ ck: Checkpoint, _ c: JambaConfig, _ dt: WeightDType) throws -> MambaMixer {
        let p = "model.layers.\(i).mamba.", h = c.hiddenSize, di = c.mambaInner
        let n = c.mambaDState, k = c.mambaDConv, r = c.mambaDtRank
        let convRaw = try ck.floats(p + "conv1d.weight", shape: [di, 1, k])  // [Di, 1, K] → transpose to [K, Di]
        var convT = [Float](repeating: 0, count: k * di)
        for ch in 0..<di { for j in 0..<k { convT[j * di + ch] = convRaw[ch * k + j] } }
        return MambaMixer(
            inProj: try weights(p + "in_proj.weight", 2 * di, h, ck, dt),
            inProjBias: c.mambaProjBias ? try ck.floats(p + "in_proj.bias", shape: [2 * di]) : nil,
            convWeight: convT,
            convBias: c.mambaConvBias ? try ck.floats(p + "conv1d.bias", shape: [di]) : nil,
            xProj: try weights(p + "x_proj.weight", r + 2 * n, di, ck, dt),
            dtNorm: try norm(p + "dt_layernorm.weight", r, ck, c),
            bNorm: try norm(p + "b_layernorm.weight", n, ck, c),
            cNorm: try norm(p + "c_layernorm.weight", n, ck, c),
            dtProj: try weights(p + "dt_proj.weight", di, r, ck, dt),
            dtBias: try ck.floats(p + "dt_proj.bias", shape: [di]),
            aLog: try ck.floats(p + "A_log", shape: [di, n]),
            d: try ck.floats(p + "D", shape: [di]),
            outProj: try weights(p + "out_proj.weight", h, di, ck, dt),
            outProjBias: c.mambaProjBias ? try ck.floats(p + "out_proj.bias", shape: [h]) : nil,
            dState: n, dConv: k)
    }

    static func layer(_ i: Int, kind: LayerKind, _ ck: Checkpoint, _ c: JambaConfig, _ dt: WeightDType) throws -> DecoderLayer {
        let p = "model.layers.\(i)."
        let mixer: DecoderLayer.Mixer = switch kind.mixer {
        case .attention: .attention(try attention(layer: i, ck, c, dt))
        case .mamba: .mamba(try mamba(layer: i, ck, c, dt))
        }
        let ffn: DecoderLayer.FFN = switch kind.ffn {
        case .dense: .dense(try mlp(prefix: p + "feed_forward.", checkpoint: ck, config: c, dtype: dt))
        // The router stays f32 whatever `dt` is: it is tiny, and its top-k choice must not flip on rounding.
        case .moe: .moe(Router(weight: try weights(p + "feed_forward.router.weight", c.numExperts, c.hiddenSize, ck, .f32),
                               topK: c.numExpertsPerTok))
        }
        return DecoderLayer(index: i, inputNorm: try norm(p + "input_layernorm.weight", c.hiddenSize, ck, c),
                            mixer: mixer, preFFNorm: try norm(p + "pre_ff_layernorm.weight", c.hiddenSize, ck, c), ffn: ffn)
    }
}
