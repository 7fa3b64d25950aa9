"""The base of every config section, and the check a template-valued key gets (core.config has the tree)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


def _template(value: str) -> str:
    """`value`, once it compiles as a sandboxed Jinja2 template (chatbot/actions/templates.py renders it)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        SandboxedEnvironment().parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a valid template (line {exc.lineno}): {exc.message}") from None
    return value


class _Section(BaseModel):
    """A config section: frozen, no unknown keys, strict types (int is accepted for float)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
