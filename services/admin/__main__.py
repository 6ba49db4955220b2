"""`python -m services.admin --config FILE`: run the admin service alone."""

from mmr.serve import serve_service_main

serve_service_main("admin")
