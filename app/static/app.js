// Behaviour of every page, without inline handlers (the Content-Security-Policy admits no onclick=):
// a button marked data-print prints the page.
document.addEventListener("click", function (event) {
  var target = event.target instanceof Element ? event.target.closest("[data-print]") : null;
  if (target) { window.print(); }
});
