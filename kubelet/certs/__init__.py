"""The node's certificates from the apiserver's CSR API, shared by the client certificate (TLS
bootstrap, rotation) and the :10250 serving certificate: the cert-dir store, the CSR request and
wait, and the rotation loop. Talks to the apiserver only through the client it is handed.
"""
