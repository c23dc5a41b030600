"""`python -m koepon.tools.bench.rt_clients CONFIG.json OUT.json`: many Realtime subscribers in one process.

Raw Phoenix vsn 2.0.0 over `websockets` (what supabase-js speaks: database broadcasts arrive as
binary user-broadcast frames), one socket per subscriber. Prints `READY <joined> <refused>` once
every socket has its join answered and `COUNT <received>` every second, records the receipt time
of every broadcast, and writes them to OUT.json when stdin says STOP (or closes).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import orjson
from websockets.asyncio.client import connect


async def subscriber(url: str, topic: str, token: str | None, kind: str, out: list, ready: asyncio.Queue,
                     stop: asyncio.Event) -> None:
    payload = {"config": {"private": True, "broadcast": {"self": False}, "presence": {"enabled": False}}}
    if token:
        payload["access_token"] = token
    try:
        async with connect(url, max_size=None, open_timeout=60, ping_interval=None) as ws:
            await ws.send(orjson.dumps(["1", "1", "realtime:" + topic, "phx_join", payload]).decode())
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            ok = reply[3] == "phx_reply" and reply[4]["status"] == "ok"
            ready.put_nowait(ok)
            if not ok:
                return
            heartbeat = time.monotonic() + 25
            while not stop.is_set():
                try:
                    frame = await asyncio.wait_for(ws.recv(), 1)
                except TimeoutError:
                    frame = None
                if time.monotonic() > heartbeat:  # phoenix heartbeat, as the clients send it
                    await ws.send('[null,"h","phoenix","heartbeat",{}]')
                    heartbeat = time.monotonic() + 25
                if not isinstance(frame, bytes) or frame[0] != 4:
                    continue
                t = time.time()
                tl, el, ml = frame[1], frame[2], frame[3]
                body = frame[5 + tl + el + ml:]
                if kind == "fan":
                    out.append((topic, t))
                else:
                    out.append((orjson.loads(body).get("pull_id"), t))
    except Exception as exc:  # noqa: BLE001 - reported as a refused/failed subscriber
        if ready is not None:
            ready.put_nowait(False)
        print(f"subscriber {topic}: {exc!r}", file=sys.stderr)


async def main(cfg: dict, out_path: str) -> None:
    url = cfg["url"]
    ready: asyncio.Queue = asyncio.Queue()
    stop = asyncio.Event()
    fans: list = []
    watchers: list[list] = [[] for _ in range(cfg["watchers"])]
    tasks = []
    # Connect in waves so the accept queue is never flooded.
    subs = [(topic, token, "fan", fans) for topic, token in cfg["fans"]]
    subs += [(cfg["feed"], None, "watcher", w) for w in watchers]
    for i in range(0, len(subs), 100):
        for topic, token, kind, sink in subs[i:i + 100]:
            tasks.append(asyncio.create_task(subscriber(url, topic, token, kind, sink, ready, stop)))
        await asyncio.sleep(0.05)
    results = [await ready.get() for _ in subs]
    print(f"READY {sum(results)} {len(results) - sum(results)}", flush=True)

    async def progress():  # how many broadcasts arrived so far, once a second
        while not stop.is_set():
            print(f"COUNT {len(fans) + sum(len(w) for w in watchers)}", flush=True)
            await asyncio.sleep(1)

    reporter = asyncio.create_task(progress())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    stop.set()
    reporter.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(out_path, "w") as f:
        json.dump({"fans": fans, "watchers": watchers}, f)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    asyncio.run(main(config, sys.argv[2]))
