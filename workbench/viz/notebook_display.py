"""Figures in notebooks that survive export: every figure carries the Plotly MIME type *and* HTML.

Jupyter shows a figure with the Plotly renderer; nbconvert's HTML export and repository viewers, which
do not know the Plotly MIME type, show the ``text/html`` copy. The first figure of a kernel session
carries plotly.js inline (no network needed to view the exported file); later figures reuse it.

Use it once per notebook::

    from workbench.viz import use_notebook_figures
    use_notebook_figures()      # every displayed figure now carries both
"""

from __future__ import annotations

from typing import Any

_STATE = {"plotlyjs_sent": False}
RENDERER = "workbench"
_HIDE_DEFINE = '<script type="text/javascript">window._wbDefine = window.define; window.define = undefined;</script>'
_RESTORE_DEFINE = '<script type="text/javascript">window.define = window._wbDefine;</script>'


def figure_bundle(fig: Any, include_plotlyjs: bool | None = None) -> dict[str, Any]:
    """MIME bundle of a figure (or figure dict): the Plotly JSON and an HTML fallback.

    ``include_plotlyjs`` None: inline plotly.js with the first figure of the session only.
    """
    import plotly.io as pio

    fig_dict = fig if isinstance(fig, dict) else fig.to_dict()
    if include_plotlyjs is None:
        include_plotlyjs = not _STATE["plotlyjs_sent"]
    html = pio.to_html(fig_dict, full_html=False, include_plotlyjs=bool(include_plotlyjs), validate=False)
    if include_plotlyjs:
        _STATE["plotlyjs_sent"] = True
        # pages that load require.js (nbconvert's templates do when online) would swallow plotly.js as an
        # anonymous AMD module; hide ``define`` while it loads so that ``window.Plotly`` is always set
        html = _HIDE_DEFINE + html + _RESTORE_DEFINE
    plotly_json = {"data": fig_dict.get("data", []), "layout": fig_dict.get("layout", {}), "config": {}}
    return {"application/vnd.plotly.v1+json": plotly_json, "text/html": html}


def _renderer_class():
    from plotly.io._base_renderers import MimetypeRenderer

    class _Both(MimetypeRenderer):
        """Plotly MIME type plus an HTML copy (see :func:`figure_bundle`)."""

        def to_mimebundle(self, fig_dict):
            return figure_bundle(fig_dict)

    return _Both


def use_notebook_figures() -> None:
    """Make every displayed figure carry the Plotly MIME type and an HTML fallback (see module doc).

    Also silences tqdm's "IProgress not found" warning, which exported notebooks would otherwise show.
    """
    import warnings

    import plotly.io as pio

    pio.renderers[RENDERER] = _renderer_class()()
    pio.renderers.default = RENDERER
    _STATE["plotlyjs_sent"] = False
    try:
        from tqdm import TqdmWarning

        warnings.filterwarnings("ignore", category=TqdmWarning)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        pass


def show(fig: Any) -> None:
    """Display ``fig`` with its HTML fallback (for figures shown mid-cell)."""
    from IPython.display import display

    display(figure_bundle(fig), raw=True)
