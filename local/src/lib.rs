//! The local stack of Latchkey: runs the real Lambda binaries on this machine exactly as AWS
//! runs them, so the functions need no "local mode".
//!
//! - [`template`] reads `infra/template.yaml` (functions, routes, table).
//! - [`gateway`] serves the HTTP API like API Gateway (with [`router`] and [`apigw`]), plus
//!   the Lambda Invoke API and a mailbox page; [`runtime`] runs each function as a pool of
//!   processes behind an emulated Lambda Runtime API.
//! - [`emulators`] starts DynamoDB Local and moto; [`setup`] and [`stack`] create what
//!   CloudFormation would (table, bucket, SES sender, secret) and bootstrap the admin.
//! - [`testing`] is the harness of the end-to-end tests.

pub mod apigw;
pub mod emulators;
pub mod faults;
pub mod gateway;
pub mod lifecycle;
pub mod mailbox;
pub mod paths;
pub mod process;
pub mod router;
pub mod runtime;
pub mod s3_relay;
pub mod setup;
pub mod stack;
pub mod template;
pub mod testing;

pub use gateway::{Gateway, GatewayConfig};
pub use mailbox::SentMail;
pub use testing::TestStack;
