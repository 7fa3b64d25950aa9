"""The company's templates (request URL, headers, body; the reply, the confirmation, the error sentences),
rendered in Jinja2's `SandboxedEnvironment`: a template reads the values it is given and cannot reach
Python's internals (`{{ ''.__class__ }}` raises `SecurityError`, shown as a failed render, not run).

Values typed by customers never become template source: they are passed in as data, URL-quoted for the
URL and JSON-escaped for the body, so "40059930/../cancel" or '", "status": "x' stays one value.
It does not know what the fields mean; a missing field renders empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import quote

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from core.errors import ChatbotError


class RenderError(ChatbotError):
    """A template failed to render (a sandbox refusal, a type error): the action fails, nothing is sent."""


_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def render(source: str, **values: object) -> str:
    """`source` rendered over `values`; `RenderError` naming the failure (the config already checked syntax)."""
    try:
        return _compiled(source).render(**values).strip()
    except (TemplateError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise RenderError(f"a template failed: {type(exc).__name__}: {exc}") from None


def environment() -> Mapping[str, str]:
    """The process environment, for request templates only (secrets in headers, the service's base URL)."""
    return dict(os.environ)


def url_quoted(params: Mapping[str, str]) -> dict[str, str]:
    """Each value quoted to be one URL path segment or query value ("/" and "?" included)."""
    return {name: quote(value, safe="") for name, value in params.items()}


def json_escaped(params: Mapping[str, str]) -> dict[str, str]:
    """Each value escaped to sit inside a JSON string literal of a body template."""
    return {name: json.dumps(value)[1:-1] for name, value in params.items()}
