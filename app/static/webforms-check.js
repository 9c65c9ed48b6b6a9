// The draft page's check: does the draft open in ODK Web Forms, the renderer of the fill, try and edit
// pages? Loaded as a module by templates/web/forms/draft.html (its import map names "vue").
//
// The draft's XForm is loaded into a hidden renderer, as the try page would. If the renderer refuses it,
// its error message is shown, and the expression at fault is looked for: the form's expressions (bind
// calculate/relevant/constraint/readonly/required, <output value>, choice filters, setvalue) are
// replaced by neutral ones (true(), false(), '' ...) half at a time, and the half that still gives the
// same error is kept, until one expression is left. No network, nothing on the server: the browser's
// own renderer is the judge.
import { createApp, h } from "vue";
import { OdkWebForm, webFormsPlugin } from "./vendor/web-forms/index.js";

const NEUTRAL = { calculate: "''", relevant: "true()", constraint: "true()", readonly: "false()", required: "false()" };
const LOAD_TIMEOUT_MS = 30000;

// One load of `xml` in a hidden renderer: {ok: true} or {ok: false, message}.
async function load(xml, fetchFormAttachment, host) {
  const el = document.createElement("div");
  el.hidden = true;
  host.append(el);
  const app = createApp({ render: () => h(OdkWebForm, { formXml: xml, fetchFormAttachment, onSubmit: () => {} }) });
  app.use(webFormsPlugin).mount(el);
  try {
    const started = Date.now();
    for (;;) {
      const status = el.querySelector(".form-initialization-status");
      if (status?.classList.contains("ready")) return { ok: true };
      if (status?.classList.contains("error")) {
        // the renderer's own dialog may be teleported to <body>: read the message where it is
        const dialog = document.querySelector(".form-load-failure-dialog .message");
        return { ok: false, message: dialog?.textContent.trim() || "?" };
      }
      if (Date.now() - started > LOAD_TIMEOUT_MS) return { ok: false, message: "timeout" };
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    app.unmount();
    el.remove();
  }
}

// Every place the form has an expression, with a neutral stand-in.
function sites(doc) {
  const XF = doc.documentElement.lookupNamespaceURI(null); // XForms: the default namespace of an XForm
  const out = [];
  for (const bind of doc.getElementsByTagNameNS(XF, "bind")) {
    for (const attr of Object.keys(NEUTRAL)) {
      if (bind.hasAttribute(attr)) {
        out.push({ el: bind, attr, value: bind.getAttribute(attr), neutral: NEUTRAL[attr],
                   field: bind.getAttribute("nodeset") });
      }
    }
  }
  for (const output of doc.getElementsByTagNameNS(XF, "output")) {
    out.push({ el: output, attr: "value", value: output.getAttribute("value"), neutral: "''", field: null });
  }
  for (const itemset of doc.getElementsByTagNameNS(XF, "itemset")) {
    const value = itemset.getAttribute("nodeset") ?? "";
    if (value.includes("[")) {
      out.push({ el: itemset, attr: "nodeset", value, neutral: value.replace(/\[.*\]\s*$/s, ""),
                 field: itemset.parentElement?.getAttribute("ref") ?? null });
    }
  }
  for (const setvalue of doc.getElementsByTagNameNS(XF, "setvalue")) {
    if (setvalue.hasAttribute("value")) {
      out.push({ el: setvalue, attr: "value", value: setvalue.getAttribute("value"), neutral: "''",
                 field: setvalue.getAttribute("ref") });
    }
  }
  return out;
}

function variant(doc, all, active) {
  for (const s of all) s.el.setAttribute(s.attr, active.has(s) ? s.value : s.neutral);
  const xml = new XMLSerializer().serializeToString(doc);
  for (const s of all) s.el.setAttribute(s.attr, s.value);
  return xml;
}

// " /data/grp/birth_date " (as pyxform writes ${birth_date}) → ${birth_date}, as the XLSForm was written
const readable = (expr) => String(expr ?? "").replace(/ ?(\/[A-Za-z_][\w.-]*(?:\/[A-Za-z_][\w.-]*)+) ?/g,
  (_, path) => "${" + path.split("/").pop() + "}");

async function culprit(xml, message, fetchFormAttachment, host) {
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const all = sites(doc);
  let candidates = all;
  const sameFailure = async (subset) => {
    const got = await load(variant(doc, all, new Set(subset)), fetchFormAttachment, host);
    return !got.ok && got.message === message;
  };
  while (candidates.length > 1) {
    const half = Math.ceil(candidates.length / 2);
    const first = candidates.slice(0, half);
    const second = candidates.slice(half);
    if (await sameFailure(first)) candidates = first;
    else if (await sameFailure(second)) candidates = second;
    else return null; // only fails with expressions of both halves: no single one to name
  }
  if (candidates.length !== 1 || !(await sameFailure(candidates))) return null;
  const [site] = candidates;
  return { expression: readable(site.value), attribute: site.attr, field: site.field ? readable(site.field) : null };
}

const box = document.getElementById("renderer-check");
if (box) {
  const cfg = JSON.parse(document.getElementById("renderer-check-config").textContent);
  const text = JSON.parse(document.getElementById("renderer-check-text").textContent);
  const say = (state, html) => {
    box.dataset.state = state;
    box.querySelector(".result").innerHTML = html;
  };
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const fetchFormAttachment = (url) => fetch(cfg.attachmentBase + encodeURIComponent(decodeURIComponent(
    String(url).split("/").pop())), { credentials: "same-origin" });
  const host = document.getElementById("renderer-probe");
  try {
    const xml = await (await fetch(cfg.formUrl, { credentials: "same-origin" })).text();
    const first = await load(xml, fetchFormAttachment, host);
    if (first.ok) {
      say("ok", esc(text.ok));
    } else {
      say("checking", `${esc(text.failed)} <code class="expr">${esc(first.message)}</code> ${esc(text.searching)}`);
      const found = await culprit(xml, first.message, fetchFormAttachment, host);
      let html = `${esc(text.failed)} <code class="expr">${esc(first.message)}</code>`;
      if (found) {
        const where = found.field ? text.where.replace("{field}", found.field).replace("{attribute}", found.attribute)
          : text.whereOutput;
        html += `<br>${esc(where)} <code class="expr" id="renderer-culprit">${esc(found.expression)}</code>`;
      } else {
        html += `<br>${esc(text.notFound)}`;
      }
      say("failed", `${html}<br><span class="muted small">${esc(text.advice)}</span>`);
    }
  } catch (err) {
    say("failed", `${esc(text.failed)} <code class="expr">${esc(err?.message ?? err)}</code>`);
  }
}
