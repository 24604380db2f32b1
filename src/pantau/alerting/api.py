"""HTTP: Prometheus's `/api/v1/rules` and `/api/v1/alerts`, Alertmanager's API v2 (so a
real Prometheus can send to pantau and amtool habits carry over), and pantau's own
acknowledge / unacknowledge / resolve, signed links and history."""

from __future__ import annotations

import html
import logging
import math
import re
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from pantau import __version__
from pantau.alerting import matchers as mm
from pantau.alerting.alert import Alert, parse_rfc3339, rfc3339
from pantau.alerting.service import AlertingService
from pantau.alerting.silences import parse_postable

log = logging.getLogger("pantau.alerting.api")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _bad(reason: str, status: int = 400) -> Response:
    # Alertmanager answers validation errors with a JSON string body
    return _json(reason, status)


def _prom_ok(data: Any) -> Response:
    return _json({"status": "success", "data": data})


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if v != int(v) else str(int(v)) if abs(v) < 1e15 else repr(float(v))


def parse_postable_alerts(body: Any, now: float) -> list[Alert]:
    """API v2 postableAlerts; ValueError with the reason for anything malformed."""
    if not isinstance(body, list):
        raise ValueError("body must be a JSON array of alerts")
    out = []
    for i, item in enumerate(body):
        if not isinstance(item, dict):
            raise ValueError(f"alert {i}: must be a JSON object")
        labels = item.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise ValueError(f"alert {i}: labels in body is required and must not be empty")
        for k, v in labels.items():
            if not _LABEL_NAME.match(str(k)):
                raise ValueError(f"alert {i}: invalid label name {k!r}")
            if not isinstance(v, str):
                raise ValueError(f"alert {i}: label {k!r} must be a string")
        ann = item.get("annotations") or {}
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            raise ValueError(f"alert {i}: annotations must be an object of strings")
        try:
            starts = parse_rfc3339(item["startsAt"]) if item.get("startsAt") else 0.0
            ends = parse_rfc3339(item["endsAt"]) if item.get("endsAt") else 0.0
        except (ValueError, TypeError) as exc:
            raise ValueError(f"alert {i}: {exc}") from None
        if starts and ends and ends < starts:
            raise ValueError(f"alert {i}: start time must be before end time")
        gen = item.get("generatorURL") or ""
        if not isinstance(gen, str):
            raise ValueError(f"alert {i}: generatorURL must be a string")
        labels = {k: v for k, v in labels.items() if v != ""}
        if not labels:
            raise ValueError(f"alert {i}: at least one label pair required")
        out.append(Alert(labels, ann, starts, ends, gen))
    return out


