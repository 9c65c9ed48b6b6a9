#!/usr/bin/env node
// Headless ODK form filler for CareFile end-to-end tests.
//
// Uses ODK's own form engine (@getodk/xforms-engine, the engine behind ODK Web
// Forms) under jsdom to fill an XForm the way a data collector would, and
// writes the submission exactly as the engine would post it.
//
//   node fill.mjs job.json
//   node fill.mjs --serve      (many jobs, one process: see "5. Serving" below)
//
// job.json:
//   {
//     "form": "/path/form.xml",
//     "attachments": {"children.csv": "/path/children.csv"},   // form media by file name
//     "answers": [
//       {"ref": "/data/name", "value": "Tashi"},
//       {"ref": "/data/members", "repeat_count": 2},
//       {"ref": "/data/members[2]/age", "value": "7"},
//       {"ref": "/data/colours", "values": ["red", "blue"]},
//       {"ref": "/data/photo", "file": "/path/photo.jpg", "type": "image/jpeg"},
//       {"ref": "/data/loc", "value": "29.65 91.13 3650 5"}
//     ],
//     "out": "/path/outdir",
//     "allow_pending": false,      // optional: accept status "pending"
//     "list_refs": false,          // optional: print node refs (after applying answers) and stop
//     "device_id": "..."           // optional: value for deviceid preloads
//   }
//
// Output: out/submission.xml plus each attachment under its submitted file
// name; a JSON summary on stdout:
//   {"status": "ready"|"pending", "violations": [...], "instanceID": "...",
//    "files": ["photo-....jpg"], "submission": "/path/outdir/submission.xml"}
// Errors: a message on stderr prefixed "fill.mjs: " and exit code 2
// (1 for unexpected crashes).

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { JSDOM } from 'jsdom';

class JobError extends Error {}

const fail = (msg) => {
  throw new JobError(msg);
};

// ---------------------------------------------------------------------------
// 1. DOM globals the engine expects (it is written for browsers).
// ---------------------------------------------------------------------------
const dom = new JSDOM('<!DOCTYPE html><html><head></head><body></body></html>', {
  contentType: 'text/html',
});
const DOM_GLOBALS = [
  'window', 'document', 'DOMParser', 'XMLSerializer', 'Node', 'Element', 'Attr',
  'Document', 'XMLDocument', 'DocumentFragment', 'Text', 'Comment', 'CDATASection',
  'ProcessingInstruction', 'NodeList', 'HTMLCollection', 'NamedNodeMap',
  'XPathResult', 'XPathEvaluator', 'DOMImplementation', 'CharacterData',
  'HTMLElement', 'NodeFilter', 'TreeWalker',
];
for (const name of DOM_GLOBALS) {
  if (name === 'window') continue;
  if (!(name in globalThis) && dom.window[name] !== undefined) {
    globalThis[name] = dom.window[name];
  }
}
globalThis.window ??= dom.window;
// The bundled runtime reads __dirname (an ES module has none).
globalThis.__dirname ??= path.dirname(new URL(import.meta.url).pathname);

const { createInstance } = await import('@getodk/xforms-engine');

// ---------------------------------------------------------------------------
// 2. Tree helpers
// ---------------------------------------------------------------------------
function* walk(node) {
  yield node;
  const children = node.currentState.children;
  if (children) {
    for (const child of children) yield* walk(child);
  }
}

const normalizeRef = (ref) => String(ref).trim().replace(/\/+$/, '');

function findNode(root, ref) {
  const want = normalizeRef(ref);
  for (const node of walk(root)) {
    if (node.currentState.reference === want) return node;
  }
  // Convenience: "/data/members/x" means "/data/members[1]/x" only if it is
  // unambiguous. Otherwise report the refs that exist.
  const known = [...walk(root)].map((n) => n.currentState.reference);
  const stem = want.replace(/\[\d+\]/g, '');
  const similar = known.filter((r) => r.replace(/\[\d+\]/g, '') === stem);
  let hint = '';
  if (similar.length) {
    hint = ` Did you mean one of: ${similar.slice(0, 10).join(', ')}?`;
  } else {
    hint = ` Known refs: ${known.slice(0, 60).join(', ')}${known.length > 60 ? ', ...' : ''}`;
  }
  fail(`unknown ref ${JSON.stringify(ref)} (refs are as the engine reports them, repeat instances 1-based like /data/rep[2]/field).${hint}`);
}

