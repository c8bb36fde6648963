"""BGP logic shared by the live edge and the simulator: import policy, best path, scale tables."""
