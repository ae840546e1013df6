"""Diffusion posterior samplers for y = A(x) + sigma_y n, each taking a denoiser (anything
`denoiser.as_denoiser` accepts) and each a step run by the one reverse loop:

    common.py    the shared setup: checks (operator, y, schedule), as_denoiser, x_T
    dps.py       DPS (any differentiable A): dps_step in samplers.reverse_loop; DPSDenoiser,
                 the same update as a guided Denoiser for samplers.ddpm
    ddrm.py      DDRM (A with an SVD): ddrm_step in samplers.reverse_loop
    diffpir.py   DiffPIR (linear A): denoiser + diffpir_step in samplers.reverse_loop
    repaint.py   RePaint (linear A): a reverse_loop-shaped step inside its own time-travel loop
    song_mc.py   Song, Shen, Xing & Ermon's measurement-consistent sampler (CT, MRI; chapter 11)
    dds.py       DDS (Chung, Lee & Ye): CG data consistency at the Tweedie estimate, then DDIM (chapter 11)
"""
from .ddrm import ddrm, ddrm_step, spectral_measurement
from .dds import dds, dds_data_step
from .diffpir import diffpir, diffpir_data_step, diffpir_step
from .dps import DPSDenoiser, dps, dps_denoiser, dps_step
from .repaint import repaint, repaint_schedule, repaint_step
from .song_mc import consistency_step, noisy_measurement, song_mc

__all__ = ["dps", "dps_step", "dps_denoiser", "DPSDenoiser", "ddrm", "ddrm_step", "spectral_measurement",
           "diffpir", "diffpir_step", "diffpir_data_step", "repaint", "repaint_step", "repaint_schedule",
           "song_mc", "consistency_step", "noisy_measurement", "dds", "dds_data_step"]
