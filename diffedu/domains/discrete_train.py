"""Train chapter 14's shipped discrete checkpoints (diffedu/checkpoints/domains/discrete_*.safetensors).

    python -m diffedu.domains.discrete_train markov_mdlm      # MDLM on the chapter's Markov chain
    python -m diffedu.domains.discrete_train markov_uniform   # D3PM uniform, hybrid loss, same data
    python -m diffedu.domains.discrete_train digits_mdlm      # MDLM on binarised 8x8 digits

Each writes the checkpoint with a manifest (command, data, seed, steps, quality reached); see
scripts/train_domains.sh. The data and settings below are the ones the notebook grades against.
"""
from __future__ import annotations

import sys
import time

import torch

from . import discrete as dc
from . import discrete_models as dm

P_MARKOV = [[.15, .75, .05, .05], [.05, .15, .75, .05], [.05, .05, .15, .75], [.75, .05, .05, .15]]
L_MARKOV, N_MARKOV, T_UNIFORM = 16, 4000, 50
CONFIGS = {     # name: (data, network kwargs, loss, steps)
    "markov_mdlm": ("markov", dict(L=L_MARKOV, K=4, mask=True, hidden=128, depth=3, time=False), "mdlm", 4000),
    "markov_uniform": ("markov", dict(L=L_MARKOV, K=4, mask=False, hidden=128, depth=3, time=True), "hybrid", 3000),
    "digits_mdlm": ("digits", dict(L=64, K=2, mask=True, hidden=128, depth=3, time=False), "mdlm", 4000),
}


def markov_chain() -> dm.MarkovChain:
    """The chapter's chain: 4 tokens, mostly one step forward around a cycle (0 -> 1 -> 2 -> 3 -> 0)."""
    return dm.MarkovChain(torch.tensor(P_MARKOV, dtype=torch.float64))


def markov_data(n: int = N_MARKOV, seed: int = 0) -> torch.Tensor:
    """n training sequences of length 16 from markov_chain(): (n, 16) long."""
    return markov_chain().sample(n, L_MARKOV, torch.Generator().manual_seed(seed))


def quality(name: str, model, seed: int = 123) -> dict:
    """What the manifest records: bigram TV of 2000 samples (Markov) or the NELBO in bits per token (digits)."""
    g, D = torch.Generator().manual_seed(seed), dm.net_denoiser(model)
    with torch.no_grad():
        if name == "markov_mdlm":
            return {"bigram_tv_32_steps": dm.bigram_tv(dc.mdlm_sample(D, 2000, L_MARKOV, 4, 32, g), P_MARKOV)}
        if name == "markov_uniform":
            proc = dc.d3pm("uniform", 4, T_UNIFORM, "cosine")
            return {"bigram_tv_50_steps": dm.bigram_tv(dc.d3pm_sample(proc, D, 2000, L_MARKOV, g), P_MARKOV)}
        test = dm.binary_digits("test")
        nelbo = torch.cat([dc.mdlm_loss(D, test, 2, g) for _ in range(8)]).mean()
        return {"test_nelbo_bits_per_pixel": float(nelbo / 64 / torch.log(torch.tensor(2.0)))}


def main(argv=None) -> None:
    from ..train.checkpoints import CHECKPOINTS, model_spec, save_checkpoint
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in CONFIGS:
        raise SystemExit(f"usage: python -m diffedu.domains.discrete_train {{{','.join(CONFIGS)}}}")
    name = argv[0]
    torch.set_num_threads(1)
    data_name, kw, loss, steps = CONFIGS[name]
    data = markov_data() if data_name == "markov" else dm.binary_digits("train")
    start = time.process_time()
    model, losses = dm.train_categorical(dm.CategoricalMLP(**kw), data, steps, loss=loss, T=T_UNIFORM, seed=0)
    manifest = {"model": model_spec(model, **kw), "command": f"python -m diffedu.domains.discrete_train {name}",
                "data": ("markov_chain(): 4000 sequences of length 16, seed 0" if data_name == "markov"
                         else "binary_digits('train'): 1437 digits, 8x8 pixels > 0"),
                "loss": loss, "seed": 0, "steps": steps, "final_loss_per_token": sum(losses[-100:]) / 100,
                "cpu_seconds": round(time.process_time() - start, 1), "quality": quality(name, model)}
    path = save_checkpoint(model, CHECKPOINTS / "domains" / f"discrete_{name}.safetensors", manifest)
    print(path, manifest["quality"], f"{manifest['cpu_seconds']} CPU s")


if __name__ == "__main__":
    main()
