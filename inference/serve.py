"""`serve`: the endpoint's HTTP server (gunicorn), as SageMaker starts it (`<image> serve`).

Settings follow SageMaker's environment conventions:
- `SAGEMAKER_BIND_TO_PORT` (8080), `SAGEMAKER_MODEL_SERVER_WORKERS` (2), `SAGEMAKER_MODEL_SERVER_TIMEOUT` (60 s)
- `IVADAS_MODEL_DIR` (`/opt/ml/model`: the extracted bundle, or a folder holding `model.tar.gz`)
Every worker loads the model once, before it accepts requests; the body limit is 6 MB. SIGHUP
reloads workers one by one (new model, no dropped requests); SIGTERM drains and stops.
"""

from __future__ import annotations

import os
import sys

import inference  # noqa: F401  (thread-pool settings before numpy loads)


def gunicorn_options() -> dict:
    workers = int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "2"))
    cores = os.cpu_count() or 1
    # each worker's ONNX Runtime uses its share of the cores instead of all of them
    os.environ.setdefault("IVADAS_ORT_THREADS", str(max(1, cores // workers)))
    return {
        "bind": f"{os.environ.get('SAGEMAKER_BIND_HOST', '0.0.0.0')}:{os.environ.get('SAGEMAKER_BIND_TO_PORT', '8080')}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 1,
        "timeout": int(os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60")),
        "graceful_timeout": 30,
        "keepalive": 75,  # longer than the SageMaker / load-balancer idle timeout
        "limit_request_field_size": 16384,
        "accesslog": "-" if os.environ.get("IVADAS_ACCESS_LOG") else None,
        "errorlog": "-",
        "loglevel": os.environ.get("IVADAS_LOG_LEVEL", "info"),
        "pidfile": os.environ.get("IVADAS_PIDFILE"),
        "control_socket_disable": True,  # one shared default path would collide between endpoints
    }


def run(app_factory, **overrides) -> None:
    """Serve `app_factory()` (called in every worker) with gunicorn and these options."""
    import logging

    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {**gunicorn_options(), **overrides}.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self):
            return app_factory()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
    Server().run()


def main() -> None:
    from .server import create_app

    run(create_app)


if __name__ == "__main__":
    sys.exit(main())
