"""Alerting: Prometheus rule evaluation and an Alertmanager-shaped notification pipeline.

`rules` and `state` turn rule files into alerts (and recording-rule series); `alerts` holds
the alerts the hub knows (from its own rules and from any Prometheus posting to API v2);
`dispatch` routes them through the `routing` tree into aggregation groups, whose flushes run
the `stages` (inhibit, silence, time intervals, acknowledgement, dedup against `nlog`, retry)
before the `notifiers` send. `escalation` and `history` add what Alertmanager lacks.
`service.AlertingService` builds and runs it all; `api` is its HTTP face.
"""
