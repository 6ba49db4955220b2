"""thumbnail HTTP routes (endpoints arrive with the thumbnail issue)."""

from fastapi import APIRouter

router = APIRouter()
