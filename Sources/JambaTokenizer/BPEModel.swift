// BPEModel: the byte-fallback BPE of tokenizer.json, as a heap-driven merge over a linked list of symbols.
import Foundation

/// Reusable buffers for `BPEModel.encode`, owned by one `encode` call so the model itself stays immutable.
struct BPEScratch {
    var symbols: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap: [MergeCandidate] = []
    var cache = ChunkCache()
}

/// A pending merge. `key` is `rank << 32 | position`, so ordering by key is HF's order: lowest rank first, then
/// leftmost position.
struct MergeCandidate {
    var key: UInt64
    var newId: Int32
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
    private let vocab: [String: Int]
    /// UTF-8 of a scalar that no merge ever joins onto from the left (see `init`); empty disables chunking.
    let chunkMarker: [UInt8]
    /// Only tests turn this off, to check that the chunked and whole-word paths agree.
    var chunkingEnabled = true

    init(spec: BPESpec, path: String, boundaryScalar: Unicode.Scalar) throws(TokenizerError) {
        for (token, id) in spec.vocab where id < 0 || id >= Int(Int32.max) {
            throw .invalidValue(path: path, field: "model.vocab", reason: "token \"\(token)\" has id \(id) out of range")
        }
        vocab = spec.vocab
        var ascii = [Int32](repeating: -1, count: 128)
        var scalars: [UInt32: Int32] = [:]
        for (token, id) in spec.vocab {
            let units = token.unicodeScalars
            guard units.count == 1, let scalar = units.first else { continue }
            if scalar.value < 128 { ascii[Int(scalar.value)] = Int32(id) } else { scalars[scalar.value] = Int32(id) }
        }
        asciiIds = ascii
        scalarIds = scalars

        if spec.byteFallback {
            byteIds = (0..<256).map { byte in
                Int32(spec.vocab[String(format: "<0x%02X>", byte)] ?? -1)
            }
        } else {
            byteIds = []
        }
        if let unk = spec.unkToken {
            // HF accepts an unk_token missing from the vocab and only fails when it is needed; we then drop the
            // character instead, because encode cannot throw.
            unkId = Int32(spec.vocab[unk] ?? -1)
        } else {
            unkId = -1
        }
        fuseUnk = spec.fuseUnk
        ignoreMerges = spec.ignoreMerges

        var table = MergeTable(capacity: spec.merges.count)
        var mergesIntoBoundary = false
        let boundary = String(Character(boundaryScalar))
        for (rank, (left, right)) in spec.merges.enumerated() {
            guard let a = spec.vocab[left], let b = spec.vocab[right] else {
                let missing = spec.vocab[left] == nil ? left : right
                throw .invalidValue(path: path, field: "model.merges[\(rank)]",
                                    reason: "token \"\(missing)\" is not in the vocab")
            }
            guard let merged = spec.vocab[left + right] else {
                throw .invalidValue(path: path, field: "model.merges[\(rank)]",
                                    reason: "merged token \"\(left + right)\" is not in the vocab")
            }
            if right.hasPrefix(boundary) { mergesIntoBoundary = true }
            table.insert(left: Int32(a), right: Int32(b), rank: Int32(rank), newId: Int32(merged))
        }
        merges = table

        // Chunking is exact when the boundary scalar is its own vocab symbol and no merge has a right half that
        // starts with it: then no merge can ever join a symbol to one that begins at a boundary, so BPE over the
        // whole section equals BPE over each boundary-started chunk (the heap order within a chunk is unchanged).
        // sentencepiece-style vocabularies (trained with split=true) always satisfy this.
        let boundaryInVocab = boundaryScalar.value < 128 ? ascii[Int(boundaryScalar.value)] >= 0
                                                          : scalars[boundaryScalar.value] != nil
        chunkMarker = boundaryInVocab && !mergesIntoBoundary ? Array(boundary.utf8) : []
    }

