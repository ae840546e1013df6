"""Procedural captioned scenes for the tiny text-to-image model of chapter 12 (survey 6.1).

A scene is a size x size RGB image (default 16 x 16) split into a 2 x 2 grid of cells; one or two
coloured shapes sit in the cells, and the caption says what and where:

    "a red circle"                       one object, in any cell
    "a red circle above a blue square"   two objects in one column (A on top)
    "a green triangle left of a red circle"   two objects in one row (A on the left)

Colours red / green / blue, shapes circle / square / triangle, relations above / below / left of
/ right of; size and position jitter inside the cell. Every scene carries its ground truth, so a
generated image can be graded: `cell_labels` (one label per cell: 0 empty, else
1 + 3 * colour + shape), per-object masks, and the caption's `valid_layouts` (every cell
labelling that the caption describes). `layout_accuracy` grades predicted cell labels against
captions on four projections: all attributes, colour only, shape only, occupancy (position).

Notation: N scenes, S = size, cells numbered 0 1 / 2 3 (row-major), cell side S / 2.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .._validate import check_int, check_positive_int, check_real

__all__ = ["COLOURS", "SHAPES", "RELATIONS", "VOCAB", "Scenes", "scenes", "render_object", "caption_of",
           "parse_caption", "valid_layouts", "cell_crops", "predict_cells", "layout_accuracy"]

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("above", "below", "left of", "right of")
VOCAB = ("a", *COLOURS, *SHAPES, "above", "below", "left", "right", "of")
_COLOUR_NAMES = tuple(COLOURS)
# Relation -> (cell of A, cell of B) pairs it allows, cells 0 1 / 2 3.
_PAIRS = {"above": [(0, 2), (1, 3)], "below": [(2, 0), (3, 1)],
          "left of": [(0, 1), (2, 3)], "right of": [(1, 0), (3, 2)]}


def render_object(shape: int, cy: float, cx: float, r: float, size: int) -> torch.Tensor:
    """Boolean mask (size, size) of one shape (index into SHAPES) centred at (cy, cx) (pixel
    units, pixel centres at integers) with radius r: a disc, a square of half-side 0.85 r, or an
    upward triangle of height 1.8 r."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    dy, dx = yy - cy, xx - cx
    if shape == 0:
        return dy ** 2 + dx ** 2 <= r ** 2
    if shape == 1:
        return (dy.abs() <= 0.85 * r) & (dx.abs() <= 0.85 * r)
    if shape == 2:
        top, bottom = -r, 0.8 * r                     # apex above the centre, base below
        return (dy >= top) & (dy <= bottom) & (dx.abs() <= (dy - top) * r / (bottom - top))
    raise ValueError(f"shape must be an index into {SHAPES}, got {shape!r}")


def caption_of(colours, shapes, relation=None) -> str:
    """The caption of one scene: colours, shapes: 1 or 2 indices; relation an index into
    RELATIONS (needed for 2 objects)."""
    words = [f"a {_COLOUR_NAMES[c]} {SHAPES[s]}" for c, s in zip(colours, shapes)]
    if len(words) == 1:
        return words[0]
    return f"{words[0]} {RELATIONS[relation]} {words[1]}"


