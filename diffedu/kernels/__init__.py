"""GPU kernels in Triton, each beside its plain-torch reference, behind one dispatcher.

Scope: three kernels that matter for diffusion models, each teaching one idea.

    ideal_denoiser       E[x0 | xt] of a Gaussian mixture / data set        gmm_denoiser*.py
        idea: online log-sum-exp, flash-attention tiling; never holds the (N, K) logits
        torch references: ideal_denoiser_naive, ideal_denoiser_torch (chunked)
    ddim_step_fused      one DDIM(eta) / DDPM step from an eps, x0 or v prediction  ddim_step*.py
        idea: elementwise fusion (one pass over memory), counter-based RNG in the kernel
        torch reference: ddim_step_torch
    layernorm_modulate, gated_residual, modulated_residual   DiT's adaLN pieces   adaln*.py
        idea: a row reduction (LayerNorm) fused with the ops around it
        torch references: the same names with _torch

Each `X.py` holds the torch reference(s) and the public dispatcher; `X_triton.py` beside it
holds the kernel, with comments quoting the reference line each block computes.
`memory.peak_tensor_memory(fn)` counts the tensor memory a call holds at its peak.

Every public function takes `backend="auto" | "torch" | "triton"`:
    "auto"   : `DIFFEDU_KERNELS=torch|triton` in the environment decides if set; else Triton
               when it is installed and the tensors are on CUDA (or TRITON_INTERPRET=1 is
               set: Triton's CPU interpreter, slow but exact), else the torch reference.
               Float64 inputs go to torch (the kernels compute in float32).
    "torch"  : the reference;  "triton": the kernel, or a clear error where it cannot run.

Triton is imported lazily: this package imports (and its torch references run) without it.
Set TRITON_INTERPRET=1 before the first Triton call (Triton reads it when kernels are
defined).
"""
from __future__ import annotations

from ._dispatch import interpreter_enabled, resolve_backend, triton_available
from .adaln import (gated_residual, gated_residual_torch, layernorm_modulate,
                    layernorm_modulate_torch, modulated_residual, modulated_residual_torch)
from .ddim_step import ddim_step_fused, ddim_step_torch
from .gmm_denoiser import ideal_denoiser, ideal_denoiser_naive, ideal_denoiser_torch
from .memory import peak_tensor_memory

__all__ = [
    "ideal_denoiser", "ideal_denoiser_naive", "ideal_denoiser_torch",
    "ddim_step_fused", "ddim_step_torch",
    "layernorm_modulate", "layernorm_modulate_torch", "gated_residual", "gated_residual_torch",
    "modulated_residual", "modulated_residual_torch",
    "resolve_backend", "triton_available", "interpreter_enabled", "peak_tensor_memory",
]
