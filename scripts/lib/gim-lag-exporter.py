#!/usr/bin/env python3
"""Stand-in for GIM's metrics endpoint in scripts/demo.

kwok pods run no process, so this one serves gim_kafka_timestamp_behind for them. It asks the
API server which image the `gim` Deployment runs: with the healthy tag the backlog stays
around 3 s; with any other tag it grows by 5 s every second from the moment that tag
appeared, as a GIM that stopped processing would report.

Usage: gim-lag-exporter.py PORT NAMESPACE HEALTHY_TAG   (env: K8S_TESTENV_API, K8S_TESTENV_DIR)
"""
import http.server
import json
import os
import ssl
import sys
import time
import urllib.request

PORT, NAMESPACE, HEALTHY_TAG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
API = os.environ["K8S_TESTENV_API"]
PKI = os.path.join(os.environ["K8S_TESTENV_DIR"], "pki")

context = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
context.load_cert_chain(os.path.join(PKI, "admin.crt"), os.path.join(PKI, "admin.key"))
state = {"broken_since": None}


def running_tag():
    url = f"{API}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/gim"
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as r:
            image = json.load(r)["spec"]["template"]["spec"]["containers"][0]["image"]
            return image.rsplit(":", 1)[-1]
    except Exception:  # not installed yet, or the API is busy: report the healthy level
        return HEALTHY_TAG


def lag_seconds():
    now = time.time()
    if running_tag() == HEALTHY_TAG:
        state["broken_since"] = None
        return 3.0 + (now % 2)
    if state["broken_since"] is None:
        state["broken_since"] = now
    return 3.0 + 5.0 * (now - state["broken_since"])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (
            "# HELP gim_kafka_timestamp_behind Seconds the Info Mart is behind Kafka.\n"
            "# TYPE gim_kafka_timestamp_behind gauge\n"
            f'gim_kafka_timestamp_behind{{namespace="{NAMESPACE}"}} {lag_seconds():.1f}\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
