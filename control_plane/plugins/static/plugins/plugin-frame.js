/* The parent side of a plugin page (admin or portal). The plugin's page runs in a sandboxed iframe with an opaque
 * origin: it has neither the session cookie nor the CSRF token. It asks for RPC calls with
 *   parent.postMessage({fjordgate: "rpc", id, method, payload}, "*")
 * and gets {fjordgate: "rpc-result", id, ok, status, body} back. Only messages from that frame are taken, method
 * names are checked, and the call goes to this page's own RPC URL (staff-only or portal-only, CSRF-protected). */
(function () {
  "use strict";
  var frame = document.getElementById("fj-plugin-frame");
  if (!frame) return;
  var rpcUrl = frame.dataset.rpcUrl;
  var csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
  var METHOD = /^[A-Za-z][A-Za-z0-9_.\-]{0,63}$/;

  function reply(id, ok, status, body) {
    frame.contentWindow.postMessage({ fjordgate: "rpc-result", id: id, ok: ok, status: status, body: body }, "*");
  }

  window.addEventListener("message", function (event) {
    if (event.source !== frame.contentWindow) return;
    var msg = event.data;
    if (!msg || msg.fjordgate !== "rpc") return;
    if (typeof msg.method !== "string" || !METHOD.test(msg.method)) {
      reply(msg.id, false, 400, JSON.stringify({ error: "Method name refused." }));
      return;
    }
    var body = typeof msg.payload === "string" ? msg.payload : JSON.stringify(msg.payload === undefined ? {} : msg.payload);
    fetch(rpcUrl + encodeURIComponent(msg.method), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.value : "" },
      body: body,
    })
      .then(function (r) { return r.text().then(function (t) { reply(msg.id, r.ok, r.status, t); }); })
      .catch(function (e) { reply(msg.id, false, 0, JSON.stringify({ error: String(e) })); });
  });
})();
