// DispatchWhole: decode-sized expert batches go whole (or in fixed slices) to one holder each, balanced by what
// they cost to stream.

/// Which worker computes each slice of each expert in a decode layer step.
public struct SlicePlan: Equatable, Sendable {
    /// Per expert with rows, the worker of each slice (index = slice; one entry when slices = 1).
    public let bySlice: [ExpertKey: [WorkerID]]
    /// Predicted (queued + assigned) cost / speed of each worker given work.
    public let finishTime: [WorkerID: Double]
    /// Largest of `finishTime` (0 when no rows).
    public let makespan: Double
}

extension Dispatch {
    /// For decode-sized batches (a few rows per expert): every expert's rows go to one of its holders, none split.
    ///
    /// At a few rows an expert costs about the same whatever its row count: the worker streams all of its weights
    /// once (`expertCost`), and each row adds only arithmetic (`rowCost`). `plan` balances rows, which at this size
    /// can give one worker twice the experts of another (four 1-row experts against two 2-row ones), and splitting
    /// an expert's rows would make two workers stream the same weights. This is `planSlices` with one slice.
    public static func planWhole(experts: [ExpertRows], assignment: Assignment, state: [WorkerID: WorkerLoadState],
                                 expertCost: Double = 1, rowCost: Double = 1.0 / 16) throws -> DispatchPlan
    {
        let p = try planSlices(experts: experts, slices: 1, assignment: assignment, state: state,
                               expertCost: expertCost, rowCost: rowCost)
        let rows = Dictionary(experts.map { ($0.expert, $0.rows) }, uniquingKeysWith: { a, _ in a })
        var byExpert: [ExpertKey: [RowShare]] = [:]
        var byWorker: [WorkerID: [WorkSlice]] = [:]
        for (key, workers) in p.bySlice {
            guard let w = workers.first, let n = rows[key] else { continue }
            byExpert[key] = [RowShare(worker: w, rows: 0..<n)]
            byWorker[w, default: []].append(WorkSlice(expert: key, rows: 0..<n))
        }
        for w in byWorker.keys { byWorker[w]?.sort { $0.expert < $1.expert } }
        return DispatchPlan(byExpert: byExpert, byWorker: byWorker, finishTime: p.finishTime, makespan: p.makespan)
    }

    /// Decode-sized batches in `slices` fixed slices per expert (the expert's intermediate dimension cut in equal
    /// parts; a slice streams 1/slices of the weights and costs that share). Whole experts leave the layer's
    /// makespan up to one expert above the mean (seven experts on two workers: four against three); half-experts
    /// cut that to half an expert, and a slice costs no extra weight traffic, only its rows sent twice.
    ///
    /// Longest-processing-time list scheduling on cost = (expertCost + rows × rowCost) / slices: experts with the
    /// fewest holders first (they have no choice), then the costliest, each slice in turn; each goes to the holder
    /// that would finish first, finish = load / speed, with a worker's queued rows counted at `rowCost`. On a tie
    /// the holder already given another slice of the same expert wins (fewer parts to send), then the lower
    /// worker id, so the plan is deterministic. LPT's makespan is within 4/3 of the optimum for equal speeds.
    public static func planSlices(experts: [ExpertRows], slices: Int, assignment: Assignment,
                                  state: [WorkerID: WorkerLoadState], expertCost: Double = 1,
                                  rowCost: Double = 1.0 / 16) throws -> SlicePlan
    {
        guard slices >= 1 else { throw SchedulerError.invalidSlices(slices) }
        var seen = Set<ExpertKey>()
        var jobs: [(key: ExpertKey, rows: Int, holders: [WorkerID])] = []
        for item in experts.sorted(by: { $0.expert < $1.expert }) {
            guard seen.insert(item.expert).inserted else { throw SchedulerError.duplicateExpert(item.expert) }
            guard item.rows >= 0 else { throw SchedulerError.negativeRows(item.expert, rows: item.rows) }
            guard item.rows > 0 else { continue }
            let available = assignment.holders(of: item.expert).filter { state[$0] != nil }.sorted()
            guard !available.isEmpty else { throw SchedulerError.noAvailableHolder(item.expert) }
            jobs.append((item.expert, item.rows, available))
        }
        var load: [WorkerID: Double] = [:]
        var speed: [WorkerID: Double] = [:]
        for id in Set(jobs.flatMap(\.holders)) {
            let s = state[id] ?? WorkerLoadState()
            guard s.speed.isFinite, s.speed > 0 else { throw SchedulerError.invalidSpeed(worker: id, speed: s.speed) }
            guard s.queuedRows >= 0 else { throw SchedulerError.negativeQueue(worker: id, queuedRows: s.queuedRows) }
            speed[id] = s.speed
            load[id] = Double(s.queuedRows) * rowCost
        }
        let cost = { (rows: Int) in (expertCost + Double(rows) * rowCost) / Double(slices) }
        let order = jobs.indices.sorted { a, b in
            if jobs[a].holders.count != jobs[b].holders.count { return jobs[a].holders.count < jobs[b].holders.count }
            return jobs[a].rows != jobs[b].rows ? jobs[a].rows > jobs[b].rows : jobs[a].key < jobs[b].key
        }
        var bySlice: [ExpertKey: [WorkerID]] = [:]
        var given = Set<WorkerID>()
        for j in order {
            let job = jobs[j]
            var workers: [WorkerID] = []
            for _ in 0..<slices {
                let finishIf = { (w: WorkerID) in ((load[w] ?? 0) + cost(job.rows)) / (speed[w] ?? 1) }
                let rank = { (w: WorkerID) in (finishIf(w), workers.contains(w) ? 0 : 1, w) }
                guard let best = job.holders.min(by: { rank($0) < rank($1) }) else { continue }
                load[best, default: 0] += cost(job.rows)
                workers.append(best)
                given.insert(best)
            }
            bySlice[job.key] = workers
        }
        var finish: [WorkerID: Double] = [:]
        for w in given { finish[w] = (load[w] ?? 0) / (speed[w] ?? 1) }
        return SlicePlan(bySlice: bySlice, finishTime: finish, makespan: finish.values.max() ?? 0)
    }
}
