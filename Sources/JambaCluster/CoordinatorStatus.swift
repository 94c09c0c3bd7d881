// CoordinatorStatus: the status report, manual and automatic rebalancing from the measured routing.
import Foundation
import JambaScheduler
import JambaWire

extension CoordinatorService {
    func status(includeExperts: Bool) -> Jamba_V1_StatusReply {
        let now = Date()
        let t = now.timeIntervalSince(started)
        var s = Jamba_V1_StatusReply()
        s.modelName = settings.modelDirectory.lastPathComponent
        s.modelFingerprint = fingerprint
        s.jobsRunning = UInt32(engine.runningCount)
        s.jobsQueued = UInt32(engine.waitingCount)
        s.statsWindowSeconds = settings.statsWindowSeconds
        s.assignmentEpoch = placement.epoch
        s.timings = stats.timings
        s.timings.replyBytes = link.replyBytes
        let span = min(settings.statsWindowSeconds, max(1e-3, t))
        s.tokensPerSecond = Double(generated.reduce(0) { $0 + $1.count }) / span
        let names = Dictionary(uniqueKeysWithValues: link.registry.workers.values.map { ($0.id, $0.name) })
        s.workers = link.registry.workers.values.sorted { ($0.name, $0.id) < ($1.name, $1.id) }.map { w in
            var ws = Jamba_V1_WorkerStatus()
            ws.name = w.name
            ws.address = w.address
            ws.state = switch w.state {
            case .joining: .joining
            case .live: .live
            case .lost: .lost
            }
            ws.experts = WireConversions.layerExperts(w.state == .lost ? [] : w.held)
            ws.residentBytes = w.residentBytes
            ws.queueDepth = UInt32(max(0, w.inFlight))
            ws.msSinceHeartbeat = UInt64(max(0, now.timeIntervalSince(w.lastHeard) * 1000))
            ws.rowsServed = UInt64(w.rowsServed.rounded())
            ws.busyMicros = w.busyMicros
            return ws
        }
        let loads = window.loads(now: t)
        let routable = link.registry.routableAssignment
        s.layers = model.config.moeLayers.enumerated().map { li, layer in
            var ls = Jamba_V1_LayerStats()
            ls.layer = UInt32(layer)
            ls.experts = (0..<model.config.numExperts).map { e in
                var es = Jamba_V1_ExpertStats()
                es.expert = UInt32(e)
                es.holders = routable.holders(of: ExpertKey(layer: layer, expert: e)).compactMap { names[$0] }
                es.tokensRouted = UInt64(loads.perLayer[li][e])
                return es
            }
            return ls
        }
        if let report = try? measuredImbalance() {
            var imb = Jamba_V1_Imbalance()
            imb.maxOverMean = report.worst
            imb.worstLayer = UInt32(report.worstLayer)
            imb.perLayer = zip(report.layers, report.perLayer).map { l, v in
                var li = Jamba_V1_LayerImbalance()
                li.layer = UInt32(l)
                li.maxOverMean = v
                return li
            }
            s.imbalance = imb
        }
        return s
    }

    /// Expected max/mean per-worker load of the current routable assignment under the measured routing. Workers
    /// taking layer steps in turn count as one (they never compute at the same time).
    func measuredImbalance() throws -> ImbalanceReport {
        let infos = placement.workerInfos(link.registry, speed: speed).filter { link.registry[$0.id]?.state == .live }
        let groups = PlacementController.turnTakingGroups(link.registry)
        return try Imbalance.of(SharedCorePlacement.merge(link.registry.routableAssignment, groups: groups), loads: try currentLoads(),
                                workers: SharedCorePlacement.merge(infos, groups: groups))
    }

    /// Plans from the measured loads; applies the plan unless `dryRun` or it moves nothing.
    func rebalance(dryRun: Bool) -> Jamba_V1_ClientReply.OneOf_Reply {
        do {
            let before = try measuredImbalance()
            let result = try placement.plan(link.registry, loads: try currentLoads(), speed: speed)
            var r = Jamba_V1_RebalanceReply()
            r.imbalanceBefore = before.worst
            r.imbalanceAfter = result.imbalance.worst
            let names = Dictionary(uniqueKeysWithValues: link.registry.workers.values.map { ($0.id, $0.name) })
            r.moves = result.moves.map { m in
                var mv = Jamba_V1_Move()
                mv.layer = UInt32(m.expert.layer)
                mv.expert = UInt32(m.expert.expert)
                switch m.kind {
                case .add:
                    mv.kind = .add
                    mv.toWorker = names[m.worker] ?? m.worker.rawValue
                case .drop:
                    mv.kind = .drop
                    mv.fromWorker = names[m.worker] ?? m.worker.rawValue
                }
                return mv
            }
            if !dryRun && !result.moves.isEmpty && placement.target == nil {
                placement.apply(result.assignment, imbalance: result.imbalance, link: link)
                r.applied = true
                log.info("rebalance applied", metadata: ["before": "\(String(format: "%.3f", before.worst))",
                                                         "after": "\(String(format: "%.3f", result.imbalance.worst))",
                                                         "moves": "\(result.moves.count)"])
            }
            r.epoch = placement.epoch
            return .rebalance(r)
        } catch {
            return .error(Jamba_V1_Error(code: .notReady, message: "cannot rebalance now: \(error)"))
        }
    }

    /// Rebalances when the measured imbalance has stayed above the threshold for a whole interval.
    func autoRebalance(_ now: Date) {
        guard settings.autoRebalanceThreshold > 0, ready, placement.target == nil,
              let report = try? measuredImbalance(), window.loads(now: now.timeIntervalSince(started)).perLayer.joined().reduce(0, +) > 0
        else { overThresholdSince = nil; return }
        if report.worst <= settings.autoRebalanceThreshold {
            overThresholdSince = nil
            return
        }
        guard let since = overThresholdSince else { overThresholdSince = now; return }
        if now.timeIntervalSince(since) >= settings.autoRebalanceInterval {
            overThresholdSince = nil
            log.info("imbalance above threshold; rebalancing", metadata: ["imbalance": "\(String(format: "%.3f", report.worst))",
                                                                          "threshold": "\(settings.autoRebalanceThreshold)"])
            _ = rebalance(dryRun: false)
        }
    }
}
