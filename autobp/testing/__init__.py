"""The testing kit: finite-difference gradient checks and hypothesis strategies.

``gradcheck`` and ``gradgradcheck`` need only numpy. ``autobp.testing.strategies`` needs
hypothesis (the ``test`` extra) and is imported only when asked for.
"""

from autobp.testing.gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]
