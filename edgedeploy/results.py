"""Typed results of the verbs, as the Python API (`edgedeploy.api`) returns them.

Stdlib only, so importing this module costs nothing. Each result names the fields a script reads
most as typed attributes; `to_dict()` gives the JSON document the CLI prints with `--json` (and,
for a profile, the document stored on disk), so nothing a verb reports is lost. `FleetResult`,
`FleetRow`, `ProfileSummary`, `TargetRow`, `EmulatorStopped` and `ProfilesExport` are plain
dataclasses; the others are typed views built from the job's document (`from_doc`), which stays
the one place that decides what the document holds. `edgedeploy.present` prints each of them for
the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _Document:
    """A typed view of a verb's JSON document (`doc`): `to_dict()` is that document, as `--json`
    prints it."""

    doc: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.doc


# --------------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSummary:
    """One row of the profile store's index (`profiles list`): a stored profile, flattened.

    `id` is the profile's path under the store root without `.json` (what `load_profile` takes)."""

    id: str
    created: str
    target: str
    emulated: bool
    model: str
    model_sha256: str | None
    format: str | None
    size_bytes: int | None
    accuracy: float | None
    runtime: str | None
    runtime_version: str | None
    threads: int | None
    n: int | None
    mean_ms: float | None
    std_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    init_ms: float | None
    first_inference_ms: float | None
    peak_rss_mb: float | None
    energy_mj: float | None
    power_source: str | None
    throttled: bool
    path: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProfileSummary:
        return cls(**row)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ProfileSummary.__dataclass_fields__}


@dataclass(frozen=True)
class Profile(_Document, ProfileSummary):
    """One measurement of one model on one target, as stored: the summary's fields, and `doc`, the
    whole profile file (every latency statistic, memory, CPU, thermal state, power, settings)."""

    contended: bool  # other processes kept the runner waiting for a CPU (latency includes the wait)
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any], profiles_dir: Path | None = None) -> Profile:
        """From a profile that has its `path` (as the profile job and the store give it)."""
        from edgedeploy.profiles.store import profiles_root, summary_values

        path = Path(doc["path"])
        root = profiles_root(profiles_dir)
        # A file outside the store (loaded by its path) has no id there: its path stands in for one.
        ident = path.relative_to(root) if path.is_relative_to(root) else path
        return cls(
            id=ident.with_suffix("").as_posix(),
            **summary_values(doc),
            path=str(path),
            contended=bool(doc.get("contended")),
            doc=doc,
        )


@dataclass(frozen=True)
class MetricDelta:
    """One metric of `profiles compare`: B relative to A, and whether the difference is noise."""

    metric: str
    unit: str
    a: float
    b: float
    delta: float
    delta_pct: float | None
    spread: float | None
    noise: bool | None  # True: within the measured spread; None: no spread measured
    better: str | None  # "a", "b", or None (same, or noise)


@dataclass(frozen=True)
class Comparison(_Document):
    """Two profiles compared (`profiles compare`); `notes` say what differs besides the numbers."""

    a: str | None  # the profiles' paths
    b: str | None
    notes: list[str]
    metrics: list[MetricDelta]
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Comparison:
        return cls(
            a=doc["a"].get("path"),
            b=doc["b"].get("path"),
            notes=list(doc["notes"]),
            metrics=[MetricDelta(**row) for row in doc["metrics"]],
            doc=doc,
        )

    def metric(self, name: str) -> MetricDelta | None:
        return next((m for m in self.metrics if m.metric == name), None)


# --------------------------------------------------------------------------------------------------
# fleet
# --------------------------------------------------------------------------------------------------


