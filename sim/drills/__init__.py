"""Drills on a running lab: rehearsals of one well-known operational event, measured on the dataplane.

``gshut``: Cloudflare-side maintenance with GRACEFUL_SHUTDOWN (RFC 8326): does the customer move its
traffic off the interconnect before the session drops?
"""