    /// Appends the ids of one pre-tokenized word (valid UTF-8) to `output`.
    func encode(word: UnsafeBufferPointer<UInt8>, into output: inout [Int], scratch: inout BPEScratch) {
        if word.isEmpty { return }
        if ignoreMerges, let id = vocab[String(decoding: word, as: UTF8.self)] {
            output.append(id)
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
            if word[i] == m0, i + markerCount <= n, matchesMarker(word, at: i) {
                encodeCached(UnsafeBufferPointer(rebasing: word[start..<i]), into: &output, scratch: &scratch)
                start = i
                i += markerCount
            } else {
                i += 1
            }
        }
        encodeCached(UnsafeBufferPointer(rebasing: word[start..<n]), into: &output, scratch: &scratch)
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
        s.heap.removeAll(keepingCapacity: true)
        for i in 0..<(n - 1) {
            let m = merges.lookup(s.symbols[i], s.symbols[i + 1])
            if m != OpenTable.empty {
                s.heap.append(MergeCandidate(key: (m >> 32) << 32 | UInt64(i), newId: Int32(truncatingIfNeeded: m)))
            }
        }
        var heap = BinaryHeap(storage: s.heap)
        s.heap = []
        let none = Int32(n)
        s.symbols.withUnsafeMutableBufferPointer { sym in
            s.next.withUnsafeMutableBufferPointer { next in
                s.prev.withUnsafeMutableBufferPointer { prev in
                    while let top = heap.pop() {
                        let pos = Int(top.key & 0xFFFF_FFFF)
                        if sym[pos] < 0 { continue }
                        let right = Int(next[pos])
                        if right == n { continue }
                        // Stale entry: HF compares only the resulting id, and so do we, to produce the same ids.
                        let current = merges.lookup(sym[pos], sym[right])
                        if current == OpenTable.empty || Int32(truncatingIfNeeded: current) != top.newId { continue }
                        sym[pos] = top.newId
                        sym[right] = -1
                        let after = next[right]
                        next[pos] = after
                        if after != none { prev[Int(after)] = Int32(pos) }
                        let before = prev[pos]
                        if before >= 0 {
                            let m = merges.lookup(sym[Int(before)], sym[pos])
                            if m != OpenTable.empty {
                                heap.push(MergeCandidate(key: (m >> 32) << 32 | UInt64(before),
                                                         newId: Int32(truncatingIfNeeded: m)))
                            }
                        }
                        if after != none {
                            let m = merges.lookup(sym[pos], sym[Int(after)])
                            if m != OpenTable.empty {
                                heap.push(MergeCandidate(key: (m >> 32) << 32 | UInt64(pos),
                                                         newId: Int32(truncatingIfNeeded: m)))
                            }
                        }
                    }
                }
            }
        }
        s.heap = heap.storage
    }
}

/// A min-heap on `MergeCandidate.key`.
struct BinaryHeap {
    var storage: [MergeCandidate]

    init(storage: [MergeCandidate]) {
        self.storage = storage
        var i = storage.count / 2 - 1
        while i >= 0 { siftDown(i); i -= 1 }
    }

    mutating func push(_ item: MergeCandidate) {
        storage.append(item)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if storage[parent].key <= item.key { break }
            storage[child] = storage[parent]
            child = parent
        }
        storage[child] = item
    }

    mutating func pop() -> MergeCandidate? {
        guard let last = storage.popLast() else { return nil }
        guard let first = storage.first else { return last }
        storage[0] = last
        siftDown(0)
        return first
    }

    private mutating func siftDown(_ start: Int) {
        let count = storage.count
        let item = storage[start]
        var parent = start
        while true {
            var child = 2 * parent + 1
            if child >= count { break }
            if child + 1 < count && storage[child + 1].key < storage[child].key { child += 1 }
            if item.key <= storage[child].key { break }
            storage[parent] = storage[child]
            parent = child
        }
        storage[parent] = item
    }
}
