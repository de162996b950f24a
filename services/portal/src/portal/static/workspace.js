// The workspace's small behaviours; every page also works without this file (plain forms and links).
(function () {
  "use strict";

  if (window.htmx) {
    // The content security policy allows no inline styles and no eval: keep htmx from needing either.
    htmx.config.includeIndicatorStyles = false;
    htmx.config.allowEval = false;
    htmx.config.allowScriptTags = false;
    htmx.config.historyCacheSize = 0; // ticket lists hold customer data: none of it in localStorage
    htmx.config.selfRequestsOnly = true;

    // Every unsafe htmx request carries the session's CSRF token, as forms do in a hidden field.
    document.addEventListener("htmx:configRequest", function (event) {
      var token = document.body.dataset.csrf;
      if (token) {
        event.detail.headers["X-CSRF-Token"] = token;
      }
    });
  }

  function boxes(form) {
    return Array.prototype.slice.call(form.querySelectorAll('input[type="checkbox"][name="number"]'));
  }

  function syncBulk(form) {
    var all = boxes(form);
    var picked = all.filter(function (box) { return box.checked; });
    var selectAll = form.querySelector("#select-all");
    if (selectAll) {
      selectAll.checked = all.length > 0 && picked.length === all.length;
      selectAll.indeterminate = picked.length > 0 && picked.length < all.length;
    }
    var bar = form.querySelector("#bulk-bar");
    if (bar) {
      bar.classList.toggle("active", picked.length > 0);
    }
    var count = form.querySelector("#bulk-selected");
    if (count) {
      count.dataset.count = String(picked.length);
    }
    all.forEach(function (box) {
      var row = box.closest("tr");
      if (row) {
        row.classList.toggle("picked", box.checked);
      }
    });
  }

  function setUp() {
    var bulk = document.getElementById("bulk-form");
    if (bulk) {
      bulk.addEventListener("change", function (event) {
        var target = event.target;
        if (target && target.id === "select-all") {
          boxes(bulk).forEach(function (box) { box.checked = target.checked; });
        }
        syncBulk(bulk);
      });
      syncBulk(bulk);
    }
    // The filter bar applies a choice at once; its Apply button stays for browsers without scripts.
    document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.addEventListener("change", function (event) {
        if (event.target && event.target.tagName === "SELECT") {
          if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
        }
      });
      form.classList.add("auto");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
