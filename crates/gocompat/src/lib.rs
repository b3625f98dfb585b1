//! Byte-exact Go and docker/cli behaviour, in one place: what Docker 20.10 (Go 1.19) writes,
//! hashes or prints, so that ovl's bytes are Docker's.
//!
//! - [`json`] holds `encoding/json`'s encoder (Go's string escapes, HTML escaping as an option).
//! - [`template`] holds `text/template` as docker/cli's `--format` uses it.
//! - [`time`] holds RFC 3339, `Time.String`, go-units `HumanDuration` and "… ago".
//! - [`units`] holds go-units `HumanSize`, `HumanSizeWithPrecision` and `BytesSize`.
//! - [`tabwriter`] holds `text/tabwriter` with docker/cli's settings.
//! - [`quote`] holds `strconv.Quote`.
//! - [`path`] holds `path.Clean` (and `filepath.Clean`, the same on Unix).
//! - [`digest`] holds sha256 digests, DiffIDs and ChainIDs, and the hex encoder.
//!
//! Every function here is pure: no I/O, no clock (callers pass `now`), no environment, and the
//! crate depends on no other crate of the workspace.
#![deny(unsafe_code)]

pub mod digest;
pub mod json;
pub mod path;
pub mod quote;
pub mod tabwriter;
pub mod template;
pub mod time;
pub mod units;
