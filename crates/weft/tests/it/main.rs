//! Integration tests: they run the real `weft` binary.
