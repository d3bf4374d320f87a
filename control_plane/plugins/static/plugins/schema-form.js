/* Turns each JSON text box of a plugin's config into a form generated from its JSON Schema (json-editor); every
 * change is written back to the text box, which is what the form posts and the server validates. */
(function () {
  "use strict";
  function start() {
    if (typeof window.JSONEditor === "undefined") return;
    document.querySelectorAll(".fj-json-editor").forEach(function (holder) {
      var source = document.getElementById(holder.dataset.source);
      var schemaEl = document.getElementById(holder.dataset.schema);
      if (!source || !schemaEl) return;
      var startval;
      try { startval = source.value.trim() ? JSON.parse(source.value) : undefined; } catch (e) { return; }  // keep the box: the server shows the error
      var editor = new window.JSONEditor(holder, {
        schema: JSON.parse(schemaEl.textContent),
        startval: startval,
        theme: "html",
        iconlib: null,
        disable_properties: false,
        disable_edit_json: false,
        show_errors: "change",
        no_additional_properties: true,
        prompt_before_delete: false,
      });
      editor.on("ready", function () { source.style.display = "none"; });
      editor.on("change", function () { source.value = JSON.stringify(editor.getValue()); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
