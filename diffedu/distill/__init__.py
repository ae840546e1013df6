"""Distillation: few-step students that keep their teacher's samples (chapter 13).

Survey section 7 names the area (knowledge distillation in diffusion models: 7.1 plug-and-play
diffusion distillation, 7.2 adversarial diffusion distillation, 7.3 CoDi); this package builds
the three methods those build on, and 7.2 itself, each a short loss plus a training entry on train.fit:

    progressive.py   progressive distillation (Salimans & Ho 2022): N -> N/2 -> ... -> 1 steps
    consistency.py   consistency models (Song et al. 2023): CD, CT and iCT; 1-step and multistep
    guidance.py      guidance distillation (Meng et al. 2023): one w-conditioned pass for CFG's two
    adversarial.py   adversarial diffusion distillation (Sauer et al. 2023, survey 7.2): one step, modes kept
    scoreboard.py    the chapter's table (method x calls x SW x CPU time) and the guidance table
    common.py        the teacher at a continuous level (exact GMM or any Denoiser), the student net
    train.py         `python -m diffedu.distill METHOD`: train, save the students, score them

Teachers are diffedu Denoisers or a GaussianMixture (the exact denoiser at every level);
students ship in diffedu/checkpoints/distill (load them with `load_student(name)`).
"""
from . import adversarial, common, consistency, guidance, progressive
from .common import LevelMLP, gmm_x0, level_teacher
from .train import STUDENTS_DIR, load_student, shipped_students

__all__ = ["common", "progressive", "consistency", "guidance", "adversarial", "LevelMLP", "gmm_x0", "level_teacher",
           "load_student", "shipped_students", "STUDENTS_DIR"]
