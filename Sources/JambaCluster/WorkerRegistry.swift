// WorkerRegistry: what the coordinator knows of each expert worker (liveness, assignment, held experts, load).
import Foundation
import JambaScheduler
import JambaWire

/// One registered worker as the coordinator sees it.
public struct WorkerRecord: Sendable {
    public enum State: String, Sendable { case joining, live, lost }

    /// The ZeroMQ routing id: unique per worker process.
    public let identity: [UInt8]
    public let id: WorkerID
    public let name: String
    public let address: String
    public var state: State = .joining
    public var slots: Int
    public var threads: Int
    /// Its machine and CPUs (Register.host_id, cpus): workers sharing cores are dispatched one at a time.
    public var host = WorkerHost(host: "", cpus: [], threads: 0)
    /// The experts of the last assignment sent, and its epoch.
    public var assigned: Set<ExpertKey> = []
    public var assignedEpoch: UInt64 = 0
    /// The experts the worker confirmed resident (AssignmentReady), and that epoch.
    public var held: Set<ExpertKey> = []
    public var readyEpoch: UInt64 = 0
    public var lastHeard = Date()
    public var residentBytes: UInt64 = 0
    /// Token rows computed, a slice counting its share of the expert (see `StatsSink.served`).
    public var rowsServed: Double = 0
    public var busyMicros: UInt64 = 0
    /// Expert batch requests sent and not yet answered.
    public var inFlight = 0

    /// Experts a batch may be sent to now: confirmed resident and still assigned (a copy being dropped is not).
    public var routable: Set<ExpertKey> { state == .live ? held.intersection(assigned) : [] }
    public var isUp: Bool { state != .lost }
}

/// All workers, keyed by routing id. A value type: the coordinator's loop is its only writer.
public struct WorkerRegistry: Sendable {
    public private(set) var workers: [WorkerID: WorkerRecord] = [:]
    public let heartbeatTimeout: Double
    /// Bumped whenever what a dispatch may route to changes (a worker's state, host, held or assigned experts,
    /// or a worker added or dropped), so a dispatcher can keep its view of the workers between layer steps.
    /// Load counters (in flight, rows served, last heard) leave it alone.
    public private(set) var routingVersion: UInt64 = 0

    public init(heartbeatTimeout: Double) {
        self.heartbeatTimeout = heartbeatTimeout
    }

    public static func id(of identity: [UInt8]) -> WorkerID {
        // Looked up for every reply, so no String(format:) (Foundation's formatter: ~20 µs a reply in `perf`).
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8](); hex.reserveCapacity(2 * identity.count)
        for b in identity { hex.append(digits[Int(b >> 4)]); hex.append(digits[Int(b & 15)]) }
        return WorkerID(String(decoding: hex, as: UTF8.self))
    }

    public subscript(id: WorkerID) -> WorkerRecord? {
        get { workers[id] }
        set {
            if !Self.sameRouting(workers[id], newValue) { routingVersion &+= 1 }
            workers[id] = newValue
        }
    }

    /// Whether two versions of a record route alike. Cheap when only a load counter changed: the sets then
    /// share their storage, which `==` checks first.
    private static func sameRouting(_ a: WorkerRecord?, _ b: WorkerRecord?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return a.state == b.state && a.host == b.host && a.held == b.held && a.assigned == b.assigned
    }

    public var up: [WorkerRecord] { workers.values.filter(\.isUp).sorted { $0.id < $1.id } }
    public var live: [WorkerRecord] { workers.values.filter { $0.state == .live }.sorted { $0.id < $1.id } }

    /// Adds a worker after a valid Register. A name seen before from a lost worker is a new record: the
    /// process restarted and holds nothing.
    public mutating func register(identity: [UInt8], name: String, address: String, slots: Int, threads: Int,
                                  hostID: String = "", cpus: Set<Int> = [], now: Date) -> WorkerRecord {
        let id = Self.id(of: identity)
        var rec = WorkerRecord(identity: identity, id: id, name: name, address: address, slots: slots, threads: threads, lastHeard: now)
        rec.host = WorkerHost(host: hostID, cpus: cpus, threads: threads)
        workers[id] = rec
        routingVersion &+= 1
        return rec
    }

    /// Longest CPU list a Register may carry: more than any machine this runs on has CPUs.
    public static let maxReportedCPUs = 4096

    /// A Register's CPU list as a set. The list is only a hint for dispatch (which workers share cores), so one
    /// longer than `maxReportedCPUs` counts as unknown (empty) rather than being grouped on every step.
    public static func reportedCPUs(_ cpus: [UInt32]) -> Set<Int> {
        cpus.count <= maxReportedCPUs ? Set(cpus.map { Int($0) }) : []
    }

    /// Marks workers silent for longer than the timeout as lost; returns them.
    public mutating func expire(now: Date) -> [WorkerRecord] {
        var lost: [WorkerRecord] = []
        for (id, w) in workers where w.isUp && now.timeIntervalSince(w.lastHeard) > heartbeatTimeout {
            routingVersion &+= 1
            workers[id]?.state = .lost
            workers[id]?.inFlight = 0
            lost.append(workers[id] ?? w)
        }
        return lost
    }

    public mutating func markLost(_ id: WorkerID) {
        if workers[id] != nil { routingVersion &+= 1 }
        workers[id]?.state = .lost
        workers[id]?.inFlight = 0
    }

    /// Drops lost workers from the table after a grace period so status does not grow without bound.
    public mutating func forget(lostFor seconds: Double, now: Date) {
        let kept = workers.filter { $0.value.isUp || now.timeIntervalSince($0.value.lastHeard) < seconds }
        if kept.count != workers.count { routingVersion &+= 1 }
        workers = kept
    }

    /// Holders a dispatch may use, as a scheduler assignment.
    public var routableAssignment: Assignment {
        var a = Assignment()
        for w in live { for k in w.routable { a.add(k, to: w.id) } }
        return a
    }

    /// What was last sent to the workers that are up.
    public var assignedAssignment: Assignment {
        var a = Assignment()
        for w in up { for k in w.assigned { a.add(k, to: w.id) } }
        return a
    }

    /// Whether every expert has at least one routable holder.
    public func covers(layers: [Int], numExperts: Int) -> Bool {
        var covered = Set<ExpertKey>()
        for w in live { covered.formUnion(w.routable) }
        return covered.count == layers.count * numExperts
    }
}
