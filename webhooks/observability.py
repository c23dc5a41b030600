"""Request ids, JSON log lines and Prometheus metrics for the payment service.

* Request id: taken from the caller's `X-Request-Id` when it is a plain token (letters, digits,
  `._:-`, at most 128), else generated; returned in the answer's `X-Request-Id`, put on every log
  line of the request (`request_id`) and sent to the database with every call (webhooks/db.py).
* Logs: one JSON object per line on stderr (`timestamp`, `level`, `logger`, `message`,
  `request_id`, plus the fields a line adds), the format Datadog and New Relic parse without
  a pipeline. Every request also writes one access line (`method`, `path`, `route`, `status`,
  `duration_ms`).
* Metrics (`GET /metrics`, Prometheus text format, `prometheus-client`): requests by route,
  method and status; latency histograms by route; webhook outcomes by provider; provider call
  latency and errors; requests in flight against the worker threads (the service's pool).
  Under gunicorn's several worker processes the values live in PROMETHEUS_MULTIPROC_DIR (set by
  `python -m webhooks`) and every scrape sums all workers. With PAYMENTS_METRICS_TOKEN set,
  /metrics needs `Authorization: Bearer <token>` (the service faces the internet).

prometheus_client decides at import time whether it runs in multi-process mode, so it is
imported on first use, after `python -m webhooks` has set the directory.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import threading
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
access_log = logging.getLogger("webhooks.access")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record logged while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def logging_config(level: str = "INFO") -> dict:
    """A logging.config.dictConfig for JSON lines on stderr (also handed to gunicorn)."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            # ISO 8601 in UTC with microseconds, the form Datadog and New Relic read as the event time.
            "timestamp": True,
        }},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "json", "filters": ["request_id"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
                    "httpx": {"level": "WARNING"}},
    }


def configure_logging(level: str = "INFO") -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level))


def prepare_multiprocess_metrics():
    """Before any metric exists: gunicorn's worker processes share their values through files in
    PROMETHEUS_MULTIPROC_DIR (a fresh private directory unless one is given). Returns the function
    that forgets a dead worker's live gauges."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import atexit
        import shutil
        import tempfile

        path, owner = tempfile.mkdtemp(prefix="koepon-payments-metrics-"), os.getpid()
        # Workers are forked from this process and run its exit handlers too: only it removes the files.
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, True))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path

    def mark_dead(pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    return mark_dead


class _Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("koepon_payments_http_requests", "HTTP requests answered, by route, method "
                                "and status", ["route", "method", "status"], registry=r)
        self.latency = Histogram("koepon_payments_http_request_duration_seconds", "Time to answer, by route",
                                 ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.webhook_events = Counter("koepon_payments_webhook_events", "Verified webhook events by outcome "
                                      "(fulfilled, duplicate, flagged, refused, ...)", ["provider", "outcome"],
                                      registry=r)
        self.provider_latency = Histogram("koepon_payments_provider_request_duration_seconds",
                                          "Calls to Stripe and KOMOJU", ["provider", "operation"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.provider_errors = Counter("koepon_payments_provider_errors", "Failed calls to Stripe and KOMOJU",
                                       ["provider", "operation"], registry=r)
        self.in_flight = Gauge("koepon_payments_requests_in_flight", "Requests being handled (worker threads "
                               "busy)", registry=r, multiprocess_mode="livesum")
        self.threads = Gauge("koepon_payments_worker_threads", "Worker threads that can handle requests",
                             registry=r, multiprocess_mode="livesum")

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


_metrics: _Metrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> _Metrics:
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


def count_outcome(provider: str, outcome: str) -> None:
    metrics().webhook_events.labels(provider, outcome).inc()


def instrument_provider(client, provider: str, operations: tuple[str, ...]) -> None:
    """Times every call of `operations` on a provider client and counts the ones that raise."""
    m = metrics()
    for name in operations:
        original = getattr(client, name)

        @functools.wraps(original)
        def timed(*args, __original=original, __name=name, **kwargs):
            started = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            except Exception:
                m.provider_errors.labels(provider, __name).inc()
                raise
            finally:
                m.provider_latency.labels(provider, __name).observe(time.perf_counter() - started)

        setattr(client, name, timed)


def init_app(app: Flask, metrics_token: str = "") -> None:
    m = metrics()

    @app.before_request
    def _start():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()
        g.in_flight = True
        m.in_flight.inc()

    @app.after_request
    def _finish(resp: Response):
        request_id = g.get("request_id") or uuid.uuid4().hex
        resp.headers["X-Request-Id"] = request_id
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        m.requests.labels(route, request.method, str(resp.status_code)).inc()
        m.latency.labels(route, request.method).observe(elapsed)
        access_log.info("%s %s %s", request.method, request.path, resp.status_code,
                        extra={"method": request.method, "path": request.path, "route": route,
                               "status": resp.status_code, "duration_ms": round(elapsed * 1000, 3),
                               "remote_addr": request.remote_addr})
        return resp

    @app.teardown_request
    def _teardown(_exc):
        if g.pop("in_flight", False):
            m.in_flight.dec()

    @app.get("/metrics")
    def prometheus_metrics():
        if metrics_token:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), metrics_token.encode()):
                return {"code": "not_authenticated", "message": "send Authorization: Bearer <metrics token>"}, 401
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(m.exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                        headers={"Content-Type": CONTENT_TYPE_LATEST})
