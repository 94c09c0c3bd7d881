// RemoteExpertExecutor: the ExpertExecutor that runs each MoE layer's experts on the workers over ZeroMQ.
import Dispatch
import Foundation
import JambaMath
import JambaModel
import JambaScheduler
import JambaWire
import ZeroMQ

/// Per MoE layer: split each expert's rows among its live holders (least-loaded first, by measured speed), or at
/// decode give each slice of each expert (`MLP.sliceBounds`) to one holder, send each worker ONE request with all
/// of its experts' rows, wait for every reply, and put the outputs back in batch order (an expert's slice partials
/// summed in slice order, as the in-process expert sums them). Rows of a worker that fails or is lost are re-sent to another holder once; if an expert
/// has no holder left, the step fails with an error naming it. Gate scaling happens here, exactly as in
/// `LocalExpertExecutor`, so local and remote runs do the same float operations.
struct RemoteExpertExecutor: ExpertExecutor {
    let link: WorkerLink
    let hidden: Int
    /// Slices per expert (the model's `MLP.sliceBounds`); decode steps are balanced in these.
    let slices: Int
    let requestTimeout: Double
    /// Routing counts, rows served, speeds and time accounting, shared with the coordinator.
    let stats: StatsSink
    private var step: UInt64 = 0
    private let poller: Poller
    private var view: RoutingView?

    init(link: WorkerLink, hidden: Int, slices: Int, requestTimeout: Double, stats: StatsSink) throws {
        self.link = link
        self.hidden = hidden
        self.slices = max(1, slices)
        self.requestTimeout = requestTimeout
        self.stats = stats
        poller = Poller()
        _ = try poller.add(link.socket)
    }

    /// Rows of one batch still to compute: indices into that batch's rows, ascending; the whole expert
    /// (slice 0) or slice `slice - 1` of it, for all of the batch's rows.
    private struct Pending {
        let batch: Int
        var rows: [Int]
        var slice: UInt32 = 0
    }

    /// One worker's request in flight: for each expert in it, the batch and the row indices it carries.
    private struct Sent {
        let worker: WorkerID
        let parts: [Pending]
    }

    private struct Failure {
        var parts: [Pending] = []
        var workers = Set<WorkerID>()
        var reason = ""
    }

    /// The registry as a layer's plan reads it. Rebuilding it (sorting the live workers, collecting their
    /// experts, grouping workers that share cores) took most of the planning time, ~0.3 ms of a bf16 batch-8
    /// step; it only changes when the registry's `routingVersion` does.
    private struct RoutingView {
        let version: UInt64
        let live: [WorkerID]
        let hosts: [WorkerID: WorkerHost]
        let assignment: Assignment
        /// `Dispatch.turnTakingGroups` of all live workers.
        let groups: [[WorkerID]]
    }

    private mutating func routingView() -> RoutingView {
        if let v = view, v.version == link.registry.routingVersion { return v }
        let live = link.registry.live
        let hosts = Dictionary(uniqueKeysWithValues: live.map { ($0.id, $0.host) })
        let v = RoutingView(version: link.registry.routingVersion, live: live.map(\.id), hosts: hosts,
                            assignment: link.registry.routableAssignment, groups: Dispatch.turnTakingGroups(hosts))
        view = v
        return v
    }

