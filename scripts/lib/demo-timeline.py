#!/usr/bin/env python3
"""The timeline of scripts/demo, observed live from where an operator would look.

Polls the daemon's API, Alertmanager, Prometheus, helm's history and the SMTP server's
Maildir once a second and prints each milestone the first time it is seen, with the
seconds since the upgrade. Nothing here is scripted: a milestone that does not happen is
reported missing and the exit status is 1.

Usage: demo-timeline.py   (env: UG_URL ALERTMANAGER_URL PROM SMTP_MAILDIR NS UPGRADED_EPOCH)
"""
import email
import email.policy
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

UG, AM, PROM = os.environ["UG_URL"], os.environ["ALERTMANAGER_URL"], os.environ["PROM"]
MAILDIR, NS = os.environ["SMTP_MAILDIR"], os.environ["NS"]
START = float(os.environ["UPGRADED_EPOCH"])
DEADLINE = START + 300


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.load(r)
    except Exception:
        return None


def gim():
    for r in (get(f"{UG}/api/v1/releases") or {}).get("releases", []):
        if r["release"]["name"] == "gim":
            return r
    return None


def alerts(name):
    query = urllib.parse.quote(f'alertname="{name}"')
    return [a for a in get(f"{AM}/api/v2/alerts?filter={query}") or []
            if a["labels"].get("release") == "gim"]


def prom(expr):
    data = get(f"{PROM}/api/v1/query?query={urllib.parse.quote(expr)}") or {}
    return data.get("data", {}).get("result", [])


def history():
    out = subprocess.run(["helm", "history", "gim", "-n", NS, "-o", "json"],
                         capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else []


def mails():
    root = os.path.join(MAILDIR, "new")
    found = []
    for f in sorted(os.listdir(root)):
        path = os.path.join(root, f)
        if os.path.getmtime(path) < START:
            continue
        with open(path, "rb") as fh:
            msg = email.message_from_binary_file(fh, policy=email.policy.default)
        if msg["Subject"].startswith(f"[upgrade-guard] {NS}/gim"):
            found.append(msg)
    return found


def first_line_with(msg, words):
    text = msg.get_body(preferencelist=("plain",)).get_content()
    return next((l.strip() for l in text.splitlines() if words in l), "")


def milestones():
    """(key, check) pairs: check returns the lines to print once it holds, else None."""
    def failed():
        r = gim()
        j = r and r.get("judgement")
        if not (j and r["revision"] == 2 and j["verdict"] == "failed"):
            return None
        lines = [f"/api/v1/releases: revision 2 is FAILED"]
        for c in j["results"]:
            if c["outcome"] != "pass":
                lines.append(f"          {c['check']:<22} {c['outcome']:<8} {c['summary'][:80]}")
        if j["action"].get("command"):
            lines.append(f"          recommended: {j['action']['command']}")
        return lines

    def alert_failed():
        a = alerts("UpgradeFailed")
        if not a:
            return None
        ann = a[0]["annotations"]
        return [f"Alertmanager: UpgradeFailed firing (check={a[0]['labels']['check']}, revision 2)",
                f"          automatic_action: {ann.get('automatic_action', '')[:110]}"]

    def rolling_back():
        rows = [h for h in history() if h["description"].startswith("Rollback to")]
        if not rows:
            return None
        h = rows[0]
        return [f"helm history: revision {h['revision']} {h['status']}: \"{h['description']}\""
                " (run by upgrade-guard: helm rollback gim 1 --wait)"]

    def verified():
        r = gim()
        rec = r and (r.get("automation") or {}).get("record")
        if not (rec and rec["phase"] == "verified" and r["revision"] == rec.get("new_revision")):
            return None
        return [f"/api/v1/releases: revision {r['revision']} is {r['judgement']['verdict']}: "
                f"rollback VERIFIED ({rec['detail']})"]

    def alert_rolled_back():
        a = alerts("UpgradeRolledBack")
        return a and [f"Alertmanager: UpgradeRolledBack ({a[0]['labels']['severity']}): "
                      f"{a[0]['annotations']['summary'][:100]}"]

    def resolved():
        seen = state.get("alert_failed")
        return seen and not alerts("UpgradeFailed") and ["Alertmanager: UpgradeFailed resolved"]

    def metric():
        r = prom('upgrade_guard_rollbacks_total{outcome="verified"} >= 1')
        return r and ['Prometheus: upgrade_guard_rollbacks_total{outcome="verified"} == '
                      + r[0]["value"][1]]

    def mail_failed():
        m = [m for m in mails() if m["Subject"].endswith("revision 2: failed")]
        return m and [f"email: {m[0]['Subject']}",
                      f"          {first_line_with(m[0], 'Automatic action')[:110]}"]

    def mail_verified():
        m = [m for m in mails() if "rollback verified" in m["Subject"]]
        return m and [f"email: {m[0]['Subject']}"]

    return [("failed", failed), ("alert_failed", alert_failed), ("mail_failed", mail_failed),
            ("rolling_back", rolling_back), ("verified", verified),
            ("metric", metric), ("alert_rolled_back", alert_rolled_back),
            ("resolved", resolved), ("mail_verified", mail_verified)]


state = {}
checks = milestones()
while time.time() < DEADLINE and len(state) < len(checks):
    for key, check in checks:
        if key in state:
            continue
        lines = check()
        if lines:
            state[key] = True
            print(f"  +{int(time.time() - START):3d}s  {lines[0]}")
            for line in lines[1:]:
                print(line)
            sys.stdout.flush()
    time.sleep(1)
missing = [k for k, _ in checks if k not in state]
if missing:
    print(f"missing after 5 minutes: {', '.join(missing)}", file=sys.stderr)
    sys.exit(1)
