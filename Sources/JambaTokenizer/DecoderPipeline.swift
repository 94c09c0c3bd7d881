// DecoderPipeline: HF's decoder chain (Replace, ByteFallback, Fuse, Strip, Metaspace) as resumable stages.
import Foundation

/// One decoder step, flattened out of nested Sequences, with whether its input is already fused.
///
/// HF decoders map a list of token strings to a list of strings. Every step here is written as a stream
/// transformer instead (pieces in, pieces out, plus a final flush), so that the same code serves `decode` (all
/// pieces at once) and `StreamingDecoder` (one token at a time) and the two agree by construction. After a Fuse
/// the downstream steps see fragments of a single token, which changes what "per token" means for them.
enum DecodeStep: Sendable {
    case replace(pattern: [UInt8], content: [UInt8], fused: Bool)
    case byteFallback
    case strip(content: Unicode.Scalar, start: Int, stop: Int, fused: Bool)
    case metaspace(replacement: Unicode.Scalar, dropsFromFirst: Bool, fused: Bool)

    /// Flattens a decoder spec; Fuse itself needs no stage (concatenation is the final output anyway), it only
    /// flips later stages to fused mode.
    static func plan(_ spec: DecoderSpec?, path: String) throws(TokenizerError) -> [DecodeStep] {
        var steps: [DecodeStep] = []
        var fused = false
        func add(_ spec: DecoderSpec) throws(TokenizerError) {
            switch spec {
            case let .sequence(inner):
                for s in inner { try add(s) }
            case let .replace(pattern, content):
                steps.append(.replace(pattern: Array(pattern.utf8), content: Array(content.utf8), fused: fused))
            case .byteFallback:
                // After Fuse the only token is the whole text; nobody ships that and it cannot stream sensibly.
                if fused { throw .unsupportedComponent(path: path, component: "decoder", type: "ByteFallback after Fuse") }
                steps.append(.byteFallback)
            case .fuse:
                fused = true
            case let .strip(content, start, stop):
                steps.append(.strip(content: content, start: start, stop: stop, fused: fused))
            case let .metaspace(replacement, scheme):
                steps.append(.metaspace(replacement: replacement, dropsFromFirst: scheme != .never, fused: fused))
            }
        }
        if let spec { try add(spec) }
        return steps
    }
}

/// Mutable state of one `DecodeStep` while a sequence is being decoded.
struct DecodeStage: Sendable {
    let step: DecodeStep
    let eagerBytes: Bool
    /// Replace (fused): bytes that may be the start of a pattern split across fragments.
    private var carry: [UInt8] = []
    /// ByteFallback: the current run of byte tokens and whether it is already known to be invalid UTF-8.
    private var run: [UInt8] = []
    private var runInvalid = false
    /// Length of the prefix of `run` already known to be complete, valid characters, so that each new byte is
    /// checked in O(1) rather than re-validating the whole run (runs can be a whole CJK document long).
    private var runCheckedCount = 0
    /// Strip (fused) and Metaspace: how many leading scalars/tokens have been seen.
    private var leadingStripped = 0
    private var leadingDone = false
    private var tokensSeen = 0
    /// Strip (fused): trailing content scalars held back because they may be the end of the text.
    private var heldTrailing = 0

    init(step: DecodeStep, eagerBytes: Bool) {
        self.step = step
        self.eagerBytes = eagerBytes
    }

    /// Feeds one piece through the stage, appending the pieces it can already release to `out`.
    mutating func feed(_ piece: String, into out: inout [String]) {
        switch step {
        case let .replace(pattern, content, fused):
            if !fused {
                out.append(UTF8Bytes.replacingAll(piece, String(decoding: pattern, as: UTF8.self),
                                                  with: String(decoding: content, as: UTF8.self)))
                return
            }
            carry.append(contentsOf: piece.utf8)
            let keep = Self.partialMatchSuffix(carry, pattern)
            let ready = Array(carry[..<(carry.count - keep)])
            carry.removeFirst(carry.count - keep)
            out.append(String(decoding: UTF8Bytes.replacingAll(ready, pattern, with: content), as: UTF8.self))
        case .byteFallback:
            feedByteFallback(piece, into: &out)
        case let .strip(content, start, stop, fused):
            if fused {
                out.append(stripFused(piece, content: content, start: start, stop: stop))
            } else {
                out.append(Self.stripToken(piece, content: content, start: start, stop: stop))
            }
        case let .metaspace(replacement, dropsFromFirst, fused):
            let first = fused || tokensSeen == 0
            tokensSeen += 1
            var view = String.UnicodeScalarView()
            for scalar in piece.unicodeScalars {
                if scalar != replacement { view.append(scalar) } else if !(first && dropsFromFirst) { view.append(" ") }
            }
            out.append(String(view))
        }
    }

