/* The chat page: post a turn (fetch, with the form's CSRF token), then read its reply from an EventSource.
   Vanilla on purpose: EventSource is built into every browser, so nothing is vendored for a page this small.
   Each event is one agent chunk kind (content, tool_call, tool_result, thinking, error, done) and gets its own
   element as it arrives; content chunks extend the current text. A tool_result tagged
   `metadata.kind: "datasource_context"` lists the datasource passages the LLM was given. The reply's text shows as
   plain text while it arrives; the event that ends it (done, error) carries its content parts as HTML the server
   rendered from Markdown (`chat/markdown.py`: raw HTML escaped, links checked), which replace the plain text. */
(function () {
  "use strict";
  var transcript = document.getElementById("transcript");
  var form = document.getElementById("message-form");
  var errors = document.getElementById("message-errors");
  var send = document.getElementById("send");
  var LABELS = { tool_call: "Tool call", tool_result: "Tool result", thinking: "Thinking", error: "Error" };

  /* Text from users, LLMs and tools is isolated (a <bdi> after a label, `dir="auto"` on its own), as in the
     templates: a right-to-left override inside it cannot reorder the label or anything after it. */
  function element(cls, text, label) {
    var div = document.createElement("div");
    div.className = "chunk " + cls;
    if (label) {
      var span = document.createElement("span");
      span.className = "label";
      span.textContent = label;
      div.appendChild(span);
      div.appendChild(document.createTextNode(" "));
      div.appendChild(isolated(text));
      return div;
    }
    div.dir = "auto";
    div.appendChild(document.createTextNode(text));
    return div;
  }

  function isolated(text) {
    var bdi = document.createElement("bdi");
    bdi.textContent = text;
    return bdi;
  }

  /* The sources of the datasource context (a tool_result tagged `metadata.kind`): datasource, document, score. */
  function context(chunk) {
    var sources = chunk.metadata.sources || [];
    if (!sources.length) { return element("context", chunk.content, "Context"); }
    var div = element("context", "", "Context");
    var list = document.createElement("ol");
    list.className = "sources";
    sources.forEach(function (s) {
      var item = document.createElement("li");
      var name = document.createElement("span");
      name.className = "source";
      name.appendChild(isolated(s.datasource_name));
      name.appendChild(document.createTextNode(" \u203a "));
      name.appendChild(isolated(s.document));
      var score = document.createElement("span");
      score.className = "score";
      score.textContent = "score " + Number(s.score).toFixed(2);
      var excerpt = document.createElement("div");
      excerpt.className = "excerpt";
      excerpt.textContent = s.excerpt;
      item.appendChild(name);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(score);
      item.appendChild(excerpt);
      list.appendChild(item);
    });
    div.appendChild(list);
    return div;
  }

  /* The server's rendering of the reply's content parts (`html`: one per content element, in order) in place of
     their plain text; when they do not match (an older server, a lost event), the plain text stays. */
  function rendered(bubble, data) {
    var html = data && data.html;
    var parts = bubble.querySelectorAll(".chunk.content");
    if (!html || html.length !== parts.length) { return; }
    html.forEach(function (h, i) {
      parts[i].innerHTML = h;  // built by the server from escaped text, never the raw reply
      parts[i].classList.add("md");
    });
  }

  function turn(role) {
    var div = document.createElement("div");
    div.className = "turn " + role;
    transcript.appendChild(div);
    return div;
  }

  function stream(url) {
    var bubble = turn("assistant streaming");
    var text = null;
    var source = new EventSource(url);
    send.disabled = true;
    function finish(state) {
      source.close();
      bubble.classList.remove("streaming");
      bubble.classList.add(state);
      send.disabled = false;
    }
    source.addEventListener("content", function (e) {
      var chunk = JSON.parse(e.data);
      if (text === null) { text = element("content", ""); bubble.appendChild(text); }
      text.appendChild(document.createTextNode(chunk.content));
    });
    ["tool_call", "tool_result", "thinking"].forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        var chunk = JSON.parse(e.data);
        var failed = kind === "tool_result" && chunk.metadata && chunk.metadata.ok === false;
        var tagged = chunk.metadata && chunk.metadata.kind === "datasource_context";
        bubble.appendChild(tagged ? context(chunk) : element(kind + (failed ? " failed" : ""), chunk.content, LABELS[kind]));
        text = null;
      });
    });
    source.addEventListener("error", function (e) {
      if (e.data) {
        var data = JSON.parse(e.data);
        rendered(bubble, data);
        bubble.appendChild(element("error", data.content, LABELS.error));
        finish("error");
      } else if (source.readyState !== EventSource.OPEN) {  // the connection itself failed
        bubble.appendChild(element("error", "The connection to the server was lost.", LABELS.error));
        finish("error");
      }
    });
    source.addEventListener("done", function (e) {
      rendered(bubble, JSON.parse(e.data));
      bubble.appendChild(element("done", "done"));
      finish("done");
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errors.textContent = "";
    var body = new FormData(form);
    fetch(form.action, { method: "POST", body: body, headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (data) { return { status: response.status, data: data }; });
      })
      .then(function (result) {
        if (result.status !== 201) {
          var all = result.data.errors || {};
          Object.keys(all).forEach(function (field) {
            all[field].forEach(function (err) { errors.appendChild(element("error", err.message)); });
          });
          return;
        }
        var title = document.getElementById("chat-title");
        if (title && title.dataset.untitled === "1") {  // the first message names the conversation
          var text = body.get("message").trim();
          title.textContent = text.length <= 60 ? text : text.slice(0, 59) + "\u2026";
          title.dataset.untitled = "0";
          var rename = document.querySelector("#rename-form input[name=title]");
          if (rename && !rename.value) { rename.value = title.textContent; }
        }
        var mine = turn("user");
        mine.appendChild(element("content", body.get("message")));
        form.reset();
        stream(result.data.stream_url);
      })
      .catch(function () { errors.appendChild(element("error", "Could not send the message: try again.")); });
  });

  if (transcript.dataset.pending === "1") { stream(transcript.dataset.streamUrl); }
}());
