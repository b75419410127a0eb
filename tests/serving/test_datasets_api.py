"""Datasets per class through the API, in process: uploads through the local stand-in for S3
presigned POSTs (the local gateway's route), zip imports and every refusal, listing, preview, removal."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.serving.conftest import Context, api_event, png_bytes

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambda" / "predict"))


class LocalApi:
    """The predict Lambda and the local gateway's upload route over one temporary store."""

    def __init__(self, root: Path):
        import predict_app
        from infra.local.gateway import Gateway

        self.root = root
        self.handler = predict_app.handler
        self.gateway = Gateway("api", handler=predict_app.handler)

    def call(self, method, path, body=None, query=None):
        response = self.handler(api_event(method, path, body, query), Context())
        return response["statusCode"], json.loads(response["body"])

    def post_form(self, target: dict, data: bytes, filename="upload.bin") -> tuple[int, bytes]:
        """What the browser does with an upload form: multipart/form-data, the fields, then the file."""
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in target["fields"].items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": target["url"], "CONTENT_LENGTH": str(len(body)),
                   "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}", "wsgi.input": io.BytesIO(body)}
        status = {}
        payload = b"".join(self.gateway(environ, lambda s, h: status.setdefault("line", s)))
        return int(status["line"].split()[0]), payload

    def upload(self, data: bytes, request: dict, mask: bytes | None = None):
        """Start, send and complete an upload: the status and body of the completion."""
        status, started = self.call("POST", "/datasets/uploads", {"size": len(data), **request})
        if status != 201:
            return status, started
        sent, reply = self.post_form(started["targets"]["file"], data, request["filename"])
        assert sent == 204, reply
        if mask is not None:
            assert self.post_form(started["targets"]["mask"], mask, "mask.png")[0] == 204
        return self.call("POST", f"/datasets/uploads/{started['upload_id']}/complete")

    def class_files(self) -> list[str]:
        base = self.root / "datasets" / "classes"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def staged(self) -> list[Path]:
        base = self.root / "datasets" / "uploads"
        return [p for p in base.rglob("*") if p.is_file()] if base.is_dir() else []


