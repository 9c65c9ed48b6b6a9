"""The data model of a parsed XForm (see :func:`forms.xform.parse_xform`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Choice:
    """One option of a select question."""

    value: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Field:
    """One node of the primary instance (question, group, repeat or meta field)."""

    path: str
    name: str
    type: str
    repeat: str | None
    labels: dict[str, str]
    control: str | None
    mediatype: str | None
    relevant: str | None
    required: bool
    readonly: bool
    calculate: str | None
    choices: tuple[Choice, ...]
    itemset_file: str | None
    saveto: str | None
    sensitive: bool
    meta: bool = False          # node lives under the root's <meta> block
    hints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FormAttachment:
    """A media or data file the form refers to (goes into the manifest)."""

    filename: str
    kind: str
    dataset: str | None


@dataclass(frozen=True)
class EntityDeclaration:
    """The entity list a form creates or updates: the top-level ``meta/entity``, or (entities spec 2025.1)
    the ``meta/entity`` of a repeat — one entity per repeat instance (``repeat`` is the repeat's path)."""

    dataset: str
    create: bool
    update: bool
    create_condition: str | None
    label_path: str | None
    properties: dict[str, str]
    spec_version: str
    update_condition: str | None = None
    id_calculate: str | None = None
    repeat: str | None = None


@dataclass(frozen=True)
class FormSchema:
    """Everything CareFile needs to know about one form version."""

    form_id: str
    version: str
    title: str
    root: str
    fields: tuple[Field, ...]
    repeats: tuple[str, ...]
    attachments: tuple[FormAttachment, ...]
    entity: EntityDeclaration | None
    languages: tuple[str, ...]
    default_language: str | None
    instance_name: str | None
    submission_url: str | None
    encrypted: bool
    # Every entity declaration, the top-level one first, then those of repeats (entities spec 2025.1:
    # several entities from one submission). `entity` is the first of them.
    entities: tuple[EntityDeclaration, ...] = ()

    def field(self, path: str) -> Field | None:
        """Return the field at absolute instance *path* (e.g. ``/data/age``), or None."""
        return self._index().get(path)

    def binary_fields(self) -> tuple[Field, ...]:
        """Fields whose values are attachment file names (photos, audio, audit log...)."""
        return tuple(f for f in self.fields if f.type == "binary")

    def _index(self) -> dict[str, Field]:
        cached: dict[str, Field] | None = self.__dict__.get("_field_index")
        if cached is None:
            cached = {f.path: f for f in self.fields}
            object.__setattr__(self, "_field_index", cached)
        return cached
