"""The operator panel's admin-only events: the company's actions (runs, the switch) and the cost of ownership
(the bill's drivers per day, the planner's lines). A mixin of `ui.operator_events.PanelEvents`, which gives
it `pipeline` and `_who`; every event asks `ui.access` first, as REST does.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from core.errors import BadInput, ChatbotError
from ui.access import require_admin
from ui.operator_views import ownership_markdown, shown
from ui.shapes import action_json


class AdminEvents:
    """Admin-only panel events (mixed into `PanelEvents`)."""

    # ---- actions in the company's systems ---------------------------------------------------------------------
    def actions_table(self, request: gr.Request):
        """Each action with its runs, success rate, share resolved and latency (admins), and the picker's choices."""
        try:
            require_admin(self._who(request), "the actions")
            rows = [action_json(*row) for row in self.pipeline.action_list()]
        except ChatbotError:
            rows = []
        table = pd.DataFrame(
            [
                {
                    "action": r["name"],
                    "risk": r["risk"],
                    "on": "yes" if r["enabled"] else "off",
                    "runs": r["runs"],
                    "success": _share(r["success_rate"]),
                    "resolved": _share(r["resolved_share"]),
                    "p50 latency": "-" if r["latency_p50_s"] is None else f"{r['latency_p50_s']:.2f} s",
                    "by status": ", ".join(f"{k} {v}" for k, v in r["by_status"].items()),
                }
                for r in rows
            ],
            columns=["action", "risk", "on", "runs", "success", "resolved", "p50 latency", "by status"],
        )
        return table, gr.update(choices=[r["name"] for r in rows])

    def switch_action(self, name: str | None, enabled: bool, request: gr.Request):
        """An admin switches an action on or off; the status line, then the refreshed table and picker."""
        try:
            who = require_admin(self._who(request), "switching actions")
            if not name:
                raise BadInput("pick an action first")
            self.pipeline.switch_action(name, enabled, who.name)
            status = f"{shown(name)} is {'on' if enabled else 'switched off'}."
        except ChatbotError as exc:
            status = f"Not done: {exc}"
        return status, *self.actions_table(request)

    # ---- the cost of ownership ------------------------------------------------------------------------------
    def ownership_view(self, days: int, request: gr.Request):
        """The bill as text, its drivers per day (stacked) and the planner's monthly lines (admins)."""
        try:
            require_admin(self._who(request), "the cost of ownership")
            figures = self.pipeline.ownership(min(max(int(days or 30), 1), 366))
        except ChatbotError as exc:
            return str(exc), pd.DataFrame(columns=["date", "driver", "usd"]), pd.DataFrame()
        return (
            ownership_markdown(figures["bill"]),
            pd.DataFrame(figures["daily"], columns=["date", "driver", "usd"]),
            pd.DataFrame(figures["planner"], columns=["log10_conversations", "option", "usd_per_resolved"]).dropna(),
        )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
