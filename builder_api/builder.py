"""Builder endpoints: what a drag-and-drop admin UI calls. The palette, drafts (as files of
YAML text or as JSON, edited with merge patches that keep the admin's comments),
validation located in the text and in the model, publishing, versions and their diffs, and
the workflow graph. Every endpoint needs the `ticketflow:admin` role."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.params import HeaderParameter, JSONBody, QueryParameter, RawBody
from pydantic import BaseModel, Field, model_validator

from builder_api.auth import require_admin
from builder_api.deps import Locale, PathInt, PathStr, Rt, Who
from builder_api.diff import Change, Summary, diff_documents, summarize
from builder_api.drafts import (
    DraftError,
    ValidationReport,
    apply_merge_patch,
    document_yaml,
    draft_document,
    replace_from_json,
    validate_files,
)
from builder_api.graph import (
    LAYOUT_FILE,
    Edit,
    Graph,
    GraphError,
    WorkflowNotFound,
    apply_graph,
    graph_of,
    read_saved,
)
from builder_api.models import Body
from builder_api.palette import Palette, palette
from builder_api.problems import ERRORS, ApiError, FieldError
from builder_api.tickets import TENANT_PATH
from dsl.sources import PACK_SUFFIXES
from engine.load import bad_file_name, load_pack_texts
from runtime.api import Runtime
from runtime.records import DraftRow, PackVersionRow, PublishRefused

MAIN_FILE = "pack.yaml"
IfMatch = Annotated[
    int | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        ge=1,
        description="The draft revision the edit is based on; `conflict` if it moved on.",
    ),
]


# -- bodies -------------------------------------------------------------------------------


class NewDraft(Body):
    """Start a draft from a published version, from files of YAML text, or from JSON."""

    pack: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    from_version: int | None = Field(None, ge=1, description="Copy this published version.")
    files: dict[str, str] | None = Field(None, description="File name → YAML text.")
    document: dict[str, Any] | None = Field(None, description="The pack as JSON.")

    @model_validator(mode="after")
    def _one_source(self) -> NewDraft:
        given = [k for k in ("from_version", "files", "document") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of from_version, files, document; not {', '.join(given)}")
        return self


class ReplaceDraft(Body):
    files: dict[str, str] | None = Field(None, description="File name → YAML text.")
    document: dict[str, Any] | None = Field(
        None, description="The whole pack as JSON; applied as edits that keep YAML comments."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ReplaceDraft:
        if (self.files is None) == (self.document is None):
            raise ValueError("give exactly one of files, document")
        return self


class PublishDraft(Body):
    migrate: dict[str, str] = Field(
        default_factory=dict,
        description="Where open tickets in states the new version lacks go: old → new.",
    )


# -- responses ----------------------------------------------------------------------------


class DraftInfo(BaseModel):
    pack: str
    revision: int
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, row: DraftRow) -> DraftInfo:
        return cls(
            pack=row.pack,
            revision=row.revision,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )


class DraftOut(DraftInfo):
    files: dict[str, str] = Field(description="File name → text, comments and all.")
    document: dict[str, Any] | None = Field(
        description="The merged JSON of the files; null while a file does not parse."
    )

    @classmethod
    def full(cls, row: DraftRow) -> DraftOut:
        return cls(
            **DraftInfo.of(row).model_dump(),
            files=row.files,
            document=draft_document(pack_files(row.files)),
        )


class VersionInfo(BaseModel):
    pack: str
    version: int
    published_at: datetime
    published_by: str
    digest: str

    @classmethod
    def of(cls, row: PackVersionRow) -> VersionInfo:
        return cls(
            pack=row.pack,
            version=row.version,
            published_at=row.published_at,
            published_by=row.published_by,
            digest=row.digest,
        )


class VersionOut(VersionInfo):
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DiffOut:
    """`base` is what the changes start from (`version 3`), `target` where they lead."""

    base: str
    target: str
    changes: list[Change]
    summary: Summary


@dataclass(frozen=True, slots=True)
class GraphEditOut:
    draft: DraftInfo
    edits: list[Edit]
    graph: Graph
    validation: ValidationReport


# -- helpers ------------------------------------------------------------------------------


def pack_files(files: dict[str, str]) -> dict[str, str]:
    """The files the pack loader reads (side files such as layout.json are the UI's)."""
    return {n: t for n, t in files.items() if n.endswith(PACK_SUFFIXES)}


def check_file_names(files: dict[str, str], where: str = "/files") -> None:
    """Refuse names no pack file could have (the UI's layout.json aside), all at once."""
    errors = []
    for name in files:
        problem = None if name == LAYOUT_FILE else bad_file_name(name)
        if problem is not None:
            pointer = f"{where}/{name.replace('~', '~0').replace('/', '~1')}"
            errors.append(FieldError(pointer=pointer, code=problem.code, message=problem.message))
    if errors:
        raise ApiError(400, "invalid-request", f"{len(errors)} bad file name(s)", errors)


def _draft_problem(exc: DraftError) -> ApiError:
    views = [d.as_json() for d in exc.diagnostics]
    errors = [
        FieldError(pointer=d.pointer or "", code=d.code, message=d.message) for d in exc.diagnostics
    ]
    return ApiError(422, "invalid-edit", str(exc), errors, diagnostics=views)


def _save(
    rt: Runtime, current: DraftRow, files: dict[str, str], by: str, revision: int | None
) -> DraftRow:
    """Save over the revision the caller read (or, naming none, the one just edited)."""
    base = revision if revision is not None else current.revision
    return rt.save_draft(current.tenant_id, current.pack, files, by, base)


def _version(rt: Runtime, tenant: str, pack: str, version: int) -> PackVersionRow:
    rows = {r.version: r for r in rt.versions(tenant, pack)}
    if not rows:
        raise ApiError(404, "not-found", f"no published pack '{pack}'")
    if version not in rows:
        raise ApiError(
            404, "not-found", f"pack '{pack}' has no version {version}; it has 1–{max(rows)}"
        )
    return rows[version]


def _initial_files(rt: Runtime, tenant: str, data: NewDraft) -> dict[str, str]:
    if data.files is not None:
        check_file_names(data.files)
        return data.files
    if data.document is not None:
        return {MAIN_FILE: document_yaml(data.document)}
    versions = rt.versions(tenant, data.pack)
    if data.from_version is not None or versions:
        row = _version(rt, tenant, data.pack, data.from_version or versions[-1].version)
        return {MAIN_FILE: document_yaml(row.document)}
    return {MAIN_FILE: f"pack: {data.pack}\ntitle: {data.pack}\n"}


class BuilderController(Controller):
    path = TENANT_PATH + "/builder"
    tags = ["builder"]  # noqa: RUF012 (declared by Controller as an instance variable)

    @get("/palette", sync_to_thread=False, responses=ERRORS, summary="Everything a UI can place")
    def get_palette(self, caller: Who, locale: Locale = None) -> Palette:
        require_admin(caller)
        return palette(locale)

    # -- drafts -----------------------------------------------------------------------------

    @get("/drafts", sync_to_thread=True, responses=ERRORS, summary="The tenant's drafts")
    def list_drafts(self, rt: Rt, caller: Who, tenant: PathStr) -> list[DraftInfo]:
        require_admin(caller)
        return [DraftInfo.of(row) for row in rt.drafts(tenant)]

    @post("/drafts", sync_to_thread=True, status_code=201, responses=ERRORS, summary="New draft")
    def create_draft(
        self, rt: Rt, caller: Who, tenant: PathStr, data: JSONBody[NewDraft]
    ) -> DraftOut:
        require_admin(caller)
        try:
            files = _initial_files(rt, tenant, data)
        except DraftError as exc:
            raise _draft_problem(exc) from None
        row = rt.save_draft(tenant, data.pack, files, caller.actor.id, None)
        return DraftOut.full(row)

    @get("/drafts/{pack:str}", sync_to_thread=True, responses=ERRORS, summary="A draft")
    def get_draft(self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr) -> DraftOut:
        require_admin(caller)
        return DraftOut.full(rt.draft(tenant, pack))

    @put("/drafts/{pack:str}", sync_to_thread=True, responses=ERRORS, summary="Replace a draft")
    def replace_draft(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        data: JSONBody[ReplaceDraft],
        revision: IfMatch = None,
    ) -> DraftOut:
        require_admin(caller)
        current = rt.draft(tenant, pack)
        if data.files is not None:
            check_file_names(data.files)
        try:
            files = data.files
            if files is None:
                assert data.document is not None
                edited = replace_from_json(pack_files(current.files), data.document)
                files = {**current.files, **edited}
        except DraftError as exc:
            raise _draft_problem(exc) from None
        return DraftOut.full(_save(rt, current, files, caller.actor.id, revision))

    @patch(
        "/drafts/{pack:str}",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Edit a draft with a JSON Merge Patch (RFC 7396); YAML comments are kept",
    )
    def patch_draft(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        data: JSONBody[dict[str, Any]],
        revision: IfMatch = None,
    ) -> DraftOut:
        require_admin(caller)
        current = rt.draft(tenant, pack)
        try:
            edited = apply_merge_patch(pack_files(current.files), data)
        except DraftError as exc:
            raise _draft_problem(exc) from None
        files = {**current.files, **edited}
        return DraftOut.full(_save(rt, current, files, caller.actor.id, revision))

    @get(
        "/drafts/{pack:str}/files/{name:path}",
        sync_to_thread=True,
        responses=ERRORS,
        summary="One file of a draft as text",
        media_type="application/yaml",
    )
    def get_draft_file(
        self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr, name: PathStr
    ) -> Response[str]:
        require_admin(caller)
        files = rt.draft(tenant, pack).files
        key = name.lstrip("/")
        if key not in files:
            raise ApiError(
                404, "not-found", f"the draft has no file '{key}'; it has {sorted(files)}"
            )
        return Response(files[key], media_type="application/yaml")

    @put(
        "/drafts/{pack:str}/files/{name:path}",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Write one file of a draft (YAML text as the body)",
    )
    def put_draft_file(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        name: PathStr,
        body: RawBody,
        revision: IfMatch = None,
    ) -> DraftInfo:
        require_admin(caller)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(
                400, "bad-encoding", f"the file is not UTF-8 (byte {exc.start})"
            ) from None
        key = name.lstrip("/")
        check_file_names({key: text}, "/path")
        current = rt.draft(tenant, pack)
        files = {**current.files, key: text}
        return DraftInfo.of(_save(rt, current, files, caller.actor.id, revision))

    @delete("/drafts/{pack:str}", sync_to_thread=True, responses=ERRORS, summary="Drop a draft")
    def delete_draft(self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr) -> None:
        require_admin(caller)
        rt.delete_draft(tenant, pack)

    @post(
        "/drafts/{pack:str}/validate",
        sync_to_thread=True,
        status_code=200,
        responses=ERRORS,
        summary="Every problem, located in the YAML text and by JSON pointer in the model",
    )
    def validate_draft(
        self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr
    ) -> ValidationReport:
        require_admin(caller)
        return validate_files(pack_files(rt.draft(tenant, pack).files))

    @post(
        "/drafts/{pack:str}/publish",
        sync_to_thread=True,
        status_code=201,
        responses=ERRORS,
        summary="Publish the draft as a new immutable version",
    )
    def publish_draft(
        self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr, data: JSONBody[PublishDraft]
    ) -> VersionInfo:
        require_admin(caller)
        files = pack_files(rt.draft(tenant, pack).files)
        result = load_pack_texts(files)
        if not result.ok or result.pack is None:
            report = validate_files(files)
            views = [d for d in report.diagnostics if d.severity == "error"]
            errors = [
                FieldError(pointer=v.pointer or "", code=v.code, message=v.message) for v in views
            ]
            raise ApiError(
                422,
                "publish-refused",
                f"the draft has {report.errors} error(s); validate it for the details",
                errors,
                diagnostics=[asdict(v) for v in report.diagnostics],
            )
        if result.pack.pack != pack:
            raise ApiError(
                422,
                "publish-refused",
                f"the draft says `pack: {result.pack.pack}`, but it is the draft of '{pack}'",
                [FieldError(pointer="/pack", code="pack-name", message="must be " + pack)],
            )
        try:
            row = rt.publish(result, tenant, caller.actor, data.migrate or None)
        except PublishRefused as exc:
            problems = exc.details.get("problems") or [exc.message]
            errors = [FieldError(pointer="/migrate", code="stranded", message=p) for p in problems]
            raise ApiError(422, "publish-refused", exc.message, errors) from None
        return VersionInfo.of(row)

    @get(
        "/drafts/{pack:str}/diff",
        sync_to_thread=True,
        responses=ERRORS,
        summary="What publishing the draft would change",
    )
    def diff_draft(self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr) -> DiffOut:
        require_admin(caller)
        document = draft_document(pack_files(rt.draft(tenant, pack).files))
        if document is None:
            raise ApiError(422, "invalid-draft", "a file of the draft does not parse; validate it")
        versions = rt.versions(tenant, pack)
        base = versions[-1].document if versions else {}
        changes = diff_documents(base, document)
        label = f"version {versions[-1].version}" if versions else "nothing published"
        return DiffOut(base=label, target="draft", changes=changes, summary=summarize(changes))

    # -- the workflow graph ----------------------------------------------------------------

    @get(
        "/drafts/{pack:str}/workflows/{workflow:str}/graph",
        sync_to_thread=True,
        responses=ERRORS,
        summary="A workflow as nodes, edges and layout hints",
    )
    def get_workflow_graph(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        workflow: PathStr,
        locale: Locale = None,
    ) -> Graph:
        require_admin(caller)
        return _graph(rt.draft(tenant, pack).files, workflow, locale)

    @put(
        "/drafts/{pack:str}/workflows/{workflow:str}/graph",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Apply an edited graph to the draft, keeping the YAML's comments",
    )
    def put_workflow_graph(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        workflow: PathStr,
        data: JSONBody[dict[str, Any]],
        revision: IfMatch = None,
        locale: Locale = None,
    ) -> GraphEditOut:
        require_admin(caller)
        current = rt.draft(tenant, pack)
        try:
            edit = apply_graph(current.files, workflow, data)
        except GraphError as exc:
            errors = [
                FieldError(pointer=p.pointer, code=p.code, message=p.message) for p in exc.problems
            ]
            raise ApiError(422, "invalid-graph", str(exc), errors) from None
        except WorkflowNotFound as exc:
            raise ApiError(404, "not-found", str(exc)) from None
        except DraftError as exc:
            raise _draft_problem(exc) from None
        row = _save(rt, current, edit.files, caller.actor.id, revision)
        return GraphEditOut(
            draft=DraftInfo.of(row),
            edits=edit.edits,
            graph=_graph(row.files, workflow, locale),
            validation=validate_files(pack_files(row.files)),
        )

    # -- published versions ----------------------------------------------------------------

    @get("/packs", sync_to_thread=True, responses=ERRORS, summary="Published packs (newest)")
    def list_packs(self, rt: Rt, caller: Who, tenant: PathStr) -> list[VersionInfo]:
        require_admin(caller)
        heads = rt.store_heads(tenant)
        return [VersionInfo.of(_version(rt, tenant, p, v)) for p, v in sorted(heads.items())]

    @get(
        "/packs/{pack:str}/versions",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Every published version of a pack",
    )
    def list_pack_versions(
        self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr
    ) -> list[VersionInfo]:
        require_admin(caller)
        rows = rt.versions(tenant, pack)
        if not rows:
            raise ApiError(404, "not-found", f"no published pack '{pack}'")
        return [VersionInfo.of(r) for r in rows]

    @get(
        "/packs/{pack:str}/versions/{version:int}",
        sync_to_thread=True,
        responses=ERRORS,
        summary="One published version with its document",
    )
    def get_pack_version(
        self, rt: Rt, caller: Who, tenant: PathStr, pack: PathStr, version: PathInt
    ) -> VersionOut:
        require_admin(caller)
        row = _version(rt, tenant, pack, version)
        return VersionOut(**VersionInfo.of(row).model_dump(), document=row.document)

    @get(
        "/packs/{pack:str}/diff",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Changes between two published versions",
    )
    def diff_versions(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        base: Annotated[int, QueryParameter(name="from", ge=1)],
        target: Annotated[int, QueryParameter(name="to", ge=1)],
    ) -> DiffOut:
        require_admin(caller)
        old = _version(rt, tenant, pack, base)
        new = _version(rt, tenant, pack, target)
        changes = diff_documents(old.document, new.document)
        return DiffOut(
            base=f"version {base}",
            target=f"version {target}",
            changes=changes,
            summary=summarize(changes),
        )


def _graph(files: dict[str, str], workflow: str, locale: str | None) -> Graph:
    document = draft_document(pack_files(files))
    if document is None:
        raise ApiError(422, "invalid-draft", "a file of the draft does not parse; validate it")
    workflows = document.get("workflows") or {}
    if not isinstance(workflows, dict) or workflow not in workflows:
        known = ", ".join(sorted(workflows)) if isinstance(workflows, dict) else ""
        raise ApiError(404, "not-found", f"no workflow '{workflow}' in the draft; it has: {known}")
    locales = document.get("locales") or ["en"]
    layout = read_saved(files).get(workflow)
    return graph_of(workflow, workflows[workflow], list(locales), locale, layout)
