"""Supabase Realtime for the local stack: Phoenix channels, Broadcast, Presence, Postgres Changes."""

from .server import PATH, Realtime

__all__ = ["PATH", "Realtime"]
