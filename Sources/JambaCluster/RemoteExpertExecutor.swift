// RemoteExpertExecutor: the ExpertExecutor that runs each MoE layer's experts on the workers over ZeroMQ.
import Dispatch
import Foundation
import JambaMath
import JambaModel
import JambaScheduler
import JambaWire
import ZeroMQ

/// Per MoE layer: split each expert's rows among its live holders (least-loaded first, by measured speed), or at
/// decode give each slice of each expert (`MLP.sliceBounds`) to one holder, send each worker ONE request with each
/// token it needs once, wait for every reply, and add up the layer's output. A worker gates and sums its whole
/// experts per token (`MoECombine`, as in process); a slice comes back ungated, and here the slices are summed in
/// slice order (as the in-process expert sums them) and then gated. At top-2 every token's output is then the same
/// float operations as in process, however the experts were spread. Rows of a worker that fails or is lost are
/// re-sent to another holder; if an expert has no holder left, the step fails with an error naming it.
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

    /// One worker's request in flight: for each expert in it, the batch and the row indices it carries, and the
    /// layer's tokens it sent (ascending), which its `combined` reply answers row for row.
    private struct Sent {
        let worker: WorkerID
        let parts: [Pending]
        let tokens: [Int]
        /// Position among the layer's requests: contributions are added in this order, whatever order replies came in.
        let order: Int
    }

    /// What a layer's replies have brought so far.
    private struct Collected {
        /// Each accepted reply's per-token sum, with the layer's tokens it covers.
        var contributions: [(order: Int, tokens: [Int], sum: Matrix)] = []
        /// batch → slice → that slice's ungated partial, for all of the batch's rows.
        var partials: [Int: [Int: Matrix]] = [:]
        /// Rows of each batch computed whole (a sliced batch counts when its last slice is summed).
        var rowsDone: [Int]
        var requests = 0
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

    mutating func run(layer: Int, x: Matrix, batches: [ExpertBatch], into out: inout Matrix) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { stats.timings.expertMs += Self.ms(since: start) }
        step += 1
        var counts = [Int](repeating: 0, count: (batches.map(\.expert).max() ?? -1) + 1)
        for b in batches { counts[b.expert] = b.tokens.count }
        stats.routed.append((layer, counts))

        var pending = batches.indices.map { Pending(batch: $0, rows: Array(batches[$0].tokens.indices)) }
        var got = Collected(rowsDone: [Int](repeating: 0, count: batches.count))
        var excluded = Set<WorkerID>()
        var lastFailure: Failure?
        for attempt in 1...3 {
            let failed: Failure
            do {
                failed = try dispatchOnce(layer: layer, x: x, pending: pending, batches: batches, excluded: excluded, got: &got)
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
            stats.resentParts += failed.parts.count
            // Merge the failed parts per batch: the retry plans each expert once. A batch that lost a slice is
            // recomputed whole (its other slices' partials dropped): rare, and simpler than re-planning one slice.
            var merged: [Int: Set<Int>] = [:]
            for p in failed.parts {
                if p.slice != 0 {
                    got.partials[p.batch] = nil
                    merged[p.batch, default: []].formUnion(batches[p.batch].tokens.indices)
                } else {
                    merged[p.batch, default: []].formUnion(p.rows)
                }
            }
            pending = merged.keys.sorted().map { Pending(batch: $0, rows: (merged[$0] ?? []).sorted()) }
        }
        stats.timings.slowestComputeMs += stats.layerSlowestMs
        stats.layerSlowestMs = 0
        try assemble(got, layer: layer, rows: x.rows, batches: batches, into: &out)
    }

    /// The layer's output from its replies: each reply's per-token sums in request order, then each sliced expert's
    /// slices summed in slice order (as `MLP` sums them in process) and gated. One reply covering every token, in
    /// order, is the output as it is (workers taking turns).
    private func assemble(_ got: Collected, layer: Int, rows: Int, batches: [ExpertBatch], into out: inout Matrix) throws {
        var done = got.rowsDone
        var sliced: [(batch: Int, sum: Matrix)] = []
        for (b, parts) in got.partials.sorted(by: { $0.key < $1.key }) {
            guard var sum = parts[0] else { throw ClusterError.protocolViolation(peer: "workers", detail: "layer \(layer): slice 1 of an expert never came back") }
            for s in 1..<slices {
                guard let p = parts[s] else { throw ClusterError.protocolViolation(peer: "workers", detail: "layer \(layer): slice \(s + 1) of an expert never came back") }
                MLP.accumulate(p, into: &sum)
            }
            LocalExpertExecutor.scale(&sum, by: batches[b].gates)
            sliced.append((b, sum))
            done[b] += batches[b].tokens.count
        }
        for (b, batch) in batches.enumerated() where done[b] != batch.tokens.count {
            throw ClusterError.protocolViolation(peer: "workers", detail: "layer \(layer): \(done[b]) of expert \(batch.expert)'s \(batch.tokens.count) rows came back")
        }
        let contributions = got.contributions.sorted { $0.order < $1.order }
        if sliced.isEmpty, contributions.count == 1, contributions[0].tokens.count == rows {
            out = contributions[0].sum  // [T, H], every token in order: no copy
            return
        }
        out = Matrix(zeros: rows, hidden)
        let h = hidden
        out.storage.withUnsafeMutableBufferPointer { o in
            for c in contributions {
                c.sum.storage.withUnsafeBufferPointer { src in
                    for (i, t) in c.tokens.enumerated() {
                        let d = o.baseAddress! + t * h, s = src.baseAddress! + i * h
                        for k in 0..<h { d[k] += s[k] }
                    }
                }
            }
            for (b, sum) in sliced {
                sum.storage.withUnsafeBufferPointer { src in
                    for (i, t) in batches[b].tokens.enumerated() {
                        let d = o.baseAddress! + t * h, s = src.baseAddress! + i * h
                        for k in 0..<h { d[k] += s[k] }
                    }
                }
            }
        }
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
    private mutating func dispatchOnce(layer: Int, x: Matrix, pending: [Pending], batches: [ExpertBatch],
                                       excluded: Set<WorkerID>, got: inout Collected) throws -> Failure {
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
        var outgoing: [(worker: WorkerID, identity: [UInt8], id: UInt64, sent: Sent, bytes: [UInt8]?)] = []
        var local = [Int](repeating: -1, count: x.rows)  // layer token → row of this request's tokens
        for (worker, parts) in perWorker {
            guard let rec = link.registry[worker] else { continue }
            // The tokens any of this worker's parts read, each once, ascending.
            var tokens: [Int] = []
            for p in parts { for r in p.rows { let t = batches[p.batch].tokens[r]; if local[t] < 0 { local[t] = 0; tokens.append(t) } } }
            tokens.sort()
            for (i, t) in tokens.enumerated() { local[t] = i }
            let wire = parts.map { p -> ExpertPart in
                let b = batches[p.batch]
                // Ascending: a batch's tokens and a part's rows both are.
                let rows = p.rows.map { local[b.tokens[$0]] }
                return p.slice == 0
                    ? ExpertPart(expertID: UInt32(b.expert), tokenRows: rows, gates: p.rows.map { b.gates[$0] }, ranks: p.rows.map { b.ranks[$0] })
                    : ExpertPart(expertID: UInt32(b.expert), slice: p.slice, tokenRows: rows)
            }
            let id = link.newRequestID()
            let input = tokens.count == x.rows ? x : x.gatherRows(tokens)  // [tokens, H]
            let req = ExpertBatchCodec.makeRequest(requestID: id, stepID: step, layer: UInt32(layer), tokens: input, parts: wire)
            for t in tokens { local[t] = -1 }
            outgoing.append((worker, rec.identity, id, Sent(worker: worker, parts: parts, tokens: tokens, order: got.requests),
                             link.encode(.request(req))))
            got.requests += 1
        }
        // Keeping the I/O thread off this CPU guards the sends after the first; one request (workers taking turns)
        // has none, and the two affinity calls cost ~30 µs a layer.
        func sendAll() {
            for o in outgoing {
                link.await(o.id)
                if let encoded = o.bytes, let bytes = link.send(encoded: encoded, to: o.identity) {
                    stats.timings.requestBytes += UInt64(bytes)
                    sent[o.id] = o.sent
                    link.registry[o.worker]?.inFlight += 1
                } else {
                    link.cancelAwait(o.id)
                    failure.parts += o.sent.parts
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
                        try accept(reply, id: id, sent: s, layer: layer, batches: batches, got: &got)
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
                        got: inout Collected) throws {
        let expected = sent.parts.map { (expertID: UInt32(batches[$0.batch].expert), rows: $0.rows.count, slice: $0.slice) }
        let decoded = try ExpertBatchCodec.decodeReply(reply, requestID: id, layer: UInt32(layer), expected: expected,
                                                       tokens: sent.tokens.count, hidden: hidden)
        // Any failed expert fails the whole reply (its parts are all re-sent), so nothing is taken from it first.
        for outcome in decoded.outcomes { if case let .failed(e) = outcome { throw ClusterError(e) } }
        for (part, outcome) in zip(sent.parts, decoded.outcomes) {
            switch outcome {
            case .combined: got.rowsDone[part.batch] += part.rows.count
            case let .partial(m): got.partials[part.batch, default: [:]][Int(part.slice) - 1] = m  // all rows, in order
            case .failed: break
            }
        }
        if let sum = decoded.combined { got.contributions.append((sent.order, sent.tokens, sum)) }
        // A slice is 1/slices of its expert (the halves are equal up to a 16-column rounding).
        let rows = zip(sent.parts, expected).reduce(0.0) { $0 + Double($1.1.rows) / ($1.0.slice == 0 ? 1 : Double(slices)) }
        stats.served.append((sent.worker, rows, Double(reply.computeMicros) / 1e6))
        stats.timings.workerComputeMs += Double(reply.computeMicros) / 1000
        stats.layerSlowestMs = max(stats.layerSlowestMs, Double(reply.computeMicros) / 1000)
    }

    static func ms(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
}
