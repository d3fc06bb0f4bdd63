"""Ranked-list grids with activation maps, thresholded and Top DropBlock masks, plots and report.html.

Entry points for the engine: `visualize_test_run` (reidkit test --visrank ...), `report_samples` + `write_report`
(end of train / test / demo). See docs/specs/top-db-net.md section 9.
"""
from reidkit.visualize.activation import (
    activation_map,
    apply_drop_mask,
    binary_mask,
    colorize,
    overlay,
    threshold_mask,
)
from reidkit.visualize.grid import make_ranked_grid
from reidkit.visualize.plots import plot_cmc, plot_history, read_history
from reidkit.visualize.ranked import MODES, compute_maps, visualize_test_run
from reidkit.visualize.ranking import ranked_gallery, select_queries
from reidkit.visualize.report import report_samples, write_report

__all__ = [
    "MODES",
    "activation_map",
    "apply_drop_mask",
    "binary_mask",
    "colorize",
    "compute_maps",
    "make_ranked_grid",
    "overlay",
    "plot_cmc",
    "plot_history",
    "ranked_gallery",
    "read_history",
    "report_samples",
    "select_queries",
    "threshold_mask",
    "visualize_test_run",
    "write_report",
]
