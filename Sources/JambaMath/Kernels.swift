// Kernels: elementwise and reduction kernels over f32 rows, vectorised with SIMD16 and several accumulators.
import CKernels
import Foundation

/// Row kernels. Swift does not vectorise a plain `Float` reduction (it must keep the sequential order), so sums
/// are written over `SIMD16<Float>` with four accumulators; elementwise loops vectorise on their own.
public enum Kernels {
    /// Puts the thread pool to sleep now instead of after its spin: called before blocking on the network, so the
    /// cores are free at once for the processes being waited on (workers sharing this machine).
    public static func parkPool() { jc_pool_park() }

    /// Wakes the pool's helpers to spin for the products about to come: called when the message those products
    /// wait for arrives, so their wake-up (50–100 µs here) overlaps the decoding and glue before the first product.
    public static func prewakePool() { jc_pool_prewake() }

    /// Runs `body` with this process's threads named `prefix…` (libzmq's "ZMQbg/IO") kept off the calling thread's
    /// CPU, so that waking them (by sending) does not preempt the caller; afterwards they may run anywhere again.
    public static func keepingThreadsOffThisCPU<T>(named prefix: String, _ body: () throws -> T) rethrows -> T {
        jc_steer_named_threads(prefix, 1)
        defer { jc_steer_named_threads(prefix, 0) }
        return try body()
    }

    /// The CPUs this thread may run on (nil where the platform does not say: not Linux).
    public static var allowedCPUs: [Int]? {
        var buf = [Int32](repeating: 0, count: 1024)
        let n = jc_allowed_cpus(&buf, Int32(buf.count))
        return n < 0 ? nil : buf.prefix(Int(n)).map(Int.init)
    }

    /// Restricts every thread of this process, and those it starts later, to `cpus`. False when a CPU is not
    /// allowed or the platform cannot (not Linux).
    public static func restrictProcess(toCPUs cpus: [Int]) -> Bool {
        let list = cpus.map(Int32.init)
        return jc_restrict_process_cpus(list, Int32(list.count)) == 0
    }

    /// Causal attention of a prompt's `tq` queries (positions past ..< past + tq) against the first past + tq keys
    /// and values, heads split across the pool (attention.c): o_h[t] = softmax(scale · q_h[t] · K_gᵀ over keys
    /// ≤ past + t) · V_g, g = h / (heads / kvHeads). Only where `BLAS.takesTransposed(rows: tq)`; false (nothing
    /// written) otherwise, or when scratch could not be allocated, and the caller takes its general path.
    public static func causalAttentionPrompt(heads: Int, kvHeads: Int, headDim: Int, queries tq: Int, past: Int,
                                             scale: Float, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>,
                                             v: UnsafePointer<Float>, ldkv: Int, o: UnsafeMutablePointer<Float>,
                                             ldo: Int) -> Bool {
        guard BLAS.takesTransposed(rows: tq) else { return false }
        return jc_attention_prompt(Int32(BLAS.kernelThreads), Int32(heads), Int32(kvHeads), Int32(headDim), Int32(tq),
                                   Int32(past), scale, q, Int32(ldq), k, v, Int32(ldkv), o, Int32(ldo)) == 0
    }

