// BPEModel: the byte-fallback BPE of tokenizer.json, as a heap-driven merge over a linked list of symbols.
import Foundation

/// Reusable buffers for `BPEModel.encode`, owned by one `encode` call so the model itself stays immutable.
struct BPEScratch {
    var symbols: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var cache = ChunkCache()
}

struct BPEModel: Sendable {
    private let merges: MergeTable
    /// ASCII gets a flat table: it is almost every symbol in English text.
    private let asciiIds: [Int32]
    private let scalarIds: [UInt32: Int32]
    /// `<0xXX>` ids by byte value, or empty when byte_fallback is off; -1 where the vocab lacks that byte token.
    private let byteIds: [Int32]
    private let unkId: Int32
    private let fuseUnk: Bool
    private let ignoreMerges: Bool
    /// Token bytes to id. Keyed by bytes, not `String`: Swift string equality is canonical equivalence, which
    /// would conflate tokens such as "é" and "e\u{301}" that the vocab keeps apart.
    let vocab: [[UInt8]: Int32]
    /// UTF-8 of the boundary scalar (▁) at which words are cut into independently merged chunks (see `init`);
    /// empty disables chunking.
    let chunkMarker: [UInt8]
    /// Last scalars of the left halves of merges whose right half starts with the boundary scalar: a boundary
    /// preceded by one of these may be merged across, so it does not start a chunk.
    private let crossingFinals: Set<UInt32>
    /// Only tests turn this off, to check that the chunked and whole-word paths agree.
    var chunkingEnabled = true

    init(spec: BPESpec, path: String, boundaryScalar: Unicode.Scalar) throws(TokenizerError) {
        var vocab: [[UInt8]: Int32] = [:]
        vocab.reserveCapacity(spec.vocab.count)
        var ascii = [Int32](repeating: -1, count: 128)
        var scalars: [UInt32: Int32] = [:]
        for (token, id) in spec.vocab {
            guard id >= 0 && id < Int(Int32.max) else {
                throw .invalidValue(path: path, field: "model.vocab",
                                    reason: "token \"\(String(decoding: token, as: UTF8.self))\" has id \(id) out of range")
            }
            vocab[token] = Int32(id)  // a repeated key keeps its last id, like serde's map
            let units = String(decoding: token, as: UTF8.self).unicodeScalars
            guard units.count == 1, let scalar = units.first else { continue }
            if scalar.value < 128 { ascii[Int(scalar.value)] = Int32(id) } else { scalars[scalar.value] = Int32(id) }
        }
        self.vocab = vocab
        asciiIds = ascii
        scalarIds = scalars

        if spec.byteFallback {
            byteIds = (0..<256).map { byte in vocab[Array(String(format: "<0x%02X>", byte).utf8)] ?? -1 }
        } else {
            byteIds = []
        }
        // HF accepts an unk_token missing from the vocab and only fails when it is needed; we then drop the
        // character instead, because encode cannot throw.
        unkId = spec.unkToken.flatMap { vocab[Array($0.utf8)] } ?? -1
        fuseUnk = spec.fuseUnk
        ignoreMerges = spec.ignoreMerges

        var table = MergeTable(capacity: spec.merges.count)
        var crossingFinals: Set<UInt32> = []
        let boundary = Array(String(Character(boundaryScalar)).utf8)
        for (rank, (left, right)) in spec.merges.enumerated() {
            let leftBytes = Array(left.utf8)
            let rightBytes = Array(right.utf8)
            guard let a = vocab[leftBytes], let b = vocab[rightBytes] else {
                let missing = vocab[leftBytes] == nil ? left : right
                throw .invalidValue(path: path, field: "model.merges[\(rank)]",
                                    reason: "token \"\(missing)\" is not in the vocab")
            }
            guard let merged = vocab[leftBytes + rightBytes] else {
                throw .invalidValue(path: path, field: "model.merges[\(rank)]",
                                    reason: "merged token \"\(left + right)\" is not in the vocab")
            }
            if rightBytes.starts(with: boundary), let last = left.unicodeScalars.last {
                crossingFinals.insert(last.value)
            }
            table.insert(left: a, right: b, rank: Int32(rank), newId: merged)
        }
        merges = table

        // Chunking: with Metaspace(split=false) a "word" is a whole section, but BPE over it equals BPE over
        // chunks cut at boundaries no merge can cross, and chunks repeat, so they can be cached. A boundary is a
        // boundary scalar (▁, itself in the vocab) whose preceding scalar c is in the vocab and ends the left half
        // of no merge whose right half starts with ▁. Then the symbol ending before the boundary always ends with
        // c and the one starting at it with ▁, so no merge pairs them; and the heap order within a chunk is
        // unchanged. sentencepiece-style vocabularies have no such merges at all except whitespace runs
        // ("▁" + "▁"), which only keep runs of ▁ together with the word that follows.
        chunkMarker = vocab[boundary] != nil ? boundary : []
        self.crossingFinals = crossingFinals
    }

