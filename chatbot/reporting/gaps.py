"""The knowledge-gap loop: questions the assistant could not answer, grouped into topics.

Questions it refused or handed over (`Store.gap_questions`) are embedded with the index's embedder
and grouped by agglomerative clustering (average linkage on cosine distance, cut at `distance`), so
"can I pay with bitcoin?" and "do you take crypto" land in one topic. Topics come largest first,
each with example questions and counts. A help-centre answer an operator saved (`faq_entries`) is
attached to the topic its question is closest to (or the topic of the conversation it came from),
with how many later replies cited it since it was added: the loop's measured effect. Knows nothing
about how topics are shown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from chatbot.records.store import FaqEntry, Store


@dataclass(frozen=True)
class TopicEntry:
    """A saved help-centre answer in a topic and what it did since."""

    doc_id: str
    question: str
    added_at: str  # ISO time
    answered_since: int  # replies that cited it since it was added


@dataclass(frozen=True)
class Topic:
    label: str  # the question closest to the topic's centre
    count: int  # questions in the topic
    conversations: int
    examples: tuple[str, ...]  # the most frequent questions, up to `examples`
    outcomes: dict = field(default_factory=dict)  # outcome -> count
    entries: tuple[TopicEntry, ...] = ()

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "count": self.count,
            "conversations": self.conversations,
            "examples": list(self.examples),
            "outcomes": self.outcomes,
            "entries": [e.__dict__ for e in self.entries],
        }


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def cluster(vectors: np.ndarray, distance: float) -> np.ndarray:
    """A topic label per row: average-linkage clusters of cosine distance below `distance`."""
    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average")
    return model.fit_predict(vectors)


def gap_topics(store: Store, embedder, distance: float = 0.45, examples: int = 3, limit: int = 20) -> list[Topic]:
    """Unanswered and handed-over questions as topics, largest first (at most `limit`)."""
    questions = store.stats.gap_questions()
    entries = [e for e in store.faq.entries() if e.status == "live"]  # what customers can be answered from
    if not questions and not entries:
        return []
    texts = [" ".join(q.question.split()) for q in questions]
    vectors = _unit(np.asarray(embedder.embed(texts), dtype=np.float32)) if texts else np.zeros((0, 1))
    labels = cluster(vectors, distance)
    topics: list[dict] = []
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        centre = _unit(vectors[rows].mean(axis=0, keepdims=True))[0]
        closest = rows[int(np.argmax(vectors[rows] @ centre))]
        counts = Counter(texts[i].lower() for i in rows)
        topics.append(
            {
                "rows": rows,
                "centre": centre,
                "label": texts[closest],
                "conversations": {questions[i].conversation_id for i in rows},
                "examples": tuple(q for q, _ in counts.most_common(examples)),
                "outcomes": dict(Counter(questions[i].outcome for i in rows)),
                "entries": [],
            }
        )
    for entry in entries:
        home = _home(entry, topics, embedder, distance)
        if home is not None:
            home["entries"].append(
                TopicEntry(
                    entry.doc_id,
                    entry.question,
                    entry.created_at.isoformat(),
                    store.stats.answers_citing(entry.doc_id, entry.created_at),
                )
            )
    topics.sort(key=lambda t: (-len(t["rows"]), t["label"]))
    return [
        Topic(t["label"], len(t["rows"]), len(t["conversations"]), t["examples"], t["outcomes"], tuple(t["entries"]))
        for t in topics[:limit]
    ]


def _home(entry: FaqEntry, topics: list[dict], embedder, distance: float) -> dict | None:
    """The topic a saved answer belongs to: its conversation's, else the closest centre within `distance`."""
    for topic in topics:
        if entry.conversation_id and entry.conversation_id in topic["conversations"]:
            return topic
    if not topics:
        return None
    vector = _unit(np.asarray(embedder.embed([entry.question]), dtype=np.float32))[0]
    similarity = [float(vector @ t["centre"]) for t in topics]
    best = int(np.argmax(similarity))
    return topics[best] if 1 - similarity[best] <= distance else None
