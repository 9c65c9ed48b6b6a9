"""The catalogue of problems: every failure a user can cause, with its code, HTTP status and message.

A raise site names a kind (`raise problems.CASE_ALREADY_CLOSED()`, fields by name:
`problems.NOT_A_VILLAGE_CODE(village=code)`); no code is written anywhere else
(tests/app/test_problems.py). Codes follow ODK Central's (lib/util/problem.js) where Central has one;
CareFile's own codes that were added later are numbered from 100 (400.101 …).

Each code means one thing. Most codes have one kind; a code in SHARED names a general meaning (as
Central's 404.1 "not found") and has several kinds that say precisely what, each message its own
template. The message templates are the keys of the web pages' translations (app/translations); the
OpenRosa layer adds a Chinese sentence per code for Collect (app/openrosa/render.py)."""
from __future__ import annotations

from typing import Any

from app.errors import Problem


class Kind:
    """One kind of problem: calling it with the template's fields makes the Problem to raise."""

    def __init__(self, code: str, status: int, template: str) -> None:
        self.code = code
        self.status = status
        self.template = template

    def __call__(self, **fields: Any) -> Problem:
        return Problem(self.status, self.code, self.format(**fields), template=self.template, fields=fields)

    def format(self, **fields: Any) -> str:
        return self.template.format(**fields)

    def __repr__(self) -> str:
        return f"Kind({self.code!r}, {self.status}, {self.template!r})"


# Codes with one general meaning and several kinds saying precisely what.
SHARED = {
    "400.1": "the request body is not the JSON it should be",
    "400.2": "a required part of the request is missing or malformed",
    "400.7": "the submission has no form data",
    "400.8": "an unexpected value",
    "400.11": "a parameter's value cannot be read",
    "400.19": "an edit was sent the wrong way",
    "400.92": "a purge's options do not fit together",
    "404.30": "no such child in the caller's regions",
    "400.122": "not a place of the division table",
    "400.123": "a password was not given, or not the same twice",
    "400.124": "a user name is not acceptable",
    "400.129": "the server makes this file; it cannot be uploaded",
    "403.100": "outside the caller's regions or assigned forms",
    "409.4": "already turned on",
    "400.22": "a value is out of range",
    "400.21": "a password or passphrase is too short",
    "400.28": "the entity is invalid",
    "400.30": "a case-work request's field is invalid",
    "400.40": "a submission names a file that is not a plain file name",
    "400.80": "a held change's decision is not apply or reject",
    "400.81": "a held change's note is not acceptable",
    "400.83": "a map feed (GeoJSON) parameter is not acceptable",
    "400.85": "publish notes are not acceptable",
    "400.86": "a $select property is not acceptable",
    "400.102": "the division table file cannot be loaded",
    "400.105": "the form is not a valid XForm",
    "400.108": "not a form state",
    "400.110": "a child compared with itself",
    "400.116": "the collectors' list file cannot be read",
    "401.2": "the credentials are not valid or are missing",
    "401.3": "a sign-in method only allowed over HTTPS",
    "403.1": "the caller's role may not do this",
    "403.2": "the form may not do this entity action",
    "404.7": "the entity list does not exist",
    "404.9": "the entity version does not exist",
    "404.1": "not found",
    "404.100": "the form has no published version to make a draft from",
    "429.1": "too many wrong passwords or passphrases: wait",
    "400.66": "the backup passphrase cannot be read",
    "409.1": "a submission with this instanceID exists with different content",
    "409.2": "the form is closed",
    "409.3": "a resource with this name or id exists already",
    "409.6": "a form version is already published with different content",
    "409.9": "an edit of a version that is no longer the current one",
    "409.18": "the submission was deleted on the server",
    "409.102": "the held change was decided already",
    "413.1": "a file or body is larger than this server accepts",
    "413.2": "the submission is larger than this server accepts",
    "413.3": "a submission's file is larger than this server accepts",
    "501.1": "an OData feature that is not supported",
}

BODY_NOT_JSON_OBJECT = Kind("400.1", 400, "Send a JSON object as the request body{example}.")
FORM_STATE_BODY = Kind("400.1", 400, 'Send a JSON object such as {{"state": "closing"}} (open, closing or closed).')
COLLECTOR_REGIONS_MISSING = Kind(
    "400.2", 400,
    "Name the collector's regions (`regions`: list of region codes); a collector without a region would "
    "receive no child.")
COMMENT_BODY_MISSING = Kind("400.2", 400, 'Send JSON {{"body": "the comment"}}.')
DISPLAY_NAME_MISSING = Kind("400.2", 400, 'Send JSON {{"displayName": "the collector\'s name"}} (1–200 characters).')
FORM_BODY_EMPTY = Kind("400.2", 400, "The request body is empty: send the form file as the body.")
ONLY_APP_USER_ROLE = Kind("400.2", 400, "Only the role app-user (id 2) can be assigned on a form here, not '{role}'.")
REGIONS_NOT_A_LIST = Kind("400.2", 400, '`regions` must be a list of region codes, e.g. ["540102"].')
SUBMISSION_BODY_MISSING = Kind(
    "400.2", 400,
    "Send the submission XML as the request body (Content-Type: application/xml).")
SUBMISSION_XML_UNREADABLE = Kind("400.2", 400, "{detail}")
SESSION_BODY_MISSING = Kind("400.3", 400, "Send JSON with `email` (your user name) and `password`.")
X_OPENROSA_VERSION_HEADER_MISSING = Kind(
    "400.6", 400,
    "The X-OpenRosa-Version: 1.0 header is missing. Use ODK Collect or another OpenRosa client.")
DRAFT_SUBMISSION_NO_XML_PART = Kind(
    "400.7", 400,
    "The submission has no xml_submission_file part. Send it from ODK Collect.")
SUBMISSION_NO_FORM_DATA = Kind(
    "400.7", 400,
    "The submission has no form data. Reload the page and fill the form again.")
SUBMISSION_NO_XML_PART = Kind(
    "400.7", 400,
    "The submission has no xml_submission_file part. Send it from ODK Collect (or another OpenRosa "
    "client).")
APPROVAL_REQUIRED_UNSUPPORTED = Kind(
    "400.8", 400,
    "approvalRequired is not supported: entities are created as submissions arrive (review happens on "
    "the submissions).")
