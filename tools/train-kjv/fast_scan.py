"""Training-only fast path for transformers' Jamba Mamba scan (see fast_scan.c).

`install()` compiles fast_scan.c with the system C compiler (cached next to this file's build dir), checks it
against transformers' own `mamba_selective_scan` (outputs and gradients) and replaces the module-level function
in `transformers.models.jamba.modeling_jamba` for the current process.  Only calls without a returned last state
(= no cache: training forward passes) use it; everything else falls through to the original.  Evaluation and
export never use it: they run in fresh processes (or after `uninstall()`).
"""
import ctypes
import os
import subprocess
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
_lib = None
_orig = None
NTH = 2


def _build():
    global _lib
    if _lib is not None:
        return _lib
    out = os.path.join(tempfile.gettempdir(), "kjv_fast_scan.so")
    src = os.path.join(HERE, "fast_scan.c")
    subprocess.run(["cc", "-O3", "-march=native", "-ffast-math", "-fopenmp", "-shared", "-fPIC", src, "-o", out,
                    "-lm"], check=True)
    lib = ctypes.CDLL(out)
    P = ctypes.c_void_p
    I = ctypes.c_int
    lib.ssm_fwd.argtypes = [I, I, I, I, P, P, P, P, P, P, I]
    lib.ssm_bwd.argtypes = [I, I, I, I, P, P, P, P, P, P, P, P, P, P, P, I]
    _lib = lib
    return lib


def _p(t):
    return ctypes.c_void_p(t.data_ptr())


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm):
        # u, delta: [B, D, L]; A: [D, N]; Bm, Cm: [B, L, N]  ->  y: [B, D, L]
        u, delta, A, Bm, Cm = (t.detach().float().contiguous() for t in (u, delta, A, Bm, Cm))
        Bs, D, L = u.shape
        N = A.shape[1]
        assert N <= 64
        y = torch.empty_like(u)
        _lib.ssm_fwd(Bs, D, L, N, _p(u), _p(delta), _p(A), _p(Bm), _p(Cm), _p(y), NTH)
        ctx.save_for_backward(u, delta, A, Bm, Cm)
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, Bm, Cm = ctx.saved_tensors
        dy = dy.float().contiguous()
        Bs, D, L = u.shape
        N = A.shape[1]
        du = torch.empty_like(u)
        ddelta = torch.empty_like(u)
        dA_part = torch.empty(Bs, D, N)
        dB = torch.zeros_like(Bm)
        dC = torch.zeros_like(Cm)
        _lib.ssm_bwd(Bs, D, L, N, _p(u), _p(delta), _p(A), _p(Bm), _p(Cm), _p(dy), _p(du), _p(ddelta),
                     _p(dA_part), _p(dB), _p(dC), NTH)
        return du, ddelta, dA_part.sum(0), dB, dC


def fast_selective_scan(hidden_states, dt, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        return_last_state=False, **kwargs):
    """Drop-in for modeling_jamba.mamba_selective_scan (same argument layout: hidden_states/dt [B, D, L],
    A [D, N], B/C [B, N, L])."""
    if return_last_state:
        return _orig(hidden_states, dt, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                     return_last_state=return_last_state, **kwargs)
    input_dtype = hidden_states.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    y = _Scan.apply(hidden_states, dt, A, B.transpose(1, 2), C.transpose(1, 2))
    if D is not None:
        y = y + hidden_states * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return y.to(input_dtype)


def install(check=True):
    global _orig
    from transformers.models.jamba import modeling_jamba as mj

    _build()
    if _orig is None:
        _orig = mj.mamba_selective_scan
    worst = self_test() if check else None
    mj.mamba_selective_scan = fast_selective_scan
    return worst


def uninstall():
    from transformers.models.jamba import modeling_jamba as mj

    if _orig is not None:
        mj.mamba_selective_scan = _orig


def self_test(seed=0):
    """Compare outputs and all input gradients with transformers' PyTorch path."""
    from transformers.models.jamba import modeling_jamba as mj

    orig = _orig or mj.mamba_selective_scan
    g = torch.Generator().manual_seed(seed)
    Bs, D, L, N = 3, 24, 37, 16
    mk = lambda *s, sc=1.0: (torch.randn(*s, generator=g) * sc).requires_grad_()
    u, dt, z = mk(Bs, D, L), mk(Bs, D, L), mk(Bs, D, L)
    A_log = (torch.log(torch.arange(1, N + 1).float())[None].expand(D, N) + 0.1 * torch.randn(D, N, generator=g))
    A_log = A_log.clone().requires_grad_()
    Bm, Cm = mk(Bs, N, L), mk(Bs, N, L)
    Dv, bias = mk(D), mk(D, sc=0.5)
    w = torch.randn(Bs, D, L, generator=g)
    res = []
    for fn in (orig, fast_selective_scan):
        for t in (u, dt, z, A_log, Bm, Cm, Dv, bias):
            t.grad = None
        A = -torch.exp(A_log)
        y = fn(u, dt, A, Bm, Cm, D=Dv, z=z, delta_bias=bias, delta_softplus=True, return_last_state=False)
        (y * w).sum().backward()
        res.append([y.detach().clone()] + [t.grad.clone() for t in (u, dt, z, A_log, Bm, Cm, Dv, bias)])
    names = ["y", "du", "ddt", "dz", "dA_log", "dB", "dC", "dD", "dbias"]
    worst = {}
    for n, a, b in zip(names, res[0], res[1]):
        rel = float((a - b).abs().max() / (a.abs().max() + 1e-12))
        worst[n] = rel
        assert rel < 1e-4, (n, rel)
    return worst
