"""CRI runtime.v1 access for pykubelet: the proto, generated stubs, typed client, errors and a fake.
The only package that opens gRPC channels to the runtime; it knows nothing of Kubernetes objects.
"""
