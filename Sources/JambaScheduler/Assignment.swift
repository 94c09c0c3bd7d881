// Assignment of expert copies to workers, and the ordered moves (Placement.diff) from one assignment to another.

/// Which workers hold a copy of each expert. Holder lists are kept sorted by worker id and free of
/// duplicates, so two assignments that place the same copies compare equal.
public struct Assignment: Equatable, Sendable, CustomStringConvertible {
    public private(set) var holders: [ExpertKey: [WorkerID]]

    public init() { holders = [:] }

    /// Normalises the lists (sorted, de-duplicated) and drops experts with an empty list.
    public init(holders: [ExpertKey: [WorkerID]]) {
        var normal: [ExpertKey: [WorkerID]] = [:]
        for (key, list) in holders where !list.isEmpty {
            normal[key] = Array(Set(list)).sorted()
        }
        self.holders = normal
    }

    /// Holders of `key`, sorted by worker id; empty when nobody holds it.
    public func holders(of key: ExpertKey) -> [WorkerID] { holders[key] ?? [] }

    /// Experts a worker holds, in layer-major order.
    public func experts(of worker: WorkerID) -> [ExpertKey] {
        holders.compactMap { key, list in list.contains(worker) ? key : nil }.sorted()
    }

    /// Every worker that holds at least one copy, sorted.
    public var workers: [WorkerID] { Array(Set(holders.values.joined())).sorted() }

    /// Number of expert copies (slots used) per worker.
    public var slotsUsed: [WorkerID: Int] {
        var used: [WorkerID: Int] = [:]
        for list in holders.values { for w in list { used[w, default: 0] += 1 } }
        return used
    }

    /// Total number of expert copies across the cluster.
    public var copyCount: Int { holders.values.reduce(0) { $0 + $1.count } }

    public mutating func add(_ key: ExpertKey, to worker: WorkerID) {
        var list = holders[key] ?? []
        guard !list.contains(worker) else { return }
        list.append(worker)
        holders[key] = list.sorted()
    }

    public mutating func remove(_ key: ExpertKey, from worker: WorkerID) {
        guard var list = holders[key] else { return }
        list.removeAll { $0 == worker }
        holders[key] = list.isEmpty ? nil : list
    }

    /// Checks that every expert of every listed layer has a holder, that holders are known workers,
    /// and (when `workers` is given) that no worker holds more copies than it has slots.
    public func validate(layers: [Int], numExperts: Int, workers: [WorkerInfo]? = nil) throws {
        for layer in layers {
            for expert in 0..<max(0, numExperts) {
                let key = ExpertKey(layer: layer, expert: expert)
                guard !holders(of: key).isEmpty else { throw SchedulerError.uncoveredExpert(key) }
            }
        }
        guard let workers else { return }
        var slots: [WorkerID: Int] = [:]
        for w in workers { slots[w.id] = w.slots }
        for key in holders.keys.sorted() {
            for w in holders(of: key) where slots[w] == nil {
                throw SchedulerError.unknownWorker(w, expert: key)
            }
        }
        for (w, used) in slotsUsed.sorted(by: { $0.key < $1.key }) {
            let cap = slots[w] ?? 0
            guard used <= cap else { throw SchedulerError.overCapacity(worker: w, holds: used, slots: cap) }
        }
    }

    /// One line per layer: `L1: E0[w0,w1] E1[w2] ...` — stable, for logs and test failure messages.
    public var description: String {
        let byLayer = Dictionary(grouping: holders.keys, by: { $0.layer })
        return byLayer.keys.sorted().map { layer in
            let items = (byLayer[layer] ?? []).sorted().map { key in
                "E\(key.expert)[\(holders(of: key).map(\.rawValue).joined(separator: ","))]"
            }
            return "L\(layer): " + items.joined(separator: " ")
        }.joined(separator: "\n")
    }
}

/// One step of a rebalance: load a copy onto a worker, or release one.
public struct Move: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable { case add, drop }

    public let kind: Kind
    public let expert: ExpertKey
    public let worker: WorkerID
    /// True for an add that, at its point in the sequence, makes the worker hold one copy more than its
    /// slots: only emitted when every worker is full and copies must swap places (see `Placement.diff`).
    public let exceedsSlots: Bool

    public init(kind: Kind, expert: ExpertKey, worker: WorkerID, exceedsSlots: Bool = false) {
        self.kind = kind
        self.expert = expert
        self.worker = worker
        self.exceedsSlots = exceedsSlots
    }

    public var description: String {
        "\(kind == .add ? "+" : "-")\(expert)@\(worker)\(exceedsSlots ? "(transient)" : "")"
    }
}

