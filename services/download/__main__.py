"""`python -m services.download --config FILE`: run the download service alone."""

from mmr.cli import serve_service_main

serve_service_main("download")
