//! Lexical path cleaning with the rules of Go's `path/filepath.Clean` on Unix, used to detect
//! duplicate file entries the way tar-split does.

/// Returns the shortest lexically equivalent form of `path`: repeated slashes collapse, `.`
/// elements vanish, `..` removes the preceding element (or is dropped at the root of an absolute
/// path), trailing slashes go, and an empty result becomes `.`.
pub(crate) fn clean(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut elements: Vec<&[u8]> = Vec::new();
    for element in path.split(|&byte| byte == b'/') {
        match element {
            b"" | b"." => {}
            b".." => {
                if elements.last().is_some_and(|last| *last != b"..") {
                    elements.pop();
                } else if !rooted {
                    elements.push(element);
                }
            }
            _ => elements.push(element),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    for (idx, element) in elements.iter().enumerate() {
        if idx > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(element);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleans_like_go_filepath_clean() {
        // Expected values follow the examples in Go's path/filepath documentation and tests.
        let cases: &[(&str, &str)] = &[
            ("", "."),
            ("a/", "a"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("/../a", "/a"),
            ("/", "/"),
            ("//", "/"),
            ("abc/def/../../..", ".."),
        ];
        for (input, expected) in cases {
            assert_eq!(
                clean(input.as_bytes()),
                expected.as_bytes(),
                "clean({input:?})"
            );
        }
    }
}
