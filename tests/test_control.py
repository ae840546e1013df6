"""ControlNet (nets/control.py): identical to the base at initialisation, only the zero convs
learn first, the base frozen; the controls and the adherence metrics against closed forms; the
shipped adapter."""
import numpy as np
import pytest
import torch

from diffedu.nets import control as C
from diffedu.nets.text import TextUNet
from diffedu.nets.unet import unet_tiny


def _perturbed(model, seed=0, std=0.05):
    """Random weights everywhere (the U-Net's own init zeroes its output conv, which would make
    'identical at init' hold trivially)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return _perturbed(unet_tiny(num_classes=10, base_channels=8))


def _inputs(B=4, seed=1, hint_channels=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 1, 16, 16, generator=g), torch.tensor([5, 300, 600, 999])[:B],
            torch.tensor([1, 4, 9, 10])[:B], torch.rand(B, hint_channels, 16, 16, generator=g))


def test_identical_to_the_base_at_initialisation_and_not_after(base):
    x, t, y, hint = _inputs()
    ctrl = C.ControlledUNet(base, C.ControlNet(base, 3))
    with torch.no_grad():
        ref = base(x, t, y)
        assert torch.equal(ctrl(x, t, y, hint), ref)            # exact: every Z is 0
        assert torch.equal(ctrl(x, t, y, None), ref)
        for zc in ctrl.controlnet.zero_convs:                    # make the adapter speak
            zc.weight.normal_(0, 0.1)
        out = ctrl(x, t, y, hint)
        assert (out - ref).abs().max() > 1e-3                    # so the equality above was not vacuous
        ctrl.strength = 0.0
        assert torch.equal(ctrl(x, t, y, hint), ref)             # strength 0 is the base again


def test_only_the_zero_convs_get_gradient_at_init_and_the_base_is_frozen(base):
    x, t, y, hint = _inputs()
    net = C.ControlNet(base, 3)
    ctrl = C.ControlledUNet(base, net).train()
    assert not base.training and all(not p.requires_grad for p in base.parameters())
    ctrl(x, t, y, hint).pow(2).mean().backward()
    assert all(p.grad is None for p in base.parameters())
    zero = {id(p) for m in [*net.zero_convs, net.middle_zero_conv] for p in m.parameters()}
    for name, p in net.named_parameters():
        if id(p) in zero and name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name                  # dL/dW_z = input * dL/dy != 0
        elif id(p) not in zero:                                   # behind a zero conv: exactly 0
            assert p.grad is None or p.grad.abs().sum() == 0, name


def test_the_copy_starts_from_the_base_weights_and_the_share_counts_them(base):
    net = C.ControlNet(base, 3, hint_width=4)
    for a, b in zip(net.down.parameters(), base.down.parameters()):
        assert torch.equal(a, b)
    n_copy = sum(p.numel() for m in (base.input_conv, base.down, base.middle) for p in m.parameters())
    n_hint = (3 * 9 * 4 + 4) + (4 * 9 * 4 + 4) + (4 * 9 * 8 + 8)
    n_zero = sum(c * c + c for c in [8, 8, 8, 16, 16, 16]) + 16 * 16 + 16
    assert C.parameter_share(net, base) == pytest.approx((n_copy + n_hint + n_zero) / sum(p.numel() for p in base.parameters()))


def test_hint_tiles_over_a_doubled_batch_and_bad_hints_are_refused(base):
    x, t, y, hint = _inputs()
    ctrl = C.ControlledUNet(base, C.ControlNet(base, 3))
    with torch.no_grad():
        for zc in ctrl.controlnet.zero_convs:
            zc.weight.normal_(0, 0.1)
        two = ctrl(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y]), hint)       # CFG's 2B batch
        assert torch.equal(two[:4], ctrl(x, t, y, hint)) and torch.equal(two[4:], two[:4])
        bound = ctrl.with_hint(hint, strength=0.5)
        ctrl.strength = 0.5
        assert torch.equal(bound(x, t, y), ctrl(x, t, y, hint))
    with pytest.raises(ValueError, match="hint must have shape"):
        ctrl(x, t, y, hint[:, :2])
    with pytest.raises(ValueError, match="multiple"):
        ctrl(x, t, y, hint[:3])
    with pytest.raises(TypeError, match="controlnet must be a ControlNet"):
        C.ControlledUNet(base, base)


def test_identity_at_init_on_the_caption_model():
    torch.manual_seed(0)
    m = _perturbed(TextUNet(vocab=["a", "red", "dot"], max_len=3, base_channels=8, text_dim=16, text_depth=1))
    ctrl = C.ControlledUNet(m, C.ControlNet(m, 1))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 800])
    with torch.no_grad():
        assert torch.equal(ctrl(x, t, ["a red dot", ""], torch.rand(2, 1, 16, 16)), m(x, t, ["a red dot", ""]))


def test_controls_against_closed_forms():
    x = -torch.ones(1, 1, 8, 8)
    x[..., 4:] = 1.0                                          # a vertical step between columns 3 and 4
    e = C.edge_map(x)
    assert e[0, 0].sum(0).tolist() == [0, 0, 0, 8, 8, 0, 0, 0]
    assert C.mask_map(x)[0, 0].sum().item() == 32
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 8, 8, generator=g)
    lr = C.low_res(z, 4)
    torch.testing.assert_close(lr[:, :, ::4, ::4], z.reshape(2, 1, 2, 4, 2, 4).mean((3, 5)))
    assert C.make_hint(x, use=("mask",))[:, [0, 2]].abs().sum() == 0
    with pytest.raises(ValueError, match="unknown controls"):
        C.make_hint(x, use=("sketch",))


def test_edge_f1_and_mask_iou_against_brute_force():
    x = -torch.ones(1, 1, 8, 8)
    x[..., 4:] = 1.0
    assert C.edge_f1(x, C.edge_map(x)).item() == 1.0
    far = torch.zeros(1, 1, 8, 8)
    far[..., 0] = 1                                           # edges 3 columns away
    assert C.edge_f1(x, far).item() == 0.0
    assert C.edge_f1(x, far, tolerance=3).item() > 0.5
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 1, 5, 5, generator=g) > 0.5, torch.rand(3, 1, 5, 5, generator=g) > 0.5
    an, bn = a.numpy(), b.numpy()
    ref = [np.logical_and(an[i], bn[i]).sum() / np.logical_or(an[i], bn[i]).sum() for i in range(3)]
    np.testing.assert_allclose(C.mask_iou(a, b).numpy(), ref, rtol=1e-6)
    empty = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    assert C.mask_iou(empty, empty).item() == 1.0             # the empty-empty convention


def test_a_saved_adapter_names_its_base_and_loads_without_it(tmp_path):
    from diffedu.train.checkpoints import load_model, save_checkpoint
    net = C.ControlNet("unet_digits", 3)                       # the copy starts as the shipped base
    with torch.no_grad():
        net.middle_zero_conv.weight.fill_(0.01)
    path = save_checkpoint(net, tmp_path / "cn.safetensors",
                           {"model": {"class": "diffedu.nets.control:ControlNet",
                                      "kwargs": {"base_unet": "unet_digits", "hint_channels": 3}}})
    loaded = load_model(path)
    assert loaded.base_name == "unet_digits"
    for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert not any(k.startswith("base") for k in loaded.state_dict())    # the base is not in the file
    with pytest.raises(ValueError, match="shipped checkpoint"):
        C.ControlNet("no_such_base", 3)


def test_the_shipped_checkpoints_are_small_reproducible_and_trained():
    from diffedu.data.scenes import VOCAB
    from diffedu.train.checkpoints import CHECKPOINTS, pretrained, pretrained_denoiser, read_manifest
    from diffedu.nets.classifier import ImageClassifier
    folder = CHECKPOINTS / "control"
    names = {"controlnet_digits", "text_scenes", "scene_classifier"}
    assert {p.stem for p in folder.glob("*.safetensors")} == names
    assert sum(p.stat().st_size for p in folder.iterdir()) < 3e6
    script = (CHECKPOINTS.parents[1] / "scripts" / "train_control.sh").read_text()
    readme = (folder / "README.md").read_text()
    for name in names:
        m = read_manifest(folder / f"{name}.safetensors")
        assert m["command"] == f"bash scripts/train_control.sh {name}" and f'"{name}"' in script
        assert {"model", "seed", "steps", "final_loss", "loss_curve", "train_cpu_seconds"} <= set(m)
        assert f"`control/{name}`" in readme
    ctrl = C.pretrained_controlled("control/controlnet_digits")
    assert ctrl.controlnet.base_name == "unet_digits"
    assert all(zc.weight.abs().sum() > 0 for zc in ctrl.controlnet.zero_convs)      # trained away from 0
    den = pretrained_denoiser("control/text_scenes")
    assert isinstance(den.model, TextUNet) and den.model.tokenizer.vocab == list(VOCAB)
    assert isinstance(pretrained("control/scene_classifier"), ImageClassifier)
