"""ControlNet (Zhang, Rao & Agrawala 2023, survey reference 41): spatial control added to a
frozen U-Net through a trainable copy of its encoder joined by zero-initialised convolutions.

Scope: the adapter for diffedu's U-Net (nets/unet.py) and for the caption model built on it
(nets/text.py). Pieces:
  ControlNet      a trainable copy of the base's input conv, encoder blocks and middle block,
                  a small hint encoder (convolutions mapping the control image c to the base
                  width, its last conv zeroed), and one zeroed 1x1 conv per skip connection plus
                  one for the middle block. Holds no reference to the base: only its own weights
                  are saved, and its manifest names the base checkpoint.
  ControlledUNet  base + ControlNet: runs the base with strength * (the adapter's outputs) added
                  to every skip and to the middle block; the base is frozen.
  HintBound       a ControlledUNet with its hint bound, called model(x_t, t, cond): what
                  `dd.to_denoiser` and the guidance wrappers take.

Notation (the paper's section 3): F(x; Theta) the frozen block, F(x; Theta_c) its trainable
copy, Z(.; Theta_z) a 1x1 convolution with weight and bias 0, c the control (hint) image:
    y_c = F(x; Theta) + Z(F(x + Z(c; Theta_z1); Theta_c); Theta_z2)          (paper eq. 2)
Steps of one forward pass (ControlledUNet.forward):
  1. the base's embedding e of (t, cond) (and its caption tokens for the text model), frozen;
  2. the copy's input h_c = input_conv_c(x_t) + hint_encoder(c)  (hint encoder ends zeroed);
  3. the copy's encoder and middle, giving a feature map per skip s_k^c and the middle m^c;
  4. the base's encoder with skips s_k, middle m; then s_k <- s_k + strength * Z_k(s_k^c) and
     m <- m + strength * Z_mid(m^c);
  5. the base's decoder on those, unchanged.
At initialisation every Z is exactly 0, so the output is exactly the base's (eq. 2 with Z = 0),
and the gradient of the loss still reaches Z's weights (dL/dW_z = input * dL/dy, nonzero), so
training moves the zero convs first and then the copy behind them (the paper's section 3.1).

Where the denoiser contract ends: ControlledUNet is a network called model(x_t, t, cond, hint);
the control image is an extra input, not a denoiser argument. Bind it (`with_hint`) to get a
model(x_t, t, cond) that `dd.to_denoiser` turns into a denoiser like any other. A bound hint of
batch b serves an x_t of batch k * b by tiling (CFG runs the conditional and null branches as
one batch of 2B: the hint repeats for both).

Differences from the official code (github.com/lllyasviel/ControlNet, cldm.py), for a CPU-sized
teaching model: the hint encoder keeps the image's resolution (the official one downsamples
512 -> 64 to reach the latent size); the adapter reads the base's (frozen) timestep and
condition embedding instead of training its own copy of the time-embedding MLP.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import check_int, check_positive_int, check_real, check_tensor
from .embeddings import as_labels, as_timesteps, timestep_embedding
from .unet import Downsample, ResBlock, UNet, zero_module

__all__ = ["CONTROLS", "edge_map", "mask_map", "low_res", "make_hint", "edge_f1", "mask_iou", "adherence", "train_controlnet",
           "zero_conv", "base_embedding", "run_block", "parameter_share", "ControlNet", "ControlledUNet",
           "HintBound", "pretrained_controlled", "CHECKPOINT_MODELS"]


def zero_conv(channels: int) -> nn.Conv2d:
    """A 1x1 convolution (B, C, H, W) -> (B, C, H, W) with weight and bias 0: the paper's Z."""
    return zero_module(nn.Conv2d(channels, channels, 1))


def base_embedding(base: nn.Module, x: torch.Tensor, t, cond=None):
    """(emb (B, E), context (B, L, D) or None): the conditioning the base's blocks read, exactly
    as the base's own forward computes it in eval mode (no label dropout).
    x: (B, C, H, W). A base with an `embed(x, t, cond)` method (the caption model) supplies its
    own; a plain UNet gets its step 1: time MLP of the sinusoid, plus the label embedding."""
    if hasattr(base, "embed"):
        return base.embed(x, t, cond)
    B = x.shape[0]
    emb = base.time_embed(timestep_embedding(as_timesteps(t, B, x.device), base.base_channels))
    if base.num_classes is not None:
        y = as_labels(cond, B, base.num_classes, base.class_dropout_prob > 0, x.device)
        emb = emb + base.label_embed(y)
    elif cond is not None:
        raise ValueError("cond was given but the base UNet is unconditional (num_classes=None)")
    return emb, None


