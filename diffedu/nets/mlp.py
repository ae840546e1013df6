"""A small MLP denoiser for points (B, D): the model of the 2D chapters."""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_choice, check_tensor
from .embeddings import timestep_embedding
from .features import select_layers


class MLPDenoiser(nn.Module):
    """model(x_t, t, cond=None) -> prediction (B, D).

    x_t: (B, D); t: (B,) timesteps (integers of the training schedule); cond: optional (B,)
    class labels in [0, num_classes], where the extra label num_classes means "no label" (the
    null label of classifier-free guidance). The timestep enters through a sinusoidal
    embedding followed by a linear layer, added to every hidden layer.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 64,
                 num_classes: int | None = None, prediction: str = "eps", max_period: float = 10000.0):
        super().__init__()
        check_choice("prediction", prediction, ("eps", "x0", "v", "score", "velocity"))
        self.dim, self.t_dim, self.prediction, self.max_period = dim, t_dim, prediction, max_period
        self.num_classes = num_classes
        self.inp = nn.Linear(dim, hidden)
        self.t_proj = nn.Sequential(nn.Linear(t_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.y_embed = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self._forward(x, t, cond)

    def features(self, x: torch.Tensor, t, cond: torch.Tensor | None = None, layers=None) -> dict:
        """Named activations of one forward pass (as nets/features.py), in forward order;
        `layers` picks some:
          "input"     the first linear layer, inp(x): (B, hidden)
          "hidden.k"  the residual stream h after hidden layer k, k < depth: (B, hidden)
          "out"       the output (B, dim)
        """
        names = ["input", *(f"hidden.{k}" for k in range(len(self.hidden))), "out"]
        keep = select_layers(names, layers)
        acts = {}
        self._forward(x, t, cond, acts)
        return {name: acts[name] for name in keep}

    def _forward(self, x: torch.Tensor, t, cond=None, acts: dict | None = None) -> torch.Tensor:
        """The forward pass; `acts`, if given, receives the named activations of `features`."""
        acts = {} if acts is None else acts
        check_tensor("x", x, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        t = t.expand(len(x)) if t.ndim == 0 else t
        emb = self.t_proj(timestep_embedding(t, self.t_dim, self.max_period).to(x.dtype))
        if self.y_embed is not None:
            if cond is None:
                cond = torch.full((len(x),), self.num_classes, device=x.device)
            cond = torch.as_tensor(cond, device=x.device).long()
            if (cond < 0).any() or (cond > self.num_classes).any():
                raise ValueError(f"cond labels must lie in [0, {self.num_classes}] ({self.num_classes} = null)")
            emb = emb + self.y_embed(cond)
        h = acts["input"] = self.inp(x)
        for k, layer in enumerate(self.hidden):
            h = acts[f"hidden.{k}"] = h + layer(torch.nn.functional.silu(h + emb))
        out = acts["out"] = self.out(torch.nn.functional.silu(h))
        return out
