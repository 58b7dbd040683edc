"""The local-cluster harness behind `pykubelet up/down`: certificates, component command lines,
process control, simulated nodes, images, add-ons and the Go builds (gobuild/). Not part of the
node agent: only the command line and the tests import it.
"""
