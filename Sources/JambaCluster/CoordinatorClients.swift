// CoordinatorClients: job submission, streaming of job events, cancellation, for clients of the coordinator.
import Foundation
import JambaModel
import JambaTokenizer
import JambaWire
import ZeroMQ

/// A job as the coordinator tracks it: who asked, and what was streamed back so far.
struct Job {
    let client: [UInt8]
    let clientSeq: UInt64
    let stream: Bool
    var decoder: StreamingDecoder?
    var tokens: [Int] = []
    /// The continuation's text so far (what streaming sent, or what a non-streaming job gets at the end).
    var text = ""
}

extension CoordinatorService {
    func handleClient(_ frames: [[UInt8]]) {
        guard frames.count == 2, !frames[0].isEmpty else {
            log.warning("client message with \(frames.count) frames dropped")
            if let id = frames.first, !id.isEmpty {
                reply(to: id, seq: 0, .error(Jamba_V1_Error(code: .malformed, message: "expected one frame per request, got \(frames.count - 1)")))
            }
            return
        }
        let identity = frames[0]
        let request: Jamba_V1_ClientRequest
        do {
            request = try Jamba_V1_ClientRequest.parse(frames[1], maxBytes: settings.maxClientMessageBytes)
        } catch {
            log.warning("malformed client request", metadata: ["error": "\(error)"])
            reply(to: identity, seq: 0, .error(error.asProto()))
            return
        }
        switch request.request {
        case .submit(let s): submit(s, client: identity, seq: request.clientSeq)
        case .status(let s): reply(to: identity, seq: request.clientSeq, .status(status(includeExperts: s.includeExperts)))
        case .rebalance(let r): reply(to: identity, seq: request.clientSeq, rebalance(dryRun: r.dryRun))
        case .cancel(let c): cancel(jobID: Int(c.jobID), client: identity, seq: request.clientSeq)
        case nil: break
        }
    }

    /// Validates and queues a job. A bad job gets an INVALID_ARGUMENT error naming the problem; nothing else
    /// is disturbed.
    private func submit(_ s: Jamba_V1_SubmitJob, client: [UInt8], seq: UInt64) {
        func refuse(_ message: String) {
            log.info("job refused", metadata: ["reason": "\(message)"])
            reply(to: client, seq: seq, .error(Jamba_V1_Error(code: .invalidArgument, message: message)))
        }
        let prompt: [Int]
        switch s.prompt {
        case .text(let text):
            guard let tokenizer else { return refuse("this model has no tokenizer.json: submit token ids instead of text") }
            guard !text.isEmpty else { return refuse("the prompt is empty") }
            prompt = tokenizer.encode(text)
        case .tokens(let t):
            prompt = t.ids.map(Int.init)
        case nil:
            return refuse("no prompt: give text or token ids")
        }
        let sp = s.sampling
        let params = SamplingParams(temperature: sp.temperature, topK: Int(sp.topK), topP: sp.topP == 0 ? 1 : sp.topP,  // proto3: 0 means unset
                                    seed: sp.hasSeed ? sp.seed : nil, maxTokens: Int(sp.maxTokens == 0 ? 64 : sp.maxTokens),
                                    ignoreEOS: sp.ignoreEos)
        let id = nextJobID
        do {
            try engine.submit(id: id, prompt: prompt, params: params)
        } catch {
            return refuse("\(error)")
        }
        nextJobID += 1
        // The decoder is primed with the prompt so the continuation keeps its leading space ("said" + " unto"):
        // the tokenizer strips one leading space from the start of a whole text, not from a continuation.
        var decoder = tokenizer.map { StreamingDecoder(tokenizer: $0) }
        _ = try? decoder?.append(contentsOf: prompt)
        jobs[id] = Job(client: client, clientSeq: seq, stream: s.stream, decoder: decoder)
        var accepted = Jamba_V1_JobAccepted()
        accepted.promptTokens = UInt32(prompt.count)
        accepted.queuePosition = UInt32(engine.waitingCount - 1)
        var ev = Jamba_V1_JobEvent()
        ev.jobID = UInt64(id)
        ev.accepted = accepted
        log.info("job accepted", metadata: ["job": "\(id)", "prompt_tokens": "\(prompt.count)", "max_tokens": "\(params.maxTokens)",
                                            "ready": "\(ready)"])
        send(ev, to: id)
    }

