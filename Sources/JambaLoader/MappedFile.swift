// MappedFile: a read-only memory map of a whole file, unmapped when the last reference goes away.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only `mmap` of a file. Pages are read from disk only when touched, which is what lets an expert
/// worker open a full checkpoint and become resident only in its own experts' bytes.
///
/// `@unchecked Sendable`: the mapping is immutable (PROT_READ) for the object's lifetime and unmapped only in
/// `deinit`, so sharing the pointer across threads is safe.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw LoaderError.fileNotFound(path: path) }
            throw LoaderError.cannotOpen(path: path, errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LoaderError.cannotOpen(path: path, errno: errno) }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw LoaderError.cannotOpen(path: path, errno: errno) }
        base = UnsafeRawPointer(p)
    }

    /// Bytes `range` of the file; the caller checked the range against `size`.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }

    /// Tells the kernel these pages will not be needed soon (after a tensor was copied into f32 storage),
    /// so resident memory reflects what the process really holds.
    public func dontNeed(_ range: Range<Int>) {
        guard let base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound / page) * page
        let end = min(size, range.upperBound)
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}
