"""Plots (`plots`, matplotlib imported lazily) and ipywidgets dashboards (`widgets`, one
module per group of chapters). `dd.viz.plot_points(...)` and friends come from `plots`."""
import importlib

from .plots import (density_contour, image_grid, plot_points, plot_schedules, plot_trajectories,
                    show_image, to_image)

__all__ = ["plot_points", "to_image", "show_image", "image_grid", "plot_schedules",
           "plot_trajectories", "density_contour", "plots", "widgets"]


def __getattr__(name):
    if name == "widgets":            # ipywidgets only when a dashboard is asked for
        return importlib.import_module(f"{__name__}.widgets")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
