"""`koepon status` tells a frontend developer where Realtime is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

KOEPON = str(Path(sys.executable).with_name("koepon"))


def test_status_prints_the_realtime_url():
    env = dict(os.environ, KOEPON_DB_URL="postgresql://postgres:postgres@db.example.invalid:5432/postgres")
    text = subprocess.run([KOEPON, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Realtime URL ws://127.0.0.1:54321/realtime/v1" in text.stdout
    res = subprocess.run([KOEPON, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(res.stdout)["realtime_url"] == "ws://127.0.0.1:54321/realtime/v1"
