"""The Node: machine facts, registration, status and conditions, and the Lease heartbeat.
Pure status building lives in status.py; talking to the apiserver lives in the agent's loops.
"""
