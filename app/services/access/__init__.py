"""Access: who may do what to which records (`policy`), and who sees identifying details (`redact`).

The one policy every path asks: services take the acting user and call it; HTTP views only pass the
user in. See docs/architecture.md, "Access and privacy".
"""
from __future__ import annotations

from app.services.access.policy import (
    ADMIN,
    CHILDREN,
    COORDINATORS,
    PERMISSIONS,
    READERS,
    FormLike,
    assigned_form_ids,
    can,
    check_grant,
    child_filter,
    children_subquery,
    covers,
    form_reach,
    may_change_form,
    may_edit_record,
    may_enter_on_web,
    may_fill,
    may_manage_user,
    may_write_region,
    phone_scope,
    region_filter,
    require,
    require_form_change,
    require_reader,
    sees_region,
    sees_submission,
    submission_filter,
    unscoped,
)
from app.services.access.redact import (
    MASK,
    Redactor,
    audit_unmasked,
    pseudonym,
    sees_sensitive,
    sensitive_label_lists,
)

__all__ = [
    "ADMIN", "CHILDREN", "COORDINATORS", "FormLike", "MASK", "PERMISSIONS", "READERS", "Redactor",
    "assigned_form_ids", "audit_unmasked", "can", "check_grant", "child_filter", "children_subquery", "covers",
    "form_reach", "may_change_form", "may_edit_record", "may_enter_on_web", "may_fill", "may_manage_user",
    "may_write_region", "phone_scope", "pseudonym", "region_filter", "require", "require_form_change",
    "require_reader", "sees_region", "sees_sensitive", "sees_submission", "sensitive_label_lists",
    "submission_filter", "unscoped",
]
