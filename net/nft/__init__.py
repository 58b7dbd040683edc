"""nf_tables without the nft CLI, in a pipeline of small pure steps: the IR (ir.py), its nft text
(text.py), the kernel's numbers (uapi.py), attribute packing and values (attrs.py), expressions
(exprs.py, with the templated hot path in fastpath.py), ops to one batch (encode.py), reading
replies (decode.py), and the one executor that talks to the kernel (netlink.py)."""
