//! The web UI: static assets embedded in the binary and served at `/` and under `/ui/`.
//!
//! The UI is a single page of plain JavaScript modules (no framework, no build step) that talks
//! to the JSON API like any other client; this module only serves bytes. It owns the asset
//! table, the content types, the caching rules and the security headers of the UI's responses.
//! It does not know what the pages show.
//!
//! Routes:
//! - `GET /` and any other `GET /ui/...` path: the page shell (`index.html`), so reloading a
//!   page of the UI (it routes with the URL's fragment) or following an old link still works.
//! - `GET /ui/{build}/{file}`: an asset. `{build}` is a hash of every asset, computed once, so a
//!   new binary gets new URLs and assets under the current build are cached as immutable. An
//!   asset asked for under another build id is still served, but not cached, so a page loaded
//!   from the previous binary keeps working.
//!
//! Every response carries a content-security-policy that allows only this server's own scripts,
//! styles, images and API (`connect-src 'self'`), no inline script, no framing, and no plugins:
//! server data that slips into the page as markup could not run.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The content-security-policy of every UI response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Placeholder in `index.html` replaced by `/ui/<build>` at first use.
const ASSET_BASE_PLACEHOLDER: &str = "{{ASSET_BASE}}";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset { name: $name, content_type: $content_type, bytes: include_bytes!(concat!("../ui/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the UI loads; a file not listed here is not served.
static ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("charts.js", JS),
    asset!("lineage.js", JS),
    asset!("json-view.js", JS),
    asset!("views/auth.js", JS),
    asset!("views/catalog.js", JS),
    asset!("views/product.js", JS),
    asset!("views/dead-letters.js", JS),
    asset!("views/live.js", JS),
];

const INDEX_HTML: &str = include_str!("../ui/index.html");

/// The build id: a hash (FNV-1a, 64 bits) of every asset's name and bytes.
fn build_id() -> &'static str {
    static BUILD_ID: OnceLock<String> = OnceLock::new();
    BUILD_ID.get_or_init(|| {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let parts = ASSETS.iter().flat_map(|a| [a.name.as_bytes(), a.bytes]).chain([INDEX_HTML.as_bytes()]);
        for part in parts {
            for &byte in part.iter().chain(&[0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    })
}

fn index_html() -> &'static str {
    static INDEX: OnceLock<String> = OnceLock::new();
    INDEX.get_or_init(|| INDEX_HTML.replace(ASSET_BASE_PLACEHOLDER, &format!("/ui/{}", build_id())))
}

fn with_security_headers(mut response: Response, cache_control: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `GET /`: the page shell. Never cached, so a new binary's assets are picked up at once.
pub async fn index() -> Response {
    let response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], index_html()).into_response();
    with_security_headers(response, "no-cache")
}

/// `GET /ui/{*path}`: an asset under `/ui/<build>/`, else the page shell.
pub async fn asset_or_index(Path(path): Path<String>) -> Response {
    let (build, name) = path.split_once('/').unwrap_or(("", path.as_str()));
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        if looks_like_asset(name) {
            let response =
                (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "no such asset\n").into_response();
            return with_security_headers(response, "no-store");
        }
        return index().await;
    };
    let cache_control = if build == build_id() { "public, max-age=31536000, immutable" } else { "no-cache" };
    let response = ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response();
    with_security_headers(response, cache_control)
}

/// A path whose last segment has a file extension is an asset request, not a page of the UI:
/// answering it with HTML would hide a broken reference behind a confusing MIME error.
fn looks_like_asset(name: &str) -> bool {
    name.rsplit('/').next().is_some_and(|last| last.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every asset `index.html` and the modules refer to is in the table, and the shell's
    /// placeholder is replaced.
    #[test]
    fn index_refers_to_listed_assets_only() {
        let html = index_html();
        assert!(!html.contains(ASSET_BASE_PLACEHOLDER));
        let base = format!("/ui/{}/", build_id());
        for part in html.split(&base).skip(1) {
            let name: String = part.chars().take_while(|c| !matches!(c, '"' | '\'' | '?')).collect();
            assert!(ASSETS.iter().any(|a| a.name == name), "index.html refers to {name}, which is not embedded");
        }
    }

    /// Every relative module import resolves to an embedded asset, so no import 404s at run time.
    #[test]
    fn module_imports_resolve_to_listed_assets() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).expect("assets are UTF-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['"', '\'']).nth(1) else { continue };
                let dir = asset.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                let mut parts: Vec<&str> = if dir.is_empty() { vec![] } else { dir.split('/').collect() };
                for segment in spec.split('/') {
                    match segment {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        other => parts.push(other),
                    }
                }
                let target = parts.join("/");
                assert!(ASSETS.iter().any(|a| a.name == target), "{} imports {spec} ({target}), which is not embedded", asset.name);
            }
        }
    }

    /// Assets under the current build are immutable; the shell and unknown paths are revalidated;
    /// a missing asset is a 404, not the shell; every answer carries the security headers.
    #[tokio::test]
    async fn responses_have_types_caching_and_security_headers() {
        let current = asset_or_index(Path(format!("{}/app.js", build_id()))).await;
        assert_eq!(current.status(), StatusCode::OK);
        assert_eq!(current.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(current.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(current.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);

        let stale = asset_or_index(Path("0000000000000000/style.css".to_string())).await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(stale.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(stale.headers()[header::CACHE_CONTROL], "no-cache");

        let page = asset_or_index(Path("products/urn:weft:product:x".to_string())).await;
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");

        let missing = asset_or_index(Path(format!("{}/nope.js", build_id()))).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn asset_paths_are_recognised() {
        assert!(looks_like_asset("app.js"));
        assert!(looks_like_asset("views/x.js"));
        assert!(!looks_like_asset("products"));
    }
}
