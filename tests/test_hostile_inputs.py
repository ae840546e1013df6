"""Hostile and careless input (issue 10): a table of the public API, and for every argument a set
of bad values generated from a valid one (non-finite, empty, wrong shape, wrong dtype, wrong type;
for callables, answers of the wrong shape, NaN, None or a string). Each call must either

  * raise ValueError or TypeError whose message names the argument (or an alias listed in the
    table: a denoiser's bad answer may be reported as "the model's" or "the denoiser's"), or
  * return a result of the right shape (following the input's shape where the result had it)
    that is finite, except in the rows that hold an injected NaN / inf: one bad row must not
    poison a whole batch.

The valid call of every case must itself give a finite result, so every test can fail.
Checkpoints are in test_checkpoint_security.py; widgets are tested by their own module.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch

import diffedu as dd
from diffedu import flow as F
from diffedu import guidance as G
from diffedu import sde as S
from diffedu.exact import guidance as EG
from diffedu.exact import posterior_benchmark as PB
from diffedu.inverse import operators as ops
from diffedu.inverse import classical, pnp, diffusion_prior as DP
from diffedu.inverse import posterior as post
from diffedu.likelihood import log_likelihood
from diffedu.nets import embeddings as emb
from diffedu.nets.autoencoder import Autoencoder
from diffedu.nets.classifier import ImageClassifier, PointClassifier, log_prob
from diffedu.nets.dit import DiT
from diffedu.nets.mlp import MLPDenoiser
from diffedu.nets.mmdit import MMDiT
from diffedu.nets.unet import UNet

B, D, H = 3, 2, 8          # batch, point dimension, image size (distinct, so the batch axis is found)
NAN, INF = float("nan"), float("inf")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def pts(seed=0, b=B):
    return torch.randn(b, D, generator=gen(seed))


def imgs(seed=0, c=1, h=H):
    return torch.randn(B, c, h, h, generator=gen(seed)).clamp(-1, 1)


torch.manual_seed(0)
SCHED = dd.linear_schedule(10)
GMM = dd.GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]], 0.2, labels=[0, 1])
D_GMM = GMM.as_denoiser(SCHED)
MLP = MLPDenoiser(hidden=8, depth=1, t_dim=8).eval().requires_grad_(False)
MLPC = MLPDenoiser(hidden=8, depth=1, t_dim=8, num_classes=2).eval().requires_grad_(False)
D_NET = dd.to_denoiser(MLP, SCHED)
VP = S.VPSDE()
T_MID = int(SCHED.timesteps[5])
DENSE = ops.Dense(torch.tensor([[1.0, 0.5]]))          # y = H x, (1, 2)
BLUR = ops.Blur(ops.gaussian_kernel(3, 1.0), H, 1)
INPAINT = ops.Inpainting(ops.box_mask(H, 4), 1)
POINT_CLS = PointClassifier(dim=D, num_classes=2, hidden=8, depth=1, t_dim=8).eval()


def den_fn(x, t):
    """A plain-callable denoiser (the exact one of GMM)."""
    return D_GMM(x, t)


def score_fn(x, t):
    return S.gmm_score_fn(GMM, VP)(x, t)


def velocity_fn(x, tau):
    return F.gmm_velocity(GMM, "linear")(x, tau)


def sigma_fn(x, sigma):
    return dd.sigma_denoiser(D_GMM)(x, sigma)


def img_den(x, t):
    return 0.9 * x


def img_sigma_den(x, sigma):
    return 0.9 * x


def tiny_unet(**kw):
    return UNet(base_channels=8, channel_mult=(1, 2), attention_levels=(), num_heads=1, **kw).eval()


def tiny_dit(**kw):
    return DiT(input_size=H, patch_size=2, hidden_size=16, depth=1, num_heads=2, **kw).eval()


def tiny_mmdit(**kw):
    return MMDiT(input_size=H, patch_size=2, hidden_size=16, depth=2, num_heads=2, **kw).eval()


UNET, DIT, MMDIT = tiny_unet(), tiny_dit(), tiny_mmdit()
IMG_CLS = ImageClassifier(base_channels=8, channel_mult=(1, 2), num_heads=1, attention=False).eval()
AE = Autoencoder(base_channels=8, channel_mult=(1, 2)).eval()


# -- bad values, generated from a valid one ------------------------------------------------------
def _nan_row(v, value=NAN):
    v = v.clone()
    v.reshape(len(v), -1)[0, 0] = value
    return v


def bad_real(v):
    return [("nan", NAN), ("inf", INF), ("-inf", -INF), ("str", "0.5"), ("vector", torch.tensor([0.5, 0.5])),
            ("list", [0.5])]


def bad_int(v):
    return [("negative", -1), ("float", 2.5), ("str", "3"), ("bool", True), ("nan", NAN), ("tensor_float", torch.tensor(2.0))]


def bad_batch(v):
    """Bad versions of a (B, ...) float tensor."""
    return [("nan_row", _nan_row(v)), ("inf_row", _nan_row(v, INF)), ("empty", v[:0]), ("extra_dim", v[..., None]),
            ("missing_dim", v[0]), ("int", (3 * v).round().long()), ("float64", v.double()), ("list", v.tolist()),
            ("none", None), ("str", "x")]


def bad_tensor(v):
    """Bad versions of a tensor without a batch dimension (betas, a matrix, a kernel)."""
    flat_nan = v.clone().double()
    flat_nan.reshape(-1)[0] = NAN
    flat_inf = v.clone().double()
    flat_inf.reshape(-1)[-1] = INF
    return [("nan", flat_nan.to(v.dtype)), ("inf", flat_inf.to(v.dtype)), ("empty", v.reshape(-1)[:0]),
            ("extra_dim", v[None, None]), ("none", None), ("str", "x"), ("dict", {"a": 1})]


def bad_callable(v):
    """A callable f(x, ...) -> tensor like x, and careless versions of it."""
    def wrap(post):
        return lambda x, *a, **k: post(v(x, *a, **k), x)
    return [("none", None), ("str", "f"), ("number", 3),
            ("returns_none", wrap(lambda out, x: None)),
            ("returns_column", wrap(lambda out, x: out.reshape(len(out), -1)[:, :1])),
            ("returns_one_row", wrap(lambda out, x: out[:1])),
            ("returns_nan", wrap(lambda out, x: out * NAN)),
            ("returns_str", wrap(lambda out, x: "x0")),
            ("returns_float64", wrap(lambda out, x: out.double() if out.dtype != torch.float64 else out.float()))]


def bad_schedule(v):
    return [("none", None), ("str", "linear"), ("number", 10), ("tensor", SCHED.alpha_bar)]


def bad_labels(v):
    """Bad class labels (B,) for a model with 2 classes."""
    return [("float", v.float() + 0.5), ("wrong_length", v[:2]), ("python_float", 1.5), ("str", "cat"),
            ("negative", torch.full_like(v, -1)), ("too_large", torch.full_like(v, 99)), ("bool", torch.ones(B, dtype=torch.bool))]


def bad_steps_t(v):
    """Bad integer timesteps t for SCHED (an int or a (B,) long tensor)."""
    return [("float_tensor", torch.full((B,), float(T_MID) + 0.5)), ("python_float", T_MID + 0.5),
            ("wrong_length", torch.full((2,), T_MID)), ("str", "5"), ("nan", NAN), ("not_in_schedule", 99999),
            ("negative", -1), ("none", None)]


def bad_times(v):
    """Bad continuous times (tau or t in [0, 1]): a number or a (B,) tensor."""
    return [("nan", NAN), ("inf", INF), ("outside", 1.5), ("negative", -0.5), ("str", "0.5"),
            ("wrong_length", torch.full((2,), 0.5)), ("nan_tensor", torch.full((B,), NAN)), ("none", None)]


def bad_str(v):
    return [("unknown", "no_such_thing"), ("number", 3), ("none", None)]


def bad_generic(v):
    return [("none", None), ("str", "x"), ("number", 3)]


KINDS = {"real": bad_real, "int": bad_int, "batch": bad_batch, "tensor": bad_tensor, "callable": bad_callable,
         "schedule": bad_schedule, "labels": bad_labels, "t": bad_steps_t, "times": bad_times, "str": bad_str,
         "obj": bad_generic}


@dataclass
class Case:
    name: str
    fn: Callable                 # fn(**kwargs) -> result (tensors, numbers, or nested tuples of them)
    make: Callable               # () -> valid kwargs
    kinds: dict                  # argument -> kind (a key of KINDS), or (kind, [(label, extra bad value)])
    aliases: dict = field(default_factory=dict)    # argument -> other names a message may use
    valid_extra: tuple = ()      # mutation labels that are valid inputs for this argument


CASES: list[Case] = []


def case(name, fn, make, /, aliases=None, valid_extra=(), **kinds):
    CASES.append(Case(name, fn, make, kinds, aliases or {}, valid_extra))


# -- the table: core ------------------------------------------------------------------------------
AB10 = SCHED.alpha_bar.float()
case("NoiseSchedule", lambda **k: dd.NoiseSchedule(**k).alpha_bar, lambda: dict(alpha_bar=AB10, timesteps=torch.arange(10)),
     alpha_bar=("tensor", [("increasing", AB10.flip(0)), ("above_one", AB10 + 1)]),
     timesteps=("tensor", [("float", torch.arange(10) + 0.5), ("unsorted", torch.arange(10).flip(0)),
                           ("repeated", torch.zeros(10, dtype=torch.long)), ("negative", torch.arange(10) - 5)]))
case("from_betas", lambda **k: dd.from_betas(**k).alpha_bar, lambda: dict(betas=torch.linspace(1e-3, 0.2, 10)), betas="tensor")
case("linear_schedule", lambda **k: dd.linear_schedule(**k).alpha_bar, lambda: dict(T=10, beta_start=1e-3, beta_end=0.2),
     T="int", beta_start=("real", [("zero", 0.0), ("one", 1.0)]), beta_end="real")
case("cosine_schedule", lambda **k: dd.cosine_schedule(**k).alpha_bar, lambda: dict(T=10, s=0.008, max_beta=0.999),
     T="int", s=("real", [("zero", 0.0)]), max_beta=("real", [("one", 1.0), ("zero", 0.0)]))
case("sigmoid_schedule", lambda **k: dd.sigmoid_schedule(**k).alpha_bar, lambda: dict(T=10, start=-3.0, end=3.0, tau=1.0),
     T="int", start="real", end="real", tau=("real", [("zero", 0.0)]))
case("karras_sigmas", dd.karras_sigmas, lambda: dict(n=5, sigma_min=0.002, sigma_max=80.0, rho=7.0),
     n="int", sigma_min=("real", [("zero", 0.0)]), sigma_max="real", rho=("real", [("zero", 0.0)]))
case("karras_schedule", lambda **k: dd.karras_schedule(**k).alpha_bar, lambda: dict(n=5, sigma_min=0.002, sigma_max=80.0, rho=7.0),
     n="int", sigma_min="real", sigma_max="real", rho="real")
case("get_schedule", lambda **k: dd.get_schedule(**k).alpha_bar, lambda: dict(name="cosine", T=10),
     aliases={"name": ["schedule"]}, name="str", T="int")
case("respace", lambda s, **k: s.respace(**k).alpha_bar, lambda: dict(s=SCHED, steps=4, spacing="trailing"),
     steps="int", spacing="str")
case("schedule.at", lambda i, like: SCHED.at(i, like), lambda: dict(i=torch.tensor([0, 4, 9]), like=pts()),
     i=("t", [("out_of_range", torch.tensor([0, 4, 10]))]), like="batch")
case("schedule.alpha_bar_of", lambda t, like: SCHED.alpha_bar_of(t, like), lambda: dict(t=torch.tensor([0, 4, 9]), like=pts()),
     t="t", like="batch")
case("schedule.locate", lambda alpha_bar: SCHED.locate(alpha_bar), lambda: dict(alpha_bar=0.5), alpha_bar="real")
case("schedule.nearest", lambda alpha_bar: SCHED.nearest(alpha_bar), lambda: dict(alpha_bar=0.5), alpha_bar="real")

case("q_sample", dd.q_sample, lambda: dict(x0=pts(), i=torch.tensor([0, 4, 9]), schedule=SCHED, eps=pts(1)),
     x0="batch", i=("t", [("out_of_range", 10)]), schedule="schedule", eps="batch")
case("q_posterior", dd.q_posterior, lambda: dict(x0=pts(), xt=pts(1), i=3, schedule=SCHED),
     x0="batch", xt="batch", i=("int", [("zero", 0), ("too_large", 10)]), schedule="schedule")
case("forward_trajectory", dd.forward_trajectory, lambda: dict(x0=pts(), schedule=SCHED, generator=gen()),
     x0="batch", schedule="schedule")

case("to_x0_eps", dd.to_x0_eps, lambda: dict(out=pts(), xt=pts(1), alpha_bar=0.5, prediction="v"),
     out="batch", xt="batch", alpha_bar=("real", [("zero", 0.0), ("above_one", 1.5)]), prediction="str")
case("from_x0_eps", dd.from_x0_eps, lambda: dict(x0=pts(), eps=pts(1), alpha_bar=0.5, prediction="v"),
     x0="batch", eps="batch", alpha_bar="real", prediction="str")
case("convert", dd.convert, lambda: dict(out=pts(), xt=pts(1), alpha_bar=0.5, src="eps", dst="x0"),
     aliases={"src": ["prediction"], "dst": ["prediction"]}, out="batch", xt="batch", alpha_bar="real", src="str", dst="str")
case("tweedie", dd.tweedie, lambda: dict(xt=pts(), score=pts(1), alpha_bar=0.5), xt="batch", score="batch", alpha_bar="real")

case("to_denoiser", lambda x, t, **k: dd.to_denoiser(**k)(x, t), lambda: dict(model=MLP, schedule=SCHED, clip=3.0, x=pts(), t=T_MID),
     aliases={"model": ["the model"]}, model="callable", schedule="schedule",
     clip=("real", [("zero", 0.0), ("negative", -1.0)]), x="batch", t="t")
case("to_denoiser(cond)", lambda x, t, cond: dd.to_denoiser(MLPC, SCHED)(x, t, cond),
     lambda: dict(x=pts(), t=T_MID, cond=torch.tensor([0, 1, 2])), cond="labels")
case("as_denoiser", lambda denoiser, x, t: dd.as_denoiser(denoiser, SCHED).x0_eps(x, t),
     lambda: dict(denoiser=den_fn, x=pts(), t=torch.tensor([0, 5, 9])), denoiser="callable", x="batch", t="t")
case("Denoiser.score", lambda x, t: D_NET.score(x, t), lambda: dict(x=pts(), t=T_MID), x="batch", t="t")
case("Denoiser.at_level", lambda x, alpha_bar: D_NET.at_level(x, alpha_bar), lambda: dict(x=pts(), alpha_bar=0.5),
     x="batch", alpha_bar=("real", [("negative", -0.1), ("above_one", 1.5)]))
case("GMMDenoiser.at_level", lambda x, alpha_bar: D_GMM.at_level(x, alpha_bar), lambda: dict(x=pts(), alpha_bar=0.5),
     x="batch", alpha_bar=("real", [("zero", 0.0), ("one", 1.0)]))
case("sigma_denoiser", lambda denoiser, v, sigma: dd.sigma_denoiser(denoiser, SCHED)(v, sigma),
     lambda: dict(denoiser=den_fn, v=pts(), sigma=0.3), aliases={"v": ["x"]},
     denoiser="callable", v="batch", sigma=("real", [("negative", -0.1), ("nan_rows", torch.tensor([NAN, 0.1, 0.2]))]))
case("t_batch", lambda t, x: dd.denoiser.t_batch(t, x), lambda: dict(t=T_MID, x=pts()), t="t", x=("batch",))

case("ddim_sigma", dd.ddim_sigma, lambda: dict(ab_t=0.3, ab_prev=0.6, eta=0.5), ab_t="real", ab_prev="real", eta="real")
case("ddim_step", dd.ddim_step, lambda: dict(xt=pts(), x0_hat=pts(1), eps_hat=pts(2), ab_t=0.3, ab_prev=0.6, eta=0.5, noise=pts(3)),
     xt="batch", x0_hat="batch", eps_hat="batch", ab_t=("real", [("above_prev", 0.7)]), ab_prev="real",
     eta=("real", [("above_one", 1.5), ("negative", -0.1)]), noise="batch")
case("ddpm_step", dd.ddpm_step, lambda: dict(xt=pts(), x0_hat=pts(1), ab_t=0.3, ab_prev=0.6, noise=pts(3), variance="large"),
     xt="batch", x0_hat="batch", ab_t="real", ab_prev="real", noise="batch", variance="str")


def _step(x, i, t, ab_t, ab_prev, z):
    x0 = D_GMM(x, t)
    return dd.samplers._ddim_update(x0, dd.denoiser._eps_from_x0(x, x0, ab_t), ab_t, ab_prev, 0.0, z), x0, {}


case("reverse_loop", dd.reverse_loop, lambda: dict(step=_step, x_T=pts(), schedule=SCHED, steps=4),
     aliases={"step": ["denoiser"]}, step=("obj", [("returns_nan", lambda x, *a: (x * NAN, x * NAN, {}))]),
     x_T="batch", schedule="schedule", steps="int")
for sampler in ("ddim", "ddpm"):
    case(sampler, lambda sampler=sampler, **k: getattr(dd, sampler)(**k),
         lambda: dict(denoiser=den_fn, x_T=pts(), schedule=SCHED, steps=4, generator=gen(), return_trajectory=True),
         denoiser="callable", x_T="batch", schedule="schedule", steps="int",
         generator=("obj", [("generator_type", torch.randn(2))]), return_trajectory=("obj",))
case("ddim(eta)", dd.ddim, lambda: dict(denoiser=D_GMM, x_T=pts(), schedule=SCHED, steps=4, eta=0.5, generator=gen()),
     eta=("real", [("above_one", 1.5), ("negative", -0.5)]), callback=("obj",))
case("ddim(network)", dd.ddim, lambda: dict(denoiser=D_NET, x_T=pts(), schedule=SCHED, steps=4), x_T="batch")
case("Trace", lambda x_T, callback: dd.Trace(x_T, True, callback).result(x_T), lambda: dict(x_T=pts(), callback=None),
     x_T=("obj",), callback=("obj",))

case("sliced_wasserstein", dd.sliced_wasserstein, lambda: dict(x=pts(), y=pts(1), n_proj=8, p=2),
     x="batch", y="batch", n_proj="int", p="int")
case("mmd", dd.mmd, lambda: dict(x=pts(), y=pts(1)), x="batch", y="batch")
case("psnr", dd.psnr, lambda: dict(x=imgs(), y=imgs(1), data_range=2.0), x="batch", y="batch", data_range="real")
case("ssim", dd.ssim, lambda: dict(x=imgs(), y=imgs(1), data_range=2.0, win_size=3, window="uniform", K1=0.01, K2=0.03),
     x="batch", y="batch", data_range="real", win_size="int", K1="real", K2="real", window="str")

# -- sde, likelihood ----------------------------------------------------------------------------------
case("VPSDE", lambda t, **k: S.VPSDE(**k).marginal(t), lambda: dict(beta_min=0.1, beta_max=20.0, t=0.5),
     beta_min=("real", [("zero", 0.0)]), beta_max="real")
case("VESDE", lambda t, **k: S.VESDE(**k).marginal(t), lambda: dict(sigma_min=0.01, sigma_max=50.0, t=0.5),
     sigma_min=("real", [("zero", 0.0)]), sigma_max="real")
case("get_sde", lambda name: S.get_sde(name).marginal(0.5), lambda: dict(name="subvp"), aliases={"name": ["sde"]}, name="str")
case("SDE.drift", lambda x, t: VP.drift(x, t), lambda: dict(x=pts(), t=0.5), x="batch")
case("SDE.to_schedule", lambda N: VP.to_schedule(N).alpha_bar, lambda: dict(N=10), N="int")
case("gmm_marginal", lambda gmm, sde, t: S.gmm_marginal(gmm, sde, t).means, lambda: dict(gmm=GMM, sde=VP, t=0.5),
     gmm="obj", sde="obj", t="times")
case("gmm_score_fn", lambda gmm, sde, x, t: S.gmm_score_fn(gmm, sde)(x, t), lambda: dict(gmm=GMM, sde=VP, x=pts(), t=0.5),
     gmm="obj", sde="obj", x="batch", t="times")
case("denoiser_score_fn", lambda denoiser, sde, x, t: S.denoiser_score_fn(denoiser, sde, SCHED)(x, t),
     lambda: dict(denoiser=den_fn, sde=VP, x=pts(), t=0.5), denoiser="callable", sde="obj", x="batch", t="times")
case("tweedie_x0", S.tweedie_x0, lambda: dict(x=pts(), score=pts(1), t=0.5, sde=VP), x="batch", score="batch", sde="obj")
case("time_grid", S.time_grid, lambda: dict(sde=VP, steps=4, t_min=1e-3), sde="obj", steps="int",
     t_min=("real", [("one", 1.0)]))
case("pf_ode_drift", S.pf_ode_drift, lambda: dict(score_fn=score_fn, x=pts(), t=0.5, sde=VP),
     score_fn="obj", x="batch", sde="obj")
case("reverse_sde_step", S.reverse_sde_step, lambda: dict(x=pts(), score=pts(1), t=0.5, t_next=0.4, sde=VP, noise=pts(2)),
     x="batch", score="batch", noise="batch", sde="obj")
case("reverse_diffusion_step", S.reverse_diffusion_step,
     lambda: dict(x=pts(), score=pts(1), t=0.5, t_next=0.4, sde=VP, noise=pts(2)), x="batch", score="batch", noise="batch")
case("langevin_step", S.langevin_step, lambda: dict(x=pts(), score=pts(1), snr=0.16, noise=pts(2), alpha=1.0),
     x="batch", score="batch", noise="batch", snr=("real", [("zero", 0.0)]), alpha="real")
for sampler in ("reverse_sde_euler_maruyama", "pf_ode_euler", "pf_ode_heun", "predictor_corrector"):
    case(sampler, getattr(S, sampler), lambda: dict(score_fn=score_fn, x_T=pts(), sde=VP, steps=4, generator=gen(),
                                                    return_trajectory=True),
         score_fn="callable", x_T="batch", sde="obj", steps="int", t_min=("real", [("one", 1.0)]))
case("predictor_corrector(snr)", S.predictor_corrector, lambda: dict(score_fn=score_fn, x_T=pts(), sde=VP, steps=4, snr=0.16,
                                                                       n_corrector=1, generator=gen()),
     snr=("real", [("zero", 0.0)]), n_corrector="int")
case("pf_ode_euler_sigma", dd.pf_ode_euler_sigma, lambda: dict(denoiser=den_fn, x_T=pts(), schedule=SCHED, steps=4, heun=True),
     denoiser="callable", x_T="batch", schedule="schedule", steps="int")
case("log_likelihood", log_likelihood, lambda: dict(score_fn=score_fn, x0=pts(), sde=VP, steps=3),
     score_fn="callable", x0="batch", sde="obj", steps="int", t_min=("real", [("one", 1.0)]), method="str",
     hutchinson_samples="int")

# -- flow ---------------------------------------------------------------------------------------------
LIN = F.LinearPath()
case("get_path", lambda path: F.get_path(path).alpha(torch.tensor(0.5)), lambda: dict(path="cosine"), path="str")
case("Path.sample", lambda x0, x1, tau: LIN.sample(x0, x1, tau), lambda: dict(x0=pts(), x1=pts(1), tau=torch.full((B,), 0.5)),
     x0="batch", x1="batch")
case("gmm_path_marginal", lambda gmm, tau: F.gmm_path_marginal(gmm, "linear", tau).means, lambda: dict(gmm=GMM, tau=0.5),
     gmm="obj", tau="times")
case("gmm_velocity", lambda x, tau: F.gmm_velocity(GMM, "cosine")(x, tau), lambda: dict(x=pts(), tau=0.5), x="batch", tau="times")
case("denoiser_velocity_fn", lambda denoiser, x, tau: F.denoiser_velocity_fn(denoiser, "linear", SCHED)(x, tau),
     lambda: dict(denoiser=den_fn, x=pts(), tau=0.5), denoiser="callable", x="batch", tau="times")
case("model_velocity", lambda model, t_scale, x, tau: F.model_velocity(model, t_scale)(x, tau),
     lambda: dict(model=MLP, t_scale=1000.0, x=pts(), tau=0.5), model="obj", t_scale=("real", [("zero", 0.0)]), x="batch",
     tau="times")
case("cfm_loss", lambda **k: F.cfm_loss(generator=gen(), **k), lambda: dict(model=MLP, x0=pts(), t_scale=1000.0),
     aliases={"model": ["the model"]}, model="callable", x0="batch", t_scale="real")
case("flow_step", F.flow_step, lambda: dict(velocity_fn=velocity_fn, x=pts(), tau=0.5, tau_next=0.4, method="heun"),
     velocity_fn="callable", x="batch", tau="real", tau_next="real", method="str")
case("sample_flow", F.sample_flow, lambda: dict(velocity_fn=velocity_fn, x1=pts(), steps=4, method="midpoint", path="cosine",
                                                 return_trajectory=True),
     velocity_fn="callable", x1="batch", steps="int", method="str", path="str")
case("straightness", F.straightness, lambda: dict(velocity_fn=velocity_fn, x1=pts(), steps=4),
     velocity_fn="callable", x1="batch", steps="int")
case("train_flow", lambda **k: F.train_flow(MLPDenoiser(hidden=8, depth=1, t_dim=8), **k)[1],
     lambda: dict(data=pts(b=16), steps=2, batch_size=4, lr=1e-3, ema=0.9),
     data="batch", steps="int", batch_size="int", lr=("real", [("zero", 0.0)]), ema=("real", [("one", 1.0)]))

# -- guidance -----------------------------------------------------------------------------------------
CLS_DEN = EG.gmm_class_denoiser(GMM, SCHED, null_label=2)
case("classifier_free_guidance", lambda denoiser, w, x, t, cond: G.classifier_free_guidance(denoiser, w, 2, cond)(x, t),
     lambda: dict(denoiser=CLS_DEN, w=2.0, x=pts(), t=T_MID, cond=torch.tensor([0, 1, 0])),
     denoiser="obj", w="real", x="batch", t="t", cond=("labels", [("none", None)]))
case("classifier_log_prob_grad", G.classifier_log_prob_grad,
     lambda: dict(classifier=POINT_CLS, x=pts(), t=T_MID, y=torch.tensor([0, 1, 0])),
     classifier="obj", x="batch", t="t", y="labels")
case("classifier_guidance", lambda denoiser, classifier, scale, x, t: G.classifier_guidance(denoiser, classifier, scale, SCHED, 1)(x, t),
     lambda: dict(denoiser=den_fn, classifier=POINT_CLS, scale=1.0, x=pts(), t=T_MID),
     denoiser="callable", classifier="obj", scale="real", x="batch", t="t")

# -- exact mixtures ------------------------------------------------------------------------------------
case("GaussianMixture", lambda **k: (lambda g: (g.weights, g.means, g.covs, g.labels))(dd.GaussianMixture(**k)),
     lambda: dict(weights=torch.tensor([0.4, 0.6]), means=torch.tensor([[-1.0, 0.0], [1.0, 0.5]]),
                  covs=torch.tensor([[0.2, 0.3], [0.1, 0.4]]), labels=torch.tensor([0, 1])),
     weights=("tensor", [("negative", torch.tensor([-0.4, 0.6])), ("zeros", torch.zeros(2))]), means="tensor",
     covs=("tensor", [("negative", torch.tensor([[-0.2, 0.3], [0.1, 0.4]]))]), labels=("tensor", [("float", torch.tensor([0.5, 1.0]))]))
case("GaussianMixture.sample", lambda n: GMM.sample(n, gen()), lambda: dict(n=5), n=("int",), valid_extra=())
case("GaussianMixture.log_prob", lambda x: GMM.log_prob(x), lambda: dict(x=pts()), x="batch")
case("GaussianMixture.responsibilities", lambda x: GMM.responsibilities(x), lambda: dict(x=pts()), x="batch")
case("GaussianMixture.score", lambda x: GMM.score(x), lambda: dict(x=pts()), x="batch")
case("GaussianMixture.denoiser", lambda x, alpha_bar: GMM.denoiser(x, alpha_bar), lambda: dict(x=pts(), alpha_bar=0.5),
     x="batch", alpha_bar=("real", [("zero", 0.0), ("above_one", 1.5)]))
case("GaussianMixture.score_t", lambda x, alpha_bar: GMM.score_t(x, alpha_bar), lambda: dict(x=pts(), alpha_bar=0.5),
     x="batch", alpha_bar="real")
case("GaussianMixture.noisy", lambda alpha_bar: GMM.noisy(alpha_bar).covs, lambda: dict(alpha_bar=0.5), alpha_bar="real")
case("GaussianMixture.condition", lambda label: GMM.condition(label).means, lambda: dict(label=1),
     label=("int", [("absent", 7)]))
case("GaussianMixture.posterior", lambda A, y, sigma_y: GMM.posterior(A, y, sigma_y).means,
     lambda: dict(A=torch.tensor([[1.0, 0.5]]), y=torch.tensor([0.3]), sigma_y=0.1),
     A="tensor", y="tensor", sigma_y=("real", [("zero", 0.0)]))
case("GMMDenoiser", lambda x, t: D_GMM.x0_eps(x, t), lambda: dict(x=pts(), t=torch.tensor([0, 5, 9])), x="batch", t="t")
case("gmm_class_denoiser", lambda x, t, cond: CLS_DEN(x, t, cond), lambda: dict(x=pts(), t=T_MID, cond=torch.tensor([0, 1, 2])),
     x="batch", t="t", cond=("labels", [("absent", torch.tensor([0, 1, 5]))]), aliases={"cond": ["label"]})
case("gmm_classifier", lambda x, t: EG.gmm_classifier(GMM, SCHED)(x, t), lambda: dict(x=pts(), t=T_MID), x="batch", t="t")
case("exact_cfg_denoiser", lambda label, w, x: EG.exact_cfg_denoiser(GMM, SCHED, label, w)(x, T_MID),
     lambda: dict(label=1, w=2.0, x=pts()), label="int", w="real", x="batch", aliases={"label": ["cond"]})
case("tilted_log_density", lambda label, w, x: EG.tilted_log_density(GMM, label, w, x), lambda: dict(label=1, w=2.0, x=pts()),
     label="int", w="real", x="batch")
case("tilted_density_grid", lambda w, lim, n: EG.tilted_density_grid(GMM, 1, w, lim, n), lambda: dict(w=2.0, lim=4.0, n=5),
     w="real", lim="real", n="int")
from diffedu.exact import coupling as EC, gaussian_cfg as EGC, memorisation as EM   # noqa: E402

TRAIN = torch.randn(6, D, generator=gen(7))
case("crossing_fraction", EC.crossing_fraction, lambda: dict(x0=pts(), x1=pts(1)), x0="batch", x1="batch")
case("tilted_gaussian", EGC.tilted_gaussian, lambda: dict(mu_c=1.0, v_c=0.5, mu_u=0.0, v_u=1.0, w=2.0),
     mu_c="real", v_c=("real", [("zero", 0.0)]), mu_u="real", v_u="real", w="real")
case("cfg_gaussian_law", EGC.cfg_gaussian_law, lambda: dict(mu_c=1.0, v_c=0.5, mu_u=0.0, v_u=1.0, w=2.0, sigma_max=20.0, n=101),
     mu_c="real", v_c="real", w="real", sigma_max=("real", [("zero", 0.0)]), n="int")
case("pair_denoiser", lambda x, t, cond: EGC.pair_denoiser(1.0, 0.5, 0.0, 1.0, SCHED)(x, t, cond),
     lambda: dict(x=torch.randn(B, 1), t=T_MID, cond=torch.tensor([0, 1, 0])), x="batch", t="t", cond="labels")
case("EmpiricalDenoiser", lambda train, x, t: EM.EmpiricalDenoiser(train, SCHED).x0_eps(x, t),
     lambda: dict(train=TRAIN, x=pts(), t=torch.tensor([0, 5, 9])), train="batch", x="batch", t="t")
case("EmpiricalDenoiser.at_level", lambda x, alpha_bar: EM.EmpiricalDenoiser(TRAIN, SCHED).at_level(x, alpha_bar),
     lambda: dict(x=pts(), alpha_bar=0.5), x="batch", alpha_bar=("real", [("zero", 0.0), ("one", 1.0)]))
case("nn_distance", EM.nn_distance, lambda: dict(x=pts(), train=TRAIN), x="batch", train="batch")
case("copying", EM.copying, lambda: dict(x=pts(), train=TRAIN, new=pts(3)), x="batch", train="batch", new="batch")
case("make_problem", lambda **k: PB.make_problem(**k).A, lambda: dict(d=4, d_y=1, seed=0, sigma_y=0.1),
     d="int", d_y="int", seed="int", sigma_y="real")

# -- inverse problems ---------------------------------------------------------------------------------
case("Dense", lambda H_, x: ops.Dense(H_).A(x), lambda: dict(H_=torch.tensor([[1.0, 0.5]]), x=pts()),
     aliases={"H_": ["H"]}, H_="tensor", x="batch")
case("Dense.A_dagger", lambda y: DENSE.A_dagger(y), lambda: dict(y=torch.randn(B, 1)), y="batch")
case("Dense.solve_normal", lambda b, mu: DENSE.solve_normal(b, mu), lambda: dict(b=pts(), mu=0.1),
     b="batch", mu=("real", [("zero", 0.0)]))
case("Operator.measure", lambda x, sigma_y: DENSE.measure(x, sigma_y, gen()), lambda: dict(x=pts(), sigma_y=0.1),
     x="batch", sigma_y=("real", [("negative", -0.1)]))
case("SuperResolution", lambda factor, x, mode: ops.SuperResolution(factor, H, mode, 1).A(x),
     lambda: dict(factor=2, x=imgs(), mode="bicubic"), factor=("int", [("not_dividing", 3)]), x="batch", mode="str")
case("Inpainting", lambda mask, x: ops.Inpainting(mask, 1).A(x), lambda: dict(mask=ops.box_mask(H, 4), x=imgs()),
     mask=("tensor", [("not_binary", torch.full((H, H), 0.5))]), x="batch")
case("Blur", lambda kernel, x: ops.Blur(kernel, H, 1).A(x), lambda: dict(kernel=ops.gaussian_kernel(3, 1.0), x=imgs()),
     kernel=("tensor", [("too_big", torch.ones(H + 1, H + 1))]), x="batch")
case("Blur.A_dagger", lambda y: BLUR.A_dagger(y), lambda: dict(y=imgs()), y="batch")
case("Turbulence", lambda x, **k: ops.Turbulence(H, channels=1, **k).A(x),
     lambda: dict(strength=1.0, correlation=2.0, blur_sigma=1.0, x=imgs()),
     strength="real", correlation=("real", [("zero", 0.0)]), blur_sigma=("real", [("zero", 0.0)]), x="batch")
case("PhaseRetrieval", lambda oversampling, x: ops.PhaseRetrieval(oversampling).A(x), lambda: dict(oversampling=2.0, x=imgs()),
     oversampling=("real", [("below_one", 0.5)]), x="batch")
case("conjugate_gradient", lambda b, iters, tol: ops.conjugate_gradient(lambda v: 2 * v, b, iters=iters, tol=tol),
     lambda: dict(b=pts(), iters=5, tol=1e-8), b="batch", iters="int", tol="real")
case("box_mask", ops.box_mask, lambda: dict(img_size=H, box_size=3, seed=1), img_size="int", box_size="int", seed="int")
case("random_mask", ops.random_mask, lambda: dict(img_size=H, p=0.3, seed=1), img_size="int", p=("real", [("above_one", 1.5)]),
     seed="int")
case("freeform_mask", ops.freeform_mask, lambda: dict(img_size=H, seed=1, strokes=2, max_vertices=3, max_width=2.0),
     img_size="int", seed="int", strokes="int", max_vertices="int", max_width="real")
case("gaussian_kernel", ops.gaussian_kernel, lambda: dict(size=3, sigma=1.0), size="int", sigma=("real", [("zero", 0.0)]))
case("motion_kernel", ops.motion_kernel, lambda: dict(size=5, seed=1, intensity=0.5), size="int", seed="int", intensity="real")
case("pseudo_inverse", lambda y, operator: classical.pseudo_inverse(y, operator), lambda: dict(y=imgs(), operator=BLUR),
     y="batch", operator="obj")
case("tikhonov", lambda y, lam, iters: classical.tikhonov(y, BLUR, lam=lam, iters=iters), lambda: dict(y=imgs(), lam=0.1, iters=5),
     y="batch", lam=("real", [("zero", 0.0)]), iters="int")
case("wiener", lambda y, noise_to_signal: classical.wiener(y, BLUR, noise_to_signal=noise_to_signal),
     lambda: dict(y=imgs(), noise_to_signal=0.1), y="batch", noise_to_signal=("real", [("zero", 0.0)]))
case("grad2d", classical.grad2d, lambda: dict(x=imgs()), x="batch")
case("total_variation", classical.total_variation, lambda: dict(x=imgs()), x="batch")
case("tv_denoise", lambda y, lam, iters: classical.tv_denoise(y, lam, iters=iters), lambda: dict(y=imgs(), lam=0.1, iters=5),
     y="batch", lam="real", iters="int")
case("tv_reconstruct", lambda y, lam, iters: classical.tv_reconstruct(y, BLUR, lam=lam, iters=iters),
     lambda: dict(y=imgs(), lam=0.1, iters=5), y="batch", lam="real", iters="int")
case("dpir_sigmas", pnp.dpir_sigmas, lambda: dict(sigma_y=0.05, iters=4, sigma_max=0.4),
     sigma_y="real", iters="int", sigma_max=("real", [("below_sigma_y", 0.01)]))
case("pnp_hqs", lambda y, denoiser, sigma_y, lam, iters: pnp.pnp_hqs(y, BLUR, denoiser, sigma_y=sigma_y, lam=lam, iters=iters),
     lambda: dict(y=imgs(), denoiser=img_sigma_den, sigma_y=0.05, lam=0.23, iters=3),
     y="batch", denoiser="callable", sigma_y="real", lam="real", iters="int")
case("tv_denoiser", lambda lam_scale, x, sigma: pnp.tv_denoiser(lam_scale, 5)(x, sigma),
     lambda: dict(lam_scale=1.0, x=imgs(), sigma=0.1), lam_scale="real", x="batch", sigma="real")
case("annealed_timesteps", DP.annealed_timesteps, lambda: dict(iters=4, t_min=1, t_max=8, generator=gen()),
     iters="int", t_min="int", t_max=("int", [("below_t_min", 0)]))
case("diffusion_prior_loss", lambda denoiser, x, t, eps: DP.diffusion_prior_loss(denoiser, SCHED, x, t, eps),
     lambda: dict(denoiser=den_fn, x=pts(), t=T_MID, eps=pts(1)), denoiser="callable", x="batch", t="t", eps="batch")
case("diffusion_prior_map", lambda y, denoiser, **k: DP.diffusion_prior_map(y, DENSE, denoiser, SCHED, generator=gen(), **k),
     lambda: dict(y=torch.randn(B, 1), denoiser=den_fn, sigma_y=0.1, lam=1.0, iters=3, lr=0.05),
     y="batch", denoiser="callable", sigma_y="real", lam="real", iters="int", lr="real", t_min="int", t_max="int")


def _post_kwargs(**extra):
    return dict(y=torch.randn(B, 1, generator=gen(4)), operator=DENSE, denoiser=den_fn, schedule=SCHED, steps=4,
                generator=gen(), **extra)


case("dps", post.dps, lambda: _post_kwargs(zeta=0.5, x_T=pts(5)), y="batch", operator="obj", denoiser="callable", schedule="schedule",
     steps="int", zeta="real", x_T="batch")
case("dps_denoiser", lambda x, t, **k: post.dps_denoiser(**k)(x, t),
     lambda: dict(y=torch.randn(B, 1), operator=DENSE, denoiser=den_fn, schedule=SCHED, zeta=0.5, x=pts(), t=T_MID),
     y="batch", denoiser="callable", zeta="real", x="batch", t="t")
case("dps_step", post.dps_step, lambda: dict(x=pts(), t=torch.full((B,), T_MID), ab_t=0.3, ab_prev=0.6, y=torch.randn(B, 1),
                                             operator=DENSE, denoiser=den_fn, zeta=0.5, noise=pts(2)),
     x="batch", t="t", ab_t="real", ab_prev="real", y="batch", denoiser="callable", zeta="real", noise="batch")
case("ddrm", post.ddrm, lambda: _post_kwargs(sigma_y=0.1, eta=0.85, eta_b=1.0, x_T=pts(5)), y="batch", operator="obj", denoiser="callable",
     sigma_y="real", eta=("real", [("above_one", 1.5)]), eta_b="real", steps="int", x_T="batch")
case("spectral_measurement", post.spectral_measurement, lambda: dict(y=torch.randn(B, 1), operator=DENSE), y="batch", operator="obj")
case("repaint", post.repaint, lambda: _post_kwargs(jump_length=2, jump_n_sample=2, sigma_y=0.0),
     y="batch", operator="obj", denoiser="callable", jump_length="int", jump_n_sample="int", sigma_y="real", steps="int")
case("repaint_schedule", post.repaint_schedule, lambda: dict(n_steps=6, jump_length=2, jump_n_sample=2),
     n_steps="int", jump_length="int", jump_n_sample="int")
case("diffpir", post.diffpir, lambda: _post_kwargs(sigma_y=0.1, lam=7.0, zeta=0.1, cg_iters=5, x_T=pts(5)),
     y="batch", operator="obj", denoiser="callable", sigma_y="real", lam="real", zeta=("real", [("above_one", 1.5)]),
     cg_iters="int", x_T="batch")
case("diffpir_data_step", post.diffpir_data_step, lambda: dict(x0=pts(), y=torch.randn(B, 1), operator=DENSE, rho=0.1, cg_iters=5),
     x0="batch", y="batch", rho="real", cg_iters="int")

_SPEC = post.spectral_measurement(torch.randn(B, 1, generator=gen(4)), DENSE)
case("ddrm_step", lambda **k: post.ddrm_step(ybar=_SPEC[0], s=_SPEC[1], measured=_SPEC[2], operator=DENSE, **k),
     lambda: dict(xt=pts(), x0_hat=pts(1), eps_hat=pts(2), ab_t=0.3, ab_prev=0.6, sigma_y=0.1, eta=0.85, eta_b=1.0,
                  noise=pts(3)),
     xt="batch", x0_hat="batch", eps_hat="batch", ab_t="real", ab_prev="real", sigma_y="real",
     eta=("real", [("above_one", 1.5)]), eta_b="real", noise="batch")
case("repaint_step", lambda **k: post.repaint_step(operator=DENSE, **k),
     lambda: dict(x=pts(), x0_hat=pts(1), ab_t=0.3, ab_prev=0.6, x_y=pts(2), noise=pts(3), noise_known=pts(4)),
     x="batch", x0_hat="batch", ab_t="real", ab_prev="real", x_y="batch", noise="batch", noise_known="batch")
case("diffpir_step", lambda **k: post.diffpir_step(operator=DENSE, **k),
     lambda: dict(xt=pts(), x0=pts(1), ab_t=0.3, ab_prev=0.6, y=torch.randn(B, 1), sigma_y=0.1, lam=7.0, zeta=0.1,
                  noise=pts(3)),
     xt="batch", x0="batch", ab_t="real", ab_prev="real", y="batch", sigma_y="real", lam="real",
     zeta=("real", [("above_one", 1.5)]), noise="batch")
case("tv_objective", lambda x, y, lam: classical.tv_objective(x, y, BLUR, lam=lam), lambda: dict(x=imgs(), y=imgs(1), lam=0.1),
     x="batch", y="batch", lam="real")
case("div2d", classical.div2d, lambda: dict(p=torch.randn(B, 1, H, H, 2)), p="batch")
PROBLEM = PB.make_problem(4, 1, 0, 0.1)
case("unit_cov_denoiser", lambda x, t: PB.unit_cov_denoiser(PROBLEM.prior, SCHED)(x, t),
     lambda: dict(x=torch.randn(B, 4), t=torch.tensor([0, 5, 9])), x="batch", t="t")
case("gaussian_denoiser", lambda v, sigma: PB.gaussian_denoiser(PROBLEM.prior)(v, sigma),
     lambda: dict(v=torch.randn(B, 4), sigma=0.3), v="batch", sigma="real")
case("sample_mixture", lambda n: PB.sample_mixture(GMM, n, gen()), lambda: dict(n=5), n="int")
case("run_sampler", lambda name, n_samples, **k: PB.run_sampler(name, PROBLEM, n_samples, gen(), SCHED, **k),
     lambda: dict(name="DDRM", n_samples=4, steps=4), aliases={"name": ["sampler"]}, name="str", n_samples="int",
     steps="int")
case("sample_from_grid", lambda density, n: EG.sample_from_grid(torch.arange(3.0), torch.arange(3.0), density, n, gen()),
     lambda: dict(density=torch.rand(3, 3) + 0.1, n=4),
     density=("tensor", [("negative", -torch.ones(3, 3)), ("zeros", torch.zeros(3, 3))]), n="int")
case("SDE.prior_sample", lambda shape: VP.prior_sample(shape, gen()), lambda: dict(shape=(B, D)),
     shape=("obj", [("negative", (-1, 2)), ("float", (2.5, 2))]))
case("SDE.prior_log_prob", lambda z: VP.prior_log_prob(z), lambda: dict(z=pts()), z="batch")
case("reflow_pairs", lambda velocity_fn, x1, steps: F.reflow_pairs(velocity_fn, x1, steps, "euler"),
     lambda: dict(velocity_fn=velocity_fn, x1=pts(), steps=4), aliases={"x1": ["x"]},
     velocity_fn="callable", x1="batch", steps="int")
case("diffusion_loss", lambda model, x0, **k: dd.train.diffusion_loss(model, x0, SCHED, gen(), **k),
     lambda: dict(model=MLP, x0=pts()), aliases={"x0": ["x"], "model": ["the model"]}, model="callable", x0="batch",
     prediction=("str",))
case("train_denoiser", lambda **k: dd.train.train_denoiser(MLPDenoiser(hidden=8, depth=1, t_dim=8, num_classes=2),
                                                           schedule=SCHED, progress=False, **k)[1],
     lambda: dict(data=pts(b=8), steps=2, batch_size=4, lr=1e-3, ema=0.9, labels=torch.tensor([0, 1] * 4),
                  label_dropout=0.1, seed=0),
     aliases={"data": ["x"]}, data="batch", steps="int", batch_size="int", lr=("real", [("zero", 0.0)]),
     ema=("real", [("one", 1.0)]), labels=("labels", [("wrong_length", torch.tensor([0, 1]))]),
     label_dropout=("real", [("above_one", 1.5)]), seed="int")
case("fit", lambda batch_loss, **k: dd.train.fit(torch.nn.Linear(2, 2), batch_loss, progress=False, **k)[1],
     lambda: dict(batch_loss=lambda: torch.tensor(1.0, requires_grad=True) * 1.0, steps=2, lr=1e-3, ema=0.9),
     batch_loss=("obj", [("returns_nan", lambda: torch.tensor(NAN, requires_grad=True) * 1.0)]), steps="int",
     lr="real", ema="real")

# -- nets ---------------------------------------------------------------------------------------------
case("MLPDenoiser", lambda x, t, cond: MLPC(x, t, cond), lambda: dict(x=pts(), t=torch.tensor([0, 5, 9]), cond=torch.tensor([0, 1, 2])),
     x="batch", t=("obj", [("wrong_length", torch.tensor([1, 2]))]), cond="labels")
case("MLPDenoiser(uncond)", lambda x, t, cond: MLP(x, t, cond), lambda: dict(x=pts(), t=5, cond=None),
     cond=("obj", [("labels", torch.tensor([0, 1, 0]))]))
case("MLPDenoiser()", lambda **k: MLPDenoiser(**k)(pts(), 5), lambda: dict(dim=2, hidden=4, depth=1, t_dim=4),
     dim="int", hidden="int", depth="int", t_dim="int")
case("UNet", lambda x, t, cond: UNET(x, t, cond), lambda: dict(x=imgs(), t=torch.tensor([0, 5, 9]), cond=None), x="batch",
     t=("obj", [("wrong_length", torch.tensor([1, 2])), ("str", "5")]), cond=("obj", [("labels", torch.tensor([0, 1, 0]))]))
case("UNet(cond)", lambda x, t, cond: tiny_unet(num_classes=2)(x, t, cond),
     lambda: dict(x=imgs(), t=5, cond=torch.tensor([0, 1, 2])), cond="labels")
case("DiT", lambda x, t, cond: DIT(x, t, cond), lambda: dict(x=imgs(), t=torch.tensor([0, 5, 9]), cond=torch.tensor([0, 1, 10])),
     x="batch", t=("obj", [("wrong_length", torch.tensor([1, 2]))]), cond="labels")
case("MMDiT", lambda x, t, cond: MMDIT(x, t, cond), lambda: dict(x=imgs(), t=torch.tensor([0, 5, 9]), cond=torch.tensor([0, 1, 2])),
     x="batch", t=("obj", [("wrong_length", torch.tensor([1, 2]))]), cond="labels")
case("ImageClassifier", lambda x, t: IMG_CLS(x, t), lambda: dict(x=imgs(), t=5), x="batch", t="obj")
case("PointClassifier", lambda x, t: POINT_CLS(x, t), lambda: dict(x=pts(), t=5), x="batch", t="obj")
case("log_prob", lambda x, y: log_prob(POINT_CLS, x, 5, y), lambda: dict(x=pts(), y=torch.tensor([0, 1, 0])), x="batch", y="labels")
case("Autoencoder", lambda x: AE(x)["x_rec"], lambda: dict(x=imgs()), x="batch")
case("Autoencoder.decode", lambda z: AE.decode(z), lambda: dict(z=torch.randn(B, 4, 4, 4)), z="batch")
case("MLPDenoiser.features", lambda layers: MLPC.features(pts(), 5, None, layers), lambda: dict(layers=["input", "out"]),
     layers=("obj", [("unknown", ["nope"]), ("number", 3)]))
case("Autoencoder.loss", lambda x, beta: Autoencoder(base_channels=8, channel_mult=(1, 2), kl=True).loss(x, beta, gen()),
     lambda: dict(x=imgs(), beta=1e-4), x="batch", beta="real")
case("drop_labels", emb.drop_labels, lambda: dict(y=torch.tensor([0, 1, 0]), num_classes=2, p=0.5,
                                                  force_drop_ids=torch.tensor([1, 0, 0])),
     y="labels", num_classes="int", p="real", force_drop_ids=("obj", [("wrong_length", torch.tensor([1, 0]))]))
case("as_timesteps", emb.as_timesteps, lambda: dict(t=torch.tensor([0, 5, 9]), batch_size=B), t="obj", batch_size="int")
case("timestep_embedding", emb.timestep_embedding, lambda: dict(t=torch.tensor([0, 5, 9]), dim=8), t="obj", dim="int")
case("sincos_pos_embed_2d", emb.sincos_pos_embed_2d, lambda: dict(dim=8, grid_size=4), dim="int", grid_size="int")
case("as_labels", emb.as_labels, lambda: dict(y=torch.tensor([0, 1, 2]), batch_size=B, num_classes=2, allow_null=True),
     aliases={"y": ["cond"]}, y="labels", batch_size="int")


# Where the table's generic rule needs a word. A single call of a denoiser wrapper passes its
# network's NaN through: finiteness is checked once per run where a loop runs (samplers through
# Trace, fit through the loss, pnp_hqs / diffusion_prior_map / log_likelihood / straightness at
# their end), so that a sampler step costs no extra reduction.
PASSES_NAN_THROUGH = ("to_denoiser", "as_denoiser", "sigma_denoiser", "denoiser_score_fn", "denoiser_velocity_fn",
                      "classifier_guidance", "dps_denoiser", "dps_step", "diffusion_prior_loss", "flow_step", "cfm_loss",
                      "diffusion_loss")
VALID_TOO = {"schedule.at": ("extra_dim", "none"), "schedule.alpha_bar_of": ("extra_dim", "none"),
             "t_batch": ("missing_dim", "extra_dim"), "ddim": ("none",), "ddpm": ("none",),
             "timestep_embedding": ("number",), "SDE.prior_log_prob": ("missing_dim",),
             "MLPDenoiser.features": ("none",), "GaussianMixture": ("none",)}
# a sampler's start x_T reaches the denoiser (or network) as its `x`, which may report a bad shape
START_IS_X = {"reverse_loop": "x_T", "ddim": "x_T", "ddpm": "x_T", "ddim(network)": "x_T", "pf_ode_euler_sigma": "x_T",
              "reverse_sde_euler_maruyama": "x_T", "pf_ode_euler": "x_T", "pf_ode_heun": "x_T", "predictor_corrector": "x_T",
              "sample_flow": "x1", "straightness": "x1", "log_likelihood": "x0", "cfm_loss": "x0", "train_flow": "data"}
for c in CASES:
    c.valid_extra = tuple(c.valid_extra) + VALID_TOO.get(c.name, ()) + (("returns_nan",) if c.name in PASSES_NAN_THROUGH else ())
    if c.name in START_IS_X:
        c.aliases.setdefault(START_IS_X[c.name], []).append("x")


# -- the test -----------------------------------------------------------------------------------------
def _leaves(res):
    if isinstance(res, (tuple, list)):
        return [leaf for r in res for leaf in _leaves(r)]
    if isinstance(res, dict):
        return [leaf for r in res.values() for leaf in _leaves(r)]
    if res is None or isinstance(res, (torch.Tensor, bool, int, float)):
        return [res]
    raise AssertionError(f"unexpected result type {type(res).__name__}")


def _names(err: BaseException, names) -> bool:
    msg = str(err)
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names)


def _batch_axis(shape, b):
    return next((k for k in range(min(2, len(shape))) if shape[k] == b), None)


def _problem(res, ref, label, valid, bad):
    """None if `res` is an acceptable answer to the mutated call, else what is wrong with it."""
    leaves, refs = _leaves(res), _leaves(ref)
    if len(leaves) != len(refs):
        return f"returned {len(leaves)} values, the valid call {len(refs)}"
    v_shape = tuple(valid.shape) if isinstance(valid, torch.Tensor) else None
    b_shape = tuple(bad.shape) if isinstance(bad, torch.Tensor) else None
    for got, want in zip(leaves, refs):
        if not isinstance(want, torch.Tensor):
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, torch.Tensor) or (isinstance(got, float) and not math.isfinite(got)):
                return f"returned {got!r} where the valid call returned a number"
            continue
        if not isinstance(got, torch.Tensor):
            return f"returned {type(got).__name__} where the valid call returned a tensor"
        expect = tuple(want.shape)
        if v_shape is not None and b_shape is not None:
            if expect == v_shape:
                expect = b_shape
            elif len(v_shape) >= 2 and expect[len(expect) - len(v_shape):] == v_shape:   # a trajectory (S, *x.shape)
                expect = expect[:len(expect) - len(v_shape)] + b_shape
            elif label == "empty" and (ax := _batch_axis(expect, v_shape[0])) is not None:
                expect = expect[:ax] + (0,) + expect[ax + 1:]
        if tuple(got.shape) != expect:
            return f"returned shape {tuple(got.shape)}, expected {expect}"
        if not got.is_floating_point() or got.numel() == 0:
            continue
        if label in ("nan_row", "inf_row", "nan_rows") and (ax := _batch_axis(tuple(got.shape), len(bad))) is not None:
            got = got.narrow(ax, 1, got.shape[ax] - 1)         # the injected row may be NaN; the others not
        if not bool(torch.isfinite(got).all()):
            return "returned NaN / inf" + (" outside the row that held the bad value" if "row" in label else "")
    return None


def _mutations(c: Case, arg: str, valid_value):
    kind = c.kinds[arg]
    if isinstance(kind, tuple):
        base, extra = kind[0], (kind[1] if len(kind) > 1 else [])
        kind = base
    else:
        extra = []
    return KINDS[kind](valid_value) + list(extra)


PARAMS = [pytest.param(c, arg, id=f"{c.name}-{arg}") for c in CASES for arg in c.kinds]


@pytest.mark.parametrize("c, arg", PARAMS)
def test_hostile_argument(c: Case, arg: str):
    valid = c.make()
    ref = c.fn(**valid)
    assert _problem(ref, ref, "valid", None, None) is None, f"the valid call of {c.name} is not finite"
    names = [arg, *c.aliases.get(arg, [])]
    failures = []
    for label, bad in _mutations(c, arg, valid.get(arg)):
        kwargs = dict(c.make())
        kwargs[arg] = bad
        try:
            res = c.fn(**kwargs)
        except (ValueError, TypeError) as err:
            if not _names(err, names):
                failures.append(f"{label}: {type(err).__name__} does not name {names}: {err}")
            continue
        except Exception as err:           # noqa: BLE001 - any other exception is a crash a student meets
            failures.append(f"{label}: {type(err).__name__}: {err}")
            continue
        problem = _problem(res, ref, label, valid.get(arg), bad)
        if problem and label not in c.valid_extra:
            failures.append(f"{label}: {problem}")
    assert not failures, f"{c.name}({arg}=...):\n  " + "\n  ".join(failures)


def test_the_table_covers_the_public_core():
    """Every name of the core's __all__ that is a function or class appears in the table (or is
    listed here as needing no arguments that could be hostile)."""
    covered = {c.name.split("(")[0].split(".")[0] for c in CASES}
    no_args = {"device", "seed_everything", "Denoiser", "NetworkDenoiser", "FunctionDenoiser", "GaussianMixture"}
    core = {n for n in dd.__all__ if callable(getattr(dd, n, None)) and not n.isupper() and n not in dd._LAZY}
    missing = sorted(core - covered - no_args - {"train_denoiser", "pretrained", "pretrained_denoiser", "load_model"})
    assert not missing, f"public core names without a hostile-input case: {missing}"


# -- the classes, one explicit test each ---------------------------------------------------
def test_empty_batches_give_empty_results():
    assert GMM.sample(0).shape == (0, D) and GMM.sample(0, return_labels=True)[1].shape == (0,)
    empty = torch.empty(0, D)
    assert D_GMM(empty, T_MID).shape == (0, D)
    assert D_GMM.x0_eps(empty, torch.empty(0, dtype=torch.long))[1].shape == (0, D)
    assert GMM.denoiser(empty, 0.5).shape == (0, D)
    assert S.gmm_score_fn(GMM, VP)(empty, 0.5).shape == (0, D)
    assert S.denoiser_score_fn(D_GMM, VP)(empty, torch.empty(0)).shape == (0, D)
    assert F.gmm_velocity(GMM)(empty, 0.3).shape == (0, D)
    assert F.denoiser_velocity_fn(D_GMM)(empty, 0.3).shape == (0, D)
    assert BLUR.A(torch.empty(0, 1, H, H)).shape == (0, 1, H, H)          # FFTs refuse empty inputs
    assert BLUR.A_dagger(torch.empty(0, 1, H, H)).shape == (0, 1, H, H)
    with pytest.raises(ValueError, match="x_T is empty"):
        dd.ddim(D_GMM, empty, SCHED, 4)
    with pytest.raises(ValueError, match="x is empty"):
        dd.sliced_wasserstein(empty, pts())


@pytest.mark.parametrize("net, x", [(MLP, pts()), (UNET, imgs()), (DIT, imgs()), (MMDIT, imgs()), (IMG_CLS, imgs()),
                                    (POINT_CLS, pts())], ids=lambda v: type(v).__name__ if isinstance(v, torch.nn.Module) else "")
def test_float64_input_to_a_float32_network_says_call_float(net, x):
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 .* call x\.float\(\)"):
        net(x.double(), torch.tensor([0, 5, 9]))


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "pf_ode_euler_sigma"])
@pytest.mark.parametrize("bad, match", [
    (lambda out: out.reshape(len(out), -1)[:, :1], r"returned shape \(3, 1\) at t=9"),
    (lambda out: out[:1], r"returned shape \(1, 2\) at t=9"),
    (lambda out: None, r"returned NoneType at t=9.*forget `return`"),
    (lambda out: out.double(), r"returned dtype torch.float64 at t=9"),
])
def test_a_denoiser_of_the_wrong_shape_or_type_is_named_with_its_t(sampler, bad, match):
    D = lambda x, t: bad(D_GMM(x, t))                                   # noqa: E731
    run = getattr(dd, sampler, None) or getattr(S, sampler)
    with pytest.raises((ValueError, TypeError), match=match):
        run(D, pts(), SCHED, 4)


def test_a_denoiser_that_goes_nan_is_caught_at_its_step():
    """The sample is checked once per step (one sum, no sync) and the first bad step named."""
    def D(x, t):
        return D_GMM(x, t) * (NAN if int(t[0]) < 5 else 1.0)          # fine at t = 9 and 6, NaN from t = 3
    with pytest.raises(ValueError, match=r"became NaN or inf at step i=1 \(t=3\), step 3 of 4"):
        dd.ddim(D, pts(), SCHED, 4)
    with pytest.raises(ValueError, match=r"step i=3 \(t=0.25\d*\), step 4 of 4: check the score_fn"):
        S.pf_ode_euler(lambda x, t: score_fn(x, t) * (NAN if float(t[0]) < 0.5 else 1.0), pts(), VP, 4)
    with pytest.raises(ValueError, match=r"velocity_fn"):
        F.sample_flow(lambda x, tau: velocity_fn(x, tau) * NAN, pts(), 4)


def test_coercions_are_refused():
    with pytest.raises(ValueError, match="eta must be >= 0 and <= 1"):
        dd.ddim(D_GMM, pts(), SCHED, 4, eta=1.5)
    with pytest.raises(ValueError, match="clip must be > 0"):
        dd.to_denoiser(MLP, SCHED, clip=0.0)
    with pytest.raises(TypeError, match="t must hold integers"):
        D_NET(pts(), 5.7)
    with pytest.raises(TypeError, match="t must hold integers"):
        SCHED.alpha_bar_of(torch.tensor([5.7]))
    with pytest.raises(TypeError, match="i must hold integers"):
        dd.q_sample(pts(), 2.5, SCHED)
    with pytest.raises(TypeError, match="cond must be an integer tensor"):
        MLPC(pts(), 5, torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(TypeError, match="cond must hold integers"):
        G.classifier_free_guidance(CLS_DEN, 2.0, 2)(pts(), T_MID, torch.tensor([0.9, 1.0, 0.0]))
    with pytest.raises(ValueError, match="timesteps must be distinct integers >= 0 in increasing order"):
        dd.NoiseSchedule(AB10, torch.arange(10).flip(0))


def test_a_schedule_cannot_be_changed_in_place():
    s = dd.linear_schedule(10)
    before = s.alpha_bar.clone()
    s.alpha_bar[3] = 0.5                        # edits a copy
    s.timesteps[0] = 7
    torch.testing.assert_close(s.alpha_bar, before, rtol=0, atol=0)
    assert s.timesteps.tolist() == list(range(10))
    with pytest.raises(AttributeError, match="frozen"):
        s.name = "other"
    src = torch.linspace(0.9, 0.1, 5, dtype=torch.float64)
    t = dd.NoiseSchedule(src, torch.arange(5))
    src[0] = 0.01                               # the schedule holds its own copy
    assert float(t.alpha_bar[0]) == pytest.approx(0.9)


def test_one_nan_row_does_not_poison_the_batch():
    score, noise = pts(1), pts(2)
    score[0, 0] = NAN                            # Langevin's step size is a batch statistic
    x_next, _ = S.langevin_step(pts(), score, 0.16, noise)
    assert torch.isfinite(x_next[1:]).all() and not torch.isfinite(x_next[0]).all()
    y = imgs()
    y[0, 0, 0, 0] = NAN
    out = classical.tv_denoise(y, 0.1, iters=5)  # per-image solvers stay per image
    assert torch.isfinite(out[1:]).all()
    with pytest.raises(ValueError, match=r"x holds NaN or inf values \(row 0\)"):
        dd.sliced_wasserstein(torch.cat([torch.full((1, D), NAN), pts()]), pts())


def test_nan_parameters_are_refused_by_name():
    for call, name in [(lambda: dd.ddim(D_GMM, pts(), SCHED, 4, eta=NAN), "eta"),
                       (lambda: S.predictor_corrector(score_fn, pts(), VP, 4, snr=NAN), "snr"),
                       (lambda: G.classifier_free_guidance(CLS_DEN, NAN, 2), "w"),
                       (lambda: G.classifier_guidance(den_fn, POINT_CLS, INF, SCHED), "scale"),
                       (lambda: post.ddrm(torch.randn(B, 1), DENSE, den_fn, SCHED, sigma_y=NAN), "sigma_y"),
                       (lambda: post.ddrm(torch.randn(B, 1), DENSE, den_fn, SCHED, sigma_y=INF), "sigma_y"),
                       (lambda: post.dps(torch.randn(B, 1), DENSE, den_fn, SCHED, zeta=NAN), "zeta"),
                       (lambda: dd.GaussianMixture([NAN, 1.0], [[0.0, 0.0], [1.0, 1.0]]), "weights"),
                       (lambda: dd.GaussianMixture([INF, 1.0], [[0.0, 0.0], [1.0, 1.0]]), "weights"),
                       (lambda: dd.GaussianMixture([1.0, 1.0], [[NAN, 0.0], [1.0, 1.0]]), "means"),
                       (lambda: dd.GaussianMixture([1.0, 1.0], [[0.0, 0.0], [1.0, 1.0]], NAN), "covs"),
                       (lambda: ops.Blur(torch.full((3, 3), NAN), H, 1), "kernel"),
                       (lambda: dd.linear_schedule(10, beta_start=NAN), "beta_start"),
                       (lambda: dd.cosine_schedule(10, s=NAN), "s"),
                       (lambda: dd.karras_sigmas(5, rho=NAN), "rho"),
                       (lambda: dd.karras_sigmas(5, sigma_max=INF), "sigma_max"),
                       (lambda: dd.from_betas([0.1, NAN]), "betas")]:
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            call()


# -- the training CLI -----------------------------------------------------------------------------
CLI_OK = ["--model", "mlp", "--model-kw", "hidden=8", "--model-kw", "depth=1", "--data", "moons", "--num-examples", "64",
          "--steps", "2", "--batch-size", "16", "--T", "20"]


@pytest.mark.parametrize("flag, value", [
    ("--num-examples", "0"), ("--num-examples", "-5"), ("--num-examples", "2.5"), ("--steps", "0"), ("--steps", "nan"),
    ("--batch-size", "0"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1e-3"), ("--ema", "1"),
    ("--ema", "-0.1"), ("--ema", "nan"), ("--label-dropout", "1.5"), ("--label-dropout", "nan"), ("--seed", "-1"),
    ("--seed", "1.5"), ("--T", "0"), ("--T", "10000000"), ("--sample-every", "-1"), ("--schedule", "cosin"),
    ("--prediction", "noise")])
def test_cli_range_checks_every_numeric_flag(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dd.train.main([*CLI_OK, flag, value, "--out", str(tmp_path / "m.safetensors")])
    assert exit_info.value.code == 2                            # argparse's usage error, before any training
    assert f"argument {flag}" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_load_training_data_refuses_zero_examples():
    with pytest.raises(ValueError, match="must be a positive integer, got 0"):
        dd.train.load_training_data("moons", 0)


def test_cli_does_not_overwrite_without_overwrite(tmp_path):
    out = tmp_path / "m.safetensors"
    dd.train.main([*CLI_OK, "--out", str(out)])
    first = out.read_bytes()
    png = out.with_suffix(".png").read_bytes()
    with pytest.raises(SystemExit, match="already exist.*--overwrite"):
        dd.train.main([*CLI_OK, "--seed", "1", "--out", str(out)])
    assert out.read_bytes() == first and out.with_suffix(".png").read_bytes() == png
    out.unlink()                                                 # the figure alone also counts
    with pytest.raises(SystemExit, match=r"m\.png already exist"):
        dd.train.main([*CLI_OK, "--out", str(out)])
    dd.train.main([*CLI_OK, "--seed", "1", "--out", str(out), "--overwrite"])
    m = dd.train.read_manifest(out)
    assert m["seed"] == 1 and "--overwrite" not in m["command"]   # the recorded command reproduces the weights


# -- exercises --------------------------------------------------------------------------------------
def _single_tensor_exercise() -> str:
    """An exercise whose answer is one tensor (the set of exercises grows; any such one will do)."""
    for name, e in sorted(dd.exercises.EXERCISES.items()):
        want = e.reference(**e.cases()[0])
        if isinstance(want, torch.Tensor) and want.ndim >= 1 and want.numel() > 1:
            return name
    raise AssertionError("no exercise with a tensor answer")


EX = _single_tensor_exercise()


def _forgets_return(**kw):
    dd.exercises.EXERCISES[EX].reference(**kw)


def _runs_forever(**kw):
    while True:
        pass


@pytest.mark.parametrize("fn, feedback", [
    (_forgets_return, "returned None: did you forget `return`?"),
    (lambda **kw: "x_t", "returned str 'x_t'"),
    (lambda **kw: 1 / 0, "raised ZeroDivisionError"),
    (lambda **kw: {"x": 1}, "returned dict"),
    (lambda **kw: dd.exercises.EXERCISES[EX].reference(**kw) * NAN, "NaN or inf"),
    (lambda **kw: [[1.0, 2.0, 3.0]] * 7, "output shape (7, 3)"),
    (lambda *args: None, "raised TypeError"),
], ids=["forgets_return", "string", "raises", "dict", "nan", "wrong_shape", "wrong_signature"])
def test_check_turns_a_students_mistake_into_feedback(fn, feedback, capsys):
    assert dd.exercises.check(EX, fn) is False
    out = capsys.readouterr().out
    assert feedback in out and "hint:" in out


def test_check_stops_a_function_that_runs_forever(capsys):
    import time
    t0 = time.perf_counter()
    assert dd.exercises.check(EX, _runs_forever, timeout=0.5) is False
    assert time.perf_counter() - t0 < 5
    assert "ran for more than 0.5 s" in capsys.readouterr().out


def test_check_off_the_main_thread_still_times_out(capsys):
    import threading
    result = {}
    worker = threading.Thread(target=lambda: result.update(ok=dd.exercises.check(EX, _runs_forever, timeout=0.3)))
    worker.start()
    worker.join(10)
    assert result == {"ok": False} and "ran for more than 0.3 s" in capsys.readouterr().out


@pytest.mark.parametrize("kw, name", [({"atol": -1e-6}, "atol"), ({"atol": NAN}, "atol"), ({"atol": "1e-6"}, "atol"),
                                      ({"timeout": 0}, "timeout"), ({"timeout": NAN}, "timeout")])
def test_check_refuses_bad_tolerances(kw, name):
    ref = dd.exercises.EXERCISES[EX].reference
    with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
        dd.exercises.check(EX, ref, **kw)
