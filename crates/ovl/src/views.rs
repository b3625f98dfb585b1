//! What `ovl info` reports as `Native Overlay Diff`.

/// The first overlay feature the kernel enables by default that makes an upperdir walk
/// insufficient (`mount::OverlayDefaults`, read with the kernel probe).
pub fn kernel_default_redirects() -> Option<&'static str> {
    mount::OverlayDefaults::read().first_enabled()
}
