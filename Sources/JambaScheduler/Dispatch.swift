// Per-MoE-layer-step dispatch: split each expert's rows among its holders to minimise the last finish time.

/// What the coordinator knows about a worker when it dispatches a step.
public struct WorkerLoadState: Hashable, Sendable {
    /// Rows already sent to the worker and not yet answered.
    public var queuedRows: Int
    /// Measured rows per second (any unit shared by all workers); must be finite and > 0.
    public var speed: Double

    public init(queuedRows: Int = 0, speed: Double = 1) {
        self.queuedRows = queuedRows
        self.speed = speed
    }
}

/// Rows routed to one expert in this step (rows are indexed 0..<rows in the coordinator's gather order).
public struct ExpertRows: Hashable, Sendable {
    public let expert: ExpertKey
    public let rows: Int

    public init(expert: ExpertKey, rows: Int) {
        self.expert = expert
        self.rows = rows
    }
}

/// A contiguous range of one expert's rows given to one worker.
public struct RowShare: Hashable, Sendable {
    public let worker: WorkerID
    public let rows: Range<Int>

    public init(worker: WorkerID, rows: Range<Int>) {
        self.worker = worker
        self.rows = rows
    }
}

/// A contiguous range of rows of one expert, as seen by the worker computing it.
public struct WorkSlice: Hashable, Sendable {
    public let expert: ExpertKey
    public let rows: Range<Int>

    public init(expert: ExpertKey, rows: Range<Int>) {
        self.expert = expert
        self.rows = rows
    }
}

/// The split of one layer step. Every row of every expert appears in exactly one share. The result
/// does not depend on the split: each row is computed once, by one holder, and the coordinator writes it
/// back at its row index, then combines each token's top-k outputs in ascending expert order.
/// (Bit-identical outputs additionally need the worker's expert kernel to compute a row independently
/// of how many other rows share its batch.)
public struct DispatchPlan: Equatable, Sendable {
    /// Per expert, its shares in ascending row order (holders in worker-id order); empty for 0 rows.
    public let byExpert: [ExpertKey: [RowShare]]
    /// Per worker receiving rows, its slices sorted by expert.
    public let byWorker: [WorkerID: [WorkSlice]]
    /// Predicted (queued + assigned) / speed of each worker receiving rows.
    public let finishTime: [WorkerID: Double]
    /// Largest of `finishTime` (0 when no rows).
    public let makespan: Double
}

public enum Dispatch {
    /// Splits every expert's rows among those of its holders present in `state` (a holder missing from
    /// `state` is treated as unavailable, so a failed worker is routed around) so that the last of the
    /// workers receiving rows finishes as early as possible, finish = (queued + assigned) / speed.
    ///
    /// Water-filling: experts with the fewest holders first (they have no choice), each filled onto its
    /// holders up to a common level; then rows are shifted along chains "worker u gives rows of an expert
    /// to another holder v" while that lets the busier end finish earlier. At the end no chain can lower
    /// a finish time, which bounds the makespan by the optimum plus one row's time at the mean speed of
    /// the involved workers. Every choice is ordered (expert key, then worker id): deterministic.
    public static func plan(experts: [ExpertRows], assignment: Assignment,
                            state: [WorkerID: WorkerLoadState]) throws -> DispatchPlan
    {
        var seen = Set<ExpertKey>()
        var jobs: [(key: ExpertKey, rows: Int, holders: [WorkerID])] = []
        for item in experts.sorted(by: { $0.expert < $1.expert }) {
            guard seen.insert(item.expert).inserted else { throw SchedulerError.duplicateExpert(item.expert) }
            guard item.rows >= 0 else { throw SchedulerError.negativeRows(item.expert, rows: item.rows) }
            let available = assignment.holders(of: item.expert).filter { state[$0] != nil }
            guard item.rows == 0 || !available.isEmpty else { throw SchedulerError.noAvailableHolder(item.expert) }
            jobs.append((item.expert, item.rows, available))
        }
        let ids = Array(Set(jobs.filter { $0.rows > 0 }.flatMap(\.holders))).sorted()
        var index: [WorkerID: Int] = [:]
        var speed: [Double] = []
        var load: [Double] = []
        for (w, id) in ids.enumerated() {
            let s = state[id] ?? WorkerLoadState()
            guard s.speed.isFinite, s.speed > 0 else { throw SchedulerError.invalidSpeed(worker: id, speed: s.speed) }
            guard s.queuedRows >= 0 else { throw SchedulerError.negativeQueue(worker: id, queuedRows: s.queuedRows) }
            index[id] = w
            speed.append(s.speed)
            load.append(Double(s.queuedRows))
        }
        var solver = WaterFill(
            holders: jobs.map { job in job.holders.compactMap { index[$0] } },
            rows: jobs.map(\.rows), speed: speed, load: load)
        solver.solve()

        var byExpert: [ExpertKey: [RowShare]] = [:]
        var byWorker: [WorkerID: [WorkSlice]] = [:]
        var finish: [WorkerID: Double] = [:]
        for (j, job) in jobs.enumerated() {
            var start = 0
            var shares: [RowShare] = []
            for (h, w) in solver.holders[j].enumerated() where solver.share[j][h] > 0 {
                let range = start..<(start + solver.share[j][h])
                start = range.upperBound
                shares.append(RowShare(worker: ids[w], rows: range))
                byWorker[ids[w], default: []].append(WorkSlice(expert: job.key, rows: range))
                finish[ids[w]] = solver.load[w] / speed[w]
            }
            byExpert[job.key] = shares
        }
        return DispatchPlan(byExpert: byExpert, byWorker: byWorker, finishTime: finish,
                            makespan: finish.values.max() ?? 0)
    }

    /// Single-expert convenience: the shares of `rows` rows among `holders` (see `plan`).
    public static func split(rows: Int, holders: [WorkerID], state: [WorkerID: WorkerLoadState],
                             expert: ExpertKey = ExpertKey(layer: 0, expert: 0)) throws -> [RowShare]
    {
        let plan = try plan(experts: [ExpertRows(expert: expert, rows: rows)],
                            assignment: Assignment(holders: [expert: holders]), state: state)
        return plan.byExpert[expert] ?? []
    }
}
