// The live status page: GET / and GET /status on the HTTP listener
// (docs/HTTP.md, "The status page"). One self-contained HTML document with
// inline CSS and JavaScript, compiled into the binary.
//
// What it trusts: nothing; the page holds no data. Its script asks
// /metrics and the admin API (/api/admin/v1/...) with the bearer token the
// operator pastes into it, so the page needs no token and gives a stranger
// nothing. Content-Security-Policy allows only the page's own inline script
// and style (by hash), nothing from anywhere else, and fetches only to this
// origin.
#pragma once

#include <string_view>

#include "sluice/http/response.h"

namespace sluice::server {

// The document itself (HTML with its inline CSS and JS).
std::string_view StatusPageHtml();

// 200 text/html with the page, the Content-Security-Policy and the other
// headers that keep it from being framed, sniffed or cached.
http::Response StatusPageResponse();

}  // namespace sluice::server
