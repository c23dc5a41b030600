"""The Prefer header as PostgREST reads it (ApiRequest/Preferences.hs).

Every `Prefer` header is split on commas; the first value of each preference wins; unknown ones
are ignored, or refused with 400 PGRST122 under `handling=strict`. `Preference-Applied` echoes
the preferences a request honoured, in PostgREST's order.
"""

from __future__ import annotations

from .errors import pgrst

ACCEPTED = {
    "resolution": ("merge-duplicates", "ignore-duplicates"),
    "missing": ("default", "null"),
    "return": ("representation", "minimal", "headers-only"),
    "count": ("exact", "planned", "estimated"),
    "tx": ("commit", "rollback"),
    "handling": ("strict", "lenient"),
}
ORDER = ("resolution", "missing", "return", "count", "tx", "handling", "timezone", "max-affected")


def parse(headers: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    invalid: list[str] = []
    for header in headers:
        for part in header.split(","):
            part = part.strip()
            if not part:
                continue
            key, _, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if key in ACCEPTED and value in ACCEPTED[key]:
                out.setdefault(key, value)
            elif key == "timezone" and value:
                out.setdefault(key, value)
            elif key == "max-affected" and value.lstrip("-").isdigit():
                out.setdefault(key, value)
            else:
                invalid.append(part)
    if invalid:
        out["_invalid"] = ", ".join(invalid)
    return out


def check(prefer: dict[str, str]) -> None:
    if prefer.get("handling") == "strict" and prefer.get("_invalid"):
        raise pgrst(400, "PGRST122", "Invalid preferences given with handling=strict",
                    "Invalid preferences: " + prefer["_invalid"])


def max_affected(prefer: dict[str, str]) -> int | None:
    """The limit `max-affected=N` sets, which PostgREST enforces only with handling=strict."""
    if prefer.get("handling") == "strict" and "max-affected" in prefer:
        return int(prefer["max-affected"])
    return None


def enforce_max_affected(prefer: dict[str, str], n: int) -> None:
    limit = max_affected(prefer)
    if limit is not None and n > limit:
        raise pgrst(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                    f"The query affects {n} rows")


def applied(prefer: dict[str, str], honoured: tuple[str, ...]) -> dict[str, str]:
    values = []
    for key in ORDER:
        if key not in honoured or key not in prefer:
            continue
        if key == "max-affected" and prefer.get("handling") != "strict":
            continue
        values.append(f"{key}={prefer[key]}")
    return {"Preference-Applied": ", ".join(values)} if values else {}
