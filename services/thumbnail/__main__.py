"""`python -m services.thumbnail --config FILE`: run the thumbnail service alone."""

from mmr.cli import serve_service_main

serve_service_main("thumbnail")
