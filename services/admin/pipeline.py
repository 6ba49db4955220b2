"""admin pipeline (steps arrive with the admin issue)."""
