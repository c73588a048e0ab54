// Typeset the formulas that pymdownx.arithmatex marked, with the KaTeX copy shipped in docs/assets/katex.
// Only .arithmatex elements are touched, so a "$" inside code is never taken for math.
function autobpTypeset(root) {
  root.querySelectorAll(".arithmatex").forEach((element) => {
    const source = element.textContent.trim();
    const display = source.startsWith("\\[");
    const tex = source.replace(/^\\[\[(]/, "").replace(/\\[\])]$/, "");
    katex.render(tex, element, { displayMode: display, throwOnError: false });
  });
}

// Material's instant navigation swaps pages without reloading: document$ emits on each page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => autobpTypeset(document));
} else {
  document.addEventListener("DOMContentLoaded", () => autobpTypeset(document));
}
