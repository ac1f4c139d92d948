//! Latchkey's common crate: the rules of invitation and account recovery, written once.
//!
//! Functions are thin: they call [`telemetry::init`], read their [`config`], start building an
//! [`app::App`] once (in an [`app::Warm`] cell, beside the runtime's first poll), and hand one
//! of the [`ops`] handlers to the Lambda runtime. Everything that decides anything is here.

pub mod app;
pub mod auth;
pub mod aws;
pub mod branding;
pub mod config;
pub mod csv_rows;
pub mod domain;
pub mod encoding;
pub mod events;
pub mod http;
pub mod https;
pub mod mail;
pub mod ops;
pub mod password;
pub mod problem;
pub mod rotation;
pub mod secrets;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod uploads;

pub use lambda_http;
