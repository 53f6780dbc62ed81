"""A stand-in for NICE CXone Digital Engagement over real HTTP.

It serves the DE API the middleware calls (contract §3), plays the agents by calling the
middleware's callbacks (contract §2), and exposes a JSON agent API, fault injection, request and
callback logs and a small browser console. The middleware never imports this package.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
