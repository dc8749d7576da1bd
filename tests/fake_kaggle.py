"""A local stand-in for the Kaggle API, enough for the real ``kaggle`` CLI (2.2.5) to submit to.

How the CLI is pointed here without touching port 80 or the internet:
``KAGGLE_API_ENVIRONMENT=LOCALHOST`` makes kagglesdk call ``http://localhost/api/v1/SERVICE/METHOD``
(RPC style, POST with a JSON body), and ``HTTP_PROXY``/``http_proxy`` (honoured by requests)
send every plain-HTTP request to this server, which reads the target from the absolute URL of
the proxied request line. ``HTTPS_PROXY`` points here too, so a stray https request fails
locally instead of leaving the machine. :meth:`FakeKaggle.env` builds that environment with a
temporary HOME.

Endpoints (what ``kaggle competitions submit`` and ``kaggle kernels push`` call):

- ``security.OAuthService/IntrospectToken``: access tokens (``KAGGLE_API_TOKEN``) -> username;
- ``competitions.CompetitionApiService/StartSubmissionUpload`` -> ``{token, createUrl}``;
- ``PUT createUrl``: the file's bytes;
- ``competitions.CompetitionApiService/CreateSubmission`` (``blobFileTokens``) -> ``{message, ref}``;
- ``competitions.CompetitionApiService/CreateCodeSubmission`` (kernel owner/slug/version);
- ``competitions.CompetitionApiService/GetSubmissionLimits`` (printed after a submission);
- ``kernels.KernelsApiService/SaveKernel`` (``kaggle kernels push``) -> ``{ref, url, versionNumber}``;
  each push gets the next version number and starts a session;
- ``kernels.KernelsApiService/GetKernelSessionStatus`` (``kaggle kernels status``): the session's
  status, the next one of ``kernel_scripts[OWNER/SLUG]`` (e.g. ``["queued", "running", "complete"]``,
  the last one repeats; default ``["complete"]``) at each call, with ``kernel_failures[OWNER/SLUG]``
  as the failure message of an ``error``;
- ``kernels.KernelsApiService/ListKernelSessionOutput`` (``kaggle kernels output``): the files of
  ``kernel_outputs[OWNER/SLUG]`` (``{name: bytes}``) in pages of at most ``output_page_size``,
  linked by page tokens, with ``kernel_logs[OWNER/SLUG]`` as the log; ``GET /output/OWNER/SLUG/NAME``
  serves a file;
- ``competitions.CompetitionApiService/DownloadDataFiles`` (``kaggle competitions download``) ->
  a 302 redirect to ``GET /files/COMPETITION.zip``, which serves ``data_files[COMPETITION]``.

``max_active`` is the most kernel sessions that ran at once: a session counts from its push
until a status call answered complete, error or cancelled.

Every API request must carry the test's credentials (HTTP Basic user:key, or Bearer token),
else 401. ``fail[METHOD or "upload"] = (status, message)`` makes one endpoint answer an error:
with a message as Kaggle's JSON error body ``{"code", "message"}``, without one as a bare status.
``fail_first[METHOD or "upload"] = [(status, message), ...]`` does that for the next requests
to the endpoint only, one entry each, then it answers normally; status ``DROP`` closes the
connection without an answer (a connection reset as the client sees it).
``kernel_error`` makes SaveKernel refuse a push the way Kaggle does (200 with an ``error`` field).
"""

import base64
import dataclasses
import http
import http.server
import json
import socket
import threading
import urllib.parse

API_PREFIX = "/api/v1/"
UPLOAD_PREFIX = "/upload/"
FILES_PREFIX = "/files/"
OUTPUT_PREFIX = "/output/"
ENDED = ("complete", "error", "cancel_requested", "cancel_acknowledged")
DROP = 0  # a status in fail_first: close the connection without answering


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes

    @property
    def endpoint(self):
        """``StartSubmissionUpload`` for an API call, ``upload`` for a file PUT."""
        if self.path.startswith(API_PREFIX):
            return self.path.rsplit("/", 1)[-1]
        if self.path.startswith(UPLOAD_PREFIX):
            return "upload"
        if self.path.startswith(OUTPUT_PREFIX):
            return "output"
        return "files" if self.path.startswith(FILES_PREFIX) else self.path

    def json(self):
        return json.loads(self.body or b"{}")


