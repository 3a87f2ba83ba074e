//! The web dashboards: one page shell, its script and style, and the vendored chart library,
//! compiled into the binary so that the dashboards work offline. The pages are static; every
//! number on them comes from the JSON API (`/api/v1/metrics` above all) with the signed-in user's
//! credentials, so a page shows exactly what that user's role may read.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;
use super::http::AppState;

/// The page shell, served for every dashboard path: the script reads the path and the filters
/// from the URL.
const INDEX: &str = include_str!("../../web/index.html");

/// (name, content type, body) of every asset under `/assets/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/vendor/uPlot.min.css"),
    ),
];

/// The dashboard pages (each also takes its filters as query parameters).
pub const PAGES: &[&str] = &[
    "/",
    "/login",
    "/overview",
    "/customers",
    "/customers/{key}",
    "/products",
    "/campaigns",
    "/pipeline",
    "/operations",
];

/// Nothing is loaded from anywhere but this server, which also keeps an offline page honest: a
/// stray CDN reference shows up as a console error instead of silently working online.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// The dashboard routes, merged into the API's router.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new().route("/assets/{file}", get(asset));
    for page in PAGES {
        router = router.route(page, get(shell));
    }
    router
}

async fn shell(State(state): State<AppState>) -> Response {
    // The script asks for a sign-in only where the server wants one, so that an open local
    // server never shows a pointless form (nor logs a refused request in the console).
    let sign_in = if state.users.is_empty() { "open" } else { "required" };
    let page = INDEX.replacen("<body>", &format!("<body data-sign-in=\"{sign_in}\">"), 1);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *content_type),
                // Small enough to revalidate every time; the binary's version is the cache key.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::not_found(format!("no asset {file:?}")).into_response(),
    }
}
