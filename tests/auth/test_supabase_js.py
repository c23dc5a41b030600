"""The auth lifecycle with the real supabase-js (tests/auth/js/auth_flows.mjs): confirmation, OTP
(and its reuse), PKCE recovery, e-mail change, signOut scopes, admin pagination, bans,
generateLink and soft delete, reading the e-mail from the mail catcher's Mailpit API."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from auth_helpers import supabase_js_modules

from koepon.settings import ANON_KEY, SERVICE_ROLE_KEY

SCRIPT = Path(__file__).with_name("js") / "auth_flows.mjs"
CHECKS = 9


def test_auth_lifecycle_with_supabase_js(api, mail):
    cache = supabase_js_modules()
    # ESM resolves packages next to the script: run a copy beside the installed node_modules.
    script = cache / "koepon_auth_flows.mjs"
    shutil.copyfile(SCRIPT, script)
    res = subprocess.run(["node", str(script), api, ANON_KEY, SERVICE_ROLE_KEY, mail.url], capture_output=True,
                         text=True, timeout=300, cwd=cache)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == f"passed {CHECKS}", res.stdout
