"""The local Auth's settings, read from supabase/config.toml the way the Supabase CLI reads them
(`[auth]`, `[auth.email]`, `[auth.rate_limit]`, `[auth.email.template.*]`, `[auth.email.smtp]`,
`[local_smtp]`), so one file configures `koepon up` and, through `supabase config push`, the hosted
project.

Environment overrides (for `koepon up` on another machine, or tests):
KOEPON_SUPABASE_CONFIG (another config.toml), KOEPON_SMTP_HOST / KOEPON_SMTP_PORT (where mail goes),
KOEPON_AUTH_EXTERNAL_URL (the API's public base URL used in e-mail links).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path

from ..mail import SMTP_PORT

# GoTrue's template names and default subjects (internal/mailer/templatemailer).
TEMPLATES = ("invite", "confirmation", "recovery", "magic_link", "email_change", "reauthentication")
DEFAULT_SUBJECTS = {
    "invite": "You've been invited", "confirmation": "Confirm your email address",
    "recovery": "Reset your password", "magic_link": "Your sign-in link",
    "email_change": "Confirm your new email address", "reauthentication": "{{ .Token }} is your verification code",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the forms config.toml uses ("1s", "1m0s", "2h30m"): seconds."""
    text = str(text).strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"invalid duration {text!r}")
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * unit[u] for n, u in _DURATION.findall(text))


@dataclasses.dataclass
class Template:
    subject: str
    content: str | None  # None: GoTrue's built-in body


@dataclasses.dataclass
class AuthConfig:
    site_url: str = "http://127.0.0.1:3000"
    additional_redirect_urls: tuple[str, ...] = ()
    external_url: str = "http://127.0.0.1:54321/auth/v1"
    enable_signup: bool = True
    enable_confirmations: bool = False
    double_confirm_changes: bool = True
    secure_password_change: bool = False
    max_frequency: float = 1.0  # seconds between two e-mails of one kind to one address
    otp_length: int = 6
    otp_expiry: int = 3600
    email_sent_per_hour: int = 2
    templates: dict[str, Template] = dataclasses.field(default_factory=dict)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = SMTP_PORT
    smtp_user: str | None = None
    smtp_pass: str | None = None
    admin_email: str = "noreply@koepon.local"
    sender_name: str = "Koepon"

    @property
    def mailer_autoconfirm(self) -> bool:
        return not self.enable_confirmations


def load(path: Path | None = None) -> AuthConfig:
    if path is None:
        env = os.environ.get("KOEPON_SUPABASE_CONFIG")
        if env:
            path = Path(env)
        else:
            from ...settings import paths

            path = paths().root / "supabase" / "config.toml"
    try:
        conf = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        conf = {}
    root = path.parent.parent  # config.toml's content_path is relative to the project directory
    auth = conf.get("auth", {})
    email = auth.get("email", {})
    rate = auth.get("rate_limit", {})
    smtp = email.get("smtp", {})
    local_smtp = conf.get("local_smtp", {})
    api_port = conf.get("api", {}).get("port", 54321)
    templates = {}
    for name in TEMPLATES:
        t = email.get("template", {}).get(name, {})
        content = None
        if t.get("content_path"):
            content = (root / t["content_path"]).read_text()
        templates[name] = Template(t.get("subject") or DEFAULT_SUBJECTS[name], content)
    cfg = AuthConfig(
        site_url=auth.get("site_url", AuthConfig.site_url),
        additional_redirect_urls=tuple(auth.get("additional_redirect_urls", ())),
        external_url=os.environ.get("KOEPON_AUTH_EXTERNAL_URL", f"http://127.0.0.1:{api_port}/auth/v1"),
        enable_signup=bool(auth.get("enable_signup", True)),
        enable_confirmations=bool(email.get("enable_confirmations", False)),
        double_confirm_changes=bool(email.get("double_confirm_changes", True)),
        secure_password_change=bool(email.get("secure_password_change", False)),
        max_frequency=parse_duration(email.get("max_frequency", "1s")),
        otp_length=int(email.get("otp_length", 6)),
        otp_expiry=int(email.get("otp_expiry", 3600)),
        email_sent_per_hour=int(rate.get("email_sent", 2)),
        templates=templates,
    )
    if smtp and smtp.get("enabled", True) and smtp.get("host"):
        # Production-like: real SMTP from config.toml (env(...) values are the CLI's substitution).
        cfg.smtp_host, cfg.smtp_port = smtp["host"], int(smtp.get("port", 587))
        cfg.smtp_user, cfg.smtp_pass = _env(smtp.get("user")), _env(smtp.get("pass"))
        cfg.admin_email = smtp.get("admin_email", cfg.admin_email)
        cfg.sender_name = smtp.get("sender_name", cfg.sender_name)
    else:
        cfg.smtp_port = int(local_smtp.get("smtp_port", SMTP_PORT))
    if os.environ.get("KOEPON_SMTP_HOST"):
        cfg.smtp_host = os.environ["KOEPON_SMTP_HOST"]
    if os.environ.get("KOEPON_SMTP_PORT"):
        cfg.smtp_port = int(os.environ["KOEPON_SMTP_PORT"])
    return cfg


def _env(value):
    """The CLI's `env(NAME)` substitution in config.toml."""
    if isinstance(value, str):
        m = re.fullmatch(r"env\((\w+)\)", value.strip())
        if m:
            return os.environ.get(m.group(1))
    return value