@dataclass
class FleetRow:
    """One (target, model) job of a fleet run: `status` is "ok" or "error" (then `error` says why)."""

    target: str
    model: str
    model_name: str
    model_sha256: str
    status: str = "error"
    error: str | None = None
    profile_path: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    resumed: bool = False
    emulated: bool = False
    started: str | None = None
    p50_ms: float | None = None
    finished: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The row as `fleet profile --json` prints it and the journal stores it: `started` and
        `finished` only once the job was attempted, `p50_ms` only on success."""
        doc = {k: v for k, v in self.__dict__.items() if k not in ("started", "p50_ms", "finished")}
        if self.started is not None:
            doc["started"] = self.started
        if self.ok:
            doc["p50_ms"] = self.p50_ms
        if self.finished is not None:
            doc["finished"] = self.finished
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FleetRow:
        """A row back from the journal (keys it does not know, such as `event` and `at`, are left)."""
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


@dataclass
class FleetResult:
    """A fleet run: one row per (target, model), in target order then model order."""

    run_id: str
    journal: Path
    group: str
    wall_s: float
    rows: list[FleetRow]

    @property
    def succeeded(self) -> int:
        return sum(row.ok for row in self.rows)

    @property
    def failed(self) -> int:
        return len(self.rows) - self.succeeded

    @property
    def failures(self) -> list[FleetRow]:
        return [row for row in self.rows if not row.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "journal": str(self.journal),
            "group": self.group,
            "wall_s": self.wall_s,
            "ok": self.succeeded,
            "failed": self.failed,
            "rows": [row.to_dict() for row in self.rows],
        }


# --------------------------------------------------------------------------------------------------
# run / push / inspect / convert / compress
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    name: str
    shape: list[int]
    dtype: str
    file: Path | None  # where `run` wrote it on this host (None without an output folder)


@dataclass(frozen=True)
class RunResult(_Document):
    """One inference on a target (`edgedeploy run`): the outputs and where they were written."""

    target: str
    model: Path
    runtime: str | None
    outputs: list[Output]
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RunResult:
        written = _obj(doc.get("written"))
        outputs = [
            Output(
                name=str(out.get("name")),
                shape=list(out.get("shape") or []),
                dtype=str(out.get("dtype")),
                file=Path(written[str(out.get("name"))]) if str(out.get("name")) in written else None,
            )
            for out in doc.get("outputs") or []
        ]
        return cls(
            target=doc["target"]["name"],
            model=Path(_obj(doc.get("model")).get("path", "")),
            runtime=_obj(doc.get("runtime")).get("name"),
            outputs=outputs,
            doc=doc,
        )


@dataclass(frozen=True)
class Pushed:
    """One target's push: the model's path on the device, or `error` when that target failed."""

    target: str
    remote_path: str | None
    sha256: str | None
    sent_bytes: int  # 0 when unchanged, failed, or a dry run
    skipped: bool  # the device already held these bytes
    error: str | None = None


@dataclass(frozen=True)
class PushResult(_Document):
    """`edgedeploy push` to a host (one entry in `targets`) or a group (one per host)."""

    group: str | None
    dry_run: bool
    targets: list[Pushed]
    doc: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return all(t.error is None for t in self.targets)

    @classmethod
    def from_doc(cls, doc: dict[str, Any], target: str, dry_run: bool) -> PushResult:
        rows = doc["targets"] if "group" in doc else [{"target": target, **doc}]
        pushed = [
            Pushed(
                target=row["target"],
                remote_path=row.get("remote_path"),
                sha256=row.get("sha256"),
                sent_bytes=int(row.get("sent_bytes") or 0),
                skipped=bool(row.get("skipped")),
                error=row.get("error"),
            )
            for row in rows
        ]
        return cls(group=doc.get("group"), dry_run=dry_run, targets=pushed, doc=doc)


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: list[Any]  # dimensions; a dynamic one is its name (str) or None
    dtype: str | None


@dataclass(frozen=True)
class ModelInfo(_Document):
    """What `edgedeploy inspect` says about a model file (`doc` holds every field it reports)."""

    file: Path
    format: str | None
    size_bytes: int
    parameters: int | None
    sparsity: float | None
    inputs: list[Tensor]
    outputs: list[Tensor]
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ModelInfo:
        def tensors(key: str) -> list[Tensor]:
            return [
                Tensor(str(t.get("name")), list(t.get("shape") or []), t.get("dtype"))
                for t in doc.get(key) or []
                if isinstance(t, dict)
            ]

        return cls(
            file=Path(doc["file"]),
            format=doc.get("format"),
            size_bytes=int(doc["size_bytes"]),
            parameters=_int(doc.get("parameters")),
            sparsity=_float(doc.get("sparsity")),
            inputs=tensors("inputs"),
            outputs=tensors("outputs"),
            doc=doc,
        )


@dataclass(frozen=True)
class ConvertResult(_Document):
    """A conversion, verified against the source model (`doc["verification"]` has every check)."""

    source: str
    output: Path
    format: str
    precision: str
    int8_format: str | None
    size_bytes: int
    verified_max_abs_error: float | None
    accuracy: float | None  # on labelled verification inputs, when there were labels
    warnings: list[str]
    notes: list[str]
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ConvertResult:
        verification = _obj(doc.get("verification"))
        return cls(
            source=str(doc["source"]),
            output=Path(doc["output"]),
            format=str(doc["format"]),
            precision=str(doc["precision"]),
            int8_format=doc.get("int8_format"),
            size_bytes=int(doc["size_bytes"]),
            verified_max_abs_error=_float(verification.get("max_abs_error")),
            accuracy=_float(verification.get("accuracy")),
            warnings=list(doc.get("warnings") or []),
            notes=list(doc.get("notes") or []),
            doc=doc,
        )


@dataclass(frozen=True)
class CompressResult(_Document):
    """A compressed model: its files (model.onnx, model.pt, model.pt2, report.json, ...) and scores."""

    model: str
    files: dict[str, Path]
    accuracy_before: float | None
    accuracy_after: float | None
    stages: list[str]
    warnings: list[str]
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CompressResult:
        summary = _obj(doc.get("summary"))
        return cls(
            model=str(doc["model"]),
            files={name: Path(path) for name, path in _obj(doc.get("files")).items()},
            accuracy_before=_float(summary.get("accuracy_before")),
            accuracy_after=_float(summary.get("accuracy_after")),
            stages=[str(stage.get("stage")) for stage in doc.get("stages") or []],
            warnings=list(doc.get("warnings") or []),
            doc=doc,
        )


# --------------------------------------------------------------------------------------------------
# targets / provision / emulator / tune / profiles export / report
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRow:
    """One target of the inventory (`targets list`); `arch` and `checked_at` come from cached facts."""

    name: str
    connection: str
    address: str
    groups: list[str]
    arch: str | None
    runtime: str
    threads: int | None
    emulated: bool
    checked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TargetRow.__dataclass_fields__}


@dataclass(frozen=True)
class TargetFacts(_Document):
    """What `targets check` probed on a device (`doc` holds every fact: ISA, RAM, runtimes, ...)."""

    target: str
    arch: str | None
    checked_at: str | None
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TargetFacts:
        return cls(
            target=str(doc.get("target")), arch=doc.get("arch"), checked_at=doc.get("checked_at"), doc=doc
        )


@dataclass(frozen=True)
class TargetInfo(_Document):
    """One target's variables (secrets redacted) and its cached facts, None before any `check`."""

    name: str
    connection: str
    address: str
    facts: TargetFacts | None
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TargetInfo:
        facts = doc.get("facts")
        return cls(
            name=str(doc["name"]),
            connection=str(doc["connection"]),
            address=str(doc["address"]),
            facts=TargetFacts.from_doc(facts) if facts else None,
            doc=doc,
        )


