"""Graceful node shutdown: logind's delay inhibitor over D-Bus, and pods stopped by priority
group within shutdownGracePeriod before the node goes down (upstream's nodeshutdown).
"""
