"""supabase-js (postgrest-js) as the checklist: tests/api/js/postgrest_checklist.mjs drives every
public builder method once against the local API and asserts each answer.

The pinned packages are installed once into ~/.cache/koepon/postgrest-js-checklist
(KOEPON_POSTGREST_JS_DIR overrides) and reused; if npm cannot reach its registry the test is
skipped with that reason, as the Supabase CLI interop tests do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conformance import install

from koepon.localstack.api.testing import running_api
from koepon.settings import ANON_KEY

PACKAGES = ("@supabase/supabase-js@2.119.1", "typescript@5.9.3")
CACHE = Path(os.environ.get("KOEPON_POSTGREST_JS_DIR",
                            Path.home() / ".cache" / "koepon" / "postgrest-js-checklist"))
SCRIPT = Path(__file__).with_name("js") / "postgrest_checklist.mjs"
CHECKS = 58
ENV = {**os.environ, "NPM_CONFIG_UPDATE_NOTIFIER": "false", "DO_NOT_TRACK": "1"}


def node_modules() -> Path:
    """The pinned supabase-js and TypeScript, installed once."""
    marker = CACHE / "node_modules" / "@supabase" / "supabase-js" / "package.json"
    if not marker.exists() or '"version": "2.119.1"' not in marker.read_text():
        if os.environ.get("KOEPON_SKIP_SUPABASE_JS") == "1":
            pytest.skip("KOEPON_SKIP_SUPABASE_JS=1: the supabase-js checks were explicitly opted out of")
        if not shutil.which("npm"):
            pytest.fail("npm is not installed (scripts/bootstrap.sh installs it); "
                        "KOEPON_SKIP_SUPABASE_JS=1 opts out explicitly")
        CACHE.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), *PACKAGES],
                             capture_output=True, text=True, env=ENV, timeout=900)
        if res.returncode != 0:
            ping = subprocess.run(["npm", "ping"], capture_output=True, text=True, env=ENV, timeout=60)
            if ping.returncode != 0:
                pytest.fail(f"npm cannot reach its registry: {ping.stderr.strip()[-300:]} "
                            "(KOEPON_SKIP_SUPABASE_JS=1 opts out explicitly)")
            pytest.fail(f"npm install failed: {res.stderr[-2000:]}")
    return CACHE / "node_modules"


@pytest.fixture(scope="module")
def api_base(seeded_db_url):
    install(seeded_db_url)
    with running_api(seeded_db_url) as url:
        yield url


def test_every_postgrest_js_builder_method(api_base):
    modules = node_modules()
    # ESM resolves packages next to the script: run a copy beside the installed node_modules.
    script = CACHE / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    res = subprocess.run(["node", str(script), api_base, ANON_KEY], capture_output=True, text=True,
                         env=ENV, timeout=300, cwd=modules.parent)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == f"passed {CHECKS}", res.stdout
