//! Go's lexical path cleaning: `path.Clean`, which on Unix is also `path/filepath.Clean`. One
//! implementation over bytes (tar names need not be UTF-8) with a thin wrapper for text.

/// Returns the shortest lexically equivalent form of `path`: repeated slashes collapse, `.`
/// elements vanish, `..` removes the preceding element (or is dropped at the root of an absolute
/// path), trailing slashes go, and an empty result becomes `.`.
pub fn clean(path: &[u8]) -> Vec<u8> {
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

/// [`clean`] for text: the result of cleaning UTF-8 is UTF-8.
pub fn clean_str(path: &str) -> String {
    String::from_utf8_lossy(&clean(path.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn text_wrapper_cleans_the_same() {
        assert_eq!(clean_str("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_str("héllo//wörld/.."), "héllo");
    }
}
