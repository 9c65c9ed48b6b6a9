"""SQLAlchemy models. Import from here; every table is registered on Base.metadata."""
from .activity import AuditEvent, ExportJob, LoginFailure, SigninKnownAddress, SubmissionComment
from .base import Base, loaded_instance, utcnow
from .encryption import ManagedKey
from .entity import (
    ChildDirectory,
    Dataset,
    DatasetRevision,
    DuplicateCandidate,
    Entity,
    EntityEvent,
    EntityVersion,
    PurgedEntity,
)
from .form import (
    FORM_STATES,
    DraftSubmission,
    DraftSubmissionFile,
    Form,
    FormAttachment,
    FormDraft,
    FormDraftAttachment,
    FormVersion,
    FormView,
)
from .held import HELD_KINDS, HELD_STATES, HeldChange
from .project import Project
from .rollup import DashboardRollup
from .submission import REVIEW_STATES, Submission, SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion
from .user import ROLES, ApiSession, CollectorToken, DigestNonceUse, FormAssignment, User, UserRegion, WebSession

__all__ = [
    "Base", "ChildDirectory", "utcnow", "AuditEvent", "ExportJob", "LoginFailure", "SubmissionComment", "Project",
    "User", "UserRegion", "CollectorToken", "FormAssignment", "DigestNonceUse", "ApiSession", "Form",
    "FormVersion", "FormAttachment", "FormView", "Submission", "SubmissionVersion", "SubmissionRepeatRow",
    "SubmissionAttachment", "Dataset", "DatasetRevision", "Entity", "EntityVersion", "EntityEvent", "ROLES",
    "FORM_STATES",
    "REVIEW_STATES", "HeldChange", "HELD_KINDS", "HELD_STATES", "ManagedKey", "SigninKnownAddress", "WebSession",
    "FormDraft", "FormDraftAttachment", "DraftSubmission", "DraftSubmissionFile", "DuplicateCandidate",
    "DashboardRollup", "loaded_instance", "PurgedEntity",
]
