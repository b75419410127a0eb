"""Sign-in and station keys for `ivadas up --auth`: what Cognito and API Gateway usage plans do on AWS.

Everything lives in `$IVADAS_HOME/auth.json` (mode 0600), written by `ivadas users add` and
`ivadas keys add`:

- the issuer's RS256 key pair (generated once) and its issuer URL;
- users: name, groups (`inspector`, `engineer`, `admin`) and a salted scrypt password hash;
- station keys: the SHA-256 of each key (the key itself is shown once, when it is made), its quota
  per day and its steady rate (requests per second, burst twice that).

Tokens are RS256 JWTs with the claims a Cognito ID token carries (`iss`, `aud`, `token_use`,
`exp`, `cognito:username`, `cognito:groups`); a token from another issuer, for another client,
expired or badly signed is refused. Key usage (quota and throttle) is counted in an SQLite file next
to the store, so every gateway worker process counts against the same numbers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

GROUPS = ("inspector", "engineer", "admin")
CLIENT_ID = "ivadas-local-ui"
TOKEN_LIFETIME_S = 3600
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


class AuthError(Exception):
    """A refusal: `status` (401, 403, 429) and a message for the caller."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, _ = stored.split("$")
    except ValueError:
        return False
    salt_bytes = base64.urlsafe_b64decode(salt + "=" * (-len(salt) % 4))
    return hmac.compare_digest(hash_password(password, salt_bytes), stored)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_signing_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


@dataclass
class StationKey:
    station: str
    key_id: str
    quota_per_day: int
    rate_per_second: float

    @property
    def burst(self) -> int:
        return max(1, int(2 * self.rate_per_second))


class AuthStore:
    """`auth.json`: the issuer, users and station keys. Read fresh on each use (it is small), so
    `ivadas users add` takes effect on a running stack."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp = None
        self._data: dict = {}
        self._public_key = None

    # ------------------------------------------------------------------------- the file

    def load(self) -> dict:
        """The file's content, parsed again only when it changed (each API request reads it)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {"issuer": None, "signing_key": None, "users": {}, "keys": {}}
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp != self._stamp:
            self._data, self._public_key, self._stamp = json.loads(self.path.read_text()), None, stamp
        return self._data

    def _verification_key(self, data: dict):
        """The issuer's public key, derived once per version of the file (parsing the RSA key is slow)."""
        if self._public_key is None:
            from cryptography.hazmat.primitives import serialization

            self._public_key = serialization.load_pem_private_key(data["signing_key"].encode(), password=None).public_key()
        return self._public_key

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        partial.replace(self.path)

    def _editable(self) -> dict:
        """A copy to change and save (the cached content stays as the file is)."""
        return json.loads(json.dumps(self.load()))

    def _initialised(self) -> dict:
        data = self._editable()
        if not data.get("signing_key"):
            data["signing_key"] = new_signing_key()
            data["issuer"] = f"ivadas-local/{secrets.token_hex(8)}"  # unique per home: another home's tokens fail
        return data

    # ------------------------------------------------------------------------- people

    def add_user(self, name: str, groups: list[str], password: str) -> None:
        import re

        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"{name!r} is not a user name (letters, digits, . _ @ -, up to 64)")
        unknown = [g for g in groups if g not in GROUPS]
        if unknown or not groups:
            raise ValueError(f"groups must be among {', '.join(GROUPS)}; got {', '.join(groups) or 'none'}")
        if len(password) < 8:
            raise ValueError("the password must have at least 8 characters")
        data = self._initialised()
        data["users"][name] = {"groups": sorted(set(groups)), "password": hash_password(password)}
        self.save(data)

    def remove_user(self, name: str) -> None:
        data = self._editable()
        if data["users"].pop(name, None) is None:
            raise ValueError(f"no user {name!r}")
        self.save(data)

    def users(self) -> dict[str, list[str]]:
        return {name: user["groups"] for name, user in self.load()["users"].items()}

    def authenticate(self, name: str, password: str) -> list[str]:
        """The user's groups if the password is right (a wrong name costs the same time as a wrong password)."""
        user = self.load()["users"].get(name)
        stored = user["password"] if user else hash_password("x" * 12)
        if not check_password(password, stored) or user is None:
            raise AuthError(401, "unauthorized", "wrong user name or password")
        return user["groups"]

    # ------------------------------------------------------------------------- tokens

    def issue_token(self, name: str, lifetime_s: int = TOKEN_LIFETIME_S, now: float | None = None) -> str:
        import jwt

        data = self.load()
        user = data["users"].get(name)
        if user is None or not data.get("signing_key"):
            raise ValueError(f"no user {name!r}; add one with `ivadas users add {name} --group inspector`")
        issued = int(now if now is not None else time.time())
        claims = {"iss": data["issuer"], "aud": CLIENT_ID, "sub": hashlib.sha256(f"{data['issuer']}/{name}".encode()).hexdigest()[:32],
                  "token_use": "id", "cognito:username": name, "cognito:groups": user["groups"],
                  "iat": issued, "exp": issued + lifetime_s, "jti": secrets.token_hex(8)}
        return jwt.encode(claims, data["signing_key"], algorithm="RS256", headers={"kid": data["issuer"]})

    def verify_token(self, token: str) -> dict:
        """The token's claims, as API Gateway's Cognito authorizer passes them; 401 for anything else."""
        import jwt

        data = self.load()
        if not data.get("signing_key"):
            raise AuthError(401, "unauthorized", "no user exists yet; add one with `ivadas users add`")
        public = self._verification_key(data)
        try:
            claims = jwt.decode(token, public, algorithms=["RS256"], audience=CLIENT_ID, issuer=data["issuer"],
                                options={"require": ["exp", "iss", "aud", "cognito:username"]})
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token_expired", "the token has expired; sign in again") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, "unauthorized", f"the token is not valid here: {exc}") from None
        if claims.get("token_use") != "id" or claims["cognito:username"] not in data["users"]:
            raise AuthError(401, "unauthorized", "the token's user does not exist here")
        return claims

    # ------------------------------------------------------------------------- station keys

    def add_key(self, station: str, quota_per_day: int, rate_per_second: float) -> str:
        """A new key for the station (replacing its old one); returned once, stored only as a hash."""
        import re

        if not re.match(NAME_PATTERN, station):
            raise ValueError(f"{station!r} is not a station name (letters, digits, . _ @ -, up to 64)")
        if quota_per_day < 1 or rate_per_second <= 0:
            raise ValueError("the quota must be at least 1 request a day and the rate above 0 per second")
        data = self._initialised()
        key = secrets.token_urlsafe(30)
        data["keys"][station] = {"digest": key_digest(key), "key_id": secrets.token_hex(5), "quota_per_day": quota_per_day,
                                 "rate_per_second": rate_per_second}
        self.save(data)
        return key

    def remove_key(self, station: str) -> None:
        data = self._editable()
        if data["keys"].pop(station, None) is None:
            raise ValueError(f"no key for station {station!r}")
        self.save(data)

    def keys(self) -> dict[str, StationKey]:
        return {station: StationKey(station, k["key_id"], k["quota_per_day"], k["rate_per_second"])
                for station, k in self.load()["keys"].items()}

    def station_for(self, key: str) -> StationKey:
        digest = key_digest(key)
        for station, entry in self.load()["keys"].items():
            if hmac.compare_digest(entry["digest"], digest):
                return StationKey(station, entry["key_id"], entry["quota_per_day"], entry["rate_per_second"])
        raise AuthError(403, "forbidden", "the API key is not valid")  # what API Gateway answers for an unknown key


