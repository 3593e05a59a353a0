"""``plan --env`` / ``status --env``: the deployed build, read through
runpod-flash's own API client.

In process, flash's ``RunpodGraphQLClient._get_session`` is replaced by a
fake aiohttp session (the boundary flash's own client tests mock), so
flash's real request code, error mapping and retries run; the answers are
shaped as flash's queries expect them (``{"data": {"flashAppByName": ...}}``,
``{"errors": [{"message": ...}]}``). End to end, the CLI runs in a child
process against a fake control plane on 127.0.0.1 (``RUNPOD_API_BASE_URL``).
Every fake fails the test on any GraphQL mutation.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runpod_flash_native import cli

from reference import PACKAGE_ROOT

PROG = "runpod-flash-native"
FP_OLD = "a" * 64
FP_NEW = "b" * 64


# ---------------------------------------------------------------------------
# a fake control plane


class ControlPlane:
    """Answers flash's read queries from ``apps``; records every operation;
    a mutation is recorded and answered with an error (and fails the test
    through ``assert plane.mutations == []``)."""

    def __init__(self, apps: dict[str, Any], builds: dict[str, Any]) -> None:
        self.apps = apps  # name -> {"id", "environments": {name: {"id", "activeBuildId"}}}
        self.builds = builds  # id -> manifest
        self.operations: list[str] = []
        self.mutations: list[str] = []
        self.authorization: list[str | None] = []
        self.fail_with: tuple[int, Any] | None = None
        self.delay = 0.0
        self.release = threading.Event()  # ends a delay early (teardown)

    def answer(self, payload: dict[str, Any], authorization: str | None = None) -> tuple[int, Any]:
        query: str = payload["query"]
        variables: dict[str, Any] = payload.get("variables") or {}
        self.authorization.append(authorization)
        op = query.split("(")[0].split("{")[0].split()[-1]
        self.operations.append(op)
        if query.lstrip().lower().startswith("mutation"):
            self.mutations.append(op)
            return 200, {"errors": [{"message": f"test control plane: mutation {op} refused"}]}
        if self.delay:
            self.release.wait(self.delay)
        if self.fail_with is not None:
            return self.fail_with
        if "flashAppByName(" in query:
            app = self.apps.get(variables["flashAppName"])
            if app is None:
                return 200, {"errors": [{"message": "App not found"}], "data": None}
            return 200, {"data": {"flashAppByName": self._app(variables["flashAppName"], app)}}
        if "flashEnvironmentByName(" in query:
            wanted = variables["input"]
            for app in self.apps.values():
                if app["id"] == wanted["flashAppId"]:
                    env = app["environments"].get(wanted["name"])
                    return 200, {"data": {"flashEnvironmentByName": self._env(wanted["name"], env)}}
            return 200, {"errors": [{"message": "App not found"}]}
        if "flashBuild(" in query:
            build_id = variables["input"]
            if build_id not in self.builds:
                return 200, {"data": {"flashBuild": None}}
            return 200, {"data": {"flashBuild": {"id": build_id, "manifest": copy.deepcopy(self.builds[build_id])}}}
        if "flashApps" in query:
            return 200, {"data": {"myself": {"flashApps": [self._app(n, a) for n, a in self.apps.items()]}}}
        return 400, {"errors": [{"message": f"test control plane: unknown query {op}"}]}

    def _env(self, name: str, env: dict[str, Any] | None) -> dict[str, Any] | None:
        if env is None:
            return None
        return {"id": env["id"], "name": name, "state": "HEALTHY", "activeBuildId": env.get("activeBuildId"),
                "endpoints": [], "networkVolumes": []}

    def _app(self, name: str, app: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": app["id"], "name": name,
            "flashEnvironments": [
                {"id": e["id"], "name": n, "state": "HEALTHY", "activeBuildId": e.get("activeBuildId"),
                 "createdAt": "2026-01-01T00:00:00Z"}
                for n, e in app["environments"].items()
            ],
            "flashBuilds": [{"id": b, "objectKey": f"k/{b}", "createdAt": "2026-01-01T00:00:00Z"} for b in self.builds],
        }


def _cfg(**extra: Any) -> dict[str, Any]:
    return {"resource_type": "LiveServerless", "workersMax": 1, **extra}


def local_manifest() -> dict[str, Any]:
    return {
        "version": "1.0",
        "project_name": "demo",
        "source_fingerprint": FP_NEW,
        "resources": {
            "api": _cfg(workersMax=3),
            "same": _cfg(),
            "fresh": _cfg(),
            "client": _cfg(client_mode=True),
        },
    }


def deployed_manifest() -> dict[str, Any]:
    """What `flash deploy` writes into the active build (update_build_manifest):
    the local manifest, injected fingerprints, endpoints, runtime fields."""
    def deployed(**extra: Any) -> dict[str, Any]:
        return _cfg(env={"_FLASH_SOURCE_FINGERPRINT": FP_NEW}, endpoint_id="ep", aiKey="secret-ai-key", **extra)

    return {
        "version": "1.0",
        "project_name": "demo",
        "source_fingerprint": FP_NEW,
        "resources": {
            "api": deployed(),
            "same": deployed(),
            "client": _cfg(client_mode=True, endpoint_id="ep-c"),
            "gone": deployed(),
        },
        "resources_endpoints": {n: f"https://{n}.example" for n in ("api", "same", "client", "gone")},
    }


def make_plane() -> ControlPlane:
    return ControlPlane(
        apps={
            "demo": {"id": "app-1", "environments": {
                "production": {"id": "env-1", "activeBuildId": "build-7"},
                "staging": {"id": "env-2", "activeBuildId": None},
            }},
            "other": {"id": "app-2", "environments": {}},
        },
        builds={"build-7": deployed_manifest()},
    )


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A built project named like the app: demo/.flash/flash_manifest.json."""
    root = tmp_path / "demo"
    (root / ".flash").mkdir(parents=True)
    (root / ".flash" / "flash_manifest.json").write_text(json.dumps(local_manifest()))
    (root / "main.py").write_text("print('hi')\n")
    return root


