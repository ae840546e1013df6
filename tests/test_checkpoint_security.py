"""A checkpoint is untrusted input (issue 10): its manifest may only name a registered network of
diffedu.nets, nothing else is ever called, the file's tensor shapes are checked on the meta
device before anything is allocated, and a file that is not safetensors gets one clear message."""
from __future__ import annotations

import json
import pickle
import time

import pytest
import torch
from safetensors.torch import save_file

from diffedu.nets.mlp import MLPDenoiser
from diffedu.train import checkpoints as ck
from diffedu.train import load_model, model_spec, pretrained_denoiser, read_manifest, save_checkpoint

TINY = dict(dim=2, hidden=8, depth=1, t_dim=8)
REAL_LOAD_MODEL = ck.load_model          # the tests below patch the module's name to catch calls


def _tiny_state():
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in MLPDenoiser(**TINY).state_dict().items()}


def _write(path, manifest, tensors=None):
    """A safetensors file with the given manifest (a dict, or raw text) and tensors."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    save_file(_tiny_state() if tensors is None else tensors, str(path), metadata={"manifest": text})
    return path


def _mlp_spec(**kwargs):
    return {"class": "diffedu.nets.mlp:MLPDenoiser", "kwargs": {**TINY, **kwargs}}


def test_a_genuine_checkpoint_loads(tmp_path):
    path = _write(tmp_path / "ok.safetensors", {"model": _mlp_spec()})
    model = load_model(path)
    for k, v in _tiny_state().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    saved = save_checkpoint(model, tmp_path / "again.safetensors", {"model": model_spec(model, **TINY)})
    assert load_model(saved)(torch.randn(3, 2), 5).shape == (3, 2)


def test_every_registered_network_is_allowed_and_nothing_else():
    from diffedu.nets import dit, mmdit, unet
    allowed = set(ck.allowed_models())
    for table in (unet.UNET_MODELS, dit.DIT_MODELS, mmdit.MMDIT_MODELS):
        assert {f"{fn.__module__}:{fn.__name__}" for fn in table.values()} <= allowed
    plugins = tuple(f"diffedu.{m}." for m in ck.PLUGIN_MODULES) + tuple(f"diffedu.{m}:" for m in ck.PLUGIN_MODULES)
    assert all(name.startswith(("diffedu.nets.", "diffedu.distill.", *plugins)) for name in allowed)
    # the distillation students load the same way
    assert {"diffedu.distill.common:LevelMLP", "diffedu.distill.consistency:ConsistencyModel",
            "diffedu.distill.plugplay:GuideNet"} <= allowed


def test_a_distillation_student_goes_through_the_same_checks(tmp_path):
    from diffedu.distill.train import load_student
    spec = {"class": "diffedu.distill.common:LevelMLP", "kwargs": {"dim": 2, "hidden": 200_000, "depth": 3}}
    path = _write(tmp_path / "student.safetensors", {"model": spec})
    with pytest.raises(ValueError, match="larger than the number of weights the file holds"):
        load_student(str(path))


@pytest.mark.parametrize("target", [
    "diffedu.data.online:download",                 # a network request, folders where the manifest says
    "diffedu.train.cli:main",                       # the training entry point: files written where it says
    "diffedu.train.checkpoints:load_model",         # a manifest that loads itself: recursion
    "diffedu.train:pretrained",
    "os:system", "builtins:eval", "subprocess:run",
    "diffedu.nets.transformer:Mlp",                 # a diffedu module that is not a registered network
    "diffedu.nets.mlp:MLPDenoiser.__init__", "diffedu.nets.mlp", "", "x" * 10_000,
])
@pytest.mark.parametrize("key", ["factory", "class"])
def test_the_manifest_cannot_call_anything_but_a_registered_network(tmp_path, monkeypatch, target, key):
    called = []
    import diffedu.train.cli as cli
    monkeypatch.setattr(cli, "main", lambda *a, **k: called.append("main"))
    monkeypatch.setattr(ck, "load_model", lambda *a, **k: called.append("load_model"))
    path = tmp_path / "evil.safetensors"
    _write(path, {"model": {key: target, "kwargs": {"path": str(path), "argv": ["--out", str(tmp_path / "x")]}}})
    with pytest.raises(ValueError, match="refusing to build"):
        REAL_LOAD_MODEL(path)
    assert called == [] and sorted(p.name for p in tmp_path.iterdir()) == ["evil.safetensors"]


@pytest.mark.parametrize("spec, match", [
    ("not a dict", "must be a JSON object"),
    ({"class": "diffedu.nets.mlp:MLPDenoiser", "kwargs": TINY, "extra": 1}, "must be"),
    ({"class": "diffedu.nets.mlp:MLPDenoiser", "factory": "diffedu.nets.unet:unet_tiny", "kwargs": {}}, "must be"),
    ({"class": 3, "kwargs": {}}, "must be"),
    ({"class": "diffedu.nets.mlp:MLPDenoiser", "kwargs": [1, 2]}, "kwargs .* must be a JSON object"),
    (_mlp_spec(unknown_argument=1), "has no argument 'unknown_argument'"),
    (_mlp_spec(hidden={"nested": 1}), "must be a number, a short string"),
    (_mlp_spec(prediction="x" * 1000), "must be a number, a short string"),
    (_mlp_spec(max_period=float("nan")), "must be finite"),
    (_mlp_spec(hidden=-8), "invalid for"),
    (_mlp_spec(prediction="noise"), "invalid for"),
    (_mlp_spec(hidden=16), "has shape"),                      # the manifest does not match the weights
])
def test_the_manifest_is_validated_with_clear_messages(tmp_path, spec, match):
    path = _write(tmp_path / "m.safetensors", {"model": spec})
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_a_tiny_file_cannot_ask_for_a_huge_model(tmp_path):
    """hidden=200000 would be 160 GB per layer: refused from the header's sizes, before allocating."""
    path = _write(tmp_path / "huge.safetensors", {"model": _mlp_spec(hidden=200_000, depth=3)})
    assert path.stat().st_size < 10_000
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="larger than the number of weights the file holds"):
        load_model(path)
    assert time.perf_counter() - t0 < 5