@dataclass(frozen=True)
class ProvisionResult(_Document):
    """Runtimes installed offline on a target (`edgedeploy provision`) and the venv that holds them."""

    target: str
    interpreter: str
    installed: dict[str, str]  # distribution -> version, as imported there
    sent_bytes: int
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ProvisionResult:
        return cls(
            target=str(doc["target"]),
            interpreter=str(doc["interpreter"]),
            installed=dict(doc["installed"]),
            sent_bytes=int(doc["sent_bytes"]),
            doc=doc,
        )


@dataclass(frozen=True)
class EmulatorInstance(_Document):
    """One emulator instance: a row of `emulator status`, or what `emulator start` started (then
    `doc` is its whole state: port, key, image, ...)."""

    name: str
    kind: str
    state: str  # "running" or "stopped"
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> EmulatorInstance:
        return cls(name=str(doc["name"]), kind=str(doc.get("kind", "vm")), state=str(doc["state"]), doc=doc)


@dataclass(frozen=True)
class EmulatorStopped:
    name: str
    state: str
    how: str  # "powered off", "killed", "already stopped", or how a chroot stand-in was stopped

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "how": self.how}


@dataclass(frozen=True)
class ProfilesExport:
    """`profiles export`: the CSV text when it goes to stdout (`--csv -`), else None (written to `path`)."""

    path: Path
    rows: int
    text: str | None


@dataclass(frozen=True)
class TuneResult(_Document):
    """A `tune` study: the Pareto front, the recommended model and its files (`doc` holds all trials)."""

    target: str
    recommended: dict[str, Any] | None
    pareto: list[dict[str, Any]]
    report: Path | None
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TuneResult:
        return cls(
            target=str(doc["target"]),
            recommended=doc.get("recommended"),
            pareto=list(doc.get("pareto") or []),
            report=Path(doc["report"]) if doc.get("report") else None,
            doc=doc,
        )


@dataclass(frozen=True)
class QuickstartResult(_Document):
    """The quickstart's variants as measured (`doc` is its summary.json) and where it wrote them."""

    target: str
    output: Path
    variants: list[dict[str, Any]]  # one row per exported file: size, accuracy, p50/p95, profile
    doc: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_doc(cls, doc: dict[str, Any], output: Path) -> QuickstartResult:
        return cls(target=str(doc["target"]), output=output, variants=list(doc["variants"]), doc=doc)
