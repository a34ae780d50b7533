"""The old name of :mod:`.evaluation` (``evaluate`` and :class:`Evaluation`), kept through 0.2; import from there.

Renamed because ``r2r_agent.metrics`` (the core's nDCG, AUC and calibration errors) and ``r2r_agent.server.metrics``
(the server's Prometheus counters) are different modules of the same name.
"""

from .evaluation import (
    DEFAULT_MEASURES,
    Backend,
    Evaluation,
    Measure,
    Missing,
    PairedTest,
    RunIssues,
    evaluate,
    paired_test,
    parse_measure,
    rank_order,
    to_qrels,
    to_run,
)

__all__ = ["DEFAULT_MEASURES", "Backend", "Evaluation", "Measure", "Missing", "PairedTest", "RunIssues", "evaluate",
           "paired_test", "parse_measure", "rank_order", "to_qrels", "to_run"]
