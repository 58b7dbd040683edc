"""pykubelet's pod networking: the CNI plugin, its agent-side service, IPAM and host rules.
Importing this package must stay free of side effects and of third-party imports (the plugin)."""
