"""A document-signing service instrumented with pantau, calling the ledger service.

    pantau serve &                              # the hub, OTLP on :4318 / :4317
    python examples/ledger_service.py &         # :8001
    python examples/fastapi_service.py          # :8000
    curl -X POST localhost:8000/documents/doc-1/sign -H 'X-Correlation-ID: order-42' \
         -H 'content-type: application/json' -d '{"signer": "budi@example.id"}'

Two lines make it observable: `pantau.init(...)` and `pantau.instrument_app(app)`. Every
setting can also come from the standard OTEL_* environment variables (endpoint, protocol,
service name...). Ports: PORT (8000), LEDGER_URL (http://127.0.0.1:8001).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

import pantau

pantau.init(os.environ.get("OTEL_SERVICE_NAME", "document-service"), version="1.0.0", environment="dev",
            auto_instrument=True)
log = logging.getLogger("document-service")
LEDGER_URL = os.environ.get("LEDGER_URL", "http://127.0.0.1:8001")


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    pantau.shutdown()  # uvicorn re-raises SIGTERM and skips atexit handlers: flush here


app = pantau.instrument_app(FastAPI(lifespan=lifespan))


class SignRequest(BaseModel):
    signer: str
    algorithm: str = "ed25519"


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": True}


@app.post("/documents/{doc_id}/sign")
async def sign(doc_id: str, req: SignRequest) -> dict:
    start = time.perf_counter()
    with pantau.trace("document_signing", attributes={"document.id": doc_id, "signing.algorithm": req.algorithm}):
        log.info("signing %s for %s", doc_id, req.signer)  # the e-mail is redacted before export
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(f"{LEDGER_URL}/append", json={"document_id": doc_id},
                                     headers=pantau.inject_headers())
        status = "success" if resp.status_code == 200 else "failure"
        ms = (time.perf_counter() - start) * 1000
        pantau.record_signing_operation("sign", status, req.algorithm, ms)
        pantau.audit("document.sign", actor=req.signer, resource=doc_id, outcome=status, algorithm=req.algorithm)
        if status != "success":
            raise HTTPException(502, "ledger refused the document")
        return {"document_id": doc_id, "block": resp.json()["block"], "correlation_id": pantau.correlation_id(),
                "trace_id": f"{pantau.current_span().get_span_context().trace_id:032x}"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning")
