// CoordinatorService: the coordinator daemon: non-expert layers for every job, experts on the workers.
import Dispatch
import Foundation
import JambaLoader
import JambaMath
import JambaModel
import JambaScheduler
import JambaTokenizer
import JambaWire
import Logging
import ZeroMQ

/// Settings of `jamba-coordinator`.
public struct CoordinatorSettings: Sendable {
    public var modelDirectory: URL
    public var clientEndpoint: String
    public var workerEndpoint: String
    public var minWorkers = 1
    /// How the non-expert weight matrices are held (workers choose for their experts).
    public var weightsDType: WeightDType = .f32
    public var heartbeatTimeout = 3.5
    public var requestTimeout = 30.0
    public var maxContext: Int?
    public var maxBatch = 64
    public var prefillChunk = 512
    public var spareSlotFraction = 0.25
    /// `balanced` (plan with replicas) or `round-robin` (each expert once; the static baseline).
    public var placementPolicy = "balanced"
    public var statsWindowRows = 2_000
    public var statsWindowSeconds = 30.0
    /// Rebalance by itself when the measured imbalance stays above this (0 = never).
    public var autoRebalanceThreshold = 1.3
    public var autoRebalanceInterval = 15.0
    public var maxMessageBytes = WireCodec.defaultMaxMessageBytes
    /// Largest client request accepted; larger ones get an OVERSIZED error reply. Prompts are small: 16 MiB is plenty.
    public var maxClientMessageBytes = 16 << 20

    public init(modelDirectory: URL, clientEndpoint: String, workerEndpoint: String) {
        self.modelDirectory = modelDirectory
        self.clientEndpoint = clientEndpoint
        self.workerEndpoint = workerEndpoint
    }
}

/// The coordinator. One thread owns both sockets and runs the engine: between engine steps it handles
/// clients and worker control; during a step the remote executor waits on the worker socket only.
public final class CoordinatorService {
    let settings: CoordinatorSettings
    let log: Logger
    let model: JambaModel
    let tokenizer: Tokenizer?
    let fingerprint: String
    let context: ZMQContext
    let clientSocket: Socket
    let link: WorkerLink
    var engine: Engine<RemoteExpertExecutor>
    var placement: PlacementController
    var jobs: [Int: Job] = [:]
    var nextJobID = 1
    var window: RoutingWindow
    var workerWindow: WorkerStatsWindow
    var generated: [(time: Double, count: Int)] = []
    var ready = false
    var needsPlacement = false
    var overThresholdSince: Date?
    let started = Date()

