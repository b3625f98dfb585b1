//! The engine's error: the errors of the crates it drives, passed on as they are, and its own,
//! each naming the path, image, layer or container involved.
//!
//! An error's message is its `Display` followed by its `source()` chain; a step that adds context
//! to another error ([`Error::Root`], [`Error::Image`], [`Error::Io`], ...) says only what it was
//! doing and on what, and the error it wraps says why it failed.

use std::path::{Path, PathBuf};

/// What an [`crate::Events`] callback returns to stop an operation.
pub type EventError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the graph driver's operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Unpack(#[from] layer_unpack::Error),
    #[error(transparent)]
    Pack(#[from] layer_pack::Error),
    #[error(transparent)]
    Archive(#[from] image_archive::Error),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Mount(#[from] mount::Error),
    #[error(transparent)]
    Diff(#[from] diff::Error),
    #[error(transparent)]
    TarSplit(#[from] tar_split::Error),
    /// Encoding an image config or history entry.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A file system operation (`op`: "opening", "creating", ...) on `path` failed.
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The operation `op` ("opening data root", "pruning", ...) on the data root `root` failed.
    #[error("{op} {}", root.display())]
    Root {
        op: &'static str,
        root: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// The operation `op` ("reading archive", "saving to", ...) on the file or directory `path`
    /// failed.
    #[error("{op} {}", path.display())]
    Path {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// The operation `op` ("removing image", "image name", ...) on the image `reference` (as the
    /// user named it, or its id) failed.
    #[error("{op} {reference}")]
    Image {
        op: &'static str,
        reference: String,
        #[source]
        source: Box<Error>,
    },
    /// The operation `op` ("removing container", ...) on the container `reference` (as the user
    /// named it, or its id) failed.
    #[error("{op} {reference}")]
    Container {
        op: &'static str,
        reference: String,
        #[source]
        source: Box<Error>,
    },
    /// The operation `op` ("loading layer", "planning the mount of layer", ...) on the layer
    /// `reference` (an archive member, a ChainID or a layer dir id) failed.
    #[error("{op} {reference}")]
    Layer {
        op: &'static str,
        reference: String,
        #[source]
        source: Box<Error>,
    },
    /// Reading the config of the image of a container.
    #[error("reading image {image_id} of container {container_id}")]
    ContainerImage {
        image_id: String,
        container_id: String,
        #[source]
        source: Box<Error>,
    },
    /// The layer `chain_id` of the image `image_id` (checked before the image is removed).
    #[error("layer {chain_id} of image {image_id}")]
    ImageLayer {
        chain_id: String,
        image_id: String,
        #[source]
        source: Box<Error>,
    },
    /// The config of another image, whose layers `rmi` must keep, does not read: nothing is
    /// removed.
    #[error(
        "reading the config of image {image_id}, whose layers must be kept: nothing removed (ovl \
         fsck names what is damaged)"
    )]
    KeptImageUnreadable {
        image_id: String,
        #[source]
        source: Box<Error>,
    },
    /// A layer of an image to save (`image` as the user named it).
    #[error("image {image}: layer {diff_id} (chain {chain_id})")]
    SavedLayer {
        image: String,
        diff_id: String,
        chain_id: String,
        #[source]
        source: Box<Error>,
    },
    /// Pointing the name `target` at the image `image` names.
    #[error("tagging image {image} as {target}")]
    Tag {
        image: String,
        target: String,
        #[source]
        source: Box<Error>,
    },
    /// A `--change` line of a commit.
    #[error("applying change `{line}`")]
    Change {
        line: String,
        #[source]
        source: Box<Error>,
    },
    /// Mounting a layer dir on its `n_lowers` lowers the way `plan` says.
    #[error("mounting layer {id} ({n_lowers} lowers, {plan})")]
    MountLayer {
        id: String,
        n_lowers: usize,
        plan: &'static str,
        #[source]
        source: Box<mount::Error>,
    },
    /// A signal (Ctrl-C, SIGTERM) stopped the operation; what it began is removed.
    #[error("interrupted (what was begun is removed)")]
    Interrupted,
    /// Any other step, which `context` describes, failed because of `source`.
    #[error("{context}")]
    Context {
        context: &'static str,
        #[source]
        source: Box<Error>,
    },
    /// No image or container (`what`) has this name, id or id prefix.
    #[error("no such {what}: {reference}")]
    NotFound {
        what: &'static str,
        reference: String,
    },
    /// An id prefix that several images or containers (`what`) share.
    #[error("{what} id prefix {prefix} is ambiguous: it matches {n_matches} {what}s")]
    Ambiguous {
        what: &'static str,
        prefix: String,
        n_matches: usize,
    },
    /// A command that changes the root, refused while a dockerd uses it.
    #[error(
        "cannot {action}: data root {} is in use by {live}; dockerd keeps this root's images, \
         layers and containers in memory and would overwrite ovl's changes. Stop that dockerd \
         first (read-only commands such as images, ps, inspect, history, diff and save work \
         while it runs)",
        root.display()
    )]
    DockerdRunning {
        action: String,
        root: PathBuf,
        live: String,
    },
    /// A command that changes the root, refused because of the root's layout or filesystem.
    #[error("cannot {action} in data root {}", root.display())]
    Refused {
        action: String,
        root: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// Mounting overlays needs CAP_SYS_ADMIN.
    #[error("this command needs root (mounting overlays needs CAP_SYS_ADMIN): run it with sudo")]
    NeedsRoot,
    /// A mounted container, removed without `force`.
    #[error(
        "you cannot remove a mounted container {reference}: unmount it first, or use `ovl rm -f`"
    )]
    ContainerMounted { reference: String },
    /// A container mounted again while an earlier overlay of it lives on.
    #[error(
        "container {reference} is still in use: an overlay of it lives on (a process kept a file \
         or its working directory in it after a lazy unmount, or a container runtime mounted it \
         in its own mount namespace); a second overlay would share its upper and work \
         directories: end those processes first"
    )]
    ContainerHeld { reference: String },
    /// An image that containers use, removed without `force`.
    #[error(
        "unable to remove image {reference}: container {containers} is using it (remove it \
         first, or use -f)"
    )]
    ImageInUse {
        reference: String,
        containers: String,
    },
    /// An image with several names, removed by id without `force`.
    #[error(
        "image {short_id} is referenced in multiple repositories: remove them by name or use -f"
    )]
    MultipleReferences { short_id: String },
    /// A container name taken by a container of another image.
    #[error(
        "the container name \"/{name}\" is already in use by container {container_id} of \
         another image"
    )]
    NameInUse { name: String, container_id: String },
    /// Input the operation refuses: a `--change` line, a container name, a file to create that
    /// exists, an unknown `OVL_DISABLE_FEATURES` name, ...
    #[error("{message}")]
    Invalid { message: String },
    /// A number that does not parse (`message` names the input).
    #[error("{message}")]
    InvalidNumber {
        message: String,
        #[source]
        source: std::num::ParseIntError,
    },
    /// Every generated container name tried is taken.
    #[error("could not find a free container name")]
    NoFreeName,
    /// The data root or an archive contradicts itself: a layer an image names is missing, a
    /// DiffID does not match the content, ...
    #[error("{message}")]
    Inconsistent { message: String },
    /// A worker thread panicked.
    #[error("a layer worker panicked")]
    WorkerPanicked,
    /// The error the caller's event callback returned, as it is.
    #[error(transparent)]
    Event(#[from] EventError),
}