class UsageMeter:
    """Quota per day and a token bucket per key, as a usage plan counts them; shared by the gateway's
    worker processes through one SQLite file."""

    def __init__(self, path: Path, clock=time.time):
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # counting must not wait on a disk flush per request
            db.execute("CREATE TABLE IF NOT EXISTS usage (key_id TEXT PRIMARY KEY, day TEXT, used INTEGER, "
                       "tokens REAL, refilled REAL)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across a crash of the process, not of the machine
        return db

    def spend(self, key: StationKey) -> None:
        """Count one request, or refuse it with 429 (over the day's quota, or faster than the rate)."""
        now = self.clock()
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one worker at a time reads and writes a key's counters
            try:
                row = db.execute("SELECT day, used, tokens, refilled FROM usage WHERE key_id = ?", (key.key_id,)).fetchone()
                used, tokens, refilled = (0, float(key.burst), now) if row is None else (row[1] if row[0] == day else 0, row[2], row[3])
                tokens = min(float(key.burst), tokens + (now - refilled) * key.rate_per_second)
                if used >= key.quota_per_day:
                    raise AuthError(429, "quota_exceeded", f"station {key.station} has used its {key.quota_per_day} requests for today")
                if tokens < 1:
                    raise AuthError(429, "throttled", f"station {key.station} may send {key.rate_per_second:g} requests a second")
                db.execute("INSERT OR REPLACE INTO usage VALUES (?, ?, ?, ?, ?)", (key.key_id, day, used + 1, tokens - 1, now))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else header.strip()


class CodeStore:
    """Authorization codes of the sign-in flow (single use, 5 minutes), shared by the gateway workers."""

    LIFETIME_S = 300

    def __init__(self, path: Path, clock=time.time):
        self.path, self.clock = Path(path), clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path, timeout=10) as db:
            db.execute("CREATE TABLE IF NOT EXISTS codes (code TEXT PRIMARY KEY, user TEXT, redirect_uri TEXT, "
                       "challenge TEXT, expires REAL)")

    def issue(self, user: str, redirect_uri: str, challenge: str) -> str:
        code = secrets.token_urlsafe(24)
        with sqlite3.connect(self.path, timeout=10) as db:
            db.execute("DELETE FROM codes WHERE expires < ?", (self.clock(),))
            db.execute("INSERT INTO codes VALUES (?, ?, ?, ?, ?)", (code, user, redirect_uri, challenge, self.clock() + self.LIFETIME_S))
        return code

    def redeem(self, code: str, redirect_uri: str, verifier: str) -> str:
        """The user the code was issued to, if the verifier matches its challenge; the code is spent either way."""
        with sqlite3.connect(self.path, timeout=10) as db:
            row = db.execute("SELECT user, redirect_uri, challenge, expires FROM codes WHERE code = ?", (code,)).fetchone()
            db.execute("DELETE FROM codes WHERE code = ?", (code,))
        if row is None or row[3] < self.clock():
            raise AuthError(400, "invalid_grant", "the authorization code is unknown, used or expired")
        if row[1] != redirect_uri:
            raise AuthError(400, "invalid_grant", "redirect_uri differs from the one the code was issued for")
        if not hmac.compare_digest(_b64(hashlib.sha256(verifier.encode()).digest()), row[2]):
            raise AuthError(400, "invalid_grant", "the code_verifier does not match the code_challenge")
        return row[0]
