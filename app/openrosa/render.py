"""OpenRosa XML documents: OpenRosaResponse, formList, manifest (docs/odk-protocol.md, *OpenRosa basics*,
*Form list and form download*, *Manifest, media and entity lists*)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from flask import Response

from app.errors import Problem

XML_TYPE = "text/xml; charset=utf-8"

# Collect shows the message to the village director; give it in Chinese and English.
ZH = {
    "201": "提交成功。",
    "duplicate": "提交成功（服务器上已有此记录）。",
    "edited": "修改后的记录已提交。",
    "held": "已提交。此记录涉及您负责区域以外的儿童或记录，需经协调员审核后才生效；无需重新提交。",
    "400.2": "提交的数据无法读取。",
    "400.6": "客户端缺少 OpenRosa 版本信息。",
    "400.7": "提交中缺少表单数据文件。",
    "400.40": "提交中的文件名不正确。",
    "400.45": "提交中的文件太多：请删除手机上此表单文件夹中多余的文件后重新发送。",
    "401.2": "用户名或密码不正确，请检查 Collect 的服务器设置。",
    "401.3": "此登录方式只能在 HTTPS 下使用。",
    "403.1": "此二维码或服务器地址已失效，请联系协调员获取新的二维码。",
    "403.100": "您没有提交此表单的权限，请联系协调员。",
    "403.3": "此表单已关闭。",
    "404.1": "服务器上没有此表单，请先更新空白表单。",
    "404.5": "要修改的原记录不在服务器上。",
    "404.6": "此表单版本已不存在，请更新空白表单后重新填写。",
    "409.1": "服务器上已有同一编号但内容不同的记录。",
    "409.2": "此表单已关闭，不再接收提交。",
    "409.9": "另一次修改已先到达服务器，此次修改没有保存。",
    "409.18": "此记录已在服务器上删除，不能再次提交。",
    "413.1": "文件太大。",
    "413.2": "提交的数据太大。",
    "413.3": "附件太大。",
}


def openrosa_message(text: str, nature: str = "") -> str:
    return ('\n  <OpenRosaResponse xmlns="http://openrosa.org/http/response" items="0">\n'
            f"    <message nature={quoteattr(nature)}>{escape(text)}</message>\n"
            "  </OpenRosaResponse>")


def bilingual(code: str, text: str) -> str:
    zh = ZH.get(code)
    return f"{zh} {text}" if zh else text


def problem_response(problem: Problem) -> Response:
    body = openrosa_message(bilingual(problem.code, problem.message), "error")
    resp = Response(body, status=problem.status, content_type=XML_TYPE)
    wait = problem.details.get("retryAfter")
    if problem.status == 429 and wait:  # sign-in throttled: when a password is checked again
        resp.headers["Retry-After"] = str(wait)
    return resp


def fault_response(problem: Problem) -> Response:
    """The database, blob store or disk failed: a 503 OpenRosaResponse Collect shows (app/faults.py)."""
    resp = problem_response(problem)
    resp.headers["X-OpenRosa-Version"] = "1.0"
    return resp


def success_response(status_key: str, text: str) -> Response:
    return Response(openrosa_message(bilingual(status_key, text)), status=201, content_type=XML_TYPE)


@dataclass
class FormListItem:
    form_id: str
    name: str
    version: str
    md5: str
    download_url: str
    manifest_url: str | None


def form_list(items: Iterable[FormListItem]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<xforms xmlns="http://openrosa.org/xforms/xformsList">']
    for it in items:
        out.append("  <xform>")
        out.append(f"    <formID>{escape(it.form_id)}</formID>")
        out.append(f"    <name>{escape(it.name or it.form_id)}</name>")
        out.append(f"    <version>{escape(it.version)}</version>" if it.version else "    <version/>")
        out.append(f"    <hash>md5:{it.md5}</hash>")
        out.append(f"    <downloadUrl>{escape(it.download_url)}</downloadUrl>")
        if it.manifest_url:
            out.append(f"    <manifestUrl>{escape(it.manifest_url)}</manifestUrl>")
        out.append("  </xform>")
    out.append("</xforms>")
    return "\n".join(out) + "\n"


@dataclass
class ManifestItem:
    filename: str
    md5: str
    download_url: str
    entity_list: bool = False
    integrity_url: str | None = None


def manifest(items: Iterable[ManifestItem]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<manifest xmlns="http://openrosa.org/xforms/xformsManifest">']
    for it in items:
        out.append('  <mediaFile type="entityList">' if it.entity_list else "  <mediaFile>")
        out.append(f"    <filename>{escape(it.filename)}</filename>")
        out.append(f"    <hash>md5:{it.md5}</hash>")
        out.append(f"    <downloadUrl>{escape(it.download_url)}</downloadUrl>")
        if it.integrity_url:
            out.append(f"    <integrityUrl>{escape(it.integrity_url)}</integrityUrl>")
        out.append("  </mediaFile>")
    out.append("</manifest>")
    return "\n".join(out) + "\n"
