"""The application factory: `create_app(config)`; configuration is validated before anything runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask

from . import errors, observability, web
from .blueprints._inbox import RecordedEvents
from .config import Config
from .db import Database
from .providers import Komoju, Stripe

log = logging.getLogger("webhooks")


@dataclass
class Services:
    config: Config
    db: Database
    stripe: Stripe
    komoju: Komoju
    recorded: RecordedEvents = field(default_factory=RecordedEvents)


def create_app(config: Config | Mapping[str, str] | None = None) -> Flask:
    """`config`: a Config, or an environment mapping (default: os.environ). Raises ConfigError
    (the service refuses to start) when a secret is missing or unsafe."""
    if not isinstance(config, Config):
        config = Config.from_env(config)
    config.validate()
    for note in config.notes:
        log.warning(note)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # provider events are small; 413 beyond
    app.json.sort_keys = False
    app.extensions["koepon"] = Services(
        config=config,
        db=Database(config.supabase_url, config.supabase_service_role_key, config.api_timeout),
        stripe=Stripe(config, config.stripe_api_base),
        komoju=Komoju(config, config.komoju_api_base),
    )
    errors.init_app(app)
    observability.init_app(app, config.metrics_token)
    web.init_app(app, config.cors_origins)
    svc = app.extensions["koepon"]
    observability.instrument_provider(svc.stripe, "stripe", ("create_payment_intent", "refund"))
    observability.instrument_provider(svc.komoju, "komoju", ("create_session", "refund"))

    from .blueprints import downloads, health, komoju_webhook, openapi, payments, previews, stripe_webhook

    app.register_blueprint(health.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(stripe_webhook.bp)
    app.register_blueprint(komoju_webhook.bp)
    app.register_blueprint(downloads.bp)
    app.register_blueprint(previews.bp)
    app.register_blueprint(openapi.bp)
    return app
