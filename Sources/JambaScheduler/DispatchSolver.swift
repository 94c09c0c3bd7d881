// Integer water-filling behind Dispatch.plan: per-expert fill, then improving chains across experts.

/// Dense solver state. Jobs are experts (sorted by key), workers are indices sorted by id, and each
/// job's holder list is in ascending worker index, so every "first"/"lowest" below means lowest id.
struct WaterFill {
    let holders: [[Int]]
    let rows: [Int]
    let speed: [Double]
    /// Queued plus assigned rows per worker.
    private(set) var load: [Double]
    /// Rows of job j given to its p-th holder.
    private(set) var share: [[Int]]
    private(set) var assigned: [Int]
    /// (job, holder position) pairs per worker, for walking chains.
    private let memberships: [[(job: Int, pos: Int)]]
    /// Breadth-first-search buffers, reused across searches (the planner calls this solver in a loop).
    private var parent: [(from: Int, job: Int, fromPos: Int, toPos: Int)?]
    private var visited: [Bool]
    private var queue: [Int] = []

    /// Floating-point slack when comparing finish times (rows are integers; speeds are measured).
    private static let epsilon = 1e-12

    init(holders: [[Int]], rows: [Int], speed: [Double], load: [Double]) {
        self.holders = holders
        self.rows = rows
        self.speed = speed
        self.load = load
        share = holders.map { Array(repeating: 0, count: $0.count) }
        assigned = Array(repeating: 0, count: speed.count)
        var m = Array(repeating: [(job: Int, pos: Int)](), count: speed.count)
        for (j, hs) in holders.enumerated() {
            for (p, w) in hs.enumerated() { m[w].append((j, p)) }
        }
        memberships = m
        parent = Array(repeating: nil, count: speed.count)
        visited = Array(repeating: false, count: speed.count)
    }

    mutating func solve() {
        // Fewest holders first: an expert with one holder has no choice and is part of the "queue" the
        // flexible experts must flow around. Then more rows first, then key order.
        let order = (0..<rows.count).filter { rows[$0] > 0 && !holders[$0].isEmpty }.sorted { a, b in
            if holders[a].count != holders[b].count { return holders[a].count < holders[b].count }
            return rows[a] != rows[b] ? rows[a] > rows[b] : a < b
        }
        for j in order { fill(j) }
        // Safety bound only: every chain strictly lowers the sorted vector of finish times, so the loop
        // ends on its own; the bound keeps a pathological input from spinning for long.
        let totalRows = rows.reduce(0, +)
        var budget = 64 * (speed.count + rows.count) + 4 * totalRows
        while budget > 0, improveOnce() { budget -= 1 }
    }

    private func finish(_ w: Int) -> Double { load[w] / speed[w] }

    /// Fills job j onto its holders up to a common finish level T (Σ max(0, T·s − load) = rows),
    /// rounds down, and hands the few leftover rows one at a time to the holder that would finish first.
    private mutating func fill(_ j: Int) {
        let hs = holders[j]
        let total = rows[j]
        let byLevel = hs.indices.sorted { a, b in
            let fa = finish(hs[a]), fb = finish(hs[b])
            return fa != fb ? fa < fb : a < b
        }
        var level = 0.0
        var loadSum = 0.0
        var speedSum = 0.0
        for (m, p) in byLevel.enumerated() {
            loadSum += load[hs[p]]
            speedSum += speed[hs[p]]
            level = (Double(total) + loadSum) / speedSum
            if m + 1 == byLevel.count || level <= finish(hs[byLevel[m + 1]]) { break }
        }
        var x = hs.map { w in max(0, Int((level * speed[w] - load[w]).rounded(.down))) }
        var given = x.reduce(0, +)
        while given > total {
            // Rounding overshoot (at most a row or two): take back from the latest finisher.
            var worst = -1
            for p in hs.indices where x[p] > 0 {
                let f = (load[hs[p]] + Double(x[p])) / speed[hs[p]]
                if worst < 0 || f > (load[hs[worst]] + Double(x[worst])) / speed[hs[worst]] { worst = p }
            }
            guard worst >= 0 else { break }
            x[worst] -= 1
            given -= 1
        }
        while given < total {
            var best = 0
            for p in hs.indices {
                let f = (load[hs[p]] + Double(x[p]) + 1) / speed[hs[p]]
                if f < (load[hs[best]] + Double(x[best]) + 1) / speed[hs[best]] { best = p }
            }
            x[best] += 1
            given += 1
        }
        for (p, w) in hs.enumerated() {
            share[j][p] += x[p]
            load[w] += Double(x[p])
            assigned[w] += x[p]
        }
    }

    /// Finds and applies one improving chain; false when none exists. Sources are tried from the latest
    /// finisher down; from a source u, a breadth-first walk follows "u has rows of job j, v also holds j"
    /// and targets the reached worker that would finish earliest after one more row, provided that is
    /// before u's current finish. Moving rows along the chain changes only u and v.
    private mutating func improveOnce() -> Bool {
        let sources = (0..<speed.count).filter { assigned[$0] > 0 }.sorted { a, b in
            finish(a) != finish(b) ? finish(a) > finish(b) : a < b
        }
        for u in sources {
            for w in visited.indices {
                visited[w] = false
                parent[w] = nil
            }
            visited[u] = true
            queue.removeAll(keepingCapacity: true)
            queue.append(u)
            var head = 0
            while head < queue.count {
                let w = queue[head]
                head += 1
                for (j, p) in memberships[w] where share[j][p] > 0 {
                    for (q, v) in holders[j].enumerated() where !visited[v] {
                        visited[v] = true
                        parent[v] = (w, j, p, q)
                        queue.append(v)
                    }
                }
            }
            var target = -1
            for v in queue.dropFirst() {
                let f = (load[v] + 1) / speed[v]
                if target < 0 || f < (load[target] + 1) / speed[target] { target = v }
            }
            guard target >= 0, (load[target] + 1) / speed[target] < finish(u) - Self.epsilon else { continue }
            var edges: [(job: Int, fromPos: Int, toPos: Int)] = []
            var bottleneck = Int.max
            var v = target
            while v != u, let step = parent[v] {
                edges.append((step.job, step.fromPos, step.toPos))
                bottleneck = min(bottleneck, share[step.job][step.fromPos])
                v = step.from
            }
            // Largest amount that leaves the receiver finishing no later than the giver; at least one row.
            let su = speed[u], sv = speed[target]
            let even = Int(((load[u] * sv - load[target] * su) / (su + sv)).rounded(.down))
            let amount = max(1, min(bottleneck, even))
            for e in edges {
                share[e.job][e.fromPos] -= amount
                share[e.job][e.toPos] += amount
            }
            load[u] -= Double(amount)
            load[target] += Double(amount)
            assigned[u] -= amount
            assigned[target] += amount
            return true
        }
        return false
    }
}
