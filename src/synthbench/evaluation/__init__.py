"""Stage 4 — evaluate: score a trained model on the real test set."""
