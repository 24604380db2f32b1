"""The built-in log detectors on generated, labelled streams of realistic logs.

Precision and recall are counted over the whole stream, then asserted (and printed with -s).
"""

from __future__ import annotations

import random

import orjson

from pantau.logs.detectors import DetectorsConfig, DetectorSet
from pantau.logs.detectors.injection import InjectionDetector
from pantau.model import LogRecord

S = 1_000_000_000
T0 = 1_750_000_020 * S  # on a minute boundary


def rec(t: int, body: str, service: str = "web", severity: int = 9, **attributes) -> LogRecord:
    text = {9: "INFO", 13: "WARN", 17: "ERROR"}.get(severity, "")
    return LogRecord(t, t, severity, text, body, service=service, attributes=dict(attributes))


def clf(ip: str, target: str, status: int = 200, method: str = "GET", user: str = "-") -> str:
    return f'{ip} - {user} [01/Dec/2026:10:00:00 +0000] "{method} {target} HTTP/1.1" {status} 512 "-" "Mozilla/5.0"'


# --- access logs: SQL injection and path traversal ---------------------------------------

BENIGN_TARGETS = [
    "/", "/products?id={n}", "/products/{n}/reviews?page=2", "/search?q=select+a+union+rep",
    "/search?q=credit+union+select+account", "/search?q=european+union+select+committee+report",
    "/search?q=how+to+select+the+best+union+for+workers", "/api/items?sort=select&order=desc",
    "/docs/union-select.html", "/blog/2024/05/drop-shipping-or-not", "/search?q=O%27Reilly+and+sons",
    "/search?q=rock+%27n%27+roll+or+jazz", "/search?q=1%3D1+math+proof", "/search?q=drop+table+tennis",
    "/static/app.{n}.js", "/files/report..final.pdf", "/api/v1.2/users/{n}", "/search?q=where+to+select+from+menu",
    "/wiki/Union_(set_theory)#Examples", "/search?q=sleep+apnea+benchmark", "/search?q=it%27s+1+or+2",
    "/account/orders?from=2024-01-01&to=2024-02-01", "/search?q=passwd+reset+help", "/img/x/logo.png",
]

SQLI = [
    "/products?id={n}%27%20UNION%20SELECT%20null,username,password%20FROM%20users--",
    "/products?id={n}%2527%2520OR%25201%253D1--",  # double encoded
    "/products?id={n}/**/UnIoN/**/SeLeCt/**/1,2,3",  # comments and case
    "/products?id={n}/*!50000UNION*/+/*!50000SELECT*/+1,@@version",
    "/login?user=admin%27--&pass=x", "/login?user=admin%27+or+%271%27%3D%271",
    "/products?id={n};DROP+TABLE+users", "/products?id={n}+AND+SLEEP(5)",
    "/search?q=%27%20AND%201=CONVERT(int,(SELECT%20@@version))--",
    "/products?id={n}+UNION+ALL+SELECT+table_name+FROM+information_schema.tables",
    "/products?id=-{n}%20union%20select%20load_file(%27/etc/passwd%27)",
    "/products?id={n}%27%20and%20extractvalue(1,concat(0x7e,version()))--%20",
    "/products?id=%u0027%u0020OR%u00201=1",
    "/item?id={n}%27)%20or%20(%27a%27=%27a",
]
TRAVERSAL = [
    "/download?file=../../../../etc/passwd", "/download?file=..%2f..%2f..%2fetc%2fshadow",
    "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%252f..%252f..%252fetc/passwd",
    "/a/%c0%af..%c0%af..%c0%afetc%c0%afpasswd", "/static/....//....//....//etc/passwd",
    "/download?file=..%5c..%5c..%5cwindows%5cwin.ini", "/view?page=../../../proc/self/environ",
    "/download?file=/etc/passwd%00.png", "/img?src=..\\..\\..\\boot.ini",
]


