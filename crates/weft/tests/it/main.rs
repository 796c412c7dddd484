//! Integration tests: they run the real `weft` binary.
//!
//! Each module starts its own servers through `server::Server` (a temporary data directory and a free port per
//! server), so tests run in parallel and never share state.

mod api_snapshots;
mod bad_input;
mod blocking;
mod catalog;
mod cli;
mod contracts;
mod crash;
mod disk_full;
mod edge_hardening;
mod governance;
mod grants;
mod groups;
mod implicit_products;
mod kafka_idempotence;
mod keep_alive;
mod live;
mod ownership;
mod produce_fetch;
mod server;
mod shutdown;
