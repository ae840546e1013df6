"""Chapter 12b's shipped networks: they load (float16 on disk, float32 in memory), their manifests
say how to reproduce them within the 5-CPU-minute budget, and they segment held-out slices; the
training command writes a loadable checkpoint."""
import pytest
import torch

from diffedu.segmentation import diffseg as ds, evaluate as ev, train as st
from diffedu.train.checkpoints import CHECKPOINTS, read_manifest

NAMES = {"sup_unet": "sup", "diff_onehot": "diff", "diff_bits": "bits", "diff_rnd": "rnd"}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_manifest_and_budget(name):
    man = read_manifest(f"segmentation/{name}")
    assert man["command"].startswith("python -m diffedu.segmentation.train --method " + NAMES[name])
    assert man["model"]["kwargs"] == st.unet_config(NAMES[name]) and 0 < man["cpu_seconds"] <= 300
    assert man["seed"] == 0 and man["steps"] > 0 and man["quality"]
    net = st.load(name)
    assert all(p.dtype == torch.float32 for p in net.parameters()) and not net.training


def test_shipped_networks_segment_held_out_slices():
    images, ann = st.test_data(8)
    sup = ev.dice_vs_annotators(ds.supervised_probs(st.load("sup_unet"), images).argmax(1), ann)[1:].mean()
    one = ds.single_step(st.load("diff_onehot"), images, st.schedule(), generator=torch.Generator().manual_seed(0))[0]
    assert sup > 0.6 and ev.dice_vs_annotators(one, ann)[1:].mean() > 0.6
    assert sum(p.stat().st_size for p in (CHECKPOINTS / "segmentation").glob("*.safetensors")) < 3e6


def test_training_command_writes_a_loadable_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(st, "N_TRAIN", 8)
    monkeypatch.setattr(st, "test_data", lambda n=64: st.cardiac.cardiac_slices(2, st.SIZE, 4, seed=st.TEST_SEED))
    out = tmp_path / "sup.safetensors"
    st.main(["--method", "sup", "--steps", "2", "--batch-size", "2", "--out", str(out)])
    man = read_manifest(out)
    assert man["steps"] == 2 and "--method sup" in man["command"]
    from diffedu.train.checkpoints import load_model
    assert load_model(out)(torch.zeros(1, 1, 24, 24), 0).shape == (1, 4, 24, 24)


def test_the_script_reproduces_every_manifest_command():
    from pathlib import Path
    script = (Path(__file__).resolve().parents[1] / "scripts" / "train_segmentation.sh").read_text()
    lines = [" ".join(line.replace("$PY", "python").replace("$OUT", "diffedu/checkpoints/segmentation").split())
             for line in script.splitlines() if line.startswith("$PY")]
    commands = {" ".join(read_manifest(f"segmentation/{n}")["command"].split()) for n in NAMES}
    assert set(lines) == commands
