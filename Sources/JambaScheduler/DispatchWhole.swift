// DispatchWhole: decode-sized expert batches go whole to one holder each, balanced by what they cost to stream.

extension Dispatch {
    /// For decode-sized batches (a few rows per expert): every expert's rows go to one of its holders, none split.
    ///
    /// At a few rows an expert costs about the same whatever its row count: the worker streams all of its weights
    /// once (`expertCost`), and each row adds only arithmetic (`rowCost`). `plan` balances rows, which at this size
    /// can give one worker twice the experts of another (four 1-row experts against two 2-row ones), and splitting
    /// an expert's rows would make two workers stream the same weights. So this is longest-processing-time list
    /// scheduling on cost = expertCost + rows × rowCost: experts with the fewest holders first (they have no
    /// choice), then the costliest; each goes to the holder that would finish first, finish = load / speed, with
    /// a worker's queued rows counted at `rowCost`. LPT's makespan is within 4/3 of the optimum for equal speeds.
    /// Ties go to the lower worker id, so the plan is deterministic.
    public static func planWhole(experts: [ExpertRows], assignment: Assignment, state: [WorkerID: WorkerLoadState],
                                 expertCost: Double = 1, rowCost: Double = 1.0 / 16) throws -> DispatchPlan
    {
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
        let cost = { (rows: Int) in expertCost + Double(rows) * rowCost }
        let order = jobs.indices.sorted { a, b in
            if jobs[a].holders.count != jobs[b].holders.count { return jobs[a].holders.count < jobs[b].holders.count }
            return jobs[a].rows != jobs[b].rows ? jobs[a].rows > jobs[b].rows : jobs[a].key < jobs[b].key
        }
        var byExpert: [ExpertKey: [RowShare]] = [:]
        var byWorker: [WorkerID: [WorkSlice]] = [:]
        for j in order {
            let job = jobs[j]
            let finishIf = { (w: WorkerID) in ((load[w] ?? 0) + cost(job.rows)) / (speed[w] ?? 1) }
            guard let best = job.holders.min(by: { (finishIf($0), $0) < (finishIf($1), $1) }) else { continue }
            load[best, default: 0] += cost(job.rows)
            byExpert[job.key] = [RowShare(worker: best, rows: 0..<job.rows)]
            byWorker[best, default: []].append(WorkSlice(expert: job.key, rows: 0..<job.rows))
        }
        for w in byWorker.keys { byWorker[w]?.sort { $0.expert < $1.expert } }
        var finish: [WorkerID: Double] = [:]
        for w in byWorker.keys { finish[w] = (load[w] ?? 0) / (speed[w] ?? 1) }
        return DispatchPlan(byExpert: byExpert, byWorker: byWorker, finishTime: finish, makespan: finish.values.max() ?? 0)
    }
}
