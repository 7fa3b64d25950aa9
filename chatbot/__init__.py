"""Self-hosted customer-service assistant: the conversation engine.

Importing this package imports no torch; models load lazily through `chatbot.builder`.
"""

__version__ = "0.1.0"
