"""What GoTrue checks before and around an e-mail flow: the address format, the redirect allow
list (utilities.GetReferrer), the token hash stored for a code, and PKCE's challenge.

Pure functions of the request and the Auth configuration, shared by the e-mail flows, sign-up and
the admin API.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from base64 import urlsafe_b64encode
from urllib.parse import urlsplit

from .auth_config import AuthConfig

_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def token_hash(email: str, otp: str) -> str:
    """GoTrue's crypto.GenerateTokenHash."""
    return hashlib.sha224((email + otp).encode()).hexdigest()


def _glob(pattern: str) -> re.Pattern:
    """gobwas/glob with separators '.' and '/', as GoTrue compiles additional_redirect_urls."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + r"[^./]*", i + 1
        elif pattern[i] == "?":
            out, i = out + r"[^./]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z", re.S)


# GoTrue validates addresses with checkmail's format (ASCII local part, LDH domain labels): an
# address outside it is refused before any e-mail is attempted, never passed on to SMTP.
_EMAIL_FORMAT = re.compile(r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
                           r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*")


def email_format_ok(email: str) -> bool:
    return _EMAIL_FORMAT.fullmatch(email) is not None


_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$")


def redirect_allowed(config: AuthConfig, url: str | None) -> bool:
    """GoTrue's utilities.IsRedirectURLValid."""
    if not url:
        return False
    try:
        base, ref = urlsplit(config.site_url), urlsplit(url)
        ref_host = ref.hostname or ""
        base_port, ref_port = base.port, ref.port
    except ValueError:
        return False
    loopback = ref_host in ("localhost", "127.0.0.1", "::1") or ref_host.startswith("127.")
    if base.hostname == ref_host and base.scheme == ref.scheme and (base_port == ref_port or loopback):
        return True
    if ref_host.isdigit():
        return False
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", ref_host) and ("." in ref_host or ":" in ref_host):
        return loopback
    if ref.scheme in ("http", "https") and not _HOSTNAME.match(ref_host):
        return False
    target = url.split("#", 1)[0]
    return any(_glob(p).match(target) for p in config.additional_redirect_urls)


def referrer(config: AuthConfig, redirect_to: str | None, referer: str | None = None) -> str:
    """GoTrue's utilities.GetReferrer: the requested redirect if allowed, else the Referer if
    allowed, else the site URL (a URL outside the allow list is never used)."""
    if redirect_allowed(config, redirect_to):
        return redirect_to
    if redirect_allowed(config, referer):
        return referer
    return config.site_url


def pkce_params(body: dict) -> tuple[str, str] | None:
    """(challenge, method) when the request starts a PKCE flow, else None; GoTrue's validation."""
    from .auth import AuthError

    challenge, method = body.get("code_challenge") or "", body.get("code_challenge_method") or ""
    if not challenge and not method:
        return None
    if not challenge or not method:
        raise AuthError(400, "validation_failed", "PKCE flow requires code_challenge_method and code_challenge")
    if not _CHALLENGE.match(str(challenge)):
        if not 43 <= len(str(challenge)) <= 128:
            raise AuthError(400, "validation_failed", "code challenge has to be between 43 and 128 characters")
        raise AuthError(400, "validation_failed", "code challenge can only contain alphanumeric characters, "
                                                  "hyphens, periods, underscores and tildes")
    method = str(method).lower()
    if method not in ("s256", "plain"):
        raise AuthError(400, "validation_failed", f"code challenge method {method} not supported")
    return str(challenge), method


def verify_challenge(challenge: str, method: str, verifier: str) -> bool:
    if method == "s256":
        digest = urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        return secrets.compare_digest(digest, challenge)
    return secrets.compare_digest(verifier, challenge)
