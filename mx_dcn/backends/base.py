"""What a backend is: a name, the device types it serves, why it is unavailable (if it is), which
constraints a call breaks, and a differentiable `run`."""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import torch

from ..problem import Problem


# Asks for deterministic backward passes like torch.use_deterministic_algorithms(True) does (mx_dcn.registry).
DETERMINISTIC_ENV = "MX_DCN_DETERMINISTIC"


@dataclasses.dataclass(frozen=True)
class Violation:
    """One constraint a call breaks: a short rule name (stable, for scripts) and a sentence."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine; truthy when it can, else `reason` says why not.
    `missing` names each missing piece when the backend reports them by rule (e.g. ascendc's
    "op_package"); `reason` then lists them as "rule: message; ...", as explain prints it."""

    ok: bool
    reason: str = ""
    missing: Tuple[Violation, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


AVAILABLE = Availability(True)


def unavailable(reason: str) -> Availability:
    return Availability(False, reason)


def missing_pieces(pieces: List[Violation]) -> Availability:
    """Available when nothing is missing, else unavailable with every missing piece by rule name."""
    if not pieces:
        return AVAILABLE
    return Availability(False, "; ".join(str(v) for v in pieces), tuple(pieces))


class Backend:
    """Base class. Subclasses set `name`, `device_types`, `description`, `limits`, `deterministic`,
    `determinism` and override the methods.

    `available()` must be cheap after the first call and must never raise. `violations(problem)`
    judges a call without running it, so it works for declared targets (meta tensors, a device or
    chip this machine lacks). `limits` documents every rule `violations` can name, as
    "rule: sentence" (tests check that each rule a backend emits is documented there).

    `deterministic`: whether the backend's backward gives bitwise-equal results run after run when
    torch.use_deterministic_algorithms(True) is in force. A backend that cannot guarantee it says
    False, and the registry then rejects its calls with the rule "deterministic" (mx_dcn.registry).
    `determinism` says how that is known (by construction and tested here, or documented by a vendor).
    """

    name: str = "?"
    device_types: Tuple[str, ...] = ()
    description: str = ""
    limits: Tuple[str, ...] = ()
    deterministic: bool = True
    determinism: str = ""

    _availability: Optional[Availability] = None  # cached result of _probe()

    def available(self) -> Availability:
        """Probed once (imports, devices, extensions), then cached; never raises."""
        if self._availability is None:
            try:
                self._availability = self._probe()
            except Exception as exc:
                self._availability = unavailable(f"{self.name} could not be probed ({type(exc).__name__}: {exc})")
        return self._availability

    def _probe(self) -> Availability:
        """Override: whether the backend can run on this machine, with the reason when not."""
        return AVAILABLE

    def violations(self, problem: Problem) -> List[Violation]:
        return []

    def run(self, problem: Problem, x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor],
            weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """The differentiable forward. `mask` None means DCNv1 (a mask of ones)."""
        raise NotImplementedError(self.name)
