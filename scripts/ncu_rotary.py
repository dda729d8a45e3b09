"""Driver for Nsight Compute: runs one rotary kernel a few times at OLMo-2-1B shape so that `ncu` can profile a
warm launch. Used by scripts/gpu_session.sh's `ncu` stage; see posbench/kernels/NOTES.md section 8 for what it answered.

    python scripts/ncu_rotary.py fused|fused_bwd|plain [--tokens 16384] [--reps 3]
"""
import argparse

import torch

from posbench.kernels.rotary import apply_qk_norm_rotary, apply_rotary_qk  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kernel", choices=["fused", "fused_bwd", "plain"])
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = "triton"
    T, H, D = args.tokens, 16, 128
    gen = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape, dtype=torch.bfloat16):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    inv_freq = (1.0 / 500000.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D)).to(device)
    positions = torch.arange(T, dtype=torch.float32, device=device)[None, :, None] + rand(1, T, H, dtype=torch.float32)
    wq, wk = rand(H * D) + 1, rand(H * D) + 1
    for _ in range(args.reps):
        if args.kernel == "plain":
            apply_rotary_qk(rand(1, T, H, D), rand(1, T, H, D), positions, inv_freq, backend=backend)
        elif args.kernel == "fused":
            with torch.no_grad():
                apply_qk_norm_rotary(rand(1, T, H * D), rand(1, T, H * D), wq, wk, 1e-6, positions, inv_freq, 1.0, H,
                                     H, backend=backend)
        else:
            xq, xk = rand(1, T, H * D).requires_grad_(), rand(1, T, H * D).requires_grad_()
            pos = positions.clone().requires_grad_()
            q, k = apply_qk_norm_rotary(xq, xk, wq.requires_grad_(), wk.requires_grad_(), 1e-6, pos, inv_freq, 1.0,
                                        H, H, backend=backend)
            torch.autograd.backward((q, k), (torch.randn_like(q), torch.randn_like(k)))
    if device == "cuda":
        torch.cuda.synchronize()
    print(f"ran {args.kernel} x{args.reps} at {T} tokens on {device}")


if __name__ == "__main__":
    main()
