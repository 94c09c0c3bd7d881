// RemoteExecutorEquivalenceTests: the model's logits through real workers over ZeroMQ equal the in-process run.
import Foundation
@testable import JambaCluster
import JambaLoader
import JambaMath
import JambaModel
import JambaScheduler
import JambaWire
import Logging
import XCTest
import ZeroMQ

final class RemoteExecutorEquivalenceTests: XCTestCase {
    /// Two in-process WorkerServices (real sockets, real protocol) each holding half of every layer's experts, a
    /// third copy of expert 0 on both (so rows get split between replicas): full-forward logits of a ragged batch
    /// must match the LocalExpertExecutor within 1e-5, and do so exactly for greedy decoding.
    func testRemoteLogitsMatchLocal() throws {
        let pair = try TwoWorkers(fixture: "tiny-b") { w, e in e % 2 == w || e == 0 }
        defer { pair.stop() }
        let (model, ck, link) = (pair.model, pair.checkpoint, pair.link)
        let c = model.config
        let stats = StatsSink()
        let slices = MLP.sliceBounds(intermediate: c.intermediateSize).count - 1
        XCTAssertEqual(slices, 2, "the fixture should have two slices per expert, or slicing goes untested")
        var remote = try RemoteExpertExecutor(link: link, hidden: c.hiddenSize, slices: slices, requestTimeout: 10, stats: stats)
        var local = LocalExpertExecutor(experts: try ExpertStore.load(ExpertStore.allIDs(c), from: ck, config: c))
        let tokens = Array(testPrompts.prefix(4))
        var s1 = tokens.map { _ in SequenceState(config: c) }, s2 = s1
        var scratch = ForwardScratch(config: c)
        let a = try model.forward(tokens: tokens, states: &s1, executor: &remote, options: ForwardOptions(allLogits: true), scratch: &scratch)
        let b = try model.forward(tokens: tokens, states: &s2, executor: &local, options: ForwardOptions(allLogits: true), scratch: &scratch)
        let diff = zip(a.logits.storage, b.logits.storage).map { abs($0 - $1) }.max() ?? 1
        print("[equivalence] remote (2 workers, replicated expert 0) vs local logits over \(a.logits.rows) positions: max |diff| \(diff) (tol 1e-5)")
        XCTAssertEqual(a.logits.rows, b.logits.rows)
        XCTAssertLessThanOrEqual(diff, 1e-5)
        // Then 10 batched greedy decode steps: the same tokens.
        // Decode steps dispatch experts in slices (two workers each computing half of some experts); the sum of
        // the partials must give the in-process logits bit for bit.
        let lastRows = (0..<tokens.count).map { i in tokens[..<i].map(\.count).reduce(0, +) + tokens[i].count - 1 }
        var na = lastRows.map { [Sampler.argmax(a.logits.row($0))] }
        var nb = na
        stats.served.removeAll()
        for _ in 0..<10 {
            let ra = try model.forward(tokens: na, states: &s1, executor: &remote, scratch: &scratch)
            let rb = try model.forward(tokens: nb, states: &s2, executor: &local, scratch: &scratch)
            na = (0..<tokens.count).map { [Sampler.argmax(ra.logits.row($0))] }
            nb = (0..<tokens.count).map { [Sampler.argmax(rb.logits.row($0))] }
            XCTAssertEqual(na, nb)
            let stepDiff = zip(ra.logits.storage, rb.logits.storage).map { abs($0 - $1) }.max() ?? 1
            XCTAssertEqual(stepDiff, 0, "decode step logits differ from in-process by \(stepDiff)")
        }
        print("[equivalence] decode: \(stats.slicedParts) expert slices computed apart; logits bit-identical to in-process")
        // Rows served count a slice as its share of the expert: over the 10 steps they add up to tokens × top-k ×
        // MoE layers exactly, however the experts were split.
        let served = stats.served.reduce(0.0) { $0 + $1.rows }
        let routed = Double(10 * tokens.count * c.numExpertsPerTok * c.moeLayers.count)
        print("[equivalence] decode rows served \(served), rows routed \(routed) (must be equal)")
        XCTAssertEqual(served, routed, accuracy: 1e-9)
        XCTAssertGreaterThan(stats.slicedParts, 0, "no expert was split into slices: the sliced path went untested")
    }
}

