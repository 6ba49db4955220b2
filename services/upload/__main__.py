"""`python -m services.upload --config FILE`: run the upload service alone."""

from mmr.cli import serve_service_main

serve_service_main("upload")