BAD_ENTITY_LIST_NAME = Kind(
    "400.8", 400,
    "Unexpected name value {name!r}: an entity list name starts with a letter, '_' or ':' and has letters, "
    "digits, '_', ':', '-' (no '.', not '__' first, at most 100).")
BAD_PROPERTY_NAME = Kind(
    "400.8", 400,
    "Unexpected name value {name!r}: a property name starts with a letter or '_' and has letters, "
    "digits, '_', '.', '-'; 'name' and 'label' are reserved.")
FORM_ID_FILE_EXTENSION = Kind(
    "400.8", 400,
    "The form ID '{form_id}' ends in .xls, .xlsx or .xml, which the form's addresses use for its files. "
    "Set another form_id in the settings sheet (or rename the file, e.g. form.xls.xls to form.xls).")
FORM_ID_FALLBACK_INVALID = Kind(
    "400.8", 400,
    "X-XlsForm-FormId-Fallback must be a form id of 1 to 250 characters without control characters "
    "(percent-encoded UTF-8).")
DRAFT_OF_ANOTHER_FORM = Kind(
    "400.8", 400,
    "The form definition's id is '{form_id}', but this is the draft of '{form_id2}'. Upload it to its "
    "own form, or change form_id in the settings sheet.")
SUBMISSION_OF_ANOTHER_FORM = Kind(
    "400.8", 400,
    "The submission is for the form '{form_id}', but it was sent to the form '{xml_form_id}'. Send it to "
    "/forms/{form_id}/submissions.")
TEST_SUBMISSION_OF_ANOTHER_FORM = Kind(
    "400.8", 400,
    "This test address is for the draft of '{form_id}', but the submission is of '{form_id2}'. Send it "
    "to that form's address.")
UNKNOWN_REVIEW_STATE_API = Kind(
    "400.8", 400,
    "Unknown review state {raw!r}: use hasIssues, approved or rejected (edited is set by an edit).")
FIELD_CONTROL_CHARACTERS = Kind("400.11", 400, "The field {name} contains control characters; type it again.")
PARAM_CONTROL_CHARACTERS = Kind("400.11", 400, "{name} contains control characters; type it again.")
PARAM_NOT_A_DATE = Kind(
    "400.11", 400,
    "{name} must be a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDThh:mm:ssZ), not '{value}'.")
PARAM_NOT_A_WHOLE_NUMBER = Kind("400.11", 400, "{name} must be a whole number, not '{value}'.")
XLSFORM_WARNINGS = Kind(
    "400.16", 400,
    "The XLSForm is valid, but there are warnings: fix them, or send it again with ?ignoreWarnings=true.")
ODATA_FILTER_UNPARSABLE = Kind("400.18", 400, "The OData filter expression you provided could not be parsed: {reason}")
EDIT_SENT_AS_NEW = Kind(
    "400.19", 400,
    "This XML carries meta/deprecatedID: it is an edit. Send it with PUT to .../submissions/<the "
    "submission's instanceId> instead.")
EDIT_WITHOUT_DEPRECATED_ID = Kind(
    "400.19", 400,
    "An edit must name the version it replaces: put the current version's instanceID in "
    "meta/deprecatedID and give the edit a new meta/instanceID.")
REGION_CODE_SHAPE = Kind(
    "400.20", 400,
    "'{value}' is not a region code. Use a national division code of 2, 4, 6, 9 or 12 digits, e.g. 5401 (Lhasa) "
    "or 540102 (Chengguan).")
REGION_UNKNOWN = Kind(
    "400.122", 400,
    "There is no place with the code '{value}' in the division table. Pick the place from the list (type its "
    "name), or ask an administrator to load the province's table.")
REGIONS_FIELD_INVALID = Kind("400.122", 400, "{detail}")  # the website's regions field, its message translated
ODATA_DATE_OUT_OF_RANGE = Kind("400.22", 400, "Provided value '{text}' is out of range for type 'date'")
ODATA_INT_OUT_OF_RANGE = Kind("400.22", 400, "Provided value '{value}' is out of range for type 'Int64'")
PARAM_DATE_OUT_OF_RANGE = Kind("400.22", 400, "{name} must be a date between the years 2 and 9998.")
PARAM_OUT_OF_RANGE = Kind("400.22", 400, "{name} must be between {low} and {high}.")
PASSWORD_NOT_ON_STDIN = Kind("400.123", 400, "No password on standard input: send it as the first line.")
PASSWORD_NO_TERMINAL = Kind(
    "400.123", 400,
    "No password given, and there is no terminal to type it at. Run the command in a terminal, or send "
    'the password on standard input with --password-stdin (e.g. `printf \'%s\\n\' "$PW" | carefile user add '
    "…`).")
PASSWORD_TOO_SHORT = Kind("400.21", 400, "The password is too short: use at least 8 characters.")
TWO_PASSWORDS_DIFFER = Kind("400.123", 400, "The two passwords differ. Nothing was changed; try again.")
USER_NAME_CHARACTERS = Kind(
    "400.124", 400,
    "'{username}' cannot be used as a user name: use Latin letters, digits and . _ - @ only (for example "
    "pinyin), and put the full name in the display name.")
USER_NAME_LENGTH = Kind("400.124", 400, "A user name must be 1–150 characters and contain no ':'.")
DISPLAY_NAME_TOO_LONG = Kind("400.125", 400, "The display name is too long: use at most 200 characters.")
CANNOT_CHANGE_OWN_ROLE = Kind("400.126", 400, "You cannot change your own role. Ask another administrator.")
ENTITY_DATA_NOT_OBJECT = Kind("400.28", 400, "The entity is invalid. `data` must be an object of property: text.")
ENTITY_LABEL_EMPTY = Kind("400.28", 400, "The entity is invalid. The label must be non-empty text.")
ENTITY_LABEL_MISSING = Kind("400.28", 400, "The entity is invalid. No entity label provided.")
ENTITY_NOT_OBJECT = Kind("400.28", 400, "The entity is invalid. Each entity is an object with label and data.")
ENTITY_UNKNOWN_PROPERTY = Kind(
    "400.28", 400,
    "The entity is invalid. You specified the dataset property [{unknown}] which does not exist. Create "
    "it first (POST .../datasets/{name}/properties).")
