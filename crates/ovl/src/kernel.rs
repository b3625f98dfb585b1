//! `OVL_DISABLE_FEATURES` lives in the engine; `main` and `info` name it here.

pub use engine::kernel::*;