    private func cancel(jobID: Int, client: [UInt8], seq: UInt64) {
        guard let job = jobs[jobID], job.client == client else {
            reply(to: client, seq: seq, .error(Jamba_V1_Error(code: .invalidArgument, message: "no job \(jobID) of yours is running")))
            return
        }
        _ = engine.cancel(id: jobID)
        finish(jobID: jobID, reason: .cancelled, stats: GenerationStats())
    }

    /// Turns one engine event into replies to the job's client.
    func deliver(_ event: GenerationEvent) {
        switch event {
        case let .token(id, t):
            guard var job = jobs[id] else { return }
            job.tokens.append(t)
            var text = ""
            if var d = job.decoder { text = (try? d.append(t)) ?? ""; job.decoder = d }
            job.text += text
            jobs[id] = job
            if job.stream { sendChunk(ids: [t], text: text, job: id) }
        case let .finished(id, reason, stats):
            finish(jobID: id, reason: reason, stats: stats)
        case let .failed(id, message):
            if let job = jobs[id] { fail(jobID: id, job: job, message: message) }
        }
    }

    func fail(jobID: Int, job: Job, message: String) {
        log.error("job failed", metadata: ["job": "\(jobID)", "error": "\(message)"])
        var ev = Jamba_V1_JobEvent()
        ev.jobID = UInt64(jobID)
        ev.error = Jamba_V1_Error(code: .internal, message: message)
        send(ev, to: jobID)
        finish(jobID: jobID, reason: .error, stats: GenerationStats())
    }

    private func finish(jobID: Int, reason: FinishReason, stats: GenerationStats) {
        guard var job = jobs[jobID] else { return }
        var rest = ""
        if var d = job.decoder {
            rest = d.finish()
            job.decoder = d
        }
        if job.stream {
            if !rest.isEmpty { sendChunk(ids: [], text: rest, job: jobID) }
        } else if !job.tokens.isEmpty {
            sendChunk(ids: job.tokens, text: job.text + rest, job: jobID)
        }
        var final = Jamba_V1_JobFinal()
        final.promptTokens = UInt32(stats.promptTokens)
        final.completionTokens = UInt32(job.tokens.count)
        final.finishReason = switch reason {
        case .length: .length
        case .eos: .eos
        case .cancelled: .cancelled
        case .error: .error
        }
        final.queueMs = stats.queueSeconds * 1000
        final.prefillMs = stats.prefillSeconds * 1000
        final.decodeMs = stats.decodeSeconds * 1000
        var ev = Jamba_V1_JobEvent()
        ev.jobID = UInt64(jobID)
        ev.final = final
        send(ev, to: jobID)
        log.info("job finished", metadata: ["job": "\(jobID)", "reason": "\(reason.rawValue)", "tokens": "\(job.tokens.count)"])
        jobs[jobID] = nil
    }

    private func sendChunk(ids: [Int], text: String, job: Int) {
        var chunk = Jamba_V1_TokenChunk()
        chunk.tokenIds = ids.map { Int32($0) }
        chunk.text = text
        var ev = Jamba_V1_JobEvent()
        ev.jobID = UInt64(job)
        ev.tokens = chunk
        send(ev, to: job)
    }

    private func send(_ event: Jamba_V1_JobEvent, to jobID: Int) {
        guard let job = jobs[jobID] else { return }
        if !reply(to: job.client, seq: job.clientSeq, .event(event)) {
            // The client is gone (ROUTER_MANDATORY says unreachable): stop spending steps on its job.
            log.info("client gone; cancelling its job", metadata: ["job": "\(jobID)"])
            _ = engine.cancel(id: jobID)
            jobs[jobID] = nil
        }
    }

    @discardableResult
    func reply(to client: [UInt8], seq: UInt64, _ body: Jamba_V1_ClientReply.OneOf_Reply) -> Bool {
        var r = Jamba_V1_ClientReply()
        r.clientSeq = seq
        r.reply = body
        do {
            try clientSocket.send([client, try r.serialized(maxBytes: settings.maxMessageBytes)])
            return true
        } catch {
            return false
        }
    }
}