ENTITY_UUID_INVALID = Kind("400.28", 400, "The entity is invalid. Invalid Entity UUID: {raw_uuid!r}.")
ENTITY_VALUE_NOT_STRING = Kind("400.28", 400, "The entity is invalid. The value of [{bad}] must be a string.")
ENTITY_REGION_PROPERTY_SHAPE = Kind(
    "400.28", 400,
    "The entity is invalid. The {key} '{value}' is not a {key} code: a {key} code has {length} digits (e.g. "
    "{example}). Give the national division code of the place.")
CASEWORK_DAYS_INVALID = Kind("400.30", 400, "days must be a whole number of days, e.g. 90.")
CASEWORK_FIELD_NOT_STRING = Kind("400.30", 400, "'{key}' must be a string.")
CASEWORK_OTHER_MISSING = Kind("400.30", 400, 'Name the other child: {{"other": "<uuid>"}}.')
DUPLICATE_STATUS_INVALID = Kind("400.30", 400, "status must be open, merged or distinct.")
NOT_A_VILLAGE_CODE = Kind(
    "400.127", 400,
    "'{village}' is not a village code. Give the 12-digit national division code of the village the "
    "child moves to, e.g. 540102002001.")
ENTITY_HAS_NO_CONFLICT = Kind("400.32", 400, "The Entity doesn't have any conflict.")
FORM_DOES_NOT_USE_FILE = Kind(
    "400.128", 400,
    "This form does not use a file named '{filename}'. Files it expects: {expected}.")
ENTITY_LIST_NOT_UPLOADABLE = Kind(
    "400.129", 400,
    "'{filename}' is the entity list '{dataset}'; the server builds it from registrations, it cannot be "
    "uploaded.")
REGIONS_CSV_NOT_UPLOADABLE = Kind(
    "400.129", 400,
    "'{filename}' is made by the server for each user from the division table (only the places of the "
    "user's regions); it cannot be uploaded. To add places, an administrator loads the province's table "
    "(carefile regions load).")
VERSION_NOT_ACCEPTABLE = Kind(
    "400.131", 400,
    "A version must be 1 to 250 characters on one line, for example 2026112901.")
RETENTION_TOO_SHORT = Kind("400.130", 400, "The retention period must be at least one year (CAREFILE_RETENTION_YEARS).")
DRAFT_FILE_NAME_NOT_PLAIN = Kind(
    "400.40", 400,
    "The submission refers to a file named '{name}', which is not a plain file name.")
FILE_NAME_NOT_PLAIN = Kind(
    "400.40", 400,
    "The submission refers to a file named '{name}', which is not a plain file name. Files must not "
    "contain '/' or '..'.")
TOO_MANY_FILES = Kind(
    "400.45", 400,
    "The submission was sent with more than {parts} files. A form needs only the files its answers name: "
    "remove other files from the form's folder on the phone (or send the form again from ODK Collect) "
    "and send it again.")
CSRF_TOKEN_MISSING = Kind("400.60", 400, "The form was sent without its security token. Reload the page and try again.")
REVIEW_STATE_UNKNOWN = Kind("400.61", 400, "Choose a review state: received, has issues, approved or rejected.")
COMMENT_TOO_LONG = Kind("400.62", 400, "The comment is too long (at most 4000 characters).")
REVIEW_NOTHING_TO_SAVE = Kind("400.63", 400, "Nothing to save: choose another review state or write a comment.")
PARAM_DATE_FORMAT = Kind("400.64", 400, "Dates are written as YYYY-MM-DD, e.g. 2026-03-01.")
PAGE_LINK_BROKEN = Kind(
    "400.65", 400,
    "This page link is broken or out of date. Open the list again from its first page.")
EXPORT_DATE_INVALID = Kind("400.70", 400, "`{name}` must be a date like 2026-03-31.")
UNKNOWN_EXPORT_FORMAT = Kind("400.71", 400, "Unknown export format '{fmt}'. Use csvzip, xlsx or json.")
UNKNOWN_LABEL_MODE = Kind("400.72", 400, "Unknown label mode '{labels}'. Use codes, zh or en.")
EXPORT_REGION_INVALID = Kind("400.73", 400, "`region` must be a region code of 2 to 12 digits.")
EXPORT_REVIEW_STATE_UNKNOWN = Kind("400.74", 400, "Unknown review state '{bad}'. Use: {choices}.")
EXPORT_DATES_REVERSED = Kind("400.75", 400, "`date_from` is after `date_to`.")
EXPORT_OPTIONS_NOT_OBJECT = Kind("400.76", 400, "Send the export options as a JSON object.")
HELD_ACTION_MISSING = Kind(
    "400.80", 400,
    'Send JSON {{"action": "apply"}} or {{"action": "reject"}} (and an optional "note").')
HELD_ACTION_UNKNOWN = Kind("400.80", 400, "Choose 'apply' or 'reject'.")
HELD_NOTE_NOT_STRING = Kind("400.81", 400, "note must be a string.")
HELD_NOTE_TOO_LONG = Kind("400.81", 400, "The note is too long (at most 2000 characters).")
GEOJSON_PARAMETER_UNKNOWN = Kind("400.83", 400, "Unknown parameter {name}; this map feed takes {known}.")
GEOJSON_REVIEW_STATE_UNKNOWN = Kind("400.83", 400, "Unknown reviewState {state}: use null (received), {known}.")
GEOJSON_DELETED_NOT_BOOLEAN = Kind("400.83", 400, "deleted must be true (the trash) or false.")
GEOJSON_NO_SUCH_FIELD = Kind(
    "400.83", 400, "The form has no geo question {path}. Its geo questions: {known}.")
PUBLISH_NOTES_NOT_TEXT = Kind(
    "400.85", 400, 'publishNotes must be text, for example {{"publishNotes": "Added the school question"}}.')
PUBLISH_NOTES_TOO_LONG = Kind("400.85", 400, "Publish notes are at most {limit} characters of text; shorten them.")
SELECT_TOO_MANY = Kind("400.86", 400, "$select names more than {limit} properties; ask for fewer.")
SELECT_UNKNOWN_PROPERTY = Kind(
    "400.86", 400, "$select: '{path}' is not a property of {table}. Its properties include {known}.")
