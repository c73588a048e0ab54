// autobp explain: typeset the formulas with the inlined KaTeX, then highlight each step's node in
// the graph while the step is in view. Errors go to #page-errors (see explain_errors.js).
(function () {
  try {
    document.querySelectorAll(".math[data-tex]").forEach((element) => {
      try {
        katex.render(element.dataset.tex, element, { throwOnError: true, displayMode: false });
      } catch (error) {
        autobpReport("KaTeX: " + error.message + " in " + element.dataset.tex);
      }
    });
    const graph = document.querySelector("aside.graph svg");
    function focus(step) {
      document.querySelectorAll(".step.current").forEach((s) => s.classList.remove("current"));
      step.classList.add("current");
      if (!graph) {
        return;
      }
      graph.querySelectorAll(".focus, .arrives, .receives, .flow").forEach((g) => {
        g.classList.remove("focus", "arrives", "receives", "flow");
      });
      const inputs = step.dataset.in ? step.dataset.in.split(" ") : [];
      graph.querySelectorAll("g.node").forEach((g) => {
        const id = g.dataset.vertex;
        if (id === step.dataset.op) g.classList.add("focus");
        if (id === step.dataset.out) g.classList.add("arrives");
        if (inputs.includes(id)) g.classList.add("receives");
      });
      // Keep the step's node in view: the graph column scrolls on its own, the page does not move.
      const node = graph.querySelector(`g.node[data-vertex="${step.dataset.op}"]`);
      const aside = graph.closest("aside");
      if (node && aside) {
        const box = node.getBoundingClientRect();
        const frame = aside.getBoundingClientRect();
        aside.scrollTop += box.top - frame.top - aside.clientHeight / 2;
      }
      graph.querySelectorAll("g.edge").forEach((g) => {
        if (g.dataset.head === step.dataset.op && inputs.includes(g.dataset.tail)) g.classList.add("flow");
        if (g.dataset.tail === step.dataset.op && g.dataset.head === step.dataset.out) g.classList.add("flow");
      });
    }
    const steps = Array.from(document.querySelectorAll(".step"));
    if (steps.length) {
      focus(steps[0]);
    }
    if ("IntersectionObserver" in window) {
      const observer = new IntersectionObserver(
        (entries) => entries.forEach((entry) => entry.isIntersecting && focus(entry.target)),
        { rootMargin: "-20% 0px -70% 0px" }
      );
      steps.forEach((step) => observer.observe(step));
    }
    if (document.body.dataset.status !== "error") {
      document.body.dataset.status = "ready";
    }
  } catch (error) {
    autobpReport("page script: " + error.message);
  }
})();
