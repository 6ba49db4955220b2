"""thumbnail pipeline (steps arrive with the thumbnail issue)."""