HELD_STATUS_UNKNOWN = Kind("400.82", 400, "status is one of pending, applied, rejected (or empty for all).")
TWO_PASSPHRASES_DIFFER = Kind("400.123", 400, "The two passphrases differ.")
FORM_NO_MANAGED_ENCRYPTION_KEY = Kind(
    "400.84", 400,
    "The form '{xml_form_id}' has no managed encryption key on this server. If it was encrypted with "
    "your own key, decrypt with `carefile export --private-key`.")
UNKNOWN_ROLE = Kind("400.101", 400, "Unknown role '{role}'. Choose one of: {choices}.")
REGIONS_FILE_BAD_CODE = Kind("400.102", 400, "Row {line}: '{code}' is not a division code of 2, 4, 6, 9 or 12 digits.")
REGIONS_FILE_HEADER = Kind(
    "400.102", 400,
    "The first row must name the columns code and name (the layout of app/data/regions-54.csv).")
REGIONS_FILE_NOT_UTF8 = Kind("400.102", 400, "The file is not UTF-8 text. Save it as CSV (UTF-8).")
REGIONS_FILE_NO_NAME = Kind("400.102", 400, "Row {line}: the place {code} has no name.")
REGIONS_FILE_BAD_NAME = Kind(
    "400.102", 400,
    "Row {line}: the name of the place {code} ({name!r}) {problem}. Correct the file and load it again; nothing "
    "was loaded.")
REGIONS_FILE_NO_PARENT = Kind(
    "400.102", 400,
    "The place {code} has no parent {code2} in the file. Include every level (province, prefecture, "
    "county, township, village).")
REGIONS_FILE_NO_PROVINCE = Kind("400.102", 400, "The file has no row for the province itself (code {province}).")
REGIONS_FILE_SEVERAL_PROVINCES = Kind(
    "400.102", 400,
    "A file holds one province; this one has codes of {value}. Split it by province.")
FORM_NOT_PUBLISHABLE = Kind("400.103", 400, "The form '{filename}' could not be published: {err}")
BULK_ENTITIES_MISSING = Kind("400.31", 400, "Expected parameters: (entities: [...]). Got (not a non-empty array).")
COMPILED_FORM_NOT_VALID_XFORM = Kind("400.105", 400, "The compiled form is not a valid XForm: {err}")
DRAFT_NOT_VALID_XFORM = Kind("400.105", 400, "The draft is not a valid XForm: {err}")
VILLAGE_NOT_IN_TABLE = Kind(
    "400.106", 400,
    "There is no village with the code {village} in the division table. Pick the village from the list "
    "(type its name).")
CLOSE_REASON_UNKNOWN = Kind("400.107", 400, "'{reason}' is not a reason for closing a case. Use one of: {choices}.")
FORM_STATE_CHOOSE = Kind("400.108", 400, "Choose open, closing or closed.")
UNKNOWN_FORM_STATE = Kind("400.108", 400, "Unknown form state '{state}'. Use open, closing or closed.")
CLOSE_NOTE_MISSING = Kind("400.109", 400, "Closing for another reason needs a note saying why.")
CHILD_COMPARED_WITH_ITSELF = Kind("400.110", 400, "A child cannot be compared with itself.")
CHILD_MERGED_INTO_ITSELF = Kind("400.110", 400, "A child cannot be merged into itself.")
INVALID_SKIPTOKEN = Kind(
    "400.35", 400,
    "Invalid $skiptoken. Use the @odata.nextLink of the previous page as it is, or start again without "
    "$skiptoken.")
MERGE_SURVIVOR_MISSING = Kind("400.112", 400, 'Say which child to keep: {{"into": "<uuid of the surviving child>"}}.')
NO_FILE_CHOSEN = Kind("400.113", 400, "Choose a file to upload.")
FILE_EMPTY = Kind("400.114", 400, "The file is empty.")
UPLOAD_NOT_PUBLISHABLE_HERE = Kind("400.115", 400, "This upload cannot be published from here. Upload the file again.")
COLLECTORS_CSV_NOT_TEXT = Kind("400.116", 400, "This CSV file is not text. Save it as CSV UTF-8 and upload it again.")
COLLECTORS_FILE_TYPE = Kind("400.116", 400, "Upload the list as an Excel workbook (.xlsx) or a CSV file.")
COLLECTORS_OLD_XLS = Kind(
    "400.116", 400,
    "Old Excel files (.xls) cannot be read. Save the file as .xlsx or CSV and upload it again.")
COLLECTORS_XLSX_DAMAGED = Kind("400.116", 400, "This file is damaged or is not an Excel workbook (.xlsx).")
COLLECTORS_XLSX_TOO_LARGE = Kind("400.116", 400, "This workbook is too large to be a list of collectors.")
PASSPHRASE_WRONG = Kind("400.12", 400, "The passphrase is not correct for this form's encryption key.{hint}")
NOT_A_PERIOD = Kind("400.118", 400, "'{text}' is not a period. Use a month like 2026-11 or a quarter like 2026-Q4.")
PASSPHRASE_TOO_SHORT = Kind(
    "400.21", 400,
    "The passphrase must be at least {min_passphrase} characters long. Write it down and keep it safe: "
    "without it nobody can read the encrypted submissions.")
NOT_A_COUNTY_CODE = Kind("400.120", 400, "'{county}' is not a county code. Choose a county (6 digits, e.g. 540102).")
FORM_HAS_NO_MODEL = Kind("400.121", 400, "The form has no XForms model; the encryption key cannot be added.")
WRONG_PASSWORD = Kind("401.2", 401, "The user name or password is wrong.")
SIGN_IN_REQUIRED = Kind("401.2", 401, "Sign in with your CareFile user name and password.")
DIGEST_INCOMPLETE = Kind("401.2", 401, "The sign-in data sent was incomplete. Try again.")
DIGEST_INVALID = Kind("401.2", 401, "The sign-in data sent was not valid. Try again.")
DIGEST_EXPIRED = Kind("401.2", 401, "Sign-in expired; signing in again.")
DIGEST_WRONG_ADDRESS = Kind("401.2", 401, "The sign-in data does not match this address.")
DIGEST_REPLAYED = Kind("401.2", 401, "This request was already used; signing in again.")
COLLECT_WRONG_PASSWORD = Kind("401.2", 401,
                              "The user name or password is wrong. Check the server settings in Collect.")