extension RemoteExecutorEquivalenceTests {
    /// Two workers reporting the same host and CPU, each holding every expert: every layer step goes whole to one
    /// of them (nothing is split between them), they take turns, and the logits stay bit-identical to in-process.
    func testWorkersSharingCoresTakeLayerStepsInTurn() throws {
        let pair = try TwoWorkers(fixture: "tiny-b", host: { _ in ("host-a", [0]) }) { _, _ in true }
        defer { pair.stop() }
        let c = pair.model.config
        let stats = StatsSink()
        var bytesBefore: UInt64 = 0
        try pair.lockstep(stats: stats, before: { _ in
            stats.served.removeAll()
            bytesBefore = stats.timings.requestBytes
        }, after: { step, rows in
            // One worker gets each whole layer step, so every token travels once per MoE layer, not once per expert
            // (top-k): the requests hold a little more than the tokens' f32 bytes, well under twice.
            let tokenBytes = Double(c.moeLayers.count * rows * c.hiddenSize * 4)
            let sent = Double(stats.timings.requestBytes - bytesBefore)
            if step < 2 { print("[equivalence] step \(step): \(rows) rows, requests \(Int(sent)) B for \(Int(tokenBytes)) B of token rows") }
            XCTAssertGreaterThanOrEqual(sent, tokenBytes, "step \(step)")
            XCTAssertLessThan(sent, 1.25 * tokenBytes, "step \(step): tokens sent more than once per layer?")
            // One reply per MoE layer, so one worker per layer call; consecutive calls alternate.
            let order = stats.served.map(\.worker)
            XCTAssertEqual(order.count, c.moeLayers.count, "step \(step): \(order.count) replies for \(c.moeLayers.count) MoE layers")
            XCTAssertEqual(Set(order).count, min(2, c.moeLayers.count), "step \(step): both workers should take turns")
            for (a, b) in zip(order, order.dropFirst()) { XCTAssertNotEqual(a, b, "step \(step): one worker took two layers in a row") }
        })
        print("[equivalence] workers sharing cores: every layer step went whole to one worker, in turn; logits bit-identical")
        XCTAssertEqual(stats.slicedParts, 0, "an expert was split between workers that share cores")
    }
}

extension RemoteExecutorEquivalenceTests {
    /// The registry believes the right worker holds every expert, but it holds only the odd ones (a reassignment
    /// race): its replies fail the even experts with UNKNOWN_EXPERT, and those replies' parts are re-sent to the left
    /// worker, which holds all. The sums that come back from the retries must still give the in-process logits.
    func testPartsAWorkerFailsAreRetriedAndTheSumsStayExact() throws {
        let pair = try TwoWorkers(fixture: "tiny-b") { w, e in w == 0 || e % 2 == 1 }
        defer { pair.stop() }
        let (c, link) = (pair.model.config, pair.link)
        let all = Set(c.moeLayers.flatMap { l in (0..<c.numExperts).map { ExpertKey(layer: l, expert: $0) } })
        for w in link.registry.live { link.registry[w.id]?.held = all; link.registry[w.id]?.assigned = all }
        let stats = StatsSink()
        let maxDiff = try pair.lockstep(stats: stats)
        print("[equivalence] \(stats.resentParts) expert parts re-sent after UNKNOWN_EXPERT; logits max |diff| \(maxDiff)")
        XCTAssertGreaterThan(stats.resentParts, 0, "no part was re-sent: the retry path went untested")
    }
}

/// Two in-process WorkerServices on real sockets behind a test-held ROUTER, registered with `host` and holding,
/// in every MoE layer, the experts `holds(worker, expert)` says.
private struct TwoWorkers {
    let model: JambaModel
    let checkpoint: Checkpoint
    let link: WorkerLink
    private let ctx: ZMQContext
    private let router: Socket
    private let signal: StopSignal