    /// Releases whatever the stage still holds at the end of the sequence and resets it for a new one.
    mutating func finish(into out: inout [String]) {
        switch step {
        case let .replace(pattern, content, _):
            if !carry.isEmpty {
                out.append(String(decoding: UTF8Bytes.replacingAll(carry, pattern, with: content), as: UTF8.self))
            }
        case .byteFallback:
            flushRun(into: &out)
        case .strip:
            // Held trailing content scalars are exactly the ones HF's right strip removes: they are dropped.
            break
        case .metaspace:
            break
        }
        self = DecodeStage(step: step, eagerBytes: eagerBytes)
    }

    // MARK: ByteFallback

    private mutating func feedByteFallback(_ piece: String, into out: inout [String]) {
        guard let byte = Self.byteValue(piece) else {
            flushRun(into: &out)
            out.append(piece)
            return
        }
        if runInvalid {
            // HF turns every byte of an invalid run into U+FFFD, so once invalid, each byte can go out at once.
            out.append("\u{FFFD}")
            return
        }
        run.append(byte)
        switch UTF8Validation.check(run[runCheckedCount...]) {
        case .invalid:
            out.append(contentsOf: repeatElement("\u{FFFD}", count: run.count))
            run.removeAll()
            runCheckedCount = 0
            runInvalid = true
        case .complete where eagerBytes:
            out.append(String(decoding: run, as: UTF8.self))
            run.removeAll()
            runCheckedCount = 0
        case .complete:
            runCheckedCount = run.count
        case .incomplete:
            break
        }
    }

    private mutating func flushRun(into out: inout [String]) {
        if !run.isEmpty {
            if UTF8Validation.check(run[runCheckedCount...]) == .complete {
                out.append(String(decoding: run, as: UTF8.self))
            } else {
                out.append(contentsOf: repeatElement("\u{FFFD}", count: run.count))
            }
        }
        run.removeAll()
        runCheckedCount = 0
        runInvalid = false
    }

    /// `<0xXX>` → XX, as HF's ByteFallback decoder recognises byte tokens.
    /// Compared as bytes: `String.hasPrefix` works on Characters, and "<0x41>" + a combining mark is not ours.
    static func byteValue(_ token: String) -> UInt8? {
        let u = token.utf8
        guard u.count == 6 else { return nil }
        let b = Array(u)
        guard b[0] == UInt8(ascii: "<"), b[1] == UInt8(ascii: "0"), b[2] == UInt8(ascii: "x"),
              b[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: b[3..<5], as: UTF8.self), radix: 16)
    }

    // MARK: Strip

    /// HF's Strip on one whole token: up to `start` leading and `stop` trailing `content` scalars removed.
    static func stripToken(_ token: String, content: Unicode.Scalar, start: Int, stop: Int) -> String {
        let scalars = Array(token.unicodeScalars)
        var lower = 0
        while lower < min(start, scalars.count) && scalars[lower] == content { lower += 1 }
        var upper = scalars.count
        while scalars.count - upper < stop && upper > lower && scalars[upper - 1] == content { upper -= 1 }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[lower..<upper])
        return String(view)
    }

    /// Strip over a fused stream: drop leading content scalars until `start` are gone or another scalar shows up;
    /// hold back up to `stop` trailing content scalars, since they are only removed if nothing follows them.
    private mutating func stripFused(_ piece: String, content: Unicode.Scalar, start: Int, stop: Int) -> String {
        var view = String.UnicodeScalarView()
        let contentString = String(Character(content))
        for scalar in piece.unicodeScalars {
            if !leadingDone {
                if scalar == content && leadingStripped < start { leadingStripped += 1; continue }
                leadingDone = true
            }
            if scalar == content && stop > 0 {
                heldTrailing += 1
                if heldTrailing > stop { view.append(content); heldTrailing -= 1 }
                continue
            }
            if heldTrailing > 0 {
                view.append(contentsOf: String(repeating: contentString, count: heldTrailing).unicodeScalars)
                heldTrailing = 0
            }
            view.append(scalar)
        }
        return String(view)
    }

    /// Length of the longest proper suffix of `bytes` that is a prefix of `pattern`.
    private static func partialMatchSuffix(_ bytes: [UInt8], _ pattern: [UInt8]) -> Int {
        var k = min(pattern.count - 1, bytes.count)
        while k > 0 {
            if bytes[(bytes.count - k)...].elementsEqual(pattern[..<k]) { return k }
            k -= 1
        }
        return 0
    }
}
