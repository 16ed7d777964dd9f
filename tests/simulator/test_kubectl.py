"""Real kubectl against the simulator (or the FARO_E2E_KUBECONFIG cluster), with only a kubeconfig.

One cluster serves the whole module; every test works in a namespace of its own
(or on uniquely named cluster-scoped objects) and removes it afterwards.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from faro.testing._tls import make_certificates
from tests.integration.kube import DEADLINE, Kubectl, real_cluster, target_kubeconfig, unique

pytestmark = [pytest.mark.kubectl, pytest.mark.cluster]


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    # kubectl delete -f deletes a namespace and then its content one by one; the real
    # namespace controller takes longer than that to start emptying it, so must the simulator.
    with target_kubeconfig(namespace_cleanup_delay=1.0) as kubeconfig:
        yield Kubectl(kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


@pytest.fixture
def ns_name(kubectl: Kubectl) -> Iterator[str]:
    """A unique namespace name, deleted (if it exists) after the test."""
    name = unique("faro-kubectl")
    yield name
    kubectl.run("delete", "namespace", name, "--ignore-not-found", "--wait=false")


@pytest.fixture
def ns(kubectl: Kubectl, ns_name: str) -> str:
    """A unique namespace that exists for the test."""
    kubectl.apply(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns_name}\n")
    return ns_name


def configmap(name: str, namespace: str, **data: str) -> str:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "faro-test"}},
        "data": data,
    }).decode()


def app_manifest(namespace: str, image: str = "nginx:1.25",
                 env: tuple[tuple[str, str], ...] = (("MODE", "fast"), ("DEBUG", "0"))) -> str:
    """Namespace, ConfigMap, Secret (stringData), Service, Deployment and Job, as YAML.

    Nothing in it starts a container on a real cluster: no replicas, a suspended Job.
    """
    env_yaml = "".join(f"""
        - name: {key}
          value: "{value}\"""" for key, value in env)
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {namespace}
data:
  mode: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {namespace}
stringData:
  password: hunter2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {namespace}
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
        env:{env_yaml}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  namespace: {namespace}
spec:
  suspend: true
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: busybox:1.36
        command: ["true"]
"""


APP_OBJECTS = ["namespace/{ns}", "configmap/settings", "secret/creds", "service/web",
               "deployment.apps/web", "job.batch/once"]


def outcome(lines: list[str], namespace: str) -> dict[str, str]:
    """``{"configmap/settings": "created", ...}`` from kubectl apply's output."""
    result = {}
    for line in lines:
        ref, _, verb = line.partition(" ")
        result[ref.replace(namespace, "{ns}")] = verb
    return result


# ----------------------------------------------------------------------------- discovery


def test_api_resources_lists_builtin_resources_with_short_names_versions_scopes_and_kinds(
    kubectl: Kubectl,
) -> None:
    lines = kubectl.ok("api-resources").splitlines()
    header = lines[0]
    columns = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    starts = [header.index(column) for column in columns]
    rows = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[(cells[0], cells[2])] = (cells[1], cells[3], cells[4])
    expected = {
        ("configmaps", "v1"): ("cm", "true", "ConfigMap"),
        ("endpoints", "v1"): ("ep", "true", "Endpoints"),
        ("events", "v1"): ("ev", "true", "Event"),
        ("namespaces", "v1"): ("ns", "false", "Namespace"),
        ("pods", "v1"): ("po", "true", "Pod"),
        ("secrets", "v1"): ("", "true", "Secret"),
        ("serviceaccounts", "v1"): ("sa", "true", "ServiceAccount"),
        ("services", "v1"): ("svc", "true", "Service"),
        ("customresourcedefinitions", "apiextensions.k8s.io/v1"):
            ("crd,crds", "false", "CustomResourceDefinition"),
        ("daemonsets", "apps/v1"): ("ds", "true", "DaemonSet"),
        ("deployments", "apps/v1"): ("deploy", "true", "Deployment"),
        ("replicasets", "apps/v1"): ("rs", "true", "ReplicaSet"),
        ("statefulsets", "apps/v1"): ("sts", "true", "StatefulSet"),
        ("cronjobs", "batch/v1"): ("cj", "true", "CronJob"),
        ("jobs", "batch/v1"): ("", "true", "Job"),
        ("leases", "coordination.k8s.io/v1"): ("", "true", "Lease"),
    }
    assert {key: rows.get(key) for key in expected} == expected


