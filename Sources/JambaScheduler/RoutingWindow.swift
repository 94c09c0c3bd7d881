// Sliding windows of routing counts per (layer, expert) and of per-worker throughput; time is passed in.

/// Tokens routed per (layer, expert) over a sliding window that keeps, per layer, the last `maxRows`
/// routed rows or the last `maxAge` seconds, whichever is less. A value type with no clock: every
/// timestamp comes from the caller (monotonic seconds), so tests and replays are exact.
/// `record` is on the coordinator's per-layer-step path, so it is O(1) amortised: it appends, then
/// drops whole steps from the front once they are entirely outside the window; the exact cut (a step
/// straddling the row limit, or ageing as of a later `now`) is applied when the window is read.
public struct RoutingWindow: Sendable {
    struct Entry: Sendable {
        var at: Double
        var counts: [Double]
        var rows: Double
    }

    /// Oldest-first queue of steps with a moving head (Array.removeFirst would be O(n) per step).
    struct Steps: Sendable {
        var items: [Entry] = []
        var head = 0
        /// Rows in items[head...].
        var rows = 0.0

        var live: ArraySlice<Entry> { items[head...] }

        mutating func append(_ e: Entry) {
            items.append(e)
            rows += e.rows
        }

        /// Drops front steps that are older than `oldest` or not needed to hold `maxRows` rows.
        mutating func evict(oldest: Double, maxRows: Double) {
            while head < items.count {
                let front = items[head]
                guard front.at < oldest || rows - front.rows >= maxRows else { break }
                rows -= front.rows
                head += 1
            }
            // Compact once the dead prefix dominates: amortised O(1) per step.
            if head > 64 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
    }

    public let layers: [Int]
    public let numExperts: Int
    public let maxRows: Int
    public let maxAge: Double
    private var steps: [Steps]
    /// Latest timestamp seen; a record older than this is treated as happening now (see `record`).
    public private(set) var latest: Double?

    public init(layers: [Int], numExperts: Int, maxRows: Int = 2_000, maxAge: Double = 30) throws {
        guard numExperts > 0 else { throw SchedulerError.invalidExpertCount(numExperts) }
        guard maxRows > 0 else { throw SchedulerError.invalidParameter(name: "maxRows", value: Double(maxRows)) }
        guard maxAge.isFinite, maxAge > 0 else { throw SchedulerError.invalidParameter(name: "maxAge", value: maxAge) }
        var seen = Set<Int>()
        for l in layers where !seen.insert(l).inserted { throw SchedulerError.duplicateLayer(l) }
        self.layers = layers
        self.numExperts = numExperts
        self.maxRows = maxRows
        self.maxAge = maxAge
        steps = Array(repeating: Steps(), count: layers.count)
    }

    /// Records one step of one layer: `expertCounts[e]` rows were routed to expert e at time `at`.
    /// Timestamps that go backwards (several threads reporting) are clamped to the latest one: the
    /// data is still recent, and the window must stay ordered for eviction by age.
    public mutating func record(layer: Int, expertCounts: [Int], at: Double) throws {
        guard at.isFinite else { throw SchedulerError.invalidTimestamp(at) }
        guard let i = layers.firstIndex(of: layer) else { throw SchedulerError.unknownLayer(layer) }
        guard expertCounts.count == numExperts else {
            throw SchedulerError.loadShapeMismatch(layer: layer, expectedExperts: numExperts, got: expertCounts.count)
        }
        for (e, c) in expertCounts.enumerated() where c < 0 {
            throw SchedulerError.invalidLoad(layer: layer, expert: e, value: Double(c))
        }
        let now = max(at, latest ?? at)
        latest = now
        let counts = expertCounts.map(Double.init)
        let rows = counts.reduce(0, +)
        if rows > 0 { steps[i].append(Entry(at: now, counts: counts, rows: rows)) }
        steps[i].evict(oldest: now - maxAge, maxRows: Double(maxRows))
    }

    /// Rows per (layer, expert) inside the window as of `now` (default: the latest record). Layers with
    /// no rows come back as all zeros; the planner treats such a layer as uniform.
    public func loads(now: Double? = nil) -> LoadTable {
        let at = now ?? latest ?? 0
        let rows = steps.map { queue -> [Double] in
            var sum = Array(repeating: 0.0, count: numExperts)
            for entry in Self.window(queue.live, now: at, maxRows: Double(maxRows), maxAge: maxAge) {
                for e in 0..<numExperts { sum[e] += entry.counts[e] }
            }
            return sum
        }
        // Layers were validated unique at init and sums of non-negative counts are finite and ≥ 0.
        return LoadTable(trusted: layers, perLayer: rows)
    }

