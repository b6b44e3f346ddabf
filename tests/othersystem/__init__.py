"""A second purchase system, shaped like production ones and written apart from kcverify's reference, that
the external target verifies through profiles/examples/production-shaped.yaml."""

from tests.othersystem.common import FLAWS
from tests.othersystem.system import OtherSystem, start_system

__all__ = ["FLAWS", "OtherSystem", "start_system"]
