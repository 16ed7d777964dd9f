"""The JSON event export (faro.export): the record, the file, rotation, permissions, failures.

Everything runs on real files under ``tmp_path``; events are built directly.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from faro.config import Config, ExportConfig, ResourceConfig
from faro.events import EventType, MatchedEvent
from faro.export import LAST_APPLIED_ANNOTATION, EventExporter, StreamExporter, event_record
from faro.testing import FakeClock

CONFIG = ResourceConfig("v1/configmaps").normalize()[0]
TS = datetime(2026, 11, 22, 10, 15, 2, 123456, tzinfo=timezone.utc)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "event.schema.json"
NAME_RE = re.compile(r"events-(\d{8}-\d{6})(_\d{4})?\.json")
T = TypeVar("T")


def make_event(name: str = "web", namespace: str = "default", *, gvr: str = "v1/configmaps",
               event_type: EventType = EventType.ADDED, rv: str = "1", uid: str = "uid-1",
               labels: Mapping[str, Any] | None = None,
               annotations: Mapping[str, Any] | None = None,
               body: Mapping[str, Any] | None = None, timestamp: datetime = TS,
               is_initial: bool = False, final_state_unknown: bool = False) -> MatchedEvent:
    metadata: dict[str, Any] = {"name": name, "uid": uid, "resourceVersion": rv}
    if namespace:
        metadata["namespace"] = namespace
    if labels is not None:
        metadata["labels"] = dict(labels)
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, **(body or {})}
    key = f"{namespace}/{name}" if namespace else name
    return MatchedEvent(event_type, obj, gvr, key, CONFIG, timestamp, None, is_initial,
                        final_state_unknown)


def lines_of(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the file ends in the middle of a line"
    return [orjson.loads(line) for line in data.splitlines()]


def all_files(exporter: EventExporter) -> list[Path]:
    """The exporter's files, oldest first: ``.N`` ... ``.1``, then the current one."""
    backups = sorted(exporter.path.parent.glob(exporter.path.name + ".*"),
                     key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*backups, exporter.path]


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[EventExporter]:
    with EventExporter(tmp_path / "out") as exp:
        yield exp


# ---------------------------------------------------------------------------------------------
# A tiny JSON Schema checker: exactly the keywords docs/event.schema.json uses. An unknown
# keyword fails, so the schema cannot say something these tests silently ignore.
# ---------------------------------------------------------------------------------------------

_ANNOTATIONS = {"$schema", "$id", "title", "description", "format", "examples"}
_TYPES: dict[str, Any] = {"object": dict, "string": str, "boolean": bool, "array": list}


