"""The ledger: appends signed documents to a hash chain in SQLite; instrumented with pantau.

    python examples/ledger_service.py       # :8001 (PORT), called by fastapi_service.py

The incoming request's trace context, baggage and X-Correlation-ID are picked up by the
FastAPI instrumentation; sqlite3 calls are traced through the DB-API instrumentation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

import pantau

pantau.init(os.environ.get("OTEL_SERVICE_NAME", "ledger-service"), version="1.0.0", environment="dev",
            auto_instrument=True)
log = logging.getLogger("ledger-service")


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    pantau.shutdown()


app = pantau.instrument_app(FastAPI(lifespan=lifespan))
db = sqlite3.connect(":memory:", check_same_thread=False)
db.execute("CREATE TABLE chain (seq INTEGER PRIMARY KEY, document_id TEXT, hash TEXT)")
lock = threading.Lock()


class Append(BaseModel):
    document_id: str


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": True}


@app.post("/append")
def append(body: Append) -> dict:
    with pantau.trace("chain_append", attributes={"document.id": body.document_id}), lock:
        cur = db.cursor()  # cursor.execute is what the DB-API instrumentation traces
        row = cur.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        prev = row[0] if row else "0" * 64
        digest = hashlib.sha256(f"{prev}{body.document_id}".encode()).hexdigest()
        cur.execute("INSERT INTO chain (document_id, hash) VALUES (?, ?)", (body.document_id, digest))
        db.commit()
        pantau.record_chain_operation("append", "success", integrity=100.0)
        log.info("appended %s as block %d", body.document_id, cur.lastrowid)
        return {"block": cur.lastrowid, "hash": digest}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")), log_level="warning")