def access_stream(seed: int = 7) -> list[tuple[LogRecord, set[str]]]:
    """(record, labels): none, "sql_injection", "path_traversal" or both (a SQL injection that reads
    /etc/passwd is both); one record in five uses OpenTelemetry HTTP attributes instead of a
    Common Log Format body."""
    rng = random.Random(seed)
    out = []
    attackers = ["203.0.113.7", "203.0.113.99", "198.51.100.4"]
    t = T0
    for i in range(4000):
        t += rng.randint(1, 200) * 1_000_000
        label = ""
        r = rng.random()
        if r < 0.05:
            label, template = "sql_injection", rng.choice(SQLI)
        elif r < 0.08:
            label, template = "path_traversal", rng.choice(TRAVERSAL)
        else:
            template = rng.choice(BENIGN_TARGETS)
        target = template.format(n=rng.randint(1, 5000))
        ip = rng.choice(attackers) if label else f"10.0.{rng.randint(0, 20)}.{rng.randint(1, 254)}"
        status = rng.choice([200, 200, 404, 500]) if label else rng.choice([200, 200, 200, 304, 404])
        if i % 5 == 0:
            path, _, query = target.partition("?")
            record = rec(t, "request served", **{"url.path": path, "url.query": query, "client.address": ip,
                                                 "http.request.method": "GET", "http.response.status_code": status})
        elif i % 5 == 1:  # a JSON access log line (nginx escape=json style)
            record = rec(t, orjson.dumps({"remote_addr": ip, "request": f"GET {target} HTTP/1.1", "status": status,
                                          "body_bytes_sent": 512}).decode())
        elif i % 5 == 2 and i % 3 == 0:  # a JSON access log, structured (Caddy style)
            record = rec(t, orjson.dumps({"request": {"remote_ip": ip, "method": "GET", "uri": target},
                                          "status": status}).decode())
        else:
            record = rec(t, clf(ip, target, status))
        labels = {label} if label else set()
        if "/etc/passwd" in target:
            labels.add("path_traversal")
        out.append((record, labels))
    return out


BENIGN_APP_JSON = [
    {"msg": "user chose select all in the union dashboard", "path": "/reports/union?sort=select"},
    {"msg": "query planned", "sql": "SELECT id FROM users WHERE id = ? UNION SELECT id FROM admins", "path": "/srv"},
    {"event": "file read", "path": "/var/lib/app/../app/data.db"},  # a server-side path, not a request
]


def test_injection_precision_and_recall() -> None:
    stream = access_stream()
    for k, fields in enumerate(BENIGN_APP_JSON * 20):  # app logs in JSON: not requests with attacks
        stream.append((rec(T0 + k * S, orjson.dumps(fields).decode(), "app"), set()))
    inspector = InjectionDetector(DetectorsConfig().injection)
    counts = {k: {"tp": 0, "fp": 0, "fn": 0} for k in ("sql_injection", "path_traversal")}
    for record, labels in stream:
        found = {attack for attack, _ in inspector.inspect(record)}
        for kind, c in counts.items():
            if kind in found and kind in labels:
                c["tp"] += 1
            elif kind in found:
                c["fp"] += 1
            elif kind in labels:
                c["fn"] += 1
    for kind, c in counts.items():
        precision = c["tp"] / max(1, c["tp"] + c["fp"])
        recall = c["tp"] / max(1, c["tp"] + c["fn"])
        print(f"{kind}: precision {precision:.3f} recall {recall:.3f} {c}")
        assert c["tp"] > 50
        assert precision == 1.0, (kind, c)
        assert recall == 1.0, (kind, c)


def test_injection_events_carry_evidence() -> None:
    stream = access_stream()
    detectors = DetectorSet()
    events = []
    for record, _ in stream:
        events += detectors.observe(record)
    events += detectors.tick(stream[-1][0].time_ns + 3600 * S)
    final = {e.id: e for e in events if e.labels.get("detector") in ("sql_injection", "path_traversal")}
    assert final and all(e.end_ns is not None for e in final.values())
    assert {e.labels["source_ip"] for e in final.values()} == {"203.0.113.7", "203.0.113.99", "198.51.100.4"}
    labelled = sum(len(labels) for _, labels in stream)
    assert sum(e.data["requests"] for e in final.values()) == labelled
    for e in final.values():
        assert e.kind == "security" and e.data["samples"] and e.data["techniques"]
        assert e.data["window_seconds"] == 300
        assert "normalised" in e.data["samples"][0]
    assert any(e.severity == "critical" for e in final.values())  # some attacks were answered 200


# --- auth logs: brute force -------------------------------------------------------------


