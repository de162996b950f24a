// Admin workflow pages: show only the parts of a rule that apply to its event and to each action's type.
// Every form works without this script; it only hides inputs that the chosen options do not use.
(function () {
  "use strict";

  function showActionParts(item) {
    var select = item.querySelector("select.act-type");
    var kind = select ? select.value : "";
    item.querySelectorAll("fieldset.for-action").forEach(function (part) {
      part.classList.toggle("current", part.getAttribute("data-action") === kind);
    });
  }

  function showEventParts(form) {
    var event = form.querySelector("#rule-event");
    if (!event) return;
    form.querySelectorAll(".for-event").forEach(function (part) {
      part.classList.toggle("current", part.getAttribute("data-event") === event.value);
    });
  }

  function start() {
    var form = document.getElementById("rule-form");
    if (!form || !form.querySelector("#rule-event")) return;
    document.body.classList.add("aw-js");
    form.querySelectorAll(".aw-action").forEach(function (item) {
      showActionParts(item);
      var select = item.querySelector("select.act-type");
      if (select) select.addEventListener("change", function () { showActionParts(item); });
    });
    showEventParts(form);
    form.querySelector("#rule-event").addEventListener("change", function () { showEventParts(form); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
