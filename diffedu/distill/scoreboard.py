"""The chapter's table: method x network calls x sliced Wasserstein x CPU time per sample, for
the exact teacher (DDIM from SNR = 0 on the cosine time grid) and every shipped student, on one
set of noise draws (the same z for every row), and the guidance table (two-pass CFG against the
guidance-distilled students). Used by notebook 13 and benchmarks/bench_distill.py."""
from __future__ import annotations

import time

import torch

from .consistency import cm_sample
from .guidance import W_MAX, W_MIN, cfg_sample, gd_sample, student_cfg_mse
from .progressive import pd_sample
from .train import evaluate, load_student, noise, reference

__all__ = ["CM_LEVELS", "sample_row", "scoreboard", "guidance_table"]

# consistency multistep levels (decreasing, the first is sigma_max) for 1, 2 and 4 network calls
CM_LEVELS = {1: (80.0,), 2: (80.0, 0.8), 4: (80.0, 2.0, 0.5, 0.1)}


def sample_row(method: str, calls: int, z, gmm=None, student=None):
    """Samples (n, 2) of `method` ("teacher", "pd", "cd", "ct", "ict") with `calls` network calls."""
    if method == "teacher":
        return pd_sample(gmm, z, calls)
    if method == "pd":
        return pd_sample(student, z, calls)
    return cm_sample(student, z, CM_LEVELS[calls], torch.Generator().manual_seed(4))


def _time(fn, repeat: int = 3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def scoreboard(n: int = 4000, calls=(1, 2, 4, 8), teacher_calls=(1, 2, 4, 8, 64), students=None):
    """Rows {method, calls, sw, us_per_sample}: teacher DDIM and the shipped students (one thread)."""
    gmm, ref, floor = reference(n)
    z = noise(n)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for c in teacher_calls:
            x, sec = _time(lambda: sample_row("teacher", c, z, gmm))
            rows.append({"method": "teacher DDIM (exact)", "calls": c, "sw": evaluate(x, ref), "us_per_sample": 1e6 * sec / n})
        students = students or {}
        for c in calls:
            name = f"pd_gmm_{c}"
            st = students.get(name) or load_student(name)
            x, sec = _time(lambda: sample_row("pd", c, z, student=st))
            rows.append({"method": "progressive", "calls": c, "sw": evaluate(x, ref), "us_per_sample": 1e6 * sec / n})
        for m in ("cd", "ct", "ict"):
            st = students.get(f"cm_gmm_{m}") or load_student(f"cm_gmm_{m}")
            for c in (1, 2, 4):
                x, sec = _time(lambda: sample_row(m, c, z, student=st))
                rows.append({"method": f"consistency ({m.upper()})", "calls": c, "sw": evaluate(x, ref),
                             "us_per_sample": 1e6 * sec / n})
        from .adversarial import one_step
        for name, label in (("add_gmm_1", "adversarial (ADD)"), ("add_gmm_1_distill_only", "ADD without adversary")):
            st = students.get(name) or load_student(name)
            x, sec = _time(lambda: one_step(st, z))
            rows.append({"method": label, "calls": 1, "sw": evaluate(x, ref), "us_per_sample": 1e6 * sec / n})
    finally:
        torch.set_num_threads(threads)
    return rows, floor


def guidance_table(ws=(0.0, 1.0, 2.0, 3.0, 4.0), label: int = 2, n: int = 2000, students=None):
    """Rows per w: the stage-one student's x0 MSE to two-pass CFG (over t ~ U[0, 1]), and SW to
    CFG-64 (128 calls) of CFG at 8 steps (16 calls), the stage-one student at 8 steps (8 calls), and
    the step-distilled students at 4, 2, 1 steps."""
    gmm, _, _ = reference(n)
    z = noise(n)
    students = students or {}
    st = students.get("gd_gmm") or load_student("gd_gmm")
    steps = {N: students.get(f"gd_gmm_{N}") or load_student(f"gd_gmm_{N}") for N in (4, 2, 1)}
    mse = student_cfg_mse(st, gmm, ws, n)
    rows = []
    with torch.no_grad():
        for w in ws:
            ref = cfg_sample(gmm, z, 64, label, w)
            row = {"w": w, "x0_mse": mse[float(w)], "cfg8 (16 calls)": evaluate(cfg_sample(gmm, z, 8, label, w), ref),
                   "student8 (8 calls)": evaluate(gd_sample(st, z, 8, label, w), ref)}
            for N, s in steps.items():
                row[f"student{N} ({N} calls)"] = evaluate(gd_sample(s, z, N, label, w), ref)
            row["cfg4 (8 calls)"] = evaluate(cfg_sample(gmm, z, 4, label, w), ref)
            rows.append(row)
    return rows, (W_MIN, W_MAX)