    /// Appends the ids of one pre-tokenized word (valid UTF-8) to `output`.
    func encode(word: UnsafeBufferPointer<UInt8>, into output: inout [Int], scratch: inout BPEScratch) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocab[Array(word)] {
            output.append(Int(id))
            return
        }
        guard chunkingEnabled, let m0 = chunkMarker.first else {
            encodeChunk(word, into: &output, scratch: &scratch)
            return
        }
        var start = 0
        var i = 1
        let n = word.count
        let markerCount = chunkMarker.count
        while i < n {
            if word[i] == m0, i + markerCount <= n, matchesMarker(word, at: i), isChunkStart(word, at: i) {
                encodeCached(UnsafeBufferPointer(rebasing: word[start..<i]), into: &output, scratch: &scratch)
                start = i
                i += markerCount
            } else {
                i += 1
            }
        }
        encodeCached(UnsafeBufferPointer(rebasing: word[start..<n]), into: &output, scratch: &scratch)
    }

    /// Whether the scalar before the boundary at `i` lets it start a chunk (see `init`).
    @inline(__always)
    private func isChunkStart(_ word: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
        var start = i - 1
        while start > 0 && word[start] & 0xC0 == 0x80 { start -= 1 }
        let scalar = Self.decodeScalar(word, at: start).0
        let known = scalar < 128 ? asciiIds[Int(scalar)] >= 0 : scalarIds[scalar] != nil
        return known && (crossingFinals.isEmpty || !crossingFinals.contains(scalar))
    }

    @inline(__always)
    private func matchesMarker(_ word: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
        for k in 1..<chunkMarker.count where word[i + k] != chunkMarker[k] { return false }
        return true
    }

    private func encodeCached(_ chunk: UnsafeBufferPointer<UInt8>, into output: inout [Int],
                              scratch: inout BPEScratch) {
        let hash = ChunkCache.hash(chunk)
        if scratch.cache.lookup(chunk, hash: hash, into: &output) { return }
        let before = output.count
        encodeChunk(chunk, into: &output, scratch: &scratch)
        scratch.cache.store(chunk, hash: hash, result: output[before...])
    }

    /// Splits `bytes` into initial symbols exactly as HF's `BPE::merge_word` does, then merges them.
    private func encodeChunk(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [Int],
                             scratch: inout BPEScratch) {
        scratch.symbols.removeAll(keepingCapacity: true)
        var pendingUnk = false
        var i = 0
        let n = bytes.count
        while i < n {
            let (scalar, length) = Self.decodeScalar(bytes, at: i)
            let end = min(i + length, n)
            let id = scalar < 128 ? asciiIds[Int(scalar)] : (scalarIds[scalar] ?? -1)
            if id >= 0 {
                if pendingUnk { scratch.symbols.append(unkId); pendingUnk = false }
                scratch.symbols.append(id)
            } else if !byteIds.isEmpty, (i..<end).allSatisfy({ byteIds[Int(bytes[$0])] >= 0 }) {
                // Like HF, byte tokens do not flush a pending unk first, so they land before it.
                for j in i..<end { scratch.symbols.append(byteIds[Int(bytes[j])]) }
            } else if unkId >= 0 {
                if pendingUnk && !fuseUnk { scratch.symbols.append(unkId) }
                pendingUnk = true
            }
            i = end
        }
        if pendingUnk { scratch.symbols.append(unkId) }
        mergeAll(&scratch)

        let symbols = scratch.symbols
        if symbols.isEmpty { return }
        var k = 0
        while k < symbols.count {
            output.append(Int(symbols[k]))
            k = Int(scratch.next[k])
        }
    }

    /// Scalar value and encoded length at `i`. Input comes from a Swift String, so it is valid UTF-8; lengths are
    /// still clamped by the caller so a bug upstream cannot read out of bounds.
    @inline(__always)
    static func decodeScalar(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> (UInt32, Int) {
        let b0 = UInt32(b[i])
        if b0 < 0x80 { return (b0, 1) }
        @inline(__always) func cont(_ k: Int) -> UInt32 { i + k < b.count ? UInt32(b[i + k]) & 0x3F : 0 }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | cont(1), 2) }
        if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | cont(1) << 6 | cont(2), 3) }
        return ((b0 & 0x07) << 18 | cont(1) << 12 | cont(2) << 6 | cont(3), 4)
    }

    /// HF's `Word::merge_all`: pop the best candidate, skip it if stale, merge, then queue the two new neighbour
    /// pairs. O(n log n) in the number of symbols, which matters because with Metaspace(split=false) a "word" can
    /// be a whole document. Removed symbols are marked with id -1; `next == n` means "no next symbol".
    private func mergeAll(_ s: inout BPEScratch) {
        let n = s.symbols.count
        s.next.removeAll(keepingCapacity: true)
        s.next.append(contentsOf: Int32(1)...Int32(max(n, 1)))
        guard n >= 2 else { return }
        s.prev.removeAll(keepingCapacity: true)
        s.prev.append(contentsOf: -1..<Int32(n - 1))
        var heap = CandidateHeap(capacity: n)
        for i in 0..<(n - 1) {
            let m = merges.lookup(s.symbols[i], s.symbols[i + 1])
            if m != OpenTable.empty {
                heap.appendUnordered((m >> 32) << 32 | UInt64(i))
            }
        }
        heap.heapify()
        let none = Int32(n)
        s.symbols.withUnsafeMutableBufferPointer { sym in
            s.next.withUnsafeMutableBufferPointer { next in
                s.prev.withUnsafeMutableBufferPointer { prev in
                    while let top = heap.popMin() {
                        let pos = Int(top & 0xFFFF_FFFF)
                        if sym[pos] < 0 { continue }
                        let right = Int(next[pos])
                        if right == n { continue }
                        // Stale entry: HF compares only the resulting id, and so do we, to produce the same ids.
                        let current = merges.lookup(sym[pos], sym[right])
                        let newId = merges.newId(rank: Int(top >> 32))
                        if current == OpenTable.empty || Int32(truncatingIfNeeded: current) != newId { continue }
                        sym[pos] = newId
                        sym[right] = -1
                        let after = next[right]
                        next[pos] = after
                        if after != none { prev[Int(after)] = Int32(pos) }
                        let before = prev[pos]
                        if before >= 0 {
                            let m = merges.lookup(sym[Int(before)], sym[pos])
                            if m != OpenTable.empty {
                                heap.push((m >> 32) << 32 | UInt64(before))
                            }
                        }
                        if after != none {
                            let m = merges.lookup(sym[pos], sym[Int(after)])
                            if m != OpenTable.empty {
                                heap.push((m >> 32) << 32 | UInt64(pos))
                            }
                        }
                    }
                }
            }
        }
    }
}