def parse_caption(caption: str) -> tuple[list, str | None]:
    """("a red circle above a blue square") -> ([(colour, shape) of A, of B], "above"); one object
    -> ([(c, s)], None). Raises ValueError naming the first word outside the grammar."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    words = caption.lower().split()
    for w in words:
        if w not in VOCAB:
            raise ValueError(f"unknown word {w!r} in caption {caption!r}; the vocabulary is {list(VOCAB)}")

    def obj(ws):
        if len(ws) != 3 or ws[0] != "a" or ws[1] not in COLOURS or ws[2] not in SHAPES:
            raise ValueError(f"caption {caption!r}: expected 'a <colour> <shape>', got {' '.join(ws)!r}")
        return _COLOUR_NAMES.index(ws[1]), SHAPES.index(ws[2])
    if len(words) == 3:
        return [obj(words)], None
    rel_len = 2 if len(words) == 8 else 1
    rel = " ".join(words[3:3 + rel_len])
    if len(words) not in (7, 8) or rel not in RELATIONS:
        raise ValueError(f"caption {caption!r} must read 'a <colour> <shape>' or "
                         f"'a <colour> <shape> <relation> a <colour> <shape>' with a relation in {RELATIONS}")
    return [obj(words[:3]), obj(words[3 + rel_len:])], rel


def _label(c: int, s: int) -> int:
    return 1 + 3 * c + s


def valid_layouts(caption: str) -> torch.Tensor:
    """Every cell labelling (K, 4) the caption describes (0 empty, else 1 + 3 * colour + shape):
    4 for one object (any cell), 2 for two (the relation fixes the pair up to the other row or
    column)."""
    objs, rel = parse_caption(caption)
    out = []
    if rel is None:
        for cell in range(4):
            lab = [0] * 4
            lab[cell] = _label(*objs[0])
            out.append(lab)
    else:
        for a, b in _PAIRS[rel]:
            lab = [0] * 4
            lab[a], lab[b] = _label(*objs[0]), _label(*objs[1])
            out.append(lab)
    return torch.tensor(out, dtype=torch.long)


def _project(labels: torch.Tensor, what: str) -> torch.Tensor:
    """Cell labels seen through one attribute: colour (1 + c), shape (1 + s), occupancy (1)."""
    nz = labels > 0
    if what == "all":
        return labels
    if what == "colour":
        return torch.where(nz, 1 + (labels - 1) // 3, 0)
    if what == "shape":
        return torch.where(nz, 1 + (labels - 1) % 3, 0)
    if what == "position":
        return nz.long()
    raise ValueError(f"what must be one of all, colour, shape, position; got {what!r}")


def layout_accuracy(pred: torch.Tensor, captions) -> dict:
    """Fraction of scenes whose predicted cell labels pred: (N, 4) are one of their caption's
    valid layouts, on four projections: {"all", "colour", "shape", "position"} -> float."""
    if not isinstance(pred, torch.Tensor) or pred.ndim != 2 or pred.shape[1] != 4 or pred.is_floating_point():
        raise ValueError(f"pred must be an integer tensor (N, 4) of cell labels, got "
                         f"{tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__}")
    captions = [captions] * len(pred) if isinstance(captions, str) else list(captions)
    if len(captions) != len(pred):
        raise ValueError(f"captions has {len(captions)} entries, pred has {len(pred)} rows; they must match")
    out = {}
    for what in ("all", "colour", "shape", "position"):
        hits = [bool((_project(valid_layouts(c), what) == _project(p, what)).all(1).any())
                for p, c in zip(pred, captions)]
        out[what] = sum(hits) / max(len(hits), 1)
    return out


def cell_crops(images: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) -> (4N, C, S/2, S/2): the four cells of each image, cells of image n at rows
    4n .. 4n + 3 (row-major 0 1 / 2 3), for a per-cell classifier."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] % 2 or images.shape[-2] % 2:
        raise ValueError(f"images must be (N, C, S, S) with even S, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    N, C, H, W = images.shape
    x = images.reshape(N, C, 2, H // 2, 2, W // 2).permute(0, 2, 4, 1, 3, 5)   # (N, 2, 2, C, h, w)
    return x.reshape(4 * N, C, H // 2, W // 2)


def predict_cells(classifier, images: torch.Tensor) -> torch.Tensor:
    """Cell labels (N, 4) of images (N, 3, S, S) by a per-cell classifier(crops, t) -> logits
    (4N, 10) (nets.classifier.ImageClassifier at t = 0, the shipped "control/scene_classifier")."""
    crops = cell_crops(images)
    return classifier(crops, 0).argmax(-1).reshape(len(images), 4)


@dataclass
class Scenes:
    """N captioned scenes. images: (N, 3, S, S) in [-1, 1]; masks: (N, 2, S, S) bool, one per
    object slot (the second all-False for one-object scenes); cells: (N, 4) long cell labels;
    colours, shapes, positions: (N, 2) long (colour / shape index, cell; -1 for an absent
    object); relations: (N,) long index into RELATIONS (-1 for one object); captions: N str."""
    images: torch.Tensor
    masks: torch.Tensor
    cells: torch.Tensor
    colours: torch.Tensor
    shapes: torch.Tensor
    positions: torch.Tensor
    relations: torch.Tensor
    captions: list

    def __len__(self):
        return len(self.images)


def scenes(n: int, size: int = 16, seed: int = 0, two_object_prob: float = 0.7) -> Scenes:
    """n random scenes of size x size (size even, >= 12), seeded: each has two objects with
    probability two_object_prob (a relation drawn uniformly, the two objects differing in colour
    or shape), else one in a random cell. Radius r ~ U[0.30, 0.40] * size / 2 and centre jitter
    +-0.06 * size / 2 inside the cell."""
    n = check_positive_int("n", n)
    size = check_int("size", size, lo=12)
    if size % 2:
        raise ValueError(f"size must be even (a 2 x 2 grid of cells), got {size}")
    two_object_prob = check_real("two_object_prob", two_object_prob, lo=0, hi=1)
    g = torch.Generator().manual_seed(seed)
    u = lambda: float(torch.rand((), generator=g))           # noqa: E731
    ri = lambda k: int(torch.randint(0, k, (), generator=g))  # noqa: E731
    half = size / 2
    images = -torch.ones(n, 3, size, size)
    masks = torch.zeros(n, 2, size, size, dtype=torch.bool)
    cells = torch.zeros(n, 4, dtype=torch.long)
    colours, shapes, positions = (torch.full((n, 2), -1, dtype=torch.long) for _ in range(3))
    relations = torch.full((n,), -1, dtype=torch.long)
    captions = []
    pairs = [(c, s) for c, s in itertools.product(range(3), range(3))]
    for i in range(n):
        if u() < two_object_prob:
            rel = ri(4)
            a = ri(9)
            b = (a + 1 + ri(8)) % 9                             # a different (colour, shape)
            objs = [pairs[a], pairs[b]]
            cells_ab = _PAIRS[RELATIONS[rel]][ri(2)]
            relations[i] = rel
        else:
            objs, cells_ab = [pairs[ri(9)]], (ri(4),)
        for k, ((c, s), cell) in enumerate(zip(objs, cells_ab)):
            r = (0.30 + 0.10 * u()) * half
            cy = (cell // 2) * half + (half - 1) / 2 + (2 * u() - 1) * 0.06 * half
            cx = (cell % 2) * half + (half - 1) / 2 + (2 * u() - 1) * 0.06 * half
            m = render_object(s, cy, cx, r, size)
            images[i][:, m] = torch.tensor(COLOURS[_COLOUR_NAMES[c]])[:, None]
            masks[i, k] = m
            cells[i, cell] = _label(c, s)
            colours[i, k], shapes[i, k], positions[i, k] = c, s, cell
        captions.append(caption_of([o[0] for o in objs], [o[1] for o in objs],
                                   int(relations[i]) if len(objs) == 2 else None))
    return Scenes(images, masks, cells, colours, shapes, positions, relations, captions)
