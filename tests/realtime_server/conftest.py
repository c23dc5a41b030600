"""Realtime test helpers: the real supabase-js driven over stdin/stdout, raw Phoenix sockets, tokens.

supabase-js is installed once from tests/realtime_server/js/package-lock.json (pinned, with integrity
hashes) into ~/.cache/koepon/realtime-js/<lock hash> (KOEPON_REALTIME_JS_DIR overrides).
If it cannot be installed (no node/npm, registry unreachable) the JS tests FAIL with the reason: in
CI a skip would hide a broken client. The only way to leave them out is the explicit opt-out
KOEPON_SKIP_SUPABASE_JS=1 (for a machine that is knowingly offline), which CI never sets.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import jwt
import pytest

from koepon.settings import ANON_KEY, JWT_SECRET

JS_DIR = Path(__file__).parent / "js"
ENV = {**os.environ, "NPM_CONFIG_UPDATE_NOTIFIER": "false", "DO_NOT_TRACK": "1"}


def ws_url(api_url: str) -> str:
    return api_url.replace("http://", "ws://") + "/realtime/v1/websocket"


def token(sub: str | None = None, role: str = "authenticated", ttl: float = 3600, **extra) -> str:
    now = int(time.time())
    claims = {"role": role, "exp": int(now + ttl), "iat": now, "aud": "authenticated", **extra}
    if sub:
        claims["sub"] = sub
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.fixture(scope="session")
def js_dir() -> Path:
    lock = (JS_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (JS_DIR / "package.json").read_bytes()).hexdigest()[:12]
    base = Path(os.environ.get("KOEPON_REALTIME_JS_DIR", Path.home() / ".cache" / "koepon" / "realtime-js"))
    target = base / digest
    if os.environ.get("KOEPON_SKIP_SUPABASE_JS") == "1":
        pytest.skip("KOEPON_SKIP_SUPABASE_JS=1: the supabase-js Realtime tests were explicitly opted out of")
    if not (target / "node_modules" / "@supabase" / "supabase-js").exists():
        if not shutil.which("npm") or not shutil.which("node"):
            pytest.fail("node/npm are not installed (scripts/bootstrap.sh installs npm); "
                        "set KOEPON_SKIP_SUPABASE_JS=1 to opt out explicitly")
        target.mkdir(parents=True, exist_ok=True)
        for f in ("package.json", "package-lock.json"):
            shutil.copy(JS_DIR / f, target / f)
        res = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=target, capture_output=True,
                             text=True, env=ENV, timeout=900)
        if res.returncode != 0:
            ping = subprocess.run(["npm", "ping"], capture_output=True, text=True, env=ENV, timeout=60)
            reason = f"npm cannot reach its registry: {ping.stderr.strip()[-300:]}" if ping.returncode \
                else res.stderr[-2000:]
            pytest.fail(f"npm ci of supabase-js failed ({reason}); set KOEPON_SKIP_SUPABASE_JS=1 to opt out explicitly")
    # ESM resolves packages from the script's own directory: the driver lives beside node_modules.
    shutil.copy(JS_DIR / "client.mjs", target / "client.mjs")
    return target


def _node_flags() -> list[str]:
    """Node 22 has a global WebSocket; Node 20 (Debian 13's) has it behind a flag."""
    out = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    major = int(out.lstrip("v").split(".")[0]) if out else 0
    return ["--experimental-websocket"] if major < 22 else []


class JsClient:
    """One supabase-js client in a node process; `events` holds every line it printed."""

    def __init__(self, js_dir: Path, api_url: str, key: str = ANON_KEY):
        self.proc = subprocess.Popen(["node", *_node_flags(), str(js_dir / "client.mjs"), api_url, key],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=ENV)
        self.events: list[dict] = []
        self._q: queue.Queue = queue.Queue()
        self._seen = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda e: e["ev"] == "ready", 30)

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                ev = json.loads(line)
                self.events.append(ev)
                self._q.put(ev)

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait(self, pred, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if pred(ev):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"supabase-js never saw the expected event; it saw: {self.events[-20:]}"
                                     f"\nstderr: {self._stderr()}")
            try:
                self._q.get(timeout=min(left, 0.2))
            except queue.Empty:
                pass

    def status(self, name: str, timeout: float = 15) -> dict:
        return self.wait(lambda e: e["ev"] == "status" and e["ch"] == name, timeout)

    def matching(self, pred) -> list[dict]:
        return [e for e in self.events if pred(e)]

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(op="exit")
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture()
def js(js_dir, api_url):
    clients: list[JsClient] = []

    def make(key: str = ANON_KEY, url: str | None = None) -> JsClient:
        c = JsClient(js_dir, url or api_url, key)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
