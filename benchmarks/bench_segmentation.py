"""Segmentation by diffusion (chapter 12b): the shipped networks on more held-out slices than the
notebook, graded against all four annotators: Dice per class, the mean Dice of single samples,
GED^2 (d = 1 - IoU), ECE, the uncertainty-error correlation, network calls and CPU seconds per slice.
One thread. Run: .venv/bin/python benchmarks/bench_segmentation.py [--n 64] [--steps 8 20] [--k 10]

Rows: the supervised U-Net (baseline), diffusion with 1 sample and ensembles of 5 and 10 (DDIM,
eta = 1 as in the chapter, and eta = 0), one step at the noisiest level (SDSeg-style), analog bits, recursive noise diffusion, and
an oracle: four fresh annotators of the same anatomy (the best a sampler of the distribution can do)."""
import argparse
import time

import torch

from diffedu.segmentation import cardiac, diffseg as ds, evaluate as ev, train as st


def timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--steps", type=int, nargs="+", default=[8])
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    images, ann = st.test_data(a.n)
    nets = {m: st.load(n) for m, n in {"sup": "sup_unet", "diff": "diff_onehot", "bits": "diff_bits", "rnd": "diff_rnd"}.items()}
    sched, rows, cpu = st.schedule(), {}, {}
    probs, cpu["supervised U-Net"] = timed(lambda: ds.supervised_probs(nets["sup"], images))
    rows["supervised U-Net"] = ev.score(probs.argmax(1)[:, None], ann, probs, calls=1)
    (pred, x0), cpu["single step (SDSeg-style)"] = timed(lambda: ds.single_step(nets["diff"], images, sched,
                                                                                 generator=torch.Generator().manual_seed(0)))
    rows["single step (SDSeg-style)"] = ev.score(pred[:, None], ann, ds.code_to_probs(x0), calls=1)
    for S in a.steps:
        for eta in (1.0, 0.0):
            g = torch.Generator().manual_seed(0)
            (samples, _), t = timed(lambda: ds.sample_masks(nets["diff"], images, sched, a.k, S, eta=eta, generator=g))
            for k in (1, 5, a.k):
                key = f"diffusion {S} steps eta {eta:g}, K={k}"
                rows[key], cpu[key] = ev.score(samples[:, :k], ann, calls=k * S), t * k / a.k
        g = torch.Generator().manual_seed(0)
        (bits, _), cpu[f"analog bits {S} steps, K={a.k}"] = timed(
            lambda: ds.sample_masks(nets["bits"], images, sched, a.k, S, 4, "bits", generator=g))
        rows[f"analog bits {S} steps, K={a.k}"] = ev.score(bits, ann, calls=a.k * S)
        for name in ("diff", "rnd"):
            g = torch.Generator().manual_seed(0)
            (r, _), t = timed(lambda: ds.rnd_sample(nets[name], images, sched, a.k, S, generator=g))
            key = f"recursive sampler {S} steps, K={a.k}, {'after' if name == 'rnd' else 'before'} RND"
            rows[key], cpu[key] = ev.score(r, ann, calls=a.k * S), t
    oracle = cardiac.more_annotators(a.n, st.SIZE, seed=st.TEST_SEED, annotators=4, annotator_seed=7)
    rows["oracle: 4 fresh annotators"] = ev.score(oracle, ann)
    for r in rows:
        rows[r]["CPU ms/slice"] = 1000 * cpu[r] / a.n if r in cpu else None
    print(f"{a.n} held-out slices (seed {st.TEST_SEED}), 4 annotators; Dice against a random annotator")
    print(ev.format_table(rows, digits=3))


if __name__ == "__main__":
    main()
