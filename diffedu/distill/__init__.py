"""Distillation: few-step students that keep their teacher's samples (chapter 13).

Survey section 7 names the area (knowledge distillation in diffusion models: 7.1 plug-and-play
diffusion distillation, 7.2 adversarial diffusion distillation, 7.3 CoDi); this package builds
the three methods those build on and all three named ones, each a short loss plus a training entry:

    progressive.py   progressive distillation (Salimans & Ho 2022): N -> N/2 -> ... -> 1 steps
    consistency.py   consistency models (Song et al. 2023): CD, CT and iCT; 1-step and multistep
    guidance.py      guidance distillation (Meng et al. 2023): one w-conditioned pass for CFG's two
    adversarial.py   adversarial diffusion distillation (Sauer et al. 2023, survey 7.2): one step, modes kept
    plugplay.py      plug-and-play diffusion distillation (Hsiao et al. 2024, survey 7.1): a guide beside a frozen base
    images.py        progressive distillation of the digit U-Net, scored by a Frechet-distance proxy (chapter 13b)
    codi.py          CoDi (Mei et al. 2024, survey 7.3): an unconditional teacher -> a 1-4 step conditional student (13b)
    scoreboard.py    the chapter's table (method x calls x SW x CPU time) and the guidance table
    common.py        the teacher at a continuous level (exact GMM or any Denoiser), the student net
    train.py         `python -m diffedu.distill METHOD`: train, save the students, score them

Teachers are diffedu Denoisers or a GaussianMixture (the exact denoiser at every level);
students ship in diffedu/checkpoints/distill (load them with `load_student(name)`); chapter 13b's image
students in its digits/ subfolder.
"""
from . import adversarial, common, consistency, guidance, progressive
from .common import LevelMLP, gmm_x0, level_teacher
from .train import STUDENTS_DIR, load_student, shipped_students

__all__ = ["common", "progressive", "consistency", "guidance", "adversarial", "LevelMLP", "gmm_x0", "level_teacher",
           "load_student", "shipped_students", "STUDENTS_DIR"]
