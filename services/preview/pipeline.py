"""preview pipeline (steps arrive with the preview issue)."""