# ---------------------------------------------------------------------------
# in process: flash's client over a fake aiohttp session


class _Response:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self._body = body

    async def json(self) -> Any:
        if isinstance(self._body, BaseException):
            raise self._body
        return self._body

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: Any) -> bool:
        return False


class FakeSession:
    """What flash's ``_get_session`` returns: ``post(url, json=...)`` as an
    async context manager. ``error`` makes every post raise it."""

    def __init__(self, plane: ControlPlane, error: BaseException | None = None) -> None:
        self.plane = plane
        self.error = error
        self.closed = False
        self.urls: list[str] = []

    def post(self, url: str, json: dict[str, Any]) -> _Response:
        self.urls.append(url)
        if self.error is not None:
            self.plane.operations.append("<network error>")
            raise self.error
        return _Response(*self.plane.answer(json, "Bearer test-key"))

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def plane(monkeypatch: pytest.MonkeyPatch) -> ControlPlane:
    from runpod_flash.core.api import runpod as api

    plane = make_plane()
    session = FakeSession(plane)

    async def get_session(self: Any) -> FakeSession:
        return session

    monkeypatch.setattr(api.RunpodGraphQLClient, "_get_session", get_session)
    # flash's own tests do the same: no real backoff between retries
    monkeypatch.setattr(api, "get_backoff_delay", lambda *a, **k: 0)
    monkeypatch.setenv("RUNPOD_API_KEY", "test-key")
    plane.session = session  # type: ignore[attr-defined]
    yield plane
    assert plane.mutations == [], f"a mutation was sent: {plane.mutations}"


