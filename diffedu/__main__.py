"""`python -m diffedu` lists the shipped checkpoints and how to train new ones."""
from .train import CHECKPOINTS, read_manifest

print("diffedu: train models with `python -m diffedu.train --help`\nshipped checkpoints:")
for p in sorted(CHECKPOINTS.glob("*.safetensors")):
    m = read_manifest(p)
    print(f"  {p.stem}: {m.get('command', '?')}  (final loss {m.get('final_loss', float('nan')):.4f})")