extension Placement {
    /// The adds and drops that turn `from` into `to`, in an order that is safe to execute one by one.
    ///
    /// Without `workers` (capacity unknown): every add (sorted by expert, then worker), then every drop.
    /// A copy is thus released only after all new copies serve, so no expert is ever without a holder.
    ///
    /// With `workers`, slot capacity is respected as well, by simulating the sequence:
    /// 1. every pending add whose worker has a free slot;
    /// 2. every drop of an expert whose own adds are all done ("its replacement serves");
    /// 3. if neither made progress (adds wait for slots that only an early drop frees): the first drop
    ///    on a worker with a waiting add whose expert keeps another holder (coverage kept, capacity of
    ///    that expert briefly reduced);
    /// 4. if still stuck (all workers full and sole copies must trade places): the first pending add,
    ///    marked `exceedsSlots` — the worker transiently holds one copy more than its slots, which is
    ///    why `ExpertSlots.fromFreeMemory` takes a reserve.
    /// Workers missing from `workers` (e.g. leaving the cluster) are treated as having unlimited slots.
    public static func diff(from: Assignment, to: Assignment, workers: [WorkerInfo]? = nil) -> [Move] {
        var adds: [Move] = []
        var drops: [Move] = []
        for key in Set(from.holders.keys).union(to.holders.keys).sorted() {
            let before = Set(from.holders(of: key))
            let after = Set(to.holders(of: key))
            for w in after.subtracting(before).sorted() { adds.append(Move(kind: .add, expert: key, worker: w)) }
            for w in before.subtracting(after).sorted() { drops.append(Move(kind: .drop, expert: key, worker: w)) }
        }
        guard let workers else { return adds + drops }

        var capacity: [WorkerID: Int] = [:]
        for w in workers { capacity[w.id] = w.slots }
        var used = from.slotsUsed
        var holderCount: [ExpertKey: Int] = [:]
        for (key, list) in from.holders { holderCount[key] = list.count }
        var addsLeft: [ExpertKey: Int] = [:]
        for a in adds { addsLeft[a.expert, default: 0] += 1 }
        var pendingAdds = adds
        var pendingDrops = drops
        var out: [Move] = []
        out.reserveCapacity(adds.count + drops.count)

        func hasRoom(_ w: WorkerID) -> Bool { used[w, default: 0] < (capacity[w] ?? Int.max) }
        func emitAdd(_ m: Move) {
            out.append(m)
            used[m.worker, default: 0] += 1
            holderCount[m.expert, default: 0] += 1
            addsLeft[m.expert, default: 0] -= 1
        }
        func emitDrop(_ m: Move) {
            out.append(m)
            used[m.worker, default: 0] -= 1
            holderCount[m.expert, default: 0] -= 1
        }

        while !pendingAdds.isEmpty || !pendingDrops.isEmpty {
            var progress = false
            var waiting: [Move] = []
            for a in pendingAdds {
                if hasRoom(a.worker) { emitAdd(a); progress = true } else { waiting.append(a) }
            }
            pendingAdds = waiting
            var kept: [Move] = []
            for d in pendingDrops {
                if addsLeft[d.expert, default: 0] == 0 { emitDrop(d); progress = true } else { kept.append(d) }
            }
            pendingDrops = kept
            if progress { continue }

            let blocked = Set(pendingAdds.map(\.worker))
            if let i = pendingDrops.firstIndex(where: { blocked.contains($0.worker) && holderCount[$0.expert, default: 0] >= 2 }) {
                emitDrop(pendingDrops.remove(at: i))
                continue
            }
            guard !pendingAdds.isEmpty else {
                // Only drops of experts with pending adds remain, which cannot happen once adds are
                // done; emit them rather than loop.
                pendingDrops.forEach(emitDrop)
                pendingDrops = []
                continue
            }
            let a = pendingAdds.removeFirst()
            emitAdd(Move(kind: .add, expert: a.expert, worker: a.worker, exceedsSlots: true))
        }
        return out
    }
}