def schema_errors(instance: Any, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    errors: list[str] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword == "properties":
            continue
        if keyword == "type":
            if not isinstance(instance, _TYPES[value]):
                errors.append(f"{where}: not a {value}: {instance!r}")
        elif keyword == "enum":
            if instance not in value or not isinstance(instance, str):
                errors.append(f"{where}: {instance!r} not in {value}")
        elif keyword == "const":
            if type(instance) is not type(value) or instance != value:
                errors.append(f"{where}: {instance!r} is not {value!r}")
        elif keyword == "pattern":
            if isinstance(instance, str) and not re.search(value, instance):
                errors.append(f"{where}: {instance!r} does not match {value}")
        elif keyword == "minLength":
            if isinstance(instance, str) and len(instance) < value:
                errors.append(f"{where}: shorter than {value}")
        elif keyword == "required":
            if isinstance(instance, dict):
                errors.extend(f"{where}: missing {key}" for key in value if key not in instance)
        elif keyword == "additionalProperties":
            if isinstance(instance, dict):
                known = schema.get("properties", {})
                for key, item in instance.items():
                    if key in known:
                        continue
                    if value is False:
                        errors.append(f"{where}: unexpected key {key!r}")
                    elif isinstance(value, Mapping):
                        errors.extend(schema_errors(item, value, f"{where}.{key}"))
        else:
            raise AssertionError(f"the test's schema checker does not know {keyword!r}")
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                errors.extend(schema_errors(instance[key], sub, f"{where}.{key}"))
    return errors


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------


def test_record_holds_the_fields_in_order() -> None:
    event = make_event(labels={"app": "web"}, annotations={"note": "x"}, rv="42", uid="u-9",
                       event_type=EventType.UPDATED)
    record = event_record(event)
    assert list(record) == ["timestamp", "eventType", "gvr", "namespace", "name", "uid",
                            "resourceVersion", "labels", "annotations"]
    assert record == {
        "timestamp": "2026-11-22T10:15:02.123456Z", "eventType": "UPDATED",
        "gvr": "v1/configmaps", "namespace": "default", "name": "web", "uid": "u-9",
        "resourceVersion": "42", "labels": {"app": "web"}, "annotations": {"note": "x"},
    }
    assert type(record["eventType"]) is str


def test_cluster_scoped_omits_namespace_and_empty_metadata_is_empty_objects() -> None:
    record = event_record(make_event("prod", "", gvr="v1/namespaces"))
    assert "namespace" not in record
    assert record["name"] == "prod"
    assert record["labels"] == {}
    assert record["annotations"] == {}


def test_initial_and_final_state_unknown_appear_only_when_true() -> None:
    plain = event_record(make_event())
    assert "initial" not in plain and "finalStateUnknown" not in plain
    initial = event_record(make_event(is_initial=True))
    assert initial["initial"] is True and "finalStateUnknown" not in initial
    assert list(initial)[-1] == "initial"
    gone = event_record(make_event(event_type=EventType.DELETED, final_state_unknown=True))
    assert gone["finalStateUnknown"] is True and "initial" not in gone
    both = event_record(make_event(is_initial=True, final_state_unknown=True))
    assert list(both)[-2:] == ["initial", "finalStateUnknown"]


def test_timestamp_is_rfc3339_utc_with_microseconds() -> None:
    def stamp(ts: datetime) -> str:
        return str(event_record(make_event(timestamp=ts))["timestamp"])

    assert stamp(TS) == "2026-11-22T10:15:02.123456Z"
    assert stamp(TS.replace(microsecond=0)) == "2026-11-22T10:15:02.000000Z"
    cet = timezone(timedelta(hours=1))
    assert stamp(datetime(2026, 11, 22, 11, 15, 2, 5, tzinfo=cet)) == \
        "2026-11-22T10:15:02.000005Z"
    # A naive timestamp is taken as UTC (MatchedEvent.timestamp is documented as UTC).
    assert stamp(datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.000006Z"


def test_secret_last_applied_annotation_is_dropped_other_annotations_stay() -> None:
    annotations = {LAST_APPLIED_ANNOTATION: '{"data":{"password":"c2VjcmV0"}}',
                   "owner": "team-a"}
    secret = event_record(make_event(gvr="v1/secrets", annotations=annotations))
    assert secret["annotations"] == {"owner": "team-a"}
    configmap = event_record(make_event(gvr="v1/configmaps", annotations=annotations))
    assert configmap["annotations"] == annotations
    # Only the core group's Secrets: a custom resource that happens to be called "secrets"
    # keeps its annotations.
    custom = event_record(make_event(gvr="example.com/v1/secrets", annotations=annotations))
    assert custom["annotations"] == annotations


def test_the_object_body_is_never_exported(exporter: EventExporter) -> None:
    body = {"data": {"password": "c2VjcmV0LXZhbHVl"}, "stringData": {"token": "t0k3n-value"},
            "spec": {"replicas": 3}, "status": {"phase": "Active"}, "type": "Opaque"}
    annotations = {LAST_APPLIED_ANNOTATION: '{"stringData":{"token":"t0k3n-value"}}'}
    for gvr in ("v1/secrets", "v1/configmaps"):
        exporter.export(make_event(gvr=gvr, body=body, annotations=annotations))
    raw = exporter.path.read_bytes()
    assert b"c2VjcmV0LXZhbHVl" not in raw
    for record in lines_of(exporter.path):
        assert not {"data", "stringData", "spec", "status", "type", "object"} & set(record)
    assert raw.count(b"t0k3n-value") == 1  # only the ConfigMap's last-applied annotation


def test_odd_metadata_values_become_strings() -> None:
    record = event_record(make_event(labels={"n": 1}, annotations={"b": True, 3: "x"}))
    assert record["labels"] == {"n": "1"}
    assert record["annotations"] == {"b": "True", "3": "x"}


def test_the_record_reflects_the_middlewares_object() -> None:
    event = make_event(labels={"app": "web"})
    rewritten = dataclasses.replace(event, object={"metadata": {
        "name": "web", "namespace": "default", "labels": {"app": "web", "added": "yes"}}})
    assert event_record(rewritten)["labels"] == {"app": "web", "added": "yes"}


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------


def test_every_line_validates_against_the_schema(exporter: EventExporter,
                                                 schema: dict[str, Any]) -> None:
    events = [
        make_event(labels={"a": "b"}, annotations={"c": "d"}),
        make_event("node-1", "", gvr="v1/nodes"),
        make_event(gvr="apps/v1/deployments", event_type=EventType.UPDATED),
        make_event(is_initial=True),
        make_event(event_type=EventType.DELETED, final_state_unknown=True),
        make_event(gvr="v1/secrets", annotations={LAST_APPLIED_ANNOTATION: "{}"},
                   body={"data": {"k": "dg=="}}),
        make_event(gvr="example.com/v1alpha1/widgets", uid="", rv=""),
    ]
    for event in events:
        exporter.export(event)
    records = lines_of(exporter.path)
    assert len(records) == len(events)
    for record in records:
        assert schema_errors(record, schema) == [], record


def test_the_schema_and_the_record_have_the_same_keys(schema: dict[str, Any]) -> None:
    minimal = event_record(make_event("n", ""))
    full = event_record(make_event(is_initial=True, final_state_unknown=True))
    assert set(schema["required"]) == set(minimal)
    assert list(schema["properties"]) == list(full)  # the documented order, too
    assert schema["additionalProperties"] is False
    assert schema["properties"]["eventType"]["enum"] == [t.value for t in EventType]


def test_the_schema_checker_rejects_what_the_schema_forbids(schema: dict[str, Any]) -> None:
    good = event_record(make_event())
    assert schema_errors(good, schema) == []
    bad = [
        {**good, "data": {}},
        {**good, "initial": False},
        {**good, "eventType": "MODIFIED"},
        {**good, "timestamp": "2026-11-22T10:15:02Z"},
        {**good, "labels": {"a": 1}},
        {**good, "namespace": ""},
        {key: value for key, value in good.items() if key != "uid"},
    ]
    for record in bad:
        assert schema_errors(record, schema), record


# ---------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------


def test_one_valid_json_line_per_export(exporter: EventExporter) -> None:
    for i in range(50):
        exporter.export(make_event(f"cm-{i}", rv=str(i)))
        # flushed per event: the line is in the file as soon as export returns
        assert exporter.path.read_bytes().count(b"\n") == i + 1
    records = lines_of(exporter.path)
    assert [r["name"] for r in records] == [f"cm-{i}" for i in range(50)]
    assert exporter.path.read_bytes() == b"".join(
        orjson.dumps(event_record(make_event(f"cm-{i}", rv=str(i)))) + b"\n" for i in range(50))


def test_file_name_directory_and_from_config(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    output = tmp_path / "a" / "b"
    config = Config(output_dir=str(output),
                    export=ExportConfig(max_bytes=1234, backups=2, fsync=True))
    with EventExporter.from_config(config) as exp:
        after = datetime.now(timezone.utc)
        assert exp.path.parent == output
        match = NAME_RE.fullmatch(exp.path.name)
        assert match is not None and match.group(2) is None, exp.path.name
        created = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(
            tzinfo=timezone.utc)
        assert before <= created <= after
        assert (exp.max_bytes, exp.backups, exp.fsync) == (1234, 2, True)
        exp.export(make_event())  # fsync=True writes and syncs
        assert len(lines_of(exp.path)) == 1


def test_negative_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        EventExporter(tmp_path, max_bytes=-1)
    with pytest.raises(ValueError, match="backups"):
        EventExporter(tmp_path, backups=-1)
    assert list(tmp_path.iterdir()) == []


def test_a_taken_name_gives_a_new_file_and_the_other_is_untouched(tmp_path: Path) -> None:
    # Another writer's files for this second and the next (in case the clock moves on).
    now = datetime.now(timezone.utc)
    foreign = [tmp_path / f"events-{(now + timedelta(seconds=s)):%Y%m%d-%H%M%S}.json"
               for s in (0, 1)]
    for path in foreign:
        path.write_bytes(b"foreign\n")
    with EventExporter(tmp_path) as exp:
        assert exp.path not in foreign
        assert exp.path.name in {p.name.replace(".json", "_0002.json") for p in foreign}
        exp.export(make_event())
        with EventExporter(tmp_path) as second:  # a third writer in the same second
            assert second.path not in {*foreign, exp.path}
            # Names sort by creation time: the plain name, then _0002, then the newest.
            names = sorted(p.name for p in tmp_path.glob("events-*.json"))
            assert names.index(exp.path.name) < names.index(second.path.name)
            assert names.index(foreign[0].name) < names.index(exp.path.name)
            second.export(make_event("other"))
            assert [r["name"] for r in lines_of(second.path)] == ["other"]
        assert [r["name"] for r in lines_of(exp.path)] == ["web"]
    for path in foreign:
        assert path.read_bytes() == b"foreign\n"


def test_a_name_with_a_rotated_backup_is_not_reused(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    for s in (0, 1):
        (tmp_path / f"events-{(now + timedelta(seconds=s)):%Y%m%d-%H%M%S}.json.1").write_bytes(
            b"old\n")
    with EventExporter(tmp_path) as exp:
        assert exp.path.name.endswith("_0002.json")


@pytest.fixture
def umask_zero() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_zero")
def test_files_are_0600_even_with_umask_0_and_after_rotation(tmp_path: Path) -> None:
    with EventExporter(tmp_path, max_bytes=400, backups=3) as exp:
        assert mode(exp.path) == 0o600
        for i in range(20):
            exp.export(make_event(f"cm-{i:03d}"))
        files = all_files(exp)
        assert len(files) == 4
        assert [oct(mode(p)) for p in files] == [oct(0o600)] * 4
        # A file recreated after it was deleted is 0600 too.
        exp.path.unlink()
        exp.export(make_event("after"))
        assert mode(exp.path) == 0o600


# ---------------------------------------------------------------------------------------------
# Rotation
# ---------------------------------------------------------------------------------------------


def line_size() -> int:
    return len(orjson.dumps(event_record(make_event("cm-000"))) + b"\n")


def test_rotation_keeps_backups_newest_first_and_drops_the_oldest(tmp_path: Path) -> None:
    size = line_size()
    with EventExporter(tmp_path, max_bytes=3 * size, backups=2) as exp:
        base = exp.path
        for i in range(20):
            exp.export(make_event(f"cm-{i:03d}"))
        assert exp.path == base  # the current file keeps its name
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == sorted([base.name, base.name + ".1", base.name + ".2"])
        per_file = [[r["name"] for r in lines_of(p)] for p in all_files(exp)]
        # 20 lines, 3 per file: the current file holds the last 2, .1 and .2 three each.
        assert per_file == [["cm-012", "cm-013", "cm-014"], ["cm-015", "cm-016", "cm-017"],
                            ["cm-018", "cm-019"]]
        for path in all_files(exp):
            assert path.stat().st_size <= 3 * size


def test_rotation_loses_nothing_while_backups_last(tmp_path: Path) -> None:
    size = line_size()
    with EventExporter(tmp_path, max_bytes=4 * size + 10, backups=100) as exp:
        for i in range(37):
            exp.export(make_event(f"cm-{i:03d}"))
        files = all_files(exp)
        assert len(files) == 10  # nine full files of 4 lines and one with 1
        names = [r["name"] for path in files for r in lines_of(path)]
        assert names == [f"cm-{i:03d}" for i in range(37)]


def test_max_bytes_zero_never_rotates(tmp_path: Path) -> None:
    with EventExporter(tmp_path, max_bytes=0, backups=2) as exp:
        for i in range(300):
            exp.export(make_event(f"cm-{i:03d}"))
        assert [p.name for p in tmp_path.iterdir()] == [exp.path.name]
        assert len(lines_of(exp.path)) == 300


def test_zero_backups_empties_the_file(tmp_path: Path) -> None:
    size = line_size()
    with EventExporter(tmp_path, max_bytes=3 * size, backups=0) as exp:
        for i in range(10):
            exp.export(make_event(f"cm-{i:03d}"))
        assert [p.name for p in tmp_path.iterdir()] == [exp.path.name]
        assert [r["name"] for r in lines_of(exp.path)] == ["cm-009"]


def test_a_line_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    with EventExporter(tmp_path, max_bytes=100, backups=5) as exp:
        for i in range(3):
            exp.export(make_event(f"cm-{i:03d}"))  # each line is longer than 100 bytes
        assert [[r["name"] for r in lines_of(p)] for p in all_files(exp)] == \
            [["cm-000"], ["cm-001"], ["cm-002"]]


def test_a_failing_rotation_writes_on_and_tries_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faro.export")
    size = line_size()
    with EventExporter(tmp_path, max_bytes=2 * size, backups=1) as exp:
        blocker = Path(f"{exp.path}.1")
        blocker.mkdir()  # the file cannot be renamed over a directory, even by root
        (blocker / "keep").write_bytes(b"")
        for i in range(6):
            exp.export(make_event(f"cm-{i:03d}"))
        assert exp.errors == 0
        assert [r["name"] for r in lines_of(exp.path)] == [f"cm-{i:03d}" for i in range(6)]
        warnings = [r.getMessage() for r in export_records(caplog)
                    if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "cannot rotate" in warnings[0]
        shutil.rmtree(blocker)
        exp.export(make_event("cm-006"))
        assert [r["name"] for r in lines_of(exp.path)] == ["cm-006"]
        assert len(lines_of(blocker)) == 6
        assert any("rotating works again" in r.getMessage() for r in export_records(caplog))


def test_backups_past_a_gap_are_not_pushed_out(tmp_path: Path) -> None:
    size = line_size()
    with EventExporter(tmp_path, max_bytes=size, backups=4) as exp:
        for suffix in (".3", ".4"):  # older files beyond a gap (.1 and .2 missing)
            Path(f"{exp.path}{suffix}").write_bytes(b"old" + suffix.encode() + b"\n")
        for i in range(3):
            exp.export(make_event(f"cm-{i:03d}"))
        # cm-000 -> .2, cm-001 -> .1, cm-002 current; .3 and .4 untouched until reached
        assert Path(f"{exp.path}.3").read_bytes() == b"old.3\n"
        assert Path(f"{exp.path}.4").read_bytes() == b"old.4\n"
        assert [r["name"] for r in lines_of(Path(f"{exp.path}.2"))] == ["cm-000"]
        exp.export(make_event("cm-003"))  # the run .1 .2 .3 moves up: .4 (oldest) dropped
        assert Path(f"{exp.path}.4").read_bytes() == b"old.3\n"
        assert [r["name"] for p in all_files(exp)[1:] for r in lines_of(p)] == \
            ["cm-000", "cm-001", "cm-002", "cm-003"]


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_bytes", [0, 64 * 1024])
def test_concurrent_exports_write_every_line_once_in_order_per_thread(
        tmp_path: Path, max_bytes: int) -> None:
    threads, per_thread = 8, 1500
    exp = EventExporter(tmp_path, max_bytes=max_bytes, backups=10_000)
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait(10)
            for j in range(per_thread):
                exp.export(make_event(f"t{t}", rv=str(j), labels={"thread": str(t)}))
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(w.is_alive() for w in workers)
    exp.close()
    assert failures == []
    assert exp.errors == 0
    files = all_files(exp)
    if max_bytes:
        assert len(files) > 5
        assert all(p.stat().st_size <= max_bytes for p in files)
    else:
        assert len(files) == 1
    seen: dict[str, list[int]] = {f"t{t}": [] for t in range(threads)}
    for path in files:
        for record in lines_of(path):  # every line parses: none torn or interleaved
            seen[record["name"]].append(int(record["resourceVersion"]))
    for name, versions in seen.items():
        assert versions == list(range(per_thread)), name


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------


def export_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "faro.export"]


def test_a_replaced_directory_logs_one_error_counts_and_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faro.export")
    out = tmp_path / "out"
    with EventExporter(out) as exp:
        path = exp.path
        exp.export(make_event("before"))
        # Works as root too (where a read-only directory would not stop writes): the
        # directory becomes a regular file, so the export file can be neither found nor made.
        shutil.rmtree(out)
        out.write_bytes(b"in the way\n")
        for i in range(5):
            exp.export(make_event(f"lost-{i}"))  # never raises
        assert exp.errors == 5
        errors = [r for r in export_records(caplog) if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        message = errors[0].getMessage()
        assert str(path) in message and "Errno" in message
        assert not [r for r in export_records(caplog) if r.levelno == logging.INFO]

        out.unlink()  # the way is clear again: the next event recreates directory and file
        exp.export(make_event("after-1"))
        exp.export(make_event("after-2"))
        assert exp.errors == 5
        assert exp.path == path
        assert [r["name"] for r in lines_of(path)] == ["after-1", "after-2"]
        infos = [r.getMessage() for r in export_records(caplog) if r.levelno == logging.INFO]
        assert len(infos) == 1 and "works again" in infos[0] and "5 events" in infos[0]
        assert mode(path) == 0o600


def fd_of(path: Path) -> int:
    """The descriptor this process has open on ``path`` (Linux: /proc/self/fd)."""
    target = os.path.realpath(path)
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                return int(name)
        except OSError:
            continue
    raise AssertionError(f"no descriptor open on {path}")


@pytest.mark.skipif(not (os.path.exists("/dev/full") and os.path.isdir("/proc/self/fd")),
                    reason="needs Linux's /dev/full and /proc/self/fd")
def test_a_full_disk_loses_only_the_failing_line(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faro.export")
    with EventExporter(tmp_path) as exp:
        exp.export(make_event("first"))
        os.chmod(exp.path, 0o644)  # widened behind its back: narrowed again when reopened
        # The exporter's descriptor now writes to /dev/full: every write fails with ENOSPC,
        # as on a full file system.
        full = os.open("/dev/full", os.O_WRONLY)
        try:
            os.dup2(full, fd_of(exp.path))
        finally:
            os.close(full)
        exp.export(make_event("lost"))
        assert exp.errors == 1
        errors = [r.getMessage() for r in export_records(caplog) if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "No space left on device" in errors[0]
        assert str(exp.path) in errors[0]
        exp.export(make_event("second"))  # reopens its file and appends
        assert [r["name"] for r in lines_of(exp.path)] == ["first", "second"]
        assert any("works again" in r.getMessage() for r in export_records(caplog))
        assert mode(exp.path) == 0o600


def test_a_deleted_file_is_recreated_under_its_name(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with EventExporter(tmp_path) as exp:
        path = exp.path
        exp.export(make_event("one"))
        path.unlink()
        exp.export(make_event("two"))
        assert exp.path == path and exp.errors == 0
        assert [r["name"] for r in lines_of(path)] == ["two"]
        warnings = [r.getMessage() for r in export_records(caplog)
                    if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "deleted or replaced" in warnings[0]


def test_a_replaced_file_is_never_written_into(tmp_path: Path) -> None:
    with EventExporter(tmp_path) as exp:
        path = exp.path
        exp.export(make_event("one"))
        path.rename(tmp_path / "moved.json")
        path.write_bytes(b"someone else's\n")
        exp.export(make_event("two"))
        assert path.read_bytes() == b"someone else's\n"
        assert exp.path != path and NAME_RE.fullmatch(exp.path.name)
        assert [r["name"] for r in lines_of(exp.path)] == ["two"]
        assert [r["name"] for r in lines_of(tmp_path / "moved.json")] == ["one"]


# ---------------------------------------------------------------------------------------------
# Hostile files at the export's name: never opened for writing, never blocking
# ---------------------------------------------------------------------------------------------

needs_fifos = pytest.mark.skipif(
    not (hasattr(os, "mkfifo") and os.path.isdir("/proc/self/fd")),
    reason="needs FIFOs and Linux's /proc/self/fd")

DEADLINE = 10.0  # seconds; an export takes milliseconds


def call_bounded(function: Callable[[], T], fifo: Path) -> T:
    """``function()`` in a thread; fails if it is still running after DEADLINE seconds.

    A call blocked opening ``fifo`` for writing is released first (by opening it for
    reading), so that a regression fails the test instead of hanging it.
    """
    results: list[T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, name="bounded call", daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # releases a blocked writer
        try:
            thread.join(DEADLINE)
        finally:
            os.close(reader)
        pytest.fail(f"blocked for {DEADLINE} s on the FIFO {fifo}")
    if raised:
        raise raised[0]
    return results[0]


def blocking(fd: int) -> bool:
    """Whether ``fd`` is in blocking mode (O_NONBLOCK clear)."""
    import fcntl  # not on Windows; the tests using it are skipped there

    return not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in export_records(caplog) if r.levelno == logging.WARNING]


@needs_fifos
@pytest.mark.parametrize("planted", ["fifo", "symlink to a fifo"])
def test_a_fifo_at_the_files_name_never_blocks_and_no_line_is_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, planted: str) -> None:
    caplog.set_level(logging.INFO, logger="faro.export")
    with EventExporter(tmp_path / "out") as exp:
        path = exp.path
        exp.export(make_event("one"))
        path.unlink()  # removed, and a FIFO (or a link to one) planted at its name
        fifo = path if planted == "fifo" else tmp_path / "fifo"
        os.mkfifo(fifo)
        if fifo != path:
            path.symlink_to(fifo)
        assert call_bounded(lambda: exp.export(make_event("two")), fifo) is True
        assert (exp.errors, exp.refused) == (0, 1)
        assert exp.path != path and NAME_RE.fullmatch(exp.path.name)
        assert exp.path.parent == path.parent
        assert [r["name"] for r in lines_of(exp.path)] == ["two"]
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        assert os.path.islink(path) == (planted != "fifo")
        warnings = warnings_of(caplog)
        assert len(warnings) == 1, warnings
        kind = "a FIFO" if planted == "fifo" else "a symbolic link"
        assert f"{path} is {kind}, not a regular file" in warnings[0]
        assert str(exp.path) in warnings[0]
        assert blocking(fd_of(exp.path))  # O_NONBLOCK is cleared on the regular file
        exp.export(make_event("three"))
        assert [r["name"] for r in lines_of(exp.path)] == ["two", "three"]
        assert mode(exp.path) == 0o600
    assert not [r for r in export_records(caplog) if r.levelno == logging.ERROR]


def test_a_symlink_at_the_files_name_after_a_rotation_is_never_followed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with EventExporter(tmp_path / "out", max_bytes=3 * line_size(), backups=2) as exp:
        for i in range(4):
            exp.export(make_event(f"cm-{i:03d}"))  # .1 holds three lines, the file one
        path = exp.path
        assert [r["name"] for r in lines_of(Path(f"{path}.1"))] == ["cm-000", "cm-001", "cm-002"]
        # The current file is moved out of the directory and a symlink to it takes its name:
        # the exporter's own file, but faro no longer decides where it is.
        target = tmp_path / "elsewhere.json"
        path.rename(target)
        path.symlink_to(target)
        exp.export(make_event("after"))
        assert [r["name"] for r in lines_of(target)] == ["cm-003"]  # no line through the link
        assert path.is_symlink() and exp.path != path
        assert [r["name"] for r in lines_of(exp.path)] == ["after"]
        assert (exp.errors, exp.refused) == (0, 1)
        warnings = warnings_of(caplog)
        assert len(warnings) == 1 and f"{path} is a symbolic link" in warnings[0], warnings


def test_a_directory_at_the_files_name_loses_no_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with EventExporter(tmp_path) as exp:
        path = exp.path
        exp.export(make_event("one"))
        path.unlink()
        path.mkdir()
        assert exp.export(make_event("two")) is True
        assert exp.export(make_event("three")) is True
        assert (exp.errors, exp.refused) == (0, 1)
        assert path.is_dir() and list(path.iterdir()) == []
        assert [r["name"] for r in lines_of(exp.path)] == ["two", "three"]
        warnings = warnings_of(caplog)
        assert len(warnings) == 1 and f"{path} is a directory" in warnings[0], warnings


# ---------------------------------------------------------------------------------------------
# Closing
# ---------------------------------------------------------------------------------------------


def test_close_is_idempotent_and_export_after_close_raises(tmp_path: Path) -> None:
    exp = EventExporter(tmp_path)
    exp.export(make_event())
    exp.close()
    exp.close()
    assert exp.closed
    with pytest.raises(RuntimeError, match="closed"):
        exp.export(make_event("late"))
    assert [r["name"] for r in lines_of(exp.path)] == ["web"]


def test_the_context_manager_closes(tmp_path: Path) -> None:
    with EventExporter(tmp_path) as exp:
        exp.export(make_event())
    assert exp.closed
    with pytest.raises(RuntimeError):
        exp.export(make_event())


def test_file_names_come_from_the_clock_and_sort_by_creation_time(tmp_path: Path) -> None:
    clock = FakeClock()  # wall clock 2026-01-01T00:00:00Z
    paths = []
    for advance in (0, 0, 0, 1, 0):
        clock.advance(advance)
        with EventExporter(tmp_path, clock=clock) as exporter:
            paths.append(exporter.path)
    assert [p.name for p in paths] == [
        "events-20260101-000000.json", "events-20260101-000000_0002.json",
        "events-20260101-000000_0003.json", "events-20260101-000001.json",
        "events-20260101-000001_0002.json"]
    assert sorted(p.name for p in tmp_path.glob("events-*.json")) == [p.name for p in paths]


# ------------------------------------------------------------------------- StreamExporter


def test_the_stream_exporter_writes_the_lines_the_file_gets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Standard output by default (as it is when the exporter is made), the very lines the
    event file holds."""
    events = [make_event("web", labels={"app": "wéb"}), make_event("db", rv="7", uid="u-2"),
              make_event("node-1", namespace="", is_initial=True)]
    with EventExporter(tmp_path) as file_exporter, StreamExporter() as stream_exporter:
        assert stream_exporter.name == "standard output"
        for event in events:
            assert file_exporter.export(event)
            assert stream_exporter.export(event)
    assert capsys.readouterr().out.encode() == file_exporter.path.read_bytes()
    assert (stream_exporter.errors, stream_exporter.broken) == (0, False)


def test_the_stream_exporter_writes_whole_lines_through_a_pipe_from_many_threads() -> None:
    """Batches from 8 threads, most larger than a pipe's buffer (so written in several
    pieces while the reader drains it, the descriptor non-blocking as some runtimes leave
    it: the exporter waits for room): every line arrives whole, once; what was written to
    the stream itself before comes first."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(_read_all(read_end)))
    reader.start()
    with os.fdopen(write_end, "w") as stream:
        stream.write("written before\n")  # buffered in the stream: must be flushed first
        exporter = StreamExporter(stream)

        def write(thread: int) -> None:
            for batch in range(20):
                lines = [orjson.dumps(event_record(make_event(
                    f"t{thread}-b{batch}-{number}", labels={"pad": "x" * (number * 97)})))
                    + b"\n" for number in range(40)]
                assert exporter.write_lines(lines) == len(lines)

        threads = [threading.Thread(target=write, args=(thread,)) for thread in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        exporter.close()
    reader.join()
    first, *rest = received[0].split(b"\n")
    assert first == b"written before"
    assert rest[-1] == b""  # the output ends with a whole line
    names = [orjson.loads(line)["name"] for line in rest[:-1]]
    assert sorted(names) == sorted(f"t{thread}-b{batch}-{number}" for thread in range(8)
                                   for batch in range(20) for number in range(40))
    assert exporter.errors == 0


def _read_all(fd: int) -> bytes:
    chunks = []
    with os.fdopen(fd, "rb") as stream:
        while chunk := stream.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_closed_reader_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faro.export")
    read_end, write_end = os.pipe()
    os.close(read_end)  # `faro run --output stdout | head` once head has ended
    with os.fdopen(write_end, "w") as stream:
        exporter = StreamExporter(stream)
        lines = [orjson.dumps(event_record(make_event(f"cm-{n}"))) + b"\n" for n in range(3)]
        assert exporter.write_lines(lines) == 0
        assert exporter.write_lines(lines[:1]) == 0
        assert (exporter.errors, exporter.broken) == (4, True)
        errors = [r.getMessage() for r in export_records(caplog) if r.levelno == logging.ERROR]
        assert len(errors) == 1, errors
        assert "Broken pipe" in errors[0] and "its reader closed it" in errors[0]
        exporter.close()
    assert "closed while writing failed; 4 events were not exported" in warnings_of(caplog)[0]


def test_a_stream_without_a_descriptor_gets_text_and_a_closed_one_counts(
        caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    exporter = StreamExporter(stream)
    event = make_event(labels={"app": "wéb"})
    assert exporter.export(event)
    assert stream.getvalue() == orjson.dumps(event_record(event)).decode() + "\n"
    stream.close()
    assert not exporter.export(event)
    assert (exporter.errors, exporter.broken) == (1, False)
    exporter.close()
    exporter.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        exporter.export(event)


STREAM_CHILD = """
import os, resource, sys
import orjson
from faro.export import StreamExporter

def line(name):
    return orjson.dumps({"name": name, "pad": "x" * 380}) + b"\\n"

exporter = StreamExporter()  # stdout: a file, limited to 1000 bytes
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
first = exporter.write_lines([line("a"), line("b"), line("c")])  # c is cut at byte 1000
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
second = exporter.write_lines([line("d"), line("e")])
print(first, second, exporter.errors, file=sys.stderr)
"""


def test_a_line_a_failed_write_cut_is_finished_before_the_next_batch(tmp_path: Path) -> None:
    """Standard output redirected to a file that stops growing in the middle of a line (a
    file-size limit here, a full disk elsewhere): the rest of the cut line comes first with
    the next batch, so the file holds whole lines only."""
    out = tmp_path / "events.jsonl"
    with out.open("wb") as stdout:
        done = subprocess.run([sys.executable, "-c", STREAM_CHILD], stdout=stdout,
                              capture_output=False, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    *logged, counts = done.stderr.splitlines()
    assert counts == "2 2 1"  # c was counted lost when it was cut
    assert "File too large" in logged[0]
    data = out.read_bytes()
    assert data.endswith(b"\n")
    assert [orjson.loads(line)["name"] for line in data.splitlines()] == ["a", "b", "c", "d",
                                                                         "e"]
