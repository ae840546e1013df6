"""Chapter 12b's ensemble widget and exercises: the tables behind the slider are the ensemble
of the first k samples, the figure re-draws on a move, bad input is refused, and typical wrong
exercise answers fail."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from _util import png  # noqa: E402

from diffedu import exercises as ex  # noqa: E402
from diffedu.segmentation import diffseg, metrics as M  # noqa: E402
from diffedu.viz.widgets import segmentation as ws  # noqa: E402


def _labels(*shape, seed=0):
    return torch.randint(0, 4, shape, generator=torch.Generator().manual_seed(seed))


def test_tables_are_the_ensembles_of_the_first_k_samples():
    samples, ann = _labels(2, 5, 6, 6, seed=1), _labels(2, 3, 6, 6, seed=2)
    tab = ws.ensemble_tables(samples, ann)
    for k in (1, 3, 5):
        _, pred, var = diffseg.ensemble_stats(samples[:, :k])
        assert torch.equal(tab["pred"][:, k - 1], pred)
        torch.testing.assert_close(tab["variance"][:, k - 1], var)
        torch.testing.assert_close(tab["error"][:, k - 1], M.annotator_error(pred, ann, 4))
    assert torch.equal(tab["pred"][:, 0], samples[:, 0]) and tab["variance"][:, 0].abs().max() == 0


def test_explorer_redraws_on_a_move_and_refuses_bad_input():
    images, samples, ann = torch.rand(2, 1, 6, 6) * 2 - 1, _labels(2, 4, 6, 6, seed=3), _labels(2, 3, 6, 6, seed=4)
    box = ws.ensemble_explorer(images, samples, ann)
    a = png(box.draw())
    box.slider.value = 4
    assert a != png(box.draw())
    box.picker.value = 1
    assert box.figure.axes[1].images[0].get_array()[0, 0] == samples[1, 3, 0, 0]
    bad = samples.clone()
    bad[0, 0, 0, 0] = 9
    with pytest.raises(ValueError, match=r"unknown classes \[9\]"):
        ws.ensemble_explorer(images, bad, ann)
    with pytest.raises(ValueError, match="3 images"):
        ws.ensemble_explorer(torch.zeros(3, 1, 6, 6), samples, ann)


def test_common_wrong_exercise_answers_fail(capsys):
    def dice_no_convention(pred, target, num_classes):
        return torch.stack([2 * ((pred == c) & (target == c)).sum() / ((pred == c).sum() + (target == c).sum())
                            for c in range(num_classes)]).double()
    assert not ex.check("dice_per_class", dice_no_convention)            # NaN where a class is absent

    def ged_all_classes(samples, annotations, num_classes):              # background counted in d
        return ex.EXERCISES["ged"].reference(samples, annotations, num_classes) * 0 + sum(
            1 - M.iou(s[None], a[None], num_classes).mean().item() for s in samples for a in annotations)
    assert not ex.check("ged", ged_all_classes)

    def ensemble_std(samples, num_classes):                              # std instead of variance
        p, v = ex.EXERCISES["ensemble"].reference(samples, num_classes)
        return p, v.sqrt()
    assert not ex.check("ensemble", ensemble_std)
    capsys.readouterr()
