//! Integration tests of weft-governance's public API, one module per area, one test binary.

mod audit;
mod authz;
mod identity;
mod masking;
mod performance;
