"""`python -m services.preview --config FILE`: run the preview service alone."""

from mmr.cli import serve_service_main

serve_service_main("preview")
