"""Semantic correspondence (chapter 15): PCK@0.1 of DIFT features of the shipped U-Net at every
(t, layer), the controls (the same U-Net untrained, a supervised classifier, raw pixels, copying
the coordinates), and the effect of the number of noise draws. One thread; larger than the
notebook's run (64 test images, 120 same-class pairs, 8 noise draws). About two CPU-minutes.
Run: .venv/bin/python benchmarks/bench_correspondence.py"""
import time

import torch

from diffedu.correspondence import evaluate, warps

TS = [0, 25, 50, 100, 200, 400, 700]
LAYERS = ["down.1", "down.2", "down.3", "mid", "up.0", "up.1", "up.2", "up.3", "up.4"]


def main(n_images=64, n_pairs=120, n_noise=8):
    torch.set_num_threads(1)
    t0 = time.process_time()
    data = warps.warped_shapes(n_images, seed=1)
    pairs = warps.same_class_pairs(data, n_pairs, seed=0)
    trained, untrained, _, schedule = evaluate.load_networks()
    table = evaluate.sweep(trained, data, pairs, TS, LAYERS, schedule, n_noise)
    print(f"DIFT PCK@0.1 (per point), {n_images} images, {n_pairs} pairs, {n_noise} noise draws")
    print("t \\ layer " + " ".join(f"{layer:>6s}" for layer in LAYERS))
    for t in TS:
        print(f"{t:9d} " + " ".join(f"{table[t, layer]['per_point']:6.3f}" for layer in LAYERS))
    (bt, bl), _ = evaluate.best(table)
    draws = {n: evaluate.sweep(trained, data, pairs, [bt], [bl], schedule, n)[bt, bl]["per_point"] for n in (1, 2, 4)}
    draws[n_noise] = table[bt, bl]["per_point"]
    print(f"\nnoise draws at t={bt}, {bl}: " + ", ".join(f"{n}: {v:.3f}" for n, v in draws.items()))
    print(f"\n{'features':26s} {'best setting':>16s} {'per point':>9s} {'per image':>9s}")
    rows = evaluate.scoreboard(data, pairs, [0, 50, 100, 400], LAYERS, n_noise=2)
    rows["DIFT (trained U-Net)"] = evaluate.best(table)
    for name, (setting, r) in rows.items():
        print(f"{name:26s} {str(setting):>16s} {r['per_point']:9.3f} {r['per_image']:9.3f}")
    print(f"\nCPU seconds: {time.process_time() - t0:.0f}")


if __name__ == "__main__":
    main()
