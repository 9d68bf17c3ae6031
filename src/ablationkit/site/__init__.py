"""The trajectory site: ``build_site(run_dirs, out_dir)`` renders a leaderboard and one page
per paper from ``bench`` run directories; ``load_run`` and ``scores`` are its data."""

from ablationkit.site.build import SiteReport, build_site
from ablationkit.site.collect import PaperEntry, RunData, Score, load_run, scores

__all__ = ["PaperEntry", "RunData", "Score", "SiteReport", "build_site", "load_run", "scores"]
