"""Peak tensor memory of a torch function, on any device (used by the benchmarks and A1).

`peak_tensor_memory(fn)` runs `fn()` under a TorchDispatchMode that sees every tensor each
aten operator returns. A result whose storage is new (not shared with an input of that
operator: views and in-place results are not new memory) counts as an allocation of its
storage's size; storages that have been freed since (their weak reference expired) are
subtracted before each operator's results are added. The peak of that running total is
the most tensor memory `fn` held at once, beyond the tensors that existed before the call.

Why not the operating system's numbers: torch allocates outside Python's heap
(tracemalloc does not see it), and a process's peak resident memory (ru_maxrss) also moves
with shared-library pages that a busy machine evicts and reloads, so small differences
drown. This count is exact for tensors and deterministic. It does not see scratch memory
that one operator allocates and frees inside itself (e.g. a matmul workspace); buffers made
with torch.empty for a Triton kernel are counted (torch.empty is an operator too).
"""
from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["peak_tensor_memory"]


class _TensorMemoryCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = {}          # storage id -> (weak reference, bytes)
        self.current = 0
        self.peak = 0

    def _sweep(self):
        for key, (ref, nbytes) in list(self.live.items()):
            if ref.expired():
                del self.live[key]
                self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        self._sweep()
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in inputs or key in self.live:
                continue                       # a view or in-place result: no new memory
            self.live[key] = (StorageWeakRef(storage), storage.nbytes())
            self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out


def peak_tensor_memory(fn, *args, **kwargs):
    """Run fn(*args, **kwargs); return (its result, peak bytes of tensors it held at once).

    Counts the tensors that aten operators return (see the module docstring). Example:
    `_, peak = peak_tensor_memory(ideal_denoiser_naive, xt, means, 0.5)`.
    """
    counter = _TensorMemoryCounter()
    with counter:
        result = fn(*args, **kwargs)
    return result, counter.peak
