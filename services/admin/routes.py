"""admin HTTP routes (endpoints arrive with the admin issue)."""

from fastapi import APIRouter

router = APIRouter()
