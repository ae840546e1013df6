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
    not follow the tilted density (`tilted_density_grid`, `compare_cfg_with_tilted` measure how).
A denoiser is called D(x_t, t, cond=None) with t the schedule's original timesteps (B,) and cond
class labels (B,) or an int; the guides can bind a label (cond=...) so samplers call D(x_t, t).
"""
from __future__ import annotations

import numbers

import torch

from ._validate import check_choice, check_positive_int, check_tensor
from .gmm import GaussianMixture
from .samplers import x0_and_eps
from .schedules import NoiseSchedule

CONVENTIONS = ("scale", "ho_salimans")


def _t_batch(t, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, device=x.device)
    return t.expand(len(x)) if t.ndim == 0 else t


def _labels(cond, x: torch.Tensor, name: str = "cond") -> torch.Tensor:
    if isinstance(cond, bool) or cond is None:
        raise TypeError(f"{name} must be an int class label or a LongTensor (B,), got {cond!r}")
    c = torch.as_tensor(cond, device=x.device)
    if c.is_floating_point():
        raise TypeError(f"{name} must hold integer class labels, got dtype {c.dtype}")
    c = c.long()
    if c.ndim == 0:
        c = c.expand(len(x))
    if c.shape != (len(x),):
        raise ValueError(f"{name} must be an int or shape ({len(x)},), got shape {tuple(c.shape)}")
    return c


def _check_number(name: str, w) -> float:
    if isinstance(w, bool) or not isinstance(w, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(w).__name__} {w!r}")
    return float(w)


def _check_schedule(schedule):
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")


# -- classifier-free guidance ---------------------------------------------------------------
class ClassifierFreeGuidance:
    """D_w(x_t, t, cond) = D(x_t, t, null) + w (D(x_t, t, cond) - D(x_t, t, null)); x_t: (B, ...).
    Conditional and null branches run as one batch of 2B. Built by `classifier_free_guidance`."""

    def __init__(self, denoiser, w: float, null_label: int, cond=None):
        self.denoiser, self.w, self.null_label, self.cond = denoiser, w, null_label, cond
        self.schedule = getattr(denoiser, "schedule", None)

    def _both(self, x, t, cond):
        """Run the inner denoiser on [x, x] with labels [cond, null]; returns a pair of outputs."""
        cond = self.cond if cond is None else cond
        if cond is None:
            raise ValueError("classifier-free guidance needs a class label: pass cond=... when "
                             "building the guide or when calling it")
        c = _labels(cond, x)
        t = _t_batch(t, x)
        x2, t2 = torch.cat([x, x]), torch.cat([t, t])
        c2 = torch.cat([c, torch.full_like(c, self.null_label)])
        if hasattr(self.denoiser, "x0_eps"):
            out = self.denoiser.x0_eps(x2, t2, c2)
            return [o.chunk(2) for o in out]
        return [self.denoiser(x2, t2, c2).chunk(2)]

    def _mix(self, pair):
        on, off = pair
        return off + self.w * (on - off)

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self._mix(self._both(x, t, cond)[0])


class _ClassifierFreeGuidanceEps(ClassifierFreeGuidance):
    """The same, for inner denoisers that also give eps (param.Denoiser): mixes eps too."""

    def x0_eps(self, x: torch.Tensor, t, cond=None):
        x0_pair, eps_pair = self._both(x, t, cond)
        return self._mix(x0_pair), self._mix(eps_pair)

    def eps(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[1]


def classifier_free_guidance(denoiser, w: float, null_label: int | None = None, cond=None,
                             convention: str = "scale"):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6) around `denoiser` D(x_t, t, cond).

    w: guidance weight; convention "scale": D_u + w (D_c - D_u) (w = 1 conditional, 0 unconditional);
    "ho_salimans": (1 + w) D_c - w D_u (w = 0 conditional). null_label: the label that means "no
    class" (default: denoiser.model.num_classes, as nets.MLPDenoiser). cond: an optional label to
    bind, so that samplers can call the guide as D(x_t, t). Returns a denoiser."""
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x_t, t, cond), got {type(denoiser).__name__}")
    w = _check_number("w", w)
    check_choice("convention", convention, CONVENTIONS)
    if convention == "ho_salimans":
        w = 1.0 + w
    if null_label is None:
        model = getattr(denoiser, "model", denoiser)
        null_label = getattr(model, "num_classes", None)
        if null_label is None:
            raise ValueError("null_label is needed: the label that means 'unconditional' "
                             "(nets.MLPDenoiser uses num_classes)")
    if isinstance(null_label, bool) or not isinstance(null_label, int):
        raise TypeError(f"null_label must be an int, got {null_label!r}")
    cls = _ClassifierFreeGuidanceEps if hasattr(denoiser, "x0_eps") else ClassifierFreeGuidance
    return cls(denoiser, w, null_label, cond)