def create_router(svc: AlertingService) -> APIRouter:
    router = APIRouter()

    # --- Prometheus ----------------------------------------------------------------------------

    def alert_json(a) -> dict:
        return {"labels": a.labels, "annotations": a.annotations, "state": a.state,
                "activeAt": rfc3339(a.active_at), "value": _num(a.value),
                **({"keepFiringSince": rfc3339(a.keep_firing_since)} if a.keep_firing_since else {})}

    @router.get("/api/v1/rules", tags=["prometheus"], summary="Rule groups and their state (Prometheus)")
    def rules(type: str | None = None) -> Response:
        groups = []
        for gs in svc.rules.snapshot():
            rules_out = []
            for rs in gs.rules:
                r = rs.rule
                if (type == "alert" and r.kind != "alert") or (type == "record" and r.kind != "record"):
                    continue
                common = {"name": r.name, "query": r.query, "labels": r.labels, "health": rs.health,
                          "lastError": rs.last_error, "evaluationTime": rs.evaluation_time,
                          "lastEvaluation": rfc3339(rs.last_evaluation)}
                if r.query_kind != "promql":
                    common["pantauKind"] = r.query_kind
                if r.kind == "alert":
                    active = [a for a in rs.active.values() if a.state != "inactive"]
                    state = "firing" if any(a.state == "firing" for a in active) else (
                        "pending" if active else "inactive")
                    rules_out.append({"state": state, **common, "duration": r.for_,
                                      "keepFiringFor": r.keep_firing_for, "annotations": r.annotations,
                                      "alerts": [alert_json(a) for a in active], "type": "alerting"})
                else:
                    rules_out.append({**common, "type": "recording"})
            groups.append({"name": gs.group.name, "file": gs.group.file, "rules": rules_out,
                           "interval": gs.group.interval, "limit": gs.group.limit,
                           "evaluationTime": gs.evaluation_time, "lastEvaluation": rfc3339(gs.last_evaluation)})
        return _prom_ok({"groups": groups})

    @router.get("/api/v1/alerts", tags=["prometheus"], summary="Active alerts of pantau's rules (Prometheus)")
    def prom_alerts() -> Response:
        out = []
        for gs in svc.rules.snapshot():
            for rs in gs.rules:
                out += [alert_json(a) for a in rs.active.values() if a.state != "inactive"]
        return _prom_ok({"alerts": out})

    # --- Alertmanager API v2 -------------------------------------------------------------------

    def gettable(a: Alert, now: float) -> dict:
        d = svc.pipeline.dispatcher if svc.pipeline else None
        silenced, inhibited = d.status(a, now) if d else ([], [])
        receivers = sorted({r.receiver for r in svc.pipeline.route.match(a.labels)}) if svc.pipeline else []
        ack = svc.acks.get(a)
        state = "suppressed" if (silenced or inhibited) else "active"
        out = {"labels": a.labels, "annotations": a.annotations, "startsAt": rfc3339(a.starts_at),
               "endsAt": rfc3339(a.ends_at), "updatedAt": rfc3339(a.updated_at), "generatorURL": a.generator_url,
               "fingerprint": a.fingerprint, "receivers": [{"name": r} for r in receivers],
               "status": {"state": state, "silencedBy": silenced, "inhibitedBy": inhibited}}
        out["pantau"] = {"acknowledged": ack, "flapping": svc.flaps.flapping(a.fingerprint, now),
                         "escalation": svc.escalator.state_of(a)}
        return out

    def _flag(request: Request, name: str) -> bool:
        v = request.query_params.get(name)
        return True if v is None else v.lower() not in ("false", "0")

    def _filtered(request: Request) -> list[Alert] | Response:
        try:
            filters = [m for f in request.query_params.getlist("filter") for m in mm.parse_matchers(f)]
        except ValueError as exc:
            return _bad(str(exc))
        receiver = request.query_params.get("receiver")
        try:
            rx = re.compile(receiver) if receiver else None
        except re.error as exc:
            return _bad(f"failed to parse receiver param: {exc}")
        now = svc.clock.now()
        active, silenced, inhibited = _flag(request, "active"), _flag(request, "silenced"), _flag(request, "inhibited")
        out = []
        d = svc.pipeline.dispatcher if svc.pipeline else None
        for a in svc.alerts.all():
            if a.resolved_at(now) or not mm.matches(filters, a.labels):
                continue
            if rx is not None and svc.pipeline and not any(
                    rx.fullmatch(r.receiver) for r in svc.pipeline.route.match(a.labels)):
                continue
            s, i = d.status(a, now) if d else ([], [])
            if (s and not silenced) or (i and not inhibited) or (not s and not i and not active):
                continue
            out.append(a)
        return sorted(out, key=lambda a: a.fingerprint)

    @router.post("/api/v2/alerts", tags=["alertmanager"], summary="Receive alerts (Alertmanager API v2)")
    async def post_alerts(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _bad(f"parsing alerts body: {exc}")
        try:
            alerts = parse_postable_alerts(body, svc.clock.now())
        except ValueError as exc:
            log.warning("rejected alerts from %s: %s", request.client.host if request.client else "?", exc)
            return _bad(str(exc))

        def store() -> None:
            svc.alerts.put(alerts)
            svc.alerts.persist()  # answered only once durable

        await run_in_threadpool(store)
        return _json(None)

    @router.get("/api/v2/alerts", tags=["alertmanager"], summary="List alerts (Alertmanager API v2)")
    def get_alerts(request: Request) -> Response:
        found = _filtered(request)
        if isinstance(found, Response):
            return found
        now = svc.clock.now()
        return _json([gettable(a, now) for a in found])

    @router.get("/api/v2/alerts/groups", tags=["alertmanager"], summary="Alert groups (Alertmanager API v2)")
    def get_groups(request: Request) -> Response:
        found = _filtered(request)
        if isinstance(found, Response):
            return found
        wanted = {a.fingerprint for a in found}
        now = svc.clock.now()
        out = []
        if svc.pipeline:
            for ag in list(svc.pipeline.dispatcher.groups.values()):
                alerts = [gettable(a, now) for fp, a in sorted(ag.alerts.items()) if fp in wanted]
                if alerts:
                    out.append({"labels": ag.labels, "receiver": {"name": ag.route.receiver}, "alerts": alerts})
        return _json(sorted(out, key=lambda g: (g["receiver"]["name"], sorted(g["labels"].items()))))

    @router.get("/api/v2/silences", tags=["alertmanager"], summary="List silences")
    def get_silences(request: Request) -> Response:
        try:
            filters = [m for f in request.query_params.getlist("filter") for m in mm.parse_matchers(f)]
        except ValueError as exc:
            return _bad(str(exc))
        now = svc.clock.now()
        out = []
        for s in svc.silences.all():
            labels = {m.name: m.value for m in s.matchers if not m.is_regex and m.is_equal}
            if filters and not mm.matches(filters, labels):
                continue
            out.append(s.to_api(now))
        order = {"active": 0, "pending": 1, "expired": 2}
        out.sort(key=lambda s: (order[s["status"]["state"]], s["endsAt"]))
        return _json(out)

    @router.post("/api/v2/silences", tags=["alertmanager"], summary="Create or update a silence")
    async def post_silence(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _bad(f"parsing silence body: {exc}")
        try:
            silence = parse_postable(body, svc.clock.now())
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        try:
            sid = await run_in_threadpool(svc.silences.put, silence)
        except KeyError:
            return _json("silence not found", 404)
        svc.pipeline and svc.pipeline.dispatcher.mark_inhibit_dirty()
        return _json({"silenceID": sid})

    @router.get("/api/v2/silence/{sid}", tags=["alertmanager"], summary="One silence")
    def get_silence(sid: str) -> Response:
        s = svc.silences.get(sid)
        if s is None:
            return _json("silence not found", 404)
        return _json(s.to_api(svc.clock.now()))

    @router.delete("/api/v2/silence/{sid}", tags=["alertmanager"], summary="Expire a silence")
    async def delete_silence(sid: str) -> Response:
        try:
            await run_in_threadpool(svc.silences.expire, sid)
        except KeyError:
            return _json("silence not found", 404)
        except ValueError as exc:
            return _bad(str(exc), 500)
        return _json(None)

    @router.get("/api/v2/status", tags=["alertmanager"], summary="Configuration and version")
    def status() -> Response:
        original = svc.pipeline.config.original if svc.pipeline else ""
        return _json({"cluster": {"name": "pantau", "status": "disabled", "peers": []},
                      "versionInfo": {"version": __version__, "branch": "", "buildDate": "", "buildUser": "",
                                      "goVersion": "", "revision": ""},
                      "config": {"original": original}, "uptime": rfc3339(svc.started_at)})

    @router.get("/api/v2/receivers", tags=["alertmanager"], summary="Receivers")
    def receivers() -> Response:
        names = sorted(svc.pipeline.receivers) if svc.pipeline else []
        return _json([{"name": n} for n in names])

    @router.get("/-/healthy", tags=["alertmanager"], include_in_schema=False)
    def healthy() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @router.get("/-/ready", tags=["alertmanager"], include_in_schema=False)
    def ready() -> PlainTextResponse:
        if svc.pipeline is None:
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("OK")

    # --- pantau: acknowledge, resolve, signed links, history -------------------------------------

    async def _who(request: Request) -> tuple[str, str]:
        raw = await request.body()
        if not raw:
            return "api", ""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return str(body.get("by") or "api"), str(body.get("comment") or "")

    @router.post("/api/pantau/alerts/{fp}/ack", tags=["pantau alerting"], summary="Acknowledge an alert")
    async def ack(fp: str, request: Request) -> Response:
        try:
            by, comment = await _who(request)
        except ValueError as exc:
            return _bad(str(exc))
        rec = await run_in_threadpool(svc.ack, fp, by, comment)
        if rec is None:
            return _json({"error": "alert not found"}, 404)
        return _json({"fingerprint": fp, "acknowledged": rec})

    @router.post("/api/pantau/alerts/{fp}/unack", tags=["pantau alerting"], summary="Remove an acknowledgement")
    async def unack(fp: str, request: Request) -> Response:
        try:
            by, _ = await _who(request)
        except ValueError as exc:
            return _bad(str(exc))
        done = await run_in_threadpool(svc.unack, fp, by)
        if done is None:
            return _json({"error": "alert not found"}, 404)
        return _json({"fingerprint": fp, "unacknowledged": done})

    @router.post("/api/pantau/alerts/{fp}/resolve", tags=["pantau alerting"], summary="Resolve an alert now")
    async def resolve(fp: str, request: Request) -> Response:
        try:
            by, _ = await _who(request)
        except ValueError as exc:
            return _bad(str(exc))
        a = await run_in_threadpool(svc.resolve, fp, by)
        if a is None:
            return _json({"error": "alert not found"}, 404)
        return _json({"fingerprint": fp, "endsAt": rfc3339(a.ends_at)})

    @router.get("/api/pantau/alerts/{fp}/{action}", tags=["pantau alerting"],
                summary="Signed link from a notification: acknowledge or resolve")
    async def signed(fp: str, action: str, expires: int = 0, sig: str = "", by: str = "link") -> Response:
        if action not in ("ack", "resolve"):
            return HTMLResponse("<p>Unknown action.</p>", status_code=404)
        if not svc.verify(action, fp, expires, sig):
            return HTMLResponse("<p>This link is invalid or has expired.</p>", status_code=403)
        if action == "ack":
            done = await run_in_threadpool(svc.ack, fp, by, "via signed link")
        else:
            done = await run_in_threadpool(svc.resolve, fp, by)
        if done is None:
            return HTMLResponse("<p>Alert not found.</p>", status_code=404)
        a = svc.alerts.get(fp)
        name = html.escape(a.name if a else fp)
        verb = "acknowledged" if action == "ack" else "resolved"
        return HTMLResponse(f"<!DOCTYPE html><title>pantau</title><p>Alert <b>{name}</b> {verb}.</p>")

    def _events(kind: str, request: Request) -> Response:
        q = request.query_params
        try:
            start = int(parse_rfc3339(q["start"]) * 1e9) if "start" in q else None
            end = int(parse_rfc3339(q["end"]) * 1e9) if "end" in q else None
            limit = int(q.get("limit", 100))
        except ValueError as exc:
            return _bad(str(exc))
        labels = {k: v for k, v in q.items() if k not in ("start", "end", "limit")}
        events = svc.history.query(kind, start, end, labels, limit)
        return _json([{"id": e.id, "start": rfc3339(e.start_ns / 1e9),
                       "end": rfc3339(e.end_ns / 1e9) if e.end_ns else None,
                       "title": e.title, "severity": e.severity, "labels": e.labels, **e.data} for e in events])

    @router.get("/api/pantau/alerts/history", tags=["pantau alerting"],
                summary="Alert occurrences (filter by any label, start, end, limit)")
    def alert_history(request: Request) -> Response:
        return _events("alert", request)

    @router.get("/api/pantau/notifications", tags=["pantau alerting"],
                summary="Notification attempts: receiver, integration, status, result (filterable)")
    def notifications(request: Request) -> Response:
        return _events("notification", request)

    @router.get("/api/pantau/alerting/status", tags=["pantau alerting"], summary="Loaded files and their errors")
    def alerting_status() -> Response:
        d = svc.pipeline.dispatcher if svc.pipeline else None
        return _json({"rule_files": sorted(svc._mtimes), "rule_errors": svc.rule_errors,
                      "alertmanager_config": svc.am_path, "alertmanager_error": svc.am_error,
                      "groups": len(d.groups) if d else 0,
                      "notifications_sent": d.notifications_sent if d else 0,
                      "notifications_failed": d.notifications_failed if d else 0,
                      "rule_evaluations": svc.rules.evaluations,
                      "rule_evaluation_seconds": svc.rules.eval_seconds})

    return router
