"""The one optimisation loop every trainer of diffedu shares (denoisers, flow matching, ...).

    fit(model, batch_loss, steps)   Adam, cosine learning-rate decay to 0, an EMA copy of the
                                    weights, a progress bar; returns (ema_model, losses)
    ema_update(ema, model, decay)   ema <- decay * ema + (1 - decay) * model

What is learned is decided by `batch_loss`, a closure that draws a fresh batch and returns a
scalar loss (see loss.train_denoiser and flow.train_flow).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .._validate import check_callable, check_positive_int, check_real

__all__ = ["fit", "ema_update"]


def check_ema(ema) -> float:
    """The EMA decay: a finite number in [0, 1) (1 would never move the EMA weights)."""
    ema = check_real("ema", ema)
    if not 0 <= ema < 1:
        raise ValueError(f"ema must lie in [0, 1), got {ema}")
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (buffers copied)."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def fit(model: nn.Module, batch_loss, steps: int, lr: float = 2e-3, ema: float = 0.995,
        progress: bool = True, callback=None, desc: str = "training"):
    """The optimisation loop every trainer shares: Adam with cosine learning-rate decay to 0
    over `steps`, an EMA copy of the weights, a tqdm bar. batch_loss() -> scalar loss of a fresh
    batch (it closes over data, generator and model, or its DDP wrapper). Returns (ema_model, losses);
    callback(step, loss, ema_model) after each step."""
    check_positive_int("steps", steps)
    lr = check_real("lr", lr, lo=0, lo_open=True)
    ema = check_ema(ema)
    check_callable("batch_loss", batch_loss, "batch_loss() -> scalar loss tensor")
    model.train()
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    # A tiny network on a CPU trains faster on one thread: its matrices are too small to split,
    # and thread synchronisation dominates (measured 5x on 2 busy cores). Restored at the end.
    threads = torch.get_num_threads()
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if on_cpu and sum(p.numel() for p in model.parameters()) < 2_000_000:
        torch.set_num_threads(1)
    losses, bar = [], range(steps)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=desc, mininterval=0.5)
    try:
        for step in bar:
            loss = batch_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema_update(ema_model, model, ema)
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):       # stop at the cause, not with NaN weights later
                raise ValueError(f"the loss returned by batch_loss became {losses[-1]} at step {step}: lower "
                                 f"lr (now {lr}), or check the data and the model for NaN / inf")
            if hasattr(bar, "set_postfix") and len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.4f}")
            if callback is not None:
                callback(step, losses[-1], ema_model)
    finally:
        torch.set_num_threads(threads)
    return ema_model, losses
