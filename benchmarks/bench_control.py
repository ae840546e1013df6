"""Chapter 12 (control) from the shipped checkpoints: caption accuracy of the text model by
guidance weight (graded by the attribute classifier), and ControlNet's control adherence against
the uncontrolled base given the true label, with CPU time per sample. One thread.
Run: .venv/bin/python benchmarks/bench_control.py [--captions 128] [--digits 64] [--steps 20]"""
import argparse
import time

import torch

import diffedu as dd
from diffedu.data import scenes as S
from diffedu.nets import control as C, text as T


def caption_table(n: int, steps: int, weights=(0.0, 1.0, 2.0, 3.0, 5.0)):
    den = dd.pretrained_denoiser("control/text_scenes")
    clf = dd.pretrained("control/scene_classifier")
    held = S.scenes(n, seed=999)
    with torch.no_grad():
        ceiling = S.layout_accuracy(S.predict_cells(clf, held.images), held.captions)
    print(f"caption accuracy, {n} held-out captions, DDIM {steps} steps (classifier on real scenes: {ceiling})")
    print(f"{'w':>4} {'all':>6} {'colour':>7} {'shape':>6} {'position':>8} {'CPU ms/sample':>14}")
    for w in weights:
        t0 = time.process_time()
        a = T.caption_accuracy(den, clf, held.captions, w, steps, 0)
        ms = 1000 * (time.process_time() - t0) / n
        print(f"{w:4.1f} {a['all']:6.3f} {a['colour']:7.3f} {a['shape']:6.3f} {a['position']:8.3f} {ms:14.1f}")


def adherence_table(n: int, steps: int):
    ctrl = C.pretrained_controlled("control/controlnet_digits")
    sched = dd.linear_schedule(1000)
    xs, ys = dd.data.digits(16, "test")
    ref, y = xs[:n], ys[:n]
    x_T = torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(0))

    def sample(model, cond):
        den = dd.to_denoiser(model, sched, clip=1.0)
        with torch.no_grad():
            return dd.ddim(dd.as_denoiser(lambda x, t: den(x, t, cond)), x_T, sched, steps)

    print(f"\ncontrol adherence, {n} test digits, DDIM {steps} steps; adapter = "
          f"{C.parameter_share(ctrl.controlnet, ctrl.base):.1%} of the base's parameters")
    rows = {"base, null label": sample(ctrl, 10), "base, true label": sample(ctrl, y)}
    for use in C.CONTROLS:
        rows[f"ControlNet {use}, null label"] = sample(ctrl.with_hint(C.make_hint(ref, use=(use,))), 10)
    rows["ControlNet all three, null label"] = sample(ctrl.with_hint(C.make_hint(ref)), 10)
    print(f"{'model':34} {'edge F1':>8} {'mask IoU':>9} {'low-res MSE':>12}")
    for name, x in rows.items():
        a = C.adherence(x, ref)
        print(f"{name:34} {a['edge F1']:8.3f} {a['mask IoU']:9.3f} {a['low-res MSE']:12.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--captions", type=int, default=128)
    p.add_argument("--digits", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    caption_table(args.captions, args.steps)
    adherence_table(args.digits, args.steps)


if __name__ == "__main__":
    main()
