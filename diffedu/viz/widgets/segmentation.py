"""Widgets of chapter 12b (segmentation by diffusion): the implicit ensemble, one sample at a time.

    ensemble_explorer   an ensemble-size slider (and an image picker) over precomputed samples:
                        the image, the newest sample, the ensemble's prediction (argmax of the
                        mean), its variance map, the error map (the fraction of annotators that
                        disagree with the prediction) and the annotators' own disagreement

Everything is computed before the widget is shown (the K samples of every image, the running
means for every ensemble size); a move only swaps the data of six persistent images.
"""
from __future__ import annotations

import torch

from ...segmentation import metrics as M
from .core import check_image, dashboard, dropdown, int_slider

__all__ = ["ensemble_tables", "ensemble_explorer"]


def ensemble_tables(samples: torch.Tensor, annotations: torch.Tensor, num_classes: int = 4) -> dict:
    """For every image b and ensemble size k = 1..K (the first k samples): the prediction, the
    variance map and the error map, each (B, K, H, W), and the mean foreground Dice of the
    prediction against the annotators (B, K). samples: (B, K, H, W); annotations: (B, N, H, W)."""
    samples = M.check_labels("samples", samples, num_classes, ndim=4)
    annotations = M.check_labels("annotations", annotations, num_classes, ndim=4)
    if samples.shape[0] != annotations.shape[0] or samples.shape[2:] != annotations.shape[2:]:
        raise ValueError(f"samples {tuple(samples.shape)} and annotations {tuple(annotations.shape)} must share B, H, W")
    B, K = samples.shape[:2]
    onehot = torch.nn.functional.one_hot(samples, num_classes).double()            # (B, K, H, W, C)
    probs = onehot.cumsum(1) / torch.arange(1, K + 1, dtype=torch.float64).view(1, K, 1, 1, 1)
    pred = probs.argmax(-1)                                                         # (B, K, H, W)
    variance = (probs * (1 - probs)).sum(-1)
    flat = pred.flatten(0, 1)
    ann = annotations.repeat_interleave(K, 0)
    error = M.annotator_error(flat, ann, num_classes).reshape(pred.shape)
    dice = torch.stack([M.dice(flat, ann[:, j], num_classes)[:, 1:].mean(1) for j in range(ann.shape[1])], 1)
    return {"pred": pred, "variance": variance, "error": error, "dice": dice.mean(1).reshape(B, K)}


def ensemble_explorer(images: torch.Tensor, samples: torch.Tensor, annotations: torch.Tensor,
                      num_classes: int = 4, k: int = 1):
    """Ensemble-size slider over precomputed diffusion samples (module doc).
    images: (B, 1, H, W) in [-1, 1]; samples: (B, K, H, W) label maps; annotations: (B, N, H, W)."""
    import matplotlib.pyplot as plt
    check_image("images", images, batched=True)
    tab = ensemble_tables(samples, annotations, num_classes)
    B, K = samples.shape[:2]
    if images.shape[0] != B:
        raise ValueError(f"images has {images.shape[0]} images but samples has {B}")
    dis = (annotations != annotations.mode(1).values[:, None]).double().mean(1)        # annotators' disagreement
    size = int_slider(min(max(int(k), 1), K), 1, K)
    pick = dropdown(list(range(B)))
    fig, axes = plt.subplots(1, 6, figsize=(12, 2.4))
    seg = dict(cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    heat = dict(cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    first = (images[0, 0], samples[0, 0], tab["pred"][0, 0], tab["variance"][0, 0], tab["error"][0, 0], dis[0])
    styles = (dict(cmap="gray", vmin=-1, vmax=1), seg, seg, {**heat, "vmax": 0.75}, heat, heat)
    arts = [ax.imshow(data.numpy(), **style) for ax, data, style in zip(axes, first, styles)]
    names = ["image", "newest sample", "ensemble prediction", "variance", "error (annotators)", "annotators disagree"]
    for ax, name in zip(axes, names):
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()

    def draw():
        b, kk = pick.value, size.value - 1
        for art, data in zip(arts, (images[b, 0], samples[b, kk], tab["pred"][b, kk], tab["variance"][b, kk],
                                    tab["error"][b, kk], dis[b])):
            art.set_data(data.numpy())
        fig.suptitle(f"image {b}, K = {kk + 1}: mean foreground Dice vs annotators {float(tab['dice'][b, kk]):.3f}",
                     fontsize=10)
        return fig
    return dashboard({"K": size, "image": pick}, draw, slider=size, picker=pick, tables=tab, figure=fig)
