"""Semantic correspondence (chapter 15): PCK@0.1 of DIFT features of the shipped U-Net at every
(t, layer), the controls (the same U-Net untrained, a supervised classifier, raw pixels, copying
the coordinates), and the effect of the number of noise draws. One thread; larger than the
notebook's run (64 test images, 120 same-class pairs, 8 noise draws). About two CPU-minutes.
`editing` (section 6 of the chapter, on captions the notebook did not tune on): word-map IoU of both
caption models, prompt-to-prompt colour and shape swaps over tau, attend-and-excite with colour and
shape tokens, Hedlin et al. on pairs whose shared shape changes colour. About three CPU-minutes.
Run: .venv/bin/python benchmarks/bench_correspondence.py [dift|editing]"""
import sys
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


def editing(n_captions=96, seed=3, n_pairs=24):
    import diffedu as dd
    from diffedu.correspondence import attention, editing as E
    from diffedu.data import scenes as scn
    torch.set_num_threads(1)
    t0 = time.process_time()
    old, new = dd.pretrained_denoiser("control/text_scenes"), dd.pretrained_denoiser("correspondence/text_attn")
    clf = dd.pretrained("control/scene_classifier").eval()
    sc = scn.scenes(40, seed=1, two_object_prob=1.0)
    print("word-map top-k IoU (own / other object's word / random), all blocks averaged, 40 scenes")
    for name, den in (("chapter 12 text_scenes", old), ("text_attn", new)):
        for t in (100, 300):
            m = attention.token_maps(den.model, sc.images, sc.captions, t, den.schedule, n_noise=2)
            print(f"  {name:22s} t={t}: " + "; ".join(
                f"{w} " + " / ".join(f"{v:.3f}" for v in attention.object_iou(m, sc, w)) for w in ("colour", "shape")))
    sources = scn.scenes(n_captions, seed=seed, two_object_prob=1.0).captions
    col = list(scn.COLOURS)
    swaps = {"colour": [E.swap_word(c, c.split()[1], col[(col.index(c.split()[1]) + 1) % 3]) for c in sources],
             "shape": [E.swap_word(c, c.split()[2], scn.SHAPES[(scn.SHAPES.index(c.split()[2]) + 1) % 3]) for c in sources]}
    print(f"\nprompt-to-prompt on text_attn, {n_captions} captions (scenes seed {seed}), 20 DDIM steps")
    for kind, targets in swaps.items():
        for tau in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            xs, xe = E.prompt_to_prompt(new, sources, targets, tau, 20, seed=0)
            r = E.edit_scores(scn.predict_cells(clf, xs), scn.predict_cells(clf, xe), sources, targets, attribute=kind,
                              x_src=xs, x_edit=xe)
            print(f"  {kind:6s} swap, tau={tau:.1f}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    print(f"\nattend-and-excite on text_attn, {n_captions} captions: all named objects present (colour and shape / colours)")
    for words in (E.SHAPE_WORDS, tuple(col)):
        for kw in (dict(n_excite=0), dict(n_excite=5, alpha=30.0), dict(n_excite=10, alpha=30.0)):
            c = scn.predict_cells(clf, E.attend_and_excite(new, sources, steps=20, seed=0, words=words, **kw))
            print(f"  tokens {words[0]}..., {kw}: {E.objects_present(c, sources).float().mean():.3f} / "
                  f"{E.objects_present(c, sources, 'colour').float().mean():.3f}")
    print(f"\nHedlin et al., {n_pairs} pairs sharing a shape of another colour (t=100, 40 Adam steps)")
    pairs = attention.shared_object_pairs(sc, n_pairs, colour="different")
    for name, ims in (("flat", sc.images), ("textured 0.25", attention.textured(sc.images, sc.masks, 0.25))):
        for mname, den in (("chapter 12", old), ("text_attn", new)):
            r = attention.match_hits(den.model, den.schedule, ims, sc.masks, pairs, 100, steps=40, lr=1.0, sigma=1.0)
            print(f"  {name:13s} {mname:10s}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    print(f"\nCPU seconds: {time.process_time() - t0:.0f}")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "dift"
    if what not in ("dift", "editing"):
        raise SystemExit(f"usage: bench_correspondence.py [dift|editing], got {what!r}")
    main() if what == "dift" else editing()
