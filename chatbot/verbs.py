"""The engine's verbs beside the turn, for the operators' side: the knowledge base (re-index, uploads,
search for evaluation) and operations (reports, analytics, the live handoff, help-centre answers,
knowledge gaps, people's cost). `chatbot.pipeline.Pipeline` has them; each is a thin call into the
part that decides (`chatbot.handoff`, `chatbot.faq_review`, `chatbot.reporting`, `knowledge`).
Knows nothing of how a turn is answered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.faq_review import FaqDesk, FaqSaved
from chatbot.handoff import HandoffState, LiveDesk, QueueEntry
from chatbot.records.costs import PriceSheet
from chatbot.records.store import Store
from chatbot.reporting.analytics import conversation_costs, daily, list_conversations, top_unanswered
from chatbot.reporting.report import build_report
from chatbot.turns import Settings
from core.errors import ChatbotError, NotFound

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from chatbot.answer.llm import ChatModel
    from knowledge.index import IngestReport, KnowledgeIndex
    from knowledge.search import Searcher


def publish_version(store: Store, index: KnowledgeIndex) -> None:
    """Record `index`'s version as its folder's current one, for every server on that folder and database
    (`chatbot.index_watch`); a database that cannot take it is logged, not raised: the change is on disk."""
    try:
        store.index_versions.publish(index.key, index.version())
    except ChatbotError as exc:
        log.warning("the index version could not be published for the other servers: %s", exc)


class KnowledgeVerbs:
    """The help centre behind the engine: re-index, uploads, what a search finds."""

    index: KnowledgeIndex
    searcher: Searcher
    settings: Settings
    store: Store
    _reindex_lock: threading.Lock

    def _published(self, result):
        """`result`, after publishing the index's new version for the other servers on its folder."""
        publish_version(self.store, self.index)
        return result

    def reindex(self, sources: Sequence[str], progress: Callable[[str], None] = lambda m: None) -> IngestReport:
        """Add or update help-centre files or folders in the live index (changed ones re-embedded).

        A file or row that cannot be read is left out and listed in the report's `skipped` (what it
        held before stays indexed); `BadInput` only when nothing at all could be read.
        """
        from knowledge.ingest import read_documents

        with self._reindex_lock:
            reading = read_documents(list(sources))
            for skipped in reading.skipped:
                progress(f"skipped {skipped}")
            return self._published(
                self.index.ingest(
                    reading.documents,
                    self.settings.chunk_max_chars,
                    self.settings.chunk_overlap_chars,
                    progress=progress,
                    skipped=reading.skipped,
                )
            )

    def forget(self, sources: Sequence[str]) -> int:
        """Remove the documents read from these files from the live index; returns how many went."""
        with self._reindex_lock:
            return self._published(self.index.forget([Path(s) for s in sources]))

    def add_uploads(
        self, folder: str, files: Sequence[str], progress: Callable[[str], None] = lambda m: None
    ) -> IngestReport:
        """Copy uploaded files into the uploads `folder` and re-index it (`reindex`: a bad file is
        reported, the others indexed). `BadInput` before anything is copied for an unsupported type."""
        from knowledge.uploads import save_uploads

        save_uploads(folder, list(files))
        return self.reindex([folder], progress)

    def uploads(self, folder: str) -> list:
        """The files in the uploads `folder` (`knowledge.uploads.UploadedFile`), with what the index holds of each."""
        from knowledge.uploads import list_uploads

        return list_uploads(folder, self.index)

    def delete_upload(self, folder: str, name: str) -> int:
        """Delete an uploaded file and its documents from the index at once; returns how many documents went."""
        from knowledge.uploads import delete_upload

        with self._reindex_lock:
            return self._published(delete_upload(folder, name, self.index))

    def search_documents(self, question: str, k: int, context: Sequence[str] = ()) -> tuple[str, ...]:
        """The ids of the `k` help-centre documents the engine's search finds for `question` after `context`
        (earlier customer messages), best first: what a turn retrieves, for evaluation."""
        return tuple(p.doc_id for p in self.searcher.search_documents(question, k=k, context=list(context)))

    def decision_learned_from(self) -> frozenset[str]:
        """The ids of the labelled questions the index's answer decision learned from (empty: none)."""
        from chatbot.answer.calibration import fitted_ids

        return fitted_ids(self.index.manifest)

    def document_count(self) -> int:
        """Documents in the knowledge base."""
        return self.index.document_count()


