"""Chapter 15's shipped networks: manifests that name the reproducing command, and the chapter's
headline in miniature (trained DIFT features beat the same network untrained); the widget draws."""
from pathlib import Path

import torch

from diffedu.correspondence import dift, evaluate, warps
from diffedu.train import checkpoint_path, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_manifests_hold_the_commands_of_the_training_script():
    script = (ROOT / "scripts" / "train_correspondence.sh").read_text().replace("$OUT", "diffedu/checkpoints/correspondence")
    for name, what in (("dift_unet", "diffusion"), ("shape_classifier", "classifier"), ("text_attn", "text_attn")):
        m = read_manifest(checkpoint_path(f"correspondence/{name}"))
        assert m["command"].startswith(f"python -m diffedu.correspondence {what} ")
        args = m["command"].split(" ", 3)[3]                                   # "diffusion --steps ..."
        assert f"run {args}" in script.replace(" --overwrite", "")
        assert m["quality"]
    folder = ROOT / "diffedu" / "checkpoints" / "correspondence"
    assert sum(p.stat().st_size for p in folder.iterdir()) < 3e6                 # the chapter's budget


def test_text_attn_has_no_pooled_path_and_its_colour_words_localise():
    from diffedu.correspondence import attention
    from diffedu.data import scenes
    from diffedu.train import pretrained_denoiser
    den = pretrained_denoiser("correspondence/text_attn")
    net = den.model
    assert net.text_to_emb.weight.abs().sum() == 0 and net.text_to_emb.bias.abs().sum() == 0
    assert len(net.text_encoder.blocks) == 0 and "attn.down.0" in attention.attention_layers(net, (3, 16, 16))
    sc = scenes.scenes(12, seed=1, two_object_prob=1.0)
    own, other, chance = attention.object_iou(attention.token_maps(net, sc.images, sc.captions, 300, den.schedule, 1), sc,
                                              "colour")
    assert own > max(3 * chance, other + 0.1), (own, other, chance)


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
