"""`ivadas up --auth`: the local gateway's sign-in (authorization code + PKCE), token and station-key
checks, with the predict Lambda deciding who may call what, and the attacks refused the way AWS
refuses them: 401, 403 or 429, an `{"error": {...}}` body, and nothing recorded."""

import base64
import hashlib
import io
import json
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import pytest

from infra.cli import main as cli
from infra.local.auth import AuthStore, UsageMeter
from infra.local.gateway import Gateway
from infra.local.signin import LocalAccess
from infra.local.stack import StackSettings
from tests.serving.test_predict_lambda import IMAGE, TABLE, aws, endpoint_result, predict_app, seed  # noqa: F401

PASSWORD = "correct-horse-1"
PREDICT = {"class_name": "tiles", "image_base64": IMAGE}


def request(app, method, path, body=None, headers=None, form=None, host="127.0.0.1:8000"):
    """One WSGI request: (status, headers, body text)."""
    data = (urlencode(form).encode() if form is not None else json.dumps(body).encode() if body is not None else b"")
    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "CONTENT_LENGTH": str(len(data)),
               "CONTENT_TYPE": "application/x-www-form-urlencoded" if form is not None else "application/json",
               "wsgi.input": io.BytesIO(data), "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": host}
    for key, value in (headers or {}).items():
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    status = {}

    def start_response(line, response_headers):
        status["code"], status["headers"] = int(line.split()[0]), dict(response_headers)

    text = b"".join(app(environ, start_response)).decode()
    return status["code"], status["headers"], text


