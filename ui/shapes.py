"""The JSON shapes the REST API shows records in: a customer's transcript, a help-centre answer people saved
and its history, an action with its runs. Plain functions of what the engine returns; no routes here.
"""

from __future__ import annotations

from chatbot.pipeline import Pipeline


def conversation_json(pipeline: Pipeline, conversation_id: str) -> dict:
    """The customer's view: roles "customer", "assistant", "agent" (a person, `author` their shown name)
    and "notice" (a person joined or left); `handoff_state` says who answers now."""
    conv = pipeline.conversation(conversation_id)
    return {
        "conversation_id": conv.id,
        "created_at": conv.created_at.isoformat(),
        "handoff": {"needed": conv.handoff_needed, "reason": conv.handoff_reason},
        "handoff_state": pipeline.handoff_state(conv.id),  # who answers now: bot, waiting, agent or closed
        "messages": [
            {
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "created_at": m.created_at.isoformat(),
                "outcome": m.outcome,
                **({"author": m.extra.get("display_name") or m.author} if m.role in ("agent", "notice") else {}),
                "sources": [{"doc_id": s.doc_id, "title": s.title, "url": s.url} for s in m.sources],
                **({"transcript": m.extra["transcript"]["text"]} if "transcript" in m.extra else {}),
                **({"interrupted": True} if m.interrupted else {}),  # no reply: the server stopped; handed over
            }
            for m in conv.messages
        ],
    }


def faq_json(entry) -> dict:
    """A help-centre answer people saved, as the API shows it."""
    return {
        "doc_id": entry.doc_id,
        "question": entry.question,
        "answer": entry.answer,
        "status": entry.status,
        "live": entry.status == "live",
        "author": entry.author,
        "saved_at": entry.created_at.isoformat(),
        "reviewed_by": entry.reviewed_by,
        "reviewed_at": entry.reviewed_at.isoformat() if entry.reviewed_at else None,
        "conversation_id": entry.conversation_id,
    }


def change_json(change) -> dict:
    return {
        "action": change.action,
        "by": change.actor,
        "at": change.at.isoformat(),
        "status": change.status,
        "question": change.question,
        "answer": change.answer,
    }


def action_json(name: str, action, enabled: bool, figures) -> dict:
    """An action the company declared, whether it may run now, and its runs' figures (None: never run)."""
    return {
        "name": name,
        "description": action.description,
        "risk": action.risk,
        "enabled": enabled,
        "runs": figures.runs if figures else 0,
        "by_status": figures.by_status if figures else {},
        "success_rate": figures.success_rate if figures else None,
        "resolved_share": figures.resolved_share if figures else None,
        "latency_p50_s": figures.latency_p50_s if figures else None,
        "latency_max_s": figures.latency_max_s if figures else None,
    }
