"""Forms: publishing (XLSForm → XForm → FormVersion), drafts and their test submissions, versions.

The public surface of the forms aggregate; HTTP layers (openrosa, api, web) and the CLI call these.
"""
from __future__ import annotations

from app.services.forms.drafts import (
    DraftResult,
    TestReceipt,
    count_test_submissions,
    create_draft,
    delete_draft,
    draft_by_token,
    draft_from_published,
    draft_list_csv,
    draft_schema,
    get_draft,
    list_test_submissions,
    publish_draft,
    receive_test_submission,
    require_draft,
    upload_draft_attachment,
    version_used,
)
from app.services.forms.publish import (
    PublishResult,
    add_version,
    assign_forms,
    assigned_form_ids,
    attachment_rows,
    can_enter_on_web,
    can_fill,
    compile_upload,
    forms_for_phone,
    get_form,
    get_version,
    list_forms,
    missing_attachments,
    publish_form,
    schema_of,
    schema_to_json,
    set_state,
    stamp_and_parse,
    upload_attachment,
    version_conflict,
)
from app.services.forms.versions import VersionFile, list_versions, version_source, version_xml
from forms import parse_xform

__all__ = [
    "DraftResult", "PublishResult", "TestReceipt", "VersionFile", "add_version", "assign_forms",
    "assigned_form_ids", "attachment_rows", "can_enter_on_web", "can_fill", "compile_upload", "count_test_submissions",
    "create_draft", "delete_draft", "draft_by_token", "draft_from_published", "draft_list_csv", "draft_schema",
    "forms_for_phone", "get_draft", "get_form",
    "get_version", "list_forms", "list_test_submissions", "list_versions", "missing_attachments", "parse_xform",
    "publish_draft", "publish_form", "receive_test_submission", "require_draft", "schema_of", "schema_to_json",
    "set_state", "stamp_and_parse", "upload_attachment", "upload_draft_attachment", "version_conflict",
    "version_source", "version_used", "version_xml",
]