AUTH_METHOD_UNSUPPORTED = Kind("401.2", 401, "Unsupported sign-in method; use Digest.")
AUTHENTICATION_FAILED = Kind("401.2", 401, "Could not authenticate with the provided credentials.")
TOKEN_URL_INVALID = Kind(
    "401.2", 401,
    "This server address is not valid. Scan the QR code from your coordinator again.")
BASIC_OVER_HTTP = Kind(
    "401.3", 401,
    "Basic sign-in is only allowed over HTTPS. Use https:// in the server address, or let Collect use Digest.")
HTTPS_REQUIRED = Kind("401.3", 401, "This authentication method is only available over HTTPS.")
ACCOUNT_NO_LONGER_EXISTS = Kind("403.1", 403, "Your account no longer exists. Sign in again.")
COLLECTORS_MANAGED_BY_COORDINATORS = Kind(
    "403.1", 403,
    "Only administrators and coordinators manage collectors (app users).")
ENTITY_LISTS_CHANGED_BY_COORDINATORS = Kind(
    "403.1", 403,
    "Only administrators and coordinators may change entity lists; managers read them.")
ROLE_MAY_NOT = Kind("403.1", 403, "{detail}")
ROLE_MAY_NOT_CREATE_SUBMISSIONS = Kind("403.1", 403, "Your role may read submissions but not create them.")
SUBMISSIONS_EDITED_BY_COORDINATORS = Kind("403.1", 403, "Only coordinators and administrators edit submissions.")
TOKEN_URL_REVOKED = Kind(
    "403.1", 403,
    "This QR code or server address is no longer valid. Ask your coordinator for a new QR code.")
COLLECTOR_REGION_OUTSIDE = Kind(
    "403.100", 403,
    "The region {outside} is outside your regions; a collector you create gets your regions or a part of "
    "them.")
ENTITY_REGION_OUTSIDE = Kind(
    "403.100", 403,
    "The entity's region (its village, township or county property) must be one of your regions; ask an "
    "administrator for entities elsewhere.")
FORM_NOT_ASSIGNED = Kind(
    "403.100", 403,
    "You may not use the form '{xml_form_id}'. Ask your coordinator to assign it to you.")
FORM_NOT_ASSIGNED_SUBMIT = Kind(
    "403.100", 403,
    "You may not submit the form '{xml_form_id}'. Ask your coordinator to assign this form to you.")
MAY_NOT_FILL_IN_BROWSER = Kind("403.100", 403, "Your account may not fill forms in the browser.")
MAY_NOT_SEND_SUBMISSIONS = Kind("403.100", 403, "Your account may not send submissions. Ask your coordinator.")
RECORD_REGION_OUTSIDE = Kind(
    "403.100", 403,
    "This record is for region {region}, outside your regions; ask an administrator or a coordinator of "
    "that region.")
FORM_CLOSED = Kind(
    "403.3", 403,
    "The form '{xml_form_id}' is closed. Update your blank forms (Get Blank Form) to remove it.")
REGIONS_OUTSIDE_OWN = Kind(
    "403.20", 403,
    "You may only give regions inside your own ({mine}); {choices} is outside them.")
SENSITIVE_FILE = Kind(
    "403.30", 403,
    "The file '{name}' answers a question marked sensitive (identifying details); your account may not "
    "open it. Ask an administrator.")
VILLAGE_OUTSIDE_REGIONS = Kind(
    "403.32", 403,
    "The village {village} lies outside your regions. Ask a coordinator, or a manager whose regions "
    "cover both places, to move the child.")
SENSITIVE_EXPORT_REFUSED = Kind(
    "403.70", 403,
    "Your role may not export sensitive fields. Export without them, or ask a coordinator.")
EXPORT_OWNER_DISABLED = Kind("403.71", 403, "The account that asked for this export is disabled.")
FORM_FOR_EVERYONE = Kind(
    "403.77", 403,
    "You may not change this form: it reaches every collector of the project (it is not assigned to particular "
    "collectors), so only an administrator or a coordinator of the whole province may publish it or change its "
    "draft, files, state or encryption. Ask one of them.")
FORM_OUTSIDE_REGIONS = Kind(
    "403.78", 403,
    "You may not change this form: it reaches collectors outside your regions ({outside}). Ask an administrator "
    "or a coordinator whose regions cover them.")
ENCRYPTION_BY_COORDINATORS = Kind("403.80", 403, "Only coordinators and administrators may turn on encryption.")
APP_USER_NOT_ASSIGNED = Kind("404.1", 404, "{username} is not assigned to the form '{xml_form_id}'.")
ENTITY_LIST_NO_TABLE = Kind("404.1", 404, "The entity list has no table '{table}'; use 'Entities'.")
FILE_MISSING_STORAGE = Kind("404.1", 404, "The file '{filename}' is missing from storage.")
FILE_NOT_UPLOADED = Kind("404.1", 404, "This file has not been uploaded.")
FORM_NOT_ON_SERVER = Kind(
    "404.1", 404,
    "There is no form '{xml_form_id}' on this server. Ask your coordinator whether it was published, "
    "then update your forms (Get Blank Form).")
FORM_NOT_PUBLISHED_YET = Kind("404.1", 404, "This form has no published version yet.")
FORM_NO_FILE = Kind("404.1", 404, "The form has no file '{filename}' yet. Ask your coordinator to upload it.")
FORM_NO_TABLE = Kind("404.1", 404, "The form has no table '{table}'.")
FORM_VERSION_NOT_PUBLISHED = Kind("404.1", 404, "The form '{xml_form_id}' has no published version '{version}'.")
NOT_FOUND = Kind("404.1", 404, "Could not find the resource you were looking for.")
NOT_FOUND_RELAYED = Kind("404.1", 404, "{detail}")
NO_SUCH_FORM = Kind("404.1", 404, "There is no such form.")
NO_SUCH_PROJECT = Kind(
    "404.1", 404,
    "There is no project {project_id} for this user. Check the server address in Collect.")
NO_SUCH_ROLE = Kind("404.1", 404, "There is no role '{role_id}'. The roles are listed at /v1/roles.")
NO_SUCH_SESSION = Kind("404.1", 404, "No such session.")
NO_SUCH_SUBMISSION = Kind("404.1", 404, "No such submission.")
NO_SUCH_SUBMISSION_IN_REGIONS = Kind("404.1", 404, "There is no such submission in your regions.")
NO_SUCH_SUBMISSION_OF_YOURS = Kind("404.1", 404, "There is no such submission among yours.")
NO_SUCH_SUBMISSION_VERSION = Kind("404.1", 404, "There is no such version of this submission.")
SUBMISSION_DOES_NOT_NAME_FILE = Kind(
    "404.1", 404,
    "The submission does not refer to a file named '{name}'. Files it refers to: {expected}.")
