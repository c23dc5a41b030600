"""Helpers the payment-service tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import uuid

from koepon.settings import ANON_KEY
from supabase import create_client


def sign_up_fan(api_url: str, prefix: str = "fan", display_name: str = "Payer"):
    """A new adult fan signed up through the API: (client, access token, user id)."""
    sb = create_client(api_url, ANON_KEY)
    res = sb.auth.sign_up({"email": f"{prefix}-{uuid.uuid4().hex[:10]}@example.com", "password": "long-enough-pw"})
    sb.rpc("update_my_profile", {"p_display_name": display_name, "p_birth_date": "1990-01-01"}).execute()
    return sb, res.session.access_token, res.user.id
