"""Inverse problems y = A(x) + sigma_y n: measurement operators, classical solvers
(pseudo-inverse, Tikhonov / Wiener, total variation) and plug-and-play restoration."""
from .operators import (Blur, Dense, Inpainting, LinearOperator, MultiCoilMRI, Operator, ParallelBeamCT, PhaseRetrieval,
                        SingleCoilMRI, SuperResolution, Turbulence, box_mask, cartesian_mask, coil_sensitivities,
                        conjugate_gradient, fbp, freeform_mask, gaussian_kernel, limited_angle, motion_kernel, random_mask,
                        root_sum_of_squares, sparse_view_angles, zero_filled)
from .classical import (div2d, grad2d, pseudo_inverse, tikhonov, total_variation, tv_denoise,
                        tv_objective, tv_reconstruct, wiener)
from .pnp import dpir_sigmas, pnp_hqs, tv_denoiser
from .diffusion_prior import annealed_timesteps, diffusion_prior_loss, diffusion_prior_map

__all__ = ["Operator", "LinearOperator", "Dense", "SuperResolution", "Inpainting", "Blur",
           "Turbulence", "PhaseRetrieval", "conjugate_gradient", "box_mask", "random_mask",
           "freeform_mask", "gaussian_kernel", "motion_kernel", "ParallelBeamCT", "fbp", "limited_angle",
           "sparse_view_angles", "SingleCoilMRI", "MultiCoilMRI", "cartesian_mask", "coil_sensitivities",
           "root_sum_of_squares", "zero_filled",
           "pseudo_inverse", "tikhonov", "wiener", "grad2d", "div2d", "total_variation",
           "tv_objective", "tv_denoise", "tv_reconstruct",
           "dpir_sigmas", "pnp_hqs", "tv_denoiser"]

# Diffusion posterior samplers (all through the one denoiser contract)
from .posterior import (DPSDenoiser, consistency_step, dds, dds_data_step, ddrm, ddrm_step, diffpir, diffpir_data_step,
                        diffpir_step, dps, dps_denoiser, dps_step, noisy_measurement, repaint, repaint_schedule,
                        repaint_step, song_mc, spectral_measurement)

__all__ += ["dps", "dps_step", "dps_denoiser", "DPSDenoiser", "ddrm", "ddrm_step", "spectral_measurement",
            "repaint", "repaint_step", "repaint_schedule", "diffpir", "diffpir_step", "diffpir_data_step",
            "song_mc", "consistency_step", "noisy_measurement", "dds", "dds_data_step"]
# Graikos et al.'s diffusion prior (the PnP adapter of a diffusion denoiser is dd.sigma_denoiser)
__all__ += ["diffusion_prior_map", "diffusion_prior_loss", "annealed_timesteps"]
