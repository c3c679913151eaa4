"""Studies: a TOML file names models, data, selectors, budgets, fusion modes and seeds; one command runs the grid.

- :func:`load_study` -- read and validate a study file (:class:`Study`; errors name the bad key).
- :func:`expand` -- the study's runs (:class:`RunConfig`, each with a stable hash).
- :func:`run_study` -- run what is not stored yet: in this process, on local processes (joblib) or on a
  Dask cluster; results go to a SQLite :class:`Store`, one row per run, and a killed study resumes.
- :func:`write_report` -- one self-contained HTML page of Plotly figures with a summary table.

Nothing heavy is imported until a function needs it (pydantic when a study is loaded, torch when runs
execute, dask only for a cluster, plotly for the report).
"""

from __future__ import annotations

from workbench.utils import lazy_exports

_EXPORTS = {
    "Study": "workbench.study.schema",
    "load_study": "workbench.study.schema",
    "study_from_dict": "workbench.study.schema",
    "RunConfig": "workbench.study.grid",
    "expand": "workbench.study.grid",
    "config_hash": "workbench.study.grid",
    "execute": "workbench.study.execute",
    "Store": "workbench.study.store",
    "StudyOutcome": "workbench.study.runner",
    "run_study": "workbench.study.runner",
    "dask_client": "workbench.study.runner",
    "write_report": "workbench.study.report",
    "summary_table": "workbench.study.summary",
    "collect": "workbench.study.summary",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
