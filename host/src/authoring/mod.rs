//! Tools for plugin authors: project templates in Rust, Python and
//! JavaScript ([`template`], `lockstep plugin new`), and a harness that runs
//! a plugin against a fixture project and compares the result with the
//! expected files ([`harness`], `lockstep plugin test`).

pub mod harness;
pub mod template;
pub mod tree;

pub use harness::{HarnessError, HarnessOptions, HarnessReport, PluginUnderTest};
pub use template::{new_plugin, Created, Lang, TemplateError};
pub use tree::{compare_trees, copy_tree, Difference, DifferenceKind, TreeComparison};
