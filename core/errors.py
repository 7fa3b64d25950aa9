"""One exception family whose messages are safe to show a customer or an operator.

The CLI turns a `ChatbotError` into one line on stderr and exit code 2; the UI turns it into a
visible message. Anything else escaping is a bug and keeps its traceback.
"""


class ChatbotError(Exception):
    """A problem the user can fix; the message says how."""


class BadInput(ChatbotError):
    """The question, file or option given is unusable (empty, too large, wrong type, corrupt)."""


class NotFound(ChatbotError):
    """A named thing (index, conversation, model, file) does not exist."""


class ConfigError(ChatbotError):
    """The configuration file or a flag is wrong."""


class Busy(ChatbotError):
    """Too many customers are waiting for the model; `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: int = 30):
        self.retry_after_s = retry_after_s
        super().__init__(message)


class Forbidden(ChatbotError):
    """The signed-in person may not do this (an agent where an admin's approval is needed, say): 403."""