function describe(node) {
  const s = node.currentState;
  const d = {
    ref: s.reference,
    nodeType: node.nodeType,
  };
  if (node.valueType !== undefined) d.valueType = node.valueType;
  if (node.nodeType === 'select') {
    d.selectType = node.selectType;
    d.options = (s.valueOptions ?? []).map((o) => o.value);
  }
  if (node.nodeType === 'upload') d.accept = node.nodeOptions?.media?.accept ?? null;
  if (node.nodeType.startsWith('repeat-range')) d.count = s.children.length;
  d.relevant = s.relevant;
  d.required = s.required;
  d.readonly = s.readonly;
  if (s.label) {
    try {
      d.label = s.label.asString;
    } catch {
      /* label text may be unavailable */
    }
  }
  if (s.children === null || s.children === undefined) {
    d.value = s.instanceValue;
  }
  return d;
}

// ---------------------------------------------------------------------------
// 3. Applying answers
// ---------------------------------------------------------------------------
function checkWritable(node, answer) {
  const s = node.currentState;
  if (!s.relevant) {
    fail(`ref ${s.reference} is not relevant (Collect would not show it); answer ${JSON.stringify(answer)}`);
  }
  if (s.readonly) {
    fail(`ref ${s.reference} is read-only (${node.nodeType}); answer ${JSON.stringify(answer)}`);
  }
}

function setRepeatCount(node, answer) {
  const ref = node.currentState.reference;
  const n = answer.repeat_count;
  if (!Number.isInteger(n) || n < 0) fail(`repeat_count for ${ref} must be a non-negative integer, got ${JSON.stringify(n)}`);
  if (node.nodeType === 'repeat-range:controlled') {
    const have = node.currentState.children.length;
    if (have !== n) {
      fail(`${ref} is a repeat with jr:count (controlled by the form); it has ${have} instances, cannot make it ${n}`);
    }
    return;
  }
  if (node.nodeType !== 'repeat-range:uncontrolled') {
    fail(`repeat_count given for ${ref}, which is a ${node.nodeType}, not a repeat (use the repeat's ref, e.g. /data/members, not /data/members[1])`);
  }
  if (!node.currentState.relevant) fail(`repeat ${ref} is not relevant`);
  const have = node.currentState.children.length;
  if (n > have) {
    node.addInstances(have - 1, n - have);
  } else if (n < have) {
    node.removeInstances(n, have - n);
  }
  const now = node.currentState.children.length;
  if (now !== n) fail(`could not make ${ref} have ${n} instances (it has ${now})`);
}

function selectByValue(node, answer) {
  const ref = node.currentState.reference;
  let values;
  if (answer.values !== undefined) {
    if (!Array.isArray(answer.values)) fail(`"values" for ${ref} must be a list`);
    values = answer.values.map(String);
  } else if (answer.value === null || answer.value === '') {
    values = [];
  } else {
    values = node.selectType === 'select' ? String(answer.value).split(/\s+/).filter(Boolean) : [String(answer.value)];
  }
  if (node.selectType === 'select1' && values.length > 1) {
    fail(`${ref} is a select_one; give one "value", got ${JSON.stringify(values)}`);
  }
  const options = (node.currentState.valueOptions ?? []).map((o) => o.value);
  for (const v of values) {
    if (!options.includes(v)) {
      fail(`invalid choice ${JSON.stringify(v)} for ${ref}; available: ${JSON.stringify(options.slice(0, 50))}${options.length > 50 ? ' ...' : ''}`);
    }
  }
  if (node.selectType === 'select1') {
    node.selectValue(values[0] ?? null);
  } else {
    node.selectValues(values);
  }
  const got = [...node.currentState.value];
  if (JSON.stringify(got) !== JSON.stringify(values) && JSON.stringify([...got].sort()) !== JSON.stringify([...values].sort())) {
    fail(`engine did not accept ${JSON.stringify(values)} for ${ref} (value is now ${JSON.stringify(got)})`);
  }
}

async function setFile(node, answer, jobDir) {
  const ref = node.currentState.reference;
  if (answer.file === null) {
    node.setValue(null);
    return;
  }
  const p = path.resolve(jobDir, answer.file);
  let bytes;
  try {
    bytes = await readFile(p);
  } catch (e) {
    fail(`cannot read file for ${ref}: ${p}: ${e.message}`);
  }
  const name = uniqueFileName(node, answer.name ?? path.basename(p));
  const type = answer.type ?? guessType(name);
  node.setValue(new File([bytes], name, { type }));
  if (!node.currentState.instanceValue) fail(`engine did not accept file ${p} for ${ref}`);
}

