// WireConversions: expert sets to and from the wire's per-layer lists, in one place.
import JambaScheduler
import JambaWire

enum WireConversions {
    /// (layer, expert) pairs grouped per layer, layers and experts ascending, as LayerExperts lists them.
    static func layerExperts(_ pairs: [(layer: Int, expert: Int)]) -> [Jamba_V1_LayerExperts] {
        Dictionary(grouping: pairs, by: \.layer).sorted { $0.key < $1.key }.map { layer, items in
            var le = Jamba_V1_LayerExperts()
            le.layer = UInt32(layer)
            le.experts = Set(items.map { UInt32($0.expert) }).sorted()
            return le
        }
    }

    static func layerExperts(_ keys: Set<ExpertKey>) -> [Jamba_V1_LayerExperts] {
        layerExperts(keys.map { (layer: $0.layer, expert: $0.expert) })
    }

    static func keys(_ lists: [Jamba_V1_LayerExperts]) -> Set<ExpertKey> {
        Set(lists.flatMap { le in le.experts.map { ExpertKey(layer: Int(le.layer), expert: Int($0)) } })
    }

    static func assignment(epoch: UInt64, experts: Set<ExpertKey>) -> Jamba_V1_Assignment {
        var a = Jamba_V1_Assignment()
        a.epoch = epoch
        a.layers = layerExperts(experts)
        return a
    }
}
