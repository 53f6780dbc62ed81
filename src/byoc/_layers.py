"""The layers of byoc, bottom up. A module imports modules of its own layer or of lower ones,
never of a higher one; `tests/test_layers.py` reads every import (those inside functions and
under `TYPE_CHECKING` too) and holds the code to this table. Nothing imports this module.

    foundation     settings, errors, ids, clock, compare (secrets), json_leaves, and telemetry
                   (`ops`: logs, metrics, tracing, the request middleware): what everything
                   may use
    http           outgoing calls, the proxies they go through, the outbound address policy
    store          persistence, and `bus`: the bus carries ids and the store the truth, and it
                   rides on the same database (PostgreSQL LISTEN/NOTIFY) or on nothing
    cxone          the DE API client, and `tenancy`: a tenant's client built from its stored
                   credentials, the one way the layers above reach CXone
    outbox         durable side effects
    conversations  the domain
    channels       platform adapters, and `channels.keys`, the key per purpose derived from a
                   channel secret that adapters and route modules sign and verify with;
                   `delivery`, the outbox handlers that hand a row to CXone or to an adapter (it
                   needs both the domain and the adapters); `provisioning`, which creates
                   channels in CXone and maps them to an adapter
    routes         everything that answers HTTP: `api` (problems, limits, the hot path,
                   health, readiness, the narrow dependencies), `box`, `admin`, and the route
                   modules that live beside their channel (platform API, widget socket and script,
                   uploads, CORS) or beside provisioning (the Action URL pages)
    app            composition: builds every service and wires the routes
    entry points   the CLI, the demo, `byoc doctor`

An entry names a module or a package (with everything under it); the most specific entry
wins, so a route module inside `channels` sits with the routes. The bare package `byoc`
(its `__init__`, the version) is foundation. `cxone_emulator` is never imported.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "byoc",
            "byoc._layers",
            "byoc.settings",
            "byoc.errors",
            "byoc.ids",
            "byoc.clock",
            "byoc.compare",
            "byoc.json_leaves",
            "byoc.ops",
        ),
    ),
    ("http", ("byoc.http", "byoc.outbound", "byoc.outbound_resolver", "byoc.proxies")),
    ("store", ("byoc.store", "byoc.bus")),
    ("cxone", ("byoc.cxone", "byoc.tenancy")),
    ("outbox", ("byoc.outbox",)),
    ("conversations", ("byoc.conversations",)),
    ("channels", ("byoc.channels", "byoc.channels.keys", "byoc.delivery", "byoc.provisioning")),
    (
        "routes",
        (
            "byoc.api",
            "byoc.box",
            "byoc.admin",
            "byoc.channels.platform_api",
            "byoc.channels.webchat.route",
            "byoc.channels.webchat.script",
            "byoc.channels.webchat.attachments",
            "byoc.channels.webchat.cors",
            "byoc.provisioning.action_pages",
        ),
    ),
    ("app", ("byoc.app",)),
    ("entry points", ("byoc.cli", "byoc.demo", "byoc.demo_ports", "byoc.doctor")),
)