def run_block(block: nn.Module, h: torch.Tensor, emb: torch.Tensor, context=None) -> torch.Tensor:
    """One U-Net block on h: (B, C, H, W); blocks of the caption model also read `context`."""
    return block(h, emb) if context is None else block(h, emb, context)


def parameter_share(adapter: nn.Module, base: nn.Module) -> float:
    """Trainable parameters of the adapter / parameters of the base (a number, e.g. 0.45)."""
    n_base = sum(p.numel() for p in base.parameters())
    if n_base == 0:
        raise ValueError("base has no parameters")
    return sum(p.numel() for p in adapter.parameters()) / n_base


def _resolve_base(base_unet) -> UNet:
    """The base network: a UNet (or the caption model), or the name of a shipped checkpoint, loaded
    with its weights (so the copy starts as the trained base, as in the paper); on the meta device
    (load_model checking an adapter's file) only its architecture is built from the manifest."""
    if isinstance(base_unet, UNet):
        return base_unet
    if isinstance(base_unet, str):
        from ..train import checkpoints as ck
        if base_unet not in ck.shipped():
            raise ValueError(f"base_unet must be a UNet or the name of a shipped checkpoint, got {base_unet!r}; "
                             f"shipped: {ck.shipped()}")
        path = ck.checkpoint_path(base_unet)
        if torch.empty(0).device.type == "meta":     # load_model's shape check: architecture only
            meta, shapes = ck._open(path)
            model = ck._build_checked(ck._manifest_of(path, meta).get("model"), shapes, path.stat().st_size, path)
        else:                                        # the base's trained weights, as the paper's copy
            model = ck.load_model(path)
        if not isinstance(model, UNet):
            raise ValueError(f"base_unet {base_unet!r} is a {type(model).__name__}, not a UNet")
        return model
    raise TypeError(f"base_unet must be a diffedu UNet or a shipped checkpoint name, got {type(base_unet).__name__}")


# ----------------------------------------------------------------------------- controls
# Control images made from an image x: (B, 1, H, W) in [-1, 1], each (B, 1, H, W): what a user
# would draw (edges, a silhouette) or a thumbnail. The digits adapter reads all three stacked as
# CONTROLS order, an absent control being zeros.

CONTROLS = ("edges", "mask", "low_res")


