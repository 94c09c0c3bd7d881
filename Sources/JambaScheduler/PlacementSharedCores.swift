// PlacementSharedCores: workers that take layer steps in turn are planned as one worker, then given whole layers.

/// Placement for turn-taking groups (`Dispatch.turnTakingGroups`). Such a group computes one layer step at a time on
/// all of its cores, so for balance it is a single worker. Its experts are best held a whole layer per member: the
/// dispatcher then sends each layer to the one member holding it, and no member needs another's layers. Replicas
/// inside a group would only cost memory, since its members never compute at the same time.
public enum SharedCorePlacement {
    /// Each group as one worker (its first member's id, the members' slots summed, their mean speed); other
    /// workers as they are, in their order.
    public static func merge(_ workers: [WorkerInfo], groups: [[WorkerID]]) -> [WorkerInfo] {
        let lead = leads(groups)
        var order: [WorkerID] = []
        var slots: [WorkerID: Int] = [:]
        var speeds: [WorkerID: [Double]] = [:]
        for w in workers {
            let id = lead[w.id] ?? w.id
            if slots[id] == nil { order.append(id) }
            slots[id, default: 0] += w.slots
            speeds[id, default: []].append(w.speed)
        }
        return order.map { id in
            let s = speeds[id] ?? [1]
            return WorkerInfo(id: id, slots: slots[id] ?? 0, speed: s.reduce(0, +) / Double(max(1, s.count)))
        }
    }

    /// An assignment in merged terms: a group member's copies under the group's first member.
    public static func merge(_ assignment: Assignment, groups: [[WorkerID]]) -> Assignment {
        let lead = leads(groups)
        var out = Assignment()
        for (key, holders) in assignment.holders {
            for w in holders { out.add(key, to: lead[w] ?? w) }
        }
        return out
    }

    /// A merged plan back in members' terms. For each group, the experts of each layer it holds go to one member:
    /// the one holding most of that layer in `current` (so a re-plan moves nothing), then the one with the most
    /// free slots (so layers alternate), then the lowest id. What does not fit that member's free `slots` goes to
    /// the next member in the same order. Copies on workers outside groups stay as planned.
    public static func split(_ assignment: Assignment, groups: [[WorkerID]], slots: [WorkerID: Int],
                             current: Assignment) -> Assignment
    {
        let members = Dictionary(groups.compactMap { g in g.first.map { ($0, g) } }, uniquingKeysWith: { a, _ in a })
        var out = Assignment()
        var byLayer: [WorkerID: [Int: [ExpertKey]]] = [:]  // group lead -> layer -> its experts there
        for (key, holders) in assignment.holders {
            for w in holders {
                if members[w] != nil { byLayer[w, default: [:]][key.layer, default: []].append(key) } else { out.add(key, to: w) }
            }
        }
        var free = slots
        for (lead, layers) in byLayer.sorted(by: { $0.key < $1.key }) {
            guard let group = members[lead] else { continue }
            for (_, keys) in layers.sorted(by: { $0.key < $1.key }) {
                let held = Dictionary(uniqueKeysWithValues: group.map { w in (w, keys.filter { current.holders(of: $0).contains(w) }.count) })
                let ranked = group.sorted { a, b in
                    let (ha, hb) = (held[a] ?? 0, held[b] ?? 0)
                    if ha != hb { return ha > hb }
                    let (fa, fb) = (free[a] ?? 0, free[b] ?? 0)
                    return fa != fb ? fa > fb : a < b
                }
                var rest = keys.sorted()
                for w in ranked where !rest.isEmpty {
                    let n = min(rest.count, max(0, free[w] ?? 0))
                    for k in rest.prefix(n) { out.add(k, to: w) }
                    free[w, default: 0] -= n
                    rest.removeFirst(n)
                }
                // The merged plan fits the summed slots, so nothing should be left; if it is, keep coverage.
                if let first = ranked.first { for k in rest { out.add(k, to: first) } }
            }
        }
        return out
    }

    private static func leads(_ groups: [[WorkerID]]) -> [WorkerID: WorkerID] {
        var lead: [WorkerID: WorkerID] = [:]
        for g in groups { if let first = g.first { for w in g { lead[w] = first } } }
        return lead
    }
}

extension Placement {
    /// `planDetailed` with turn-taking groups planned as one worker each, then split a whole layer per member
    /// (`SharedCorePlacement`). The imbalance reports are in merged terms, the view `Imbalance.of` should take of
    /// such a cluster; the moves are between the members' current and new assignments.
    public static func planSharingCores(layers: [Int], numExperts: Int, loads: LoadTable, workers: [WorkerInfo],
                                        current: Assignment?, turnTakingGroups groups: [[WorkerID]],
                                        options: PlacementOptions = PlacementOptions()) throws -> PlacementResult
    {
        guard !groups.isEmpty else {
            return try planDetailed(layers: layers, numExperts: numExperts, loads: loads, workers: workers, current: current, options: options)
        }
        let merged = try planDetailed(layers: layers, numExperts: numExperts, loads: loads,
                                      workers: SharedCorePlacement.merge(workers, groups: groups),
                                      current: current.map { SharedCorePlacement.merge($0, groups: groups) }, options: options)
        let slots = Dictionary(workers.map { ($0.id, $0.slots) }, uniquingKeysWith: { a, _ in a })
        let real = SharedCorePlacement.split(merged.assignment, groups: groups, slots: slots, current: current ?? Assignment())
        return PlacementResult(assignment: real, imbalance: merged.imbalance, previousImbalance: merged.previousImbalance,
                               moves: diff(from: current ?? Assignment(), to: real, workers: workers))
    }
}
