"""Children: the care file's entity list `children` (一人一档) and entity lists in general.

The public surface of the children aggregate. Inside, one way down:
    duplicates > casework > childfile > directory | vocabulary | lists | entities | trash > held > store
- store       the children's rows, scoped reads and the write primitives (lock order, server versions)
- held        the queue of changes held for review (deciding: app.services.submissions.review)
- entities    applying submissions' entity blocks (create, update, offline branches, conflicts);
              announces events.ChildChanged — case work and the duplicate check subscribe
              (app/services/effects.py)
- lists       the CSV phones receive (scoped per user) and the integrity check
- directory   what identifies each child (name, pinyin, guardian, ID number), for search and telling apart
- vocabulary  the forms' words for the codes the list stores (male → 男)
- childfile   read models, already redacted for the reader: the children list, a child's whole file,
              duplicate pairs, turning 18, case work's answers
- casework    moves, closure, reopening
- duplicates  likely duplicates: found on registration, merged or kept apart
- trash       deleting entities, restoring them, purging them 30 days later
"""
from __future__ import annotations

from app.services.children import casework, childfile, directory, duplicates, entities, held, lists, store, trash
from app.services.children.store import (
    CHILDREN,
    REFERRAL_STATUSES,
    RISK_LEVELS,
    STATUS_PROPS,
    STATUSES,
    children_query,
    ensure_dataset,
    get_child,
    get_dataset,
    is_overdue,
    lock_dataset,
    overdue_condition,
)
from app.services.children.vocabulary import Vocabulary, vocabulary

__all__ = ["CHILDREN", "REFERRAL_STATUSES", "RISK_LEVELS", "STATUSES", "STATUS_PROPS", "casework", "childfile",
           "children_query", "duplicates", "ensure_dataset", "entities", "get_child", "get_dataset", "held",
           "is_overdue", "lists", "lock_dataset", "overdue_condition", "store", "directory", "trash", "Vocabulary",
           "vocabulary"]
