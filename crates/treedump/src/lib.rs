//! treedump: one deterministic dump of a filesystem tree, used by every test layer to assert a
//! filesystem result.
#![deny(unsafe_code)]
