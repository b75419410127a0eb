"""`python -m infra.local.serve_gateway`: a local gateway role under gunicorn.

Role `api`: several worker processes, each with its own copy of the predict Lambda, the way Lambda
runs one request per execution environment and scales out with concurrency. Role `runtime`: one
process with threads, as it only forwards requests to the endpoints.
"""

import os

from inference.serve import run

from .gateway import create_app

if __name__ == "__main__":
    bind = f"{os.environ.get('IVADAS_HOST', '127.0.0.1')}:{os.environ.get('IVADAS_PORT', '8000')}"
    if os.environ.get("IVADAS_GATEWAY_ROLE", "api") == "runtime":
        # keepalive=0: reused connections to this role sometimes went unanswered under concurrent calls
        # (8 describe calls in parallel, 20 rounds: 5 stalls of the client's full read timeout with
        # keep-alive, none without); a loopback connection per call costs well under a millisecond.
        run(create_app, bind=bind, workers=1, threads=16, timeout=90, keepalive=0)
    else:
        run(create_app, bind=bind, workers=int(os.environ.get("IVADAS_GATEWAY_WORKERS", "4")), timeout=60)
