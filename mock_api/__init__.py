"""cnilab's mock of Cloudflare's CNI API (``/client/v4/accounts/{account_id}/cni/...``).

``create_app(settings)`` builds the FastAPI app; nothing is global, so tests run several servers
side by side. See mock_api/README.md for the field mapping from the seeds' older names.
"""

if __name__ != "cnilab.mock_api":
    raise ImportError(f"import cnilab.mock_api, not {__name__}: the distribution installs mock_api/ as cnilab.mock_api "
                      "(see setup.py); a second copy under another name would duplicate every registry")

from cnilab.mock_api.app import create_app
from cnilab.mock_api.config import ApiSettings, load_settings

__all__ = ["ApiSettings", "create_app", "load_settings"]
