// DispatchSharedCores: workers that compete for the same cores take a layer step one at a time instead of splitting it.

/// Where a worker computes, as it reported at registration.
public struct WorkerHost: Hashable, Sendable {
    /// The machine (empty = unknown: the worker is never grouped with another).
    public let host: String
    /// CPUs its threads may run on (empty = unknown).
    public let cpus: Set<Int>
    /// Threads it computes experts with.
    public let threads: Int

    public init(host: String, cpus: Set<Int>, threads: Int) {
        self.host = host
        self.cpus = cpus
        self.threads = threads
    }
}

extension Dispatch {
    /// Workers that compete for cores: the same known host and overlapping CPU sets, transitively (a worker with
    /// unknown CPUs on a known host overlaps every worker of that host). Every worker in `hosts` appears in
    /// exactly one group, singletons included; each group is sorted, and groups are sorted by their first id.
    public static func sharedCoreGroups(_ hosts: [WorkerID: WorkerHost]) -> [[WorkerID]] {
        let ids = hosts.keys.sorted()
        var parent = Dictionary(uniqueKeysWithValues: ids.map { ($0, $0) })
        func root(_ w: WorkerID) -> WorkerID {
            var r = w
            while let p = parent[r], p != r { r = p }
            return r
        }
        for (i, a) in ids.enumerated() {
            guard let ha = hosts[a], !ha.host.isEmpty else { continue }
            for b in ids[(i + 1)...] {
                guard let hb = hosts[b], hb.host == ha.host else { continue }
                let overlap = ha.cpus.isEmpty || hb.cpus.isEmpty || !ha.cpus.isDisjoint(with: hb.cpus)
                if overlap {
                    let (ra, rb) = (root(a), root(b))
                    if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
                }
            }
        }
        var groups: [WorkerID: [WorkerID]] = [:]
        for w in ids { groups[root(w), default: []].append(w) }
        return groups.values.map { $0.sorted() }.sorted { $0[0] < $1[0] }
    }

    /// The groups of two or more workers sharing cores in which every member runs at least as many threads as the
    /// group has CPUs: any one of them can use all the cores, so they take layer steps in turn.
    public static func turnTakingGroups(_ hosts: [WorkerID: WorkerHost]) -> [[WorkerID]] {
        sharedCoreGroups(hosts).filter { group in
            guard group.count > 1 else { return false }
            let cpus = group.reduce(into: Set<Int>()) { $0.formUnion(hosts[$1]?.cpus ?? []) }
            return !cpus.isEmpty && group.allSatisfy { (hosts[$0]?.threads ?? 0) >= cpus.count }
        }
    }

    /// The assignment to plan one layer step on when some workers share cores.
    ///
    /// Two workers on the same cores do not compute a step faster than one of them does: each gets half the
    /// cores and half the memory bandwidth, which is what bounds an expert. Splitting the step between them
    /// only adds a request and a reply, two more wake-ups on those very cores, and a wait for the slower of
    /// the two (bench/cluster-overheads.md). So when every member of a group runs at least as many threads as
    /// the group has CPUs (any one of them can use all the cores), one member takes every expert of the step
    /// that it holds: the member holding the most of the step's experts, ties broken by `rotation` (pass a
    /// counter, so that fully replicated members take turns). An expert it does not hold keeps its other
    /// holders. Groups whose members run fewer threads than their cores keep splitting: there each member is a
    /// real share of the compute. Workers on other hosts are untouched.
    ///
    /// Only workers in `available` count (live, not excluded after a failure). Deterministic.
    public static func preferOnePerSharedCores(experts: [ExpertRows], assignment: Assignment, hosts: [WorkerID: WorkerHost],
                                               available: Set<WorkerID>, rotation: Int) -> Assignment
    {
        preferOnePerSharedCores(experts: experts, assignment: assignment,
                                groups: turnTakingGroups(hosts.filter { available.contains($0.key) }), rotation: rotation)
    }

    /// The same with the turn-taking groups of the available workers given (`turnTakingGroups`): a dispatcher
    /// computes them once per change of its workers rather than on every layer step.
    public static func preferOnePerSharedCores(experts: [ExpertRows], assignment: Assignment, groups: [[WorkerID]],
                                               rotation: Int) -> Assignment
    {
        guard !groups.isEmpty else { return assignment }
        let routed = experts.filter { $0.rows > 0 }.map(\.expert)
        var drop: [WorkerID: Set<WorkerID>] = [:]  // chosen member -> the group's other members
        for group in groups {
            let held = { (w: WorkerID) in routed.filter { assignment.holders(of: $0).contains(w) }.count }
            let most = group.map(held).max() ?? 0
            guard most > 0 else { continue }
            let candidates = group.filter { held($0) == most }
            let chosen = candidates[((rotation % candidates.count) + candidates.count) % candidates.count]
            drop[chosen] = Set(group).subtracting([chosen])
        }
        guard !drop.isEmpty else { return assignment }
        var out = assignment
        for key in routed {
            let holders = assignment.holders(of: key)
            for (chosen, others) in drop where holders.contains(chosen) {
                for w in holders where others.contains(w) { out.remove(key, from: w) }
            }
        }
        return out
    }
}
