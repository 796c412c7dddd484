//! Integration tests of Weft's storage engine, through its public API and its files only.
//!
//! Each module tests one area; each test's header comment says what it proves.
//! Nothing sleeps: time moves only through `fixture::ManualClock`.

mod fixture;
mod group_commit;
mod model;
mod reads;
mod recovery;
mod sealed_segments;
mod tail;
