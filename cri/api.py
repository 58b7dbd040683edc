"""The CRI runtime.v1 message and enum types (re-exported from the generated cri/_gen/api_pb2).
Import messages from here (`from cri import api`); this module must hold no logic of its own.
"""

from cri._gen.api_pb2 import *  # noqa: F403