    mutating func run(layer: Int, batches: [ExpertBatch]) throws -> [Matrix] {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { stats.timings.expertMs += Self.ms(since: start) }
        step += 1
        // Filled by the replies: a whole-batch reply becomes the output as it is, so nothing is allocated here.
        var outputs = batches.map { _ in Matrix(zeros: 0, hidden) }
        var counts = [Int](repeating: 0, count: (batches.map(\.expert).max() ?? -1) + 1)
        for b in batches { counts[b.expert] = b.rows.rows }
        stats.routed.append((layer, counts))

        var pending = batches.indices.map { Pending(batch: $0, rows: Array(0..<batches[$0].rows.rows)) }
        var partials: [Int: [Int: Matrix]] = [:]  // batch → slice → that slice's partial output
        var excluded = Set<WorkerID>()
        var lastFailure: Failure?
        for attempt in 1...3 {
            let failed: Failure
            do {
                failed = try dispatchOnce(layer: layer, pending: pending, batches: batches, excluded: excluded,
                                          outputs: &outputs, partials: &partials)
            } catch let ClusterError.noHolder(l, e) where lastFailure != nil {
                // The only holder of an expert was the worker that just failed: say both things.
                let names = lastFailure?.workers.compactMap { link.registry[$0]?.name }.joined(separator: ",") ?? "?"
                throw ClusterError.workerLost(worker: names, detail: "\(lastFailure?.reason ?? "failed"); no other live worker holds expert \(e) of layer \(l)")
            }
            if failed.parts.isEmpty { break }
            lastFailure = failed
            guard attempt < 3 else {
                throw ClusterError.workerLost(worker: failed.workers.compactMap { link.registry[$0]?.name }.joined(separator: ","),
                                              detail: failed.reason)
            }
            link.log.warning("re-sending rows of failed workers to other holders",
                             metadata: ["layer": "\(layer)", "reason": "\(failed.reason)"])
            excluded.formUnion(failed.workers)
            // Merge the failed parts per batch: the retry plans each expert once. A batch that lost a slice is
            // recomputed whole (its other slices' partials dropped): rare, and simpler than re-planning one slice.
            var merged: [Int: Set<Int>] = [:]
            for p in failed.parts {
                if p.slice != 0 {
                    partials[p.batch] = nil
                    merged[p.batch, default: []].formUnion(0..<batches[p.batch].rows.rows)
                } else {
                    merged[p.batch, default: []].formUnion(p.rows)
                }
            }
            pending = merged.keys.sorted().map { Pending(batch: $0, rows: (merged[$0] ?? []).sorted()) }
        }
        stats.timings.slowestComputeMs += stats.layerSlowestMs
        stats.layerSlowestMs = 0
        for (b, parts) in partials {
            // Slice order, as MLP sums them in process: out = p0, then out += p1, ...
            guard let first = parts[0] else { throw ClusterError.protocolViolation(peer: "workers", detail: "layer \(layer): slice 1 of an expert never came back") }
            outputs[b] = first
            for s in 1..<slices {
                guard let p = parts[s] else { throw ClusterError.protocolViolation(peer: "workers", detail: "layer \(layer): slice \(s + 1) of an expert never came back") }
                MLP.accumulate(p, into: &outputs[b])
            }
        }
        for (i, b) in batches.enumerated() {
            guard outputs[i].rows == b.rows.rows else {
                throw ClusterError.protocolViolation(peer: "workers", detail: "layer \(layer): \(outputs[i].rows) of expert \(b.expert)'s \(b.rows.rows) rows came back")
            }
            LocalExpertExecutor.scale(&outputs[i], by: b.gates)
        }
        return outputs
    }

    /// The plan's row ranges per worker, except that an expert's rows are not split when a part would be a "few
    /// rows" product: up to 8 rows go through the few-row kernel, more through sgemm, and the two sum in different
    /// orders. Keeping such an expert whole on its largest holder keeps every row's result
    /// bit-identical to the in-process run; large batches (prefill) still split, sgemm on both sides.
    private static func consolidate(_ plan: DispatchPlan, pending: [Pending], index: [ExpertKey: Int]) -> [WorkerID: [Pending]] {
        var out: [WorkerID: [Pending]] = [:]
        for (key, shares) in plan.byExpert.sorted(by: { $0.key < $1.key }) {
            guard let i = index[key], !shares.isEmpty else { continue }
            let rows = pending[i].rows
            if shares.count > 1, shares.contains(where: { $0.rows.count <= BLAS.fewRowsLimit }),
               let biggest = shares.max(by: { ($0.rows.count, $1.worker) < ($1.rows.count, $0.worker) }) {
                out[biggest.worker, default: []].append(Pending(batch: pending[i].batch, rows: rows))
                continue
            }
            for share in shares where !share.rows.isEmpty {
                out[share.worker, default: []].append(Pending(batch: pending[i].batch, rows: Array(rows[share.rows])))
            }
        }
        return out
    }

    /// A slice plan's parts per worker: an expert all of whose slices went to one worker is sent whole (the
    /// worker sums the slices itself, in the same order), otherwise each worker gets its slice (s + 1 on the wire).
    /// Models have at most two slices, so a worker never gets two slices of one expert in one request.
    private static func bySlice(_ plan: SlicePlan, pending: [Pending], index: [ExpertKey: Int], slices: Int)
        -> [(key: WorkerID, value: [Pending])]
    {
        var out: [WorkerID: [Pending]] = [:]
        for (key, workers) in plan.bySlice.sorted(by: { $0.key < $1.key }) {
            guard let i = index[key], let first = workers.first else { continue }
            if slices == 1 || workers.allSatisfy({ $0 == first }) {
                out[first, default: []].append(pending[i])
                continue
            }
            for (s, w) in workers.enumerated() {
                out[w, default: []].append(Pending(batch: pending[i].batch, rows: pending[i].rows, slice: UInt32(s + 1)))
            }
        }
        return out.sorted(by: { $0.key < $1.key })
    }

