// A generic filler for a form open in ODK Web Forms (the renderer CareFile ships), run in the page by
// tests/e2e/test_shipped_forms_browser.py with page.evaluate(source)(options).
//
// It reaches the form's live engine tree the way the renderer's own components do: the Vue app
// mounted on #odk-form keeps its root vnode in `_vnode`; the renderer's FormHeader component gets the
// engine's root node as its `form` prop. Then, in document order and again after every answer (answers
// change relevance, choice filters and constraints), each relevant, writable question without an
// answer gets the first candidate value that the engine reports as valid (constraint and required):
// choices as the engine offers them (choice filters applied: the region cascade, children.csv), for
// select_multiple one choice at a time, typed candidates for text, numbers, dates, times and places.
// An optional question no candidate satisfies is left empty. Image questions are not answered here:
// they are returned, so the test attaches a file through the renderer's own file input (Web Forms
// resizes it in a worker, as for a user's photo).
//
// options: {skip: [nodeId], replace_images: n}
// Returns {status, uploads: [{nodeId, ref, label, value?}], unanswerable: [{ref, label, tried}],
//          violations: [{ref, condition, message}], answered: {ref: value},
//          errors: [{ref, value, error}] (what the renderer threw while taking an answer)}.
// status: "no-form" (nothing mounted yet), "ok".
(options) => {
  const today = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  const isoDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const dayOffset = (days) => isoDate(new Date(today.getFullYear(), today.getMonth(), today.getDate() + days));
  const hourAgo = new Date(today.getTime() - 3600 * 1000);
  const offset = -hourAgo.getTimezoneOffset();
  const tz = `${offset >= 0 ? '+' : '-'}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  const isoDateTime = `${isoDate(hourAgo)}T${pad(hourAgo.getHours())}:${pad(hourAgo.getMinutes())}:00.000${tz}`;
  const CANDIDATES = {
    string: ['测试记录：网页填写的一份完整答案 test', '13800138000', '扎西'],
    int: ['1', '0', '5', '10'],
    decimal: ['1.5', '0', '10'],
    date: [dayOffset(0), dayOffset(-1), dayOffset(1), dayOffset(30), dayOffset(-400), dayOffset(-3650)],
    time: ['10:30:00.000' + tz],
    dateTime: [isoDateTime],
    geopoint: ['29.6500 91.1300 3650 5'],
  };

  const findRoot = () => {
    const container = document.querySelector('#odk-form');
    const seen = new Set();
    const stack = [container?._vnode];
    while (stack.length) {
      const v = stack.pop();
      if (!v || typeof v !== 'object' || seen.has(v)) continue;
      seen.add(v);
      const form = v.component?.props?.form;
      if (form && form.nodeType === 'root' && form.currentState) return form;
      if (v.component) stack.push(v.component.subTree);
      if (Array.isArray(v.children)) stack.push(...v.children);
      if (Array.isArray(v.dynamicChildren)) stack.push(...v.dynamicChildren);
    }
    return null;
  };
  const root = findRoot();
  if (root == null) return { status: 'no-form' };

  function* walk(node) {
    yield node;
    for (const child of node.currentState.children ?? []) yield* walk(child);
  }
  const ANSWERABLE = new Set(['input', 'select', 'upload']);
  const label = (node) => {
    try {
      return node.currentState.label?.asString ?? '';
    } catch {
      return '';
    }
  };
  const empty = (node) => {
    const v = node.currentState.instanceValue;
    return v === '' || v == null;
  };
  const invalid = (node) => node.validationState.violation?.valid === false;
  const shown = (node) => {
    for (let n = node; n != null; n = n.parent) if (!n.currentState.relevant) return false;
    return true;
  };

  const tried = new Set(options.skip ?? []); // nodeIds already handled (or left empty on purpose)
  const answered = {};
  const unanswerable = [];
  const errors = []; // the renderer threw while taking an answer
  const uploads = [];

  const attempts = (node) => {
    if (node.nodeType === 'select') {
      const values = (node.currentState.valueOptions ?? []).map((o) => o.value);
      return values.map((v) => (node.selectType === 'select' ? () => node.selectValues([v]) : () => node.selectValue(v)))
        .map((set, i) => ({ set, show: values[i] }));
    }
    const list = CANDIDATES[node.valueType] ?? CANDIDATES.string;
    const out = list.map((v) => ({ set: () => node.setValue(v), show: v }));
    if (node.valueType === 'geopoint') {
      const point = { latitude: 29.65, longitude: 91.13, altitude: 3650, accuracy: 5 };
      out.push({ set: () => node.setValue(point), show: JSON.stringify(point) });
    }
    return out;
  };
  const clear = (node) => {
    if (node.nodeType === 'select') {
      if (node.selectType === 'select') node.selectValues([]);
      else node.selectValue(null);
    } else {
      node.setValue(node.valueType === 'string' ? '' : null);
    }
  };

  // Edits: replace the picture of the first `replace_images` image questions that have one.
  for (const node of [...walk(root)].filter((n) => n.nodeType === 'upload' && shown(n) && !n.currentState.readonly
    && !empty(n)).slice(0, options.replace_images ?? 0)) {
    tried.add(node.nodeId);
    uploads.push({ nodeId: node.nodeId, ref: node.currentState.reference, label: label(node),
      value: node.currentState.instanceValue });
  }

  for (let guard = 0; guard < 2000; guard++) {
    const next = [...walk(root)].find((n) => ANSWERABLE.has(n.nodeType) && !tried.has(n.nodeId) && shown(n)
      && !n.currentState.readonly && empty(n));
    if (next == null) break;
    tried.add(next.nodeId);
    const ref = next.currentState.reference;
    if (next.nodeType === 'upload') {
      uploads.push({ nodeId: next.nodeId, ref, label: label(next), accept: next.nodeOptions?.media?.accept ?? null });
      continue;
    }
    let ok = false;
    const shownValues = [];
    for (const { set, show } of attempts(next)) {
      shownValues.push(show);
      try {
        set();
      } catch (err) {
        errors.push({ ref, value: show, error: String(err?.message ?? err) });
        continue;
      }
      if (!empty(next) && !invalid(next)) {
        ok = true;
        answered[ref] = next.currentState.instanceValue;
        break;
      }
    }
    if (!ok) {
      try {
        clear(next);
      } catch {
        /* leave it */
      }
      if (next.currentState.required) unanswerable.push({ ref, label: label(next), tried: shownValues });
    }
  }
  const violations = root.validationState.violations.map((v) => ({
    ref: v.reference ?? v.node?.currentState?.reference ?? null,
    condition: v.violation?.condition ?? null,
    message: v.violation?.message?.asString ?? null,
  }));
  return { status: 'ok', uploads, unanswerable, violations, answered, errors, tried: [...tried] };
}
