"""The physical limit for dispatch: a bare FastAPI app on the controller's server stack.

    python -m bench.bare_app --port N

`/get_worker_address` parses the same pydantic body as the controller's and answers a constant;
`/list_models` answers a constant list. Served by uvicorn exactly as `python -m controller` is
(auto loop and HTTP parser, so uvloop and httptools; no access log).
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

app = FastAPI()
_MODELS = [f"model-{i:03d}" for i in range(100)]


class ModelBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str


@app.post("/get_worker_address")
async def get_worker_address(body: ModelBody) -> dict[str, str]:
    return {"address": "http://127.0.0.1:1"}


@app.post("/list_models")
async def list_models() -> dict[str, list[str]]:
    return {"models": _MODELS}


@app.post("/list_models_one")
async def list_models_one() -> dict[str, list[str]]:
    """The answer size of a controller whose workers all serve one model."""
    return {"models": _MODELS[:1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
