"""Live lab dashboard (`cnilab dashboard`): a local web page showing links, BGP, BFD, traffic and faults.

``create_app(lab_name, token)`` builds the FastAPI app; a :class:`~cnilab.sim.dashboard.collector.Collector`
owned by the app's lifespan samples the lab every 250 ms and the page follows it over Server-Sent
Events. Everything (HTML, JS, CSS) is served locally so it works in a training room without internet.
"""

from cnilab.sim.dashboard.app import DashboardConfigError, check_bind, create_app, is_loopback

__all__ = ["DashboardConfigError", "check_bind", "create_app", "is_loopback"]
