// Load tables, split models, per-worker layer times and the expected-imbalance report of an assignment.

/// Expected load of every expert of every MoE layer: `perLayer[i][e]` is the load of expert `e` of
/// layer `layers[i]` (token rows over a window, or any consistent unit). Only ratios within a layer matter.
public struct LoadTable: Equatable, Sendable {
    public let layers: [Int]
    public let perLayer: [[Double]]

    public init(layers: [Int], perLayer: [[Double]]) throws {
        guard layers.count == perLayer.count else {
            throw SchedulerError.loadRowsMismatch(layers: layers.count, rows: perLayer.count)
        }
        var seen = Set<Int>()
        for (i, layer) in layers.enumerated() {
            guard seen.insert(layer).inserted else { throw SchedulerError.duplicateLayer(layer) }
            for (e, v) in perLayer[i].enumerated() where !(v.isFinite && v >= 0) {
                throw SchedulerError.invalidLoad(layer: layer, expert: e, value: v)
            }
        }
        self.layers = layers
        self.perLayer = perLayer
    }

    /// For tables built from already-validated data (the routing window).
    init(trusted layers: [Int], perLayer: [[Double]]) {
        self.layers = layers
        self.perLayer = perLayer
    }

    /// Equal load on every expert: the table to plan with before any traffic has been measured.
    public static func uniform(layers: [Int], numExperts: Int) throws -> LoadTable {
        guard numExperts > 0 else { throw SchedulerError.invalidExpertCount(numExperts) }
        return try LoadTable(layers: layers, perLayer: Array(repeating: Array(repeating: 1, count: numExperts), count: layers.count))
    }

    /// Load of one expert; 0 for experts or layers the table does not describe.
    public func load(of key: ExpertKey) -> Double {
        guard let i = layers.firstIndex(of: key.layer), key.expert >= 0, key.expert < perLayer[i].count else { return 0 }
        return perLayer[i][key.expert]
    }

    /// Loads the planner actually balances: a layer with no recorded traffic (all zeros) is treated as
    /// uniform, because "nothing measured yet" must still spread that layer's experts over the workers.
    func effectiveRow(_ i: Int) -> [Double] {
        let row = perLayer[i]
        return row.reduce(0, +) > 0 ? row : Array(repeating: 1, count: row.count)
    }

    /// Throws unless the table has exactly `layers` (same order) with `numExperts` loads each.
    func check(layers expected: [Int], numExperts: Int) throws {
        guard layers == expected else { throw SchedulerError.loadLayersMismatch(expected: expected, got: layers) }
        for (i, row) in perLayer.enumerated() where row.count != numExperts {
            throw SchedulerError.loadShapeMismatch(layer: layers[i], expectedExperts: numExperts, got: row.count)
        }
    }
}

/// Expected imbalance of an assignment. Definition (per MoE layer):
///
///     time(w)   = rows worker w computes in the layer step / speed(w), under the split model
///     ideal     = (Σ load of the layer) / (Σ speeds of ALL workers)
///     imbalance = max_w time(w) / ideal
///
/// `ideal` is the time if the layer's work were spread perfectly over the whole cluster. With equal
/// speeds this is exactly max/mean of per-worker rows, the mean taken over ALL workers: a worker that
/// holds nothing of the layer idles during that layer's step, and the figure must show it (a mean over
/// active workers only would rate 16 workers serving 8 unreplicated experts as perfect).
/// The split model (`SplitModel`) says how rows of a replicated expert are divided: `.balanced` (the
/// default) is what `Dispatch.plan` does with empty queues, so the figure predicts the cluster;
/// `.proportional` divides each expert by holder speed alone and is an upper bound of `.balanced`.
/// A layer with no load has imbalance 1.
public struct ImbalanceReport: Equatable, Sendable, CustomStringConvertible {
    public let layers: [Int]
    /// Imbalance of `layers[i]`.
    public let perLayer: [Double]
    /// Largest per-layer imbalance, and the layer index (model numbering) where it occurs (first on ties).
    public let worst: Double
    public let worstLayer: Int
    /// Mean of the per-layer figures: with equal rows per layer (top-k routing) it is total MoE time
    /// over ideal total MoE time.
    public let mean: Double

    public init(layers: [Int], perLayer: [Double]) {
        self.layers = layers
        self.perLayer = perLayer
        var worstIndex = 0
        for (i, v) in perLayer.enumerated() where v > perLayer[worstIndex] { worstIndex = i }
        worst = perLayer.isEmpty ? 1 : perLayer[worstIndex]
        worstLayer = layers.isEmpty ? 0 : layers[worstIndex]
        mean = perLayer.isEmpty ? 1 : perLayer.reduce(0, +) / Double(perLayer.count)
    }