def auth_stream(seed: int = 11) -> tuple[list[LogRecord], set[tuple[str, str]]]:
    rng = random.Random(seed)
    events: list[tuple[int, str, dict]] = []

    def ssh(t: int, ok: bool, user: str, ip: str, invalid: bool = False) -> None:
        port = rng.randint(30000, 60000)
        if ok:
            events.append((t, f"Accepted password for {user} from {ip} port {port} ssh2", {}))
        else:
            who = f"invalid user {user}" if invalid else user
            events.append((t, f"Failed password for {who} from {ip} port {port} ssh2", {}))

    users = [f"user{i:03d}" for i in range(120)]
    for user in users:  # a day of normal logins, a fifth of them mistyping once or twice
        ip = f"10.1.{rng.randint(0, 9)}.{rng.randint(1, 254)}"
        t = T0 + rng.randint(0, 86_000) * S
        for k in range(rng.choice([0, 0, 0, 0, 1, 2])):
            ssh(t + k * 20 * S, False, user, ip)
        ssh(t + 60 * S, True, user, ip)
    nat = "192.0.2.10"  # an office behind one address: 8 people, each mistyping once, within minutes
    for k, user in enumerate(users[:8]):
        ssh(T0 + 3600 * S + k * 25 * S, False, user, nat)
        ssh(T0 + 3600 * S + k * 25 * S + 5 * S, True, user, nat)
    for k in range(6):  # web logins over HTTP: a few 401s on /login are normal
        ip = f"10.2.0.{k + 1}"
        t = T0 + 7200 * S + k * 90 * S
        events.append((t, clf(ip, "/login", 401, "POST"), {}))
        events.append((t + 10 * S, clf(ip, "/login", 302, "POST"), {}))

    truth: set[tuple[str, str]] = set()
    attacker = "203.0.113.7"  # 40 tries over 3 minutes against four account names
    truth.add(("source_ip", attacker))
    for k in range(40):
        user = ["root", "admin", "test", "oracle"][k % 4]
        ssh(T0 + 10_000 * S + k * 4 * S, False, user, attacker, invalid=user in ("test", "oracle"))
        truth.add(("actor", user))
    for k in range(30):  # password spraying: 30 addresses, one try each, one account
        ssh(T0 + 20_000 * S + k * 6 * S, False, "backup", f"198.18.{k}.{k + 1}")
    truth.add(("actor", "backup"))
    winner = "198.51.100.23"  # 12 failures, then in
    for k in range(12):
        ssh(T0 + 30_000 * S + k * 10 * S, False, "deploy", winner)
    ssh(T0 + 30_000 * S + 130 * S, True, "deploy", winner)
    truth |= {("source_ip", winner), ("actor", "deploy")}
    web = "203.0.113.50"  # credential stuffing over HTTP: JSON logs with semantic-convention attributes
    for k in range(25):
        events.append((T0 + 40_000 * S + k * 3 * S, "login failed",
                       {"event.action": "user.login", "event.outcome": "failure", "user.name": f"shopper{k}",
                        "client.address": web}))
    truth.add(("source_ip", web))
    events.sort(key=lambda e: e[0])
    records = [rec(t, body, service="sshd" if "ssh2" in body else "shop", **attrs) for t, body, attrs in events]
    return records, truth


def test_brute_force_precision_and_recall() -> None:
    records, truth = auth_stream()
    detectors = DetectorSet()
    events = []
    for record in records:
        events += detectors.observe(record)
        events += detectors.tick(record.time_ns)
    events += detectors.tick(records[-1].time_ns + 3600 * S)
    brute = [e for e in events if e.labels.get("detector") == "brute_force"]
    detected = {(k, e.labels[k]) for e in brute for k in ("actor", "source_ip") if k in e.labels}
    tp = len(detected & truth)
    precision, recall = tp / max(1, len(detected)), tp / len(truth)
    print(f"brute force: precision {precision:.3f} recall {recall:.3f} detected {sorted(detected)}")
    assert precision == 1.0 and recall == 1.0, (sorted(detected - truth), sorted(truth - detected))
    by_key = {}
    for e in brute:
        by_key.setdefault(e.id, []).append(e)
    deploy = [e for e in brute if e.labels.get("actor") == "deploy"]
    assert any(e.severity == "critical" and e.data["succeeded"] for e in deploy)
    first = next(e for e in brute if e.labels.get("source_ip") == "203.0.113.7")
    assert first.data["failed_logins"] == 10 and len(first.data["samples"]) == 5
    assert first.data["window_seconds"] == 300 and first.data["services"] == ["sshd"]
    assert all(any(e.end_ns is not None for e in updates) for updates in by_key.values())


# --- errors, privilege changes, silence -------------------------------------------------


