"""Pod lifecycle: the JSON edge (decode.py) and the frozen model, the pure planner, QoS and status
derivation; the workers, executor and status manager that act on them; and what a pod needs
around its containers (environment, DNS, /etc/hosts, hooks, admission, static pods).
"""
