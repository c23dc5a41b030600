"""The soak: fans, VTubers, an admin and "the payment provider" doing random valid and invalid
operations against a private Koepon (its own database, local API and payment service on
ephemeral ports) for a bounded time; then every invariant is checked in SQL.

    SoakStack   the world: a throwaway seeded database (or a given one), `python -m koepon.localstack.api`,
                `python -m webhooks` (killable, restartable on the same ports), the fake
                Stripe/KOMOJU APIs in this process, and a relay that turns the fakes' webhook
                deliveries into the provider's outbox (so they are retried like Stripe does)
    Outbox      the provider's deliveries: signed at send time, due at a given time, retried on
                503 / connection errors until they are answered (duplicates and reordering are
                scheduled on purpose)
    Recorder    every operation by kind and outcome; a 5xx or an undocumented error code, or an
                invalid call that was accepted, is a failure
    Soak        the actors (threads) and the run: `Soak(stack, fans=8).run(seconds=30)`

A result carries the operation counts, the faults injected, the invariant violations
(`koepon.tools.invariants`) and the failures; `print_report` renders it as tables.
"""

from .recorder import Result, documented_codes
from .report import print_report, run_soak
from .run import Soak
from .stack import SoakStack

__all__ = ["Result", "Soak", "SoakStack", "documented_codes", "print_report", "run_soak"]
