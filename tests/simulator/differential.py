"""Send one scripted request sequence to two API servers and compare what a client sees.

The script is a list of :class:`Step` values (see ``test_differential.py``). :func:`run` sends
each step to both servers at once, through one raw HTTP client (urllib3): the same method,
path, headers and body bytes. Only what cannot be the same differs: the credentials (the
simulator takes a bearer token, the real server a client certificate) and the values a step
takes from an earlier answer of the same server (``{rv:NAME}``, ``{continue:NAME}``,
``{future-rv}``: resourceVersions and continue tokens are the server's own).

Each answer is reduced to a *view* of what a client reads, and the two views are compared:

* the status code;
* the headers clients read: ``Content-Type``, ``Content-Encoding``, ``Vary``, ``Retry-After``,
  ``Cache-Control``, ``X-Content-Type-Options``, and the framing (chunked or Content-Length;
  Go's net/http chunks a body over 2048 bytes that has no length, so bodies close to that size
  are not compared on it), and whether a JSON body ends with a newline;
* the body, by kind: a ``Status`` (kind, status, reason, code, details, message), a list
  (metadata, items), an object, discovery documents (see below), or plain text;
* for a watch: the events (type, object), the way the stream ended, whether resourceVersions
  increase, and when each BOOKMARK came (relative to the end of the stream).

Values that legitimately differ are normalised: timestamps become ``<time>``; a uid becomes
``uid(NAME)`` when it is that of an object a step saved as NAME, else ``<uid>``; an object's
resourceVersion becomes ``rv(NAME)`` when it equals the resourceVersion of the object a step
saved as NAME, else ``<rv>`` (so resourceVersions are compared by what they refer to, not by
value); a list's resourceVersion is compared with the server's last write (``>=last-write``) or
with a saved list's (``same-as NAME``); a BOOKMARK's with the last event before it; continue
tokens become ``<continue>``; generated names keep their prefix; ``managedFields`` keep manager,
operation, apiVersion and subresource (their ``fieldsV1`` sets are out of scope). Discovery
compares the simulator's groups and resources (name, singularName, namespaced, kind, verbs,
shortNames, categories, order) with the same entries of the real server; what only the real
server serves is noted, not counted as a difference.

A step may list *known* differences: diff paths (``*`` matches anything) with the reason they
remain (each is in docs/simulator.md). Every other difference fails the test, and so does a
known difference that no longer occurs.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

USER_AGENT = "faro-fidelity/1.0"
OPEN_DEADLINE = 30.0  # seconds a watch may take to answer with its response head
GO_CHUNKING_THRESHOLD = 2048  # net/http buffers this much before it gives up on Content-Length
_COMPARED_HEADERS = ("content-type", "content-encoding", "vary", "retry-after", "cache-control",
                     "x-content-type-options")
_TIME = "<time>"
_ABSENT = "<absent>"
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# ----------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class Step:
    """One request (or action) of the script, sent to both servers.

    ``path`` and string values in ``body`` may hold ``{ns}``, ``{rv:NAME}`` (the
    resourceVersion of the object saved as NAME), ``{listrv:NAME}``, ``{continue:NAME}`` and
    ``{future-rv}`` (far beyond the server's last write). ``save`` remembers the answer's
    object (resourceVersion, uid) or list (resourceVersion, continue token) as NAME.
    ``credentials``: ``admin`` (the kubeconfig's), ``none`` or ``bogus`` (a bearer token no
    server accepts). ``view``: ``full``; ``names`` (objects and list items reduced to their
    names: for kinds whose content the real server defaults and the simulator does not); or
    ``meta`` (names, kind, resourceVersion, generation, and whether deletionTimestamp and
    deletionGracePeriodSeconds are set).
    ``same_rv_as``: a list whose resourceVersion must equal that of the list saved as NAME.
    ``fuzzy_numbers``: digits in messages are compared as ``N`` (they quote resourceVersions).
    ``action``: instead of a request, a named action run on both servers (``compact``).
    ``known``: diff-path patterns that differ for a documented reason. ``during`` (watch
    steps): steps sent once both watches have their response head (the server has registered
    the watch), compared like any other step; the watch is compared after it ends.
    """

    name: str
    method: str = "GET"
    path: str = ""
    body: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    credentials: str = "admin"
    expect: int | None = None
    watch: bool = False
    save: str = ""
    view: str = "full"
    same_rv_as: str = ""
    fuzzy_numbers: bool = False
    action: str = ""
    known: Mapping[str, str] = field(default_factory=dict)
    during: tuple[Step, ...] = ()

    def describe(self) -> str:
        if self.action:
            return f"(action: {self.action})"
        text = f"{self.method} {self.path}"
        if self.credentials != "admin":
            text += f"  [credentials: {self.credentials}]"
        if self.headers:
            text += f"  {dict(self.headers)}"
        return text


# ----------------------------------------------------------------------------- endpoints


@dataclass
class Endpoint:
    """One API server: its address, an HTTP client with the kubeconfig's credentials, one
    without any, and the actions the script may ask for."""

    name: str
    server: str
    pool: urllib3.PoolManager
    bare_pool: urllib3.PoolManager
    auth_headers: dict[str, str]
    actions: Mapping[str, Callable[[], None]]


def endpoint(name: str, kubeconfig: str, workdir: Path,
             actions: Mapping[str, Callable[[], None]]) -> Endpoint:
    """An :class:`Endpoint` for the current context of ``kubeconfig``.

    Understands what the simulator's and cluster.py's kubeconfigs use: the CA, a client
    certificate and key, and a bearer token, each inline (``-data``) or as a file.
    """
    config = yaml.safe_load(Path(kubeconfig).read_text())
    base = Path(kubeconfig).resolve().parent
    current = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts.get(current) or next(iter(contexts.values()))
    cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
    user = {u["name"]: u["user"] for u in config.get("users") or []}.get(context.get("user"), {})
    workdir.mkdir(parents=True, exist_ok=True)

    def material(entry: Mapping[str, Any], key: str, filename: str) -> str | None:
        if entry.get(f"{key}-data"):
            path = workdir / filename
            path.write_bytes(base64.b64decode(entry[f"{key}-data"]))
            return str(path)
        if entry.get(key):
            return str(base / entry[key])
        return None

    ca = material(cluster, "certificate-authority", "ca.crt")
    cert = material(user, "client-certificate", "client.crt")
    key = material(user, "client-key", "client.key")
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca} if ca else {}
    auth_headers = {}
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    if token:
        auth_headers["Authorization"] = f"Bearer {token}"
    client_tls = dict(tls)
    if cert and key:
        client_tls.update(cert_file=cert, key_file=key)
    return Endpoint(name=name, server=cluster["server"].rstrip("/"),
                    pool=urllib3.PoolManager(maxsize=4, **client_tls),
                    bare_pool=urllib3.PoolManager(maxsize=2, **tls),
                    auth_headers=auth_headers, actions=actions)


# ----------------------------------------------------------------------------- exchanges


@dataclass
class Exchange:
    """What one server answered to one step."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # decoded (gunzipped) body; for a watch, the whole stream
    wire_length: int = 0  # bytes on the wire (before decoding)
    lines: list[tuple[float, bytes]] = field(default_factory=list)  # watch lines, arrival time
    end: str = ""  # how a watch stream ended: "clean" or "error: ..."
    elapsed: float = 0.0
    error: str = ""  # the request failed without an HTTP answer
    url: str = ""


@dataclass
class Memory:
    """What a step may refer to later, per server."""

    namespace: str
    objects: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (rv, uid)
    lists: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (rv, continue)
    last_write: int = 0

    def substitute(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            what, _, name = match.group(1).partition(":")
            if what == "ns":
                return self.namespace
            if what == "rv":
                return self.objects[name][0]
            if what == "listrv":
                return self.lists[name][0]
            if what == "continue":
                return self.lists[name][1]
            if what == "future-rv":
                return str(self.last_write + 10_000_000)
            raise KeyError(match.group(0))

        return re.sub(r"\{([a-z-]+(?::[A-Za-z0-9_.-]+)?)\}", one, text)

    def substitute_body(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.substitute(value)
        if isinstance(value, list):
            return [self.substitute_body(v) for v in value]
        if isinstance(value, dict):
            return {k: self.substitute_body(v) for k, v in value.items()}
        return value


def send(step: Step, target: Endpoint, memory: Memory,
         opened: threading.Event | None = None) -> Exchange:
    """Send ``step`` to one server and read the whole answer (a watch until it ends).

    ``opened`` is set once the response head has arrived (or the request failed).
    """
    exchange = Exchange(url=step.path)
    try:
        path = memory.substitute(step.path)
        body = memory.substitute_body(step.body)
    except KeyError as missing:  # an earlier step did not answer what this one refers to
        exchange.error = f"no saved value for {missing}"
        if opened is not None:
            opened.set()
        return exchange
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **step.headers}
    pool = target.pool
    if step.credentials == "admin":
        headers.update(target.auth_headers)
    else:
        pool = target.bare_pool
        if step.credentials == "bogus":
            headers["Authorization"] = "Bearer fidelity-not-a-valid-token"
    data: bytes | None = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = step.content_type or "application/json"
    exchange.url = path
    start = time.monotonic()
    try:
        response = pool.request(
            step.method, target.server + path, body=data, headers=headers,
            preload_content=False, decode_content=False, redirect=False, retries=False,
            timeout=urllib3.Timeout(connect=10, read=60))
    except urllib3.exceptions.HTTPError as error:
        exchange.error = f"{type(error).__name__}: {error}"
        return exchange
    finally:
        if opened is not None:
            opened.set()
    exchange.status = response.status
    exchange.headers = {k.lower(): v for k, v in response.headers.items()}
    chunks: list[bytes] = []
    buffer = b""
    try:
        for chunk in response.stream(65536, decode_content=False):
            chunks.append(chunk)
            if step.watch:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                now = time.monotonic() - start
                exchange.lines.extend((now, line) for line in complete if line.strip())
        exchange.end = "clean"
    except (urllib3.exceptions.HTTPError, OSError) as error:
        exchange.end = f"error: {type(error).__name__}"
    finally:
        response.release_conn()
    exchange.elapsed = time.monotonic() - start
    raw = b"".join(chunks)
    exchange.wire_length = len(raw)
    if exchange.headers.get("content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    exchange.body = raw
    if buffer.strip():
        exchange.lines.append((exchange.elapsed, buffer))
    return exchange


# ----------------------------------------------------------------------------- views


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class Viewer:
    """Reduces one server's answers to comparable views, and remembers what steps save."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    # -- normalising single values

    def rv_label(self, value: Any) -> str:
        """An object's resourceVersion: the saved object it equals, or ``<rv>``."""
        for name, (rv, _) in reversed(list(self.memory.objects.items())):
            if rv == value:
                return f"rv({name})"
        return "<rv>"

    def uid_label(self, value: Any) -> str:
        for name, (_, uid) in self.memory.objects.items():
            if uid == value:
                return f"uid({name})"
        return "<uid>"

    def list_rv_label(self, value: Any, same_as: str) -> str:
        if not isinstance(value, str) or not value.isdigit():
            return f"<not a resourceVersion: {value!r}>"
        if same_as:
            wanted = self.memory.lists.get(same_as, ("", ""))[0]
            return f"same-as {same_as}" if value == wanted else f"not same-as {same_as}"
        return ">=last-write" if int(value) >= self.memory.last_write else "<last-write"

    # -- bodies

    def object_view(self, obj: Any, view: str = "full") -> Any:
        if not isinstance(obj, dict):
            return obj
        if view in ("names", "meta"):
            metadata = obj.get("metadata") or {}
            reduced = {k: v for k, v in (("name", metadata.get("name")),
                                         ("namespace", metadata.get("namespace"))) if v}
            if view == "meta":
                reduced.update(
                    kind=obj.get("kind", _ABSENT),
                    resourceVersion=self.rv_label(metadata.get("resourceVersion")),
                    generation=metadata.get("generation", _ABSENT),
                    deletionTimestamp="deletionTimestamp" in metadata,
                    deletionGracePeriodSeconds=metadata.get("deletionGracePeriodSeconds",
                                                            _ABSENT))
            return reduced
        obj = copy.deepcopy(obj)
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            if "resourceVersion" in metadata:
                metadata["resourceVersion"] = self.rv_label(metadata["resourceVersion"])
            if "uid" in metadata:
                metadata["uid"] = self.uid_label(metadata["uid"])
            for key in ("creationTimestamp", "deletionTimestamp"):
                if key in metadata:
                    metadata[key] = _TIME
            if isinstance(metadata.get("managedFields"), list):
                metadata["managedFields"] = [
                    {k: e[k] for k in ("manager", "operation", "apiVersion", "subresource")
                     if k in e} for e in metadata["managedFields"]]
            prefix = metadata.get("generateName")
            name = metadata.get("name")
            if prefix and isinstance(name, str) and name.startswith(prefix):
                metadata["name"] = f"{prefix}<{len(name) - len(prefix)} generated>"
        return obj

    def status_view(self, status: dict[str, Any], fuzzy_numbers: bool) -> dict[str, Any]:
        view = copy.deepcopy(status)
        metadata = view.get("metadata")
        if isinstance(metadata, dict) and "continue" in metadata:
            metadata["continue"] = "<continue>"
        details = view.get("details")
        if isinstance(details, dict) and "uid" in details:
            details["uid"] = self.uid_label(details["uid"])
        if isinstance(view.get("message"), str):
            view["message"] = _UID.sub(lambda m: self.uid_label(m.group(0)), view["message"])
            if fuzzy_numbers:
                view["message"] = re.sub(r"\d+", "N", view["message"])
        return view

    def list_view(self, body: dict[str, Any], step: Step) -> dict[str, Any]:
        view = {k: v for k, v in body.items() if k not in ("metadata", "items")}
        metadata = dict(body.get("metadata") or {})
        if "resourceVersion" in metadata:
            metadata["resourceVersion"] = self.list_rv_label(metadata["resourceVersion"],
                                                             step.same_rv_as)
        if "continue" in metadata:
            metadata["continue"] = "<continue>"
        view["metadata"] = metadata
        view["items"] = [self.object_view(item, step.view) for item in body.get("items") or []]
        return view

    def body_view(self, step: Step, exchange: Exchange) -> Any:
        body = _json(exchange.body)
        if body is None:
            return {"text": exchange.body.decode(errors="replace")}
        if not isinstance(body, dict):
            return body
        kind = body.get("kind")
        if kind == "Status":
            return self.status_view(body, step.fuzzy_numbers)
        if step.path == "/version":
            return {"fields": sorted(body), "major": body.get("major"),
                    "minor": body.get("minor"),
                    "gitVersion": re.sub(r"\.\d+$", ".N", str(body.get("gitVersion")))}
        if kind == "APIVersions":
            body = copy.deepcopy(body)
            for entry in body.get("serverAddressByClientCIDRs") or []:
                entry["serverAddress"] = "<address>"
            return body
        if kind == "APIResourceList":
            resources = body.get("resources") or []
            return {**{k: v for k, v in body.items() if k != "resources"},
                    "resources": {r.get("name"): {k: v for k, v in r.items()
                                                  if k != "storageVersionHash"}
                                  for r in resources},
                    "order": [r.get("name") for r in resources]}
        if kind == "APIGroupList":
            groups = body.get("groups") or []
            return {**{k: v for k, v in body.items() if k != "groups"},
                    "groups": {g.get("name"): g for g in groups},
                    "order": [g.get("name") for g in groups]}
        if isinstance(body.get("items"), list):
            return self.list_view(body, step)
        return self.object_view(body, step.view)

    def watch_view(self, step: Step, exchange: Exchange) -> dict[str, Any]:
        events = []
        rvs: list[int] = []
        last_rv = self.memory.last_write
        bookmarks = []
        for arrived, line in exchange.lines:
            event = _json(line)
            if not isinstance(event, dict) or "type" not in event:
                events.append({"malformed": line[:80].decode(errors="replace")})
                continue
            kind, obj = event["type"], event.get("object") or {}
            metadata = obj.get("metadata") or {}
            rv = metadata.get("resourceVersion", "")
            if kind == "ERROR":
                events.append({"type": kind, "object": self.status_view(obj, True)})
                continue
            if kind == "BOOKMARK":
                mark = copy.deepcopy(obj)
                relation = ">=last-event" if rv.isdigit() and int(rv) >= last_rv \
                    else f"<last-event ({rv!r})"
                mark["metadata"]["resourceVersion"] = relation
                before_end = exchange.elapsed - arrived
                if before_end < 0.9 and arrived >= 0.5 and not metadata.get("annotations"):
                    # The real server's bookmark timer ticks every second (with jitter), so a
                    # progress bookmark may or may not make it into a stream's last second.
                    continue
                # The real server files a watcher's pre-timeout bookmark under the whole
                # second of (deadline - 2 s) and its timer ticks each second, so it comes 1
                # to 3.3 s before the end, and at times once more within that window.
                when = ("at once" if arrived < 0.5 else "1-3.3 s before the end"
                        if 0.9 <= before_end <= 3.3 else f"{before_end:.1f} s before the end")
                # The real server may send a second one within a second (its bookmark timer
                # ticks each second, and the pre-timeout time can still be ahead): one counts.
                if events and events[-1] == {"type": kind, "object": mark} \
                        and bookmarks[-1] == when:
                    continue
                events.append({"type": kind, "object": mark})
                bookmarks.append(when)
                continue
            if rv.isdigit():
                rvs.append(int(rv))
                last_rv = max(last_rv, int(rv))
            events.append({"type": kind, "object": self.object_view(obj, step.view)})
        return {"events": events, "end": exchange.end,
                "resourceVersions increase": rvs == sorted(set(rvs)),
                "bookmarks": bookmarks}

    def view(self, step: Step, exchange: Exchange) -> dict[str, Any]:
        if exchange.error:
            return {"error": exchange.error}
        headers = {name: exchange.headers.get(name, "<absent>") for name in _COMPARED_HEADERS}
        if "transfer-encoding" in exchange.headers:
            framing = exchange.headers["transfer-encoding"]
        elif "content-length" in exchange.headers:
            framing = "content-length"
        else:
            framing = "until close"
        if not step.watch:
            # Bodies differ in size (discovery lists more on the real server), so what is
            # compared is whether each is framed as Go frames a body of its size.
            go = "chunked" if exchange.wire_length > GO_CHUNKING_THRESHOLD else "content-length"
            framing = ("as Go frames its size" if framing == go else
                       f"{framing} for {exchange.wire_length} bytes")
        headers["framing"] = framing
        view: dict[str, Any] = {"code": exchange.status, "headers": headers}
        if step.watch:
            view.update(self.watch_view(step, exchange))
        else:
            view["body"] = self.body_view(step, exchange)
            if exchange.headers.get("content-type", "").startswith("application/json"):
                view["ends with a newline"] = exchange.body.endswith(b"\n")
        return view

    def remember(self, step: Step, exchange: Exchange) -> None:
        """Record the answer's resourceVersions (and what ``save`` asks for)."""
        body = _json(exchange.body) if not step.watch else None
        if not isinstance(body, dict):
            return
        metadata = body.get("metadata") or {}
        if body.get("kind") == "Status" and step.save and metadata.get("continue"):
            self.memory.lists[step.save] = ("", metadata["continue"])  # a 410's fresh token
        if not 200 <= exchange.status < 300:
            return
        rv = metadata.get("resourceVersion", "")
        if isinstance(body.get("items"), list):
            if step.save:
                self.memory.lists[step.save] = (rv, metadata.get("continue", ""))
            return
        if body.get("kind") == "Status":
            return
        if step.method in ("POST", "PUT", "PATCH", "DELETE") and rv.isdigit():
            self.memory.last_write = max(self.memory.last_write, int(rv))
        if step.save:
            self.memory.objects[step.save] = (rv, metadata.get("uid", ""))


# ----------------------------------------------------------------------------- comparison



def differences(sim: Any, real: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, simulator value, real value) for every leaf where the views differ."""
    if isinstance(sim, dict) and isinstance(real, dict):
        found = []
        for key in list(sim) + [k for k in real if k not in sim]:
            found += differences(sim.get(key, _ABSENT), real.get(key, _ABSENT),
                                 f"{path}.{key}" if path else str(key))
        return found
    if isinstance(sim, list) and isinstance(real, list) and len(sim) == len(real):
        found = []
        for index, (a, b) in enumerate(zip(sim, real, strict=True)):
            found += differences(a, b, f"{path}[{index}]")
        return found
    return [] if sim == real else [(path, sim, real)]


def _matches(pattern: str, path: str) -> bool:
    """Whether a diff path matches a known-difference pattern (``*``: any characters)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), path) is not None


def _pair_discovery(sim: dict[str, Any], real: dict[str, Any]) -> list[str]:
    """Restrict the real server's discovery view to what the simulator serves; the notes
    name what only the real server has."""
    notes = []
    sim_body, real_body = sim.get("body"), real.get("body")
    if not (isinstance(sim_body, dict) and isinstance(real_body, dict)):
        return notes
    for key in ("resources", "groups"):
        if isinstance(sim_body.get(key), dict) and isinstance(real_body.get(key), dict):
            ours = sim_body[key]
            extra = sorted(k for k in real_body[key] if k not in ours)
            if extra:
                notes.append(f"only the real server serves {len(extra)} {key}: "
                             + ", ".join(extra))
            real_body[key] = {k: v for k, v in real_body[key].items() if k in ours}
            real_body["order"] = [k for k in real_body["order"] if k in ours]
    return notes


@dataclass
class Outcome:
    step: Step
    requests: dict[str, str]
    diffs: list[tuple[str, Any, Any, str]]  # path, sim, real, known reason ("" if unknown)
    stale_known: list[str]
    notes: list[str]
    elapsed: dict[str, float]
    views: dict[str, Any] = field(default_factory=dict)  # sim and real, as compared

    @property
    def failed(self) -> bool:
        return any(not reason for *_, reason in self.diffs) or bool(self.stale_known)


def compare(step: Step, views: dict[str, dict[str, Any]]) -> tuple[
        list[tuple[str, Any, Any, str]], list[str], list[str]]:
    notes = _pair_discovery(views["sim"], views["real"])
    found = []
    used: set[str] = set()
    for path, a, b in differences(views["sim"], views["real"]):
        reason = ""
        for pattern, why in step.known.items():
            if _matches(pattern, path):
                reason = why
                used.add(pattern)
                break
        found.append((path, a, b, reason))
    stale = [pattern for pattern in step.known if pattern not in used]
    for name, view in views.items():
        if step.expect is not None and view.get("code") != step.expect:
            found.append((f"expected {step.expect} ({name})", views["sim"].get("code"),
                          views["real"].get("code"), ""))
    return found, stale, notes


def run(script: list[Step], sim: Endpoint, real: Endpoint, namespace: str) -> list[Outcome]:
    """Run every step on both servers (at the same time) and compare the answers."""
    targets = {"sim": sim, "real": real}
    viewers = {name: Viewer(Memory(namespace)) for name in targets}
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="fidelity") as pool:

        def one(step: Step) -> None:
            if step.action:
                futures = {name: pool.submit(target.actions[step.action])
                           for name, target in targets.items()}
                for future in futures.values():
                    future.result()
                outcomes.append(Outcome(step, {}, [], [], [], {}))
                return
            opened = {name: threading.Event() for name in targets}
            sent = {name: pool.submit(send, step, target, viewers[name].memory, opened[name])
                    for name, target in targets.items()}
            if step.during:
                for name, event in opened.items():
                    if not event.wait(OPEN_DEADLINE):
                        raise AssertionError(f"{step.name}: no response head from {name} "
                                             f"within {OPEN_DEADLINE} s")
                for inner in step.during:
                    one(inner)
            exchanges = {name: future.result() for name, future in sent.items()}
            views = {name: viewers[name].view(step, exchange)
                     for name, exchange in exchanges.items()}
            for name, exchange in exchanges.items():
                viewers[name].remember(step, exchange)
            diffs, stale, notes = compare(step, views)
            outcomes.append(Outcome(
                step, {name: f"{step.method} {e.url}" for name, e in exchanges.items()},
                diffs, stale, notes, {name: e.elapsed for name, e in exchanges.items()}, views))

        for step in script:
            one(step)
    return outcomes


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def report(outcomes: list[Outcome]) -> str:
    """Every step, its requests and its differences (unknown ones marked ``DIFF``)."""
    lines = []
    for outcome in outcomes:
        step = outcome.step
        mark = "FAIL" if outcome.failed else ("known" if outcome.diffs else "same")
        timing = " ".join(f"{n} {t:.2f}s" for n, t in outcome.elapsed.items())
        lines.append(f"[{mark:5}] {step.name}: {step.describe()}  {timing}".rstrip())
        for path, a, b, reason in outcome.diffs:
            tag = f"known ({reason})" if reason else "DIFF"
            lines.append(f"          {tag} {path}:\n              sim:  {_short(a)}\n"
                         f"              real: {_short(b)}")
        for pattern in outcome.stale_known:
            lines.append(f"          STALE known difference no longer seen: {pattern!r} "
                         f"({step.known[pattern]})")
        for note in outcome.notes:
            lines.append(f"          note: {note}")
    return "\n".join(lines)


__all__ = ["Endpoint", "Outcome", "Step", "endpoint", "report", "run"]
