"""The saga lab (notebook 15): a learner's durable saga orchestrator, tested like a lab.

>>> from labkit.labs.saga import saga_lab, SagaOrchestrator
>>> class MySagas(SagaOrchestrator): ...         # then add the orchestrator's rules, one per cell
>>> report = saga_lab.run("steps", MySagas)      # a table per scenario; failures shrunk
>>> report.show_failure()                        # the first failure, as a picture to step through

* :mod:`~labkit.labs.saga.skeleton`: :class:`SagaOrchestrator`, an orchestrator without its rules;
* :mod:`~labkit.labs.saga.scenarios`: the scenarios of the three parts;
* :mod:`~labkit.labs.saga.properties`: what they check;
* :mod:`~labkit.labs.saga.lab`: :class:`SagaLab`, the world, faults and checks.
"""

from labkit.labs.core import Fault
from labkit.labs.saga.lab import SagaLab, saga_lab
from labkit.labs.saga.skeleton import RULES, Crashed, Saga, SagaOrchestrator, WriteCounter
from labkit.saga.log import LogKind, LogRecord
from labkit.saga.orchestrator import Phase
from labkit.saga.services import Op, Outcome, Reply

__all__ = [
    "Crashed",
    "Fault",
    "LogKind",
    "LogRecord",
    "Op",
    "Outcome",
    "Phase",
    "RULES",
    "Reply",
    "Saga",
    "SagaLab",
    "SagaOrchestrator",
    "WriteCounter",
    "saga_lab",
]
