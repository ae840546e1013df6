import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from diffedu.train import build_model, load_model, load_training_data, main, pretrained_denoiser, read_manifest


def test_cli_trains_and_writes_checkpoint_manifest_and_figure(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    main(["--model", "mlp", "--model-kw", "hidden=16", "--model-kw", "depth=1", "--data", "gmm",
          "--num-examples", "500", "--steps", "30", "--seed", "3", "--out", str(out)])
    m = read_manifest(out)
    assert m["command"].startswith("python -m diffedu.train --model mlp")
    assert m["seed"] == 3 and m["steps"] == 30 and m["data"]["name"] == "gmm" and m["data"]["n"] == 500
    assert m["model"] == {"factory": "diffedu.nets.mlp:MLPDenoiser", "kwargs": {"hidden": 16, "depth": 1}}
    assert m["final_loss"] > 0 and "sliced_wasserstein_ddim50" in m["quality"]
    assert len(m["loss_curve"]) == 30
    assert (tmp_path / "m.png").stat().st_size > 1000
    model = load_model(out)
    assert model(torch.randn(4, 2), torch.tensor([1, 2, 3, 4])).shape == (4, 2)
    D = pretrained_denoiser(out)                      # a CLI checkpoint, by path: points, no clip
    assert D.clip is None and D.schedule.name == "linear" and len(D.schedule) == 1000
    assert D.x0_eps(torch.randn(4, 2), 500)[0].shape == (4, 2)


def test_python_dash_m_runs_the_cli(tmp_path):
    """`python -m diffedu.train` (the command every manifest records) reaches the package's CLI."""
    out = subprocess.run([sys.executable, "-m", "diffedu.train", "--help"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.startswith("usage: python -m diffedu.train") and "--model-kw" in out


def test_cli_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet")
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        load_training_data("imagenet")
    with pytest.raises(SystemExit, match="must end in .safetensors"):
        main(["--steps", "1", "--out", "model.pt"])


@pytest.mark.slow
def test_torchrun_ddp_keeps_replicas_identical(tmp_path):
    """Two CPU processes (gloo) train for a few steps: every replica ends with the same weights,
    and they differ from one process's run (each rank saw its own batches)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["--model", "mlp", "--model-kw", "hidden=16", "--data", "moons", "--num-examples", "512", "--steps", "15", "--batch-size", "64"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                    "-m", "diffedu.train", *args, "--out", str(tmp_path / "ddp.safetensors"), "--save-all-ranks"],
                   check=True, env=env, capture_output=True, timeout=300)
    r0, r1 = load_file(str(tmp_path / "ddp.rank0.safetensors")), load_file(str(tmp_path / "ddp.rank1.safetensors"))
    assert read_manifest(tmp_path / "ddp.safetensors")["world_size"] == 2
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0)
    main([*args, "--out", str(tmp_path / "single.safetensors")])
    single = load_file(str(tmp_path / "single.safetensors"))
    assert any(not torch.equal(single[k], r0[k]) for k in r0)
