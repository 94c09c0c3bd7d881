// ModelFingerprint: a hash of config.json and the weight index, so a worker never serves a different model.
import Foundation
import JambaLoader

public enum ModelFingerprint {
    /// FNV-1a 64 over config.json's bytes and the names, dtypes and shapes of every tensor. Cheap (headers only)
    /// and stable across shardings of the same weights only if dtypes match, which is what must agree.
    public static func of(directory: URL, checkpoint: Checkpoint) throws -> String {
        let config = try Data(contentsOf: directory.appendingPathComponent("config.json"))
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        mix(config)
        mix(checkpoint.indexFingerprintText().utf8)
        return String(h, radix: 16, uppercase: false)
    }
}
