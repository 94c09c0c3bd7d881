// AlignedBuffer: immutable elements starting at a 64-byte boundary, the storage of resident weight matrices.

/// A fixed, immutable run of elements whose first one starts at a 64-byte (cache line, AVX-512 vector) boundary.
///
/// Why not `[Float]`: a large Swift array's elements start 48 bytes past a cache line (glibc's mmap'd chunk
/// header is 16 bytes, the array's own header 32), so every 16-float vector the kernels load from a weight row
/// spans two cache lines. Aligned weights made f32 prefill 7% faster end to end, and an aligned copy of the x rows
/// (`jc_aligned_rows`, once a product) 7–11% more (bench/kernels.md §9).
///
/// Written once, in `init`, and never again, so sharing it between threads is safe.
public final class AlignedBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
    public static var alignment: Int { 64 }

    public let count: Int
    private let base: UnsafeMutablePointer<Element>

    /// `count` elements, each written by `initialize` (given the whole buffer) before the buffer is shared.
    public init(count: Int, initialize: (UnsafeMutableBufferPointer<Element>) throws -> Void) rethrows {
        precondition(count >= 0, "AlignedBuffer: negative count")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Element>.stride,
                                                   alignment: Self.alignment)
        base = raw.bindMemory(to: Element.self, capacity: max(1, count))
        do {
            try initialize(UnsafeMutableBufferPointer(start: base, count: count))
        } catch {
            base.deallocate()
            throw error
        }
    }

    /// A copy of `values`.
    public convenience init(_ values: [Element]) {
        self.init(count: values.count) { dst in
            values.withUnsafeBufferPointer { src in
                if let s = src.baseAddress, let d = dst.baseAddress { d.update(from: s, count: src.count) }
            }
        }
    }

    /// `count` copies of `value`.
    public convenience init(repeating value: Element, count: Int) {
        self.init(count: count) { $0.initialize(repeating: value) }
    }

    deinit { base.deallocate() }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    /// The elements as an array (a copy).
    public var array: [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

    public subscript(i: Int) -> Element {
        precondition(i >= 0 && i < count, "AlignedBuffer: index \(i) out of 0..<\(count)")
        return base[i]
    }
}
