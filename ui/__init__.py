"""The Gradio customer chat and operator panel (issue 4)."""
