// WorkerService: the expert-worker daemon's loop: register, load the assignment, serve batches, heartbeat.
import Foundation
import JambaLoader
import JambaMath
import JambaModel
import JambaWire
import Logging
import ZeroMQ

/// Settings of `jamba-worker`.
public struct WorkerSettings: Sendable {
    public var modelDirectory: URL
    public var coordinator: String
    public var name: String
    public var threads: Int
    /// Expert slots offered to the scheduler (one slot = one expert of one layer); nil = from free memory.
    public var expertSlots: Int?
    /// How experts are held: bf16 halves their memory, so the same machine offers twice the slots.
    public var weightsDType: WeightDType = .f32
    public var heartbeatInterval: Double = 1.0
    /// Re-register when the coordinator has not acknowledged a heartbeat for this long (it restarted).
    public var coordinatorSilence: Double = 5.0
    public var maxMessageBytes = WireCodec.defaultMaxMessageBytes

    public init(modelDirectory: URL, coordinator: String, name: String, threads: Int, expertSlots: Int? = nil) {
        self.modelDirectory = modelDirectory
        self.coordinator = coordinator
        self.name = name
        self.threads = threads
        self.expertSlots = expertSlots
    }
}

/// The worker daemon. One thread owns the socket; expert loading runs on a helper thread and reports back
/// through a mailbox, so the worker keeps serving while it loads a new assignment.
public final class WorkerService {
    private let settings: WorkerSettings
    private var core: WorkerCore
    private let fingerprint: String
    private let log: Logger
    private let context: ZMQContext
    private let socket: Socket
    private let loads: Mailbox<LoadResult>
    private var loadingEpoch: UInt64?
    private var pendingAssignment: (epoch: UInt64, experts: Set<ExpertID>)?
    private var registered = false
    private var lastAck = Date()
    private var lastRegister = Date.distantPast

    private enum LoadResult: Sendable {
        case loaded(ExpertStore, epoch: UInt64)
        case failed(String, epoch: UInt64)
    }

    public init(settings: WorkerSettings, logger: Logger) throws {
        self.settings = settings
        log = logger
        let config = try JambaConfig.load(directory: settings.modelDirectory)
        let checkpoint = try Checkpoint(directory: settings.modelDirectory)
        core = WorkerCore(config: config, checkpoint: checkpoint, weightsDType: settings.weightsDType)
        fingerprint = try ModelFingerprint.of(directory: settings.modelDirectory, checkpoint: checkpoint)
        context = try ZMQContext()
        socket = try Socket(context, type: .dealer)
        // A fresh routing id per process: a restarted worker is a new peer, never mistaken for the old one.
        try socket.set(.routingID(Array("\(settings.name)#\(UUID().uuidString.prefix(8))".utf8)))
        try socket.set(.maxMessageSize(Int64(settings.maxMessageBytes)))
        try socket.connect(settings.coordinator)
        loads = try Mailbox()
    }

    /// Serves until SIGINT/SIGTERM (`stop`), then returns after the batch in hand is answered.
    public func run(stop: StopSignal) throws {
        log.info("worker started", metadata: ["name": "\(settings.name)", "coordinator": "\(settings.coordinator)",
                                              "model": "\(settings.modelDirectory.path)", "fingerprint": "\(fingerprint)"])
        let poller = Poller()
        let sock = try poller.add(socket)
        _ = poller.add(loads.wakeup)
        _ = poller.add(stop.wakeup)
        var lastBeat = Date.distantPast
        try register()
        while !stop.isSet {
            _ = try poller.poll(timeoutMilliseconds: 100)
            if poller.readiness(of: sock).contains(.readable) {
                while let frames = try socket.receiveMultipart(dontWait: true) {
                    if try !handle(frames) { return }
                }
            }
            loads.wakeup.drain()
            for result in loads.drain() { try finishLoad(result) }
            let now = Date()
            if !registered && now.timeIntervalSince(lastRegister) > 2 { try register() }
            if registered && now.timeIntervalSince(lastAck) > settings.coordinatorSilence {
                log.warning("coordinator silent; registering again", metadata: ["seconds": "\(Int(now.timeIntervalSince(lastAck)))"])
                registered = false
                try register()
            }
            if now.timeIntervalSince(lastBeat) >= settings.heartbeatInterval {
                lastBeat = now
                try send(.heartbeat(heartbeat()))
            }
        }
        log.info("worker stopping on signal", metadata: ["rows_served": "\(core.rowsServed)"])
    }

    private func heartbeat() -> Jamba_V1_Heartbeat {
        var hb = Jamba_V1_Heartbeat()
        hb.queueDepth = 0
        hb.residentBytes = UInt64(core.store.residentBytes)
        hb.rowsServed = core.rowsServed
        hb.busyMicros = core.busyMicros
        hb.epoch = core.epoch
        return hb
    }

    private func register() throws {
        var r = Jamba_V1_Register()
        r.protocolVersion = jambaProtocolVersion
        r.modelFingerprint = fingerprint
        r.workerName = settings.name
        r.address = ProcessInfo.processInfo.hostName
        r.hostID = Self.hostID
        r.cpus = (Kernels.allowedCPUs ?? []).map { UInt32($0) }
        var cap = Jamba_V1_WorkerCapacity()
        cap.memoryBytes = UInt64(ProcessInfo.processInfo.physicalMemory)
        cap.threads = UInt32(settings.threads)
        cap.expertSlots = UInt32(settings.expertSlots ?? defaultSlots())
        r.capacity = cap
        lastRegister = Date()
        try send(.register(r))
    }

