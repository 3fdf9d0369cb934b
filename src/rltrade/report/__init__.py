"""rltrade.report layer: one self-contained HTML report of a run folder (:func:`write_report`)."""

from rltrade.report.html import write_report

__all__ = ["write_report"]
