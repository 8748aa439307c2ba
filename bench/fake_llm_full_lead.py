"""bench/fake_llm.py answering with all five lead fields: the original system validates the
model's `lead` with zod, where every field is required (null allowed), and the suite's
`parse_answer` accepts the same object, so one fake serves both and neither retries.

    python bench/fake_llm_full_lead.py PORT"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_llm

REPLY = "Con gusto. ¿En qué comuna estás?"
LEAD = {"nombre": None, "telefono": None, "servicio": None, "comuna": None, "estado": "frio"}

completion = json.loads(fake_llm.BODY)
completion["choices"][0]["message"]["content"] = json.dumps({"reply": REPLY, "lead": LEAD})
fake_llm.RESPONSE = fake_llm.http_response(json.dumps(completion).encode())

if __name__ == "__main__":
    trio.run(partial(trio.serve_tcp, host="127.0.0.1"), fake_llm.handle, int(sys.argv[1]))
