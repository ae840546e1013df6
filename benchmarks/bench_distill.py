"""Distillation on the 2D mixture (chapter 13): method x network calls x sliced Wasserstein x CPU
time per sample, teacher (exact GMM, DDIM from SNR = 0) beside the shipped students, and the
guidance-distillation table. One thread. Run: .venv/bin/python benchmarks/bench_distill.py

The teacher's "network call" is the exact mixture denoiser (no network), so its time per sample is
not a network's; the students' times are those of a 3-layer MLP (hidden 128)."""
from diffedu.distill.scoreboard import guidance_table, scoreboard


def main():
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


if __name__ == "__main__":
    main()
