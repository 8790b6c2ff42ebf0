// The pages behind the links we mail: /confirm, /reset and /email/confirm.
//
// offbrand is an API server, but the links in confirmation, reset and
// email-change mails are opened in a browser. Each path serves one small
// static page; a static script reads the token from the URL and calls the
// JSON API (POST /api/v1/auth/confirm, /auth/reset/confirm,
// /auth/email/confirm) only when the person presses the button, so a mail
// scanner that prefetches links changes nothing. The pages carry no data of
// the server: a Content-Security-Policy allowing only our own script and
// API, no framing, and no Referer (the token is in the URL).
#include <string>

#include "http_server.h"

namespace offbrand {

namespace {

constexpr char kSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

struct LinkPage {
  const char* path;
  const char* title;
  const char* api;          // the API call the button makes
  bool password;            // the page asks for a new password
  const char* button;
};

constexpr LinkPage kPages[] = {
    {"/confirm", "Confirm your account", "/api/v1/auth/confirm", false, "Confirm"},
    {"/reset", "Choose a new password", "/api/v1/auth/reset/confirm", true, "Set password"},
    {"/email/confirm", "Confirm your new email address", "/api/v1/auth/email/confirm", false,
     "Confirm"},
};

std::string PageHtml(const LinkPage& p) {
  std::string html =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>offbrand: ";
  html += p.title;
  html +=
      "</title></head>\n<body style=\"font-family:sans-serif;max-width:30em;margin:3em auto\">\n"
      "<h1>";
  html += p.title;
  html += "</h1>\n<form id=\"form\" data-api=\"";
  html += p.api;
  html += "\">\n";
  if (p.password) {
    html +=
        "<p><label>New password (8 to 1024 characters)<br>"
        "<input id=\"password\" type=\"password\" minlength=\"8\" maxlength=\"1024\" "
        "autocomplete=\"new-password\" required></label></p>\n";
  }
  html += "<p><button type=\"submit\">";
  html += p.button;
  html +=
      "</button></p>\n</form>\n<p id=\"result\" role=\"status\"></p>\n"
      "<script src=\"/link-pages.js\"></script>\n</body></html>\n";
  return html;
}

// Reads ?token=, posts {token[, password]} as JSON and shows the outcome.
constexpr char kScript[] = R"JS('use strict';
(function () {
  var form = document.getElementById('form');
  var result = document.getElementById('result');
  var token = new URLSearchParams(window.location.search).get('token') || '';
  if (!token) {
    result.textContent = 'This link has no token. Open the link from the mail again.';
    form.hidden = true;
    return;
  }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var body = { token: token };
    var password = document.getElementById('password');
    if (password) body.password = password.value;
    form.hidden = true;
    result.textContent = 'Working...';
    fetch(form.dataset.api, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (res.ok) {
          result.textContent = 'Done. You can close this page and sign in.';
        } else {
          var e = json.error || {};
          result.textContent = 'That did not work: ' + (e.message || res.status);
          form.hidden = false;
        }
      });
    }, function () {
      result.textContent = 'The server could not be reached. Try again.';
      form.hidden = false;
    });
  });
})();
)JS";

void SetPageHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy", kSecurityPolicy);
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cache-Control", "no-store");
}

}  // namespace

void RegisterLinkPages(HttpServer& server) {
  for (const LinkPage& page : kPages) {
    const std::string html = PageHtml(page);
    server.RouteAtRoot("GET", page.path, "pages.link", [html](RequestContext& ctx) {
      SetPageHeaders(ctx.res);
      ctx.res.status = 200;
      ctx.res.set_content(html, "text/html; charset=utf-8");
      return Status::Ok();
    });
  }
  server.RouteAtRoot("GET", "/link-pages.js", "pages.script", [](RequestContext& ctx) {
    SetPageHeaders(ctx.res);
    ctx.res.status = 200;
    ctx.res.set_content(kScript, "text/javascript; charset=utf-8");
    return Status::Ok();
  });
}

}  // namespace offbrand
