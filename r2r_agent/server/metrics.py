"""The server's Prometheus metrics, in a registry of their own (one per app, so several apps in one process, as in
tests, never collide). With ``--workers N`` each worker process counts its own requests: scrape each, or run one
worker per replica (docs/serve.md)."""

from __future__ import annotations

from typing import Any

#: Latency buckets in seconds: a few passages take tens of milliseconds, 100 with explanations seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Requests by route and status, latency by route, passages scored, queue depth and requests in flight."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("r2r_requests", "HTTP requests answered, by route and status",
                                ("route", "status"), registry=self.registry)
        self.latency = Histogram("r2r_request_seconds", "Seconds from request to response, by route", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.passages = Counter("r2r_passages_scored", "Documents reranked (answered requests only)",
                                registry=self.registry)
        self.queue_depth = Gauge("r2r_queue_depth", "Requests waiting for the model", registry=self.registry)
        self.in_flight = Gauge("r2r_requests_in_flight", "Rerank requests being answered (queued or running)",
                               registry=self.registry)
        self.running = Gauge("r2r_requests_running", "Rerank requests whose work is running on the model",
                             registry=self.registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def sample(self, name: str, labels: dict[str, Any] | None = None) -> float | None:
        """One sample's value (for tests and logs)."""
        return self.registry.get_sample_value(name, labels or {})


__all__ = ["LATENCY_BUCKETS", "Metrics"]