// Collect gives every captured file its own name; the engine keeps the File's
// name as given, so two uploads of the same source file would collide in the
// submission. Keep names unique per instance: photo.jpg, photo-2.jpg, ...
const fileNamesByNode = new Map();
function uniqueFileName(node, wanted) {
  fileNamesByNode.delete(node.nodeId);
  const used = new Set(fileNamesByNode.values());
  const ext = path.extname(wanted);
  const stem = wanted.slice(0, wanted.length - ext.length);
  let name = wanted;
  for (let i = 2; used.has(name) || name === 'submission.xml'; i++) name = `${stem}-${i}${ext}`;
  fileNamesByNode.set(node.nodeId, name);
  return name;
}

function guessType(name) {
  const ext = path.extname(name).toLowerCase();
  return {
    '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.gif': 'image/gif',
    '.webp': 'image/webp', '.mp3': 'audio/mpeg', '.m4a': 'audio/mp4', '.amr': 'audio/amr',
    '.ogg': 'audio/ogg', '.wav': 'audio/wav', '.mp4': 'video/mp4', '.3gp': 'video/3gpp',
    '.pdf': 'application/pdf', '.csv': 'text/csv', '.txt': 'text/plain',
  }[ext] ?? 'application/octet-stream';
}

function setScalar(node, answer) {
  const ref = node.currentState.reference;
  const raw = answer.value;
  if (node.nodeType === 'trigger') {
    const on = raw === true || raw === 'OK' || raw === 'true' || raw === '1';
    node.setValue(on);
    return;
  }
  if (typeof node.setValue !== 'function') {
    fail(`${ref} is a ${node.nodeType} node and cannot be answered (calculated/model-only value or note)`);
  }
  const value = raw === null ? null : typeof raw === 'object' ? raw : String(raw);
  node.setValue(value);
  const got = node.currentState.instanceValue;
  if (value !== null && value !== '' && (got === '' || got === null || got === undefined)) {
    fail(`engine rejected value ${JSON.stringify(raw)} for ${ref} (type ${node.valueType})`);
  }
}

async function applyAnswer(root, answer, jobDir) {
  if (!answer || typeof answer !== 'object' || typeof answer.ref !== 'string') {
    fail(`each answer needs a "ref" string: ${JSON.stringify(answer)}`);
  }
  const node = findNode(root, answer.ref);
  if ('repeat_count' in answer) {
    setRepeatCount(node, answer);
    return;
  }
  const kinds = ['value', 'values', 'file'].filter((k) => k in answer);
  if (kinds.length !== 1) {
    fail(`answer for ${answer.ref} needs exactly one of "value", "values", "file", "repeat_count": ${JSON.stringify(answer)}`);
  }
  checkWritable(node, answer);
  switch (node.nodeType) {
    case 'select':
      if ('file' in answer) fail(`${answer.ref} is a select; "file" makes no sense`);
      selectByValue(node, answer);
      break;
    case 'rank': {
      const values = answer.values ?? String(answer.value).split(/\s+/).filter(Boolean);
      node.setValues(values.map(String));
      break;
    }
    case 'upload':
      if (!('file' in answer)) fail(`${answer.ref} is an upload (${node.nodeOptions?.media?.accept ?? '*'}); give "file" (and "type")`);
      await setFile(node, answer, jobDir);
      break;
    case 'input':
    case 'range':
    case 'trigger':
      if ('values' in answer) fail(`${answer.ref} is a ${node.nodeType}; use "value", not "values"`);
      if ('file' in answer) fail(`${answer.ref} is a ${node.nodeType} (${node.valueType}); "file" only fits upload questions`);
      setScalar(node, answer);
      break;
    default:
      fail(`${answer.ref} is a ${node.nodeType} node and cannot be answered directly`);
  }
}

