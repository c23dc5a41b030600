"""Configuration from the environment, validated once at start-up.

Required: SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_JWT_SECRET, STRIPE_WEBHOOK_SECRET,
KOMOJU_WEBHOOK_SECRET (the service refuses to start without the webhook secrets: an unsigned
payload is never trusted). STRIPE_SECRET_KEY / KOMOJU_SECRET_KEY: when unset, the service runs
against the local fake providers (`sk_test_local`, STRIPE_API_BASE / KOMOJU_API_BASE pointing
at the fakes) and says so in its log. Live keys never point at a fake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

LOCAL_STRIPE_KEY = "sk_test_local"
LOCAL_KOMOJU_KEY = "sk_test_local_komoju"


class ConfigError(ValueError):
    """The configuration is incomplete or unsafe: the service does not start."""


@dataclass(frozen=True)
class Config:
    supabase_url: str
    supabase_service_role_key: str
    supabase_jwt_secret: str
    stripe_secret_key: str
    stripe_webhook_secret: str
    komoju_secret_key: str
    komoju_webhook_secret: str
    stripe_api_base: str | None = None
    komoju_api_base: str | None = None
    # Mount the fake provider APIs under /_fake (local stack only).
    serve_fakes: bool = False
    # This service's own base URL (the fakes deliver their webhooks to it).
    self_url: str = ""
    # Seconds: the whole answer to a provider must come back within 1 s.
    api_timeout: float = 0.8
    provider_timeout: float = 10.0
    webhook_tolerance: int = 300
    # Browser origins allowed to call /payments/* (CORS); none: no CORS headers at all.
    cors_origins: tuple[str, ...] = ()
    # Bearer token /metrics asks for; empty: /metrics is open (keep it off the internet then).
    metrics_token: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def stripe_is_fake(self) -> bool:
        return self.stripe_secret_key == LOCAL_STRIPE_KEY

    @property
    def komoju_is_fake(self) -> bool:
        return self.komoju_secret_key == LOCAL_KOMOJU_KEY

    def validate(self) -> Config:
        missing = [name for name, value in (
            ("SUPABASE_URL", self.supabase_url), ("SUPABASE_SERVICE_ROLE_KEY", self.supabase_service_role_key),
            ("SUPABASE_JWT_SECRET", self.supabase_jwt_secret), ("STRIPE_WEBHOOK_SECRET", self.stripe_webhook_secret),
            ("KOMOJU_WEBHOOK_SECRET", self.komoju_webhook_secret),
            ("STRIPE_SECRET_KEY", self.stripe_secret_key), ("KOMOJU_SECRET_KEY", self.komoju_secret_key),
        ) if not value]
        if missing:
            raise ConfigError("refusing to start without " + ", ".join(missing))
        if not self.supabase_url.startswith(("http://", "https://")):
            raise ConfigError("SUPABASE_URL must be an http(s) URL")
        for name, secret in (("STRIPE_WEBHOOK_SECRET", self.stripe_webhook_secret),
                             ("KOMOJU_WEBHOOK_SECRET", self.komoju_webhook_secret)):
            if len(secret) < 16:
                raise ConfigError(f"{name} is too short to be a webhook secret")
        if self.stripe_secret_key.startswith("sk_live_") and self.stripe_api_base:
            raise ConfigError("a live Stripe key must not be sent to STRIPE_API_BASE")
        if not self.stripe_is_fake and not self.stripe_secret_key.startswith(("sk_", "rk_")):
            raise ConfigError("STRIPE_SECRET_KEY must be a Stripe secret key (sk_… or rk_…)")
        if self.stripe_is_fake and not self.stripe_api_base:
            raise ConfigError("STRIPE_SECRET_KEY is not set and there is no local fake (STRIPE_API_BASE)")
        if self.komoju_is_fake and not self.komoju_api_base:
            raise ConfigError("KOMOJU_SECRET_KEY is not set and there is no local fake (KOMOJU_API_BASE)")
        if self.serve_fakes and not self.self_url:
            raise ConfigError("serving the fake providers needs this service's own URL")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, self_url: str = "", **overrides) -> Config:
        """Reads the environment; missing provider keys select the local fakes (and say so): at
        STRIPE_API_BASE / KOMOJU_API_BASE when set, else served by this process at `self_url`."""
        env = os.environ if env is None else env
        self_url = self_url.rstrip("/")
        notes: list[str] = []
        stripe_key = env.get("STRIPE_SECRET_KEY", "")
        komoju_key = env.get("KOMOJU_SECRET_KEY", "")
        stripe_base = env.get("STRIPE_API_BASE") or None
        komoju_base = env.get("KOMOJU_API_BASE") or None
        serve_fakes = False
        if not stripe_key:
            stripe_key = LOCAL_STRIPE_KEY
            if not stripe_base and self_url:
                stripe_base, serve_fakes = f"{self_url}/_fake/stripe", True
            notes.append(f"STRIPE_SECRET_KEY is not set: using the local fake Stripe API at {stripe_base}")
        if not komoju_key:
            komoju_key = LOCAL_KOMOJU_KEY
            if not komoju_base and self_url:
                komoju_base, serve_fakes = f"{self_url}/_fake/komoju", True
            notes.append(f"KOMOJU_SECRET_KEY is not set: using the local fake KOMOJU API at {komoju_base}")
        cfg = cls(
            supabase_url=env.get("SUPABASE_URL", "").rstrip("/"),
            supabase_service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY", ""),
            supabase_jwt_secret=env.get("SUPABASE_JWT_SECRET", ""),
            stripe_secret_key=stripe_key,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
            komoju_secret_key=komoju_key,
            komoju_webhook_secret=env.get("KOMOJU_WEBHOOK_SECRET", ""),
            stripe_api_base=stripe_base, komoju_api_base=komoju_base, serve_fakes=serve_fakes,
            self_url=self_url, notes=tuple(notes),
            cors_origins=tuple(o.strip().rstrip("/") for o in env.get("PAYMENTS_CORS_ORIGINS", "").split(",")
                               if o.strip()),
            metrics_token=env.get("PAYMENTS_METRICS_TOKEN", ""),
        )
        return replace(cfg, **overrides)
