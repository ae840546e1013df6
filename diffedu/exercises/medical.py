"""Exercises of chapter 11 (sparse-view CT, accelerated MRI), each graded on fixed inputs.

    radon_adjoint      back-projection as the adjoint of any linear forward map (a vector-Jacobian product)
    kspace_mask        an equispaced Cartesian mask with a fully sampled centre
    data_consistency   Song et al.'s k-space blend with weight lambda, for a real image
"""
from __future__ import annotations

import torch

from . import Exercise


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# -- reference solutions (kept short: they are what `solution` prints) --------------------
def radon_adjoint(forward, y, x_shape):
    """A^T y for a linear forward(x) -> y: the gradient of <forward(x), y> with respect to x
    (for a linear map, the vector-Jacobian product is the adjoint, at any x)."""
    x = torch.zeros(x_shape, dtype=y.dtype, requires_grad=True)
    (g,) = torch.autograd.grad(forward(x), x, grad_outputs=y)
    return g


def kspace_mask(width, acceleration, n_center, offset):
    """(width,) 0/1 float64: the n_center central columns (starting at width // 2 - n_center // 2)
    and every `acceleration`-th column from `offset`."""
    m = torch.zeros(width, dtype=torch.float64)
    c0 = width // 2 - n_center // 2
    m[c0:c0 + n_center] = 1
    m[offset::acceleration] = 1
    return m


def data_consistency(x, y_hat, mask, lam):
    """Re F^H [K + lam M (y_hat - K)], K = fftshift(fft2(x, ortho)): replace the sampled k-space
    values of the real image x: (H, W) by a lam-blend with y_hat: (H, W) complex, centred."""
    K = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"))
    K = K + lam * mask * (y_hat - K)
    return torch.fft.ifft2(torch.fft.ifftshift(K), norm="ortho").real


def _ct_case(k, n, views):
    from ..inverse.operators.ct import ParallelBeamCT, sparse_view_angles
    op = ParallelBeamCT(n, sparse_view_angles(views))
    return {"forward": op.A, "y": _rand(2, 1, views, n, seed=k), "x_shape": (2, 1, n, n)}


def _symmetric_mask(H, W, seed):
    """A conjugate-symmetric column mask (M_k = M_{-k}) in the centred layout."""
    g = torch.Generator().manual_seed(seed)
    half = (torch.rand(W // 2 + 1, generator=g) < 0.5).double()
    cols = torch.zeros(W, dtype=torch.float64)
    f = torch.arange(W) - W // 2                                        # signed column frequency
    cols[:] = half[f.abs().clamp_max(W // 2)]
    return cols[None].expand(H, W).contiguous()


def _dc_case(k, H, W, lam):
    from ..inverse.operators.mri import SingleCoilMRI
    m = _symmetric_mask(H, W, k)
    y = torch.view_as_complex(SingleCoilMRI(m).A(_rand(1, 1, H, W, seed=50 + k))[0, 0].contiguous())
    return {"x": _rand(H, W, seed=k), "y_hat": y, "mask": m, "lam": lam}


EXERCISES = [
    Exercise("radon_adjoint", "11",
             "write A^T y for a linear forward(x) (the Radon transform here) without knowing its matrix",
             radon_adjoint,
             lambda: [_ct_case(k, n, v) for k, (n, v) in enumerate([(8, 3), (12, 5), (10, 7)])],
             "For a linear map, <A x, y> = <x, A^T y>, so A^T y is the gradient of x -> <forward(x), y>. "
             "torch.autograd.grad(forward(x), x, grad_outputs=y) computes exactly that (x must require grad)."),
    Exercise("kspace_mask", "11",
             "write an equispaced Cartesian k-space mask: n_center central columns plus every R-th column",
             kspace_mask,
             lambda: [{"width": w, "acceleration": r, "n_center": c, "offset": o}
                      for w, r, c, o in [(32, 4, 3, 1), (32, 8, 1, 0), (20, 3, 4, 2), (15, 2, 0, 1)]],
             "Start from zeros; the centre block begins at width // 2 - n_center // 2 (the zero frequency "
             "sits at width // 2 in the centred layout); slicing m[offset::acceleration] sets the rest."),
    Exercise("data_consistency", "11",
             "write Song et al.'s k-space data-consistency blend with weight lam for a real image",
             data_consistency,
             lambda: [_dc_case(k, H, W, lam) for k, (H, W, lam) in enumerate([(8, 8, 1.0), (8, 6, 0.5), (6, 10, 0.0)])],
             "Go to the centred k-space (fft2 with norm='ortho', then fftshift), move the sampled entries a "
             "fraction lam of the way to y_hat (multiply by the mask), come back (ifftshift, ifft2) and keep the real part."),
]


def _self_check():
    """The references agree with the package (the exercises cannot drift from diffedu)."""
    from ..inverse.operators.mri import SingleCoilMRI, cartesian_mask
    from ..inverse.posterior.song_mc import consistency_step
    c = _ct_case(0, 8, 3)
    op_y = c["forward"].__self__
    torch.testing.assert_close(radon_adjoint(**c), op_y.A_adjoint(c["y"]))
    m = cartesian_mask((4, 32), 4, 3 / 32, kind="equispaced")[0]
    assert int(kspace_mask(32, 4, 3, 1).sum()) >= int(m.sum()) - 1
    d = _dc_case(1, 8, 6, 0.5)
    op = SingleCoilMRI(d["mask"])
    want = consistency_step(d["x"][None, None], torch.view_as_real(d["y_hat"])[None, None], op, 0.5)
    torch.testing.assert_close(data_consistency(**d), want[0, 0])
