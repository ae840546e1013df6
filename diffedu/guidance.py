"""Guidance: steer a diffusion model towards a class. Each guide wraps a denoiser and returns a
denoiser, so every sampler runs guided without change.

Notation (x_t = a x0 + s eps, a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar); score = -eps / s):
    classifier guidance     (Dhariwal & Nichol 2021, Algorithm 2 / eq. 14 analogue)
        eps~ = eps(x_t) - scale * s * grad_x log p_phi(y | x_t, t)
        i.e. score~ = score + scale * grad log p(y | x_t): the score of p_t(x) p_t(y | x)^scale
    classifier-free guidance (Ho & Salimans 2022, eq. 6)
        D_w = D(x_t, null) + w (D(x_t, y) - D(x_t, null))     (equally in eps: the map is affine)
        convention "scale" (default here): w = 1 conditional, w = 0 unconditional, w > 1 guided;
        convention "ho_salimans": eps~ = (1 + w) eps(y) - w eps(null), i.e. scale = 1 + w.
    Both give, at every t, the score of p_t(x | y)^w p_t(x)^(1-w); but the noisy version of the
    tilted law p(x | y)^w p(x)^(1-w) has a different score, so for w != 0, 1 guided samples do
    not follow the tilted density (diffedu.exact.guidance measures how, with exact ingredients).
A denoiser is called D(x_t, t, cond=None) with t the schedule's original timesteps (B,) and cond
class labels (B,) or an int; the guides can bind a label (cond=...) so samplers call D(x_t, t).
"""
from __future__ import annotations

import torch

from ._validate import check_callable, check_choice, check_index, check_int, check_real, check_schedule, check_tensor
from .denoiser import Denoiser, as_denoiser, t_batch
from .schedules import NoiseSchedule

CONVENTIONS = ("scale", "ho_salimans")


def _labels(cond, x: torch.Tensor, name: str = "cond") -> torch.Tensor:
    """Class labels: an int or an integer (B,) tensor (floats refused, not truncated)."""
    if cond is None:
        raise TypeError(f"{name} must be an int class label or a LongTensor (B,), got None")
    if isinstance(cond, torch.Tensor) and cond.device != x.device:
        cond = cond.to(x.device)
    return check_index(name, cond, len(x), device=x.device, of="x")


# -- classifier-free guidance ---------------------------------------------------------------
def _bound(bound, cond, who: str):
    """The label given at the call, else the one bound when the guide was built."""
    cond = bound if cond is None else cond
    if cond is None:
        raise ValueError(f"{who} needs a class label: pass cond=... when building the guide or when calling it")
    return cond


class ClassifierFreeGuidance(Denoiser):
    """D_w(x_t, t, cond) = D(x_t, t, null) + w (D(x_t, t, cond) - D(x_t, t, null)), and the same
    mix of eps; x_t: (B, ...). Conditional and null branches run as one batch of 2B.
    Built by `classifier_free_guidance`."""

    def __init__(self, denoiser, w: float, null_label: int, cond=None):
        self.inner, self.w, self.null_label, self.cond = as_denoiser(denoiser), w, null_label, cond
        self.schedule = self.inner.schedule

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        t, c = t_batch(t, x), _labels(_bound(self.cond, cond, "classifier-free guidance"), x)
        c2 = torch.cat([c, torch.full_like(c, self.null_label)])
        if isinstance(alpha_bar, torch.Tensor) and alpha_bar.ndim > 0 and len(alpha_bar) == len(x):
            alpha_bar = torch.cat([alpha_bar, alpha_bar])
        x0, eps = self.inner.x0_eps(torch.cat([x, x]), torch.cat([t, t]), c2, alpha_bar)
        (x0_c, x0_u), (eps_c, eps_u) = x0.chunk(2), eps.chunk(2)
        return x0_u + self.w * (x0_c - x0_u), eps_u + self.w * (eps_c - eps_u)


