"""Configuration from the environment, validated once at start-up.

Required: SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_JWT_SECRET, STRIPE_WEBHOOK_SECRET,
KOMOJU_WEBHOOK_SECRET, STRIPE_SECRET_KEY, KOMOJU_SECRET_KEY (the service refuses to start without
any of them: an unsigned payload is never trusted, and a missing provider key must not quietly
turn into a fake provider in production).

Optional: PAYMENTS_DATABASE_URL, a PostgreSQL connection string (hosted Supabase: the pooler's
transaction-mode URL, port 6543, user `postgres.<project ref>`). With it, the service's RPCs go to
PostgreSQL directly over a pooled connection as `service_role` (webhooks/db_direct.py) instead of
through the Supabase API with the service role key; reward downloads still use the API (Storage).
PAYMENTS_DB_POOL_SIZE: connections per process (default: one per request thread).

The local stack asks for the fake providers explicitly: the local test keys (`sk_test_local`,
`sk_test_local_komoju`) together with STRIPE_API_BASE / KOMOJU_API_BASE pointing at the fakes;
the service says so in its log. Live keys never point at a fake.
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
    # Seconds: the whole answer to a provider must come back within 1 s.
    api_timeout: float = 0.8
    provider_timeout: float = 10.0
    webhook_tolerance: int = 300
    # Browser origins allowed to call /payments/* (CORS); none: no CORS headers at all.
    cors_origins: tuple[str, ...] = ()
    # Bearer token /metrics asks for; empty: /metrics is open (keep it off the internet then).
    metrics_token: str = ""
    # PostgreSQL directly (webhooks/db_direct.py); empty: every RPC through the Supabase API.
    database_url: str = ""
    db_pool_size: int = 8
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
        if self.database_url:
            _check_conninfo(self.database_url)
        if self.db_pool_size < 1:
            raise ConfigError("PAYMENTS_DB_POOL_SIZE must be at least 1")
        if self.stripe_secret_key.startswith("sk_live_") and self.stripe_api_base:
            raise ConfigError("a live Stripe key must not be sent to STRIPE_API_BASE")
        if not self.stripe_is_fake and not self.stripe_secret_key.startswith(("sk_", "rk_")):
            raise ConfigError("STRIPE_SECRET_KEY must be a Stripe secret key (sk_… or rk_…)")
        if self.stripe_is_fake and not self.stripe_api_base:
            raise ConfigError("STRIPE_SECRET_KEY is the local test key and there is no local fake (STRIPE_API_BASE)")
        if self.komoju_is_fake and not self.komoju_api_base:
            raise ConfigError("KOMOJU_SECRET_KEY is the local test key and there is no local fake (KOMOJU_API_BASE)")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Config:
        """Reads the environment as it is: nothing is filled in for a missing key (validate refuses)."""
        env = os.environ if env is None else env
        notes: list[str] = []
        stripe_key = env.get("STRIPE_SECRET_KEY", "")
        komoju_key = env.get("KOMOJU_SECRET_KEY", "")
        stripe_base = env.get("STRIPE_API_BASE") or None
        komoju_base = env.get("KOMOJU_API_BASE") or None
        if stripe_key == LOCAL_STRIPE_KEY:
            notes.append(f"STRIPE_SECRET_KEY is the local test key: using the local fake Stripe API at {stripe_base}")
        if komoju_key == LOCAL_KOMOJU_KEY:
            notes.append(f"KOMOJU_SECRET_KEY is the local test key: using the local fake KOMOJU API at {komoju_base}")
        cfg = cls(
            supabase_url=env.get("SUPABASE_URL", "").rstrip("/"),
            supabase_service_role_key=env.get("SUPABASE_SERVICE_ROLE_KEY", ""),
            supabase_jwt_secret=env.get("SUPABASE_JWT_SECRET", ""),
            stripe_secret_key=stripe_key,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
            komoju_secret_key=komoju_key,
            komoju_webhook_secret=env.get("KOMOJU_WEBHOOK_SECRET", ""),
            stripe_api_base=stripe_base, komoju_api_base=komoju_base, notes=tuple(notes),
            cors_origins=tuple(o.strip().rstrip("/") for o in env.get("PAYMENTS_CORS_ORIGINS", "").split(",")
                               if o.strip()),
            metrics_token=env.get("PAYMENTS_METRICS_TOKEN", ""),
            database_url=env.get("PAYMENTS_DATABASE_URL", "").strip(),
            db_pool_size=_int(env.get("PAYMENTS_DB_POOL_SIZE"), 8),
        )
        return replace(cfg, **overrides)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError as exc:
        raise ConfigError(f"not a whole number: {value!r}") from exc


def _check_conninfo(url: str) -> None:
    """A postgresql:// URL or a key=value connection string, as libpq reads it."""
    import psycopg.conninfo

    if url.startswith(("http://", "https://")):
        raise ConfigError("PAYMENTS_DATABASE_URL must be a PostgreSQL connection string, not an http(s) URL")
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"PAYMENTS_DATABASE_URL is not a PostgreSQL connection string: {exc}") from exc
