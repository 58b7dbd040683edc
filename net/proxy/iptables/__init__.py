"""iptables mode of the Service proxy: upstream's chain layout as a rule model (rules), its
iptables-restore text (render), the programs that apply it (executor), its backend and views.
"""
