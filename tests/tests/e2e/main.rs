//! Every end-to-end suite in one test binary: each module is one suite, run against the real
//! function binaries behind the local gateway (see `latchkey_tests`). One binary instead of
//! one per suite: each links reqwest and the AWS SDK, and linking them once per suite cost
//! minutes of every build. nextest still runs every test in a process of its own.

mod accept;
mod access;
mod account_changes;
mod bad_input;
mod branding;
mod bulk;
mod csv_import;
mod delivery_status;
mod events;
mod imports;
mod invitations;
mod keys;
mod lifecycle;
mod lifecycle_events;
mod listing;
mod openapi;
mod people;
mod races;
mod reach;
mod recovery;
mod reinvite;
mod resilience;
mod working_core;