# -- classifier guidance --------------------------------------------------------------------
def classifier_log_prob_grad(classifier, x: torch.Tensor, t, y) -> torch.Tensor:
    """grad_x log p(y | x_t, t) for a classifier(x_t, t) -> logits (B, C); x: (B, ...), y: (B,) or int."""
    y = _labels(y, x, "y")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logp = torch.log_softmax(classifier(xg, _t_batch(t, x)), dim=-1)
        if logp.ndim != 2 or logp.shape[0] != len(x):
            raise ValueError(f"classifier must return logits (B, C) = ({len(x)}, C), got {tuple(logp.shape)}")
        sel = logp.gather(1, y[:, None]).sum()
        return torch.autograd.grad(sel, xg)[0]


class ClassifierGuidance:
    """eps~ = eps - scale * sqrt(1 - alpha_bar) * grad_x log p(y | x_t, t); x0~ from eps~.
    Built by `classifier_guidance`."""

    def __init__(self, denoiser, classifier, scale: float, schedule: NoiseSchedule, cond=None):
        self.denoiser, self.classifier, self.scale, self.schedule, self.cond = denoiser, classifier, scale, schedule, cond

    def x0_eps(self, x: torch.Tensor, t, cond=None):
        cond = self.cond if cond is None else cond
        if cond is None:
            raise ValueError("classifier guidance needs a class label: pass cond=... when building "
                             "the guide or when calling it")
        t = _t_batch(t, x)
        ab = self.schedule.alpha_bar[self.schedule.index_of(t.cpu())]
        ab = ab.to(device=x.device, dtype=x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
        # 1. the unguided prediction; 2. the classifier's gradient; 3. tilt eps (and so x0)
        _, eps = x0_and_eps(self.denoiser, x, t, ab)
        grad = classifier_log_prob_grad(self.classifier, x, t, cond)
        eps = eps - self.scale * (1 - ab).sqrt() * grad
        return (x - (1 - ab).sqrt() * eps) / ab.sqrt(), eps

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[0]

    def eps(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[1]


def classifier_guidance(denoiser, classifier, scale: float, schedule: NoiseSchedule | None = None, cond=None):
    """Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2 for DDIM): the (unconditional)
    denoiser D(x_t, t) tilted by a noise-conditional classifier(x_t, t) -> logits (B, C) with
    weight `scale`. schedule: the denoiser's (default denoiser.schedule). cond: an optional label
    to bind. Returns a denoiser with .x0_eps."""
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x_t, t), got {type(denoiser).__name__}")
    if not callable(classifier):
        raise TypeError(f"classifier must be callable as classifier(x_t, t) -> logits, got {type(classifier).__name__}")
    scale = _check_number("scale", scale)
    schedule = schedule if schedule is not None else getattr(denoiser, "schedule", None)
    _check_schedule(schedule)
    return ClassifierGuidance(denoiser, classifier, scale, schedule, cond)


# -- exact guidance on a class-conditional Gaussian mixture -----------------------------------
def _check_labelled(gmm):
    if not isinstance(gmm, GaussianMixture):
        raise TypeError(f"gmm must be a GaussianMixture, got {type(gmm).__name__}")
    if gmm.labels is None:
        raise ValueError("gmm has no labels; build it with labels=(K,) (the class of each component)")


class GMMClassDenoiser:
    """The exact E[x0 | x_t, y] of a labelled mixture (y = null_label or None: E[x0 | x_t]).
    D(x_t, t, cond=None), x_t: (B, D), t: original timesteps of `schedule`; also .x0_eps."""

    def __init__(self, gmm: GaussianMixture, schedule: NoiseSchedule, null_label: int = -1):
        self.gmm, self.schedule, self.null_label = gmm, schedule, null_label
        self._parts = {}

    def _part(self, label: int) -> GaussianMixture:
        if label == self.null_label:
            return self.gmm
        if label not in self._parts:
            self._parts[label] = self.gmm.condition(label)
        return self._parts[label]

    def x0_eps(self, x: torch.Tensor, t, cond=None):
        check_tensor("x", x, ndim=2)
        t = _t_batch(t, x).cpu()
        c = torch.full((len(x),), self.null_label, dtype=torch.long) if cond is None else _labels(cond, x).cpu()
        x0 = torch.empty_like(x)
        for tv in torch.unique(t):
            for cv in torch.unique(c[t == tv]):
                rows = ((t == tv) & (c == cv)).nonzero()[:, 0].to(x.device)
                ab = float(self.schedule.alpha_bar[self.schedule.index_of(tv)])
                x0[rows] = self._part(int(cv)).denoiser(x[rows], ab)
        ab = self.schedule.alpha_bar[self.schedule.index_of(t)].to(x.device, x.dtype)[:, None]
        return x0, (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    def __call__(self, x: torch.Tensor, t, cond=None) -> torch.Tensor:
        return self.x0_eps(x, t, cond)[0]


def gmm_class_denoiser(gmm: GaussianMixture, schedule: NoiseSchedule, null_label: int = -1) -> GMMClassDenoiser:
    """Exact class-conditional denoiser D(x_t, t, y) of a labelled mixture (null_label: unconditional)."""
    _check_labelled(gmm)
    _check_schedule(schedule)
    return GMMClassDenoiser(gmm, schedule, null_label)


def gmm_classifier(gmm: GaussianMixture, schedule: NoiseSchedule):
    """The exact noisy classifier log p(y | x_t) = log sum_{k: label_k = y} r_k(x_t) as a callable
    (x_t (B, D), t) -> (B, C) log-probabilities (C = max label + 1), differentiable in x_t."""
    _check_labelled(gmm)
    _check_schedule(schedule)
    C = int(gmm.labels.max()) + 1
    onehot = torch.nn.functional.one_hot(gmm.labels, C).double()          # (K, C)

    def log_probs(x, t):
        t = _t_batch(t, x).cpu()
        out = []
        for tv in torch.unique(t):
            rows = (t == tv).nonzero()[:, 0].to(x.device)
            ab = float(schedule.alpha_bar[schedule.index_of(tv)])
            logp_k, _ = gmm.noisy(ab)._component_logpdf(x[rows].to(torch.float64).cpu())   # (n, K)
            joint = torch.logsumexp(logp_k[:, :, None] + onehot.log()[None], dim=1)     # (n, C)
            out.append((rows, joint - torch.logsumexp(joint, 1, keepdim=True)))
        res = torch.empty(len(x), C, dtype=torch.float64)
        if len(out) == 1:
            return out[0][1].to(x.dtype).to(x.device)
        for rows, v in out:
            res[rows.cpu()] = v
        return res.to(x.dtype).to(x.device)
    return log_probs


def exact_cfg_denoiser(gmm: GaussianMixture, schedule: NoiseSchedule, label: int, w: float,
                       convention: str = "scale"):
    """Classifier-free guidance with the exact conditional and unconditional denoisers of a
    labelled mixture, bound to `label`: D_w(x_t, t) for any sampler."""
    return classifier_free_guidance(gmm_class_denoiser(gmm, schedule, -1), w, -1, label, convention)


# -- the tilted density p(x | y)^w p(x)^(1 - w), on a grid --------------------------------------
def _grid_axes(lim, n):
    if isinstance(lim, numbers.Real):
        lim = (-lim, lim, -lim, lim)
    if len(lim) != 4 or not (lim[0] < lim[1] and lim[2] < lim[3]):
        raise ValueError(f"lim must be a positive number or (xmin, xmax, ymin, ymax), got {lim!r}")
    check_positive_int("n", n)
    # cell centres
    xs = lim[0] + (torch.arange(n, dtype=torch.float64) + 0.5) * (lim[1] - lim[0]) / n
    ys = lim[2] + (torch.arange(n, dtype=torch.float64) + 0.5) * (lim[3] - lim[2]) / n
    return xs, ys


def tilted_log_density(gmm: GaussianMixture, label: int, w: float, x: torch.Tensor) -> torch.Tensor:
    """Unnormalised log of p(x | y)^w p(x)^(1 - w) at x: (N, D)."""
    _check_labelled(gmm)
    w = _check_number("w", w)
    return w * gmm.condition(label).log_prob(x) + (1 - w) * gmm.log_prob(x)


def tilted_density_grid(gmm: GaussianMixture, label: int, w: float, lim=5.0, n: int = 200):
    """The tilted density q_w(x) = p(x | y)^w p(x)^(1 - w) / Z of a 2D labelled mixture on an n x n
    grid of cell centres over lim (a number L: [-L, L]^2; or (xmin, xmax, ymin, ymax)), normalised
    numerically (sum q dA = 1). Returns (xs (n,), ys (n,), q (n, n)) with q[i, j] at (xs[j], ys[i])
    (matplotlib's contour/imshow layout)."""
    _check_labelled(gmm)
    if gmm.D != 2:
        raise ValueError(f"tilted_density_grid needs a 2D mixture, got D = {gmm.D}")
    xs, ys = _grid_axes(lim, n)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")                     # (n, n): X[i, j] = xs[j]
    logq = tilted_log_density(gmm, label, w, torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).reshape(n, n)
    dA = float((xs[1] - xs[0]) * (ys[1] - ys[0])) if n > 1 else 1.0
    q = torch.softmax(logq.reshape(-1), 0).reshape(n, n) / dA
    return xs, ys, q


def sample_from_grid(xs: torch.Tensor, ys: torch.Tensor, density: torch.Tensor, n: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples (n, 2) float32 from a density on a grid of cell centres (as tilted_density_grid
    returns): pick cells with probability q dA, then a uniform point inside the cell."""
    check_positive_int("n", n)
    if density.shape != (len(ys), len(xs)):
        raise ValueError(f"density must have shape (len(ys), len(xs)) = ({len(ys)}, {len(xs)}), "
                         f"got {tuple(density.shape)}")
    p = density.reshape(-1).double().clamp_min(0)
    idx = torch.multinomial(p / p.sum(), n, replacement=True, generator=generator)
    i, j = idx // len(xs), idx % len(xs)
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
    return torch.stack([xs[j] + u[:, 0] * dx, ys[i] + u[:, 1] * dy], 1).float()


def _spread(x: torch.Tensor) -> float:
    """sqrt(trace Cov(x)): the size of a sample cloud."""
    return float(x.double().var(0).sum().sqrt())


def _within(x: torch.Tensor, part: GaussianMixture) -> float:
    """RMS distance of each sample to the mean of its most likely component of `part`."""
    k = part.responsibilities(x.double()).argmax(1)
    return float(((x.double() - part.means[k]) ** 2).sum(1).mean().sqrt())


def compare_cfg_with_tilted(gmm: GaussianMixture, label: int, ws=(0.0, 1.0, 2.0, 4.0), schedule=None,
                            n: int = 2000, steps: int = 100, sampler: str = "ddim", lim=6.0,
                            grid: int = 300, seed: int = 0, p: int = 1) -> list[dict]:
    """What does CFG with weight w sample? For each w: samples of the exact CFG denoiser (DDIM
    eta = 0 or DDPM) against samples of the tilted density q_w on a grid; distances are sliced
    Wasserstein-p (p = 1 by default: W2 is dominated by the sampling noise of the mode weights,
    mass moved between far-apart modes). Returns one dict per w:
    {'w', 'sw' (sliced Wasserstein CFG vs q_w), 'sw_floor' (q_w vs an independent q_w sample),
    'sw_cond' (CFG vs p(x | y)), 'spread_cfg', 'spread_tilted' (sqrt trace Cov), 'within_cfg',
    'within_tilted' (RMS distance to the nearest component mean of class y: sharpening),
    'mean_cfg', 'mean_tilted'}."""
    from .metrics import sliced_wasserstein
    from .samplers import ddim, ddpm
    from .schedules import linear_schedule
    _check_labelled(gmm)
    check_choice("sampler", sampler, ("ddim", "ddpm"))
    schedule = linear_schedule(1000) if schedule is None else schedule
    part = gmm.condition(label)
    cond = part.sample(n, torch.Generator().manual_seed(seed + 1))
    rows = []
    for w in ws:
        gen = torch.Generator().manual_seed(seed)
        D = exact_cfg_denoiser(gmm, schedule, label, w)
        xT = torch.randn(n, gmm.D, generator=gen, dtype=torch.float64)
        x = (ddim(D, xT, schedule, steps) if sampler == "ddim" else ddpm(D, xT, schedule, steps, generator=gen)).float()
        xs, ys, q = tilted_density_grid(gmm, label, w, lim, grid)
        t1, t2 = sample_from_grid(xs, ys, q, n, gen), sample_from_grid(xs, ys, q, n, gen)
        sw = lambda a, b: sliced_wasserstein(a, b, p=p)
        rows.append({"w": float(w), "sw": sw(x, t1), "sw_floor": sw(t1, t2), "sw_cond": sw(x, cond),
                     "spread_cfg": _spread(x), "spread_tilted": _spread(t1),
                     "within_cfg": _within(x, part), "within_tilted": _within(t1, part),
                     "mean_cfg": x.double().mean(0).tolist(), "mean_tilted": t1.double().mean(0).tolist()})
    return rows