def test_version_shows_the_server_version(kubectl: Kubectl) -> None:
    versions = orjson.loads(kubectl.ok("version", "-o", "json"))
    server = versions["serverVersion"]
    assert server["major"] == "1"
    assert re.fullmatch(r"v1\.\d+\.\d+.*", server["gitVersion"]), server
    assert "Server Version: v1." in kubectl.ok("version")


# ------------------------------------------------------------------------- apply/delete -f


def test_apply_of_a_multi_document_manifest_creates_every_object(
    kubectl: Kubectl, ns_name: str, tmp_path: Path,
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(app_manifest(ns_name))

    lines = kubectl.ok("apply", "-f", str(path)).splitlines()

    assert outcome(lines, ns_name) == dict.fromkeys(APP_OBJECTS, "created")

    secret = kubectl.json("get", "secret", "creds", "-n", ns_name)
    assert secret["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    assert "stringData" not in secret
    deployment = kubectl.json("get", "deployment", "web", "-n", ns_name)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert kubectl.json("get", "job", "once", "-n", ns_name)["spec"]["suspend"] is True


def _versions(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """resourceVersions of the manifest's objects that no controller writes to."""
    items = kubectl.json("get", "configmap/settings", "secret/creds", "service/web",
                         "-n", namespace)["items"]
    items.append(kubectl.json("get", "namespace", namespace))
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in items}


def test_reapplying_an_unchanged_manifest_changes_nothing(
    kubectl: Kubectl, ns_name: str,
) -> None:
    manifest = app_manifest(ns_name)
    kubectl.apply(manifest)
    before = _versions(kubectl, ns_name)

    result = outcome(kubectl.apply(manifest), ns_name)

    # The Secret's stringData never appears in the stored object, so kubectl's three-way
    # diff always sends it and reports "configured" (as against a real server); the
    # server's write changes nothing, which the unchanged resourceVersion shows.
    assert result.pop("secret/creds") in ("configured", "unchanged")
    assert result == dict.fromkeys([o for o in APP_OBJECTS if o != "secret/creds"], "unchanged")
    assert _versions(kubectl, ns_name) == before


def test_reapplying_a_modified_manifest_leaves_exactly_the_new_container_spec(
    kubectl: Kubectl, ns_name: str,
) -> None:
    kubectl.apply(app_manifest(ns_name))

    lines = kubectl.apply(app_manifest(ns_name, image="nginx:1.27", env=(("MODE", "fast"),)))

    assert "deployment.apps/web configured" in lines
    assert "configmap/settings unchanged" in lines
    deployment = kubectl.json("get", "deployment", "web", "-n", ns_name)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [{k: c.get(k) for k in ("name", "image", "env")} for c in containers] == [
        {"name": "web", "image": "nginx:1.27", "env": [{"name": "MODE", "value": "fast"}]}]
    assert deployment["metadata"]["generation"] == 2


def test_delete_f_of_the_manifest_removes_everything_and_the_namespace_goes(
    kubectl: Kubectl, ns_name: str,
) -> None:
    manifest = app_manifest(ns_name)
    kubectl.apply(manifest)

    done = kubectl.run("delete", "-f", "-", stdin=manifest)

    assert done.returncode == 0, done.stderr
    assert set(done.stdout.splitlines()) == {
        f'namespace "{ns_name}" deleted', 'configmap "settings" deleted',
        'secret "creds" deleted', 'service "web" deleted',
        'deployment.apps "web" deleted', 'job.batch "once" deleted',
    }
    kubectl.ok("wait", "--for=delete", f"namespace/{ns_name}", f"--timeout={DEADLINE:.0f}s")
    gone = kubectl.run("get", "namespace", ns_name)
    assert gone.returncode == 1
    assert f'namespaces "{ns_name}" not found' in gone.stderr


# ------------------------------------------------------------------------------------- get


def test_get_yaml_and_json_show_the_fields_the_server_sets(
    kubectl: Kubectl, ns_name: str,
) -> None:
    kubectl.apply(app_manifest(ns_name))

    stored = yaml.safe_load(kubectl.ok("get", "configmap", "settings", "-n", ns_name,
                                       "-o", "yaml"))
    metadata = stored["metadata"]
    assert stored["data"] == {"mode": "fast"}
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        metadata["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["creationTimestamp"])
    assert metadata["resourceVersion"].isdigit()
    assert "kubectl.kubernetes.io/last-applied-configuration" in metadata["annotations"]

    service = kubectl.json("get", "service", "web", "-n", ns_name)
    ipaddress.ip_address(service["spec"]["clusterIP"])  # assigned by the server
    namespace = kubectl.json("get", "namespace", ns_name)
    assert namespace["status"]["phase"] == "Active"
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == ns_name


def test_get_of_a_missing_object_prints_not_found_and_exits_1(
    kubectl: Kubectl, ns: str,
) -> None:
    done = kubectl.run("get", "configmap", "nope", "-n", ns)

    assert done.returncode == 1
    assert done.stdout == ""
    assert 'Error from server (NotFound): configmaps "nope" not found' in done.stderr


def test_get_watch_prints_changes_made_after_it_started(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply(configmap("before", ns, a="1"))
    watch = kubectl.follow("get", "configmaps", "-n", ns, "--watch", "--output-watch-events")
    try:
        def event(kind: str, name: str) -> str:
            return watch.wait_for(lambda line: line.split()[:2] == [kind, name])

        event("ADDED", "before")  # the initial list is printed; later changes come from the watch
        kubectl.apply(configmap("after", ns, a="1"))
        event("ADDED", "after")
        kubectl.ok("label", "configmap", "after", "-n", ns, "stage=two")
        event("MODIFIED", "after")
        kubectl.ok("delete", "configmap", "after", "-n", ns)
        event("DELETED", "after")
        assert watch.process.poll() is None, "kubectl get -w ended by itself"
    finally:
        watch.close()


# ----------------------------------------------------------------------------------- label


def test_label_adds_and_removes_labels(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply(configmap("tagged", ns, a="1"))

    assert kubectl.ok("label", "configmap", "tagged", "-n", ns, "tier=gold").strip() == \
        "configmap/tagged labeled"
    labels = kubectl.json("get", "configmap", "tagged", "-n", ns)["metadata"]["labels"]
    assert labels == {"app": "faro-test", "tier": "gold"}
    selected = kubectl.ok("get", "configmaps", "-n", ns, "-l", "tier=gold", "-o", "name")
    assert selected.split() == ["configmap/tagged"]

    assert kubectl.ok("label", "configmap", "tagged", "-n", ns, "tier-").strip() == \
        "configmap/tagged unlabeled"
    labels = kubectl.json("get", "configmap", "tagged", "-n", ns)["metadata"]["labels"]
    assert labels == {"app": "faro-test"}
    assert kubectl.ok("get", "configmaps", "-n", ns, "-l", "tier=gold", "-o", "name") == ""


# ------------------------------------------------------------------ CRDs, server-side apply


def test_apply_of_a_crd_then_of_a_custom_resource_and_get_by_plural(
    kubectl: Kubectl, ns: str,
) -> None:
    suffix = unique("x").split("-")[1]
    group, plural = f"t{suffix}.faro.example.com", f"widgets{suffix}"
    crd_name = f"{plural}.{group}"
    crd = f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {crd_name}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: {plural}
    singular: widget{suffix}
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""
    try:
        assert kubectl.apply(crd) == [
            f"customresourcedefinition.apiextensions.k8s.io/{crd_name} created"]
        kubectl.ok("wait", "--for=condition=Established", f"crd/{crd_name}",
                   f"--timeout={DEADLINE:.0f}s")

        widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
                  "metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}}
        assert kubectl.apply(orjson.dumps(widget).decode()) == [f"widget.{group}/w1 created"]

        table = kubectl.ok("get", plural, "-n", ns).splitlines()
        assert table[0].split() == ["NAME", "AGE"]
        assert [row.split()[0] for row in table[1:]] == ["w1"]
        stored = kubectl.json("get", f"{plural}.{group}", "w1", "-n", ns)
        assert stored["spec"] == {"size": 3}
        assert stored["apiVersion"] == f"{group}/v1"
        assert kubectl.apply(orjson.dumps(widget).decode()) == [f"widget.{group}/w1 unchanged"]
    finally:
        kubectl.run("delete", "crd", crd_name, "--ignore-not-found", "--wait=false")


def test_server_side_apply_creates_and_updates_an_object(kubectl: Kubectl, ns: str) -> None:
    lines = kubectl.apply(configmap("ssa", ns, k="v"), "--server-side")

    assert lines == ["configmap/ssa serverside-applied"]
    stored = kubectl.json("get", "configmap", "ssa", "-n", ns, "--show-managed-fields")
    assert stored["data"] == {"k": "v"}
    assert {(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]} == {
        ("kubectl", "Apply")}

    kubectl.apply(configmap("ssa", ns, k="w"), "--server-side")
    assert kubectl.json("get", "configmap", "ssa", "-n", ns)["data"] == {"k": "w"}



def test_describe_shows_the_events_of_the_object(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply(configmap("described", ns, a="1"))
    uid = kubectl.json("get", "configmap", "described", "-n", ns)["metadata"]["uid"]
    kubectl.apply(orjson.dumps({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "described.faro-test", "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "described",
                           "namespace": ns, "uid": uid},
        "reason": "Checked", "message": "looked at by the test", "type": "Warning",
        "source": {"component": "faro-test"},
    }).decode())

    # kubectl describe finds the Events with involvedObject.* field selectors.
    described = kubectl.ok("describe", "configmap", "described", "-n", ns)
    events = described.split("Events:", 1)[1].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Warning", "Checked"]
    assert events[3].split()[3:] == ["faro-test", "looked", "at", "by", "the", "test"]

    warnings = kubectl.ok("get", "events", "-n", ns, "--field-selector",
                          "type=Warning,reason=Checked", "-o", "name")
    assert warnings.split() == ["event/described.faro-test"]
    assert kubectl.ok("get", "events", "-n", ns, "--field-selector",
                      "type=Normal,involvedObject.name=described", "-o", "name") == ""


# ------------------------------------------------------------ typed generators (protobuf)
#
# kubectl create <kind> and kubectl run build the object themselves and (for most kinds)
# POST it as application/vnd.kubernetes.protobuf. The oracle is the same command with
# --dry-run=client -o json: what kubectl would have sent, as JSON.

# Set by the server on every create, so absent from what the client sends.
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation",
                   "managedFields")
# The status is the server's: an empty one sent on create is dropped (or replaced).


def _normalized(obj: Any) -> Any:
    """``obj`` without ``creationTimestamp: null`` (Go prints the zero Time so)."""
    if isinstance(obj, dict):
        return {k: _normalized(v) for k, v in obj.items()
                if not (k == "creationTimestamp" and v is None)}
    if isinstance(obj, list):
        return [_normalized(v) for v in obj]
    return obj


def _subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """The first path where ``actual`` lacks or differs from a value of ``expected``."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key} missing"
            if (found := _subset_mismatch(value, actual[key], f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            if (found := _subset_mismatch(want, got, f"{path}[{i}]")) is not None:
                return found
        return None
    return None if expected == actual else f"{path}: {actual!r} != {expected!r}"


def assert_stored_as_sent(stored: dict[str, Any], sent: dict[str, Any],
                          server_set: tuple[tuple[str, ...], ...] = ()) -> None:
    """The stored object is what kubectl sent, plus what the server sets.

    Against the simulator the match is exact once the server's own fields (the common
    metadata and the ``server_set`` paths) are removed; a real cluster also defaults
    many fields, so there every sent value must be present in the stored object.
    """
    sent = _normalized(sent)
    stored = _normalized(stored)
    assert sent.pop("status", {}) in ({}, {"loadBalancer": {}}), "status sent"
    stored.pop("status", None)
    if real_cluster():
        mismatch = _subset_mismatch(sent, stored)
        assert mismatch is None, f"{mismatch}\nstored: {stored}\nsent: {sent}"
        return
    stored = copy.deepcopy(stored)
    for key in SERVER_METADATA:
        stored["metadata"].pop(key, None)
    for *parents, leaf in server_set:
        node = stored
        for parent in parents:
            node = node[parent]
        node.pop(leaf)
    assert stored == sent


@pytest.fixture(scope="module")
def generator_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A certificate and key (server.crt, server.key) and a binary file (blob.bin)."""
    directory = tmp_path_factory.mktemp("generator-files")
    _, cert, key = make_certificates("127.0.0.1", str(directory))
    Path(cert).rename(directory / "server.crt")
    Path(key).rename(directory / "server.key")
    (directory / "blob.bin").write_bytes(bytes(range(256)))
    return directory


# (object to get, generator arguments, paths the simulator sets). "{files}" is
# generator_files. Nothing starts a container on a real cluster except the Job and the Pod.
GENERATORS = {
    "configmap": ("configmap/settings", [
        "create", "configmap", "settings", "--from-literal=mode=fast", "--from-literal=empty=",
        "--from-file=blob={files}/blob.bin"], ()),
    "secret-generic": ("secret/creds", [
        "create", "secret", "generic", "creds", "--from-literal=password=hunter2",
        "--type=Opaque"], ()),
    "secret-tls": ("secret/cert", [
        "create", "secret", "tls", "cert", "--cert={files}/server.crt",
        "--key={files}/server.key"], ()),
    "secret-docker-registry": ("secret/registry", [
        "create", "secret", "docker-registry", "registry", "--docker-server=r.example.com",
        "--docker-username=u", "--docker-password=p", "--docker-email=u@example.com"], ()),
    "serviceaccount": ("serviceaccount/robot", ["create", "serviceaccount", "robot"], ()),
    "deployment": ("deployment/web", [
        "create", "deployment", "web", "--image=nginx:1.25", "--replicas=0", "--port=8080"],
        ()),
    "job": ("job/once", ["create", "job", "once", "--image=busybox:1.36", "--", "true"], ()),
    "cronjob": ("cronjob/tick", [
        "create", "cronjob", "tick", "--image=busybox:1.36", "--schedule=*/5 * * * *",
        "--restart=Never", "--", "date"], ()),
    "service-clusterip": ("service/web", [
        "create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443:https"],
        (("spec", "clusterIP"), ("spec", "clusterIPs"), ("spec", "sessionAffinity"))),
    "service-externalname": ("service/db", [
        "create", "service", "externalname", "db", "--external-name=db.example.com"],
        (("spec", "sessionAffinity"),)),
    "run": ("pod/single", [
        "run", "single", "--image=nginx:1.25", "--labels=app=single", "--env=MODE=fast",
        "--port=80"], ()),
}


def _create_and_compare(kubectl: Kubectl, namespace: str, ref: str, args: list[str],
                        server_set: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    """Run the generator with --dry-run=client -o json, then for real; compare; return it."""
    dash = args.index("--") if "--" in args else len(args)
    flags = [*args[:dash], "-n", namespace]
    sent = orjson.loads(kubectl.ok(*flags, "--dry-run=client", "-o", "json", *args[dash:]))

    kubectl.ok(*flags, *args[dash:])

    stored = kubectl.json("get", ref, "-n", namespace)
    assert_stored_as_sent(stored, sent, server_set)
    return stored


@pytest.mark.parametrize("case", list(GENERATORS))
def test_a_typed_generator_stores_what_its_dry_run_prints(
    kubectl: Kubectl, ns: str, generator_files: Path, case: str,
) -> None:
    ref, args, server_set = GENERATORS[case]
    args = [arg.replace("{files}", str(generator_files)) for arg in args]

    stored = _create_and_compare(kubectl, ns, ref, args, server_set)

    assert stored["metadata"]["name"] == ref.split("/")[1]


def test_create_namespace_stores_what_its_dry_run_prints(
    kubectl: Kubectl, ns_name: str,
) -> None:
    sent = orjson.loads(kubectl.ok("create", "namespace", ns_name, "--dry-run=client",
                                   "-o", "json"))

    assert kubectl.ok("create", "namespace", ns_name).strip() == f"namespace/{ns_name} created"

    stored = kubectl.json("get", "namespace", ns_name)
    assert_stored_as_sent(stored, sent, (
        ("metadata", "labels"), ("spec", "finalizers")))
    assert stored["metadata"]["labels"] == {"kubernetes.io/metadata.name": ns_name}


def test_create_job_from_a_cronjob_keeps_the_owner_reference_and_annotation(
    kubectl: Kubectl, ns: str,
) -> None:
    cronjob = _create_and_compare(kubectl, ns, "cronjob/nightly", [
        "create", "cronjob", "nightly", "--image=busybox:1.36", "--schedule=0 3 * * *",
        "--", "date"], ())

    job = _create_and_compare(kubectl, ns, "job/manual", [
        "create", "job", "manual", "--from=cronjob/nightly"], ())

    assert job["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronJob", "nightly", cronjob["metadata"]["uid"], True)