def main(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{PROG}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_plan_env_is_the_plan_against_the_active_build(plane: ControlPlane, demo: Path, tmp_path: Path, capsys):
    code, out, err = main(capsys, "plan", "--json", "--env", "production", demo)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["provision"] == ["fresh"]
    assert doc["update"] == ["api"]
    assert doc["reuse"] == ["client", "same"]
    assert doc["delete"] == ["gone"]
    assert doc["reasons"]["api"] == [
        {"kind": "changed", "field": "workersMax", "path": ["workersMax"], "old": 1, "new": 3}
    ]
    assert doc["deployed"] == {
        "app": "demo", "app_id": "app-1", "environment": "production", "environment_id": "env-1",
        "build_id": "build-7", "state": "active_build", "api_url": plane.session.urls[0],
    }
    assert doc["project_dir"] == str(demo) and doc["local_manifest"] == str(demo / ".flash/flash_manifest.json")
    assert "secret-ai-key" not in out
    # the three read-only calls flash's deploy and State Manager client make
    assert plane.operations == ["getFlashAppByName", "getFlashEnvironmentByName", "getFlashBuild"]

    # the same plan as the two-file form given the manifest the API served
    state = tmp_path / "state.json"
    state.write_text(json.dumps(deployed_manifest()))
    code, out2, err = main(capsys, "plan", "--json", demo / ".flash/flash_manifest.json", state)
    assert code == 0, err
    two_file = json.loads(out2)
    for key in ("project_dir", "local_manifest", "deployed"):
        doc.pop(key)
    assert doc == two_file

    code, text, err = main(capsys, "plan", "-e", "production", demo)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].startswith("deployed: build build-7, active in environment 'production' of app 'demo' (")
    assert lines[1] == "plan: 1 to provision, 1 to update, 2 to reuse, 1 left running (only in the deployed manifest)"
    assert "workersMax: 1 -> 3" in text


def test_app_defaults_to_the_directory_name_and_app_option(plane: ControlPlane, demo: Path, tmp_path: Path, capsys,
                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(demo)
    code, out, err = main(capsys, "plan", "--json", "--env", "production")
    assert code == 0, err
    assert json.loads(out)["deployed"]["app"] == "demo"
    # a symlink to the project: flash deploy runs in the physical directory
    link = tmp_path / "link"
    link.symlink_to(demo)
    code, out, err = main(capsys, "plan", "--json", "--env", "production", link)
    assert code == 0, err
    assert json.loads(out)["deployed"]["app"] == "demo"
    code, out, err = main(capsys, "plan", "--json", "--env", "production", "--app", "other", demo)
    one_error(code, err, "environment 'production' not found in app 'other'", "(no environments)")


def test_app_not_found_lists_the_apps_and_creates_nothing(plane: ControlPlane, tmp_path: Path, capsys):
    root = tmp_path / "newapp"
    (root / ".flash").mkdir(parents=True)
    (root / ".flash" / "flash_manifest.json").write_text(json.dumps(local_manifest()))
    code, out, err = main(capsys, "plan", "--json", "--env", "production", root)
    line = one_error(code, err, "app 'newapp' not found", "apps: demo, other", "--app")
    assert json.loads(out)["error"] == line.split("error: ", 1)[1]
    assert plane.operations == ["getFlashAppByName", "getFlashApps"]


def test_environment_not_found_lists_the_environments(plane: ControlPlane, demo: Path, capsys):
    code, _, err = main(capsys, "plan", "--env", "prod", demo)
    one_error(code, err, "environment 'prod' not found in app 'demo'", "environments: production, staging",
              "flash deploy --env prod would create it")
    # the same when the API answers with an error instead of null
    answer = plane.answer

    def env_error(payload: dict[str, Any], authorization: str | None = None) -> tuple[int, Any]:
        if "flashEnvironmentByName(" in payload["query"]:
            plane.operations.append("getFlashEnvironmentByName")
            return 200, {"errors": [{"message": "Flash environment not found"}]}
        return answer(payload, authorization)

    plane.answer = env_error  # type: ignore[method-assign]
    code, _, err = main(capsys, "plan", "--env", "qa", demo)
    one_error(code, err, "environment 'qa' not found in app 'demo'")


def test_no_active_build_provisions_everything(plane: ControlPlane, demo: Path, capsys):
    code, out, err = main(capsys, "plan", "--json", "--env", "staging", demo)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["provision"] == ["api", "client", "fresh", "same"]
    assert doc["update"] == doc["reuse"] == doc["delete"] == []
    assert doc["deployed"]["build_id"] is None and doc["deployed"]["state"] == "no_active_build"
    assert plane.operations == ["getFlashAppByName", "getFlashEnvironmentByName"]
    code, text, err = main(capsys, "plan", "--env", "staging", demo)
    assert text.splitlines()[0] == (
        "deployed: nothing: environment 'staging' of app 'demo' has no active build yet; "
        "the next deploy provisions every resource"
    )
    # an active build without a manifest: the same, said so
    plane.apps["demo"]["environments"]["staging"]["activeBuildId"] = "build-empty"
    plane.builds["build-empty"] = None
    code, out, err = main(capsys, "plan", "--json", "--env", "staging", demo)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["provision"] == ["api", "client", "fresh", "same"] and doc["deployed"]["state"] == "no_manifest"


@pytest.mark.parametrize(("manifest", "needle"), [
    ("{\"resources\": {}}", "a JSON string, expected an object"),
    ([1, 2], "a JSON array"),
    ({"name": "x", "files": []}, "no \"resources\" object; keys: files, name"),
])
def test_a_manifest_that_is_not_flash_s(plane: ControlPlane, demo: Path, capsys, manifest: Any, needle: str):
    plane.builds["build-7"] = manifest
    code, _, err = main(capsys, "plan", "--env", "production", demo)
    one_error(code, err, "the manifest of build build-7 (active in environment 'production' of app 'demo') "
              "is not a flash manifest", needle)


def test_network_failure_says_what_was_tried(plane: ControlPlane, demo: Path, capsys):
    import aiohttp

    plane.session.error = aiohttp.ClientConnectionError("Connection refused")
    code, out, err = main(capsys, "plan", "--json", "--env", "production", demo)
    lines = err.strip().splitlines()
    # flash's client retries (warning lines), then one error line
    retries = [ln for ln in lines if ln.startswith(f"{PROG}: warning: runpod-flash: Retrying GraphQL request")]
    assert len(retries) == 3, err
    assert lines[-1].startswith(f"{PROG}: error: cannot reach the Runpod API (")
    assert "while looking up app 'demo'" in lines[-1] and "Connection refused" in lines[-1]
    assert lines[-1].endswith("(4 attempts)")
    assert code == 2
    doc = json.loads(out)  # stdout is the one JSON document: flash's log lines went elsewhere
    assert [w["kind"] for w in doc["warnings"]] == ["retry"] * 3


def test_http_errors(plane: ControlPlane, demo: Path, capsys):
    plane.fail_with = (401, {"errors": [{"message": "Unauthorized"}]})
    code, _, err = main(capsys, "plan", "--env", "production", demo)
    one_error(code, err, "refused the API key (HTTP 401) while looking up app 'demo'", "flash login")
    plane.fail_with = (200, {"errors": [{"message": "Something odd"}]})
    code, _, err = main(capsys, "plan", "--env", "production", demo)
    one_error(code, err, "failed while looking up app 'demo': GraphQL errors: Something odd")


def test_an_answer_that_is_not_json(plane: ControlPlane, demo: Path, capsys):
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    url = URL("https://api.runpod.io/graphql")
    request = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    page = aiohttp.ContentTypeError(request, (), status=200,
                                    message="Attempt to decode JSON with unexpected mimetype: text/html")
    plane.fail_with = (200, page)
    code, _, err = main(capsys, "plan", "--env", "production", demo)
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"{PROG}: error: the Runpod API (")
    assert "did not answer JSON while looking up app 'demo'" in line and "text/html" in line
    assert line.endswith("(4 attempts)")


