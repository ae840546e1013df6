"""Chapter 15's shipped networks: manifests that name the reproducing command, and the chapter's
headline in miniature (trained DIFT features beat the same network untrained); the widget draws."""
from pathlib import Path

import torch

from diffedu.correspondence import dift, evaluate, warps
from diffedu.train import checkpoint_path, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_manifests_hold_the_commands_of_the_training_script():
    script = (ROOT / "scripts" / "train_correspondence.sh").read_text().replace("$OUT", "diffedu/checkpoints/correspondence")
    for name, what in (("dift_unet", "diffusion"), ("shape_classifier", "classifier")):
        m = read_manifest(checkpoint_path(f"correspondence/{name}"))
        assert m["command"].startswith(f"python -m diffedu.correspondence {what} ")
        args = m["command"].split(" ", 3)[3]                                   # "diffusion --steps ..."
        assert f"run {args}" in script.replace(" --overwrite", "")
        assert m["quality"]


def test_trained_features_beat_the_untrained_network():
    data = warps.warped_shapes(16, seed=1)
    pairs = warps.same_class_pairs(data, 30, seed=0)
    trained, untrained, _, schedule = evaluate.load_networks()
    score = {name: dift.pck_of(dift.dift_features(net, data.images, 25, "up.2", schedule, n_noise=1)["up.2"], data, pairs)
             for name, net in (("trained", trained), ("untrained", untrained))}
    assert score["trained"]["per_point"] > score["untrained"]["per_point"] + 0.15, score


def test_widget_draws_and_refuses_missing_settings():
    import pytest
    from diffedu.viz.widgets.correspondence import correspondence_explorer
    data = warps.warped_shapes(2, seed=0, classes=("square",))
    feats = {(t, layer): torch.randn(2, 4, 32, 32) for t in (0, 50) for layer in ("a", "b")}
    box = correspondence_explorer(data.images[0], data.images[1], data.keypoints[0], data.keypoints[1], feats,
                                  names=data.keypoint_names(0), box_size=10.0)
    fig = box.draw()
    assert len(fig.axes) == 3 and "top-left" in str(box.controls["keypoint"].options)
    assert box.controls["layer"].value == "a" and box.controls["t"].value == 50          # defaults: first layer, middle t
    with pytest.raises(ValueError, match=r"layer 'c' has no features; the features hold layers \['a', 'b'\]"):
        correspondence_explorer(data.images[0], data.images[1], data.keypoints[0], data.keypoints[1], feats, layer="c")
    del feats[50, "b"]
    with pytest.raises(ValueError, match=r"missing \[\(50, 'b'\)\]"):
        correspondence_explorer(data.images[0], data.images[1], data.keypoints[0], data.keypoints[1], feats)
