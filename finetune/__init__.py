"""Support logs to training set, LoRA fine-tuning, distillation, evaluation, export (issue 3)."""
