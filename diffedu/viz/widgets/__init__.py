"""ipywidgets dashboards: one shared re-draw helper (`redraw`) and one module per group of
chapters: `basics` (01-03: forward process, trajectories, denoisers), `flow` (04-05: solvers,
reflow, guidance), `arch` (06: patches, attention), `inverse` (07-08: operators, PnP),
`posterior` (09: DPS, RePaint, the GMM benchmark). Every expensive computation happens once,
before the widget is shown; a slider move only re-draws."""
from .basics import default_image, denoiser_comparison, forward_explorer, redraw, trajectory_player

__all__ = ["redraw", "default_image", "forward_explorer", "trajectory_player", "denoiser_comparison"]
