"""PCK tables of chapter 15: DIFT swept over the step t and the layer, beside the controls.

    sweep(model, data, pairs, ts, layers, schedule)   {(t, layer): PCK dict}, one forward pass per (t, noise draw)
    best(table)                                        the (t, layer) with the highest per-point PCK
    identity_baseline(data, pairs)                     "copy the coordinates": what position alone scores
    scoreboard(...)                                    DIFT (trained), the untrained net, raw pixels, the classifier

Every entry is PCK@alpha of cosine nearest-neighbour matching (dift.pck_of) on same-class pairs of
warps.warped_shapes; the data of the table is a seed the networks never saw (they train on seed 0).
"""
from __future__ import annotations

import torch

from .._validate import check_positive_int
from . import dift
from .pck import box_size, correct_keypoints, pck

__all__ = ["sweep", "best", "identity_baseline", "scoreboard", "load_networks"]


def sweep(model, data, pairs: torch.Tensor, ts, layers, schedule, n_noise: int = 2, seed: int = 0,
          alpha: float = 0.1) -> dict:
    """{(t, layer): {"per_point", "per_image"}} for every t in ts and layer in layers (names of
    model.features); data: a WarpedShapes, pairs: (M, 2). All layers of one t come from the same passes."""
    check_positive_int("n_noise", n_noise)
    out = {}
    for t in ts:
        feats = dift.dift_features(model, data.images, int(t), list(layers), schedule, n_noise, seed)
        for layer in layers:
            out[int(t), layer] = dift.pck_of(feats[layer], data, pairs, alpha)
    return out


def best(table: dict, key: str = "per_point"):
    """The key (t, layer) of the table's highest PCK, and that PCK dict."""
    if not table:
        raise ValueError("table is empty")
    k = max(table, key=lambda k: table[k][key])
    return k, table[k]


def identity_baseline(data, pairs: torch.Tensor, alpha: float = 0.1) -> dict:
    """PCK of predicting, for each source keypoint, the centre of the same pixel in the target."""
    pred = torch.cat([torch.floor(data.keypoints[i]) + 0.5 for i, _ in pairs.tolist()])
    true = torch.cat([data.keypoints[j] for _, j in pairs.tolist()])
    size = torch.cat([box_size(data.boxes[j]).expand(len(data.keypoints[j])) for _, j in pairs.tolist()])
    ids = torch.cat([torch.full((len(data.keypoints[j]),), m) for m, (_, j) in enumerate(pairs.tolist())])
    return pck(correct_keypoints(pred, true, size, alpha), ids)


def load_networks(seed: int = 0):
    """(trained U-Net, the same U-Net untrained with torch seed `seed`, classifier, schedule) of chapter 15."""
    from ..nets.unet import unet_tiny
    from ..schedules import get_schedule
    from ..train.checkpoints import pretrained, read_manifest, checkpoint_path
    trained = pretrained("correspondence/dift_unet")
    spec = read_manifest(checkpoint_path("correspondence/dift_unet"))
    torch.manual_seed(seed)
    untrained = unet_tiny(**spec["model"]["kwargs"]).eval()
    sched = get_schedule(spec["schedule"]["name"], spec["schedule"]["T"])
    return trained, untrained, pretrained("correspondence/shape_classifier"), sched


def scoreboard(data, pairs, ts, layers, n_noise: int = 2, patch: int = 5, alpha: float = 0.1) -> dict:
    """Every row of the chapter's table: {"DIFT (trained)": (setting, pck), "untrained": ..., "pixels": ...,
    "classifier": ..., "identity": ...}, each network at its own best t / layer on these pairs."""
    trained, untrained, clf, sched = load_networks()
    rows = {}
    for name, net in (("DIFT (trained U-Net)", trained), ("same U-Net, untrained", untrained)):
        rows[name] = best(sweep(net, data, pairs, ts, layers, sched, n_noise, alpha=alpha))
    clf_table = {("t=0", layer): dift.pck_of(dift.classifier_features(clf, data.images, layer), data, pairs, alpha)
                 for layer in dift.classifier_layers(clf) if layer != "out"}
    rows["supervised classifier"] = best(clf_table)
    rows[f"raw pixels ({patch}x{patch} patch)"] = (f"patch {patch}", dift.pck_of(dift.pixel_features(data.images, patch),
                                                                               data, pairs, alpha))
    rows["copy the coordinates"] = ("-", identity_baseline(data, pairs, alpha))
    return rows
