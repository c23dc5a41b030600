"""Auth e-mail: render GoTrue's templates and send them over SMTP.

Templates use Go's template syntax as GoTrue does; the local Auth understands the forms GoTrue
documents for e-mail templates, `{{ .Name }}` and `{{ .Data.key }}` (values HTML-escaped, as Go's
html/template does in text and attributes). A template using anything else (if/range/pipes) is
refused when it is loaded, so a template that works locally never silently differs on hosted.

Sending is rate limited as config.toml's `[auth.rate_limit] email_sent` sets it (e-mails per hour;
counted per client IP address in the database, so every API worker and restart shares the count).
"""

from __future__ import annotations

import asyncio
import html
import re
import smtplib
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from .auth_config import AuthConfig, Template

_VAR = re.compile(r"\{\{-?\s*\.([A-Za-z]+)(?:\.([A-Za-z0-9_]+))?\s*-?\}\}")
_ANY = re.compile(r"\{\{.*?\}\}", re.S)

# GoTrue's built-in bodies, used when config.toml names no content_path.
_DEFAULT_BODIES = {
    "invite": '<h2>You have been invited</h2><p>You have been invited to create a user on {{ .SiteURL }}. '
              'Follow this link to accept the invite:</p><p><a href="{{ .ConfirmationURL }}">Accept the invite</a>'
              '</p><p>Alternatively, enter the code: {{ .Token }}</p>',
    "confirmation": '<h2>Confirm your signup</h2><p>Follow this link to confirm your user:</p>'
                    '<p><a href="{{ .ConfirmationURL }}">Confirm your mail</a></p>'
                    '<p>Alternatively, enter the code: {{ .Token }}</p>',
    "recovery": '<h2>Reset Password</h2><p>Follow this link to reset the password for your user:</p>'
                '<p><a href="{{ .ConfirmationURL }}">Reset Password</a></p>'
                '<p>Alternatively, enter the code: {{ .Token }}</p>',
    "magic_link": '<h2>Magic Link</h2><p>Follow this link to login:</p>'
                  '<p><a href="{{ .ConfirmationURL }}">Log In</a></p>'
                  '<p>Alternatively, enter the code: {{ .Token }}</p>',
    "email_change": '<h2>Confirm Change of Email</h2><p>Follow this link to confirm the update of your email '
                    'from {{ .Email }} to {{ .NewEmail }}:</p><p><a href="{{ .ConfirmationURL }}">Change Email</a>'
                    '</p><p>Alternatively, enter the code: {{ .Token }}</p>',
    "reauthentication": '<h2>Confirm reauthentication</h2><p>Enter the code: {{ .Token }}</p>',
}

EMAIL_SENDS_DDL = """
select pg_advisory_xact_lock(7305719202);
create table if not exists auth.koepon_email_sends (
  key text not null check (char_length(key) <= 80),
  at timestamptz not null default now()
);
create index if not exists koepon_email_sends_key_at on auth.koepon_email_sends (key, at);
revoke all on auth.koepon_email_sends from public, anon, authenticated, service_role;
comment on table auth.koepon_email_sends is
  'koepon local Auth (local stack only): e-mails sent per client IP, for [auth.rate_limit] email_sent.';
"""


class TemplateError(ValueError):
    pass


def check_template(name: str, text: str) -> None:
    for m in _ANY.finditer(text):
        if not _VAR.fullmatch(m.group(0)):
            raise TemplateError(f"template {name}: {m.group(0)!r} is not supported by the local Auth "
                                "(only {{ .Name }} and {{ .Data.key }})")


def render(text: str, data: dict) -> str:
    def sub(m: re.Match) -> str:
        value = data.get(m.group(1))
        if m.group(2) is not None:
            value = value.get(m.group(2)) if isinstance(value, dict) else None
        return "" if value is None else html.escape(str(value), quote=True)
    return _VAR.sub(sub, text)


def _plain(body_html: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>|</p>|</h\d>|</li>", "\n", body_html)
    text = re.sub(r'(?is)<a\s[^>]*href="([^"]*)"[^>]*>(.*?)</a>', lambda m: f"{m.group(2)} ( {m.group(1)} )", text)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) + "\n"


class Mailer:
    def __init__(self, config: AuthConfig):
        self.config = config
        for name, t in config.templates.items():
            check_template(name, t.subject + (t.content or ""))

    def compose(self, kind: str, to: str, data: dict) -> EmailMessage:
        tmpl = self.config.templates.get(kind) or Template("", None)
        body = render(tmpl.content or _DEFAULT_BODIES[kind], data)
        subject = html.unescape(render(tmpl.subject, data))
        msg = EmailMessage()
        msg["From"] = formataddr((self.config.sender_name, self.config.admin_email))
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain="koepon.local")
        msg.set_content(_plain(body))
        msg.add_alternative(body, subtype="html")
        return msg

    def _deliver(self, msg: EmailMessage) -> None:
        cfg = self.config
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=10) as smtp:
            if cfg.smtp_user:
                smtp.starttls()
                smtp.login(cfg.smtp_user, cfg.smtp_pass or "")
            smtp.send_message(msg)

    async def send(self, kind: str, to: str, data: dict) -> None:
        await asyncio.to_thread(self._deliver, self.compose(kind, to, data))