    public init(settings: CoordinatorSettings, logger: Logger) throws {
        self.settings = settings
        log = logger
        let config = try JambaConfig.load(directory: settings.modelDirectory)
        let ck = try Checkpoint(directory: settings.modelDirectory)
        model = try JambaModel(config: config, checkpoint: ck, weightsDType: settings.weightsDType)
        fingerprint = try ModelFingerprint.of(directory: settings.modelDirectory, checkpoint: ck)
        let tokURL = settings.modelDirectory.appendingPathComponent("tokenizer.json")
        tokenizer = FileManager.default.fileExists(atPath: tokURL.path) ? try Tokenizer(directory: settings.modelDirectory) : nil

        context = try ZMQContext()
        clientSocket = try Socket(context, type: .router)
        try clientSocket.set(.routerMandatory(true))
        // A peer whose queue is full must not stall the loop that serves everyone: give up on it after 2 s.
        try clientSocket.set(.sendTimeout(milliseconds: 2000))
        // libzmq drops (and disconnects) only far larger messages; below that the request is read and refused with
        // a typed OVERSIZED reply, so a client learns what went wrong.
        try clientSocket.set(.maxMessageSize(Int64(4 * settings.maxClientMessageBytes)))
        try clientSocket.bind(settings.clientEndpoint)
        let workerSocket = try Socket(context, type: .router)
        try workerSocket.set(.routerMandatory(true))
        try workerSocket.set(.sendTimeout(milliseconds: 2000))
        try workerSocket.set(.maxMessageSize(Int64(settings.maxMessageBytes)))
        try workerSocket.bind(settings.workerEndpoint)
        link = WorkerLink(socket: workerSocket, heartbeatTimeout: settings.heartbeatTimeout, log: logger,
                          maxMessageBytes: settings.maxMessageBytes)

        let layers = config.moeLayers
        guard let policy = PlacementController.Policy(rawValue: settings.placementPolicy) else {
            throw ClusterError.badArgument("unknown placement policy '\(settings.placementPolicy)' (balanced, round-robin)")
        }
        placement = PlacementController(layers: layers, numExperts: config.numExperts, spareFraction: settings.spareSlotFraction,
                                        policy: policy)
        window = try RoutingWindow(layers: layers, numExperts: config.numExperts, maxRows: settings.statsWindowRows,
                                   maxAge: settings.statsWindowSeconds)
        workerWindow = try WorkerStatsWindow(maxAge: settings.statsWindowSeconds)
        let limits = EngineLimits(maxContext: settings.maxContext ?? config.maxPositionEmbeddings,
                                  prefillChunk: settings.prefillChunk, maxBatch: settings.maxBatch)
        let stats = StatsSink()
        self.stats = stats
        let executor = try RemoteExpertExecutor(link: link, hidden: config.hiddenSize,
                                                slices: MLP.sliceBounds(intermediate: config.intermediateSize).count - 1,
                                                requestTimeout: settings.requestTimeout, stats: stats)
        engine = Engine(model: model, executor: executor, limits: limits)
    }

    let stats: StatsSink

    /// Bound endpoints (resolves `*` ports for tests and logs).
    public var endpoints: (client: String, worker: String) {
        ((try? clientSocket.lastEndpoint) ?? settings.clientEndpoint, (try? link.socket.lastEndpoint) ?? settings.workerEndpoint)
    }

    public func run(stop: StopSignal) throws {
        log.info("coordinator started", metadata: [
            "client_endpoint": "\(endpoints.client)", "worker_endpoint": "\(endpoints.worker)",
            "model": "\(settings.modelDirectory.path)", "fingerprint": "\(fingerprint)",
            "moe_layers": "\(model.config.moeLayers.count)", "experts_per_layer": "\(model.config.numExperts)",
            "min_workers": "\(settings.minWorkers)"])
        let poller = Poller()
        let ci = try poller.add(clientSocket)
        let wi = try poller.add(link.socket)
        _ = poller.add(stop.wakeup)
        var lastHousekeeping = Date.distantPast
        while !stop.isSet {
            let busy = ready && !engine.isIdle
            _ = try poller.poll(timeoutMilliseconds: busy ? 0 : 50)
            if poller.readiness(of: wi).contains(.readable) || busy { link.drain() }
            for m in link.takeDeferred() { handleWorker(m) }
            if poller.readiness(of: ci).contains(.readable) {
                while let frames = try clientSocket.receiveMultipart(dontWait: true) { handleClient(frames) }
            }
            let now = Date()
            if now.timeIntervalSince(lastHousekeeping) > 0.2 {
                lastHousekeeping = now
                housekeeping(now)
            }
            if needsPlacement { replan(reason: "membership changed") }
            placement.advance(link: link)
            updateReadiness()
            if ready && !engine.isIdle { runStep() }
        }
        log.info("coordinator stopping on signal", metadata: ["jobs_running": "\(engine.runningCount)", "jobs_queued": "\(engine.waitingCount)"])
        // Running jobs end with an error their clients see; workers keep running and re-register with
        // the next coordinator, so a restart does not need the whole cluster restarted.
        for (id, job) in jobs { fail(jobID: id, job: job, message: "coordinator shutting down") }
    }

