"""Admin HTTP routes: none yet (the admin service runs machine 0's background tasks)."""

from fastapi import APIRouter

router = APIRouter()