def test_shapes_are_compared_on_the_meta_device_before_materialising(tmp_path, monkeypatch):
    """Even when the file is big enough for the integer bound, the meta-device build is compared
    with the header (missing keys, shapes) and nothing real is built on a mismatch."""
    import functools
    built = []
    real_init = MLPDenoiser.__init__

    @functools.wraps(real_init)
    def spy(self, *a, **k):
        real_init(self, *a, **k)
        built.append(next(self.parameters()).device.type)
    monkeypatch.setattr(MLPDenoiser, "__init__", spy)
    filler = {"filler": torch.zeros(300_000)}                 # 1.2 MB: hidden=200000 passes the integer bound
    path = _write(tmp_path / "big.safetensors", {"model": _mlp_spec(hidden=200_000)}, {**_tiny_state(), **filler})
    built.clear()
    with pytest.raises(ValueError, match="do not match"):
        load_model(path)
    assert built == ["meta"]                                  # built once, on the meta device only
    built.clear()
    path = _write(tmp_path / "ok.safetensors", {"model": _mlp_spec()})
    built.clear()
    load_model(path)
    assert built == ["meta", "cpu"]


def test_a_model_far_larger_than_its_file_is_refused(tmp_path):
    """The last guard: parameters + buffers on the meta device may not exceed the file's size
    (here a header that claims 300 MB of shapes for a 10-byte file)."""
    spec = _mlp_spec(hidden=5000, depth=3)
    with torch.device("meta"):
        shapes = {k: ("F32", tuple(v.shape)) for k, v in MLPDenoiser(**spec["kwargs"]).state_dict().items()}
    with pytest.raises(ValueError, match="would need .* MiB"):
        ck._build_checked(spec, shapes, size=10, path=tmp_path / "m.safetensors")


def _torch_pickle(path):
    torch.save({"w": torch.zeros(3)}, path)


@pytest.mark.parametrize("make, why", [
    (lambda p: p.write_text("hello, I am a text file"), ""),
    (lambda p: p.write_bytes(pickle.dumps({"w": [1, 2, 3]})), "pickle"),
    (_torch_pickle, "pickle"),
    (lambda p: p.mkdir(), "directory"),
    (lambda p: p.write_bytes(b""), "too short"),
    (lambda p: p.write_bytes((10**12).to_bytes(8, "little") + b'{"a": 1}'), "header length"),
    (lambda p: p.write_bytes((20).to_bytes(8, "little") + b'{"this is": not json}'), ""),
    (lambda p: (_write(p, {"model": _mlp_spec()}), p.write_bytes(p.read_bytes()[:-200]))[0], ""),   # truncated
])
def test_files_that_are_not_safetensors_get_one_clear_message(tmp_path, make, why):
    path = tmp_path / "bad.safetensors"
    make(path)
    for fn in (load_model, read_manifest, pretrained_denoiser):
        with pytest.raises(ValueError, match=rf"bad.safetensors is not a safetensors checkpoint \(.*{why}"):
            fn(path)


def test_a_manifest_that_is_not_json_or_not_an_object(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(_write(tmp_path / "a.safetensors", "{not json"))
    with pytest.raises(ValueError, match="not a JSON object"):
        load_model(_write(tmp_path / "b.safetensors", "[1, 2]"))
    with pytest.raises(ValueError, match="no 'model' entry"):
        load_model(_write(tmp_path / "c.safetensors", "{}"))


@pytest.mark.parametrize("schedule, match", [
    ({"name": "linear", "T": 10**12}, "T must be an integer"),
    ({"name": "linear", "T": "1000"}, "T must be an integer"),
    ({"name": "__import__", "T": 10}, "unknown schedule"),
    ({"name": "linear", "T": 10, "beta_start": 0.5}, "must be"),
    ("linear", "must be"),
])
def test_pretrained_denoiser_validates_the_manifest_schedule(tmp_path, schedule, match):
    path = _write(tmp_path / "m.safetensors", {"model": _mlp_spec(), "schedule": schedule})
    with pytest.raises(ValueError, match=match):
        pretrained_denoiser(path)


def test_save_checkpoint_refuses_what_it_could_not_load_back(tmp_path):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(MLPDenoiser(**TINY), tmp_path / "m.safetensors", {"loss": float("nan")})
    with pytest.raises(TypeError, match="manifest must be a dict"):
        save_checkpoint(MLPDenoiser(**TINY), tmp_path / "m.safetensors", "manifest")
    from diffedu.nets.transformer import Mlp
    with pytest.raises(ValueError, match="only the networks of diffedu.nets"):
        model_spec(Mlp(4, 8))
    with pytest.raises(ValueError, match="has no argument 'width'"):
        model_spec(MLPDenoiser(**TINY), width=3)
