"""The exec'd half of pykubelet's CNI plugin and the wire format it shares with the agent.
Standard library only: the runtime execs this for every sandbox, so no pyroute2 import here."""
