"""nf_tables without the nft CLI: the IR, its nft text, and its netlink encoding."""
