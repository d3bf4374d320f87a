/* Sandboxed frame: RPC through the portal page (postMessage); the portal adds the session, CSRF and the user. */
(function () {
  "use strict";
  var pending = {}, next = 1;
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
  function item(prompt, removable) {
    var li = document.createElement("li");
    var title = document.createElement("div");
    title.className = "title";
    title.textContent = prompt.title;
    var text = document.createElement("pre");
    text.textContent = prompt.text;
    li.appendChild(title);
    li.appendChild(text);
    if (removable) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = "Delete";
      b.addEventListener("click", function () { rpc("delete", { id: prompt.id }).then(load); });
      li.appendChild(b);
    }
    return li;
  }
  function fill(id, prompts, removable, empty) {
    var ul = document.getElementById(id);
    ul.replaceChildren();
    if (!prompts.length) { var li = document.createElement("li"); li.textContent = empty; ul.appendChild(li); }
    prompts.forEach(function (p) { ul.appendChild(item(p, removable)); });
  }
  function load() {
    return rpc("list").then(function (answer) {
      document.getElementById("hello").textContent = "Prompts of " + answer.user;
      fill("mine", answer.mine, true, "None yet: keep one below.");
      fill("shared", answer.shared, false, "No shared prompts.");
    }).catch(function (e) { document.getElementById("error").textContent = e.message; });
  }
  document.getElementById("new").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    rpc("save", { title: form.title.value, text: form.text.value }).then(function () {
      form.reset();
      document.getElementById("error").textContent = "";
      return load();
    }).catch(function (e) { document.getElementById("error").textContent = e.message; });
  });
  load();
})();