    /// Plans, sends and collects one round. Returns the parts that failed (worker lost, error reply, timeout).
    private mutating func dispatchOnce(layer: Int, pending: [Pending], batches: [ExpertBatch], excluded: Set<WorkerID>,
                                       outputs: inout [Matrix], partials: inout [Int: [Int: Matrix]]) throws -> Failure {
        let view = routingView()
        var state: [WorkerID: WorkerLoadState] = [:]
        for w in view.live where !excluded.contains(w) {
            state[w] = WorkerLoadState(queuedRows: 0, speed: stats.speed(of: w))
        }
        Kernels.parkPool()
        let planStart = DispatchTime.now().uptimeNanoseconds
        let keyOf = { (p: Pending) in ExpertKey(layer: layer, expert: batches[p.batch].expert) }
        let index = Dictionary(uniqueKeysWithValues: pending.enumerated().map { (keyOf($0.element), $0.offset) })
        let perWorker: [(key: WorkerID, value: [Pending])]
        do {
            let experts = pending.map { JambaScheduler.ExpertRows(expert: keyOf($0), rows: $0.rows.count) }
            // Workers sharing cores take a layer step one at a time, in turn (`step` counts layer calls).
            let groups = excluded.isEmpty ? view.groups : Dispatch.turnTakingGroups(view.hosts.filter { state[$0.key] != nil })
            let assignment = Dispatch.preferOnePerSharedCores(experts: experts, assignment: view.assignment, groups: groups,
                                                              rotation: Int(truncatingIfNeeded: step))
            // Decode: every expert has a few rows and costs what streaming its weights costs; balance expert
            // costs, in slices when the model has them (and on a retry, whole). Prefill: balance rows, splitting
            // large experts between replicas.
            if pending.allSatisfy({ $0.rows.count <= BLAS.fewRowsLimit }) {
                let firstTry = slices > 1 && pending.allSatisfy { $0.slice == 0 }
                let plan = try Dispatch.planSlices(experts: experts, slices: firstTry ? slices : 1, assignment: assignment, state: state)
                perWorker = Self.bySlice(plan, pending: pending, index: index, slices: firstTry ? slices : 1)
                stats.slicedParts += perWorker.reduce(0) { $0 + $1.value.filter { $0.slice != 0 }.count }
            } else {
                let plan = try Dispatch.plan(experts: experts, assignment: assignment, state: state)
                perWorker = Self.consolidate(plan, pending: pending, index: index).sorted(by: { $0.key < $1.key })
            }
        } catch let SchedulerError.noAvailableHolder(key) {
            throw ClusterError.noHolder(layer: key.layer, expert: key.expert)
        }
        var sent: [UInt64: Sent] = [:]
        var failure = Failure()
        let planMs = Self.ms(since: planStart)
        stats.timings.planMs += planMs
        let encodeStart = DispatchTime.now().uptimeNanoseconds
        // Every request is encoded before the first is sent, and then they go out back to back: the first send
        // wakes a worker, which on a machine shared with the workers can take this thread's core, and a request
        // still being encoded then waits (up to a scheduler slice, ~15 ms seen) while its worker idles.
        var outgoing: [(worker: WorkerID, identity: [UInt8], id: UInt64, parts: [Pending], bytes: [UInt8]?)] = []
        for (worker, parts) in perWorker {
            guard let rec = link.registry[worker] else { continue }
            let rows = parts.map { p -> JambaWire.ExpertRows in
                let b = batches[p.batch]
                let m = p.rows.count == b.rows.rows ? b.rows : b.rows.gatherRows(p.rows)
                return JambaWire.ExpertRows(expertID: UInt32(b.expert), rows: m, slice: p.slice)
            }
            let id = link.newRequestID()
            let req = ExpertBatchCodec.makeRequest(requestID: id, stepID: step, layer: UInt32(layer), experts: rows)
            outgoing.append((worker, rec.identity, id, parts, link.encode(.request(req))))
        }
        // Keeping the I/O thread off this CPU guards the sends after the first; one request (workers taking turns)
        // has none, and the two affinity calls cost ~30 µs a layer.
        func sendAll() {
            for o in outgoing {
                link.await(o.id)
                if let encoded = o.bytes, let bytes = link.send(encoded: encoded, to: o.identity) {
                    stats.timings.requestBytes += UInt64(bytes)
                    sent[o.id] = Sent(worker: o.worker, parts: o.parts)
                    link.registry[o.worker]?.inFlight += 1
                } else {
                    link.cancelAwait(o.id)
                    failure.parts += o.parts
                    failure.workers.insert(o.worker)
                    failure.reason = o.bytes == nil ? "request could not be encoded" : "worker unreachable"
                }
            }
        }
        if outgoing.count > 1 { Kernels.keepingThreadsOffThisCPU(named: "ZMQbg/IO", sendAll) } else { sendAll() }
        stats.timings.encodeMs += Self.ms(since: encodeStart) + planMs
        let waitStart = DispatchTime.now().uptimeNanoseconds
        var decodeNanos: UInt64 = 0
        defer { stats.timings.waitMs += Self.ms(since: waitStart) - Double(decodeNanos) / 1e6 }
        let deadline = Date().addingTimeInterval(requestTimeout)
        while !sent.isEmpty {
            for (id, s) in sent {
                if let (_, reply) = link.takeReply(id) {
                    // The last reply: wake the pool's helpers now, so they are spinning by this process's next product.
                    if sent.count == 1 { Kernels.prewakePool() }
                    sent[id] = nil
                    link.registry[s.worker]?.inFlight -= 1
                    let decodeStart = DispatchTime.now().uptimeNanoseconds
                    defer {
                        let d = DispatchTime.now().uptimeNanoseconds - decodeStart
                        decodeNanos += d
                        stats.timings.decodeMs += Double(d) / 1e6
                    }
                    do {
                        try accept(reply, id: id, sent: s, layer: layer, batches: batches, outputs: &outputs, partials: &partials)
                    } catch {
                        link.log.warning("expert reply failed", metadata: ["worker": "\(link.registry[s.worker]?.name ?? "?")", "error": "\(error)"])
                        failure.parts += s.parts
                        failure.workers.insert(s.worker)
                        failure.reason = "\(error)"
                    }
                } else if link.registry[s.worker]?.isUp != true {
                    link.cancelAwait(id)
                    sent[id] = nil
                    failure.parts += s.parts
                    failure.workers.insert(s.worker)
                    failure.reason = "stopped answering (missed heartbeats)"
                }
            }
            if sent.isEmpty { break }
            if Date() > deadline {
                for (id, s) in sent {
                    link.cancelAwait(id)
                    link.registry.markLost(s.worker)
                    failure.parts += s.parts
                    failure.workers.insert(s.worker)
                }
                failure.reason = "no reply within \(requestTimeout) s"
                break
            }
            _ = try poller.poll(timeoutMilliseconds: 20)
            link.drain()
            for lost in link.registry.expire(now: Date()) {
                link.log.warning("worker missed heartbeats; marked lost", metadata: ["worker": "\(lost.name)"])
            }
        }
        return failure
    }