    /// Routed rows of one layer inside the window (0 for unknown layers).
    public func rows(layer: Int, now: Double? = nil) -> Double {
        guard let i = layers.firstIndex(of: layer) else { return 0 }
        return Self.window(steps[i].live, now: now ?? latest ?? 0, maxRows: Double(maxRows), maxAge: maxAge)
            .reduce(0) { $0 + $1.rows }
    }

    /// The exact window: steps older than `maxAge` before `now` are out (a step exactly `maxAge` old is
    /// in), then only the newest `maxRows` rows count. A step's rows arrive together with no order among
    /// them, so when the row limit falls inside the oldest step, that step is scaled to the fraction
    /// that fits: the window then holds exactly `maxRows` rows with that step's expert mix.
    static func window(_ list: ArraySlice<Entry>, now: Double, maxRows: Double, maxAge: Double) -> [Entry] {
        var kept: [Entry] = []
        var total = 0.0
        for entry in list.reversed() {
            guard entry.at >= now - maxAge, total < maxRows else { break }
            var e = entry
            if total + e.rows > maxRows {
                let f = (maxRows - total) / e.rows
                e.counts = e.counts.map { $0 * f }
                e.rows = maxRows - total
            }
            total += e.rows
            kept.append(e)
        }
        return kept
    }
}

/// Rows served and busy time of one worker over the window; `rowsPerSecond` is its measured speed.
public struct WorkerStats: Equatable, Sendable {
    public let rows: Double
    public let busySeconds: Double
    /// nil until the worker has reported busy time: an unmeasured worker has no speed, not speed 0.
    public var rowsPerSecond: Double? { busySeconds > 0 ? rows / busySeconds : nil }
}

/// Per-worker throughput over the last `maxAge` seconds and at most `maxSamples` reports per worker
/// (the smaller of the two), feeding `WorkerInfo.speed` and `WorkerLoadState.speed`. Time is passed in.
public struct WorkerStatsWindow: Sendable {
    struct Sample: Sendable {
        var at: Double
        var rows: Double
        var busy: Double
    }

    public let maxAge: Double
    public let maxSamples: Int
    private var samples: [WorkerID: [Sample]] = [:]
    public private(set) var latest: Double?

    public init(maxAge: Double = 30, maxSamples: Int = 1_000) throws {
        guard maxAge.isFinite, maxAge > 0 else { throw SchedulerError.invalidParameter(name: "maxAge", value: maxAge) }
        guard maxSamples > 0 else { throw SchedulerError.invalidParameter(name: "maxSamples", value: Double(maxSamples)) }
        self.maxAge = maxAge
        self.maxSamples = maxSamples
    }

    /// One answered request: `rows` rows computed in `busySeconds` of compute time (not wall time
    /// including the network, so that speed measures the worker, not the link). Backward timestamps are
    /// clamped to the latest, as in `RoutingWindow`.
    /// `rows` may be fractional: a slice of an expert counts its share of the expert's rows.
    public mutating func record(worker: WorkerID, rows: Double, busySeconds: Double, at: Double) throws {
        guard at.isFinite else { throw SchedulerError.invalidTimestamp(at) }
        guard rows.isFinite, rows >= 0 else { throw SchedulerError.invalidParameter(name: "rows", value: rows) }
        guard busySeconds.isFinite, busySeconds >= 0 else {
            throw SchedulerError.invalidParameter(name: "busySeconds", value: busySeconds)
        }
        let now = max(at, latest ?? at)
        latest = now
        // Only this worker's list is trimmed here (bounded by maxSamples, so removeFirst is cheap);
        // other workers age out when the window is read.
        var list = samples[worker] ?? []
        list.append(Sample(at: now, rows: rows, busy: busySeconds))
        if list.count > maxSamples { list.removeFirst(list.count - maxSamples) }
        if let keep = list.firstIndex(where: { $0.at >= now - maxAge }), keep > 0 { list.removeFirst(keep) }
        samples[worker] = list
    }

    /// Totals per worker inside the window as of `now` (default: the latest report); workers with no
    /// sample inside the window are absent.
    public func stats(now: Double? = nil) -> [WorkerID: WorkerStats] {
        let at = now ?? latest ?? 0
        var out: [WorkerID: WorkerStats] = [:]
        for (w, list) in samples {
            let live = list.filter { $0.at >= at - maxAge }
            guard !live.isEmpty else { continue }
            out[w] = WorkerStats(rows: live.reduce(0) { $0 + $1.rows }, busySeconds: live.reduce(0) { $0 + $1.busy })
        }
        return out
    }

    /// Measured rows per second of one worker, nil if unmeasured in the window.
    public func speed(of worker: WorkerID, now: Double? = nil) -> Double? {
        stats(now: now)[worker]?.rowsPerSecond
    }
}