def test_timeout(plane: ControlPlane, demo: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    import asyncio

    from runpod_flash.core.api import runpod as api

    async def never(self: Any) -> Any:
        await asyncio.sleep(3600)

    monkeypatch.setattr(api.RunpodGraphQLClient, "_get_session", never)
    code, _, err = main(capsys, "plan", "--env", "production", "--timeout", "0.2", demo)
    one_error(code, err, "no answer from the Runpod API (", "within 0.2 s while looking up app 'demo'", "--timeout")


def test_no_api_key(plane: ControlPlane, demo: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    import runpod_flash.core.api.runpod as api

    monkeypatch.setattr(api, "get_api_key", lambda: None)
    code, _, err = main(capsys, "plan", "--env", "production", demo)
    one_error(code, err, "no Runpod API key", "RUNPOD_API_KEY", "flash login")
    assert plane.operations == []


def test_the_client_refuses_mutations(plane: ControlPlane, demo: Path):
    """Whatever the code calls, no mutation leaves the process."""
    import asyncio

    from runpod_flash_native.cli import _remote

    client_class = _remote._load_flash(demo).client_class

    async def try_mutations() -> list[str]:
        refused = []
        async with client_class() as client:
            for call in (lambda: client.create_flash_app({"name": "demo"}),
                         lambda: client.create_flash_environment({"flashAppId": "app-1", "name": "x"}),
                         lambda: client.update_build_manifest("build-7", {}),
                         lambda: client.deploy_build_to_environment({"flashEnvironmentId": "env-1"})):
                try:
                    await call()
                except _remote.MutationRefused as e:
                    refused.append(str(e))
        return refused

    assert len(asyncio.run(try_mutations())) == 4
    assert plane.operations == []

    async def below_the_retries() -> None:
        async with client_class() as client:
            await client._execute_graphql_once("mutation x { deleteFlashApp(flashAppId: \"a\") }", {})

    with pytest.raises(_remote.MutationRefused):
        asyncio.run(below_the_retries())
    assert plane.operations == []


def test_local_manifest_and_usage_errors(plane: ControlPlane, tmp_path: Path, capsys):
    code, _, err = main(capsys, "plan", "--env", "production", tmp_path)
    one_error(code, err, str(tmp_path / ".flash/flash_manifest.json"), "run `flash build` first")
    assert plane.operations == []  # local problems are found before the network
    for args, needle in (
        (["plan", "--env", "p", "a", "b"], "--env takes one project DIR"),
        (["plan", "--app", "x", "a", "b"], "--app needs --env"),
        (["status", "--timeout", "3"], "--timeout needs --env"),
        (["plan", "--env", "p", "--timeout", "0"], "not a positive number"),
        (["plan", "--env", " "], "empty environment name"),
    ):
        code, out, err = main(capsys, "--json", *args)
        assert code == 2 and needle in err, (args, err)
        assert json.loads(out)["error"].startswith("usage: ")


# ---------------------------------------------------------------------------
# status --env


def _status_project(tmp_path: Path, plane: ControlPlane) -> Path:
    from runpod_flash.cli.commands import build as flash_build
    from runpod_flash.cli.utils import ignore as flash_ignore

    root = tmp_path / "demo"
    root.mkdir()
    (root / "worker.py").write_text("def handler(x):\n    return x\n")
    files = flash_ignore.get_file_tree(root, flash_ignore.load_ignore_patterns(root))
    fingerprint = flash_build.compute_source_fingerprint(root, files)
    manifest = deployed_manifest()
    manifest["source_fingerprint"] = fingerprint
    for config in manifest["resources"].values():
        if not config.get("client_mode"):
            config["env"]["_FLASH_SOURCE_FINGERPRINT"] = fingerprint
    plane.builds["build-7"] = manifest
    return root


def test_status_env_compares_with_the_deployed_fingerprint(plane: ControlPlane, tmp_path: Path, capsys):
    root = _status_project(tmp_path, plane)
    # no local build at all: status --env needs none
    code, out, err = main(capsys, "status", "--json", "--env", "production", root)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "unchanged" and doc["rolls"] == [] and doc["manifest"] is None
    assert doc["deployed"]["build_id"] == "build-7"
    (root / "worker.py").write_text("def handler(x):\n    return 2 * x\n")
    code, out, err = main(capsys, "status", "--json", "--env", "production", root)
    assert code == 1, err
    doc = json.loads(out)
    assert doc["status"] == "changed" and doc["rolls"] == ["api", "gone", "same"]
    assert doc["recorded_fingerprint"] == plane.builds["build-7"]["source_fingerprint"]
    code, text, err = main(capsys, "status", "--env", "production", root)
    assert code == 1
    assert text.splitlines()[0] == (
        f"changed: {root} differs from the source_fingerprint in build build-7 "
        "(active in environment 'production' of app 'demo')"
    )


def test_status_env_nothing_deployed(plane: ControlPlane, tmp_path: Path, capsys):
    root = _status_project(tmp_path, plane)
    code, out, err = main(capsys, "status", "--json", "--env", "staging", root)
    assert code == 1, err
    doc = json.loads(out)
    assert doc["status"] == "not_deployed" and doc["deployed"]["state"] == "no_active_build"
    code, text, _ = main(capsys, "status", "--env", "staging", root)
    assert text.strip() == (
        "not deployed: environment 'staging' of app 'demo' has no active build yet; the next deploy "
        "provisions every resource (`runpod-flash-native plan --env staging` lists them)"
    )


def test_status_env_without_recorded_fingerprint(plane: ControlPlane, tmp_path: Path, capsys):
    root = _status_project(tmp_path, plane)
    del plane.builds["build-7"]["source_fingerprint"]
    code, _, err = main(capsys, "status", "--env", "production", root)
    one_error(code, err, "records no source_fingerprint", "plan --env production")


# ---------------------------------------------------------------------------
# end to end: the CLI in a child process, a fake control plane on loopback


@pytest.fixture
def server() -> Any:
    plane = make_plane()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = plane.answer(json.loads(body), self.headers.get("Authorization"))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(120, httpd.shutdown)  # stops by itself whatever happens
    watchdog.daemon = True
    watchdog.start()
    plane.url = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield plane
    finally:
        plane.release.set()
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert plane.mutations == [], f"a mutation was sent: {plane.mutations}"


def run_cli(*args: Any, cwd: Path, url: str, home: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "FLASH_"))}
    env.update({
        "PYTHONPATH": str(PACKAGE_ROOT), "HOME": str(home), "RUNPOD_API_BASE_URL": url,
        "RUNPOD_URL_MIXED_OK": "1", **extra,
    })
    return subprocess.run([sys.executable, "-m", "runpod_flash_native", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_end_to_end_with_the_key_from_the_project_env_file(server: ControlPlane, demo: Path, tmp_path: Path):
    (demo / ".env").write_text("RUNPOD_API_KEY=key-from-dotenv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    proc = run_cli("plan", "--json", "--env", "production", demo, cwd=elsewhere, url=server.url, home=home)  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["update"] == ["api"] and doc["deployed"]["api_url"] == f"{server.url}/graphql"  # type: ignore[attr-defined]
    assert server.operations == ["getFlashAppByName", "getFlashEnvironmentByName", "getFlashBuild"]
    assert set(server.authorization) == {"Bearer key-from-dotenv"}
    # read-only towards the project too: flash's import logs to ./.flash/logs when left alone
    assert sorted(p.name for p in (demo / ".flash").iterdir()) == ["flash_manifest.json"]
    assert list(elsewhere.iterdir()) == []

    (demo / ".env").unlink()
    proc = run_cli("plan", "--env", "production", demo, cwd=elsewhere, url=server.url, home=home)  # type: ignore[attr-defined]
    assert proc.returncode == 2 and proc.stderr.startswith(f"{PROG}: error: no Runpod API key"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_end_to_end_unreachable_and_slow(server: ControlPlane, demo: Path, tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    server.delay = 2.0
    proc = run_cli("plan", "--env", "production", "--timeout", "0.5", demo, cwd=demo, url=server.url,  # type: ignore[attr-defined]
                   home=home, RUNPOD_API_KEY="k")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"{PROG}: error: no answer from the Runpod API ({server.url}/graphql) within 0.5 s while "  # type: ignore[attr-defined]
        "looking up app 'demo' (--timeout SECONDS waits longer)"
    )


def test_runpod_flash_not_installed(demo: Path, capsys, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "runpod_flash", None)  # find_spec answers None, as when absent
    code, _, err = main(capsys, "plan", "--env", "production", demo)
    one_error(code, err, "runpod-flash is not installed", "pip install runpod-flash")
    code, _, err = main(capsys, "status", "--env", "production", demo)
    one_error(code, err, "runpod-flash is not installed")


def test_end_to_end_ctrl_c_while_waiting(server: ControlPlane, demo: Path, tmp_path: Path):
    """Ctrl-C during a slow answer ends the command at once (exit 130), long
    before the answer would come."""
    import signal

    home = tmp_path / "home"
    home.mkdir()
    server.delay = 20.0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "FLASH_"))}
    env.update({"PYTHONPATH": str(PACKAGE_ROOT), "HOME": str(home), "RUNPOD_API_BASE_URL": server.url,  # type: ignore[attr-defined]
                "RUNPOD_URL_MIXED_OK": "1", "RUNPOD_API_KEY": "k"})
    child = subprocess.Popen([sys.executable, "-m", "runpod_flash_native", "plan", "--json", "--env", "production",
                              "--timeout", "60", str(demo)],
                             cwd=demo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not server.operations and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.operations, "the request never arrived"
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        waited = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert waited < server.delay / 2, waited  # it did not wait for the answer
    assert err.strip().splitlines()[-1] == f"{PROG}: interrupted"
    assert json.loads(out)["error"] == "interrupted"
