"""The baseline: a bare quart-trio endpoint on hypercorn that parses the same JSON body and
answers a JSON object of the same shape, doing nothing else. Usage: python bench/bare_app.py PORT"""

from __future__ import annotations

import json
import sys

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

app = QuartTrio("bare")


@app.post("/api/chat")
async def chat() -> Response:
    body = json.loads(await request.get_data())
    data = {"respuesta": "Con gusto. ¿En qué comuna estás?", "sessionId": body["sessionId"]}
    return Response(json.dumps({"success": True, "data": data}), content_type="application/json")


@app.post("/api/whatsapp/webhook")
async def webhook() -> Response:
    raw = await request.get_data()
    body = json.loads(raw)
    return Response(
        json.dumps({"success": True, "received": len(body["entry"])}),
        content_type="application/json",
    )


if __name__ == "__main__":
    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    trio.run(serve, app, config)  # type: ignore[arg-type]
