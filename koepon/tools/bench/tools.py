"""Load generators (pgbench, wrk) run as child processes, with their latencies and own CPU."""

from __future__ import annotations

import glob
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from psycopg.conninfo import conninfo_to_dict

NCPU = os.cpu_count() or 1


def percentiles(lat_ms: list[float]) -> dict:
    if not lat_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    s = sorted(lat_ms)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 3)

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99)}


@dataclass
class Run:
    """One measured run of one generator."""

    label: str
    tool: str
    clients: int
    duration_s: float
    ops: int = 0
    errors: int = 0
    throughput: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    generator_cpu_s: float = 0.0
    generator_cpu_share: float = 0.0
    notes: list[str] = field(default_factory=list)
    cpu_ms_per_request: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


class _ChildCPU:
    """CPU seconds used by children that finished inside the block (RUSAGE_CHILDREN delta)."""

    def __enter__(self):
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0, self.cpu0 = time.monotonic(), r.ru_utime + r.ru_stime
        return self

    def __exit__(self, *exc):
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.monotonic() - self.t0
        self.cpu = r.ru_utime + r.ru_stime - self.cpu0


def pgbench(url: str, script: str, label: str, clients: int, duration: float,
            defines: dict[str, int | str] | None = None, jobs: int | None = None,
            log_lines: list | None = None, transactions: int | None = None) -> Run:
    """pgbench -f script -c N -j J -T S --log; latencies from the per-transaction log (its split
    lines also go to `log_lines` when given: client, transaction, latency us, script, epoch s, us).
    With `transactions`, each client runs that many (-t) instead of running for `duration`."""
    info = conninfo_to_dict(url)
    jobs = jobs or min(clients, NCPU)
    with tempfile.TemporaryDirectory(prefix="koepon-bench-") as tmp:
        path = os.path.join(tmp, "script.sql")
        with open(path, "w") as f:
            f.write(script)
        cmd = [shutil.which("pgbench") or "pgbench", "-n", "-M", "prepared", "-f", path,
               "-c", str(clients), "-j", str(jobs),
               *(["-t", str(transactions)] if transactions else ["-T", str(max(1, round(duration)))]),
               "--log", "--log-prefix", os.path.join(tmp, "log"),
               "-h", info.get("host", "127.0.0.1"), "-p", str(info.get("port", 5432)),
               "-U", info.get("user", "postgres"), info["dbname"]]
        for k, v in (defines or {}).items():
            cmd += ["-D", f"{k}={v}"]
        env = dict(os.environ, PGPASSWORD=info.get("password") or "")
        with _ChildCPU() as cpu:
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        out = res.stdout + res.stderr
        lat: list[float] = []
        failed_logged = 0
        for log in glob.glob(os.path.join(tmp, "log*")):
            with open(log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3:
                        continue
                    if parts[2] in ("failed", "skipped"):
                        failed_logged += 1
                        continue
                    lat.append(int(parts[2]) / 1000.0)
                    if log_lines is not None:
                        log_lines.append(parts)
    run = Run(label, "pgbench", clients, duration)
    run.ops = len(lat)
    aborted = 0
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("tps = "):
            run.throughput = round(float(line.split()[2]), 1)
        elif line.startswith("number of failed transactions:"):
            run.errors += int(line.split(":")[1].split()[0])
        elif "client" in line and "aborted" in line:
            aborted += 1
        elif line.startswith("number of transactions actually processed:"):
            run.ops = int(line.split(":")[1].split("/")[0].split()[0])
    run.errors += aborted
    if aborted:
        first = next((ln for ln in out.splitlines() if "error" in ln.lower()), "")
        run.notes.append(f"{aborted} client(s) aborted: {first.strip()[:300]}")
    if res.returncode not in (0, 2) or (run.throughput == 0 and run.ops == 0):
        run.notes.append(f"pgbench exit {res.returncode}: {out.strip()[-500:]}")
    run.__dict__.update(percentiles(lat))
    run.generator_cpu_s = round(cpu.cpu, 2)
    run.generator_cpu_share = round(cpu.cpu / (cpu.wall * NCPU), 3) if cpu.wall else 0.0
    return run


WRK_LUA_TAIL = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  nthreads = tonumber(args[1])
  counter = 0
  errors = 0
  statuses = {}
end
function response(status, headers, body)
  if status >= 400 then
    errors = errors + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end
function done(summary, latency, requests)
  local errs, st = 0, {}
  for _, t in ipairs(threads) do
    errs = errs + t:get("errors")
  end
  io.write(string.format('KOEPON_WRK {"requests": %d, "duration_us": %d, "errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errs,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def wrk(url: str, lua_body: str, label: str, connections: int, duration: float,
        threads: int | None = None) -> Run:
    """wrk -s script: lua_body defines request(); the tail counts >=400 answers and prints figures."""
    threads = threads or min(connections, NCPU)
    with tempfile.TemporaryDirectory(prefix="koepon-bench-") as tmp:
        path = os.path.join(tmp, "script.lua")
        with open(path, "w") as f:
            f.write(lua_body + WRK_LUA_TAIL)
        cmd = [shutil.which("wrk") or "wrk", "-t", str(threads), "-c", str(connections),
               "-d", f"{max(1, round(duration))}s", "--timeout", "10s", "-s", path, url, "--", str(threads)]
        with _ChildCPU() as cpu:
            res = subprocess.run(cmd, capture_output=True, text=True)
    run = Run(label, "wrk", connections, duration)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("KOEPON_WRK ")), None)
    if line is None:
        run.notes.append(f"wrk exit {res.returncode}: {(res.stdout + res.stderr).strip()[-500:]}")
        return run
    d = json.loads(line[len("KOEPON_WRK "):])
    run.ops = d["requests"]
    run.errors = d["errors"] + d["socket_errors"]
    run.throughput = round(d["requests"] / (d["duration_us"] / 1e6), 1) if d["duration_us"] else 0.0
    run.p50_ms, run.p95_ms, run.p99_ms = (round(d[k] / 1000.0, 3) for k in ("p50_us", "p95_us", "p99_us"))
    run.generator_cpu_s = round(cpu.cpu, 2)
    run.generator_cpu_share = round(cpu.cpu / (cpu.wall * NCPU), 3) if cpu.wall else 0.0
    return run