// ---------------------------------------------------------------------------
// 4. Main
// ---------------------------------------------------------------------------
async function main(argv, io) {
  if (argv.length !== 1) fail('usage: node fill.mjs job.json');
  const jobPath = path.resolve(argv[0]);
  let job;
  try {
    job = JSON.parse(await readFile(jobPath, 'utf8'));
  } catch (e) {
    fail(`cannot read job ${jobPath}: ${e.message}`);
  }
  const jobDir = path.dirname(jobPath);
  if (!job.form) fail('job needs "form" (path to the XForm XML)');
  const formXml = await readFile(path.resolve(jobDir, job.form), 'utf8').catch((e) => fail(`cannot read form: ${e.message}`));

  const attachments = job.attachments ?? {};
  const fetched = [];
  const fetchFormAttachment = async (url) => {
    const href = String(url?.href ?? url);
    const name = decodeURIComponent(href.replace(/[?#].*$/, '').split('/').pop());
    fetched.push(href);
    if (!(name in attachments)) {
      return new Response(`form attachment ${href} not given in job.attachments`, { status: 404 });
    }
    const bytes = await readFile(path.resolve(jobDir, attachments[name]));
    return new Response(bytes, { status: 200, headers: { 'Content-Type': guessType(name) } });
  };

  let instance;
  try {
    instance = await createInstance(formXml, {
      form: { fetchFormAttachment },
      instance: {
        preloadProperties: { deviceID: job.device_id ?? 'carefile-e2e:engine' },
      },
    });
  } catch (e) {
    const missing = fetched.filter((h) => !(decodeURIComponent(h.split('/').pop()) in attachments));
    fail(`engine could not load the form: ${e?.message ?? e}${missing.length ? ` (missing attachments: ${missing.join(', ')})` : ''}`);
  }
  const root = instance.root;

  for (const answer of job.answers ?? []) {
    await applyAnswer(root, answer, jobDir);
  }

  if (job.list_refs) {
    io.stdout += JSON.stringify({ refs: [...walk(root)].map(describe) }, null, 2) + '\n';
    return 0;
  }

  if (!job.out) fail('job needs "out" (output directory)');
  const out = path.resolve(jobDir, job.out);
  await mkdir(out, { recursive: true });

  const payload = await root.prepareInstancePayload({ payloadType: 'monolithic' });
  const violations = (payload.violations ?? []).map((v) => ({
    ref: v.reference,
    condition: v.violation?.condition,
    message: v.violation?.message?.asString ?? null,
  }));

  const formData = payload.data[0];
  const files = [];
  let xml = null;
  for (const [key, file] of formData.entries()) {
    const bytes = Buffer.from(await file.arrayBuffer());
    if (key === 'xml_submission_file') {
      xml = bytes.toString('utf8');
      await writeFile(path.join(out, 'submission.xml'), bytes);
    } else {
      const name = path.basename(file.name || key);
      if (name === 'submission.xml') fail('an attachment is named submission.xml, which clashes with the submission file');
      await writeFile(path.join(out, name), bytes);
      files.push(name);
    }
  }
  if (xml === null) fail('engine payload has no xml_submission_file');

  const parsed = new dom.window.DOMParser().parseFromString(xml, 'text/xml');
  const idEl = [...parsed.getElementsByTagName('instanceID')][0];
  const summary = {
    status: payload.status,
    violations,
    instanceID: idEl ? idEl.textContent : null,
    files,
    submission: path.join(out, 'submission.xml'),
  };
  io.stdout += JSON.stringify(summary) + '\n';

  if (payload.status !== 'ready' && !job.allow_pending) {
    const list = violations.map((v) => `${v.ref}: ${v.condition}${v.message ? ` (${v.message})` : ''}`).join('; ');
    io.stderr += `fill.mjs: submission is ${payload.status}, not ready: ${list} (set "allow_pending": true to accept)\n`;
    return 3;
  }
  return 0;
}

// One job: its exit code and what it printed.
async function runJob(argv) {
  const io = { stdout: '', stderr: '' };
  fileNamesByNode.clear();
  let code;
  try {
    code = await main(argv, io);
  } catch (e) {
    if (e instanceof JobError) {
      io.stderr += `fill.mjs: ${e.message}\n`;
      code = 2;
    } else {
      io.stderr += `fill.mjs: unexpected error: ${e?.stack ?? e}\n`;
      code = 1;
    }
  }
  return { code, ...io };
}

// ---------------------------------------------------------------------------
// 5. Serving: `node fill.mjs --serve` reads one job.json path per line on stdin and
// answers each with one line on stdout: RESULT_MARK + {"code", "stdout", "stderr"},
// what `node fill.mjs job.json` would have exited with and printed. Loading node,
// jsdom and the engine takes ~2 s; a test run fills dozens of forms. Every job gets
// a new form instance (createInstance), as a separate process would.
// ---------------------------------------------------------------------------
const RESULT_MARK = '\u001eFILL-RESULT ';

if (process.argv[2] === '--serve') {
  const { createInterface } = await import('node:readline');
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    const result = await runJob([line]);
    process.stdout.write(RESULT_MARK + JSON.stringify(result) + '\n');
  }
} else {
  const result = await runJob(process.argv.slice(2));
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exitCode = result.code;
}
