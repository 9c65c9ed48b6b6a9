"""Small entity forms (markdown XLSForms) and submissions shaped like ODK Collect's."""
from __future__ import annotations

REGISTER_MD = """
| settings |
| | form_id | version |
| | register | 1 |

| survey |
| | type | name | label | save_to |
| | select_one yn | consent | Consent? | |
| | text | given | Name | |
| | text | village | Village code | village |
| | text | status | Status | status |

| choices |
| | list_name | name | label |
| | yn | yes | Yes |
| | yn | no | No |

| entities |
| | list_name | label | create_if |
| | children | ${given} | ${consent} = 'yes' |
"""

UPDATE_MD = """
| settings |
| | form_id | version |
| | followup | 1 |

| survey |
| | type | name | label | save_to |
| | select_one_from_file children.csv | child | Child | |
| | text | status | Status | status |
| | text | note | Note | note |
| | date | due | Next follow-up | next_followup_due |

| entities |
| | list_name | entity_id |
| | children | ${child} |
"""


def register_xml(instance: str, entity_id: str, name: str, village: str, consent: str = "yes",
                 status: str = "registered") -> bytes:
    create = "1" if consent == "yes" else "0"
    return (f'<data id="register" version="1"><consent>{consent}</consent><given>{name}</given>'
            f"<village>{village}</village><status>{status}</status><meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{entity_id}" create="{create}"><label>{name}</label></entity>'
            "</meta></data>").encode()


def update_xml(instance: str, entity_id: str, base: int, *, status: str | None = None, note: str | None = None,
               trunk: int | None = None, branch: str | None = None, due: str | None = None) -> bytes:
    fields = f"<child>{entity_id}</child>"
    if due is not None:
        fields += f"<due>{due}</due>"
    if status is not None:
        fields += f"<status>{status}</status>"
    if note is not None:
        fields += f"<note>{note}</note>"
    offline = f' trunkVersion="{trunk}" branchId="{branch}"' if trunk is not None else ' trunkVersion="" branchId=""'
    return (f'<data id="followup" version="1">{fields}<meta><instanceID>{instance}</instanceID>'
            f'<entity dataset="children" id="{entity_id}" update="1" baseVersion="{base}"{offline}><label/></entity>'
            "</meta></data>").encode()
