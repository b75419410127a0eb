"""What an MLflow run holds, for the tracking tests."""


def artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of the run (under `path`), folders walked."""
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(client, run_id, item.path) if item.is_dir else [item.path]
    return found
