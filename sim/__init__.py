"""cnilab: a rehearsal lab for Cloudflare Network Interconnect (CNI)."""

__version__ = "0.1.0"
