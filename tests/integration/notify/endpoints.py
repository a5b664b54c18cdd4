"""Fake endpoints that record what they receive: Elasticsearch _bulk, Slack and Teams webhooks.

Run in a network namespace:  python3 -m tests.integration.notify.endpoints DIR PORT

Elasticsearch semantics that matter to vc5-notifyd (the _bulk API, NDJSON):
`create` with an _id that is already stored answers that item 409
version_conflict_engine_exception and stores nothing; errors: true when any
item failed. Stored documents are appended to DIR/es.jsonl in arrival order
(with the _index) and survive a restart of this server (it re-reads the file),
as an index survives a restart of Elasticsearch.

Webhook bodies are appended to DIR/slack.jsonl and DIR/teams.jsonl.

DIR/control.json, read at every request, changes the behaviour:
  {"delay": S}                 answer every request S seconds late (after storing)
  {"status": N}                answer every request with HTTP N, storing nothing
  {"reject_field": "vc5.x"}    a document with that field: item status 400 mapper_parsing_exception
  {"throttle_once": true}      each document's first create: item 429 (stored on the retry)
  {"auth": "user:password"}    require HTTP basic auth (401 otherwise)
DIR/requests.jsonl logs every request (path, items, when) as it arrives.
"""

import asyncio
import base64
import json
import os
import sys

from aiohttp import web


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.ids = set()
        self.throttled = set()
        path = os.path.join(directory, "es.jsonl")
        if os.path.exists(path):
            with open(path) as f:
                self.ids = {json.loads(line)["_id"] for line in f if line.strip()}

    def control(self):
        try:
            with open(os.path.join(self.dir, "control.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def append(self, name, record):
        with open(os.path.join(self.dir, name), "a") as f:
            f.write(json.dumps(record) + "\n")

    def authorised(self, request, control):
        want = control.get("auth")
        if not want:
            return True
        got = request.headers.get("Authorization", "")
        return got == "Basic " + base64.b64encode(want.encode()).decode()

    async def bulk(self, request):
        control = self.control()
        lines = (await request.read()).decode().splitlines()
        self.append("requests.jsonl", {"path": request.path, "items": len(lines) // 2,
                                       "auth": request.headers.get("Authorization", "")})
        if not self.authorised(request, control):
            return web.json_response({"error": "security_exception"}, status=401)
        if control.get("status"):
            return web.json_response({"error": "forced"}, status=control["status"])
        items = []
        for action_line, doc_line in zip(lines[0::2], lines[1::2]):
            action = json.loads(action_line)["create"]
            doc = json.loads(doc_line)
            items.append({"create": self.create(action, doc, control)})
        if control.get("delay"):
            await asyncio.sleep(control["delay"])
        errors = any(i["create"]["status"] >= 300 for i in items)
        return web.json_response({"took": 1, "errors": errors, "items": items})

    def create(self, action, doc, control):
        _id, index = action["_id"], action["_index"]
        if control.get("reject_field") in doc:
            return {"_id": _id, "status": 400, "error": {"type": "mapper_parsing_exception",
                                                         "reason": "failed to parse"}}
        if control.get("throttle_once") and _id not in self.throttled:
            self.throttled.add(_id)
            return {"_id": _id, "status": 429, "error": {"type": "es_rejected_execution_exception",
                                                         "reason": "queue full"}}
        if _id in self.ids:
            self.append("conflicts.jsonl", {"_id": _id})
            return {"_id": _id, "status": 409, "error": {"type": "version_conflict_engine_exception",
                                                         "reason": "document already exists"}}
        self.ids.add(_id)
        self.append("es.jsonl", {"_id": _id, "_index": index, "doc": doc})
        return {"_id": _id, "status": 201, "result": "created"}

    async def webhook(self, request):
        control = self.control()
        body = await request.json()
        name = request.match_info["name"]
        self.append("requests.jsonl", {"path": request.path})
        if control.get("status"):
            return web.Response(status=control["status"], text="forced")
        self.append(f"{name}.jsonl", body)
        if control.get("delay"):
            await asyncio.sleep(control["delay"])
        return web.Response(text="ok")


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    rec = Recorder(directory)
    app = web.Application()
    app.router.add_post("/_bulk", rec.bulk)
    app.router.add_post("/hook/{name}", rec.webhook)
    web.run_app(app, host="0.0.0.0", port=port, print=lambda *a: print("listening", flush=True),
                handle_signals=True, access_log=None,
                shutdown_timeout=1)     # not aiohttp's 60 s wait for the notifier's keep-alive connections


if __name__ == "__main__":
    main()