    /// The machine: Linux's boot id is shared by every process and container on one kernel, so it also tells
    /// apart two hosts that happen to have the same name; elsewhere the host name.
    static let hostID: String = {
        if let id = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) {
            let trimmed = id.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { return "boot:" + trimmed }
        }
        return "name:" + ProcessInfo.processInfo.hostName
    }()

    /// Slots that fit in 80% of physical memory at this model's f32 expert size.
    private func defaultSlots() -> Int {
        let c = core.config
        let bytesPerExpert = max(1, 3 * c.hiddenSize * c.intermediateSize * settings.weightsDType.byteSize)
        let fit = Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.8) / bytesPerExpert
        return max(1, min(fit, c.moeLayers.count * c.numExperts))
    }

    private func send(_ msg: Jamba_V1_WorkerToCoordinator.OneOf_Msg) throws {
        var env = Jamba_V1_WorkerToCoordinator()
        env.msg = msg
        try socket.send([try env.serialized(maxBytes: settings.maxMessageBytes)])
    }

    /// Handles one message from the coordinator; returns false when told to shut down for good.
    private func handle(_ frames: [[UInt8]]) throws -> Bool {
        guard frames.count == 1 else {
            log.warning("dropping message with \(frames.count) frames (expected 1)")
            try send(.error(Jamba_V1_Error(code: .malformed, message: "worker expects 1 frame, got \(frames.count)")))
            return true
        }
        let env: Jamba_V1_CoordinatorToWorker
        do {
            env = try Jamba_V1_CoordinatorToWorker.parse(frames[0], maxBytes: settings.maxMessageBytes)
        } catch {
            log.warning("malformed message from coordinator", metadata: ["error": "\(error)"])
            try send(.error(error.asProto()))
            return true
        }
        switch env.msg {
        case .request(let req):
            Kernels.prewakePool()  // the helpers wake while the request's tensors are decoded
            let reply = core.serve(req, queueMicros: 0)
            // The pool's helpers stop spinning now: the coordinator's next layers run on these cores.
            Kernels.parkPool()
            try send(.reply(reply))
        case .assignment(let a):
            registered = true
            lastAck = Date()
            try startLoad(a)
        case .heartbeatAck:
            lastAck = Date()
        case .error(let e):
            log.error("coordinator refused us", metadata: ["code": "\(e.code)", "message": "\(e.message)"])
            switch e.code {
            case .fingerprintMismatch, .unsupportedVersion:
                throw ClusterError(e)
            default:
                registered = false  // e.g. a restarted coordinator that does not know us: register again
                lastRegister = .distantPast
            }
        case .shutdown(let s):
            log.info("coordinator asked us to shut down", metadata: ["reason": "\(s.reason)"])
            return false
        case nil:
            break
        }
        return true
    }

    private func startLoad(_ a: Jamba_V1_Assignment) throws {
        let wanted: Set<ExpertID>
        do { wanted = try core.experts(of: a) } catch {
            log.error("bad assignment", metadata: ["error": "\(error)"])
            try send(.error(Jamba_V1_Error(code: .invalidArgument, message: "\(error)")))
            return
        }
        if a.epoch == core.epoch && Set(core.store.ids) == wanted {
            try sendReady()  // a repeated assignment (coordinator restarted): nothing to load
            return
        }
        if loadingEpoch != nil {
            pendingAssignment = (a.epoch, wanted)  // load after the current one finishes
            return
        }
        launchLoad(epoch: a.epoch, wanted: wanted)
    }

    private func launchLoad(epoch: UInt64, wanted: Set<ExpertID>) {
        loadingEpoch = epoch
        log.info("loading assignment", metadata: ["epoch": "\(epoch)", "experts": "\(wanted.count)"])
        let current = core.store, ck = core.checkpoint, config = core.config, mailbox = loads
        Thread.detachNewThread {
            do {
                let store = try WorkerCore.load(wanted, reusing: current, checkpoint: ck, config: config)
                mailbox.post(.loaded(store, epoch: epoch))
            } catch {
                mailbox.post(.failed("\(error)", epoch: epoch))
            }
        }
    }

    private func finishLoad(_ result: LoadResult) throws {
        loadingEpoch = nil
        switch result {
        case let .loaded(store, epoch):
            core.install(store, epoch: epoch)
            log.info("assignment loaded", metadata: ["epoch": "\(epoch)", "experts": "\(store.experts.count)",
                                                     "resident_mb": "\(store.residentBytes >> 20)"])
            try sendReady()
        case let .failed(message, epoch):
            log.error("loading assignment failed", metadata: ["epoch": "\(epoch)", "error": "\(message)"])
            try send(.error(Jamba_V1_Error(code: .internal, message: "loading assignment \(epoch) failed: \(message)")))
        }
        if let next = pendingAssignment {
            pendingAssignment = nil
            launchLoad(epoch: next.epoch, wanted: next.experts)
        }
    }

    private func sendReady() throws {
        var r = Jamba_V1_AssignmentReady()
        r.epoch = core.epoch
        r.residentBytes = UInt64(core.store.residentBytes)
        r.held = core.heldLayers
        try send(.ready(r))
    }

    deinit {
        socket.close()
        context.shutdown()
    }
}