SUBMISSION_FILE_MISSING = Kind("404.1", 404, "The submission has no file '{name}' (or it has not arrived yet).")
VERSION_SOURCE_OTHER_TYPE = Kind(
    "404.1", 404,
    "Version '{version}' was not uploaded as an .{ext} file (it was made from a .{made} file). Download "
    "its XForm with .xml instead.")
EDITED_ORIGINAL_MISSING = Kind(
    "404.5", 404,
    "The submission you edited ({deprecated_id}) is not on the server. Send the original first, or fill "
    "a new form.")
FORM_VERSION_UNKNOWN = Kind(
    "404.6", 404,
    "The form version specified in this submission '{version}' does not exist for form '{xml_form_id}'. "
    "Update your blank forms (Get Blank Form), then fill the form again.")
NO_ENTITY_LIST = Kind("404.7", 404, "There is no entity list '{dataset}'.")
FORM_NO_DRAFT = Kind("404.103", 404, "The form '{xml_form_id}' has no draft. Upload a changed XLSForm to make one.")
NO_DRAFT_AT_TEST_ADDRESS = Kind(
    "404.4", 404,
    "There is no draft to test at this address: it was published or abandoned, or the QR code is not the "
    "newest. Ask your coordinator for the draft's test QR code.")
FORM_VERSION_NOT_FOUND = Kind("404.10", 404, "The form '{xml_form_id}' has no version '{ref}'.")
VERSION_NOT_FROM_UPLOAD = Kind("404.105", 404, "This version was not made from an uploaded file.")
NO_SUCH_USER = Kind("404.20", 404, "There is no user named '{username}'.")
NO_SUCH_COLLECTOR = Kind("404.21", 404, "There is no collector with this user name.")
NO_SUCH_CHILD = Kind("404.30", 404, "There is no such child in your regions.")
EXPORT_FORM_VERSION_NOT_FOUND = Kind("404.70", 404, "Form '{xml_form_id}' has no version '{form_version}'.")
EXPORT_FORM_NOT_PUBLISHED = Kind("404.71", 404, "Form '{xml_form_id}' has no published version.")
EXPORT_NO_SUCH_FORM = Kind("404.72", 404, "There is no form '{xml_form_id}'.")
NO_SUCH_EXPORT = Kind("404.73", 404, "There is no such export.")
EXPORT_FILE_MISSING = Kind("404.74", 404, "The file '{filename}' is missing from storage. Export again.")
NO_SUCH_HELD_CHANGE = Kind("404.80", 404, "There is no such held change in your regions.")
ENCRYPT_FORM_NOT_PUBLISHED = Kind("404.81", 404, "The form '{xml_form_id}' has no published version.")
DRAFT_NOTHING_TO_COPY = Kind(
    "404.100", 404,
    "The form '{xml_form_id}' has no published version to copy into a draft. Send the form definition as "
    "the body.")
DRAFT_OF_UNPUBLISHED_FORM = Kind(
    "404.100", 404,
    "There is no published form '{form_id}' yet, so it cannot have a draft. Publish the form first; "
    "later changes then become drafts.")
NO_SUCH_ENCRYPTION_KEY = Kind("404.101", 404, "There is no encryption key {key_id} in this project.")
NO_SUCH_COUNTY = Kind("404.102", 404, "There is no such county in your regions.")
INSTANCE_ID_CONFLICT = Kind(
    "409.1", 409,
    "A submission with this ID already exists with different content. To send more files, resend the "
    "identical form; to change answers, edit the sent form in Collect (it gets a new ID).")
TEST_INSTANCE_ID_CONFLICT = Kind("409.1", 409, "A test submission with this ID already exists with different content.")
FORM_CLOSED_TO_SUBMISSIONS = Kind(
    "409.2", 409,
    "The form '{xml_form_id}' is closed and no longer accepts submissions. Ask your coordinator what to "
    "do with this record.")
FORM_CLOSED_TO_WEB_ENTRY = Kind("409.2", 409, "This form is closed and no longer accepts submissions.")
APP_USER_ASSIGNED_ALREADY = Kind("409.3", 409, "{username} is assigned to the form '{xml_form_id}' already.")
EDIT_INSTANCE_ID_EXISTS = Kind(
    "409.8", 409,
    "The instanceID '{instance_id}' exists already: give the edit a new meta/instanceID.")
ENTITY_UUID_EXISTS = Kind("409.3", 409, "A resource already exists with uuid value(s) of {uuid}.")
FORM_EXISTS = Kind(
    "409.3", 409,
    "A form with the id '{xml_form_id}' already exists in this project. Upload the changed form as its "
    "draft (POST …/forms/{xml_form_id}/draft) instead.")
NAME_EXISTS = Kind("409.3", 409, "A resource already exists with name value(s) of {name}.")
SUBMISSION_EXISTS = Kind(
    "409.3", 409,
    "A submission with the instanceID '{instance_id}' exists already. Upload its files to "
    ".../attachments/<name>, or edit it with PUT.")
UUID_EXISTS = Kind("409.3", 409, "A resource already exists with uuid value(s) of {uid}.")
VERSION_CONFLICT = Kind(
    "409.6", 409,
    "Form '{form_id}' version '{version}' is already published with different content. Phones cannot "
    "tell two such forms apart: change `version` in the settings sheet (for example to a higher number) "
    "and publish again.")
VERSION_CONFLICT_WEB = Kind("409.6", 409, "{detail}")
EDIT_LOST_RACE = Kind(
    "409.9", 409,
    "The record you edited ({deprecated_id}) was changed by another edit that reached the server first, "
    "so this edit was not saved. Nothing else was lost: ask your coordinator to compare both edits, or "
    "edit the newest copy of the record.")
EDIT_NOT_OF_CURRENT = Kind(
    "409.9", 409,
    "The deprecatedID '{deprecated_id}' is not the current version of this submission ('{instance_id}'). "
    "Fetch the current version and edit it.")
