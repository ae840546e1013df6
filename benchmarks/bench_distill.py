"""Distillation on the 2D mixture (chapter 13): method x network calls x sliced Wasserstein x CPU
time per sample, teacher (exact GMM, DDIM from SNR = 0) beside the shipped students, and the
guidance-distillation table; then the digits (chapter 13b): the shipped unet_digits teacher with DDIM
at 1, 2, 4, 8 and 64 calls beside the shipped progressive students, scored by the Frechet distance in
the digit classifier's features (a proxy for FID; floor: held-out test digits) and the classifier's
accuracy on the asked labels, for two noise seeds. One thread.
Run: .venv/bin/python benchmarks/bench_distill.py [--digits-only]

The teacher's "network call" on the mixture is the exact mixture denoiser (no network), so its time per
sample is not a network's; the students' times are those of a 3-layer MLP (hidden 128). On digits both
teacher and students are the same U-Net (unet_tiny), so a call costs the same for both."""
import sys

from diffedu.distill.scoreboard import guidance_table, scoreboard


def digits():
    from diffedu.distill import images as im
    from diffedu.train.checkpoints import shipped
    students = {int(n.rsplit("_", 1)[1]): im.load_digit_student(n.rsplit("/", 1)[1])
                for n in shipped() if n.startswith("distill/digits/pd_digits_")}
    rows, floor = im.digit_table(students, seeds=(0, 1), long_seeds=(0, 1))
    print(f"\ndigits (chapter 13b): FD proxy of 360 samples to the 1437 train digits; floor (360 test digits): {floor:.4f}")
    print(f"{'method':22s} {'calls':>5s} {'FD s0':>7s} {'FD s1':>7s} {'acc s0':>7s} {'acc s1':>7s} {'ms/sample':>10s}")
    for r in (r for r in rows if r["seed"] == 0):
        r1 = next(q for q in rows if q["seed"] == 1 and q["method"] == r["method"] and q["calls"] == r["calls"])
        print(f"{r['method']:22s} {r['calls']:5d} {r['fd']:7.4f} {r1['fd']:7.4f} {r['acc']:7.3f} {r1['acc']:7.3f} {r['ms']:10.2f}")


def main():
    if "--digits-only" in sys.argv:
        return digits()
    rows, floor = scoreboard()
    print(f"SW floor (two independent 4000-sample draws of the data): {floor:.3f}")
    print(f"{'method':28s} {'calls':>5s} {'SW':>7s} {'us/sample':>10s}")
    for r in rows:
        print(f"{r['method']:28s} {r['calls']:5d} {r['sw']:7.3f} {r['us_per_sample']:10.2f}")
    grows, wr = guidance_table()
    print(f"\nguidance distillation (class 2, w in diffedu's scale, trained range {wr}); SW to CFG-64 (128 calls)")
    keys = list(grows[0])
    print("  ".join(f"{k:>18s}" for k in keys))
    for r in grows:
        print("  ".join(f"{r[k]:18.4f}" for k in keys))
    digits()


if __name__ == "__main__":
    main()
