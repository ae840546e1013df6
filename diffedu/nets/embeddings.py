"""Timestep embeddings shared by every network (MLP, U-Net, DiT)."""
from __future__ import annotations

import math

import torch


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps, as in the official DiT/ADM code.

    t: (B,) integer or real timesteps. Returns (B, dim): the first half cosines, the second
    half sines, at frequencies max_period ** (-i / half) for i = 0 .. half - 1 (an odd `dim`
    gets one zero column at the end).
    """
    if isinstance(t, bool) or not isinstance(t, (torch.Tensor, int, float)):
        raise TypeError(f"t must be a number or a (B,) tensor of timesteps, got {type(t).__name__}")
    t = torch.as_tensor(t)
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"t must hold integer or real timesteps, got dtype {t.dtype}")
    if t.ndim == 0:
        t = t[None]
    if t.ndim != 1:
        raise ValueError(f"t must be a scalar or shape (B,), got shape {tuple(t.shape)}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]              # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def sincos_pos_embed_2d(dim: int, grid_size) -> torch.Tensor:
    """Fixed 2D sine-cosine positional embedding of a grid of patches (MAE / official DiT).

    grid_size: int G (a G x G grid) or (Gh, Gw). Returns (Gh * Gw, dim), one row per patch
    in row-major order (the order `Conv2d(...).flatten(2)` gives the patch tokens).

    The first dim/2 columns encode the patch's column index w, the last dim/2 its row index
    h (the official code builds its grid with `np.meshgrid(grid_w, grid_h)`, so the half it
    calls `emb_h` is in fact computed from w; we follow it so official weights line up).
    Each half is [sin(pos * omega), cos(pos * omega)] with omega_k = 10000 ** (-k / (dim/4)),
    k = 0 .. dim/4 - 1.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 4 or dim % 4:
        raise ValueError(f"dim must be a positive multiple of 4, got {dim!r}")
    pair = (grid_size, grid_size) if not isinstance(grid_size, (tuple, list)) else tuple(grid_size)
    if len(pair) != 2 or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in pair):
        raise ValueError(f"grid_size must be a positive int or a pair of them, got {grid_size!r}")
    gh, gw = pair
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)   # (dim/4,)
    h, w = torch.meshgrid(torch.arange(gh, dtype=torch.float64),
                          torch.arange(gw, dtype=torch.float64), indexing="ij")    # (Gh, Gw)

    def _1d(pos):                                          # pos: (M,) -> (M, dim/2)
        out = pos[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    emb = torch.cat([_1d(w.reshape(-1)), _1d(h.reshape(-1))], dim=1)  # (Gh*Gw, dim)
    return emb.float()


def as_timesteps(t, batch_size: int, device=None) -> torch.Tensor:
    """Check the `t` argument of a network and broadcast it to shape (B,).

    t: a Python number, a 0-d tensor or a (B,) tensor of integer steps in [0, T) or real
    times. Returns a (B,) tensor on `device` (integers are kept; conversion to float happens
    inside `timestep_embedding`).
    """
    if (type(t) is torch.Tensor and t.ndim == 1 and type(batch_size) is int and t.shape[0] == batch_size
            and t.dtype != torch.bool and not t.is_complex() and (device is None or t.device == device)):
        return t                                  # the per-step case: already (B,) on the device
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be an integer >= 0, got {batch_size!r}")
    if not isinstance(t, torch.Tensor):
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"t must be a number or a tensor of shape (B,), got {type(t).__name__}")
        t = torch.tensor(t)
    if t.ndim == 0:
        t = t.expand(batch_size)
    if t.ndim != 1 or t.shape[0] != batch_size:
        raise ValueError(f"t must be a scalar or have shape (B,) = ({batch_size},), one per row of x, "
                         f"got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"t must hold integer or real timesteps, got dtype {t.dtype}")
    return t.to(device) if device is not None else t


def as_labels(y, batch_size: int, num_classes: int, allow_null: bool, device=None) -> torch.Tensor:
    """Check class labels for a class-conditional network and return them as a (B,) long tensor.

    y: an int (one label for the whole batch, as the guidance functions accept) or a (B,)
    integer tensor, with values in [0, num_classes), or exactly `num_classes` (the "null" label
    used by classifier-free guidance) when `allow_null`. `None` means "no label": it becomes the
    null label when one exists, else an error.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be an integer >= 0, got {batch_size!r}")
    if y is None:
        if not allow_null:
            raise ValueError("cond (class labels) is required: this network has no null class "
                             "(build it with class_dropout_prob > 0 for classifier-free guidance)")
        return torch.full((batch_size,), num_classes, dtype=torch.long, device=device)
    if isinstance(y, int) and not isinstance(y, bool):
        y = torch.full((batch_size,), y, dtype=torch.long)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"cond must be an int or a LongTensor of class labels, shape (B,), got {type(y).__name__}")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"cond must be an integer tensor of class labels, got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != batch_size:
        raise ValueError(f"cond must have shape (B,) = ({batch_size},), one label per row of x, "
                         f"got shape {tuple(y.shape)}")
    hi = num_classes if allow_null else num_classes - 1
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > hi):
        allowed = f"[0, {num_classes - 1}]" + (f" or {num_classes} (null label)" if allow_null else "")
        raise ValueError(f"cond holds labels in [{int(y.min())}, {int(y.max())}], allowed {allowed}")
    return y.long().to(device) if device is not None else y.long()


def drop_labels(y: torch.Tensor, num_classes: int, p: float, force_drop_ids=None) -> torch.Tensor:
    """Label dropout for classifier-free guidance (Ho & Salimans 2022).

    y: (B,) labels. Each label is replaced by the null label `num_classes` with probability
    `p` (drawn from torch's global RNG), or exactly where `force_drop_ids == 1` when that
    (B,) tensor is given. Returns a new (B,) tensor.
    """
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool or y.ndim != 1:
        raise TypeError(f"y must be a (B,) integer tensor of class labels, got {type(y).__name__} "
                        f"{getattr(y, 'dtype', '')}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:   # NaN fails the range
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if force_drop_ids is not None:
        if not isinstance(force_drop_ids, torch.Tensor):
            raise TypeError(f"force_drop_ids must be a (B,) tensor of 0/1, got {type(force_drop_ids).__name__}")
        drop = force_drop_ids.to(y.device) == 1
        if drop.shape != y.shape:
            raise ValueError(f"force_drop_ids must have shape {tuple(y.shape)}, one per entry of y, got {tuple(drop.shape)}")
    else:
        drop = torch.rand(y.shape[0], device=y.device) < p
    return torch.where(drop, torch.full_like(y, num_classes), y)
