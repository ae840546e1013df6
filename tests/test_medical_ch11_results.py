"""Chapter 11's precomputed study (scripts/precompute_medical.py -> checkpoints/medical/ch11_results.json):
the 8-bit image packing, and the shipped file's protocol (64 x 64, medical/prior64, tuned on validation)."""
import json
from pathlib import Path

import pytest
import torch
from _util import load_script

import diffedu as dd

RES = Path(dd.__file__).parent / "checkpoints" / "medical" / "ch11_results.json"
SOLVERS = ("Song et al.", "DPS", "DDS")


@pytest.fixture(scope="module")
def script():
    return load_script("precompute_medical")


@pytest.fixture(scope="module")
def res():
    return json.loads(RES.read_text())


def test_pack_roundtrip_within_half_a_level(script):
    g = torch.Generator().manual_seed(0)
    imgs = {"a": torch.rand(1, 1, 9, 7, generator=g) * 2 - 1, "mask": (torch.rand(5, 5, generator=g) > 0.5).float(),
            "flat": torch.full((3, 3), 0.25)}
    back = script.load_images({"images": script.pack_images(imgs)})
    assert set(back) == set(imgs)
    for k, v in imgs.items():
        assert back[k].shape == v.shape and back[k].dtype == torch.float32
        step = float(v.max() - v.min()) / 255
        # half a quantisation level, plus the 4-decimal rounding of lo / hi
        assert float((back[k] - v).abs().max()) <= step / 2 + 2e-4, k
    torch.testing.assert_close(back["mask"], imgs["mask"])          # a binary mask comes back exactly
    torch.testing.assert_close(back["flat"], imgs["flat"])          # a constant image: no division by zero


def test_pack_is_compact(script):
    packed = script.pack_images({"x": torch.zeros(1, 1, 64, 64)})["x"]
    assert len(packed["b64"]) == 4 * -(-64 * 64 // 3)                # 1 byte per pixel, base64


def test_shipped_results_protocol(res):
    assert res["size"] == 64 and res["prior"] == "medical/prior64"
    assert set(res["views"]) >= {8, 23, 60}
    assert res["seed_test"] != res["seed_val"] and res["n_test"] >= 4
    settings = [f"CT {v} views" for v in res["views"]] + ["MRI 4x", "MRI 8x", "MRI 8x, 4 coils"]
    assert list(dict.fromkeys(r["setting"] for r in res["table"])) == settings
    for s in settings:
        rows = {r["method"]: r for r in res["table"] if r["setting"] == s}
        base = "FBP" if s.startswith("CT") else "zero-filled"
        expected = {base, "TV", *SOLVERS} | ({"DDRM"} if s in ("MRI 4x", "MRI 8x") else set())   # DDRM needs an SVD
        assert set(rows) == expected, s
        for m, r in rows.items():
            assert r["calls"] == res["steps"].get(m, 0), (s, m)
            assert 0 < r["ssim"] <= 1 and 5 < r["psnr"] < 80
        t = res["tuned"][s]                                          # picked from the script's validation grids
        assert t["dps_zeta"] in (0.03, 0.1, 0.3, 1.0, 3.0) and t["tv_lam"] in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def test_shipped_images_decode_at_64(res, script):
    pics = script.load_images(res)
    grid = res["widget_grid"]
    assert pics["truth"].shape == (1, 1, 64, 64)
    assert all(pics[f"views/{v}/{k}"].shape == (1, 1, 64, 64) for v in grid["views"] for k in ("fbp", "dds"))
    assert all(pics[f"accel/{r}/mask"].shape == (64, 64) for r in grid["accelerations"])
    assert all(pics[f"lambda/{lam}"].shape == (1, 1, 64, 64) for lam in grid["lambdas"])
    truth = dd.data.phantoms(res["n_test"], 64, seed=res["seed_test"]).images[:1]
    assert float((pics["truth"] - truth).abs().max()) < 0.01          # the widget truth is the first test phantom
