"""CareFile's pure ODK library: XLSForm compilation, XForm reading, submission parsing.

No web framework, database or storage imports live here; everything works on bytes.
"""

from __future__ import annotations

from forms._xml import safe_parse
from forms.submission import (
    EntityBlock,
    EntityScope,
    Envelope,
    RepeatRow,
    SubmissionData,
    SubmissionTree,
    SubmissionXMLError,
    entity_scopes,
    extract,
    extract_encrypted,
    normalize_uuid,
    parse_submission,
    typed_value,
)
from forms.xform import (
    CAREFILE_NAMESPACE,
    Choice,
    EntityDeclaration,
    Field,
    FormAttachment,
    FormSchema,
    XFormError,
    parse_xform,
)
from forms.xlsform import CompiledForm, XLSFormError, XLSFormIssue, compile_xlsform

__all__ = [
    "CAREFILE_NAMESPACE",
    "Choice",
    "CompiledForm",
    "EntityBlock",
    "EntityDeclaration",
    "Envelope",
    "Field",
    "FormAttachment",
    "FormSchema",
    "RepeatRow",
    "SubmissionData",
    "SubmissionTree",
    "SubmissionXMLError",
    "XFormError",
    "XLSFormError",
    "XLSFormIssue",
    "compile_xlsform",
    "EntityScope",
    "entity_scopes",
    "extract",
    "extract_encrypted",
    "normalize_uuid",
    "parse_submission",
    "parse_xform",
    "safe_parse",
    "typed_value",
]
