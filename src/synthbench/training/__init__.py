"""Stage 3 — train: fine-tune a backbone on one condition's data and log/register it in MLflow."""
