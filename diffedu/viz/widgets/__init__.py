"""ipywidgets dashboards, one module per group of
chapters: `basics` (01-03: forward process, trajectories, denoisers), `flow` (04-05: solvers,
reflow, guidance), `arch` (06: patches, attention), `inverse` (07-08: operators, PnP),
`posterior` (09: DPS, RePaint, the GMM benchmark), and one module per later chapter (`blind` 10,
`medical` / `medical_latent` 11, `control` 12, `segmentation` 12b, `domains` / `geometry` 14, `correspondence` 15,
`conclusion` 16). All of them are built by one helper,
`core.dashboard(controls, draw)`: controls above one Output, re-drawn on each move. Every
expensive computation happens once, before the widget is shown; a slider move only re-draws,
and where the figure is built once, `core.moving(fig, artists)` re-draws only what moves."""
from .basics import default_image, denoiser_comparison, forward_explorer, trajectory_player
from .core import dashboard, dropdown, float_slider, int_slider, moving, redraw, selection

__all__ = ["dashboard", "moving", "redraw", "int_slider", "float_slider", "selection", "dropdown",
           "default_image", "forward_explorer", "trajectory_player", "denoiser_comparison"]
