"""Telemetry: JSON logs, Prometheus metrics, optional tracing, and the request middleware that
ties them to each request. The bottom layer (`byoc._layers`): anything may import it, and it
imports only the other bottom modules (settings, errors, ids)."""
