"""`python -m services.admin --config FILE`: run the admin service alone."""

from mmr.cli import serve_service_main

serve_service_main("admin")