@pytest.fixture
def api(tmp_path, monkeypatch):
    import routes_datasets

    store = tmp_path / "store"
    for key, value in {"DATASET_STORE": str(store), "LOCAL_UPLOAD_SECRET": "test-secret", "MODEL_REGISTRY": f"local:{store}",
                       "ACCESS_CONTROL": "open", "MIN_GOOD_IMAGES": "10"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(routes_datasets, "_datasets", None)
    return LocalApi(store)


def image(colour=(120, 120, 120), size=(32, 32)) -> bytes:
    return png_bytes(size, colour)


def make_zip(files: dict[str, bytes], symlinks: dict[str, str] | None = None, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def mvtec_zip(classes=("tiles", "fabric"), good=3, yaml_text: str | None = None) -> bytes:
    files = {}
    for c, name in enumerate(classes):
        for i in range(good):
            files[f"set/{name}/train/good/{i:03d}.png"] = image((100 + c, 100 + i, 90))
        files[f"set/{name}/test/good/000.png"] = image((10 + c, 200, 20))
        files[f"set/{name}/test/hole/000.png"] = image((250, 10 + c, 10))
        files[f"set/{name}/ground_truth/hole/000_mask.png"] = image((255, 255, 255))
        files[f"set/{name}/readme.txt"] = b"synthetic"
    if yaml_text is not None:
        files["set/data.yaml"] = yaml_text.encode()
    return make_zip(files)


def test_a_zip_in_mvtec_layout_creates_its_classes(api):
    status, body = api.upload(mvtec_zip(yaml_text="names: [tiles, fabric]\n"), {"type": "zip", "filename": "set.zip"})
    assert status == 201, body
    assert set(body["classes"]) == {"tiles", "fabric"}
    tiles = body["classes"]["tiles"]
    assert (tiles["added"], tiles["train_good"], tiles["test_good"], tiles["test_anomalous"], tiles["masks"]) == (5, 3, 1, 1, 1)
    assert "set/data.yaml" in body["skipped"] and not api.staged()
    status, listing = api.call("GET", "/datasets")
    assert status == 200 and [c["class_name"] for c in listing["classes"]] == ["fabric", "tiles"]
    status, described = api.call("GET", "/datasets/tiles")
    assert status == 200 and len(described["images_list"]) == 5
    anomalous = next(i for i in described["images_list"] if i["label"] == "anomalous")
    assert anomalous["defect"] == "hole" and anomalous["has_mask"] and anomalous["split"] == "test"
    status, preview = api.call("GET", f"/datasets/tiles/images/{anomalous['id']}")
    assert status == 200 and preview["content_type"] == "image/png" and preview["width"] == 32 and preview["mask_base64"]
    import base64
    import hashlib

    assert hashlib.sha256(base64.b64decode(preview["image_base64"])).hexdigest() == anomalous["id"]  # named by content
    status, removed = api.call("DELETE", f"/datasets/tiles/images/{anomalous['id']}")
    assert status == 200 and removed["test_anomalous"] == 0 and removed["masks"] == 0
    assert api.call("GET", f"/datasets/tiles/images/{anomalous['id']}")[0] == 404
    assert api.call("DELETE", f"/datasets/tiles/images/{anomalous['id']}")[0] == 404
    # the same zip again adds nothing: images are stored once per class
    status, again = api.upload(mvtec_zip(), {"type": "zip", "filename": "set.zip"})
    assert status == 201 and again["classes"]["fabric"]["added"] == 0 and again["classes"]["fabric"]["duplicates"] == 5


def test_a_flat_folder_of_good_images_and_yaml_named_class_folders(api):
    flat = make_zip({f"shots/{i}.png": image((i, 50, 50)) for i in range(4)})
    status, body = api.upload(flat, {"type": "zip", "filename": "shots.zip", "class_name": "bolts"})
    assert status == 201 and body["classes"]["bolts"]["train_good"] == 4
    per_class = make_zip({"data.yaml": b"classes:\n  - nuts\n  - screws\n", **{f"nuts/{i}.jpg.png": image((i, 1, 1)) for i in range(2)},
                          **{f"screws/{i}.png": image((i, 2, 2)) for i in range(3)}})
    status, body = api.upload(per_class, {"type": "zip", "filename": "parts.zip"})
    assert status == 201 and body["classes"]["nuts"]["train_good"] == 2 and body["classes"]["screws"]["train_good"] == 3
    yolo = make_zip({"data.yaml": b"names:\n  0: washers\n", "washers/a.png": image((9, 9, 9))})
    assert api.upload(yolo, {"type": "zip", "filename": "y.zip"})[1]["classes"]["washers"]["added"] == 1


def test_single_images_good_and_anomalous_with_a_mask(api):
    status, body = api.upload(image((1, 2, 3)), {"type": "image", "filename": "a.png", "class_name": "gears", "label": "good"})
    assert status == 201 and body["classes"]["gears"]["train_good"] == 1
    status, body = api.upload(image((5, 2, 3)), {"type": "image", "filename": "b.png", "class_name": "gears", "label": "good",
                                                 "split": "test"})
    assert status == 201 and body["classes"]["gears"]["test_good"] == 1
    status, body = api.upload(image((9, 2, 3)), {"type": "image", "filename": "c.png", "class_name": "gears", "label": "anomalous",
                                                 "defect": "dent", "mask": {"filename": "m.png", "size": len(image((255, 255, 255)))}},
                              mask=image((255, 255, 255)))
    assert status == 201 and body["classes"]["gears"]["test_anomalous"] == 1 and body["classes"]["gears"]["masks"] == 1
    assert any(f.startswith("gears/test/dent/") for f in api.class_files())


BAD_ZIPS = {
    "zip bomb": (make_zip({"tiles/train/good/0.png": b"\x89PNG" + b"\x00" * (30 * 1024 * 1024)}), 413, "zip_bomb"),
    "parent path": (make_zip({"../evil.png": image(), "tiles/train/good/0.png": image()}), 400, "unsafe_zip"),
    "absolute path": (make_zip({"/etc/evil.png": image()}), 400, "unsafe_zip"),
    "symlink": (make_zip({"tiles/train/good/0.png": image()}, {"tiles/train/good/1.png": "/etc/passwd"}), 400, "unsafe_zip"),
    "non-images": (make_zip({"tiles/train/good/0.png": b"just text, not a picture"}), 415, "not_an_image"),
    "only documents": (make_zip({"readme.txt": b"hello"}), 400, "no_images"),
    "an executable": (make_zip({"tiles/train/good/0.png": image(), "tool.exe": b"MZ"}), 415, "not_an_image"),
    "empty zip": (make_zip({}), 400, "empty_zip"),
    "not a zip": (b"PK\x03\x04 but nothing else", 400, "bad_zip"),
    "yaml not a list": (make_zip({"data.yaml": b"names: tiles\n", "tiles/0.png": image()}), 400, "bad_yaml"),
    "yaml unparsable": (make_zip({"data.yaml": b"names: [tiles\n", "tiles/0.png": image()}), 400, "bad_yaml"),
    "yaml class name with slash": (make_zip({"data.yaml": b"names: ['a/b']\n", "x/0.png": image()}), 400, "bad_name"),
    "yaml class without images": (make_zip({"data.yaml": b"names: [tiles, wood]\n", "tiles/0.png": image()}), 400, "bad_yaml"),
    "folder class name with dots": (make_zip({"a..b/train/good/0.png": image()}), 400, "bad_name"),
    "training image not good": (make_zip({"tiles/train/hole/0.png": image()}), 400, "bad_layout"),
}


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_every_bad_zip_is_refused_and_stores_nothing(api, case):
    data, status, code = BAD_ZIPS[case]
    answer, body = api.upload(data, {"type": "zip", "filename": "bad.zip", "class_name": "tiles"})
    assert (answer, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"] and api.class_files() == [] and api.staged() == []


def test_bad_upload_requests(api, monkeypatch):
    cases = [
        ({"type": "zip", "filename": "x.zip", "size": 10**12}, 413, "payload_too_large"),
        ({"type": "image", "filename": "x.png", "size": 10, "class_name": "../etc", "label": "good"}, 400, "bad_name"),
        ({"type": "image", "filename": "x.png", "size": 10, "class_name": "a/b", "label": "good"}, 400, "bad_name"),
        ({"type": "image", "filename": "x.png", "size": 10, "class_name": "tiles"}, 400, "bad_request"),
        ({"type": "image", "filename": "x.png", "size": 10, "class_name": "tiles", "label": "good",
          "mask": {"filename": "m.png", "size": 4}}, 400, "bad_request"),
        ({"type": "zip", "filename": "x.zip", "size": 10, "label": "good"}, 400, "bad_request"),
        ({"type": "video", "filename": "x.mp4", "size": 10}, 400, "bad_request"),
    ]
    for request, status, code in cases:
        answer, body = api.call("POST", "/datasets/uploads", request)
        assert (answer, body["error"]["code"]) == (status, code), (request, body)
    # an image that is not one, a mask of the wrong size
    answer, body = api.upload(b"GIF89a not taken", {"type": "image", "filename": "x.gif", "class_name": "tiles", "label": "good"})
    assert (answer, body["error"]["code"]) == (415, "not_an_image")
    answer, body = api.upload(image(size=(32, 32)), {"type": "image", "filename": "y.png", "class_name": "tiles", "label": "anomalous",
                                                     "mask": {"filename": "m.png", "size": 100}}, mask=image(size=(16, 16)))
    assert (answer, body["error"]["code"]) == (422, "mask_size")
    assert api.class_files() == [] and api.staged() == []
    # completing twice, completing an unknown upload, completing before the file arrived
    assert api.call("POST", f"/datasets/uploads/{uuid.uuid4().hex}/complete")[1]["error"]["code"] == "unknown_upload"
    assert api.call("POST", "/datasets/uploads/not-an-id/complete")[0] == 400
    status, started = api.call("POST", "/datasets/uploads", {"type": "image", "filename": "z.png", "size": 50,
                                                             "class_name": "tiles", "label": "good"})
    assert api.call("POST", f"/datasets/uploads/{started['upload_id']}/complete")[0] == 409
    # a class name with '..' or '/' in the URL, a class that does not exist
    assert api.call("GET", "/datasets/a..b")[1]["error"]["code"] == "bad_name"
    assert api.call("GET", "/datasets/nothing")[0] == 404


def test_the_upload_form_enforces_its_signed_conditions(api):
    status, started = api.call("POST", "/datasets/uploads", {"type": "image", "filename": "a.png", "size": 10,
                                                             "class_name": "tiles", "label": "good"})
    target = started["targets"]["file"]
    too_big = b"\x89PNG" + b"\x00" * (target["max_bytes"])
    status, reply = api.post_form(target, too_big)
    assert status == 400 and b"EntityTooLarge" in reply
    forged = {**target, "fields": {**target["fields"], "key": "datasets/classes/tiles/train/good/x.png"}}
    status, reply = api.post_form(forged, image())
    assert status == 403 and b"AccessDenied" in reply and api.class_files() == []
    expired = {**target, "fields": {**target["fields"], "expires": "1"}}
    assert api.post_form(expired, image())[0] == 403


def test_the_snapshot_is_immutable_and_named_by_content(api):
    assert api.upload(mvtec_zip(classes=("tiles",)), {"type": "zip", "filename": "s.zip"})[0] == 201
    import routes_datasets

    data = routes_datasets.dataset_store()
    first = data.snapshot(["tiles"])
    assert data.snapshot(["tiles"])["snapshot"] == first["snapshot"]  # same content, same snapshot
    manifest = data.manifest(first["snapshot"])
    files = manifest["classes"]["tiles"]["files"]
    assert {f["path"].split("/")[0] for f in files} == {"train", "test", "ground_truth"}
    import hashlib

    for item in files:
        stored = (api.root / first["key"] / "tiles" / item["path"]).read_bytes()
        if "sha256" in item:
            assert hashlib.sha256(stored).hexdigest() == item["sha256"]
    victim = next(f for f in files if f["path"].startswith("train/"))
    assert api.call("DELETE", f"/datasets/tiles/images/{victim['sha256']}")[0] == 200
    assert (api.root / first["key"] / "tiles" / victim["path"]).is_file()  # the snapshot keeps it
    assert data.snapshot(["tiles"])["snapshot"] != first["snapshot"]


def test_a_write_that_fails_midway_leaves_nothing_in_the_class(tmp_path):
    from class_datasets import Datasets, plan_zip
    from object_store import FolderStore

    class Failing(FolderStore):
        def __init__(self, root):
            super().__init__(root)
            self.puts = 0

        def put(self, key, data):
            self.puts += 1
            if self.puts == 4:
                raise OSError("disk full")
            super().put(key, data)

    store = Failing(tmp_path)
    plan = plan_zip(mvtec_zip(classes=("tiles",), good=6))
    with pytest.raises(OSError):
        Datasets(store).add("tiles", plan.classes["tiles"])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
