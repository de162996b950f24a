// The agent's ticket page: reply templates and snippets inserted at the cursor, @mention completion in
// internal comments, and "confirm before send" for public replies. Without this script every form still
// works: the snippet picker reloads the page with the text in the draft.
(function () {
  "use strict";
  var text = document.getElementById("reply-text");
  var kind = document.getElementById("reply-kind");
  var form = document.getElementById("reply-form");

  function insertAtCursor(value) {
    var start = text.selectionStart, end = text.selectionEnd;
    text.value = text.value.slice(0, start) + value + text.value.slice(end);
    text.selectionStart = text.selectionEnd = start + value.length;
    text.focus();
  }

  var snippets = document.getElementById("snippet-form");
  if (snippets && text) {
    snippets.addEventListener("submit", function (event) {
      var option = document.getElementById("snippet-pick").selectedOptions[0];
      if (!option) return;
      event.preventDefault();
      var value = option.getAttribute("data-text") || "";
      if (option.getAttribute("data-kind") === "template" && !text.value.trim()) {
        text.value = value;
        text.focus();
      } else {
        insertAtCursor(value);
      }
    });
  }

  if (form && form.hasAttribute("data-confirm")) {
    form.addEventListener("submit", function (event) {
      if (kind && kind.value === "public_reply" && !window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  }

  var list = document.getElementById("mention-list");
  if (!text || !list) return;
  var pending = null, active = -1, items = [];

  function mentionBeforeCursor() {
    var before = text.value.slice(0, text.selectionStart);
    var match = /(^|\s)@([\w.+-]{0,50})$/.exec(before);
    return match ? { query: match[2], start: before.length - match[2].length - 1 } : null;
  }

  function close() {
    list.hidden = true;
    list.textContent = "";
    items = [];
    active = -1;
  }

  function choose(index) {
    var found = mentionBeforeCursor();
    if (!found || !items[index]) return close();
    var handle = "@" + items[index].handle + " ";
    text.value = text.value.slice(0, found.start) + handle + text.value.slice(text.selectionStart);
    text.selectionStart = text.selectionEnd = found.start + handle.length;
    close();
    text.focus();
  }

  function mark(index) {
    active = index;
    Array.prototype.forEach.call(list.children, function (li, i) {
      li.setAttribute("aria-selected", i === index ? "true" : "false");
    });
  }

  function show(found) {
    list.textContent = "";
    items = found;
    found.forEach(function (person, i) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.id = "mention-" + i;
      li.textContent = person.name + " (@" + person.handle + ")";
      li.addEventListener("mousedown", function (event) {
        event.preventDefault();
        choose(i);
      });
      list.appendChild(li);
    });
    list.hidden = found.length === 0;
    mark(found.length ? 0 : -1);
  }

  text.addEventListener("input", function () {
    if (kind && kind.value !== "internal_comment") return close();
    var found = mentionBeforeCursor();
    if (!found) return close();
    if (pending) pending.abort();
    pending = new AbortController();
    fetch("/tickets/mentions?q=" + encodeURIComponent(found.query), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      signal: pending.signal,
    })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(show)
      .catch(function () {});
  });

  text.addEventListener("keydown", function (event) {
    if (list.hidden) return;
    if (event.key === "ArrowDown") { event.preventDefault(); mark((active + 1) % items.length); }
    else if (event.key === "ArrowUp") { event.preventDefault(); mark((active - 1 + items.length) % items.length); }
    else if (event.key === "Enter" || event.key === "Tab") { event.preventDefault(); choose(active); }
    else if (event.key === "Escape") { close(); }
  });
  text.addEventListener("blur", close);
})();
