"""Forms: publishing (XLSForm → XForm → FormVersion), drafts and their test submissions, versions,
managed encryption and the generated SQL views.

The public surface of the forms aggregate; HTTP layers (openrosa, api, web) and the CLI call these.
Inside, one way down: encryption > versions > drafts > publish > views | keys | lookup | xmlutil.
"""
from __future__ import annotations

from app.services.forms import encryption, files, keys
from app.services.forms.drafts import (
    DraftResult,
    TestReceipt,
    count_test_submissions,
    create_draft,
    delete_draft,
    draft_by_token,
    draft_from_published,
    draft_schema,
    get_draft,
    list_test_submissions,
    publish_draft,
    receive_test_submission,
    renew_test_token,
    require_draft,
    test_token,
    upload_draft_attachment,
    version_used,
)
from app.services.forms.lookup import get_form, get_version, list_forms
from app.services.forms.publish import (
    PublishResult,
    add_version,
    assign_forms,
    attachment_rows,
    compile_upload,
    forms_for_phone,
    missing_attachments,
    publish_form,
    set_state,
    stamp_and_parse,
    upload_attachment,
    version_conflict,
)
from app.services.forms.versions import VersionFile, list_versions, version_source, version_xml
from app.services.forms.views import refresh_views
from app.services.schemas import schema_of, schema_to_json
from forms import parse_xform

__all__ = [
    "DraftResult", "PublishResult", "TestReceipt", "VersionFile", "add_version", "assign_forms", "attachment_rows",
    "compile_upload", "count_test_submissions", "create_draft", "delete_draft", "draft_by_token",
    "test_token", "renew_test_token",
    "draft_from_published", "draft_schema", "encryption", "files", "forms_for_phone", "get_draft",
    "get_form", "get_version", "keys", "list_forms", "list_test_submissions", "list_versions",
    "missing_attachments", "parse_xform", "publish_draft", "publish_form", "receive_test_submission",
    "refresh_views", "require_draft", "schema_of", "schema_to_json", "set_state", "stamp_and_parse",
    "upload_attachment", "upload_draft_attachment", "version_conflict", "version_source", "version_used",
    "version_xml",
]
