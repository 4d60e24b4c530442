// Progressive enhancement for the landing page forms. Without JavaScript the forms post as plain
// HTML to the Baton API, which answers 303 to thanks.html. With it, they post JSON with fetch and
// show the confirmation in place.
//
// API base URL: ?api=http://host:port, else <meta name="baton-api">, else http://127.0.0.1:8000.
(function () {
  "use strict";

  var DEFAULT_API = "http://127.0.0.1:8000";
  var UTM = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];
  var params = new URLSearchParams(window.location.search);

  function httpUrl(value) {
    if (!value) return null;
    try {
      var url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.origin + url.pathname.replace(/\/+$/, "") : null;
    } catch (e) {
      return null;
    }
  }

  function apiBase() {
    var meta = document.querySelector('meta[name="baton-api"]');
    return httpUrl(params.get("api")) || httpUrl(meta && meta.content) || DEFAULT_API;
  }

  function hidden(form, name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    input.value = value;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // The API's answer says only that the submission arrived (ok, a message): never anything about
  // the lead, since anyone can post anyone's address.
  function confirmation(formId, data) {
    var name = data.first_name ? ", " + escapeHtml(data.first_name) : "";
    if (formId === "demo") {
      return {
        title: "Thanks" + name + "! Your demo is on its way.",
        body: "A product specialist will email you within one business day to pick a time.",
      };
    }
    return {
      title: "Thanks" + name + "! The playbook is yours.",
      body: "We just emailed a download link to " + escapeHtml(data.email || "you") + ". Happy scoring!",
    };
  }

  function showConfirmation(form, formId, data) {
    var text = confirmation(formId, data);
    var box = document.createElement("div");
    box.className = "confirmation";
    box.setAttribute("role", "status");
    box.setAttribute("tabindex", "-1");
    box.innerHTML = '<div class="check" aria-hidden="true">&#10003;</div>' +
      "<h3>" + text.title + "</h3><p>" + text.body + "</p>";
    form.replaceWith(box);
    box.focus();
  }

  function showError(form, message) {
    var box = form.querySelector(".form-error");
    box.textContent = message;
    box.hidden = false;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function enhance(form, api) {
    var formId = form.dataset.form;
    form.action = api + "/v1/forms/" + encodeURIComponent(formId);
    hidden(form, "_redirect", new URL("thanks.html?form=" + encodeURIComponent(formId), window.location.href).href);
    UTM.forEach(function (key) {
      if (params.get(key)) hidden(form, key, params.get(key));
    });
    // One id per page view and form: a double-clicked submit is one lead event, not two.
    var submissionId = newId();

    form.addEventListener("submit", function (event) {
      if (!window.fetch) return; // old browser: the plain HTML post still works
      event.preventDefault();
      var button = form.querySelector('button[type="submit"]');
      var data = {};
      new FormData(form).forEach(function (value, key) {
        if (key !== "_redirect" && value !== "") data[key] = value;
      });
      data._gotcha = form.querySelector('input[name="_gotcha"]').value;
      data._submission_id = submissionId;
      form.querySelector(".form-error").hidden = true;
      button.disabled = true;
      var label = button.textContent;
      button.textContent = "Sending…";

      fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(data),
        credentials: "omit",
      })
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            if (!response.ok) {
              var message = body && body.error && body.error.message;
              throw new Error(message || "Something went wrong (HTTP " + response.status + ").");
            }
            return body;
          });
        })
        .then(function () {
          showConfirmation(form, formId, data);
        })
        .catch(function (error) {
          button.disabled = false;
          button.textContent = label;
          if (error instanceof TypeError) {
            // Network or CORS trouble: fall back to the plain HTML post, which needs neither.
            form.submit();
            return;
          }
          showError(form, error.message + " Please check the form and try again.");
        });
    });
  }

  function init() {
    var api = apiBase();
    document.documentElement.dataset.batonApi = api;
    Array.prototype.forEach.call(document.querySelectorAll("form.lead-form"), function (form) {
      enhance(form, api);
    });
    // thanks.html: a link back that keeps ?api= for the next visit
    Array.prototype.forEach.call(document.querySelectorAll("a[data-keep-query]"), function (link) {
      link.search = window.location.search.replace(/([?&])form=[^&]*&?/, "$1").replace(/[?&]$/, "");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