def test_error_burst_against_the_services_own_baseline() -> None:
    detectors = DetectorSet()
    events = []
    for minute in range(30):  # "pay": 2 errors a minute; "chatty": 30 a minute
        base = T0 + minute * 60 * S
        for k in range(2):
            events += detectors.observe(rec(base + k * 20 * S, "card declined", "pay", 17))
        for k in range(30):
            events += detectors.observe(rec(base + k * 2 * S, f"retrying job {k}", "chatty", 17))
    assert events == []
    burst_at = T0 + 30 * 60 * S
    for k in range(100):  # pay: 100 errors in 50 s
        events += detectors.observe(rec(burst_at + k * S // 2, f"connection to db-{k % 3} refused", "pay", 17))
    for k in range(40):  # chatty: 40, usual for it
        events += detectors.observe(rec(burst_at + k * S, f"retrying job {k}", "chatty", 17))
    events += detectors.tick(burst_at + 10 * 60 * S)
    bursts = [e for e in events if e.labels.get("detector") == "error_burst"]
    assert {e.labels["service"] for e in bursts} == {"pay"}
    opened, closed = bursts[0], bursts[-1]
    assert opened.id == closed.id and opened.end_ns is None and closed.end_ns is not None
    assert closed.data["count"] == 101 and closed.data["threshold"] == 20  # + one earlier error in the window
    assert closed.data["top_messages"][0][0].startswith("connection to db-")
    assert len(closed.data["samples"]) == 5


def test_privilege_changes() -> None:
    detectors = DetectorSet()
    cases = [
        (rec(T0, "role granted", "iam", **{"log.type": "audit", "audit.action": "role.grant", "audit.actor": "alice",
                                           "audit.target": "mallory", "audit.role": "admin"}), "critical"),
        (rec(T0 + S, "usermod -aG sudo bob", "host"), "critical"),
        (rec(T0 + 2 * S, "pam: added user carol to group developers", "host"), "warning"),
        (rec(T0 + 3 * S, "GRANT ALL PRIVILEGES ON shop.* TO 'app'@'%'", "mysql"), "critical"),
        (rec(T0 + 4 * S, "permission revoked", "iam", **{"log.type": "audit", "audit.action": "role.revoke"}), None),
        (rec(T0 + 5 * S, "user bob viewed the group list", "web"), None),
        (rec(T0 + 6 * S, "select the role you want in the settings page", "web"), None),
    ]
    for record, severity in cases:
        found = [e for e in detectors.observe(record) if e.labels.get("detector") == "privilege_change"]
        assert [e.severity for e in found] == ([severity] if severity else []), record.body
        for e in found:
            assert e.kind == "security" and e.data["samples"][0]["body"] == record.body
    [audit] = [e for e in DetectorSet().observe(cases[0][0]) if e.labels.get("detector") == "privilege_change"]
    assert audit.labels["actor"] == "alice" and audit.labels["target"] == "mallory" and audit.data["role"] == "admin"


def test_silence_when_a_steady_service_stops_logging() -> None:
    detectors = DetectorSet()
    for minute in range(20):
        for k in range(10):
            detectors.observe(rec(T0 + minute * 60 * S + k * 6 * S, "tick", "worker"))
    detectors.observe(rec(T0, "hourly report", "cron"))  # rare logger: never "silent"
    last = T0 + 19 * 60 * S + 54 * S
    assert detectors.tick(last + 60 * S) == []
    [silent] = detectors.tick(last + 301 * S)
    assert silent.labels == {"service": "worker", "detector": "log_silence"} and silent.end_ns is None
    assert silent.data["usual_lines_per_minute"] == 10.0
    assert detectors.tick(last + 600 * S) == []  # raised once
    [resumed] = detectors.observe(rec(last + 700 * S, "tick", "worker"))
    assert resumed.id == silent.id and resumed.end_ns == last + 700 * S


def test_detectors_can_be_disabled() -> None:
    config = DetectorsConfig.model_validate({"injection": {"enabled": False}, "brute_force": {"threshold": 3}})
    detectors = DetectorSet(config)
    assert detectors.observe(rec(T0, clf("1.2.3.4", "/p?id=1%27+or+%271%27%3D%271"))) == []
    events = []
    for k in range(3):
        events += detectors.observe(rec(T0 + k * S, f"Failed password for root from 1.2.3.4 port {k} ssh2"))
    assert {e.labels.get("actor") or e.labels.get("source_ip") for e in events} == {"root", "1.2.3.4"}


# --- real logs ---------------------------------------------------------------------------


def test_brute_force_on_real_sshd_and_klogind_logs() -> None:
    """loghub's Linux sample holds real attacks (2005, not anonymised). The expected set is
    computed here independently: per source IP, the times of lines naming it after
    "authentication failure ... rhost=" or "Authentication failed from"; an IP is attacked if
    10 of them fall within 5 minutes."""
    import datetime
    import re

    from .datasets import dataset

    path = dataset("loghub2k") / "Linux" / "Linux_2k.log"
    header = re.compile(r"^(\w{3})\s+(\d+) (\d\d:\d\d:\d\d) \S+ ([^:\[(]+)\S*: (.*)$")
    failure_ip = re.compile(r"authentication failure;.* rhost=(\S+)|Authentication failed from (\S+)")
    detectors = DetectorSet()
    events = []
    times: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = header.match(line)
        if not m:
            continue
        when = datetime.datetime.strptime(f"2005 {m[1]} {m[2]} {m[3]}", "%Y %b %d %H:%M:%S")
        t = int(when.replace(tzinfo=datetime.UTC).timestamp()) * S
        events += detectors.observe(rec(t, m[5], service=m[4]))
        events += detectors.tick(t)
        f = failure_ip.search(m[5])
        if f:
            times.setdefault(f[1] or f[2], []).append(t)
    expected = {ip for ip, ts in times.items()
                if any(sum(1 for u in ts if s <= u < s + 300 * S) >= 10 for s in ts)}
    detected = {e.labels["source_ip"] for e in events
                if e.labels.get("detector") == "brute_force" and "source_ip" in e.labels}
    print(f"real Linux logs: attacking IPs expected {len(expected)}, detected {len(detected)}")
    assert len(expected) >= 8
    assert detected == expected, (sorted(expected - detected), sorted(detected - expected))


# --- the batch path (what the hub runs) ---------------------------------------------------


def _batch(records: list[LogRecord]):
    """The records as the hub receives them: one OTLP request, decoded into a LogBatch."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from pantau.otlp.decode import Limits, OtlpDecoder
    from pantau.otlp.values import to_key_values

    from .otlp_factory import kv

    request = ExportLogsServiceRequest()
    for r in records:  # one resource per record keeps the order
        rl = request.resource_logs.add()
        rl.resource.attributes.append(kv("service.name", r.service))
        pb = rl.scope_logs.add().log_records.add(time_unix_nano=r.time_ns, observed_time_unix_nano=r.time_ns,
                                                 severity_number=r.severity_number, severity_text=r.severity_text)
        pb.body.string_value = r.body
        to_key_values(r.attributes, pb.attributes)
    decoder = OtlpDecoder(Limits(max_age_ns=10**20, max_future_ns=10**20))
    return decoder.logs(request.SerializeToString()).batch


def test_batch_path_gives_the_same_events() -> None:
    """`observe_batch` builds only the records the prefilter flags; it must lose nothing."""
    from pantau.otlp.convert import log_from_payload, resource_from_bytes, scope_from_bytes

    records, _ = auth_stream()
    records = sorted(records + [r for r, _ in access_stream()], key=lambda r: r.time_ns)
    for k in range(2000):  # plain lines, and errors (a burst after a calm start)
        records.append(rec(T0 + k * 3 * S, f"cache refreshed in {k % 50} ms for tenant t{k % 7}", "pay"))
    for k in range(40):
        records.append(rec(T0 + 3600 * S + k * S, f"db timeout after {k} tries", "pay", 17))
    records.sort(key=lambda r: r.time_ns)

    def decode(batch, i):
        record = log_from_payload(batch.payload[i], batch.body[i], batch.service[i],
                                  resource_from_bytes(batch.resources[batch.resource_ref[i]]),
                                  scope_from_bytes(batch.scopes[batch.scope_ref[i]]))
        record.time_ns = batch.time_ns[i]
        return record

    one_by_one, batched = DetectorSet(prefilter=False), DetectorSet()
    assert batched._prefilter is not None, "hyperscan is a dependency on this platform"
    expected, got, built = [], [], []
    for start in range(0, len(records), 512):
        batch = _batch(records[start:start + 512])
        for i in range(len(batch)):
            expected += one_by_one.observe(decode(batch, i))
        got += batched.observe_batch(batch, lambda i, b=batch: built.append(i) or decode(b, i))
    expected += one_by_one.tick(records[-1].time_ns + 3600 * S)
    got += batched.tick(records[-1].time_ns + 3600 * S)
    assert len(built) <= len(records) - 2000  # the plain lines were only counted
    assert len(expected) > 20
    key = [(e.id, e.end_ns, e.severity, e.title, e.data) for e in expected]
    assert [(e.id, e.end_ns, e.severity, e.title, e.data) for e in got] == key
