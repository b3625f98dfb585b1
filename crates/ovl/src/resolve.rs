//! Name and id resolution lives in the engine; the Go-compatible output modules name it here.

pub use engine::resolve::*;