def edge_map(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary edges {0, 1}: Sobel gradient magnitude of (x + 1) / 2, divided by 4 (a unit step
    gives 1), above `threshold`. x: (B, 1, H, W) -> (B, 1, H, W)."""
    check_tensor("x", x, ndim=4)
    threshold = check_real("threshold", threshold, lo=0, lo_open=True)
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    u = F.pad((x + 1) / 2, (1, 1, 1, 1), mode="replicate").reshape(-1, 1, x.shape[2] + 2, x.shape[3] + 2)
    gx, gy = F.conv2d(u, k[None, None]), F.conv2d(u, k.T[None, None])
    return ((gx ** 2 + gy ** 2).sqrt() / 4 > threshold).to(x.dtype).reshape(x.shape)


def mask_map(x: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Binary silhouette {0, 1}: x > threshold. x: (B, C, H, W) -> (B, 1, H, W) (any channel)."""
    check_tensor("x", x, ndim=4)
    return (x > check_real("threshold", threshold)).any(1, keepdim=True).to(x.dtype)


def low_res(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """A thumbnail: average-pool by `factor`, then nearest-upsample back. x: (B, C, H, W) ->
    (B, C, H, W), constant on factor x factor blocks."""
    check_tensor("x", x, ndim=4)
    factor = check_positive_int("factor", factor)
    if x.shape[2] % factor or x.shape[3] % factor:
        raise ValueError(f"factor={factor} must divide the image size {x.shape[2]}x{x.shape[3]}")
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")


def make_hint(x: torch.Tensor, use=CONTROLS) -> torch.Tensor:
    """The digits adapter's hint (B, 3, H, W) from images x: (B, 1, H, W): channels in CONTROLS
    order (edge_map, mask_map, low_res), those not in `use` set to 0."""
    bad = [u for u in use if u not in CONTROLS]
    if bad:
        raise ValueError(f"unknown controls {bad}; choose from {CONTROLS}")
    maps = {"edges": edge_map(x), "mask": mask_map(x), "low_res": low_res(x)}
    return torch.cat([maps[c] if c in use else torch.zeros_like(x) for c in CONTROLS], dim=1)


def edge_f1(x: torch.Tensor, edges: torch.Tensor, tolerance: int = 1) -> torch.Tensor:
    """Edge agreement of samples x: (B, 1, H, W) with target edges (B, 1, H, W) in {0, 1}: the F1
    score of edge_map(x) against `edges`, a pixel counting as matched when the other map has an
    edge within `tolerance` pixels (Chebyshev distance). Returns (B,) in [0, 1] (1 if both empty)."""
    check_tensor("x", x, ndim=4)
    check_tensor("edges", edges, ndim=4)
    e = edge_map(x)
    k = 2 * check_int("tolerance", tolerance, lo=0) + 1
    grow = lambda m: F.max_pool2d(m, k, stride=1, padding=k // 2)      # noqa: E731
    tp_p = (e * grow(edges)).flatten(1).sum(1)           # sample edges near a target edge
    tp_r = (edges * grow(e)).flatten(1).sum(1)           # target edges near a sample edge
    prec = tp_p / e.flatten(1).sum(1).clamp_min(1)
    rec = tp_r / edges.flatten(1).sum(1).clamp_min(1)
    f1 = 2 * prec * rec / (prec + rec).clamp_min(1e-12)
    both_empty = (e.flatten(1).sum(1) == 0) & (edges.flatten(1).sum(1) == 0)
    return torch.where(both_empty, torch.ones_like(f1), f1)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks a, b: (B, 1, H, W) -> (B,); 1 when both are empty (the convention
    that two empty masks agree)."""
    check_tensor("a", a, ndim=4, floating=False)
    check_tensor("b", b, ndim=4, floating=False)
    if a.shape != b.shape:
        raise ValueError(f"a has shape {tuple(a.shape)} but b has {tuple(b.shape)}; they must match")
    a, b = a.bool().flatten(1), b.bool().flatten(1)
    inter, union = (a & b).sum(1).float(), (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def adherence(samples: torch.Tensor, reference: torch.Tensor) -> dict:
    """How well samples (B, 1, H, W) follow the controls made from reference images (B, 1, H, W):
    {"edge F1": mean edge_f1 against edge_map(reference), "mask IoU": mean mask_iou of the
    silhouettes, "low-res MSE": mean squared error between the 4x thumbnails} (floats)."""
    check_tensor("samples", samples, ndim=4)
    check_tensor("reference", reference, ndim=4)
    if samples.shape != reference.shape:
        raise ValueError(f"samples {tuple(samples.shape)} and reference {tuple(reference.shape)} must have one shape")
    return {"edge F1": edge_f1(samples, edge_map(reference)).mean().item(),
            "mask IoU": mask_iou(mask_map(samples), mask_map(reference)).mean().item(),
            "low-res MSE": (low_res(samples) - low_res(reference)).pow(2).mean().item()}


# ----------------------------------------------------------------------------- modules

class ControlNet(nn.Module):
    """The adapter: a trainable copy of a U-Net's encoder and middle block, read by zero convs.

    base_unet: the frozen base (a `nets.unet.UNet`, or `nets.text.TextUNet`), or the name of a
      shipped checkpoint (how a saved adapter is rebuilt; its weights come from the adapter's file).
    hint_channels: channels of the control image c: (B, hint_channels, H, W), same H, W as x_t.
    hint_width: channels inside the hint encoder.
    Called as controlnet(x, hint, emb, context=None) -> (skip residuals, middle residual): a list
    with one (B, C_k, H_k, W_k) tensor per skip of the base (input conv, then each encoder block)
    and one (B, C_mid, H / f, W / f). Use it through `ControlledUNet`.
    """

    def __init__(self, base_unet, hint_channels: int, hint_width: int = 16):
        super().__init__()
        check_positive_int("hint_channels", hint_channels)
        check_positive_int("hint_width", hint_width)
        self.base_name = base_unet if isinstance(base_unet, str) else None
        base = _resolve_base(base_unet)
        self.hint_channels, self.in_channels = hint_channels, base.in_channels
        c0 = base.base_channels
        # The trainable copies F(.; Theta_c), starting from the base's weights (paper section 3.1).
        self.input_conv = copy.deepcopy(base.input_conv)
        self.down = copy.deepcopy(base.down)
        self.middle = copy.deepcopy(base.middle)
        self.requires_grad_(True)                        # the base may be frozen; the copy trains
        # Hint encoder: three 3x3 convs at full resolution; the last is zeroed, so that at init
        # the copy sees exactly input_conv(x) (the paper's Z(c; Theta_z1)).
        self.hint_encoder = nn.Sequential(
            nn.Conv2d(hint_channels, hint_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hint_width, hint_width, 3, padding=1), nn.SiLU(),
            zero_module(nn.Conv2d(hint_width, c0, 3, padding=1)))
        # One zero conv per skip: the input conv's output and every encoder block's output.
        skip_channels = [c0] + [_out_channels(block) for block in self.down]
        self.zero_convs = nn.ModuleList([zero_conv(c) for c in skip_channels])
        self.middle_zero_conv = zero_conv(skip_channels[-1])

    def forward(self, x: torch.Tensor, hint: torch.Tensor, emb: torch.Tensor, context=None):
        h = self.input_conv(x) + self.hint_encoder(hint)                  # step 2: (B, c0, H, W)
        outs = [self.zero_convs[0](h)]
        for block, zc in zip(self.down, self.zero_convs[1:]):            # step 3
            h = run_block(block, h, emb, context)
            outs.append(zc(h))
        h = run_block(self.middle, h, emb, context)
        return outs, self.middle_zero_conv(h)


def _out_channels(block: nn.Module) -> int:
    """Output channels of an encoder block: those of its last ResBlock or Downsample (attention
    layers keep the channel count)."""
    for m in reversed(list(block.children())):
        if isinstance(m, ResBlock):
            return m.conv2.out_channels
        if isinstance(m, Downsample):
            return m.conv.out_channels
    raise ValueError(f"cannot tell the output channels of {type(block).__name__}: no ResBlock or Downsample")


class ControlledUNet(nn.Module):
    """The base U-Net steered by a ControlNet: model(x_t, t, cond=None, hint=None).

    x_t: (B, C, H, W); t: (B,) steps; cond: whatever the base takes (class labels (B,), or
    captions for the text model); hint: (B, hint_channels, H, W) control image (a batch of b
    rows tiles to B = k * b), or None for the base alone. strength scales the adapter's
    residuals (0: the base; 1: as trained; > 1 exaggerates). Returns (B, C, H, W), the base's
    `prediction`. The base is frozen (requires_grad False) and stays in eval mode.
    """

    def __init__(self, base: nn.Module, controlnet: ControlNet, strength: float = 1.0):
        super().__init__()
        if not isinstance(base, UNet):
            raise TypeError(f"base must be a diffedu UNet (or TextUNet), got {type(base).__name__}")
        if not isinstance(controlnet, ControlNet):
            raise TypeError(f"controlnet must be a ControlNet, got {type(controlnet).__name__}")
        if len(controlnet.down) != len(base.down) or controlnet.in_channels != base.in_channels:
            raise ValueError("controlnet was built for a different base (encoder blocks or channels differ)")
        self.base = base.requires_grad_(False).eval()
        self.controlnet = controlnet
        self.strength = check_real("strength", strength)
        self.prediction = base.prediction
        self.num_classes = getattr(base, "num_classes", None)

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()                 # frozen: no label dropout or dropout in the base
        return self

    def _check_hint(self, hint, x):
        check_tensor("hint", hint, ndim=4)
        B, _, H, W = x.shape
        want = (self.controlnet.hint_channels, H, W)
        if tuple(hint.shape[1:]) != want:
            raise ValueError(f"hint must have shape (B, {want[0]}, {H}, {W}) to match x_t {tuple(x.shape)}, "
                             f"got {tuple(hint.shape)}")
        if len(hint) == 0 or B % len(hint):
            raise ValueError(f"hint has {len(hint)} rows; x_t has {B}, which must be a multiple of it")
        hint = hint.to(x.device, x.dtype)
        return hint.repeat(B // len(hint), 1, 1, 1) if len(hint) != B else hint

    def forward(self, x: torch.Tensor, t, cond=None, hint=None) -> torch.Tensor:
        base = self.base
        base.check_input(x)
        emb, context = base_embedding(base, x, t, cond)                  # step 1
        res, res_mid = None, None
        if hint is not None and self.strength != 0:                      # steps 2-3
            res, res_mid = self.controlnet(x, self._check_hint(hint, x), emb, context)
        h = base.input_conv(x)                                           # step 4: the base's encoder
        skips = [h]
        for block in base.down:
            h = run_block(block, h, emb, context)
            skips.append(h)
        h = run_block(base.middle, h, emb, context)
        if res is not None:
            s = self.strength
            skips = [sk + s * r for sk, r in zip(skips, res)]
            h = h + s * res_mid
        for block in base.up:                                            # step 5: the base's decoder
            h = run_block(block, torch.cat([h, skips.pop()], dim=1), emb, context)
        return base.out(h)

    def with_hint(self, hint: torch.Tensor, strength: float | None = None) -> "HintBound":
        """This model with `hint` (b, hint_channels, H, W) bound: m(x_t, t, cond=None).
        strength: overrides self.strength for the bound model (default: keep it)."""
        check_tensor("hint", hint, ndim=4)
        return HintBound(self, hint, self.strength if strength is None else check_real("strength", strength))


class HintBound(nn.Module):
    """A ControlledUNet with its control image bound, called model(x_t, t, cond=None): (B, C, H, W)
    -> (B, C, H, W). Built by `ControlledUNet.with_hint`; `.prediction`, `.num_classes` as the base."""

    def __init__(self, controlled: ControlledUNet, hint: torch.Tensor, strength: float):
        super().__init__()
        self.controlled, self.strength = controlled, strength
        self.register_buffer("hint", hint, persistent=False)
        self.prediction, self.num_classes = controlled.prediction, controlled.num_classes

    def forward(self, x, t, cond=None):
        keep, self.controlled.strength = self.controlled.strength, self.strength
        try:
            return self.controlled(x, t, cond, self.hint)
        finally:
            self.controlled.strength = keep


def pretrained_controlled(name: str, strength: float = 1.0, device=None) -> ControlledUNet:
    """A shipped adapter (e.g. "control/controlnet_digits") with its base checkpoint (named in
    the adapter's manifest), as one ControlledUNet in eval mode."""
    from ..train import checkpoints as ck
    adapter = ck.pretrained(name, device)
    if not isinstance(adapter, ControlNet) or adapter.base_name is None:
        raise ValueError(f"{name!r} is not a ControlNet checkpoint naming its base")
    base = ck.pretrained(adapter.base_name, device)
    return ControlledUNet(base, adapter, strength).eval()


def train_controlnet(base: str = "unet_digits", steps: int = 1500, batch_size: int = 64, lr: float = 1e-3,
                     seed: int = 0, null_prob: float = 0.5, progress: bool = True):
    """Train the digits adapter: hint = make_hint(x0) with each control kept with probability 1/2
    (at least one), the base's label replaced by its null label with probability `null_prob`
    (so the adapter works with and without a class), the denoising loss of the frozen base's
    `prediction`. base: a shipped class-conditional U-Net checkpoint on 16x16 digits.
    Returns (ema_adapter, losses, manifest dict) for save_checkpoint."""
    from ..data.images import digits
    from ..schedules import get_schedule
    from ..train.fit import fit
    from ..train.loss import diffusion_loss
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    net = ControlNet(base, len(CONTROLS))
    from ..train import checkpoints as ck
    model = ControlledUNet(ck.pretrained(base), net)
    x, y = digits(16, "train")
    schedule = get_schedule("linear", 1000)

    def batch_loss():
        i = torch.randint(0, len(x), (batch_size,), generator=g)
        x0, label = x[i], y[i]
        keep = torch.rand(batch_size, len(CONTROLS), generator=g) < 0.5
        none = ~keep.any(1)
        keep[none, torch.randint(0, len(CONTROLS), (int(none.sum()),), generator=g)] = True
        hint = make_hint(x0) * keep[:, :, None, None]
        label = torch.where(torch.rand(batch_size, generator=g) < null_prob, torch.full_like(label, 10), label)
        return diffusion_loss(lambda xt, t, c: model(xt, t, c, hint), x0, schedule, g, label, model.prediction)

    ema, losses = fit(net, batch_loss, steps, lr, ema=0.99, progress=progress, desc="controlnet")
    manifest = {"model": {"class": "diffedu.nets.control:ControlNet",
                          "kwargs": {"base_unet": base, "hint_channels": len(CONTROLS)}},
                "base": base, "controls": list(CONTROLS), "data": {"name": "digits", "kw": {"size": 16, "split": "train"}},
                "schedule": {"name": "linear", "T": 1000}, "prediction": model.prediction, "seed": seed,
                "steps": steps, "batch_size": batch_size, "lr": lr, "null_prob": null_prob,
                "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 5),
                "loss_curve": ck.loss_curve(losses, 50)}
    return ema, losses, manifest


CHECKPOINT_MODELS = (ControlNet,)
