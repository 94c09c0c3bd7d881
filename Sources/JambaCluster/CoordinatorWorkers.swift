// CoordinatorWorkers: the coordinator's handling of worker control messages (register, ready, errors).
import Foundation
import JambaScheduler
import JambaWire

extension CoordinatorService {
    func handleWorker(_ m: WorkerMessage) {
        let id = WorkerRegistry.id(of: m.identity)
        switch m.message.msg {
        case .register(let r):
            register(r, identity: m.identity)
        case .ready(let r):
            guard link.registry[id]?.isUp == true else { return refuseUnknown(m.identity) }
            let held = WireConversions.keys(r.held)
            link.registry[id]?.held = held
            link.registry[id]?.readyEpoch = r.epoch
            link.registry[id]?.residentBytes = r.residentBytes
            if link.registry[id]?.state == .joining && r.epoch == link.registry[id]?.assignedEpoch {
                link.registry[id]?.state = .live
            }
            log.info("worker ready", metadata: ["worker": "\(link.registry[id]?.name ?? "?")", "epoch": "\(r.epoch)",
                                                "experts": "\(held.count)", "resident_mb": "\(r.residentBytes >> 20)"])
        case .heartbeat:
            // A heartbeat from a worker we do not know: we restarted, or it was declared lost. Ask it to register.
            refuseUnknown(m.identity)
        case .error(let e):
            log.warning("worker reported an error", metadata: ["worker": "\(link.registry[id]?.name ?? "unknown peer")",
                                                               "code": "\(e.code)", "message": "\(e.message)"])
        case .reply, nil:
            break
        }
    }

    private func refuseUnknown(_ identity: [UInt8]) {
        link.send(.error(Jamba_V1_Error(code: .notReady, message: "unknown worker: register first")), to: identity)
    }

    private func register(_ r: Jamba_V1_Register, identity: [UInt8]) {
        guard r.protocolVersion == jambaProtocolVersion else {
            log.warning("refused worker: protocol version", metadata: ["worker": "\(r.workerName)", "version": "\(r.protocolVersion)"])
            link.send(.error(Jamba_V1_Error(code: .unsupportedVersion,
                message: "protocol version \(r.protocolVersion) not supported; this coordinator speaks \(jambaProtocolVersion)")), to: identity)
            return
        }
        guard r.modelFingerprint == fingerprint else {
            log.warning("refused worker: different model", metadata: ["worker": "\(r.workerName)", "fingerprint": "\(r.modelFingerprint)"])
            link.send(.error(Jamba_V1_Error(code: .fingerprintMismatch,
                message: "model fingerprint \(r.modelFingerprint) differs from the coordinator's \(fingerprint): load the same checkpoint")), to: identity)
            return
        }
        let id = WorkerRegistry.id(of: identity)
        if link.registry[id]?.isUp == true {
            // Re-registration of a known, live process (it lost our acks): resend its assignment.
            if let w = link.registry[id] { resendAssignment(w) }
            return
        }
        let slots = max(1, Int(r.capacity.expertSlots))
        let cpus = WorkerRegistry.reportedCPUs(r.cpus)
        if cpus.isEmpty && !r.cpus.isEmpty {
            log.warning("worker reported too many CPUs; treating its CPUs as unknown", metadata: ["worker": "\(r.workerName)", "count": "\(r.cpus.count)"])
        }
        let rec = link.registry.register(identity: identity, name: r.workerName.isEmpty ? "worker" : r.workerName,
                                         address: r.address, slots: slots, threads: Int(r.capacity.threads),
                                         hostID: String(r.hostID.prefix(256)), cpus: cpus, now: Date())
        log.info("worker registered", metadata: ["worker": "\(rec.name)", "address": "\(rec.address)", "slots": "\(slots)",
                                                 "threads": "\(rec.threads)", "workers_up": "\(link.registry.up.count)"])
        placement.abandon()
        needsPlacement = true
    }

    private func resendAssignment(_ w: WorkerRecord) {
        link.send(.assignment(WireConversions.assignment(epoch: w.assignedEpoch, experts: w.assigned)), to: w.identity)
    }
}
