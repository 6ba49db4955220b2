"""preview HTTP routes (endpoints arrive with the preview issue)."""

from fastapi import APIRouter

router = APIRouter()