def classifier_free_guidance(denoiser, w: float, null_label: int | None = None, cond=None,
                             convention: str = "scale"):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6) around `denoiser` D(x_t, t, cond).

    w: guidance weight; convention "scale": D_u + w (D_c - D_u) (w = 1 conditional, 0 unconditional);
    "ho_salimans": (1 + w) D_c - w D_u (w = 0 conditional). null_label: the label that means "no
    class" (default: denoiser.model.num_classes, as nets.MLPDenoiser). cond: an optional label to
    bind, so that samplers can call the guide as D(x_t, t). Returns a denoiser."""
    check_callable("denoiser", denoiser, "D(x_t, t, cond)")
    w = check_real("w", w)
    check_choice("convention", convention, CONVENTIONS)
    if convention == "ho_salimans":
        w = 1.0 + w
    if null_label is None:
        model = getattr(denoiser, "model", denoiser)
        null_label = getattr(model, "num_classes", None)
        if null_label is None:
            raise ValueError("null_label is needed: the label that means 'unconditional' "
                             "(nets.MLPDenoiser uses num_classes)")
    null_label = check_int("null_label", null_label)
    return ClassifierFreeGuidance(denoiser, w, null_label, cond)


# -- classifier guidance --------------------------------------------------------------------
def classifier_log_prob_grad(classifier, x: torch.Tensor, t, y) -> torch.Tensor:
    """grad_x log p(y | x_t, t) for a classifier(x_t, t) -> logits (B, C); x: (B, ...), y: (B,) or int."""
    check_callable("classifier", classifier, "classifier(x_t, t) -> logits (B, C)")
    check_tensor("x", x, min_ndim=1)
    t = t_batch(t, x)
    y = _labels(y, x, "y")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = classifier(xg, t)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(x):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"classifier must return logits (B, C) = ({len(x)}, C), got {got}")
        logp = torch.log_softmax(logits, dim=-1)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logp.shape[1]):
            raise ValueError(f"y holds labels in [{int(y.min())}, {int(y.max())}]; the classifier has "
                             f"{logp.shape[1]} classes, so allowed [0, {logp.shape[1] - 1}]")
        sel = logp.gather(1, y[:, None]).sum()
        return torch.autograd.grad(sel, xg)[0]


class ClassifierGuidance(Denoiser):
    """eps~ = eps - scale * sqrt(1 - alpha_bar) * grad_x log p(y | x_t, t); x0~ from eps~.
    Built by `classifier_guidance`."""

    def __init__(self, denoiser, classifier, scale: float, schedule: NoiseSchedule, cond=None):
        self.inner, self.classifier, self.scale, self.schedule, self.cond = (
            as_denoiser(denoiser, schedule), classifier, scale, schedule, cond)

    def x0_eps(self, x: torch.Tensor, t, cond=None, alpha_bar=None):
        cond = _bound(self.cond, cond, "classifier guidance")
        t = t_batch(t, x)
        ab = self.schedule.alpha_bar_of(t, x)
        # 1. the unguided prediction; 2. the classifier's gradient; 3. tilt eps (and so x0)
        _, eps = self.inner.x0_eps(x, t, alpha_bar=ab)
        grad = classifier_log_prob_grad(self.classifier, x, t, cond)
        eps = eps - self.scale * (1 - ab).sqrt() * grad
        return (x - (1 - ab).sqrt() * eps) / ab.sqrt(), eps


def classifier_guidance(denoiser, classifier, scale: float, schedule: NoiseSchedule | None = None, cond=None):
    """Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2 for DDIM): the (unconditional)
    denoiser D(x_t, t) tilted by a noise-conditional classifier(x_t, t) -> logits (B, C) with
    weight `scale`. schedule: the denoiser's (default denoiser.schedule). cond: an optional label
    to bind. Returns a denoiser with .x0_eps."""
    check_callable("denoiser", denoiser, "D(x_t, t)")
    check_callable("classifier", classifier, "classifier(x_t, t) -> logits (B, C)")
    scale = check_real("scale", scale)
    schedule = schedule if schedule is not None else getattr(denoiser, "schedule", None)
    check_schedule(schedule)
    return ClassifierGuidance(denoiser, classifier, scale, schedule, cond)
