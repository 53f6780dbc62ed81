"""The widget's source parts are served, joined, as the one /widget/v1/widget.js pages embed."""

from __future__ import annotations

from byoc.channels.webchat.script import SOURCE_DIR, WidgetScript
from tests.support import loopback
from tests.support.webchat import Webchat


def test_the_parts_are_served_as_one_script_with_validators(webchat: Webchat) -> None:
    expected = b"".join(p.read_bytes() for p in sorted(SOURCE_DIR.glob("*.js")))
    assert len(list(SOURCE_DIR.glob("*.js"))) > 1
    with loopback.client(base_url=webchat.url, timeout=10) as http:
        served = http.get("/widget/v1/widget.js")
        assert served.status_code == 200
        assert served.content == expected == WidgetScript.load().body
        assert served.content.startswith(b"/*! byoc web chat widget v1")
        assert served.content.rstrip().endswith(b"})();")
        assert served.headers["content-type"] == "text/javascript; charset=utf-8"
        etag, last_modified = served.headers["etag"], served.headers["last-modified"]

        head = http.head("/widget/v1/widget.js")
        assert head.status_code == 200
        assert head.headers["etag"] == etag
        assert head.content == b""

        again = http.get("/widget/v1/widget.js", headers={"if-none-match": f"W/{etag}"})
        assert again.status_code == 304
        assert again.headers["etag"] == etag
        assert again.content == b""
        since = http.get("/widget/v1/widget.js", headers={"if-modified-since": last_modified})
        assert since.status_code == 304
        changed = http.get("/widget/v1/widget.js", headers={"if-none-match": '"other"'})
        assert changed.status_code == 200
        assert changed.content == expected

        # The parts are sources, not URLs.
        assert http.get("/widget/v1/src/00-embedding.js").status_code == 404