    /// Sum of squares of `n` floats.
    @inline(__always)
    public static func sumOfSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 64 <= n {
            let v0 = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            let v1 = raw.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
            let v2 = raw.loadUnaligned(fromByteOffset: 4 * (i + 32), as: SIMD16<Float>.self)
            let v3 = raw.loadUnaligned(fromByteOffset: 4 * (i + 48), as: SIMD16<Float>.self)
            // `a += v * v`, not `addProduct`: a fused multiply-add without FMA in the target ISA is a libm call per lane.
            a0 += v0 * v0; a1 += v1 * v1; a2 += v2 * v2; a3 += v3 * v3
            i += 64
        }
        while i + 16 <= n {
            let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            a0 += v * v
            i += 16
        }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < n { s += p[i] * p[i]; i += 1 }
        return s
    }

    /// Dot product of `n` floats.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 32 <= n {
            a0 += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
                * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            a1 += ra.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
                * rb.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
            i += 32
        }
        var s = (a0 + a1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// RMSNorm of each row in place: x = w ⊙ x / sqrt(mean(x²) + eps) (HF JambaRMSNorm: plain `w`, eps inside).
    public static func rmsNorm(_ x: inout Matrix, weight: [Float], eps: Float) {
        let d = x.cols
        precondition(weight.count == d)
        weight.withUnsafeBufferPointer { w in
            x.storage.withUnsafeMutableBufferPointer { buf in
                for r in 0..<x.rows {
                    let row = buf.baseAddress! + r * d
                    let scale = 1 / (sumOfSquares(row, d) / Float(d) + eps).squareRoot()
                    for c in 0..<d { row[c] = w[c] * (row[c] * scale) }
                }
            }
        }
    }

    /// out = RMSNorm(x) without touching x; `out` is resized to x's rows.
    public static func rmsNorm(_ x: Matrix, weight: [Float], eps: Float, into out: inout Matrix) {
        out.resize(rows: x.rows)
        out.storage.withUnsafeMutableBufferPointer { o in
            x.storage.withUnsafeBufferPointer { i in
                o.baseAddress!.update(from: i.baseAddress!, count: x.count)
            }
        }
        rmsNorm(&out, weight: weight, eps: eps)
    }

    @inline(__always)
    public static func silu(_ x: Float) -> Float { x / (1 + Foundation.exp(-x)) }

    /// x = SiLU(x) over `n` floats (vectorised exp).
    @inline(__always)
    public static func silu(_ x: UnsafeMutablePointer<Float>, _ n: Int) { jc_silu_inplace(Int32(n), x) }

    /// h = SiLU(g) ⊙ u over `n` floats (SwiGLU).
    @inline(__always)
    public static func swiglu(_ g: UnsafePointer<Float>, _ u: UnsafePointer<Float>, _ h: UnsafeMutablePointer<Float>, _ n: Int) {
        jc_swiglu(Int32(n), g, u, h)
    }

    /// h[T, I] = SiLU(gate) ⊙ up for every row of `gu` [T, 2I] (slice-stacked: slice s of h, bounds[s] ..<
    /// bounds[s + 1], reads its gate and then its up half at 2·bounds[s]), rows split across the pool. Each row gets
    /// `swiglu`'s floats. h is resized to T rows.
    public static func swigluRows(_ gu: Matrix, bounds: [Int], into h: inout Matrix) {
        precondition(bounds.count >= 2 && gu.cols == 2 * bounds[bounds.count - 1] && h.cols == bounds[bounds.count - 1],
                     "swigluRows: shape mismatch")
        h.resize(rows: gu.rows)
        let (rows, ldgu, ldh) = (Int32(gu.rows), Int32(gu.cols), Int32(h.cols))
        let b32 = bounds.map(Int32.init)
        gu.storage.withUnsafeBufferPointer { g in
            h.storage.withUnsafeMutableBufferPointer { hp in
                jc_swiglu_rows_mt(Int32(BLAS.kernelThreads), rows, Int32(b32.count), b32, g.baseAddress, ldgu, hp.baseAddress, ldh)
            }
        }
    }

    /// u's rows firstRow ..< firstRow + rows = SiLU(bias + causal depthwise conv of x's rows), the taps before x's
    /// first row read from `state` ([taps, channels], the last inputs before them): Mamba's conv1d over a segment,
    /// rows split across the pool (`jc_conv_silu_rows_mt`).
    public static func convSiluRows(rows: Int, channels: Int, taps: Int, x: UnsafePointer<Float>, ldx: Int,
                                    state: [Float], weight: [Float], bias: [Float]?, u: inout Matrix, firstRow: Int) {
        precondition(state.count == taps * channels && weight.count == taps * channels && u.cols == channels
                     && firstRow + rows <= u.rows && (bias?.count ?? channels) == channels, "convSiluRows: shape mismatch")
        state.withUnsafeBufferPointer { st in
            weight.withUnsafeBufferPointer { w in
                u.storage.withUnsafeMutableBufferPointer { up in
                    let out = up.baseAddress! + firstRow * channels
                    if let bias {
                        bias.withUnsafeBufferPointer { b in
                            jc_conv_silu_rows_mt(Int32(BLAS.kernelThreads), Int32(rows), Int32(channels), Int32(taps), x,
                                                 Int32(ldx), st.baseAddress, w.baseAddress, b.baseAddress, out, Int32(channels))
                        }
                    } else {
                        jc_conv_silu_rows_mt(Int32(BLAS.kernelThreads), Int32(rows), Int32(channels), Int32(taps), x,
                                             Int32(ldx), st.baseAddress, w.baseAddress, nil, out, Int32(channels))
                    }
                }
            }
        }
    }

    /// x[r] = softplus(x[r] + bias) for every row, rows split across the pool; `softplus(_:bias:_:_:)`'s floats.
    public static func softplusRows(_ x: inout Matrix, bias: [Float]) {
        precondition(bias.count == x.cols, "softplusRows: bias of \(bias.count) for \(x.cols) columns")
        let (rows, cols) = (Int32(x.rows), Int32(x.cols))
        bias.withUnsafeBufferPointer { b in
            x.storage.withUnsafeMutableBufferPointer { p in
                jc_softplus_bias_rows_mt(Int32(BLAS.kernelThreads), rows, cols, p.baseAddress, cols, b.baseAddress,
                                         p.baseAddress, cols)
            }
        }
    }

    /// out = softplus(x + bias) over `n` floats.
    @inline(__always)
    public static func softplus(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        jc_softplus_bias(Int32(n), x, bias, out)
    }

    /// One token of the selective scan over channels [c0, c1) (see ckernels.h).
    @inline(__always)
    public static func scanToken(channels: Range<Int>, state n: Int, dt: UnsafePointer<Float>, u: UnsafePointer<Float>,
                                 z: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                 c: UnsafePointer<Float>, d: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>,
                                 y: UnsafeMutablePointer<Float>) {
        jc_scan_token(Int32(channels.lowerBound), Int32(channels.upperBound), Int32(n), dt, u, z, a, b, c, d, h, y)
    }

    /// The selective scan over `tokens` tokens of one sequence, channels split across `BLAS.kernelThreads`
    /// (see `jc_scan_segment_mt`); each channel's arithmetic is the same whatever the split.
    @inline(__always)
    public static func scanSegment(tokens: Int, channels: Int, state n: Int, dt: UnsafePointer<Float>, ldDt: Int,
                                   u: UnsafePointer<Float>, ldU: Int, z: UnsafePointer<Float>, ldZ: Int,
                                   a: UnsafePointer<Float>, bc: UnsafePointer<Float>, ldBC: Int, d: UnsafePointer<Float>,
                                   h: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, ldY: Int) {
        jc_scan_segment_mt(Int32(BLAS.kernelThreads), Int32(tokens), Int32(channels), Int32(n), dt, Int32(ldDt), u, Int32(ldU),
                           z, Int32(ldZ), a, bc, Int32(ldBC), d, h, y, Int32(ldY))
    }

    /// torch.nn.functional.softplus with beta 1 and threshold 20.
    @inline(__always)
    public static func softplus(_ x: Float) -> Float { x > 20 ? x : Foundation.log1p(Foundation.exp(x)) }

    /// a += b elementwise.
    public static func add(_ a: inout Matrix, _ b: Matrix) {
        precondition(a.count == b.count)
        a.storage.withUnsafeMutableBufferPointer { ap in
            b.storage.withUnsafeBufferPointer { bp in
                for i in 0..<ap.count { ap[i] += bp[i] }
            }
        }
    }

    /// Softmax of a row in place (max-subtracted), returns nothing; `n` elements.
    public static func softmax(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        guard n > 0 else { return }
        var m = -Float.infinity
        for i in 0..<n where p[i] > m { m = p[i] }
        var s: Float = 0
        for i in 0..<n { let e = Foundation.exp(p[i] - m); p[i] = e; s += e }
        let inv = 1 / s
        for i in 0..<n { p[i] *= inv }
    }

    /// log(sum(exp(row))) computed stably, used for perplexity and golden checks.
    public static func logSumExp(_ row: UnsafeBufferPointer<Float>) -> Float {
        var m = -Float.infinity
        for v in row where v > m { m = v }
        guard m.isFinite else { return m }
        var s: Double = 0
        for v in row { s += Double(Foundation.exp(v - m)) }
        return m + Float(Foundation.log(s))
    }
}
