// WeightLoading: builds each layer from its checkpoint tensors, named verbatim as in the HF checkpoint.
import JambaLoader
import JambaMath

/// Reads the non-expert weights of a Jamba checkpoint, checking every shape against the config.
enum WeightLoading {
    static func mlp(prefix p: String, checkpoint ck: Checkpoint, config c: JambaConfig) throws -> MLP {
        let h = c.hiddenSize, i = c.intermediateSize
        let gate = try ck.floats(p + "gate_proj.weight", shape: [i, h])
        let up = try ck.floats(p + "up_proj.weight", shape: [i, h])
        let down = try ck.matrix(p + "down_proj.weight", shape: [h, i])
        return MLP(gateUp: Matrix(rows: 2 * i, cols: h, storage: gate + up), down: down)
    }

    static func norm(_ name: String, _ size: Int, _ ck: Checkpoint, _ c: JambaConfig) throws -> RMSNorm {
        RMSNorm(weight: try ck.floats(name, shape: [size]), eps: c.rmsNormEps)
    }

    static func attention(layer i: Int, _ ck: Checkpoint, _ c: JambaConfig) throws -> Attention {
        let p = "model.layers.\(i).self_attn.", h = c.hiddenSize, hd = c.headDim
        let q = try ck.matrix(p + "q_proj.weight", shape: [c.numAttentionHeads * hd, h])
        let k = try ck.floats(p + "k_proj.weight", shape: [c.numKeyValueHeads * hd, h])
        let v = try ck.floats(p + "v_proj.weight", shape: [c.numKeyValueHeads * hd, h])
        let o = try ck.matrix(p + "o_proj.weight", shape: [h, c.numAttentionHeads * hd])
        return Attention(qProj: q, kvProj: Matrix(rows: 2 * c.numKeyValueHeads * hd, cols: h, storage: k + v), oProj: o,
                         numHeads: c.numAttentionHeads, numKVHeads: c.numKeyValueHeads, headDim: hd)
    }

    static func mamba(layer i: Int, _ ck: Checkpoint, _ c: JambaConfig) throws -> MambaMixer {
        let p = "model.layers.\(i).mamba.", h = c.hiddenSize, di = c.mambaInner
        let n = c.mambaDState, k = c.mambaDConv, r = c.mambaDtRank
        let convRaw = try ck.floats(p + "conv1d.weight", shape: [di, 1, k])  // [Di, 1, K] → transpose to [K, Di]
        var convT = [Float](repeating: 0, count: k * di)
        for ch in 0..<di { for j in 0..<k { convT[j * di + ch] = convRaw[ch * k + j] } }
        return MambaMixer(
            inProj: try ck.matrix(p + "in_proj.weight", shape: [2 * di, h]),
            inProjBias: c.mambaProjBias ? try ck.floats(p + "in_proj.bias", shape: [2 * di]) : nil,
            convWeight: convT,
            convBias: c.mambaConvBias ? try ck.floats(p + "conv1d.bias", shape: [di]) : nil,
            xProj: try ck.matrix(p + "x_proj.weight", shape: [r + 2 * n, di]),
            dtNorm: try norm(p + "dt_layernorm.weight", r, ck, c),
            bNorm: try norm(p + "b_layernorm.weight", n, ck, c),
            cNorm: try norm(p + "c_layernorm.weight", n, ck, c),
            dtProj: try ck.matrix(p + "dt_proj.weight", shape: [di, r]),
            dtBias: try ck.floats(p + "dt_proj.bias", shape: [di]),
            aLog: try ck.floats(p + "A_log", shape: [di, n]),
            d: try ck.floats(p + "D", shape: [di]),
            outProj: try ck.matrix(p + "out_proj.weight", shape: [h, di]),
            outProjBias: c.mambaProjBias ? try ck.floats(p + "out_proj.bias", shape: [h]) : nil,
            dState: n, dConv: k)
    }

    static func layer(_ i: Int, kind: LayerKind, _ ck: Checkpoint, _ c: JambaConfig) throws -> DecoderLayer {
        let p = "model.layers.\(i)."
        let mixer: DecoderLayer.Mixer = switch kind.mixer {
        case .attention: .attention(try attention(layer: i, ck, c))
        case .mamba: .mamba(try mamba(layer: i, ck, c))
        }
        let ffn: DecoderLayer.FFN = switch kind.ffn {
        case .dense: .dense(try mlp(prefix: p + "feed_forward.", checkpoint: ck, config: c))
        case .moe: .moe(Router(weight: try ck.matrix(p + "feed_forward.router.weight", shape: [c.numExperts, c.hiddenSize]),
                               topK: c.numExpertsPerTok))
        }
        return DecoderLayer(index: i, inputNorm: try norm(p + "input_layernorm.weight", c.hiddenSize, ck, c),
                            mixer: mixer, preFFNorm: try norm(p + "pre_ff_layernorm.weight", c.hiddenSize, ck, c), ffn: ffn)
    }
}
