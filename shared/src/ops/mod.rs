//! One module per operation: its request shape, its error enum, its handler.

pub mod accept;
pub mod bootstrap;
pub mod invite;
pub mod pages;
pub mod sessions;
pub mod tenants;
pub mod users;
