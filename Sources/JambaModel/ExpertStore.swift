// ExpertStore: the SwiGLU experts of MoE layers that one process holds, loaded by name from a checkpoint.
import JambaLoader
import JambaMath

/// Identifies one expert of one MoE layer.
public struct ExpertID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let layer: Int
    public let expert: Int

    public init(layer: Int, expert: Int) {
        self.layer = layer
        self.expert = expert
    }

    public static func < (a: ExpertID, b: ExpertID) -> Bool { (a.layer, a.expert) < (b.layer, b.expert) }
    public var description: String { "L\(layer)/E\(expert)" }
}

/// A set of loaded experts. The coordinator holds none; a worker holds its assignment; the single-process
/// engine holds all of them.
public struct ExpertStore: Sendable {
    public private(set) var experts: [ExpertID: MLP]
    public let intermediateSize: Int
    /// How loaded experts are held: bf16 halves the memory, so a worker holds twice the experts.
    public let dtype: WeightDType

    public init(experts: [ExpertID: MLP] = [:], intermediateSize: Int, dtype: WeightDType = .f32) {
        self.experts = experts
        self.intermediateSize = intermediateSize
        self.dtype = dtype
    }

    public func expert(layer: Int, expert: Int) -> MLP? { experts[ExpertID(layer: layer, expert: expert)] }

    public var ids: [ExpertID] { experts.keys.sorted() }

    /// Bytes of weights held.
    public var residentBytes: Int { experts.values.reduce(0) { $0 + $1.parameterBytes } }

    /// Every expert id of every MoE layer of `config`.
    public static func allIDs(_ config: JambaConfig) -> [ExpertID] {
        config.moeLayers.flatMap { l in (0..<config.numExperts).map { ExpertID(layer: l, expert: $0) } }
    }

    /// Loads `ids` from `checkpoint`, reading only those experts' tensors.
    public static func load(_ ids: [ExpertID], from checkpoint: Checkpoint, config: JambaConfig,
                            dtype: WeightDType = .f32) throws -> ExpertStore {
        var store = ExpertStore(intermediateSize: config.intermediateSize, dtype: dtype)
        for id in ids { try store.add(id, from: checkpoint, config: config) }
        return store
    }

    /// Loads one expert: `model.layers.{l}.feed_forward.experts.{e}.{gate,up,down}_proj.weight`.
    public mutating func add(_ id: ExpertID, from checkpoint: Checkpoint, config: JambaConfig) throws {
        guard config.moeLayers.contains(id.layer), id.expert >= 0, id.expert < config.numExperts else {
            throw ModelError.expertFailure(layer: id.layer, detail: "no expert \(id.expert) in layer \(id.layer) of this model")
        }
        let p = "model.layers.\(id.layer).feed_forward.experts.\(id.expert)."
        experts[id] = try WeightLoading.mlp(prefix: p, checkpoint: checkpoint, config: config, dtype: dtype)
    }

    public mutating func remove(_ id: ExpertID) {
        experts[id] = nil
    }
}
