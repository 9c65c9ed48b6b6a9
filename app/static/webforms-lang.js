// The site's language (zh / en) for ODK Web Forms 0.22 on the fill, try and edit pages.
//
// What Web Forms 0.22 lets a host set:
//   - the form's language: the renderer starts in the XForm's default translation, so inLanguage() marks
//     the translation of the site's language as the default (the form's own language menu still works);
//   - PrimeVue's locale (date picker, empty lists, dialog buttons): localise() sets it to Chinese.
// What it does not: its own buttons and messages ("Send", "Choose image", "1 question with error." ...)
// are English literals in its build, with no translation hook (upstream added one after 0.22). For a
// Chinese page, localise() therefore replaces exactly those texts, listed in UI below, as they appear
// in the renderer's part of the page; anything not listed stays as the renderer wrote it.

const ZH_FORM = /\(zh[^)]*\)|中文|chinese/i;
const EN_FORM = /\(en[^)]*\)|english/i;

export function inLanguage(xml, lang) {
  const wanted = lang === "zh" ? ZH_FORM : EN_FORM;
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  if (doc.getElementsByTagName("parsererror").length) return xml;
  const translations = [...doc.getElementsByTagNameNS("*", "translation")];
  const pick = translations.find((t) => wanted.test(t.getAttribute("lang") ?? ""));
  if (pick == null || pick.getAttribute("default") === "true()") return xml;
  for (const t of translations) t.removeAttribute("default");
  pick.setAttribute("default", "true()");
  return new XMLSerializer().serializeToString(doc);
}

const PRIMEVUE_ZH = {
  startsWith: "开头是", contains: "包含", notContains: "不包含", endsWith: "结尾是", equals: "等于", notEquals: "不等于",
  noFilter: "不筛选", clear: "清除", apply: "应用", accept: "是", reject: "否", choose: "选择", upload: "上传",
  cancel: "取消", completed: "已完成", pending: "待处理",
  dayNames: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
  dayNamesShort: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
  dayNamesMin: ["日", "一", "二", "三", "四", "五", "六"],
  monthNames: ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "十一月", "十二月"],
  monthNamesShort: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
  chooseYear: "选择年份", chooseMonth: "选择月份", chooseDate: "选择日期", prevDecade: "上一个十年",
  nextDecade: "下一个十年", prevYear: "上一年", nextYear: "下一年", prevMonth: "上个月", nextMonth: "下个月",
  prevHour: "上一小时", nextHour: "下一小时", prevMinute: "上一分钟", nextMinute: "下一分钟", prevSecond: "上一秒",
  nextSecond: "下一秒", am: "上午", pm: "下午", today: "今天", weekHeader: "周", firstDayOfWeek: 1,
  showMonthAfterYear: true, dateFormat: "yy-mm-dd", // 2026-12-07, not PrimeVue's default 12/07/2026
  emptyFilterMessage: "没有找到结果", searchMessage: "有 {0} 个结果", selectionMessage: "已选 {0} 项",
  emptySelectionMessage: "未选择", emptySearchMessage: "没有找到结果", fileChosenMessage: "{0} 个文件",
  noFileChosenMessage: "未选择文件", emptyMessage: "没有可选项",
};
const PRIMEVUE_ZH_ARIA = {
  trueLabel: "是", falseLabel: "否", nullLabel: "未选择", selectAll: "已全选", unselectAll: "已全部取消",
  close: "关闭", previous: "上一个", next: "下一个", navigation: "导航", listLabel: "选项列表",
  zoomImage: "放大图片", zoomIn: "放大", zoomOut: "缩小",
};

// Web Forms 0.22's own English texts (its build, index-*.js) and their Chinese.
export const UI = new Map([
  ["Send", "提交"],
  ["Take picture", "拍照"],
  ["Choose image", "选择图片"],
  ["Captured image preview", "已选图片预览"],
  ["1 question with error.", "1 道题有错误。"],
  ["Add", "添加"],
  ["Remove", "删除"],
  ["Repeat Item", "重复项"],
  ["Powered by", "技术支持"],
  ["An error occurred while loading this form", "加载此表单时出错"],
  ["Technical error details", "技术细节"],
  ["Unknown error", "未知错误"],
  ["Condition not satisfied: required", "此题必须回答"],
  ["Condition not satisfied: constraint", "答案不符合要求"],
  ["Location unavailable. Enable GPS and browser permissions, then restart the form to try again.",
    "无法获取位置。请打开 GPS 并允许浏览器定位，然后重新打开表单再试。"],
  ["Finding your location", "正在获取位置"],
  ["Time taken to capture location:", "获取位置用时："],
  ["Cancel", "取消"],
  ["Save location", "保存位置"],
  ["Get location", "获取位置"],
  ["Try again", "重试"],
  ["Cannot access location", "无法获取位置"],
  ["Grant location permission in the browser settings and make sure location is turned on.",
    "请在浏览器设置中允许定位，并确认已打开定位。"],
  ["Unable to load map", "无法加载地图"],
  ["Rank items", "排序"],
  ["Okay", "确定"],
  ["Change language", "切换语言"],
  ["change language", "切换语言"],
]);
const PATTERNS = [
  [/^(\d+) questions with errors\.$/, "$1 道题有错误。"],
  [/^Accuracy: (.+) m,$/, "精度：$1 米，"],
  [/^Latitude: (.+),$/, "纬度：$1，"],
  [/^Longitude: (.+)\.$/, "经度：$1。"],
];
const ATTRIBUTES = ["aria-label", "title", "alt", "placeholder"];
// The renderer's part of the page: the form, and what PrimeVue moves to <body> (dialogs, overlays).
const RENDERER = "#odk-form, body > [class*='p-']";

function translated(text) {
  const core = text.trim();
  if (!core) return null;
  const hit = UI.get(core);
  if (hit != null) return text.replace(core, hit);
  for (const [re, to] of PATTERNS) if (re.test(core)) return text.replace(core, core.replace(re, to));
  return null;
}

function translateTree(node) {
  if (node.nodeType === Node.TEXT_NODE) {
    if (node.parentElement?.closest(RENDERER)) {
      const to = translated(node.nodeValue);
      if (to != null) node.nodeValue = to;
    }
    return;
  }
  if (node.nodeType !== Node.ELEMENT_NODE) return;
  const elements = [node, ...node.querySelectorAll("*")];
  for (const el of elements) {
    if (!el.closest(RENDERER)) continue;
    for (const attr of ATTRIBUTES) {
      const value = el.getAttribute(attr);
      const to = value == null ? null : translated(value);
      if (to != null) el.setAttribute(attr, to);
    }
    for (const child of el.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const to = translated(child.nodeValue);
        if (to != null) child.nodeValue = to;
      }
    }
  }
}

export function localise(app, lang) {
  if (lang !== "zh") return;
  const config = app.config.globalProperties.$primevue?.config;
  if (config?.locale) {
    Object.assign(config.locale, PRIMEVUE_ZH);
    config.locale.aria = { ...config.locale.aria, ...PRIMEVUE_ZH_ARIA };
  }
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "characterData") translateTree(r.target);
      else if (r.type === "attributes") translateTree(r.target);
      else for (const n of r.addedNodes) translateTree(n);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ATTRIBUTES });
  translateTree(document.body);
}
