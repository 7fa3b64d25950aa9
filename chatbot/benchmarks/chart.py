"""The benchmark as a chart: each part's speed, ours beside the baseline, as an SVG with no plotting library.

Bars are speeds (higher is better), each pair scaled to its own longer bar, so parts with other units
sit side by side; the numbers are printed on the bars. It knows nothing about how they were measured.
"""

from __future__ import annotations

from html import escape


def speed_pairs(results: dict) -> list[tuple[str, float, float, str]]:
    """(part, ours, baseline, unit) for the parts measured against a baseline."""
    pairs = []
    llm, embed, asr = results.get("llm"), results.get("embed"), results.get("asr")
    if llm and llm.get("tokens_per_s") and llm.get("baseline_tokens_per_s"):
        pairs.append(("LLM decode", llm["tokens_per_s"], llm["baseline_tokens_per_s"], "tokens/s"))
    if embed:
        pairs.append(("embedding", embed["sentences_per_s"], embed["baseline_sentences_per_s"], "sentences/s"))
    if asr and asr.get("rtf") and asr.get("baseline_rtf"):
        pairs.append(("speech", round(1 / asr["rtf"], 2), round(1 / asr["baseline_rtf"], 2), "x real time"))
    return pairs


def svg(results: dict, title: str = "Ours (int8, tuned) beside the baseline; higher is faster") -> str:
    pairs = speed_pairs(results)
    width, left, bar_h = 680, 130, 18
    height = 50 + len(pairs) * (2 * bar_h + 16)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14">{escape(title)}</text>',
    ]
    for i, (part, ours, base, unit) in enumerate(pairs):
        y = 36 + i * (2 * bar_h + 16)
        top = max(ours, base) or 1.0
        out.append(f'<text x="{left - 8}" y="{y + bar_h + 4}" text-anchor="end">{escape(part)}</text>')
        for row, (label, value, colour) in enumerate((("ours", ours, "#2b7bb9"), ("baseline", base, "#aab4bd"))):
            w = (width - left - 170) * value / top
            yy = y + row * bar_h
            out.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h - 3}" fill="{colour}"/>')
            out.append(f'<text x="{left + w + 6:.1f}" y="{yy + 12}">{label}: {value:g} {escape(unit)}</text>')
    out.append("</svg>")
    return "\n".join(out)
