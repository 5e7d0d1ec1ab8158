//! Tools for plugin authors: project templates in Rust, Python and
//! JavaScript ([`template`], `lockstep plugin new`).

pub mod template;

pub use template::{new_plugin, Created, Lang, TemplateError};
