//! The dashboard of `lockstep serve`: server-rendered pages over the same
//! container as the API.
//!
//! Pages are [maud] templates, which escape every interpolated value; on
//! top of that every string a plugin, an action or a project controls goes
//! through [`crate::visible`] first, so a summary of `<script>` is text and
//! an escape sequence is a visible `␛`. The pages load only our own files
//! ([`assets`]: htmx and its SSE extension, vendored, and our stylesheet),
//! under a Content-Security-Policy without inline scripts or styles
//! ([`assets::CONTENT_SECURITY_POLICY`]).
//!
//! [`render`] turns data into HTML and knows nothing of HTTP; the routes
//! that fetch the data, check the scope and serve the pages come on top.

pub mod assets;
pub mod render;
mod routes;

pub use routes::routes;
