"""Measurement operators for inverse problems  y = A(x) + sigma_y * n,  n ~ N(0, I).

Small operator objects in the style of deepinv (`A`, `A_adjoint`, `A_dagger`), with the SVD
that DDRM needs where one is cheap. One module per concept:
    base.py       Operator, LinearOperator (adjoint, pseudo-inverse, SVD interface), conjugate_gradient
    linear.py     Dense, SuperResolution, Inpainting, Blur, Turbulence
    nonlinear.py  PhaseRetrieval
    masks.py      box / random / free-form masks, Gaussian and motion blur kernels
    ct.py         ParallelBeamCT (Radon transform, exact back-projection), fbp, view sets
    mri.py        SingleCoilMRI, MultiCoilMRI (SENSE), Cartesian masks, zero-filled and RSS baselines
"""
from .base import LinearOperator, Operator, conjugate_gradient
from .ct import ParallelBeamCT, fbp, limited_angle, sparse_view_angles
from .linear import Blur, Dense, Inpainting, SuperResolution, Turbulence
from .masks import box_mask, freeform_mask, gaussian_kernel, motion_kernel, random_mask
from .mri import MultiCoilMRI, SingleCoilMRI, cartesian_mask, coil_sensitivities, root_sum_of_squares, zero_filled
from .nonlinear import PhaseRetrieval

__all__ = ["Operator", "LinearOperator", "Dense", "SuperResolution", "Inpainting", "Blur",
           "Turbulence", "PhaseRetrieval", "conjugate_gradient", "box_mask", "random_mask",
           "freeform_mask", "gaussian_kernel", "motion_kernel", "ParallelBeamCT", "fbp", "limited_angle", "sparse_view_angles",
           "SingleCoilMRI", "MultiCoilMRI", "cartesian_mask", "coil_sensitivities", "root_sum_of_squares", "zero_filled"]