    public var description: String {
        let fmt = { (v: Double) -> String in String(Double(Int((v * 1000).rounded())) / 1000) }
        return "worst \(fmt(worst)) (layer \(worstLayer)), mean \(fmt(mean)), per layer [\(perLayer.map(fmt).joined(separator: ", "))]"
    }
}

public enum Imbalance {
    /// Expected imbalance of `assignment` under `loads` (see `ImbalanceReport` for the definition).
    /// Throws when an expert of the table has no holder or is held by a worker not in `workers`.
    public static func of(_ assignment: Assignment, loads: LoadTable, workers: [WorkerInfo],
                          split: SplitModel = .balanced) throws -> ImbalanceReport
    {
        let sorted = try WorkerValidation.sorted(workers)
        var index: [WorkerID: Int] = [:]
        for (w, info) in sorted.enumerated() { index[info.id] = w }
        let speed = sorted.map(\.speed)
        let totalSpeed = speed.reduce(0, +)
        var perLayer: [Double] = []
        for (i, layer) in loads.layers.enumerated() {
            let row = loads.perLayer[i]
            var holders: [[Int]] = []
            for e in row.indices {
                let key = ExpertKey(layer: layer, expert: e)
                let ids = assignment.holders(of: key)
                guard !ids.isEmpty else { throw SchedulerError.uncoveredExpert(key) }
                holders.append(try ids.map { id in
                    guard let w = index[id] else { throw SchedulerError.unknownWorker(id, expert: key) }
                    return w
                }.sorted())
            }
            let total = row.reduce(0, +)
            guard total > 0 else { perLayer.append(1); continue }
            let time = LayerTimes.compute(split, loads: row[...], holders: holders[...], speed: speed)
            perLayer.append((time.max() ?? 0) / (total / totalSpeed))
        }
        return ImbalanceReport(layers: loads.layers, perLayer: perLayer)
    }
}

/// How an expert's rows are assumed to be split among its holders when predicting per-worker load.
public enum SplitModel: Sendable, Hashable {
    /// What `Dispatch.plan` does with empty queues: all experts of the layer step are water-filled over
    /// their holders together, so a replica absorbs whatever load evens out the layer. The default.
    case balanced
    /// Each expert's rows split among its holders in proportion to their speed, independently of the
    /// other experts. Simpler and never better than `balanced`: a conservative upper bound.
    case proportional
}

enum LayerTimes {
    /// Rows per layer when the balanced split is computed with the integer dispatch solver: one row is
    /// 1e-6 of the layer, far below any difference the planner acts on.
    static let balancedResolution = 1_000_000.0

    /// Time each worker needs for one layer, in the loads' unit per speed unit. `holders[e]` lists worker
    /// indices (ascending) of expert e; experts without holders are skipped.
    static func compute(_ split: SplitModel, loads: ArraySlice<Double>, holders: ArraySlice<[Int]>,
                        speed: [Double]) -> [Double]
    {
        switch split {
        case .proportional: return proportional(loads: loads, holders: holders, speed: speed)
        case .balanced: return balanced(loads: loads, holders: holders, speed: speed)
        }
    }

    static func proportional(loads: ArraySlice<Double>, holders: ArraySlice<[Int]>, speed: [Double]) -> [Double] {
        var t = Array(repeating: 0.0, count: speed.count)
        for (load, hs) in zip(loads, holders) where !hs.isEmpty {
            var groupSpeed = 0.0
            for h in hs { groupSpeed += speed[h] }
            let share = load / groupSpeed
            for h in hs { t[h] += share }
        }
        return t
    }

    /// The dispatch solver itself, on the layer scaled to `balancedResolution` rows: the planner then
    /// optimises exactly what dispatch will do, and the report predicts it.
    static func balanced(loads: ArraySlice<Double>, holders: ArraySlice<[Int]>, speed: [Double]) -> [Double] {
        let total = loads.reduce(0, +)
        guard total > 0 else { return Array(repeating: 0, count: speed.count) }
        // Without replicas there is nothing to balance: both models agree, and this one is exact and cheap.
        guard holders.contains(where: { $0.count > 1 }) else {
            return proportional(loads: loads, holders: holders, speed: speed)
        }
        let scale = balancedResolution / total
        var solver = WaterFill(holders: Array(holders), rows: loads.map { Int(($0 * scale).rounded()) },
                               speed: speed, load: Array(repeating: 0, count: speed.count))
        solver.solve()
        return (0..<speed.count).map { solver.load[$0] / speed[$0] / scale }
    }
}
