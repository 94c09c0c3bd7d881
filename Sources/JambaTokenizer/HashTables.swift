// HashTables: the BPE hot loop's data structures: open-addressing tables (merges, chunk cache) and the merge heap.
import Foundation

/// A linear-probing map from `UInt64` to `UInt64`.
///
/// Swift's `Dictionary` hashes every key with SipHash and boxes nothing here, but the merge lookup runs several
/// times per input byte; a power-of-two table with Fibonacci hashing is roughly 3x faster on that path.
/// `UInt64.max` marks an empty slot, which no caller can produce (ids and hashes are masked below it).
struct OpenTable: Sendable {
    private(set) var keys: [UInt64]
    private(set) var values: [UInt64]
    private(set) var count = 0
    private var shift: UInt64

    static let empty = UInt64.max

    init(minimumCapacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < max(16, minimumCapacity * 2) { bits += 1 }
        keys = Array(repeating: Self.empty, count: 1 << bits)
        values = Array(repeating: 0, count: 1 << bits)
        shift = 64 - bits
    }

    @inline(__always)
    private func slot(for key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The stored value, or `UInt64.max` when absent (an optional of a tuple costs measurably in the hot loop).
    @inline(__always)
    func value(for key: UInt64) -> UInt64 {
        keys.withUnsafeBufferPointer { keys in
            let mask = keys.count - 1
            var i = slot(for: key)
            while true {
                let k = keys[i]
                if k == key { return values[i] }
                if k == Self.empty { return Self.empty }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts or overwrites; overwriting matches HF, whose merge map keeps the last duplicate pair.
    mutating func set(_ value: UInt64, for key: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var i = slot(for: key)
        while true {
            if keys[i] == key { values[i] = value; return }
            if keys[i] == Self.empty {
                keys[i] = key
                values[i] = value
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        var bigger = OpenTable(minimumCapacity: keys.count)
        for (k, v) in zip(keys, values) where k != Self.empty { bigger.set(v, for: k) }
        self = bigger
    }
}

/// Merge ranks keyed by the pair of symbol ids: `(left << 32 | right) -> (rank << 32 | newId)`.
struct MergeTable: Sendable {
    private var table: OpenTable
    /// Result id by rank (index in `merges`), for heap entries that store only the rank.
    private var newIds: [Int32] = []

    init(capacity: Int) {
        table = OpenTable(minimumCapacity: capacity)
        newIds.reserveCapacity(capacity)
    }

    var count: Int { table.count }

    /// Ranks must be inserted in order 0, 1, 2, ...
    mutating func insert(left: Int32, right: Int32, rank: Int32, newId: Int32) {
        table.set(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: newId)),
                  for: Self.key(left, right))
        newIds.append(newId)
    }

    @inline(__always)
    func newId(rank: Int) -> Int32 { newIds[rank] }

    /// Packed `rank << 32 | newId`, or `UInt64.max` when the pair never merges.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> UInt64 {
        table.value(for: Self.key(left, right))
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }
}

/// Memoises the ids of chunks (one Metaspace "word" each) within a single `encode` call.
///
/// Natural text repeats a few thousand words over and over, so most chunks are answered from here without
/// running BPE. The cache lives only for the call, which keeps `Tokenizer` an immutable, lock-free value.
struct ChunkCache {
    private var table = OpenTable(minimumCapacity: 1024)
    private var keyBytes: [UInt8] = []
    private var entries: [(keyStart: Int32, keyCount: Int32, idStart: Int32, idCount: Int32)] = []
    private var ids: [Int32] = []
    /// Bounds memory on pathological inputs (e.g. megabytes of unique random strings).
    private let maxKeyBytes = 8 << 20

    /// FNV-1a, masked below `OpenTable.empty`; chunks are short, so a simple byte loop is the fastest option.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h & 0x7FFF_FFFF_FFFF_FFFF
    }

    /// Appends the cached ids for `bytes` to `output` and returns true, or returns false on a miss.
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64, into output: inout [Int]) -> Bool {
        let found = table.value(for: hash)
        if found == OpenTable.empty { return false }
        let entry = entries[Int(found)]
        guard Int(entry.keyCount) == bytes.count else { return false }
        let start = Int(entry.keyStart)
        for i in 0..<bytes.count where keyBytes[start + i] != bytes[i] { return false }
        for i in Int(entry.idStart)..<Int(entry.idStart + entry.idCount) { output.append(Int(ids[i])) }
        return true
    }

    /// Records `result` for `bytes`; a hash collision simply keeps the first entry (the other chunk re-runs BPE).
    mutating func store(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64, result: ArraySlice<Int>) {
        guard keyBytes.count + bytes.count <= maxKeyBytes, table.value(for: hash) == OpenTable.empty else { return }
        entries.append((Int32(keyBytes.count), Int32(bytes.count), Int32(ids.count), Int32(result.count)))
        keyBytes.append(contentsOf: bytes)
        for id in result { ids.append(Int32(truncatingIfNeeded: id)) }
        table.set(UInt64(entries.count - 1), for: hash)
    }
}

/// A pending merge: `rank << 32 | position`, so ordering by value is HF's order (lowest rank first, then
/// leftmost position). The merge's result id is not stored: the rank determines it (`MergeTable.newId(rank:)`),
/// and 8-byte entries keep a document-sized heap half as large, which is what bounds its speed.
typealias MergeCandidate = UInt64

/// A 4-ary min-heap of merge candidates on memory it owns.
///
/// With a whole document as one word the heap holds millions of entries and its speed is bound by cache misses:
/// 4-ary halves the levels of a binary heap, and a raw buffer avoids the uniqueness and bounds checks that
/// an `Array` in sift-down costs.
struct CandidateHeap: ~Copyable {
    private var base: UnsafeMutablePointer<MergeCandidate>
    private var capacity: Int
    private var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 4)
        base = UnsafeMutablePointer<MergeCandidate>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Adds without restoring heap order; call `heapify()` once after the initial fill.
    mutating func appendUnordered(_ item: MergeCandidate) {
        if count == capacity { grow() }
        (base + count).initialize(to: item)
        count += 1
    }

    mutating func heapify() {
        var i = (count - 2) / 4
        while i >= 0 { siftDown(from: i); i -= 1 }
    }

    mutating func push(_ item: MergeCandidate) {
        if count == capacity { grow() }
        var child = count
        count += 1
        while child > 0 {
            let parent = (child - 1) / 4
            if base[parent] <= item { break }
            base[child] = base[parent]
            child = parent
        }
        base[child] = item
    }

    mutating func popMin() -> MergeCandidate? {
        guard count > 0 else { return nil }
        let top = base[0]
        count -= 1
        if count > 0 {
            base[0] = base[count]
            siftDown(from: 0)
        }
        return top
    }

    private mutating func siftDown(from start: Int) {
        let item = base[start]
        var parent = start
        while true {
            let first = 4 * parent + 1
            if first >= count { break }
            var best = first
            var k = first + 1
            let end = min(first + 4, count)
            while k < end {
                if base[k] < base[best] { best = k }
                k += 1
            }
            if item <= base[best] { break }
            base[parent] = base[best]
            parent = best
        }
        base[parent] = item
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<MergeCandidate>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity *= 2
    }
}
