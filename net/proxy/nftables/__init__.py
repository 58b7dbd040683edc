"""nftables mode of the Service proxy: the rule model over a shared table and 16 shard tables
(rules), its nf_tables batches (batch), the backend that sends them over netlink, and its views.
"""
