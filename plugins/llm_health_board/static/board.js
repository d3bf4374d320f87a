/* Runs in a sandboxed frame: RPC goes through the admin page (postMessage), which adds the session and CSRF. */
(function () {
  "use strict";
  var pending = {};
  var next = 1;
  function rpc(method, payload) {
    return new Promise(function (resolve, reject) {
      var id = next++;
      pending[id] = { resolve: resolve, reject: reject };
      parent.postMessage({ fjordgate: "rpc", id: id, method: method, payload: payload || {} }, "*");
    });
  }
  window.addEventListener("message", function (event) {
    var msg = event.data;
    if (event.source !== parent || !msg || msg.fjordgate !== "rpc-result" || !pending[msg.id]) return;
    var p = pending[msg.id];
    delete pending[msg.id];
    var body;
    try { body = JSON.parse(msg.body || "null"); } catch (e) { body = { error: msg.body }; }
    if (msg.ok && body && !body.error) p.resolve(body); else p.reject(new Error((body && body.error) || ("HTTP " + msg.status)));
  });

  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    return td;
  }
  function row(llm) {
    var tr = document.createElement("tr");
    tr.dataset.llm = llm.id;
    tr.appendChild(cell(llm.name));
    tr.appendChild(cell(llm.vendor));
    tr.appendChild(cell(llm.model));
    tr.appendChild(cell(llm.active ? "yes" : "no"));
    tr.appendChild(cell(llm.checks, "num checks"));
    tr.appendChild(cell(llm.failures, "num failures" + (llm.failures ? " bad" : "")));
    tr.appendChild(cell(llm.last_ms === null ? null : llm.last_ms + " ms", "num"));
    tr.appendChild(cell(llm.last_error || "", llm.last_error ? "bad" : ""));
    var td = document.createElement("td");
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Check now";
    button.addEventListener("click", function () {
      button.disabled = true;
      rpc("check", { llm_id: llm.id }).then(function (answer) {
        tr.replaceWith(row(Object.assign({}, llm, answer.llm)));
      }).catch(function (e) { status(e.message, true); button.disabled = false; });
    });
    td.appendChild(button);
    tr.appendChild(td);
    return tr;
  }
  function status(text, bad) {
    var el = document.getElementById("status");
    el.textContent = text;
    el.className = bad ? "bad" : "";
  }
  rpc("board").then(function (answer) {
    var body = document.querySelector("#board tbody");
    answer.llms.forEach(function (llm) { body.appendChild(row(llm)); });
    document.getElementById("board").hidden = false;
    status(answer.llms.length + " LLM(s)");
  }).catch(function (e) { status("Could not load the board: " + e.message, true); });
})();