DRAFT_VERSION_MISMATCH = Kind(
    "409.10", 409,
    "This submission was filled with version '{version}', but the draft is version '{version2}'. Update "
    "the blank forms (Get Blank Form) and fill it again.")
ENTITY_VERSION_MISMATCH = Kind(
    "409.15", 409,
    "Current version of the Entity is '{version}' and you provided '{base_version}'. Please correct the "
    "version number or pass '?force=true' in the URL to forcefully update the Entity.")
DATASET_NAME_CASE_CONFLICT = Kind(
    "409.16", 409,
    "A dataset named '{name}' exists and you provided '{name2}' with the same name but different "
    "capitalization.")
PROPERTY_NAME_CASE_CONFLICT = Kind("409.17", 409, "This property matches an existing one except for capitalization.")
SUBMISSION_DELETED = Kind("409.18", 409, "This submission has been deleted on the server.")
SUBMISSION_DELETED_RESENT = Kind(
    "409.18", 409,
    "This submission has been deleted on the server. You may not send it again.")
UUID_OF_DELETED_ENTITY = Kind(
    "409.19", 409,
    "The following UUID(s) cannot be used because they are associated with deleted Entities: ({uid}).")
USER_EXISTS = Kind(
    "409.20", 409,
    "A user named '{username}' exists already (user names do not differ by upper and lower case). Choose another "
    "name.")
CHILD_ALREADY_IN_VILLAGE = Kind("409.31", 409, "The child already lives in village {village}; nothing was changed.")
CASE_CLOSED_ALREADY = Kind("409.32", 409, "The case is closed already. Reopen it first to change the reason.")
CASE_NOT_CLOSED = Kind("409.33", 409, "The case is not closed.")
CASE_ANONYMISED = Kind("409.34", 409, "The case was anonymised after its retention period; it cannot be reopened.")
MARKED_DISTINCT = Kind("409.35", 409, "These two children were marked as not the same child; they cannot be merged.")
NOT_TURNING_18 = Kind(
    "409.36", 409,
    "The child's recorded date of birth says the child does not turn 18 within {adult_notice_days} days, "
    "so 'turned 18' cannot be the reason. Choose the reason that applies, or correct the date of birth "
    "in the registration first.")
EXPORT_NOT_FINISHED = Kind("409.70", 409, "This export is not finished yet.")
EXPORT_EXPIRED = Kind(
    "410.77", 410,
    "This export's file was deleted: finished exports are kept for a few days only (CAREFILE_EXPORT_KEEP_DAYS), "
    "and all of them when care files are anonymised. Start a new export.")
ENTITY_FORM_NOT_ENCRYPTABLE = Kind(
    "409.80", 409,
    "The form '{xml_form_id}' creates or updates entities (the children list). The server must read its "
    "answers to keep each child's file, so it cannot be encrypted. Encryption and entities do not "
    "combine.")
FORM_ENCRYPTED_ALREADY = Kind("409.4", 409, "The form '{xml_form_id}' is encrypted already.")
PROJECT_ENCRYPTED_ALREADY = Kind("409.4", 409, "Encryption is on for this project already.")
NOTHING_TO_ENCRYPT = Kind(
    "409.83", 409,
    "No form of this project can be encrypted, so no key was made and nothing changed ({reasons}). Forms "
    "that keep the children's files cannot be encrypted; publish a form without entities first, or "
    "encrypt one form by its id.")
ENCRYPTED_NOT_EDITABLE = Kind("409.100", 409, "An encrypted submission cannot be edited on the server.")
SHIPPED_PROVINCE = Kind("409.101", 409, "Province {province} ships with CareFile and cannot be replaced.")
HELD_ALREADY_DECIDED = Kind("409.102", 409, "This change was already {status}. Reload the list.")
HELD_NO_LONGER_WAITING = Kind("409.102", 409, "The held entity change is no longer waiting. Reload the list.")
HELD_EDIT_STALE = Kind(
    "409.103", 409,
    "The record was edited or deleted since this edit was held; it can no longer be applied. Reject it.")
UPLOAD_GONE = Kind("410.1", 410, "The uploaded file is no longer on the server. Upload it again.")
EXPORT_OWNER_GONE = Kind("410.70", 410, "The user or form of this export no longer exists.")
ATTACHMENT_TOO_LARGE = Kind("413.1", 413, "'{filename}' is larger than {size} MB.")
FORM_FILE_TOO_LARGE = Kind("413.1", 413, "The form file is larger than {size} MB.")
JSON_BODY_TOO_LARGE = Kind("413.1", 413, "The JSON body is too large.")
UPLOAD_TOO_LARGE = Kind("413.1", 413, "'{name}' is larger than {mb} MB.")
SUBMISSION_FILE_PART_TOO_LARGE = Kind(
    "413.2", 413,
    "A file in this submission is larger than this server accepts ({limit:g} MB). Ask your coordinator "
    "to raise the limit, or take smaller photos.")
SUBMISSION_TOO_LARGE = Kind("413.2", 413, "The submission is larger than this server accepts ({limit} bytes).")
SUBMISSION_XML_TOO_LARGE = Kind("413.2", 413, "{detail}")
TEST_SUBMISSION_TOO_LARGE = Kind("413.2", 413, "This test submission is larger than this server accepts.")
DRAFT_FILE_TOO_LARGE = Kind("413.3", 413, "The file '{name}' is larger than this server accepts.")
SUBMISSION_FILE_TOO_LARGE = Kind(
    "413.3", 413,
    "The file '{name}' is larger than this server accepts{limit}. Ask your coordinator to raise the "
    "limit, or take a smaller photo.")
WEB_FILE_TOO_LARGE = Kind("413.3", 413, "The file is larger than {mb} MB.")
FORM_TYPE_UNSUPPORTED = Kind(
    "415.1", 415,
    "Send the form as an XLSForm (.xlsx, Content-Type "
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet; or .xls, "
    "application/vnd.ms-excel) or an XForm (application/xml).")
SIGNIN_THROTTLED = Kind(
    "429.1", 429,
    "Too many wrong passwords. Wait {minutes} minute(s) and try again; until then even the right password is "
    "refused. An administrator can reset the password to lift this at once.")
