"""Small HTML pieces shared by the report's sections: notes, sections, numbers, templates."""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from maxrf.report.figures import esc
from maxrf.report.layers import (
    LayerStatus,
)


def _template(name: str) -> str:
    return resources.files("maxrf.report").joinpath("templates", name).read_text(encoding="utf-8")


def _not_computed(status: LayerStatus) -> str:
    cls = "not-computed" if status.state == "not computed" else "damaged"
    return (
        f'<div class="missing" data-missing="{esc(status.name)}" data-state="{esc(status.state)}">'
        f'<span class="{cls}">{esc(status.description.capitalize())}: {esc(status.state)}</span>'
        f" — {_md_code(status.message)}</div>"
    )


def _md_code(text: str) -> str:
    """Escape ``text`` and turn `backticked` spans into <code>."""
    parts = str(text).split("`")
    return "".join(f"<code>{esc(p)}</code>" if i % 2 else esc(p) for i, p in enumerate(parts))


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def element_of_attr(value: Any) -> str | None:
    from maxrf.report.layers import element_of

    return element_of(value) if isinstance(value, str) else None


def _size(nbytes: float) -> str:
    """A byte count in KiB, MiB or GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes / 2**10:,.1f} KiB"


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _floats(v: Any) -> list[float]:
    try:
        arr = np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return []
    return [float(x) for x in arr if np.isfinite(x)]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
