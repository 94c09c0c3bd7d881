// GoldenForwardTests: full-forward logits, routing and hidden states against transformers' goldens.
import Foundation
import JambaLoader
import JambaMath
@testable import JambaModel
import XCTest

final class GoldenForwardTests: XCTestCase {
    static let logitTolerance: Float = 2e-3
    static let routerTolerance: Float = 1e-3

    /// Loads a fixture model with all experts in process.
    static func load(_ name: String) throws -> (JambaModel, LocalExpertExecutor) {
        let (model, ck) = try JambaModel.load(directory: Fixtures.model(name))
        let store = try ExpertStore.load(ExpertStore.allIDs(model.config), from: ck, config: model.config)
        return (model, LocalExpertExecutor(experts: store))
    }

    func testFullForwardMatchesTransformers() throws {
        for name in ["tiny-a", "tiny-b"] {
            let (model, executor) = try Self.load(name)
            var exec = executor
            for c in try goldenCases(name) {
                let golden = try XCTUnwrap(try c.array("logits"), "\(name)/\(c.name): logits")
                let routerLogits = try XCTUnwrap(try c.array("router_logits"))
                let tokens = c.realTokens
                // All rows of the case in one ragged batch (no padding): each row's positions are its real tokens.
                var states = tokens.map { _ in SequenceState(config: model.config) }
                var scratch = ForwardScratch(config: model.config)
                let r = try model.forward(tokens: tokens, states: &states, executor: &exec,
                                          options: ForwardOptions(allLogits: true, collectRouting: true), scratch: &scratch)
                let mask = c.attentionMask
                var maxDiff: Float = 0, maxRouterDiff: Float = 0, row = 0, idMismatches = 0
                for b in tokens.indices {
                    let padded = mask[b].count - tokens[b].count  // left padding
                    for (i, _) in tokens[b].enumerated() {
                        let pos = padded + i
                        for v in 0..<model.config.vocabSize {
                            maxDiff = max(maxDiff, abs(r.logits[row, v] - golden.at([b, pos, v])))
                        }
                        for (m, routing) in r.routing.enumerated() {
                            for e in 0..<model.config.numExperts {
                                maxRouterDiff = max(maxRouterDiff, abs(routing.logits[row, e] - routerLogits.at([m, b, pos, e])))
                            }
                            if routing.topIds[row] != c.routerTopIDs[m][b][pos] { idMismatches += 1 }
                        }
                        row += 1
                    }
                }
                print("[golden] \(name)/\(c.name): max |logit diff| \(maxDiff) (tol \(Self.logitTolerance)), router logits \(maxRouterDiff), top-k id mismatches \(idMismatches)")
                XCTAssertLessThanOrEqual(maxDiff, Self.logitTolerance, "\(name)/\(c.name) logits")
                XCTAssertLessThanOrEqual(maxRouterDiff, Self.routerTolerance, "\(name)/\(c.name) router logits")
                XCTAssertEqual(idMismatches, 0, "\(name)/\(c.name) router top-k ids")
            }
        }
    }

    func testHiddenStatesMatchTransformers() throws {
        let (model, executor) = try Self.load("tiny-a")
        var exec = executor
        for c in try goldenCases("tiny-a") {
            guard let golden = try c.array("hidden_states") else { continue }
            let tokens = c.realTokens
            var states = tokens.map { _ in SequenceState(config: model.config) }
            var scratch = ForwardScratch(config: model.config)
            let r = try model.forward(tokens: tokens, states: &states, executor: &exec,
                                      options: ForwardOptions(collectHiddenStates: true), scratch: &scratch)
            XCTAssertEqual(r.hiddenStates.count, golden.shape[0])
            var worst: Float = 0
            for (layer, hs) in r.hiddenStates.enumerated() {
                var row = 0
                for b in tokens.indices {
                    let padded = c.attentionMask[b].count - tokens[b].count
                    for i in tokens[b].indices {
                        let ref = (0..<model.config.hiddenSize).map { golden.at([layer, b, padded + i, $0]) }
                        let scale = max(ref.map { abs($0) }.max() ?? 1, 1e-6)
                        for (k, v) in ref.enumerated() { worst = max(worst, abs(hs[row, k] - v) / scale) }
                        row += 1
                    }
                }
            }
            print("[golden] tiny-a/\(c.name): hidden states max diff relative to row max \(worst) (tol 1e-4)")
            XCTAssertLessThanOrEqual(worst, 1e-4, "tiny-a/\(c.name) hidden states")
        }
    }
}