class FakeKaggle:
    """The fake API server on 127.0.0.1 (a free port), run in a thread; use as a context manager."""

    def __init__(self, username="alice", key="k3y-0123456789abcdef", token="t0ken-fedcba9876543210",
                 version=7):
        self.username, self.key, self.token = username, key, token
        self.next_kernel_version = version
        self.requests = []  # every request, in order
        self.uploads = {}  # upload token -> bytes
        self.submissions = []  # CreateSubmission bodies whose upload completed
        self.code_submissions = []
        self.kernels = []  # SaveKernel bodies
        self.fail = {}
        self.fail_first = {}  # endpoint -> [(status, message), ...], used up one per request
        self.data_files = {}  # competition -> bytes of its data zip (DownloadDataFiles)
        self.kernel_error = None  # SaveKernel answers 200 with this "error" (how Kaggle refuses a push)
        self.kernel_scripts = {}  # OWNER/SLUG -> statuses answered by successive status calls
        self.kernel_failures = {}  # OWNER/SLUG -> failure message of an errored session
        self.kernel_outputs = {}  # OWNER/SLUG -> {file name: bytes}
        self.kernel_logs = {}  # OWNER/SLUG -> the session's log
        self.output_page_size = 2
        self.sessions = {}  # OWNER/SLUG -> {"version", "polls", "active"} of its latest push
        self.max_active = 0
        self._lock = threading.Lock()
        self._server = None

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                fake._handle(self)

            do_PUT = do_GET = do_POST

            def do_CONNECT(self):
                self.send_error(405, "the fake Kaggle server does not tunnel https")

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self, home, base=None, **extra):
        """An environment for the kaggle CLI: only PATH-like basics from ``base``, HOME=``home``,
        no KAGGLE_* or proxy settings of the caller, all HTTP(S) routed here."""
        base = dict(base or {})
        keep = {k: v for k, v in base.items()
                if not k.upper().startswith(("KAGGLE_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"))
                and k not in ("REQUEST_METHOD", "XDG_CONFIG_HOME")}
        keep.update({
            "HOME": str(home),
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "HTTP_PROXY": self.url, "http_proxy": self.url,
            "HTTPS_PROXY": self.url, "https_proxy": self.url,
            "NO_PROXY": "", "no_proxy": "",
        })
        keep.update({k: str(v) for k, v in extra.items()})
        return keep

    def calls(self, endpoint):
        return [r for r in self.requests if r.endpoint == endpoint]

    # --- request handling ------------------------------------------------------------------

    def _authorized(self, headers):
        auth = headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        return auth in (basic, f"Bearer {self.token}")

    def _handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(handler.path).path
        request = Request(handler.command, path, dict(handler.headers), body)
        with self._lock:
            self.requests.append(request)
        status, payload = self._respond(request)
        if status == DROP:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)  # the client sees the connection dropped
            return
        if isinstance(payload, bytes):
            handler.send_response(status)
            handler.send_header("Content-Type", "application/zip")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if status == 302:
            handler.send_response(status)
            handler.send_header("Location", payload["location"])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if payload is None:  # a bare error status, as a proxy or load balancer sends it
            data, kind = http.HTTPStatus(status).phrase.encode(), "text/plain"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _respond(self, request):
        endpoint = request.endpoint
        with self._lock:
            queued = self.fail_first.get(endpoint)
            first = queued.pop(0) if queued else None
        if first is not None:
            status, message = first
            return status, ({"code": status, "message": message} if message else None)
        if endpoint in self.fail:
            status, message = self.fail[endpoint]
            return status, ({"code": status, "message": message} if message else None)
        if request.method == "PUT" and endpoint == "upload":
            self.uploads[request.path[len(UPLOAD_PREFIX):]] = request.body
            return 200, {}
        if request.method == "GET" and endpoint == "output":
            owner, slug, name = request.path[len(OUTPUT_PREFIX):].split("/", 2)
            data = self.kernel_outputs.get(f"{owner}/{slug}", {}).get(name)
            return (200, data) if data is not None else (404, {"code": 404, "message": f"no output {name}"})
        if request.method == "GET" and endpoint == "files":
            name = request.path[len(FILES_PREFIX):]
            data = self.data_files.get(name[:-len(".zip")]) if name.endswith(".zip") else None
            return (200, data) if data is not None else (404, {"code": 404, "message": f"no file {name}"})
        if request.method != "POST" or not request.path.startswith(API_PREFIX):
            return 404, {"code": 404, "message": f"no such endpoint {request.method} {request.path}"}
        if endpoint == "IntrospectToken":
            active = request.json().get("token") == self.token
            return 200, {"active": active, "username": self.username if active else ""}
        if not self._authorized(request.headers):
            return 401, {"code": 401, "message": "Unauthenticated"}
        body = request.json()
        if endpoint == "StartSubmissionUpload":
            token = f"blob{len(self.requests)}"
            return 200, {"token": token, "createUrl": f"http://localhost{UPLOAD_PREFIX}{token}"}
        if endpoint == "CreateSubmission":
            if body.get("blobFileTokens") not in self.uploads:
                return 400, {"code": 400, "message": "no uploaded file for this submission"}
            self.submissions.append(body)
            return 200, {"message": "Successfully submitted to I'm Something of a Painter Myself",
                         "ref": 1000 + len(self.submissions)}
        if endpoint == "CreateCodeSubmission":
            self.code_submissions.append(body)
            return 200, {"message": "Successfully submitted to I'm Something of a Painter Myself",
                         "ref": 2000 + len(self.code_submissions)}
        if endpoint == "GetSubmissionLimits":
            return 200, {"numToday": len(self.submissions), "numAllowedNow": 5}
        if endpoint == "SaveKernel":
            if self.kernel_error:
                return 200, {"error": self.kernel_error}
            self.kernels.append(body)
            slug = body.get("slug", "")
            with self._lock:
                version = self.next_kernel_version
                self.next_kernel_version += 1
                self.sessions[slug] = {"version": version, "polls": 0, "active": True}
                active = sum(session["active"] for session in self.sessions.values())
                self.max_active = max(self.max_active, active)
            return 200, {"ref": f"/code/{slug}", "url": f"http://localhost/code/{slug}",
                         "versionNumber": version}
        if endpoint in ("GetKernelSessionStatus", "ListKernelSessionOutput"):
            kernel = f"{body.get('userName')}/{body.get('kernelSlug')}"
            session = self.sessions.get(kernel)
            label = body.get("versionLabel")
            if session is None or label not in (None, f"v{session['version']}"):
                return 404, {"code": 404, "message": f"no session of {kernel} {label or ''}"}
            if endpoint == "GetKernelSessionStatus":
                return 200, self._status(kernel, session)
            return 200, self._output_page(kernel, body)
        if endpoint == "DownloadDataFiles":
            competition = body.get("competitionName")
            if competition not in self.data_files:
                return 404, {"code": 404, "message": f"no competition {competition}"}
            return 302, {"location": f"http://localhost{FILES_PREFIX}{competition}.zip"}
        return 404, {"code": 404, "message": f"no such endpoint {endpoint}"}

    def _status(self, kernel, session):
        script = self.kernel_scripts.get(kernel, ["complete"])
        with self._lock:
            status = script[min(session["polls"], len(script) - 1)]
            session["polls"] += 1
            if status in ENDED:
                session["active"] = False
        answer = {"status": status.upper()}
        if status == "error" and kernel in self.kernel_failures:
            answer["failureMessage"] = self.kernel_failures[kernel]
        return answer

    def _output_page(self, kernel, body):
        names = sorted(self.kernel_outputs.get(kernel, {}))
        start = int(body.get("pageToken") or 0)
        end = start + min(int(body.get("pageSize") or self.output_page_size), self.output_page_size)
        owner, slug = kernel.split("/")
        files = [{"fileName": name, "url": f"http://localhost{OUTPUT_PREFIX}{owner}/{slug}/{name}"}
                 for name in names[start:end]]
        answer = {"files": files, "nextPageToken": str(end) if end < len(names) else ""}
        if kernel in self.kernel_logs:
            answer["log"] = self.kernel_logs[kernel]
        return answer
