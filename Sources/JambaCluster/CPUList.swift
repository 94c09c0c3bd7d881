// CPUList: the `--cpus` option of the daemons ("1", "0,2", "2-3"), parsed and checked against the allowed CPUs.
import JambaMath

/// A set of CPU numbers given on the command line, to pin a daemon's threads to.
public enum CPUList {
    /// Parses "N", "A-B" and comma-separated mixes of them into sorted, distinct CPU numbers.
    public static func parse(_ text: String) throws -> [Int] {
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let lo = Int(bounds[0]), let hi = Int(bounds[bounds.count - 1]),
                  lo >= 0, hi >= lo, hi < 4096
            else {
                throw ClusterError.badArgument("--cpus '\(text)': '\(part)' is not a CPU number or range (expected e.g. 1, 0,2 or 2-3)")
            }
            out.formUnion(lo...hi)
        }
        return out.sorted()
    }

    /// Pins this process (every thread, and those started later) to `cpus`, which must all be CPUs it may use.
    public static func pinProcess(to cpus: [Int]) throws {
        guard let allowed = Kernels.allowedCPUs else {
            throw ClusterError.badArgument("--cpus is supported on Linux only")
        }
        let missing = cpus.filter { !allowed.contains($0) }
        guard missing.isEmpty else {
            throw ClusterError.badArgument("--cpus: CPU \(missing.map(String.init).joined(separator: ", ")) not available (this process may use \(describe(allowed)))")
        }
        guard Kernels.restrictProcess(toCPUs: cpus) else {
            throw ClusterError.badArgument("--cpus: the kernel refused CPUs \(describe(cpus))")
        }
    }

    /// "0-3,6": runs of consecutive CPUs as ranges.
    public static func describe(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let s = cpus.sorted()
        while i < s.count {
            var j = i
            while j + 1 < s.count, s[j + 1] == s[j] + 1 { j += 1 }
            parts.append(i == j ? "\(s[i])" : "\(s[i])-\(s[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
