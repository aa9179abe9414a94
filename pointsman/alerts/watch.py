"""The built-in rules by which the servers watch themselves: `Watchdog` and `replica_down`.

Both are ordinary file rules, built from the settings, so they go through the evaluator's
state machine, history, cooldown and channels like any other. `Watchdog` holds for ever:
it fires once, then repeats every `watchdog_every_s`; a receiver that stops hearing it knows
alerting is down (every server gone, or the store), which no alert from inside can say.
`replica_down` is measured for each replica heard from; any replica still alive may hold
the evaluator's lease, so a dead replica is reported by the others.
"""

from __future__ import annotations

from pointsman.settings import AlertRuleConfig, Settings

WATCHDOG = "Watchdog"
REPLICA_DOWN = "replica_down"


def rule_configs(settings: Settings) -> list[AlertRuleConfig]:
    """The settings file's `[[alerts]]`, then the built-in rules the settings turn on."""
    out = list(settings.alerts)
    taken = {c.name for c in out}
    if settings.watchdog_notify and WATCHDOG not in taken:
        out.append(
            AlertRuleConfig(
                name=WATCHDOG,
                when="watchdog == 1",
                window="1m",
                severity="info",
                notify=settings.watchdog_notify,
                cooldown=f"{settings.watchdog_every_s:g}s",
                description="Always firing while pointsman's alerting works: if these "
                "notices stop, the servers or their store are down.",
            )
        )
    if settings.replica_down_notify and REPLICA_DOWN not in taken:
        out.append(
            AlertRuleConfig(
                name=REPLICA_DOWN,
                when=f"replica_silent_s > {settings.replica_down_after_s:g}",
                window="1m",
                severity="critical",
                notify=settings.replica_down_notify,
                cooldown="1h",
                description="A server replica stopped sending heartbeats without a clean "
                "stop: killed, frozen, or cut off from the store.",
            )
        )
    return out
