"""Chapter 11's operators against deepinv's (a test-time peer only; skipped when deepinv is absent).

Conventions matched (each one is a deliberate difference, documented here and asserted below):

CT, `deepinv.physics.Tomography(angles, img_width=N, circle=True, normalize=False)`
    angles    both in degrees; deepinv's `angles=int` means that many over [0, 180), as `sparse_view_angles`.
    layout    deepinv's sinogram is (B, 1, D, V) (detectors by views, skimage's layout); diffedu's (B, 1, V, D).
    centre    deepinv rotates about (N - 1) / 2 (grid_sample, align_corners=True), diffedu about N // 2
              (skimage's centre): the same point only for odd N, so the peer runs at N = 33 (for even N
              the two transforms differ by a half-pixel shift of the rotation centre, ~3-30 % per view).
    circle    deepinv zeroes the pixels outside the inscribed circle before projecting (so its adjoint is 0
              there); diffedu's rays also cross the square's corners. Equal on images supported in the circle,
              and the adjoints agree after the same circle mask.
    scale     factor 1 with normalize=False: both are line integrals with unit pixel and sample spacing and
              bilinear interpolation. deepinv's default normalize=True divides A by its operator norm ||A||_2,
              which the power iteration on diffedu's operator (restricted to the circle) reproduces.
MRI, `deepinv.physics.MRI(mask)` and `MultiCoilMRI(mask, coil_maps)`
    fft       both orthonormal (norm="ortho") with a centred k-space (fftshift after the FFT), the same mask.
    origin    deepinv also centres the image (ifftshift before the FFT: origin at pixel (H//2, W//2)); diffedu
              keeps the origin at pixel (0, 0). So diffedu.A(x) == deepinv.A(fftshift(x)), and coil maps move
              with the image (deepinv gets fftshift(S)); adjoints compare after the same fftshift.
    complex   deepinv: 2 channels (B, 2, [Nc,] H, W) = (Re, Im); diffedu: a last axis (B, Nc, H, W, 2).
              diffedu's images are real, so deepinv's input has a zero imaginary channel and diffedu's
              adjoint is deepinv's real channel.

deepinv's package __init__ imports torchvision (and h5py) eagerly, though its physics use neither. Its
pip wheel requires a torch other than this environment's CPU build, so it is installed with --no-deps;
when those two imports are missing, `_deepinv()` lets the import see empty stand-in modules for them,
then removes the stand-ins again (nothing else in the test session sees them).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

import pytest
import torch

from diffedu.inverse.operators.ct import ParallelBeamCT, sparse_view_angles
from diffedu.inverse.operators.mri import MultiCoilMRI, SingleCoilMRI, cartesian_mask, coil_sensitivities

_UNUSED_BY_PHYSICS = ("torchvision", "h5py")


class _Anything(types.ModuleType):
    """A stand-in module whose every attribute is another stand-in (only ever imported, never used)."""

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        return _Anything(f"{self.__name__}.{key}")

    def __call__(self, *args, **kwargs):
        return self

    def __mro_entries__(self, bases):
        return (object,)


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in _UNUSED_BY_PHYSICS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Anything(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def _deepinv():
    if importlib.util.find_spec("deepinv") is None:
        pytest.importorskip("deepinv")
    try:
        import deepinv
        return deepinv
    except ImportError as err:
        if (getattr(err, "name", "") or "").split(".")[0] not in _UNUSED_BY_PHYSICS:
            pytest.skip(f"deepinv does not import: {err}")
    for name in [m for m in sys.modules if m.split(".")[0] == "deepinv"]:
        del sys.modules[name]                          # the half-imported package of the first attempt
    finder = _StandIns()
    sys.meta_path.insert(0, finder)
    try:
        import deepinv
    finally:
        sys.meta_path.remove(finder)
        for name in [m for m in sys.modules if m.split(".")[0] in _UNUSED_BY_PHYSICS]:
            if isinstance(sys.modules[name], _Anything):
                del sys.modules[name]
    return deepinv


@pytest.fixture(scope="module")
def dinv():
    return _deepinv()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _disc_image(n, generator):
    """A smooth random image supported strictly inside the inscribed circle: (1, 1, n, n)."""
    c = (n - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(n) - c, torch.arange(n) - c, indexing="ij")
    x = torch.zeros(n, n)
    for _ in range(4):
        p = torch.rand(4, generator=generator)
        x += p[0] * torch.exp(-((yy - 10 * (p[1] - 0.5)) ** 2 + (xx - 10 * (p[2] - 0.5)) ** 2) / (4 + 20 * p[3]))
    return (x * ((yy ** 2 + xx ** 2).sqrt() < c - 2))[None, None]


def test_ct_forward_and_adjoint_match_tomography(dinv):
    g = torch.Generator().manual_seed(0)
    N, angles = 33, torch.tensor([0.0, 17.0, 45.0, 90.0, 133.0, 179.0])
    ours = ParallelBeamCT(N, angles)
    peer = dinv.physics.Tomography(angles=angles, img_width=N, circle=True, normalize=False)
    x = _disc_image(N, g)
    assert _rel(ours.A(x), peer.A(x).transpose(-1, -2)) < 1e-4              # factor 1, (V, D) <-> (D, V)
    yy, xx = torch.meshgrid(torch.arange(N) - 16.0, torch.arange(N) - 16.0, indexing="ij")
    circle = ((yy ** 2 + xx ** 2).sqrt() <= 16).float()
    r = torch.randn(1, 1, len(angles), N, generator=g)
    back = peer.A_adjoint(r.transpose(-1, -2))
    assert _rel(ours.A_adjoint(r) * circle, back) < 1e-4 and float((back * (1 - circle)).abs().max()) == 0
    # at an even size the rotation centres differ by half a pixel (module doc), and the views disagree
    even = ParallelBeamCT(32, angles)
    peer32 = dinv.physics.Tomography(angles=angles, img_width=32, circle=True, normalize=False)
    assert _rel(even.A(x[..., :32, :32]), peer32.A(x[..., :32, :32]).transpose(-1, -2)) > 1e-2


def test_ct_normalised_tomography_divides_by_the_operator_norm(dinv):
    g = torch.Generator().manual_seed(1)
    N = 33
    ours = ParallelBeamCT(N, sparse_view_angles(23))                        # the paper's 23 views
    peer = dinv.physics.Tomography(angles=23, img_width=N, circle=True, normalize=True)
    yy, xx = torch.meshgrid(torch.arange(N) - 16.0, torch.arange(N) - 16.0, indexing="ij")
    circle = ((yy ** 2 + xx ** 2).sqrt() <= 16).double()
    v = torch.randn(1, 1, N, N, generator=g, dtype=torch.float64)
    for _ in range(60):                                                      # power iteration on A^T A over the circle
        v = ours.A_adjoint(ours.A(v * circle)) * circle
        v = v / v.norm()
    norm = float(ours.A(v).norm())
    assert abs(norm / float(peer.operator_norm) - 1) < 1e-4
    x = _disc_image(N, g)
    assert _rel(ours.A(x) / norm, peer.A(x).transpose(-1, -2)) < 1e-4


def test_single_coil_mri_matches_deepinv(dinv):
    g = torch.Generator().manual_seed(2)
    for kind, R in (("equispaced", 4), ("random", 8)):
        mask = cartesian_mask(16, R, 0.08, kind, seed=3).float()
        ours, peer = SingleCoilMRI(mask), dinv.physics.MRI(mask=mask, img_size=(16, 16))
        x = torch.randn(2, 1, 16, 16, generator=g)
        xs = torch.fft.fftshift(x, dim=(-2, -1))                             # deepinv's image origin is the centre
        y_peer = peer.A(torch.cat([xs, torch.zeros_like(xs)], 1))            # (B, 2, H, W)
        assert _rel(ours.A(x)[:, 0].permute(0, 3, 1, 2), y_peer) < 1e-5
        # without the shift the k-spaces differ by the phase (-1)^(u + v): a different image origin
        assert _rel(ours.A(x)[:, 0].permute(0, 3, 1, 2), peer.A(torch.cat([x, torch.zeros_like(x)], 1))) > 0.3
        r = torch.randn(2, 1, 16, 16, 2, generator=g)
        back = peer.A_adjoint(r[:, 0].permute(0, 3, 1, 2))                   # complex image, 2 channels
        assert _rel(torch.fft.fftshift(ours.A_adjoint(r), dim=(-2, -1)), back[:, :1]) < 1e-5


def test_multi_coil_mri_matches_deepinv(dinv):
    g = torch.Generator().manual_seed(4)
    mask = cartesian_mask(16, 4, 0.08, "random", seed=5).float()
    S = coil_sensitivities(4, 16).to(torch.complex64)                        # (Nc, H, W), sum |S_c|^2 = 1
    ours = MultiCoilMRI(mask, S)
    peer = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=torch.fft.fftshift(S, dim=(-2, -1)), img_size=(16, 16))
    x = torch.rand(2, 1, 16, 16, generator=g)
    xs = torch.fft.fftshift(x, dim=(-2, -1))
    y_peer = peer.A(torch.cat([xs, torch.zeros_like(xs)], 1))                # (B, 2, Nc, H, W)
    assert _rel(ours.A(x).permute(0, 4, 1, 2, 3), y_peer) < 1e-5
    r = torch.randn(2, 4, 16, 16, 2, generator=g)
    back = peer.A_adjoint(r.permute(0, 4, 1, 2, 3))
    assert _rel(torch.fft.fftshift(ours.A_adjoint(r), dim=(-2, -1)), back[:, :1]) < 1e-5
