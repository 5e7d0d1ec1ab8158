//! The dashboard's static files, embedded in the binary (no CDN, works
//! offline): htmx and its SSE extension (vendored from npm, see
//! `host/assets/vendor/README.md` for versions, licences and hashes) and
//! our stylesheet.

use std::borrow::Cow;

/// The files under `host/assets/` the pages load (scripts and styles only).
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[include = "*.js"]
#[include = "*.css"]
struct Files;

/// URL path prefix of the assets.
pub const PREFIX: &str = "/ui/assets/";
/// The htmx script, relative to [`PREFIX`].
pub const HTMX: &str = "vendor/htmx-2.0.11.min.js";
/// The htmx SSE extension, relative to [`PREFIX`].
pub const HTMX_SSE: &str = "vendor/htmx-ext-sse-2.2.4.min.js";
/// Our stylesheet, relative to [`PREFIX`].
pub const STYLE: &str = "dashboard.css";

/// The policy every dashboard response carries: our own scripts, styles,
/// images and event streams only; no inline script or style, no `eval`, no
/// plugins, no framing, forms posting only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// An embedded file: its bytes and content type, or `None` if there is no
/// such asset.
pub fn get(path: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
    let file = Files::get(path)?;
    let mime = match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };
    Some((file.data, mime))
}

/// A short content hash of an asset, for cache-busting URLs.
pub fn version(path: &str) -> String {
    Files::get(path)
        .map(|f| hex::encode(&f.metadata.sha256_hash()[..6]))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_scripts_and_the_stylesheet_are_embedded() {
        for path in [HTMX, HTMX_SSE, STYLE] {
            let (bytes, mime) = get(path).unwrap_or_else(|| panic!("{path} missing"));
            assert!(bytes.len() > 100, "{path}");
            assert!(mime.starts_with("text/"), "{mime}");
        }
        assert!(get("vendor/README.md").is_none(), "only scripts and styles");
        assert!(get("../Cargo.toml").is_none());
        assert_eq!(version(HTMX).len(), 12);
    }

    #[test]
    fn the_policy_allows_no_inline_script_or_foreign_origin() {
        let csp = CONTENT_SECURITY_POLICY;
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(!csp.contains("http"), "no other origin: {csp}");
    }
}