SIGNIN_THROTTLED_RELAYED = Kind("429.1", 429, "{zh} {message}")
PASSPHRASE_THROTTLED = Kind(
    "429.1", 429,
    "Too many wrong passphrases for this form's encryption key. Wait {minutes} minute(s) and try again; until "
    "then even the right passphrase is refused.")
ENTITY_ODATA_UNSUPPORTED = Kind(
    "501.1", 501,
    "Entity lists have no geodata or repeats: $wkt and $expand are not supported.")
ODATA_PARAMETER_NOT_SUPPORTED = Kind("501.1", 501, "The OData parameter {unknown} is not supported.")
ODATA_FILTER_FIELD_UNSUPPORTED = Kind(
    "501.5", 501,
    "The $filter field '{name}' is not supported. Use one of: {choices}.")
ODATA_EXPAND_UNSUPPORTED = Kind("501.6", 501, "Only $expand=* is supported.")


FORM_POINTS_ELSEWHERE = Kind(
    "400.77", 400,
    "The form '{filename}' is refused: {reasons}. A form must send its records only to this server and bring "
    "every file it needs with it: remove submission_url from the settings sheet (the action of <submission>), "
    "upload data and media as the form's files (jr://file/…) instead of web addresses, and upload the form again.")
UUID_NOT_USABLE = Kind(
    "409.79", 409,
    "This uuid cannot be used for a new entity. Leave `uuid` out and the server makes one, or ask an "
    "administrator.")

# Entity blocks of a submission that cannot be applied: recorded on the submission's entity event, with
# Central's codes (the submission itself is accepted).
ENTITY_LIST_MISSING = Kind("404.7", 404, "The entity list '{dataset}' does not exist.")
ENTITY_ID_NOT_UUID = Kind("400.11", 400, "The entity id in the submission is not a UUID.")
BRANCH_ID_NOT_UUID = Kind("400.2", 400, "The branchId of the offline update is not a UUID.")
FORM_MAY_NOT_UPDATE_ENTITIES = Kind("403.2", 403, "This form may not update entities.")
FORM_MAY_NOT_CREATE_ENTITIES = Kind("403.2", 403, "This form may not create entities.")
UPDATE_WITHOUT_BASE_VERSION = Kind("400.2", 400, "The update has no baseVersion.")
ENTITY_NOT_IN_LIST = Kind("404.8", 404, "The entity {uid} to update is not in the list '{dataset}'.")
ENTITY_EXISTS = Kind("409.3", 409, "An entity with id {uid} exists already; nothing was overwritten.")
NEW_ENTITY_WITHOUT_LABEL = Kind("400.2", 400, "The new entity has no label.")
ENTITY_DELETED = Kind("404.11", 404, "The entity {uid} was deleted.")
ENTITY_VERSION_MISSING = Kind("404.9", 404, "Version {version} of entity {uid} does not exist.")
TRUNK_VERSION_TOO_NEW = Kind("404.9", 404, "The trunk version {version} is newer than the entity.")


# The trash (app/services/children/trash.py, app/services/submissions/trash.py, app/services/ops/purge.py).
BULK_IDS_MISSING = Kind(
    "400.91", 400,
    "Send the entities' ids as {{\"ids\": [\"<uuid>\", …]}}: a list of 1 to {max_bulk} entity ids.")
BULK_ID_INVALID = Kind("400.93", 400, "Invalid entity id {item!r}: each id is an entity's UUID.")
PURGE_MODE_UNKNOWN = Kind("400.92", 400, "Unknown purge mode {mode!r}: use one of {modes}.")
PURGE_ENTITY_NEEDS_LIST = Kind(
    "400.92", 400,
    "To purge one entity, name its project and entity list too (--project N --dataset NAME --entity UUID).")
PURGE_LIST_NEEDS_PROJECT = Kind(
    "400.92", 400, "To purge an entity list's trash, name its project too (--project N).")
PURGE_SUBMISSION_NEEDS_FORM = Kind(
    "400.92", 400,
    "To purge one submission, name its project and form too (--project N --form ID --instance ID).")
PURGE_FORM_NEEDS_PROJECT = Kind("400.92", 400, "To purge a form's trash, name its project too (--project N).")
NO_SUCH_DELETED_SUBMISSION = Kind("404.1", 404, "There is no such deleted submission in your regions.")
NO_SUCH_CHILD_IN_TRASH = Kind("404.30", 404, "There is no such child in the trash of your regions.")
HELD_SUBMISSION_IN_TRASH = Kind(
    "409.90", 409,
    "The submission of this change is in the trash: restore it first (Trash page), or reject the change.")


# The server cannot do its part now (app/faults.py classifies the exception; nothing was saved).
DATABASE_UNAVAILABLE = Kind(
    "503.1", 503,
    "The server cannot reach its database at the moment, so nothing was saved. Try again in a few minutes; forms "
    "on the phone stay there until the server accepts them.")
BLOB_STORE_UNAVAILABLE = Kind(
    "503.2", 503,
    "The server cannot reach its file storage at the moment, so nothing was saved. Try again in a few minutes; "
    "forms on the phone stay there until the server accepts them.")
DISK_FULL = Kind(
    "503.3", 503,
    "The server's disk is full, so nothing was saved. Tell your administrator (they must free disk space); forms "
    "on the phone stay there until the server accepts them.")
ENTITY_PROCESSING_FAILED = Kind("500.1", 500, "{detail}")

# carefile backup / restore: the backup passphrase (README "Backup and restore").
BACKUP_PASSPHRASE_FILE_UNREADABLE = Kind("400.66", 400, "The passphrase file {path} cannot be read ({reason}).")
BACKUP_PASSPHRASE_FILE_EMPTY = Kind(
    "400.66", 400, "The passphrase file {path} is empty: its first line is the passphrase.")
BACKUP_PASSPHRASE_STDIN_EMPTY = Kind(
    "400.66", 400, "No passphrase came on standard input (its first line is the passphrase).")
BACKUP_PASSPHRASE_MISSING = Kind(
    "400.67", 400,
    "Backups are encrypted: give the passphrase with --passphrase-file FILE, --passphrase-stdin or "
    "CAREFILE_BACKUP_PASSPHRASE. To write an unencrypted backup say --unencrypted (then DEST must be protected by "
    "other means: it holds every child's file).")
BACKUP_UNENCRYPTED_WITH_PASSPHRASE = Kind(
    "400.68", 400, "--unencrypted and a passphrase were both given: choose one.")
