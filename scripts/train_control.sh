#!/usr/bin/env bash
# Reproduce the chapter-12 checkpoints in diffedu/checkpoints/control/ (one idle CPU core each):
#   bash scripts/train_control.sh [controlnet_digits|text_scenes|scene_classifier ...]   (default: all)
# Each writes NAME.safetensors (weights + JSON manifest holding this command) and NAME.png.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(controlnet_digits text_scenes scene_classifier)
for name in "${names[@]}"; do
  "$PY" - "$name" <<'PYEOF'
import sys
import time

import torch

from diffedu.train.checkpoints import save_checkpoint

torch.set_num_threads(1)
name = sys.argv[1]
out = f"diffedu/checkpoints/control/{name}.safetensors"
t0 = time.process_time()
if name == "controlnet_digits":
    from diffedu.nets.control import train_controlnet
    model, losses, manifest = train_controlnet("unet_digits", steps=600, batch_size=64, lr=2e-3, seed=0)
elif name == "text_scenes":
    from diffedu.nets.text_train import train_text_model
    model, losses, manifest = train_text_model(steps=1000, batch_size=32, lr=2e-3, seed=0, prediction="v")
elif name == "scene_classifier":
    from diffedu.nets.text_train import train_scene_classifier
    model, losses, manifest = train_scene_classifier(steps=800, batch_size=128, seed=0)
else:
    raise SystemExit(f"unknown checkpoint {name!r}; choose controlnet_digits, text_scenes, scene_classifier")
manifest.update(command=f"bash scripts/train_control.sh {name}", train_cpu_seconds=round(time.process_time() - t0, 1))
save_checkpoint(model, out, manifest)
print(f"{out}: final loss {manifest['final_loss']}, {manifest['train_cpu_seconds']} CPU s")
PYEOF
done