    private func accept(_ reply: Jamba_V1_ExpertBatchReply, id: UInt64, sent: Sent, layer: Int, batches: [ExpertBatch],
                        outputs: inout [Matrix], partials: inout [Int: [Int: Matrix]]) throws {
        let expected = sent.parts.map { (expertID: UInt32(batches[$0.batch].expert), rows: $0.rows.count) }
        let outcomes = try ExpertBatchCodec.decodeReply(reply, requestID: id, layer: UInt32(layer), expected: expected, hidden: hidden)
        for (part, outcome) in zip(sent.parts, outcomes) {
            switch outcome {
            case let .output(m) where part.slice == 0 && part.rows.count == batches[part.batch].rows.rows:
                outputs[part.batch] = m  // all of the batch's rows, in order (as sent): no copy
            case let .output(m) where part.slice == 0:
                if outputs[part.batch].rows != batches[part.batch].rows.rows {
                    outputs[part.batch] = Matrix(zeros: batches[part.batch].rows.rows, hidden)
                }
                scatter(m, into: &outputs[part.batch], rows: part.rows)
            case let .output(m): partials[part.batch, default: [:]][Int(part.slice) - 1] = m  // all rows, in order
            case let .failed(e): throw ClusterError(e)
            }
        }
        // A slice is 1/slices of its expert (the halves are equal up to a 16-column rounding).
        let rows = zip(sent.parts, expected).reduce(0.0) { $0 + Double($1.1.rows) / ($1.0.slice == 0 ? 1 : Double(slices)) }
        stats.served.append((sent.worker, rows, Double(reply.computeMicros) / 1e6))
        stats.timings.workerComputeMs += Double(reply.computeMicros) / 1000
        stats.layerSlowestMs = max(stats.layerSlowestMs, Double(reply.computeMicros) / 1000)
    }

    static func ms(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }

    /// dst[rows[i], :] = src[i, :]
    private func scatter(_ src: Matrix, into dst: inout Matrix, rows: [Int]) {
        let h = hidden
        dst.storage.withUnsafeMutableBufferPointer { d in
            src.storage.withUnsafeBufferPointer { s in
                for (i, r) in rows.enumerated() { (d.baseAddress! + r * h).update(from: s.baseAddress! + i * h, count: h) }
            }
        }
    }
}

