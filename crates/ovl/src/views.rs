//! What `ovl info` reports of diff's comparison views lives in the engine; `info` names it here.

pub use engine::views::kernel_default_redirects;
