"""From evidence to a checked answer: the prompt, the LLM backends, the grounding check."""
