// Core value types of the scheduler: expert keys, worker identity and capacity, and the one error enum.

/// One expert of one MoE layer. `layer` is the model's layer index (e.g. 1, 3, 5 for MoE on every
/// other layer), not the position among MoE layers; `expert` is 0-based within the layer.
public struct ExpertKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let layer: Int
    public let expert: Int

    public init(layer: Int, expert: Int) {
        self.layer = layer
        self.expert = expert
    }

    /// Layer-major order: every tie-break in the scheduler that walks experts uses this order.
    public static func < (lhs: ExpertKey, rhs: ExpertKey) -> Bool {
        (lhs.layer, lhs.expert) < (rhs.layer, rhs.expert)
    }

    public var description: String { "L\(layer)E\(expert)" }
}

/// Identity of an expert-worker process (an endpoint, a host name, or an index rendered as text).
/// Ordered by the UTF-8 bytes of the raw value so that tie-breaks are identical on every platform
/// (note: "w10" sorts before "w2"; zero-pad numeric ids if numeric order matters to you).
public struct WorkerID: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static func < (lhs: WorkerID, rhs: WorkerID) -> Bool {
        lhs.rawValue.utf8.lexicographicallyPrecedes(rhs.rawValue.utf8)
    }

    public var description: String { rawValue }
}

/// A worker as the planner sees it: how many expert copies it can hold and how fast it computes.
public struct WorkerInfo: Hashable, Sendable {
    public let id: WorkerID
    /// Capacity in expert slots; one slot holds one expert of one layer. The budget is global across
    /// layers: a worker with 10 slots may hold 3 experts of one layer and 2 of another.
    public let slots: Int
    /// Measured throughput in rows per second, or any relative unit shared by all workers; must be > 0.
    public let speed: Double

    public init(id: WorkerID, slots: Int, speed: Double = 1) {
        self.id = id
        self.slots = slots
        self.speed = speed
    }
}

/// Expert-slot capacity derived from free memory, used when `--expert-slots N` is not given.
public enum ExpertSlots {
    /// `floor((freeBytes - reserveBytes) / bytesPerExpert)`, never negative. The reserve keeps room for
    /// activations, the transport's buffers and one transient copy during a rebalance (see `Placement.diff`).
    public static func fromFreeMemory(freeBytes: Int, bytesPerExpert: Int, reserveBytes: Int = 0) throws -> Int {
        guard bytesPerExpert > 0 else {
            throw SchedulerError.invalidParameter(name: "bytesPerExpert", value: Double(bytesPerExpert))
        }
        guard freeBytes >= 0, reserveBytes >= 0 else {
            throw SchedulerError.invalidParameter(name: "freeBytes/reserveBytes", value: Double(min(freeBytes, reserveBytes)))
        }
        return max(0, freeBytes - reserveBytes) / bytesPerExpert
    }
}

/// Every failure of the scheduler, each carrying the context needed to act on it.
public enum SchedulerError: Error, Equatable, Sendable, CustomStringConvertible {
    case noWorkers
    case duplicateWorker(WorkerID)
    case invalidSpeed(worker: WorkerID, speed: Double)
    case invalidSlots(worker: WorkerID, slots: Int)
    /// Total slots cannot hold one copy of every expert of every MoE layer.
    case insufficientSlots(required: Int, available: Int)
    case invalidExpertCount(Int)
    case noLayers
    case duplicateLayer(Int)
    /// The load table describes other layers than the ones being planned.
    case loadLayersMismatch(expected: [Int], got: [Int])
    /// A load table was built with a different number of rows than layers.
    case loadRowsMismatch(layers: Int, rows: Int)
    /// A layer's row of loads has the wrong number of experts.
    case loadShapeMismatch(layer: Int, expectedExperts: Int, got: Int)
    case invalidLoad(layer: Int, expert: Int, value: Double)
    case unknownLayer(Int)
    case uncoveredExpert(ExpertKey)
    case unknownWorker(WorkerID, expert: ExpertKey)
    case duplicateHolder(WorkerID, expert: ExpertKey)
    case overCapacity(worker: WorkerID, holds: Int, slots: Int)
    case duplicateExpert(ExpertKey)
    case negativeRows(ExpertKey, rows: Int)
    /// No holder of this expert is present in the dispatch state (all holders down or unknown).
    case noAvailableHolder(ExpertKey)
    /// Slices per expert must be at least 1.
    case invalidSlices(Int)
    case negativeQueue(worker: WorkerID, queuedRows: Int)
    case invalidTimestamp(Double)
    case invalidParameter(name: String, value: Double)

    public var description: String {
        switch self {
        case .noWorkers: return "no workers to place experts on"
        case .duplicateWorker(let w): return "worker \(w) is listed twice"
        case .invalidSpeed(let w, let s): return "worker \(w) has speed \(s); speed must be finite and > 0"
        case .invalidSlots(let w, let n): return "worker \(w) has \(n) slots; slots must be >= 0"
        case .insufficientSlots(let need, let have):
            return "\(need) experts need a holder but the workers have only \(have) slots in total"
        case .invalidExpertCount(let n): return "numExperts is \(n); it must be > 0"
        case .noLayers: return "no MoE layers given"
        case .duplicateLayer(let l): return "MoE layer \(l) is listed twice"
        case .loadLayersMismatch(let e, let g): return "load table covers layers \(g), expected \(e)"
        case .loadRowsMismatch(let l, let r): return "load table has \(r) rows for \(l) layers"
        case .loadShapeMismatch(let l, let e, let g): return "layer \(l) has \(g) expert loads, expected \(e)"
        case .invalidLoad(let l, let e, let v): return "load of layer \(l) expert \(e) is \(v); loads must be finite and >= 0"
        case .unknownLayer(let l): return "layer \(l) is not one of the MoE layers"
        case .uncoveredExpert(let k): return "expert \(k) has no holder"
        case .unknownWorker(let w, let k): return "expert \(k) is held by unknown worker \(w)"
        case .duplicateHolder(let w, let k): return "worker \(w) holds expert \(k) twice"
        case .overCapacity(let w, let h, let s): return "worker \(w) holds \(h) experts but has \(s) slots"
        case .duplicateExpert(let k): return "expert \(k) appears twice in one dispatch step"
        case .negativeRows(let k, let n): return "expert \(k) has \(n) rows"
        case .noAvailableHolder(let k): return "no available worker holds expert \(k)"
        case .invalidSlices(let n): return "slices per expert must be at least 1, not \(n)"
        case .negativeQueue(let w, let q): return "worker \(w) reports \(q) queued rows"
        case .invalidTimestamp(let t): return "timestamp \(t) is not finite"
        case .invalidParameter(let n, let v): return "parameter \(n) has invalid value \(v)"
        }
    }
}

/// Shared input validation for the workers list (used by placement, imbalance and simulation).
enum WorkerValidation {
    /// Returns the workers sorted by id: the canonical order behind every worker tie-break.
    static func sorted(_ workers: [WorkerInfo]) throws -> [WorkerInfo] {
        guard !workers.isEmpty else { throw SchedulerError.noWorkers }
        var seen = Set<WorkerID>()
        for w in workers {
            guard seen.insert(w.id).inserted else { throw SchedulerError.duplicateWorker(w.id) }
            guard w.speed.isFinite, w.speed > 0 else { throw SchedulerError.invalidSpeed(worker: w.id, speed: w.speed) }
            guard w.slots >= 0 else { throw SchedulerError.invalidSlots(worker: w.id, slots: w.slots) }
        }
        return workers.sorted { $0.id < $1.id }
    }
}
