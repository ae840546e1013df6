"""A small MLP denoiser for points (B, D): the model of the 2D chapters."""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_choice, check_model_input, check_positive_int, check_tensor
from .embeddings import as_labels, as_timesteps, timestep_embedding
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
        for name, v in (("dim", dim), ("hidden", hidden), ("depth", depth), ("t_dim", t_dim)):
            check_positive_int(name, v)
        if t_dim < 2:
            raise ValueError(f"t_dim must be an integer >= 2 (the timestep embedding's size), got {t_dim}")
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
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
        check_model_input("x", x, self, self.inp.weight)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        t = as_timesteps(t, len(x), x.device)
        emb = self.t_proj(timestep_embedding(t, self.t_dim, self.max_period).to(x.dtype))
        if self.y_embed is not None:
            if isinstance(cond, int) and not isinstance(cond, bool):
                cond = torch.full((len(x),), cond, device=x.device)
            emb = emb + self.y_embed(as_labels(cond, len(x), self.num_classes, True, x.device))
        elif cond is not None:
            raise ValueError("cond was given but this MLPDenoiser is unconditional (num_classes=None)")
        h = acts["input"] = self.inp(x)
        for k, layer in enumerate(self.hidden):
            h = acts[f"hidden.{k}"] = h + layer(torch.nn.functional.silu(h + emb))
        out = acts["out"] = self.out(torch.nn.functional.silu(h))
        return out