    /// One engine step, then its events to the clients and its statistics into the windows.
    func runStep() {
        let stepStart = DispatchTime.now().uptimeNanoseconds
        let expertBefore = stats.timings.expertMs
        let events = engine.step()
        let stepMs = RemoteExpertExecutor.ms(since: stepStart)
        stats.timings.steps += 1
        stats.timings.stepMs += stepMs
        if engine.lastStepDecodeOnly && engine.lastStepRows > 0 {
            stats.timings.decodeSteps += 1
            stats.timings.decodeStepMs += stepMs
            stats.timings.decodeRows += UInt64(engine.lastStepRows)
            stats.timings.decodeExpertMs += stats.timings.expertMs - expertBefore
        }
        let t = Date().timeIntervalSince(started)
        for (layer, counts) in stats.routed {
            var padded = counts
            if padded.count < model.config.numExperts { padded += Array(repeating: 0, count: model.config.numExperts - padded.count) }
            try? window.record(layer: layer, expertCounts: padded, at: t)
        }
        for (w, rows, busy) in stats.served {
            link.registry[w]?.rowsServed += rows
            link.registry[w]?.busyMicros += UInt64(busy * 1e6)
            try? workerWindow.record(worker: w, rows: rows, busySeconds: busy, at: t)
            if let s = workerWindow.speed(of: w, now: t), s > 0 { stats.speed[w] = s }
        }
        stats.routed.removeAll(keepingCapacity: true)
        stats.served.removeAll(keepingCapacity: true)
        var tokens = 0
        for e in events {
            if case .token = e { tokens += 1 }
            deliver(e)
        }
        if tokens > 0 { generated.append((t, tokens)) }
    }

    func housekeeping(_ now: Date) {
        for lost in link.registry.expire(now: now) {
            log.warning("worker lost (missed heartbeats)", metadata: ["worker": "\(lost.name)", "timeout_s": "\(settings.heartbeatTimeout)"])
            placement.abandon()
            needsPlacement = true
        }
        link.registry.forget(lostFor: 300, now: now)
        let t = now.timeIntervalSince(started)
        generated.removeAll { t - $0.time > settings.statsWindowSeconds }
        autoRebalance(now)
    }

    func updateReadiness() {
        let covered = link.registry.covers(layers: model.config.moeLayers, numExperts: model.config.numExperts)
        if covered != ready {
            ready = covered
            if covered {
                log.info("every expert has a live holder: accepting work", metadata: ["workers": "\(link.registry.live.count)"])
            } else {
                log.warning("some experts have no live holder: jobs wait", metadata: ["workers": "\(link.registry.live.count)"])
            }
        }
    }

    /// Plans from the measured loads (uniform before any traffic) and starts applying the plan.
    func replan(reason: String) {
        needsPlacement = false
        guard link.registry.up.count >= settings.minWorkers else {
            log.info("waiting for workers", metadata: ["registered": "\(link.registry.up.count)", "min_workers": "\(settings.minWorkers)"])
            return
        }
        do {
            let (assignment, imbalance) = try placement.membershipPlan(link.registry, loads: currentLoads(), speed: speed)
            log.info("placement", metadata: ["reason": "\(reason)", "policy": "\(placement.policy.rawValue)",
                                             "expected_imbalance": "\(imbalance.map { String(format: "%.3f", $0.worst) } ?? "?")",
                                             "copies": "\(assignment.copyCount)"])
            placement.apply(assignment, imbalance: imbalance, link: link)
        } catch {
            log.error("cannot place experts", metadata: ["error": "\(error)"])
        }
    }

    func speed(_ w: WorkerID) -> Double { stats.speed(of: w) }

    func currentLoads() throws -> LoadTable {
        let t = Date().timeIntervalSince(started)
        let loads = window.loads(now: t)
        if loads.perLayer.allSatisfy({ $0.allSatisfy { $0 == 0 } }) {
            return try LoadTable.uniform(layers: model.config.moeLayers, numExperts: model.config.numExperts)
        }
        // A floor per expert so an expert unseen in the window still counts for something.
        return try LoadTable(layers: loads.layers, perLayer: loads.perLayer.map { row in row.map { $0 + 0.5 } })
    }
}
