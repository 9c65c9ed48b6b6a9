"""SQLAlchemy models. Import from here; every table is registered on Base.metadata."""
from .activity import AuditEvent, ExportJob, LoginFailure, SubmissionComment
from .base import Base, utcnow
from .entity import Dataset, DuplicateCandidate, Entity, EntityEvent, EntityVersion
from .form import FORM_STATES, Form, FormAttachment, FormVersion
from .project import Project
from .submission import REVIEW_STATES, Submission, SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion
from .user import ROLES, ApiSession, CollectorToken, DigestNonceUse, FormAssignment, User, UserRegion

__all__ = [
    "Base", "utcnow", "AuditEvent", "ExportJob", "LoginFailure", "SubmissionComment", "Project", "User", "UserRegion", "CollectorToken", "FormAssignment",
    "DigestNonceUse", "ApiSession", "Form", "FormVersion", "FormAttachment", "Submission", "SubmissionVersion",
    "SubmissionRepeatRow", "SubmissionAttachment", "Dataset", "DuplicateCandidate", "Entity", "EntityVersion", "EntityEvent", "ROLES", "FORM_STATES", "REVIEW_STATES",
]
