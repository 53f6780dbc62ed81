"""What the test suite shares, and the only test code a test module imports.

- `waiting`: `wait_for`, the one way to wait for a condition; `run_async` from sync code.
- `servers`: an ASGI app in uvicorn on loopback, in a thread with its own event loop.
- `emulator`: the CXone emulator on loopback; `box_receiver`: a stand-in Integration Box.
- `stack`: the middleware with the emulator and a platform webhook receiver.
- `webchat`, `widget`, `widget_page`: a web chat channel, a protocol-level widget client and
  the widget in a browser page.
- `cluster`: middleware processes on one PostgreSQL database; `postgres`: a database each.
- `logs`: JSON log lines and a fixture that restores logging.
- `cli`, `action_pages`, `problems`: the `byoc` command in-process, the action pages, RFC 9457
  answers.
- `scheduling`: how the tests are spread over pytest-xdist workers; `loopback`: httpx's
  clients and calls on one TLS context for the run.
"""
