//! Format detection and the format parsers. Each parser borrows from the payload and
//! allocates only where an escape or a repair forces it.

pub mod cef;
pub mod detect;
pub mod json;
mod json_tree;
pub mod kv;
pub mod pipe;

pub use detect::{detect, Format};
