"""Which run each element map of the report comes from (maps of several runs accumulate)."""

from __future__ import annotations

from html import escape as esc
from typing import Any

from maxrf.runs import runs_of


def run_caption(run: dict[str, Any] | None) -> str:
    """``<p class="run">run 2026-12-02T20:01:05Z · fit</p>`` for one map (empty if unknown)."""
    if not run:
        return ""
    what = " · ".join(str(v) for v in (run.get("run"), run.get("method")) if v)
    return f'<p class="run" data-run="{esc(str(run.get("run", "")))}">run {esc(what)}</p>'


def with_run_captions(cards: list[str], keys: list[str], attrs: dict[str, Any]) -> list[str]:
    """The element-map cards, each with the run its map comes from before the card's end."""
    runs = runs_of(attrs)
    out = []
    for card, key in zip(cards, keys):
        cap = run_caption(runs.get(key))
        out.append(card[: -len("</div>")] + cap + "</div>" if cap and card.endswith("</div>") else card)
    return out


def runs_note(attrs: dict[str, Any]) -> str:
    """One sentence naming the runs the element maps come from, when there are several."""
    by_run: dict[str, list[str]] = {}
    for el, run in runs_of(attrs).items():
        by_run.setdefault(f"{run.get('run', 'earlier run')} ({run.get('method', '?')})", []).append(el)
    if len(by_run) < 2:
        return ""
    parts = "; ".join(f"{', '.join(els)} from run {r}" for r, els in by_run.items())
    return f"<p class='note' data-runs='{len(by_run)}'>These maps come from several runs: {esc(parts)}.</p>"
