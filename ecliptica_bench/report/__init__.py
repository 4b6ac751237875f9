"""Reporting: the leaderboard over many scored runs, its plots, and the HTML report of one run."""

from __future__ import annotations

from .html import write_report
from .leaderboard import build_leaderboard, leaderboard_frame, load_methods, write_leaderboard

__all__ = ["build_leaderboard", "load_methods", "leaderboard_frame", "write_leaderboard", "write_report"]