def api(app, method, path, body=None, **headers):
    code, _, text = request(app, method, path, body, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return code, json.loads(text)


def recorded() -> list:
    return boto3.resource("dynamodb").Table(TABLE).scan()["Items"]


@pytest.fixture
def home(tmp_path):
    store = AuthStore(tmp_path / "auth.json")
    store.add_user("ana", ["inspector"], PASSWORD)
    store.add_user("eve", ["engineer"], PASSWORD)
    return tmp_path


@pytest.fixture
def gateway(aws, home, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ACCESS_CONTROL", "enforce")
    return Gateway("api", handler=predict_app.handler, access=LocalAccess(home / "auth.json", home / "state.sqlite"))


def token(home, name):
    return AuthStore(home / "auth.json").issue_token(name)


# ------------------------------------------------------------------------------- attacks


def test_no_token_is_401_and_nothing_is_recorded(gateway):
    seed(endpoint_result())
    status, body = api(gateway, "POST", "/predict", PREDICT)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = api(gateway, "GET", "/inspections")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert recorded() == []


def test_an_expired_token_is_401(gateway, home):
    seed(endpoint_result())
    old = AuthStore(home / "auth.json").issue_token("ana", lifetime_s=60, now=time.time() - 3600)
    status, body = api(gateway, "POST", "/predict", PREDICT, authorization=old)
    assert status == 401 and body["error"]["code"] == "token_expired"
    assert recorded() == []


def test_a_token_from_another_issuer_is_401(gateway, tmp_path):
    other = AuthStore(tmp_path / "elsewhere" / "auth.json")
    other.add_user("ana", ["admin"], PASSWORD)  # same name, another pool: its key and issuer differ
    seed(endpoint_result())
    status, body = api(gateway, "POST", "/predict", PREDICT, authorization=f"Bearer {other.issue_token('ana')}")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert recorded() == []


def test_a_forged_token_is_401(gateway, home):
    header, claims, signature = token(home, "ana").split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    payload["cognito:groups"] = ["admin"]
    forged = ".".join([header, base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode(), signature])
    status, body = api(gateway, "GET", "/inspections", authorization=forged)
    assert status == 401
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode() + "." + claims + "."
    assert api(gateway, "GET", "/inspections", authorization=unsigned)[0] == 401


def test_an_inspector_on_an_engineer_route_is_403_and_an_engineer_gets_through(gateway, home):
    status, body = api(gateway, "POST", "/models/patchcore/versions/1/approve", {"reason": "good"}, authorization=token(home, "ana"))
    assert status == 403 and body["error"]["code"] == "forbidden" and "engineer" in body["error"]["message"]
    status, body = api(gateway, "POST", "/models/patchcore/versions/1/approve", {"reason": "good"}, authorization=token(home, "eve"))
    assert status not in (401, 403)


def test_signed_in_people_inspect_and_see_history_with_their_name_on_nothing_else(gateway, home):
    seed(endpoint_result())
    status, body = api(gateway, "POST", "/predict", PREDICT, authorization=f"Bearer {token(home, 'ana')}")
    assert status == 200 and body["is_anomaly"] is True
    status, body = api(gateway, "GET", "/inspections", authorization=token(home, "ana"))
    assert status == 200 and len(body["inspections"]) == 1


def test_a_removed_user_s_token_is_refused(gateway, home):
    issued = token(home, "ana")
    AuthStore(home / "auth.json").remove_user("ana")
    assert api(gateway, "GET", "/inspections", authorization=issued)[0] == 401


def test_a_station_key_inspects_until_its_quota_then_429_and_nothing_more_is_recorded(gateway, home):
    key = AuthStore(home / "auth.json").add_key("line-3", quota_per_day=2, rate_per_second=100)
    for _ in range(2):
        seed(endpoint_result())
        status, body = api(gateway, "POST", "/predict", PREDICT, x_api_key=key)
        assert status == 200
    seed(endpoint_result())
    status, body = api(gateway, "POST", "/predict", PREDICT, x_api_key=key)
    assert status == 429 and body["error"]["code"] == "quota_exceeded"
    assert len(recorded()) == 2


def test_a_station_key_may_not_read_history_and_an_unknown_key_is_403(gateway, home):
    key = AuthStore(home / "auth.json").add_key("line-3", quota_per_day=100, rate_per_second=100)
    status, body = api(gateway, "GET", "/inspections", x_api_key=key)
    assert status == 403 and body["error"]["code"] == "forbidden"
    seed(endpoint_result())
    status, body = api(gateway, "POST", "/predict", PREDICT, x_api_key="not-a-key")
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert recorded() == []


class Described:
    """Every endpoint up: what GET /health asks each kind (`{"describe": true}`)."""

    def invoke_endpoint(self, EndpointName, **kwargs):
        return {"Body": io.BytesIO(json.dumps({"kind": "patchcore", "version": "v3"}).encode())}


def test_health_has_no_authorizer_as_on_aws_so_a_bad_token_or_key_there_is_not_looked_at(gateway, home, monkeypatch):
    """API Gateway runs no authorizer and no usage plan on GET /health (tests/infra/test_security.py): a
    liveness probe needs no credential, and whatever credential a request carries there is not checked."""
    import endpoint_client

    monkeypatch.setattr(endpoint_client, "_runtime", Described())
    monkeypatch.setattr(endpoint_client, "_runtimes", {})
    expired = AuthStore(home / "auth.json").issue_token("ana", lifetime_s=60, now=time.time() - 3600)
    key = AuthStore(home / "auth.json").add_key("line-3", quota_per_day=1, rate_per_second=100)
    for credential in ({}, {"authorization": "Bearer not-a-token"}, {"authorization": expired},
                       {"x_api_key": "not-a-key"}, {"x_api_key": key}, {"x_api_key": key}):
        status, body = api(gateway, "GET", "/health", **credential)
        assert status == 200 and body["status"] == "ok", (credential, body)
    assert api(gateway, "GET", "/inspections", authorization="Bearer not-a-token")[0] == 401  # where the authorizer runs
    assert api(gateway, "GET", "/inspections", authorization=expired)[1]["error"]["code"] == "token_expired"
    monkeypatch.setattr(endpoint_client, "_runtime", None)
    seed(endpoint_result())
    assert api(gateway, "POST", "/predict", PREDICT, x_api_key=key)[0] == 200  # /health spent none of the key's quota


def test_the_rate_is_a_token_bucket_shared_by_every_worker(tmp_path):
    store = AuthStore(tmp_path / "auth.json")
    store.add_key("line-3", quota_per_day=1000, rate_per_second=1)
    key = store.keys()["line-3"]
    now = [1_000_000.0]
    workers = [UsageMeter(tmp_path / "state.sqlite", clock=lambda: now[0]) for _ in range(2)]  # two processes' views
    workers[0].spend(key)
    workers[1].spend(key)  # burst: twice the rate
    with pytest.raises(Exception) as refused:
        workers[0].spend(key)
    assert refused.value.status == 429 and refused.value.code == "throttled"
    now[0] += 1.0  # one second refills one request
    workers[1].spend(key)
    with pytest.raises(Exception):
        workers[0].spend(key)


# ------------------------------------------------------------------------------- sign-in


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge, redirect="/callback.html"):
    return {"response_type": "code", "client_id": "ivadas-local-ui", "redirect_uri": redirect, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": "s1", "scope": "openid"}


def sign_in(gateway, name, password, challenge):
    return request(gateway, "POST", "/oauth2/authorize", form={**authorize_params(challenge), "username": name, "password": password})


def test_authorization_code_with_pkce_signs_in_and_the_token_works(gateway):
    verifier, challenge = pkce()
    status, _, page = request(gateway, "GET", "/oauth2/authorize?" + urlencode(authorize_params(challenge)))
    assert status == 200 and "name='password'" in page and challenge in page
    status, _, page = sign_in(gateway, "ana", "wrong-password", challenge)
    assert status == 401 and "wrong user name or password" in page
    status, headers, _ = sign_in(gateway, "ana", PASSWORD, challenge)
    assert status == 302
    location = urlsplit(headers["Location"])
    query = parse_qs(location.query)
    assert location.path == "/callback.html" and query["state"] == ["s1"] and "token" not in location.query
    exchange = {"grant_type": "authorization_code", "client_id": "ivadas-local-ui", "code": query["code"][0],
                "redirect_uri": "/callback.html", "code_verifier": verifier}
    status, _, text = request(gateway, "POST", "/oauth2/token", form={**exchange, "code_verifier": pkce()[0]})
    assert status == 400 and json.loads(text)["error"] == "invalid_grant"  # and the code is spent
    verifier, challenge = pkce()
    code = parse_qs(urlsplit(sign_in(gateway, "ana", PASSWORD, challenge)[1]["Location"]).query)["code"][0]
    status, _, text = request(gateway, "POST", "/oauth2/token", form={**exchange, "code": code, "code_verifier": verifier})
    assert status == 200
    issued = json.loads(text)
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
    assert api(gateway, "GET", "/inspections", authorization=issued["id_token"])[0] == 200
    status, _, text = request(gateway, "POST", "/oauth2/token", form={**exchange, "code": code, "code_verifier": verifier})
    assert status == 400  # a code is used once


@pytest.mark.parametrize("change, message", [
    ({"client_id": "someone-else"}, "unknown client_id"), ({"code_challenge_method": "plain"}, "S256"),
    ({"redirect_uri": "https://evil.example/steal"}, "redirect_uri"), ({"redirect_uri": "//evil.example/x"}, "redirect_uri"),
    ({"response_type": "token"}, "response_type=code")])
def test_the_sign_in_refuses_what_would_leak_a_code(gateway, change, message):
    _, challenge = pkce()
    status, headers, page = request(gateway, "POST", "/oauth2/authorize",
                                    form={**authorize_params(challenge), **change, "username": "ana", "password": PASSWORD})
    assert status == 400 and message in page and "Location" not in headers


def test_config_json_tells_the_ui_how_to_sign_in_only_with_auth(gateway):
    status, _, text = request(gateway, "GET", "/config.json")
    assert json.loads(text)["auth"] == {"authorizeUrl": "/oauth2/authorize", "tokenUrl": "/oauth2/token",
                                        "clientId": "ivadas-local-ui", "scopes": "openid"}
    open_gateway = Gateway("api", handler=predict_app.handler)
    assert "auth" not in json.loads(request(open_gateway, "GET", "/config.json")[2])
    assert request(open_gateway, "GET", "/oauth2/authorize")[0] == 404


# ------------------------------------------------------------------------------- the CLI


def test_users_and_keys_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IVADAS_HOME", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli(["users", "add", "root", "--group", "admin", "--password-stdin"]) == 0
    assert cli(["keys", "add", "line-3", "--quota", "50", "--rate", "2"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert AuthStore(tmp_path / "auth.json").station_for(key).quota_per_day == 50
    assert "root\tadmin" in (cli(["users", "list"]), capsys.readouterr().out)[1]
    assert oct((tmp_path / "auth.json").stat().st_mode & 0o777) == "0o600"
    assert key not in (tmp_path / "auth.json").read_text()  # only its hash is kept
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli(["users", "add", "x", "--group", "admin", "--password-stdin"]) == 2
    assert "at least 8" in capsys.readouterr().err
    assert cli(["keys", "add", "line 4"]) == 2 and "not a station name" in capsys.readouterr().err
    assert cli(["keys", "remove", "nowhere"]) == 2


def test_up_with_auth_enforces_and_without_stays_open(tmp_path):
    closed = StackSettings(home=tmp_path, auth=True)
    env = closed and __import__("infra.local.stack", fromlist=["LocalStack"]).LocalStack(closed)._lambda_env()
    assert env["ACCESS_CONTROL"] == "enforce" and env["IVADAS_AUTH_FILE"] == str(tmp_path / "auth.json")
    opened = __import__("infra.local.stack", fromlist=["LocalStack"]).LocalStack(StackSettings(home=tmp_path))._lambda_env()
    assert opened["ACCESS_CONTROL"] == "open" and "IVADAS_AUTH_FILE" not in opened


# ------------------------------------------------------------------------------- who approved


def test_an_approval_records_the_signed_in_engineer_not_the_name_the_request_gives(gateway, home, tmp_path, monkeypatch):
    import routes_datasets

    from pipelines.registry import APPROVED, PENDING, LocalRegistry

    store = tmp_path / "store"
    for key, value in {"MODEL_REGISTRY": f"local:{store}", "DATASET_STORE": str(store), "PIPELINE_NAME": "ivadas-training"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(routes_datasets, "_datasets", None)
    registry = LocalRegistry(store)
    registry.register("ivadas-training-patchcore", str(tmp_path / "model.tar.gz"), {"mean": {"image_auroc": 0.97}}, {}, PENDING)
    decision = {"decision": "approve", "reason": "held-out AUROC 0.97, reviewed the misses", "by": "mallory"}
    status, body = api(gateway, "POST", "/versions/patchcore/1/approval", decision, authorization=token(home, "ana"))
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert registry.get("ivadas-training-patchcore", 1).status == PENDING
    status, body = api(gateway, "POST", "/versions/patchcore/1/approval", decision, authorization=token(home, "eve"))
    assert status == 200, body
    version = registry.get("ivadas-training-patchcore", 1)
    assert version.status == APPROVED and version.history[-1]["by"] == "eve"


def test_the_command_line_inspects_with_a_station_key_from_the_environment(gateway, home, monkeypatch):
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from infra.client import ApiCallFailed, predict_remote

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, gateway, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    image = home / "part.png"
    image.write_bytes(base64.b64decode(IMAGE))
    try:
        monkeypatch.delenv("IVADAS_API_KEY", raising=False)
        with pytest.raises(ApiCallFailed) as refused:
            predict_remote(url, image, "tiles")
        assert refused.value.status == 401 and refused.value.code == "unauthorized"
        monkeypatch.setenv("IVADAS_API_KEY", AuthStore(home / "auth.json").add_key("line-3", 10, 10))
        seed(endpoint_result())
        assert predict_remote(url, image, "tiles")["is_anomaly"] is True
    finally:
        server.shutdown()
