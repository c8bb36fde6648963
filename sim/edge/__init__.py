"""Cloudflare edge peer: ExaBGP config and driver, import policy, BFD speaker."""
