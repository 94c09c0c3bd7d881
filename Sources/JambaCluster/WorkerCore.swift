// WorkerCore: an expert worker's state and request handling, free of sockets (the service does the I/O).
import Foundation
import JambaLoader
import JambaMath
import JambaModel
import JambaWire

/// What an expert worker holds and how it answers an expert batch.
public struct WorkerCore {
    public let config: JambaConfig
    public let checkpoint: Checkpoint
    public private(set) var store: ExpertStore
    /// The assignment epoch whose experts are loaded.
    public private(set) var epoch: UInt64 = 0
    /// Token rows computed, summed over experts; a slice counts its share of the expert's rows.
    public var rowsServed: UInt64 { UInt64(rowsComputed.rounded()) }
    private var rowsComputed = 0.0
    public private(set) var busyMicros: UInt64 = 0
    private var scratch: MLPScratch
    public let maxTensorBytes: Int

    public init(config: JambaConfig, checkpoint: Checkpoint, weightsDType: WeightDType = .f32,
                maxTensorBytes: Int = TensorCodec.defaultMaxTensorBytes) {
        self.config = config
        self.checkpoint = checkpoint
        self.maxTensorBytes = maxTensorBytes
        store = ExpertStore(intermediateSize: config.intermediateSize, dtype: weightsDType)
        scratch = MLPScratch(intermediate: config.intermediateSize)
    }

    /// Experts named by an assignment, validated against the model (an unknown layer or expert is refused).
    public func experts(of assignment: Jamba_V1_Assignment) throws -> Set<ExpertID> {
        var ids = Set<ExpertID>()
        let moe = Set(config.moeLayers)
        for l in assignment.layers {
            guard moe.contains(Int(l.layer)) else {
                throw WireError.invalid(field: "assignment.layers.layer", reason: "layer \(l.layer) has no experts in this model")
            }
            for e in l.experts {
                guard e < config.numExperts else {
                    throw WireError.invalid(field: "assignment.layers.experts", reason: "layer \(l.layer) has no expert \(e) (num_experts \(config.numExperts))")
                }
                ids.insert(ExpertID(layer: Int(l.layer), expert: Int(e)))
            }
        }
        return ids
    }

    /// Builds the store for `wanted`, reusing what is already loaded: only new experts are read from disk.
    /// Runs off the serving thread; the result is installed with `install`.
    public static func load(_ wanted: Set<ExpertID>, reusing current: ExpertStore, checkpoint: Checkpoint,
                            config: JambaConfig) throws -> ExpertStore {
        var kept: [ExpertID: MLP] = [:]
        for id in wanted { if let m = current.experts[id] { kept[id] = m } }
        var next = ExpertStore(experts: kept, intermediateSize: config.intermediateSize, dtype: current.dtype)
        for id in wanted.sorted() where kept[id] == nil { try next.add(id, from: checkpoint, config: config) }
        return next
    }

    public mutating func install(_ store: ExpertStore, epoch: UInt64) {
        self.store = store
        self.epoch = epoch
    }

    /// Held experts grouped per layer, as the wire lists them.
    public var heldLayers: [Jamba_V1_LayerExperts] { WireConversions.layerExperts(store.ids.map { ($0.layer, $0.expert) }) }

    /// Answers one expert batch: each expert's token rows through its SwiGLU MLP, whole or the one slice asked for.
    /// Whole experts are gated and summed per token in rank order (`MoECombine`, as the model does in process) into
    /// the reply's `combined`; a slice's partial goes back on its own, ungated. A malformed request fails as a
    /// whole; an expert not held here fails alone with UNKNOWN_EXPERT, a slice the expert does not have with
    /// INVALID_ARGUMENT.
    public mutating func serve(_ request: Jamba_V1_ExpertBatchRequest, queueMicros: UInt64) -> Jamba_V1_ExpertBatchReply {
        let start = DispatchTime.now().uptimeNanoseconds
        let work: ExpertWork
        do {
            work = try ExpertBatchCodec.decodeRequest(request, hidden: config.hiddenSize, topK: config.numExpertsPerTok,
                                                      maxTensorBytes: maxTensorBytes)
        } catch {
            return ExpertBatchCodec.makeErrorReply(requestID: request.requestID, layer: request.layer, error: error.asProto(requestID: request.requestID))
        }
        let tokens = work.tokens  // [T, H]
        var outcomes: [ExpertOutcome] = []
        var perExpert: [UInt64] = []
        var gated: [Matrix] = [], gatedTokens: [[Int]] = [], gatedRanks: [[Int]] = []
        for part in work.parts {
            let t0 = DispatchTime.now().uptimeNanoseconds
            guard let mlp = store.expert(layer: Int(request.layer), expert: Int(part.expertID)) else {
                outcomes.append(.failed(Jamba_V1_Error(code: .unknownExpert,
                    message: "expert \(part.expertID) of layer \(request.layer) is not held by this worker (epoch \(epoch))",
                    requestID: request.requestID)))
                perExpert.append(0)
                continue
            }
            guard Int(part.slice) <= mlp.sliceCount else {
                outcomes.append(.failed(Jamba_V1_Error(code: .invalidArgument,
                    message: "expert \(part.expertID) of layer \(request.layer) has slices 1...\(mlp.sliceCount), not \(part.slice)",
                    requestID: request.requestID)))
                perExpert.append(0)
                continue
            }
            // Rows are ascending and distinct, so as many rows as tokens means all of them, in order.
            let rows = part.tokenRows.count == tokens.rows ? tokens : tokens.gatherRows(part.tokenRows)  // [n, H]
            var out = Matrix(zeros: 0, config.hiddenSize)
            if part.slice == 0 {
                mlp(rows, into: &out, scratch: &scratch)  // rows [n, H] → SwiGLU → out [n, H]
                LocalExpertExecutor.scale(&out, by: part.gates)
                gated.append(out)
                gatedTokens.append(part.tokenRows)
                gatedRanks.append(part.ranks)
                outcomes.append(.combined)
            } else {
                mlp.partial(rows, slice: Int(part.slice) - 1, into: &out, scratch: &scratch)  // one slice's partial [n, H]
                outcomes.append(.partial(out))
            }
            rowsComputed += Double(rows.rows) / (part.slice == 0 ? 1 : Double(mlp.sliceCount))
            perExpert.append((DispatchTime.now().uptimeNanoseconds - t0) / 1000)
        }
        var combined: Matrix?
        if outcomes.contains(.combined) {
            var sum = Matrix(zeros: tokens.rows, config.hiddenSize)  // [T, H]
            MoECombine.add(gated, tokens: gatedTokens, ranks: gatedRanks, into: &sum)
            combined = sum
        }
        let micros = (DispatchTime.now().uptimeNanoseconds - start) / 1000
        busyMicros += micros
        return ExpertBatchCodec.makeReply(to: request, combined: combined, outcomes: outcomes, computeMicros: micros,
                                          queueMicros: queueMicros, perExpertMicros: perExpert)
    }
}
