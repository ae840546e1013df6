"""The shipped chapter-13 students (diffedu/checkpoints/distill): they load without pickle, carry
a complete manifest whose command scripts/train_distill.sh runs, and reproduce the quality recorded."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

from diffedu.distill import scoreboard as sb, train as dt
from diffedu.train import read_manifest

NAMES = dt.shipped_students()
EXPECTED = {"pd_gmm_8", "pd_gmm_4", "pd_gmm_2", "pd_gmm_1", "cm_gmm_cd", "cm_gmm_ct", "cm_gmm_ict",
            "gd_gmm", "gd_gmm_4", "gd_gmm_2", "gd_gmm_1", "add_gmm_1", "add_gmm_1_distill_only", "pnp_base", "pnp_guide",
            "pnp_base_ft"}
KEYS = {"command", "data", "seed", "steps", "final_loss", "quality", "model", "loss_curve", "parameters", "train_seconds"}


def test_the_chapter_students_are_shipped_and_small():
    assert EXPECTED <= set(NAMES), f"missing: {EXPECTED - set(NAMES)}"
    sizes = {p.name: p.stat().st_size for p in dt.STUDENTS_DIR.iterdir() if p.is_file()}
    assert sum(sizes.values()) < 6e6, sizes
    for name in NAMES:
        assert (dt.STUDENTS_DIR / f"{name}.png").exists()


def test_the_script_reproduces_every_manifest_command():
    script = Path(__file__).parents[1] / "scripts" / "train_distill.sh"
    out = subprocess.run(["bash", str(script)], env={**os.environ, "PYTHON": "echo python"},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    printed = {line for line in out.splitlines() if line.startswith("python -m diffedu.distill ")}
    assert {read_manifest(dt.STUDENTS_DIR / f"{n}.safetensors")["command"] for n in NAMES} <= printed


@pytest.mark.parametrize("name", NAMES)
def test_student_loads_and_reproduces_its_quality(name):
    st = dt.load_student(name)
    m = st.manifest
    assert KEYS <= set(m) and m["model"]["class"].startswith("diffedu.distill.")
    assert not any(p.requires_grad for p in st.parameters())
    gmm, ref, _ = dt.reference()
    z = dt.noise()
    with torch.no_grad():
        if name.startswith("pd_"):
            x = sb.sample_row("pd", m["quality"]["calls"], z, student=st)
        elif name.startswith("add_"):
            from diffedu.distill.adversarial import one_step
            x = one_step(st, z)
        elif name.startswith("cm_"):
            x = sb.sample_row(name.split("_")[-1], 1, z, student=st)
        elif name.startswith("pnp_"):
            from diffedu.distill import plugplay as pp
            from diffedu.exact.challenges import shifted
            if name == "pnp_guide":
                base = dt.load_student("pnp_base")
                x, ref = pp.one_pass_sample(base, st, z, 16, 2, 2.0), pp.cfg_sample(base, z, 64, 2, 2.0)
            else:
                x = pp.cfg_sample(st, z, 64, st.num_classes, 1.0)
                if name == "pnp_base_ft":
                    ref = shifted(gmm, dt.PNP_SHIFT).sample(len(ref), torch.Generator().manual_seed(1))
        else:
            from diffedu.distill import guidance as gd
            x = gd.gd_sample(st, z, m["quality"]["calls"], 2, 2.0)
            ref = gd.cfg_sample(gmm, z, 64, 2, 2.0)
    assert dt.evaluate(x, ref) == pytest.approx(m["quality"]["sw"], abs=2e-3)
