// Loaded first: any script error on the page is written into #page-errors, where a reader and a
// headless browser's test both see it.
window.autobpErrors = [];
function autobpReport(message) {
  window.autobpErrors.push(String(message));
  const box = document.getElementById("page-errors");
  if (box) {
    box.textContent = window.autobpErrors.join("\n");
  }
  if (document.body) {
    document.body.dataset.status = "error";
  }
}
window.addEventListener("error", (event) => autobpReport("error: " + event.message));
window.addEventListener("unhandledrejection", (event) => autobpReport("rejection: " + event.reason));
// console.error is an error too (a failed resource load, a library's complaint).
const autobpConsoleError = console.error.bind(console);
console.error = (...args) => {
  autobpReport("console.error: " + args.join(" "));
  autobpConsoleError(...args);
};