    init(fixture: String, host: (Int) -> (String, Set<Int>) = { _ in ("", []) }, holds: (Int, Int) -> Bool) throws {
        let dir = URL(fileURLWithPath: ClusterHarness.fixture(fixture))
        (model, checkpoint) = try JambaModel.load(directory: dir)
        let c = model.config
        ctx = try ZMQContext()
        router = try Socket(ctx, type: .router)
        try router.set(.routerMandatory(true))
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        var logger = Logger(label: "test")
        logger.logLevel = .error
        link = WorkerLink(socket: router, heartbeatTimeout: 10, log: logger, maxMessageBytes: WireCodec.defaultMaxMessageBytes)

        signal = try StopSignal()
        for name in ["left", "right"] {
            // Each service is created on its own thread: its socket belongs to the thread that uses it.
            let settings = WorkerSettings(modelDirectory: dir, coordinator: endpoint, name: name, threads: 1)
            let (log, stop) = (logger, signal)
            Thread { try? WorkerService(settings: settings, logger: log).run(stop: stop) }.start()
        }

        // Register both (in arrival order: worker 0 and 1), then send each its experts.
        let poller = Poller()
        _ = try poller.add(router)
        var ids: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(20)
        while ids.count < 2 && Date() < deadline {
            _ = try poller.poll(timeoutMilliseconds: 100)
            link.drain()
            for m in link.takeDeferred() {
                guard case .register(let r) = m.message.msg else { continue }
                let (hostID, cpus) = host(ids.count)
                _ = link.registry.register(identity: m.identity, name: r.workerName, address: "", slots: 64, threads: 1,
                                           hostID: hostID, cpus: cpus, now: Date())
                ids.append(m.identity)
            }
        }
        XCTAssertEqual(ids.count, 2)
        for (w, identity) in ids.enumerated() {
            var keys = Set<ExpertKey>()
            for l in c.moeLayers { for e in 0..<c.numExperts where holds(w, e) { keys.insert(ExpertKey(layer: l, expert: e)) } }
            let id = WorkerRegistry.id(of: identity)
            link.registry[id]?.assigned = keys
            link.registry[id]?.assignedEpoch = 1
            link.send(.assignment(WireConversions.assignment(epoch: 1, experts: keys)), to: identity)
        }
        var ready = 0
        while ready < 2 && Date() < deadline {
            _ = try poller.poll(timeoutMilliseconds: 100)
            link.drain()
            for m in link.takeDeferred() {
                guard case .ready(let r) = m.message.msg else { continue }
                let id = WorkerRegistry.id(of: m.identity)
                link.registry[id]?.held = WireConversions.keys(r.held)
                link.registry[id]?.readyEpoch = r.epoch
                link.registry[id]?.state = .live
                ready += 1
            }
        }
        XCTAssertTrue(link.registry.covers(layers: c.moeLayers, numExperts: c.numExperts))
    }

    /// A remote executor over these workers (decode balanced in the model's slices) and the in-process reference.
    func executors(stats: StatsSink) throws -> (remote: RemoteExpertExecutor, local: LocalExpertExecutor) {
        let c = model.config
        let slices = MLP.sliceBounds(intermediate: c.intermediateSize).count - 1
        return (try RemoteExpertExecutor(link: link, hidden: c.hiddenSize, slices: slices, requestTimeout: 10, stats: stats),
                LocalExpertExecutor(experts: try ExpertStore.load(ExpertStore.allIDs(c), from: checkpoint, config: c)))
    }

    /// Six forward passes (four prompts, then their greedy tokens) through the workers and in process side by side,
    /// asserting each step's logits bit-identical and its greedy tokens equal. `before(step)` and `after(step, rows)`
    /// run around each remote pass, for a test to look at what it sent. Returns the largest difference seen.
    @discardableResult
    func lockstep(stats: StatsSink, before: (Int) -> Void = { _ in }, after: (Int, Int) -> Void = { _, _ in }) throws -> Float {
        let c = model.config
        var (remote, local) = try executors(stats: stats)
        let tokens = Array(testPrompts.prefix(4))
        var s1 = tokens.map { _ in SequenceState(config: c) }, s2 = s1
        var scratch = ForwardScratch(config: c)
        var na = tokens, nb = tokens
        var maxDiff: Float = 0
        for step in 0..<6 {
            before(step)
            let ra = try model.forward(tokens: na, states: &s1, executor: &remote, scratch: &scratch)
            after(step, na.map(\.count).reduce(0, +))
            let rb = try model.forward(tokens: nb, states: &s2, executor: &local, scratch: &scratch)
            let diff = zip(ra.logits.storage, rb.logits.storage).map { abs($0 - $1) }.max() ?? 1
            maxDiff = max(maxDiff, diff)
            XCTAssertEqual(diff, 0, "step \(step): logits differ from in-process by \(diff)")
            na = (0..<tokens.count).map { [Sampler.argmax(ra.logits.row($0))] }
            nb = (0..<tokens.count).map { [Sampler.argmax(rb.logits.row($0))] }
            XCTAssertEqual(na, nb, "step \(step)")
        }
        return maxDiff
    }

    func stop() {
        signal.trigger()
        router.close()
        ctx.shutdown()
    }
}