class OperatorVerbs:
    """Reports and analytics, the live handoff, help-centre answers, knowledge gaps (with `KnowledgeVerbs`
    beside it in `Pipeline`: the help-centre answers re-index through it)."""

    index: KnowledgeIndex
    store: Store
    prices: PriceSheet
    settings: Settings
    llm: ChatModel

    def action_list(self) -> list[tuple[str, object, bool, object]]:
        """Each action the company declared: (name, its config, whether it may run now, its runs' figures or
        None when it never ran)."""
        desk = getattr(self, "actions", None)
        if desk is None:
            return []
        enabled, figures = desk.enabled(), {f.action: f for f in self.store.actions.figures()}
        return [(name, action, name in enabled, figures.get(name)) for name, action in desk.actions.items()]

    def switch_action(self, name: str, enabled: bool, by: str) -> None:
        """An admin turns an action on or off (`NotFound` when the company declared none by that name)."""
        desk = getattr(self, "actions", None)
        if desk is None or name not in desk.actions:
            raise NotFound(f"no action named {name!r}; GET /api/actions lists them")
        self.store.actions.switch(name, enabled, by)

    def report(self) -> dict:
        """Totals across every conversation: volume, outcomes, latency, cost beside API and humans."""
        stored = getattr(self, "stored_paths", ())  # what the installation keeps on disk, set by the builder
        return build_report(self.store, self.prices, self.llm.name, self.settings.resolution_window_h, stored=stored)

    def ownership(self, days: int = 30) -> dict:
        """The cost of ownership: the bill (as in `report`), its drivers per day of the last `days`, and the
        planner's monthly bill of each option at a range of volumes."""
        from chatbot.reporting.ownership import ownership_daily, planner_lines

        bill = self.report()["ownership"]
        return {
            "bill": bill,
            "daily": ownership_daily(self.store, self.prices, bill["stored_gb"], days),  # the bytes measured once
            "planner": planner_lines(self.store, self.prices),
        }

    def analytics(self, days: int) -> dict:
        """The operator's overview: totals, one row per day of the last `days`, top unanswered questions."""
        from chatbot.reporting.human import copilot_figures

        return {
            "totals": self.report(),
            "daily": daily(self.store, self.prices, days=days),
            "top_unanswered": top_unanswered(self.store),
            "copilot": copilot_figures(self.store),  # drafts sent unchanged, edited, discarded
        }

    def conversations(self) -> list[dict]:
        """The latest conversations, newest first, with handoff, feedback and cost."""
        return list_conversations(self.store)

    def conversation_costs(self, conversation_id: str) -> dict:
        """What one conversation cost, by stage, beside the API shadow price."""
        return {**conversation_costs(self.store, conversation_id, self.prices), "api_model": self.prices.api_model}

    # ---- live handoff and the knowledge-gap loop (rules in chatbot.handoff, chatbot.faq) ---------
    @property
    def desk(self) -> LiveDesk:
        """The people's side (`chatbot.handoff.LiveDesk`); the builder attaches one with its webhook and
        prices, else a plain one over this store is made on first use."""
        if self.__dict__.get("_desk") is None:
            self._desk = LiveDesk(self.store)
        return self._desk

    @desk.setter
    def desk(self, desk: LiveDesk) -> None:
        self._desk = desk

    def handoff_queue(self) -> list[QueueEntry]:
        """Conversations waiting for a person or held by one, oldest first, each with its handoff packet."""
        return self.desk.queue()

    def handoff_state(self, conversation_id: str) -> HandoffState:
        """Who answers the conversation now: bot, waiting, agent (a person holds it) or closed."""
        return self.desk.state(conversation_id)

    def claim(self, conversation_id: str, agent: str) -> None:
        """`agent` takes the conversation over; `Conflict` when another person holds it."""
        self.desk.claim(conversation_id, agent)

    def agent_reply(self, conversation_id: str, agent: str, text: str, draft_used: str | None = None) -> int:
        """A person's message to the customer, who sees it in their open chat; returns its id. `draft_used`:
        what they did with the copilot's draft ("unchanged", "edited", "discarded"; else judged from the text)."""
        return self.desk.reply(conversation_id, agent, text, draft_used)

    def assist(self, conversation_id: str, wait: bool = False) -> dict:
        """The copilot's draft reply and summary for a conversation with people (None each while not written)."""
        found = self.desk.assist(conversation_id, wait)
        return {"draft": found.draft if found else None, "summary": found.summary if found else None}

    def resolve(self, conversation_id: str, agent: str, return_to_bot: bool, override: bool = False) -> dict:
        """Close a person's handoff; their measured time is priced and stored. Returns handling time and cost."""
        live = self.desk.resolve(conversation_id, agent, return_to_bot, override)
        return {
            "conversation_id": conversation_id,
            "return_to_bot": return_to_bot,
            "handling_s": live.handling_s,
            "human_cost_usd": live.human_cost_usd,
        }

    @property
    def faq(self) -> FaqDesk:
        """The help-centre answers people save (`chatbot.faq_review.FaqDesk`); the builder attaches one with
        the configured folder and review rule, else one over this store is made on first use."""
        if self.__dict__.get("_faq") is None:
            self._faq = FaqDesk(self.store, ".chatbot/faq", self.reindex, self.forget)
        return self._faq

    @faq.setter
    def faq(self, faq: FaqDesk) -> None:
        self._faq = faq

    def save_faq(
        self, question: str, answer: str, author: str, conversation_id: str | None = None, admin: bool = True
    ) -> FaqSaved:
        """Save a person's answer as a help-centre entry, redacted; it is indexed at once (the next customer
        who asks it in other words gets it, cited) or waits for review (`chatbot.faq_review`)."""
        return self.faq.save(question, answer, author, admin, conversation_id)

    def gap_topics(self) -> list:
        """Unanswered and handed-over questions grouped into topics, largest first (`chatbot.reporting.gaps`)."""
        from chatbot.reporting.gaps import gap_topics

        return gap_topics(self.store, self.index.embedder, self.settings.topic_distance)

    def human_cost(self) -> dict:
        """People's measured handling time and cost, and savings against people on measured figures."""
        from chatbot.reporting.human import human_cost_report

        return human_cost_report(self.store, self.prices, self.desk.usd_per_hour)
