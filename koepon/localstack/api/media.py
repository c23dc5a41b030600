"""Content negotiation as PostgREST does it: `Accept` picks the representation, `Accept-Profile`
(reads) / `Content-Profile` (writes) pick the exposed schema.

Representations (docs: Resource Representation; QuerySpec "Accept headers"): `application/json`
(also for `*/*` and `application/*`), `application/vnd.pgrst.object+json` (exactly one row),
`application/vnd.pgrst.array+json`, either with `;nulls=stripped`, and `text/csv`. The client's
order is honoured (the first available type wins, `q` weights first); none available →
406 PGRST107 naming what was asked. `application/vnd.pgrst.plan` (EXPLAIN) is off on hosted
Supabase (`db-plan-enabled` is false), so it is not offered either.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import pgrst

JSON = "application/json"
OBJECT = "application/vnd.pgrst.object+json"
ARRAY = "application/vnd.pgrst.array+json"
CSV = "text/csv"
OFFERS = (JSON, OBJECT, ARRAY, CSV)


@dataclass(frozen=True)
class Media:
    type: str
    strip_nulls: bool = False

    @property
    def singular(self) -> bool:
        return self.type == OBJECT

    @property
    def content_type(self) -> str:
        suffix = ";nulls=stripped" if self.strip_nulls else ""
        return f"{self.type}{suffix}; charset=utf-8"


def _parse(accept: str) -> list[tuple[str, dict[str, str]]]:
    items = []
    for i, part in enumerate(accept.split(",")):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        params = {}
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip().lower()] = v.strip()
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        items.append((-q, i, bits[0].lower(), params))
    items.sort()
    return [(t, p) for _q, _i, t, p in items]


def negotiate(accept: str | None) -> Media:
    if not accept or not accept.strip():
        return Media(JSON)
    wanted = _parse(accept)
    for mtype, params in wanted:
        if mtype in ("*/*", "application/*"):
            return Media(JSON)
        if mtype in OFFERS:
            strip = params.get("nulls") == "stripped" and mtype in (OBJECT, ARRAY)
            return Media(mtype, strip)
    raise pgrst(406, "PGRST107", "None of these media types are available: "
                + ", ".join(t for t, _ in wanted))


def profile(method: str, headers: dict[str, str], schemas: tuple[str, ...]) -> str:
    """The schema a request addresses: Accept-Profile for GET/HEAD, Content-Profile otherwise."""
    key = "accept-profile" if method in ("GET", "HEAD") else "content-profile"
    wanted = headers.get(key)
    if wanted is None:
        return schemas[0]
    if wanted not in schemas:
        raise pgrst(406, "PGRST106", f"Invalid schema: {wanted}", None,
                    "Only the following schemas are exposed: " + ", ".join(schemas))
    return wanted


def csv_body(names: list[str], rows: list[str]) -> bytes:
    """PostgREST's CSV: the header (only when there are rows), then each row's record text."""
    if not rows:
        return b"\n"
    return (",".join(names) + "\n" + "\n".join(rows)).encode()
