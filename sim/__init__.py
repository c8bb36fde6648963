"""cnilab: a rehearsal lab for Cloudflare Network Interconnect (CNI)."""

if __name__ != "cnilab.sim":
    raise ImportError(f"import cnilab.sim, not {__name__}: the distribution installs sim/ as cnilab.sim "
                      "(see setup.py); a second copy under another name would duplicate every registry")

__version__ = "0.1.0"