impl Error {
    /// An [`Error::Io`] of `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Invalid`] with this message.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid {
            message: message.into(),
        }
    }

    /// An [`Error::Inconsistent`] with this message.
    pub(crate) fn inconsistent(message: impl Into<String>) -> Self {
        Error::Inconsistent {
            message: message.into(),
        }
    }

    /// The error an event callback returned, when that is what stopped the operation (also
    /// below added context). A transparent variant's content is not part of its `source()`
    /// chain, so a caller that looks for its own error (a closed output pipe, for instance)
    /// looks here.
    pub fn event_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Event(err) => Some(err.as_ref()),
            Error::Root { source, .. }
            | Error::Path { source, .. }
            | Error::Image { source, .. }
            | Error::Container { source, .. }
            | Error::Layer { source, .. }
            | Error::Refused { source, .. }
            | Error::ContainerImage { source, .. }
            | Error::ImageLayer { source, .. }
            | Error::KeptImageUnreadable { source, .. }
            | Error::SavedLayer { source, .. }
            | Error::Tag { source, .. }
            | Error::Change { source, .. }
            | Error::Context { source, .. } => source.event_error(),
            _ => None,
        }
    }
}

/// Context for a failed step: what it was doing ([`Error::Context`]), on which data root, path,
/// image, container or layer ([`Error::Root`], [`Error::Path`], ...).
pub(crate) trait Context<T> {
    /// Wraps the error in [`Error::Context`] with `context`.
    fn context(self, context: &'static str) -> Result<T>;
    /// Wraps the error in [`Error::Root`].
    fn root_context(self, op: &'static str, root: &Path) -> Result<T>;
    /// Wraps the error in [`Error::Path`].
    fn path_context(self, op: &'static str, path: &Path) -> Result<T>;
    /// Wraps the error in [`Error::Image`].
    fn image_context(self, op: &'static str, reference: &str) -> Result<T>;
    /// Wraps the error in [`Error::Container`].
    fn container_context(self, op: &'static str, reference: &str) -> Result<T>;
    /// Wraps the error in [`Error::Layer`].
    fn layer_context(self, op: &'static str, reference: &str) -> Result<T>;
}

/// Wraps the error of `result` (boxed) in the variant `wrap` builds.
fn wrapped<T, E: Into<Error>>(
    result: std::result::Result<T, E>,
    wrap: impl FnOnce(Box<Error>) -> Error,
) -> Result<T> {
    result.map_err(|err| wrap(Box::new(err.into())))
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: &'static str) -> Result<T> {
        wrapped(self, |source| Error::Context { context, source })
    }

    fn root_context(self, op: &'static str, root: &Path) -> Result<T> {
        wrapped(self, |source| Error::Root {
            op,
            root: root.to_path_buf(),
            source,
        })
    }

    fn path_context(self, op: &'static str, path: &Path) -> Result<T> {
        wrapped(self, |source| Error::Path {
            op,
            path: path.to_path_buf(),
            source,
        })
    }

    fn image_context(self, op: &'static str, reference: &str) -> Result<T> {
        let reference = reference.to_string();
        wrapped(self, |source| Error::Image {
            op,
            reference,
            source,
        })
    }

    fn container_context(self, op: &'static str, reference: &str) -> Result<T> {
        let reference = reference.to_string();
        wrapped(self, |source| Error::Container {
            op,
            reference,
            source,
        })
    }

    fn layer_context(self, op: &'static str, reference: &str) -> Result<T> {
        let reference = reference.to_string();
        wrapped(self, |source| Error::Layer {
            op,
            reference,
            source,
        })
    }
}

/// The error and its sources joined by `: `, as anyhow's `{:#}` prints a chain.
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_and_wrapped_errors_print_as_one_chain() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let expected = format!("removing image x: opening /a/b: {io}");
        let err: Result<()> = Err(Error::io("opening", "/a/b", io));
        let err = err
            .image_context("removing image", "x")
            .expect_err("an error");
        assert_eq!(chain_text(&err), expected);
    }

    #[test]
    fn the_event_error_is_found_below_context() {
        let event: EventError = "closed".into();
        let err: Result<()> = Err(Error::from(event));
        let err = err.context("removing image x").expect_err("an error");
        assert_eq!(
            err.event_error().map(ToString::to_string).as_deref(),
            Some("closed")
        );
        assert_eq!(chain_text(&err), "removing image x: closed");
    }

    #[test]
    fn a_held_container_is_named_in_one_line_of_single_spaces() {
        let text = Error::ContainerHeld {
            reference: "c1".to_string(),
        }
        .to_string();
        assert!(text.starts_with("container c1 is still in use: "), "{text}");
        assert!(!text.contains("  ") && !text.contains('\n'), "{text:?}");
    }
}
