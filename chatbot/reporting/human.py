"""What people cost, measured: live handoffs' handling time (claim to resolve) priced per hour; and what they
did with the copilot's drafts (`copilot_figures`).

The flat `[prices] human_agent_usd_per_conversation` was an estimate; once people handle
conversations in the product, their measured cost per handled conversation replaces it. Savings
against people compare the same conversations served by people alone (each at the measured cost
per handled conversation, the flat price while nothing is measured) with the assistant plus the
people it needed: its own cost, the measured cost of the handoffs people resolved, and the flat
price for handed-over conversations no one has resolved yet.
"""

from __future__ import annotations

from chatbot.records.costs import PriceSheet
from chatbot.records.store import Store


def human_cost_report(store: Store, prices: PriceSheet, usd_per_hour: float) -> dict:
    h = store.live.totals()
    t = store.stats.totals()
    n, handed_over = t["conversations"], t["handed_over"]
    measured = h["human_cost_usd"] / h["conversations"] if h["conversations"] else None
    per_conversation = measured if measured is not None else prices.human_agent_usd_per_conversation
    unmeasured = max(0, handed_over - h["conversations"])
    people_only = n * per_conversation
    with_assistant = t["cost_usd"] + h["human_cost_usd"] + unmeasured * per_conversation
    return {
        "basis": "measured" if measured is not None else "flat",
        "usd_per_hour": usd_per_hour,
        "handled": h["handled"],  # live handoffs people resolved
        "handled_conversations": h["conversations"],
        "open": h["open"],  # waiting or claimed now
        "handling_s": h["handling_s"],
        "mean_handling_s": h["handling_s"] / h["handled"] if h["handled"] else None,
        "human_cost_usd": h["human_cost_usd"],
        "human_cost_per_handled_usd": measured,
        "flat_usd_per_conversation": prices.human_agent_usd_per_conversation,
        "assistant_cost_usd": t["cost_usd"],
        "people_only_usd": people_only,
        "with_assistant_usd": with_assistant,
        "savings_vs_human_usd": people_only - with_assistant,
    }


def copilot_figures(store: Store) -> dict:
    """What people did with the copilot's drafts: how many replies were offered one, the shares sent
    unchanged, edited and discarded, and the median edit distance (characters) of the edited ones."""
    uses = store.stats.draft_uses()
    counts = {kind: sum(u == kind for _, u, _ in uses) for kind in ("unchanged", "edited", "discarded")}
    edits = sorted(d for _, u, d in uses if u == "edited" and d is not None)
    drafted = {cid for cid, u, _ in uses if u in ("unchanged", "edited")}  # a person sent a draft, as is or edited
    handled = [(cid, s) for cid, _, s, _ in store.live.resolved() if s is not None]
    with_draft = sorted(float(s) for cid, s in handled if cid in drafted)
    without = sorted(float(s) for cid, s in handled if cid not in drafted)
    return {
        # measured handling time (claim to resolve) of handoffs where a person sent a draft, and of the others
        "handling_s_p50_with_draft": with_draft[len(with_draft) // 2] if with_draft else None,
        "handling_s_p50_without_draft": without[len(without) // 2] if without else None,
        "replies_with_draft": len(uses),
        **counts,
        **{f"{kind}_share": (n / len(uses) if uses else None) for kind, n in counts.items()},
        "median_edit_distance": edits[len(edits) // 2] if edits else None,
    }
