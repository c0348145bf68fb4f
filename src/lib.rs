//! sluice: receives security vendors' syslog (and S3 exports), normalises every format into
//! OCSF-aligned JSON, and publishes it.
//!
//! The pipeline, one stage per module:
//! `source` (framing, message) → `syslog` (header) → `format` (detect + parse) →
//! `grammar` (vendor match + OCSF mapping) → `event` (the normalised event) → `sink`.
//! `pipeline` runs the stages for one message.

pub mod allocator;
pub mod config;
pub mod event;
pub mod format;
pub mod grammar;
pub mod pipeline;
pub mod queue;
pub mod run;
pub mod sink;
pub mod source;
pub mod syslog;
pub mod telemetry;
pub mod time;

pub use pipeline::{ParseOptions, Pipeline, Status};
